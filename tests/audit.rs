//! Least privilege end to end: scripted traffic through the real gateway fills the usage
//! record, the record is saved, and `scopegate audit --json` (the built binary) reports
//! exactly the findings the fixture set up. Also: the record survives a restart, a corrupt
//! record does not stop the gateway, and shadow scopes count without refusing.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use support::*;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use scopegate::gateway::usage::{self, ScopeRecord, TokenRecord, UsageState};

const DAY: i64 = 86_400;

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn days_ago(d: i64) -> String {
    OffsetDateTime::from_unix_timestamp(now() - d * DAY)
        .unwrap()
        .format(&Rfc3339)
        .unwrap()
}

const WITH_STATE: &str = "state_dir: state\nmax_active_tokens_per_account: 8\n";

const STALE_T: Fixture = Fixture {
    sid: "SGstale",
    secret: "stale-secret",
};
const NEVER_T: Fixture = Fixture {
    sid: "SGnever",
    secret: "never-secret",
};
const OLD_T: Fixture = Fixture {
    sid: "SGold",
    secret: "old-secret",
};
const NEW_T: Fixture = Fixture {
    sid: "SGnew",
    secret: "new-secret",
};
const NODESC_T: Fixture = Fixture {
    sid: "SGnodesc",
    secret: "nodesc-secret",
};

/// The audit fixture. Every token is fully described and recently rotated unless the
/// point of the token is that it is not.
fn audit_tokens() -> String {
    let full = |t: &Fixture, created: i64, rotated: i64, extra: &str| {
        format!(
            "      - sid: {}\n        name: {}\n        description: test token\n        primary_contact: ops@acme.example\n        auth_token_hash: \"{}\"\n        created_at: {}\n        rotated_at: {}\n{extra}",
            t.sid,
            t.sid.trim_start_matches("SG"),
            hash(t.secret),
            days_ago(created),
            days_ago(rotated),
        )
    };
    let mut s = String::from("accounts:\n  - id: IRacme\n    name: Acme\n    tokens:\n");
    s += &full(
        &READER,
        200,
        10,
        "        scopes:\n          - {api: campaigns, methods: [GET]}\n          - {api: public, methods: [GET]}\n          - {api: reports, methods: [GET]}\n",
    );
    s += &full(
        &WRITER,
        200,
        10,
        // Its scope's own limits must survive the narrowing the audit proposes.
        "        scopes: [{api: campaigns, methods: [GET, POST, DELETE], rate_limit: {requests_per_second: 50, burst: 20}}]\n",
    );
    s += &full(
        &STALE_T,
        200,
        10,
        "        scopes: [{api: campaigns, methods: [GET]}]\n",
    );
    s += &full(
        &NEVER_T,
        200,
        10,
        "        scopes: [{api: campaigns, methods: [GET]}]\n",
    );
    s += &full(
        &OLD_T,
        400,
        120,
        "        scopes: [{api: campaigns, methods: [GET]}]\n",
    );
    s += &full(&LEGACY, 200, 10, "        kind: legacy\n");
    s += &full(
        &NEW_T,
        2,
        2,
        "        scopes: [{api: campaigns, methods: [GET, POST]}]\n",
    );
    s += &format!(
        "      - sid: {}\n        name: nodesc\n        auth_token_hash: \"{}\"\n        created_at: {}\n        rotated_at: {}\n        scopes: [{{api: campaigns, methods: [GET]}}]\n",
        NODESC_T.sid,
        hash(NODESC_T.secret),
        days_ago(200),
        days_ago(10)
    );
    s += &format!(
        "      - sid: SGoff\n        name: off\n        description: switched off\n        primary_contact: ops@acme.example\n        status: disabled\n        auth_token_hash: \"{}\"\n        scopes: [{{api: campaigns, methods: [GET]}}]\n",
        hash("off-secret")
    );
    s += "  - id: IRother\n    name: Other\n    tokens:\n";
    s += &full(
        &OTHER,
        200,
        10,
        "        scopes: [{api: campaigns, methods: [GET]}]\n",
    );
    s
}

