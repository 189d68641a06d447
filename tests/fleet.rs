//! Fleet-wide usage and limits (SPEC §13), through two real gateway replicas in front of
//! one upstream, a real `redis-server` and a real Prometheus scraping both replicas (see
//! `tests/support/redis_server.rs` and `tests/support/prom.rs`; without them the tests say
//! why and pass, except under `CI=true`, where they fail).

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use scopegate::gateway::usage::{ScopeRecord, UsageState};
use serde_json::Value;
use support::prom::*;
use support::redis_server::*;
use support::*;

const REPORTS: &str = "/Mediapartners/IRacme/Reports/daily";
const PUBLIC: &str = "/public/status";

/// One upstream, two replicas sharing `tokens.yaml`, each with its own `state_dir`.
struct Fleet {
    upstream: Upstream,
    replicas: Vec<scopegate::Running>,
    configs: Vec<PathBuf>,
    _dir: TempDir,
}

impl Fleet {
    async fn start(extra_gateway_yaml: &str, tokens: &str) -> Fleet {
        let upstream = Upstream::start().await;
        let dir = TempDir::new();
        dir.write("tokens.yaml", tokens);
        let mut replicas = Vec::new();
        let mut configs = Vec::new();
        for name in ["a", "b"] {
            let config = dir.write(
                &format!("scopegate-{name}.yaml"),
                &gateway_yaml(
                    upstream.addr,
                    &format!("state_dir: state-{name}\n{extra_gateway_yaml}"),
                ),
            );
            replicas.push(start_gateway(&config).await);
            configs.push(config);
        }
        Fleet {
            upstream,
            replicas,
            configs,
            _dir: dir,
        }
    }

    fn url(&self, replica: usize, path: &str) -> String {
        format!("http://{}{path}", self.replicas[replica].addr)
    }

    fn admins(&self) -> Vec<SocketAddr> {
        self.replicas.iter().map(|r| r.admin_addr).collect()
    }

    /// Both replicas' own records merged the way a fleet record must read: counts add
    /// up, the later last use wins.
    fn merged_local(&self) -> BTreeMap<String, Vec<ScopeRecord>> {
        let mut merged: BTreeMap<(String, String, String), ScopeRecord> = BTreeMap::new();
        for r in &self.replicas {
            let state = scopegate::gateway::usage::collect(&r.shared.registry, unix_now());
            for (sid, record) in state.tokens {
                for s in record.scopes {
                    let k = (sid.clone(), s.api.clone(), s.method.clone());
                    match merged.get_mut(&k) {
                        Some(m) => {
                            m.count += s.count;
                            m.last_used = m.last_used.max(s.last_used);
                        }
                        None => {
                            merged.insert(k, s);
                        }
                    }
                }
            }
        }
        let mut out: BTreeMap<String, Vec<ScopeRecord>> = BTreeMap::new();
        for ((sid, _, _), s) in merged {
            out.entry(sid).or_default().push(s);
        }
        out
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A fleet record's scopes, by SID, sorted like `merged_local`.
fn scopes_of(state: &UsageState) -> BTreeMap<String, Vec<ScopeRecord>> {
    state
        .tokens
        .iter()
        .map(|(sid, r)| {
            let mut s = r.scopes.clone();
            s.sort_by(|a, b| (&a.api, &a.method).cmp(&(&b.api, &b.method)));
            (sid.clone(), s)
        })
        .filter(|(_, s)| !s.is_empty())
        .collect()
}

/// A sample's value in a replica's `/metrics` (0 when absent).
async fn metric(admin: SocketAddr, series: &str) -> f64 {
    exposition::series_value(&metrics_at(admin).await, series).unwrap_or(0.0)
}

async fn expect(url: &str, who: &Fixture, method: &str, want: StatusCode) -> Reply {
    let r = send(method, url, &[("authorization", &basic(who))], "").await;
    assert_eq!(r.status, want, "{method} {url}: {}", r.text());
    r
}

/// The `unused_scopes` findings of an audit report: SID -> (unused, used) as
/// `api:METHOD` lists.
fn unused_findings(report: &Value) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let flat = |v: &Value| -> Vec<String> {
        let mut out = Vec::new();
        for s in v.as_array().into_iter().flatten() {
            for m in s["methods"].as_array().into_iter().flatten() {
                out.push(format!(
                    "{}:{}",
                    s["api"].as_str().unwrap(),
                    m.as_str().unwrap()
                ));
            }
        }
        out.sort();
        out
    };
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "unused_scopes")
        .map(|f| {
            (
                f["sid"].as_str().unwrap().to_owned(),
                (flat(&f["unused"]), flat(&f["scopes"])),
            )
        })
        .collect()
}

