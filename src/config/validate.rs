//! Turns the raw files into [`Config`]: every rule of SPEC §1 and §2, every error collected.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::Uri;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::error::ErrorSink;
use super::raw::{
    AccountInput, RawBruteForce, RawGateway, RawGatewayRateLimit, RawLimits, RawQuota,
    RawRateLimit, RawScope, RawTimeouts, RawToken, RawUsage,
};
use super::settings::*;
use crate::domain::bruteforce::BruteForceSettings;
use crate::domain::model::{method_index, MethodSet, SecretHash, TokenKind, TokenStatus};
use crate::domain::scope::pattern::parse_pattern;

mod token_file;

pub use token_file::tokens;
use token_file::*;

pub const DEFAULT_MAX_ACTIVE_TOKENS: usize = 20;

/// Validates `scopegate.yaml`. `dir` is the folder relative paths are resolved against.
pub fn gateway(raw: RawGateway, config_path: &Path, sink: &mut ErrorSink<'_>) -> Settings {
    let dir = config_path.parent().unwrap_or(Path::new("."));
    let listen = socket_addr(sink, "listen", raw.listen.as_deref(), "0.0.0.0:8080");
    let admin_listen = socket_addr(
        sink,
        "admin_listen",
        raw.admin_listen.as_deref(),
        "127.0.0.1:9901",
    );
    if listen == admin_listen && listen.port() != 0 {
        sink.push(
            "admin_listen",
            "the admin listener uses the same address as the main listener",
            "pick a separate address: the admin listener never serves proxied traffic",
        );
    }
    let tokens_path = dir.join(raw.tokens_file.as_deref().unwrap_or("tokens.yaml"));
    let tls = raw.tls.map(|t| TlsFiles {
        cert: dir.join(t.cert),
        key: dir.join(t.key),
    });
    let state_dir = raw.state_dir.map(|s| dir.join(s));

    let redis_rate_limit = raw
        .rate_limit
        .as_ref()
        .and_then(|r| redis_rate_limit(sink, r));
    let rate_limit = raw
        .rate_limit
        .map(|r| {
            let limit = RawRateLimit {
                requests_per_second: r.requests_per_second,
                burst: r.burst,
            };
            rate_limit(sink, "rate_limit", limit)
        })
        .unwrap_or(RateLimit {
            requests_per_second: 100.0,
            burst: 200,
        });

    let timeouts = timeouts(sink, raw.timeouts.unwrap_or_default());
    let limits = limits(sink, raw.limits.unwrap_or_default());
    let bruteforce = bruteforce(sink, raw.bruteforce.unwrap_or_default());
    let token_policy = super::token_policy::from_raw(raw.token_policy.unwrap_or_default(), sink);
    let notifications = raw
        .notifications
        .map(|n| super::notify::from_raw(n, dir, state_dir.is_some(), sink));
    let admin = super::admin::section(sink, raw.admin);
    let usage_redis = usage(sink, raw.usage.unwrap_or_default());

    let mut upstreams = Vec::new();
    for (name, up) in &raw.upstreams {
        let field = format!("upstreams.{name}");
        let response_timeout = duration_or(
            sink,
            &format!("{field}.response_timeout"),
            up.response_timeout.as_deref(),
            timeouts.upstream_response,
        );
        let mut tls = crate::domain::backends::UpstreamTls::default();
        if let Some(t) = &up.tls {
            tls.ca = t.ca.as_ref().map(|p| dir.join(p));
            match (&t.client_cert, &t.client_key) {
                (Some(c), Some(k)) => tls.client_cert = Some((dir.join(c), dir.join(k))),
                (None, None) => {}
                _ => sink.push(
                    &format!("{field}.tls"),
                    "client_cert and client_key go together",
                    "set both for mutual TLS, or neither",
                ),
            }
        }
        match upstream_url(&up.url) {
            Ok((scheme, authority, base_path)) => {
                if scheme != http::uri::Scheme::HTTPS && !tls.is_default() {
                    sink.push(
                        &format!("{field}.tls"),
                        "TLS settings on a plain http:// upstream",
                        "use an https:// URL or remove `tls`",
                    );
                }
                let default_port = if scheme == http::uri::Scheme::HTTPS {
                    443
                } else {
                    80
                };
                let host = match authority.port_u16() {
                    Some(p) if p == default_port => authority.host(),
                    _ => authority.as_str(),
                };
                // An authority is valid header text by construction.
                let host = http::HeaderValue::from_str(host)
                    .unwrap_or_else(|_| http::HeaderValue::from_static("invalid"));
                upstreams.push(UpstreamSpec {
                    name: name.clone(),
                    scheme,
                    authority,
                    base_path,
                    host,
                    response_timeout,
                    tls,
                })
            }
            Err(why) => sink.push(
                &format!("{field}.url"),
                format!("invalid upstream URL: {why}"),
                "write it as http://host:port or https://host:port, optionally with a path prefix",
            ),
        }
    }
    let upstream_index = |name: &str| upstreams.iter().position(|u| u.name == name);

    let default_upstream = match raw.default_upstream.as_deref() {
        None => None,
        Some(name) => {
            let found = upstream_index(name);
            if found.is_none() {
                sink.push(
                    "default_upstream",
                    format!("unknown upstream `{name}`"),
                    format!("use one of: {}", names(raw.upstreams.keys())),
                );
            }
            found
        }
    };

    let mut seen_versions = HashSet::new();
    for (i, v) in raw.api_versions.iter().enumerate() {
        if v.trim().is_empty() || !seen_versions.insert(v.as_str()) {
            sink.push(
                &format!("api_versions[{i}]"),
                format!("empty or duplicate API version `{v}`"),
                "list each version once",
            );
        }
    }

    let mut apis = Vec::new();
    for (name, api) in &raw.apis {
        let field = format!("apis.{name}");
        if !valid_name(name) {
            sink.push(
                &field,
                format!("invalid API name `{name}`"),
                "use letters, digits, `-` and `_` (the name is a metrics label)",
            );
        }
        if api.paths.is_empty() {
            sink.push(
                &format!("{field}.paths"),
                "an API needs at least one path pattern",
                "add e.g. paths: [\"/v1/things/**\"]",
            );
        }
        let mut patterns = Vec::new();
        for (i, p) in api.paths.iter().enumerate() {
            match parse_pattern(p) {
                Ok(pattern) => patterns.push((p.clone(), pattern)),
                Err(e) => sink.push(
                    &format!("{field}.paths[{i}]"),
                    format!("invalid path pattern `{p}`: {e}"),
                    "patterns use literal segments, {account}, * and a trailing **",
                ),
            }
        }
        let upstream = match api.upstream.as_deref() {
            Some(u) => upstream_index(u).or_else(|| {
                sink.push(
                    &format!("{field}.upstream"),
                    format!("unknown upstream `{u}`"),
                    format!("use one of: {}", names(raw.upstreams.keys())),
                );
                None
            }),
            None if upstreams.len() == 1 => Some(0),
            None => default_upstream.or_else(|| {
                sink.push(
                    &field,
                    "no upstream for this API",
                    "add `upstream: <name>` or a `default_upstream`",
                );
                None
            }),
        };
        apis.push(ApiSpec {
            name: name.clone(),
            description: api.description.clone().unwrap_or_default(),
            patterns,
            upstream: upstream.unwrap_or(0),
        });
    }
    if apis.len() > usize::from(u16::MAX) {
        sink.push(
            "apis",
            "too many APIs",
            "at most 65535 APIs fit the catalog",
        );
    }
    if upstreams.is_empty() && !raw.upstreams.is_empty() {
        // every upstream failed: already reported
    } else if upstreams.is_empty() {
        sink.push(
            "upstreams",
            "no upstream is configured",
            "add upstreams: {main: {url: http://127.0.0.1:3000}}",
        );
    }

    let log_format = match raw.log_format.as_deref() {
        None => None,
        Some("text") => Some(LogFormat::Text),
        Some("json") => Some(LogFormat::Json),
        Some(other) => {
            sink.push(
                "log_format",
                format!("unknown log format `{other}`"),
                "use `text` or `json`",
            );
            None
        }
    };
    let invalid_credentials_status = match raw.invalid_credentials_status {
        None | Some(403) => http::StatusCode::FORBIDDEN,
        Some(401) => http::StatusCode::UNAUTHORIZED,
        Some(other) => {
            sink.push(
                "invalid_credentials_status",
                format!("unsupported status {other}"),
                "use 403 (default) or 401",
            );
            http::StatusCode::FORBIDDEN
        }
    };
    let max_active = raw
        .max_active_tokens_per_account
        .unwrap_or(DEFAULT_MAX_ACTIVE_TOKENS);
    if max_active == 0 {
        sink.push(
            "max_active_tokens_per_account",
            "must be at least 1",
            "the vendor default is 20",
        );
    }

    Settings {
        config_path: config_path.to_path_buf(),
        tokens_path,
        listen,
        admin_listen,
        tls,
        state_dir,
        token_policy,
        notifications,
        rate_limit,
        redis_rate_limit,
        upstreams,
        default_upstream,
        api_versions: raw.api_versions,
        apis,
        access_log: raw.access_log.unwrap_or(true),
        http2_cleartext: raw.http2_cleartext.unwrap_or(false),
        log_format,
        max_active_tokens_per_account: max_active,
        invalid_credentials_status,
        forward_authorization: raw.forward_authorization.unwrap_or(false),
        strip_request_headers: strip_request_headers(sink, raw.strip_request_headers),
        set_forwarded: raw.set_forwarded.unwrap_or(false),
        set_x_real_ip: raw.set_x_real_ip.unwrap_or(false),
        target_options: crate::domain::scope::TargetOptions {
            refuse_non_ascii: raw.refuse_non_ascii_paths.unwrap_or(false),
        },
        timeouts,
        limits,
        bruteforce,
        admin_users: admin.users,
        admin_allowed_hosts: admin.allowed_hosts,
        trusted_proxies: raw
            .trusted_proxies
            .as_deref()
            .map(|list| address_list(sink, "trusted_proxies", list))
            .unwrap_or_default(),
        proxy_protocol: raw.proxy_protocol.unwrap_or(false),
        worker_cpu_affinity: raw.worker_cpu_affinity.unwrap_or_default(),
        usage_redis,
    }
}

