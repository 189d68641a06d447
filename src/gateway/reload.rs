//! Reloading: read and validate both files off the async workers, then swap one new
//! snapshot in atomically. An invalid configuration leaves the old one serving.
//!
//! Triggers are `SIGHUP` and changes in the folders holding `scopegate.yaml`, the tokens
//! file and the TLS files. Folders rather than files are watched, so that editors'
//! write-to-temp-then-rename and Kubernetes ConfigMap/Secret mounts (where the visible
//! files are symlinks through `..data`, swapped by renaming a new `..data` symlink over
//! the old one) are seen. Bursts of events are debounced into one reload, and the watched
//! folders are re-resolved after every attempt (the tokens file may have moved).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{self, Config, ConfigErrors, ScopeGrant, Settings, TokenSpec};
use crate::domain::model::{MethodSet, TokenStatus};
use crate::gateway::logging::List;
use crate::gateway::proxy::Shared;
use crate::gateway::signals::Hangup;
use crate::gateway::snapshot::Policy;

pub use crate::gateway::clock::unix_now_f64;

/// Re-reads what a reload may have changed outside the policy: the listener's certificate
/// (a bad new one keeps the old one in use) and clients for new upstream TLS settings.
/// Reads files: runs on the blocking pool with the rest of a reload.
pub fn refresh_tls(shared: &Shared, settings: &Settings) {
    if let (Some(store), Some(files)) = (shared.cert_store.get(), &settings.tls) {
        match store.reload(&files.cert, &files.key) {
            Ok(()) => tracing::info!(cert = %files.cert.display(), "TLS certificate loaded"),
            Err(e) => tracing::error!(
                error = %e,
                "new TLS certificate rejected; the previous certificate stays in use"
            ),
        }
    }
    if let Err(e) = shared.prepare_clients(settings) {
        tracing::error!(error = %e, "upstream TLS settings unusable; requests to that upstream get 502");
    }
}

/// Serializes build-and-store, so that two reloads racing (say a signal and a direct call)
/// cannot both claim the same generation number.
static SWAP_LOCK: Mutex<()> = Mutex::new(());

/// The two snapshots around one successful swap.
pub struct Swapped {
    pub old: Arc<Policy>,
    pub new: Arc<Policy>,
}

/// Installs a validated configuration as the next generation and returns both snapshots.
/// Builds the policy (catalog compilation, runtime-state attachment) synchronously: call it
/// from the blocking pool on a running server, as [`reload`] does.
pub fn swap(shared: &Shared, config: Config) -> Swapped {
    let _guard = SWAP_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let old = shared.policy.load_full();
    let generation = old.generation + 1;
    let new = Arc::new(crate::gateway::snapshot::build(
        config,
        generation,
        &shared.registry,
        &shared.metrics,
    ));
    shared.policy.store(new.clone());
    refresh_tls(shared, &new.settings);
    shared.metrics.generation.set(generation as i64);
    shared.metrics.count_reload(true);
    shared.metrics.last_reload_success.set(unix_now_f64());
    Swapped { old, new }
}

/// Reads, validates and applies the configuration at `path` (through the tokens cache,
/// [`config::token_cache`], which a changed tokens file rewrites after the swap). File
/// I/O, validation and the policy build run on the blocking pool; the swap itself is one
/// pointer store. A failure is counted in `scopegate_config_reloads_total{result="error"}`
/// and changes nothing else.
pub async fn reload(shared: &Arc<Shared>, path: &Path) -> Result<Swapped, ConfigErrors> {
    let path = path.to_path_buf();
    let target = shared.clone();
    let result = tokio::task::spawn_blocking(move || {
        let (config, cache) = config::load_cached(&path, config::token_cache::MIN_BYTES)?;
        let swapped = swap(&target, config);
        // After the swap: the new generation serves while the cache is written.
        if let Some(cache) = cache {
            cache.write();
        }
        Ok(swapped)
    })
    .await
    .unwrap_or_else(|e| {
        Err(ConfigErrors::single(config::ConfigError {
            file: Default::default(),
            line: 0,
            field: String::new(),
            message: format!("configuration loader failed: {e}"),
            hint: String::new(),
        }))
    });
    if result.is_err() {
        shared.metrics.count_reload(false);
    }
    result
}

/// Like [`reload`], returning only the new generation number (for tests).
#[cfg(any(test, feature = "test-util"))]
pub async fn reload_from(shared: &Arc<Shared>, path: &Path) -> Result<u64, ConfigErrors> {
    reload(shared, path).await.map(|s| s.new.generation)
}

