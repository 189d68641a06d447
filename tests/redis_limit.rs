//! Shared rate limits in Redis (`rate_limit.backend: redis`), through real gateways and a
//! real `redis-server` that each test starts on a free port (Debian package
//! `redis-server`; `.ci/install-redis.sh` installs it). Without `redis-server` the tests
//! print why and pass, except under `CI=true`, where they fail.
//!
//! Limits refill once per 5000 s, so the counts are exact without any clock games.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::StatusCode;
use support::redis_server::*;
use support::*;

/// The gateway's `rate_limit` block for the Redis backend.
fn redis_yaml(redis: &RedisServer, on_error: &str, timeout: &str) -> String {
    format!(
        "rate_limit:\n  requests_per_second: 1000\n  burst: 1000\n  backend: redis\n  \
         redis_url: {}\n  redis_timeout: {timeout}\n  on_redis_error: {on_error}\n",
        redis.url()
    )
}

/// The fixture tokens, the reader and the writer with `burst` and no refill to speak of.
fn tokens_with_burst(burst: u32) -> String {
    let limit = format!("{{requests_per_second: 0.0002, burst: {burst}}}");
    tokens_with_limits(&limit, &limit)
}

fn campaigns(gateway: SocketAddr) -> String {
    format!("http://{gateway}{CAMPAIGNS}")
}

/// `scopegate_rate_limit_backend_errors_total{backend="redis"}` of one gateway.
async fn backend_errors(admin: SocketAddr) -> u64 {
    let text = metrics_at(admin).await;
    exposition::series_value(
        &text,
        "scopegate_rate_limit_backend_errors_total{backend=\"redis\"}",
    )
    .unwrap_or_else(|| panic!("no Redis backend error counter in:\n{text}")) as u64
}

/// Sends `n` reader requests alternating between the gateways; returns the 200s per
/// gateway. Anything but 200 or 429 fails the test.
async fn alternate(gateways: &[SocketAddr], n: usize, who: &Fixture) -> Vec<usize> {
    let mut allowed = vec![0; gateways.len()];
    for i in 0..n {
        let g = i % gateways.len();
        let r = get(&campaigns(gateways[g]), Some(who)).await;
        match r.status {
            StatusCode::OK => allowed[g] += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!(
                "request {i} to gateway {g}: unexpected {other}: {}",
                r.text()
            ),
        }
    }
    allowed
}

