//! A timer for hyper's HTTP/1 server whose sleeps are recycled across requests.
//!
//! hyper times every request head (the slowloris limit, `timeouts.header_read`): it asks
//! its timer for a new sleep each time it starts waiting for a head, and drops it when the
//! head is in. With tokio's timer that is an entry made, registered in the timer wheel and
//! removed again per request, about 1,300 instructions (BENCHMARKS.md, round 4). Here a
//! dropped sleep goes back to a per-worker spare list, still registered; the next head's
//! sleep is one from the list with its deadline moved later, which tokio does with one
//! atomic store (the wheel re-files the entry only when its old deadline comes round).
//!
//! The deadlines are exactly the ones hyper asks for, polled exactly when hyper polls
//! them: only the bookkeeping behind them is shared. A spare sleep whose old deadline
//! passes wakes the task that last waited on it once, for nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Spare sleeps kept, at most: one per connection waiting for a head is plenty, and the
/// rest are dropped (deregistered) as usual.
const MAX_SPARE: usize = 4096;

type Spares = Arc<Mutex<Vec<Pin<Box<tokio::time::Sleep>>>>>;

/// The timer (one per worker's connection builder).
#[derive(Clone, Default)]
pub struct RecycledTimer {
    spare: Spares,
}

impl RecycledTimer {
    fn recycled(&self, deadline: tokio::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let spare = self.spare.lock().ok().and_then(|mut s| s.pop());
        let sleep = match spare {
            Some(mut sleep) => {
                sleep.as_mut().reset(deadline);
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        Box::pin(RecycledSleep {
            sleep: Some(sleep),
            spare: self.spare.clone(),
        })
    }
}

/// Time is tokio's, as with hyper-util's `TokioTimer` (so paused time in tests applies).
impl hyper::rt::Timer for RecycledTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.recycled(tokio::time::Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.recycled(deadline.into())
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into()
    }
}

/// A sleep that goes back to its timer's spare list when dropped.
struct RecycledSleep {
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    spare: Spares,
}

impl Future for RecycledSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl hyper::rt::Sleep for RecycledSleep {}

impl Drop for RecycledSleep {
    fn drop(&mut self) {
        if let (Some(sleep), Ok(mut spare)) = (self.sleep.take(), self.spare.lock()) {
            if spare.len() < MAX_SPARE {
                spare.push(sleep);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer;

    #[tokio::test(start_paused = true)]
    async fn a_recycled_sleep_keeps_the_deadline_it_is_given() {
        let timer = RecycledTimer::default();
        let start = timer.now();
        let first = timer.sleep_until(start + Duration::from_secs(5));
        drop(first);
        assert_eq!(timer.spare.lock().unwrap().len(), 1);
        // The spare sleep is taken again, with the new (later) deadline.
        let second = timer.sleep_until(start + Duration::from_secs(10));
        assert!(timer.spare.lock().unwrap().is_empty());
        let t0 = tokio::time::Instant::now();
        second.await;
        assert_eq!(t0.elapsed(), Duration::from_secs(10));
        // An earlier deadline than the spare's is honoured as well.
        let third = timer.sleep_until(timer.now() + Duration::from_secs(1));
        let t1 = tokio::time::Instant::now();
        third.await;
        assert_eq!(t1.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn sleeps_in_use_at_once_are_distinct() {
        let timer = RecycledTimer::default();
        let now = timer.now();
        let short = timer.sleep_until(now + Duration::from_secs(1));
        let long = timer.sleep_until(now + Duration::from_secs(3));
        let t0 = tokio::time::Instant::now();
        short.await;
        assert_eq!(t0.elapsed(), Duration::from_secs(1));
        long.await;
        assert_eq!(t0.elapsed(), Duration::from_secs(3));
        assert_eq!(timer.spare.lock().unwrap().len(), 2);
    }
}
