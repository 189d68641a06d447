//! Request classification: everything decided about a request before its credentials are
//! read. The request line and headers ([`request::check`]), the target-length limit, the
//! canonical target and the method overrides. The gateway's first phase and
//! `scopegate explain` both call [`classify`], so they cannot disagree about a request.

use http::{HeaderMap, HeaderValue, Method, Uri, Version};

use crate::domain::request::{self, BadRequest};
use crate::domain::scope::target::{canonicalize_with, Target, TargetError, TargetOptions};
use crate::domain::settings::Limits;

/// A request the gateway can go on to authenticate.
#[derive(Debug)]
pub struct Classified<'r> {
    /// The `Host` (or `:authority`) to report upstream.
    pub host: Option<HeaderValue>,
    /// The canonical target; `None` for `OPTIONS *`, which has no path to authorize (it
    /// matches no API and is refused by authorization).
    pub target: Option<Target<'r>>,
    /// Methods named by override headers or `_method`; `None` entries are unknown verbs.
    pub overrides: Vec<Option<u8>>,
}

impl Classified<'_> {
    /// The canonical path (`*` for `OPTIONS *`).
    pub fn path(&self) -> &str {
        self.target.as_ref().map_or("*", |t| t.path.as_ref())
    }

    /// The query string as sent, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.as_ref().and_then(|t| t.query)
    }
}

/// Why a request could not be classified. Every case is answered before authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unclassified {
    /// Framing, `Host` or target form (answered 400).
    Request(BadRequest),
    /// Longer than `limits.max_target_length` (answered 414).
    TargetTooLong,
    /// More header fields than `limits.max_headers` (answered 431). hyper refuses these
    /// itself on HTTP/1.1; on HTTP/2 only the total size is bounded there.
    TooManyHeaders,
    /// The target has no canonical form (answered 400).
    Target(TargetError),
}

impl Unclassified {
    /// The `reason` label of the metrics and access log.
    pub fn as_str(self) -> &'static str {
        match self {
            Unclassified::Request(why) => why.as_str(),
            Unclassified::TargetTooLong => "target_too_long",
            Unclassified::TooManyHeaders => "too_many_headers",
            Unclassified::Target(_) => BadRequest::BadTarget.as_str(),
        }
    }

    /// Whether the bytes after this request cannot be trusted (the connection closes).
    pub fn poisons_connection(self) -> bool {
        matches!(self, Unclassified::Request(why) if why.poisons_connection())
    }
}

/// Classifies a request from its parts, under the configuration's limits.
pub fn classify<'r>(
    method: &Method,
    uri: &'r Uri,
    version: Version,
    headers: &HeaderMap,
    limits: &Limits,
    options: TargetOptions,
) -> Result<Classified<'r>, Unclassified> {
    if headers.len() > limits.max_headers {
        // HTTP/2 clients may send each cookie as a field of its own (RFC 9113 §8.2.3):
        // they count as the one `Cookie` line HTTP/1.1 would have carried.
        let cookies = headers.get_all(http::header::COOKIE).iter().count();
        if headers.len() - cookies.saturating_sub(1) > limits.max_headers {
            return Err(Unclassified::TooManyHeaders);
        }
    }
    let host = request::check(method, uri, version, headers).map_err(Unclassified::Request)?;
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    if path_and_query.len() > limits.max_target_length {
        return Err(Unclassified::TargetTooLong);
    }
    let target = if path_and_query == "*" {
        None
    } else {
        Some(canonicalize_with(path_and_query, options).map_err(Unclassified::Target)?)
    };
    let mut overrides = Vec::new();
    request::method_overrides(
        headers,
        target.as_ref().and_then(|t| t.query),
        &mut overrides,
    );
    Ok(Classified {
        host,
        target,
        overrides,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Result<(String, Vec<Option<u8>>), Unclassified> {
        let uri: Uri = target.parse().expect("test targets parse");
        let mut map = HeaderMap::new();
        map.insert(http::header::HOST, HeaderValue::from_static("api.example"));
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("test header names"),
                HeaderValue::from_str(v).expect("test header values"),
            );
        }
        let method = Method::from_bytes(method.as_bytes()).expect("test methods");
        let limits = Limits {
            max_target_length: 64,
            ..Limits::default()
        };
        classify(
            &method,
            &uri,
            Version::HTTP_11,
            &map,
            &limits,
            TargetOptions::default(),
        )
        .map(|c| (c.path().to_owned(), c.overrides.clone()))
    }

    #[test]
    fn canonical_path_and_overrides() {
        let (path, overrides) = run("POST", "/a/%62/d?_method=DELETE", &[]).unwrap();
        assert_eq!(path, "/a/b/d");
        assert_eq!(overrides.len(), 1);
        let (_, overrides) = run("POST", "/x", &[("x-http-method-override", "PATCH")]).unwrap();
        assert_eq!(overrides.len(), 1);
    }

    #[test]
    fn asterisk_form_has_no_path() {
        let (path, _) = run("OPTIONS", "*", &[]).unwrap();
        assert_eq!(path, "*");
    }

    #[test]
    fn refusals_in_order() {
        assert_eq!(
            run(
                "GET",
                "/x",
                &[("content-length", "1"), ("transfer-encoding", "chunked")]
            ),
            Err(Unclassified::Request(BadRequest::LengthAndChunked))
        );
        assert!(Unclassified::Request(BadRequest::LengthAndChunked).poisons_connection());
        let long = format!("/{}", "a".repeat(64));
        assert_eq!(run("GET", &long, &[]), Err(Unclassified::TargetTooLong));
        assert_eq!(Unclassified::TargetTooLong.as_str(), "target_too_long");
        let bad = run("GET", "/a/%2e%2e/../../b", &[]);
        assert!(matches!(bad, Err(Unclassified::Target(_))), "{bad:?}");
        assert_eq!(bad.unwrap_err().as_str(), "bad_target");
    }
}
