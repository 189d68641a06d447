//! Validated configuration: the typed, checked form of both files.
//!
//! Everything here has passed validation; the request path can rely on it without
//! re-checking (upstream indexes exist, patterns are parsed, hashes are well-formed).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use time::OffsetDateTime;

use crate::domain::model::{MethodSet, SecretHash, TokenKind, TokenStatus};
use crate::domain::scope::catalog::ApiId;
use crate::domain::scope::pattern::Pattern;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub requests_per_second: f64,
    pub burst: u32,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    pub name: String,
    pub scheme: Scheme,
    pub authority: Authority,
    /// Path prefix of the upstream URL without a trailing slash (often empty).
    pub base_path: String,
    /// The `Host` the upstream is sent: its authority, without the scheme's default port
    /// (what a client library derives from the URL), rendered once.
    pub host: http::HeaderValue,
    pub response_timeout: Duration,
    pub tls: crate::domain::backends::UpstreamTls,
}

#[derive(Debug, Clone)]
pub struct ApiSpec {
    pub name: String,
    pub description: String,
    pub patterns: Vec<(String, Pattern)>,
    pub upstream: usize,
}

#[derive(Debug, Clone)]
pub struct Timeouts {
    /// Also bounds how long an idle HTTP/1.1 keep-alive connection waits for its next
    /// request: hyper starts this timer whenever it starts reading a request head.
    pub header_read: Duration,
    pub upstream_connect: Duration,
    pub upstream_response: Duration,
    /// Total time for one exchange, response body included; unset by default (long
    /// downloads are legitimate), when set a stream past it is aborted.
    pub request: Option<Duration>,
    pub shutdown: Duration,
    pub refused_body_drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_read: Duration::from_secs(10),
            upstream_connect: Duration::from_secs(5),
            upstream_response: Duration::from_secs(30),
            request: None,
            shutdown: Duration::from_secs(30),
            refused_body_drain: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_target_length: usize,
    pub max_body_bytes: Option<u64>,
    pub max_refused_body_drain_bytes: u64,
    pub http2_max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_target_length: 8 * 1024,
            max_body_bytes: None,
            max_refused_body_drain_bytes: 64 * 1024,
            http2_max_concurrent_streams: 256,
        }
    }
}

/// The gateway settings from `scopegate.yaml`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config_path: PathBuf,
    pub tokens_path: PathBuf,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    pub state_dir: Option<PathBuf>,
    /// `token_policy:`; the default policy imposes nothing.
    pub token_policy: crate::domain::token_policy::TokenPolicy,
    /// `notifications:`; `None` sends nothing.
    pub notifications: Option<crate::domain::notify::NotifySettings>,
    pub rate_limit: RateLimit,
    /// `rate_limit.backend: redis`; `None` keeps limits in process. Read at start only.
    pub redis_rate_limit: Option<crate::domain::backends::RedisSettings>,
    pub upstreams: Vec<UpstreamSpec>,
    pub default_upstream: Option<usize>,
    pub api_versions: Vec<String>,
    pub apis: Vec<ApiSpec>,
    pub access_log: bool,
    pub http2_cleartext: bool,
    pub log_format: Option<LogFormat>,
    pub max_active_tokens_per_account: usize,
    pub invalid_credentials_status: http::StatusCode,
    pub forward_authorization: bool,
    /// Operator additions to the gateway-owned header table (`strip_request_headers:`).
    pub strip_request_headers: crate::domain::owned_headers::StripList,
    pub set_forwarded: bool,
    pub set_x_real_ip: bool,
    /// Stricter request-target rules (`refuse_non_ascii_paths:`).
    pub target_options: crate::domain::scope::TargetOptions,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub bruteforce: crate::domain::bruteforce::BruteForceSettings,
    /// `admin.users`; empty turns the admin API and console off (404).
    pub admin_users: Vec<crate::domain::admin::AdminUser>,
    /// `admin.allowed_hosts`: the host names the admin listener answers for besides IP
    /// addresses and `localhost` (see `gateway::admin_host`); `None` when not set.
    pub admin_allowed_hosts: Option<Vec<String>>,
    /// Peers whose `X-Forwarded-For` is read (see `client_addr`); empty: none.
    pub trusted_proxies: crate::domain::netaddr::CidrSet,
    /// The main listener expects a PROXY protocol header first. Read at start only.
    pub proxy_protocol: bool,
    /// Whether workers are pinned to CPUs ([`crate::domain::cpu_affinity`]). Read at start
    /// only.
    pub worker_cpu_affinity: crate::domain::cpu_affinity::CpuAffinity,
    /// `usage.backend: redis`: the fleet-wide usage record. Read at start only.
    pub usage_redis: Option<crate::domain::backends::UsageRedisSettings>,
}

impl Settings {
    pub fn api_id(&self, name: &str) -> Option<ApiId> {
        self.apis
            .iter()
            .position(|a| a.name == name)
            .map(|i| i as ApiId)
    }
}

/// One grant: a catalog API and the methods allowed on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeGrant {
    pub api: ApiId,
    pub methods: MethodSet,
}

/// A validated token from `tokens.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSpec {
    pub sid: String,
    pub account: String,
    pub name: String,
    pub description: String,
    pub primary_contact: String,
    pub developer_emails: Vec<String>,
    pub api_version: Option<String>,
    pub status: TokenStatus,
    pub kind: TokenKind,
    pub hash: SecretHash,
    /// The previous secret's hash and the end of its grace period.
    pub previous: Option<(SecretHash, OffsetDateTime)>,
    pub environment: Option<String>,
    pub created_at: Option<OffsetDateTime>,
    pub rotated_at: Option<OffsetDateTime>,
    pub expires_at: Option<OffsetDateTime>,
    pub scopes: Vec<ScopeGrant>,
    pub shadow_scopes: Option<Vec<ScopeGrant>>,
    pub rate_limit: Option<RateLimit>,
    /// The client addresses the token may be used from; `None`: any address.
    pub allowed_ips: Option<crate::domain::netaddr::CidrSet>,
    /// The token's own quota (all its requests).
    pub quota: Option<crate::domain::backends::Quota>,
    /// Per-scope overrides, sorted by API: a scope's `rate_limit` replaces the token's
    /// for requests recorded under that API; a scope's `quota` counts them on its own.
    pub scope_limits: Vec<ScopeLimits>,
}

/// The limits written on one scope entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScopeLimits {
    pub api: ApiId,
    pub rate_limit: Option<RateLimit>,
    pub quota: Option<crate::domain::backends::Quota>,
}

impl TokenSpec {
    /// The limits of the scope for `api`, if that scope entry has any.
    pub fn scope_limits(&self, api: ApiId) -> Option<&ScopeLimits> {
        self.scope_limits
            .binary_search_by_key(&api, |s| s.api)
            .ok()
            .map(|i| &self.scope_limits[i])
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccountSpec {
    pub id: String,
    pub name: String,
}

/// Both files, validated together.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    pub accounts: Vec<AccountSpec>,
    pub tokens: Vec<TokenSpec>,
    pub deleted_sids: Vec<String>,
}
