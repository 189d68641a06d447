//! Shared per-token rate limits in Redis (`rate_limit.backend: redis`), so that several
//! replicas behind one load balancer enforce one budget per token.
//!
//! Each token has one key, `scopegate:rl:{sid}`, holding its GCRA "theoretical arrival
//! time" in microseconds of the Redis server's clock. A Lua script run atomically by Redis
//! takes one request from the bucket: replicas never race each other, and never disagree
//! about the time. The token's rate and burst travel with every call, so a reload that
//! changes a limit applies at once, on the state the token already has. Keys expire when
//! the bucket is full again.
//!
//! When Redis does not answer within `redis_timeout` (or answers with an error), the
//! request is decided by `on_redis_error`: `local` uses the token's in-process limiter
//! (limits then hold per replica), `deny` answers 429. Each such decision counts in
//! `scopegate_rate_limit_backend_errors_total{backend="redis"}`. After a few failures in a
//! row the backend stops calling Redis and probes it once per [`PROBE_INTERVAL`], so an
//! outage costs the hot path nothing; the connection manager reconnects in the background
//! and the first successful probe restores shared limits. Failures are logged once when
//! they start, then at most once per [`LOG_INTERVAL`], and the recovery once.
//!
//! The connection handling (lazy connect, per-call timeout, one retry on a dead
//! connection, skipping Redis while it is down) is [`RedisConn`], which quotas
//! ([`crate::gateway::quota`]) share and the fleet usage record ([`crate::gateway::usage_redis`]) reuses.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, RedisResult, Script};

use crate::config::RateLimit;
use crate::domain::ratelimit::{RateCheck, RateLimitBackend, RateOutcome, TokenLimiter};

/// Failed calls in a row after which Redis is only probed, not called on every request.
pub const TRIP_AFTER: u32 = 3;
/// How often a replica probes Redis while it is known to be down.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// At most one log line per this period while Redis stays unavailable.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

#[cfg(test)]
use crate::config::redis_url::check_url;
pub use crate::domain::backends::{OnRedisError, RedisSettings};

/// The Redis key of a bucket (a token's SID, or `SID:api` for a scope's own limit).
pub fn key(bucket: &str) -> String {
    format!("scopegate:rl:{bucket}")
}

/// GCRA in one atomic step, on the server's clock.
///
/// KEYS[1]: the token's key. ARGV[1]: emission interval (µs per request). ARGV[2]: burst
/// tolerance (interval × burst, µs). Returns `{allowed (1|0), remaining, ms}` where `ms` is
/// the time until the bucket is full again when allowed, until the next request may pass
/// when limited.
const GCRA: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, 0, math.ceil((allow_at - now) / 1000)}
end
local ttl = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl))
return {1, math.floor((tolerance - (new_tat - now)) / interval), ttl}
";

/// Largest emission interval and tolerance sent to the script: keeps every time value in
/// the script well inside a double's exact integers (2^53 µs), about 35 years of burst.
const MAX_INTERVAL_US: u64 = 1 << 44;
const MAX_TOLERANCE_US: u64 = 1 << 50;

/// The script's arguments for a limit: (interval µs, tolerance µs).
pub fn gcra_params(limit: RateLimit) -> (u64, u64) {
    let per_request = 1e6 / limit.requests_per_second.max(1e-12);
    let interval = if per_request.is_finite() {
        (per_request.round() as u64).clamp(1, MAX_INTERVAL_US)
    } else {
        MAX_INTERVAL_US
    };
    let tolerance = interval
        .saturating_mul(u64::from(limit.burst.max(1)))
        .min(MAX_TOLERANCE_US);
    (interval, tolerance)
}

/// Turns the script's reply into the limiter's outcome.
fn outcome(reply: (i64, i64, i64), burst: u32) -> RateOutcome {
    let (allowed, remaining, ms) = reply;
    let secs = u64::try_from(ms).unwrap_or(0).div_ceil(1000);
    if allowed == 1 {
        RateOutcome::Allowed {
            remaining: u32::try_from(remaining.max(0))
                .unwrap_or(u32::MAX)
                .min(burst),
            reset_secs: secs,
        }
    } else {
        RateOutcome::Limited {
            retry_after_secs: secs.max(1),
        }
    }
}

