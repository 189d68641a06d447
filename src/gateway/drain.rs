//! The graceful drain of a worker's connections, and the signal each connection waits on.
//! hyper-util's `GracefulShutdown` does the same, but owns each connection behind a sealed
//! trait; the connection task needs to ask for a graceful shutdown itself too (an idle
//! HTTP/2 connection is closed with GOAWAY, see [`crate::gateway::h2_idle`]).
//!
//! Why not a `watch` channel: a connection's task polls its drain signal every time it is
//! woken, several times per request, and a `watch` (or `Notify`) wait takes a mutex on
//! every poll. Here a poll is one atomic load; the lock is taken when a connection opens,
//! when it closes, and when its task's waker changes (it does not, for a task).

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use slab::Slab;
use tokio::sync::Notify;

/// A worker's open connections: counted, and told when to finish.
pub struct Drain {
    shared: Arc<Shared>,
}

/// One connection's end of the drain: its signal, and its place in the count.
pub struct DrainWatch {
    shared: Arc<Shared>,
    /// This connection's slot in `Shared::wakers`.
    key: usize,
    /// The waker last stored in that slot, to tell whether it needs storing again.
    stored: Option<Waker>,
}

struct Shared {
    draining: AtomicBool,
    /// One slot per open connection: the waker of the task waiting on the drain, if any.
    wakers: Mutex<Slab<Option<Waker>>>,
    /// Told when the last connection closes.
    all_closed: Notify,
}

impl Shared {
    fn wakers(&self) -> MutexGuard<'_, Slab<Option<Waker>>> {
        // A panic while holding this lock leaves nothing half-done: the slab is whole.
        self.wakers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets the drain going and wakes every connection waiting on it.
    fn begin(&self) {
        self.draining.store(true, Ordering::Release);
        let wakers: Vec<Waker> = self
            .wakers()
            .iter_mut()
            .filter_map(|(_, w)| w.take())
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Default for Drain {
    fn default() -> Drain {
        Drain {
            shared: Arc::new(Shared {
                draining: AtomicBool::new(false),
                wakers: Mutex::new(Slab::new()),
                all_closed: Notify::new(),
            }),
        }
    }
}

impl Drain {
    /// A new connection's watch.
    pub fn watcher(&self) -> DrainWatch {
        let key = self.shared.wakers().insert(None);
        DrainWatch {
            shared: self.shared.clone(),
            key,
            stored: None,
        }
    }

    /// Connections still open.
    pub fn count(&self) -> usize {
        self.shared.wakers().len()
    }

    /// Tells every connection to finish, then waits until all have.
    pub async fn shutdown(self) {
        self.shared.begin();
        loop {
            let closed = self.shared.all_closed.notified();
            let mut closed = std::pin::pin!(closed);
            // Registered before the count is read, so a close in between is not missed.
            closed.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            closed.await;
        }
    }
}

impl Drop for Drain {
    /// A worker that goes away without a drain still tells its connections to finish.
    fn drop(&mut self) {
        self.shared.begin();
    }
}

impl DrainWatch {
    /// Resolves once the drain has begun (or the worker is gone).
    pub async fn begun(&mut self) {
        poll_fn(|cx| {
            if self.shared.draining.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            if self
                .stored
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                return Poll::Pending;
            }
            let mut wakers = self.shared.wakers();
            // Checked again under the lock: `begin` sets the flag before it takes the
            // wakers, so either it sees this waker or this sees the flag.
            if self.shared.draining.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            // The waker replaced is dropped after the lock is released: dropping a waker
            // may run code of its own.
            let replaced = wakers
                .get_mut(self.key)
                .and_then(|slot| slot.replace(cx.waker().clone()));
            drop(wakers);
            drop(replaced);
            self.stored = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl Drop for DrainWatch {
    fn drop(&mut self) {
        let mut wakers = self.shared.wakers();
        let removed = wakers.try_remove(self.key);
        let last = wakers.is_empty();
        drop(wakers);
        drop(removed);
        if last {
            self.shared.all_closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn every_waiting_connection_is_told_and_shutdown_waits_for_the_last() {
        let drain = Drain::default();
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let mut watch = drain.watcher();
            tasks.push(tokio::spawn(async move {
                watch.begun().await;
                // Still counted while it finishes.
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(watch);
            }));
        }
        // One that is not waiting when the drain begins sees it on its first poll.
        let mut late = drain.watcher();
        assert_eq!(drain.count(), 4);
        tokio::task::yield_now().await;
        let shutdown = tokio::spawn(drain.shutdown());
        late.begun().await;
        drop(late);
        tokio::time::timeout(Duration::from_secs(5), shutdown)
            .await
            .expect("the drain ends once every connection is gone")
            .unwrap();
        for t in tasks {
            t.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_connection_is_not_told_before_the_drain_and_a_gone_worker_tells_it() {
        let drain = Drain::default();
        let mut watch = drain.watcher();
        let early = tokio::time::timeout(Duration::from_millis(50), watch.begun()).await;
        assert!(early.is_err(), "no drain yet");
        let waiting = tokio::spawn(async move { watch.begun().await });
        tokio::task::yield_now().await;
        drop(drain);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("a dropped worker's connections are told")
            .unwrap();
    }

    #[tokio::test]
    async fn shutdown_with_no_connections_returns_at_once() {
        let drain = Drain::default();
        drop(drain.watcher());
        assert_eq!(drain.count(), 0);
        tokio::time::timeout(Duration::from_secs(1), drain.shutdown())
            .await
            .expect("nothing to wait for");
    }
}
