//! Per-token rate limits (GCRA, from the `governor` crate) and the quota headers.
//!
//! The request path talks to [`RateLimitBackend`], so a shared backend (Redis, for several
//! replicas) can replace the in-process one without touching the proxy. The in-process
//! limiter lives on the token's runtime state, which survives reloads: a reload that does
//! not change a token's limit keeps its bucket; one that does starts a fresh bucket for
//! that token only.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

use crate::domain::settings::RateLimit;

/// What the limiter decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateOutcome {
    Allowed {
        /// Requests the token may still send at once.
        remaining: u32,
        /// Seconds until the burst capacity is full again.
        reset_secs: u64,
    },
    Limited {
        /// Seconds until the next request may pass (at least 1).
        retry_after_secs: u64,
    },
}

/// Where rate-limit state lives when it is shared: where every replica sees it. Without
/// one, the proxy calls the token's own in-process GCRA bucket ([`TokenLimiter`]) directly.
pub trait RateLimitBackend: Send + Sync {
    /// Takes one request from `bucket`: a token's SID, or `SID:api` for a scope with a
    /// `rate_limit` of its own.
    fn check<'a>(&'a self, bucket: &'a str, limiter: &'a TokenLimiter) -> RateCheck<'a>;
}

/// A decision in progress: a shared backend asks over the network, so the request path
/// awaits it instead of blocking a worker thread.
pub type RateCheck<'a> = Pin<Box<dyn Future<Output = RateOutcome> + Send + 'a>>;

type Gcra<C> = RateLimiter<NotKeyed, InMemoryState, C, StateInformationMiddleware>;

/// One token's bucket and its precomputed policy header.
pub struct TokenLimiter<C: Clock = DefaultClock> {
    pub limit: RateLimit,
    gcra: Gcra<C>,
    clock: C,
    replenish: Duration,
    /// `RateLimit-Policy` value, the same for every response of this token.
    policy_header: HeaderValue,
    /// The start of the `RateLimit` field, `"<name>";r=`, rendered once: the field is
    /// written on every response.
    field_prefix: Box<[u8]>,
    /// `RateLimit-Limit` value (the burst), the same for every response of this token.
    limit_header: HeaderValue,
}

fn quota(limit: RateLimit) -> (Quota, Duration) {
    let per = Duration::from_secs_f64(1.0 / limit.requests_per_second.max(1e-9))
        .max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(per)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    (quota, per)
}

impl TokenLimiter<DefaultClock> {
    pub fn new(limit: RateLimit) -> Self {
        Self::with_clock(limit, DefaultClock::default())
    }

    /// A limiter whose `RateLimit-Policy` item is called `name` (a scope's own limit is
    /// `"scope-<api>"`, so a client can tell which policy it hit).
    pub fn named(limit: RateLimit, name: &str) -> Self {
        Self::build(limit, DefaultClock::default(), name)
    }
}

impl<C: Clock + Clone> TokenLimiter<C> {
    pub fn with_clock(limit: RateLimit, clock: C) -> Self {
        Self::build(limit, clock, "default")
    }

    fn build(limit: RateLimit, clock: C, name: &str) -> Self {
        let (quota, replenish) = quota(limit);
        let gcra = RateLimiter::direct_with_clock(quota, clock.clone())
            .with_middleware::<StateInformationMiddleware>();
        let window = ceil_secs(replenish * limit.burst.max(1)).max(1);
        let policy_header =
            HeaderValue::from_str(&format!("\"{name}\";q={};w={window}", limit.burst))
                .unwrap_or(HeaderValue::from_static("\"default\""));
        let field_prefix = format!("\"{name}\";r=").into_bytes().into_boxed_slice();
        TokenLimiter {
            limit,
            gcra,
            clock,
            replenish,
            policy_header,
            field_prefix,
            limit_header: HeaderValue::from(limit.burst),
        }
    }

