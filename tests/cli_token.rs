//! `scopegate token ...` end to end: the built binary edits the tokens file, the real
//! gateway (in-process, in front of a recording upstream) applies it through
//! `reload::reload_from`, and requests show the effect. Also: refusals leave the file
//! byte-for-byte unchanged, secrets never leak, concurrent runs never lose an update,
//! comments and permissions survive.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use http::StatusCode;
use serde_json::Value as Json;

use support::cli::{bin, create, run, scopegate, Run};
use support::*;

/// `scopegate token <sub> --config <config> <rest...>`.
fn token(config: &Path, sub: &str, rest: &[&str]) -> Run {
    let config = config.to_str().expect("a UTF-8 test path");
    let mut all = vec!["token", sub, "--config", config];
    all.extend_from_slice(rest);
    scopegate(&all)
}

fn check(config: &Path) -> Run {
    run(config, &["check"])
}

/// `token reset --json`: the new secret.
fn reset(config: &Path, sid: &str, extra: &[&str]) -> String {
    let mut all = vec![sid];
    all.extend_from_slice(extra);
    all.push("--json");
    let j = token(config, "reset", &all).expect_ok().json();
    assert_eq!(j["sid"], sid);
    j["secret"].as_str().unwrap().to_owned()
}

async fn reload(h: &Harness) {
    scopegate::gateway::reload::reload_from(&h.gateway.shared, &h.config_path)
        .await
        .unwrap_or_else(|e| panic!("reload failed: {e}"));
}

async fn call(h: &Harness, sid: &str, secret: &str) -> StatusCode {
    send(
        "GET",
        &h.url(CAMPAIGNS),
        &[("authorization", &basic_raw(sid, secret))],
        "",
    )
    .await
    .status
}