/// Logs a successful swap: the per-token diff and any settings that need a restart.
/// Runs on the blocking pool, where the old snapshot is also dropped.
fn log_swap(swapped: Swapped, running: &Settings, trigger: &str) {
    let Swapped { old, new } = swapped;
    let diff = diff_tokens(
        old.tokens.values().map(|t| &t.spec),
        &api_names(&old.settings),
        new.tokens.values().map(|t| &t.spec),
        &api_names(&new.settings),
    );
    tracing::info!(
        generation = new.generation,
        trigger,
        tokens = new.tokens.len(),
        added = %List(diff.added.iter(), MAX_LISTED),
        removed = %List(diff.removed.iter(), MAX_LISTED),
        disabled = %List(diff.disabled.iter(), MAX_LISTED),
        enabled = %List(diff.enabled.iter(), MAX_LISTED),
        scopes_changed = %List(diff.scopes_changed.iter(), MAX_LISTED),
        secret_rotated = %List(diff.rotated.iter(), MAX_LISTED),
        other_changed = %List(
            diff.other_changed
                .iter()
                .map(|(t, fields)| format!("{t}: {}", fields.join("+"))),
            MAX_LISTED
        ),
        "configuration reloaded"
    );
    let restart = restart_needed(running, &new.settings);
    if !restart.is_empty() {
        tracing::warn!(
            generation = new.generation,
            settings = %List(restart.iter(), usize::MAX),
            "restart needed for: {}; the running values stay in force until then, \
             everything else was applied",
            restart.join(", ")
        );
    }
}

/// One reload attempt, logged either way: the per-token diff and any settings that need a
/// restart on success, every error (file, line, field) on failure.
pub async fn run_reload(
    shared: &Arc<Shared>,
    config_path: &Path,
    running: &Settings,
    trigger: &str,
) -> Result<u64, ConfigErrors> {
    match reload(shared, config_path).await {
        Ok(swapped) => {
            // The diff walks every token and dropping the old snapshot frees all of them:
            // with 100,000 tokens that is tens of milliseconds, kept off the async workers
            // so in-flight requests never stall behind a reload.
            let running = running.clone();
            let trigger = trigger.to_owned();
            let generation = swapped.new.generation;
            let logged =
                tokio::task::spawn_blocking(move || log_swap(swapped, &running, &trigger)).await;
            if let Err(e) = logged {
                tracing::warn!(error = %e, "logging the reload diff failed");
            }
            Ok(generation)
        }
        Err(errors) => {
            let generation = shared.policy.load().generation;
            for e in &errors.0 {
                tracing::error!(
                    trigger,
                    file = %e.file.display(),
                    line = (e.line > 0).then_some(e.line),
                    field = %e.field,
                    hint = %e.hint,
                    "configuration error: {}",
                    e.message
                );
            }
            tracing::error!(
                trigger,
                generation,
                errors = errors.0.len(),
                "configuration rejected; generation {generation} keeps serving"
            );
            Err(errors)
        }
    }
}

fn api_names(settings: &Settings) -> Vec<&str> {
    settings.apis.iter().map(|a| a.name.as_str()).collect()
}

/// A token named in a diff: its SID and display name, never anything secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRef {
    pub sid: String,
    pub name: String,
}

impl TokenRef {
    fn of(spec: &TokenSpec) -> TokenRef {
        TokenRef {
            sid: spec.sid.clone(),
            name: spec.name.clone(),
        }
    }
}

impl fmt::Display for TokenRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            f.write_str(&self.sid)
        } else {
            write!(f, "{} ({})", self.sid, self.name)
        }
    }
}

/// What a reload changed, token by token. Each list is sorted by SID.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TokenDiff {
    pub added: Vec<TokenRef>,
    pub removed: Vec<TokenRef>,
    pub disabled: Vec<TokenRef>,
    pub enabled: Vec<TokenRef>,
    pub scopes_changed: Vec<TokenRef>,
    /// The stored secret hash changed (reset/rotation).
    pub rotated: Vec<TokenRef>,
    /// Other changes, by field name.
    pub other_changed: Vec<(TokenRef, Vec<&'static str>)>,
}

impl TokenDiff {
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.disabled.is_empty()
            && self.enabled.is_empty()
            && self.scopes_changed.is_empty()
            && self.rotated.is_empty()
            && self.other_changed.is_empty()
    }
}

/// Scopes keyed by API name: API ids are catalog indexes and shift when the catalog
/// changes, so grants are compared by name.
fn named_scopes<'a>(scopes: &[ScopeGrant], apis: &[&'a str]) -> Vec<(&'a str, MethodSet)> {
    let mut named: Vec<(&str, MethodSet)> = scopes
        .iter()
        .map(|g| {
            (
                apis.get(usize::from(g.api)).copied().unwrap_or("?"),
                g.methods,
            )
        })
        .collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    named
}

