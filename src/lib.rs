//! scopegate: a reverse-proxy gateway that enforces scoped API tokens.
//!
//! # Map
//!
//! Four modules, each depending only on the ones below it (`tests/layering.rs` checks it):
//!
//! | layer | may use |
//! | --- | --- |
//! | [`cli`] | [`gateway`], [`config`], [`domain`] |
//! | [`gateway`] | [`config`], [`domain`] |
//! | [`config`] | [`domain`] |
//! | [`domain`] | nothing of the crate; no tokio, hyper, prometheus, notify, redis or `std::fs` |
//!
//! - [`domain`]: the rules, with no I/O: credentials ([`domain::auth`], [`domain::model`],
//!   [`domain::secret_format`]), scopes and canonical targets ([`domain::scope`]),
//!   request classification ([`domain::classify`]), the decision ([`domain::decision`])
//!   over the policy snapshot ([`domain::policy`]), rate-limit and throttle arithmetic,
//!   client addresses ([`domain::client_addr`], [`domain::netaddr`]), and the validated
//!   settings ([`domain::settings`]).
//! - [`config`]: the files -> domain types, every error at once with file, line, field and
//!   hint; YAML positions and comment-preserving edits ([`config::yamlsrc`]); catalogs
//!   from OpenAPI documents ([`config::openapi`]); the one atomic file write
//!   ([`config::atomic`]); the validated binary cache of a large tokens file
//!   ([`config::token_cache`]).
//! - [`gateway`]: the running process. [`gateway::server`] accepts connections and
//!   hands each request to [`gateway::proxy::handle`], which runs the phases in order
//!   (classify -> authenticate -> authorize -> limit -> forward), each returning
//!   `Result<_, Refused>` ([`gateway::refused`]) and filling a per-request context; its
//!   one exit builds every refusal's response, the metrics and the access-log line.
//!   [`gateway::shared`] holds what every connection shares. Forwarding: each HTTP/1.1
//!   client connection sends over its own upstream connection
//!   ([`gateway::upstream_conn`]); HTTP/2, TLS upstreams and upgrades use the pooled
//!   client of [`gateway::forward`]. Around it: [`gateway::tls`], [`gateway::reload`] and
//!   [`gateway::signals`], [`gateway::snapshot`] and [`gateway::runtime`] (state that
//!   survives reloads), [`gateway::metrics`] and [`gateway::admin`] (with the console),
//!   Redis-backed limits and quotas, the usage record. [`gateway::manage`] is the token
//!   management the console shares with the command line (the tokens-file store, the
//!   token operations, views, parsers, the audit), [`gateway::notifier`] the contacts'
//!   notifications.
//! - [`cli`]: the commands (`serve`, `token`, `audit`, `check`, `explain`, `catalog`,
//!   `demo`, `notify`): argument parsing and printing around the layers below. `explain`
//!   calls the gateway's own classification and decision.
//!
//! The modules are crate-private, so the dead-code lint sees unused items; the `test-util`
//! feature (on for this crate's tests and benches) makes them public. What the binary and
//! embedding tests need is exported here: [`main`] (the command line), [`build_shared`]
//! (the shared state) and [`start`], [`start_workers`] (the gateway on bound listeners;
//! tests bind port 0 and call them).

#![forbid(unsafe_code)]

// Crate-private, so the dead-code lint sees what nothing uses; the `test-util` feature
// (on for this crate's own tests, benches and examples, through its self dev-dependency)
// opens them to `tests/` and `benches/`.
#[cfg(feature = "test-util")]
pub mod cli;
#[cfg(not(feature = "test-util"))]
mod cli;
#[cfg(feature = "test-util")]
pub mod config;
#[cfg(not(feature = "test-util"))]
mod config;
#[cfg(feature = "test-util")]
pub mod domain;
#[cfg(not(feature = "test-util"))]
mod domain;
#[cfg(feature = "test-util")]
pub mod gateway;
#[cfg(not(feature = "test-util"))]
mod gateway;

/// The command line (`src/main.rs` calls it).
pub use cli::main;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::gateway::admin::Readiness;
use crate::gateway::metrics::Metrics;
use crate::gateway::proxy::Shared;
use crate::gateway::runtime::RuntimeRegistry;

