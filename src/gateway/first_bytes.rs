//! A client connection that must send its first bytes within `timeouts.header_read`.
//!
//! hyper's header-read timer runs from the first byte of a request head, and the HTTP
//! version detection before it (hyper-util's `auto` builder reads the first bytes to tell
//! HTTP/1.1 from the HTTP/2 preface) has no timer at all: a connection that sends nothing
//! (plain, or after its TLS handshake) was held open forever, so a few thousand silent
//! sockets could take every slot of `limits.max_connections`. This wrapper ends such a
//! connection once the timeout passes with nothing read, and gets out of the way for good
//! at the first byte. Where HTTP/2 is served it also carries the HTTP/2 idle timeout's
//! view of the reads ([`crate::gateway::h2_idle`]), which would cost a layer of its own.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::gateway::h2_idle::H2Reads;

pin_project! {
    /// `io`, failing its reads with `TimedOut` if nothing arrives within the deadline,
    /// and, where HTTP/2 is served, ending them once the connection is idle.
    pub struct FirstBytes<IO> {
        #[pin]
        io: IO,
        // `None` once a byte has arrived (boxed: dropped then, taking its timer entry).
        deadline: Option<Pin<Box<Sleep>>>,
        // The HTTP/2 idle timeout's view of the reads (`None` where HTTP/2 is not served).
        h2: Option<H2Reads>,
    }
}

impl<IO> FirstBytes<IO> {
    pub fn new(io: IO, within: Duration) -> FirstBytes<IO> {
        FirstBytes {
            io,
            deadline: Some(Box::pin(tokio::time::sleep(within))),
            h2: None,
        }
    }

    /// Also closes the connection once it is an idle HTTP/2 connection.
    pub fn closing_idle_http2(mut self, h2: Option<H2Reads>) -> FirstBytes<IO> {
        self.h2 = h2;
        self
    }
}

impl<IO: AsyncRead> AsyncRead for FirstBytes<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        match this.h2 {
            None => read_first(this.io, this.deadline, cx, buf),
            Some(h2) => h2.poll_read(cx, buf, |cx, buf| {
                read_first(this.io, this.deadline, cx, buf)
            }),
        }
    }
}

/// Reads from `io`, under `deadline` until the first byte. Inlined: out of line it cost
/// ~150 instructions a request (callgrind).
#[inline]
fn read_first<IO: AsyncRead>(
    io: Pin<&mut IO>,
    deadline: &mut Option<Pin<Box<Sleep>>>,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    let before = buf.filled().len();
    let read = io.poll_read(cx, buf);
    let Some(timer) = deadline.as_mut() else {
        return read;
    };
    match &read {
        Poll::Ready(Ok(())) if buf.filled().len() > before => *deadline = None,
        Poll::Pending if timer.as_mut().poll(cx).is_ready() => {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request bytes within timeouts.header_read",
            )));
        }
        _ => {}
    }
    read
}

impl<IO: AsyncWrite> AsyncWrite for FirstBytes<IO> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn silence_ends_the_connection_and_a_first_byte_lifts_the_deadline() {
        let within = Duration::from_millis(100);
        let (client, server) = tokio::io::duplex(64);
        let mut watched = FirstBytes::new(server, within);
        let mut buf = [0u8; 8];
        let err = watched.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(client);

        let (mut client, server) = tokio::io::duplex(64);
        let mut watched = FirstBytes::new(server, within);
        client.write_all(b"G").await.unwrap();
        assert_eq!(watched.read(&mut buf).await.unwrap(), 1);
        // Past the deadline, a read waits for the client as long as hyper's own timers say.
        let waiting = tokio::time::timeout(within * 3, watched.read(&mut buf));
        assert!(waiting.await.is_err(), "no deadline after the first byte");
    }
}
