//! The fleet-wide usage record in Redis (`usage: {backend: redis}`): every replica merges
//! its per-token, per-scope usage into one record that `scopegate audit`, `scopegate token
//! show` (and the admin console, through [`read_fleet`]) read.
//!
//! Coarse-grained on purpose: each replica writes at most once per token per `interval`
//! (default 60 s), one script call carrying every scope of the token that changed since
//! the last write, so Redis load does not grow with traffic. Layout:
//!
//! - `scopegate:usage:tokens`: a set of the SIDs that have a record;
//! - `scopegate:usage:{sid}`: a hash with `since` (earliest start of any replica's record,
//!   min-merged), `last:{api}:{method}` (last use in Unix seconds, max-merged) and
//!   `count:{api}:{method}` (requests, summed: each replica adds what it saw since its
//!   previous write).
//!
//! The merge runs in a Lua script, so replicas writing at once never lose each other's
//! updates, and a write repeated after a timeout cannot move a last use backwards. A write
//! Redis did not take (down, slow) is kept and sent with the next one: nothing is lost
//! while the replica runs, and the gateway's shutdown makes one last write. Counts start
//! with the backend: requests a replica saw before it (its restored `usage.json`) only
//! contribute their last use, never their counts, so restarts cannot count twice.
//!
//! Precision: a last use reaches Redis within one `interval` (plus the shutdown write); a
//! replica killed without its shutdown write loses at most its last interval.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounter, Registry};
use redis::aio::ConnectionManager;
use redis::Script;

use crate::gateway::proxy::Shared;
use crate::gateway::redis_limit::RedisConn;
use crate::gateway::usage::{ScopeRecord, TokenRecord, UsageState, STATE_VERSION};

/// The set of SIDs with a record.
pub const INDEX_KEY: &str = "scopegate:usage:tokens";
/// Since when the fleet record exists (the first writer's start; set once, `NX`): a
/// configured token without a record was unused at least since then.
pub const SINCE_KEY: &str = "scopegate:usage:since";

pub use crate::domain::backends::UsageRedisSettings;

/// The hash of one token's fleet record.
pub fn key(sid: &str) -> String {
    format!("scopegate:usage:{sid}")
}

/// KEYS[1]: the token's hash, KEYS[2]: the index set. ARGV[1]: SID, ARGV[2]: `since`,
/// then per scope: `api:method`, last use, count to add.
const MERGE: &str = r"
redis.call('SADD', KEYS[2], ARGV[1])
local since = tonumber(ARGV[2])
local old = tonumber(redis.call('HGET', KEYS[1], 'since'))
if not old or since < old then redis.call('HSET', KEYS[1], 'since', ARGV[2]) end
for i = 3, #ARGV, 3 do
  local f = 'last:' .. ARGV[i]
  local last = tonumber(ARGV[i + 1])
  local prev = tonumber(redis.call('HGET', KEYS[1], f))
  if not prev or last > prev then redis.call('HSET', KEYS[1], f, ARGV[i + 1]) end
  local add = tonumber(ARGV[i + 2])
  if add > 0 then redis.call('HINCRBY', KEYS[1], 'count:' .. ARGV[i], add) end
end
return 1
";

/// What this replica already wrote, per (SID, API, method): (count, last use).
type Written = HashMap<(String, String, String), (u64, i64)>;

/// The writer: one per gateway.
pub struct UsageWriter {
    conn: RedisConn,
    script: Script,
    errors: IntCounter,
    written: tokio::sync::Mutex<Written>,
    /// Whether [`SINCE_KEY`] was set (or found set) by this writer.
    since_written: std::sync::atomic::AtomicBool,
    /// This writer's start, Unix seconds.
    started: i64,
    pub interval: Duration,
}

impl UsageWriter {
    /// Builds the writer (does not connect, see [`RedisConn::new`]) and registers
    /// `scopegate_usage_backend_errors_total`.
    pub fn new(settings: &UsageRedisSettings, registry: &Registry) -> UsageWriter {
        let errors = IntCounter::new(
            "scopegate_usage_backend_errors_total",
            "Writes of the usage record to Redis that failed, timed out or were skipped while \
             Redis is known to be down; the usage is kept and sent with the next write.",
        )
        .expect("static metric definition is valid");
        if let Err(e) = registry.register(Box::new(errors.clone())) {
            tracing::warn!(target: "scopegate::usage", error = %e, "usage error metric not registered");
        }
        let conn = RedisConn::new(&settings.url, settings.timeout);
        tracing::info!(
            target: "scopegate::usage",
            redis = conn.target(),
            interval_secs = settings.interval.as_secs_f64(),
            "the usage record is shared through Redis"
        );
        UsageWriter {
            conn,
            script: Script::new(MERGE),
            errors,
            written: tokio::sync::Mutex::new(Written::new()),
            since_written: std::sync::atomic::AtomicBool::new(false),
            started: crate::gateway::clock::unix_now(),
            interval: settings.interval,
        }
    }