/// One Redis connection for the gateway's shared state (rate limits, quotas, the usage
/// record): a lazily connecting [`ConnectionManager`], a bound on every call, and the
/// health tracking that stops calling Redis while it is known to be down. Everything that
/// talks to Redis goes through [`RedisConn::call`], so no caller can hang on it.
pub struct RedisConn {
    client: Result<redis::Client, String>,
    /// Where Redis is, for logs (never the URL: it may hold a password).
    target: String,
    timeout: Duration,
    manager: OnceLock<ConnectionManager>,
    health: Health,
}

/// Why a call to Redis gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Redis is known to be down: the call was not even tried (one probe per interval).
    Skipped,
    /// The call failed or did not answer in time.
    Failed(String),
}

impl RedisConn {
    /// Builds the connection without connecting: the connection is made in the background
    /// (at once when called on a Tokio runtime, else on the first call), so the gateway
    /// starts even while Redis is down.
    pub fn new(url: &str, timeout: Duration) -> RedisConn {
        let client = redis::Client::open(url).map_err(|e| e.to_string());
        let target = match &client {
            Ok(c) => c.get_connection_info().addr().to_string(),
            Err(_) => "(invalid URL)".to_owned(),
        };
        let conn = RedisConn {
            client,
            target,
            timeout,
            manager: OnceLock::new(),
            health: Health::new(),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            if let Ok(manager) = conn.manager() {
                // Connect now rather than on the first request.
                tokio::spawn(async move {
                    let mut conn = manager;
                    let _: RedisResult<()> = redis::cmd("PING").query_async(&mut conn).await;
                });
            }
        }
        conn
    }

    /// Where Redis is, for logs.
    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the URL could be used at all (logged once by the owner).
    pub fn url_error(&self) -> Option<&str> {
        self.client.as_ref().err().map(String::as_str)
    }

    /// Runs `op` on the connection within the timeout. A connection that died (Redis
    /// restarted) fails once; the manager is already reconnecting, so one retry (inside
    /// the same time bound) usually lands on the new connection. `what` and `mode` only
    /// go to the log lines about an outage.
    pub async fn call<T, F, Fut>(&self, what: &str, mode: &str, op: F) -> Result<T, CallError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        if self.health.skip() {
            self.health.decided_without.fetch_add(1, Ordering::Relaxed);
            return Err(CallError::Skipped);
        }
        let attempt = async {
            let first = op(self.manager()?).await;
            match first {
                Err(e) if e.is_io_error() || e.is_unrecoverable_error() => {
                    op(self.manager()?).await
                }
                other => other,
            }
        };
        let error = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(out)) => {
                self.health.succeeded(&self.target, what);
                return Ok(out);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
        };
        self.health.decided_without.fetch_add(1, Ordering::Relaxed);
        self.health.failed(&error, &self.target, what, mode);
        Err(CallError::Failed(error))
    }

    fn manager(&self) -> RedisResult<ConnectionManager> {
        if let Some(m) = self.manager.get() {
            return Ok(m.clone());
        }
        let client = self
            .client
            .as_ref()
            .map_err(|e| RedisError::from((redis::ErrorKind::Client, "invalid URL", e.clone())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout.max(Duration::from_secs(1))))
            .set_response_timeout(Some(self.timeout))
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(self.manager.get_or_init(|| manager).clone())
    }
}

/// The shared backend. Cheap to call from many tasks at once: one multiplexed connection.
pub struct RedisBackend {
    conn: std::sync::Arc<RedisConn>,
    on_error: OnRedisError,
    script: Script,
    errors: IntCounter,
}

impl RedisBackend {
    /// Builds the backend and registers its error counter on `registry`. Does not connect
    /// (see [`RedisConn::new`]).
    pub fn new(settings: &RedisSettings, registry: &Registry) -> RedisBackend {
        let conn = std::sync::Arc::new(RedisConn::new(&settings.url, settings.timeout));
        let backend = RedisBackend {
            conn,
            on_error: settings.on_error,
            script: Script::new(GCRA),
            errors: error_counter(registry),
        };
        tracing::info!(
            target: "scopegate::ratelimit",
            redis = backend.conn.target(),
            timeout_ms = backend.conn.timeout().as_millis() as u64,
            on_redis_error = backend.on_error.as_str(),
            "rate limits are shared through Redis"
        );
        if let Some(e) = backend.conn.url_error() {
            tracing::error!(
                target: "scopegate::ratelimit",
                error = e,
                "the Redis URL is unusable; every request is decided by on_redis_error"
            );
        }
        backend
    }

