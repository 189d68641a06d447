//! Closes an HTTP/2 connection that has had no open stream for `timeouts.header_read`.
//!
//! hyper's HTTP/2 server has no idle timeout, and its keep-alive PINGs (answered by any
//! client) keep the connection busy: a client could open connections, send the preface and
//! one request, then hold them forever, each taking a slot of `limits.max_connections`.
//! HTTP/1.1 connections are bounded by hyper's header-read timer while they wait for their
//! next request; this does the same for HTTP/2. Streams are counted by the requests the
//! gateway serves (a response body ends its stream); a watchdog task, started when the
//! connection's first bytes are the HTTP/2 preface, checks once per timeout, so an idle connection is
//! closed between one and two timeouts after its last stream ended. Closing is an end of
//! input on the connection's reads ([`H2Reads`]): hyper then ends the connection, with no
//! stream in flight to lose.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::ReadBuf;

/// One connection's open HTTP/2 streams and its idle verdict.
#[derive(Debug)]
pub struct H2Idle {
    limit: Duration,
    born: Instant,
    open: AtomicUsize,
    /// Milliseconds after `born` when the last stream ended (or the first began).
    last_active_ms: AtomicU64,
    /// Set once the first HTTP/2 stream started the watchdog.
    watched: AtomicBool,
    /// The watchdog found the connection idle: its reads end.
    closing: AtomicBool,
    /// The connection task's waker, from its last read while watched.
    reader: Mutex<Option<Waker>>,
}

impl H2Idle {
    pub fn new(limit: Duration) -> Arc<H2Idle> {
        Arc::new(H2Idle {
            limit,
            born: Instant::now(),
            open: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(0),
            watched: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            reader: Mutex::new(None),
        })
    }

    /// The connection speaks HTTP/2: the watchdog starts (once).
    fn watch(self: &Arc<Self>) {
        if !self.watched.swap(true, Ordering::Relaxed) {
            self.touch();
            tokio::spawn(watchdog(Arc::downgrade(self), self.limit));
        }
    }

    /// An HTTP/2 stream began; it stays open until the returned guard is dropped (with
    /// the response body).
    pub fn stream_opened(self: &Arc<Self>) -> OpenStream {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.watch();
        OpenStream(self.clone())
    }

    fn touch(&self) {
        let now = self.born.elapsed().as_millis() as u64;
        self.last_active_ms.store(now, Ordering::Relaxed);
    }

    /// Whether the connection had no open stream for the whole limit.
    fn is_idle(&self) -> bool {
        let idle_ms = (self.born.elapsed().as_millis() as u64)
            .saturating_sub(self.last_active_ms.load(Ordering::Relaxed));
        self.open.load(Ordering::Relaxed) == 0 && idle_ms >= self.limit.as_millis() as u64
    }

    fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        if let Some(waker) = self.reader.lock().ok().and_then(|mut w| w.take()) {
            waker.wake();
        }
    }
}

/// Checks the connection once per limit until it is idle (then closes it) or gone.
async fn watchdog(conn: Weak<H2Idle>, limit: Duration) {
    loop {
        tokio::time::sleep(limit).await;
        let Some(conn) = conn.upgrade() else {
            return;
        };
        if conn.is_idle() {
            tracing::debug!("HTTP/2 connection idle for timeouts.header_read; closed");
            conn.close();
            return;
        }
    }
}

/// An open HTTP/2 stream; dropping it ends the stream's count.
#[derive(Debug)]
pub struct OpenStream(Arc<H2Idle>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.touch();
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The start of the HTTP/2 connection preface (RFC 9113 §3.4): no HTTP/1.1 request
/// begins so.
const PREFACE_START: &[u8] = b"PRI * HTTP/2.0";

/// A connection's reads as the idle timeout sees them: the first bytes are watched for
/// the preface (which starts the watchdog), and once the watchdog closes the connection
/// its reads end. Kept by the connection's I/O wrapper ([`crate::gateway::first_bytes`])
/// rather than wrapping the I/O itself: a layer of its own cost every HTTP/1.1 read a few
/// per cent of a request's instructions.
#[derive(Debug)]
pub struct H2Reads {
    idle: Arc<H2Idle>,
    /// Bytes of the preface's start matched so far; `None` once decided.
    sniffed: Option<usize>,
}

impl H2Reads {
    pub fn new(idle: Arc<H2Idle>) -> H2Reads {
        H2Reads {
            idle,
            sniffed: Some(0),
        }
    }

    /// Reads with `read` (the connection's own read).
    #[inline]
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        read: impl FnOnce(&mut Context<'_>, &mut ReadBuf<'_>) -> Poll<io::Result<()>>,
    ) -> Poll<io::Result<()>> {
        let idle = &*self.idle;
        if let Some(mut at) = self.sniffed {
            let before = buf.filled().len();
            let polled = read(cx, buf);
            for &b in &buf.filled()[before..] {
                if PREFACE_START.get(at) != Some(&b) {
                    self.sniffed = None;
                    return polled;
                }
                at += 1;
                if at == PREFACE_START.len() {
                    self.sniffed = None;
                    self.idle.watch();
                    return polled;
                }
            }
            self.sniffed = Some(at);
            return polled;
        }
        // HTTP/1.1 connections never start the watchdog: one load per read.
        if !idle.watched.load(Ordering::Relaxed) {
            return read(cx, buf);
        }
        if idle.closing.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        let polled = read(cx, buf);
        if polled.is_pending() {
            if let Ok(mut reader) = idle.reader.lock() {
                match reader.as_ref() {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *reader = Some(cx.waker().clone()),
                }
            }
            // The watchdog may have closed it between the check and the registration.
            if idle.closing.load(Ordering::Relaxed) {
                return Poll::Ready(Ok(()));
            }
        }
        polled
    }
}
