//! The per-request service. It loads the current policy snapshot once, then runs the
//! phases in a fixed order, each a function returning `Result<_, Refused>` and filling in
//! a per-request context: classify -> authenticate -> authorize -> limit -> (a body's
//! method overrides) -> forward.
//! [`handle`] is the one exit: it turns any [`Refused`] into its response, and every
//! request into its metrics and its access-log line.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::domain::auth;
use crate::domain::body_override::BodyOverrideScan;
use crate::domain::classify::{self, Classified};
use crate::domain::client_addr::{self, ClientAddr};
use crate::domain::decision::{self, Allowed, Ask, Denial, SecretUsed};
use crate::domain::model::{method_index, method_label};
use crate::domain::ratelimit::{self, RateOutcome, TokenLimiter};
use crate::domain::settings::Settings;
use crate::gateway::access_log::{AccessRecord, Logged};
use crate::gateway::body::{BodyError, RequestBody, UpstreamBody};
use crate::gateway::body_inspection;
use crate::gateway::clock::unix_now;
use crate::gateway::forward::{self, Identity};
use crate::gateway::metrics::{DecisionLabel, NO_API};
use crate::gateway::refused::{self, Refused, Throttle};
use crate::gateway::response::{refusal, GatewayBody, Refusal};
use crate::gateway::runtime::TokenRuntime;
use crate::gateway::snapshot::{Policy, Token};

pub use crate::gateway::shared::{ConnInfo, Shared};

/// What the phases learn about a request, filled in as they run. The exit reads it for
/// the metrics and the access-log line, whichever phase ended the request.
struct Ctx<'p> {
    policy: &'p Policy,
    settings: &'p Settings,
    conn: &'p ConnInfo,
    /// The client address (`X-Forwarded-For` read only from `trusted_proxies`): judged by
    /// `allowed_ips` and the throttle, sent upstream, and logged.
    client: ClientAddr,
    /// When the request arrived: the monotonic clock of durations and the throttle.
    start: Instant,
    /// Unix seconds, read once per request (expiry, usage, quotas).
    now: i64,
    /// The token the request is attributed to in metrics and the log: set once its
    /// secret is proven (an unknown SID or a wrong secret is counted under `unknown`).
    token: Option<&'p Token>,
    /// The API the request is counted under.
    api: &'p str,
    /// Seconds the upstream took to answer, once the request was sent.
    upstream_secs: Option<f64>,
    /// The upstream an exchange failed with (502/504), named in the access log.
    failed_upstream: Option<&'p crate::config::UpstreamSpec>,
    /// Counts the request body bytes sent upstream, when the access log is on.
    forwarded_bytes: Option<Arc<std::sync::atomic::AtomicU64>>,
}

/// A request that passed every check before forwarding.
struct Admitted<'p, 'r> {
    classified: Classified<'r>,
    allowed: Allowed<'p, TokenRuntime>,
    /// The limiter the request was counted on and its outcome, for the response fields.
    limiter: LimiterRef<'p>,
    rate: RateOutcome,
    quota_states: Vec<crate::gateway::quota::QuotaState>,
}

/// The rate limiter a request took from: the token's (the snapshot's, or loaded from its
/// runtime state when the snapshot has none) or its scope's own.
enum LimiterRef<'p> {
    Snapshot(&'p TokenLimiter),
    Token(Arc<TokenLimiter>),
    Scope(&'p crate::gateway::runtime::ScopeLimiter),
}

impl std::ops::Deref for LimiterRef<'_> {
    type Target = TokenLimiter;
    fn deref(&self) -> &TokenLimiter {
        match self {
            LimiterRef::Snapshot(l) => l,
            LimiterRef::Token(l) => l,
            LimiterRef::Scope(s) => &s.limiter,
        }
    }
}

