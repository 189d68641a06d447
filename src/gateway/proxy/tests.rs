//! The request phases in memory: each phase called on a request head built in the test
//! (no socket, no upstream), over the shared state built from the YAML fixture. Every
//! refusal is checked as the one exit turns it into the client's answer: status, the
//! `decision` label and the access log's reason.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::{HeaderMap, StatusCode};

use super::*;
use crate::config::test_fixture::{self as fx, Cred};
use crate::domain::request::BadRequest;

/// An address inside the pinned token's `allowed_ips`.
const INSIDE: &str = "192.0.2.7:40000";
/// Any other client.
const OUTSIDE: &str = "198.51.100.1:40000";

fn shared(extra: &str) -> Arc<Shared> {
    crate::build_shared(fx::config(extra))
}

fn basic(sid: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{sid}:{secret}")))
}

/// A request head as the phases see it (they never read the body).
fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut req = Request::builder()
        .method(method)
        .uri(target)
        .header(http::header::HOST, "api.example");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(()).expect("a valid test request")
}

/// `method target` with `cred`'s Basic credentials and `headers`.
fn as_cred(cred: &Cred, secret: &str, method: &str, target: &str) -> Request<()> {
    request(
        method,
        target,
        &[("authorization", &basic(cred.sid, secret))],
    )
}

/// A plain connection from `from`.
fn conn(from: &str) -> ConnInfo {
    ConnInfo::new(from.parse().expect("a test address"), false)
}

/// The context `handle` builds, for a request on `conn` arriving now.
fn ctx<'p>(policy: &'p Policy, conn: &'p ConnInfo) -> Ctx<'p> {
    let client = client_addr::resolve(
        conn.remote.ip(),
        &HeaderMap::new(),
        &policy.settings.trusted_proxies,
    );
    Ctx {
        policy,
        settings: &policy.settings,
        conn,
        client,
        start: Instant::now(),
        now: unix_now(),
        token: None,
        api: NO_API,
        upstream_secs: None,
        failed_upstream: None,
        forwarded_bytes: None,
    }
}

