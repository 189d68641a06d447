//! The first hour of a new user, through the built binary: the demo and the commands it
//! prints, strict durations, error messages, and the log lines (text and JSON).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::process::{serve_config, start_serve, wait_generation, Proc};
use support::{
    basic, basic_raw, free_port, gateway_yaml, send, tokens_yaml, RefusingAddr, TempDir, Upstream,
    READER,
};

const BIN: &str = env!("CARGO_BIN_EXE_scopegate");

/// Runs a command line exactly as printed, through the shell.
fn shell(line: &str) -> (i32, String, String) {
    let out = Command::new("sh").args(["-c", line]).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = support::cli::bin()
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The line of `text` that contains `what`.
fn line_with<'a>(text: &'a str, what: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no line with {what:?} in:\n{text}"))
}

/// `curl ... -u 'SID:SECRET' URL` -> (SID, SECRET, URL).
fn curl_parts(line: &str) -> (String, String, String) {
    let creds = line.split('\'').nth(1).expect("quoted credentials");
    let (sid, secret) = creds.split_once(':').unwrap();
    let url = line.split_whitespace().last().unwrap();
    (sid.to_owned(), secret.to_owned(), url.to_owned())
}

async fn get_as(url: &str, sid: &str, secret: &str) -> support::Reply {
    send(
        "GET",
        url,
        &[("authorization", &basic_raw(sid, secret))],
        "",
    )
    .await
}

fn demo_folder(stdout: &str) -> PathBuf {
    let line = line_with(stdout, "Config folder: ");
    let rest = line.trim_start_matches("Config folder: ");
    PathBuf::from(rest.split(" (").next().unwrap())
}

