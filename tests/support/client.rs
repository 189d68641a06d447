//! Clients that talk to the gateway over TCP: a real HTTP client (hyper's), and raw
//! sockets for requests a client library would normalize; Basic credentials.

use std::net::SocketAddr;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Fixture, Harness};

pub fn basic(f: &Fixture) -> String {
    basic_raw(f.sid, f.secret)
}

pub fn basic_raw(sid: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{sid}:{secret}"))
    )
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends a request with a real HTTP client (hyper's pooled client) over TCP.
pub async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    try_send_body(method, url, headers, body)
        .await
        .expect("request reached the gateway")
}

/// Like [`send`] without a body, for a server that may not answer yet: `None` when
/// nothing answered within 30 s.
pub async fn try_send(method: &str, url: &str, headers: &[(&str, &str)]) -> Option<Reply> {
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        try_send_body(method, url, headers, ""),
    )
    .await
    .ok()?
}

async fn try_send_body(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<Reply> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).ok()?;
    let resp = client.request(req).await.ok()?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Some(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// A proxied GET with Basic credentials: the status the client sees.
pub async fn proxy_get(h: &Harness, sid: &str, secret: &str, path: &str) -> u16 {
    let auth = basic_raw(sid, secret);
    send("GET", &h.url(path), &[("authorization", &auth)], "")
        .await
        .status
        .as_u16()
}

pub async fn get(url: &str, auth: Option<&Fixture>) -> Reply {
    match auth {
        Some(f) => send("GET", url, &[("authorization", &basic(f))], "").await,
        None => send("GET", url, &[], "").await,
    }
}

/// Writes raw bytes on a fresh connection and reads one response (the server closes or
/// the response is complete by Content-Length).
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_response(&mut stream).await.expect("a response")
}

/// Reads one HTTP/1.1 response (head + Content-Length body) from a stream.
pub async fn read_response<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<Reply> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    resp.parse(&buf[..head_end]).ok()?;
    let status = StatusCode::from_u16(resp.code?).ok()?;
    let mut map = HeaderMap::new();
    for h in resp.headers.iter() {
        map.append(
            http::HeaderName::from_bytes(h.name.as_bytes()).ok()?,
            http::HeaderValue::from_bytes(h.value).ok()?,
        );
    }
    let len: usize = map
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Some(Reply {
        status,
        headers: map,
        body: Bytes::from(body),
    })
}

/// Reads one message head, up to and including the blank line, byte by byte (so nothing
/// after it is consumed); `None` if the peer closes first.
pub async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut b).await.unwrap_or(0) == 0 {
            return None;
        }
        head.push(b[0]);
    }
    Some(head)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads until the peer closes; true if it closed (EOF) rather than sending more.
pub async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// An HTTP/2 prior-knowledge (h2c) client connection to `addr`, and the task driving it
/// (finished once the connection is closed).
pub async fn h2c<B>(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<B>,
    tokio::task::JoinHandle<hyper::Result<()>>,
)
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.unwrap();
    let (h2, conn) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    (h2, tokio::spawn(conn))
}
