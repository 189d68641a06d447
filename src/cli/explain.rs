//! `scopegate explain`: why a token may or may not make a request.
//!
//! Runs the gateway's own steps in the gateway's order, with the gateway's functions:
//! [`classify`] (framing, `Host`, the target-length limit, the canonical target, method
//! overrides) and [`decision::authorize`] against a [`Policy`] built from the
//! configuration. The only step it cannot run is the secret check (it does not
//! know the secret): it reports unknown, deleted, disabled and expired SIDs in the order
//! [`decision::authenticate`] does. The rate limit is not evaluated.

use std::path::PathBuf;
use std::process::ExitCode;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};
use serde::Serialize;

use crate::config::{self, ScopeGrant, Settings};
use crate::domain::body_override::BodyOverrideScan;
use crate::domain::classify::{classify, Unclassified};
use crate::domain::decision::{self, Ask, Denial, ScopeFailure, SecretUsed};
use crate::domain::labels::{DecisionLabel, NO_API};
use crate::domain::model::{method_index, MethodSet, TokenStatus, KNOWN_METHODS};
use crate::domain::policy::{Policy, Token};
use crate::domain::scope::catalog::ApiId;

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The token's SID (the secret is not needed and not checked).
    #[arg(long)]
    pub token: String,
    #[arg(long, default_value = "config/scopegate.yaml")]
    pub config: PathBuf,
    /// A request header, `Name: value`; repeatable (e.g. `X-HTTP-Method-Override: DELETE`).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Print one JSON object instead of the readable explanation.
    #[arg(long)]
    pub json: bool,
    /// The client address to check against the token's `allowed_ips` (the address the
    /// gateway resolves: the peer, or the `X-Forwarded-For` entry behind trusted proxies).
    #[arg(long, value_name = "IP")]
    pub from: Option<std::net::IpAddr>,
    /// The request body as sent (`@FILE` reads a file). `_method` in a form, multipart or
    /// JSON body is an override too, as the gateway reads it: give the body's
    /// `Content-Type` with `-H`.
    #[arg(long, value_name = "TEXT|@FILE")]
    pub body: Option<String>,
    /// The HTTP method, exactly as sent (methods are case-sensitive).
    pub method: String,
    /// The request target: a path, optionally with a query (`/a/b?_method=DELETE`).
    pub path: String,
}

/// A catalog API whose patterns match the path (for the token's account).
#[derive(Clone, Debug, Serialize)]
pub struct ApiMatch {
    pub api: String,
    pub pattern: String,
    pub specificity: u32,
    /// The methods the token's scopes grant on this API; `null`: not in its scopes.
    pub granted: Option<Vec<&'static str>>,
}

/// A scope as written in `tokens.yaml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScopeText {
    pub api: String,
    pub methods: Vec<&'static str>,
}

impl std::fmt::Display for ScopeText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{{api: {}, methods: [{}]}}",
            self.api,
            self.methods.join(", ")
        )
    }
}

/// Everything `explain` found out. `decision`, `reason` and `api` are the labels the
/// gateway would put on the request in metrics and the access log.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub token: String,
    pub account: Option<String>,
    pub kind: Option<&'static str>,
    pub status: Option<&'static str>,
    pub method: String,
    /// The path as given (without the query, which is never echoed).
    pub target_path: String,
    /// The canonical path, when the target is valid (the query is never echoed).
    pub canonical_path: Option<String>,
    pub has_query: bool,
    /// Why the request is refused with 400, when it is.
    pub bad_request: Option<String>,
    /// Methods named by override headers or `_method` (`unknown` for a non-standard verb).
    pub overrides: Vec<&'static str>,
    pub matching_apis: Vec<ApiMatch>,
    pub decision: &'static str,
    pub reason: &'static str,
    pub api: String,
    pub upstream: Option<String>,
    /// The scope that allowed the request.
    pub allowed_by: Option<ScopeText>,
    /// What to add to the token's scopes for the request to be allowed.
    pub missing: Option<ScopeText>,
    /// The token's scope on that API once `missing` is added.
    pub resulting_scope: Option<ScopeText>,
    pub why: String,
    /// For an allowed request of a token with `shadow_scopes`: whether the shadow set would
    /// deny it (the gateway then counts it in `scopegate_shadow_denied_total`).
    pub shadow_denies: Option<bool>,
    /// The `--from` address, and the token's `allowed_ips` (`null`: any address).
    pub from: Option<String>,
    pub allowed_ips: Option<Vec<String>>,
    pub notes: Vec<String>,
}