fn tokens_path(h: &Harness) -> PathBuf {
    h.dir.path("tokens.yaml")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_lifecycle_against_the_running_gateway() {
    let h = Harness::start().await;
    let cfg = h.config_path.clone();

    // create -> 200, and the upstream saw the request.
    let (sid, s1) = create(
        &cfg,
        &[
            "--account",
            ACCOUNT,
            "--name",
            "cli-sync",
            "--scope",
            "campaigns:GET",
        ],
    );
    reload(&h).await;
    let seen = h.upstream.count();
    assert_eq!(call(&h, &sid, &s1).await, StatusCode::OK);
    assert_eq!(h.upstream.count(), seen + 1);
    assert_eq!(h.upstream.last().unwrap().target, CAMPAIGNS);

    // disable -> 403, enable -> 200.
    token(&cfg, "disable", &[&sid]).expect_ok();
    reload(&h).await;
    assert_eq!(call(&h, &sid, &s1).await, StatusCode::FORBIDDEN);
    token(&cfg, "enable", &[&sid]).expect_ok();
    reload(&h).await;
    assert_eq!(call(&h, &sid, &s1).await, StatusCode::OK);

    // reset -> the old secret 403, the new one 200.
    let s2 = reset(&cfg, &sid, &[]);
    assert_ne!(s1, s2);
    reload(&h).await;
    assert_eq!(call(&h, &sid, &s1).await, StatusCode::FORBIDDEN);
    assert_eq!(call(&h, &sid, &s2).await, StatusCode::OK);

    // reset --grace 1h -> both work.
    let s3 = reset(&cfg, &sid, &["--grace", "1h"]);
    let text = read(&tokens_path(&h));
    assert!(text.contains("previous_auth_token_hash:"));
    assert!(
        text.contains(&hash(&s2)),
        "the old hash is kept for the grace"
    );
    reload(&h).await;
    assert_eq!(call(&h, &sid, &s2).await, StatusCode::OK);
    assert_eq!(call(&h, &sid, &s3).await, StatusCode::OK);

    // Past the deadline (written into the file, no sleeping) -> only the new one.
    let past: String = read(&tokens_path(&h))
        .lines()
        .map(|l| match l.find("previous_valid_until:") {
            Some(i) => format!("{}previous_valid_until: 2020-01-01T00:00:00Z\n", &l[..i]),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(tokens_path(&h), past).unwrap();
    reload(&h).await;
    assert_eq!(call(&h, &sid, &s2).await, StatusCode::FORBIDDEN);
    assert_eq!(call(&h, &sid, &s3).await, StatusCode::OK);

    // A reset without --grace drops the previous-hash fields.
    let s4 = reset(&cfg, &sid, &[]);
    let text = read(&tokens_path(&h));
    assert!(!text.contains("previous_auth_token_hash"));
    assert!(!text.contains("previous_valid_until"));
    reload(&h).await;
    assert_eq!(call(&h, &sid, &s3).await, StatusCode::FORBIDDEN);
    assert_eq!(call(&h, &sid, &s4).await, StatusCode::OK);

    // delete -> 403, tombstoned.
    token(&cfg, "delete", &[&sid, "--yes"]).expect_ok();
    let text = read(&tokens_path(&h));
    assert!(!text.contains(&format!("sid: {sid}")));
    let tokens: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert!(tokens["deleted_sids"]
        .as_sequence()
        .unwrap()
        .contains(&serde_yaml::Value::from(sid.as_str())));
    reload(&h).await;
    assert_eq!(call(&h, &sid, &s4).await, StatusCode::FORBIDDEN);

    // Re-adding the SID by hand is refused by validation (check and reload).
    let readded = text.replacen(
        "    tokens:\n",
        &format!(
            "    tokens:\n      - sid: {sid}\n        name: readded\n        auth_token_hash: \"{}\"\n        scopes: [{{api: campaigns, methods: [GET]}}]\n",
            hash(&s4)
        ),
        1,
    );
    assert_ne!(readded, text);
    std::fs::write(tokens_path(&h), &readded).unwrap();
    let c = check(&cfg);
    assert!(!c.ok(), "check must refuse a tombstoned SID");
    assert!(
        c.stderr.contains(&sid) && c.stderr.contains("was deleted"),
        "{}",
        c.stderr
    );
    assert!(
        scopegate::gateway::reload::reload_from(&h.gateway.shared, &cfg)
            .await
            .is_err()
    );
    assert_eq!(call(&h, &sid, &s4).await, StatusCode::FORBIDDEN);
    // Nor can the CLI touch it.
    std::fs::write(tokens_path(&h), &text).unwrap();
    token(&cfg, "reset", &[&sid]).expect_refused("was deleted");

    h.gateway.shutdown().await;
}

/// Twenty active scoped tokens in one account, plus one disabled and one legacy.
fn full_account() -> String {
    let mut s = String::from("accounts:\n  - id: IRacme\n    tokens:\n");
    for i in 0..20 {
        s.push_str(&format!(
            "      - sid: SGfull{i}\n        name: t{i}\n        auth_token_hash: \"{}\"\n        scopes: [{{api: campaigns, methods: [GET]}}]\n",
            hash(&format!("full-{i}"))
        ));
    }
    s.push_str(&format!(
        "      - sid: SGoff\n        name: off\n        status: disabled\n        auth_token_hash: \"{}\"\n        scopes: [{{api: campaigns, methods: [GET]}}]\n",
        hash("off")
    ));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_21st_active_scoped_token_is_refused_and_nothing_is_written() {
    let h = Harness::start_with("", &full_account()).await;
    let cfg = h.config_path.clone();
    let path = tokens_path(&h);
    let before = std::fs::read(&path).unwrap();

    token(
        &cfg,
        "create",
        &[
            "--account",
            ACCOUNT,
            "--name",
            "one-too-many",
            "--scope",
            "campaigns:GET",
        ],
    )
    .expect_refused("already has 20 active scoped tokens");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "file bytes unchanged"
    );

    // Enabling the disabled one would be the 21st too.
    token(&cfg, "enable", &["SGoff"]).expect_refused("limit is 20");
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // A legacy token does not count; another account is unaffected.
    create(&cfg, &["--account", ACCOUNT, "--name", "old", "--legacy"]);
    create(
        &cfg,
        &[
            "--account",
            "IRbeta",
            "--name",
            "b",
            "--scope",
            "campaigns:GET",
        ],
    );
    // Make room, then the 20th slot is usable again.
    token(&cfg, "disable", &["SGfull0"]).expect_ok();
    let (sid, secret) = create(
        &cfg,
        &[
            "--account",
            ACCOUNT,
            "--name",
            "fits",
            "--scope",
            "campaigns:GET",
        ],
    );
    reload(&h).await;
    assert_eq!(call(&h, &sid, &secret).await, StatusCode::OK);
    assert_eq!(call(&h, "SGfull0", "full-0").await, StatusCode::FORBIDDEN);
    assert_eq!(call(&h, "SGfull1", "full-1").await, StatusCode::OK);
    assert!(check(&cfg).ok());
    h.gateway.shutdown().await;
}

#[test]
fn rule_violations_are_refused_with_one_line_and_nothing_is_written() {
    let dir = TempDir::new();
    let cfg = dir.write(
        "scopegate.yaml",
        &gateway_yaml("127.0.0.1:9".parse().unwrap(), ""),
    );
    let path = dir.write("tokens.yaml", &tokens_yaml());
    let before = std::fs::read(&path).unwrap();
    let base = ["--account", ACCOUNT, "--name", "n"];
    let cases: &[(&[&str], &str)] = &[
        (&["--scope", "nope:GET"], "unknown API `nope`"),
        (&["--contact", "not-an-email"], "is not an email address"),
        (&["--developer", "x@y"], "is not an email address"),
        (&["--api-version", "v99"], "unknown API version `v99`"),
    ];
    for (extra, needle) in cases {
        let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
        let r = token(&cfg, "create", &args).expect_refused(needle);
        assert!(
            r.stdout.is_empty(),
            "no secret printed for a refused create"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before, "{extra:?}");
    }
    token(&cfg, "update", &[READER.sid, "--scope", "nope:GET"]).expect_refused("unknown API");
    token(&cfg, "update", &[READER.sid, "--add-developer", "bad"]).expect_refused("not an email");
    token(&cfg, "update", &[READER.sid, "--api-version", "v1"])
        .expect_refused("unknown API version");
    for sub in ["update", "reset", "delete", "show", "disable", "enable"] {
        let args: &[&str] = match sub {
            "update" => &["SGnope", "--name", "x"],
            "delete" => &["SGnope", "--yes"],
            _ => &["SGnope"],
        };
        token(&cfg, sub, args).expect_refused("no token with SID SGnope");
    }
    token(&cfg, "update", &[READER.sid]).expect_refused("nothing to change");
    // delete asks on a terminal; without one (stdin is /dev/null here) it needs --yes.
    token(&cfg, "delete", &[READER.sid]).expect_refused("pass --yes");
    token(&cfg, "update", &["SGdeleted", "--name", "x"]).expect_refused("was deleted");
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // A duplicate name within an account: a warning, but allowed.
    let r = token(
        &cfg,
        "create",
        &[
            "--account",
            ACCOUNT,
            "--name",
            "reader",
            "--scope",
            "public:GET",
        ],
    )
    .expect_ok();
    assert!(r.stderr.contains("warning:") && r.stderr.contains("`reader`"));
    assert!(check(&cfg).ok());
}

#[test]
fn the_secret_never_reaches_the_file_stderr_or_list_and_show() {
    let dir = TempDir::new();
    let cfg = dir.write(
        "scopegate.yaml",
        &gateway_yaml("127.0.0.1:9".parse().unwrap(), ""),
    );
    dir.write("tokens.yaml", &tokens_yaml());
    let mut secrets = Vec::new();
    let mut stderrs = String::new();
    let mut listings = String::new();

    // Human output: the secret is on stdout, with the SID, ready to paste.
    let r = token(
        &cfg,
        "create",
        &[
            "--account",
            ACCOUNT,
            "--name",
            "leaky?",
            "--scope",
            "campaigns:GET",
            "--contact",
            "ops@acme.example",
        ],
    )
    .expect_ok();
    let secret_line = r
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Secret:"))
        .expect("a Secret: line")
        .trim()
        .to_owned();
    let sid = r
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("SID:"))
        .expect("a SID: line")
        .trim()
        .to_owned();
    assert_eq!(secret_line.len(), 50, "sgs_ + 40 base62 + 6 checksum");
    assert!(scopegate::domain::secret_format::is_valid(
        secret_line.as_bytes()
    ));
    assert!(r.stdout.contains(&format!("{sid}:{secret_line}")));
    assert!(r.stdout.contains(&format!("curl -u '{sid}:{secret_line}'")));
    secrets.push(secret_line);
    stderrs.push_str(&r.stderr);

    let r = token(&cfg, "reset", &[&sid, "--grace", "1h"]).expect_ok();
    secrets.push(
        r.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("Secret:"))
            .unwrap()
            .trim()
            .to_owned(),
    );
    stderrs.push_str(&r.stderr);
    secrets.push(reset(&cfg, &sid, &["--grace", "2h"]));
    let (sid2, s) = create(&cfg, &["--account", "IRnew", "--name", "n", "--legacy"]);
    secrets.push(s);

    for (sub, args) in [
        ("list", vec![]),
        ("list", vec!["--json"]),
        ("list", vec!["--account", ACCOUNT]),
        ("show", vec![sid.as_str()]),
        ("show", vec![sid.as_str(), "--json"]),
        ("show", vec![sid2.as_str()]),
    ] {
        let r = token(&cfg, sub, &args).expect_ok();
        listings.push_str(&r.stdout);
        stderrs.push_str(&r.stderr);
    }
    // show prints `secret: set (sha256)`, never the hash.
    assert!(listings.contains("set (sha256)"));
    let file = read(&dir.path("tokens.yaml"));
    for secret in &secrets {
        assert!(!file.contains(secret.as_str()), "secret in the tokens file");
        assert!(!stderrs.contains(secret.as_str()), "secret on stderr");
        assert!(!listings.contains(secret.as_str()), "secret in list/show");
        let digest = hash(secret);
        let hex = digest.trim_start_matches("sha256:");
        assert!(!listings.contains(hex), "hash in list/show");
    }
    assert!(file.contains(&hash(&secrets[2])), "only the hash is stored");
    // No other file in the folder (lock, temp files) holds a secret either.
    for entry in std::fs::read_dir(&dir.0).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()));
        }
    }
}