/// `strip_request_headers:` entries, each checked on its own so every bad one is reported.
fn strip_request_headers(
    sink: &mut ErrorSink<'_>,
    raw: Option<Vec<String>>,
) -> crate::domain::owned_headers::StripList {
    let mut list = crate::domain::owned_headers::StripList::default();
    for (i, entry) in raw.unwrap_or_default().iter().enumerate() {
        if let Err(message) = list.add(entry) {
            sink.push(
                &format!("strip_request_headers[{i}]"),
                message,
                "write a header name (`x-internal-user`) or a prefix ending in `*` (`x-acme-*`)",
            );
        }
    }
    list
}

fn usage(
    sink: &mut ErrorSink<'_>,
    raw: RawUsage,
) -> Option<crate::domain::backends::UsageRedisSettings> {
    use super::redis_url::check_url;
    use crate::domain::backends::{BackendKind, DEFAULT_URL};
    use crate::domain::backends::{
        UsageRedisSettings, DEFAULT_USAGE_INTERVAL as DEFAULT_INTERVAL,
        DEFAULT_USAGE_TIMEOUT as DEFAULT_TIMEOUT,
    };
    if raw.backend.unwrap_or_default() == BackendKind::Local {
        if raw.redis_url.is_some() || raw.redis_timeout.is_some() || raw.interval.is_some() {
            sink.push(
                "usage.backend",
                "redis_url, redis_timeout and interval only apply to backend: redis",
                "set backend: redis to share the usage record across replicas, or remove them",
            );
        }
        return None;
    }
    let url = raw.redis_url.as_deref().unwrap_or(DEFAULT_URL).to_owned();
    if let Err(why) = check_url(&url) {
        sink.push(
            "usage.redis_url",
            format!("invalid Redis URL: {why}"),
            "write it as redis://[:password@]host:port[/db], e.g. redis://127.0.0.1:6379",
        );
    }
    let interval = duration_or(
        sink,
        "usage.interval",
        raw.interval.as_deref(),
        DEFAULT_INTERVAL,
    );
    let timeout = duration_or(
        sink,
        "usage.redis_timeout",
        raw.redis_timeout.as_deref(),
        DEFAULT_TIMEOUT,
    );
    Some(UsageRedisSettings {
        url,
        interval,
        timeout,
    })
}