    /// The connection, shared with quotas (they follow the same `on_redis_error`).
    pub fn conn(&self) -> &std::sync::Arc<RedisConn> {
        &self.conn
    }

    pub fn on_error(&self) -> OnRedisError {
        self.on_error
    }

    /// Takes one request from the shared bucket `bucket` (a token's SID, or `SID:api` for
    /// a scope's own limit), or decides without Redis.
    pub async fn check_shared(&self, bucket: &str, limiter: &TokenLimiter) -> RateOutcome {
        let limit = limiter.limit;
        let (interval, tolerance) = gcra_params(limit);
        let key = key(bucket);
        let result = self
            .conn
            .call("rate limits", self.on_error.as_str(), |mut conn| {
                let mut invocation = self.script.key(&key);
                invocation.arg(interval).arg(tolerance);
                async move {
                    let reply: (i64, i64, i64) = invocation.invoke_async(&mut conn).await?;
                    Ok(reply)
                }
            })
            .await;
        match result {
            Ok(reply) => outcome(reply, limit.burst),
            Err(_) => self.fallback(limiter),
        }
    }

    fn fallback(&self, limiter: &TokenLimiter) -> RateOutcome {
        self.errors.inc();
        match self.on_error {
            OnRedisError::Local => limiter.check(),
            OnRedisError::Deny => RateOutcome::Limited {
                retry_after_secs: 1,
            },
        }
    }
}

impl RateLimitBackend for RedisBackend {
    fn check<'a>(&'a self, bucket: &'a str, limiter: &'a TokenLimiter) -> RateCheck<'a> {
        Box::pin(self.check_shared(bucket, limiter))
    }
}

fn error_counter(registry: &Registry) -> IntCounter {
    let vec = IntCounterVec::new(
        Opts::new(
            "scopegate_rate_limit_backend_errors_total",
            "Rate-limit decisions the shared backend could not make (failed or timed-out \
             calls, and calls skipped while it is known to be down); each was decided by \
             on_redis_error.",
        ),
        &["backend"],
    )
    .expect("static metric definition is valid");
    if let Err(e) = registry.register(Box::new(vec.clone())) {
        // Only a second backend on the same registry gets here; count, but unexported.
        tracing::warn!(target: "scopegate::ratelimit", error = %e, "backend error metric not registered");
    }
    // Created up front so the series exists at 0 before the first error.
    vec.with_label_values(&["redis"])
}

/// Whether Redis is worth calling, and the rate-limited logging of its failures.
struct Health {
    epoch: Instant,
    /// Milliseconds since `epoch` until which calls are skipped; 0 while Redis is called
    /// on every request.
    open_until_ms: AtomicU64,
    /// A call failed since the last success (the fast path reads only this).
    troubled: AtomicBool,
    /// Requests decided without Redis (for the log lines).
    decided_without: AtomicU64,
    trouble: Mutex<Trouble>,
}

#[derive(Default)]
struct Trouble {
    in_row: u32,
    since: Option<Instant>,
    last_log: Option<Instant>,
    /// `decided_without` when the trouble began, and at the last log line.
    decisions_at_start: u64,
    logged_decisions: u64,
}

impl Health {
    fn new() -> Health {
        Health {
            epoch: Instant::now(),
            open_until_ms: AtomicU64::new(0),
            troubled: AtomicBool::new(false),
            decided_without: AtomicU64::new(0),
            trouble: Mutex::new(Trouble::default()),
        }
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means "closed".
        (self.epoch.elapsed().as_millis() as u64).max(1)
    }