/// What the requests of one client connection share. Behind one reference count per
/// connection, which only the connection's worker touches: cloning the process-wide
/// `Arc<Shared>` for each request had every worker write the same cache line.
pub struct Served {
    pub shared: Arc<Shared>,
    pub conn: ConnInfo,
}

/// Serves one request. Never fails: every problem becomes a response. This is the one
/// exit of the request path: whatever phase ended the request, its response, its metrics
/// and its access-log line are made here.
pub async fn handle(
    served: Arc<Served>,
    req: Request<Incoming>,
) -> Result<Response<Logged>, Infallible> {
    let shared = &*served.shared;
    let conn = &served.conn;
    let start = Instant::now();
    let stream = (req.version() == Version::HTTP_2)
        .then(|| conn.h2_idle.as_ref().map(|idle| idle.stream_opened()))
        .flatten();
    let policy = shared.worker_policy();
    let method = method_label(req.method());
    let client = client_addr::resolve(
        conn.remote.ip(),
        req.headers(),
        &policy.settings.trusted_proxies,
    );
    // The access-log record, only when the log is on (written when the body is done).
    let mut record = policy.settings.access_log.then(|| {
        Box::new(AccessRecord::begin(
            &req,
            client.log_text(conn.remote),
            start,
        ))
    });
    let forwarded_bytes = record.as_ref().map(|r| r.forwarded_request_bytes.clone());
    let mut ctx = Ctx {
        policy: &policy,
        settings: &policy.settings,
        conn,
        client,
        start,
        now: unix_now(),
        token: None,
        api: NO_API,
        upstream_secs: None,
        failed_upstream: None,
        forwarded_bytes,
    };

    // The phases in order: classify -> authenticate -> authorize -> limit -> forward. Run
    // here rather than in a function of their own: each async level stores its callee's
    // whole state and its arguments, and the state is copied into place when created.
    // The classified target borrows the URI; the request itself is rewritten to forward.
    let uri = req.uri().clone();
    let outcome: Result<(Response<GatewayBody>, SecretUsed), Exit<'_>> =
        match admit(shared, &mut ctx, &req, &uri).await {
            Err(refused) => Err((refused, Some(req))),
            Ok(admitted) => {
                note_allowed(shared, &ctx, &req, &admitted);
                // Here rather than in `forward`: an await there made every request's
                // exchange state larger and its moves dearer (callgrind).
                let mut req = req;
                match inspect_body(&ctx, &mut req, &admitted).await {
                    Err(refused) => Err((refused, None)),
                    Ok(inspection) => {
                        match forward(shared, &mut ctx, req, &admitted, inspection).await {
                            Ok(resp) => Ok((resp, admitted.allowed.secret)),
                            Err(refused) => Err((refused, None)),
                        }
                    }
                }
            }
        };
    let (resp, decision, reason) = match outcome {
        Ok((resp, secret)) => {
            let reason = match secret {
                SecretUsed::Previous => "previous_secret",
                SecretUsed::Current => "in_scope",
            };
            (resp, DecisionLabel::Allowed, reason)
        }
        Err((mut refused, req)) => {
            match refused {
                Refused::Throttled(kind) => shared
                    .metrics
                    .throttled
                    .with_label_values(&[kind.label()])
                    .inc(),
                Refused::Denied(Denial::Credentials {
                    reason: decision::CredentialFailure::BadChecksum,
                    ..
                }) => shared.metrics.secret_checksum_failures.inc(),
                _ => {}
            }
            let kind = refused.kind(ctx.settings);
            let close = refused.closes_connection();
            let mut resp = match req {
                // Boxed: draining a refused body is the rare path; its state stays out of
                // every request's future.
                Some(req) if !close => Box::pin(refuse(req, kind, ctx.settings)).await,
                _ => refusal(kind, close),
            };
            if let Some(headers) = refused.take_headers(ctx.settings) {
                resp.headers_mut().extend(headers);
            }
            (resp, refused.decision(), refused.reason())
        }
    };
    let status = resp.status();

    shared.metrics.count_request(
        ctx.token.map(|t| &t.runtime.series),
        ctx.api,
        method,
        decision,
    );
    if let Some(r) = record.as_mut() {
        let unknown = crate::gateway::metrics::UNKNOWN;
        r.token = ctx
            .token
            .map_or(unknown, |t| t.spec.sid.as_str())
            .to_owned();
        r.account = ctx
            .token
            .map_or(unknown, |t| t.spec.account.as_str())
            .to_owned();
        r.api = ctx.api.to_owned();
        r.status = status.as_u16();
        r.decision = decision.as_str();
        r.reason = reason;
        r.forwarded = ctx.upstream_secs.is_some();
        r.upstream_us = ctx.upstream_secs.map(|s| (s * 1e6) as u64);
        r.upstream = ctx.failed_upstream.map(|u| u.authority.to_string());
    }
    Ok(resp.map(|body| Logged::new(body, record).holding(stream)))
}