    /// Takes one request from the bucket.
    pub fn check(&self) -> RateOutcome {
        match self.gcra.check() {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let missing = self.limit.burst.saturating_sub(remaining);
                RateOutcome::Allowed {
                    remaining,
                    reset_secs: ceil_secs(self.replenish * missing),
                }
            }
            Err(not_until) => RateOutcome::Limited {
                retry_after_secs: ceil_secs(not_until.wait_time_from(self.clock.now())).max(1),
            },
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Adds the IETF `RateLimit-Policy`/`RateLimit` fields and the older
/// `RateLimit-Limit/-Remaining/-Reset` (and `Retry-After` when limited).
pub fn set_headers<C: Clock>(
    headers: &mut HeaderMap,
    limiter: &TokenLimiter<C>,
    outcome: RateOutcome,
) {
    // Room for the six fields at once: growing a map rehashes every name in it.
    headers.reserve(6);
    let (remaining, reset) = match outcome {
        RateOutcome::Allowed {
            remaining,
            reset_secs,
        } => (remaining, reset_secs),
        RateOutcome::Limited { retry_after_secs } => {
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            (0, retry_after_secs)
        }
    };
    // `"<name>";r=<remaining>;t=<reset>`, written once without the formatting machinery;
    // `RateLimit-Remaining` and `-Reset` are slices of the same buffer, so the three
    // per-response values share one allocation.
    let mut remaining_text = itoa::Buffer::new();
    let remaining_text = remaining_text.format(remaining).as_bytes();
    let mut reset_text = itoa::Buffer::new();
    let reset_text = reset_text.format(reset).as_bytes();
    let mut field = Vec::with_capacity(limiter.field_prefix.len() + 24);
    field.extend_from_slice(&limiter.field_prefix);
    let remaining_at = field.len()..field.len() + remaining_text.len();
    field.extend_from_slice(remaining_text);
    field.extend_from_slice(b";t=");
    let reset_at = field.len()..field.len() + reset_text.len();
    field.extend_from_slice(reset_text);
    let field = bytes::Bytes::from(field);
    let slice = |range| HeaderValue::from_maybe_shared(field.slice(range)).ok();
    let (remaining, reset) = (slice(remaining_at), slice(reset_at));

    headers.insert(RATELIMIT_POLICY, limiter.policy_header.clone());
    if let Ok(v) = HeaderValue::from_maybe_shared(field) {
        headers.insert(RATELIMIT, v);
    }
    headers.insert(RATELIMIT_LIMIT, limiter.limit_header.clone());
    if let (Some(remaining), Some(reset)) = (remaining, reset) {
        headers.insert(RATELIMIT_REMAINING, remaining);
        headers.insert(RATELIMIT_RESET, reset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn limiter(rps: f64, burst: u32) -> (TokenLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let l = TokenLimiter::with_clock(
            RateLimit {
                requests_per_second: rps,
                burst,
            },
            clock.clone(),
        );
        (l, clock)
    }

    #[test]
    fn exactly_burst_then_one_per_period() {
        let (l, clock) = limiter(2.0, 5);
        let mut allowed = 0;
        for _ in 0..8 {
            if matches!(l.check(), RateOutcome::Allowed { .. }) {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5, "burst of 5, then refused");
        assert_eq!(
            l.check(),
            RateOutcome::Limited {
                retry_after_secs: 1
            }
        );
        clock.advance(Duration::from_millis(500));
        assert!(matches!(
            l.check(),
            RateOutcome::Allowed { remaining: 0, .. }
        ));
        assert!(matches!(l.check(), RateOutcome::Limited { .. }));
        clock.advance(Duration::from_secs(10));
        assert_eq!(
            l.check(),
            RateOutcome::Allowed {
                remaining: 4,
                reset_secs: 1
            }
        );
    }

    #[test]
    fn headers_carry_the_quota() {
        let (l, _) = limiter(10.0, 20);
        let mut h = HeaderMap::new();
        let out = l.check();
        set_headers(&mut h, &l, out);
        assert_eq!(h["ratelimit-policy"], "\"default\";q=20;w=2");
        assert_eq!(h["ratelimit-limit"], "20");
        assert_eq!(h["ratelimit-remaining"], "19");
        assert_eq!(h["ratelimit"], "\"default\";r=19;t=1");
        assert!(h.get("retry-after").is_none());
        let mut h = HeaderMap::new();
        set_headers(
            &mut h,
            &l,
            RateOutcome::Limited {
                retry_after_secs: 3,
            },
        );
        assert_eq!(h["retry-after"], "3");
        assert_eq!(h["ratelimit-remaining"], "0");
    }
}
