//! The HTTP/1.1 client of the owned upstream connections (`upstream_conn`), driven from the
//! request's own task.
//!
//! Why not hyper's client connection here: it runs each connection in a task of its own
//! and hands every request over a channel to it, and the response head back over another;
//! without that hop (a task wake-up, two channels, a dispatcher state machine) the gateway
//! runs 8 % fewer instructions per request (BENCHMARKS.md, round 5). Here the request's task
//! writes the request and reads the response head itself, and the response body reads
//! the socket when the client side polls it, in the same task again.
//!
//! What it speaks is what hyper's client spoke on these connections, kept byte for byte:
//! the same request line and field order, the same body framing rules, the same limits on
//! the response head and on chunked framing, except that a `Content-Length` beside
//! `Transfer-Encoding` is removed (`response`). `tests/upstream_responses.rs` pins the
//! client-visible behaviour down.

mod body;
mod chunked;
mod request;
mod response;

use std::future::{poll_fn, Future};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use http::uri::Authority;
use http::{Method, Request, Response};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::gateway::body::{BodyError, RequestBody};

pub use body::ResponseBody;
pub use request::HeadFields;

/// Bytes a read asks for, at least.
const READ_BYTES: usize = 16 * 1024;

/// Why an exchange or a response body failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connection error")]
    Io(#[source] std::io::Error),
    /// The upstream closed the connection before a whole response head.
    #[error("the upstream closed the connection before a complete response head")]
    ClosedBeforeHead,
    /// The upstream closed the connection inside a body with a stated end.
    #[error("the upstream closed the connection inside the response body")]
    ClosedInBody,
    #[error("invalid response head: {0}")]
    InvalidHead(&'static str),
    #[error("response head over {} bytes or 100 fields", response::MAX_HEAD_BYTES)]
    HeadTooLarge,
    #[error("invalid chunked body: {0}")]
    InvalidBody(&'static str),
    /// The client's request body failed (too large, or the client went away).
    #[error("request body")]
    RequestBody(#[source] BodyError),
    /// The request body went past its `Content-Length` or ended short of it, or the length
    /// is not one number: nothing more is written, and the connection is closed rather
    /// than left out of step with the upstream.
    #[error("request framing: {0}")]
    RequestLength(&'static str),
}

/// An open connection to an upstream, idle or in use by one exchange.
#[derive(Debug)]
pub struct Connection {
    authority: Authority,
    stream: TcpStream,
    /// Bytes read from the upstream and not yet consumed.
    buf: BytesMut,
    /// The request bytes on their way out, kept (empty) for the next request.
    out: Vec<u8>,
}

/// Where an idle connection waits for the next request of its client connection. The
/// response body of an exchange puts its connection back here when it was read to its end
/// and the upstream keeps the connection open.
///
/// A connection lives in a box from its opening to its closing: it moves from the parking
/// slot to the exchange to the response body and back for every request, and a box moves
/// as one pointer.
pub type Parking = Arc<Mutex<Option<Box<Connection>>>>;

impl Connection {
    /// A connection over `stream`, which is connected to `authority`.
    pub fn new(authority: Authority, stream: TcpStream) -> Box<Connection> {
        Box::new(Connection {
            authority,
            stream,
            buf: BytesMut::new(),
            out: Vec::new(),
        })
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Whether an idle connection may carry a request: the upstream has neither closed it
    /// nor sent anything unasked. Costs no system call unless the socket became readable.
    pub fn is_usable(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Reads more bytes into the buffer: `Ok(false)` at the end of the stream.
    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, Error>> {
        if self.buf.capacity() - self.buf.len() < READ_BYTES / 4 {
            self.buf.reserve(READ_BYTES);
        }
        let read = std::pin::pin!(self.stream.read_buf(&mut self.buf));
        match ready!(read.poll(cx)) {
            Ok(0) => Poll::Ready(Ok(false)),
            Ok(_) => Poll::Ready(Ok(true)),
            Err(e) => Poll::Ready(Err(Error::Io(e))),
        }
    }

    /// Puts the connection in `parking` when it may carry another request.
    fn park_if(self: Box<Self>, keep_alive: bool, parking: &Parking) {
        // Bytes after the end of a response were never asked for: the connection is
        // out of step with the upstream, and is closed.
        if keep_alive && self.buf.is_empty() {
            if let Ok(mut slot) = parking.lock() {
                *slot = Some(self);
            }
        }
    }
}

/// Sends `req` (origin-form target) with `fields` (`Host` among them) over `conn` and reads
/// the response head.
/// The response's body reads the rest, then parks the connection in `parking` if it can be
/// used again. Nothing is re-sent on failure: the connection is then dropped (closed).
///
/// The response is read while the request body is still being written (RFC 9112 §9.5): an
/// upstream that answers early (a `413`, then closes) is heard rather than turned into a
/// failed write, and one that streams its answer as it reads is not deadlocked. A response
/// that came before the whole request went out keeps the rest of the body flowing while it
/// is read, and its connection is never used again.
pub async fn exchange(
    mut conn: Box<Connection>,
    req: Request<RequestBody>,
    fields: HeadFields,
    parking: &Parking,
) -> Result<Response<ResponseBody>, Error> {
    let method = req.method().clone();
    // The write waits for the end of the worker's current round of ready tasks, so the
    // requests that arrived together reach the upstream together: a sleeping upstream is
    // woken once for them, not once each (the wake-up is paid by the sender, in the
    // kernel). hyper's connection task got this by running after the request tasks; without
    // it this client cost 3 % more CPU per request than hyper's, with it 5 % less
    // (BENCHMARKS.md, round 5). Yielding again before the response is written cost 10 %.
    tokio::task::yield_now().await;
    let mut sending = Some(request::Sender::new(req, &fields, &mut conn.out)?);
    drop(fields);
    let mut write_failed = None;
    let head = poll_fn(|cx| conn.poll_head(cx, &method, &mut sending, &mut write_failed)).await?;
    // Still sending, or the write failed: the upstream's view of the request may not end
    // where ours does, so the connection is not used again.
    let keep_alive = head.keep_alive && sending.is_none() && write_failed.is_none();
    let body = ResponseBody::new(
        conn,
        head.framing,
        keep_alive,
        sending.map(Box::new),
        parking,
    );
    Ok(head.response.map(|()| body))
}

impl Connection {
    /// Drives the request out while reading the response head; ready with the final head.
    /// A failed write ends the sending, but not the exchange: the upstream may have
    /// answered before it closed, and that answer is what the client should get.
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        method: &Method,
        sending: &mut Option<request::Sender<RequestBody>>,
        write_failed: &mut Option<Error>,
    ) -> Poll<Result<response::Head, Error>> {
        loop {
            if let Some(sender) = sending.as_mut() {
                match sender.poll_send(cx, &mut self.stream, &mut self.out) {
                    Poll::Pending => {}
                    Poll::Ready(Ok(())) => *sending = None,
                    Poll::Ready(Err(Error::Io(e))) => {
                        *sending = None;
                        *write_failed = Some(Error::Io(e));
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                }
            }
            match response::parse(&mut self.buf, method)? {
                response::Parsed::Final(head) => return Poll::Ready(Ok(head)),
                response::Parsed::Interim(len) => {
                    self.buf.advance(len);
                    continue;
                }
                response::Parsed::Partial => {}
            }
            match ready!(self.poll_read_more(cx)) {
                Ok(true) => {}
                Ok(false) => {
                    return Poll::Ready(Err(write_failed.take().unwrap_or(Error::ClosedBeforeHead)))
                }
                Err(e) => return Poll::Ready(Err(write_failed.take().unwrap_or(e))),
            }
        }
    }
}