/// Compares two token sets (pure: no I/O, no logging). `*_apis` name the catalog APIs of
/// each side by id.
///
/// Runs on every reload over every token: the sides are looked up by hash rather than
/// sorted (the lists are sorted at the end), and scopes are compared by id first, by name
/// only when the ids differ (with the same catalog, equal ids mean equal names).
pub fn diff_tokens<'a, 'b>(
    old: impl IntoIterator<Item = &'a TokenSpec>,
    old_apis: &[&str],
    new: impl IntoIterator<Item = &'b TokenSpec>,
    new_apis: &[&str],
) -> TokenDiff {
    let old: HashMap<&str, &TokenSpec> = old.into_iter().map(|t| (t.sid.as_str(), t)).collect();
    let new: HashMap<&str, &TokenSpec> = new.into_iter().map(|t| (t.sid.as_str(), t)).collect();
    let same_catalog = old_apis == new_apis;
    let mut diff = TokenDiff::default();
    for (sid, o) in &old {
        if !new.contains_key(sid) {
            diff.removed.push(TokenRef::of(o));
        }
    }
    for (sid, n) in &new {
        let Some(o) = old.get(sid) else {
            diff.added.push(TokenRef::of(n));
            continue;
        };
        let r = || TokenRef::of(n);
        match (o.status, n.status) {
            (TokenStatus::Active, TokenStatus::Disabled) => diff.disabled.push(r()),
            (TokenStatus::Disabled, TokenStatus::Active) => diff.enabled.push(r()),
            _ => {}
        }
        let scopes_changed = !(same_catalog && o.scopes == n.scopes)
            && named_scopes(&o.scopes, old_apis) != named_scopes(&n.scopes, new_apis);
        if scopes_changed {
            diff.scopes_changed.push(r());
        }
        let rotated = o.hash != n.hash;
        if rotated {
            diff.rotated.push(r());
        }
        let mut other = Vec::new();
        let shadow = |t: &TokenSpec, apis: &[&str]| {
            t.shadow_scopes.as_ref().map(|s| {
                named_scopes(s, apis)
                    .into_iter()
                    .map(|(a, m)| (a.to_owned(), m))
                    .collect::<Vec<_>>()
            })
        };
        let mut check = |field: &'static str, changed: bool| {
            if changed {
                other.push(field);
            }
        };
        check("name", o.name != n.name);
        check("account", o.account != n.account);
        check("kind", o.kind != n.kind);
        check("expires_at", o.expires_at != n.expires_at);
        check("rate_limit", o.rate_limit != n.rate_limit);
        check(
            "shadow_scopes",
            !(same_catalog && o.shadow_scopes == n.shadow_scopes)
                && shadow(o, old_apis) != shadow(n, new_apis),
        );
        check("api_version", o.api_version != n.api_version);
        check("environment", o.environment != n.environment);
        // The grace period of the previous secret moves with a rotation; report it only
        // when it changed on its own.
        check("previous_secret", !rotated && o.previous != n.previous);
        check(
            "metadata",
            o.description != n.description
                || o.primary_contact != n.primary_contact
                || o.developer_emails != n.developer_emails
                || o.created_at != n.created_at
                || o.rotated_at != n.rotated_at,
        );
        if !other.is_empty() {
            diff.other_changed.push((r(), other));
        }
    }
    for list in [
        &mut diff.added,
        &mut diff.removed,
        &mut diff.disabled,
        &mut diff.enabled,
        &mut diff.scopes_changed,
        &mut diff.rotated,
    ] {
        list.sort_unstable_by(|a, b| a.sid.cmp(&b.sid));
    }
    diff.other_changed
        .sort_unstable_by(|a, b| a.0.sid.cmp(&b.0.sid));
    diff
}

/// At most this many tokens are named per list in a reload's log line, so that a bulk
/// import stays one line.
const MAX_LISTED: usize = 50;

