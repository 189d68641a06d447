//! Hot reload and the process lifecycle (SPEC §6): file changes of every kind an editor or
//! Kubernetes makes, invalid edits, reloads under load, and SIGTERM draining.
//!
//! In-process tests run the real gateway on port 0 with the real watcher and wait on the
//! reload task's status channel (generation / attempt counters), never on a timer. The
//! binary tests run `scopegate serve` on free ports and poll the admin listener with a
//! deadline.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use scopegate::domain::model::TokenStatus;
use scopegate::gateway::reload::{ReloadStatus, Reloader, WatchOptions};
use scopegate::gateway::snapshot::Policy;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use support::process::{self, Proc};
use support::*;

/// Upper bound for any single wait; generous for a loaded 2-core CI machine.
const WAIT: Duration = Duration::from_secs(15);
/// No per-token limit gets in the way of the load test.
const NO_LIMIT: &str = "rate_limit: {requests_per_second: 1000000, burst: 1000000}\n";

// ---------------------------------------------------------------------------------------
// Config variants

fn tokens_a() -> String {
    tokens_yaml()
}

/// The reader disabled.
fn tokens_disabled() -> String {
    with_token_lines(&tokens_yaml(), "reader", "        status: disabled\n")
}

/// The reader keeps `public` but loses `campaigns`: GET on CAMPAIGNS is denied.
fn tokens_b() -> String {
    let t = tokens_yaml();
    let out = t.replacen("          - {api: campaigns, methods: [GET]}\n", "", 1);
    assert_ne!(out, t);
    out
}

fn tokens_syntax_error() -> String {
    format!("{}  - id: [unclosed\n", tokens_yaml())
}

fn tokens_unknown_api() -> String {
    let t = tokens_yaml();
    let out = t.replacen(
        "{api: public, methods: [GET]}",
        "{api: nosuchapi, methods: [GET]}",
        1,
    );
    assert_ne!(out, t);
    out
}

/// 21 active scoped tokens in one account (the limit is 20).
fn tokens_too_many() -> String {
    let mut t = tokens_yaml();
    let marker = format!("  - id: {OTHER_ACCOUNT}\n");
    let at = t.find(&marker).expect("second account");
    let mut extra = String::new();
    // The fixture has reader and writer active and scoped: 19 more make 21.
    for i in 0..19 {
        extra.push_str(&format!(
            "      - sid: SGextra{i}\n        name: extra{i}\n        auth_token_hash: \"{}\"\n        scopes: [{{api: campaigns, methods: [GET]}}]\n",
            hash(&format!("extra-secret-{i}"))
        ));
    }
    t.insert_str(at, &extra);
    t
}

// ---------------------------------------------------------------------------------------
// Ways of writing a file