impl Explanation {
    pub fn allowed(&self) -> bool {
        self.decision == DecisionLabel::Allowed.as_str()
    }
}

/// An invalid invocation (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("`{0}` is not an HTTP method token")]
    Method(String),
    #[error("--header `{0}`: write it as `Name: value`")]
    Header(String),
}

pub fn run(args: ExplainArgs) -> ExitCode {
    let config = match config::load(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            eprint!("{errors}");
            eprintln!("scopegate explain: fix the configuration first (see `scopegate check`)");
            return ExitCode::from(2);
        }
    };
    let headers = match parse_headers(&args.headers) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("scopegate explain: {e}");
            return ExitCode::from(2);
        }
    };
    let body = match args.body.as_deref().map(read_body).transpose() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("scopegate explain: {e}");
            return ExitCode::from(2);
        }
    };
    let policy = Policy::detached(config, 1);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let request = Request {
        method: &args.method,
        target: &args.path,
        headers: &headers,
        body: body.as_deref(),
    };
    let e = match explain_from(&policy, &args.token, &request, args.from, now) {
        Ok(e) => e,
        Err(err) => {
            eprintln!("scopegate explain: {err}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&e) {
            Ok(s) => super::audit::print_stdout(&format!("{s}\n")),
            Err(err) => {
                eprintln!("scopegate explain: {err}");
                return ExitCode::from(2);
            }
        }
    } else {
        super::audit::print_stdout(&render_text(&e));
    }
    if e.allowed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `--body`: the text itself, or `@FILE`'s bytes.
fn read_body(arg: &str) -> Result<Vec<u8>, String> {
    match arg.strip_prefix('@') {
        Some(path) => std::fs::read(path).map_err(|e| format!("--body @{path}: {e}")),
        None => Ok(arg.as_bytes().to_vec()),
    }
}

/// The request `explain` is asked about.
pub struct Request<'a> {
    /// The method exactly as sent.
    pub method: &'a str,
    /// The request target: a path, optionally with a query.
    pub target: &'a str,
    pub headers: &'a HeaderMap,
    /// The body, when it has one.
    pub body: Option<&'a [u8]>,
}

/// Parses `Name: value` strings into a header map (repeated names are kept, in order).
pub fn parse_headers(lines: &[String]) -> Result<HeaderMap, UsageError> {
    let mut map = HeaderMap::new();
    for line in lines {
        let bad = || UsageError::Header(line.clone());
        let (name, value) = line.split_once(':').ok_or_else(bad)?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
        let value = HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
        map.append(name, value);
    }
    Ok(map)
}

/// Explains one request without a client address: `allowed_ips` is reported, not checked.
/// (The agreement test in `tests/explain.rs` calls it.)
#[cfg(any(test, feature = "test-util"))]
pub fn explain<R>(
    policy: &Policy<R>,
    sid: &str,
    method: &str,
    target: &str,
    headers: &HeaderMap,
    now_unix: i64,
) -> Result<Explanation, UsageError> {
    let request = Request {
        method,
        target,
        headers,
        body: None,
    };
    explain_from(policy, sid, &request, None, now_unix)
}

