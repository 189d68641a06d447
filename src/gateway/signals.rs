//! The process signals the gateway listens to, registered in one place: SIGHUP asks for a
//! reload, SIGTERM and SIGINT for a graceful shutdown.

/// `SIGHUP`, when enabled and available.
pub struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    pub fn new(enabled: bool) -> Hangup {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signal = if enabled {
                match signal(SignalKind::hangup()) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for SIGHUP; reload by signal is off");
                        None
                    }
                }
            } else {
                None
            };
            Hangup { signal }
        }
        #[cfg(not(unix))]
        {
            let _ = enabled;
            Hangup {}
        }
    }

    /// Resolves on the next signal; never when disabled.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = self.signal.as_mut() {
            if s.recv().await.is_some() {
                return;
            }
            self.signal = None;
        }
        std::future::pending::<()>().await
    }
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
            // SIGHUP means "reload" here, never "exit": taking it over at once (tokio keeps
            // a handler for the life of the process) closes the window before the reload
            // task listens for it.
            let _ = signal(SignalKind::hangup());
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
