//! What every connection and request shares: the policy snapshot, the metrics, the
//! runtime registry and the upstream clients ([`Shared`]), and the facts about one client
//! connection ([`ConnInfo`]). Split from `proxy` so the request path reads on its own.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::domain::bruteforce::AddressThrottle;
use crate::domain::ratelimit::RateLimitBackend;
use crate::gateway::forward::{self, UpstreamClient};
use crate::gateway::metrics::Metrics;
use crate::gateway::runtime::RuntimeRegistry;
use crate::gateway::snapshot::Policy;
use crate::gateway::upstream_conn::OwnedUpstream;

/// State shared by every connection.
pub struct Shared {
    pub policy: ArcSwap<Policy>,
    pub metrics: Arc<Metrics>,
    pub registry: RuntimeRegistry,
    pub client: UpstreamClient,
    /// A shared rate-limit backend (Redis); `None` uses each token's in-process bucket
    /// directly, without the boxed future a backend call costs.
    pub rate_limits: Option<Box<dyn RateLimitBackend>>,
    /// Quota counting (on the rate-limit backend's Redis); `None` without Redis, where
    /// validation refuses quotas.
    pub quotas: Option<crate::gateway::quota::QuotaBackend>,
    /// The fleet usage record's writer (`usage.backend: redis`).
    pub usage_writer: Option<crate::gateway::usage_redis::UsageWriter>,
    pub addresses: AddressThrottle,
    /// Clients for upstreams with their own TLS settings (private CA, client certificate).
    pub tls_clients: dashmap::DashMap<crate::gateway::tls::UpstreamTls, UpstreamClient>,
    /// The listener's certificate, when TLS is on; replaced on reload.
    pub cert_store: std::sync::OnceLock<Arc<crate::gateway::tls::CertStore>>,
    /// Process-unique id, keying the per-thread upstream clients.
    pub id: u64,
    pub connect_timeout: std::time::Duration,
}

/// A worker thread's own handle on a policy snapshot ([`Shared::worker_policy`]).
pub struct WorkerPolicy(Arc<Policy>);

impl std::ops::Deref for WorkerPolicy {
    type Target = Policy;
    fn deref(&self) -> &Policy {
        &self.0
    }
}

impl Shared {
    /// The current policy snapshot, for one request. Each worker thread holds the snapshot
    /// behind a reference count of its own: cloning the process-wide `Arc` per request had
    /// every worker write that count's cache line twice per request. The snapshot is
    /// checked against the current one on every call, so a reload applies from the next
    /// request on; a worker keeps the previous snapshot until its next request.
    pub fn worker_policy(&self) -> Arc<WorkerPolicy> {
        thread_local! {
            static CURRENT: std::cell::RefCell<Option<Arc<WorkerPolicy>>> =
                const { std::cell::RefCell::new(None) };
        }
        let current = self.policy.load();
        CURRENT.with(|slot| {
            let Ok(mut slot) = slot.try_borrow_mut() else {
                return Arc::new(WorkerPolicy(arc_swap::Guard::into_inner(current)));
            };
            if let Some(held) = slot.as_ref().filter(|h| Arc::ptr_eq(&h.0, &current)) {
                return Arc::clone(held);
            }
            let fresh = Arc::new(WorkerPolicy(arc_swap::Guard::into_inner(current)));
            *slot = Some(Arc::clone(&fresh));
            fresh
        })
    }

    /// The client for an upstream: the shared one, or the one built for its TLS settings.
    pub fn client_for(
        &self,
        upstream: &crate::config::UpstreamSpec,
    ) -> Option<std::borrow::Cow<'_, UpstreamClient>> {
        if upstream.tls.is_default() {
            return Some(self.thread_client());
        }
        self.tls_clients
            .get(&upstream.tls)
            .map(|c| std::borrow::Cow::Owned(c.clone()))
    }

    /// The default client of the calling thread. Each worker runtime keeps its own pool,
    /// so an upstream connection is driven by the thread whose requests use it; a pool
    /// shared between workers hands connections across threads on every request.
    fn thread_client(&self) -> std::borrow::Cow<'_, UpstreamClient> {
        thread_local! {
            static CLIENTS: std::cell::RefCell<Vec<(u64, UpstreamClient)>> =
                const { std::cell::RefCell::new(Vec::new()) };
        }
        let found = CLIENTS.with(|c| {
            let mut clients = c.borrow_mut();
            if let Some((_, client)) = clients.iter().find(|(id, _)| *id == self.id) {
                return Some(client.clone());
            }
            let client = forward::client(
                self.connect_timeout,
                &crate::gateway::tls::UpstreamTls::default(),
            )
            .ok()?;
            clients.push((self.id, client.clone()));
            Some(client)
        });
        match found {
            Some(client) => std::borrow::Cow::Owned(client),
            None => std::borrow::Cow::Borrowed(&self.client),
        }
    }

    /// Builds the clients for every custom upstream TLS setting not seen before. Reads
    /// files: call it off the async workers or at start-up.
    pub fn prepare_clients(
        &self,
        settings: &crate::config::Settings,
    ) -> Result<(), crate::gateway::tls::TlsError> {
        for up in &settings.upstreams {
            if up.tls.is_default() || self.tls_clients.contains_key(&up.tls) {
                continue;
            }
            let client = forward::client(settings.timeouts.upstream_connect, &up.tls)?;
            self.tls_clients.insert(up.tls.clone(), client);
        }
        Ok(())
    }
}

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The peer: the TCP peer, or the source a PROXY protocol header carried.
    pub remote: SocketAddr,
    pub tls: bool,
    /// `remote`'s IP rendered for `X-Forwarded-For`, once per connection.
    pub forwarded_for: http::HeaderValue,
    /// One flag per HTTP/1.1 request head: did it carry both `Content-Length` and
    /// `Transfer-Encoding` (which hyper resolves before the service sees it)?
    pub framing: Option<Arc<crate::gateway::framing::FramingFlags>>,
    /// Counts the connection's open HTTP/2 streams, to close it once idle; `None` where
    /// HTTP/2 is not served.
    pub h2_idle: Option<Arc<crate::gateway::h2_idle::H2Idle>>,
    /// The connection's own upstream connection, for its HTTP/1.1 requests to plain-http
    /// upstreams (see `upstream_conn`).
    pub upstream: Arc<OwnedUpstream>,
}

impl ConnInfo {
    /// `remote` is the connection's peer: the TCP peer, or the source address of the
    /// connection's PROXY protocol header.
    pub fn new(remote: SocketAddr, tls: bool) -> ConnInfo {
        let ip = crate::domain::netaddr::canonical(remote.ip());
        let forwarded_for = http::HeaderValue::from_str(&ip.to_string())
            .unwrap_or(http::HeaderValue::from_static("unknown"));
        ConnInfo {
            remote,
            tls,
            forwarded_for,
            framing: None,
            h2_idle: None,
            upstream: Arc::default(),
        }
    }
}
