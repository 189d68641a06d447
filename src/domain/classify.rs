//! Request classification: everything decided about a request before its credentials are
//! read. The request line and headers ([`request::check`]), the target-length limit, the
//! canonical target and the method overrides. The gateway's first phase and
//! `scopegate explain` both call [`classify`], so they cannot disagree about a request.

use http::{HeaderMap, HeaderValue, Method, Uri, Version};

use crate::domain::request::{self, BadRequest};
use crate::domain::scope::target::{canonicalize, Target, TargetError};
use crate::domain::settings::Settings;

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
    /// The target has no canonical form (answered 400).
    Target(TargetError),
}

impl Unclassified {
    /// The `reason` label of the metrics and access log.
    pub fn as_str(self) -> &'static str {
        match self {
            Unclassified::Request(why) => why.as_str(),
            Unclassified::TargetTooLong => "target_too_long",
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
    settings: &Settings,
) -> Result<Classified<'r>, Unclassified> {
    let host = request::check(method, uri, version, headers).map_err(Unclassified::Request)?;
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    if path_and_query.len() > settings.limits.max_target_length {
        return Err(Unclassified::TargetTooLong);
    }
    let target = if path_and_query == "*" {
        None
    } else {
        Some(canonicalize(path_and_query).map_err(Unclassified::Target)?)
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
