//! `notifications:` in `scopegate.yaml`: the raw form and its validation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::{duration_or, ErrorSink};

/// `notifications:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotifications {
    /// How long before `expires_at` the contacts are told (default 14d).
    pub before_expiry: Option<String>,
    /// A secret older than this is due for rotation (default 90d, as `audit --rotate-after`).
    pub rotate_after: Option<String>,
    /// A token unused this long is stale (default 30d, as `audit --stale-after`).
    pub stale_after: Option<String>,
    /// How often `serve` checks for due notifications (default 15m).
    pub interval: Option<String>,
    /// Extra delivery attempts within one pass (default 3).
    pub retries: Option<u32>,
    /// First wait between attempts, doubled each time (default 1s).
    pub retry_backoff: Option<String>,
    pub smtp: Option<RawSmtp>,
    pub webhook: Option<RawWebhook>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    pub host: String,
    pub port: Option<u16>,
    /// Upgrade the connection with STARTTLS, and refuse to send if the server cannot
    /// (default true). `false` is plain SMTP, for a relay on localhost.
    pub starttls: Option<bool>,
    pub username: Option<String>,
    /// The environment variable holding the SMTP password (never the password itself).
    pub password_env: Option<String>,
    pub from: String,
    /// A PEM CA bundle to trust for STARTTLS instead of the system roots.
    pub ca: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: String,
    /// The HMAC key; prefer `secret_env`, which keeps it out of the file.
    pub secret: Option<String>,
    pub secret_env: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub before_expiry: Duration,
    pub rotate_after: Duration,
    pub stale_after: Duration,
    pub interval: Duration,
    pub retries: u32,
    pub retry_backoff: Duration,
    pub smtp: Option<SmtpSettings>,
    pub webhook: Option<WebhookSettings>,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub starttls: bool,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub from: String,
    pub ca: Option<PathBuf>,
    pub timeout: Duration,
}

/// Where the key comes from: read when a webhook is signed, so that rotating the variable
/// needs no config change.
#[derive(Clone)]
pub enum SecretSource {
    Inline(zeroize::Zeroizing<String>),
    Env(String),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Inline(_) => f.write_str("Inline(<redacted>)"),
            SecretSource::Env(name) => write!(f, "Env({name})"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: http::Uri,
    pub secret: SecretSource,
    pub timeout: Duration,
}

const DAY: u64 = 86_400;
/// The longest SMTP or webhook timeout: one attempt must fit the state's claim lease.
const MAX_TIMEOUT: Duration = Duration::from_secs(120);

fn bounded_timeout(sink: &mut ErrorSink<'_>, field: &str, t: Duration) -> Duration {
    if t > MAX_TIMEOUT {
        sink.push(
            field,
            "a delivery timeout of at most 2m",
            "a slower server is retried by later passes instead",
        );
        return MAX_TIMEOUT;
    }
    t
}

/// Validates `notifications:`; `has_state_dir` because "each event once" needs a place to
/// remember what was sent.
pub fn from_raw(
    raw: RawNotifications,
    dir: &Path,
    has_state_dir: bool,
    sink: &mut ErrorSink<'_>,
) -> NotifySettings {
    let d = |sink: &mut ErrorSink<'_>, field: &str, v: &Option<String>, default: u64| {
        duration_or(
            sink,
            &format!("notifications.{field}"),
            v.as_deref(),
            Duration::from_secs(default),
        )
    };
    if !has_state_dir {
        sink.push(
            "notifications",
            "notifications need `state_dir`: it records what was sent so each event goes out once",
            "add e.g. `state_dir: state` (relative to this file)",
        );
    }
    if raw.smtp.is_none() && raw.webhook.is_none() {
        sink.push(
            "notifications",
            "no channel: give `smtp:`, `webhook:` or both",
            "e.g. webhook: {url: https://hooks.example/scopegate, secret_env: SCOPEGATE_WEBHOOK_SECRET}",
        );
    }
    let smtp = raw.smtp.map(|s| {
        let starttls = s.starttls.unwrap_or(true);
        if s.from.parse::<lettre::message::Mailbox>().is_err() {
            sink.push(
                "notifications.smtp.from",
                format!("`{}` is not an email address", s.from),
                "write e.g. scopegate@example.com or \"Scopegate <scopegate@example.com>\"",
            );
        }
        if s.host.trim().is_empty() {
            sink.push(
                "notifications.smtp.host",
                "empty SMTP host",
                "e.g. smtp.example.com",
            );
        }
        if s.password_env.is_some() && s.username.is_none() {
            sink.push(
                "notifications.smtp.password_env",
                "a password without a username",
                "add `username:` or remove `password_env:`",
            );
        }
        SmtpSettings {
            port: s.port.unwrap_or(if starttls { 587 } else { 25 }),
            starttls,
            username: s.username,
            password_env: s.password_env,
            from: s.from,
            ca: s.ca.map(|p| dir.join(p)),
            timeout: {
                let t = d(sink, "smtp.timeout", &s.timeout, 30);
                bounded_timeout(sink, "notifications.smtp.timeout", t)
            },
            host: s.host,
        }
    });
    let webhook = raw.webhook.and_then(|w| {
        let url = match w.url.parse::<http::Uri>() {
            Ok(u)
                if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() =>
            {
                Some(u)
            }
            _ => {
                sink.push(
                    "notifications.webhook.url",
                    format!("`{}` is not an http(s) URL", w.url),
                    "write e.g. https://hooks.example.com/scopegate",
                );
                None
            }
        };
        let secret = match (w.secret, w.secret_env) {
            (Some(s), None) if !s.is_empty() => Some(SecretSource::Inline(s.into())),
            (None, Some(e)) if !e.is_empty() => Some(SecretSource::Env(e)),
            _ => {
                sink.push(
                    "notifications.webhook",
                    "a webhook needs exactly one of `secret` and `secret_env` (non-empty)",
                    "receivers verify the X-Scopegate-Signature header with it",
                );
                None
            }
        };
        let timeout = d(sink, "webhook.timeout", &w.timeout, 10);
        let timeout = bounded_timeout(sink, "notifications.webhook.timeout", timeout);
        Some(WebhookSettings {
            url: url?,
            secret: secret?,
            timeout,
        })
    });
    let retries = raw.retries.unwrap_or(3);
    if retries > 10 {
        sink.push(
            "notifications.retries",
            "at most 10 retries within one pass",
            "failed deliveries are retried by later passes as well",
        );
    }
    NotifySettings {
        before_expiry: d(sink, "before_expiry", &raw.before_expiry, 14 * DAY),
        rotate_after: d(sink, "rotate_after", &raw.rotate_after, 90 * DAY),
        stale_after: d(sink, "stale_after", &raw.stale_after, 30 * DAY),
        interval: d(sink, "interval", &raw.interval, 15 * 60),
        retries: retries.min(10),
        retry_backoff: d(sink, "retry_backoff", &raw.retry_backoff, 1),
        smtp,
        webhook,
    }
}
