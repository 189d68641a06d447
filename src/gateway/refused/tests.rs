//! The one exit's table: every [`Refused`] with the status the client gets, the
//! `decision` label, the access log's reason, and whether the connection closes. A new
//! variant fails to compile here until it has its row.

use http::StatusCode;

use super::*;
use crate::config::test_fixture::{self as fx};
use crate::domain::decision::ScopeFailure;
use crate::domain::scope::target::TargetError;

type Row = (StatusCode, DecisionLabel, &'static str, bool);

fn row(refused: &Refused<'_>, settings: &Settings) -> Row {
    (
        refused.kind(settings).status(),
        refused.decision(),
        refused.reason(),
        refused.closes_connection(),
    )
}

/// Makes the match below exhaustive: adding a variant to [`Refused`] breaks this test's
/// build until the table covers it.
fn covered(refused: &Refused<'_>) {
    match refused {
        Refused::AmbiguousFraming
        | Refused::Unclassified(_)
        | Refused::Unauthenticated(_)
        | Refused::Throttled(_)
        | Refused::Denied(_)
        | Refused::OverrideInBody { .. }
        | Refused::BodyStalled
        | Refused::RateLimited { .. }
        | Refused::OverQuota { .. }
        | Refused::Unforwardable
        | Refused::UpstreamTlsUnavailable
        | Refused::BodyTooLarge
        | Refused::BadRequestBody
        | Refused::UpstreamFailed
        | Refused::UpstreamTimeout
        | Refused::UnrequestedUpgrade => {}
    }
}

#[test]
fn every_refusal_maps_to_its_status_decision_and_reason() {
    use DecisionLabel as D;
    use StatusCode as S;
    let shared = crate::build_shared(fx::config(""));
    let policy = shared.policy.load();
    let reader = &*policy.tokens[fx::READER.sid];
    let credentials = |reason| {
        Refused::Denied(Denial::Credentials {
            token: None,
            reason,
        })
    };
    let scope = |reason| {
        Refused::Denied(Denial::Scope {
            token: reader,
            reason,
        })
    };
    let in_body = |whole| Refused::OverrideInBody {
        denial: Denial::Scope {
            token: reader,
            reason: ScopeFailure::Override { api: None },
        },
        whole,
    };
    let table: Vec<(Refused<'_>, Row)> = vec![
        (
            Refused::AmbiguousFraming,
            (
                S::BAD_REQUEST,
                D::BadRequest,
                "ambiguous_framing_or_fragment",
                true,
            ),
        ),
        (
            Refused::Unclassified(Unclassified::TargetTooLong),
            (S::URI_TOO_LONG, D::BadRequest, "target_too_long", false),
        ),
        (
            Refused::Unclassified(Unclassified::TooManyHeaders),
            (
                S::REQUEST_HEADER_FIELDS_TOO_LARGE,
                D::BadRequest,
                "too_many_headers",
                false,
            ),
        ),
        (
            Refused::BadRequestBody,
            (S::BAD_REQUEST, D::BadRequest, "bad_request_body", true),
        ),
        (
            Refused::Unclassified(Unclassified::Target(TargetError::ControlByte)),
            (S::BAD_REQUEST, D::BadRequest, "bad_target", false),
        ),
        (
            Refused::Unclassified(Unclassified::Request(BadRequest::MissingHost)),
            (S::BAD_REQUEST, D::BadRequest, "missing_host", false),
        ),
        (
            Refused::Unclassified(Unclassified::Request(BadRequest::LengthAndChunked)),
            (
                S::BAD_REQUEST,
                D::BadRequest,
                BadRequest::LengthAndChunked.as_str(),
                true,
            ),
        ),
        (
            Refused::Unauthenticated(AuthError::Missing),
            (S::UNAUTHORIZED, D::Unauthenticated, "no_credentials", false),
        ),
        (
            Refused::Unauthenticated(AuthError::NotBasic),
            (S::UNAUTHORIZED, D::Unauthenticated, "not_basic", false),
        ),
        (
            Refused::Unauthenticated(AuthError::Malformed),
            (
                S::UNAUTHORIZED,
                D::Unauthenticated,
                "malformed_credentials",
                false,
            ),
        ),
        (
            Refused::Unauthenticated(AuthError::TooLong),
            (
                S::UNAUTHORIZED,
                D::Unauthenticated,
                "credentials_too_long",
                false,
            ),
        ),
        (
            Refused::Unauthenticated(AuthError::Ambiguous),
            (
                S::BAD_REQUEST,
                D::BadRequest,
                "several_authorization_headers",
                false,
            ),
        ),
        (
            Refused::Throttled(Throttle::Address),
            (
                S::TOO_MANY_REQUESTS,
                D::RateLimited,
                "bruteforce_address",
                false,
            ),
        ),
        (
            Refused::Throttled(Throttle::Sid),
            (
                S::TOO_MANY_REQUESTS,
                D::RateLimited,
                "bruteforce_sid",
                false,
            ),
        ),
        (
            credentials(CredentialFailure::UnknownSid),
            (S::FORBIDDEN, D::DeniedCredentials, "unknown_sid", false),
        ),
        (
            credentials(CredentialFailure::WrongSecret),
            (S::FORBIDDEN, D::DeniedCredentials, "wrong_secret", false),
        ),
        (
            credentials(CredentialFailure::Deleted),
            (S::FORBIDDEN, D::DeniedCredentials, "deleted", false),
        ),
        (
            credentials(CredentialFailure::Expired),
            (S::FORBIDDEN, D::DeniedCredentials, "expired", false),
        ),
        (
            credentials(CredentialFailure::Disabled),
            (S::FORBIDDEN, D::DeniedDisabled, "disabled", false),
        ),
        (
            credentials(CredentialFailure::BadChecksum),
            (
                S::FORBIDDEN,
                D::DeniedCredentials,
                "bad_secret_checksum",
                false,
            ),
        ),
        (
            scope(ScopeFailure::NoApi),
            (S::FORBIDDEN, D::DeniedScope, "no_matching_scope", false),
        ),
        (
            scope(ScopeFailure::Method { api: 0 }),
            (S::FORBIDDEN, D::DeniedScope, "method_not_granted", false),
        ),
        (
            scope(ScopeFailure::Override { api: None }),
            (
                S::FORBIDDEN,
                D::DeniedScope,
                "method_override_not_granted",
                false,
            ),
        ),
        // Found in a body: the connection closes when the body was not read to its end.
        (
            in_body(true),
            (
                S::FORBIDDEN,
                D::DeniedScope,
                "method_override_not_granted",
                false,
            ),
        ),
        (
            in_body(false),
            (
                S::FORBIDDEN,
                D::DeniedScope,
                "method_override_not_granted",
                true,
            ),
        ),
        (
            Refused::BodyStalled,
            (
                S::REQUEST_TIMEOUT,
                D::BadRequest,
                "request_body_stalled",
                true,
            ),
        ),
        (
            Refused::Denied(Denial::Address { token: reader }),
            (S::FORBIDDEN, D::DeniedIp, "ip_not_allowed", false),
        ),
        (
            Refused::RateLimited {
                scope: false,
                headers: HeaderMap::new(),
            },
            (
                S::TOO_MANY_REQUESTS,
                D::RateLimited,
                "token_rate_limit",
                false,
            ),
        ),
        (
            Refused::RateLimited {
                scope: true,
                headers: HeaderMap::new(),
            },
            (
                S::TOO_MANY_REQUESTS,
                D::RateLimited,
                "scope_rate_limit",
                false,
            ),
        ),
        (
            Refused::OverQuota {
                reason: "quota_exhausted",
                headers: HeaderMap::new(),
            },
            (
                S::TOO_MANY_REQUESTS,
                D::RateLimited,
                "quota_exhausted",
                false,
            ),
        ),
        (
            Refused::Unforwardable,
            (S::BAD_REQUEST, D::BadRequest, "unforwardable_target", true),
        ),
        (
            Refused::UpstreamTlsUnavailable,
            (
                S::BAD_GATEWAY,
                D::Allowed,
                "upstream_tls_unavailable",
                false,
            ),
        ),
        (
            Refused::BodyTooLarge,
            (S::PAYLOAD_TOO_LARGE, D::Allowed, "body_too_large", true),
        ),
        (
            Refused::UpstreamFailed,
            (S::BAD_GATEWAY, D::Allowed, "upstream_error", false),
        ),
        (
            Refused::UpstreamTimeout,
            (S::GATEWAY_TIMEOUT, D::Allowed, "upstream_timeout", false),
        ),
        (
            Refused::UnrequestedUpgrade,
            (S::BAD_GATEWAY, D::Allowed, "unrequested_upgrade", true),
        ),
    ];
    for (refused, want) in &table {
        covered(refused);
        assert_eq!(
            row(refused, &policy.settings),
            *want,
            "{}",
            refused.reason()
        );
    }
}

#[test]
fn invalid_credentials_and_address_refusals_follow_invalid_credentials_status() {
    let shared = crate::build_shared(fx::config("invalid_credentials_status: 401\n"));
    let policy = shared.policy.load();
    let reader = &*policy.tokens[fx::READER.sid];
    let settings = &policy.settings;
    let wrong = Refused::Denied(Denial::Credentials {
        token: Some(reader),
        reason: CredentialFailure::WrongSecret,
    });
    assert_eq!(wrong.kind(settings).status(), StatusCode::UNAUTHORIZED);
    let address = Refused::Denied(Denial::Address { token: reader });
    assert_eq!(address.kind(settings).status(), StatusCode::UNAUTHORIZED);
    // Scope refusals stay 403: the caller proved its secret.
    let scope = Refused::Denied(Denial::Scope {
        token: reader,
        reason: ScopeFailure::NoApi,
    });
    assert_eq!(scope.kind(settings).status(), StatusCode::FORBIDDEN);
}

#[test]
fn only_throttles_and_limits_carry_header_fields() {
    let shared = crate::build_shared(fx::config(""));
    let settings = &shared.policy.load().settings;
    let mut throttled = Refused::Throttled(Throttle::Address);
    let headers = throttled.take_headers(settings).expect("Retry-After");
    // The fixture's cool-off is one hour.
    assert_eq!(headers[http::header::RETRY_AFTER], "3600");
    let mut fields = HeaderMap::new();
    fields.insert("ratelimit-limit", http::HeaderValue::from_static("5"));
    let mut limited = Refused::RateLimited {
        scope: false,
        headers: fields.clone(),
    };
    assert_eq!(limited.take_headers(settings), Some(fields));
    for mut other in [
        Refused::Unauthenticated(AuthError::Missing),
        Refused::UpstreamFailed,
        Refused::BodyTooLarge,
    ] {
        assert!(other.take_headers(settings).is_none(), "{}", other.reason());
    }
}

#[test]
fn only_unproven_secrets_feed_the_throttle() {
    for (reason, counts) in [
        (CredentialFailure::WrongSecret, true),
        (CredentialFailure::UnknownSid, true),
        (CredentialFailure::Deleted, true),
        (CredentialFailure::BadChecksum, true),
        (CredentialFailure::Disabled, false),
        (CredentialFailure::Expired, false),
    ] {
        assert_eq!(unproven(reason), counts, "{reason:?}");
    }
}
