//! `token list` and `token show` (and the console's token pages): tokens read straight
//! from the document's values, so that a file with a validation error (being repaired by
//! hand) can still be listed.
//!
//! Nothing here prints a hash value: the card says `secret: set (sha256)`.

use std::collections::HashMap;

use serde_json::json;
use serde_yaml::{Mapping, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::Settings;
use crate::gateway::usage;

/// One scope as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopeView {
    pub api: String,
    pub methods: Vec<String>,
    /// The entry's other fields, as written and in their order: today its own
    /// `rate_limit` and `quota`. Kept whole (not parsed into known fields) so that a
    /// command rewriting the scope list carries them through, a field added later included.
    pub rest: Mapping,
}

/// One token, as far as the file says.
#[derive(Debug, Clone)]
pub struct TokenView {
    pub sid: String,
    pub account: String,
    pub account_name: Option<String>,
    pub name: String,
    pub description: String,
    pub primary_contact: String,
    pub developer_emails: Vec<String>,
    pub api_version: Option<String>,
    pub status: String,
    pub kind: String,
    pub environment: Option<String>,
    /// The hash scheme (`sha256`) when a hash is set.
    pub secret_scheme: Option<String>,
    pub previous_valid_until: Option<String>,
    pub created_at: Option<String>,
    pub rotated_at: Option<String>,
    pub expires_at: Option<String>,
    pub scopes: Vec<ScopeView>,
    pub shadow_scopes: Option<Vec<ScopeView>>,
    /// (requests per second, burst)
    pub rate_limit: Option<(f64, Option<u64>)>,
    /// `allowed_ips` as written; `None`: any client address.
    pub allowed_ips: Option<Vec<String>>,
    /// Unix seconds of the last allowed request, when the usage record knows it.
    pub last_used: Option<i64>,
    /// The token's `quota`, as written (`{requests, per}`).
    pub quota: Option<serde_json::Value>,
    /// Scope entries with limits of their own: (API, `{rate_limit, quota}` as written).
    pub scope_limits: Vec<(String, serde_json::Value)>,
}

/// A YAML mapping field as JSON (for the limits `token show` echoes back).
fn json_field(v: &Value, key: &str) -> Option<serde_json::Value> {
    v.get(key).and_then(|x| serde_json::to_value(x).ok())
}

/// Renders `{requests_per_second, burst}` or `{requests, per}` for the card.
fn limit_text(v: &serde_json::Value) -> String {
    if let Some(rps) = v.get("requests_per_second") {
        match v.get("burst") {
            Some(b) => format!("{rps} requests/s, burst {b}"),
            None => format!("{rps} requests/s"),
        }
    } else {
        let per = v.get("per").and_then(|p| p.as_str()).unwrap_or("?");
        format!(
            "{} requests per {per} (UTC)",
            v.get("requests").unwrap_or(&json!("?"))
        )
    }
}

pub fn str_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn str_list(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A scope list field; `None` when the field is absent.
pub fn scopes_field(v: &Value, key: &str) -> Option<Vec<ScopeView>> {
    let seq = match v.get(key)? {
        Value::Sequence(s) => s,
        _ => return Some(Vec::new()),
    };
    Some(seq.iter().filter_map(scope_entry).collect())
}

/// One entry of a scope list; `None` when it names no API.
fn scope_entry(entry: &Value) -> Option<ScopeView> {
    let rest = entry
        .as_mapping()?
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), Some("api" | "methods")))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Some(ScopeView {
        api: str_field(entry, "api")?,
        methods: str_list(entry, "methods"),
        rest,
    })
}