#[test]
fn concurrent_creates_all_land() {
    let dir = TempDir::new();
    let cfg = dir.write(
        "scopegate.yaml",
        &gateway_yaml("127.0.0.1:9".parse().unwrap(), ""),
    );
    dir.write("tokens.yaml", &tokens_yaml());
    let children: Vec<_> = (0..8)
        .map(|i| {
            bin()
                .args(["token", "create", "--config"])
                .arg(&cfg)
                .args(["--account", if i % 2 == 0 { ACCOUNT } else { "IRpar" }])
                .args(["--name", &format!("parallel-{i}")])
                .args(["--scope", "campaigns:GET", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let sids: Vec<String> = children
        .into_iter()
        .map(|c| {
            let r = Run::of(c.wait_with_output().unwrap()).expect_ok();
            r.json()["sid"].as_str().unwrap().to_owned()
        })
        .collect();
    let text = read(&dir.path("tokens.yaml"));
    for sid in &sids {
        assert!(text.contains(sid.as_str()), "lost update: {sid} missing");
    }
    let config = scopegate::config::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config
            .tokens
            .iter()
            .filter(|t| t.name.starts_with("parallel-"))
            .count(),
        8
    );
    // No temp file is left behind.
    for entry in std::fs::read_dir(&dir.0).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "leftover {name}");
    }
}

const HAND_EDITED: &str = "\
# Tokens for the staging gateway. Ask #platform before adding accounts.

accounts:   # one entry per customer
  # Acme: the pilot customer
  - id: IRacme
    name: Acme   # display name
    tokens:
      # reporting job, owned by data-eng
      - sid: SGreader
        name: reader   # keep in sync with the job name
        description: reads campaigns
        # scopes reviewed 2026-07
        scopes:
          - {api: campaigns, methods: [GET]}   # read-only
        auth_token_hash: \"HASH\"

      # the writer, see runbook
      - sid: SGwriter
        name: writer
        auth_token_hash: \"HASH\"
        scopes: [{api: campaigns, methods: [GET, POST]}]
# Deleted tokens stay here forever.
deleted_sids: [SGold]   # tombstones
# end of file
";

#[test]
fn comments_in_a_hand_edited_file_survive_create_and_update() {
    let dir = TempDir::new();
    let cfg = dir.write(
        "scopegate.yaml",
        &gateway_yaml("127.0.0.1:9".parse().unwrap(), ""),
    );
    let original = HAND_EDITED.replace("HASH", &hash("x"));
    let path = dir.write("tokens.yaml", &original);
    let comments: Vec<&str> = original
        .lines()
        .filter_map(|l| l.find('#').map(|i| &l[i..]))
        .collect();
    assert!(comments.len() >= 10);

    let (sid, _) = create(
        &cfg,
        &[
            "--account",
            ACCOUNT,
            "--name",
            "new-one",
            "--scope",
            "reports:GET",
        ],
    );
    let after_create = read(&path);
    // Every original line is still there, in order: the create only inserted lines.
    let mut rest = after_create.lines();
    for line in original.lines() {
        assert!(
            rest.any(|l| l == line),
            "line lost or reordered by create: {line:?}\n{after_create}"
        );
    }
    assert!(after_create.contains(&format!("sid: {sid}")));

    token(
        &cfg,
        "update",
        &[
            "SGreader",
            "--name",
            "reader-v2",
            "--description",
            "reads campaigns nightly",
            "--contact",
            "data@acme.example",
        ],
    )
    .expect_ok();
    token(
        &cfg,
        "update",
        &[
            "SGwriter",
            "--scope",
            "reports:GET",
            "--rate",
            "5",
            "--burst",
            "10",
        ],
    )
    .expect_ok();
    token(&cfg, "disable", &["SGwriter"]).expect_ok();
    let after = read(&path);
    for c in &comments {
        assert!(after.contains(c), "comment lost: {c:?}\n{after}");
    }
    assert!(after.contains("name: reader-v2   # keep in sync with the job name"));
    assert!(check(&cfg).ok(), "{}", check(&cfg).stderr);
}

#[cfg(unix)]
#[test]
fn writes_keep_permissions_and_a_new_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let cfg = dir.write(
        "scopegate.yaml",
        &gateway_yaml("127.0.0.1:9".parse().unwrap(), ""),
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;

    // No tokens file yet: list says so, create makes it 0600.
    let path = dir.path("tokens.yaml");
    let r = token(&cfg, "list", &[]).expect_ok();
    assert!(r.stdout.contains("no tokens"));
    create(
        &cfg,
        &[
            "--account",
            ACCOUNT,
            "--name",
            "first",
            "--scope",
            "campaigns:GET",
        ],
    );
    assert_eq!(mode(&path), 0o600);
    assert!(dir.path("tokens.yaml.lock").exists());

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    create(
        &cfg,
        &[
            "--account",
            ACCOUNT,
            "--name",
            "second",
            "--scope",
            "campaigns:GET",
        ],
    );
    assert_eq!(mode(&path), 0o640);
    assert!(check(&cfg).ok());
}

#[test]
fn update_edits_fields_and_scopes_list_and_show_report_them() {
    let dir = TempDir::new();
    let cfg = dir.write(
        "scopegate.yaml",
        &gateway_yaml("127.0.0.1:9".parse().unwrap(), ""),
    );
    dir.write("tokens.yaml", &tokens_yaml());
    let (sid, _) = create(
        &cfg,
        &[
            "--account",
            ACCOUNT,
            "--name",
            "edit-me",
            "--description",
            "first",
            "--developer",
            "a@acme.example",
            "--api-version",
            "v15",
            "--scope",
            "campaigns:get",
            "--env",
            "test",
            "--expires",
            "2099-01-01T00:00:00Z",
        ],
    );
    let show = |sid: &str| token(&cfg, "show", &[sid, "--json"]).expect_ok().json();
    let j = show(&sid);
    assert_eq!(
        j["scopes"],
        serde_json::json!([{"api": "campaigns", "methods": ["GET"]}])
    );
    assert_eq!(j["environment"], "test");
    assert_eq!(j["expires_at"], "2099-01-01T00:00:00Z");
    assert_eq!(j["secret_set"], true);
    assert_eq!(j["last_used"], Json::Null);

    token(
        &cfg,
        "update",
        &[
            &sid,
            "--scope",
            "campaigns:POST",
            "--scope",
            "reports:GET",
            "--add-developer",
            "b@acme.example",
            "--remove-developer",
            "a@acme.example",
            "--shadow-scope",
            "campaigns:GET",
            "--rate",
            "5",
            "--burst",
            "7",
        ],
    )
    .expect_ok();
    let j = show(&sid);
    assert_eq!(
        j["scopes"],
        serde_json::json!([
            {"api": "campaigns", "methods": ["GET", "POST"]},
            {"api": "reports", "methods": ["GET"]}
        ])
    );
    assert_eq!(j["developer_emails"], serde_json::json!(["b@acme.example"]));
    assert_eq!(
        j["shadow_scopes"],
        serde_json::json!([{"api": "campaigns", "methods": ["GET"]}])
    );
    assert_eq!(j["rate_limit"]["burst"], 7);

    token(&cfg, "update", &[&sid, "--remove-scope", "reports"]).expect_ok();
    assert_eq!(show(&sid)["scopes"].as_array().unwrap().len(), 1);
    token(&cfg, "update", &[&sid, "--promote-shadow", "--clear-rate"]).expect_ok();
    let j = show(&sid);
    assert_eq!(
        j["scopes"],
        serde_json::json!([{"api": "campaigns", "methods": ["GET"]}])
    );
    assert_eq!(j["shadow_scopes"], Json::Null);
    assert_eq!(j["rate_limit"], Json::Null);
    let r = token(&cfg, "update", &[&sid, "--clear-scopes"]).expect_ok();
    assert!(r.stderr.contains("no scopes"));
    assert_eq!(show(&sid)["scopes"], serde_json::json!([]));
    token(&cfg, "update", &[&sid, "--promote-shadow"]).expect_refused("no shadow scopes");

    // The table: a header, one row per token, `-` for unknown last use.
    let table = token(&cfg, "list", &["--account", ACCOUNT])
        .expect_ok()
        .stdout;
    let header = table.lines().next().unwrap();
    for col in [
        "SID",
        "ACCOUNT",
        "NAME",
        "STATUS",
        "KIND",
        "SCOPES",
        "CREATED",
        "ROTATED",
        "LAST USED",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let row = table.lines().find(|l| l.starts_with(&sid)).unwrap();
    assert!(row.contains("edit-me") && row.contains("active") && row.trim_end().ends_with('-'));
    assert!(table
        .lines()
        .any(|l| l.starts_with(READER.sid) && l.contains("campaigns:GET public:GET")));
    assert!(table
        .lines()
        .any(|l| l.starts_with(EXPIRED.sid) && l.contains("expired")));
    assert!(!table.contains(OTHER.sid), "--account filters");
    let all = token(&cfg, "list", &["--json"]).expect_ok().json();
    assert_eq!(all["tokens"].as_array().unwrap().len(), 7);

    let card = token(&cfg, "show", &[READER.sid]).expect_ok().stdout;
    assert!(card.contains("secret:          set (sha256)"), "{card}");
    assert!(card.contains("campaigns: GET"));
    assert!(check(&cfg).ok());
}

/// The writer's scopes with limits of their own (a flow and a block entry), and a shadow set.
const WRITER_SCOPES: &str =
    "          - {api: campaigns, methods: [GET, POST, DELETE]}\n          - {api: reports, methods: [GET]}\n";
const WRITER_SCOPES_LIMITED: &str = "          - {api: campaigns, methods: [GET, POST, DELETE], rate_limit: {requests_per_second: 2, burst: 5}}
          - api: reports
            methods: [GET]
            quota: {requests: 3, per: month}
        shadow_scopes: [{api: campaigns, methods: [GET]}]
";

/// The writer's `scopes:` line as the CLI rewrote it, after checking that the gateway
/// still loads the file.
#[track_caller]
fn writer_scopes(cfg: &Path, path: &Path) -> String {
    let c = check(cfg);
    assert!(c.ok(), "{}", c.stderr);
    writer_scopes_line(&read(path))
}

/// Every `token update` that rewrites the scope list keeps the `rate_limit` and `quota`
/// of each scope whose API stays in it; a scope that leaves takes its limits with it.
#[test]
fn scope_rewrites_keep_each_remaining_scopes_own_limits() {
    let dir = TempDir::new();
    // Quotas need the shared Redis backend to validate; nothing here connects to it.
    let redis = "rate_limit:\n  requests_per_second: 100\n  burst: 200\n  backend: redis\n  \
                 redis_url: redis://127.0.0.1:9/\n";
    let cfg = dir.write(
        "scopegate.yaml",
        &gateway_yaml("127.0.0.1:9".parse().unwrap(), redis),
    );
    let tokens = tokens_yaml().replace(WRITER_SCOPES, WRITER_SCOPES_LIMITED);
    assert_ne!(tokens, tokens_yaml(), "fixture changed");
    let path = dir.write("tokens.yaml", &tokens);
    assert!(check(&cfg).ok(), "{}", check(&cfg).stderr);
    let campaigns = "rate_limit: {requests_per_second: 2, burst: 5}";
    let reports = "quota: {requests: 3, per: month}";
    let update = |args: &[&str]| {
        let mut all = vec![WRITER.sid];
        all.extend_from_slice(args);
        token(&cfg, "update", &all).expect_ok();
        writer_scopes(&cfg, &path)
    };

    assert_eq!(
        update(&["--scope", "campaigns:PATCH", "--scope", "public:GET"]),
        format!(
            "scopes: [{{api: campaigns, methods: [GET, POST, PATCH, DELETE], {campaigns}}}, \
             {{api: reports, methods: [GET], {reports}}}, {{api: public, methods: [GET]}}]"
        )
    );
    assert_eq!(
        update(&["--remove-scope", "public", "--remove-scope", "campaigns"]),
        format!("scopes: [{{api: reports, methods: [GET], {reports}}}]")
    );
    // The file's limits for campaigns went with its scope: granting it again starts bare.
    assert_eq!(
        update(&["--scope", "campaigns:GET"]),
        format!("scopes: [{{api: reports, methods: [GET], {reports}}}, {{api: campaigns, methods: [GET]}}]")
    );
    // Replacing the set keeps the limits of an API that stays in it.
    assert_eq!(
        update(&["--clear-scopes", "--scope", "reports:GET,POST"]),
        format!("scopes: [{{api: reports, methods: [GET, POST], {reports}}}]")
    );
    let shown = token(&cfg, "show", &[WRITER.sid, "--json"])
        .expect_ok()
        .json();
    assert_eq!(
        shown["scope_limits"],
        serde_json::json!([{"api": "reports", "rate_limit": null, "quota": {"requests": 3, "per": "month"}}])
    );
    // Promoting shadow scopes keeps the limits of the APIs granted before and after.
    token(
        &cfg,
        "update",
        &[WRITER.sid, "--shadow-scope", "reports:GET"],
    )
    .expect_ok();
    assert_eq!(
        update(&["--promote-shadow"]),
        format!(
            "scopes: [{{api: campaigns, methods: [GET]}}, {{api: reports, methods: [GET], {reports}}}]"
        )
    );
    assert_eq!(update(&["--clear-scopes"]), "scopes: []");
    assert!(!read(&path).contains(reports), "{}", read(&path));
}

/// `scopegate token list | head`: once the reader has gone, the command ends quietly with
/// 141 (what a shell reports for SIGPIPE), never a panic message.
#[test]
fn a_reader_that_goes_away_ends_the_listing_quietly() {
    use std::io::Read;
    let dir = TempDir::new();
    let mut tokens = String::from("accounts:\n  - id: IRacme\n    name: Acme\n    tokens:\n");
    // Far more than a pipe's buffer holds, so the listing is still writing when the
    // reader leaves.
    for i in 0..3000 {
        tokens.push_str(&format!(
            "      - sid: SG{i:032x}\n        name: token-{i}\n        description: {}\n        \
             auth_token_hash: \"sha256:{}\"\n        status: disabled\n",
            "d".repeat(150),
            "a".repeat(64)
        ));
    }
    dir.write("tokens.yaml", &tokens);
    let config = dir.write(
        "scopegate.yaml",
        &gateway_yaml("127.0.0.1:1".parse().unwrap(), ""),
    );
    let mut child = bin()
        .args(["token", "list", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut first = [0u8; 10];
    stdout.read_exact(&mut first).expect("the listing starts");
    drop(stdout);
    let out = child.wait_with_output().expect("the binary ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