/// Explains one request. Pure: the policy, the SID, the method and target as sent, the
/// request headers, the client address if known (`--from`), and the time (for expiry).
pub fn explain_from<R>(
    policy: &Policy<R>,
    sid: &str,
    request: &Request<'_>,
    from: Option<std::net::IpAddr>,
    now_unix: i64,
) -> Result<Explanation, UsageError> {
    let Request {
        method,
        target,
        headers,
        body,
    } = *request;
    let wire =
        Method::from_bytes(method.as_bytes()).map_err(|_| UsageError::Method(method.to_owned()))?;
    let mut e = Explanation {
        token: sid.to_owned(),
        account: None,
        kind: None,
        status: None,
        method: method.to_owned(),
        target_path: target.split('?').next().unwrap_or_default().to_owned(),
        canonical_path: None,
        has_query: false,
        bad_request: None,
        overrides: Vec::new(),
        matching_apis: Vec::new(),
        decision: DecisionLabel::BadRequest.as_str(),
        reason: "",
        api: NO_API.to_owned(),
        upstream: None,
        allowed_by: None,
        missing: None,
        resulting_scope: None,
        why: String::new(),
        shadow_denies: None,
        from: from.map(|ip| crate::domain::netaddr::canonical(ip).to_string()),
        allowed_ips: None,
        notes: Vec::new(),
    };
    if let Some(token) = policy.tokens.get(sid) {
        e.allowed_ips = token.spec.allowed_ips.as_ref().map(|a| a.to_strings());
        e.account = Some(token.spec.account.clone());
        e.kind = Some(token.spec.kind.as_str());
        e.status = Some(token.spec.status.as_str());
    }
    if method_index(method).is_none() {
        if let Some(i) = method_index(&method.to_ascii_uppercase()) {
            e.notes.push(format!(
                "methods are case-sensitive: `{method}` is not `{}`",
                KNOWN_METHODS[usize::from(i)]
            ));
        }
    }
    let settings = &policy.settings;
    let bad = |e: &mut Explanation, reason: &'static str, why: String| {
        e.decision = DecisionLabel::BadRequest.as_str();
        e.reason = reason;
        e.bad_request = Some(why.clone());
        e.why = format!("refused with 400 before authentication: {why}");
    };

    // Phase 1 (as the gateway): the request line and headers.
    let Ok(uri) = target.parse::<Uri>() else {
        bad(
            &mut e,
            "invalid_target",
            "the request target is not a valid URI (the HTTP parser refuses it)".into(),
        );
        return Ok(e);
    };
    let mut headers = headers.clone();
    if !headers.contains_key(http::header::HOST) {
        let host = uri.authority().map_or("gateway.invalid", |a| a.as_str());
        if let Ok(v) = HeaderValue::from_str(host) {
            headers.insert(http::header::HOST, v);
        }
    }
    // Phases 1 and 2: the gateway's classification (request line and headers, target
    // length, canonical target, method overrides).
    let classified = match classify(
        &wire,
        &uri,
        Version::HTTP_11,
        &headers,
        &settings.limits,
        settings.target_options,
    ) {
        Ok(c) => c,
        Err(why) => {
            let detail = match why {
                Unclassified::Request(r) => r.as_str().replace('_', " "),
                Unclassified::TargetTooLong => format!(
                    "the target is longer than limits.max_target_length ({})",
                    settings.limits.max_target_length
                ),
                Unclassified::Target(err) => err.reason().into(),
                Unclassified::TooManyHeaders => format!(
                    "more header fields than limits.max_headers ({})",
                    settings.limits.max_headers
                ),
            };
            bad(&mut e, why.as_str(), detail);
            return Ok(e);
        }
    };
    let (path, query) = (classified.path(), classified.query());
    e.canonical_path = Some(path.to_owned());
    e.has_query = query.is_some();
    // A body's overrides, as the gateway reads them (`body_inspection`), are asked like
    // the others.
    let mut overrides = classified.overrides.clone();
    let body_scan = body.filter(|b| !b.is_empty()).and_then(|b| {
        let mut scan = BodyOverrideScan::for_headers(&headers)?;
        scan.feed(b);
        scan.finish();
        overrides.extend_from_slice(scan.found());
        Some(scan)
    });
    let overrides = &overrides;
    e.overrides = overrides
        .iter()
        .map(|o| o.map_or("unknown", |i| KNOWN_METHODS[usize::from(i)]))
        .collect();

    // Phase 3: the token, without its secret, in `decision::authenticate`'s order.
    let Some(token) = policy.tokens.get(sid) else {
        e.decision = DecisionLabel::DeniedCredentials.as_str();
        if policy.deleted.contains(sid) {
            e.reason = "deleted";
            e.why = "the SID was deleted: it can never authenticate again".into();
        } else {
            e.reason = "unknown_sid";
            e.why = "no token has this SID".into();
        }
        return Ok(e);
    };
    let token: &Token<R> = token;
    e.matching_apis = matching_apis(policy, token, path);
    let ask = Ask {
        method: method_index(wire.as_str()),
        overrides,
        path,
    };
    let credential_failure = if token.spec.status == TokenStatus::Disabled {
        Some((
            DecisionLabel::DeniedDisabled,
            "disabled",
            "the token is disabled (scopegate token enable SID turns it back on)",
        ))
    } else if token.expires_unix.is_some_and(|t| now_unix >= t) {
        Some((
            DecisionLabel::DeniedCredentials,
            "expired",
            "the token has expired (expires_at is in the past)",
        ))
    } else {
        None
    };

    // Phase 4: the scopes, with the gateway's function.
    let scoped = decision::authorize(policy, token, SecretUsed::Current, &ask);
    if let Some((label, reason, why)) = credential_failure {
        e.decision = label.as_str();
        e.reason = reason;
        e.why = why.into();
        e.notes.push(match &scoped {
            Ok(_) => "its scopes would allow this request".into(),
            Err(_) => "its scopes would not allow this request either".into(),
        });
        return Ok(e);
    }

    // Phase 3b: the client address, with the gateway's function and in its place.
    if let Some(listed) = &e.allowed_ips {
        let listed = listed.join(", ");
        match from {
            None => e.notes.push(format!(
                "the token only accepts requests from allowed_ips [{listed}]: pass --from IP \
                 to check a client address"
            )),
            Some(ip) => {
                if let Err(denial) = decision::check_address(token, Some(ip)) {
                    e.decision = denial.label().as_str();
                    e.reason = denial.reason();
                    e.why = format!(
                        "the client address {} is not in the token's allowed_ips [{listed}] \
                         (answered like a wrong secret)",
                        crate::domain::netaddr::canonical(ip)
                    );
                    e.notes.push(match &scoped {
                        Ok(_) => "its scopes would allow this request".into(),
                        Err(_) => "its scopes would not allow this request either".into(),
                    });
                    return Ok(e);
                }
                e.notes.push(format!(
                    "the client address {} is in allowed_ips [{listed}]",
                    crate::domain::netaddr::canonical(ip)
                ));
            }
        }
    } else if from.is_some() {
        e.notes
            .push("the token has no allowed_ips: any client address may use it".into());
    }
    if let (Ok(_), Some(scan)) = (&scoped, &body_scan) {
        let granted = decision::grants_on_path(policy, token, path);
        if !token.is_legacy() && scan.unreadable() && scan.violates(granted) {
            e.decision = DecisionLabel::DeniedScope.as_str();
            e.reason = "method_override_not_granted";
            e.why = "the body cannot be read with certainty (compressed, a charset such as \
                     UTF-16, or several Content-Type fields), so it may name any method: only a \
                     token granted GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS on this path \
                     may send it"
                .into();
            return Ok(e);
        }
    }
    match scoped {
        Ok(allowed) => {
            e.decision = DecisionLabel::Allowed.as_str();
            e.reason = "in_scope";
            e.api = allowed
                .api
                .map_or(NO_API, |a| policy.api_name(a))
                .to_owned();
            e.upstream = Some(settings.upstreams[allowed.upstream].name.clone());
            if token.is_legacy() {
                e.why = match allowed.api {
                    Some(_) => format!("legacy token: full access; recorded under API `{}`", e.api),
                    None => "legacy token: full access; no catalog API matches, so the request \
                             goes to the default upstream"
                        .into(),
                };
            } else if let Some(api) = allowed.api {
                let grant = token.grant(api).map(|g| scope_text(settings, g));
                e.why = match &grant {
                    Some(g) => format!("allowed by the scope {g}"),
                    None => "allowed".into(),
                };
                e.allowed_by = grant;
            }
            e.shadow_denies = decision::shadow_denies(policy, token, &ask);
            match e.shadow_denies {
                Some(true) => e.notes.push(
                    "shadow_scopes would deny it: the gateway serves it and counts it in \
                     scopegate_shadow_denied_total"
                        .into(),
                ),
                Some(false) => e.notes.push("shadow_scopes allow it too".into()),
                None => {}
            }
        }
        Err(denial) => {
            e.decision = denial.label().as_str();
            e.reason = denial.reason();
            if let Denial::Scope { reason, .. } = denial {
                e.api = match reason {
                    ScopeFailure::Method { api } | ScopeFailure::Override { api: Some(api) } => {
                        policy.api_name(api).to_owned()
                    }
                    _ => NO_API.to_owned(),
                };
                explain_scope_denial(&mut e, policy, token, &ask, wire.as_str(), reason);
            }
        }
    }
    e.notes
        .push("explain does not check the secret or the rate limit".into());
    Ok(e)
}