/// Traffic split over both replicas: the reader uses `campaigns` on A and `public` on B;
/// the writer `campaigns` POST on B and `reports` GET on A (never GET or DELETE on
/// campaigns). Then the fleet record in Redis, the Prometheus view and both audits must
/// show exactly the union, equal to the replicas' own records merged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_sees_the_scopes_used_on_either_replica() {
    let Some(redis) = redis_or_skip("audit_sees_the_scopes_used_on_either_replica").await else {
        return;
    };
    let Some((prometheus, _)) = prometheus_tools() else {
        return;
    };
    let usage = format!(
        "usage:\n  backend: redis\n  redis_url: {}\n  interval: 200ms\n",
        redis.url()
    );
    let fleet = Fleet::start(&usage, &tokens_yaml()).await;
    let prom = PrometheusServer::start(&prometheus, &fleet.admins(), None).await;

    for _ in 0..3 {
        expect(&fleet.url(0, CAMPAIGNS), &READER, "GET", StatusCode::OK).await;
    }
    expect(&fleet.url(1, PUBLIC), &READER, "GET", StatusCode::OK).await;
    for _ in 0..2 {
        expect(&fleet.url(1, CAMPAIGNS), &WRITER, "POST", StatusCode::OK).await;
    }
    expect(&fleet.url(0, REPORTS), &WRITER, "GET", StatusCode::OK).await;
    // Refused requests are no use of a scope.
    expect(
        &fleet.url(1, CAMPAIGNS),
        &READER,
        "POST",
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(fleet.upstream.count(), 7);
    let traffic_done = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();

    let want = fleet.merged_local();
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        [READER.sid, WRITER.sid],
        "{want:?}"
    );
    let used = |sid: &str| -> Vec<String> {
        want[sid]
            .iter()
            .map(|s| format!("{}:{}", s.api, s.method))
            .collect()
    };
    assert_eq!(used(READER.sid), ["campaigns:GET", "public:GET"]);
    assert_eq!(used(WRITER.sid), ["campaigns:POST", "reports:GET"]);

    // The fleet record in Redis: exactly the merged records, counts included. Polled:
    // each replica writes once per interval.
    let settings = scopegate::gateway::usage_redis::UsageRedisSettings {
        url: redis.url(),
        interval: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = scopegate::gateway::usage_redis::read_fleet(&settings, unix_now())
            .await
            .unwrap();
        if scopes_of(&state) == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Redis record never matched:\n{:#?}\nwant\n{want:#?}",
            scopes_of(&state)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Prometheus: once both replicas were scraped after the traffic, the fleet view is
    // the merged record (last use to the second, counts summed over replicas).
    prom.wait_scraped_after(2, traffic_done).await;
    let from_prom = scopegate::cli::promql::Prometheus::new(&prom.base)
        .unwrap()
        .usage(None, 3600)
        .await
        .unwrap()
        .0;
    assert_eq!(scopes_of(&from_prom), want, "Prometheus' view");

    // The audit, both ways: the writer's GET and DELETE on campaigns are unused; the
    // reader used everything it holds, though on two different replicas.
    let config = fleet.configs[0].clone();
    let base = prom.base.clone();
    let (by_prom, by_redis, by_local) = tokio::task::spawn_blocking(move || {
        (
            cli::audit(&config, &["--json", "--prometheus", &base]),
            cli::audit(&config, &["--json"]),
            cli::audit(&config, &["--json", "--state", "/nonexistent/usage.json"]),
        )
    })
    .await
    .unwrap();
    for (what, (code, stdout, stderr)) in [("--prometheus", by_prom), ("redis", by_redis)] {
        assert_eq!(code, 0, "audit {what}: {stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        let unused = unused_findings(&report);
        assert!(
            !unused.contains_key(READER.sid),
            "audit {what}: the reader used all its scopes, on two replicas: {stdout}"
        );
        assert_eq!(
            unused[WRITER.sid],
            (
                vec!["campaigns:DELETE".to_owned(), "campaigns:GET".to_owned()],
                vec!["campaigns:POST".to_owned(), "reports:GET".to_owned()]
            ),
            "audit {what}"
        );
        let notes = report["notes"].to_string();
        assert!(
            notes.contains(if what == "redis" {
                "Redis"
            } else {
                "Prometheus"
            }),
            "{notes}"
        );
    }
    // A named record that does not exist is an error, not an empty report.
    assert_eq!(by_local.0, 2, "{}", by_local.2);

    // A token the fleet never used is observed (unused) since the fleet record began,
    // not since the audit: with a 1 s window it is stale.
    let config = fleet.configs[0].clone();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        cli::audit(&config, &["--json", "--stale-after", "1s"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "stale_token" && f["sid"] == OTHER.sid),
        "{stdout}"
    );

    // `token show` reads the fleet record too: replica A saved nothing yet (its own
    // record is written once a minute), yet the writer's last use (on B) is shown.
    let last = want[WRITER.sid].iter().map(|s| s.last_used).max().unwrap();
    let config = fleet.configs[0].clone();
    let out = tokio::task::spawn_blocking(move || {
        support::cli::bin()
            .args(["token", "show", WRITER.sid, "--json", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let shown_at = time::OffsetDateTime::parse(
        shown["last_used"].as_str().expect("last_used from Redis"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(shown_at.unix_timestamp(), last);
}

/// The gateway's `rate_limit` block with the Redis backend and plenty of room.
fn redis_limits(redis: &RedisServer, on_error: &str) -> String {
    format!(
        "rate_limit:\n  requests_per_second: 10000\n  burst: 10000\n  backend: redis\n  \
         redis_url: {}\n  redis_timeout: 200ms\n  on_redis_error: {on_error}\n",
        redis.url()
    )
}

/// A daily quota of 200 on the reader, 300 requests alternating over two replicas:
/// exactly 200 reach the upstream, and the 429s name the quota policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_holds_across_two_replicas() {
    let Some(redis) = redis_or_skip("a_quota_holds_across_two_replicas").await else {
        return;
    };
    let tokens = with_token_lines(
        &tokens_yaml(),
        "reader",
        "        quota: {requests: 200, per: day}\n",
    );
    let fleet = Fleet::start(&redis_limits(&redis, "local"), &tokens).await;
    let mut allowed = [0usize; 2];
    let mut refusal = None;
    for i in 0..300 {
        let r = get(&fleet.url(i % 2, CAMPAIGNS), Some(&READER)).await;
        match r.status {
            StatusCode::OK => {
                allowed[i % 2] += 1;
                let policy = r.headers["ratelimit-policy"].to_str().unwrap();
                assert!(policy.contains("\"quota\";q=200;w=86400"), "{policy}");
            }
            StatusCode::TOO_MANY_REQUESTS => {
                refusal.get_or_insert(r);
            }
            other => panic!("request {i}: {other}"),
        }
    }
    let total = allowed[0] + allowed[1];
    assert!(
        (198..=202).contains(&total),
        "within 1% of 200: {allowed:?}"
    );
    assert_eq!(total, 200, "the count is atomic in Redis: exact");
    assert!(
        allowed[0] > 50 && allowed[1] > 50,
        "both replicas served: {allowed:?}"
    );
    assert_eq!(
        fleet.upstream.count(),
        200,
        "refused requests never reach the upstream"
    );
    let r = refusal.expect("requests past the quota were refused");
    assert_eq!(r.headers["ratelimit-policy"], "\"quota\";q=200;w=86400");
    let ratelimit = r.headers["ratelimit"].to_str().unwrap();
    assert!(ratelimit.starts_with("\"quota\";r=0;t="), "{ratelimit}");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        (1..=86_400).contains(&retry),
        "until the UTC day ends: {retry}"
    );
    // Other tokens are not touched by the reader's quota.
    expect(&fleet.url(0, CAMPAIGNS), &WRITER, "GET", StatusCode::OK).await;
}

/// A scope's `rate_limit` replaces the token's for that API, shared across replicas in
/// Redis; a scope's `quota` counts that API alone and is named `quota-<api>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_scope_limits_hold_across_two_replicas() {
    let Some(redis) = redis_or_skip("per_scope_limits_hold_across_two_replicas").await else {
        return;
    };
    let tokens = tokens_yaml().replace(
        "          - {api: campaigns, methods: [GET, POST, DELETE]}\n          - {api: reports, methods: [GET]}\n",
        "          - {api: campaigns, methods: [GET, POST, DELETE], rate_limit: {requests_per_second: 0.0002, burst: 5}}\n          - {api: reports, methods: [GET], quota: {requests: 3, per: month}}\n",
    );
    assert_ne!(tokens, tokens_yaml(), "fixture changed");
    let fleet = Fleet::start(&redis_limits(&redis, "local"), &tokens).await;

    let mut ok = 0;
    for i in 0..12 {
        let r = get(&fleet.url(i % 2, CAMPAIGNS), Some(&WRITER)).await;
        match r.status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(
                    r.headers["ratelimit-policy"],
                    "\"scope-campaigns\";q=5;w=25000"
                );
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(ok, 5, "one burst of 5 for the scope, across both replicas");
    let mut ok = 0;
    for i in 0..6 {
        let r = get(&fleet.url(i % 2, REPORTS), Some(&WRITER)).await;
        match r.status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let policy = r.headers["ratelimit-policy"].to_str().unwrap();
                assert!(policy.starts_with("\"quota-reports\";q=3;w="), "{policy}");
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(ok, 3, "the reports quota, across both replicas");
    // The token's own limit (the default here) still governs its other users: the
    // reader is unaffected by the writer's scope limits.
    for i in 0..10 {
        expect(&fleet.url(i % 2, CAMPAIGNS), &READER, "GET", StatusCode::OK).await;
    }
    assert_eq!(fleet.upstream.count(), 5 + 3 + 10);
}

/// A token quota and a scope quota together: a request takes from both or from none, so
/// requests refused by the scope's quota leave the token's untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_scope_quotas_take_all_or_nothing() {
    let Some(redis) = redis_or_skip("token_and_scope_quotas_take_all_or_nothing").await else {
        return;
    };
    let tokens = with_token_lines(
        &tokens_yaml(),
        "writer",
        "        quota: {requests: 4, per: day}\n",
    )
    .replace(
        "          - {api: reports, methods: [GET]}\n",
        "          - {api: reports, methods: [GET], quota: {requests: 2, per: day}}\n",
    );
    let fleet = Fleet::start(&redis_limits(&redis, "local"), &tokens).await;
    let ok = expect(&fleet.url(0, REPORTS), &WRITER, "GET", StatusCode::OK).await;
    // Each policy's remaining units, by name, from the `RateLimit` list.
    let remaining: Vec<(String, String)> = ok.headers["ratelimit"]
        .to_str()
        .unwrap()
        .split(", ")
        .map(|item| {
            let (name, params) = item.split_once(';').unwrap();
            let r = params
                .split(';')
                .find_map(|p| p.strip_prefix("r="))
                .unwrap();
            (name.to_owned(), r.to_owned())
        })
        .collect();
    assert_eq!(
        remaining[1..],
        [
            ("\"quota\"".to_owned(), "3".to_owned()),
            ("\"quota-reports\"".to_owned(), "1".to_owned())
        ],
        "both quotas are reported: {remaining:?}"
    );
    expect(&fleet.url(1, REPORTS), &WRITER, "GET", StatusCode::OK).await;
    for i in 0..3 {
        let r = expect(
            &fleet.url(i % 2, REPORTS),
            &WRITER,
            "GET",
            StatusCode::TOO_MANY_REQUESTS,
        )
        .await;
        let policy = r.headers["ratelimit-policy"].to_str().unwrap();
        assert!(
            policy.starts_with("\"quota-reports\";q=2;w=86400"),
            "{policy}"
        );
    }
    // The refused reports requests did not count against the token: 2 of 4 left.
    expect(&fleet.url(0, CAMPAIGNS), &WRITER, "GET", StatusCode::OK).await;
    expect(&fleet.url(1, CAMPAIGNS), &WRITER, "GET", StatusCode::OK).await;
    let r = expect(
        &fleet.url(0, CAMPAIGNS),
        &WRITER,
        "GET",
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert_eq!(r.headers["ratelimit-policy"], "\"quota\";q=4;w=86400");
    assert_eq!(fleet.upstream.count(), 4);
}

/// Without Redis, a scope's `rate_limit` is enforced by the replica's own bucket.
#[tokio::test]
async fn per_scope_rate_limit_with_the_local_limiter() {
    let tokens = tokens_yaml().replace(
        "          - {api: reports, methods: [GET]}\n",
        "          - {api: reports, methods: [GET], rate_limit: {requests_per_second: 0.0002, burst: 2}}\n",
    );
    let h = Harness::start_with("", &tokens).await;
    for _ in 0..2 {
        expect(&h.url(REPORTS), &WRITER, "GET", StatusCode::OK).await;
    }
    let r = expect(
        &h.url(REPORTS),
        &WRITER,
        "GET",
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert_eq!(
        r.headers["ratelimit-policy"],
        "\"scope-reports\";q=2;w=10000"
    );
    assert!(r.headers.contains_key("retry-after"));
    // The token's other scope keeps the token's (default) limit.
    for _ in 0..5 {
        expect(&h.url(CAMPAIGNS), &WRITER, "GET", StatusCode::OK).await;
    }
    assert_eq!(h.upstream.count(), 7);
}

/// Redis killed mid-run. `on_redis_error: local`: quota requests pass uncounted and each
/// is counted as an error; `deny`: 429 with `Retry-After: 1`. Never a hang: every request
/// answers within a bound well under the test's patience. The usage writer counts its
/// failed writes and catches up once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_follows_the_configured_mode() {
    let Some(mut redis) = redis_or_skip("redis_killed_mid_run_follows_the_configured_mode").await
    else {
        return;
    };
    let tokens = with_token_lines(
        &tokens_yaml(),
        "reader",
        "        quota: {requests: 1000, per: month}\n",
    );
    let usage = format!(
        "usage:\n  backend: redis\n  redis_url: {}\n  interval: 200ms\n  redis_timeout: 200ms\n",
        redis.url()
    );
    let open = Fleet::start(
        &format!("{}{usage}", redis_limits(&redis, "local")),
        &tokens,
    )
    .await;
    let closed_dir = TempDir::new();
    closed_dir.write("tokens.yaml", &tokens);
    let closed_cfg = closed_dir.write(
        "scopegate.yaml",
        &gateway_yaml(open.upstream.addr, &redis_limits(&redis, "deny")),
    );
    let closed = start_gateway(&closed_cfg).await;

    for _ in 0..3 {
        expect(&open.url(0, CAMPAIGNS), &READER, "GET", StatusCode::OK).await;
        let r = get(&format!("http://{}{CAMPAIGNS}", closed.addr), Some(&READER)).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    redis.stop();

    let admin = open.replicas[0].admin_addr;
    let quota_errors = "scopegate_quota_backend_errors_total";
    let before = metric(admin, quota_errors).await;
    for i in 0..10 {
        let started = Instant::now();
        let r = get(&open.url(i % 2, CAMPAIGNS), Some(&READER)).await;
        assert_eq!(r.status, StatusCode::OK, "fail-open: allowed");
        assert!(
            r.headers["ratelimit-policy"].to_str().unwrap() == "\"default\";q=10000;w=1",
            "uncounted: no quota item while Redis is down"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "request {i} hung"
        );

        let started = Instant::now();
        let r = get(&format!("http://{}{CAMPAIGNS}", closed.addr), Some(&READER)).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "fail-closed");
        assert_eq!(r.headers["retry-after"], "1");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "request {i} hung"
        );
    }
    assert!(
        metric(admin, quota_errors).await >= before + 5.0,
        "fail-open decisions are counted"
    );
    // The fail-closed replica refused at its (shared) rate limit already, counted.
    let closed_errors = metric(
        closed.admin_addr,
        "scopegate_rate_limit_backend_errors_total{backend=\"redis\"}",
    )
    .await;
    assert!(closed_errors >= 10.0, "{closed_errors}");
    assert_eq!(open.upstream.count(), 6 + 10);

    // The usage writer's failures are counted too; nothing is lost once Redis is back.
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(admin, "scopegate_usage_backend_errors_total").await < 1.0 {
        assert!(Instant::now() < deadline, "usage write errors not counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    redis.restart().await;
    let settings = scopegate::gateway::usage_redis::UsageRedisSettings {
        url: redis.url(),
        interval: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
    };
    let want = open.merged_local();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = scopegate::gateway::usage_redis::read_fleet(&settings, unix_now()).await;
        if let Ok(state) = state {
            let got = scopes_of(&state);
            // A fresh Redis: last uses are all re-sent; counts only what was not yet sent.
            let last = |m: &BTreeMap<String, Vec<ScopeRecord>>| -> Vec<(String, String, i64)> {
                m.iter()
                    .flat_map(|(sid, v)| {
                        v.iter()
                            .map(move |s| (sid.clone(), s.api.clone(), s.last_used))
                    })
                    .collect()
            };
            if !got.is_empty() && last(&got) == last(&want) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the usage record did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    closed.shutdown().await;
}

/// Quota, scope limits and the usage backend are validated with the rest of the files.
#[test]
fn limits_and_usage_settings_are_validated() {
    let dir = TempDir::new();
    let load = |gateway_extra: &str, tokens: &str| {
        let cfg = dir.write(
            "scopegate.yaml",
            &gateway_yaml("127.0.0.1:1".parse().unwrap(), gateway_extra),
        );
        dir.write("tokens.yaml", tokens);
        scopegate::config::load(&cfg)
    };
    let fields = |gateway_extra: &str, tokens: &str| -> Vec<String> {
        match load(gateway_extra, tokens) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.field.clone()).collect(),
        }
    };
    let redis = "rate_limit:\n  requests_per_second: 10\n  backend: redis\n";
    let quota = with_token_lines(
        &tokens_yaml(),
        "reader",
        "        quota: {requests: 10, per: day}\n",
    );
    let summary = scopegate::cli::check::summary(&load(redis, &quota).unwrap());
    assert!(
        summary.contains("rate limits shared in Redis, 1 quota(s); usage record per replica"),
        "{summary}"
    );
    assert_eq!(
        fields("", &quota),
        ["accounts[0].tokens[0].quota"],
        "a quota needs Redis"
    );
    let zero = quota.replace("requests: 10", "requests: 0");
    assert_eq!(
        fields(redis, &zero),
        ["accounts[0].tokens[0].quota.requests"]
    );
    let week = quota.replace("per: day", "per: week");
    assert!(load(redis, &week).is_err());
    let scope = |extra: &str| {
        tokens_yaml().replace(
            "          - {api: reports, methods: [GET]}\n",
            &format!("          - {{api: reports, methods: [GET]{extra}}}\n"),
        )
    };
    assert!(load("", &scope(", rate_limit: {requests_per_second: 1}")).is_ok());
    assert_eq!(
        fields("", &scope(", rate_limit: {requests_per_second: 0}")),
        ["accounts[0].tokens[1].scopes[1].rate_limit.requests_per_second"]
    );
    assert_eq!(
        fields("", &scope(", quota: {requests: 5, per: month}")),
        ["accounts[0].tokens[1].scopes[1].quota"]
    );
    assert!(load(redis, &scope(", quota: {requests: 5, per: month}")).is_ok());
    let twice = tokens_yaml().replace(
        "          - {api: reports, methods: [GET]}\n",
        "          - {api: reports, methods: [GET], rate_limit: {requests_per_second: 1}}\n          - {api: reports, methods: [HEAD], rate_limit: {requests_per_second: 2}}\n",
    );
    assert_eq!(fields("", &twice), ["accounts[0].tokens[1].scopes[2]"]);
    let shadow = with_token_lines(
        &tokens_yaml(),
        "reader",
        "        shadow_scopes: [{api: campaigns, methods: [GET], rate_limit: {requests_per_second: 1}}]\n",
    );
    assert_eq!(
        fields("", &shadow),
        ["accounts[0].tokens[0].shadow_scopes[0]"]
    );

    assert!(load(
        "usage:\n  backend: redis\n  interval: 30s\n",
        &tokens_yaml()
    )
    .is_ok());
    assert_eq!(
        fields("usage:\n  backend: redis\n  interval: 0s\n", &tokens_yaml()),
        ["usage.interval"]
    );
    assert_eq!(
        fields(
            "usage:\n  backend: redis\n  redis_url: http://x\n",
            &tokens_yaml()
        ),
        ["usage.redis_url"]
    );
    assert_eq!(
        fields(
            "usage:\n  redis_url: redis://127.0.0.1:6379\n",
            &tokens_yaml()
        ),
        ["usage.backend"]
    );
}

/// `audit --prometheus` with a server that is not there fails clearly (exit 2), without
/// hanging.
#[test]
fn audit_prometheus_unreachable_is_an_error() {
    let h = TempDir::new();
    let cfg = h.write(
        "scopegate.yaml",
        &gateway_yaml("127.0.0.1:1".parse().unwrap(), ""),
    );
    h.write("tokens.yaml", &tokens_yaml());
    let refusing = RefusingAddr::new();
    let port = refusing.addr.port();
    let started = Instant::now();
    let (code, _, stderr) =
        cli::audit(&cfg, &["--prometheus", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let (code, _, stderr) = cli::audit(&cfg, &["--prometheus", "ftp://x"]);
    assert_eq!(code, 2, "{stderr}");
}

/// `token show` shows the token's quota and its scopes' own limits.
#[test]
fn token_show_lists_quota_and_scope_limits() {
    let dir = TempDir::new();
    let cfg = dir.write(
        "scopegate.yaml",
        &gateway_yaml(
            "127.0.0.1:1".parse().unwrap(),
            "rate_limit:\n  requests_per_second: 10\n  backend: redis\n",
        ),
    );
    let tokens = with_token_lines(
        &tokens_yaml(),
        "writer",
        "        quota: {requests: 1000, per: month}\n",
    )
    .replace(
        "          - {api: reports, methods: [GET]}\n",
        "          - {api: reports, methods: [GET], rate_limit: {requests_per_second: 1, burst: 3}, quota: {requests: 50, per: day}}\n",
    );
    dir.write("tokens.yaml", &tokens);
    let show = |json: bool| {
        let mut cmd = support::cli::bin();
        cmd.args(["token", "show", WRITER.sid, "--config"])
            .arg(&cfg);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let card = show(false);
    assert!(card.contains("1000 requests per month (UTC)"), "{card}");
    assert!(
        card.contains("reports rate limit: 1 requests/s, burst 3"),
        "{card}"
    );
    assert!(
        card.contains("reports quota: 50 requests per day (UTC)"),
        "{card}"
    );
    let v: Value = serde_json::from_str(&show(true)).unwrap();
    assert_eq!(v["quota"]["requests"], 1000);
    assert_eq!(v["scope_limits"][0]["api"], "reports");
    assert_eq!(v["scope_limits"][0]["quota"]["per"], "day");
    assert_eq!(v["scope_limits"][0]["rate_limit"]["burst"], 3);
}
