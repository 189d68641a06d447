//! Request-level checks made before authentication: framing, `Host`, the request-target's
//! form, and the method overrides a client may name. Pure functions over HTTP parts.

use http::header::{self, HeaderMap};
use http::uri::Authority;
use http::{Method, Uri, Version};

use crate::domain::model::method_index;

/// Why a request is refused with 400 before anything else is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    MissingHost,
    SeveralHosts,
    InvalidHost,
    AuthorityMismatch,
    UserinfoInTarget,
    AsteriskForm,
    /// `CONNECT host:port` (or any method with such a target): the gateway is no tunnel.
    AuthorityForm,
    ConflictingLength,
    LengthAndChunked,
    /// A `Transfer-Encoding` other than one `chunked`: a coding the gateway would drop on
    /// the way (`gzip, chunked` reached the upstream as `chunked`), or framing parsers read
    /// differently.
    UnsupportedTransferCoding,
    SeveralAuthorizations,
    BadTarget,
}

impl BadRequest {
    pub fn as_str(self) -> &'static str {
        match self {
            BadRequest::MissingHost => "missing_host",
            BadRequest::SeveralHosts => "several_hosts",
            BadRequest::InvalidHost => "invalid_host",
            BadRequest::AuthorityMismatch => "authority_mismatch",
            BadRequest::UserinfoInTarget => "userinfo_in_target",
            BadRequest::AsteriskForm => "asterisk_form",
            BadRequest::AuthorityForm => "authority_form",
            BadRequest::ConflictingLength => "conflicting_content_length",
            BadRequest::LengthAndChunked => "content_length_and_transfer_encoding",
            BadRequest::UnsupportedTransferCoding => "unsupported_transfer_coding",
            BadRequest::SeveralAuthorizations => "several_authorization_headers",
            BadRequest::BadTarget => "bad_target",
        }
    }

    /// Framing problems mean the bytes after this request cannot be trusted: the
    /// connection must be closed, never reused.
    pub fn poisons_connection(self) -> bool {
        matches!(
            self,
            BadRequest::ConflictingLength
                | BadRequest::LengthAndChunked
                | BadRequest::UnsupportedTransferCoding
        )
    }
}

/// What [`check`] needs to know of the header fields, gathered in one pass over them:
/// a request carries a handful of fields, and walking them once costs less than a hashed
/// lookup per name.
struct FramingFields<'h> {
    /// A `Transfer-Encoding` field is present.
    chunked: bool,
    /// Every `Transfer-Encoding` field together says exactly one `chunked`.
    only_chunked: bool,
    /// `Content-Length` fields.
    lengths: usize,
    /// Two `Content-Length` values differ, or one is a list.
    conflicting_lengths: bool,
    /// `Host` fields, and the first one.
    hosts: usize,
    host: Option<&'h http::HeaderValue>,
    /// `Authorization` fields.
    authorizations: usize,
}

impl<'h> FramingFields<'h> {
    fn of(headers: &'h HeaderMap) -> Self {
        let mut fields = FramingFields {
            chunked: false,
            only_chunked: true,
            lengths: 0,
            conflicting_lengths: false,
            hosts: 0,
            host: None,
            authorizations: 0,
        };
        let mut first_length: Option<&http::HeaderValue> = None;
        for (name, value) in headers {
            if name == header::HOST {
                fields.hosts += 1;
                fields.host.get_or_insert(value);
            } else if name == header::AUTHORIZATION {
                fields.authorizations += 1;
            } else if name == header::CONTENT_LENGTH {
                fields.lengths += 1;
                match first_length {
                    None => {
                        first_length = Some(value);
                        fields.conflicting_lengths |= value.as_bytes().contains(&b',');
                    }
                    Some(first) => fields.conflicting_lengths |= value != first,
                }
            } else if name == header::TRANSFER_ENCODING {
                let chunked = value
                    .to_str()
                    .is_ok_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
                fields.only_chunked &= chunked && !fields.chunked;
                fields.chunked = true;
            }
        }
        fields
    }
}

