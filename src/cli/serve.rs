//! `scopegate serve`: load the configuration (exit before binding any port if it is
//! invalid), bind, serve, reload on SIGHUP and file changes, drain on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use tokio::net::TcpListener;

use super::LogFormatArg;
use crate::config::{self, Config, LogFormat};
pub use crate::gateway::signals::Termination;

/// Sets up `tracing` (see [`crate::gateway::logging`]).
pub fn init_tracing(format: LogFormat) {
    crate::gateway::logging::init(format);
}

pub fn log_format(arg: Option<LogFormatArg>, config: Option<LogFormat>) -> LogFormat {
    match arg {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) => LogFormat::Text,
        None => config.unwrap_or(LogFormat::Text),
    }
}

/// How many workers serve proxied traffic: `TOKIO_WORKER_THREADS` when set (the name
/// tokio users know), else one per core.
pub fn worker_count() -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The main runtime: single-threaded. It runs one worker's accept loop plus the admin
/// listener, reloads and signals; further workers get runtimes of their own
/// (`crate::start_workers`).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Blocking-pool threads (reload parsing) get the whole CPU set back once the
        // first worker, this runtime's thread, is pinned (`gateway::cpu_affinity`).
        .on_thread_start(crate::gateway::cpu_affinity::release_current_thread)
        .build()
}

/// Listen addresses given on the command line, overriding `listen` and `admin_listen` of
/// the config (the config keeps its own values, so a reload does not report them as
/// changed).
#[derive(Debug, Clone, Copy, Default)]
pub struct ListenOverrides {
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
}

pub fn run(path: &Path, format: Option<LogFormatArg>, overrides: ListenOverrides) -> ExitCode {
    let (config, cache) = match config::load_cached(path, config::token_cache::MIN_BYTES) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{errors}");
            eprintln!("scopegate: not starting: fix the configuration (see `scopegate check`)");
            return ExitCode::FAILURE;
        }
    };
    init_tracing(log_format(format, config.settings.log_format));
    let past_policy = super::check::policy_warnings(&config).len();
    if past_policy > 0 {
        tracing::warn!(
            tokens = past_policy,
            "tokens are past token_policy; they keep working until they expire (see `scopegate check`)"
        );
    }
    let config_path = config::absolute(path);
    run_to_exit(async move {
        if let Some(cache) = cache {
            // Beside start-up, not before it: the next start reads it.
            tokio::task::spawn_blocking(move || cache.write());
        }
        // Signal handlers go in before any port is bound: from the moment a client (or an
        // orchestrator probing /readyz) can see the process, SIGTERM drains and SIGHUP
        // reloads instead of killing it.
        let termination = Termination::new();
        let settings = &config.settings;
        let bound = async {
            let main = bind(overrides.listen.unwrap_or(settings.listen), "").await?;
            let admin = bind(
                overrides.admin_listen.unwrap_or(settings.admin_listen),
                " (admin)",
            )
            .await?;
            Ok::<_, String>((main, admin))
        };
        let (main, admin) = match bound.await {
            Ok(pair) => pair,
            Err(e) => {
                eprintln!("scopegate: {e}");
                return ExitCode::FAILURE;
            }
        };
        let workers = worker_count();
        serve_bound(
            config,
            config_path,
            main,
            admin,
            termination,
            workers,
            |_| {},
        )
        .await
    })
}

/// Runs the serving future on the main runtime and returns its exit code.
pub fn run_to_exit(serving: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scopegate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(serving);
    // Nothing is left to wait for; do not let a stuck blocking task (a reload reading a
    // hung network file system) hold up the exit.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

/// Binds a listener, or says in plain words which address could not be used and why.
pub async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "the address is already in use (another process listens there; stop it or pick another address)".to_owned()
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need privileges)".to_owned()
            }
            std::io::ErrorKind::AddrNotAvailable => {
                "the address is not one of this machine's".to_owned()
            }
            _ => e.to_string(),
        };
        format!("cannot listen on {addr}{what}: {why}")
    })
}

/// The serving part shared by `serve` and `demo`: the gateway on bound listeners with the
/// reload machinery (file watch + SIGHUP), until SIGTERM/SIGINT; then the drain. `ready`
/// runs once the gateway accepts requests.
pub async fn serve_bound(
    config: Config,
    config_path: PathBuf,
    main: TcpListener,
    admin: TcpListener,
    mut termination: Termination,
    workers: usize,
    ready: impl FnOnce(&crate::Running),
) -> ExitCode {
    let settings = config.settings.clone();
    let notifications = config.settings.notifications.is_some();
    let shared = crate::build_shared(config);
    if notifications {
        // Its own thread: deliveries and state writes never touch the workers.
        let metrics = crate::gateway::notifier::NotifyMetrics::register(&shared.metrics.registry);
        if let Err(e) = crate::gateway::notifier::spawn_periodic(config_path.clone(), metrics) {
            eprintln!("scopegate: cannot start the notifier: {e}");
            return ExitCode::FAILURE;
        }
    }
    // Watches are in place before the listeners serve, so no change after start-up is
    // missed.
    let reloader = crate::gateway::reload::spawn_watchers(shared.clone(), config_path);
    let cpus = crate::gateway::cpu_affinity::allowed_cpus()
        .ok()
        .and_then(|allowed| {
            crate::domain::cpu_affinity::plan(settings.worker_cpu_affinity, workers, &allowed)
        });
    if let Some(cpus) = &cpus {
        tracing::info!(?cpus, "each worker pinned to a CPU of its own (worker_cpu_affinity: auto; `off` leaves them to the kernel)");
    }
    let running = match crate::start_pinned(shared.clone(), main, admin, workers, cpus) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("scopegate: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        listen = %running.addr,
        admin = %running.admin_addr,
        tokens = shared.policy.load().tokens.len(),
        generation = shared.policy.load().generation,
        "scopegate serving"
    );
    ready(&running);
    let signal = termination.recv().await;
    tracing::info!(
        signal,
        drain_timeout_ms = settings.timeouts.shutdown.as_millis() as u64,
        "shutdown requested; no longer accepting connections, draining in-flight requests"
    );
    drop(reloader);
    // A second signal skips the rest of the drain.
    tokio::select! {
        _ = running.shutdown() => {
            tracing::info!("scopegate stopped");
            ExitCode::SUCCESS
        }
        signal = termination.recv() => {
            tracing::warn!(signal, "second signal; exiting without finishing the drain");
            ExitCode::FAILURE
        }
    }
}