/// A usage record as a gateway that has been running for 100 days would have left it:
/// SGstale last used 45 days ago, SGwriter's DELETE last used 60 days ago.
fn seeded_state() -> UsageState {
    let since = now() - 100 * DAY;
    let mut tokens = BTreeMap::new();
    for sid in [
        READER.sid,
        WRITER.sid,
        STALE_T.sid,
        NEVER_T.sid,
        OLD_T.sid,
        LEGACY.sid,
        NEW_T.sid,
        NODESC_T.sid,
        OTHER.sid,
    ] {
        tokens.insert(
            sid.to_owned(),
            TokenRecord {
                since,
                scopes: vec![],
            },
        );
    }
    let scope = |api: &str, method: &str, count, days: i64| ScopeRecord {
        api: api.into(),
        method: method.into(),
        count,
        last_used: now() - days * DAY,
    };
    tokens.get_mut(STALE_T.sid).unwrap().scopes = vec![scope("campaigns", "GET", 3, 45)];
    tokens.get_mut(WRITER.sid).unwrap().scopes = vec![scope("campaigns", "DELETE", 2, 60)];
    UsageState {
        version: usage::STATE_VERSION,
        saved_at: now() - DAY,
        tokens,
    }
}

async fn call(h: &Harness, t: &Fixture, method: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    let auth = basic_raw(t.sid, t.secret);
    let mut all = headers.to_vec();
    all.push(("authorization", &auth));
    send(method, &h.url(path), &all, "").await.status.as_u16()
}

/// The scripted traffic of the audit fixture.
async fn traffic(h: &Harness) {
    assert_eq!(call(h, &READER, "GET", CAMPAIGNS, &[]).await, 200);
    assert_eq!(
        call(h, &READER, "GET", &format!("{CAMPAIGNS}/1"), &[]).await,
        200
    );
    // HEAD is a use of the GET grant.
    assert_eq!(call(h, &READER, "HEAD", "/public/x", &[]).await, 200);
    // Refused requests are not use.
    assert_eq!(call(h, &READER, "DELETE", CAMPAIGNS, &[]).await, 403);
    assert_eq!(call(h, &WRITER, "POST", CAMPAIGNS, &[]).await, 200);
    assert_eq!(call(h, &WRITER, "GET", CAMPAIGNS, &[]).await, 200);
    assert_eq!(call(h, &OLD_T, "GET", CAMPAIGNS, &[]).await, 200);
    assert_eq!(call(h, &NODESC_T, "GET", CAMPAIGNS, &[]).await, 200);
    assert_eq!(call(h, &LEGACY, "GET", CAMPAIGNS, &[]).await, 200);
    assert_eq!(
        call(h, &LEGACY, "DELETE", "/Mediapartners/IRacme/Reports/1", &[]).await,
        200
    );
    assert_eq!(call(h, &LEGACY, "GET", "/anything/at/all", &[]).await, 200);
    assert_eq!(
        call(h, &OTHER, "GET", "/Mediapartners/IRother/Campaigns", &[]).await,
        200
    );
}

fn finding<'a>(report: &'a Value, kind: &str, sid: Option<&str>) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == kind && f["sid"].as_str() == sid)
        .unwrap_or_else(|| panic!("no {kind} finding for {sid:?}"))
}

