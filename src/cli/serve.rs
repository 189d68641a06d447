//! `scopegate serve`: load the configuration (exit before binding any port if it is
//! invalid), bind, serve, reload on SIGHUP and file changes, drain on SIGTERM/SIGINT.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use tokio::net::TcpListener;

use super::LogFormatArg;
use crate::config::{self, LogFormat};

/// Sets up `tracing`: human-readable by default, JSON on request. `RUST_LOG` filters.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
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
        .build()
}

pub fn run(path: &Path, format: Option<LogFormatArg>) -> ExitCode {
    let config = match config::load(path) {
        Ok(c) => c,
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
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scopegate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config_path = config::absolute(path);
    let code = rt.block_on(async move {
        // Signal handlers go in before any port is bound: from the moment a client (or an
        // orchestrator probing /readyz) can see the process, SIGTERM drains and SIGHUP
        // reloads instead of killing it.
        let mut termination = Termination::new();
        let settings = config.settings.clone();
        let main = match TcpListener::bind(settings.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("scopegate: cannot listen on {}: {e}", settings.listen);
                return ExitCode::FAILURE;
            }
        };
        let admin = match TcpListener::bind(settings.admin_listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "scopegate: cannot listen on {} (admin): {e}",
                    settings.admin_listen
                );
                return ExitCode::FAILURE;
            }
        };
        let notifications = config.settings.notifications.is_some();
        let shared = crate::build_shared(config);
        if notifications {
            // Its own thread: deliveries and state writes never touch the workers.
            let metrics = crate::notify::NotifyMetrics::register(&shared.metrics.registry);
            if let Err(e) = crate::notify::spawn_periodic(config_path.clone(), metrics) {
                eprintln!("scopegate: cannot start the notifier: {e}");
                return ExitCode::FAILURE;
            }
        }
        // Watches are in place before the listeners serve, so no change after start-up is
        // missed.
        let reloader = crate::reload::spawn_watchers(shared.clone(), config_path);
        let running = match crate::start_workers(shared.clone(), main, admin, worker_count()) {
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
        let signal = termination.recv().await;
        tracing::info!(
            signal,
            drain_timeout = ?settings.timeouts.shutdown,
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
    });
    // Nothing is left to wait for; do not let a stuck blocking task (a reload reading a
    // hung network file system) hold up the exit.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

/// SIGTERM and SIGINT, registered once so that none is lost between the two waits.
pub struct Termination {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Termination {
    /// Must be called inside the runtime.
    pub fn new() -> Termination {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Termination {
                    signals: Some((term, int)),
                },
                _ => Termination { signals: None },
            }
        }
        #[cfg(not(unix))]
        {
            Termination {}
        }
    }

    /// Resolves with the signal's name on the next SIGTERM or SIGINT.
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        if let Some((term, int)) = self.signals.as_mut() {
            return tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
        }
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

impl Default for Termination {
    fn default() -> Self {
        Termination::new()
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn wait_for_termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
