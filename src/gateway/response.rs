//! Every response the gateway makes up itself, built in one place from a refusal kind.
//!
//! Bodies are small fixed JSON documents: the reason for a refusal goes to logs and
//! metrics, never to the client.

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::Full;

pub use crate::gateway::body::GatewayBody;

/// The kinds of response the gateway writes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    BadRequest,
    Unauthenticated,
    /// Unknown SID, wrong secret, disabled, expired or deleted, with the configured status.
    InvalidCredentials(StatusCode),
    AccessDenied,
    RateLimited,
    TargetTooLong,
    HeadersTooLarge,
    PayloadTooLarge,
    /// The client's request body stalled before it could be judged.
    RequestTimeout,
    BadGateway,
    GatewayTimeout,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::BadRequest => StatusCode::BAD_REQUEST,
            Refusal::Unauthenticated => StatusCode::UNAUTHORIZED,
            Refusal::InvalidCredentials(s) => s,
            Refusal::AccessDenied => StatusCode::FORBIDDEN,
            Refusal::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Refusal::TargetTooLong => StatusCode::URI_TOO_LONG,
            Refusal::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Refusal::BadGateway => StatusCode::BAD_GATEWAY,
            Refusal::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn body(self) -> &'static str {
        match self {
            Refusal::BadRequest => r#"{"error":"bad_request","message":"Bad Request"}"#,
            Refusal::Unauthenticated | Refusal::InvalidCredentials(StatusCode::UNAUTHORIZED) => {
                r#"{"error":"unauthenticated","message":"Authentication Required"}"#
            }
            Refusal::InvalidCredentials(_) | Refusal::AccessDenied => {
                r#"{"error":"access_denied","message":"Access Denied"}"#
            }
            Refusal::RateLimited => r#"{"error":"rate_limited","message":"Too Many Requests"}"#,
            Refusal::TargetTooLong => r#"{"error":"uri_too_long","message":"URI Too Long"}"#,
            Refusal::HeadersTooLarge => {
                r#"{"error":"headers_too_large","message":"Request Header Fields Too Large"}"#
            }
            Refusal::PayloadTooLarge => {
                r#"{"error":"payload_too_large","message":"Payload Too Large"}"#
            }
            Refusal::RequestTimeout => r#"{"error":"request_timeout","message":"Request Timeout"}"#,
            Refusal::BadGateway => r#"{"error":"bad_gateway","message":"Bad Gateway"}"#,
            Refusal::GatewayTimeout => r#"{"error":"gateway_timeout","message":"Gateway Timeout"}"#,
        }
    }
}

pub const WWW_AUTHENTICATE_VALUE: &str = r#"Basic realm="scopegate", charset="UTF-8""#;

/// Builds the response for a refusal. `close` adds `Connection: close` when the
/// connection cannot be reused (an unread body, or request framing we do not trust).
pub fn refusal(kind: Refusal, close: bool) -> Response<GatewayBody> {
    let mut resp = Response::new(GatewayBody::synthetic(Bytes::from_static(
        kind.body().as_bytes(),
    )));
    *resp.status_mut() = kind.status();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if kind.status() == StatusCode::UNAUTHORIZED {
        h.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(WWW_AUTHENTICATE_VALUE),
        );
    }
    if close {
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A plain-text response for the admin listener.
pub fn text(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