/// Checks framing and `Host`; returns the host (or `:authority`) to report upstream.
pub fn check(
    method: &Method,
    uri: &Uri,
    version: Version,
    headers: &HeaderMap,
) -> Result<Option<http::HeaderValue>, BadRequest> {
    let fields = FramingFields::of(headers);
    // Request smuggling: a message with both framings, or with several differing
    // lengths, is read differently by different parsers (RFC 9112 §6.3).
    if fields.chunked && fields.lengths > 0 {
        return Err(BadRequest::LengthAndChunked);
    }
    if fields.conflicting_lengths {
        return Err(BadRequest::ConflictingLength);
    }
    if fields.chunked && !fields.only_chunked {
        return Err(BadRequest::UnsupportedTransferCoding);
    }
    // CONNECT asks for a tunnel whatever its target says (RFC 9110 §9.3.6): with
    // authority-form it is refused below, and in any other form it is no request for a
    // resource either.
    if *method == Method::CONNECT {
        return Err(BadRequest::AuthorityForm);
    }
    if fields.hosts > 1 {
        return Err(BadRequest::SeveralHosts);
    }
    let host = fields.host;
    let host_authority = match host {
        Some(h) => Some(valid_host(h.as_bytes())?),
        None => None,
    };

    if let Some(authority) = uri.authority() {
        if authority.as_str().contains('@') {
            return Err(BadRequest::UserinfoInTarget);
        }
        // Only origin-form and absolute-form targets name a resource to authorize; an
        // authority-form target (`CONNECT host:port`) asks for a tunnel (RFC 9112 §3.2.3).
        if uri.scheme().is_none() {
            return Err(BadRequest::AuthorityForm);
        }
        // Only the schemes the gateway serves: an `ftp://` target names no resource here.
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(BadRequest::BadTarget);
        }
        if !well_formed_authority(authority) {
            return Err(BadRequest::InvalidHost);
        }
        // HTTP/1.1 needs `Host` even beside an absolute-form target (RFC 9112 §3.2);
        // HTTP/2's `:authority` stands in for it.
        if host_authority.is_none() && version == Version::HTTP_11 {
            return Err(BadRequest::MissingHost);
        }
        // Absolute-form (or HTTP/2 `:authority`): must name the same host as `Host`.
        if let Some(h) = &host_authority {
            if !h.eq_ignore_ascii_case(authority.as_str()) {
                return Err(BadRequest::AuthorityMismatch);
            }
        }
    } else if host_authority.is_none() && version == Version::HTTP_11 {
        return Err(BadRequest::MissingHost);
    }

    if uri.path() == "*" && method != Method::OPTIONS {
        return Err(BadRequest::AsteriskForm);
    }

    if fields.authorizations > 1 {
        return Err(BadRequest::SeveralAuthorizations);
    }

    Ok(host.cloned().or_else(|| {
        uri.authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
    }))
}

/// Header names that ask an upstream framework to treat the request as another method.
const OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Host values up to this length are remembered by [`valid_host`].
const REMEMBERED_HOST_MAX: usize = 255;

thread_local! {
    /// The last `Host` value this thread found valid. Clients send the same one request
    /// after request, and checking it parses it into a freshly allocated `Authority`; a
    /// byte-equal value is valid without that. One entry per thread, so a client cannot
    /// grow it.
    static LAST_VALID_HOST: std::cell::RefCell<Option<Box<[u8]>>> =
        const { std::cell::RefCell::new(None) };
}

/// `value` as an authority (RFC 9110 §7.2: `uri-host [ ":" port ]`, no userinfo, a host
/// that is not empty), returned as text; `InvalidHost` otherwise.
fn valid_host(value: &[u8]) -> Result<&str, BadRequest> {
    let text = std::str::from_utf8(value).map_err(|_| BadRequest::InvalidHost)?;
    let remembered = LAST_VALID_HOST.with(|last| {
        last.try_borrow()
            .is_ok_and(|last| last.as_deref() == Some(value))
    });
    if remembered {
        return Ok(text);
    }
    let authority = text
        .parse::<Authority>()
        .map_err(|_| BadRequest::InvalidHost)?;
    if authority.as_str().contains('@')
        || authority.host().is_empty()
        || !well_formed_authority(&authority)
    {
        return Err(BadRequest::InvalidHost);
    }
    if value.len() <= REMEMBERED_HOST_MAX {
        LAST_VALID_HOST.with(|last| {
            if let Ok(mut last) = last.try_borrow_mut() {
                *last = Some(value.into());
            }
        });
    }
    Ok(text)
}

/// Whether an authority is `host[:port]` with a real port: a bracketed IP literal that is
/// not empty, or a host without brackets, then nothing or `:` and digits up to 65535 (RFC
/// 3986 §3.2.2-3). `http`'s parser takes `a:x`, `a:+80`, `a:999999`, `[::1]evil.example`
/// and `a[b]`, which would pass on as `X-Forwarded-Host`. An empty port (`a:`) is allowed,
/// as the RFC allows it.
fn well_formed_authority(authority: &Authority) -> bool {
    let text = authority.as_str();
    let after_host = match text.strip_prefix('[') {
        Some(literal) => match literal.split_once(']') {
            Some((inside, after)) if !inside.is_empty() => after,
            _ => return false,
        },
        None if text.contains(['[', ']']) => return false,
        None => text.rfind(':').map_or("", |colon| &text[colon..]),
    };
    match after_host.strip_prefix(':') {
        None => after_host.is_empty(),
        // RFC 3986 allows an empty port after the colon.
        Some(port) => port.is_empty() || valid_port(port),
    }
}

