//! Listeners: the accept loop with its connection limit, per-connection HTTP settings
//! (timeouts, header limits), the PROXY protocol header when configured, and the
//! graceful drain on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::config::Settings;
use crate::gateway::balance::{Balancer, Handoff, OpenConnection, WorkerSeat};
use crate::gateway::drain::{Drain, DrainWatch};
use crate::gateway::first_bytes::FirstBytes;
use crate::gateway::framing::{FramingWatch, HeadLimits};
use crate::gateway::h2_idle::{H2Idle, H2Reads};
use crate::gateway::proxy::{self, ConnInfo, Shared};
use crate::gateway::proxy_protocol::{self, Prefixed, ProxyHeaderError};

/// The HTTP settings every client connection gets. Fixed at start-up: changing them
/// needs a restart (a reload reports that).
fn connection_builder(settings: &Settings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Slowloris: a client must finish its request head within this time.
        .header_read_timeout(settings.timeouts.header_read)
        // hyper answers 431 when the head does not fit this buffer.
        .max_buf_size(settings.limits.max_header_bytes.max(8192))
        .max_headers(settings.limits.max_headers)
        .writev(false)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.limits.http2_max_concurrent_streams)
        .max_header_list_size(settings.limits.max_header_bytes as u32)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// The client connections all workers may hold open at once (`limits.max_connections`):
/// one count for the whole gateway, shared by every worker's accept loop.
pub fn connection_slots(shared: &Shared) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(
        shared.policy.load().settings.limits.max_connections,
    ))
}

/// Serves proxied traffic on `listener` until `shutdown` resolves, then stops accepting
/// and waits (up to the configured drain timeout) for in-flight requests to finish.
/// `slots` ([`connection_slots`]) is shared by all workers. Returns true when the drain
/// timeout cut connections off.
pub async fn serve_main(
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
    seat: Option<WorkerSeat>,
) -> bool {
    let settings = shared.policy.load().settings.clone();
    let mut builder = connection_builder(&settings);
    if tls.is_none() && !settings.http2_cleartext {
        // Not enough on its own: `serve_connection_with_upgrades` still serves a connection
        // that opens with the HTTP/2 preface. `FramingWatch` refuses those.
        builder = builder.http1_only();
    }
    let builder = Arc::new(builder);
    let proxy_protocol = settings.proxy_protocol;
    let graceful = Drain::default();
    // New connections wait in the kernel's backlog while the limit is reached; the ones
    // already open are unaffected.
    tokio::pin!(shutdown);

    let (worker, mut inbox) = match seat {
        Some(WorkerSeat {
            index,
            balancer,
            inbox,
        }) => (Some((index, balancer)), Some(inbox)),
        None => (None, None),
    };
    loop {
        let (stream, remote, permit, open) = tokio::select! {
            accepted = accept(&slots, &listener) => match accepted {
                Accepted::Stream(stream, remote, permit) => match &worker {
                    // Accepted here while busier than another worker: that one serves it.
                    Some((index, balancer)) => match balancer.place(*index) {
                        Some(to) => match hand_over(balancer, *index, to, stream, remote, permit) {
                            None => continue,
                            Some(kept) => kept,
                        },
                        None => (stream, remote, permit, Some(balancer.open(*index))),
                    },
                    None => (stream, remote, permit, None),
                },
                Accepted::Failed => continue,
                Accepted::Closed => break,
            },
            // A connection another worker accepted and handed to this one (`balance`),
            // already counted as this worker's.
            Some(handoff) = next_handoff(&mut inbox) => {
                match TcpStream::from_std(handoff.stream) {
                    Ok(stream) => (stream, handoff.remote, handoff.permit, Some(handoff.open)),
                    Err(e) => {
                        tracing::warn!(error = %e, "a handed-over connection could not be registered");
                        continue;
                    }
                }
            }
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            shared: shared.clone(),
            builder: builder.clone(),
            tls: tls.clone(),
            header_read: settings.timeouts.header_read,
            head_limits: HeadLimits::covering(
                settings.limits.max_headers,
                settings.limits.max_header_bytes,
            ),
            http2_cleartext: settings.http2_cleartext,
            watcher: graceful.watcher(),
        };
        if !proxy_protocol {
            conn.spawn(stream, remote, (permit, open));
            continue;
        }
        tokio::spawn(async move {
            if let Some((stream, peer)) = proxy_header(&conn.shared, stream, remote).await {
                conn.serve(stream, peer).await;
            }
            drop((permit, open));
        });
    }

    drop(listener);
    // From now on other workers serve what they accept themselves (`hand_off` fails).
    drop(inbox);
    // One line per worker at debug level: the process logs the drain once (`serve`), and
    // `Running::wait` reports a drain timeout once for all workers.
    tracing::debug!(
        connections = graceful.count(),
        "worker stopped accepting; draining its in-flight requests"
    );
    tokio::time::timeout(settings.timeouts.shutdown, graceful.shutdown())
        .await
        .is_err()
}