fn explain_scope_denial<R>(
    e: &mut Explanation,
    policy: &Policy<R>,
    token: &Token<R>,
    ask: &Ask<'_>,
    method: &str,
    reason: ScopeFailure,
) {
    let settings = &policy.settings;
    let account = token.spec.account.as_str();
    let add = |e: &mut Explanation, api: ApiId, methods: &[u8]| {
        let name = policy.api_name(api).to_owned();
        let mut set = token.grant(api).map_or(MethodSet::EMPTY, |g| g.methods);
        for &m in methods {
            set.grant(m);
        }
        let mut missing: Vec<&'static str> = methods
            .iter()
            .map(|&m| KNOWN_METHODS[usize::from(m)])
            .collect();
        missing.dedup();
        e.missing = Some(ScopeText {
            api: name.clone(),
            methods: missing,
        });
        e.resulting_scope = Some(ScopeText {
            api: name,
            methods: written(set),
        });
    };
    match reason {
        ScopeFailure::NoApi => {
            if let Some(best) = e.matching_apis.first().cloned() {
                e.why = format!(
                    "the path matches API `{}`, which is not in the token's scopes",
                    best.api
                );
                match ask.method {
                    Some(m) => {
                        let mut methods = vec![m];
                        methods.extend(ask.overrides.iter().flatten().copied());
                        methods.sort_unstable();
                        if let Some(api) = settings.api_id(&best.api) {
                            add(e, api, &methods);
                        }
                    }
                    None => e.why.push_str(&format!(
                        "; besides, `{method}` is not a standard method and can never be granted"
                    )),
                }
                return;
            }
            // Would the path match with another account in its `{account}` segment? Try
            // each segment of the path as the account (configured or not).
            let mut owners: Vec<&str> = ask
                .path
                .split('/')
                .filter(|seg| !seg.is_empty() && *seg != account)
                .filter(|seg| {
                    let mut hit = false;
                    policy.catalog.for_each_match(ask.path, seg, |_| hit = true);
                    hit
                })
                .collect();
            owners.sort_unstable();
            owners.dedup();
            e.why = if ask.path == "*" {
                "`OPTIONS *` names no resource: no API matches it".into()
            } else if !owners.is_empty() {
                format!(
                    "the path is in account {}'s resources; a token of account {account} can \
                     never reach another account's resources",
                    owners.join(", ")
                )
            } else {
                "no API of the catalog matches this path: add it to `apis:` in scopegate.yaml \
                 before a scope can grant it"
                    .into()
            };
        }
        ScopeFailure::Method { api } => {
            let name = policy.api_name(api);
            match ask.method {
                Some(m) => {
                    e.why = format!("the token's scope on API `{name}` does not grant {method}");
                    let mut methods = vec![m];
                    // Overrides must be granted too; name them now rather than one at a time.
                    methods.extend(
                        ask.overrides
                            .iter()
                            .flatten()
                            .copied()
                            .filter(|&o| !granted_on_path(policy, token, ask.path, o)),
                    );
                    methods.sort_unstable();
                    add(e, api, &methods);
                }
                None => {
                    e.why = format!("`{method}` is not a standard method: no scope can grant it");
                }
            }
        }
        ScopeFailure::Override { api } => {
            if ask.overrides.iter().any(Option::is_none) {
                e.why = "a method override names a non-standard method (or there are too many \
                         overrides): no scope can grant it; remove the override"
                    .into();
                return;
            }
            let missing: Vec<u8> = ask
                .overrides
                .iter()
                .flatten()
                .copied()
                .filter(|&o| !granted_on_path(policy, token, ask.path, o))
                .collect();
            let names: Vec<&str> = missing
                .iter()
                .map(|&m| KNOWN_METHODS[usize::from(m)])
                .collect();
            e.why = format!(
                "the method override asks for {}, which no scope of the token grants on this path \
                 (the wire method and every override must be in scope)",
                names.join(", ")
            );
            if let Some(api) = api {
                let mut missing = missing;
                missing.sort_unstable();
                missing.dedup();
                add(e, api, &missing);
            }
        }
    }
}