/// A port number as a `Host` writes it: 1 to 5 digits, at most 65535.
pub(crate) fn valid_port(port: &str) -> bool {
    !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| p <= 65535)
}

/// Collects every method override the request carries: each must be authorized like the
/// wire method. Unknown verbs become `None` (never grantable). At most a few are kept; a
/// request with more than 8 is treated as carrying an ungrantable one.
pub fn method_overrides(headers: &HeaderMap, query: Option<&str>, out: &mut Vec<Option<u8>>) {
    // Matched with `_` read as `-`: CGI-style stacks expose `X_HTTP_Method_Override` as the
    // same variable as `X-HTTP-Method-Override`, so both must be authorized.
    for (name, v) in headers {
        if OVERRIDE_HEADERS.contains(&&*crate::domain::owned_headers::dashed(name.as_str())) {
            let m = v.to_str().ok().map(str::trim).and_then(method_index);
            out.push(m);
        }
    }
    if let Some(q) = query {
        // `;` too: older Rack, Python and Go split queries there as well as at `&`.
        for pair in q.split(['&', ';']) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if names_method_override(key) {
                out.push(override_value(value.as_bytes()));
            }
        }
    }
    if out.len() > 8 {
        out.truncate(8);
        out.push(None);
    }
}

/// Whether a query parameter's name reads as `_method` to some upstream framework: after
/// percent-decoding (up to three times: some stacks decode twice), `+` read as a space,
/// PHP's rewriting of names (cut at a NUL, leading spaces dropped, ` ` and `.` read as `_`,
/// `[` starting an array), Rack's (leading `[` and `]` dropped, cut at a bracket), and in
/// any case. An upstream that reads `_%6dethod=DELETE` as
/// `_method=DELETE` must not get a method the gateway did not authorize.
pub(crate) fn names_method_override(key: &str) -> bool {
    const NAME: &[u8] = b"_method";
    if key == "_method" {
        return true;
    }
    let raw = key.as_bytes();
    let rewritable = raw
        .iter()
        .any(|b| matches!(b, b'%' | b'+' | b'.' | b' ' | b'[' | b']' | b'\0'));
    if !rewritable {
        // Nothing a framework would rewrite: only the case can differ.
        return key.eq_ignore_ascii_case("_method");
    }
    let mut name: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    for _ in 0..3 {
        if !name.contains(&b'%') {
            break;
        }
        name = percent_decoded(&name);
    }
    if let Some(nul) = name.iter().position(|&b| b == 0) {
        name.truncate(nul);
    }
    let start = name
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(name.len());
    let name = &name[start..];
    // Rack reads a name's key as what follows any leading `[` and `]` up to the next
    // bracket (`]_method`, `[_method]`); PHP cuts it at `[`.
    let name = &name[name.iter().take_while(|&&b| b == b'[' || b == b']').count()..];
    let name = name
        .split(|&b| b == b'[' || b == b']')
        .next()
        .unwrap_or(name);
    name.len() == NAME.len()
        && name.iter().zip(NAME).all(|(&b, &want)| {
            let b = if b == b' ' || b == b'.' { b'_' } else { b };
            b.eq_ignore_ascii_case(&want)
        })
}

