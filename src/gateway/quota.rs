//! Request quotas (`quota: {requests: N, per: day|month}` on a token or a scope entry),
//! counted in Redis so that every replica takes from one count.
//!
//! Periods are calendar periods in UTC: a `day` quota resets at 00:00:00 UTC, a `month`
//! quota at 00:00:00 UTC on the first of the month. The period is computed from the
//! replica's clock (keep replicas on NTP: a skewed replica counts into the next period a
//! little early). Each (token or scope, period) has one key,
//! `scopegate:quota:{sid}[:{api}]:{period}`, e.g. `scopegate:quota:SGabc:2026-12-06`, that
//! expires an hour after its period ends.
//!
//! One Lua script checks every quota that applies to a request (the token's and its
//! scope's) and only when all have room increments them all: a request refused by one
//! quota consumes none, and two replicas can never both take the last unit.
//!
//! Quotas need `rate_limit.backend: redis` (validation refuses them otherwise: a quota
//! counted per replica would silently multiply by the number of replicas) and follow its
//! `on_redis_error`: `local` lets the request through uncounted, `deny` answers 429. Each
//! such decision counts in `scopegate_quota_backend_errors_total`.

use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use prometheus::{IntCounter, Registry};
use redis::Script;
use time::{Date, Month, OffsetDateTime, Time};

use crate::gateway::redis_limit::{OnRedisError, RedisConn};

pub use crate::domain::backends::{Quota, QuotaPeriod};

/// The UTC period containing `now_unix`: (label used in the key, start, end) in Unix seconds.
pub fn period(per: QuotaPeriod, now_unix: i64) -> (String, i64, i64) {
    let now = OffsetDateTime::from_unix_timestamp(now_unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let date = now.date();
    match per {
        QuotaPeriod::Day => {
            let start = date.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp();
            (
                format!(
                    "{:04}-{:02}-{:02}",
                    date.year(),
                    date.month() as u8,
                    date.day()
                ),
                start,
                start + 86_400,
            )
        }
        QuotaPeriod::Month => {
            let first = |year: i32, month: Month| {
                Date::from_calendar_date(year, month, 1)
                    .map(|d| d.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp())
                    .unwrap_or(now_unix)
            };
            let (ny, nm) = match date.month() {
                Month::December => (date.year() + 1, Month::January),
                m => (date.year(), m.next()),
            };
            (
                format!("{:04}-{:02}", date.year(), date.month() as u8),
                first(date.year(), date.month()),
                first(ny, nm),
            )
        }
    }
}

/// The Redis key of a quota's count for one period.
pub fn key(sid: &str, api: Option<&str>, period: &str) -> String {
    match api {
        None => format!("scopegate:quota:{sid}:{period}"),
        Some(api) => format!("scopegate:quota:{sid}:{api}:{period}"),
    }
}

/// All quotas of a request at once. KEYS: the counts; ARGV: per key, its limit and the
/// Unix time it expires at. Returns `{1, 0, count_1, ...}` (allowed, counts after the
/// increment) or `{0, i, count_i}` (the i-th quota is used up; nothing was counted).
const TAKE: &str = r"
for i = 1, #KEYS do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used >= tonumber(ARGV[2 * i - 1]) then
    return {0, i, used}
  end
end
local out = {1, 0}
for i = 1, #KEYS do
  local used = redis.call('INCR', KEYS[i])
  if used == 1 then
    redis.call('EXPIREAT', KEYS[i], ARGV[2 * i])
  end
  out[#out + 1] = used
end
return out
";

/// Keys outlive their period by this much, so a replica whose clock runs a little late
/// still finds the count.
const KEY_GRACE_SECS: i64 = 3_600;

/// One quota's state after a decision, for the response fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaState {
    /// The policy name in `RateLimit-Policy`/`RateLimit`: `quota` for the token's,
    /// `quota-<api>` for a scope's.
    pub name: String,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the period ends.
    pub reset_secs: u64,
    /// Length of the period in seconds (the policy's window).
    pub window_secs: u64,
}

/// What the quota check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaDecision {
    /// Counted; the states of every quota that applied.
    Allowed(Vec<QuotaState>),
    /// A quota is used up (its state), or Redis could not answer under `deny` (`None`).
    Limited(Option<QuotaState>),
    /// Redis could not answer under `local`: let through, uncounted.
    Uncounted,
}

/// One quota that applies to a request: whose it is and its limit.
#[derive(Debug, Clone, Copy)]
pub struct Applicable<'a> {
    /// `None`: the token's own quota; `Some(api)`: the scope's.
    pub api: Option<&'a str>,
    pub quota: Quota,
}

