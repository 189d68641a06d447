//! Writing a request to the upstream: the head, then the body in the framing hyper's
//! client chose for the same request (its `set_length`), so the upstream sees what it saw
//! before this client replaced hyper's on the owned connections.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request};
use http_body::{Body, Frame};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use super::Error;
use crate::gateway::body::BodyError;

/// Body bytes gathered before a write (more are not taken from the body until they are
/// written).
const GATHER_BYTES: usize = 16 * 1024;
/// The write buffer kept between a connection's requests, at most (a request head).
const KEPT_BYTES: usize = 8 * 1024;

/// How the request body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body bytes at all.
    None,
    /// As many bytes as `Content-Length` says.
    Length,
    /// The chunked transfer coding (a body of unknown length).
    Chunked,
}

/// Chooses the framing, as hyper's client did: a body that is already over sends nothing;
/// a stated `Content-Length` is used; a body of known size gets one (the length returned,
/// for the head); a body of unknown size is chunked, except on `GET`, `HEAD` and `CONNECT`,
/// which send none.
///
/// The framing is this function's to choose: a `Transfer-Encoding` left in the fields
/// (`forward::prepare` strips it as hop-by-hop) is never written (see [`encode_head`]), so it
/// cannot frame the body differently from the `Content-Length` chosen here and split the
/// request on the upstream's side.
fn framing<B: Body>(method: &Method, headers: &HeaderMap, body: &B) -> (Framing, Option<u64>) {
    if body.is_end_stream() {
        return (Framing::None, None);
    }
    if headers.contains_key(header::CONTENT_LENGTH) {
        return (Framing::Length, None);
    }
    if let Some(len) = body.size_hint().exact() {
        return (Framing::Length, Some(len));
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::CONNECT) {
        return (Framing::None, None);
    }
    (Framing::Chunked, None)
}

/// Fields the gateway writes into a request head itself, around the request's own map:
/// `Host` right after the request line (RFC 9112 §3.2 wants it first), the fields it
/// asserts after the client's. Written here rather than inserted into the map: each insert
/// hashes its name into the map and probes it, about 230 instructions, six times a request
/// (BENCHMARKS.md, round 9). The map's own `Host`, and its `Authorization` when asked, are
/// left out of the head, as a removal from the map would.
#[derive(Default)]
pub struct HeadFields {
    /// `name: value` lines, CRLF-terminated.
    lines: Vec<u8>,
    /// How many bytes of `lines` go right after the request line.
    lead: usize,
    omit_host: bool,
    omit_authorization: bool,
}

impl HeadFields {
    /// Fields that start with `Host: host`, in place of the map's.
    pub fn with_host(host: &HeaderValue, omit_authorization: bool) -> HeadFields {
        let mut fields = HeadFields {
            lines: Vec::with_capacity(256),
            lead: 0,
            omit_host: true,
            omit_authorization,
        };
        fields.push(&header::HOST, host);
        fields.lead = fields.lines.len();
        fields
    }

    /// Adds a field after the request's own (both are valid by construction: no CR or LF).
    pub fn push(&mut self, name: &HeaderName, value: &HeaderValue) {
        write_field(&mut self.lines, name, value);
    }

    /// Whether the map's field `name` stays out of the head. `Transfer-Encoding` always
    /// does: the framing is [`framing`]'s to choose.
    fn omits(&self, name: &HeaderName) -> bool {
        *name == header::TRANSFER_ENCODING
            || (self.omit_host && *name == header::HOST)
            || (self.omit_authorization && *name == header::AUTHORIZATION)
    }
}