#[tokio::test]
async fn audit_reports_exactly_what_the_traffic_left_unused() {
    let h = Harness::start_with(WITH_STATE, &audit_tokens()).await;
    let state_file = h.dir.path("state").join(usage::STATE_FILE);
    usage::write_state(&state_file, &seeded_state()).unwrap();
    // Start-up loads the record; loading again is a no-op, so this also works before
    // start-up loads it.
    usage::load(&h.gateway.shared);
    traffic(&h).await;
    let saved = usage::save_now(&h.gateway.shared).unwrap();
    assert_eq!(saved.as_deref(), Some(state_file.as_path()));

    let record = usage::read_state(&state_file).unwrap();
    let reader = &record.tokens[READER.sid];
    assert!(
        reader.since <= now() - 99 * DAY,
        "the record's start is kept"
    );
    let got: Vec<(&str, &str, u64)> = reader
        .scopes
        .iter()
        .map(|s| (s.api.as_str(), s.method.as_str(), s.count))
        .collect();
    assert_eq!(got, vec![("campaigns", "GET", 2), ("public", "HEAD", 1)]);
    let legacy: Vec<(&str, &str)> = record.tokens[LEGACY.sid]
        .scopes
        .iter()
        .map(|s| (s.api.as_str(), s.method.as_str()))
        .collect();
    assert_eq!(
        legacy,
        vec![("campaigns", "GET"), ("none", "GET"), ("reports", "DELETE")]
    );
    assert_eq!(record.tokens[WRITER.sid].scopes.len(), 3, "old DELETE kept");

    let (code, stdout, stderr) = cli::audit(&h.config_path, &["--json", "--fail-on", "critical"]);
    assert_eq!(
        code, 1,
        "a critical finding fails --fail-on critical\n{stderr}"
    );
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    let found: BTreeSet<(String, String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["sid"].as_str().unwrap_or("-").to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String)> = [
        ("account_near_limit", "-", "warning"),
        ("unused_scopes", READER.sid, "warning"),
        ("unused_scopes", WRITER.sid, "warning"),
        ("stale_token", STALE_T.sid, "warning"),
        ("stale_token", NEVER_T.sid, "warning"),
        ("rotation_overdue", OLD_T.sid, "warning"),
        ("legacy_token", LEGACY.sid, "critical"),
        ("missing_description", NODESC_T.sid, "info"),
        ("missing_contact", NODESC_T.sid, "info"),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    .collect();
    assert_eq!(found, want, "{stdout}");
    assert_eq!(report["summary"]["critical"], 1);
    assert_eq!(report["summary"]["warning"], 6);
    assert_eq!(report["summary"]["info"], 2);

    // Unused scopes, and the narrowed list of what was used.
    let r = finding(&report, "unused_scopes", Some(READER.sid));
    assert_eq!(r["unused"], json!([{"api": "reports", "methods": ["GET"]}]));
    assert_eq!(
        r["scopes"],
        json!([{"api": "campaigns", "methods": ["GET"]}, {"api": "public", "methods": ["GET"]}])
    );
    assert_eq!(
        r["scopes_yaml"],
        "scopes:\n  - {api: campaigns, methods: [GET]}\n  - {api: public, methods: [GET]}\n"
    );
    // The command names the config the audit was run with.
    assert_eq!(
        r["command"],
        format!(
            "scopegate token update --config {} SGreader --clear-scopes --scope campaigns:GET --scope public:GET",
            h.config_path.display()
        )
    );
    let w = finding(&report, "unused_scopes", Some(WRITER.sid));
    assert_eq!(
        w["unused"],
        json!([{"api": "campaigns", "methods": ["DELETE"]}])
    );
    assert_eq!(
        w["scopes"],
        json!([{"api": "campaigns", "methods": ["GET", "POST"]}])
    );
    // The pasted list is valid scopes YAML for the catalog, and keeps the scope's own
    // limits.
    assert_eq!(
        w["scopes_yaml"],
        "scopes:\n  - {api: campaigns, methods: [GET, POST], rate_limit: {requests_per_second: 50, burst: 20}}\n"
    );
    let pasted: serde_yaml::Value =
        serde_yaml::from_str(w["scopes_yaml"].as_str().unwrap()).unwrap();
    assert_eq!(pasted["scopes"][0]["methods"][1], "POST");
    assert_eq!(pasted["scopes"][0]["rate_limit"]["burst"], 20);

    // Stale tokens: one last used 45 days ago, one never used in the 100 days recorded.
    let s = finding(&report, "stale_token", Some(STALE_T.sid));
    assert_eq!(s["days"], 45);
    assert!(s["last_used"].is_string());
    let n = finding(&report, "stale_token", Some(NEVER_T.sid));
    assert!(n["last_used"].is_null());
    assert_eq!(n["days"], 100);

    // The overdue rotation.
    let o = finding(&report, "rotation_overdue", Some(OLD_T.sid));
    assert_eq!(o["days"], 120);
    assert_eq!(o["since_field"], "rotated_at");

    // The legacy token, with the scopes it actually used.
    let l = finding(&report, "legacy_token", Some(LEGACY.sid));
    assert_eq!(
        l["scopes"],
        json!([{"api": "campaigns", "methods": ["GET"]}, {"api": "reports", "methods": ["DELETE"]}])
    );
    assert_eq!(l["out_of_catalog_requests"], 1);

    let a = finding(&report, "account_near_limit", None);
    assert_eq!(a["account"], "IRacme");
    assert_eq!(a["active_scoped_tokens"], 7);
    assert_eq!(a["limit"], 8);

    // The readable report: default --fail-on none exits 0.
    let (code, text, _) = cli::audit(&h.config_path, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("token SGreader \"reader\""), "{text}");
    assert!(text.contains("narrowed scopes:"), "{text}");
    assert!(text.contains("- {api: public, methods: [GET]}"), "{text}");
    assert!(
        text.contains("summary: 1 critical, 6 warning, 2 info"),
        "{text}"
    );
    // A shorter window: the stale token used 45 days ago is fine within 60 days.
    let (_, stdout, _) = cli::audit(&h.config_path, &["--json", "--stale-after", "60d"]);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["sid"] != STALE_T.sid));
    // --fail-on warning fails; a missing explicit --state is a usage error.
    assert_eq!(cli::audit(&h.config_path, &["--fail-on", "warning"]).0, 1);
    let missing = h.dir.path("nowhere.json");
    assert_eq!(
        cli::audit(&h.config_path, &["--state", missing.to_str().unwrap()]).0,
        2
    );
    assert_eq!(cli::audit(&h.dir.path("nope.yaml"), &[]).0, 2);
}

