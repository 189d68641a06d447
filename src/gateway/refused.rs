//! Every way the request path can refuse a request, as one typed list. A phase returns
//! `Err(Refused)`; the one exit in [`crate::gateway::proxy`] turns it into its response (through
//! [`Refused::kind`]), its metrics and its access-log line (through [`Refused::decision`]
//! and [`Refused::reason`]). A new reason is one variant here and one line in each match.

use http::HeaderMap;

use crate::domain::auth::AuthError;
use crate::domain::classify::Unclassified;
use crate::domain::decision::{CredentialFailure, Denial};
use crate::domain::labels::DecisionLabel;
use crate::domain::request::BadRequest;
use crate::domain::settings::Settings;
use crate::gateway::response::Refusal;
use crate::gateway::runtime::TokenRuntime;

/// Why the failed-authentication throttle refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// The client address is cooling off.
    Address,
    /// The SID is cooling off.
    Sid,
}

impl Throttle {
    /// The `kind` label of `scopegate_bruteforce_throttled_total`.
    pub fn label(self) -> &'static str {
        match self {
            Throttle::Address => "address",
            Throttle::Sid => "sid",
        }
    }
}

/// A refused request.
pub enum Refused<'p> {
    /// An HTTP/1 head carried both `Content-Length` and `Transfer-Encoding` (hyper resolves
    /// them before the service runs; the framing flag says so).
    AmbiguousFraming,
    /// The request line, headers or target (see [`Unclassified`]).
    Unclassified(Unclassified),
    /// No usable credentials ([`AuthError::Ambiguous`] is a bad request).
    Unauthenticated(AuthError),
    /// The failed-authentication throttle, before the secret is checked.
    Throttled(Throttle),
    /// The decision: credentials or scopes.
    Denied(Denial<'p, TokenRuntime>),
    /// The token's, or its scope's own, rate limit; `headers` are the rate-limit fields.
    RateLimited { scope: bool, headers: HeaderMap },
    /// A quota is used up (`quota_exhausted`), or Redis could not count it under
    /// `on_redis_error: deny` (`quota_backend_unavailable`).
    OverQuota {
        reason: &'static str,
        headers: HeaderMap,
    },
    /// The canonical target could not be put on the upstream request.
    Unforwardable,
    /// No TLS client for the upstream (its CA or client certificate could not be loaded).
    UpstreamTlsUnavailable,
    /// The request body names a method override outside the grants (a form field, a
    /// multipart part or a JSON member `_method`); `whole`: its body was read to the end,
    /// so the connection can be kept.
    OverrideInBody {
        denial: Denial<'p, TokenRuntime>,
        whole: bool,
    },
    /// The client's body stalled while the gateway read it to judge it.
    BodyStalled,
    /// The body is larger than `limits.max_body_bytes` (declared or streamed).
    BodyTooLarge,
    /// The client's request body failed on its way upstream (malformed chunked framing,
    /// or cut short): the client's fault, not the upstream's.
    BadRequestBody,
    /// The upstream exchange failed.
    UpstreamFailed,
    /// The upstream sent no response head within its `response_timeout`.
    UpstreamTimeout,
    /// The upstream answered `101` to a request without an allowed (WebSocket) upgrade:
    /// splicing would hand the client a raw channel no decision covers.
    UnrequestedUpgrade,
}

