//! Spreads client connections evenly over the workers.
//!
//! Every worker accepts on the same listening socket, and the kernel tells all of them
//! about each new connection: whichever calls `accept` first gets it. When connections
//! arrive in a burst (a load balancer's pool, a benchmark opening 64 at once), one worker
//! can take most of them while the other sits idle; measured with 2 workers under the
//! shared benchmark, one thread did 83 % of the work. So a worker that accepts a
//! connection while it serves at least [`SLACK`] more than the least-loaded worker hands
//! the connection, still unread, to that worker. Accepting stays where it was; only the
//! rare lopsided accept costs a hand-off (a message to the other worker's accept loop).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus::{IntGauge, IntGaugeVec};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::OwnedSemaphorePermit;

/// How many more connections than the least-loaded worker a worker may serve before it
/// hands new ones over. 2 rather than 1: with 1, two workers accepting at once could pass
/// connections back and forth.
pub const SLACK: usize = 2;

/// An accepted connection on its way to another worker. The permit stays with it: the
/// connection counts against the limit of the worker that accepted it. It is counted in
/// the receiving worker's load from the moment it is sent.
pub struct Handoff {
    pub stream: std::net::TcpStream,
    pub remote: SocketAddr,
    pub permit: OwnedSemaphorePermit,
    pub open: OpenConnection,
}

/// The workers' open-connection counts and their hand-off queues.
pub struct Balancer {
    workers: Vec<Seat>,
}

struct Seat {
    /// Connections this worker serves now. Written once per connection, not per request.
    open: AtomicUsize,
    /// The same count for operators (`scopegate_worker_connections`), when exported.
    gauge: Option<IntGauge>,
    inbox: UnboundedSender<Handoff>,
}

/// What one worker's accept loop needs: its index, the balancer, and its own queue of
/// connections handed to it.
pub struct WorkerSeat {
    pub index: usize,
    pub balancer: Arc<Balancer>,
    pub inbox: UnboundedReceiver<Handoff>,
}

impl Balancer {
    /// A balancer for `workers` workers, and each worker's seat in index order. With
    /// `gauges`, each worker's count is also exported, under its index.
    pub fn seats(workers: usize, gauges: Option<&IntGaugeVec>) -> Vec<WorkerSeat> {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| unbounded_channel()).unzip();
        let balancer = Arc::new(Balancer {
            workers: senders
                .into_iter()
                .enumerate()
                .map(|(index, inbox)| Seat {
                    open: AtomicUsize::new(0),
                    gauge: gauges.map(|g| g.with_label_values(&[index.to_string().as_str()])),
                    inbox,
                })
                .collect(),
        });
        receivers
            .into_iter()
            .enumerate()
            .map(|(index, inbox)| WorkerSeat {
                index,
                balancer: balancer.clone(),
                inbox,
            })
            .collect()
    }

    /// The worker a connection accepted by worker `me` should go to instead, if `me`
    /// serves at least [`SLACK`] more connections than the least-loaded worker.
    pub fn place(&self, me: usize) -> Option<usize> {
        let mine = self.workers.get(me)?.open.load(Ordering::Relaxed);
        let (least, count) = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| (i, w.open.load(Ordering::Relaxed)))
            .min_by_key(|&(_, open)| open)?;
        (least != me && mine >= count + SLACK).then_some(least)
    }

    /// Queues `handoff` for worker `to`; gives it back when that worker no longer takes
    /// connections (it stopped for shutdown), so the caller serves it itself.
    pub fn hand_off(&self, to: usize, handoff: Handoff) -> Result<(), Handoff> {
        match self.workers.get(to) {
            Some(w) => w.inbox.send(handoff).map_err(|e| e.0),
            None => Err(handoff),
        }
    }

    /// Counts a connection as served by `worker` until the guard is dropped.
    pub fn open(self: &Arc<Self>, worker: usize) -> OpenConnection {
        if let Some(w) = self.workers.get(worker) {
            w.open.fetch_add(1, Ordering::Relaxed);
            if let Some(g) = &w.gauge {
                g.inc();
            }
        }
        OpenConnection {
            balancer: self.clone(),
            worker,
        }
    }
}

/// A connection being served, counted in its worker's load while it lives.
pub struct OpenConnection {
    balancer: Arc<Balancer>,
    worker: usize,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if let Some(w) = self.balancer.workers.get(self.worker) {
            w.open.fetch_sub(1, Ordering::Relaxed);
            if let Some(g) = &w.gauge {
                g.dec();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_keeps_connections_until_it_is_slack_ahead() {
        let seats = Balancer::seats(2, None);
        let b = seats[0].balancer.clone();
        let _one = b.open(0);
        assert_eq!(b.place(0), None, "one ahead is within the slack");
        let _two = b.open(0);
        assert_eq!(b.place(0), Some(1), "two ahead hands over");
        assert_eq!(b.place(1), None, "the least-loaded worker keeps its own");
        let _other = b.open(1);
        assert_eq!(b.place(0), None);
    }

    #[test]
    fn closing_connections_lowers_the_count() {
        let seats = Balancer::seats(3, None);
        let b = seats[0].balancer.clone();
        let guards: Vec<_> = (0..4).map(|_| b.open(2)).collect();
        assert_eq!(b.place(2), Some(0), "the first of the least loaded");
        drop(guards);
        assert_eq!(b.place(2), None);
    }

    #[test]
    fn a_single_worker_never_hands_over() {
        let seats = Balancer::seats(1, None);
        let b = seats[0].balancer.clone();
        let _g: Vec<_> = (0..10).map(|_| b.open(0)).collect();
        assert_eq!(b.place(0), None);
    }

    #[test]
    fn the_gauge_follows_the_count() {
        let vec = IntGaugeVec::new(prometheus::Opts::new("t", "t"), &["worker"]).unwrap();
        let seats = Balancer::seats(2, Some(&vec));
        let b = seats[0].balancer.clone();
        let g = b.open(1);
        assert_eq!(vec.with_label_values(&["1"]).get(), 1);
        assert_eq!(vec.with_label_values(&["0"]).get(), 0);
        drop(g);
        assert_eq!(vec.with_label_values(&["1"]).get(), 0);
    }

    #[tokio::test]
    async fn a_stopped_worker_gives_the_connection_back() {
        let mut seats = Balancer::seats(2, None);
        let b = seats[0].balancer.clone();
        drop(seats.pop()); // worker 1 stopped: its queue is gone
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let (stream, remote) = listener.accept().unwrap();
        let permit = Arc::new(tokio::sync::Semaphore::new(1))
            .acquire_owned()
            .await
            .unwrap();
        let back = b.hand_off(
            1,
            Handoff {
                stream,
                remote,
                permit,
                open: b.open(1),
            },
        );
        assert!(
            back.is_err(),
            "the caller gets the connection back to serve"
        );
    }
}