#[tokio::test]
async fn audit_without_a_record_skips_usage_findings() {
    let h = Harness::start_with(WITH_STATE, &audit_tokens()).await;
    let (code, stdout, _) = cli::audit(&h.config_path, &["--json"]);
    assert_eq!(code, 0);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["usage_record"].is_null());
    let kinds: BTreeSet<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains("unused_scopes") && !kinds.contains("stale_token"));
    assert!(kinds.contains("legacy_token") && kinds.contains("rotation_overdue"));
}

#[tokio::test]
async fn usage_record_survives_a_restart() {
    let h = Harness::start_with(WITH_STATE, &audit_tokens()).await;
    assert_eq!(call(&h, &READER, "GET", CAMPAIGNS, &[]).await, 200);
    assert_eq!(call(&h, &READER, "GET", CAMPAIGNS, &[]).await, 200);
    let Harness {
        upstream,
        gateway,
        dir,
        config_path,
    } = h;
    // Shutdown saves the record.
    gateway.shutdown().await;
    let state_file = dir.path("state").join(usage::STATE_FILE);
    let saved = usage::read_state(&state_file).expect("shutdown saved the usage record");
    assert_eq!(saved.tokens[READER.sid].scopes[0].count, 2);

    // Start-up loads it: the counts continue, and the last-used gauge is back.
    let gateway = start_gateway(&config_path).await;
    let h = Harness {
        upstream,
        gateway,
        dir,
        config_path,
    };
    let rt_snapshot = |h: &Harness| {
        let policy = h.gateway.shared.policy.load();
        policy.tokens[READER.sid].runtime.usage.snapshot()
    };
    let before = rt_snapshot(&h);
    assert_eq!(before.scopes.len(), 1);
    assert_eq!(before.scopes[0].count, 2, "loaded at start-up");
    assert_eq!(before.since, saved.tokens[READER.sid].since);
    assert!(metrics(&h).await.lines().any(|l| l
        .starts_with("scopegate_token_last_used_timestamp_seconds")
        && l.contains(READER.sid)));
    assert_eq!(call(&h, &READER, "GET", CAMPAIGNS, &[]).await, 200);
    h.gateway.shutdown().await;
    let saved = usage::read_state(&state_file).unwrap();
    assert_eq!(saved.tokens[READER.sid].scopes[0].count, 3);
}