fn bruteforce(sink: &mut ErrorSink<'_>, raw: RawBruteForce) -> BruteForceSettings {
    let d = BruteForceSettings::default();
    if raw.max_failures == Some(0) || raw.max_tracked_addresses == Some(0) {
        sink.push(
            "bruteforce",
            "max_failures and max_tracked_addresses must be at least 1",
            "the defaults are 10 failures and 65536 addresses",
        );
    }
    BruteForceSettings {
        max_failures: raw.max_failures.unwrap_or(d.max_failures).max(1),
        max_failures_per_address: raw
            .max_failures_per_address
            .unwrap_or(d.max_failures_per_address)
            .max(1),
        window: duration_or(sink, "bruteforce.window", raw.window.as_deref(), d.window),
        cooloff: duration_or(
            sink,
            "bruteforce.cooloff",
            raw.cooloff.as_deref(),
            d.cooloff,
        ),
        max_tracked_addresses: raw
            .max_tracked_addresses
            .unwrap_or(d.max_tracked_addresses)
            .max(1),
    }
}

fn rate_limit(sink: &mut ErrorSink<'_>, field: &str, raw: RawRateLimit) -> RateLimit {
    if !(raw.requests_per_second.is_finite() && raw.requests_per_second > 0.0) {
        sink.push(
            &format!("{field}.requests_per_second"),
            "must be a positive number",
            "e.g. requests_per_second: 100",
        );
    }
    let burst = raw
        .burst
        .unwrap_or_else(|| raw.requests_per_second.ceil().max(1.0) as u32);
    if burst == 0 {
        sink.push(
            &format!("{field}.burst"),
            "must be at least 1",
            "burst is how many requests may arrive at once",
        );
    }
    RateLimit {
        requests_per_second: raw.requests_per_second,
        burst: burst.max(1),
    }
}