/// Builds the shared state for a validated configuration (generation 1).
pub fn build_shared(config: Config) -> Arc<Shared> {
    let metrics = Metrics::new();
    let registry = RuntimeRegistry::default();
    // The default client's TLS uses the system roots; it cannot fail to build (an empty
    // root store only makes https upstreams fail, which is logged).
    let client = gateway::forward::client(
        config.settings.timeouts.upstream_connect,
        &gateway::tls::UpstreamTls::default(),
    )
    .expect("a client with system roots always builds");
    let settings = config.settings.clone();
    let redis = settings
        .redis_rate_limit
        .as_ref()
        .map(|redis| gateway::redis_limit::RedisBackend::new(redis, &metrics.registry));
    // Quotas count on the rate limits' Redis and follow its on_redis_error.
    let quotas = redis.as_ref().map(|r| {
        gateway::quota::QuotaBackend::new(r.conn().clone(), r.on_error(), &metrics.registry)
    });
    let rate_limits = redis.map(|r| Box::new(r) as Box<dyn domain::ratelimit::RateLimitBackend>);
    let usage_writer = settings
        .usage_redis
        .as_ref()
        .map(|u| gateway::usage_redis::UsageWriter::new(u, &metrics.registry));
    let policy = gateway::snapshot::build(config, 1, &registry, &metrics);
    metrics.generation.set(1);
    metrics.count_reload(true);
    metrics
        .last_reload_success
        .set(gateway::clock::unix_now_f64());
    let shared = Arc::new(Shared {
        policy: ArcSwap::from_pointee(policy),
        metrics,
        registry,
        client,
        rate_limits,
        quotas,
        usage_writer,
        addresses: domain::bruteforce::AddressThrottle::default(),
        tls_clients: Default::default(),
        cert_store: Default::default(),
        id: {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        },
        connect_timeout: settings.timeouts.upstream_connect,
    });
    if let Err(e) = shared.prepare_clients(&settings) {
        tracing::error!(error = %e, "upstream TLS settings unusable; requests to that upstream get 502");
    }
    shared
}

/// A running gateway: its bound addresses and the means to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub shared: Arc<Shared>,
    pub ready: Arc<Readiness>,
    /// Shutdown stage: 0 running, 1 main listener draining, 2 admin listener stopping.
    stop: watch::Sender<u8>,
    /// Resolves to true when the drain timeout cut connections off.
    main_task: JoinHandle<bool>,
    admin_task: JoinHandle<()>,
    usage_task: JoinHandle<()>,
    /// The fleet usage record's writer, when `usage.backend: redis`.
    usage_redis_task: Option<JoinHandle<()>>,
    /// Completion signals of the extra worker threads (see [`start_workers`]).
    workers: Vec<tokio::sync::oneshot::Receiver<bool>>,
}

impl Running {
    /// Stops accepting, drains in-flight requests (bounded by `timeouts.shutdown`), and
    /// returns once every connection has finished. The admin listener stays up during
    /// the drain, answering `/readyz` with 503 so load balancers stop sending traffic.
    pub async fn shutdown(self) {
        self.begin_shutdown();
        self.wait().await;
    }

    /// Begins shutdown without waiting for it; [`Running::wait`] waits.
    pub fn begin_shutdown(&self) {
        self.ready.set(false);
        self.stop.send_if_modified(|stage| {
            let changed = *stage == 0;
            *stage = (*stage).max(1);
            changed
        });
    }

    /// Waits for the drain, then stops the admin listener. A drain timeout is logged once,
    /// however many workers it cut off.
    pub async fn wait(self) {
        let mut cut_off = self.main_task.await.unwrap_or(false);
        for worker in self.workers {
            cut_off |= worker.await.unwrap_or(false);
        }
        if cut_off {
            tracing::warn!("drain timeout reached; remaining connections were closed");
        }
        let _ = self.stop.send(2);
        let _ = self.admin_task.await;
        self.usage_task.abort();
        if let Some(task) = self.usage_redis_task {
            task.abort();
        }
        if let Some(writer) = &self.shared.usage_writer {
            // Bounded: every Redis call inside has the writer's timeout.
            writer.flush(&self.shared).await;
        }
        let _ = gateway::usage::save_now(&self.shared);
    }
}

/// Starts the gateway on already-bound listeners (tests bind port 0 and read the address).
pub fn start(
    shared: Arc<Shared>,
    main: TcpListener,
    admin: TcpListener,
) -> std::io::Result<Running> {
    start_workers(shared, main, admin, 1)
}

/// Like [`start`], with `workers` accept loops: the caller's runtime serves one, and each
/// further worker is an OS thread with its own single-threaded tokio runtime accepting on
/// the same listening socket (the nginx model). On a small machine this beats one
/// multi-threaded runtime, whose work stealing and cross-thread wake-ups cost more than
/// they bring to a proxy whose requests are short and independent.
pub fn start_workers(
    shared: Arc<Shared>,
    main: TcpListener,
    admin: TcpListener,
    workers: usize,
) -> std::io::Result<Running> {
    start_pinned(shared, main, admin, workers, None)
}