/// One `name: value` line.
fn write_field(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Room for the framing field `encode_head` may add (`content-length: ` and 20 digits, or
/// `transfer-encoding: chunked`) and the blank line.
const FRAMING_FIELD_ROOM: usize = 40;

/// The request line, the lead fields, the map's fields in its order (less those omitted),
/// the other added fields, then the framing field the head needs.
fn encode_head(
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    fields: &HeadFields,
    framing: (Framing, Option<u64>),
    out: &mut Vec<u8>,
) {
    let map_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    out.reserve(
        method.as_str().len()
            + target.len()
            + 13
            + map_bytes
            + fields.lines.len()
            + FRAMING_FIELD_ROOM,
    );
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let (lead, rest) = fields.lines.split_at(fields.lead);
    out.extend_from_slice(lead);
    for (name, value) in headers {
        if !fields.omits(name) {
            write_field(out, name, value);
        }
    }
    out.extend_from_slice(rest);
    match framing {
        (Framing::Chunked, _) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        (Framing::Length, Some(len)) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        _ => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// A request on its way to the upstream: its head is encoded at once, its body is framed
/// and written as it arrives. A poll-driven machine rather than an `async fn`, so that the
/// exchange can read the response while the body is still being sent (RFC 9112 §9.5: an
/// upstream may answer early, e.g. `413`, and close; or stream its answer as it reads).
pub struct Sender<B> {
    body: B,
    framing: Framing,
    /// What a sized body may still send: never more than its head said, whatever the body
    /// yields (hyper's server already holds the client to it; this holds the upstream side).
    allowed: Option<u64>,
    /// The body has ended and its last bytes are in the write buffer.
    body_done: bool,
    /// How much of the write buffer has been written.
    written: usize,
}

impl<B> std::fmt::Debug for Sender<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("framing", &self.framing)
            .field("allowed", &self.allowed)
            .field("body_done", &self.body_done)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl<B> Sender<B>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin,
{
    /// Encodes `req`'s head, with `fields`, into `out` (empty, its capacity kept from the
    /// connection's earlier requests); nothing is written yet.
    pub fn new(
        req: Request<B>,
        fields: &HeadFields,
        out: &mut Vec<u8>,
    ) -> Result<Sender<B>, Error> {
        let (parts, body) = req.into_parts();
        let chosen = framing(&parts.method, &parts.headers, &body);
        let allowed = match chosen {
            (Framing::Length, Some(len)) => Some(len),
            (Framing::Length, None) => {
                Some(super::response::content_length(&parts.headers).ok_or(
                    Error::RequestLength("a Content-Length that is not one number"),
                )?)
            }
            (Framing::None | Framing::Chunked, _) => None,
        };
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        out.clear();
        encode_head(&parts.method, target, &parts.headers, fields, chosen, out);
        Ok(Sender {
            body,
            framing: chosen.0,
            allowed,
            body_done: chosen.0 == Framing::None,
            written: 0,
        })
    }

    /// Writes what is ready, and takes more of the body while the pending bytes are few:
    /// the head and whatever body is already at hand go in one write. Ready once the whole
    /// request is written.
    pub fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut TcpStream,
        out: &mut Vec<u8>,
    ) -> Poll<Result<(), Error>> {
        loop {
            if !self.body_done && out.len() - self.written < GATHER_BYTES {
                if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
                    self.add(frame, out)?;
                    continue;
                }
            }
            if self.written < out.len() {
                match ready!(Pin::new(&mut *stream).poll_write(cx, &out[self.written..])) {
                    Ok(0) => return Poll::Ready(Err(Error::Io(io::ErrorKind::WriteZero.into()))),
                    Ok(n) => self.written += n,
                    Err(e) => return Poll::Ready(Err(Error::Io(e))),
                }
                if self.written == out.len() {
                    out.clear();
                    self.written = 0;
                }
                continue;
            }
            if !self.body_done {
                // The body has nothing yet and everything before it is written.
                return Poll::Pending;
            }
            // A large body's buffer is not kept for the connection's lifetime.
            if out.capacity() > KEPT_BYTES {
                *out = Vec::new();
            }
            return Poll::Ready(Ok(()));
        }
    }

    /// Adds what the body yielded to the pending bytes, framed.
    fn add(
        &mut self,
        frame: Option<Result<Frame<Bytes>, BodyError>>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let data = match frame {
            None => {
                // A body that ends short of its `Content-Length` would leave the upstream
                // waiting for the rest, and reading the next request as it.
                if self.allowed.is_some_and(|left| left > 0) {
                    return Err(Error::RequestLength(
                        "a request body shorter than its Content-Length",
                    ));
                }
                if self.framing == Framing::Chunked {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                self.body_done = true;
                return Ok(());
            }
            Some(Err(e)) => return Err(Error::RequestBody(e)),
            // Trailers are not forwarded (hyper's client sent none either).
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => return Ok(()),
            },
        };
        if let Some(allowed) = self.allowed.as_mut() {
            *allowed = allowed
                .checked_sub(data.len() as u64)
                .ok_or(Error::RequestLength(
                    "a request body longer than its Content-Length",
                ))?;
        }
        if data.is_empty() {
            return Ok(());
        }
        if self.framing == Framing::Chunked {
            out.extend_from_slice(format!("{:X}\r\n", data.len()).as_bytes());
        }
        out.extend_from_slice(&data);
        if self.framing == Framing::Chunked {
            out.extend_from_slice(b"\r\n");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use tokio::io::AsyncReadExt;

    /// Writes `req` over `stream` the way an exchange does.
    async fn send<B>(stream: &mut TcpStream, req: Request<B>) -> Result<(), Error>
    where
        B: Body<Data = Bytes, Error = BodyError> + Unpin,
    {
        let mut out = Vec::new();
        let mut sender = Sender::new(req, &HeadFields::default(), &mut out)?;
        std::future::poll_fn(|cx| sender.poll_send(cx, stream, &mut out)).await
    }

    /// What an upstream receives when `body` is sent under `content_length` (and
    /// `transfer_encoding`, when given).
    async fn sent(
        content_length: &str,
        transfer_encoding: Option<&str>,
        body: &'static str,
    ) -> (Result<(), Error>, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut upstream, _) = listener.accept().await.unwrap();
        let mut req = Request::post("/x").header(header::CONTENT_LENGTH, content_length);
        if let Some(te) = transfer_encoding {
            req = req.header(header::TRANSFER_ENCODING, te);
        }
        let req = req
            .body(Full::new(Bytes::from(body)).map_err(|never| match never {}))
            .unwrap();
        let result = send(&mut stream, req).await;
        drop(stream);
        let mut received = String::new();
        upstream.read_to_string(&mut received).await.unwrap();
        (result, received)
    }

    #[tokio::test]
    async fn a_sized_body_goes_with_its_head_and_never_past_its_length() {
        let (result, received) = sent("10", None, "0123456789").await;
        assert!(result.is_ok());
        assert_eq!(
            received,
            "POST /x HTTP/1.1\r\ncontent-length: 10\r\n\r\n0123456789"
        );
        let (result, received) = sent("4", None, "0123456789").await;
        assert!(matches!(result, Err(Error::RequestLength(_))));
        assert_eq!(received, "", "nothing reaches the upstream");
    }

    #[tokio::test]
    async fn a_body_short_of_its_length_is_an_error_and_its_head_stays_unsent() {
        let (result, received) = sent("10", None, "0123").await;
        assert!(
            matches!(result, Err(Error::RequestLength(what)) if what.contains("shorter")),
            "{result:?}"
        );
        assert_eq!(received, "", "nothing reaches the upstream");
        let (result, received) = sent("ten", None, "0123").await;
        assert!(matches!(result, Err(Error::RequestLength(_))), "{result:?}");
        assert_eq!(received, "");
    }

    #[tokio::test]
    async fn a_transfer_encoding_left_in_the_fields_never_frames_the_body() {
        let (result, received) = sent("5", Some("chunked"), "hello").await;
        assert!(result.is_ok());
        assert_eq!(
            received,
            "POST /x HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello"
        );
    }

    /// The head `encode_head` writes, as text.
    fn encoded(
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        fields: &HeadFields,
        framing: (Framing, Option<u64>),
    ) -> String {
        let mut out = Vec::new();
        encode_head(method, target, headers, fields, framing, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_head_is_the_request_line_and_the_fields_in_order() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("up:8080"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        let fields = HeadFields::default();
        assert_eq!(
            encoded(
                &Method::PATCH,
                "/a/b?c=d",
                &headers,
                &fields,
                (Framing::None, None)
            ),
            "PATCH /a/b?c=d HTTP/1.1\r\nhost: up:8080\r\nx-a: 1\r\nx-a: 2\r\naccept: */*\r\n\r\n"
        );
    }

    #[test]
    fn added_fields_replace_host_and_drop_authorization_and_transfer_encoding() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("client.example"));
        headers.append(header::HOST, HeaderValue::from_static("second.example"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YTpi"),
        );
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        let mut fields = HeadFields::with_host(&HeaderValue::from_static("up:8080"), true);
        fields.push(
            &HeaderName::from_static("x-forwarded-for"),
            &HeaderValue::from_static("192.0.2.1"),
        );
        assert_eq!(
            encoded(
                &Method::POST,
                "/a",
                &headers,
                &fields,
                (Framing::Length, Some(12))
            ),
            "POST /a HTTP/1.1\r\nhost: up:8080\r\naccept: */*\r\n\
             x-forwarded-for: 192.0.2.1\r\ncontent-length: 12\r\n\r\n"
        );
        // Kept when asked: only `Host` is replaced.
        let fields = HeadFields::with_host(&HeaderValue::from_static("up:8080"), false);
        assert_eq!(
            encoded(
                &Method::GET,
                "/a",
                &headers,
                &fields,
                (Framing::Chunked, None)
            ),
            "GET /a HTTP/1.1\r\nhost: up:8080\r\nauthorization: Basic YTpi\r\n\
             accept: */*\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }
}