impl TokenView {
    pub fn of(account: &Value, token: &Value) -> TokenView {
        let rate_limit = token.get("rate_limit").and_then(|r| {
            let rps = r.get("requests_per_second")?.as_f64()?;
            Some((rps, r.get("burst").and_then(Value::as_u64)))
        });
        TokenView {
            sid: str_field(token, "sid").unwrap_or_default(),
            account: str_field(account, "id").unwrap_or_default(),
            account_name: str_field(account, "name"),
            name: str_field(token, "name").unwrap_or_default(),
            description: str_field(token, "description").unwrap_or_default(),
            primary_contact: str_field(token, "primary_contact").unwrap_or_default(),
            developer_emails: str_list(token, "developer_emails"),
            api_version: str_field(token, "api_version"),
            status: str_field(token, "status").unwrap_or_else(|| "active".into()),
            kind: str_field(token, "kind").unwrap_or_else(|| "scoped".into()),
            environment: str_field(token, "environment"),
            secret_scheme: str_field(token, "auth_token_hash").map(|h| {
                h.split_once(':')
                    .map_or_else(|| "unknown scheme".to_owned(), |(s, _)| s.to_owned())
            }),
            previous_valid_until: str_field(token, "previous_valid_until"),
            created_at: str_field(token, "created_at"),
            rotated_at: str_field(token, "rotated_at"),
            expires_at: str_field(token, "expires_at"),
            scopes: scopes_field(token, "scopes").unwrap_or_default(),
            shadow_scopes: scopes_field(token, "shadow_scopes"),
            rate_limit,
            allowed_ips: token
                .get("allowed_ips")
                .map(|_| str_list(token, "allowed_ips")),
            last_used: None,
            quota: json_field(token, "quota"),
            scope_limits: token
                .get("scopes")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    let rate_limit = json_field(s, "rate_limit");
                    let quota = json_field(s, "quota");
                    if rate_limit.is_none() && quota.is_none() {
                        return None;
                    }
                    Some((
                        str_field(s, "api")?,
                        json!({"rate_limit": rate_limit, "quota": quota}),
                    ))
                })
                .collect(),
        }
    }

    pub fn is_legacy(&self) -> bool {
        self.kind == "legacy"
    }

    pub fn expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at
            .as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .is_some_and(|t| t <= now)
    }

    /// `active`, `disabled`, or `expired` (an active token past `expires_at`).
    pub fn effective_status(&self, now: OffsetDateTime) -> String {
        if self.status == "active" && self.expired(now) {
            "expired".into()
        } else {
            self.status.clone()
        }
    }

    /// The previous secret's deadline, when it is still in the future.
    pub fn grace_until(&self, now: OffsetDateTime) -> Option<&str> {
        let until = self.previous_valid_until.as_deref()?;
        let t = OffsetDateTime::parse(until, &Rfc3339).ok()?;
        (t > now).then_some(until)
    }

    pub fn scopes_short(&self) -> String {
        if self.is_legacy() {
            return "(full access: legacy)".into();
        }
        if self.scopes.is_empty() {
            return "(none)".into();
        }
        render_scopes(&self.scopes)
    }

    pub fn to_json(&self, now: OffsetDateTime) -> serde_json::Value {
        let scopes = |s: &[ScopeView]| {
            s.iter()
                .map(|s| {
                    let mut scope = json!({"api": s.api, "methods": s.methods});
                    // Only where a shorthand was written: plain lists keep their shape.
                    if s.methods
                        .iter()
                        .any(|m| crate::domain::shorthand::is_shorthand(m))
                    {
                        scope["expanded_methods"] =
                            json!(crate::domain::shorthand::expand_all(&s.methods));
                    }
                    scope
                })
                .collect::<Vec<_>>()
        };
        json!({
            "sid": self.sid,
            "account": self.account,
            "account_name": self.account_name,
            "name": self.name,
            "description": self.description,
            "primary_contact": self.primary_contact,
            "developer_emails": self.developer_emails,
            "api_version": self.api_version,
            "status": self.status,
            "effective_status": self.effective_status(now),
            "kind": self.kind,
            "environment": self.environment,
            "secret_set": self.secret_scheme.is_some(),
            "secret_scheme": self.secret_scheme,
            "previous_secret_valid_until": self.grace_until(now),
            "created_at": self.created_at,
            "rotated_at": self.rotated_at,
            "expires_at": self.expires_at,
            "last_used": self.last_used.map(unix_rfc3339),
            "scopes": scopes(&self.scopes),
            "shadow_scopes": self.shadow_scopes.as_deref().map(scopes),
            "rate_limit": self.rate_limit.map(|(rps, burst)| json!({
                "requests_per_second": rps,
                "burst": burst,
            })),
            "allowed_ips": self.allowed_ips,
            "quota": self.quota,
            "scope_limits": self.scope_limits.iter()
                .map(|(api, l)| json!({"api": api, "rate_limit": l["rate_limit"], "quota": l["quota"]}))
                .collect::<Vec<_>>(),
        })
    }

    /// The card printed by `token show`.
    pub fn card(&self, settings: &Settings, now: OffsetDateTime) -> String {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.to_owned()
            }
        };
        let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
        let mut rows: Vec<(&str, String)> = vec![
            ("sid", self.sid.clone()),
            (
                "account",
                match &self.account_name {
                    Some(n) if *n != self.account => format!("{} ({n})", self.account),
                    _ => self.account.clone(),
                },
            ),
            ("name", dash(&self.name)),
            ("description", dash(&self.description)),
            ("primary contact", dash(&self.primary_contact)),
            ("developers", dash(&self.developer_emails.join(", "))),
            ("api version", opt(&self.api_version)),
            ("status", self.effective_status(now)),
            ("kind", self.kind.clone()),
            ("environment", opt(&self.environment)),
            (
                "secret",
                match &self.secret_scheme {
                    Some(s) => format!("set ({s})"),
                    None => "MISSING (reset it: `scopegate token reset SID`)".into(),
                },
            ),
        ];
        if let Some(until) = self.grace_until(now) {
            rows.push(("previous secret", format!("valid until {until} (grace)")));
        }
        rows.extend([
            ("created", opt(&self.created_at)),
            ("rotated", opt(&self.rotated_at)),
            ("expires", self.expires_at.clone().unwrap_or("never".into())),
            ("last used", self.last_used.map_or("-".into(), unix_rfc3339)),
            (
                "rate limit",
                match self.rate_limit {
                    Some((rps, Some(burst))) => format!("{rps} requests/s, burst {burst}"),
                    Some((rps, None)) => format!("{rps} requests/s"),
                    None => format!(
                        "default ({} requests/s, burst {})",
                        settings.rate_limit.requests_per_second, settings.rate_limit.burst
                    ),
                },
            ),
            (
                "allowed ips",
                self.allowed_ips
                    .as_ref()
                    .map_or("any address".into(), |list| list.join(", ")),
            ),
        ]);
        if let Some(q) = &self.quota {
            rows.push(("quota", limit_text(q)));
        }
        let mut out = String::new();
        for (k, v) in rows {
            out.push_str(&format!("{:<17}{v}\n", format!("{k}:")));
        }
        out.push_str("scopes:\n");
        if self.is_legacy() {
            out.push_str("  (full access: legacy token; migrate it to scopes)\n");
        } else if self.scopes.is_empty() {
            out.push_str("  (none: every request is refused)\n");
        }
        for s in &self.scopes {
            let methods = crate::domain::shorthand::describe(&s.methods);
            out.push_str(&format!("  {}: {methods}\n", s.api));
        }
        for (api, l) in &self.scope_limits {
            for kind in ["rate_limit", "quota"] {
                if !l[kind].is_null() {
                    let name = kind.replace('_', " ");
                    out.push_str(&format!("    {api} {name}: {}\n", limit_text(&l[kind])));
                }
            }
        }
        if let Some(shadow) = &self.shadow_scopes {
            out.push_str("shadow scopes (proposed; requests they would deny are counted):\n");
            if shadow.is_empty() {
                out.push_str("  (none)\n");
            }
            for s in shadow {
                let methods = crate::domain::shorthand::describe(&s.methods);
                out.push_str(&format!("  {}: {methods}\n", s.api));
            }
        }
        out
    }
}

