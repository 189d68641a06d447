//! The access log: one event per request (target `scopegate::access`), written when the
//! response body has been sent or abandoned, so that it can carry the bytes sent and the
//! full duration. Everything a client sent is bounded and escaped before it is logged; the
//! query string and credentials never are.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::gateway::body::{BodyError, GatewayBody};

/// The longest user agent logged, in characters; longer ones are cut with `...`.
pub const MAX_USER_AGENT: usize = 200;
/// The longest path logged, in characters.
pub const MAX_PATH: usize = 512;

/// One request's line, filled in as the request is handled.
#[derive(Debug)]
pub struct AccessRecord {
    pub token: String,
    pub account: String,
    pub api: String,
    pub method: &'static str,
    /// Path without the query string, escaped and bounded ([`printable`]).
    pub path: String,
    pub status: u16,
    pub decision: &'static str,
    pub reason: &'static str,
    /// The client address (see `client_addr`): `ip:port` of the connection's peer, or the
    /// bare address of a client behind trusted proxies.
    pub client: String,
    pub user_agent: String,
    /// The declared `Content-Length` of the request (0 without one).
    pub declared_request_bytes: u64,
    /// Request body bytes forwarded upstream, counted as they stream.
    pub forwarded_request_bytes: Arc<AtomicU64>,
    pub forwarded: bool,
    pub response_bytes: u64,
    pub start: Instant,
    /// From sending upstream to the upstream's response headers.
    pub upstream_us: Option<u64>,
    /// The upstream's address, when the exchange with it failed (502/504).
    pub upstream: Option<String>,
}

impl AccessRecord {
    /// Starts the record of a request: what is known before any phase ran.
    pub fn begin(
        req: &http::Request<hyper::body::Incoming>,
        client: String,
        start: Instant,
    ) -> AccessRecord {
        let headers = req.headers();
        let user_agent = headers.get(http::header::USER_AGENT).map_or_else(
            || "-".to_owned(),
            |v| printable(v.as_bytes(), MAX_USER_AGENT),
        );
        let declared_request_bytes = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        AccessRecord {
            token: String::new(),
            account: String::new(),
            api: String::new(),
            method: crate::domain::model::method_label(req.method()),
            path: printable(req.uri().path().as_bytes(), MAX_PATH),
            status: 0,
            decision: "",
            reason: "",
            client,
            user_agent,
            declared_request_bytes,
            forwarded_request_bytes: Arc::default(),
            forwarded: false,
            response_bytes: 0,
            start,
            upstream_us: None,
            upstream: None,
        }
    }

    fn emit(&self) {
        // A forwarded body is counted as it streams; a refused one was never read (or
        // only drained), so its declared size stands.
        let request_bytes = if self.forwarded {
            self.forwarded_request_bytes.load(Ordering::Relaxed)
        } else {
            self.declared_request_bytes
        };
        let duration_us = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        tracing::info!(
            target: "scopegate::access",
            token = self.token.as_str(),
            account = self.account.as_str(),
            api = self.api.as_str(),
            method = self.method,
            path = self.path.as_str(),
            status = self.status,
            decision = self.decision,
            reason = self.reason,
            client = %self.client,
            user_agent = self.user_agent.as_str(),
            request_bytes,
            response_bytes = self.response_bytes,
            duration_us,
            upstream_us = self.upstream_us,
            upstream = self.upstream.as_deref(),
            "request"
        );
    }
}

/// Text a client sent, made safe for a log line: at most `max` characters, control
/// characters and non-ASCII escaped (`\u{..}`, `\x..` for bytes that are not UTF-8), so
/// that nothing can forge a line or hide behind look-alike characters. Quotes and
/// backslashes are left to the log format, which escapes them in its own way.
pub fn printable(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    let mut count = 0usize;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if count == max {
                out.push_str("...");
                return out;
            }
            count += 1;
            if c.is_ascii_graphic() || c == ' ' {
                out.push(c);
            } else {
                out.extend(c.escape_default());
            }
        }
        for b in chunk.invalid() {
            if count == max {
                out.push_str("...");
                return out;
            }
            count += 1;
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Runs [`AccessRecord::emit`] once, when dropped: hyper drops the body after its last
/// byte was written, or when the client went away.
#[derive(Debug)]
struct EmitOnDrop(Option<Box<AccessRecord>>);

impl Drop for EmitOnDrop {
    fn drop(&mut self) {
        if let Some(record) = self.0.take() {
            record.emit();
        }
    }
}

pin_project! {
    /// The response body with its access-log record (none when the log is off).
    pub struct Logged {
        #[pin]
        inner: GatewayBody,
        log: EmitOnDrop,
        // An HTTP/2 stream stays open (for the idle timeout) until its body is done.
        stream: Option<crate::gateway::h2_idle::OpenStream>,
    }
}

impl Logged {
    pub fn new(inner: GatewayBody, record: Option<Box<AccessRecord>>) -> Logged {
        Logged {
            inner,
            log: EmitOnDrop(record),
            stream: None,
        }
    }

    /// Keeps `stream` counted as open until this body is dropped.
    pub fn holding(mut self, stream: Option<crate::gateway::h2_idle::OpenStream>) -> Logged {
        self.stream = stream;
        self
    }
}

impl Body for Logged {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(record)) = (&polled, this.log.0.as_mut()) {
            if let Some(data) = frame.data_ref() {
                record.response_bytes += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn escapes_and_bounds_client_text() {
        assert_eq!(printable(b"curl/8.5.0", 200), "curl/8.5.0");
        assert_eq!(printable(b"a\"b\\c\nd", 200), "a\"b\\c\\nd");
        assert_eq!(printable(b"x\x1b[31m", 200), "x\\u{1b}[31m");
        assert_eq!(printable(b"\xff\xfeok", 200), "\\xff\\xfeok");
        assert_eq!(printable("é".as_bytes(), 200), "\\u{e9}");
        assert_eq!(printable(&[b'a'; 300], 5), "aaaaa...");
        assert_eq!(printable(b"abc", 3), "abc");
    }
}