/// Whether some API of the token that matches the path grants the method (the rule
/// `decision::authorize` applies to overrides).
fn granted_on_path<R>(policy: &Policy<R>, token: &Token<R>, path: &str, method: u8) -> bool {
    let mut granted = false;
    policy
        .catalog
        .for_each_match(path, &token.spec.account, |m| {
            if token
                .grant(m.api)
                .is_some_and(|g| g.methods.contains(method))
            {
                granted = true;
            }
        });
    granted
}

/// The catalog APIs matching the path for the token's account, most specific first.
fn matching_apis<R>(policy: &Policy<R>, token: &Token<R>, path: &str) -> Vec<ApiMatch> {
    let settings = &policy.settings;
    let mut found = Vec::new();
    policy
        .catalog
        .for_each_match(path, &token.spec.account, |m| found.push(m));
    found.sort_by(|a, b| {
        b.specificity
            .cmp(&a.specificity)
            .then(a.api.cmp(&b.api))
            .then(a.pattern_index.cmp(&b.pattern_index))
    });
    found.dedup();
    found
        .into_iter()
        .map(|m| {
            let api = &settings.apis[usize::from(m.api)];
            ApiMatch {
                api: api.name.clone(),
                pattern: api
                    .patterns
                    .get(usize::from(m.pattern_index))
                    .map_or_else(String::new, |(text, _)| text.clone()),
                specificity: m.specificity,
                granted: token.grant(m.api).map(|g| written(g.methods)),
            }
        })
        .collect()
}