/// Like [`start_workers`], with worker `i` pinned to CPU `cpus[i]` when `cpus` is given
/// ([`domain::cpu_affinity::plan`]); the caller's thread, which serves the first worker,
/// is pinned last, once the other workers' threads have started with the whole CPU set.
pub fn start_pinned(
    shared: Arc<Shared>,
    main: TcpListener,
    admin: TcpListener,
    workers: usize,
    cpus: Option<Vec<usize>>,
) -> std::io::Result<Running> {
    let addr = main.local_addr()?;
    let admin_addr = admin.local_addr()?;
    let tls = match shared.policy.load().settings.tls.clone() {
        None => None,
        Some(files) => {
            let key = gateway::tls::load_certified_key(&files.cert, &files.key)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let store = gateway::tls::CertStore::new(key);
            let _ = shared.cert_store.set(store.clone());
            let config = gateway::tls::server_config(store)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            Some(tokio_rustls::TlsAcceptor::from(config))
        }
    };
    {
        let settings = &shared.policy.load().settings;
        if settings.proxy_protocol && settings.trusted_proxies.is_empty() {
            tracing::warn!(
                "proxy_protocol is on without trusted_proxies: any peer that reaches the \
                 listener can claim any client address; list the load balancers in trusted_proxies"
            );
        }
    }
    let (stop, stop_rx) = watch::channel(0u8);
    let ready = Arc::new(Readiness::default());
    ready.set(true);
    let until_stage = |mut rx: watch::Receiver<u8>, stage: u8| async move {
        let _ = rx.wait_for(|s| *s >= stage).await;
    };
    gateway::usage::load(&shared);
    let usage_task =
        gateway::usage::spawn_persister(shared.clone(), gateway::usage::DEFAULT_SAVE_INTERVAL);
    let usage_redis_task = gateway::usage_redis::spawn_writer(shared.clone());
    let mut worker_done = Vec::new();
    // With several workers, a burst of connections is spread over them (`balance`).
    let mut seats = if workers > 1 {
        gateway::balance::Balancer::seats(workers, Some(&shared.metrics.worker_connections))
            .into_iter()
    } else {
        Vec::new().into_iter()
    };
    let main_seat = seats.next();
    let slots = gateway::server::connection_slots(&shared);
    let main = if workers > 1 {
        let std_listener = main.into_std()?;
        for index in 1..workers {
            let listener = std_listener.try_clone()?;
            let seat = seats.next();
            let (done, done_rx) = tokio::sync::oneshot::channel();
            let shared = shared.clone();
            let slots = slots.clone();
            let tls = tls.clone();
            let stop = until_stage(stop_rx.clone(), 1);
            let cpu = cpus.as_ref().and_then(|c| c.get(index).copied());
            std::thread::Builder::new()
                .name(format!("scopegate-worker-{index}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        pin_worker(index, cpu);
                    }
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .on_thread_start(gateway::cpu_affinity::release_current_thread)
                        .build();
                    let cut_off = match rt {
                        Ok(rt) => rt.block_on(async move {
                            match TcpListener::from_std(listener) {
                                Ok(l) => {
                                    gateway::server::serve_main(shared, slots, l, tls, stop, seat)
                                        .await
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "worker cannot listen");
                                    false
                                }
                            }
                        }),
                        Err(e) => {
                            tracing::error!(error = %e, "worker runtime failed to start");
                            false
                        }
                    };
                    let _ = done.send(cut_off);
                })?;
            worker_done.push(done_rx);
        }
        TcpListener::from_std(std_listener)?
    } else {
        main
    };
    if let Some(cpu) = cpus.as_ref().and_then(|c| c.first().copied()) {
        pin_worker(0, cpu);
    }
    let main_task = tokio::spawn(gateway::server::serve_main(
        shared.clone(),
        slots,
        main,
        tls,
        until_stage(stop_rx.clone(), 1),
        main_seat,
    ));
    let admin_task = tokio::spawn(gateway::admin::serve_admin(
        shared.clone(),
        ready.clone(),
        admin,
        until_stage(stop_rx, 2),
    ));
    Ok(Running {
        addr,
        admin_addr,
        shared,
        ready,
        stop,
        main_task,
        admin_task,
        usage_task,
        usage_redis_task,
        workers: worker_done,
    })
}

/// Pins the calling thread, worker `index`, to `cpu`; a failure leaves it unpinned.
fn pin_worker(index: usize, cpu: usize) {
    match gateway::cpu_affinity::pin_current_thread(cpu) {
        Ok(()) => tracing::debug!(worker = index, cpu, "worker pinned"),
        Err(e) => {
            tracing::warn!(worker = index, cpu, error = %e, "cannot pin the worker to its CPU; it runs unpinned")
        }
    }
}