impl Refused<'_> {
    /// The response the client gets.
    pub fn kind(&self, settings: &Settings) -> Refusal {
        match self {
            Refused::AmbiguousFraming | Refused::Unforwardable | Refused::BadRequestBody => {
                Refusal::BadRequest
            }
            Refused::Unclassified(Unclassified::TargetTooLong) => Refusal::TargetTooLong,
            Refused::Unclassified(Unclassified::TooManyHeaders) => Refusal::HeadersTooLarge,
            Refused::Unclassified(_) => Refusal::BadRequest,
            Refused::Unauthenticated(AuthError::Ambiguous) => Refusal::BadRequest,
            Refused::Unauthenticated(_) => Refusal::Unauthenticated,
            Refused::Throttled(_) | Refused::RateLimited { .. } | Refused::OverQuota { .. } => {
                Refusal::RateLimited
            }
            Refused::Denied(Denial::Credentials { .. }) => {
                Refusal::InvalidCredentials(settings.invalid_credentials_status)
            }
            Refused::Denied(Denial::Scope { .. }) | Refused::OverrideInBody { .. } => {
                Refusal::AccessDenied
            }
            Refused::BodyStalled => Refusal::RequestTimeout,
            // Answered like a wrong secret: from outside the allowlist, a leaked secret
            // cannot even be confirmed.
            Refused::Denied(Denial::Address { .. }) => {
                Refusal::InvalidCredentials(settings.invalid_credentials_status)
            }
            Refused::UpstreamTlsUnavailable
            | Refused::UpstreamFailed
            | Refused::UnrequestedUpgrade => Refusal::BadGateway,
            Refused::BodyTooLarge => Refusal::PayloadTooLarge,
            Refused::UpstreamTimeout => Refusal::GatewayTimeout,
        }
    }

    /// Whether the connection must close after the response, whatever the body: the
    /// bytes after this request cannot be trusted, or its body is left unread.
    pub fn closes_connection(&self) -> bool {
        match self {
            Refused::AmbiguousFraming
            | Refused::Unforwardable
            | Refused::BodyTooLarge
            | Refused::BadRequestBody
            | Refused::BodyStalled
            | Refused::UnrequestedUpgrade => true,
            Refused::OverrideInBody { whole, .. } => !whole,
            Refused::Unclassified(why) => why.poisons_connection(),
            _ => false,
        }
    }

    /// The `decision` label. Refusals after authorization (the upstream's failures) stay
    /// `allowed`: the gateway's decision was to let the request through.
    pub fn decision(&self) -> DecisionLabel {
        match self {
            Refused::AmbiguousFraming
            | Refused::Unclassified(_)
            | Refused::Unforwardable
            | Refused::BadRequestBody
            | Refused::BodyStalled => DecisionLabel::BadRequest,
            Refused::Unauthenticated(AuthError::Ambiguous) => DecisionLabel::BadRequest,
            Refused::Unauthenticated(_) => DecisionLabel::Unauthenticated,
            Refused::Throttled(_) | Refused::RateLimited { .. } | Refused::OverQuota { .. } => {
                DecisionLabel::RateLimited
            }
            Refused::Denied(denial) | Refused::OverrideInBody { denial, .. } => denial.label(),
            Refused::UpstreamTlsUnavailable
            | Refused::BodyTooLarge
            | Refused::UpstreamFailed
            | Refused::UpstreamTimeout
            | Refused::UnrequestedUpgrade => DecisionLabel::Allowed,
        }
    }

    /// The `reason` of the access log.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::AmbiguousFraming => "ambiguous_framing_or_fragment",
            Refused::Unclassified(why) => why.as_str(),
            Refused::Unauthenticated(e) => match e {
                AuthError::Ambiguous => BadRequest::SeveralAuthorizations.as_str(),
                AuthError::Missing => "no_credentials",
                AuthError::NotBasic => "not_basic",
                AuthError::TooLong => "credentials_too_long",
                _ => "malformed_credentials",
            },
            Refused::Throttled(Throttle::Sid) => "bruteforce_sid",
            Refused::Throttled(Throttle::Address) => "bruteforce_address",
            Refused::Denied(denial) | Refused::OverrideInBody { denial, .. } => denial.reason(),
            Refused::BodyStalled => "request_body_stalled",
            Refused::RateLimited { scope: true, .. } => "scope_rate_limit",
            Refused::RateLimited { scope: false, .. } => "token_rate_limit",
            Refused::OverQuota { reason, .. } => reason,
            Refused::Unforwardable => "unforwardable_target",
            Refused::UpstreamTlsUnavailable => "upstream_tls_unavailable",
            Refused::BodyTooLarge => "body_too_large",
            Refused::BadRequestBody => "bad_request_body",
            Refused::UpstreamFailed => "upstream_error",
            Refused::UpstreamTimeout => "upstream_timeout",
            Refused::UnrequestedUpgrade => "unrequested_upgrade",
        }
    }

    /// Header fields the refusal carries besides the status (`Retry-After`, rate limits).
    pub fn take_headers(&mut self, settings: &Settings) -> Option<HeaderMap> {
        match self {
            Refused::Throttled(_) => {
                let mut headers = HeaderMap::new();
                headers.insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from(settings.bruteforce.cooloff.as_secs().max(1)),
                );
                Some(headers)
            }
            Refused::RateLimited { headers, .. } | Refused::OverQuota { headers, .. } => {
                Some(std::mem::take(headers))
            }
            _ => None,
        }
    }
}

/// Whether a credential failure counts toward the failed-authentication throttle, and
/// keeps the request from being attributed to the SID it named: the secret was not
/// proven (unknown, deleted, wrong, or an `sgs_` secret with a bad checksum).
pub fn unproven(reason: CredentialFailure) -> bool {
    matches!(
        reason,
        CredentialFailure::WrongSecret
            | CredentialFailure::UnknownSid
            | CredentialFailure::Deleted
            | CredentialFailure::BadChecksum
    )
}

#[cfg(test)]
mod tests;
