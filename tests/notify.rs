//! Notifications to token contacts (SPEC §12), end to end: the built binary's
//! `scopegate notify --once` and `token disable` deliver to a real SMTP server (Python's
//! aiosmtpd, over STARTTLS with a CA made here) and to a webhook receiver in this test
//! that checks the HMAC signature on its own; each event exactly once across runs (every
//! run is a new process sharing only `state_dir`); failures retried.

mod support;

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::net::TcpListener;

use support::cli::run;
use support::process::{ChildGuard, Proc};
use support::*;

const HOOK_SECRET: &str = "whsec-test-0123456789";

/// One webhook request as received, with the signature checked here independently.
#[derive(Debug, Clone)]
struct Hook {
    event_id: String,
    signature_ok: bool,
    body: serde_json::Value,
    raw: String,
}

/// A webhook receiver on port 0: answers 500 while `fail` is above zero (counting down),
/// else 204; records everything.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Hook>>>,
    fail: Arc<AtomicUsize>,
}

fn expected_signature(ts: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let r = Receiver {
            addr,
            seen: Arc::default(),
            fail: Arc::default(),
        };
        let rr = r.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let rr = rr.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<Incoming>| {
                        let rr = rr.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let h = |n: &str| {
                                parts
                                    .headers
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_owned()
                            };
                            let ts = h("x-scopegate-timestamp");
                            let fresh = ts.parse::<i64>().is_ok_and(|t| {
                                (OffsetDateTime::now_utc().unix_timestamp() - t).abs() < 300
                            });
                            let signature_ok = fresh
                                && h("x-scopegate-signature") == expected_signature(&ts, &body);
                            rr.seen.lock().unwrap().push(Hook {
                                event_id: h("x-scopegate-event-id"),
                                signature_ok,
                                body: serde_json::from_slice(&body)
                                    .unwrap_or(serde_json::Value::Null),
                                raw: String::from_utf8_lossy(&body).into_owned(),
                            });
                            let failing = rr
                                .fail
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                    n.checked_sub(1)
                                })
                                .is_ok();
                            let status = if failing { 500 } else { 204 };
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        r
    }

    fn hooks(&self) -> Vec<Hook> {
        self.seen.lock().unwrap().clone()
    }
}

/// aiosmtpd, running `tests/support/smtp_sink.py` with STARTTLS required.
struct SmtpSink {
    _child: ChildGuard,
    port: u16,
    out: PathBuf,
}