/// What one turn of the accept loop got.
enum Accepted {
    Stream(TcpStream, SocketAddr, OwnedSemaphorePermit),
    /// `accept` failed (out of file descriptors and similar); already logged and waited.
    Failed,
    /// The connection limit's semaphore closed.
    Closed,
}

/// Waits for a free connection slot, then for a connection.
async fn accept(slots: &Arc<Semaphore>, listener: &TcpListener) -> Accepted {
    let Ok(permit) = slots.clone().acquire_owned().await else {
        return Accepted::Closed;
    };
    match listener.accept().await {
        Ok((stream, remote)) => Accepted::Stream(stream, remote, permit),
        Err(e) => {
            // Out of file descriptors and similar: back off briefly rather than spin on a
            // failing accept.
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(20)).await;
            Accepted::Failed
        }
    }
}

/// The next connection handed to this worker; never resolves without a queue (one worker).
async fn next_handoff(inbox: &mut Option<UnboundedReceiver<Handoff>>) -> Option<Handoff> {
    match inbox {
        Some(inbox) => inbox.recv().await,
        None => std::future::pending().await,
    }
}

/// What a worker serves: the stream, its peer, its connection-limit permit and its count
/// in the worker's load (with one worker, nothing is counted).
type Served = (
    TcpStream,
    SocketAddr,
    OwnedSemaphorePermit,
    Option<OpenConnection>,
);

/// Hands a connection worker `me` accepted to worker `to`, counted as `to`'s at once (so
/// that a burst accepted before `to` runs is not all sent its way). Returns it when it
/// stays here because `to` stopped taking connections. A stream that cannot leave this
/// worker's reactor (a failing `epoll_ctl`) is closed, and logged.
fn hand_over(
    balancer: &Arc<Balancer>,
    me: usize,
    to: usize,
    stream: TcpStream,
    remote: SocketAddr,
    permit: OwnedSemaphorePermit,
) -> Option<Served> {
    let stream = match stream.into_std() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "a connection could not be handed to another worker");
            return None;
        }
    };
    match balancer.hand_off(
        to,
        Handoff {
            stream,
            remote,
            permit,
            open: balancer.open(to),
        },
    ) {
        Ok(()) => None,
        Err(back) => match TcpStream::from_std(back.stream) {
            Ok(stream) => Some((stream, back.remote, back.permit, Some(balancer.open(me)))),
            Err(e) => {
                tracing::warn!(error = %e, "a connection could not be registered again");
                None
            }
        },
    }
}

/// What serving one accepted connection needs.
struct Connection {
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    tls: Option<TlsAcceptor>,
    header_read: Duration,
    /// The request heads hyper accepts (`limits.max_headers`, `limits.max_header_bytes`),
    /// which the framing watch must follow.
    head_limits: HeadLimits,
    /// `http2_cleartext`: whether a plain connection may open with the HTTP/2 preface
    /// (h2c prior knowledge); TLS connections negotiate h2 through ALPN instead.
    http2_cleartext: bool,
    watcher: DrainWatch,
}

impl Connection {
    /// Serves a plain TCP connection in its own task.
    /// `held` (the connection-limit permit and the worker's load count) is released when
    /// the connection ends.
    fn spawn(
        self,
        stream: TcpStream,
        remote: SocketAddr,
        held: (OwnedSemaphorePermit, Option<OpenConnection>),
    ) {
        tokio::spawn(async move {
            self.serve(stream, remote).await;
            drop(held);
        });
    }