/// The README path: the demo, the token create command it prints, and the curl line that
/// command prints answering 200 through the running demo; then explain and audit as
/// printed, SIGHUP (alive, reloaded) and SIGTERM (temporary folder gone).
#[tokio::test]
async fn demo_leads_from_its_curl_lines_to_your_own_token() {
    let mut demo = Proc::start(
        &[
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let out = demo.wait_for("scopegate_requests_total", false).await;
    let folder = demo_folder(&out);
    assert!(folder.join("scopegate.yaml").is_file(), "{out}");
    assert!(line_with(&out, "Config folder").contains("temporary"));
    let admin = line_with(&out, "admin on http://")
        .split("admin on http://")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .to_owned();

    // The demo's own curl lines: 200 through the echo upstream, 403, 401.
    let allowed = line_with(&out, "curl -i -u");
    let (sid, secret, url) = curl_parts(allowed);
    let r = get_as(&url, &sid, &secret).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("scopegate demo echo"), "{}", r.text());
    assert_eq!(send("GET", &url, &[], "").await.status, 401);

    // Every printed command names the demo's config.
    let config_arg = format!("--config {}", folder.join("scopegate.yaml").display());
    let create = line_with(&out, "scopegate token create --config");
    assert!(create.contains(&config_arg), "{create}");
    let (code, created, err) = shell(create);
    assert_eq!(code, 0, "{create}\n{created}{err}");
    let (new_sid, new_secret, new_url) = curl_parts(line_with(&created, "curl -u"));
    wait_generation(&admin, 2).await;
    let r = get_as(&new_url, &new_sid, &new_secret).await;
    assert_eq!(r.status, 200, "{}", demo.stderr());
    assert!(r.text().contains("scopegate demo echo"));

    let explain = line_with(&out, "scopegate explain --config");
    assert!(explain.contains(&config_arg), "{explain}");
    let (code, text, err) = shell(explain);
    assert_eq!(code, 1, "denied: {text}{err}");
    assert!(text.contains("denied_scope"), "{text}");
    let audit = line_with(&out, "scopegate audit --config");
    let (code, text, err) = shell(audit);
    assert_eq!(code, 0, "{text}{err}");
    assert!(
        text.contains(&config_arg),
        "audit suggestions name the config: {text}"
    );

    // SIGHUP: still serving, and reloaded.
    demo.signal("HUP");
    wait_generation(&admin, 3).await;
    assert!(demo.child.try_wait().unwrap().is_none());
    assert_eq!(get_as(&new_url, &new_sid, &new_secret).await.status, 200);
    assert!(
        demo.stderr().contains("trigger=\"SIGHUP\""),
        "{}",
        demo.stderr()
    );

    // SIGTERM: a clean exit, the temporary folder (token hashes included) removed.
    demo.signal("TERM");
    assert!(demo.exit().await.success(), "{}", demo.stderr());
    assert!(!folder.exists(), "left behind: {}", folder.display());
}

/// SIGINT also removes the temporary folder; `--dir` keeps its folder, and a second
/// `demo --dir` serves it again with the tokens created in between.
#[tokio::test]
async fn demo_dir_is_kept_and_served_again() {
    let parent = TempDir::new();
    let dir = parent.path("my-gateway");
    let dir_s = dir.display().to_string();
    let args = [
        "demo",
        "--dir",
        &dir_s,
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--upstream-listen",
        "127.0.0.1:0",
    ];
    let mut demo = Proc::start(&args, &[]);
    let out = demo.wait_for("scopegate_requests_total", false).await;
    assert_eq!(demo_folder(&out), dir);
    assert!(line_with(&out, "Config folder").contains("kept"), "{out}");
    let (code, created, err) = shell(line_with(&out, "scopegate token create --config"));
    assert_eq!(code, 0, "{created}{err}");
    demo.signal("INT");
    assert!(demo.exit().await.success());
    assert!(dir.join("scopegate.yaml").is_file() && dir.join("tokens.yaml").is_file());

    // Served again: the token created before answers 200 through the echo upstream.
    let mut again = Proc::start(&["demo", "--dir", &dir_s, "--listen", "127.0.0.1:0"], &[]);
    let out = again.wait_for("scopegate_requests_total", false).await;
    let (sid, secret, url) = curl_parts(line_with(&created, "curl -u"));
    let base = line_with(&out, "is running on ")
        .split("running on ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let path = &url[url.find("/Mediapartners").unwrap()..];
    let r = get_as(&format!("{base}{path}"), &sid, &secret).await;
    assert_eq!(r.status, 200, "{}", again.stderr());
    again.signal("TERM");
    assert!(again.exit().await.success());
}

/// A busy port: the address is named, the exit is clean and nothing is left behind.
#[tokio::test]
async fn demo_on_a_busy_port_names_it_and_leaves_nothing() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let before = demo_temp_folders();
    let (code, out, err) = run(&["demo", "--listen", &addr, "--admin-listen", "127.0.0.1:0"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(err.contains("already in use"), "{err}");
    assert!(err.contains("--listen ADDR picks another address"), "{err}");
    assert!(!out.contains("curl"), "{out}");
    assert_eq!(
        demo_temp_folders(),
        before,
        "a temporary folder was left behind"
    );

    // The admin port too, and `serve`.
    let (code, _, err) = run(&["demo", "--listen", "127.0.0.1:0", "--admin-listen", &addr]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("cannot listen on {addr} (admin)")),
        "{err}"
    );
    assert_eq!(demo_temp_folders(), before);
}

fn demo_temp_folders() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("scopegate-demo-"))
        })
        .collect();
    v.sort();
    v
}