/// What the exit makes of a refusal: the status, the `decision` label, the reason.
type Outcome = (StatusCode, DecisionLabel, &'static str);

fn outcome(refused: &Refused<'_>, settings: &Settings) -> Outcome {
    (
        refused.kind(settings).status(),
        refused.decision(),
        refused.reason(),
    )
}

fn refused<T>(result: Result<T, Refused<'_>>) -> Refused<'_> {
    match result {
        Ok(_) => panic!("the request was let through"),
        Err(r) => r,
    }
}

/// Runs authenticate alone for `req` from `from`: the refusal's outcome, or the token and
/// secret used; and the token the request is attributed to.
fn authn(
    shared: &Shared,
    req: &Request<()>,
    from: &str,
) -> (Result<(String, SecretUsed), Outcome>, Option<String>) {
    let policy = shared.policy.load();
    let connection = conn(from);
    let mut ctx = ctx(&policy, &connection);
    let result = match authenticate(shared, &mut ctx, req) {
        Ok((token, secret)) => Ok((token.spec.sid.clone(), secret)),
        Err(r) => Err(outcome(&r, ctx.settings)),
    };
    (result, ctx.token.map(|t| t.spec.sid.clone()))
}

/// Runs classify, authenticate and authorize: the refusal's outcome or the API allowed,
/// and the API the request is counted under either way.
fn authz(shared: &Shared, req: &Request<()>) -> (Result<String, Outcome>, String) {
    let policy = shared.policy.load();
    let connection = conn(OUTSIDE);
    let mut ctx = ctx(&policy, &connection);
    let uri = req.uri().clone();
    let result = (|| {
        let classified = classify(&ctx, req, &uri)?;
        let (token, secret) = authenticate(shared, &mut ctx, req)?;
        authorize(shared, &mut ctx, token, secret, &classified, req)
    })();
    let result = match result {
        Ok(allowed) => Ok(allowed
            .api
            .map_or(NO_API, |a| policy.api_name(a))
            .to_owned()),
        Err(r) => Err(outcome(&r, ctx.settings)),
    };
    (result, ctx.api.to_owned())
}

const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;
const DENIED_CREDENTIALS: DecisionLabel = DecisionLabel::DeniedCredentials;

#[tokio::test]
async fn no_usable_credentials_are_401_and_two_are_a_bad_request() {
    let s = shared("");
    let unauthenticated = |reason| {
        Err((
            StatusCode::UNAUTHORIZED,
            DecisionLabel::Unauthenticated,
            reason,
        ))
    };
    let none = request("GET", fx::CAMPAIGNS, &[]);
    assert_eq!(
        authn(&s, &none, OUTSIDE),
        (unauthenticated("no_credentials"), None)
    );
    let bearer = request("GET", fx::CAMPAIGNS, &[("authorization", "Bearer abc")]);
    assert_eq!(
        authn(&s, &bearer, OUTSIDE),
        (unauthenticated("not_basic"), None)
    );
    let garbled = request("GET", fx::CAMPAIGNS, &[("authorization", "Basic !!")]);
    assert_eq!(
        authn(&s, &garbled, OUTSIDE),
        (unauthenticated("malformed_credentials"), None)
    );
    let reader = basic(fx::READER.sid, fx::READER.secret);
    let two = request(
        "GET",
        fx::CAMPAIGNS,
        &[("authorization", &reader), ("authorization", &reader)],
    );
    assert_eq!(
        authn(&s, &two, OUTSIDE),
        (
            Err((
                StatusCode::BAD_REQUEST,
                DecisionLabel::BadRequest,
                BadRequest::SeveralAuthorizations.as_str()
            )),
            None
        )
    );
}

#[tokio::test]
async fn the_right_secret_is_attributed_to_its_token() {
    let s = shared("");
    let req = as_cred(&fx::READER, fx::READER.secret, "GET", fx::CAMPAIGNS);
    let reader = fx::READER.sid.to_owned();
    assert_eq!(
        authn(&s, &req, OUTSIDE),
        (Ok((reader.clone(), SecretUsed::Current)), Some(reader))
    );
}

#[tokio::test]
async fn unproven_secrets_are_not_attributed_to_the_sid_they_name() {
    let s = shared("");
    let denied = |reason| Err((FORBIDDEN, DENIED_CREDENTIALS, reason));
    let wrong = as_cred(&fx::READER, "guess", "GET", fx::CAMPAIGNS);
    assert_eq!(authn(&s, &wrong, OUTSIDE), (denied("wrong_secret"), None));
    let unknown = request(
        "GET",
        fx::CAMPAIGNS,
        &[("authorization", &basic("SGnobody", "x"))],
    );
    assert_eq!(authn(&s, &unknown, OUTSIDE), (denied("unknown_sid"), None));
    let deleted = request(
        "GET",
        fx::CAMPAIGNS,
        &[("authorization", &basic(fx::DELETED_SID, "x"))],
    );
    assert_eq!(authn(&s, &deleted, OUTSIDE), (denied("deleted"), None));
}

#[tokio::test]
async fn disabled_and_expired_tokens_are_refused_under_their_own_name() {
    let s = shared("");
    let disabled = as_cred(&fx::DISABLED, fx::DISABLED.secret, "GET", fx::CAMPAIGNS);
    assert_eq!(
        authn(&s, &disabled, OUTSIDE),
        (
            Err((FORBIDDEN, DecisionLabel::DeniedDisabled, "disabled")),
            Some(fx::DISABLED.sid.to_owned())
        )
    );
    let expired = as_cred(&fx::EXPIRED, fx::EXPIRED.secret, "GET", fx::CAMPAIGNS);
    assert_eq!(
        authn(&s, &expired, OUTSIDE),
        (
            Err((FORBIDDEN, DENIED_CREDENTIALS, "expired")),
            Some(fx::EXPIRED.sid.to_owned())
        )
    );
}

#[tokio::test]
async fn invalid_credentials_answer_the_configured_status() {
    let s = shared("invalid_credentials_status: 401\n");
    let wrong = as_cred(&fx::READER, "guess", "GET", fx::CAMPAIGNS);
    assert_eq!(
        authn(&s, &wrong, OUTSIDE).0,
        Err((StatusCode::UNAUTHORIZED, DENIED_CREDENTIALS, "wrong_secret"))
    );
    let pinned = as_cred(&fx::PINNED, fx::PINNED.secret, "GET", fx::CAMPAIGNS);
    assert_eq!(
        authn(&s, &pinned, OUTSIDE).0,
        Err((
            StatusCode::UNAUTHORIZED,
            DecisionLabel::DeniedIp,
            "ip_not_allowed"
        ))
    );
}

#[tokio::test]
async fn the_previous_secret_is_accepted_inside_its_grace_period_only() {
    let s = shared("");
    let old = as_cred(&fx::GRACE, fx::GRACE_OLD, "GET", fx::CAMPAIGNS);
    let grace = fx::GRACE.sid.to_owned();
    assert_eq!(
        authn(&s, &old, OUTSIDE),
        (Ok((grace.clone(), SecretUsed::Previous)), Some(grace))
    );
    let lapsed = as_cred(&fx::LAPSED, fx::LAPSED_OLD, "GET", fx::CAMPAIGNS);
    assert_eq!(
        authn(&s, &lapsed, OUTSIDE),
        (Err((FORBIDDEN, DENIED_CREDENTIALS, "wrong_secret")), None)
    );
}

#[tokio::test]
async fn wrong_secrets_throttle_the_sid_even_for_the_right_secret() {
    let s = shared("");
    let wrong = as_cred(&fx::READER, "guess", "GET", fx::CAMPAIGNS);
    for _ in 0..fx::SID_FAILURES {
        assert_eq!(
            authn(&s, &wrong, OUTSIDE).0,
            Err((FORBIDDEN, DENIED_CREDENTIALS, "wrong_secret"))
        );
    }
    let right = as_cred(&fx::READER, fx::READER.secret, "GET", fx::CAMPAIGNS);
    let throttled = (
        Err((
            StatusCode::TOO_MANY_REQUESTS,
            DecisionLabel::RateLimited,
            "bruteforce_sid",
        )),
        None,
    );
    assert_eq!(authn(&s, &right, OUTSIDE), throttled);
    // From any address: the SID is what cools off.
    assert_eq!(authn(&s, &right, INSIDE), throttled);
    // Another token is not affected.
    let writer = as_cred(&fx::WRITER, fx::WRITER.secret, "GET", fx::CAMPAIGNS);
    assert!(authn(&s, &writer, OUTSIDE).0.is_ok());
    // The refusal tells the client when to come back: the cool-off.
    let mut r = Refused::Throttled(Throttle::Sid);
    let headers = r
        .take_headers(&s.policy.load().settings)
        .expect("a throttled refusal carries Retry-After");
    assert_eq!(headers[http::header::RETRY_AFTER], "3600");
}

#[tokio::test]
async fn failures_from_one_address_throttle_the_address() {
    let s = shared("");
    for i in 0..fx::ADDRESS_FAILURES {
        let unknown = request(
            "GET",
            fx::CAMPAIGNS,
            &[("authorization", &basic(&format!("SGnobody{i}"), "x"))],
        );
        assert_eq!(
            authn(&s, &unknown, OUTSIDE).0,
            Err((FORBIDDEN, DENIED_CREDENTIALS, "unknown_sid"))
        );
    }
    let right = as_cred(&fx::READER, fx::READER.secret, "GET", fx::CAMPAIGNS);
    assert_eq!(
        authn(&s, &right, OUTSIDE),
        (
            Err((
                StatusCode::TOO_MANY_REQUESTS,
                DecisionLabel::RateLimited,
                "bruteforce_address"
            )),
            None
        )
    );
    // Checked before the credentials: even a request without any.
    let none = request("GET", fx::CAMPAIGNS, &[]);
    assert_eq!(authn(&s, &none, OUTSIDE).0.unwrap_err().2, "no_credentials");
    // Another address is served.
    assert!(authn(&s, &right, INSIDE).0.is_ok());
}

#[tokio::test]
async fn a_right_secret_from_outside_allowed_ips_counts_like_a_wrong_one() {
    let s = shared("");
    let pinned = as_cred(&fx::PINNED, fx::PINNED.secret, "GET", fx::CAMPAIGNS);
    let sid = fx::PINNED.sid.to_owned();
    assert_eq!(
        authn(&s, &pinned, INSIDE),
        (Ok((sid.clone(), SecretUsed::Current)), Some(sid.clone()))
    );
    for _ in 0..fx::SID_FAILURES {
        assert_eq!(
            authn(&s, &pinned, OUTSIDE),
            (
                Err((FORBIDDEN, DecisionLabel::DeniedIp, "ip_not_allowed")),
                Some(sid.clone())
            )
        );
    }
    // The failures throttle the SID, from inside the allowlist too.
    assert_eq!(
        authn(&s, &pinned, INSIDE).0.unwrap_err().2,
        "bruteforce_sid"
    );
}

#[tokio::test]
async fn authorize_checks_the_method_and_counts_the_api() {
    let s = shared("");
    let reader = |method, target| as_cred(&fx::READER, fx::READER.secret, method, target);
    assert_eq!(
        authz(&s, &reader("GET", fx::CAMPAIGNS)),
        (Ok("campaigns".to_owned()), "campaigns".to_owned())
    );
    assert_eq!(
        authz(&s, &reader("POST", fx::CAMPAIGNS)),
        (
            Err((FORBIDDEN, DecisionLabel::DeniedScope, "method_not_granted")),
            "campaigns".to_owned()
        )
    );
}

#[tokio::test]
async fn authorize_checks_the_canonical_path_and_the_account() {
    let s = shared("");
    let no_scope = Err((FORBIDDEN, DecisionLabel::DeniedScope, "no_matching_scope"));
    let reader = |target| as_cred(&fx::READER, fx::READER.secret, "GET", target);
    assert_eq!(
        authz(&s, &reader("/Mediapartners/IRacme/Reports/daily")),
        (no_scope.clone(), NO_API.to_owned())
    );
    assert_eq!(
        authz(&s, &reader("/Mediapartners/IRother/Campaigns")).0,
        no_scope.clone()
    );
    // The path is judged after canonicalization (encoded letters decoded).
    assert_eq!(
        authz(&s, &reader("/Mediapartners/IRacme/Report%73/daily")).0,
        no_scope
    );
    assert_eq!(
        authz(&s, &reader("/Mediapartners/IRacme/%43ampaigns")).0,
        Ok("campaigns".to_owned())
    );
}

#[tokio::test]
async fn every_method_override_must_be_granted() {
    let s = shared("");
    let over = |cred: &Cred, method, target: &str, header: Option<&str>| {
        let auth = basic(cred.sid, cred.secret);
        let mut headers = vec![("authorization", auth.as_str())];
        headers.extend(header.map(|h| ("x-http-method-override", h)));
        authz(&s, &request(method, target, &headers))
    };
    let override_refused = Err((
        FORBIDDEN,
        DecisionLabel::DeniedScope,
        "method_override_not_granted",
    ));
    assert_eq!(
        over(&fx::READER, "GET", fx::CAMPAIGNS, Some("DELETE")),
        (override_refused.clone(), "campaigns".to_owned())
    );
    let by_query = format!("{}?_method=DELETE", fx::CAMPAIGNS);
    assert_eq!(
        over(&fx::READER, "GET", &by_query, None).0,
        override_refused.clone()
    );
    assert_eq!(
        over(&fx::WRITER, "POST", fx::CAMPAIGNS, Some("DELETE")).0,
        Ok("campaigns".to_owned())
    );
    assert_eq!(
        over(&fx::WRITER, "POST", &by_query, None).0,
        Ok("campaigns".to_owned())
    );
    // An unknown verb is never granted.
    assert_eq!(
        over(&fx::WRITER, "POST", fx::CAMPAIGNS, Some("FROB")).0,
        override_refused
    );
}

#[tokio::test]
async fn classify_runs_first_a_bad_target_is_400_before_credentials() {
    let s = shared("");
    let policy = s.policy.load();
    let req = request("GET", "/a/%2e%2e/../../b", &[]);
    let uri = req.uri().clone();
    let connection = conn(OUTSIDE);
    let mut c = ctx(&policy, &connection);
    let r = refused(admit(&s, &mut c, &req, &uri).await);
    assert_eq!(
        outcome(&r, c.settings),
        (
            StatusCode::BAD_REQUEST,
            DecisionLabel::BadRequest,
            "bad_target"
        )
    );
    assert!(!r.closes_connection());
}

#[tokio::test]
async fn the_rate_limit_refuses_with_429_and_its_fields() {
    let s = shared("");
    let policy = s.policy.load();
    let req = as_cred(&fx::LIMITED, fx::LIMITED.secret, "GET", fx::CAMPAIGNS);
    let uri = req.uri().clone();
    let connection = conn(OUTSIDE);
    let mut first = ctx(&policy, &connection);
    let admitted = match admit(&s, &mut first, &req, &uri).await {
        Ok(a) => a,
        Err(r) => panic!("the burst's one request: {:?}", outcome(&r, first.settings)),
    };
    assert!(matches!(
        admitted.rate,
        RateOutcome::Allowed { remaining: 0, .. }
    ));
    let connection = conn(OUTSIDE);
    let mut second = ctx(&policy, &connection);
    let mut r = refused(admit(&s, &mut second, &req, &uri).await);
    assert_eq!(
        outcome(&r, second.settings),
        (
            StatusCode::TOO_MANY_REQUESTS,
            DecisionLabel::RateLimited,
            "token_rate_limit"
        )
    );
    // Counted under the token and the API that were let through to the limit.
    assert_eq!(
        second.token.map(|t| t.spec.sid.as_str()),
        Some(fx::LIMITED.sid)
    );
    assert_eq!(second.api, "campaigns");
    let headers = r.take_headers(second.settings).expect("rate-limit fields");
    assert_eq!(headers["ratelimit-limit"], "1");
    assert_eq!(headers["ratelimit-remaining"], "0");
    let retry: u64 = headers[http::header::RETRY_AFTER]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("a numeric Retry-After");
    // One request per ~3333 s: the next one is more than a few seconds away.
    assert!(retry > 60, "Retry-After {retry}");
    // Another token's budget is its own.
    let reader = as_cred(&fx::READER, fx::READER.secret, "GET", fx::CAMPAIGNS);
    let connection = conn(OUTSIDE);
    let mut c = ctx(&policy, &connection);
    assert!(admit(&s, &mut c, &reader, &uri).await.is_ok());
}

#[tokio::test]
async fn shadow_scopes_count_what_they_would_deny_and_let_it_through() {
    let s = shared("");
    let policy = s.policy.load();
    for method in ["GET", "POST", "POST"] {
        let req = as_cred(&fx::SHADOW, fx::SHADOW.secret, method, fx::CAMPAIGNS);
        let uri = req.uri().clone();
        let connection = conn(OUTSIDE);
        let mut c = ctx(&policy, &connection);
        let admitted = match admit(&s, &mut c, &req, &uri).await {
            Ok(a) => a,
            Err(r) => panic!("{method} is in the scopes: {:?}", outcome(&r, c.settings)),
        };
        note_allowed(&s, &c, &req, &admitted);
    }
    assert_eq!(
        s.metrics.shadow_denied_of(fx::SHADOW.sid),
        vec![("campaigns".to_owned(), "POST".to_owned(), 2)]
    );
    // A token without shadow scopes is never counted.
    let req = as_cred(&fx::WRITER, fx::WRITER.secret, "POST", fx::CAMPAIGNS);
    let uri = req.uri().clone();
    let connection = conn(OUTSIDE);
    let mut c = ctx(&policy, &connection);
    let Ok(admitted) = admit(&s, &mut c, &req, &uri).await else {
        panic!("the writer may POST");
    };
    note_allowed(&s, &c, &req, &admitted);
    assert!(s.metrics.shadow_denied_of(fx::WRITER.sid).is_empty());
}