/// A refusal and the request, when it was not sent on (its body may need draining).
type Exit<'p> = (Refused<'p>, Option<Request<Incoming>>);

/// Every check before forwarding, each phase a function of its own.
async fn admit<'p, 'r, B>(
    shared: &Shared,
    ctx: &mut Ctx<'p>,
    req: &Request<B>,
    uri: &'r http::Uri,
) -> Result<Admitted<'p, 'r>, Refused<'p>> {
    let classified = classify(ctx, req, uri)?;
    let (token, secret) = authenticate(shared, ctx, req)?;
    let allowed = authorize(shared, ctx, token, secret, &classified, req)?;
    let (limiter, rate, quota_states) = limit(shared, ctx, &allowed).await?;
    Ok(Admitted {
        classified,
        allowed,
        limiter,
        rate,
        quota_states,
    })
}

/// Phase 1: framing, `Host`, target form and length, the canonical target and the method
/// overrides ([`classify::classify`], shared with `explain`). The framing flag is taken
/// for every HTTP/1 request, first, so the queue stays in step with the requests.
fn classify<'r, B>(
    ctx: &Ctx<'_>,
    req: &Request<B>,
    uri: &'r http::Uri,
) -> Result<Classified<'r>, Refused<'static>> {
    if req.version() < Version::HTTP_2
        && ctx
            .conn
            .framing
            .as_ref()
            .is_some_and(|f| f.next_is_ambiguous())
    {
        return Err(Refused::AmbiguousFraming);
    }
    classify::classify(
        req.method(),
        uri,
        req.version(),
        req.headers(),
        &ctx.settings.limits,
        ctx.settings.target_options,
    )
    .map_err(Refused::Unclassified)
}