pub fn render_scopes(scopes: &[ScopeView]) -> String {
    scopes
        .iter()
        .map(|s| format!("{}:{}", s.api, s.methods.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every token of the document, in file order.
pub fn all_tokens(root: &Value) -> Vec<TokenView> {
    let mut out = Vec::new();
    let Some(accounts) = root.get("accounts").and_then(Value::as_sequence) else {
        return out;
    };
    for account in accounts {
        if let Some(tokens) = account.get("tokens").and_then(Value::as_sequence) {
            out.extend(tokens.iter().map(|t| TokenView::of(account, t)));
        }
    }
    out
}

/// Last use per SID from the gateway's usage record, when `state_dir` is configured and
/// the record exists, merged with the fleet record in Redis when `usage.backend: redis`
/// (the later use wins). Usage is advisory: an unreadable record is a warning.
pub fn last_used(settings: &Settings) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    if let Some(dir) = &settings.state_dir {
        match usage::read_state(&usage::state_path(dir)) {
            Ok(state) => merge_last_used(&mut out, &state),
            Err(usage::StateError::Missing(_)) => {}
            Err(e) => eprintln!("warning: last-used times unavailable: {e}"),
        }
    }
    if let Some(redis) = &settings.usage_redis {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        match crate::gateway::usage_redis::read_fleet_blocking(redis, now) {
            Ok((state, _)) => merge_last_used(&mut out, &state),
            Err(e) => eprintln!("warning: fleet last-used times unavailable: {e}"),
        }
    }
    out
}

fn merge_last_used(out: &mut HashMap<String, i64>, state: &usage::UsageState) {
    for (sid, r) in &state.tokens {
        if let Some(t) = r.last_used() {
            let e = out.entry(sid.clone()).or_insert(t);
            *e = (*e).max(t);
        }
    }
}

/// The `token list` table.
pub fn table(tokens: &[TokenView], now: OffsetDateTime) -> String {
    let date = |s: &Option<String>| match s {
        Some(t) => match OffsetDateTime::parse(t, &Rfc3339) {
            Ok(_) => t.chars().take(10).collect(),
            Err(_) => t.clone(),
        },
        None => "-".into(),
    };
    let header = [
        "SID",
        "ACCOUNT",
        "NAME",
        "STATUS",
        "KIND",
        "SCOPES",
        "CREATED",
        "ROTATED",
        "LAST USED",
    ];
    let mut rows: Vec<[String; 9]> = vec![header.map(str::to_owned)];
    for t in tokens {
        rows.push([
            t.sid.clone(),
            t.account.clone(),
            t.name.clone(),
            t.effective_status(now),
            t.kind.clone(),
            t.scopes_short(),
            date(&t.created_at),
            date(&t.rotated_at),
            t.last_used
                .map_or("-".into(), |u| unix_rfc3339(u).chars().take(10).collect()),
        ]);
    }
    let mut widths = [0usize; 9];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn unix_rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}