    /// True when this request should not call Redis. While Redis is known to be down,
    /// one request per probe interval goes through to find out whether it is back.
    fn skip(&self) -> bool {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return false;
        }
        let now = self.now_ms();
        if now < until {
            return true;
        }
        let next = now + PROBE_INTERVAL.as_millis() as u64;
        // The winner probes; everyone else keeps deciding without Redis.
        self.open_until_ms
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    }

    fn succeeded(&self, target: &str, what: &str) {
        if !self.troubled.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut t) = self.trouble.lock() else {
            return;
        };
        if !self.troubled.swap(false, Ordering::AcqRel) {
            return;
        }
        self.open_until_ms.store(0, Ordering::Release);
        let decided = self.decided_without.load(Ordering::Relaxed);
        tracing::info!(
            target: "scopegate::ratelimit",
            redis = target,
            after_ms = t.since.map_or(0, |s| s.elapsed().as_millis() as u64),
            decided_without_redis = decided.saturating_sub(t.decisions_at_start),
            "Redis answers again: {what} are shared again"
        );
        *t = Trouble {
            logged_decisions: decided,
            ..Trouble::default()
        };
    }

    fn failed(&self, error: &str, target: &str, what: &str, mode: &str) {
        let Ok(mut t) = self.trouble.lock() else {
            return;
        };
        let now = Instant::now();
        self.troubled.store(true, Ordering::Release);
        t.in_row = t.in_row.saturating_add(1);
        if t.in_row >= TRIP_AFTER {
            let next = self.now_ms() + PROBE_INTERVAL.as_millis() as u64;
            self.open_until_ms.store(next, Ordering::Release);
        }
        let first = t.since.is_none();
        if first {
            t.since = Some(now);
            t.decisions_at_start = self.decided_without.load(Ordering::Relaxed);
        }
        let due = t
            .last_log
            .is_none_or(|last| now.duration_since(last) >= LOG_INTERVAL);
        if !due {
            return;
        }
        let decided = self.decided_without.load(Ordering::Relaxed);
        let since_last_log = decided.saturating_sub(t.logged_decisions);
        t.last_log = Some(now);
        t.logged_decisions = decided;
        if first {
            tracing::warn!(
                target: "scopegate::ratelimit",
                redis = target,
                error,
                on_redis_error = mode,
                "Redis unavailable for {what}; deciding with on_redis_error until it answers"
            );
        } else {
            tracing::warn!(
                target: "scopegate::ratelimit",
                redis = target,
                error,
                on_redis_error = mode,
                down_ms = t.since.map_or(0, |s| now.duration_since(s).as_millis() as u64),
                decided_without_redis = since_last_log,
                "Redis still unavailable for {what}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rps: f64, burst: u32) -> RateLimit {
        RateLimit {
            requests_per_second: rps,
            burst,
        }
    }

    #[test]
    fn gcra_params_are_microseconds_and_bounded() {
        assert_eq!(gcra_params(limit(10.0, 20)), (100_000, 2_000_000));
        assert_eq!(
            gcra_params(limit(0.0002, 3)),
            (5_000_000_000, 15_000_000_000)
        );
        assert_eq!(gcra_params(limit(1e9, 1)), (1, 1));
        let (i, t) = gcra_params(limit(1e-12, u32::MAX));
        assert_eq!((i, t), (MAX_INTERVAL_US, MAX_TOLERANCE_US));
    }

    #[test]
    fn replies_map_to_outcomes() {
        assert_eq!(
            outcome((1, 19, 100), 20),
            RateOutcome::Allowed {
                remaining: 19,
                reset_secs: 1
            }
        );
        assert_eq!(
            outcome((1, 50, 0), 20),
            RateOutcome::Allowed {
                remaining: 20,
                reset_secs: 0
            }
        );
        assert_eq!(
            outcome((0, 0, 4_999_000), 3),
            RateOutcome::Limited {
                retry_after_secs: 4999
            }
        );
        assert_eq!(
            outcome((0, 0, 1), 3),
            RateOutcome::Limited {
                retry_after_secs: 1
            }
        );
    }

    #[test]
    fn urls_are_checked_without_connecting() {
        assert!(check_url("redis://127.0.0.1:6379").is_ok());
        assert!(check_url("redis://:secret@redis.internal:6380/2").is_ok());
        assert!(check_url("http://127.0.0.1:6379").is_err());
        assert!(check_url("rediss://127.0.0.1:6379").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn the_circuit_opens_after_failures_in_a_row_and_probes() {
        let h = Health::new();
        assert!(!h.skip());
        for _ in 0..TRIP_AFTER - 1 {
            h.failed("boom", "t", "rate limits", "local");
            assert!(!h.skip(), "still calling Redis");
        }
        h.failed("boom", "t", "rate limits", "local");
        assert!(h.skip(), "open: skipped");
        // Once the probe time has come, exactly one caller probes.
        h.open_until_ms.store(1, Ordering::Release);
        assert!(!h.skip(), "the prober");
        assert!(h.skip(), "the others wait for the next probe");
        h.succeeded("t", "rate limits");
        assert!(!h.skip(), "closed again");
        assert!(!h.troubled.load(Ordering::Acquire));
    }

    #[test]
    fn keys_name_the_token() {
        assert_eq!(key("SGreader"), "scopegate:rl:SGreader");
    }
}
