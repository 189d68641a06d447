//! Closes an HTTP/2 connection that has had no open stream for `timeouts.header_read`.
//!
//! hyper's HTTP/2 server has no idle timeout, and its keep-alive PINGs (answered by any
//! client) keep the connection busy: a client could open connections, send the preface and
//! one request, then hold them forever, each taking a slot of `limits.max_connections`.
//! HTTP/1.1 connections are bounded by hyper's header-read timer while they wait for their
//! next request; this does the same for HTTP/2. Streams are counted by the requests the
//! gateway serves (a response body ends its stream); a watchdog task, started when the
//! connection's first bytes are the HTTP/2 preface, checks once per timeout, so an idle connection is
//! closed between one and two timeouts after its last stream ended. Closing is hyper's
//! graceful shutdown, run by the connection's task (`server::serve_http`): GOAWAY, then the
//! streams still open (a response whose last bytes wait on flow control) finish sending.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::ReadBuf;
use tokio::sync::Notify;

/// One connection's open HTTP/2 streams and its idle verdict.
#[derive(Debug)]
pub struct H2Idle {
    limit: Duration,
    born: Instant,
    open: AtomicUsize,
    /// Milliseconds after `born` when the last stream ended (or the watchdog started).
    last_active_ms: AtomicU64,
    /// Set once the preface (or a first stream) started the watchdog.
    watched: AtomicBool,
    /// Told once the connection is found idle: its task shuts it down gracefully.
    found_idle: Notify,
}

impl H2Idle {
    pub fn new(limit: Duration) -> Arc<H2Idle> {
        Arc::new(H2Idle {
            limit,
            born: Instant::now(),
            open: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(0),
            watched: AtomicBool::new(false),
            found_idle: Notify::new(),
        })
    }

    /// The connection speaks HTTP/2: the watchdog starts (once).
    fn watch(self: &Arc<Self>) {
        if !self.watched.swap(true, Ordering::AcqRel) {
            self.touch();
            tokio::spawn(watchdog(Arc::downgrade(self), self.limit));
        }
    }

    /// An HTTP/2 stream began; it stays open until the returned guard is dropped (with
    /// the response body).
    pub fn stream_opened(self: &Arc<Self>) -> OpenStream {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.watch();
        OpenStream(self.clone())
    }

    /// Resolves once the connection has been found idle.
    pub async fn idle(&self) {
        self.found_idle.notified().await;
    }

    fn touch(&self) {
        let now = self.born.elapsed().as_millis() as u64;
        self.last_active_ms.store(now, Ordering::Release);
    }

    /// Whether the connection had no open stream for the whole limit. The count is read
    /// before the time: a stream ending in between has already touched the time.
    fn is_idle(&self) -> bool {
        if self.open.load(Ordering::Acquire) != 0 {
            return false;
        }
        let idle_ms = (self.born.elapsed().as_millis() as u64)
            .saturating_sub(self.last_active_ms.load(Ordering::Acquire));
        idle_ms >= self.limit.as_millis() as u64
    }
}

/// Checks the connection once per limit until it is idle (then tells its task) or gone.
async fn watchdog(conn: Weak<H2Idle>, limit: Duration) {
    loop {
        tokio::time::sleep(limit).await;
        let Some(conn) = conn.upgrade() else {
            return;
        };
        if conn.is_idle() {
            tracing::debug!("HTTP/2 connection idle for timeouts.header_read; closing it");
            // A permit is kept if the task is not waiting yet.
            conn.found_idle.notify_one();
            return;
        }
    }
}

/// An open HTTP/2 stream; dropping it ends the stream's count.
#[derive(Debug)]
pub struct OpenStream(Arc<H2Idle>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        // The time first, then the count: the watchdog reads them the other way round.
        self.0.touch();
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The start of the HTTP/2 connection preface (RFC 9113 §3.4): no HTTP/1.1 request
/// begins so.
const PREFACE_START: &[u8] = b"PRI * HTTP/2.0";

/// A connection's first bytes as the idle timeout sees them: the preface starts the
/// watchdog, so that a connection that sends it and nothing more is closed too. Kept by
/// the connection's I/O wrapper ([`crate::gateway::first_bytes`]) rather than wrapping
/// the I/O itself: a layer of its own cost every HTTP/1.1 read.
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

    /// Reads with `read` (the connection's own read), watching the first bytes.
    #[inline]
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        read: impl FnOnce(&mut Context<'_>, &mut ReadBuf<'_>) -> Poll<std::io::Result<()>>,
    ) -> Poll<std::io::Result<()>> {
        let Some(mut at) = self.sniffed else {
            return read(cx, buf);
        };
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
        polled
    }
}
