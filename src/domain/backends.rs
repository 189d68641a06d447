//! Settings of the backends the running gateway talks to: the Redis holding shared rate
//! limits and quotas, the fleet usage record, and an upstream's TLS files. Plain values:
//! `config` builds them, `gateway` connects with them.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `rate_limit.redis_url` when not set.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
/// `rate_limit.redis_timeout` when not set: the most a request waits for Redis.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// `rate_limit.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Each replica limits on its own (the default).
    #[default]
    Local,
    /// Replicas share one budget per token in Redis.
    Redis,
}

/// `rate_limit.on_redis_error`: how a request is decided when Redis cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRedisError {
    /// Fail open to the token's in-process limiter (per replica).
    #[default]
    Local,
    /// Fail closed: 429 with `Retry-After: 1`.
    Deny,
}

impl OnRedisError {
    pub fn as_str(self) -> &'static str {
        match self {
            OnRedisError::Local => "local",
            OnRedisError::Deny => "deny",
        }
    }
}

/// Validated settings of the Redis backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    pub url: String,
    pub timeout: Duration,
    pub on_error: OnRedisError,
}

/// `quota.per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaPeriod {
    Day,
    Month,
}

impl QuotaPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaPeriod::Day => "day",
            QuotaPeriod::Month => "month",
        }
    }
}

/// A validated quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    pub requests: u64,
    pub per: QuotaPeriod,
}

/// `usage.interval` when not set.
pub const DEFAULT_USAGE_INTERVAL: Duration = Duration::from_secs(60);
/// `usage.redis_timeout` when not set: writes happen off the request path, so this can be
/// more generous than the rate limit's.
pub const DEFAULT_USAGE_TIMEOUT: Duration = Duration::from_millis(500);
/// Validated `usage` settings for the Redis backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRedisSettings {
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
}

/// TLS settings of one upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    /// PEM bundle of CAs to trust instead of the system roots.
    pub ca: Option<PathBuf>,
    /// Client certificate chain and key, for mutual TLS to the upstream.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl UpstreamTls {
    pub fn is_default(&self) -> bool {
        self.ca.is_none() && self.client_cert.is_none()
    }
}
