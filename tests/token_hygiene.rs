//! Token hygiene (SPEC §12): identifiable `sgs_` secrets refused early when corrupt,
//! `token scan` finding planted secrets (and `--disable` disabling exactly those tokens),
//! and `token_policy` enforced by create/update/reset and reported by check and audit.

mod support;

use std::path::Path;

use scopegate::domain::secret_format;
use support::cli::{create, run};
use support::*;

/// A copy of `secret` with one random-part character changed: same shape, bad checksum.
fn corrupt(secret: &str) -> String {
    let mut b = secret.as_bytes().to_vec();
    b[10] = if b[10] == b'a' { b'b' } else { b'a' };
    String::from_utf8(b).unwrap()
}

/// A series' value in an exposition, 0 when absent.
fn metric_value(text: &str, series: &str) -> f64 {
    exposition::series_value(text, series).unwrap_or(0.0)
}

#[tokio::test]
async fn corrupt_sgs_secrets_are_refused_before_lookup_and_counted() {
    let secret = secret_format::generate().unwrap();
    let tokens = tokens_yaml().replace(
        "deleted_sids: [SGdeleted]",
        &format!(
            "  - id: IRnew\n    tokens:\n      - sid: SGnew\n        name: new\n        \
             auth_token_hash: \"{}\"\n        scopes: [{{api: campaigns, methods: [GET]}}]\n\
             deleted_sids: [SGdeleted]",
            hash(&secret)
        ),
    );
    let h = Harness::start_with("", &tokens).await;
    let new_path = "/Mediapartners/IRnew/Campaigns";
    let call = |sid: &'static str, secret: String, path: &'static str| {
        let url = h.url(path);
        async move {
            send(
                "GET",
                &url,
                &[("authorization", &basic_raw(sid, &secret))],
                "",
            )
            .await
            .status
        }
    };

    // The real secret works; an old-style secret keeps working.
    assert_eq!(call("SGnew", secret.to_string(), new_path).await, 200);
    assert_eq!(call(READER.sid, READER.secret.into(), CAMPAIGNS).await, 200);
    let forwarded = h.upstream.count();
    assert_eq!(forwarded, 2);

    // Corrupt forms: a changed character, a dropped one, an extra one, a bad alphabet,
    // the bare prefix. Each is 403 with nothing reaching the upstream.
    let bad: Vec<String> = vec![
        corrupt(&secret),
        secret[..49].to_owned(),
        format!("{}0", &*secret),
        format!("{}-{}", &secret[..20], &secret[21..]),
        "sgs_".to_owned(),
    ];
    for b in &bad {
        assert_eq!(call("SGnew", b.clone(), new_path).await, 403, "{b}");
    }
    // The same for an unknown SID: the checksum is checked before the SID is looked up.
    assert_eq!(call("SGnobody", corrupt(&secret), CAMPAIGNS).await, 403);
    assert_eq!(
        h.upstream.count(),
        forwarded,
        "nothing reached the upstream"
    );

    let m = metrics(&h).await;
    assert_eq!(
        metric_value(&m, "scopegate_secret_checksum_failures_total"),
        bad.len() as f64 + 1.0
    );
    // Counted as denied_credentials under `unknown`: the decision label set is unchanged.
    let series = "scopegate_requests_total{account=\"unknown\",api=\"none\",decision=\"denied_credentials\",method=\"GET\",token=\"unknown\"}";
    assert_eq!(metric_value(&m, series), bad.len() as f64 + 1.0, "{m}");
}

/// A CLI-managed configuration in a fresh folder.
fn cli_setup(extra: &str) -> (TempDir, std::path::PathBuf) {
    let dir = TempDir::new();
    let cfg = dir.write(
        "scopegate.yaml",
        &gateway_yaml("127.0.0.1:9".parse().unwrap(), extra),
    );
    dir.write("tokens.yaml", &tokens_yaml());
    (dir, cfg)
}

fn status_of(cfg: &Path, sid: &str) -> String {
    let j = run(cfg, &["token", "show", sid, "--json"])
        .expect_code(0)
        .json();
    j["status"].as_str().unwrap().to_owned()
}