/// `%XX` sequences decoded; a `%` not followed by two hex digits stays as it is (as query
/// parsers leave it).
fn percent_decoded(bytes: &[u8]) -> Vec<u8> {
    let hex = crate::domain::scope::target::hex_value;
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let pair = bytes
            .get(i + 1)
            .copied()
            .and_then(hex)
            .zip(bytes.get(i + 2).copied().and_then(hex));
        match pair {
            Some((high, low)) if bytes[i] == b'%' => {
                out.push(high << 4 | low);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// The method a `_method` value names, as a form parser reads it: `+` is a space and
/// `%XX` is decoded (once), so `%44ELETE` is DELETE. Frameworks upper-case the value
/// (`_method` is often lower-case in form posts); anything but letters is an unknown verb.
pub(crate) fn override_value(raw: &[u8]) -> Option<u8> {
    if raw.len() > 64 {
        return None;
    }
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    upper_method(&percent_decoded(&spaced))
}

/// A method name as frameworks read `_method`: upper-cased; letters only.
pub(crate) fn upper_method(v: &[u8]) -> Option<u8> {
    if v.len() > 16 || !v.iter().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    method_index(std::str::from_utf8(&v.to_ascii_uppercase()).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn a_remembered_host_vouches_only_for_itself() {
        assert_eq!(valid_host(b"api.example:8443"), Ok("api.example:8443"));
        assert_eq!(valid_host(b"api.example:8443"), Ok("api.example:8443"));
        for bad in [
            &b"u@api.example:8443"[..],
            b"api.example:8443 x",
            b"",
            b":8443",
        ] {
            assert_eq!(valid_host(bad), Err(BadRequest::InvalidHost), "{bad:?}");
        }
        assert_eq!(valid_host(b"api.example:8443"), Ok("api.example:8443"));
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn run(pairs: &[(&str, &str)], target: &str) -> Result<Option<HeaderValue>, BadRequest> {
        check(
            &Method::GET,
            &target.parse().unwrap(),
            Version::HTTP_11,
            &headers(pairs),
        )
    }

    #[test]
    fn host_rules() {
        assert!(run(&[("host", "a.example")], "/x").is_ok());
        assert_eq!(run(&[], "/x"), Err(BadRequest::MissingHost));
        assert_eq!(
            run(&[("host", "a"), ("host", "b")], "/x"),
            Err(BadRequest::SeveralHosts)
        );
        assert_eq!(run(&[("host", "a b")], "/x"), Err(BadRequest::InvalidHost));
        assert_eq!(run(&[("host", "u@a")], "/x"), Err(BadRequest::InvalidHost));
        assert_eq!(
            run(&[("host", "a.example")], "http://b.example/x"),
            Err(BadRequest::AuthorityMismatch)
        );
        assert!(run(&[("host", "a.example")], "http://A.example/x").is_ok());
        assert_eq!(
            run(&[("host", "a.example")], "http://u@a.example/x"),
            Err(BadRequest::UserinfoInTarget)
        );
        assert_eq!(
            run(&[("host", "a.example:443")], "a.example:443"),
            Err(BadRequest::AuthorityForm)
        );
    }

    #[test]
    fn framing_rules() {
        assert_eq!(
            run(
                &[
                    ("host", "a"),
                    ("content-length", "3"),
                    ("transfer-encoding", "chunked")
                ],
                "/"
            ),
            Err(BadRequest::LengthAndChunked)
        );
        assert_eq!(
            run(
                &[
                    ("host", "a"),
                    ("content-length", "3"),
                    ("content-length", "4")
                ],
                "/"
            ),
            Err(BadRequest::ConflictingLength)
        );
        assert!(run(
            &[
                ("host", "a"),
                ("content-length", "3"),
                ("content-length", "3")
            ],
            "/"
        )
        .is_ok());
        // A list, first or later, is a conflict; the order of the checks is the one of
        // the header map lookups this pass replaced.
        for lengths in [["3,3", "3,3"], ["3", "3,3"]] {
            let pairs: Vec<_> = std::iter::once(("host", "a"))
                .chain(lengths.iter().map(|l| ("content-length", *l)))
                .collect();
            assert_eq!(run(&pairs, "/"), Err(BadRequest::ConflictingLength));
        }
        assert_eq!(
            run(
                &[
                    ("host", "a"),
                    ("host", "b"),
                    ("content-length", "3"),
                    ("content-length", "4")
                ],
                "/"
            ),
            Err(BadRequest::ConflictingLength)
        );
        assert_eq!(
            run(
                &[
                    ("host", "a"),
                    ("authorization", "Basic eDp5"),
                    ("authorization", "Basic eDp5")
                ],
                "/"
            ),
            Err(BadRequest::SeveralAuthorizations)
        );
        assert!(run(&[("host", "a"), ("authorization", "Basic eDp5")], "/").is_ok());
    }

    #[test]
    fn overrides_are_collected() {
        let mut out = Vec::new();
        method_overrides(
            &headers(&[
                ("x-http-method-override", "DELETE"),
                ("x-method-override", "BREW"),
            ]),
            Some("a=1&_method=put"),
            &mut out,
        );
        assert_eq!(out, vec![method_index("DELETE"), None, method_index("PUT")]);
        let mut out = Vec::new();
        method_overrides(&headers(&[("x_http_method", "PATCH")]), None, &mut out);
        assert_eq!(out, vec![method_index("PATCH")]);
    }
}