/// Phase 2: the credentials, behind the failed-authentication throttle (a throttled
/// address or SID gets 429 before its secret is even checked), then the secret and the
/// token's state ([`decision::authenticate`]). Unproven secrets feed the throttle.
fn authenticate<'p, B>(
    shared: &Shared,
    ctx: &mut Ctx<'p>,
    req: &Request<B>,
) -> Result<(&'p Token, SecretUsed), Refused<'p>> {
    let creds = auth::parse_basic(req.headers()).map_err(Refused::Unauthenticated)?;
    // The throttle judges the resolved client address.
    let client_ip = ctx.client.ip;
    if shared.addresses.is_blocked(client_ip, ctx.start) {
        return Err(Refused::Throttled(Throttle::Address));
    }
    // One lookup of the SID, for the throttle and the check of the secret.
    let found = ctx.policy.tokens.get(creds.sid()).map(|t| &**t);
    if found.is_some_and(|t| t.runtime.failures.is_blocked(ctx.start)) {
        return Err(Refused::Throttled(Throttle::Sid));
    }
    let result = decision::authenticate_found(ctx.policy, found, &creds, ctx.now).and_then(
        |(token, secret)| {
            decision::check_address(token, ctx.client.for_allowlist()).map(|()| (token, secret))
        },
    );
    drop(creds);
    match result {
        Ok((token, secret)) => {
            ctx.token = Some(token);
            Ok((token, secret))
        }
        Err(Denial::Address { token }) => {
            // A right secret from outside `allowed_ips` counts like a wrong one, so that
            // not even the throttle tells the two apart.
            tracing::warn!(
                target: "scopegate::auth",
                token = token.spec.sid.as_str(),
                client = %ctx.client.ip,
                established = ctx.client.established,
                "request from a client address outside the token's allowed_ips"
            );
            let bf = &ctx.settings.bruteforce;
            shared.addresses.record_failure(client_ip, ctx.start, bf);
            if token.runtime.failures.record_failure(ctx.start, bf) {
                tracing::warn!(
                    target: "scopegate::auth",
                    token = token.spec.sid.as_str(),
                    "too many failed secrets; token throttled for the cooling-off period"
                );
            }
            ctx.token = Some(token);
            Err(Refused::Denied(Denial::Address { token }))
        }
        Err(denial) => {
            if let Denial::Credentials { token, reason } = denial {
                if refused::unproven(reason) {
                    let bf = &ctx.settings.bruteforce;
                    shared.addresses.record_failure(client_ip, ctx.start, bf);
                    if let Some(t) = token {
                        if t.runtime.failures.record_failure(ctx.start, bf) {
                            tracing::warn!(
                                target: "scopegate::auth",
                                token = t.spec.sid.as_str(),
                                "too many failed secrets; token throttled for the cooling-off period"
                            );
                        }
                    }
                } else {
                    ctx.token = token;
                }
            }
            Err(Refused::Denied(denial))
        }
    }
}

/// Phase 3: the method(s) and canonical path against the token's scopes
/// ([`decision::authorize`]); picks the API and the upstream.
fn authorize<'p, B>(
    shared: &Shared,
    ctx: &mut Ctx<'p>,
    token: &'p Token,
    secret: SecretUsed,
    classified: &Classified<'_>,
    req: &Request<B>,
) -> Result<Allowed<'p, TokenRuntime>, Refused<'p>> {
    let ask = Ask {
        method: method_index(req.method().as_str()),
        overrides: &classified.overrides,
        path: classified.path(),
    };
    match decision::authorize(ctx.policy, token, secret, &ask) {
        Ok(allowed) => {
            ctx.api = allowed.api.map_or(NO_API, |a| ctx.policy.api_name(a));
            token.runtime.failures.record_success(ctx.start);
            token.runtime.mark_used(&shared.metrics, ctx.now);
            Ok(allowed)
        }
        Err(denial) => {
            if let Denial::Scope { reason, .. } = denial {
                ctx.api = match reason {
                    decision::ScopeFailure::Method { api }
                    | decision::ScopeFailure::Override { api: Some(api) } => {
                        ctx.policy.api_name(api)
                    }
                    _ => NO_API,
                };
            }
            Err(Refused::Denied(denial))
        }
    }
}

/// Phase 4: the rate limit, then quotas. Only authorized requests take from them; a
/// scope with a `rate_limit` of its own is limited by it instead of the token's.
async fn limit<'p>(
    shared: &Shared,
    ctx: &Ctx<'p>,
    allowed: &Allowed<'p, TokenRuntime>,
) -> Result<
    (
        LimiterRef<'p>,
        RateOutcome,
        Vec<crate::gateway::quota::QuotaState>,
    ),
    Refused<'p>,
