//! The graceful drain of a worker's connections, and the signal each connection waits on.
//! hyper-util's `GracefulShutdown` does the same, but owns each connection behind a sealed
//! trait; the connection task needs to ask for a graceful shutdown itself too (an idle
//! HTTP/2 connection is closed with GOAWAY, see [`crate::gateway::h2_idle`]).

use tokio::sync::watch;

/// A worker's open connections: counted, and told when to finish.
pub struct Drain {
    signal: watch::Sender<bool>,
}

/// One connection's end of the drain: its signal, and its place in the count.
pub struct DrainWatch(watch::Receiver<bool>);

impl Default for Drain {
    fn default() -> Drain {
        Drain {
            signal: watch::channel(false).0,
        }
    }
}

impl Drain {
    /// A new connection's watch.
    pub fn watcher(&self) -> DrainWatch {
        DrainWatch(self.signal.subscribe())
    }

    /// Connections still open.
    pub fn count(&self) -> usize {
        self.signal.receiver_count()
    }

    /// Tells every connection to finish, then waits until all have.
    pub async fn shutdown(self) {
        let _ = self.signal.send(true);
        self.signal.closed().await;
    }
}

impl DrainWatch {
    /// Resolves once the drain has begun (or the worker is gone).
    pub async fn begun(&mut self) {
        let _ = self.0.wait_for(|draining| *draining).await;
    }
}