fn redis_rate_limit(
    sink: &mut ErrorSink<'_>,
    raw: &RawGatewayRateLimit,
) -> Option<crate::domain::backends::RedisSettings> {
    use super::redis_url::check_url;
    use crate::domain::backends::{BackendKind, RedisSettings, DEFAULT_TIMEOUT, DEFAULT_URL};
    if raw.backend.unwrap_or_default() == BackendKind::Local {
        if raw.redis_url.is_some() || raw.redis_timeout.is_some() || raw.on_redis_error.is_some() {
            sink.push(
                "rate_limit.backend",
                "redis_url, redis_timeout and on_redis_error only apply to backend: redis",
                "set backend: redis to share limits across replicas, or remove them",
            );
        }
        return None;
    }
    let url = raw.redis_url.as_deref().unwrap_or(DEFAULT_URL).to_owned();
    if let Err(why) = check_url(&url) {
        sink.push(
            "rate_limit.redis_url",
            format!("invalid Redis URL: {why}"),
            "write it as redis://[:password@]host:port[/db], e.g. redis://127.0.0.1:6379",
        );
    }
    let timeout = duration_or(
        sink,
        "rate_limit.redis_timeout",
        raw.redis_timeout.as_deref(),
        DEFAULT_TIMEOUT,
    );
    Some(RedisSettings {
        url,
        timeout,
        on_error: raw.on_redis_error.unwrap_or_default(),
    })
}

fn timeouts(sink: &mut ErrorSink<'_>, raw: RawTimeouts) -> Timeouts {
    let d = Timeouts::default();
    let request = raw
        .request
        .as_deref()
        .map(|v| duration_or(sink, "timeouts.request", Some(v), Duration::from_secs(300)));
    let mut get = |name: &str, v: Option<super::raw::DurationText>, default: Duration| {
        duration_or(sink, &format!("timeouts.{name}"), v.as_deref(), default)
    };
    Timeouts {
        header_read: get("header_read", raw.header_read, d.header_read),
        upstream_connect: get("upstream_connect", raw.upstream_connect, d.upstream_connect),
        upstream_response: get(
            "upstream_response",
            raw.upstream_response,
            d.upstream_response,
        ),
        request,
        shutdown: get("shutdown", raw.shutdown, d.shutdown),
        refused_body_drain: get(
            "refused_body_drain",
            raw.refused_body_drain,
            d.refused_body_drain,
        ),
    }
}

