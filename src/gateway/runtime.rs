//! Per-token runtime state that outlives any one configuration snapshot: metric handles,
//! last use, the rate-limit bucket and the failed-authentication count.
//!
//! Kept in a concurrent map keyed by SID. A reload re-attaches the state of every token
//! that still exists to the new snapshot and forgets the rest, so counters and buckets are
//! not reset by an unrelated edit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use dashmap::DashMap;
use prometheus::{Gauge, IntGauge};

use crate::config::RateLimit;
use crate::domain::bruteforce::SidFailures;
use crate::domain::ratelimit::{RateOutcome, TokenLimiter};
use crate::gateway::metrics::{Metrics, TokenSeries};

/// State of one token that survives reloads.
pub struct TokenRuntime {
    pub series: TokenSeries,
    /// Unix seconds of the last authenticated request, 0 when never used since start.
    last_used: AtomicI64,
    /// Swapped only when a reload changes this token's limit.
    pub limiter: ArcSwap<TokenLimiter>,
    pub failures: SidFailures,
    /// Per-scope usage for `scopegate audit`.
    pub usage: crate::gateway::usage::TokenUsage,
    /// Created on the token's first rate-limit decision: 100,000 configured tokens
    /// would otherwise mean 200,000 gauge series (and hundreds of megabytes) at start-up.
    rate_gauges: OnceLock<(IntGauge, Gauge)>,
    /// Buckets of the scopes with a `rate_limit` of their own, by API name (API ids may
    /// change with a reload; names are what the operator wrote).
    scope_limiters: Mutex<HashMap<String, Arc<ScopeLimiter>>>,
}

pub use crate::domain::policy::ScopeLimiter;

impl TokenRuntime {
    fn new(sid: &str, account: &str, limit: RateLimit) -> TokenRuntime {
        TokenRuntime {
            series: TokenSeries::new(sid, account),
            last_used: AtomicI64::new(0),
            limiter: ArcSwap::from_pointee(TokenLimiter::new(limit)),
            failures: SidFailures::default(),
            usage: crate::gateway::usage::TokenUsage::default(),
            rate_gauges: OnceLock::new(),
            scope_limiters: Mutex::new(HashMap::new()),
        }
    }

    /// The scopes' own limiters for a new snapshot: a scope whose limit did not change
    /// keeps its bucket, scopes no longer limited are forgotten.
    pub fn scope_limiters(&self, limits: &[(&str, RateLimit)]) -> Vec<Arc<ScopeLimiter>> {
        let mut map = self
            .scope_limiters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.retain(|api, l| {
            limits
                .iter()
                .any(|(a, lim)| a == api && l.limiter.limit == *lim)
        });
        limits
            .iter()
            .map(|(api, limit)| {
                map.entry((*api).to_owned())
                    .or_insert_with(|| {
                        Arc::new(ScopeLimiter {
                            bucket: format!("{}:{api}", self.series.sid),
                            limiter: TokenLimiter::named(*limit, &format!("scope-{api}")),
                        })
                    })
                    .clone()
            })
            .collect()
    }

    /// Drops every metric series of this token (it was removed, or changed account).
    fn forget(&self, metrics: &Metrics) {
        metrics.forget_token(&self.series);
        let used = self.usage.snapshot();
        metrics.forget_scopes(
            &self.series,
            used.scopes
                .iter()
                .map(|s| (s.api.as_str(), s.method.as_str())),
        );
    }

    /// Records a use; the metric gauge is only touched when the second changes, which keeps
    /// a busy token from hashing labels on every request.
    pub fn mark_used(&self, metrics: &Metrics, now_unix: i64) {
        // Read first: within a second the value is already there, and a read leaves the
        // cache line shared between the workers where a swap would take it from the other.
        if self.last_used.load(Ordering::Relaxed) != now_unix
            && self.last_used.swap(now_unix, Ordering::Relaxed) != now_unix
        {
            metrics.mark_used(&self.series, now_unix as f64);
        }
    }

    pub fn last_used(&self) -> Option<i64> {
        match self.last_used.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }

    /// The remaining burst after the token's last rate-limit decision, `None` before the
    /// first (the console's "headroom").
    pub fn rate_remaining(&self) -> Option<i64> {
        self.rate_gauges.get().map(|(remaining, _)| remaining.get())
    }

    /// Updates the rate-limit gauges after a decision (pre-resolved handles: no label
    /// lookup on the hot path).
    pub fn record_rate(&self, metrics: &Metrics, outcome: RateOutcome, burst: u32) {
        let remaining = match outcome {
            RateOutcome::Allowed { remaining, .. } => remaining,
            RateOutcome::Limited { .. } => 0,
        };
        let (remaining_gauge, utilization_gauge) = self.rate_gauges.get_or_init(|| {
            let sid = self.series.sid.as_str();
            (
                metrics.rate_limit_remaining.with_label_values(&[sid]),
                metrics.rate_limit_utilization.with_label_values(&[sid]),
            )
        });
        remaining_gauge.set(i64::from(remaining));
        let burst = f64::from(burst.max(1));
        utilization_gauge.set((burst - f64::from(remaining)) / burst);
    }
}

/// The registry of runtime states, keyed by SID.
#[derive(Default)]
pub struct RuntimeRegistry {
    tokens: DashMap<String, Arc<TokenRuntime>>,
}

impl RuntimeRegistry {
    /// The state for a token, created on first sight. A token whose account changed gets
    /// fresh state so that its series carry the right `account` label; a token whose limit
    /// changed gets a fresh bucket, everything else is kept.
    pub fn attach(
        &self,
        sid: &str,
        account: &str,
        limit: RateLimit,
        metrics: &Metrics,
    ) -> Arc<TokenRuntime> {
        if let Some(existing) = self.tokens.get(sid) {
            if existing.series.account == account {
                if existing.limiter.load().limit != limit {
                    existing.limiter.store(Arc::new(TokenLimiter::new(limit)));
                    if let Some((remaining, utilization)) = existing.rate_gauges.get() {
                        remaining.set(i64::from(limit.burst));
                        utilization.set(0.0);
                    }
                }
                return existing.clone();
            }
        }
        // Forget the old state first: its series share the SID label with the new one's.
        if let Some((_, old)) = self.tokens.remove(sid) {
            old.forget(metrics);
        }
        let fresh = Arc::new(TokenRuntime::new(sid, account, limit));
        self.tokens.insert(sid.to_owned(), fresh.clone());
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
            rt.forget(metrics);
        }
    }

    /// Visits every token's runtime state (for persisting usage).
    pub fn for_each(&self, mut f: impl FnMut(&str, &TokenRuntime)) {
        for entry in self.tokens.iter() {
            f(entry.key(), entry.value());
        }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}
