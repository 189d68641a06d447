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
    let admin_users = super::admin::users(sink, raw.admin);
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
                upstreams.push(UpstreamSpec {
                    name: name.clone(),
                    scheme,
                    authority,
                    base_path,
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
        admin_users,
        trusted_proxies: raw
            .trusted_proxies
            .as_deref()
            .map(|list| address_list(sink, "trusted_proxies", list))
            .unwrap_or_default(),
        proxy_protocol: raw.proxy_protocol.unwrap_or(false),
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

/// Validates `tokens.yaml` against the validated gateway settings.
pub fn tokens(
    inputs: Vec<AccountInput>,
    deleted_sids: Vec<String>,
    settings: &Settings,
    sink: &mut ErrorSink<'_>,
) -> (Vec<AccountSpec>, Vec<TokenSpec>, Vec<String>) {
    let deleted: HashSet<&str> = deleted_sids.iter().map(String::as_str).collect();
    let mut accounts = Vec::new();
    let mut tokens = Vec::new();
    let mut sid_seen: HashMap<String, String> = HashMap::new();
    let mut account_seen = HashSet::new();

    for (ai, input) in inputs.into_iter().enumerate() {
        let afield = format!("accounts[{ai}]");
        let account = match input.header {
            Ok((id, name)) => AccountHeader { id, name },
            Err(e) => {
                sink.push_serde(&afield, &e);
                continue;
            }
        };
        if !valid_account_id(&account.id) {
            sink.push(
                &format!("{afield}.id"),
                format!("invalid account id `{}`", account.id),
                "use letters, digits, `-`, `_` and `.` (it appears in paths and metrics)",
            );
        }
        if !account_seen.insert(account.id.clone()) {
            sink.push(
                &format!("{afield}.id"),
                format!("duplicate account `{}`", account.id),
                "list each account once and put all its tokens under it",
            );
        }
        let mut active_scoped = 0usize;
        for (ti, parsed) in input.tokens.into_iter().enumerate() {
            let tfield = format!("{afield}.tokens[{ti}]");
            let raw_token: RawToken = match parsed {
                Ok(t) => t,
                Err(e) => {
                    sink.push_serde(&tfield, &e);
                    continue;
                }
            };
            if let Some(other) = sid_seen.insert(raw_token.sid.clone(), tfield.clone()) {
                sink.push(
                    &format!("{tfield}.sid"),
                    format!("duplicate SID `{}` (also at {other})", raw_token.sid),
                    "every token needs its own SID; create new tokens with `scopegate token create`",
                );
            }
            if deleted.contains(raw_token.sid.as_str()) {
                sink.push(
                    &format!("{tfield}.sid"),
                    format!(
                        "SID `{}` was deleted and can never be used again",
                        raw_token.sid
                    ),
                    "create a new token with `scopegate token create`",
                );
            }
            if let Some(t) = token(raw_token, &account.id, &tfield, settings, sink) {
                if t.status == TokenStatus::Active && t.kind == TokenKind::Scoped {
                    active_scoped += 1;
                    if active_scoped == settings.max_active_tokens_per_account + 1 {
                        sink.push(
                            &tfield,
                            format!(
                                "account `{}` has more than {} active scoped tokens",
                                account.id, settings.max_active_tokens_per_account
                            ),
                            "disable or delete tokens the account no longer needs",
                        );
                    }
                }
                tokens.push(t);
            }
        }
        accounts.push(AccountSpec {
            name: account.name.unwrap_or_else(|| account.id.clone()),
            id: account.id,
        });
    }
    (accounts, tokens, deleted_sids)
}

struct AccountHeader {
    id: String,
    name: Option<String>,
}

fn token(
    raw: RawToken,
    account: &str,
    field: &str,
    settings: &Settings,
    sink: &mut ErrorSink<'_>,
) -> Option<TokenSpec> {
    let errors_before = sink.errors.len();
    if !valid_sid(&raw.sid) {
        sink.push(
            &format!("{field}.sid"),
            "a SID must be non-empty, without `:`, whitespace or control characters",
            "generated SIDs look like SG followed by 32 letters and digits",
        );
    }
    let name = raw.name.unwrap_or_default();
    if name.trim().is_empty() {
        sink.push(
            &format!("{field}.name"),
            "a token needs a name",
            "name it after the integration that uses it",
        );
    }
    if let Some(contact) = &raw.primary_contact {
        if !valid_email(contact) {
            sink.push(
                &format!("{field}.primary_contact"),
                format!("`{contact}` is not an email address"),
                "write it as name@example.com",
            );
        }
    }
    for (i, email) in raw.developer_emails.iter().enumerate() {
        if !valid_email(email) {
            sink.push(
                &format!("{field}.developer_emails[{i}]"),
                format!("`{email}` is not an email address"),
                "write it as name@example.com",
            );
        }
    }
    if let Some(v) = &raw.api_version {
        if !settings.api_versions.contains(v) {
            sink.push(
                &format!("{field}.api_version"),
                format!("unknown API version `{v}`"),
                format!(
                    "use one of the catalog's api_versions: {}",
                    names(settings.api_versions.iter())
                ),
            );
        }
    }
    let hash = match raw.auth_token_hash.as_deref() {
        None => {
            sink.push(
                &format!("{field}.auth_token_hash"),
                "missing auth_token_hash",
                "create tokens with `scopegate token create`, or hash a secret with `scopegate hash`",
            );
            None
        }
        Some(h) => SecretHash::parse(h)
            .map_err(|e| {
                sink.push(
                    &format!("{field}.auth_token_hash"),
                    format!("malformed hash: {e}"),
                    "produce it with `scopegate hash`",
                )
            })
            .ok(),
    };
    let previous = match (&raw.previous_auth_token_hash, &raw.previous_valid_until) {
        (None, None) => None,
        (Some(h), Some(until)) => {
            let hash = SecretHash::parse(h)
                .map_err(|e| {
                    sink.push(
                        &format!("{field}.previous_auth_token_hash"),
                        format!("malformed hash: {e}"),
                        "produce it with `scopegate hash`",
                    )
                })
                .ok();
            let until = timestamp(sink, &format!("{field}.previous_valid_until"), until);
            hash.zip(until)
        }
        _ => {
            sink.push(
                field,
                "previous_auth_token_hash and previous_valid_until go together",
                "set both (as `token reset --grace` does) or neither",
            );
            None
        }
    };
    let created_at = raw
        .created_at
        .as_deref()
        .and_then(|s| timestamp(sink, &format!("{field}.created_at"), s));
    let rotated_at = raw
        .rotated_at
        .as_deref()
        .and_then(|s| timestamp(sink, &format!("{field}.rotated_at"), s));
    let expires_at = raw
        .expires_at
        .as_deref()
        .and_then(|s| timestamp(sink, &format!("{field}.expires_at"), s));
    let kind = raw.kind.unwrap_or_default();
    let granted = scopes(sink, &format!("{field}.scopes"), &raw.scopes, settings);
    let shadow_scopes = raw
        .shadow_scopes
        .as_ref()
        .map(|s| scopes(sink, &format!("{field}.shadow_scopes"), s, settings));
    let rate_limit = raw
        .rate_limit
        .map(|r| rate_limit(sink, &format!("{field}.rate_limit"), r));
    let allowed_ips = raw.allowed_ips.as_deref().map(|list| {
        let afield = format!("{field}.allowed_ips");
        if list.is_empty() {
            // It would refuse every request, which `status: disabled` says more clearly.
            sink.push(
                &afield,
                "an empty allowed_ips list would refuse every request",
                "list CIDRs such as 203.0.113.0/24 or 2001:db8::/48, remove the field to \
                 allow any address, or disable the token",
            );
        }
        address_list(sink, &afield, list)
    });
    let quota = raw
        .quota
        .map(|q| quota(sink, &format!("{field}.quota"), q, settings));
    let scope_limits = scope_limits(sink, &format!("{field}.scopes"), &raw.scopes, settings);
    for (i, s) in raw.shadow_scopes.iter().flatten().enumerate() {
        if s.rate_limit.is_some() || s.quota.is_some() {
            sink.push(
                &format!("{field}.shadow_scopes[{i}]"),
                "rate_limit and quota are not used on shadow_scopes",
                "put limits on the scopes entry; shadow_scopes only count what they would deny",
            );
        }
    }

    if sink.errors.len() > errors_before {
        return None;
    }
    Some(TokenSpec {
        sid: raw.sid,
        account: account.to_owned(),
        name,
        description: raw.description.unwrap_or_default(),
        primary_contact: raw.primary_contact.unwrap_or_default(),
        developer_emails: raw.developer_emails,
        api_version: raw.api_version,
        status: raw.status.unwrap_or(TokenStatus::Active),
        kind,
        hash: hash?,
        previous,
        environment: raw.environment,
        created_at,
        rotated_at,
        expires_at,
        scopes: granted,
        shadow_scopes,
        rate_limit,
        allowed_ips,
        quota,
        scope_limits,
    })
}

/// An `allowed_ips` or `trusted_proxies` list: CIDRs or bare addresses (see
/// [`crate::domain::netaddr::parse_cidr`]), every bad entry reported.
fn address_list(
    sink: &mut ErrorSink<'_>,
    field: &str,
    list: &[String],
) -> crate::domain::netaddr::CidrSet {
    let mut nets = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        match crate::domain::netaddr::parse_cidr(entry) {
            Ok(net) => nets.push(net),
            Err(why) => sink.push(
                &format!("{field}[{i}]"),
                why,
                "write an address (203.0.113.7, 2001:db8::7) or a CIDR with a clean network \
                 part (203.0.113.0/24, 2001:db8::/48)",
            ),
        }
    }
    crate::domain::netaddr::CidrSet::new(nets)
}

/// The `rate_limit` and `quota` written on scope entries, by API. Two entries for one API
/// may not both carry the same kind of limit (which one would apply?).
fn scope_limits(
    sink: &mut ErrorSink<'_>,
    field: &str,
    raw: &[RawScope],
    settings: &Settings,
) -> Vec<ScopeLimits> {
    let mut out: Vec<ScopeLimits> = Vec::new();
    for (i, scope) in raw.iter().enumerate() {
        if scope.rate_limit.is_none() && scope.quota.is_none() {
            continue;
        }
        let sfield = format!("{field}[{i}]");
        // An unknown API is reported by `scopes`.
        let Some(api) = settings.api_id(&scope.api) else {
            continue;
        };
        let rate = scope
            .rate_limit
            .map(|r| rate_limit(sink, &format!("{sfield}.rate_limit"), r));
        let quota = scope
            .quota
            .map(|q| quota(sink, &format!("{sfield}.quota"), q, settings));
        match out.iter_mut().find(|l| l.api == api) {
            Some(existing) => {
                if (rate.is_some() && existing.rate_limit.is_some())
                    || (quota.is_some() && existing.quota.is_some())
                {
                    sink.push(
                        &sfield,
                        format!("a second rate_limit or quota for API `{}`", scope.api),
                        "write each API's limits on one of its scope entries",
                    );
                }
                existing.rate_limit = existing.rate_limit.or(rate);
                existing.quota = existing.quota.or(quota);
            }
            None => out.push(ScopeLimits {
                api,
                rate_limit: rate,
                quota,
            }),
        }
    }
    out.sort_by_key(|l| l.api);
    out
}

fn quota(
    sink: &mut ErrorSink<'_>,
    field: &str,
    raw: RawQuota,
    settings: &Settings,
) -> crate::domain::backends::Quota {
    if raw.requests == 0 {
        sink.push(
            &format!("{field}.requests"),
            "must be at least 1",
            "a token that may send nothing should be disabled instead",
        );
    }
    if settings.redis_rate_limit.is_none() {
        sink.push(
            field,
            "a quota needs the shared Redis backend",
            "set rate_limit.backend: redis (with redis_url) in scopegate.yaml: quotas are \
             counted across replicas in Redis; a per-replica count would multiply the quota \
             by the number of replicas",
        );
    }
    crate::domain::backends::Quota {
        requests: raw.requests,
        per: raw.per,
    }
}

/// Parses a scope list; several entries for one API are merged.
pub(crate) fn scopes(
    sink: &mut ErrorSink<'_>,
    field: &str,
    raw: &[RawScope],
    settings: &Settings,
) -> Vec<ScopeGrant> {
    let mut grants: Vec<ScopeGrant> = Vec::new();
    for (i, scope) in raw.iter().enumerate() {
        let sfield = format!("{field}[{i}]");
        let Some(api) = settings.api_id(&scope.api) else {
            sink.push(
                &format!("{sfield}.api"),
                format!("unknown API `{}`", scope.api),
                format!(
                    "use an API of the catalog in scopegate.yaml: {}",
                    names(settings.apis.iter().map(|a| &a.name))
                ),
            );
            continue;
        };
        if scope.methods.is_empty() {
            sink.push(
                &format!("{sfield}.methods"),
                "a scope needs at least one method",
                "e.g. methods: [GET]",
            );
        }
        let mut methods = MethodSet::EMPTY;
        for (j, m) in scope.methods.iter().enumerate() {
            match crate::domain::shorthand::expand(m) {
                Some(names) => {
                    for idx in names.iter().filter_map(|n| method_index(n)) {
                        methods.grant(idx);
                    }
                }
                None => sink.push(
                    &format!("{sfield}.methods[{j}]"),
                    format!("unknown method `{m}`"),
                    crate::domain::shorthand::HINT,
                ),
            }
        }
        match grants.iter_mut().find(|g| g.api == api) {
            Some(g) => {
                for name in methods.names() {
                    if let Some(idx) = method_index(name) {
                        g.methods.grant(idx);
                    }
                }
            }
            None => grants.push(ScopeGrant { api, methods }),
        }
    }
    grants.sort_by_key(|g| g.api);
    grants
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