fn limits(sink: &mut ErrorSink<'_>, raw: RawLimits) -> Limits {
    let d = Limits::default();
    let mut positive = |name: &str, v: Option<usize>, default: usize| match v {
        Some(0) => {
            sink.push(
                &format!("limits.{name}"),
                "must be at least 1",
                format!("the default is {default}"),
            );
            default
        }
        Some(v) => v,
        None => default,
    };
    Limits {
        max_connections: positive("max_connections", raw.max_connections, d.max_connections),
        max_header_bytes: positive("max_header_bytes", raw.max_header_bytes, d.max_header_bytes),
        max_headers: positive("max_headers", raw.max_headers, d.max_headers),
        max_target_length: positive(
            "max_target_length",
            raw.max_target_length,
            d.max_target_length,
        ),
        max_body_bytes: raw.max_body_bytes,
        max_refused_body_drain_bytes: raw
            .max_refused_body_drain_bytes
            .unwrap_or(d.max_refused_body_drain_bytes),
        http2_max_concurrent_streams: raw
            .http2_max_concurrent_streams
            .unwrap_or(d.http2_max_concurrent_streams)
            .max(1),
    }
}

/// A duration field (humantime), or `default` when absent; errors go to `sink`.
pub fn duration_or(
    sink: &mut ErrorSink<'_>,
    field: &str,
    value: Option<&str>,
    default: Duration,
) -> Duration {
    match value {
        None => default,
        Some(v) => match crate::domain::duration::parse(v) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                sink.push(
                    field,
                    "a zero duration is not allowed",
                    "e.g. 10s, 500ms, 2m",
                );
                default
            }
            Err(e) => {
                sink.push(field, e.message(), e.hint());
                default
            }
        },
    }
}

fn timestamp(sink: &mut ErrorSink<'_>, field: &str, value: &str) -> Option<OffsetDateTime> {
    match OffsetDateTime::parse(value, &Rfc3339) {
        Ok(t) => Some(t),
        Err(_) => {
            sink.push(
                field,
                format!("`{value}` is not an RFC 3339 timestamp"),
                "write it like 2026-08-01T00:00:00Z",
            );
            None
        }
    }
}

fn socket_addr(
    sink: &mut ErrorSink<'_>,
    field: &str,
    v: Option<&str>,
    default: &str,
) -> SocketAddr {
    let fallback: SocketAddr = default
        .parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
    match v {
        None => fallback,
        Some(s) => s.parse().unwrap_or_else(|_| {
            sink.push(
                field,
                format!("`{s}` is not an address"),
                "write it as ip:port, e.g. 0.0.0.0:8080 or [::]:8080",
            );
            fallback
        }),
    }
}

fn upstream_url(url: &str) -> Result<(http::uri::Scheme, http::uri::Authority, String), String> {
    let uri: Uri = url.parse().map_err(|e| format!("{e}"))?;
    let scheme = uri.scheme().cloned().ok_or("missing scheme")?;
    if scheme != http::uri::Scheme::HTTP && scheme != http::uri::Scheme::HTTPS {
        return Err(format!("unsupported scheme `{scheme}`"));
    }
    let authority = uri.authority().cloned().ok_or("missing host")?;
    if authority.as_str().contains('@') {
        return Err("credentials in the URL are not supported".into());
    }
    if uri.query().is_some() {
        return Err("a query string is not supported".into());
    }
    let base_path = uri.path().trim_end_matches('/').to_owned();
    Ok((scheme, authority, base_path))
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() {
        "(none configured)".to_owned()
    } else {
        v.join(", ")
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_account_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s != "."
        && s != ".."
}

/// SPEC §2: any non-empty string without `:` or whitespace (control characters are
/// refused too: they cannot be sent in a Basic credential).
pub fn valid_sid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && !s
            .chars()
            .any(|c| c == ':' || c.is_whitespace() || c.is_control())
}

/// A deliberately simple check: one `@`, a non-empty local part, a dotted domain.
pub fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}
