//! Reading an upstream's response head: the status line and fields, how its body is
//! framed (RFC 9112 §6.3), and whether the connection may carry another request.
//!
//! The rules are hyper's client's, which this replaced on the owned connections, with one
//! stricter step: a `Content-Length` beside a `Transfer-Encoding` is removed (RFC 9112
//! §6.3 ¶3), so the client never gets a length that disagrees with the body it receives,
//! and such a connection is not used again.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};

use super::Error;

/// The largest response head read (hyper's default read buffer limit).
pub const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;
/// Header fields in a response head, at most (hyper's default).
const MAX_FIELDS: usize = 100;
/// Fields the gateway adds to a forwarded answer: `RateLimit-Policy`, `RateLimit`,
/// `RateLimit-Limit`, `-Remaining`, `-Reset` (`ratelimit::set_headers`), and one spare.
const GATEWAY_ADDED_FIELDS: usize = 6;

/// How the body after a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// This many bytes (0: no body at all).
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// A final response head.
#[derive(Debug)]
pub struct Head {
    pub response: Response<()>,
    pub framing: Framing,
    /// Whether the connection may carry another request once the body is read.
    pub keep_alive: bool,
}

/// What the front of the read buffer holds.
#[derive(Debug)]
pub enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// An interim (1xx) response of this many bytes, to skip.
    Interim(usize),
    /// The final response head, taken off the buffer.
    Final(Head),
}

/// Parses the response head at the front of `buf`, taking a final head off it. `method`:
/// the request's, which decides whether the response can have a body at all (`HEAD`,
/// a 2xx to `CONNECT`).
pub fn parse(buf: &mut BytesMut, method: &Method) -> Result<Parsed, Error> {
    // Left uninitialized: the parser writes the fields it finds, and filling 100 empty
    // ones first (3 KiB) for the usual handful is wasted on every response.
    let mut fields = [const { MaybeUninit::uninit() }; MAX_FIELDS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
            return Err(Error::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::HeadTooLarge),
        Err(e) => return Err(Error::InvalidHead(syntax_error(e))),
    };
    let code = parsed.code.unwrap_or_default();
    let status = StatusCode::from_u16(code).map_err(|_| Error::InvalidHead("invalid status"))?;
    if matches!(code, 100 | 102..=199) {
        return Ok(Parsed::Interim(len));
    }
    let version = match parsed.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    let reason = parsed.reason.unwrap_or_default();
    let reason = (Some(reason) != status.canonical_reason())
        .then(|| hyper::ext::ReasonPhrase::try_from(reason.as_bytes()).ok())
        .flatten();
    // Offsets into the head, so the values can share the head's bytes once it is taken off.
    let base = buf.as_ptr() as usize;
    let offsets: Vec<(usize, usize, usize, usize)> = parsed
        .headers
        .iter()
        .map(|f| {
            let name = f.name.as_ptr() as usize - base;
            let value = f.value.as_ptr() as usize - base;
            (name, name + f.name.len(), value, value + f.value.len())
        })
        .collect();
    let head_bytes: Bytes = buf.split_to(len).freeze();
    // Room for the fields the gateway adds to every answer (the rate-limit fields), so
    // adding them does not grow the map, which rehashes every name already in it.
    let mut headers = HeaderMap::with_capacity(offsets.len() + GATEWAY_ADDED_FIELDS);
    let mut keep_alive = version == Version::HTTP_11;
    let mut saw_close = false;
    let mut seen = Seen::default();
    for (name_start, name_end, value_start, value_end) in offsets {
        let name = HeaderName::from_bytes(&head_bytes[name_start..name_end])
            .map_err(|_| Error::InvalidHead("invalid field name"))?;
        let value = HeaderValue::from_maybe_shared(head_bytes.slice(value_start..value_end))
            .map_err(|_| Error::InvalidHead("invalid field value"))?;
        if name == header::CONNECTION {
            let options = ConnectionOptions::of(&value);
            // Once any `Connection` field asks to close, a later `keep-alive` cannot undo it.
            if saw_close || options.close {
                saw_close = true;
                keep_alive = false;
            } else if !keep_alive {
                keep_alive = options.keep_alive;
            }
            // Hop-by-hop, and naming no other field to remove with it: the map never needs
            // it (`forward::clean_response` would remove it again).
            if !options.names_fields {
                continue;
            }
        } else if name == header::TRANSFER_ENCODING {
            seen.transfer_encoding = true;
        } else if name == header::CONTENT_LENGTH {
            seen.content_length = true;
        }
        headers.append(name, value);
    }
    let framing = framing(status, version, method, seen, &mut headers, &mut keep_alive)?;
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    if let Some(reason) = reason {
        response.extensions_mut().insert(reason);
    }
    Ok(Parsed::Final(Head {
        response,
        framing,
        keep_alive,
    }))
}