/// Editor style: write a temporary file next to it, then rename it over.
fn write_by_rename(path: &Path, text: &str) {
    let name = path.file_name().unwrap().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `>` style: truncate the file in place and write it.
fn write_in_place(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.sync_all().unwrap();
}

/// A Kubernetes ConfigMap volume: `name -> ..data/name`, `..data -> ..<timestamp>`.
struct ConfigMap {
    dir: PathBuf,
    version: usize,
}

impl ConfigMap {
    fn create(dir: PathBuf, files: &[(&str, &str)]) -> ConfigMap {
        std::fs::create_dir_all(&dir).unwrap();
        let mut cm = ConfigMap { dir, version: 0 };
        let first = cm.write_version(files);
        std::os::unix::fs::symlink(&first, cm.dir.join("..data")).unwrap();
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), cm.dir.join(name)).unwrap();
        }
        cm
    }

    fn write_version(&mut self, files: &[(&str, &str)]) -> String {
        self.version += 1;
        let name = format!(
            "..2026_01_01_00_00_0{}.{}",
            self.version,
            1000 + self.version
        );
        let folder = self.dir.join(&name);
        std::fs::create_dir(&folder).unwrap();
        for (file, text) in files {
            std::fs::write(folder.join(file), text).unwrap();
        }
        name
    }

    /// What the kubelet does: new folder, new `..data_tmp` symlink renamed over `..data`,
    /// old folder removed.
    fn update(&mut self, files: &[(&str, &str)]) {
        let old = std::fs::read_link(self.dir.join("..data")).unwrap();
        let new = self.write_version(files);
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&new, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        std::fs::remove_dir_all(self.dir.join(old)).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// In-process gateway with the real watcher

fn fast_watch() -> WatchOptions {
    WatchOptions {
        debounce: Duration::from_millis(50),
        max_delay: Duration::from_secs(1),
        // The test process must not take over SIGHUP for every test in it.
        sighup: false,
    }
}

struct Live {
    upstream: Upstream,
    gateway: scopegate::Running,
    reloader: Reloader,
    tokens_path: PathBuf,
    config_path: PathBuf,
    _dir: TempDir,
}

impl Live {
    /// `scopegate.yaml` and `tokens.yaml` as plain files in one folder.
    async fn start(extra: &str, tokens: &str) -> Live {
        let upstream = Upstream::start().await;
        let dir = TempDir::new();
        let config_path = dir.write("scopegate.yaml", &gateway_yaml(upstream.addr, extra));
        let tokens_path = dir.write("tokens.yaml", tokens);
        Live::run(upstream, dir, config_path, tokens_path).await
    }

    async fn run(
        upstream: Upstream,
        dir: TempDir,
        config_path: PathBuf,
        tokens_path: PathBuf,
    ) -> Live {
        let gateway = start_gateway(&config_path).await;
        let reloader = scopegate::gateway::reload::spawn_watchers_with(
            gateway.shared.clone(),
            config_path.clone(),
            fast_watch(),
        );
        Live {
            upstream,
            gateway,
            reloader,
            tokens_path,
            config_path,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.gateway.addr, path)
    }

    fn admin(&self, path: &str) -> String {
        format!("http://{}{}", self.gateway.admin_addr, path)
    }

    fn status(&self) -> ReloadStatus {
        self.reloader.status()
    }

    async fn wait(&self, what: &str, done: impl FnMut(&ReloadStatus) -> bool) -> ReloadStatus {
        match tokio::time::timeout(WAIT, self.reloader.wait_for(done)).await {
            Ok(s) => s,
            Err(_) => panic!("timed out waiting for {what}; status {:?}", self.status()),
        }
    }

    /// Waits for the first reload after `before` whose snapshot satisfies `done`. A file
    /// written in place may be seen half-written by one reload and whole by the next.
    async fn wait_policy(&self, what: &str, before: u64, done: impl Fn(&Policy) -> bool) -> u64 {
        let mut rx = self.reloader.subscribe();
        let wait = async {
            loop {
                let policy = self.gateway.shared.policy.load();
                if policy.generation > before && done(&policy) {
                    return policy.generation;
                }
                rx.changed().await.expect("reload task alive");
            }
        };
        match tokio::time::timeout(WAIT, wait).await {
            Ok(g) => g,
            Err(_) => panic!("timed out waiting for {what}; status {:?}", self.status()),
        }
    }

    async fn reader_status(&self) -> StatusCode {
        get(&self.url(CAMPAIGNS), Some(&READER)).await.status
    }
}

fn reader(policy: &Policy) -> TokenStatus {
    policy.tokens[READER.sid].spec.status
}

async fn admin_generation(url: &str) -> u64 {
    let body = get(url, None).await.text();
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON generation");
    v["generation"].as_u64().expect("a number")
}

fn metric(text: &str, series: &str) -> f64 {
    exposition::series_value(text, series).unwrap_or_else(|| panic!("no {series} in metrics"))
}

async fn reload_errors(live: &Live) -> f64 {
    let text = get(&live.admin("/metrics"), None).await.text();
    metric(&text, "scopegate_config_reloads_total{result=\"error\"}")
}

// ---------------------------------------------------------------------------------------
// 1. A token disabled and enabled again

#[tokio::test]
async fn disabling_a_token_flips_200_to_403_and_back() {
    let live = Live::start("", &tokens_a()).await;
    assert_eq!(live.reader_status().await, 200);
    assert_eq!(admin_generation(&live.admin("/generation")).await, 1);

    write_by_rename(&live.tokens_path, &tokens_disabled());
    let s = live.wait("generation 2", |s| s.generation >= 2).await;
    assert_eq!((s.generation, s.failures), (2, 0));
    assert_eq!(
        reader(&live.gateway.shared.policy.load()),
        TokenStatus::Disabled
    );
    assert_eq!(live.reader_status().await, 403);
    assert_eq!(admin_generation(&live.admin("/generation")).await, 2);
    assert_eq!(
        live.upstream.count(),
        1,
        "the refused request did not reach the upstream"
    );

    write_by_rename(&live.tokens_path, &tokens_a());
    let s = live.wait("generation 3", |s| s.generation >= 3).await;
    assert_eq!((s.generation, s.attempts, s.failures), (3, 2, 0));
    assert_eq!(live.reader_status().await, 200);
    assert_eq!(admin_generation(&live.admin("/generation")).await, 3);
    let text = get(&live.admin("/metrics"), None).await.text();
    assert_eq!(metric(&text, "scopegate_config_generation"), 3.0);
    assert_eq!(
        metric(&text, "scopegate_config_reloads_total{result=\"success\"}"),
        3.0,
        "start-up plus two reloads"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Every way of replacing the file is seen

#[tokio::test]
async fn rename_and_in_place_writes_each_trigger_a_reload() {
    let live = Live::start("", &tokens_a()).await;

    write_by_rename(&live.tokens_path, &tokens_disabled());
    let g = live
        .wait_policy("rename write", 1, |p| reader(p) == TokenStatus::Disabled)
        .await;
    assert_eq!(live.reader_status().await, 403);

    write_in_place(&live.tokens_path, &tokens_a());
    let g = live
        .wait_policy("in-place write", g, |p| reader(p) == TokenStatus::Active)
        .await;
    assert_eq!(live.reader_status().await, 200);

    // The gateway file itself is watched too: an in-place edit of scopegate.yaml.
    let text = std::fs::read_to_string(&live.config_path).unwrap();
    write_in_place(
        &live.config_path,
        &text.replace(
            "api_versions: [\"v14\", \"v15\"]",
            "api_versions: [\"v14\", \"v15\", \"v16\"]",
        ),
    );
    live.wait_policy("scopegate.yaml edit", g, |p| {
        p.settings.api_versions.len() == 3
    })
    .await;
    assert_eq!(live.reader_status().await, 200);
}

#[tokio::test]
async fn configmap_symlink_swap_triggers_a_reload() {
    let upstream = Upstream::start().await;
    let dir = TempDir::new();
    let gateway = gateway_yaml(upstream.addr, "");
    let mut cm = ConfigMap::create(
        dir.path("config"),
        &[("scopegate.yaml", &gateway), ("tokens.yaml", &tokens_a())],
    );
    let config_path = dir.path("config/scopegate.yaml");
    let tokens_path = dir.path("config/tokens.yaml");
    let live = Live::run(upstream, dir, config_path, tokens_path).await;
    assert_eq!(live.reader_status().await, 200);

    cm.update(&[
        ("scopegate.yaml", &gateway),
        ("tokens.yaml", &tokens_disabled()),
    ]);
    let g = live
        .wait_policy("first ..data swap", 1, |p| {
            reader(p) == TokenStatus::Disabled
        })
        .await;
    assert_eq!(live.reader_status().await, 403);

    // Again: the folder the files really live in changed; the swap is still seen.
    cm.update(&[("scopegate.yaml", &gateway), ("tokens.yaml", &tokens_a())]);
    live.wait_policy("second ..data swap", g, |p| {
        reader(p) == TokenStatus::Active
    })
    .await;
    assert_eq!(live.reader_status().await, 200);
    assert_eq!(live.status().failures, 0);
}

#[tokio::test]
async fn a_moved_tokens_file_is_watched_at_its_new_place() {
    let live = Live::start("", &tokens_a()).await;
    let moved_dir = live._dir.path("elsewhere");
    std::fs::create_dir(&moved_dir).unwrap();
    let moved = moved_dir.join("tokens.yaml");
    std::fs::write(&moved, tokens_a()).unwrap();
    let text = std::fs::read_to_string(&live.config_path).unwrap();
    write_by_rename(
        &live.config_path,
        &text.replace(
            "tokens_file: tokens.yaml",
            "tokens_file: elsewhere/tokens.yaml",
        ),
    );
    let g = live
        .wait_policy("tokens_file moved", 1, |p| {
            p.settings.tokens_path.ends_with("elsewhere/tokens.yaml")
        })
        .await;
    write_by_rename(&moved, &tokens_disabled());
    live.wait_policy("edit at the new place", g, |p| {
        reader(p) == TokenStatus::Disabled
    })
    .await;
    assert_eq!(live.reader_status().await, 403);
}

// ---------------------------------------------------------------------------------------
// 3. Invalid edits change nothing but a counter

#[tokio::test]
async fn invalid_files_keep_the_old_config_serving_and_are_counted() {
    let live = Live::start("", &tokens_a()).await;
    assert_eq!(reload_errors(&live).await, 0.0);
    let cases: [(&str, &Path, String); 4] = [
        (
            "YAML syntax error",
            &live.tokens_path,
            tokens_syntax_error(),
        ),
        (
            "unknown API in a scope",
            &live.tokens_path,
            tokens_unknown_api(),
        ),
        (
            "21 active scoped tokens in one account",
            &live.tokens_path,
            tokens_too_many(),
        ),
        (
            "scopegate.yaml syntax error",
            &live.config_path,
            format!(
                "{}apis: [\n",
                std::fs::read_to_string(&live.config_path).unwrap()
            ),
        ),
    ];
    let good_gateway = std::fs::read_to_string(&live.config_path).unwrap();
    for (n, (what, path, text)) in cases.iter().enumerate() {
        // Each case is checked on its own: the previous bad file is restored first.
        write_by_rename(&live.tokens_path, &tokens_a());
        write_by_rename(&live.config_path, &good_gateway);
        let before = live.status().failures;
        write_by_rename(path, text);
        let s = live.wait(what, |s| s.failures > before).await;
        assert_eq!(s.generation, 1, "{what}: nothing applied");
        assert_eq!(live.gateway.shared.policy.load().generation, 1, "{what}");
        assert_eq!(
            live.reader_status().await,
            200,
            "{what}: the old config serves"
        );
        assert_eq!(
            get(&live.admin("/readyz"), None).await.status,
            200,
            "{what}: still ready"
        );
        assert_eq!(admin_generation(&live.admin("/generation")).await, 1);
        assert!(
            reload_errors(&live).await > n as f64,
            "{what}: counted in scopegate_config_reloads_total{{result=\"error\"}}"
        );
    }
    // The old snapshot survived four rejections; a valid file is taken again.
    write_by_rename(&live.config_path, &good_gateway);
    write_by_rename(&live.tokens_path, &tokens_disabled());
    live.wait_policy("valid after invalid", 1, |p| {
        reader(p) == TokenStatus::Disabled
    })
    .await;
    assert_eq!(live.reader_status().await, 403);
}

#[tokio::test]
async fn each_invalid_case_is_rejected_by_the_loader() {
    // The same three token files through the loader directly, so a case that became
    // valid by accident fails here with the loader's own words.
    let upstream = Upstream::start().await;
    let dir = TempDir::new();
    let config_path = dir.write("scopegate.yaml", &gateway_yaml(upstream.addr, ""));
    for (what, text, expect) in [
        ("syntax", tokens_syntax_error(), "tokens.yaml"),
        ("unknown api", tokens_unknown_api(), "nosuchapi"),
        ("too many", tokens_too_many(), "20"),
    ] {
        dir.write("tokens.yaml", &text);
        let errors = scopegate::config::load(&config_path)
            .expect_err(what)
            .to_string();
        assert!(errors.contains(expect), "{what}: {errors}");
        assert!(
            errors.contains("tokens.yaml:"),
            "{what} names file and line: {errors}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 3b. The tokens cache of a large file

/// `tokens` padded with comment lines up to the size the tokens cache starts at.
fn large(tokens: &str) -> String {
    let pad = "# padding: only tokens files of 1 MiB or more are cached\n";
    let lines = scopegate::config::token_cache::MIN_BYTES as usize / pad.len() + 1;
    format!("{tokens}{}", pad.repeat(lines))
}

#[cfg(unix)]
#[tokio::test]
async fn a_large_tokens_file_reloads_through_its_cache_and_never_past_the_yaml() {
    use scopegate::gateway::reload::reload_from;
    use std::os::unix::fs::MetadataExt;
    let live = Live::start("", &large(&tokens_disabled())).await;
    let shared = live.gateway.shared.clone();
    let cache = live.tokens_path.with_file_name("tokens.yaml.cache");
    let inode = |p: &Path| std::fs::metadata(p).map(|m| m.ino()).ok();
    let reload = || async {
        tokio::time::timeout(WAIT, reload_from(&shared, &live.config_path))
            .await
            .expect("reload in time")
            .expect("valid configuration")
    };

    // No cache yet: the reload reads the YAML and writes the cache.
    assert_eq!(reload().await, 2);
    assert_eq!(live.reader_status().await, 403);
    let written = inode(&cache).expect("cache written");
    // Nothing changed: the next reload reads the cache and writes nothing.
    assert_eq!(reload().await, 3);
    assert_eq!(inode(&cache), Some(written));
    assert_eq!(live.reader_status().await, 403);
    let of_disabled = std::fs::read(&cache).expect("cache");

    // The reader enabled in the YAML (a watched change), then the old cache put back: it
    // was made for other bytes, so the next reload reads the YAML again.
    write_by_rename(&live.tokens_path, &large(&tokens_a()));
    // The status is sent once the reload task is done, cache write included.
    let g = live.wait("the edit", |s| s.generation > 3).await.generation;
    assert_eq!(
        reader(&live.gateway.shared.policy.load()),
        TokenStatus::Active
    );
    std::fs::write(&cache, &of_disabled).expect("put the old cache back");
    let before = inode(&cache);
    assert_eq!(reload().await, g + 1);
    assert_eq!(
        reader(&live.gateway.shared.policy.load()),
        TokenStatus::Active
    );
    assert_eq!(live.reader_status().await, 200);
    assert_ne!(inode(&cache), before, "rewritten for the file as it is");
}

// ---------------------------------------------------------------------------------------
// 4. Reloads under load

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_under_load_fail_no_request() {
    let live = Arc::new(Live::start(NO_LIMIT, &tokens_a()).await);
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let url = live.url(CAMPAIGNS);
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let client: Client<_, Empty<Bytes>> =
                Client::builder(TokioExecutor::new()).build_http();
            let (mut ok, mut denied, mut bad) = (0u32, 0u32, Vec::new());
            // Bounded either way: the writer stops us, or the count runs out.
            for _ in 0..200_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let req = Request::get(&url)
                    .header("authorization", basic(&READER))
                    .body(Empty::new())
                    .unwrap();
                match client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                        match (status.as_u16(), body) {
                            (200, Ok(b)) if b == "upstream ok" => ok += 1,
                            (403, Ok(_)) => denied += 1,
                            (s, b) => bad.push(format!("{s}: {b:?}")),
                        }
                    }
                    Err(e) => bad.push(format!("request failed: {e:?}")),
                }
            }
            (ok, denied, bad)
        }));
    }

    let configs = [tokens_b(), tokens_unknown_api(), tokens_a()];
    let mut expected_failures = 0;
    for i in 0..50 {
        let before = live.status().attempts;
        let which = i % 3;
        write_by_rename(&live.tokens_path, &configs[which]);
        if which == 1 {
            expected_failures += 1;
        }
        live.wait(&format!("reload {i}"), |s| s.attempts > before)
            .await;
    }
    stop.store(true, Ordering::Relaxed);

    let (mut ok, mut denied) = (0, 0);
    for c in clients {
        let (o, d, bad) = c.await.unwrap();
        assert!(
            bad.is_empty(),
            "failed or inconsistent responses: {:?}",
            &bad[..bad.len().min(10)]
        );
        ok += o;
        denied += d;
    }
    let s = live.status();
    assert_eq!(s.attempts, 50);
    assert_eq!(s.failures, expected_failures);
    assert_eq!(s.generation, 1 + 50 - expected_failures);
    assert!(
        ok > 0 && denied > 0,
        "both configs were served: {ok} allowed, {denied} denied"
    );
    // The last write was config B (i = 48) then invalid (i = 49): B is in force.
    assert_eq!(live.reader_status().await, 403);
    assert_eq!(reload_errors(&live).await, expected_failures as f64);
}

