//! Usage record: per token and scope (API + method), how many requests were allowed and
//! when the last one was. `scopegate audit` compares it with what each token is granted.
//!
//! The record lives on each token's runtime state (so it survives reloads) and is
//! persisted to `<state_dir>/usage.json` (so it survives restarts): loaded once at
//! start-up, saved periodically and on shutdown, each time with an atomic write (temp file
//! in the same folder, fsync, rename). A missing or unreadable file is logged and the
//! gateway starts with an empty record: usage is advisory, it never blocks serving.
//!
//! Hot path: [`TokenUsage::record`] runs on every allowed request. It takes a read lock
//! and scans a short vector (one entry per API and method the token actually used), then
//! bumps two atomics; it allocates only the first time a token uses a scope.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::model::{method_index, KNOWN_METHODS};
use crate::gateway::metrics::Metrics;
use crate::gateway::proxy::Shared;
use crate::gateway::runtime::RuntimeRegistry;

/// File name of the usage record inside `state_dir`.
pub const STATE_FILE: &str = "usage.json";
/// Format version written to (and required in) the state file.
pub const STATE_VERSION: u32 = 1;
/// How often the running gateway saves the record.
pub const DEFAULT_SAVE_INTERVAL: Duration = Duration::from_secs(60);

/// One (API, method) a token used.
struct Entry {
    api: Box<str>,
    method: &'static str,
    count: AtomicU64,
    last_used: AtomicI64,
}

/// One token's usage; lives on the token's runtime state, so it survives reloads.
pub struct TokenUsage {
    /// Unix seconds since when this token's use has been recorded (the earliest start of
    /// the record, carried over restarts through the state file).
    since: AtomicI64,
    /// Set once the persisted record was merged in, so that loading twice cannot double
    /// the counts.
    restored: AtomicBool,
    /// Read on every request without a lock (a read lock is a write to a line every
    /// worker serving the token shares); new entries are added by copy under `adding`.
    entries: ArcSwap<Vec<Arc<Entry>>>,
    adding: Mutex<()>,
}

impl Default for TokenUsage {
    fn default() -> Self {
        TokenUsage {
            since: AtomicI64::new(unix_now()),
            restored: AtomicBool::new(false),
            entries: ArcSwap::from_pointee(Vec::new()),
            adding: Mutex::new(()),
        }
    }
}

impl TokenUsage {
    /// Called on every allowed request: must stay cheap. `api` is the catalog name the
    /// request was recorded under (`none` for a legacy token outside the catalog),
    /// `method` the metrics label of the method. Returns whether the scope's last use
    /// moved to a later second (so its gauge is set at most once per second).
    pub fn record(&self, api: &str, method: &'static str, now_unix: i64) -> bool {
        if let Some(e) = find(&self.entries.load(), api, method) {
            return e.bump(1, now_unix);
        }
        self.add(api, method, 1, now_unix)
    }

    /// Bumps the entry for (`api`, `method`), adding it when it is missing: the list is
    /// copied with the new entry and swapped in, under `adding` so no addition is lost.
    fn add(&self, api: &str, method: &'static str, count: u64, last_used: i64) -> bool {
        let _adding = self.adding.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.entries.load_full();
        if let Some(e) = find(&current, api, method) {
            return e.bump(count, last_used);
        }
        let mut next = Vec::with_capacity(current.len() + 1);
        next.extend(current.iter().cloned());
        next.push(Arc::new(Entry {
            api: api.into(),
            method,
            count: AtomicU64::new(count),
            last_used: AtomicI64::new(last_used),
        }));
        self.entries.store(Arc::new(next));
        true
    }

    /// Unix seconds since when this token's use has been recorded.
    pub fn since(&self) -> i64 {
        self.since.load(Ordering::Relaxed)
    }

    /// The last use of any scope, in Unix seconds.
    pub fn last_used(&self) -> Option<i64> {
        self.entries
            .load()
            .iter()
            .map(|e| e.last_used.load(Ordering::Relaxed))
            .max()
    }

