//! The two configuration files exactly as written: serde types with every field optional
//! where the spec allows a default. `validate` turns them into checked settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::model::{TokenKind, TokenStatus};

/// A duration as written. A bare number (`30`) is taken as its text, so that validation
/// says "no unit: write 30s" with the field's name instead of a type error without one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DurationText(pub String);

impl std::ops::Deref for DurationText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            Text(String),
            Int(i64),
            Float(f64),
        }
        Ok(DurationText(match Scalar::deserialize(d)? {
            Scalar::Text(s) => s,
            Scalar::Int(n) => n.to_string(),
            Scalar::Float(x) => x.to_string(),
        }))
    }
}

/// `scopegate.yaml`, the hand-written gateway configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub tls: Option<RawTls>,
    pub tokens_file: Option<String>,
    pub state_dir: Option<String>,
    pub rate_limit: Option<RawGatewayRateLimit>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    pub default_upstream: Option<String>,
    #[serde(default)]
    pub api_versions: Vec<String>,
    #[serde(default)]
    pub apis: BTreeMap<String, RawApi>,
    pub access_log: Option<bool>,
    /// Accept cleartext HTTP/2 with prior knowledge (h2c) on a non-TLS listener.
    pub http2_cleartext: Option<bool>,
    pub log_format: Option<String>,
    pub max_active_tokens_per_account: Option<usize>,
    /// `403` (the vendor model, default) or `401` for unknown SIDs and wrong secrets.
    pub invalid_credentials_status: Option<u16>,
    /// Keep the client's `Authorization` header on forwarded requests (default: removed).
    pub forward_authorization: Option<bool>,
    /// More client headers to remove before forwarding: names, or prefixes written `x-foo-*`.
    pub strip_request_headers: Option<Vec<String>>,
    /// Set RFC 7239 `Forwarded` (for, proto, host) on forwarded requests.
    pub set_forwarded: Option<bool>,
    /// Set `X-Real-IP` to the client's address on forwarded requests.
    pub set_x_real_ip: Option<bool>,
    /// Refuse every path with a (percent-encoded) non-ASCII character.
    pub refuse_non_ascii_paths: Option<bool>,
    pub timeouts: Option<RawTimeouts>,
    pub limits: Option<RawLimits>,
    pub bruteforce: Option<RawBruteForce>,
    /// Proxies whose `X-Forwarded-For` is believed (CIDRs or addresses).
    pub trusted_proxies: Option<Vec<String>>,
    /// Expect a PROXY protocol v1/v2 header on every main-listener connection.
    pub proxy_protocol: Option<bool>,
    /// `auto` (default): one worker per CPU when they exactly cover the process's CPUs.
    pub worker_cpu_affinity: Option<crate::domain::cpu_affinity::CpuAffinity>,
    /// Token lifetimes (SPEC §12).
    pub token_policy: Option<super::token_policy::RawTokenPolicy>,
    /// Telling a token's contacts (SPEC §12).
    pub notifications: Option<super::notify::RawNotifications>,
    /// Users of the admin API and console; a raw value, checked user by user in
    /// [`super::admin::users`] so that each error names its own field.
    pub admin: Option<serde_yaml::Value>,
    /// Where the usage record is kept besides each replica's `state_dir` (fleet usage).
    pub usage: Option<RawUsage>,
}

/// `usage: {backend: redis, redis_url: ..., interval: 60s, redis_timeout: 200ms}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUsage {
    pub backend: Option<crate::domain::backends::BackendKind>,
    pub redis_url: Option<String>,
    pub interval: Option<DurationText>,
    pub redis_timeout: Option<DurationText>,
}

/// The failed-authentication throttle.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBruteForce {
    pub max_failures: Option<u32>,
    pub max_failures_per_address: Option<u32>,
    pub window: Option<DurationText>,
    pub cooloff: Option<DurationText>,
    pub max_tracked_addresses: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub requests_per_second: f64,
    pub burst: Option<u32>,
}

/// The gateway's `rate_limit`: the default limit, and where limits are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGatewayRateLimit {
    pub requests_per_second: f64,
    pub burst: Option<u32>,
    pub backend: Option<crate::domain::backends::BackendKind>,
    pub redis_url: Option<String>,
    pub redis_timeout: Option<DurationText>,
    pub on_redis_error: Option<crate::domain::backends::OnRedisError>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub url: String,
    /// Overrides `timeouts.upstream_response` for this upstream.
    pub response_timeout: Option<DurationText>,
    pub tls: Option<RawUpstreamTls>,
}

/// TLS to an `https://` upstream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    /// PEM CA bundle to trust instead of the system roots.
    pub ca: Option<String>,
    /// Client certificate chain and key for mutual TLS.
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub description: Option<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    pub upstream: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub header_read: Option<DurationText>,
    pub upstream_connect: Option<DurationText>,
    pub upstream_response: Option<DurationText>,
    pub request: Option<DurationText>,
    pub shutdown: Option<DurationText>,
    pub refused_body_drain: Option<DurationText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_connections: Option<usize>,
    pub max_header_bytes: Option<usize>,
    pub max_headers: Option<usize>,
    pub max_target_length: Option<usize>,
    pub max_body_bytes: Option<u64>,
    pub max_refused_body_drain_bytes: Option<u64>,
    pub http2_max_concurrent_streams: Option<u32>,
}

