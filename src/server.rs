//! Listeners: the accept loop with its connection limit, per-connection HTTP settings
//! (timeouts, header limits), and the graceful drain on shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::config::Settings;
use crate::framing::FramingWatch;
use crate::proxy::{self, ConnInfo, Shared};

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

/// Serves proxied traffic on `listener` until `shutdown` resolves, then stops accepting
/// and waits (up to the configured drain timeout) for in-flight requests to finish.
/// Returns true when the drain timeout cut connections off.
pub async fn serve_main(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let settings = shared.policy.load().settings.clone();
    let mut builder = connection_builder(&settings);
    if tls.is_none() && !settings.http2_cleartext {
        // Not enough on its own: `serve_connection_with_upgrades` still serves a connection
        // that opens with the HTTP/2 preface. `FramingWatch` refuses those.
        builder = builder.http1_only();
    }
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    // New connections wait in the kernel's backlog while the limit is reached; the ones
    // already open are unaffected.
    let slots = Arc::new(Semaphore::new(settings.limits.max_connections));
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and similar: back off briefly rather than
                    // spin on a failing accept.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let mut conn_info = ConnInfo::new(remote, tls.is_some());
        let shared = shared.clone();
        match &tls {
            None => {
                let (stream, flags) = FramingWatch::new(stream, settings.http2_cleartext);
                conn_info.framing = Some(flags);
                let service =
                    service_fn(move |req| proxy::handle(shared.clone(), conn_info.clone(), req));
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            Some(acceptor) => {
                // The handshake runs in the connection's own task, bounded by the header
                // timeout, so a slow handshake cannot hold up the accept loop.
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let handshake_timeout = settings.timeouts.header_read;
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(
                        handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
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
                    let (stream, flags) = FramingWatch::new(stream, true);
                    conn_info.framing = Some(flags);
                    let service = service_fn(move |req| {
                        proxy::handle(shared.clone(), conn_info.clone(), req)
                    });
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
        }
    }

    drop(listener);
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
