//! The admin listener: `/metrics`, `/healthz`, `/readyz` and `/generation`, plus the admin
//! API and console ([`crate::gateway::console`]) when admin users are configured. It never serves
//! proxied traffic and is meant to stay on a private address.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::gateway::admin_host;
use crate::gateway::proxy::Shared;
use crate::gateway::response::text;

/// Whether the gateway should receive traffic: false once draining has begun, so a load
/// balancer stops sending new requests before the listener closes.
#[derive(Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

fn route(shared: &Shared, ready: &Readiness, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n",
            "text/plain",
        );
    }
    match req.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            shared.metrics.render(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        "/healthz" => text(StatusCode::OK, "ok\n", "text/plain"),
        "/readyz" if ready.get() => text(StatusCode::OK, "ready\n", "text/plain"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n", "text/plain"),
        "/generation" => {
            let generation = shared.policy.load().generation;
            text(
                StatusCode::OK,
                format!("{{\"generation\":{generation}}}\n"),
                "application/json",
            )
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n", "text/plain"),
    }
}

/// The answer to a request for a host name the listener does not answer for
/// (`admin_host`): 421, the status for a request that reached the wrong server.
fn misdirected() -> Response<Full<Bytes>> {
    text(
        StatusCode::MISDIRECTED_REQUEST,
        "this admin listener does not answer for that host name; \
         list it in admin.allowed_hosts in the gateway config\n",
        "text/plain",
    )
}

/// Says at start-up where the console is, or how to turn it on, and which host names the
/// listener answers for (`loopback`: it is on a loopback address).
fn log_console_state(shared: &Shared, listener: &TcpListener, loopback: bool) {
    let policy = shared.policy.load();
    let users = policy.settings.admin_users.len();
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    match &policy.settings.admin_allowed_hosts {
        None if !loopback => tracing::warn!(
            "admin listener on {addr} answers for any host name: set `admin: {{allowed_hosts: [...]}}` \
             to the names it is reached by (`[]` for IP addresses and localhost only), so a \
             DNS-rebinding web page cannot read it"
        ),
        None => tracing::info!(
            "admin listener on {addr} answers IP addresses and localhost as host names; \
             list other names it is reached by (a reverse proxy's, for one) in `admin: {{allowed_hosts: [...]}}`"
        ),
        Some(names) => tracing::info!(
            "admin listener on {addr} answers IP addresses, localhost and {}",
            if names.is_empty() { "no other name".to_owned() } else { names.join(", ") }
        ),
    }
    if users == 0 {
        tracing::info!(
            "admin API and console are off: add `admin: {{users: [{{name: ..., password_hash: ...}}]}}` \
             to the gateway config (make the hash with `scopegate hash --argon2`)"
        );
    } else {
        tracing::info!(
            users,
            "admin console at http://{addr}/console/ and admin API at http://{addr}/api/v1/"
        );
    }
}

/// Serves the admin endpoints (and, with admin users, the API and console) until
/// `shutdown` resolves.
pub async fn serve_admin(
    shared: Arc<Shared>,
    ready: Arc<Readiness>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let console = Arc::new(crate::gateway::console::Console::default());
    let loopback = listener
        .local_addr()
        .is_ok_and(|a| admin_host::is_loopback(a.ip()));
    log_console_state(&shared, &listener, loopback);
    let refusals = Arc::new(admin_host::RefusalLog::new(std::time::Duration::from_secs(
        10,
    )));
    loop {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let shared = shared.clone();
        let ready = ready.clone();
        let console = console.clone();
        let refusals = refusals.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                let ready = ready.clone();
                let console = console.clone();
                let refusals = refusals.clone();
                async move {
                    let answered = admin_host::is_probe(req.uri().path())
                        || admin_host::answers(
                            req.headers(),
                            loopback,
                            shared.policy.load().settings.admin_allowed_hosts.as_deref(),
                        );
                    if !answered {
                        if let Some(refused) = refusals.note() {
                            tracing::warn!(
                                target: "scopegate::admin",
                                %peer,
                                host = %admin_host::for_log(req.headers()),
                                refused,
                                "admin requests for a host name not in admin.allowed_hosts refused (421); \
                                 at most one such line per 10 s"
                            );
                        }
                        return Ok(misdirected());
                    }
                    if crate::gateway::console::owns(req.uri().path()) {
                        let resp =
                            crate::gateway::console::handle(&console, &shared, req, peer.ip())
                                .await;
                        return Ok::<_, Infallible>(resp);
                    }
                    Ok(route(&shared, &ready, &req))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
