//! The upstream connection a client connection owns: each HTTP/1.1 client connection
//! sends its requests for a plain-`http` upstream over one upstream connection of its
//! own, opened on its first forwarded request and closed with it.
//!
//! Why not the shared pool for these: HTTP/1.1 requests on one client connection come one
//! after another, so the connection they need is known without a search. The pool pays,
//! per request, a checkout under a mutex, a keyed idle list, a spawned task to return the
//! connection, and large boxed futures; a connection held by its client connection pays
//! none of that. HTTP/2 clients (many streams at once), TLS upstreams and WebSocket
//! upgrades keep using the pooled client (`forward::client`).
//!
//! The exchange itself is `h1_client`'s, driven from the request's own task (hyper's
//! client connection ran in a task of its own, reached over channels).
//!
//! Nothing is ever re-sent: a request goes out on a connection that reported itself ready,
//! and a failure after that is the client's 502, exactly as with the pool (which runs with
//! `retry_canceled_requests(false)`).

use std::pin::Pin;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use http::uri::Authority;
use http::{Request, Response};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::gateway::body::RequestBody;
use crate::gateway::h1_client::{self, Connection, HeadFields, Parking, ResponseBody};

/// Why an exchange over an owned connection failed. The messages follow the pooled
/// client's, so `upstream_error::describe` reads both alike.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The upstream's host name did not resolve (or resolved to nothing).
    #[error("dns error")]
    Resolve(#[source] std::io::Error),
    #[error("connect error")]
    Connect(#[source] std::io::Error),
    #[error("request failed")]
    Exchange(#[source] h1_client::Error),
}

/// The upstream connection of one client connection, if it has one.
#[derive(Default)]
pub struct OwnedUpstream {
    /// Taken while a request uses it and put back by the response body once read to its
    /// end: the requests of an HTTP/1.1 connection never overlap, so the lock is never
    /// contended. Made on the first forwarded request: a connection whose requests are all
    /// refused never pays for it.
    idle: OnceLock<Parking>,
    /// The response deadline, one timer for all the connection's requests. A fresh timer
    /// per request is registered in and removed from the runtime's timer wheel each time;
    /// moving this one's deadline later is one atomic update, and it fires (once) only
    /// when the deadline really passes.
    deadline: Mutex<Option<Pin<Box<Sleep>>>>,
}

impl std::fmt::Debug for OwnedUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnedUpstream")
    }
}

impl OwnedUpstream {
    /// [`OwnedUpstream::send`], bounded by `deadline` (connecting included): `None` when no
    /// response head arrived by then.
    pub async fn send_by(
        &self,
        deadline: Instant,
        authority: &Authority,
        connect_timeout: Duration,
        req: Request<RequestBody>,
        fields: HeadFields,
    ) -> Option<Result<Response<ResponseBody>, ExchangeError>> {
        let mut timer = match self.deadline.lock().ok().and_then(|mut t| t.take()) {
            Some(mut timer) => {
                timer.as_mut().reset(deadline);
                timer
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        let result = tokio::select! {
            biased;
            result = self.send(authority, connect_timeout, req, fields) => Some(result),
            () = timer.as_mut() => None,
        };
        if let Ok(mut slot) = self.deadline.lock() {
            *slot = Some(timer);
        }
        result
    }

    /// Sends `req` (origin-form target) with `fields` (`Host` among them) to `authority`
    /// over this client connection's upstream connection, opening one when there is none,
    /// it is for another upstream, or the upstream closed it while idle.
    async fn send(
        &self,
        authority: &Authority,
        connect_timeout: Duration,
        req: Request<RequestBody>,
        fields: HeadFields,
    ) -> Result<Response<ResponseBody>, ExchangeError> {
        let parking = self.idle.get_or_init(Parking::default);
        let idle = parking
            .lock()
            .ok()
            .and_then(|mut c| c.take())
            // The parked connection's authority is a clone of the upstream's, so the same
            // upstream compares equal byte for byte; `Authority`'s own `==` ignores case a
            // byte at a time, and a spelling that differs only in case (a reload) merely
            // costs a new connection.
            .filter(|c| c.authority().as_str() == authority.as_str() && c.is_usable());
        let conn = match idle {
            Some(conn) => conn,
            // Boxed: the connect path (resolve, connect) is rare; unboxed, every request's
            // future would carry its state.
            None => Box::pin(connect(authority, connect_timeout)).await?,
        };
        h1_client::exchange(conn, req, fields, parking)
            .await
            .map_err(ExchangeError::Exchange)
    }
}

/// Resolves `authority` and connects to the first address that answers, all within
/// `timeout`.
async fn connect(
    authority: &Authority,
    timeout: Duration,
) -> Result<Box<Connection>, ExchangeError> {
    let stream = tokio::time::timeout(timeout, open(authority))
        .await
        .map_err(|_| ExchangeError::Connect(std::io::ErrorKind::TimedOut.into()))??;
    let _ = stream.set_nodelay(true);
    Ok(Connection::new(authority.clone(), stream))
}

async fn open(authority: &Authority) -> Result<TcpStream, ExchangeError> {
    let port = authority.port_u16().unwrap_or(80);
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(ExchangeError::Resolve)?
        .collect();
    let mut last = std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "the host name resolved to no address",
    );
    if addrs.is_empty() {
        return Err(ExchangeError::Resolve(last));
    }
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(ExchangeError::Connect(last))
}