    /// A copy of the record, sorted by API then method (stable files, readable diffs).
    pub fn snapshot(&self) -> TokenRecord {
        let mut scopes: Vec<ScopeRecord> = self
            .entries
            .load()
            .iter()
            .map(|e| ScopeRecord {
                api: e.api.to_string(),
                method: e.method.to_owned(),
                count: e.count.load(Ordering::Relaxed),
                last_used: e.last_used.load(Ordering::Relaxed),
            })
            .collect();
        scopes.sort_by(|a, b| {
            (a.api.as_str(), method_rank(&a.method)).cmp(&(b.api.as_str(), method_rank(&b.method)))
        });
        TokenRecord {
            since: self.since(),
            scopes,
        }
    }

    /// Merges a persisted record (counts add up, last use is the later one, `since` the
    /// earlier). Only the first call per token has an effect; returns whether it had one.
    pub fn restore(&self, record: &TokenRecord) -> bool {
        if self.restored.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.since.fetch_min(record.since, Ordering::Relaxed);
        for s in &record.scopes {
            // Only standard method labels (and `other`) are ever recorded; anything else
            // in the file did not come from the gateway.
            let Some(method) = static_method(&s.method) else {
                continue;
            };
            self.add(&s.api, method, s.count, s.last_used);
        }
        true
    }
}

impl Entry {
    /// Returns whether the last use moved forward.
    fn bump(&self, by: u64, at: i64) -> bool {
        self.count.fetch_add(by, Ordering::Relaxed);
        // A plain load first: a busy scope's last use is usually already this second.
        self.last_used.load(Ordering::Relaxed) < at
            && self.last_used.fetch_max(at, Ordering::Relaxed) < at
    }
}

fn find<'a>(entries: &'a [Arc<Entry>], api: &str, method: &str) -> Option<&'a Entry> {
    entries
        .iter()
        .find(|e| e.method == method && &*e.api == api)
        .map(|e| &**e)
}

fn static_method(m: &str) -> Option<&'static str> {
    match method_index(m) {
        Some(i) => Some(KNOWN_METHODS[usize::from(i)]),
        None if m == "other" => Some("other"),
        None => None,
    }
}

fn method_rank(m: &str) -> usize {
    method_index(m).map_or(KNOWN_METHODS.len(), usize::from)
}

// ---------------------------------------------------------------------------------------
// The state file.

/// The persisted usage record (`usage.json`). Timestamps are Unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageState {
    pub version: u32,
    /// When the file was written.
    pub saved_at: i64,
    /// By token SID.
    #[serde(default)]
    pub tokens: BTreeMap<String, TokenRecord>,
}

/// One token's persisted usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Since when the token's use has been recorded.
    pub since: i64,
    #[serde(default)]
    pub scopes: Vec<ScopeRecord>,
}

/// One (API, method) a token used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeRecord {
    /// The catalog API the requests were recorded under (`none`: a legacy token's request
    /// outside the catalog).
    pub api: String,
    pub method: String,
    pub count: u64,
    pub last_used: i64,
}

impl TokenRecord {
    /// The last use of any scope.
    pub fn last_used(&self) -> Option<i64> {
        self.scopes.iter().map(|s| s.last_used).max()
    }
}

/// Why a state file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no usage record at {0}")]
    Missing(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a valid usage record: {message}")]
    Corrupt { path: PathBuf, message: String },
}

/// `<dir>/usage.json`.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

