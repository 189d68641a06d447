//! The per-request service. It loads the current policy snapshot once, then runs the
//! phases in a fixed order: check the request, canonicalize the target, read the
//! credentials, decide, forward. Every refusal is built by `response::refusal`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::access_log::{AccessRecord, Logged};
use crate::auth::{self, AuthError};
use crate::body::{BodyError, RequestBody};
use crate::bruteforce::AddressThrottle;
use crate::client_addr;
use crate::decision::{self, Ask, Denial, SecretUsed};
use crate::forward::{self, Identity, UpstreamClient};
use crate::metrics::{DecisionLabel, Metrics, NO_API};
use crate::model::{method_index, method_label};
use crate::policy::Policy;
use crate::ratelimit::{self, RateLimitBackend, RateOutcome};
use crate::request::{self, BadRequest};
use crate::response::{refusal, GatewayBody, Refusal};
use crate::runtime::RuntimeRegistry;
use crate::scope::target::canonicalize_with;

/// State shared by every connection.
pub struct Shared {
    pub policy: ArcSwap<Policy>,
    pub metrics: Arc<Metrics>,
    pub registry: RuntimeRegistry,
    pub client: UpstreamClient,
    /// A shared rate-limit backend (Redis); `None` uses each token's in-process bucket
    /// directly, without the boxed future a backend call costs.
    pub rate_limits: Option<Box<dyn RateLimitBackend>>,
    /// Quota counting (on the rate-limit backend's Redis); `None` without Redis, where
    /// validation refuses quotas.
    pub quotas: Option<crate::quota::QuotaBackend>,
    /// The fleet usage record's writer (`usage.backend: redis`).
    pub usage_writer: Option<crate::usage_redis::UsageWriter>,
    pub addresses: AddressThrottle,
    /// Clients for upstreams with their own TLS settings (private CA, client certificate).
    pub tls_clients: dashmap::DashMap<crate::tls::UpstreamTls, UpstreamClient>,
    /// The listener's certificate, when TLS is on; replaced on reload.
    pub cert_store: std::sync::OnceLock<Arc<crate::tls::CertStore>>,
    /// Process-unique id, keying the per-thread upstream clients.
    pub id: u64,
    pub connect_timeout: std::time::Duration,
}

impl Shared {
    /// The client for an upstream: the shared one, or the one built for its TLS settings.
    pub fn client_for(
        &self,
        upstream: &crate::config::UpstreamSpec,
    ) -> Option<std::borrow::Cow<'_, UpstreamClient>> {
        if upstream.tls.is_default() {
            return Some(self.thread_client());
        }
        self.tls_clients
            .get(&upstream.tls)
            .map(|c| std::borrow::Cow::Owned(c.clone()))
    }

    /// The default client of the calling thread. Each worker runtime keeps its own pool,
    /// so an upstream connection is driven by the thread whose requests use it; a pool
    /// shared between workers hands connections across threads on every request.
    fn thread_client(&self) -> std::borrow::Cow<'_, UpstreamClient> {
        thread_local! {
            static CLIENTS: std::cell::RefCell<Vec<(u64, UpstreamClient)>> =
                const { std::cell::RefCell::new(Vec::new()) };
        }
        let found = CLIENTS.with(|c| {
            let mut clients = c.borrow_mut();
            if let Some((_, client)) = clients.iter().find(|(id, _)| *id == self.id) {
                return Some(client.clone());
            }
            let client =
                forward::client(self.connect_timeout, &crate::tls::UpstreamTls::default()).ok()?;
            clients.push((self.id, client.clone()));
            Some(client)
        });
        match found {
            Some(client) => std::borrow::Cow::Owned(client),
            None => std::borrow::Cow::Borrowed(&self.client),
        }
    }

    /// Builds the clients for every custom upstream TLS setting not seen before. Reads
    /// files: call it off the async workers or at start-up.
    pub fn prepare_clients(
        &self,
        settings: &crate::config::Settings,
    ) -> Result<(), crate::tls::TlsError> {
        for up in &settings.upstreams {
            if up.tls.is_default() || self.tls_clients.contains_key(&up.tls) {
                continue;
            }
            let client = forward::client(settings.timeouts.upstream_connect, &up.tls)?;
            self.tls_clients.insert(up.tls.clone(), client);
        }
        Ok(())
    }
}

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The peer: the TCP peer, or the source a PROXY protocol header carried.
    pub remote: SocketAddr,
    pub tls: bool,
    /// `remote`'s IP rendered for `X-Forwarded-For`, once per connection.
    pub forwarded_for: http::HeaderValue,
    /// One flag per HTTP/1.1 request head: did it carry both `Content-Length` and
    /// `Transfer-Encoding` (which hyper resolves before the service sees it)?
    pub framing: Option<Arc<crate::framing::FramingFlags>>,
}