/// Every way of writing a duration that is not the grammar is refused, in our words and
/// with the accepted form, in the config, `--grace`, `--stale-after` and `--rotate-after`.
#[tokio::test]
async fn bad_durations_are_refused_everywhere_with_a_hint() {
    let cases = [
        ("30 sec", "write `30s`"),
        ("30 secs", "write `30s`"),
        ("5 minutes", "write `5m`"),
        ("1000000000000d", "at most 3650d"),
        ("30", "has no unit"),
        ("1.5s", "has a fraction"),
        ("10y", "unknown unit `y`"),
    ];
    let upstream = Upstream::start().await;
    for (bad, want) in cases {
        let dir = TempDir::new();
        let config = dir.write(
            "scopegate.yaml",
            &gateway_yaml(
                upstream.addr,
                &format!("timeouts:\n  upstream_response: \"{bad}\"\n"),
            ),
        );
        dir.write("tokens.yaml", &tokens_yaml());
        let config_s = config.display().to_string();
        let (code, out, err) = run(&["check", "--config", &config_s]);
        let all = format!("{out}{err}");
        assert_eq!(code, 1, "{bad}: {all}");
        assert!(all.contains("timeouts.upstream_response"), "{bad}: {all}");
        assert!(all.contains(want), "{bad}: {all}");
        assert!(!all.contains("expected"), "{bad}: {all}");

        let (code, _, err) = run(&["audit", "--config", &config_s, "--stale-after", bad]);
        assert_eq!(code, 2, "{bad}");
        assert!(err.contains(want), "--stale-after {bad}: {err}");
        let (code, _, err) = run(&["audit", "--rotate-after", bad]);
        assert_eq!(code, 2, "{bad}");
        assert!(err.contains(want), "--rotate-after {bad}: {err}");
        let (code, _, err) = run(&[
            "token", "reset", "--config", &config_s, READER.sid, "--grace", bad,
        ]);
        assert_eq!(code, 2, "{bad}");
        assert!(err.contains(want), "--grace {bad}: {err}");
    }
    // A bare YAML number is a duration without a unit, not a type error.
    for bare in ["30", "1.5"] {
        let dir = TempDir::new();
        let config = dir.write(
            "scopegate.yaml",
            &gateway_yaml(
                upstream.addr,
                &format!("timeouts:\n  upstream_response: {bare}\n"),
            ),
        );
        dir.write("tokens.yaml", &tokens_yaml());
        let (code, out, err) = run(&["check", "--config", &config.display().to_string()]);
        let all = format!("{out}{err}");
        assert_eq!(code, 1, "{all}");
        assert!(all.contains("timeouts.upstream_response: `"), "{all}");
        assert!(!all.contains("invalid type"), "{all}");
    }
    // The grammar itself: a combined duration is accepted.
    let dir = TempDir::new();
    let config = dir.write(
        "scopegate.yaml",
        &gateway_yaml(upstream.addr, "timeouts:\n  upstream_response: 1m30s\n"),
    );
    dir.write("tokens.yaml", &tokens_yaml());
    let (code, out, err) = run(&["check", "--config", &config.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
}

/// The README's showcase validation error, verbatim, from the shipped example files with
/// the two mistakes it describes.
#[tokio::test]
async fn readme_validation_showcase_is_real() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme
        .find("```\n2 configuration errors:")
        .expect("showcase block")
        + 4;
    let block = &readme[start..];
    let expected = &block[..block.find("```").unwrap()];

    let dir = TempDir::new();
    std::fs::create_dir(dir.path("config")).unwrap();
    let gateway = std::fs::read_to_string(root.join("config/scopegate.yaml")).unwrap();
    let tokens = std::fs::read_to_string(root.join("config/tokens.yaml")).unwrap();
    assert!(gateway.contains("upstream_response: 30s"));
    assert!(tokens.contains("{api: reports, methods: [GET]}"));
    dir.write(
        "config/scopegate.yaml",
        &gateway.replace("upstream_response: 30s", "upstream_response: 30 sec"),
    );
    dir.write(
        "config/tokens.yaml",
        &tokens.replace(
            "{api: reports, methods: [GET]}",
            "{api: reprots, methods: [GET]}",
        ),
    );
    let out = support::cli::bin()
        .args(["check", "--config", "config/scopegate.yaml"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text, expected);
}

/// A missing file is named, without a line number.
#[tokio::test]
async fn a_missing_file_has_no_line_number() {
    let dir = TempDir::new();
    let missing = dir.path("nowhere.yaml").display().to_string();
    let (code, out, err) = run(&["check", "--config", &missing]);
    assert_eq!(code, 1);
    let all = format!("{out}{err}");
    assert!(all.contains(&format!("{missing}: file not found")), "{all}");
    assert!(!all.contains(":0"), "{all}");

    // The tokens file the config names.
    let upstream = Upstream::start().await;
    let config = dir.write("scopegate.yaml", &gateway_yaml(upstream.addr, ""));
    let (code, out, err) = run(&["serve", "--config", &config.display().to_string()]);
    assert_eq!(code, 1);
    let all = format!("{out}{err}");
    let tokens = dir.path("tokens.yaml").display().to_string();
    assert!(all.contains(&format!("{tokens}: file not found")), "{all}");
    assert!(!all.contains(":0"), "{all}");
}

/// Text access log: client address, escaped user agent, byte counts, integer durations,
/// the path of a 400 without its query; no colour codes on a pipe, NO_COLOR or not; the
/// drain message once however many workers.
#[tokio::test]
async fn text_access_log_has_the_fields_and_no_colour() {
    let upstream = Upstream::start().await;
    let (mut p, listen, admin, _dir) =
        start_serve(upstream.addr, "", &[], &[("TOKIO_WORKER_THREADS", "3")]);
    p.wait_ready(&admin).await;
    let base = format!("http://{listen}");
    let r = send(
        "POST",
        &format!("{base}/Mediapartners/IRacme/Campaigns?secret-query=1"),
        &[
            ("authorization", &basic(&support::WRITER)),
            ("user-agent", "probe \"x\" 1.0"),
        ],
        "0123456789",
    )
    .await;
    assert_eq!(r.status, 200);
    let r = send(
        "GET",
        &format!("{base}/Mediapartners/IRacme/x%2fy?token=hidden-query"),
        &[("authorization", &basic(&READER))],
        "",
    )
    .await;
    assert_eq!(r.status, 400);
    let log = p.wait_for("reason=\"bad_target\"", true).await;
    assert_eq!(upstream.count(), 1, "the 400 never reached the upstream");

    let post = line_with(&log, "method=\"POST\"");
    for field in [
        "client=127.0.0.1:",
        r#"user_agent="probe \"x\" 1.0""#,
        "request_bytes=10",
        "response_bytes=11",
        "status=200",
    ] {
        assert!(post.contains(field), "{field} in {post}");
    }
    assert!(
        post.contains(" duration_us=") && post.contains(" upstream_us="),
        "{post}"
    );
    assert!(!post.contains("duration_ms"), "{post}");
    let duration: String = post
        .split(" duration_us=")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    assert!(duration.parse::<u64>().is_ok(), "integer µs: {duration}");
    let bad = line_with(&log, "reason=\"bad_target\"");
    assert!(
        bad.contains(r#"path="/Mediapartners/IRacme/x%2fy""#),
        "{bad}"
    );
    assert!(
        !log.contains("hidden-query") && !log.contains("secret-query"),
        "{log}"
    );
    assert!(!log.contains('\u{1b}'), "colour codes on a pipe: {log}");

    p.signal("TERM");
    assert!(p.exit().await.success());
    let log = p.stderr();
    assert_eq!(log.matches("draining").count(), 1, "{log}");
}

/// JSON lines: each line an object with `message`, numbers as numbers, lists as arrays;
/// a 502 names the upstream address and the cause in our words.
#[tokio::test]
async fn json_log_lines_and_a_502_that_says_why() {
    let dead = RefusingAddr::new();
    let (mut p, listen, admin, dir) = start_serve(dead.addr, "", &["--log-format", "json"], &[]);
    p.wait_ready(&admin).await;
    let r = send(
        "GET",
        &format!("http://{listen}/Mediapartners/IRacme/Campaigns"),
        &[("authorization", &basic(&READER))],
        "",
    )
    .await;
    assert_eq!(r.status, 502);
    // A reload with a list in it: a token disabled.
    let tokens = tokens_yaml();
    let changed = tokens.replacen(
        "        name: reader\n",
        "        name: reader\n        status: disabled\n",
        1,
    );
    assert_ne!(tokens, changed, "the reader is in the fixture");
    std::fs::write(dir.path("tokens.yaml"), changed).unwrap();
    let log = p.wait_for("configuration reloaded", true).await;

    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for l in &lines {
        assert!(l["message"].is_string(), "{l}");
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
    }
    let access = lines
        .iter()
        .find(|l| l["target"] == "scopegate::access")
        .expect("an access line");
    assert_eq!(access["status"], 502);
    assert!(access["duration_us"].is_u64(), "{access}");
    assert!(access["response_bytes"].is_u64(), "{access}");
    assert_eq!(access["upstream"], dead.addr.to_string());
    assert_eq!(
        access["client"].as_str().unwrap().split(':').next(),
        Some("127.0.0.1")
    );
    let upstream_line = lines
        .iter()
        .find(|l| l["target"] == "scopegate::upstream")
        .expect("an upstream line");
    let message = upstream_line["message"].as_str().unwrap();
    assert!(message.contains(&dead.addr.to_string()), "{message}");
    assert!(message.contains("connection refused"), "{message}");
    assert!(!message.contains("client error"), "{message}");
    let reload = lines
        .iter()
        .find(|l| l["message"] == "configuration reloaded")
        .unwrap();
    assert!(reload["disabled"].is_array(), "{reload}");
    assert_eq!(reload["disabled"].as_array().unwrap().len(), 1, "{reload}");
    assert!(reload["added"].as_array().unwrap().is_empty(), "{reload}");
    // --listen/--admin-listen override the config without making every reload report a
    // changed listener.
    assert!(!log.contains("restart needed"), "{log}");
}

/// `scopegate echo` is the example config's upstream: `serve` on the shipped config in
/// front of it is not a dead end.
#[tokio::test]
async fn the_example_config_serves_in_front_of_scopegate_echo() {
    let port = free_port();
    let echo_addr = format!("127.0.0.1:{port}");
    let mut echo = Proc::start(&["echo", "--listen", &echo_addr], &[]);
    echo.wait_for("echo upstream listening", false).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let gateway = std::fs::read_to_string(root.join("config/scopegate.yaml")).unwrap();
    assert!(
        gateway.contains("url: http://127.0.0.1:3000"),
        "echo's default address"
    );
    let dir = TempDir::new();
    let config = dir.write(
        "scopegate.yaml",
        &gateway.replace("127.0.0.1:3000", &echo_addr),
    );
    dir.write("tokens.yaml", "");
    let config_s = config.display().to_string();
    let (code, created, err) = run(&[
        "token",
        "create",
        "--config",
        &config_s,
        "--account",
        "IRacme",
        "--name",
        "first",
        "--scope",
        "campaigns:GET",
    ]);
    assert_eq!(code, 0, "{created}{err}");
    let (sid, secret, url) = curl_parts(line_with(&created, "curl -u"));
    let (mut p, listen, admin) = serve_config(&config, &[], &[]);
    p.wait_ready(&admin).await;
    let path = &url[url.find("/Mediapartners").unwrap()..];
    let r = get_as(&format!("http://{listen}{path}"), &sid, &secret).await;
    assert_eq!(r.status, 200, "{}", p.stderr());
    assert!(r.text().contains("scopegate demo echo"));
}

/// On a terminal the text log is coloured, unless `NO_COLOR` is set. `script` (util-linux,
/// essential on Debian) gives the gateway a pseudo-terminal.
#[tokio::test]
async fn colour_only_on_a_terminal_and_never_with_no_color() {
    if Command::new("script").arg("--version").output().is_err() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "`script` (util-linux) is needed for this test"
        );
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    }
    let upstream = Upstream::start().await;
    let dir = TempDir::new();
    let config = dir.write("scopegate.yaml", &gateway_yaml(upstream.addr, ""));
    dir.write("tokens.yaml", &tokens_yaml());
    for no_color in [None, Some("1")] {
        let (port, admin) = (free_port(), free_port());
        // Start, wait until the admin port accepts, stop: the start and drain lines are
        // written to the terminal.
        let inner = format!(
            "{BIN} serve --config {} --listen 127.0.0.1:{port} --admin-listen 127.0.0.1:{admin} & \
             pid=$!; n=0; until (exec 3<>/dev/tcp/127.0.0.1/{admin}) 2>/dev/null; do \
             n=$((n+1)); [ $n -gt 1200 ] && break; sleep 0.05; done; kill -TERM $pid; wait $pid",
            config.display()
        );
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &format!("bash -c '{inner}'"), "/dev/null"])
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("shutdown requested"), "{text}");
        assert_eq!(
            text.contains('\u{1b}'),
            no_color.is_none(),
            "NO_COLOR={no_color:?}: {text}"
        );
    }
}
