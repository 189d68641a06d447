//! What the admin API and the console read and write, on the blocking pool: token views
//! from the tokens file (the same reader as `token list/show`), the live usage record,
//! audit findings, shadow-scope denials and rate-limit headroom; and writes through the
//! shared token operations ([`crate::gateway::manage::ops`]) followed by a reload, so a write
//! answers only once the new generation serves.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::gateway::manage::audit::{self, AuditOptions, FailOn, Finding, Report};
use crate::gateway::manage::ops::fail_kind;
use crate::gateway::manage::store::{Fail, FailKind, Store};
use crate::gateway::manage::view::{self, TokenView};
use crate::gateway::proxy::Shared;
use crate::gateway::usage::{self, ScopeRecord, UsageState};

/// Runs blocking work (file I/O, locks, fsync) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Fail> + Send + 'static,
) -> Result<T, Fail> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(fail_kind(FailKind::Internal, "the operation failed")))
}

/// The store for the configuration in force.
pub fn open_store(shared: &Shared) -> Result<Store, Fail> {
    let path = shared.policy.load().settings.config_path.clone();
    Store::open(&path)
}

/// The message for a tokens file this process cannot write.
pub fn read_only_message(store: &Store) -> String {
    format!(
        "the tokens file {} is read-only for the gateway (e.g. a ConfigMap mount); change it \
         where it is managed; nothing was written",
        store.display()
    )
}

/// Runs one token operation and reloads: answers once the new generation serves.
/// `lock` serializes admin writes so each one's reload sees its own change.
pub async fn write<T: Send + 'static>(
    shared: &Arc<Shared>,
    lock: &tokio::sync::Mutex<()>,
    op: impl FnOnce(&Store) -> Result<T, Fail> + Send + 'static,
) -> Result<T, Fail> {
    let _guard = lock.lock().await;
    let for_op = shared.clone();
    let out = blocking(move || {
        let store = open_store(&for_op)?;
        if !store.writable() {
            return Err(fail_kind(FailKind::ReadOnly, read_only_message(&store)));
        }
        op(&store)
    })
    .await?;
    let running = shared.policy.load().settings.clone();
    let config_path = running.config_path.clone();
    crate::gateway::reload::run_reload(shared, &config_path, &running, "admin api")
        .await
        .map_err(|e| {
            fail_kind(
                FailKind::Internal,
                format!(
                    "the change was saved, but the gateway did not load it ({} error(s), see \
                     the log); the previous generation keeps serving",
                    e.0.len()
                ),
            )
        })?;
    if running.notifications.is_some() {
        // Lifecycle events (disable, reset, delete) were queued by the operation; deliver
        // them now, off the answer's path. What fails stays queued for the periodic pass.
        tokio::task::spawn_blocking(move || {
            if let Err(e) = crate::gateway::notifier::deliver_outbox(&config_path) {
                tracing::warn!(error = %e, "notifications after an admin change were not delivered");
            }
        });
    }
    Ok(out)
}

/// Every token in the tokens file, with its last use from the live registry.
pub fn tokens(shared: &Shared, store: &Store) -> Result<Vec<TokenView>, Fail> {
    let doc = store.read_doc()?;
    let mut tokens = view::all_tokens(doc.value());
    let policy = shared.policy.load();
    for t in &mut tokens {
        t.last_used = policy.tokens.get(&t.sid).and_then(|p| {
            p.runtime
                .last_used()
                .or_else(|| p.runtime.usage.last_used())
        });
    }
    Ok(tokens)
}

/// Shadow-scope would-be denials for one token.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowDenial {
    pub api: String,
    pub method: String,
    pub count: u64,
}

/// Rate-limit headroom: the effective limit and what the last decision left.
#[derive(Debug, Clone, Serialize)]
pub struct Headroom {
    pub requests_per_second: f64,
    pub burst: u32,
    /// Remaining burst after the last request (`null`: no request since start).
    pub remaining: Option<i64>,
}

/// What the console and `GET /api/v1/tokens/{sid}` show beyond the file.
#[derive(Debug, Clone, Serialize)]
pub struct Insight {
    /// Last use per (API, method) from the gateway's usage record.
    pub usage: Vec<ScopeRecord>,
    pub findings: Vec<Finding>,
    pub shadow_denied: Vec<ShadowDenial>,
    pub rate_limit: Option<Headroom>,
}

/// The live usage record (the same data the persister writes to `usage.json`).
pub fn usage_now(shared: &Shared) -> UsageState {
    usage::collect(
        &shared.registry,
        time::OffsetDateTime::now_utc().unix_timestamp(),
    )
}

/// The audit report over the configuration in force and the live usage record.
pub fn audit_report(shared: &Shared) -> Result<Report, Fail> {
    let path = shared.policy.load().settings.config_path.clone();
    let config = crate::config::load(&path).map_err(|e| {
        fail_kind(
            FailKind::Internal,
            format!(
                "the configuration has {} error(s); see `scopegate check`",
                e.0.len()
            ),
        )
    })?;
    let state = usage_now(shared);
    let source = usage::configured_path(shared)
        .unwrap_or_else(|| Path::new("(gateway memory)").to_path_buf());
    let opts = AuditOptions {
        stale_after: Duration::from_secs(30 * 86_400),
        rotate_after: Duration::from_secs(90 * 86_400),
        fail_on: FailOn::None,
        now_unix: time::OffsetDateTime::now_utc().unix_timestamp(),
    };
    Ok(audit::audit(&config, Some((&source, &state)), &opts))
}

/// Usage, findings, shadow denials and headroom for one token.
pub fn insight(shared: &Shared, sid: &str, report: Option<&Report>) -> Insight {
    let usage = usage_now(shared)
        .tokens
        .remove(sid)
        .map(|t| t.scopes)
        .unwrap_or_default();
    let findings = report
        .map(|r| {
            r.findings
                .iter()
                .filter(|f| f.sid.as_deref() == Some(sid))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let shadow_denied = shared
        .metrics
        .shadow_denied_of(sid)
        .into_iter()
        .map(|(api, method, count)| ShadowDenial { api, method, count })
        .collect();
    let policy = shared.policy.load();
    let rate_limit = policy.tokens.get(sid).map(|t| {
        let limit = t.spec.rate_limit.unwrap_or(policy.settings.rate_limit);
        Headroom {
            requests_per_second: limit.requests_per_second,
            burst: limit.burst,
            remaining: t.runtime.rate_remaining(),
        }
    });
    Insight {
        usage,
        findings,
        shadow_denied,
        rate_limit,
    }
}