impl ConnInfo {
    /// `remote` is the connection's peer: the TCP peer, or the source address of the
    /// connection's PROXY protocol header.
    pub fn new(remote: SocketAddr, tls: bool) -> ConnInfo {
        let ip = crate::netaddr::canonical(remote.ip());
        let forwarded_for = http::HeaderValue::from_str(&ip.to_string())
            .unwrap_or(http::HeaderValue::from_static("unknown"));
        ConnInfo {
            remote,
            tls,
            forwarded_for,
            framing: None,
        }
    }
}

/// The outcome of a request, for the access log and metrics.
struct Outcome<'p> {
    token: Option<&'p crate::policy::Token>,
    api: &'p str,
    decision: DecisionLabel,
    reason: &'static str,
    /// The upstream an exchange failed with (502/504), named in the access log.
    failed_upstream: Option<&'p crate::config::UpstreamSpec>,
}

/// Serves one request. Never fails: every problem becomes a response.
pub async fn handle(
    shared: Arc<Shared>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<Logged>, Infallible> {
    let start = Instant::now();
    let policy = shared.policy.load_full();
    let method = method_label(req.method());
    // The client address (`X-Forwarded-For` read only from `trusted_proxies`): judged by
    // `allowed_ips` and the throttle, sent upstream, and logged.
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
    let counter = record.as_ref().map(|r| r.forwarded_request_bytes.clone());

    let (resp, outcome, upstream_secs) =
        run(&shared, &policy, conn, &client, req, start, counter).await;
    let status = resp.status();

    shared.metrics.count_request(
        outcome.token.map(|t| &t.runtime.series),
        outcome.api,
        method,
        outcome.decision,
    );
    if let Some(r) = record.as_mut() {
        let unknown = crate::metrics::UNKNOWN;
        r.token = outcome
            .token
            .map_or(unknown, |t| t.spec.sid.as_str())
            .to_owned();
        r.account = outcome
            .token
            .map_or(unknown, |t| t.spec.account.as_str())
            .to_owned();
        r.api = outcome.api.to_owned();
        r.status = status.as_u16();
        r.decision = outcome.decision.as_str();
        r.reason = outcome.reason;
        r.forwarded = upstream_secs.is_some();
        r.upstream_us = upstream_secs.map(|s| (s * 1e6) as u64);
        r.upstream = outcome.failed_upstream.map(|u| u.authority.to_string());
    }
    Ok(resp.map(|body| Logged::new(body, record)))
}

async fn run<'p>(
    shared: &Shared,
    policy: &'p Policy,
    conn: ConnInfo,
    client: &client_addr::ClientAddr,
    mut req: Request<Incoming>,
    start: Instant,
    forwarded_bytes: Option<Arc<std::sync::atomic::AtomicU64>>,
) -> (Response<GatewayBody>, Outcome<'p>, Option<f64>) {
    let settings = &policy.settings;
    let bad = |reason: &'static str| Outcome {
        token: None,
        api: NO_API,
        decision: DecisionLabel::BadRequest,
        reason,
        failed_upstream: None,
    };

    // Phase 1: framing, Host, target form. The framing flag is taken for every HTTP/1
    // request, first, so the queue stays in step with the requests.
    if req.version() < Version::HTTP_2
        && conn.framing.as_ref().is_some_and(|f| f.next_is_ambiguous())
    {
        return (
            refusal(Refusal::BadRequest, true),
            bad("ambiguous_framing_or_fragment"),
            None,
        );
    }
    let host = match request::check(req.method(), req.uri(), req.version(), req.headers()) {
        Ok(h) => h,
        Err(why) => {
            let close = why.poisons_connection();
            let resp = if close {
                refusal(Refusal::BadRequest, true)
            } else {
                refuse(req, Refusal::BadRequest, settings).await
            };
            return (resp, bad(why.as_str()), None);
        }
    };
    let uri = req.uri().clone();
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    if path_and_query.len() > settings.limits.max_target_length {
        let resp = refuse(req, Refusal::TargetTooLong, settings).await;
        return (resp, bad("target_too_long"), None);
    }

    // Phase 2: canonical target. `OPTIONS *` has no path to authorize: it is refused by
    // authorization below (it matches no API).
    let target = if path_and_query == "*" {
        None
    } else {
        match canonicalize_with(path_and_query, settings.target_options) {
            Ok(t) => Some(t),
            Err(_) => {
                let resp = refuse(req, Refusal::BadRequest, settings).await;
                return (resp, bad(BadRequest::BadTarget.as_str()), None);
            }
        }
    };
    let (path, query) = match &target {
        Some(t) => (t.path.as_ref(), t.query),
        None => ("*", None),
    };

    // Phase 3: credentials.
    let creds = match auth::parse_basic(req.headers()) {
        Ok(c) => c,
        Err(AuthError::Ambiguous) => {
            let resp = refuse(req, Refusal::BadRequest, settings).await;
            return (resp, bad(BadRequest::SeveralAuthorizations.as_str()), None);
        }
        Err(e) => {
            let resp = refuse(req, Refusal::Unauthenticated, settings).await;
            let reason = match e {
                AuthError::Missing => "no_credentials",
                AuthError::NotBasic => "not_basic",
                AuthError::TooLong => "credentials_too_long",
                _ => "malformed_credentials",
            };
            let outcome = Outcome {
                token: None,
                api: NO_API,
                decision: DecisionLabel::Unauthenticated,
                reason,
                failed_upstream: None,
            };
            return (resp, outcome, None);
        }
    };

    // Phase 4: decision, behind the failed-authentication throttle: a throttled address or
    // SID gets 429 before its secret is even checked. The address is the resolved client.
    let mono_now = start;
    let client_ip = client.ip;
    let throttled = if shared.addresses.is_blocked(client_ip, mono_now) {
        Some("address")
    } else if policy
        .tokens
        .get(creds.sid())
        .is_some_and(|t| t.runtime.failures.is_blocked(mono_now))
    {
        Some("sid")
    } else {
        None
    };
    if let Some(kind) = throttled {
        shared.metrics.throttled.with_label_values(&[kind]).inc();
        drop(creds);
        let mut resp = refuse(req, Refusal::RateLimited, settings).await;
        resp.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from(settings.bruteforce.cooloff.as_secs().max(1)),
        );
        let outcome = Outcome {
            token: None,
            api: NO_API,
            decision: DecisionLabel::RateLimited,
            reason: if kind == "sid" {
                "bruteforce_sid"
            } else {
                "bruteforce_address"
            },
            failed_upstream: None,
        };
        return (resp, outcome, None);
    }
    let mut overrides = Vec::new();
    request::method_overrides(req.headers(), query, &mut overrides);
    let ask = Ask {
        method: method_index(req.method().as_str()),
        overrides: &overrides,
        path,
    };
    let now = unix_now();
    let allowed = match decision::decide(policy, &creds, &ask, client.for_allowlist(), now) {
        Ok(a) => a,
        Err(denial) => {
            if let Denial::Credentials {
                reason: decision::CredentialFailure::BadChecksum,
                ..
            } = denial
            {
                shared.metrics.secret_checksum_failures.inc();
            }
            // A right secret from outside `allowed_ips` counts like a wrong one, so that
            // not even the throttle tells the two apart.
            let failed = match denial {
                Denial::Credentials {
                    token,
                    reason:
                        decision::CredentialFailure::WrongSecret
                        | decision::CredentialFailure::UnknownSid
                        | decision::CredentialFailure::Deleted
                        | decision::CredentialFailure::BadChecksum,
                } => Some(token),
                Denial::Address { token } => Some(Some(token)),
                _ => None,
            };
            if let Some(failed) = failed {
                let bf = &settings.bruteforce;
                shared.addresses.record_failure(client_ip, mono_now, bf);
                if let Some(t) = failed {
                    if t.runtime.failures.record_failure(mono_now, bf) {
                        tracing::warn!(
                            target: "scopegate::auth",
                            token = t.spec.sid.as_str(),
                            "too many failed secrets; token throttled for the cooling-off period"
                        );
                    }
                }
            }
            let kind = match denial {
                Denial::Credentials { .. } => {
                    Refusal::InvalidCredentials(settings.invalid_credentials_status)
                }
                Denial::Scope { .. } => Refusal::AccessDenied,
                // Answered like a wrong secret: from outside the allowlist, a leaked secret
                // cannot even be confirmed.
                Denial::Address { .. } => {
                    Refusal::InvalidCredentials(settings.invalid_credentials_status)
                }
            };
            let (token, api) = match denial {
                Denial::Credentials { token, .. } => (token, NO_API),
                Denial::Scope { token, reason } => {
                    let api = match reason {
                        decision::ScopeFailure::Method { api } => policy.api_name(api),
                        decision::ScopeFailure::Override { api: Some(api) } => policy.api_name(api),
                        _ => NO_API,
                    };
                    (Some(token), api)
                }
                Denial::Address { token } => {
                    tracing::warn!(
                        target: "scopegate::auth",
                        token = token.spec.sid.as_str(),
                        client = %client.ip,
                        established = client.established,
                        "request from a client address outside the token's allowed_ips"
                    );
                    (Some(token), NO_API)
                }
            };
            // Only a token whose secret was verified is attributed by SID in metrics: an
            // unknown SID or a wrong secret is counted under `unknown`.
            let token = token.filter(|_| {
                !matches!(
                    denial,
                    Denial::Credentials {
                        reason: decision::CredentialFailure::WrongSecret
                            | decision::CredentialFailure::UnknownSid
                            | decision::CredentialFailure::Deleted
                            | decision::CredentialFailure::BadChecksum,
                        ..
                    }
                )
            });
            let outcome = Outcome {
                token,
                api,
                decision: denial.label(),
                reason: denial.reason(),
                failed_upstream: None,
            };
            drop(creds);
            let resp = refuse(req, kind, settings).await;
            return (resp, outcome, None);
        }
    };
    drop(creds);
    let token = allowed.token;
    let api_name = allowed.api.map_or(NO_API, |a| policy.api_name(a));
    token.runtime.failures.record_success(mono_now);
    token.runtime.mark_used(&shared.metrics, now);
    // Phase 5: rate limit, then quotas. Only authorized requests take from them; a
    // scope with a `rate_limit` of its own is limited by it instead of the token's.
    let token_limiter = token.runtime.limiter.load_full();
    let scope_limiter = allowed.api.and_then(|a| token.scope_limiter(a));
    let (limiter, bucket) = match scope_limiter {
        Some(s) => (&s.limiter, s.bucket.as_str()),
        None => (&*token_limiter, token.spec.sid.as_str()),
    };
    let rate = match &shared.rate_limits {
        None => limiter.check(),
        Some(backend) => backend.check(bucket, limiter).await,
    };
    if scope_limiter.is_none() {
        token
            .runtime
            .record_rate(&shared.metrics, rate, limiter.limit.burst);
    }
    if let RateOutcome::Limited { .. } = rate {
        let mut resp = refuse(req, Refusal::RateLimited, settings).await;
        ratelimit::set_headers(resp.headers_mut(), limiter, rate);
        let outcome = Outcome {
            token: Some(token),
            api: api_name,
            decision: DecisionLabel::RateLimited,
            reason: if scope_limiter.is_some() {
                "scope_rate_limit"
            } else {
                "token_rate_limit"
            },
            failed_upstream: None,
        };
        return (resp, outcome, None);
    }
    let quota_states =
        match crate::quota_gate::check(shared, token, allowed.api, api_name, now).await {
            Ok(states) => states,
            Err(refused) => {
                let mut resp = refuse(req, Refusal::RateLimited, settings).await;
                crate::quota::set_refusal_headers(resp.headers_mut(), refused.state.as_ref());
                let outcome = Outcome {
                    token: Some(token),
                    api: api_name,
                    decision: DecisionLabel::RateLimited,
                    reason: refused.reason,
                    failed_upstream: None,
                };
                return (resp, outcome, None);
            }
        };
    if decision::shadow_denies(policy, token, &ask) == Some(true) {
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
    if allowed.secret == SecretUsed::Previous {
        tracing::info!(
            target: "scopegate::auth",
            token = token.spec.sid.as_str(),
            "request authenticated with the previous secret (grace period)"
        );
    }
    let mut outcome = Outcome {
        token: Some(token),
        api: api_name,
        decision: DecisionLabel::Allowed,
        reason: if allowed.secret == SecretUsed::Previous {
            "previous_secret"
        } else {
            "in_scope"
        },
        failed_upstream: None,
    };

    // Usage for the audit, counted once the request passed the rate limit: the wire
    // method and every override it carried (a POST overriding to DELETE uses DELETE).
    let record = |method: &'static str| {
        if token.runtime.usage.record(api_name, method, now) {
            shared
                .metrics
                .mark_scope_used(&token.runtime.series, api_name, method, now);
        }
    };
    record(method_label(req.method()));
    for o in ask.overrides.iter().flatten() {
        record(crate::model::KNOWN_METHODS[usize::from(*o)]);
    }

    // Phase 6: forward.
    let upstream = &settings.upstreams[allowed.upstream];
    let forwarded = settings
        .set_forwarded
        .then(|| forward::forwarded_value(client.ip, conn.tls, host.as_ref()))
        .flatten();
    let identity = Identity {
        sid: token.sid_header.as_ref(),
        account: token.account_header.as_ref(),
        client_addr: client.forwarded_for.as_ref().unwrap_or(&conn.forwarded_for),
        tls: conn.tls,
        host,
        keep_authorization: settings.forward_authorization,
        upgrade: forward::upgrade_request(&req),
        strip: &settings.strip_request_headers,
        forwarded,
        real_ip: settings
            .set_x_real_ip
            .then(|| http::HeaderValue::from_str(&client.ip.to_string()).ok())
            .flatten(),
    };
    let client_upgrade = identity
        .upgrade
        .is_some()
        .then(|| hyper::upgrade::on(&mut req));
    if forward::prepare(&mut req, upstream, path, query, &identity).is_err() {
        // The canonical path is valid by construction; treat a failure as a bad target.
        outcome.decision = DecisionLabel::BadRequest;
        outcome.reason = "unforwardable_target";
        return (refusal(Refusal::BadRequest, true), outcome, None);
    }
    let Some(client) = shared.client_for(upstream) else {
        tracing::error!(
            target: "scopegate::upstream",
            upstream = upstream.name.as_str(),
            "no TLS client for this upstream (its CA or client certificate could not be loaded)"
        );
        outcome.reason = "upstream_tls_unavailable";
        outcome.failed_upstream = Some(upstream);
        return (refusal(Refusal::BadGateway, false), outcome, None);
    };
    if let Some(max) = settings.limits.max_body_bytes {
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max) {
            outcome.reason = "body_too_large";
            return (refusal(Refusal::PayloadTooLarge, true), outcome, None);
        }
    }
    let req =
        req.map(|b| RequestBody::new(b, settings.limits.max_body_bytes).counting(forwarded_bytes));
    let sent = Instant::now();
    let result = tokio::time::timeout(upstream.response_timeout, client.request(req)).await;
    let upstream_secs = sent.elapsed().as_secs_f64();
    shared.metrics.observe_token_duration(
        &token.runtime.series,
        api_name,
        start.elapsed().as_secs_f64(),
    );
    match result {
        Ok(Ok(mut resp)) => {
            forward::clean_response(&mut resp);
            ratelimit::set_headers(resp.headers_mut(), limiter, rate);
            crate::quota::append_headers(resp.headers_mut(), &quota_states);
            if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                // Only the WebSocket switch the client asked for is spliced; any other 101
                // (an upstream answering `h2c` or an unasked upgrade) would hand the client a
                // raw channel to the upstream that no decision covers.
                match client_upgrade {
                    Some(client_side) if forward::is_websocket_switch(&resp) => {
                        splice_upgrade(client_side, hyper::upgrade::on(&mut resp));
                    }
                    _ => {
                        tracing::warn!(
                            target: "scopegate::upstream",
                            upstream = upstream.name.as_str(),
                            "upstream switched protocols without an allowed upgrade; refused"
                        );
                        outcome.reason = "unrequested_upgrade";
                        return (
                            refusal(Refusal::BadGateway, true),
                            outcome,
                            Some(upstream_secs),
                        );
                    }
                }
            }
            shared
                .metrics
                .count_upstream(&token.runtime.series, api_name, resp.status());
            let deadline = settings
                .timeouts
                .request
                .map(|total| total.saturating_sub(start.elapsed()));
            (
                resp.map(|b| GatewayBody::upstream(b, deadline)),
                outcome,
                Some(upstream_secs),
            )
        }
        Ok(Err(e)) if BodyError::is_too_large(&e) => {
            outcome.reason = "body_too_large";
            (
                refusal(Refusal::PayloadTooLarge, true),
                outcome,
                Some(upstream_secs),
            )
        }
        Ok(Err(e)) => {
            let cause = crate::upstream_error::describe(&e);
            tracing::warn!(
                target: "scopegate::upstream",
                upstream = upstream.name.as_str(),
                address = %upstream.authority,
                cause = cause.as_str(),
                "upstream {} at {} failed: {cause}; answered 502",
                upstream.name,
                upstream.authority
            );
            outcome.reason = "upstream_error";
            outcome.failed_upstream = Some(upstream);
            (
                refusal(Refusal::BadGateway, false),
                outcome,
                Some(upstream_secs),
            )
        }
        Err(_) => {
            tracing::warn!(
                target: "scopegate::upstream",
                upstream = upstream.name.as_str(),
                address = %upstream.authority,
                timeout_ms = upstream.response_timeout.as_millis() as u64,
                "upstream {} at {} sent no response headers within {}; answered 504",
                upstream.name,
                upstream.authority,
                crate::duration::format(upstream.response_timeout)
            );
            outcome.reason = "upstream_timeout";
            outcome.failed_upstream = Some(upstream);
            (
                refusal(Refusal::GatewayTimeout, false),
                outcome,
                Some(upstream_secs),
            )
        }
    }
}

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

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
