//! The failed-authentication throttle: after too many wrong secrets for one SID, or too
//! many failures from one client address, further attempts get 429 for a cooling-off
//! period, even with the right secret.
//!
//! Memory is bounded by construction: per-SID state lives on configured tokens only
//! (unknown SIDs are never tracked by name, so a flood of random SIDs allocates nothing
//! per SID), and the per-address table has a fixed capacity.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Throttle settings (`bruteforce:` in scopegate.yaml).
#[derive(Debug, Clone)]
pub struct BruteForceSettings {
    /// Wrong secrets for one SID before it is throttled.
    pub max_failures: u32,
    /// Failures (unknown SIDs included) from one client address before it is throttled;
    /// higher, since several clients may share an address behind NAT.
    pub max_failures_per_address: u32,
    pub window: Duration,
    pub cooloff: Duration,
    pub max_tracked_addresses: usize,
}

impl Default for BruteForceSettings {
    fn default() -> Self {
        BruteForceSettings {
            max_failures: 10,
            max_failures_per_address: 100,
            window: Duration::from_secs(60),
            cooloff: Duration::from_secs(300),
            max_tracked_addresses: 65_536,
        }
    }
}

/// Failures of one key inside the current window.
#[derive(Debug, Clone, Copy)]
pub struct Failures {
    count: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
}

impl Failures {
    fn new(now: Instant) -> Failures {
        Failures {
            count: 0,
            window_start: now,
            blocked_until: None,
        }
    }

    pub fn is_blocked(&self, now: Instant) -> bool {
        self.blocked_until.is_some_and(|until| now < until)
    }

    /// Records a failure; returns true when this failure started a cooling-off period.
    fn record(&mut self, now: Instant, s: &BruteForceSettings, max_failures: u32) -> bool {
        if now.duration_since(self.window_start) > s.window {
            self.count = 0;
            self.window_start = now;
        }
        self.count = self.count.saturating_add(1);
        if self.count >= max_failures && !self.is_blocked(now) {
            self.blocked_until = Some(now + s.cooloff);
            self.count = 0;
            self.window_start = now;
            return true;
        }
        false
    }

    fn expired(&self, now: Instant, s: &BruteForceSettings) -> bool {
        !self.is_blocked(now) && now.duration_since(self.window_start) > s.window
    }
}

/// Per-SID failure state, kept on the token's runtime state.
#[derive(Debug)]
pub struct SidFailures {
    state: Mutex<Option<Failures>>,
    /// No failure is recorded (the state is `None`): then a request reads this flag and
    /// takes no lock. Every worker serving the token would otherwise write the lock's
    /// cache line twice per request. Written only under the lock.
    clear: AtomicBool,
}

impl Default for SidFailures {
    fn default() -> Self {
        SidFailures {
            state: Mutex::new(None),
            clear: AtomicBool::new(true),
        }
    }
}

impl SidFailures {
    pub fn is_blocked(&self, now: Instant) -> bool {
        if self.clear.load(Ordering::Acquire) {
            return false;
        }
        self.state
            .lock()
            .map(|f| f.is_some_and(|f| f.is_blocked(now)))
            .unwrap_or(false)
    }

    pub fn record_failure(&self, now: Instant, s: &BruteForceSettings) -> bool {
        match self.state.lock() {
            Ok(mut f) => {
                self.clear.store(false, Ordering::Release);
                f.get_or_insert_with(|| Failures::new(now))
                    .record(now, s, s.max_failures)
            }
            Err(_) => false,
        }
    }

    /// A correct secret clears the failure count (not an active cooling-off).
    pub fn record_success(&self, now: Instant) {
        if self.clear.load(Ordering::Acquire) {
            return;
        }
        if let Ok(mut f) = self.state.lock() {
            if f.is_some_and(|f| !f.is_blocked(now)) {
                *f = None;
                self.clear.store(true, Ordering::Release);
            }
        }
    }
}

/// Per-address failure state with a fixed capacity.
pub struct AddressThrottle {
    table: DashMap<IpAddr, Failures>,
    /// Whether any address was ever tracked. Until then a request takes no shard lock
    /// (which every worker would write for each request) and hashes nothing. Set before
    /// the first entry is inserted and never cleared, so it can only err towards looking.
    tracked: AtomicBool,
}

impl Default for AddressThrottle {
    fn default() -> Self {
        AddressThrottle {
            table: DashMap::new(),
            tracked: AtomicBool::new(false),
        }
    }
}

impl AddressThrottle {
    pub fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.tracked.load(Ordering::Acquire)
            && self.table.get(&ip).is_some_and(|f| f.is_blocked(now))
    }

    /// Records a failure from `ip`; returns true when it started a cooling-off period.
    /// When the table is full even after dropping expired entries, a new address is not
    /// tracked: memory stays bounded, and per-SID throttling still applies.
    pub fn record_failure(&self, ip: IpAddr, now: Instant, s: &BruteForceSettings) -> bool {
        if let Some(mut f) = self.table.get_mut(&ip) {
            return f.record(now, s, s.max_failures_per_address);
        }
        if self.table.len() >= s.max_tracked_addresses {
            self.table.retain(|_, f| !f.expired(now, s));
            if self.table.len() >= s.max_tracked_addresses {
                return false;
            }
        }
        let mut f = Failures::new(now);
        let started = f.record(now, s, s.max_failures_per_address);
        self.tracked.store(true, Ordering::Release);
        self.table.insert(ip, f);
        started
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BruteForceSettings {
        BruteForceSettings {
            max_failures: 3,
            max_failures_per_address: 2,
            window: Duration::from_secs(60),
            cooloff: Duration::from_secs(300),
            max_tracked_addresses: 100,
        }
    }

    #[test]
    fn sid_blocks_after_max_failures_until_cooloff_ends() {
        let s = settings();
        let f = SidFailures::default();
        let t0 = Instant::now();
        assert!(!f.record_failure(t0, &s));
        assert!(!f.record_failure(t0, &s));
        assert!(!f.is_blocked(t0));
        assert!(f.record_failure(t0, &s));
        assert!(f.is_blocked(t0 + Duration::from_secs(299)));
        f.record_success(t0 + Duration::from_secs(10));
        assert!(
            f.is_blocked(t0 + Duration::from_secs(10)),
            "success does not lift a block"
        );
        assert!(!f.is_blocked(t0 + Duration::from_secs(300)));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let s = settings();
        let f = SidFailures::default();
        let t0 = Instant::now();
        f.record_failure(t0, &s);
        f.record_failure(t0, &s);
        assert!(!f.record_failure(t0 + Duration::from_secs(61), &s));
        assert!(!f.is_blocked(t0 + Duration::from_secs(61)));
    }

    #[test]
    fn address_table_stays_bounded_under_a_flood() {
        let s = settings();
        let t = AddressThrottle::default();
        let now = Instant::now();
        for i in 0..10_000u32 {
            t.record_failure(IpAddr::from(i.to_be_bytes()), now, &s);
        }
        assert!(t.len() <= s.max_tracked_addresses);
        // A tracked address still gets blocked.
        let ip = IpAddr::from([0, 0, 0, 1]);
        t.record_failure(ip, now, &s);
        t.record_failure(ip, now, &s);
        assert!(t.is_blocked(ip, now));
    }
}