/// Polls `gateway` with reader requests until one is allowed (the caller arranges that
/// only Redis can allow it), within a deadline.
async fn until_allowed(gateway: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(&campaigns(gateway), Some(&READER)).await;
        match r.status {
            StatusCode::OK => return,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("{what}: unexpected {other}: {}", r.text()),
        }
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_budget_per_token() {
    let Some(redis) = redis_or_skip("two_gateways_share_one_budget_per_token").await else {
        return;
    };
    // A generous timeout: this test is about sharing, not about failures.
    let h = Harness::start_with(&redis_yaml(&redis, "local", "2s"), &tokens_with_burst(20)).await;
    let second = start_gateway(&h.config_path).await;
    let gateways = [h.addr(), second.addr];

    let first = get(&campaigns(gateways[0]), Some(&READER)).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.headers["ratelimit-remaining"], "19");
    assert_eq!(first.headers["ratelimit-limit"], "20");
    let allowed = alternate(&gateways, 99, &READER).await;
    let total = 1 + allowed[0] + allowed[1];
    assert!(
        (19..=21).contains(&total),
        "burst 20 shared by two gateways: {total} allowed ({allowed:?} after the first)"
    );
    assert!(
        allowed.iter().all(|&n| n > 0 && n < 19),
        "both gateways drew on the one budget: {allowed:?}"
    );
    assert_eq!(h.upstream.count(), total, "each 429 reached nothing");
    let limited = get(&campaigns(gateways[1]), Some(&READER)).await;
    assert_eq!(limited.status, 429);
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 4000, "one request per 5000 s: retry after {retry}");
    let ttl = redis
        .bucket_ttl_ms(READER.sid)
        .await
        .expect("the bucket is in Redis");
    assert!(ttl > 0, "the bucket key expires");

    // Concurrent requests through both gateways at once: the script is atomic.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let url = campaigns(gateways[i % 2]);
        tasks.push(tokio::spawn(async move {
            get(&url, Some(&WRITER)).await.status
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        (19..=21).contains(&ok),
        "writer, 60 concurrent: {ok} allowed"
    );

    for admin in [h.gateway.admin_addr, second.admin_addr] {
        assert_eq!(
            backend_errors(admin).await,
            0,
            "every decision came from Redis"
        );
    }
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_with_on_redis_error_local_falls_back_per_replica_then_recovers() {
    let test = "outage_with_on_redis_error_local_falls_back_per_replica_then_recovers";
    let Some(mut redis) = redis_or_skip(test).await else {
        return;
    };
    let h = Harness::start_with(&redis_yaml(&redis, "local", "500ms"), &tokens_with_burst(5)).await;
    let second = start_gateway(&h.config_path).await;
    let (a, b) = (h.addr(), second.addr);

    // Shared: 5 across both gateways, then 429.
    assert_eq!(
        alternate(&[a, b], 6, &READER).await.iter().sum::<usize>(),
        5
    );
    assert_eq!(backend_errors(h.gateway.admin_addr).await, 0);

    // Redis goes away: gateway A keeps serving under its own (per-replica) limit.
    redis.stop();
    let start = Instant::now();
    for i in 0..5 {
        let r = get(&campaigns(a), Some(&READER)).await;
        assert_eq!(
            r.status, 200,
            "request {i} during the outage: local limiter"
        );
    }
    let r = get(&campaigns(a), Some(&READER)).await;
    assert_eq!(r.status, 429, "the local limiter still limits");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the outage did not stall requests: {:?}",
        start.elapsed()
    );
    assert!(backend_errors(h.gateway.admin_addr).await >= 6);

    // Redis returns, empty. A's local bucket is spent, so only Redis can allow again.
    redis.restart().await;
    until_allowed(a, "gateway A back on Redis").await;
    assert!(redis.bucket_ttl_ms(READER.sid).await.is_some());
    // The Redis bucket has 4 left, shared again by both gateways (B's own local bucket
    // is still full: a B falling back would allow more).
    let allowed = alternate(&[a, b], 10, &READER).await;
    assert_eq!(
        allowed.iter().sum::<usize>(),
        4,
        "shared limit after recovery: {allowed:?}"
    );
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_with_on_redis_error_deny_answers_429_then_recovers() {
    let test = "outage_with_on_redis_error_deny_answers_429_then_recovers";
    let Some(mut redis) = redis_or_skip(test).await else {
        return;
    };
    let h = Harness::start_with(&redis_yaml(&redis, "deny", "500ms"), &tokens_with_burst(5)).await;
    let admin = h.gateway.admin_addr;
    assert_eq!(get(&h.url(CAMPAIGNS), Some(&READER)).await.status, 200);

    redis.stop();
    for i in 0..5 {
        let start = Instant::now();
        let r = get(&h.url(CAMPAIGNS), Some(&READER)).await;
        assert_eq!(r.status, 429, "request {i} during the outage: fail closed");
        assert_eq!(r.headers["retry-after"], "1");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "answered without waiting on Redis: {:?}",
            start.elapsed()
        );
    }
    // Other tokens are refused too: nothing is decided without Redis.
    assert_eq!(get(&h.url(CAMPAIGNS), Some(&WRITER)).await.status, 429);
    assert_eq!(h.upstream.count(), 1, "nothing passed during the outage");
    assert!(backend_errors(admin).await >= 6);

    // Redis returns, empty: a fresh shared bucket of 5 (the first allowed one included).
    redis.restart().await;
    until_allowed(h.addr(), "gateway back on Redis").await;
    for i in 0..4 {
        assert_eq!(
            get(&h.url(CAMPAIGNS), Some(&READER)).await.status,
            200,
            "request {i} after recovery"
        );
    }
    assert_eq!(get(&h.url(CAMPAIGNS), Some(&READER)).await.status, 429);
    assert!(redis.bucket_ttl_ms(READER.sid).await.is_some());
}

/// The `rate_limit` block's Redis fields are validated with the rest of the file (no
/// Redis needed).
#[test]
fn redis_settings_are_validated() {
    let parse = |block: &str| {
        let yaml = format!(
            "{}rate_limit:\n  requests_per_second: 10\n{block}",
            gateway_yaml("127.0.0.1:1".parse().unwrap(), "")
        );
        scopegate::config::parse_gateway(std::path::Path::new("/c/scopegate.yaml"), &yaml)
    };
    let fields = |block: &str| -> Vec<String> {
        match parse(block) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.field.clone()).collect(),
        }
    };
    assert!(parse("").is_ok());
    assert!(parse("  backend: local\n").is_ok());
    assert!(parse("  backend: redis\n").is_ok(), "defaults for the rest");
    assert!(parse(
        "  backend: redis\n  redis_url: redis://:pw@redis.internal:6380/2\n  \
         redis_timeout: 20ms\n  on_redis_error: deny\n"
    )
    .is_ok());
    assert_eq!(
        fields("  backend: redis\n  redis_url: rediss://redis.internal:6380\n"),
        ["rate_limit.redis_url"],
        "no TLS to Redis in this build"
    );
    assert_eq!(
        fields("  backend: redis\n  redis_url: http://x\n"),
        ["rate_limit.redis_url"]
    );
    assert_eq!(
        fields("  backend: redis\n  redis_timeout: 0s\n"),
        ["rate_limit.redis_timeout"]
    );
    assert_eq!(
        fields("  redis_url: redis://127.0.0.1:6379\n"),
        ["rate_limit.backend"],
        "a Redis URL without backend: redis would silently limit per replica"
    );
    let err = parse("  backend: redis\n  on_redis_error: maybe\n").unwrap_err();
    assert!(err.to_string().contains("maybe"), "{err}");
    assert!(parse("  backend: memcached\n").is_err());
}