/// The quota counter: Redis through the rate-limit backend's connection.
pub struct QuotaBackend {
    conn: Arc<RedisConn>,
    on_error: OnRedisError,
    script: Script,
    errors: IntCounter,
}

impl QuotaBackend {
    pub fn new(conn: Arc<RedisConn>, on_error: OnRedisError, registry: &Registry) -> QuotaBackend {
        let errors = IntCounter::new(
            "scopegate_quota_backend_errors_total",
            "Quota decisions made without Redis (failed or timed-out calls, and calls skipped \
             while it is known to be down); each was decided by rate_limit.on_redis_error.",
        )
        .expect("static metric definition is valid");
        if let Err(e) = registry.register(Box::new(errors.clone())) {
            tracing::warn!(target: "scopegate::quota", error = %e, "quota error metric not registered");
        }
        QuotaBackend {
            conn,
            on_error,
            script: Script::new(TAKE),
            errors,
        }
    }

    /// Takes one request from every quota in `quotas` (all or none).
    pub async fn take(&self, sid: &str, quotas: &[Applicable<'_>], now_unix: i64) -> QuotaDecision {
        if quotas.is_empty() {
            return QuotaDecision::Allowed(Vec::new());
        }
        let mut keys = Vec::with_capacity(quotas.len());
        let mut args: Vec<i64> = Vec::with_capacity(quotas.len() * 2);
        let mut states = Vec::with_capacity(quotas.len());
        for q in quotas {
            let (label, start, end) = period(q.quota.per, now_unix);
            keys.push(key(sid, q.api, &label));
            args.push(i64::try_from(q.quota.requests).unwrap_or(i64::MAX));
            args.push(end + KEY_GRACE_SECS);
            states.push(QuotaState {
                name: match q.api {
                    None => "quota".to_owned(),
                    Some(api) => format!("quota-{api}"),
                },
                limit: q.quota.requests,
                remaining: 0,
                reset_secs: u64::try_from(end - now_unix).unwrap_or(0).max(1),
                window_secs: u64::try_from(end - start).unwrap_or(0),
            });
        }
        let result = self
            .conn
            .call("quotas", self.on_error.as_str(), |mut conn| {
                let mut invocation = self.script.prepare_invoke();
                for k in &keys {
                    invocation.key(k);
                }
                for a in &args {
                    invocation.arg(a);
                }
                async move {
                    let reply: Vec<i64> = invocation.invoke_async(&mut conn).await?;
                    Ok(reply)
                }
            })
            .await;
        match result {
            Ok(reply) => decide(reply, states),
            Err(_) => {
                self.errors.inc();
                match self.on_error {
                    OnRedisError::Local => QuotaDecision::Uncounted,
                    OnRedisError::Deny => QuotaDecision::Limited(None),
                }
            }
        }
    }
}

/// Turns the script's reply into a decision.
fn decide(reply: Vec<i64>, mut states: Vec<QuotaState>) -> QuotaDecision {
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    match reply.as_slice() {
        [1, 0, counts @ ..] if counts.len() == states.len() => {
            for (s, c) in states.iter_mut().zip(counts) {
                s.remaining = s.limit.saturating_sub(count(*c));
            }
            QuotaDecision::Allowed(states)
        }
        [0, i, _] => {
            let index = usize::try_from(*i).unwrap_or(0).saturating_sub(1);
            if index < states.len() {
                let mut s = states.swap_remove(index);
                s.remaining = 0;
                QuotaDecision::Limited(Some(s))
            } else {
                QuotaDecision::Limited(None)
            }
        }
        _ => QuotaDecision::Limited(None),
    }
}

const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Adds each quota's item to the `RateLimit-Policy` and `RateLimit` lists (after the rate
/// limit's `"default"` item, which `ratelimit::set_headers` writes first).
pub fn append_headers(headers: &mut HeaderMap, states: &[QuotaState]) {
    for s in states {
        append_item(
            headers,
            RATELIMIT_POLICY,
            &format!("\"{}\";q={};w={}", s.name, s.limit, s.window_secs),
        );
        append_item(
            headers,
            RATELIMIT,
            &format!("\"{}\";r={};t={}", s.name, s.remaining, s.reset_secs),
        );
    }
}

/// The fields of a 429 for a used-up quota: the quota is the policy that refused, so it
/// alone names the fields (and the older `RateLimit-Limit/-Remaining/-Reset`). Without a
/// state (Redis down under `deny`) only `Retry-After: 1`.
pub fn set_refusal_headers(headers: &mut HeaderMap, state: Option<&QuotaState>) {
    let Some(s) = state else {
        headers.insert(RETRY_AFTER, HeaderValue::from(1u64));
        return;
    };
    headers.insert(RETRY_AFTER, HeaderValue::from(s.reset_secs));
    for (name, value) in [
        (
            RATELIMIT_POLICY,
            format!("\"{}\";q={};w={}", s.name, s.limit, s.window_secs),
        ),
        (RATELIMIT, format!("\"{}\";r=0;t={}", s.name, s.reset_secs)),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(s.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(0u64));
    headers.insert(RATELIMIT_RESET, HeaderValue::from(s.reset_secs));
}

/// Structured-field lists may be split over several lines, but one line is what most
/// clients read: the item is joined to the existing value with `, `.
fn append_item(headers: &mut HeaderMap, name: HeaderName, item: &str) {
    let joined = match headers.get(&name).and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {item}"),
        None => item.to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_utc_calendar_periods() {
        // 2026-12-06T03:30:00Z
        let now = 1_796_527_800;
        let (label, start, end) = period(QuotaPeriod::Day, now);
        assert_eq!(label, "2026-12-06");
        assert_eq!((start, end), (1_796_515_200, 1_796_601_600));
        let (label, start, end) = period(QuotaPeriod::Month, now);
        assert_eq!(label, "2026-12");
        assert_eq!(start, 1_796_083_200, "2026-12-01T00:00:00Z");
        assert_eq!(end, 1_798_761_600, "2027-01-01T00:00:00Z");
        // The last second of a day and the first of the next.
        assert_eq!(period(QuotaPeriod::Day, 1_796_601_599).0, "2026-12-06");
        assert_eq!(period(QuotaPeriod::Day, 1_796_601_600).0, "2026-12-07");
        // February of a leap year.
        let (label, start, end) = period(QuotaPeriod::Month, 1_709_251_199); // 2024-02-29T23:59:59Z
        assert_eq!(label, "2024-02");
        assert_eq!(end - start, 29 * 86_400);
    }

    #[test]
    fn keys_name_token_scope_and_period() {
        assert_eq!(key("SGa", None, "2026-12"), "scopegate:quota:SGa:2026-12");
        assert_eq!(
            key("SGa", Some("reports"), "2026-12-06"),
            "scopegate:quota:SGa:reports:2026-12-06"
        );
    }

    fn state(name: &str, limit: u64) -> QuotaState {
        QuotaState {
            name: name.into(),
            limit,
            remaining: 0,
            reset_secs: 10,
            window_secs: 86_400,
        }
    }

    #[test]
    fn replies_map_to_decisions() {
        let both = || vec![state("quota", 100), state("quota-reports", 5)];
        match decide(vec![1, 0, 40, 5], both()) {
            QuotaDecision::Allowed(s) => {
                assert_eq!(s[0].remaining, 60);
                assert_eq!(s[1].remaining, 0);
            }
            other => panic!("{other:?}"),
        }
        match decide(vec![0, 2, 5], both()) {
            QuotaDecision::Limited(Some(s)) => assert_eq!(s.name, "quota-reports"),
            other => panic!("{other:?}"),
        }
        assert_eq!(decide(vec![7], both()), QuotaDecision::Limited(None));
        assert_eq!(decide(vec![0, 9, 1], both()), QuotaDecision::Limited(None));
    }

    #[test]
    fn headers_name_the_quota_policy() {
        let mut h = HeaderMap::new();
        h.insert(
            RATELIMIT_POLICY,
            HeaderValue::from_static("\"default\";q=20;w=2"),
        );
        h.insert(RATELIMIT, HeaderValue::from_static("\"default\";r=19;t=1"));
        let mut s = state("quota", 100);
        s.remaining = 60;
        append_headers(&mut h, &[s.clone()]);
        assert_eq!(
            h[RATELIMIT_POLICY],
            "\"default\";q=20;w=2, \"quota\";q=100;w=86400"
        );
        assert_eq!(h[RATELIMIT], "\"default\";r=19;t=1, \"quota\";r=60;t=10");

        let mut h = HeaderMap::new();
        set_refusal_headers(&mut h, Some(&s));
        assert_eq!(h[RETRY_AFTER], "10");
        assert_eq!(h[RATELIMIT_POLICY], "\"quota\";q=100;w=86400");
        assert_eq!(h[RATELIMIT], "\"quota\";r=0;t=10");
        assert_eq!(h[RATELIMIT_REMAINING], "0");
        let mut h = HeaderMap::new();
        set_refusal_headers(&mut h, None);
        assert_eq!(h[RETRY_AFTER], "1");
    }
}
