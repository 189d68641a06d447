//! Validated `notifications:` settings: when tokens' contacts are told, and through which
//! channels (SMTP, a signed webhook).

use std::path::PathBuf;
use std::time::Duration;

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