/// `tokens.yaml`, managed by `scopegate token ...`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokensFile {
    /// Raw values, deserialized account by account so one bad account does not hide the
    /// errors of the others.
    #[serde(default)]
    pub accounts: Vec<serde_yaml::Value>,
    /// SIDs that were deleted: they may never authenticate again, even if re-added by hand.
    #[serde(default)]
    pub deleted_sids: Vec<String>,
}

/// `tokens.yaml` parsed straight into typed values: one pass, no intermediate value tree.
/// A valid file (the common case, and the only one that matters at 100,000 tokens) takes
/// this path; a file that fails it is parsed again as [`RawTokensFile`] so that every
/// account's and token's errors are reported.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypedTokensFile {
    #[serde(default)]
    pub accounts: Vec<TypedAccount>,
    #[serde(default)]
    pub deleted_sids: Vec<String>,
}

/// What follows the accounts in a [`TypedTokensFile`] whose first key is `accounts` (the
/// shape `scopegate token` writes), for the reader that splits the accounts between two
/// threads ([`super::tokens_yaml::read_split`]). A second `accounts` key here is an unknown
/// field, so that reader gives up where the whole-file reader finds a duplicate.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypedTokensTail {
    #[serde(default)]
    pub deleted_sids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypedAccount {
    pub id: String,
    pub name: Option<String>,
    #[serde(default)]
    pub tokens: Vec<RawToken>,
}

/// One account as validation sees it: its header and its tokens, each already typed or
/// carrying the error that stopped it.
pub struct AccountInput {
    pub header: Result<(String, Option<String>), serde_yaml::Error>,
    pub tokens: TokenInputs,
}

/// An account's tokens: all typed (a valid file, kept as parsed rather than wrapped one
/// by one, which at 100,000 tokens is a copy of every token), or one by one.
pub enum TokenInputs {
    Typed(Vec<RawToken>),
    Each(Vec<Result<RawToken, serde_yaml::Error>>),
}

impl TokenInputs {
    /// How many tokens the account lists (sizes the validated output up front).
    pub fn count(&self) -> usize {
        match self {
            TokenInputs::Typed(t) => t.len(),
            TokenInputs::Each(t) => t.len(),
        }
    }

    /// The tokens in file order, each typed or with its error.
    pub fn into_results(self) -> impl Iterator<Item = Result<RawToken, serde_yaml::Error>> {
        let (typed, each) = match self {
            TokenInputs::Typed(t) => (t, Vec::new()),
            TokenInputs::Each(t) => (Vec::new(), t),
        };
        typed.into_iter().map(Ok).chain(each)
    }
}

impl TypedTokensFile {
    pub fn into_inputs(self) -> (Vec<AccountInput>, Vec<String>) {
        let accounts = self
            .accounts
            .into_iter()
            .map(|a| AccountInput {
                header: Ok((a.id, a.name)),
                tokens: TokenInputs::Typed(a.tokens),
            })
            .collect();
        (accounts, self.deleted_sids)
    }
}

impl RawTokensFile {
    pub fn into_inputs(self) -> (Vec<AccountInput>, Vec<String>) {
        let accounts = self
            .accounts
            .into_iter()
            .map(|value| match serde_yaml::from_value::<RawAccount>(value) {
                Ok(a) => AccountInput {
                    header: Ok((a.id, a.name)),
                    tokens: TokenInputs::Each(
                        a.tokens.into_iter().map(serde_yaml::from_value).collect(),
                    ),
                },
                Err(e) => AccountInput {
                    header: Err(e),
                    tokens: TokenInputs::Each(Vec::new()),
                },
            })
            .collect();
        (accounts, self.deleted_sids)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub id: String,
    pub name: Option<String>,
    #[serde(default)]
    pub tokens: Vec<serde_yaml::Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    pub sid: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub primary_contact: Option<String>,
    #[serde(default)]
    pub developer_emails: Vec<String>,
    pub api_version: Option<String>,
    pub status: Option<TokenStatus>,
    pub kind: Option<TokenKind>,
    pub auth_token_hash: Option<String>,
    /// The previous secret's hash during a `reset --grace` overlap.
    pub previous_auth_token_hash: Option<String>,
    /// Until when the previous hash is accepted (RFC 3339).
    pub previous_valid_until: Option<String>,
    pub environment: Option<String>,
    pub created_at: Option<String>,
    pub rotated_at: Option<String>,
    pub expires_at: Option<String>,
    #[serde(default)]
    pub scopes: Vec<RawScope>,
    pub shadow_scopes: Option<Vec<RawScope>>,
    pub rate_limit: Option<RawRateLimit>,
    /// Client addresses the token may be used from (CIDRs or addresses); unset: any.
    pub allowed_ips: Option<Vec<String>>,
    /// Requests per day or month for the whole token, counted across replicas in Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<RawQuota>,
}

/// `quota: {requests: N, per: day|month}` on a token or a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuota {
    pub requests: u64,
    pub per: crate::domain::backends::QuotaPeriod,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawScope {
    pub api: String,
    #[serde(default)]
    pub methods: Vec<String>,
    /// Overrides the token's rate limit for requests recorded under this API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RawRateLimit>,
    /// A quota of its own for requests recorded under this API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<RawQuota>,
}