#[test]
fn scan_finds_planted_secrets_and_disable_is_exact() {
    let (dir, cfg) = cli_setup("");
    let (sid_a, secret_a) = create(
        &cfg,
        &[
            "--account",
            ACCOUNT,
            "--name",
            "a",
            "--scope",
            "campaigns:GET",
        ],
    );
    let (sid_b, secret_b) = create(
        &cfg,
        &[
            "--account",
            ACCOUNT,
            "--name",
            "b",
            "--scope",
            "campaigns:GET",
        ],
    );
    let (sid_c, secret_c) = create(
        &cfg,
        &[
            "--account",
            ACCOUNT,
            "--name",
            "c",
            "--scope",
            "campaigns:GET",
        ],
    );
    assert!(secret_format::is_valid(secret_a.as_bytes()));
    let stranger = secret_format::generate().unwrap();

    let tree = dir.path("tree");
    std::fs::create_dir_all(tree.join("a")).unwrap();
    std::fs::create_dir_all(tree.join("b/deep")).unwrap();
    std::fs::write(
        tree.join("a/app.env"),
        format!("# settings\nUSER={sid_a}\nPASSWORD={secret_a}\n"),
    )
    .unwrap();
    std::fs::write(
        tree.join("b/deep/debug.log"),
        format!("start\ncurl -u '{sid_b}:{secret_b}' http://x\nend\n"),
    )
    .unwrap();
    // Look-alikes: C's secret with a bad checksum, and C's real secret glued into a word.
    std::fs::write(
        tree.join("lookalike.txt"),
        format!("{}\nx{secret_c}\n{secret_c}Z\n", corrupt(&secret_c)),
    )
    .unwrap();
    // A valid secret of no token here.
    std::fs::write(tree.join("stranger.md"), format!("key: {}\n", &*stranger)).unwrap();
    // A binary file holding C's real secret is skipped, not read.
    let mut bin = vec![0u8, 1, 2];
    bin.extend_from_slice(secret_c.as_bytes());
    std::fs::write(tree.join("blob.bin"), bin).unwrap();
    // A symlink loop must not hang the walk.
    #[cfg(unix)]
    std::os::unix::fs::symlink("..", tree.join("b/deep/loop")).unwrap();

    let r = run(&cfg, &["token", "scan", tree.to_str().unwrap()]).expect_code(1);
    let out = format!("{}{}", r.stdout, r.stderr);
    for s in [&*secret_a, &*secret_b, &*secret_c, &**stranger] {
        assert!(!out.contains(s), "a secret was printed:\n{out}");
    }
    let a_line = format!(
        "{}:3: secret of token {sid_a}",
        tree.join("a/app.env").display()
    );
    let b_line = format!(
        "{}:2: secret of token {sid_b}",
        tree.join("b/deep/debug.log").display()
    );
    let s_line = format!(
        "{}:1: no matching token",
        tree.join("stranger.md").display()
    );
    assert!(r.stdout.contains(&a_line), "{out}");
    assert!(r.stdout.contains(&b_line), "{out}");
    assert!(r.stdout.contains(&s_line), "{out}");
    assert!(
        !out.contains(&sid_c),
        "look-alikes and binaries are ignored:\n{out}"
    );
    assert!(r.stderr.contains("blob.bin: binary file"), "{out}");
    assert_eq!(r.stdout.matches(": secret of token").count(), 2, "{out}");

    // Stdin, JSON.
    let child = support::cli::bin()
        .args(["token", "scan", "-", "--json", "--config"])
        .arg(&cfg)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .as_ref()
        .unwrap()
        .write_all(format!("one\ntwo {secret_b}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["findings"][0]["file"], "-");
    assert_eq!(j["findings"][0]["line"], 2);
    assert_eq!(j["findings"][0]["sid"], sid_b.as_str());

    // --disable: exactly A and B, in one write; C and the fixtures stay as they were.
    let before = std::fs::read_to_string(dir.path("tokens.yaml")).unwrap();
    let r = run(
        &cfg,
        &[
            "token",
            "scan",
            "--disable",
            "--json",
            tree.to_str().unwrap(),
        ],
    )
    .expect_code(1);
    let j = r.json();
    let mut disabled: Vec<String> = j["disabled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    disabled.sort();
    let mut want = vec![sid_a.clone(), sid_b.clone()];
    want.sort();
    assert_eq!(disabled, want);
    assert_eq!(status_of(&cfg, &sid_a), "disabled");
    assert_eq!(status_of(&cfg, &sid_b), "disabled");
    assert_eq!(status_of(&cfg, &sid_c), "active");
    assert_eq!(status_of(&cfg, READER.sid), "active");
    let after = std::fs::read_to_string(dir.path("tokens.yaml")).unwrap();
    let changed: Vec<_> = before
        .lines()
        .zip(after.lines())
        .filter(|(x, y)| x != y)
        .collect();
    assert_eq!(
        changed.len(),
        2,
        "only the two status lines changed: {changed:?}"
    );
    assert!(changed.iter().all(|(_, y)| y.trim() == "status: disabled"));

    // A clean tree exits 0.
    std::fs::create_dir_all(dir.path("clean")).unwrap();
    std::fs::write(dir.path("clean/readme"), "nothing here sgs_short\n").unwrap();
    run(
        &cfg,
        &["token", "scan", dir.path("clean").to_str().unwrap()],
    )
    .expect_code(0);
    // A missing path is an error (2), not "clean".
    run(&cfg, &["token", "scan", dir.path("nope").to_str().unwrap()]).expect_code(2);
}

fn expires_of(cfg: &Path, sid: &str) -> time::OffsetDateTime {
    let j = run(cfg, &["token", "show", sid, "--json"])
        .expect_code(0)
        .json();
    let s = j["expires_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no expires_at: {j}"));
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
}

#[test]
fn token_policy_governs_create_update_reset_and_is_reported() {
    let (dir, cfg) = cli_setup("token_policy: {max_lifetime: 90d, require_expiry: true}\n");
    let day: time::Duration = time::Duration::days(1);
    let now = time::OffsetDateTime::now_utc();

    // create: a default expiry of now + 90 days.
    let (sid, _) = create(
        &cfg,
        &[
            "--account",
            ACCOUNT,
            "--name",
            "p",
            "--scope",
            "campaigns:GET",
        ],
    );
    let exp: time::OffsetDateTime = expires_of(&cfg, &sid);
    let due: time::OffsetDateTime = now + day * 90;
    let off: time::Duration = exp - due;
    assert!(off.abs() < time::Duration::minutes(5), "{exp}");

    // An earlier --expires is kept; a later one is refused and nothing is written.
    let soon: time::OffsetDateTime = now + day * 10;
    let soon = soon.replace_nanosecond(0).unwrap();
    let soon_s = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (sid2, _) = create(
        &cfg,
        &["--account", ACCOUNT, "--name", "q", "--expires", &soon_s],
    );
    assert_eq!(expires_of(&cfg, &sid2), soon);
    let before = std::fs::read_to_string(dir.path("tokens.yaml")).unwrap();
    let late: time::OffsetDateTime = now + day * 91;
    let late = late
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = run(
        &cfg,
        &[
            "token",
            "create",
            "--account",
            ACCOUNT,
            "--name",
            "r",
            "--expires",
            &late,
        ],
    )
    .expect_code(1);
    assert!(r.stderr.contains("max_lifetime"), "{}", r.stderr);
    let r = run(&cfg, &["token", "update", &sid2, "--expires", &late]).expect_code(1);
    assert!(r.stderr.contains("max_lifetime"), "{}", r.stderr);
    let r = run(&cfg, &["token", "update", &sid2, "--no-expiry"]).expect_code(1);
    assert!(r.stderr.contains("require_expiry"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path("tokens.yaml")).unwrap(),
        before
    );

    // reset renews the expiry to a full lifetime.
    run(&cfg, &["token", "reset", &sid2, "--json"]).expect_code(0);
    let renewed: time::OffsetDateTime = expires_of(&cfg, &sid2);
    let off: time::Duration = renewed - due;
    assert!(off.abs() < time::Duration::minutes(5), "{renewed}");

    // The fixtures have no expiry: the file still loads (check exits 0) with a warning
    // per token past the policy, and audit reports them.
    let r = run(&cfg, &["check"]).expect_code(0);
    assert!(
        r.stderr.contains(&format!(
            "warning: token {} (account {ACCOUNT}) is past token_policy",
            READER.sid
        )),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(&format!("token {sid} ")), "{}", r.stderr);
    let j = run(&cfg, &["audit", "--json"]).json();
    let flagged: Vec<&str> = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "policy_violation")
        .map(|f| f["sid"].as_str().unwrap())
        .collect();
    assert!(flagged.contains(&READER.sid), "{flagged:?}");
    assert!(!flagged.contains(&sid.as_str()));
    assert!(!flagged.contains(&sid2.as_str()));
}

#[test]
fn require_expiry_without_max_lifetime_needs_an_explicit_expiry() {
    let (_dir, cfg) = cli_setup("token_policy: {require_expiry: true}\n");
    let r = run(
        &cfg,
        &["token", "create", "--account", ACCOUNT, "--name", "x"],
    )
    .expect_code(1);
    assert!(r.stderr.contains("require_expiry"), "{}", r.stderr);
}

#[test]
fn hash_refuses_a_corrupt_sgs_secret_the_gateway_would_refuse() {
    use std::io::Write;
    let hash_of = |input: &str| {
        let mut child = support::cli::bin()
            .arg("hash")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let good = secret_format::generate().unwrap();
    let out = hash_of(&good);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), hash(&good));
    let out = hash_of(&corrupt(&good));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid scopegate secret"));
    assert!(out.stdout.is_empty());
    assert!(hash_of("an-old-style-secret").status.success());
}