/// Method names as one would write them: HEAD is implied by GET and not repeated.
fn written(set: MethodSet) -> Vec<&'static str> {
    let get = set.contains(0);
    set.names().filter(|m| !(get && *m == "HEAD")).collect()
}

fn scope_text(settings: &Settings, grant: &ScopeGrant) -> ScopeText {
    ScopeText {
        api: settings.apis[usize::from(grant.api)].name.clone(),
        methods: written(grant.methods),
    }
}

/// The readable explanation.
pub fn render_text(e: &Explanation) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "request      {} {}",
        e.method,
        e.canonical_path.as_deref().unwrap_or(&e.target_path)
    );
    match (&e.canonical_path, &e.bad_request) {
        (_, Some(why)) => {
            let _ = writeln!(out, "target       refused (400): {why}");
        }
        (Some(p), None) => {
            let _ = writeln!(
                out,
                "canonical    {p}{}",
                if e.has_query {
                    " (query kept as sent, not shown)"
                } else {
                    ""
                }
            );
        }
        _ => {}
    }
    if !e.overrides.is_empty() {
        let _ = writeln!(out, "overrides    {}", e.overrides.join(", "));
    }
    match (&e.account, e.kind, e.status) {
        (Some(a), Some(k), Some(s)) => {
            let _ = writeln!(out, "token        {} (account {a}, {k}, {s})", e.token);
        }
        _ => {
            let _ = writeln!(out, "token        {}", e.token);
        }
    }
    if e.bad_request.is_none() && e.account.is_some() {
        if e.matching_apis.is_empty() {
            let _ = writeln!(
                out,
                "matching     no API of the catalog (for account {})",
                e.account.as_deref().unwrap_or_default()
            );
        }
        for (i, m) in e.matching_apis.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}{}  {}  ({})",
                if i == 0 {
                    "matching     "
                } else {
                    "             "
                },
                m.api,
                m.pattern,
                match &m.granted {
                    Some(g) => format!("granted: {}", g.join(", ")),
                    None => "not in the token's scopes".into(),
                }
            );
        }
    }
    let _ = write!(out, "decision     {} ({})", e.decision, e.reason);
    if e.api != NO_API {
        let _ = write!(out, ", api {}", e.api);
    }
    if let Some(u) = &e.upstream {
        let _ = write!(out, " -> upstream {u}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "why          {}", e.why);
    if let Some(s) = &e.allowed_by {
        let _ = writeln!(out, "allowed by   {s}");
    }
    if let Some(m) = &e.missing {
        let _ = write!(out, "missing      add {m}");
        if let Some(r) = &e.resulting_scope {
            if r != m {
                let _ = write!(out, " (the scope becomes {r})");
            }
        }
        let _ = writeln!(out);
    }
    if e.allowed() {
        let _ = writeln!(
            out,
            "shadow       {}",
            match e.shadow_denies {
                Some(true) => "shadow_scopes would DENY it (served, and counted)",
                Some(false) => "shadow_scopes allow it",
                None => "no shadow_scopes",
            }
        );
    }
    for n in &e.notes {
        let _ = writeln!(out, "note         {n}");
    }
    out
}