> {
    let token = allowed.token;
    let scope_limiter = allowed.api.and_then(|a| token.scope_limiter(a));
    let (limiter, bucket) = match scope_limiter {
        Some(s) => (LimiterRef::Scope(s), s.bucket.as_str()),
        None => (
            match &token.limiter {
                Some(limiter) => LimiterRef::Snapshot(limiter),
                None => LimiterRef::Token(token.runtime.limiter.load_full()),
            },
            token.spec.sid.as_str(),
        ),
    };
    let rate = match &shared.rate_limits {
        None => limiter.check(),
        // Boxed: the shared backend's exchange is large and most deployments have none;
        // unboxed, every request's future would carry its state.
        Some(backend) => Box::pin(backend.check(bucket, &limiter)).await,
    };
    if scope_limiter.is_none() {
        token
            .runtime
            .record_rate(&shared.metrics, rate, limiter.limit.burst);
    }
    if let RateOutcome::Limited { .. } = rate {
        let mut headers = http::HeaderMap::new();
        ratelimit::set_headers(&mut headers, &limiter, rate);
        return Err(Refused::RateLimited {
            scope: scope_limiter.is_some(),
            headers,
        });
    }
    // Boxed, and only when a quota applies: the Redis exchange's state is large and most
    // requests have no quota.
    let quota = if crate::gateway::quota_gate::applies(token, allowed.api) {
        Box::pin(crate::gateway::quota_gate::check(
            shared,
            token,
            allowed.api,
            ctx.api,
            ctx.now,
        ))
        .await
    } else {
        Ok(Vec::new())
    };
    match quota {
        Ok(states) => Ok((limiter, rate, states)),
        Err(over) => {
            let mut headers = http::HeaderMap::new();
            crate::gateway::quota::set_refusal_headers(&mut headers, over.state.as_ref());
            Err(Refused::OverQuota {
                reason: over.reason,
                headers,
            })
        }
    }
}

/// Bookkeeping for an admitted request: the shadow-scope comparison, the grace-period
/// note, and usage for the audit (the wire method and every override it carried: a POST
/// overriding to DELETE uses DELETE).
fn note_allowed<B>(shared: &Shared, ctx: &Ctx<'_>, req: &Request<B>, admitted: &Admitted<'_, '_>) {
    let token = admitted.allowed.token;
    let api_name = ctx.api;
    let path = admitted.classified.path();
    let ask = Ask {
        method: method_index(req.method().as_str()),
        overrides: &admitted.classified.overrides,
        path,
    };
    if decision::shadow_denies(ctx.policy, token, &ask) == Some(true) {
        shared
            .metrics
            .count_shadow_denied(&token.spec.sid, api_name, method_label(req.method()));
        tracing::info!(
            target: "scopegate::shadow",
            token = token.spec.sid.as_str(),
            api = api_name,
            method = req.method().as_str(),
            path,
            "request allowed by scopes would be denied by shadow_scopes"
        );
    }
    if admitted.allowed.secret == SecretUsed::Previous {
        tracing::info!(
            target: "scopegate::auth",
            token = token.spec.sid.as_str(),
            "request authenticated with the previous secret (grace period)"
        );
    }
    let record = |method: &'static str| {
        if token.runtime.usage.record(api_name, method, ctx.now) {
            shared
                .metrics
                .mark_scope_used(&token.runtime.series, api_name, method, ctx.now);
        }
    };
    record(method_label(req.method()));
    for o in admitted.classified.overrides.iter().flatten() {
        record(crate::domain::model::KNOWN_METHODS[usize::from(*o)]);
    }
}

