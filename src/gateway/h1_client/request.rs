//! Writing a request to the upstream: the head, then the body in the framing hyper's
//! client chose for the same request (its `set_length`), so the upstream sees what it saw
//! before this client replaced hyper's on the owned connections.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::Error;
use crate::gateway::body::BodyError;

/// Body bytes gathered before a write; larger data frames are written as they are.
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

/// Chooses the framing (and adds the field it needs), as hyper's client did: a body that
/// is already over sends nothing; a stated `Content-Length` is used; a body of known size
/// gets one; a body of unknown size is chunked, except on `GET`, `HEAD` and `CONNECT`, which
/// send none.
fn framing<B: Body>(method: &Method, headers: &mut HeaderMap, body: &B) -> Framing {
    if body.is_end_stream() {
        return Framing::None;
    }
    if headers.contains_key(header::CONTENT_LENGTH) {
        return Framing::Length;
    }
    if let Some(len) = body.size_hint().exact() {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        return Framing::Length;
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::CONNECT) {
        return Framing::None;
    }
    headers.insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    Framing::Chunked
}

/// The request line and fields, in the map's order.
fn encode_head(method: &Method, target: &str, headers: &HeaderMap, out: &mut Vec<u8>) {
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    out.reserve(method.as_str().len() + target.len() + 13 + fields + 2);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes `req` to `stream`, through `out` (empty, its capacity kept from the connection's
/// earlier requests). The head and whatever body is already at hand go in one write.
pub async fn send<B>(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    req: Request<B>,
) -> Result<(), Error>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin,
{
    let (mut parts, mut body) = req.into_parts();
    let framing = framing(&parts.method, &mut parts.headers, &body);
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    // What a sized body may still send: never more than its head said, whatever the body
    // yields (hyper's server already holds the client to it; this holds the upstream side).
    let mut allowed = match framing {
        Framing::Length => super::response::content_length(&parts.headers),
        Framing::None | Framing::Chunked => None,
    };
    out.clear();
    encode_head(&parts.method, target, &parts.headers, out);
    drop(parts);
    if framing != Framing::None {
        loop {
            // What the body has ready joins the pending bytes; it is only waited for
            // once they are written.
            let ready = poll_fn(|cx| {
                Poll::Ready(match Pin::new(&mut body).poll_frame(cx) {
                    Poll::Ready(frame) => Some(frame),
                    Poll::Pending => None,
                })
            })
            .await;
            let frame = match ready {
                Some(frame) => frame,
                None => {
                    write(stream, out).await?;
                    body.frame().await
                }
            };
            let data = match frame {
                None => break,
                Some(Err(e)) => return Err(Error::RequestBody(e)),
                // Trailers are not forwarded (hyper's client sent none either).
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
            };
            if let Some(allowed) = allowed.as_mut() {
                *allowed = allowed
                    .checked_sub(data.len() as u64)
                    .ok_or(Error::RequestBodyTooLong)?;
            }
            add_data(stream, out, data, framing).await?;
        }
        if framing == Framing::Chunked {
            out.extend_from_slice(b"0\r\n\r\n");
        }
    }
    let sent = write(stream, out).await;
    // A large body's buffer is not kept for the connection's lifetime.
    if out.capacity() > KEPT_BYTES {
        *out = Vec::new();
    }
    sent
}

/// Adds one data frame to the pending bytes, framed; a large one is written at once.
async fn add_data(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    data: Bytes,
    framing: Framing,
) -> Result<(), Error> {
    if data.is_empty() {
        return Ok(());
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(format!("{:X}\r\n", data.len()).as_bytes());
    }
    if data.len() >= GATHER_BYTES {
        write(stream, out).await?;
        stream.write_all(&data).await.map_err(Error::Io)?;
    } else {
        out.extend_from_slice(&data);
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"\r\n");
    }
    if out.len() >= GATHER_BYTES {
        write(stream, out).await?;
    }
    Ok(())
}

async fn write(stream: &mut TcpStream, out: &mut Vec<u8>) -> Result<(), Error> {
    if out.is_empty() {
        return Ok(());
    }
    stream.write_all(out).await.map_err(Error::Io)?;
    out.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use tokio::io::AsyncReadExt;

    /// What an upstream receives when `body` is sent under `content_length`.
    async fn sent(content_length: &str, body: &'static str) -> (Result<(), Error>, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut upstream, _) = listener.accept().await.unwrap();
        let req = Request::post("/x")
            .header(header::CONTENT_LENGTH, content_length)
            .body(Full::new(Bytes::from(body)).map_err(|never| match never {}))
            .unwrap();
        let result = send(&mut stream, &mut Vec::new(), req).await;
        drop(stream);
        let mut received = String::new();
        upstream.read_to_string(&mut received).await.unwrap();
        (result, received)
    }

    #[tokio::test]
    async fn a_sized_body_goes_with_its_head_and_never_past_its_length() {
        let (result, received) = sent("10", "0123456789").await;
        assert!(result.is_ok());
        assert_eq!(
            received,
            "POST /x HTTP/1.1\r\ncontent-length: 10\r\n\r\n0123456789"
        );
        let (result, received) = sent("4", "0123456789").await;
        assert!(matches!(result, Err(Error::RequestBodyTooLong)));
        assert_eq!(received, "", "nothing reaches the upstream");
    }

    #[test]
    fn the_head_is_the_request_line_and_the_fields_in_order() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("up:8080"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        let mut out = Vec::new();
        encode_head(&Method::PATCH, "/a/b?c=d", &headers, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "PATCH /a/b?c=d HTTP/1.1\r\nhost: up:8080\r\nx-a: 1\r\nx-a: 2\r\naccept: */*\r\n\r\n"
        );
    }
}