/// Reads and checks a state file. Pure apart from the read: used by the gateway at start-up
/// and by `scopegate audit`.
pub fn read_state(path: &Path) -> Result<UsageState, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StateError::Missing(path.to_path_buf()))
        }
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    parse_state(&bytes).map_err(|message| StateError::Corrupt {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses the text of a state file.
pub fn parse_state(bytes: &[u8]) -> Result<UsageState, String> {
    let state: UsageState = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if state.version != STATE_VERSION {
        return Err(format!(
            "unsupported version {} (this scopegate reads version {STATE_VERSION})",
            state.version
        ));
    }
    Ok(state)
}

/// Serializes saves in this process: a periodic save and the shutdown save never race, and
/// the later snapshot is always the one that lands.
static SAVE_LOCK: Mutex<()> = Mutex::new(());

/// Writes a state file atomically: a temp file in the same folder, fsync, rename, then an
/// fsync of the folder. Readers see the old file or the new one, never a partial one.
pub fn write_state(path: &Path, state: &UsageState) -> io::Result<()> {
    let mut text = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    text.push(b'\n');
    write_atomic(path, &text)
}

/// [`config::atomic::write_atomic`] for the gateway's own files (the usage record, the
/// notifier's state): a new file gets the umask's mode, and what the replace could not
/// keep is logged.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let replaced = crate::config::atomic::write_atomic(path, bytes, None)?;
    if let Some((uid, gid, e)) = replaced.owner_lost {
        tracing::warn!(path = %path.display(), error = %e, "cannot keep the file's owner {uid}:{gid}");
    }
    if let Some(e) = replaced.folder_unsynced {
        tracing::warn!(path = %path.display(), error = %e, "file replaced, but syncing its folder failed");
    }
    Ok(())
}

/// Snapshots every token of the registry.
pub fn collect(registry: &RuntimeRegistry, now_unix: i64) -> UsageState {
    let mut tokens = BTreeMap::new();
    registry.for_each(|sid, rt| {
        tokens.insert(sid.to_owned(), rt.usage.snapshot());
    });
    UsageState {
        version: STATE_VERSION,
        saved_at: now_unix,
        tokens,
    }
}

/// Merges a persisted record into the registry's tokens (those not yet restored); tokens
/// of the file that are no longer configured are dropped. Also restores each token's
/// last-used gauge. Returns how many tokens were restored.
pub fn restore(registry: &RuntimeRegistry, metrics: &Metrics, state: &UsageState) -> usize {
    let mut restored = 0;
    registry.for_each(|sid, rt| {
        let Some(record) = state.tokens.get(sid) else {
            return;
        };
        if rt.usage.restore(record) {
            restored += 1;
            // The per-scope gauges start from the restored record, so that Prometheus
            // agrees with `usage.json` after a restart.
            for s in rt.usage.snapshot().scopes {
                metrics.mark_scope_used(&rt.series, &s.api, &s.method, s.last_used);
            }
            if let (None, Some(last)) = (rt.last_used(), record.last_used()) {
                rt.mark_used(metrics, last);
            }
        }
    });
    restored
}

/// The state file of the current configuration, if `state_dir` is set.
pub fn configured_path(shared: &Shared) -> Option<PathBuf> {
    shared
        .policy
        .load()
        .settings
        .state_dir
        .as_deref()
        .map(state_path)
}

/// Start-up: loads `<state_dir>/usage.json` into the registry. A missing file starts an
/// empty record; an unreadable or corrupt one is logged (and a corrupt one moved aside to
/// `usage.json.corrupt` for inspection) and the record starts empty. Never fails.
/// Loading twice is harmless: each token's record is merged once.
pub fn load(shared: &Shared) {
    let Some(path) = configured_path(shared) else {
        tracing::debug!(target: "scopegate::usage", "state_dir not set: usage is not persisted");
        return;
    };
    match read_state(&path) {
        Ok(state) => {
            let n = restore(&shared.registry, &shared.metrics, &state);
            tracing::info!(
                target: "scopegate::usage",
                path = %path.display(),
                tokens = n,
                "usage record loaded"
            );
        }
        Err(StateError::Missing(_)) => {
            tracing::info!(
                target: "scopegate::usage",
                path = %path.display(),
                "no usage record yet; starting an empty one"
            );
        }
        Err(e @ StateError::Corrupt { .. }) => {
            let aside = path.with_extension("json.corrupt");
            let moved = std::fs::rename(&path, &aside).is_ok();
            tracing::warn!(
                target: "scopegate::usage",
                error = %e,
                moved_to = moved.then(|| aside.display().to_string()),
                "usage record unreadable; starting an empty one"
            );
        }
        Err(e) => {
            tracing::warn!(
                target: "scopegate::usage",
                error = %e,
                "usage record unreadable; starting an empty one"
            );
        }
    }
}

/// Saves the record now (blocking file I/O, a few KB). Returns the path written, `None`
/// when `state_dir` is not set. Errors are logged and returned.
pub fn save_now(shared: &Shared) -> io::Result<Option<PathBuf>> {
    let Some(path) = configured_path(shared) else {
        return Ok(None);
    };
    let _guard = SAVE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let state = collect(&shared.registry, unix_now());
    match write_state(&path, &state) {
        Ok(()) => {
            tracing::debug!(target: "scopegate::usage", path = %path.display(), "usage record saved");
            Ok(Some(path))
        }
        Err(e) => {
            tracing::warn!(
                target: "scopegate::usage",
                path = %path.display(),
                error = %e,
                "cannot save the usage record"
            );
            Err(e)
        }
    }
}

/// Saves the record every `every` until aborted (abort it at shutdown, then call
/// [`save_now`] once more after the drain).
pub fn spawn_persister(shared: Arc<Shared>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        loop {
            tick.tick().await;
            let shared = shared.clone();
            let _ = tokio::task::spawn_blocking(move || save_now(&shared)).await;
        }
    })
}