/// Phase 5: rewrite the request for its upstream, send it, and hand back the response
/// with the rate-limit and quota fields.
async fn forward<'p>(
    shared: &Shared,
    ctx: &mut Ctx<'p>,
    mut req: Request<Incoming>,
    admitted: &Admitted<'p, '_>,
    inspection: Option<Box<body_inspection::Inspection>>,
) -> Result<Response<GatewayBody>, Refused<'p>> {
    let settings = ctx.settings;
    let token = admitted.allowed.token;
    let api_name = ctx.api;
    let upstream = &settings.upstreams[admitted.allowed.upstream];
    let host = admitted.classified.host.clone();
    let forwarded = settings
        .set_forwarded
        .then(|| forward::forwarded_value(ctx.client.ip, ctx.conn.tls, host.as_ref()))
        .flatten();
    let upgrade = forward::upgrade_request(&req);
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    // HTTP/1.1 requests to a plain-http upstream go over the client connection's own
    // upstream connection; HTTP/2 streams (concurrent), TLS upstreams and upgrades (which
    // consume their connection) use the pool.
    let route = if req.version() < Version::HTTP_2
        && upstream.scheme == http::uri::Scheme::HTTP
        && client_upgrade.is_none()
    {
        forward::Route::Owned
    } else {
        forward::Route::Pooled
    };
    let (path, query) = (admitted.classified.path(), admitted.classified.query());
    // The identity is only needed to rewrite the request: in a block of its own, so it is
    // not kept in the future's state across the exchange.
    let prepared = {
        let identity = Identity {
            sid: token.sid_header.as_ref(),
            account: token.account_header.as_ref(),
            client_addr: ctx
                .client
                .forwarded_for
                .as_ref()
                .unwrap_or(&ctx.conn.forwarded_for),
            tls: ctx.conn.tls,
            host,
            keep_authorization: settings.forward_authorization,
            upgrade,
            strip: &settings.strip_request_headers,
            forwarded,
            real_ip: settings
                .set_x_real_ip
                .then(|| http::HeaderValue::from_str(&ctx.client.ip.to_string()).ok())
                .flatten(),
        };
        forward::prepare(&mut req, upstream, route, path, query, &identity)
    };
    let Ok(fields) = prepared else {
        // The canonical path is valid by construction; treat a failure as a bad target.
        return Err(Refused::Unforwardable);
    };
    if declared_over_limit(&req, settings) {
        return Err(Refused::BodyTooLarge);
    }
    let counter = ctx.forwarded_bytes.take();
    let req = req.map(|b| {
        RequestBody::new(b, settings.limits.max_body_bytes)
            .counting(counter)
            .inspected(inspection)
    });
    let sent = Instant::now();
    let deadline = tokio::time::Instant::from_std(sent) + upstream.response_timeout;
    // Each route's future is boxed, so this future holds one pointer where the exchange's
    // state (kilobytes) would be. `None`: no response head in time.
    let result: Option<Result<Response<UpstreamBody>, ExchangeFailure>> = match route {
        forward::Route::Owned => {
            let conn = ctx.conn;
            Box::pin(conn.upstream.send_by(
                deadline,
                &upstream.authority,
                shared.connect_timeout,
                req,
                fields,
            ))
            .await
            .map(|r| {
                r.map(|resp| resp.map(UpstreamBody::Owned))
                    .map_err(ExchangeFailure::from)
            })
        }
        forward::Route::Pooled => {
            let Some(client) = shared.client_for(upstream) else {
                tracing::error!(
                    target: "scopegate::upstream",
                    upstream = upstream.name.as_str(),
                    "no TLS client for this upstream (its CA or client certificate could not be loaded)"
                );
                ctx.failed_upstream = Some(upstream);
                return Err(Refused::UpstreamTlsUnavailable);
            };
            let response = client.request(req);
            drop(client);
            Box::pin(tokio::time::timeout_at(deadline, response))
                .await
                .ok()
                .map(|r| {
                    r.map(|resp| resp.map(UpstreamBody::Pooled))
                        .map_err(ExchangeFailure::from)
                })
        }
    };
    // One clock read for both durations.
    let answered = Instant::now();
    ctx.upstream_secs = Some((answered - sent).as_secs_f64());
    shared.metrics.observe_token_duration(
        &token.runtime.series,
        api_name,
        (answered - ctx.start).as_secs_f64(),
    );
    match result {
        Some(Ok(mut resp)) => {
            forward::clean_response(&mut resp);
            ratelimit::set_headers(resp.headers_mut(), &admitted.limiter, admitted.rate);
            crate::gateway::quota::append_headers(resp.headers_mut(), &admitted.quota_states);
            if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                // Only the WebSocket switch the client asked for is spliced; any other 101
                // (an upstream answering `h2c` or an unasked upgrade) would hand the client a
                // raw channel to the upstream that no decision covers.
                match client_upgrade {
                    Some(client_side) if forward::is_websocket_switch(&resp) => {
                        // Before hyper writes the 101: the client's next bytes are
                        // WebSocket frames, which the framing watch must not read as heads.
                        if let Some(framing) = &ctx.conn.framing {
                            framing.protocol_switched();
                        }
                        splice_upgrade(client_side, hyper::upgrade::on(&mut resp));
                    }
                    _ => {
                        tracing::warn!(
                            target: "scopegate::upstream",
                            upstream = upstream.name.as_str(),
                            "upstream switched protocols without an allowed upgrade; refused"
                        );
                        return Err(Refused::UnrequestedUpgrade);
                    }
                }
            }
            shared
                .metrics
                .count_upstream(&token.runtime.series, api_name, resp.status());
            let deadline = settings
                .timeouts
                .request
                .map(|total| total.saturating_sub(answered - ctx.start));
            Ok(resp.map(|b| GatewayBody::upstream(b, upstream.response_timeout, deadline)))
        }
        Some(Err(e)) if BodyError::is_too_large(&*e) => Err(Refused::BodyTooLarge),
        Some(Err(e)) if BodyError::is_override_not_granted(&*e) => Err(Refused::OverrideInBody {
            denial: override_denial(admitted),
            whole: false,
        }),
        Some(Err(e)) if BodyError::is_client_body_failure(&*e) => {
            tracing::debug!(
                target: "scopegate::upstream",
                error = %crate::gateway::upstream_error::describe(&*e),
                "the client's request body failed on its way upstream; answered 400"
            );
            Err(Refused::BadRequestBody)
        }
        Some(Err(e)) => {
            let cause = crate::gateway::upstream_error::describe(&*e);
            tracing::warn!(
                target: "scopegate::upstream",
                upstream = upstream.name.as_str(),
                address = %upstream.authority,
                cause = cause.as_str(),
                "upstream {} at {} failed: {cause}; answered 502",
                upstream.name,
                upstream.authority
            );
            ctx.failed_upstream = Some(upstream);
            Err(Refused::UpstreamFailed)
        }
        None => {
            tracing::warn!(
                target: "scopegate::upstream",
                upstream = upstream.name.as_str(),
                address = %upstream.authority,
                timeout_ms = upstream.response_timeout.as_millis() as u64,
                "upstream {} at {} sent no response headers within {}; answered 504",
                upstream.name,
                upstream.authority,
                crate::domain::duration::format(upstream.response_timeout)
            );
            ctx.failed_upstream = Some(upstream);
            Err(Refused::UpstreamTimeout)
        }
    }
}

