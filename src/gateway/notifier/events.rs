//! Which notifications are due: the time-based ones (before expiry, rotation due, stale)
//! computed from the configuration and the usage record, and the lifecycle ones (disable,
//! reset, delete) made by the command that changed the token. Pure: no I/O.
//!
//! Every event has a stable id, so "already sent" can be remembered: a time-based id names
//! the token and the instant it is about (`before_expiry/SID/<expires_at>`,
//! `rotation_due/SID/<rotated_at>`, `stale/SID/<last use>`), so renewing the expiry, rotating
//! the secret or using the token again makes a new event, and nothing else does.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::settings::NotifySettings;
use crate::config::{Config, TokenSpec};
use crate::domain::model::TokenStatus;
use crate::gateway::manage::audit::{self, AuditOptions, FailOn, FindingKind};
use crate::gateway::usage::UsageState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    BeforeExpiry,
    RotationDue,
    Stale,
    Disabled,
    Reset,
    Deleted,
}

impl EventKind {
    /// Also the `event` metrics label: a fixed set.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::BeforeExpiry => "before_expiry",
            EventKind::RotationDue => "rotation_due",
            EventKind::Stale => "stale",
            EventKind::Disabled => "disabled",
            EventKind::Reset => "reset",
            EventKind::Deleted => "deleted",
        }
    }
}

/// One notification: what happened to which token, and who is told. Holds no secret and
/// no hash: nothing here could authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub event: EventKind,
    pub sid: String,
    pub account: String,
    pub token_name: String,
    /// `primary_contact` then `developer_emails`, without duplicates.
    pub recipients: Vec<String>,
    /// When the event was detected or made (RFC 3339).
    pub at: String,
    /// One sentence for people.
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// The token's contacts: `primary_contact` first, then `developer_emails`, deduplicated
/// case-insensitively, blanks dropped.
pub fn contacts(primary: &str, developers: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for addr in std::iter::once(primary).chain(developers.iter().map(String::as_str)) {
        let addr = addr.trim();
        if !addr.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(addr)) {
            out.push(addr.to_owned());
        }
    }
    out
}

pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn event(kind: EventKind, t: &TokenSpec, id: String, now: i64, summary: String) -> Event {
    Event {
        id,
        event: kind,
        sid: t.sid.clone(),
        account: t.account.clone(),
        token_name: t.name.clone(),
        recipients: contacts(&t.primary_contact, &t.developer_emails),
        at: rfc3339(now),
        summary,
        expires_at: t.expires_at.map(|e| rfc3339(e.unix_timestamp())),
    }
}

/// The token a lifecycle event is about, as the caller knows it (the CLI reads it from the
/// tokens file, the admin API from its store): a deleted token is gone from the
/// configuration by the time its event is delivered, so the event carries what it needs.
#[derive(Debug, Clone)]
pub struct TokenRef<'a> {
    pub sid: &'a str,
    pub account: &'a str,
    pub name: &'a str,
    pub primary_contact: &'a str,
    pub developer_emails: &'a [String],
    pub expires_at: Option<String>,
}

impl<'a> TokenRef<'a> {
    #[cfg(any(test, feature = "test-util"))]
    pub fn of(t: &'a TokenSpec) -> TokenRef<'a> {
        TokenRef {
            sid: &t.sid,
            account: &t.account,
            name: &t.name,
            primary_contact: &t.primary_contact,
            developer_emails: &t.developer_emails,
            expires_at: t.expires_at.map(|e| rfc3339(e.unix_timestamp())),
        }
    }
}

/// A lifecycle event for a change a command just made. The id carries a random part: two
/// disables of the same token are two events.
pub fn lifecycle(kind: EventKind, t: &TokenRef<'_>, now: i64) -> Event {
    let mut nonce = [0u8; 8];
    // Without randomness the time still separates events made in different seconds.
    let _ = getrandom::fill(&mut nonce);
    let hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let what = match kind {
        EventKind::Disabled => "was disabled: requests with it are refused until it is enabled again",
        EventKind::Reset => {
            "had its secret reset: the previous secret stops working (after the grace period, if one was given)"
        }
        EventKind::Deleted => "was deleted: it can never authenticate again",
        _ => "changed",
    };
    Event {
        id: format!("{}/{}/{now}/{hex}", kind.as_str(), t.sid),
        event: kind,
        sid: t.sid.to_owned(),
        account: t.account.to_owned(),
        token_name: t.name.to_owned(),
        recipients: contacts(t.primary_contact, t.developer_emails),
        at: rfc3339(now),
        summary: format!(
            "Token {} ({}, account {}) {what}.",
            t.name, t.sid, t.account
        ),
        expires_at: t.expires_at.clone(),
    }
}

/// The time-based events due at `now`. Rotation and staleness are exactly what `audit`
/// reports with `--rotate-after`/`--stale-after` set to the configured values.
pub fn due(
    config: &Config,
    usage: Option<(&Path, &UsageState)>,
    settings: &NotifySettings,
    now: i64,
) -> Vec<Event> {
    let mut out = Vec::new();
    let before = secs(settings.before_expiry);
    for t in &config.tokens {
        if t.status != TokenStatus::Active {
            continue;
        }
        if let Some(exp) = t.expires_at.map(|e| e.unix_timestamp()) {
            if now >= exp - before && now < exp {
                out.push(event(
                    EventKind::BeforeExpiry,
                    t,
                    format!("before_expiry/{}/{exp}", t.sid),
                    now,
                    format!(
                        "Token {} ({}, account {}) expires on {}: reset it (scopegate token reset {} --grace 24h) and roll the new secret out before then.",
                        t.name,
                        t.sid,
                        t.account,
                        rfc3339(exp),
                        t.sid
                    ),
                ));
            }
        }
    }
    let report = audit::audit(
        config,
        usage,
        &AuditOptions {
            stale_after: settings.stale_after,
            rotate_after: settings.rotate_after,
            fail_on: FailOn::None,
            now_unix: now,
        },
    );
    for f in report.findings {
        let kind = match f.kind {
            FindingKind::RotationOverdue => EventKind::RotationDue,
            FindingKind::StaleToken => EventKind::Stale,
            _ => continue,
        };
        let Some(t) = f
            .sid
            .as_deref()
            .and_then(|sid| config.tokens.iter().find(|t| t.sid == sid))
        else {
            continue;
        };
        let about = match kind {
            EventKind::RotationDue => f.since.clone().unwrap_or_default(),
            _ => f
                .last_used
                .clone()
                .flatten()
                .unwrap_or_else(|| "never".into()),
        };
        out.push(event(
            kind,
            t,
            format!("{}/{}/{about}", kind.as_str(), t.sid),
            now,
            format!(
                "Token {} ({}, account {}): {}. {}.",
                t.name, t.sid, t.account, f.message, f.recommendation
            ),
        ));
    }
    out
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)
}