    /// Serves one connection whose peer is `remote` (the TCP peer, or the source of its
    /// PROXY header): the TLS handshake first when TLS is on, bounded by the header
    /// timeout, then HTTP until the connection ends or the drain closes it.
    async fn serve<IO>(self, stream: IO, remote: SocketAddr)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn_info = ConnInfo::new(remote, self.tls.is_some());
        let result = match self.tls.clone() {
            None => {
                let http2_allowed = self.http2_cleartext;
                self.serve_http(stream, conn_info, http2_allowed).await
            }
            Some(acceptor) => {
                let stream =
                    match tokio::time::timeout(self.header_read, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    };
                self.serve_http(stream, conn_info, true).await
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }

    async fn serve_http<IO>(
        self,
        stream: IO,
        mut conn_info: ConnInfo,
        http2_allowed: bool,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let idle = http2_allowed.then(|| H2Idle::new(self.header_read));
        let stream = FirstBytes::new(stream, self.header_read)
            .closing_idle_http2(idle.clone().map(H2Reads::new));
        let idle_for_close = idle.clone();
        let (stream, flags) = FramingWatch::new(stream, http2_allowed, self.head_limits);
        conn_info.framing = Some(flags);
        conn_info.h2_idle = idle;
        let served = Arc::new(proxy::Served {
            shared: self.shared,
            conn: conn_info,
        });
        // Not boxed: hyper's HTTP/1 dispatcher keeps the request's future in one box per
        // connection, reused for every request (an HTTP/2 stream is a task of its own), so
        // a box here would only add an allocation per request.
        let service = service_fn(move |req| proxy::handle(served.clone(), req));
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let mut conn = std::pin::pin!(conn);
        let mut drain = self.watcher;
        let mut asked = false;
        // Set when an idle connection was asked to finish: a client that never answers
        // the GOAWAY's PING is not waited for past one more timeout.
        let mut cut_off: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        // Until the connection ends: a drain, or an idle HTTP/2 connection, asks it to
        // finish gracefully (HTTP/2: GOAWAY, then the open streams finish sending).
        loop {
            tokio::select! {
                biased;
                done = conn.as_mut() => return done,
                () = drain.begun(), if !asked => {
                    asked = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = idle_signal(idle_for_close.as_deref()), if !asked && idle_for_close.is_some() => {
                    asked = true;
                    conn.as_mut().graceful_shutdown();
                    cut_off = Some(Box::pin(tokio::time::sleep(self.header_read)));
                }
                () = async {
                    if let Some(cut_off) = cut_off.as_mut() {
                        cut_off.await;
                    }
                }, if cut_off.is_some() => {
                    tracing::debug!("idle HTTP/2 connection did not finish after GOAWAY; dropped");
                    return Ok(());
                }
            }
        }
    }
}

/// Resolves when the HTTP/2 idle timeout finds the connection idle (never without one).
async fn idle_signal(idle: Option<&H2Idle>) {
    match idle {
        Some(idle) => idle.idle().await,
        None => std::future::pending().await,
    }
}

/// Reads a connection's PROXY protocol header (before any TLS), refusing peers outside
/// `trusted_proxies` when that list is set. Returns the stream (replaying what followed
/// the header) and the client address the header carried, or the TCP peer for headers
/// without one (health checks); `None` when the connection is to be closed, which is
/// counted before the stream is dropped.
async fn proxy_header(
    shared: &Shared,
    mut stream: TcpStream,
    remote: SocketAddr,
) -> Option<(Prefixed<TcpStream>, SocketAddr)> {
    let (untrusted, timeout) = {
        let policy = shared.policy.load();
        let trusted = &policy.settings.trusted_proxies;
        (
            !trusted.is_empty() && !trusted.contains(remote.ip()),
            policy.settings.timeouts.header_read,
        )
    };
    let result = if untrusted {
        Err(ProxyHeaderError::UntrustedPeer)
    } else {
        proxy_protocol::read_header(&mut stream, timeout).await
    };
    match result {
        Ok((rest, source)) => Some((Prefixed::new(rest, stream), source.unwrap_or(remote))),
        Err(e) => {
            tracing::debug!(peer = %remote, error = %e, "connection closed: PROXY protocol");
            shared
                .metrics
                .proxy_protocol_rejected
                .with_label_values(&[e.label()])
                .inc();
            None
        }
    }
}