/// Between limit and forward: a body some framework reads parameters from (a form,
/// multipart, JSON) may carry `_method`, an override to authorize like one in the query
/// ([`crate::gateway::body_inspection`]). Legacy tokens are not held to scopes; requests
/// without a body, or with one no framework reads parameters from, pass untouched.
async fn inspect_body<'p>(
    ctx: &Ctx<'p>,
    req: &mut Request<Incoming>,
    admitted: &Admitted<'p, '_>,
) -> Result<Option<Box<body_inspection::Inspection>>, Refused<'p>> {
    let token = admitted.allowed.token;
    if token.is_legacy() || http_body::Body::is_end_stream(req.body()) {
        return Ok(None);
    }
    // A body declared over `limits.max_body_bytes` is refused by `forward` unread.
    if declared_over_limit(req, ctx.settings) {
        return Ok(None);
    }
    let deadline = ctx.settings.upstreams[admitted.allowed.upstream].response_timeout;
    let Some(scan) = BodyOverrideScan::for_headers(req.headers()) else {
        return Ok(None);
    };
    let grants = || decision::grants_on_path(ctx.policy, token, admitted.classified.path());
    // Boxed: reading ahead is the rare path; its state stays out of every request's future.
    let read = Box::pin(body_inspection::read_start(
        req.body_mut(),
        scan,
        grants,
        ctx.settings.limits.max_body_bytes,
        deadline,
    ))
    .await;
    read.map(Some).map_err(|refusal| match refusal {
        body_inspection::Refusal::Override { whole } => Refused::OverrideInBody {
            denial: override_denial(admitted),
            whole,
        },
        body_inspection::Refusal::TooLarge => Refused::BodyTooLarge,
        body_inspection::Refusal::Stalled => Refused::BodyStalled,
        body_inspection::Refusal::Unreadable => Refused::BadRequestBody,
    })
}