/// Settings fixed when the listeners start, which a reload cannot change: the names of
/// those that differ between the running process and a new configuration.
pub fn restart_needed(running: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let mut check = |field: &'static str, changed: bool| {
        if changed {
            fields.push(field);
        }
    };
    check("listen", running.listen != new.listen);
    check("admin_listen", running.admin_listen != new.admin_listen);
    check("tls", running.tls.is_some() != new.tls.is_some());
    check(
        "http2_cleartext",
        running.http2_cleartext != new.http2_cleartext,
    );
    check(
        "proxy_protocol",
        running.proxy_protocol != new.proxy_protocol,
    );
    check(
        "worker_cpu_affinity",
        running.worker_cpu_affinity != new.worker_cpu_affinity,
    );
    let (rl, nl) = (&running.limits, &new.limits);
    check(
        "limits.max_connections",
        rl.max_connections != nl.max_connections,
    );
    check(
        "limits.max_header_bytes",
        rl.max_header_bytes != nl.max_header_bytes,
    );
    check("limits.max_headers", rl.max_headers != nl.max_headers);
    check(
        "limits.http2_max_concurrent_streams",
        rl.http2_max_concurrent_streams != nl.http2_max_concurrent_streams,
    );
    let (rt, nt) = (&running.timeouts, &new.timeouts);
    check("timeouts.header_read", rt.header_read != nt.header_read);
    check("timeouts.shutdown", rt.shutdown != nt.shutdown);
    check(
        "timeouts.upstream_connect",
        rt.upstream_connect != nt.upstream_connect,
    );
    check("log_format", running.log_format != new.log_format);
    check(
        "rate_limit.backend",
        running.redis_rate_limit != new.redis_rate_limit,
    );
    check("usage.backend", running.usage_redis != new.usage_redis);
    fields
}

/// Tuning for [`spawn_watchers_with`].
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet period: a reload starts once no relevant event arrived for this long.
    pub debounce: Duration,
    /// Upper bound on how long a steady stream of events can postpone a reload.
    pub max_delay: Duration,
    /// Reload on `SIGHUP` (Unix).
    pub sighup: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            sighup: true,
        }
    }
}

/// Counters of the reload task, published after every attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Reload attempts made by the watcher task (file changes and signals).
    pub attempts: u64,
    /// Attempts rejected because the new configuration was invalid.
    pub failures: u64,
    /// Generation in force after the last attempt.
    pub generation: u64,
}

/// The running reload task. Dropping it stops watching.
pub struct Reloader {
    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    status: watch::Receiver<ReloadStatus>,
    task: JoinHandle<()>,
}

/// What tests wait on: the reload counters and generation.
#[cfg(any(test, feature = "test-util"))]
impl Reloader {
    /// The counters after the last attempt.
    pub fn status(&self) -> ReloadStatus {
        *self.status.borrow()
    }

    /// A receiver that is notified after every reload attempt.
    pub fn subscribe(&self) -> watch::Receiver<ReloadStatus> {
        self.status.clone()
    }

    /// Waits (without polling) until `done` holds for the status; callers bound it with a
    /// timeout. If the task has stopped, returns the last status, which may not satisfy
    /// `done`.
    pub async fn wait_for(&self, done: impl FnMut(&ReloadStatus) -> bool) -> ReloadStatus {
        let mut rx = self.status.clone();
        if let Ok(status) = rx.wait_for(done).await {
            return *status;
        }
        // The task ended (aborted): report where it stopped.
        let status = *rx.borrow();
        status
    }

    /// Waits until generation `generation` (or a later one) is in force.
    pub async fn wait_for_generation(&self, generation: u64) -> ReloadStatus {
        self.wait_for(|s| s.generation >= generation).await
    }