use crate::gateway::clock::unix_now;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_counts_and_keeps_the_latest_use() {
        let u = TokenUsage::default();
        u.record("campaigns", "GET", 100);
        u.record("campaigns", "GET", 90);
        u.record("campaigns", "POST", 95);
        u.record("reports", "GET", 80);
        let snap = u.snapshot();
        assert_eq!(
            snap.scopes,
            vec![
                ScopeRecord {
                    api: "campaigns".into(),
                    method: "GET".into(),
                    count: 2,
                    last_used: 100
                },
                ScopeRecord {
                    api: "campaigns".into(),
                    method: "POST".into(),
                    count: 1,
                    last_used: 95
                },
                ScopeRecord {
                    api: "reports".into(),
                    method: "GET".into(),
                    count: 1,
                    last_used: 80
                },
            ]
        );
        assert_eq!(u.last_used(), Some(100));
    }

    #[test]
    fn concurrent_first_uses_are_all_kept() {
        let u = TokenUsage::default();
        let apis = ["a", "b", "c", "d", "e", "f", "g", "h"];
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..1000 {
                        u.record(apis[i % apis.len()], "GET", 100);
                    }
                });
            }
        });
        let record = u.snapshot();
        assert_eq!(record.scopes.len(), apis.len());
        assert!(record.scopes.iter().all(|s| s.count == 500), "{record:?}");
    }

    #[test]
    fn restore_merges_once() {
        let u = TokenUsage::default();
        u.record("campaigns", "GET", 1000);
        let rec = TokenRecord {
            since: 10,
            scopes: vec![
                ScopeRecord {
                    api: "campaigns".into(),
                    method: "GET".into(),
                    count: 5,
                    last_used: 500,
                },
                ScopeRecord {
                    api: "x".into(),
                    method: "BREW".into(),
                    count: 1,
                    last_used: 1,
                },
            ],
        };
        assert!(u.restore(&rec));
        assert!(!u.restore(&rec), "a second load changes nothing");
        let snap = u.snapshot();
        assert_eq!(snap.since, 10);
        assert_eq!(snap.scopes.len(), 1, "unknown methods are ignored");
        assert_eq!(snap.scopes[0].count, 6);
        assert_eq!(snap.scopes[0].last_used, 1000);
    }

    #[test]
    fn state_file_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(&dir.path().join("nested"));
        assert!(matches!(read_state(&path), Err(StateError::Missing(_))));
        let mut state = UsageState {
            version: STATE_VERSION,
            saved_at: 7,
            tokens: BTreeMap::new(),
        };
        state.tokens.insert(
            "SGa".into(),
            TokenRecord {
                since: 1,
                scopes: vec![],
            },
        );
        write_state(&path, &state).unwrap();
        assert_eq!(read_state(&path).unwrap(), state);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from(STATE_FILE)]);

        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(read_state(&path), Err(StateError::Corrupt { .. })));
        std::fs::write(&path, br#"{"version":99,"saved_at":0,"tokens":{}}"#).unwrap();
        assert!(matches!(read_state(&path), Err(StateError::Corrupt { .. })));
    }
}