/// Whether the request declares a body longer than `limits.max_body_bytes`.
fn declared_over_limit<B>(req: &Request<B>, settings: &crate::config::Settings) -> bool {
    settings.limits.max_body_bytes.is_some_and(|max| {
        req.headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > max)
    })
}

/// The refusal of an override found in the body, counted under the request's API.
fn override_denial<'p>(admitted: &Admitted<'p, '_>) -> Denial<'p, TokenRuntime> {
    Denial::Scope {
        token: admitted.allowed.token,
        reason: decision::ScopeFailure::Override {
            api: admitted.allowed.api,
        },
    }
}

/// A failed upstream exchange, whichever route it took (read through its source chain).
type ExchangeFailure = Box<dyn std::error::Error + Send + Sync>;

/// Builds a refusal for a request whose body may be unread. On HTTP/1.1, hyper closes a
/// connection whose request body was not consumed, without telling the client; a small
/// declared body is drained (bounded in size and time) so keep-alive survives, anything
/// else gets an explicit `Connection: close`.
async fn refuse(
    req: Request<Incoming>,
    kind: Refusal,
    settings: &crate::config::Settings,
) -> Response<GatewayBody> {
    use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    if req.version() >= Version::HTTP_2 {
        return refusal(kind, false);
    }
    let headers = req.headers();
    let declared: Option<u64> = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let chunked = headers.contains_key(TRANSFER_ENCODING);
    let has_body = chunked || declared.is_some_and(|n| n > 0);
    if !has_body {
        return refusal(kind, false);
    }
    // hyper sends `100 Continue` as soon as the body is first read: a refused request's body
    // is never read then, and the connection closes, since the client may or may not send
    // the body after a final status (RFC 9110 §10.1.1).
    if expects_continue(headers) {
        return refusal(kind, true);
    }
    let limit = settings.limits.max_refused_body_drain_bytes;
    if declared.is_some_and(|n| n > limit) {
        return refusal(kind, true);
    }
    let body = Limited::new(req.into_body(), limit as usize);
    let drained = tokio::time::timeout(settings.timeouts.refused_body_drain, body.collect()).await;
    let clean = matches!(drained, Ok(Ok(_)));
    refusal(kind, !clean)
}

/// Whether the request carries `Expect: 100-continue` (the only expectation there is).
fn expects_continue(headers: &http::HeaderMap) -> bool {
    headers.get_all(http::header::EXPECT).iter().any(|v| {
        v.as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"100-continue")
    })
}

/// After a `101 Switching Protocols`, copies bytes both ways between the client and the
/// upstream. Nothing the client sent after its upgrade request reaches the upstream before
/// the upstream has agreed to the upgrade: hyper only hands out the client's connection
/// once the 101 response is on its way.
fn splice_upgrade(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut upstream = hyper_util::rt::TokioIo::new(upstream);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %e, "upgraded connection ended with an error");
        }
    });
}

#[cfg(test)]
mod tests;
