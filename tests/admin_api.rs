//! The JSON admin API (SPEC §10) against the real gateway on port 0, a real upstream and a
//! real HTTP client: every endpoint, every refusal, the CLI's messages, the admin log, and
//! that each change is enforced by the proxy as soon as the API answers.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::*;

const ADMIN: &str = "ops";
const ADMIN_PASSWORD: &str = "correct horse battery staple";

fn admin_yaml(extra: &str) -> String {
    let hash = scopegate::gateway::console::auth::hash_password(ADMIN_PASSWORD.as_bytes()).unwrap();
    format!(
        "state_dir: state\nadmin:\n  users:\n    - name: {ADMIN}\n      password_hash: \"{hash}\"\n{extra}"
    )
}

async fn harness(extra: &str) -> Harness {
    let h = Harness::start_with(&admin_yaml(extra), &tokens_yaml()).await;
    std::fs::create_dir_all(h.dir.path("state")).unwrap();
    h
}

fn api(h: &Harness, path: &str) -> String {
    format!("http://{}/api/v1{path}", h.gateway.admin_addr)
}

fn admin_auth() -> String {
    basic_raw(ADMIN, ADMIN_PASSWORD)
}

/// `GET /api/v1{path}` with the right admin credentials.
async fn admin_get(h: &Harness, path: &str) -> Reply {
    send(
        "GET",
        &api(h, path),
        &[("authorization", &admin_auth())],
        "",
    )
    .await
}

async fn call(h: &Harness, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let auth = admin_auth();
    let mut headers = vec![("authorization", auth.as_str())];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let r = send(method, &api(h, path), &headers, &body).await;
    assert_eq!(
        r.headers.get("cache-control").unwrap(),
        "no-store",
        "{method} {path}"
    );
    assert_eq!(r.headers.get("x-frame-options").unwrap(), "DENY");
    let v: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {}", r.text()));
    (r.status.as_u16(), v)
}

const REPORTS: &str = "/Mediapartners/IRacme/Reports/daily";

fn cli(config: &Path, args: &[&str]) -> (bool, String) {
    let r = support::cli::run(config, args);
    (r.ok(), r.stderr)
}

#[tokio::test]
async fn without_admin_users_api_and_console_are_404_and_the_rest_stays_open() {
    let h = Harness::start().await;
    let admin = h.gateway.admin_addr;
    for path in ["/api/v1/tokens", "/api/", "/console/", "/console/login"] {
        let r = send(
            "GET",
            &format!("http://{admin}{path}"),
            &[("authorization", &admin_auth())],
            "",
        )
        .await;
        assert_eq!(r.status, 404, "{path}");
    }
    for path in ["/metrics", "/healthz", "/readyz", "/generation"] {
        assert_eq!(
            get(&format!("http://{admin}{path}"), None).await.status,
            200,
            "{path}"
        );
    }
}

/// `GET path` on the admin listener with exactly this `Host` (and the admin credentials).
async fn admin_get_as(h: &Harness, host: &str, path: &str) -> Reply {
    let auth = admin_auth();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    );
    raw(h.gateway.admin_addr, request.as_bytes()).await
}

#[tokio::test]
async fn a_loopback_admin_listener_refuses_rebound_host_names_on_every_path() {
    let h = harness("").await;
    let port = h.gateway.admin_addr.port();
    let paths = ["/metrics", "/api/v1/tokens", "/console/", "/console/login"];
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_owned(),
        format!("127.0.0.1.evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
    ] {
        for path in paths {
            let r = admin_get_as(&h, &host, path).await;
            assert_eq!(r.status, 421, "{host} {path}");
            assert!(
                !r.text().contains("scopegate_requests_total"),
                "{host} {path}"
            );
        }
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        for path in paths {
            let r = admin_get_as(&h, &host, path).await;
            assert_ne!(r.status, 421, "{host} {path}");
            assert!(r.status.as_u16() < 400, "{host} {path}: {}", r.status);
        }
    }
    // The probes tell a page nothing, and health checkers send any `Host`.
    for path in ["/healthz", "/readyz", "/generation"] {
        assert_eq!(
            admin_get_as(&h, "evil.example", path).await.status,
            200,
            "{path}"
        );
    }
    // Two `Host` fields name no one host.
    let auth = admin_auth();
    let two = format!(
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\nAuthorization: {auth}\r\n\r\n"
    );
    assert_ne!(raw(h.gateway.admin_addr, two.as_bytes()).await.status, 200);
}