    pub fn abort(&self) {
        self.task.abort();
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the reload triggers with the default options. Must be called inside the Tokio
/// runtime; the watches and the signal handler are in place when it returns.
pub fn spawn_watchers(shared: Arc<Shared>, config_path: PathBuf) -> Reloader {
    spawn_watchers_with(shared, config_path, WatchOptions::default())
}

/// Starts the reload triggers: `SIGHUP` and file changes, debounced. The settings in
/// force now are taken as the running ones for "restart needed" reports.
pub fn spawn_watchers_with(
    shared: Arc<Shared>,
    config_path: PathBuf,
    options: WatchOptions,
) -> Reloader {
    let running = shared.policy.load().settings.clone();
    let mut files = FileWatch::new();
    files.resolve(&running);
    let hup = Hangup::new(options.sighup);
    let (tx, status) = watch::channel(ReloadStatus {
        generation: shared.policy.load().generation,
        ..ReloadStatus::default()
    });
    let task = tokio::spawn(reload_loop(
        shared,
        config_path,
        running,
        options,
        files,
        hup,
        tx,
    ));
    Reloader { status, task }
}

async fn reload_loop(
    shared: Arc<Shared>,
    config_path: PathBuf,
    running: Settings,
    options: WatchOptions,
    mut files: FileWatch,
    mut hup: Hangup,
    status: watch::Sender<ReloadStatus>,
) {
    loop {
        let trigger = tokio::select! {
            _ = hup.recv() => "SIGHUP",
            changed = files.next_change() => {
                if !changed {
                    continue;
                }
                files.debounce(&options).await;
                "file change"
            }
        };
        let result = run_reload(&shared, &config_path, &running, trigger).await;
        let generation = shared.policy.load().generation;
        status.send_modify(|s| {
            s.attempts += 1;
            s.failures += u64::from(result.is_err());
            s.generation = generation;
        });
        // The tokens file may have moved, a ConfigMap's timestamped folder was replaced,
        // or a folder that was missing exists now.
        files.resolve(&shared.policy.load().settings);
    }
}

/// Folder watches and the file names that matter in them.
struct FileWatch {
    watcher: Option<RecommendedWatcher>,
    events: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    /// Watched folder (canonical form, to avoid watching one inode twice) -> path given.
    dirs: BTreeMap<PathBuf, PathBuf>,
    names: BTreeSet<OsString>,
}

/// The name Kubernetes swaps atomically in ConfigMap and Secret volumes.
const K8S_DATA: &str = "..data";

impl FileWatch {
    fn new() -> FileWatch {
        let (tx, events) = mpsc::unbounded_channel();
        let watcher = match notify::recommended_watcher(move |event| {
            let _ = tx.send(event);
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch files; reload on SIGHUP only");
                None
            }
        };
        FileWatch {
            watcher,
            events,
            dirs: BTreeMap::new(),
            names: BTreeSet::new(),
        }
    }

    /// Watches the folders of the files `settings` names (and of their symlink targets),
    /// dropping folders no longer needed.
    fn resolve(&mut self, settings: &Settings) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let mut files: Vec<&Path> = vec![&settings.config_path, &settings.tokens_path];
        if let Some(tls) = &settings.tls {
            files.push(&tls.cert);
            files.push(&tls.key);
        }
        let mut wanted: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
        let mut names: BTreeSet<OsString> = BTreeSet::new();
        names.insert(K8S_DATA.into());
        let mut add = |file: &Path| {
            if let (Some(dir), Some(name)) = (file.parent(), file.file_name()) {
                names.insert(name.to_owned());
                let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
                wanted.entry(key).or_insert_with(|| dir.to_path_buf());
            }
        };
        for file in files {
            add(file);
            // A symlinked file is also watched where it really lives, so that edits to the
            // target are seen (for ConfigMaps the `..data` swap already covers it).
            if let Ok(real) = std::fs::canonicalize(file) {
                if real != file {
                    add(&real);
                }
            }
        }
        let stale: Vec<PathBuf> = self
            .dirs
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in stale {
            if let Some(dir) = self.dirs.remove(&key) {
                // The folder may be gone already (an old ConfigMap generation).
                let _ = watcher.unwatch(&dir);
            }
        }
        for (key, dir) in wanted {
            if self.dirs.contains_key(&key) {
                continue;
            }
            match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::debug!(folder = %dir.display(), "watching for configuration changes");
                    self.dirs.insert(key, dir);
                }
                Err(e) => tracing::warn!(
                    folder = %dir.display(),
                    error = %e,
                    "cannot watch folder; changes in it need SIGHUP"
                ),
            }
        }
        self.names = names;
    }

    /// Waits for the next event; true when it concerns a configuration file. Never
    /// resolves when file watching is off.
    async fn next_change(&mut self) -> bool {
        if self.watcher.is_none() {
            return std::future::pending().await;
        }
        match self.events.recv().await {
            Some(event) => self.relevant(&event),
            None => {
                self.watcher = None;
                false
            }
        }
    }

    fn relevant(&self, event: &notify::Result<notify::Event>) -> bool {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "file watch error");
                return false;
            }
        };
        if event.need_rescan() {
            return true;
        }
        relevant_kind(&event.kind)
            && event
                .paths
                .iter()
                .any(|p| p.file_name().is_some_and(|name| self.names.contains(name)))
    }

    /// Waits until no relevant event arrived for `debounce`, or `max_delay` passed.
    async fn debounce(&mut self, options: &WatchOptions) {
        let deadline = Instant::now() + options.max_delay;
        let mut quiet_until = Instant::now() + options.debounce;
        loop {
            let until = quiet_until.min(deadline);
            match tokio::time::timeout_at(until, self.events.recv()).await {
                Ok(Some(event)) => {
                    if self.relevant(&event) {
                        quiet_until = Instant::now() + options.debounce;
                    }
                }
                Ok(None) | Err(_) => return,
            }
        }
    }
}

/// Opening or reading a file is not a change (and the reload itself reads the files).
fn relevant_kind(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests;