/// The body's framing, RFC 9112 §6.3 in order.
fn framing(
    status: StatusCode,
    version: Version,
    method: &Method,
    seen: Seen,
    headers: &mut HeaderMap,
    keep_alive: &mut bool,
) -> Result<Framing, Error> {
    // A 101, or a 2xx to CONNECT (RFC 9110 §9.3.6, whatever its length fields say): the
    // connection is a tunnel now, and the owned route never asks for one.
    if status == StatusCode::SWITCHING_PROTOCOLS
        || (*method == Method::CONNECT && status.is_success())
    {
        *keep_alive = false;
        return Ok(Framing::Length(0));
    }
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Length(0));
    }
    if seen.transfer_encoding {
        if version == Version::HTTP_10 {
            return Err(Error::InvalidHead(
                "Transfer-Encoding in an HTTP/1.0 response",
            ));
        }
        if headers.remove(header::CONTENT_LENGTH).is_some() {
            *keep_alive = false;
        }
        let chunked_last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
        if chunked_last {
            return Ok(Framing::Chunked);
        }
        *keep_alive = false;
        return Ok(Framing::UntilClose);
    }
    if seen.content_length {
        let stated = stated_length(headers).ok_or(Error::InvalidHead("invalid Content-Length"))?;
        // `5, 5`, or the field twice, is one length (RFC 9110 §8.6): the client is told it
        // once, so no parser after the gateway can read it another way.
        if stated.repeated {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(stated.length));
        }
        return Ok(Framing::Length(stated.length));
    }
    *keep_alive = false;
    Ok(Framing::UntilClose)
}

/// The one length every `Content-Length` field and list element states, if they agree and
/// each is plain digits.
pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    stated_length(headers).map(|stated| stated.length)
}

/// A length the `Content-Length` fields agree on, and whether it took more than one
/// element to say it (`5, 5`, or the field twice).
struct StatedLength {
    length: u64,
    repeated: bool,
}

fn stated_length(headers: &HeaderMap) -> Option<StatedLength> {
    let mut length = None;
    let mut elements = 0;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for element in value.as_bytes().split(|b| *b == b',') {
            let element = element.trim_ascii();
            if element.is_empty() {
                return None;
            }
            // Plain digits only (no sign, no space inside), and no overflow.
            let n = element.iter().try_fold(0u64, |n, &digit| {
                digit
                    .is_ascii_digit()
                    .then(|| n.checked_mul(10)?.checked_add(u64::from(digit - b'0')))
                    .flatten()
            })?;
            if *length.get_or_insert(n) != n {
                return None;
            }
            elements += 1;
        }
    }
    length.map(|length| StatedLength {
        length,
        repeated: elements > 1,
    })
}

/// What is wrong with a head httparse refused, in a few words.
fn syntax_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid field name",
        httparse::Error::HeaderValue => "invalid field value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status line",
        httparse::Error::Version => "not an HTTP/1.x response",
        _ => "invalid response head",
    }
}

/// The framing fields a head has, noted while its fields are read (a lookup each, saved).
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    transfer_encoding: bool,
    content_length: bool,
}

/// What one `Connection` field says (RFC 9110 §7.6.1): its options, compared without case.
#[derive(Debug, Default, PartialEq, Eq)]
struct ConnectionOptions {
    close: bool,
    keep_alive: bool,
    /// Some option is neither `close` nor `keep-alive`: a field name, to be removed with
    /// the `Connection` field itself.
    names_fields: bool,
}

impl ConnectionOptions {
    fn of(value: &HeaderValue) -> ConnectionOptions {
        let mut options = ConnectionOptions::default();
        for option in value.as_bytes().split(|b| *b == b',') {
            let option = option.trim_ascii();
            if option.eq_ignore_ascii_case(b"close") {
                options.close = true;
            } else if option.eq_ignore_ascii_case(b"keep-alive") {
                options.keep_alive = true;
            } else if !option.is_empty() {
                options.names_fields = true;
            }
        }
        options
    }
}

#[cfg(test)]
mod tests;