    /// Takes the current record as the baseline for counts: what this process restored
    /// from `usage.json` was counted by an earlier run, so only its last uses are sent.
    /// Called once at start-up, before any flush (so the lock is free).
    pub fn start_baseline(&self, shared: &Shared) {
        let Ok(mut written) = self.written.try_lock() else {
            return;
        };
        shared.registry.for_each(|sid, rt| {
            for s in rt.usage.snapshot().scopes {
                written.insert((sid.to_owned(), s.api, s.method), (s.count, 0));
            }
        });
    }

    /// Sends every token's changes since the last write; returns how many tokens were
    /// written. A token whose write fails keeps its changes for the next call.
    pub async fn flush(&self, shared: &Shared) -> usize {
        let mut records = Vec::new();
        shared.registry.for_each(|sid, rt| {
            records.push((sid.to_owned(), rt.usage.snapshot()));
        });
        // One flush at a time: the baseline below must match what Redis received.
        let mut written = self.written.lock().await;
        if !self
            .since_written
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            let started = self.started;
            let set = self
                .conn
                .call(
                    "the usage record",
                    "keep and retry",
                    |mut conn: ConnectionManager| {
                        let mut cmd = redis::cmd("SET");
                        cmd.arg(SINCE_KEY).arg(started).arg("NX");
                        async move {
                            let _: Option<String> = cmd.query_async(&mut conn).await?;
                            Ok(())
                        }
                    },
                )
                .await;
            match set {
                Ok(()) => self
                    .since_written
                    .store(true, std::sync::atomic::Ordering::Relaxed),
                Err(_) => self.errors.inc(),
            }
        }
        // Forget what was written for tokens no longer configured.
        {
            let live: std::collections::HashSet<&str> =
                records.iter().map(|(sid, _)| sid.as_str()).collect();
            written.retain(|(sid, _, _), _| live.contains(sid.as_str()));
        }
        let mut sent = 0;
        for (sid, record) in records {
            let mut changes = Vec::new();
            for s in &record.scopes {
                let k = (sid.clone(), s.api.clone(), s.method.clone());
                let (count, last) = written.get(&k).copied().unwrap_or((0, 0));
                if s.last_used > last || s.count > count {
                    changes.push((k, s.count, s.last_used, s.count.saturating_sub(count)));
                }
            }
            if changes.is_empty() {
                continue;
            }
            let hash = key(&sid);
            let result = self
                .conn
                .call(
                    "the usage record",
                    "keep and retry",
                    |mut conn: ConnectionManager| {
                        let mut invocation = self.script.key(&hash);
                        invocation.key(INDEX_KEY).arg(&sid).arg(record.since);
                        for ((_, api, method), _, last, add) in &changes {
                            invocation
                                .arg(format!("{api}:{method}"))
                                .arg(*last)
                                .arg(*add);
                        }
                        async move {
                            let _: i64 = invocation.invoke_async(&mut conn).await?;
                            Ok(())
                        }
                    },
                )
                .await;
            match result {
                Ok(()) => {
                    sent += 1;
                    for (k, count, last, _) in changes {
                        written.insert(k, (count, last));
                    }
                }
                Err(_) => self.errors.inc(),
            }
        }
        sent
    }
}

