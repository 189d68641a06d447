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
//! input on the connection's reads: hyper then ends the connection, with no stream in
//! flight to lose.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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

pin_project! {
    /// `io`, whose reads end (as at end of input) once its connection is found idle.
    pub struct IdleClosing<IO> {
        #[pin]
        io: IO,
        // `None` where HTTP/2 is not served (plain connections without h2c).
        idle: Option<Arc<H2Idle>>,
        // Bytes of the preface's start matched so far; `None` once decided.
        sniffed: Option<usize>,
    }
}

/// The start of the HTTP/2 connection preface (RFC 9113 §3.4): no HTTP/1.1 request
/// begins so.
const PREFACE_START: &[u8] = b"PRI * HTTP/2.0";

impl<IO> IdleClosing<IO> {
    pub fn new(io: IO, idle: Option<Arc<H2Idle>>) -> IdleClosing<IO> {
        let sniffed = idle.is_some().then_some(0);
        IdleClosing { io, idle, sniffed }
    }
}

impl<IO: AsyncRead> AsyncRead for IdleClosing<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if let (Some(mut at), Some(idle)) = (*this.sniffed, this.idle.as_ref()) {
            let before = buf.filled().len();
            let polled = this.io.poll_read(cx, buf);
            for &b in &buf.filled()[before..] {
                if PREFACE_START.get(at) != Some(&b) {
                    *this.sniffed = None;
                    return polled;
                }
                at += 1;
                if at == PREFACE_START.len() {
                    *this.sniffed = None;
                    idle.watch();
                    return polled;
                }
            }
            *this.sniffed = Some(at);
            return polled;
        }
        // HTTP/1.1 connections never start the watchdog: one load per read.
        if let Some(idle) = this
            .idle
            .as_deref()
            .filter(|i| i.watched.load(Ordering::Relaxed))
        {
            if idle.closing.load(Ordering::Relaxed) {
                return Poll::Ready(Ok(()));
            }
            let polled = this.io.poll_read(cx, buf);
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
            return polled;
        }
        this.io.poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite> AsyncWrite for IdleClosing<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}