#[tokio::test]
async fn a_corrupt_record_is_moved_aside_and_the_gateway_serves() {
    let h = Harness::start_with(WITH_STATE, &audit_tokens()).await;
    let state = h.dir.path("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join(usage::STATE_FILE), b"{\"version\": 1, \"tok").unwrap();
    usage::load(&h.gateway.shared);
    assert!(state.join("usage.json.corrupt").exists());
    assert_eq!(call(&h, &READER, "GET", CAMPAIGNS, &[]).await, 200);
    usage::save_now(&h.gateway.shared).unwrap();
    let saved = usage::read_state(&state.join(usage::STATE_FILE)).unwrap();
    assert_eq!(saved.tokens[READER.sid].scopes[0].count, 1);
    // A corrupt record is an error for audit, not a silent empty report.
    std::fs::write(state.join(usage::STATE_FILE), b"[]").unwrap();
    assert_eq!(cli::audit(&h.config_path, &[]).0, 2);
}

#[tokio::test]
async fn shadow_scopes_count_what_they_would_deny_and_serve_it() {
    let tokens = format!(
        "accounts:\n  - id: IRacme\n    tokens:\n      - sid: SGshadow\n        name: shadow\n        auth_token_hash: \"{}\"\n        scopes:\n          - {{api: campaigns, methods: [GET, POST]}}\n          - {{api: reports, methods: [GET]}}\n        shadow_scopes:\n          - {{api: campaigns, methods: [GET]}}\n",
        hash("shadow-secret")
    );
    let h = Harness::start_with("", &tokens).await;
    let t = Fixture {
        sid: "SGshadow",
        secret: "shadow-secret",
    };
    // Inside both sets: served, not counted.
    assert_eq!(call(&h, &t, "GET", CAMPAIGNS, &[]).await, 200);
    assert_eq!(call(&h, &t, "HEAD", CAMPAIGNS, &[]).await, 200);
    let text = metrics(&h).await;
    assert!(
        exposition::series_of(&text, "scopegate_shadow_denied_total").is_empty(),
        "{text}"
    );
    // Inside the scopes, outside the shadow set: served (200) and counted.
    assert_eq!(call(&h, &t, "POST", CAMPAIGNS, &[]).await, 200);
    assert_eq!(call(&h, &t, "POST", CAMPAIGNS, &[]).await, 200);
    assert_eq!(
        call(&h, &t, "GET", "/Mediapartners/IRacme/Reports/r1", &[]).await,
        200
    );
    assert_eq!(
        h.upstream.count(),
        5,
        "everything inside the scopes was served"
    );
    // Outside the scopes: refused as always, and not a shadow matter.
    assert_eq!(call(&h, &t, "DELETE", CAMPAIGNS, &[]).await, 403);
    let text = metrics(&h).await;
    let mut got: Vec<(String, String, String, f64)> =
        exposition::series_of(&text, "scopegate_shadow_denied_total")
            .into_iter()
            .map(|(l, v)| (l["token"].clone(), l["api"].clone(), l["method"].clone(), v))
            .collect();
    got.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(
        got,
        vec![
            ("SGshadow".into(), "campaigns".into(), "POST".into(), 2.0),
            ("SGshadow".into(), "reports".into(), "GET".into(), 1.0),
        ],
        "{text}"
    );

    // `explain` says the same.
    let config = scopegate::config::load(&h.config_path).unwrap();
    let policy = scopegate::gateway::snapshot::build(
        config,
        1,
        &scopegate::gateway::runtime::RuntimeRegistry::default(),
        &scopegate::gateway::metrics::Metrics::new(),
    );
    let ex = |m: &str, p: &str| {
        scopegate::cli::explain::explain(&policy, "SGshadow", m, p, &Default::default(), now())
            .unwrap()
    };
    assert_eq!(ex("GET", CAMPAIGNS).shadow_denies, Some(false));
    assert_eq!(ex("POST", CAMPAIGNS).shadow_denies, Some(true));
    assert!(ex("POST", CAMPAIGNS).allowed());
    assert_eq!(ex("DELETE", CAMPAIGNS).shadow_denies, None);
}