/// Writes every `interval` until aborted (the shutdown then calls [`UsageWriter::flush`]
/// once more).
pub fn spawn_writer(shared: Arc<Shared>) -> Option<tokio::task::JoinHandle<()>> {
    // Before the first request: counts restored from `usage.json` are not sent again.
    shared.usage_writer.as_ref()?.start_baseline(&shared);
    Some(tokio::spawn(async move {
        let Some(writer) = shared.usage_writer.as_ref() else {
            return;
        };
        let mut tick = tokio::time::interval(writer.interval.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        loop {
            tick.tick().await;
            writer.flush(&shared).await;
        }
    }))
}

/// Reads the whole fleet record (for the CLI and the admin console). Bounded: every call
/// waits at most the configured timeout (at least 2 s), and the record holds one hash per
/// token that was ever used. Tokens never used have no record; [`read_fleet_since`] says
/// since when that means "unused".
#[cfg(any(test, feature = "test-util"))]
pub async fn read_fleet(
    settings: &UsageRedisSettings,
    now_unix: i64,
) -> Result<UsageState, String> {
    Ok(read_fleet_since(settings, now_unix).await?.0)
}

/// [`read_fleet`], plus since when the fleet record exists (`now_unix` when no replica
/// has written yet).
pub async fn read_fleet_since(
    settings: &UsageRedisSettings,
    now_unix: i64,
) -> Result<(UsageState, i64), String> {
    let client = redis::Client::open(settings.url.as_str()).map_err(|e| e.to_string())?;
    let target = client.get_connection_info().addr().to_string();
    let bound = settings.timeout.max(Duration::from_secs(2));
    let within = |what: &'static str| {
        let target = target.clone();
        move |_: tokio::time::error::Elapsed| {
            format!(
                "Redis at {target}: no answer within {} ms ({what})",
                bound.as_millis()
            )
        }
    };
    let mut conn = tokio::time::timeout(bound, client.get_multiplexed_async_connection())
        .await
        .map_err(within("connect"))?
        .map_err(|e| format!("Redis at {target}: {e}"))?;
    let sids: Vec<String> = tokio::time::timeout(
        bound,
        redis::cmd("SMEMBERS").arg(INDEX_KEY).query_async(&mut conn),
    )
    .await
    .map_err(within("SMEMBERS"))?
    .map_err(|e| format!("Redis at {target}: {e}"))?;
    let since: Option<i64> = tokio::time::timeout(
        bound,
        redis::cmd("GET").arg(SINCE_KEY).query_async(&mut conn),
    )
    .await
    .map_err(within("GET"))?
    .map_err(|e| format!("Redis at {target}: {e}"))?;
    let mut tokens = BTreeMap::new();
    for chunk in sids.chunks(500) {
        let mut pipe = redis::pipe();
        for sid in chunk {
            pipe.cmd("HGETALL").arg(key(sid));
        }
        let hashes: Vec<HashMap<String, String>> =
            tokio::time::timeout(bound, pipe.query_async(&mut conn))
                .await
                .map_err(within("HGETALL"))?
                .map_err(|e| format!("Redis at {target}: {e}"))?;
        for (sid, hash) in chunk.iter().zip(hashes) {
            if let Some(record) = parse_record(&hash) {
                tokens.insert(sid.clone(), record);
            }
        }
    }
    Ok((
        UsageState {
            version: STATE_VERSION,
            saved_at: now_unix,
            tokens,
        },
        since.unwrap_or(now_unix),
    ))
}

/// [`read_fleet_since`] for a synchronous caller (the CLI).
pub fn read_fleet_blocking(
    settings: &UsageRedisSettings,
    now_unix: i64,
) -> Result<(UsageState, i64), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(read_fleet_since(settings, now_unix))
}

/// One token's hash as a record; fields that did not come from a gateway are ignored.
fn parse_record(hash: &HashMap<String, String>) -> Option<TokenRecord> {
    if hash.is_empty() {
        return None;
    }
    let since = hash.get("since").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut scopes: BTreeMap<(String, String), ScopeRecord> = BTreeMap::new();
    for (field, value) in hash {
        let (is_last, rest) = if let Some(r) = field.strip_prefix("last:") {
            (true, r)
        } else if let Some(r) = field.strip_prefix("count:") {
            (false, r)
        } else {
            continue;
        };
        let Some((api, method)) = rest.rsplit_once(':') else {
            continue;
        };
        let Ok(n) = value.parse::<i64>() else {
            continue;
        };
        let entry = scopes
            .entry((api.to_owned(), method.to_owned()))
            .or_insert_with(|| ScopeRecord {
                api: api.to_owned(),
                method: method.to_owned(),
                count: 0,
                last_used: 0,
            });
        if is_last {
            entry.last_used = n;
        } else {
            entry.count = u64::try_from(n).unwrap_or(0);
        }
    }
    Some(TokenRecord {
        since,
        scopes: scopes.into_values().filter(|s| s.last_used > 0).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_parse_into_records() {
        let hash: HashMap<String, String> = [
            ("since", "100"),
            ("last:campaigns:GET", "500"),
            ("count:campaigns:GET", "7"),
            ("last:reports:POST", "400"),
            ("count:orphan:GET", "3"),
            ("junk", "x"),
            ("last:bad", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let r = parse_record(&hash).unwrap();
        assert_eq!(r.since, 100);
        assert_eq!(
            r.scopes,
            vec![
                ScopeRecord {
                    api: "campaigns".into(),
                    method: "GET".into(),
                    count: 7,
                    last_used: 500
                },
                ScopeRecord {
                    api: "reports".into(),
                    method: "POST".into(),
                    count: 0,
                    last_used: 400
                },
            ]
        );
        assert!(parse_record(&HashMap::new()).is_none());
    }
}