#[tokio::test]
async fn an_admin_listener_on_every_address_checks_names_once_allowed_hosts_is_set() {
    for (extra, rebound_status) in [("", 200), ("admin:\n  allowed_hosts: []\n", 421)] {
        let upstream = Upstream::start().await;
        let dir = TempDir::new();
        dir.write("tokens.yaml", &tokens_yaml());
        let cfg = dir.write("scopegate.yaml", &gateway_yaml(upstream.addr, extra));
        let shared = scopegate::build_shared(scopegate::config::load(&cfg).unwrap());
        let main = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
        let admin_addr: std::net::SocketAddr =
            ([127, 0, 0, 1], admin.local_addr().unwrap().port()).into();
        let _running = scopegate::start(shared, main, admin).unwrap();
        let rebound = raw(
            admin_addr,
            b"GET /metrics HTTP/1.1\r\nHost: scopegate.evil.example\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(rebound.status, rebound_status, "{extra:?}");
        let by_address = raw(
            admin_addr,
            b"GET /metrics HTTP/1.1\r\nHost: 10.0.0.7:9901\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(by_address.status, 200, "{extra:?}");
    }
}

#[tokio::test]
async fn allowed_hosts_lists_the_names_the_admin_listener_answers_for() {
    let h = harness("  allowed_hosts: [gw.internal]\n").await;
    let port = h.gateway.admin_addr.port();
    for path in ["/metrics", "/api/v1/tokens"] {
        let listed = admin_get_as(&h, &format!("GW.internal:{port}"), path).await;
        assert_eq!(listed.status, 200, "{path}");
        let other = admin_get_as(&h, &format!("gw.other:{port}"), path).await;
        assert_eq!(other.status, 421, "{path}");
        assert!(
            other.text().contains("admin.allowed_hosts"),
            "{}",
            other.text()
        );
    }
}

#[tokio::test]
async fn refusals_need_credentials_and_throttle_bad_ones() {
    let h = harness("bruteforce: {max_failures: 3, cooloff: 60s}\n").await;
    // No credentials: 401 with a Basic challenge, on every endpoint.
    for (method, path) in [
        ("GET", "/tokens"),
        ("POST", "/tokens"),
        ("GET", "/tokens/SGreader"),
        ("PATCH", "/tokens/SGreader"),
        ("DELETE", "/tokens/SGreader"),
        ("POST", "/tokens/SGreader/reset"),
        ("POST", "/tokens/SGreader/disable"),
        ("POST", "/tokens/SGreader/enable"),
        ("GET", "/catalog"),
        ("GET", "/audit"),
    ] {
        let r = send(method, &api(&h, path), &[], "").await;
        assert_eq!(r.status, 401, "{method} {path}");
        assert!(r
            .headers
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("Basic realm="));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "unauthorized");
    }
    // A main-listener token is not an admin credential.
    let r = send(
        "GET",
        &api(&h, "/tokens"),
        &[("authorization", &basic(&READER))],
        "",
    )
    .await;
    assert_eq!(r.status, 401);
    // Wrong passwords: 401 until the throttle trips, then 429 even with the right one.
    let wrong = basic_raw(ADMIN, "not the password");
    for _ in 0..2 {
        let r = send("GET", &api(&h, "/tokens"), &[("authorization", &wrong)], "").await;
        assert_eq!(r.status, 401);
        assert!(!r.text().contains("not the password"));
    }
    let r = send("GET", &api(&h, "/tokens"), &[("authorization", &wrong)], "").await;
    assert_eq!(r.status, 401);
    let r = admin_get(&h, "/tokens").await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.headers.get("retry-after").is_some());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"], "throttled");
    assert_eq!(h.upstream.count(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn every_endpoint_and_changes_are_enforced_when_the_api_answers() {
    let h = harness("").await;

    // Read endpoints.
    let (s, v) = call(&h, "GET", "/tokens", None).await;
    assert_eq!(s, 200);
    let all = v["tokens"].as_array().unwrap();
    assert!(all.iter().any(|t| t["sid"] == "SGreader"));
    let text = v.to_string();
    assert!(!text.contains("sha256:") && !text.contains("auth_token_hash"));
    let (s, v) = call(&h, "GET", "/tokens?account=IRother", None).await;
    assert_eq!(s, 200);
    let sids: Vec<&str> = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, ["SGother"]);

    assert_eq!(
        proxy_get(&h, READER.sid, READER.secret, CAMPAIGNS).await,
        200
    );
    let (s, v) = call(&h, "GET", "/tokens/SGreader", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["name"], "reader");
    assert_eq!(v["usage"][0]["api"], "campaigns");
    assert_eq!(v["usage"][0]["method"], "GET");
    assert!(v["findings"].is_array());
    assert!(v["shadow_denied"].is_array());
    assert_eq!(v["rate_limit"]["burst"], 200);
    assert!(!v.to_string().contains("sha256:"));

    // Shadow scopes: the writer keeps its scopes; requests the shadow set would deny are
    // counted and shown on the token.
    let (s, v) = call(
        &h,
        "PATCH",
        "/tokens/SGwriter",
        Some(json!({"shadow_scopes": [{"api": "campaigns", "methods": ["GET"]}]})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(proxy_get(&h, WRITER.sid, WRITER.secret, REPORTS).await, 200);
    let (_, v) = call(&h, "GET", "/tokens/SGwriter", None).await;
    assert_eq!(
        v["shadow_denied"],
        json!([{"api": "reports", "method": "GET", "count": 1}])
    );
    let (s, _) = call(
        &h,
        "PATCH",
        "/tokens/SGwriter",
        Some(json!({"shadow_scopes": null})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, v) = call(&h, "GET", "/tokens/SGwriter", None).await;
    assert!(v["shadow_scopes"].is_null());

    let (s, v) = call(&h, "GET", "/tokens/SGnope", None).await;
    assert_eq!((s, v["error"].as_str()), (404, Some("not_found")));
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("no token with SID SGnope"));

    let (s, v) = call(&h, "GET", "/catalog", None).await;
    assert_eq!(s, 200);
    assert!(v["apis"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["name"] == "campaigns" && a["upstream"] == "main"));
    assert_eq!(v["api_versions"], json!(["v14", "v15"]));

    let (s, v) = call(&h, "GET", "/audit", None).await;
    assert_eq!(s, 200);
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "legacy_token" && f["sid"] == "SGlegacy"));

    // Create: the new token works the moment the API answers.
    let (s, v) = call(
        &h,
        "POST",
        "/tokens",
        Some(json!({
            "account": "IRacme",
            "name": "api-made",
            "description": "made through the admin API",
            "primary_contact": "ops@acme.example",
            "developer_emails": ["dev@acme.example"],
            "api_version": "v15",
            "environment": "test",
            "scopes": [{"api": "campaigns", "methods": ["GET"]}],
        })),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let sid = v["sid"].as_str().unwrap().to_owned();
    let secret = v["secret"].as_str().unwrap().to_owned();
    assert!(sid.starts_with("SG") && secret.len() >= 43);
    assert_eq!(proxy_get(&h, &sid, &secret, CAMPAIGNS).await, 200);
    assert_eq!(proxy_get(&h, &sid, &secret, REPORTS).await, 403);
    // The secret is never shown again.
    let (_, shown) = call(&h, "GET", &format!("/tokens/{sid}"), None).await;
    assert!(!shown.to_string().contains(&secret));
    let (_, listed) = call(&h, "GET", "/tokens", None).await;
    assert!(!listed.to_string().contains(&secret));

    // PATCH: `scopes` replaces the list, at once.
    let (s, v) = call(
        &h,
        "PATCH",
        &format!("/tokens/{sid}"),
        Some(json!({"scopes": [{"api": "reports", "methods": ["GET"]}], "description": "now reports"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(proxy_get(&h, &sid, &secret, REPORTS).await, 200);
    assert_eq!(proxy_get(&h, &sid, &secret, CAMPAIGNS).await, 403);
    // `[]` clears all.
    let (s, v) = call(
        &h,
        "PATCH",
        &format!("/tokens/{sid}"),
        Some(json!({"scopes": []})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["warnings"][0].as_str().unwrap().contains("no scopes"));
    assert_eq!(proxy_get(&h, &sid, &secret, REPORTS).await, 403);
    call(
        &h,
        "PATCH",
        &format!("/tokens/{sid}"),
        Some(json!({"scopes": [{"api": "campaigns", "methods": ["get"]}]})),
    )
    .await;
    assert_eq!(proxy_get(&h, &sid, &secret, CAMPAIGNS).await, 200);

    // Reset: the old secret is refused, the new one accepted, at once.
    let (s, v) = call(&h, "POST", &format!("/tokens/{sid}/reset"), None).await;
    assert_eq!(s, 200, "{v}");
    let new_secret = v["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(proxy_get(&h, &sid, &secret, CAMPAIGNS).await, 403);
    assert_eq!(proxy_get(&h, &sid, &new_secret, CAMPAIGNS).await, 200);
    // With a grace period, both work for a while.
    let (s, v) = call(
        &h,
        "POST",
        &format!("/tokens/{sid}/reset"),
        Some(json!({"grace": "1h"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let newest = v["secret"].as_str().unwrap().to_owned();
    assert!(v["previous_secret_valid_until"].is_string());
    assert_eq!(proxy_get(&h, &sid, &new_secret, CAMPAIGNS).await, 200);
    assert_eq!(proxy_get(&h, &sid, &newest, CAMPAIGNS).await, 200);
    let (s, _) = call(
        &h,
        "POST",
        &format!("/tokens/{sid}/reset"),
        Some(json!({"grace": "45d"})),
    )
    .await;
    assert_eq!(s, 422);

    // Disable / enable.
    let (s, v) = call(&h, "POST", &format!("/tokens/{sid}/disable"), None).await;
    assert_eq!(
        (s, &v["status"], &v["changed"]),
        (200, &json!("disabled"), &json!(true))
    );
    assert_eq!(proxy_get(&h, &sid, &newest, CAMPAIGNS).await, 403);
    let (s, v) = call(&h, "POST", &format!("/tokens/{sid}/disable"), None).await;
    assert_eq!((s, &v["changed"]), (200, &json!(false)));
    let (s, _) = call(&h, "POST", &format!("/tokens/{sid}/enable"), None).await;
    assert_eq!(s, 200);
    assert_eq!(proxy_get(&h, &sid, &newest, CAMPAIGNS).await, 200);

    // Delete: permanent, and the SID is then unknown (404, saying it was deleted).
    let (s, v) = call(&h, "DELETE", &format!("/tokens/{sid}"), None).await;
    assert_eq!((s, &v["deleted"]), (200, &json!(true)));
    assert_eq!(proxy_get(&h, &sid, &newest, CAMPAIGNS).await, 403);
    for (method, path) in [
        ("GET", format!("/tokens/{sid}")),
        ("PATCH", format!("/tokens/{sid}")),
        ("DELETE", format!("/tokens/{sid}")),
        ("POST", format!("/tokens/{sid}/reset")),
        ("POST", format!("/tokens/{sid}/enable")),
        ("POST", "/tokens/SGnope/disable".to_owned()),
    ] {
        let body = (method == "PATCH").then(|| json!({"name": "x"}));
        let (s, v) = call(&h, method, &path, body).await;
        assert_eq!(s, 404, "{method} {path}: {v}");
        assert_eq!(v["error"], "not_found");
    }
    let (_, v) = call(&h, "GET", &format!("/tokens/{sid}"), None).await;
    assert!(v["message"].as_str().unwrap().contains("was deleted"));

    // The admin log: who, what, never a secret or a hash.
    let log = std::fs::read_to_string(h.dir.path("state/admin-log.jsonl")).unwrap();
    let entries: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = entries
        .iter()
        .filter(|e| e["sid"] == sid.as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["create", "update", "update", "update", "reset", "reset", "disable", "enable", "delete"]
    );
    assert!(entries
        .iter()
        .all(|e| e["who"] == ADMIN && e["via"] == "api"));
    for s in [&secret, &new_secret, &newest] {
        assert!(!log.contains(s.as_str()));
    }
    assert!(!log.contains("sha256:"));
    // `token history` prints it.
    let out = support::cli::bin()
        .args(["token", "history", &sid, "--config"])
        .arg(&h.config_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert_eq!(text.lines().count(), 9, "{text}");
    assert!(text.contains("create") && text.contains("ops (api)") && text.contains("delete"));
}

#[tokio::test]
async fn bad_input_gives_422_with_the_clis_message_and_nothing_changes() {
    let h = harness("").await;
    let before = std::fs::read_to_string(h.dir.path("tokens.yaml")).unwrap();
    let cases = [
        ("POST", "/tokens", "{not json"),
        (
            "POST",
            "/tokens",
            r#"{"account":"IRacme","name":"x","surprise":1}"#,
        ),
        ("POST", "/tokens", r#"{"account":"IRacme"}"#),
        (
            "POST",
            "/tokens",
            r#"{"account":"IRacme","name":"x","scopes":[{"api":"campaigns","methods":["BREW"]}]}"#,
        ),
        (
            "POST",
            "/tokens",
            r#"{"account":"IRacme","name":"x","scopes":[{"api":"campaigns","methods":[]}]}"#,
        ),
        (
            "POST",
            "/tokens",
            r#"{"account":"IRacme","name":"x","kind":"root"}"#,
        ),
        (
            "POST",
            "/tokens",
            r#"{"account":"IRacme","name":"x","expires_at":"soon"}"#,
        ),
        ("PATCH", "/tokens/SGreader", r#"{"nme":"typo"}"#),
        ("PATCH", "/tokens/SGreader", r#"{}"#),
        (
            "PATCH",
            "/tokens/SGreader",
            r#"{"rate_limit":{"requests_per_second":-1}}"#,
        ),
    ];
    for (method, path, body) in cases {
        let r = send(
            method,
            &api(&h, path),
            &[
                ("authorization", &admin_auth()),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await;
        assert_eq!(r.status, 422, "{method} {path} {body}: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "invalid");
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
    // A validation rule: the same message as the CLI's, word for word.
    let (s, v) = call(
        &h,
        "POST",
        "/tokens",
        Some(json!({"account": "IRacme", "name": "x", "api_version": "v99"})),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    let (ok, stderr) = cli(
        &h.config_path,
        &[
            "token",
            "create",
            "--account",
            "IRacme",
            "--name",
            "x",
            "--api-version",
            "v99",
        ],
    );
    assert!(!ok);
    assert_eq!(
        stderr.trim_end(),
        format!("error: {}", v["message"].as_str().unwrap())
    );
    let (s, v) = call(
        &h,
        "PATCH",
        "/tokens/SGreader",
        Some(json!({"scopes": [{"api": "nosuchapi", "methods": ["GET"]}]})),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert!(v["message"].as_str().unwrap().contains("nosuchapi"));
    // Wrong methods on an endpoint, unknown endpoints, oversized bodies.
    let r = send(
        "PUT",
        &api(&h, "/tokens"),
        &[("authorization", &admin_auth())],
        "",
    )
    .await;
    assert_eq!(r.status, 405);
    let r = send(
        "GET",
        &api(&h, "/nothing"),
        &[("authorization", &admin_auth())],
        "",
    )
    .await;
    assert_eq!(r.status, 404);
    let big = format!(r#"{{"account":"IRacme","name":"{}"}}"#, "x".repeat(70_000));
    let r = send(
        "POST",
        &api(&h, "/tokens"),
        &[("authorization", &admin_auth())],
        &big,
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(
        std::fs::read_to_string(h.dir.path("tokens.yaml")).unwrap(),
        before,
        "nothing was written"
    );
    assert_eq!(h.upstream.count(), 0);
}

/// The writer's `scopes:` line in the tokens file.
fn writer_scopes(h: &Harness) -> String {
    writer_scopes_line(&std::fs::read_to_string(h.dir.path("tokens.yaml")).unwrap())
}

/// `PATCH` with `scopes` replaces the list but keeps, for each API still in it, the
/// `rate_limit` the file gave that scope (the API cannot set one: a scope carrying it is
/// refused), and the gateway enforces it right after; a scope left out loses its limits.
#[tokio::test]
async fn patching_scopes_keeps_the_limits_of_the_apis_that_stay() {
    let tokens = tokens_yaml().replace(
        "          - {api: campaigns, methods: [GET, POST, DELETE]}\n",
        "          - {api: campaigns, methods: [GET, POST, DELETE], rate_limit: {requests_per_second: 0.0002, burst: 2}}\n",
    );
    assert_ne!(tokens, tokens_yaml(), "fixture changed");
    let h = Harness::start_with(&admin_yaml(""), &tokens).await;
    std::fs::create_dir_all(h.dir.path("state")).unwrap();
    let limit = "rate_limit: {requests_per_second: 0.0002, burst: 2}";

    let (s, v) = call(
        &h,
        "PATCH",
        "/tokens/SGwriter",
        Some(json!({"scopes": [
            {"api": "campaigns", "methods": ["GET"]},
            {"api": "public", "methods": ["GET"]},
        ]})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        writer_scopes(&h),
        format!("scopes: [{{api: campaigns, methods: [GET], {limit}}}, {{api: public, methods: [GET]}}]")
    );
    let (ok, stderr) = cli(&h.config_path, &["check"]);
    assert!(ok, "{stderr}");
    let (_, v) = call(&h, "GET", "/tokens/SGwriter", None).await;
    assert_eq!(v["scope_limits"][0]["api"], "campaigns");
    assert_eq!(v["scope_limits"][0]["rate_limit"]["burst"], 2);
    // Still enforced: the scope's burst of 2, then 429 under the scope's own policy.
    let writer = basic(&WRITER);
    for expected in [200, 200, 429] {
        let r = send("GET", &h.url(CAMPAIGNS), &[("authorization", &writer)], "").await;
        assert_eq!(r.status, expected, "{}", r.text());
        if expected == 429 {
            let policy = r.headers["ratelimit-policy"].to_str().unwrap();
            assert!(policy.contains("\"scope-campaigns\""), "{policy}");
        }
    }

    // The API does not set a scope's limits: refused, and the file is unchanged.
    let before = std::fs::read_to_string(h.dir.path("tokens.yaml")).unwrap();
    let (s, v) = call(
        &h,
        "PATCH",
        "/tokens/SGwriter",
        Some(json!({"scopes": [{"api": "campaigns", "methods": ["GET"], "rate_limit": {"requests_per_second": 9}}]})),
    )
    .await;
    assert_eq!((s, &v["error"]), (422, &json!("invalid")), "{v}");
    assert_eq!(
        std::fs::read_to_string(h.dir.path("tokens.yaml")).unwrap(),
        before
    );

    // Left out of the list, campaigns loses its limit with its scope.
    let (s, v) = call(
        &h,
        "PATCH",
        "/tokens/SGwriter",
        Some(json!({"scopes": [{"api": "public", "methods": ["GET"]}]})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(writer_scopes(&h), "scopes: [{api: public, methods: [GET]}]");
    assert!(!std::fs::read_to_string(h.dir.path("tokens.yaml"))
        .unwrap()
        .contains(limit));
}

#[tokio::test]
async fn the_token_limit_gives_409_with_the_clis_message() {
    let h = harness("").await;
    // IRacme has 3 active scoped tokens (reader, writer, expired); the limit is 20.
    for i in 0..17 {
        let (s, v) = call(
            &h,
            "POST",
            "/tokens",
            Some(json!({"account": "IRacme", "name": format!("t{i}"), "scopes": [{"api": "public", "methods": ["GET"]}]})),
        )
        .await;
        assert_eq!(s, 201, "{i}: {v}");
    }
    let before = std::fs::read_to_string(h.dir.path("tokens.yaml")).unwrap();
    let (s, v) = call(
        &h,
        "POST",
        "/tokens",
        Some(json!({"account": "IRacme", "name": "one-too-many"})),
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (409, Some("conflict")), "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(message.contains("already has 20 active scoped tokens (the limit is 20)"));
    let (ok, stderr) = cli(
        &h.config_path,
        &[
            "token",
            "create",
            "--account",
            "IRacme",
            "--name",
            "one-too-many",
        ],
    );
    assert!(!ok);
    assert_eq!(stderr.trim_end(), format!("error: {message}"));
    // Enabling a disabled token at the limit: the same rule.
    let (s, v) = call(&h, "POST", "/tokens/SGdisabled/enable", None).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["message"].as_str().unwrap(), message);
    assert_eq!(
        std::fs::read_to_string(h.dir.path("tokens.yaml")).unwrap(),
        before
    );
    // A disabled token does not count: it can be created, but not enabled.
    let (s, v) = call(
        &h,
        "POST",
        "/tokens",
        Some(
            json!({"account": "IRacme", "name": "spare", "status": "disabled",
                    "shadow_scopes": [{"api": "campaigns", "methods": ["GET"]}]}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let spare = v["sid"].as_str().unwrap().to_owned();
    let (_, shown) = call(&h, "GET", &format!("/tokens/{spare}"), None).await;
    assert_eq!(shown["status"], "disabled");
    assert_eq!(shown["shadow_scopes"][0]["api"], "campaigns");
    let (s, v) = call(&h, "POST", &format!("/tokens/{spare}/enable"), None).await;
    assert_eq!(s, 409, "{v}");
    // The other account is not affected.
    let (s, _) = call(
        &h,
        "POST",
        "/tokens",
        Some(json!({"account": "IRother", "name": "fine"})),
    )
    .await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn cli_changes_are_logged_with_the_os_user() {
    let h = harness("").await;
    let out = support::cli::bin()
        .args(["token", "disable", "SGwriter", "--config"])
        .arg(&h.config_path)
        .env("USER", "alice")
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = support::cli::bin()
        .args(["token", "history", "SGwriter", "--json", "--config"])
        .arg(&h.config_path)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v["entries"][0];
    assert_eq!(
        (&e["who"], &e["via"], &e["action"]),
        (&json!("alice"), &json!("cli"), &json!("disable"))
    );
    assert_eq!(e["changes"], json!(["status disabled"]));
}

/// A tokens file the gateway cannot write (a read-only mount): writes answer 409 saying
/// so, reads still work. As root (CI) the folder is a read-only tmpfs; otherwise a folder
/// without write permission.
#[tokio::test]
async fn a_read_only_tokens_file_gives_409_and_reads_still_work() {
    let upstream = Upstream::start().await;
    let dir = TempDir::new();
    let ro = dir.path("ro");
    std::fs::create_dir(&ro).unwrap();
    /// Unmounts the tmpfs when the test ends, even on a failed assertion.
    struct Unmount(std::path::PathBuf, bool);
    impl Drop for Unmount {
        fn drop(&mut self) {
            if self.1 {
                let _ = Command::new("umount").arg(&self.0).status();
            }
        }
    }
    let root = is_root();
    let mut _unmount = Unmount(ro.clone(), false);
    if root {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(&ro)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "cannot mount a tmpfs for the read-only test"
            );
            eprintln!("skipping: cannot mount a tmpfs");
            return;
        }
        _unmount.1 = true;
    }
    std::fs::write(ro.join("tokens.yaml"), tokens_yaml()).unwrap();
    let gateway = gateway_yaml(upstream.addr, &admin_yaml(""))
        .replace("tokens_file: tokens.yaml", "tokens_file: ro/tokens.yaml");
    let config = dir.write("scopegate.yaml", &gateway);
    std::fs::create_dir_all(dir.path("state")).unwrap();
    if root {
        assert!(Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&ro)
            .status()
            .unwrap()
            .success());
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let gw = start_gateway(&config).await;
    let url = |p: &str| format!("http://{}/api/v1{p}", gw.admin_addr);
    let auth = admin_auth();
    let r = send("GET", &url("/tokens"), &[("authorization", &auth)], "").await;
    assert_eq!(r.status, 200);
    for (method, path, body) in [
        ("POST", "/tokens", r#"{"account":"IRacme","name":"x"}"#),
        ("PATCH", "/tokens/SGreader", r#"{"name":"y"}"#),
        ("POST", "/tokens/SGreader/disable", ""),
        ("POST", "/tokens/SGreader/reset", ""),
        ("DELETE", "/tokens/SGreader", ""),
    ] {
        let r = send(method, &url(path), &[("authorization", &auth)], body).await;
        assert_eq!(r.status, 409, "{method} {path}: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "read_only");
        assert!(v["message"].as_str().unwrap().contains("read-only"));
    }
    // The console says so too.
    let ok = scopegate_console_is_read_only(gw.admin_addr, &auth).await;
    assert!(ok);
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Logs in to the console and checks the read-only banner on the card list.
async fn scopegate_console_is_read_only(admin: std::net::SocketAddr, _auth: &str) -> bool {
    let session = console_login(admin).await;
    let r = send(
        "GET",
        &format!("http://{admin}/console/"),
        &[("cookie", &session)],
        "",
    )
    .await;
    r.status == 200 && r.text().contains("id=\"read-only\"")
}

/// Signs in through the login form; returns the `Cookie` header for the session.
async fn console_login(admin: std::net::SocketAddr) -> String {
    let page = send("GET", &format!("http://{admin}/console/login"), &[], "").await;
    let set = page.headers.get("set-cookie").unwrap().to_str().unwrap();
    let login_cookie = set.split(';').next().unwrap().to_owned();
    let nonce = login_cookie.split_once('=').unwrap().1.to_owned();
    let body = format!(
        "csrf={nonce}&user={ADMIN}&password={}",
        ADMIN_PASSWORD.replace(' ', "+")
    );
    let r = send(
        "POST",
        &format!("http://{admin}/console/login"),
        &[
            ("cookie", &login_cookie),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &body,
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let session = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("sg_session="))
        .unwrap();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"));
    session.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn console_forms_need_a_session_and_a_csrf_token() {
    let h = harness("").await;
    let admin = h.gateway.admin_addr;
    // Not signed in: pages redirect to the login form.
    let r = send("GET", &format!("http://{admin}/console/"), &[], "").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.headers.get("location").unwrap(), "/console/login");
    let login = send("GET", &format!("http://{admin}/console/login"), &[], "").await;
    assert_eq!(login.status, 200);
    let csp = login
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!login.text().contains("<script>"), "no inline script");
    // A login post without its CSRF token is refused.
    let r = send(
        "POST",
        &format!("http://{admin}/console/login"),
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("user={ADMIN}&password=x"),
    )
    .await;
    assert_eq!(r.status, 403);
    let session = console_login(admin).await;
    // Signed in, but a form post without the session's CSRF token is refused.
    let before = std::fs::read_to_string(h.dir.path("tokens.yaml")).unwrap();
    for body in [
        "",
        "csrf=wrong",
        "op=update&api=campaigns&scope=campaigns%3AGET",
    ] {
        let r = send(
            "POST",
            &format!("http://{admin}/console/tokens/SGreader/disable"),
            &[
                ("cookie", &session),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            body,
        )
        .await;
        assert_eq!(r.status, 403, "{body}");
        assert!(r.text().contains("CSRF"));
    }
    // A post from another origin is refused even with the token.
    let page = send(
        "GET",
        &format!("http://{admin}/console/tokens/SGreader"),
        &[("cookie", &session)],
        "",
    )
    .await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers.get("cache-control").unwrap(), "no-store");
    let text = page.text();
    let csrf = text
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let r = send(
        "POST",
        &format!("http://{admin}/console/tokens/SGreader/disable"),
        &[
            ("cookie", &session),
            ("origin", "http://evil.example"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        std::fs::read_to_string(h.dir.path("tokens.yaml")).unwrap(),
        before
    );
    // With the token, it works and the proxy refuses the token at once.
    let r = send(
        "POST",
        &format!("http://{admin}/console/tokens/SGreader/disable"),
        &[
            ("cookie", &session),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        proxy_get(&h, READER.sid, READER.secret, CAMPAIGNS).await,
        403
    );
    assert_eq!(h.upstream.count(), 0);
}

#[test]
fn hash_argon2_prints_a_phc_string_the_gateway_accepts() {
    let out = support::cli::with_input(&["hash", "--argon2"], b"s3cret pass\n");
    assert!(out.ok());
    let phc = out.stdout;
    let phc = phc.trim();
    assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
    assert!(!phc.contains("s3cret"));
    // The trailing newline is not part of the password.
    let parsed = argon2::PasswordHash::new(phc).unwrap();
    use argon2::PasswordVerifier;
    assert!(argon2::Argon2::default()
        .verify_password(b"s3cret pass", &parsed)
        .is_ok());
    // An empty password is refused.
    assert!(!support::cli::scopegate(&["hash", "--argon2"]).ok());
}

#[test]
fn bad_admin_users_are_reported_with_file_line_and_field() {
    let dir = TempDir::new();
    let good = scopegate::gateway::console::auth::hash_password(b"pw").unwrap();
    let yaml = gateway_yaml(
        "127.0.0.1:9".parse().unwrap(),
        &format!(
            "admin:\n  users:\n    - name: ops\n      password_hash: \"sha256:abcd\"\n    - name: \"bad name\"\n      password_hash: \"{good}\"\n    - name: dup\n      password_hash: \"{good}\"\n    - name: dup\n      password_hash: \"{good}\"\n    - name: x\n      password_hash: \"$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo\"\n    - name: y\n      pasword_hash: typo\n"
        ),
    );
    let config = dir.write("scopegate.yaml", &yaml);
    dir.write("tokens.yaml", "accounts: []\n");
    let out = support::cli::bin()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let file = config.display().to_string();
    for (line, field) in [
        (
            24,
            "admin.users[0].password_hash: the password hash is not an argon2id PHC string",
        ),
        (25, "admin.users[1].name: invalid admin user name"),
        (29, "admin.users[3].name: duplicate admin user `dup`"),
        (
            32,
            "admin.users[4].password_hash: the password hash uses `argon2i`, not argon2id",
        ),
        (
            34,
            "admin.users[5].pasword_hash: unknown field `pasword_hash`",
        ),
    ] {
        let want = format!("{file}:{line}: {field}");
        assert!(err.contains(&want), "missing `{want}` in:\n{err}");
    }
    assert!(err.starts_with("5 configuration errors"), "{err}");
    assert!(err.contains("scopegate hash --argon2"));
    assert!(!err.contains(&good), "no hash in errors");
}

/// A browser that remembered the API's Basic credentials sends them with any page's form
/// post: such writes are refused (403, or 415 for a body a form can make) before anything
/// changes, while API clients and same-origin requests go on working.
#[tokio::test]
async fn api_writes_from_web_pages_are_refused_and_change_nothing() {
    let h = harness("").await;
    let auth = admin_auth();
    let disable = api(&h, "/tokens/SGreader/disable");
    let from_pages: [(&str, &[(&str, &str)]); 4] = [
        ("a foreign Origin", &[("origin", "http://evil.example")]),
        ("an opaque Origin", &[("origin", "null")]),
        ("another port", &[("origin", "http://127.0.0.1:1")]),
        ("Sec-Fetch-Site", &[("sec-fetch-site", "cross-site")]),
    ];
    for (case, extra) in from_pages {
        let mut headers = vec![("authorization", auth.as_str())];
        headers.extend_from_slice(extra);
        let r = send("POST", &disable, &headers, "").await;
        assert_eq!(r.status, 403, "{case}: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "cross_origin", "{case}");
    }
    let create = json!({"account": "IRacme", "name": "from a form", "kind": "legacy"}).to_string();
    for media in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let headers = [("authorization", auth.as_str()), ("content-type", media)];
        let r = send("POST", &api(&h, "/tokens"), &headers, &create).await;
        assert_eq!(r.status, 415, "{media}: {}", r.text());
        let r = send("POST", &disable, &headers, "").await;
        assert_eq!(r.status, 415, "{media}");
    }
    let (s, v) = call(&h, "GET", "/tokens/SGreader", None).await;
    assert_eq!((s, &v["status"]), (200, &json!("active")), "{v}");
    let (_, listed) = call(&h, "GET", "/tokens", None).await;
    assert!(
        !listed.to_string().contains("from a form"),
        "no token was created"
    );
    // The console's own origin, and a client with no Origin, still write.
    let own = format!("http://{}", h.gateway.admin_addr);
    let headers = [("authorization", auth.as_str()), ("origin", own.as_str())];
    assert_eq!(send("POST", &disable, &headers, "").await.status, 200);
    let (s, v) = call(&h, "POST", "/tokens/SGreader/enable", None).await;
    assert_eq!((s, &v["status"]), (200, &json!("active")));
}

/// Guesses sent all at once are throttled as guesses in a row are: the throttle is asked
/// again when a password check slot is free, not only when the request arrived.
#[tokio::test]
async fn concurrent_password_guesses_are_throttled_too() {
    let h = harness("bruteforce: {max_failures: 3, cooloff: 60s}\n").await;
    let url = api(&h, "/tokens");
    let wrong = basic_raw(ADMIN, "not the password");
    let guesses: Vec<_> = (0..24)
        .map(|_| {
            let (url, wrong) = (url.clone(), wrong.clone());
            tokio::spawn(async move {
                send("GET", &url, &[("authorization", &wrong)], "")
                    .await
                    .status
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + throttled, statuses.len(), "{statuses:?}");
    // 3 failures trip it; at most the 3 other checks already running then finish as 401.
    assert!(checked <= 6, "{checked} guesses were checked: {statuses:?}");
    let r = admin_get(&h, "/tokens").await;
    assert_eq!(r.status, 429, "the right password during the cooling-off");
}

/// A changed password (a new hash in the config, picked up by the reload) ends the console
/// sessions opened with the old one, as a removed user's would end.
#[tokio::test]
async fn a_changed_password_ends_the_sessions_opened_with_the_old_one() {
    let h = harness("").await;
    let admin = h.gateway.admin_addr;
    let session = console_login(admin).await;
    let cards = format!("http://{admin}/console/");
    let r = send("GET", &cards, &[("cookie", &session)], "").await;
    assert_eq!(r.status, 200, "signed in");
    let new_hash = scopegate::gateway::console::auth::hash_password(b"a new password").unwrap();
    let yaml = std::fs::read_to_string(&h.config_path).unwrap();
    let old_hash = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("password_hash: "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    std::fs::write(&h.config_path, yaml.replace(&old_hash, &new_hash)).unwrap();
    scopegate::gateway::reload::reload_from(&h.gateway.shared, &h.config_path)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = send("GET", &cards, &[("cookie", &session)], "").await;
    assert_eq!(r.status, 303, "the old session is over: {}", r.text());
    assert_eq!(r.headers.get("location").unwrap(), "/console/login");
}

/// The admin listener keeps its own per-address count of failed logins: an API client
/// guessing SIDs on the main listener from the operators' address (a shared NAT, the TLS
/// proxy) cannot lock the admins out, and admin failures never throttle API clients.
#[tokio::test]
async fn proxy_and_admin_failures_are_counted_apart() {
    let h = harness("bruteforce: {max_failures_per_address: 3, cooloff: 60s}\n").await;
    let unknown = basic_raw("SGnosuchtoken", "wrong");
    let mut last = 0;
    for _ in 0..5 {
        last = send("GET", &h.url(CAMPAIGNS), &[("authorization", &unknown)], "")
            .await
            .status
            .as_u16();
    }
    assert_eq!(
        last, 429,
        "the main listener throttles the guessing address"
    );
    let (s, _) = call(&h, "GET", "/tokens", None).await;
    assert_eq!(
        s, 200,
        "the admin API is not locked by the main listener's failures"
    );

    let h = harness("bruteforce: {max_failures_per_address: 3, cooloff: 60s}\n").await;
    let wrong = basic_raw("nobody", "wrong");
    for _ in 0..5 {
        send("GET", &api(&h, "/tokens"), &[("authorization", &wrong)], "").await;
    }
    let r = admin_get(&h, "/tokens").await;
    assert_eq!(
        r.status, 429,
        "the admin listener throttles its own guesser"
    );
    let r = get(&h.url(CAMPAIGNS), Some(&READER)).await;
    assert_eq!(
        r.status, 200,
        "API clients are not throttled by admin failures"
    );
    assert_eq!(h.upstream.count(), 1);
}

/// Unknown user names are throttled exactly as real ones: a 429 that only real names could
/// earn would tell a guesser which admin names exist.
#[tokio::test]
async fn unknown_and_real_admin_names_are_throttled_alike() {
    let h = harness("bruteforce: {max_failures: 3, cooloff: 60s}\n").await;
    let mut seen = Vec::new();
    for name in [ADMIN, "nobody"] {
        let wrong = basic_raw(name, "not the password");
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let r = send("GET", &api(&h, "/tokens"), &[("authorization", &wrong)], "").await;
            statuses.push(r.status.as_u16());
        }
        seen.push(statuses);
    }
    assert_eq!(seen[0], [401, 401, 401, 429], "{seen:?}");
    assert_eq!(
        seen[0], seen[1],
        "the same answers for a real and an unknown name"
    );
}