impl SmtpSink {
    /// `None` (skip) when aiosmtpd is missing outside CI; a failure in CI.
    fn start(dir: &Path, cert: &Path, key: &Path) -> Option<SmtpSink> {
        let has = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "aiosmtpd is missing in CI: .ci/install-aiosmtpd.sh should have installed it"
            );
            eprintln!("skipping: python3 with aiosmtpd not found (bash .ci/install-aiosmtpd.sh)");
            return None;
        }
        let out = dir.join("mail");
        std::fs::create_dir_all(&out).unwrap();
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(&out)
            .arg(cert)
            .arg(key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "READY", "the SMTP sink did not start");
        Some(SmtpSink {
            _child: ChildGuard(child),
            port,
            out,
        })
    }

    /// The messages received so far, in order.
    fn messages(&self) -> Vec<String> {
        let mut files: Vec<(usize, PathBuf)> = std::fs::read_dir(&self.out)
            .unwrap()
            .filter_map(|e| {
                let p = e.ok()?.path();
                let n = p.file_stem()?.to_str()?.parse().ok()?;
                (p.extension()? == "eml").then_some((n, p))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

/// A CA and a leaf for 127.0.0.1, written as PEM files: (ca, cert, key).
fn smtp_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "notify test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "smtp");
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("smtp.pem"),
        dir.join("smtp.key"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

fn stamp(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap().format(&Rfc3339).unwrap()
}

/// Tokens relative to `now`: one expiring in 10 days (two contacts, one duplicated), one
/// due for rotation, one fine, one disabled and expiring (never notified).
fn tokens(now: OffsetDateTime) -> String {
    let d = |n: i64| stamp(now + time::Duration::days(n));
    format!(
        r#"accounts:
  - id: IRacme
    tokens:
      - sid: SGsoon
        name: soon
        primary_contact: owner@acme.example
        developer_emails: [dev1@acme.example, OWNER@acme.example]
        auth_token_hash: "{h}"
        created_at: {m10}
        rotated_at: {m10}
        expires_at: {p10}
        scopes: [{{api: campaigns, methods: [GET]}}]
      - sid: SGold
        name: old
        primary_contact: old@acme.example
        auth_token_hash: "{h}"
        created_at: {m100}
        rotated_at: {m100}
        scopes: [{{api: campaigns, methods: [GET]}}]
      - sid: SGfine
        name: fine
        primary_contact: fine@acme.example
        auth_token_hash: "{h}"
        created_at: {m1}
        rotated_at: {m1}
        scopes: [{{api: campaigns, methods: [GET]}}]
      - sid: SGoff
        name: off
        status: disabled
        primary_contact: off@acme.example
        auth_token_hash: "{h}"
        created_at: {m10}
        expires_at: {p10}
        scopes: [{{api: campaigns, methods: [GET]}}]
"#,
        h = hash("the-fixture-secret"),
        m100 = d(-100),
        m10 = d(-10),
        m1 = d(-1),
        p10 = d(10),
    )
}

fn notify_once(cfg: &Path, now: OffsetDateTime) -> support::cli::Run {
    run(cfg, &["notify", "--once", "--now", &stamp(now)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_and_webhook_each_event_exactly_once_across_runs() {
    let dir = TempDir::new();
    let (ca, cert, key) = smtp_certs(&dir.0);
    let Some(smtp) = SmtpSink::start(&dir.0, &cert, &key) else {
        return;
    };
    let hook = Receiver::start().await;
    let extra = format!(
        r#"state_dir: state
notifications:
  before_expiry: 14d
  rotate_after: 90d
  retries: 1
  retry_backoff: 10ms
  smtp:
    host: 127.0.0.1
    port: {port}
    starttls: true
    ca: {ca}
    from: "Scopegate <scopegate@example.com>"
  webhook:
    url: http://{hook}/hooks/scopegate
    secret: {HOOK_SECRET}
"#,
        port = smtp.port,
        ca = ca.display(),
        hook = hook.addr,
    );
    let cfg = dir.write(
        "scopegate.yaml",
        &gateway_yaml("127.0.0.1:9".parse().unwrap(), &extra),
    );
    let now = OffsetDateTime::now_utc();
    dir.write("tokens.yaml", &tokens(now));
    run(&cfg, &["check"]).expect_code(0);

    // First run: before_expiry (SGsoon) and rotation_due (SGold), each by mail and webhook.
    let cfg2 = cfg.clone();
    let r = tokio::task::spawn_blocking(move || notify_once(&cfg2, now))
        .await
        .unwrap();
    let r = r.expect_code(0);
    assert!(r.stdout.contains("4 sent, 0 failed"), "{}", r.stdout);

    let mails = smtp.messages();
    assert_eq!(mails.len(), 2, "{mails:#?}");
    let soon = mails
        .iter()
        .find(|m| m.contains("SGsoon"))
        .expect("a mail about SGsoon");
    assert!(
        soon.starts_with("X-Envelope-To: owner@acme.example, dev1@acme.example\r\n"),
        "{soon}"
    );
    assert!(
        soon.contains("X-Envelope-TLS: yes"),
        "STARTTLS was used:\n{soon}"
    );
    assert!(soon.contains("expires soon"), "{soon}");
    let old = mails
        .iter()
        .find(|m| m.contains("SGold"))
        .expect("a mail about SGold");
    assert!(
        old.starts_with("X-Envelope-To: old@acme.example\r\n"),
        "{old}"
    );
    assert!(old.contains("due for rotation"), "{old}");

    let hooks = hook.hooks();
    assert_eq!(hooks.len(), 2, "{hooks:#?}");
    assert!(hooks.iter().all(|h| h.signature_ok), "{hooks:#?}");
    let mut kinds: Vec<(String, String)> = hooks
        .iter()
        .map(|h| {
            (
                h.body["sid"].as_str().unwrap().to_owned(),
                h.body["event"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("SGold".into(), "rotation_due".into()),
            ("SGsoon".into(), "before_expiry".into())
        ]
    );
    let soon_hook = hooks.iter().find(|h| h.body["sid"] == "SGsoon").unwrap();
    assert_eq!(
        soon_hook.body["recipients"],
        serde_json::json!(["owner@acme.example", "dev1@acme.example"])
    );
    // Neither channel ever carries a secret or a hash.
    let fixture_hash = hash("the-fixture-secret");
    let hex = fixture_hash.trim_start_matches("sha256:");
    for text in mails.iter().chain(hooks.iter().map(|h| &h.raw)) {
        assert!(!text.contains("the-fixture-secret") && !text.contains(hex));
    }

    // Second run, a new process with the same state_dir (a restart), later the same day:
    // nothing is sent again.
    let cfg2 = cfg.clone();
    let later = now + time::Duration::hours(3);
    let r = tokio::task::spawn_blocking(move || notify_once(&cfg2, later))
        .await
        .unwrap();
    assert!(r.expect_code(0).stdout.contains("0 sent, 0 failed"));
    assert_eq!(smtp.messages().len(), 2);
    assert_eq!(hook.hooks().len(), 2);

    // A lifecycle event while the webhook is down: `token disable` mails at once, the
    // webhook fails (a command makes one attempt; retries are for the passes), the event
    // stays queued.
    hook.fail.store(1, Ordering::SeqCst);
    let cfg2 = cfg.clone();
    let r = tokio::task::spawn_blocking(move || run(&cfg2, &["token", "disable", "SGfine"]))
        .await
        .unwrap()
        .expect_code(0);
    assert!(
        r.stderr.contains("1 notification deliveries failed"),
        "{}",
        r.stderr
    );
    let mails = smtp.messages();
    assert_eq!(mails.len(), 3);
    assert!(mails[2].starts_with("X-Envelope-To: fine@acme.example\r\n"));
    assert!(mails[2].contains("was disabled"), "{}", mails[2]);
    let hooks = hook.hooks();
    assert_eq!(hooks.len(), 3, "one failed attempt");
    assert_eq!(hooks[2].body["event"], "disabled");

    // The next pass (after the across-pass backoff) delivers the webhook only, once.
    let cfg2 = cfg.clone();
    let next = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let r = tokio::task::spawn_blocking(move || notify_once(&cfg2, next))
        .await
        .unwrap()
        .expect_code(0);
    assert!(r.stdout.contains("1 sent, 0 failed"), "{}", r.stdout);
    let hooks = hook.hooks();
    assert_eq!(hooks.len(), 4);
    assert_eq!(
        hooks[3].event_id, hooks[2].event_id,
        "a retry keeps the event id"
    );
    assert!(hooks[3].signature_ok);
    assert_eq!(smtp.messages().len(), 3, "the mail is not sent twice");

    let cfg2 = cfg.clone();
    let r = tokio::task::spawn_blocking(move || notify_once(&cfg2, next))
        .await
        .unwrap();
    assert!(r.expect_code(0).stdout.contains("0 sent, 0 failed"));
    assert_eq!(hook.hooks().len(), 4);
    assert_eq!(smtp.messages().len(), 3);
}

/// A series' value in an exposition, 0 when absent.
fn metric_value(text: &str, series: &str) -> f64 {
    exposition::series_value(text, series).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_back_off_and_are_counted() {
    let dir = TempDir::new();
    let hook = Receiver::start().await;
    let extra = format!(
        "state_dir: state\nnotifications:\n  retries: 2\n  retry_backoff: 20ms\n  webhook: {{url: \"http://{}/h\", secret: {HOOK_SECRET}}}\n",
        hook.addr
    );
    let cfg = dir.write(
        "scopegate.yaml",
        &gateway_yaml("127.0.0.1:9".parse().unwrap(), &extra),
    );
    let now = OffsetDateTime::now_utc();
    dir.write("tokens.yaml", &tokens(now));
    let config = scopegate::config::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let registry = prometheus::Registry::new();
    let metrics = scopegate::gateway::notifier::NotifyMetrics::register(&registry);

    // Two failures, then success, inside one pass: 2 retried + 1 sent for the first event.
    hook.fail.store(2, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let r = scopegate::gateway::notifier::run_pass(&config, &metrics, now.unix_timestamp(), false)
        .await
        .unwrap();
    assert_eq!((r.sent, r.failed), (2, 0));
    // Backoff 20ms then 40ms between the attempts.
    assert!(started.elapsed() >= Duration::from_millis(60));
    let text = String::from_utf8(
        prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap()
            .into_bytes(),
    )
    .unwrap();
    let s = |event: &str, result: &str| {
        metric_value(
            &text,
            &format!(
                "scopegate_notifications_total{{channel=\"webhook\",event=\"{event}\",result=\"{result}\"}}"
            ),
        )
    };
    let retried = s("before_expiry", "retried") + s("rotation_due", "retried");
    assert_eq!(retried, 2.0, "{text}");
    assert_eq!(s("before_expiry", "sent"), 1.0, "{text}");
    assert_eq!(s("rotation_due", "sent"), 1.0, "{text}");

    // All attempts failing: counted as failed, retried by a later pass only after the
    // backoff, then delivered once.
    let config2 = {
        std::fs::write(dir.path("tokens.yaml"), tokens(now)).unwrap();
        scopegate::config::load(&cfg).unwrap()
    };
    hook.fail.store(100, Ordering::SeqCst);
    let (cfg2, c2) = (cfg.clone(), config2.clone());
    // Blocking (it runs its own pass), as the CLI and the admin API call it.
    let queued = tokio::task::spawn_blocking(move || {
        scopegate::gateway::notifier::token_changed(
            &cfg2,
            &c2.settings,
            scopegate::gateway::notifier::EventKind::Deleted,
            &scopegate::gateway::notifier::TokenRef::of(&c2.tokens[0]),
        )
    })
    .await
    .unwrap()
    .unwrap()
    .expect("notifications are configured");
    assert_eq!((queued.sent, queued.failed), (0, 1), "every attempt failed");
    hook.fail.store(0, Ordering::SeqCst);
    let before = hook.hooks().len();
    let soon = OffsetDateTime::now_utc().unix_timestamp();
    let r = scopegate::gateway::notifier::run_pass(&config2, &metrics, soon, true)
        .await
        .unwrap();
    assert_eq!(
        (r.sent, r.failed),
        (0, 0),
        "not before the backoff has passed"
    );
    assert_eq!(hook.hooks().len(), before);
    let r = scopegate::gateway::notifier::run_pass(&config2, &metrics, soon + 3600, true)
        .await
        .unwrap();
    assert_eq!((r.sent, r.failed), (1, 0));
    assert_eq!(hook.hooks().last().unwrap().body["event"], "deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_tokens_are_notified_from_the_usage_record_once() {
    use scopegate::gateway::usage::{ScopeRecord, TokenRecord, UsageState};
    let dir = TempDir::new();
    let hook = Receiver::start().await;
    let extra = format!(
        "state_dir: state\nnotifications:\n  stale_after: 30d\n  webhook: {{url: \"http://{}/h\", secret: {HOOK_SECRET}}}\n",
        hook.addr
    );
    let cfg = dir.write(
        "scopegate.yaml",
        &gateway_yaml("127.0.0.1:9".parse().unwrap(), &extra),
    );
    let now = OffsetDateTime::now_utc();
    let t = now.unix_timestamp();
    dir.write("tokens.yaml", &tokens(now));
    let used = |days_ago: i64| TokenRecord {
        since: t - 60 * 86_400,
        scopes: vec![ScopeRecord {
            api: "campaigns".into(),
            method: "GET".into(),
            count: 3,
            last_used: t - days_ago * 86_400,
        }],
    };
    let usage = UsageState {
        version: 1,
        saved_at: t - 60 * 86_400,
        tokens: [
            ("SGsoon".to_owned(), used(1)),
            ("SGold".to_owned(), used(1)),
            ("SGfine".to_owned(), used(40)),
        ]
        .into_iter()
        .collect(),
    };
    std::fs::create_dir_all(dir.path("state")).unwrap();
    scopegate::gateway::usage::write_state(&dir.path("state/usage.json"), &usage).unwrap();

    let config = scopegate::config::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let metrics =
        scopegate::gateway::notifier::NotifyMetrics::register(&prometheus::Registry::new());
    scopegate::gateway::notifier::run_pass(&config, &metrics, t, false)
        .await
        .unwrap();
    let stale: Vec<_> = hook
        .hooks()
        .into_iter()
        .filter(|h| h.body["event"] == "stale")
        .collect();
    assert_eq!(stale.len(), 1, "{stale:#?}");
    assert_eq!(stale[0].body["sid"], "SGfine");
    assert!(stale[0].signature_ok);
    let before = hook.hooks().len();
    scopegate::gateway::notifier::run_pass(&config, &metrics, t + 3600, false)
        .await
        .unwrap();
    assert_eq!(hook.hooks().len(), before, "nothing is sent twice");
}

#[test]
fn bad_notification_settings_are_reported_by_check() {
    let dir = TempDir::new();
    let extra = "notifications:\n  before_expiry: soon\n  smtp: {host: \"\", from: not-an-address}\n  webhook: {url: \"ftp://x\"}\n";
    let cfg = dir.write(
        "scopegate.yaml",
        &gateway_yaml("127.0.0.1:9".parse().unwrap(), extra),
    );
    dir.write("tokens.yaml", &tokens_yaml());
    let r = run(&cfg, &["check"]).expect_code(1);
    for needle in [
        "notifications need `state_dir`",
        "notifications.before_expiry",
        "`not-an-address` is not an email address",
        "empty SMTP host",
        "`ftp://x` is not an http(s) URL",
        "exactly one of `secret` and `secret_env`",
    ] {
        assert!(
            r.stderr.contains(needle),
            "missing `{needle}` in:\n{}",
            r.stderr
        );
    }
}

/// `serve` runs the notifier itself: the due events reach the webhook without any command,
/// and the gateway's own `/metrics` counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_notifies_on_its_own_and_exports_the_counter() {
    let dir = TempDir::new();
    let hook = Receiver::start().await;
    let extra = format!(
        "state_dir: state\nnotifications:\n  webhook: {{url: \"http://{}/h\", secret: {HOOK_SECRET}}}\n",
        hook.addr
    );
    let (port, admin) = (free_port(), free_port());
    let cfg = dir.write(
        "scopegate.yaml",
        &with_ports(
            &gateway_yaml("127.0.0.1:9".parse().unwrap(), &extra),
            port,
            admin,
        ),
    );
    dir.write("tokens.yaml", &tokens(OffsetDateTime::now_utc()));
    let cfg = cfg.to_str().expect("a UTF-8 test path");
    let mut p = Proc::start(&["serve", "--config", cfg], &[]);
    p.wait_ready(&format!("127.0.0.1:{admin}")).await;
    // The start-up pass delivers both due events; wait for them (bounded), not a timer.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while hook.hooks().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no notifications from serve: {}",
            p.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hooks = hook.hooks();
    assert!(hooks.iter().all(|h| h.signature_ok));
    let url = format!("http://127.0.0.1:{admin}/metrics");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = get(&url, None).await.text();
        let sent = |event: &str| {
            metric_value(
                &text,
                &format!(
                    "scopegate_notifications_total{{channel=\"webhook\",event=\"{event}\",result=\"sent\"}}"
                ),
            )
        };
        // The counter moves just after the receiver answered.
        if sent("before_expiry") == 1.0 && sent("rotation_due") == 1.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A notifier that died mid-delivery left a claim (`sending`): a restart within the lease
/// leaves it alone (its owner may still be delivering), after the lease it is delivered,
/// once, with the same event id a receiver deduplicates on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_left_by_a_crash_is_delivered_after_the_lease() {
    use scopegate::gateway::notifier::state::{self, Delivery, StateFile, Status};
    let dir = TempDir::new();
    let hook = Receiver::start().await;
    let extra = format!(
        "state_dir: state\nnotifications:\n  webhook: {{url: \"http://{}/h\", secret: {HOOK_SECRET}}}\n",
        hook.addr
    );
    let cfg = dir.write(
        "scopegate.yaml",
        &gateway_yaml("127.0.0.1:9".parse().unwrap(), &extra),
    );
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let t = now.unix_timestamp();
    dir.write("tokens.yaml", &tokens(now));
    let exp = t + 10 * 86_400;
    let key = state::key(&format!("before_expiry/SGsoon/{exp}"), "webhook");
    StateFile::new(&dir.path("state"))
        .transact(t, |s| {
            s.deliveries.insert(
                key.clone(),
                Delivery {
                    status: Status::Sending,
                    attempts: 1,
                    rounds: 0,
                    updated: t,
                    next_attempt: 0,
                },
            );
        })
        .unwrap();
    let config = scopegate::config::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let metrics =
        scopegate::gateway::notifier::NotifyMetrics::register(&prometheus::Registry::new());
    let sids = |hooks: Vec<Hook>| -> Vec<String> {
        hooks
            .iter()
            .map(|h| h.body["sid"].as_str().unwrap_or("").to_owned())
            .collect()
    };

    let r = scopegate::gateway::notifier::run_pass(&config, &metrics, t + 60, false)
        .await
        .unwrap();
    assert_eq!(r.sent, 1);
    assert_eq!(sids(hook.hooks()), vec!["SGold"], "the claimed event waits");

    let r = scopegate::gateway::notifier::run_pass(&config, &metrics, t + state::LEASE, false)
        .await
        .unwrap();
    assert_eq!(r.sent, 1);
    assert_eq!(sids(hook.hooks()), vec!["SGold", "SGsoon"]);

    let r = scopegate::gateway::notifier::run_pass(&config, &metrics, t + 2 * state::LEASE, false)
        .await
        .unwrap();
    assert_eq!(r.sent, 0);
    assert_eq!(hook.hooks().len(), 2);
}