// ---------------------------------------------------------------------------------------
// The built binary: signals and process lifecycle

/// `scopegate serve` on fixed free ports, with its config files in `dir`.
struct Process {
    proc: Proc,
    addr: SocketAddr,
    admin: SocketAddr,
    dir: TempDir,
}

impl Process {
    /// Writes the config (fixed free ports) and starts `scopegate serve`, waiting for
    /// `/readyz`.
    async fn start(upstream: SocketAddr, extra: &str, tokens: &str) -> Process {
        let dir = TempDir::new();
        let (port, admin_port) = (free_port(), free_port());
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
        let yaml = with_ports(&gateway_yaml(upstream, extra), port, admin_port);
        let config = dir.write("scopegate.yaml", &yaml);
        dir.write("tokens.yaml", tokens);
        let config = config.to_str().expect("a UTF-8 test path");
        let mut proc = Proc::start(&["serve", "--log-format", "json", "--config", config], &[]);
        proc.wait_ready(&admin.to_string()).await;
        Process {
            proc,
            addr,
            admin,
            dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn log(&self) -> String {
        self.proc.stderr()
    }

    fn signal(&self, name: &str) {
        self.proc.signal(name);
    }

    /// Polls `/generation` until it reaches `n` (or passes it).
    async fn wait_generation(&self, n: u64) -> u64 {
        process::wait_generation(&self.admin.to_string(), n).await
    }

    /// Waits for the process to exit, with a deadline.
    async fn exit_status(mut self) -> (std::process::ExitStatus, String) {
        let status = self.proc.exit().await;
        (status, self.log())
    }
}

/// A GET that reports a failure instead of panicking: `None` when nothing answered.
async fn try_get_as(url: &str, auth: Option<&Fixture>) -> Option<(StatusCode, String)> {
    let auth = auth.map(basic);
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let r = try_send("GET", url, &headers).await?;
    Some((r.status, r.text()))
}

/// An upstream that holds every request for `delay` before answering `slow ok`, and
/// counts arrivals.
struct SlowUpstream {
    addr: SocketAddr,
    arrived: Arc<AtomicUsize>,
    notify: Arc<Notify>,
}

impl SlowUpstream {
    async fn start(delay: Duration) -> SlowUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let arrived = Arc::new(AtomicUsize::new(0));
        let notify = Arc::new(Notify::new());
        let (a, n) = (arrived.clone(), notify.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (a, n) = (a.clone(), n.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |_req: Request<Incoming>| {
                        a.fetch_add(1, Ordering::SeqCst);
                        n.notify_waiters();
                        async move {
                            tokio::time::sleep(delay).await;
                            Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                Bytes::from_static(b"slow ok"),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        SlowUpstream {
            addr,
            arrived,
            notify,
        }
    }

    async fn wait_arrivals(&self, n: usize) {
        let wait = async {
            loop {
                let notified = self.notify.notified();
                if self.arrived.load(Ordering::SeqCst) >= n {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("{n} requests did not reach the upstream"));
    }
}

/// Connects until the listener refuses (it may take a moment after the signal).
async fn wait_refused(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "listener still accepts"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------
// 5. SIGTERM drains

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_refuses_new_ones_and_exits_0() {
    let slow = SlowUpstream::start(Duration::from_millis(1500)).await;
    let p = Process::start(slow.addr, "timeouts: {shutdown: 20s}\n", &tokens_a()).await;

    let in_flight: Vec<_> = (0..4)
        .map(|_| {
            let url = p.url(CAMPAIGNS);
            // Each `send` builds its own client: four connections.
            tokio::spawn(async move { get(&url, Some(&READER)).await })
        })
        .collect();
    slow.wait_arrivals(4).await;

    p.signal("TERM");
    wait_refused(p.addr).await;
    assert!(
        in_flight.iter().all(|h| !h.is_finished()),
        "new connections are refused while the in-flight requests are still running"
    );
    for h in in_flight {
        let reply = h.await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "slow ok");
    }
    let (status, log) = p.exit_status().await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("draining"), "{log}");
    assert!(log.contains("scopegate stopped"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_is_bounded_by_timeouts_shutdown() {
    let slow = SlowUpstream::start(Duration::from_secs(60)).await;
    let p = Process::start(slow.addr, "timeouts: {shutdown: 500ms}\n", &tokens_a()).await;
    let url = p.url(CAMPAIGNS);
    let stuck = tokio::spawn(async move { try_get_as(&url, Some(&READER)).await });
    slow.wait_arrivals(1).await;
    let signalled = tokio::time::Instant::now();
    p.signal("INT");
    let (status, log) = p.exit_status().await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "exited after the drain timeout"
    );
    assert!(log.contains("drain timeout reached"), "{log}");
    assert!(
        stuck.await.unwrap().is_none(),
        "the stuck request was cut off"
    );
}

// ---------------------------------------------------------------------------------------
// The binary reloads on file changes and SIGHUP, and reports restart-only settings

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reloads_on_change_and_sighup_and_reports_restart_needed() {
    let upstream = Upstream::start().await;
    let p = Process::start(upstream.addr, "", &tokens_a()).await;
    p.wait_generation(1).await;
    assert_eq!(get(&p.url(CAMPAIGNS), Some(&READER)).await.status, 200);

    write_by_rename(&p.dir.path("tokens.yaml"), &tokens_disabled());
    p.wait_generation(2).await;
    assert_eq!(get(&p.url(CAMPAIGNS), Some(&READER)).await.status, 403);

    p.signal("HUP");
    p.wait_generation(3).await;

    // A new listen address cannot be taken live: reported, everything else applied.
    let config = p.dir.path("scopegate.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    let moved = text.replace(
        &format!("listen: {}\n", p.addr),
        &format!("listen: 127.0.0.1:{}\n", free_port()),
    );
    assert_ne!(moved, text);
    write_by_rename(&config, &moved);
    write_by_rename(&p.dir.path("tokens.yaml"), &tokens_a());
    p.wait_generation(4).await;
    let log_deadline = tokio::time::Instant::now() + WAIT;
    while !p.log().contains("restart needed for: listen") {
        assert!(tokio::time::Instant::now() < log_deadline, "{}", p.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        get(&p.url(CAMPAIGNS), Some(&READER)).await.status,
        200,
        "old address serves the new tokens"
    );

    let log = p.log();
    assert!(
        log.contains("\"disabled\":[\"SGreader (reader)\"]"),
        "per-token diff: {log}"
    );
    assert!(
        !log.contains(&hash(READER.secret)),
        "no secret hashes in logs"
    );
    p.signal("TERM");
    let (status, log) = p.exit_status().await;
    assert_eq!(status.code(), Some(0), "{log}");
}
