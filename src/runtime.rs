//! Per-token runtime state that outlives any one configuration snapshot: metric handles,
//! last use, and (through `ratelimit`) the limiter bucket.
//!
//! Kept in a concurrent map keyed by SID. A reload re-attaches the state of every token
//! that still exists to the new snapshot and forgets the rest, so counters and buckets are
//! not reset by an unrelated edit.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use crate::metrics::{Metrics, TokenSeries};

/// State of one token that survives reloads.
pub struct TokenRuntime {
    pub series: TokenSeries,
    /// Unix seconds of the last authenticated request, 0 when never used since start.
    last_used: AtomicI64,
}

impl TokenRuntime {
    fn new(sid: &str, account: &str) -> TokenRuntime {
        TokenRuntime {
            series: TokenSeries::new(sid, account),
            last_used: AtomicI64::new(0),
        }
    }

    /// Records a use; the metric gauge is only touched when the second changes, which keeps
    /// a busy token from hashing labels on every request.
    pub fn mark_used(&self, metrics: &Metrics, now_unix: i64) {
        if self.last_used.swap(now_unix, Ordering::Relaxed) != now_unix {
            metrics.mark_used(&self.series, now_unix as f64);
        }
    }

    pub fn last_used(&self) -> Option<i64> {
        match self.last_used.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }
}

/// The registry of runtime states, keyed by SID.
#[derive(Default)]
pub struct RuntimeRegistry {
    tokens: DashMap<String, Arc<TokenRuntime>>,
}

impl RuntimeRegistry {
    /// The state for a token, created on first sight. A token whose account changed gets
    /// fresh state so that its series carry the right `account` label.
    pub fn attach(&self, sid: &str, account: &str, metrics: &Metrics) -> Arc<TokenRuntime> {
        if let Some(existing) = self.tokens.get(sid) {
            if existing.series.account == account {
                return existing.clone();
            }
        }
        let fresh = Arc::new(TokenRuntime::new(sid, account));
        if let Some(old) = self.tokens.insert(sid.to_owned(), fresh.clone()) {
            metrics.forget_token(&old.series);
        }
        fresh
    }

    /// Forgets every token not in `keep`, dropping its metric series.
    pub fn retain(&self, keep: impl Fn(&str) -> bool, metrics: &Metrics) {
        let mut gone = Vec::new();
        self.tokens.retain(|sid, rt| {
            let stay = keep(sid);
            if !stay {
                gone.push(rt.clone());
            }
            stay
        });
        for rt in gone {
            metrics.forget_token(&rt.series);
        }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}
