//! Per-token rate limits, quota headers and the failed-authentication throttle, through
//! the real gateway. Limits are chosen so that no refill can happen during a test (one
//! request per hour after the burst), so the counts are exact without any clock games.

mod support;

use support::*;

const SLOW3: &str = "{requests_per_second: 0.0002, burst: 3}";
const SLOW5: &str = "{requests_per_second: 0.0002, burst: 5}";

#[tokio::test]
async fn burst_then_429_with_headers_and_tokens_do_not_share_quota() {
    let h = Harness::start_with("", &tokens_with_limits(SLOW3, SLOW5)).await;
    for expected_remaining in ["2", "1", "0"] {
        let r = get(&h.url(CAMPAIGNS), Some(&READER)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.headers["ratelimit-remaining"], expected_remaining);
        assert_eq!(r.headers["ratelimit-limit"], "3");
        assert!(r.headers["ratelimit-policy"]
            .to_str()
            .unwrap()
            .starts_with("\"default\";q=3;w="));
        assert!(r.headers["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with(&format!("\"default\";r={expected_remaining};t=")));
    }
    let limited = get(&h.url(CAMPAIGNS), Some(&READER)).await;
    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.text(),
        r#"{"error":"rate_limited","message":"Too Many Requests"}"#
    );
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 4000, "one request per 5000 s: retry after {retry}");
    assert_eq!(limited.headers["ratelimit-remaining"], "0");
    assert_eq!(h.upstream.count(), 3, "the 429 reached nothing");
    // The writer's bucket is its own.
    for _ in 0..5 {
        assert_eq!(get(&h.url(CAMPAIGNS), Some(&WRITER)).await.status, 200);
    }
    assert_eq!(get(&h.url(CAMPAIGNS), Some(&WRITER)).await.status, 429);
    let m = metrics(&h).await;
    assert!(m.contains(&format!(
        "scopegate_requests_total{{account=\"IRacme\",api=\"campaigns\",decision=\"rate_limited\",method=\"GET\",token=\"{}\"}} 1",
        READER.sid
    )), "{m}");
    assert!(m.contains(&format!(
        "scopegate_rate_limit_remaining{{token=\"{}\"}} 0",
        READER.sid
    )));
}

#[tokio::test]
async fn refused_requests_do_not_consume_quota() {
    let h = Harness::start_with("", &tokens_with_limits(SLOW3, SLOW5)).await;
    for _ in 0..5 {
        let r = send(
            "POST",
            &h.url(CAMPAIGNS),
            &[("authorization", &basic(&READER))],
            "",
        )
        .await;
        assert_eq!(r.status, 403);
    }
    for _ in 0..3 {
        assert_eq!(get(&h.url(CAMPAIGNS), Some(&READER)).await.status, 200);
    }
    assert_eq!(get(&h.url(CAMPAIGNS), Some(&READER)).await.status, 429);
}

#[tokio::test]
async fn a_reload_changing_one_limit_keeps_the_other_tokens_state() {
    let h = Harness::start_with("", &tokens_with_limits(SLOW3, SLOW5)).await;
    for _ in 0..3 {
        assert_eq!(get(&h.url(CAMPAIGNS), Some(&READER)).await.status, 200);
        assert_eq!(get(&h.url(CAMPAIGNS), Some(&WRITER)).await.status, 200);
    }
    // Raise the writer's limit; the reader's limit is unchanged and so is its bucket.
    h.dir.write(
        "tokens.yaml",
        &tokens_with_limits(SLOW3, "{requests_per_second: 0.0002, burst: 10}"),
    );
    let shared = h.gateway.shared.clone();
    let generation = scopegate::gateway::reload::reload_from(&shared, &h.config_path)
        .await
        .unwrap();
    assert_eq!(generation, 2);
    assert_eq!(
        get(&h.url(CAMPAIGNS), Some(&READER)).await.status,
        429,
        "reader's spent bucket survived the reload"
    );
    for _ in 0..10 {
        assert_eq!(
            get(&h.url(CAMPAIGNS), Some(&WRITER)).await.status,
            200,
            "writer got the new limit"
        );
    }
    assert_eq!(get(&h.url(CAMPAIGNS), Some(&WRITER)).await.status, 429);
}

const THROTTLE: &str =
    "bruteforce:\n  max_failures: 3\n  max_failures_per_address: 50\n  cooloff: 1h\n";

#[tokio::test]
async fn wrong_secrets_throttle_the_sid_even_with_the_right_secret() {
    let h = Harness::start_with(THROTTLE, &tokens_yaml()).await;
    let wrong = Fixture {
        sid: READER.sid,
        secret: "guess",
    };
    for _ in 0..3 {
        assert_eq!(get(&h.url(CAMPAIGNS), Some(&wrong)).await.status, 403);
    }
    let r = get(&h.url(CAMPAIGNS), Some(&READER)).await;
    assert_eq!(r.status, 429, "throttled despite the right secret");
    assert_eq!(r.headers["retry-after"], "3600");
    assert_eq!(h.upstream.count(), 0);
    // Other tokens from the same address are unaffected.
    assert_eq!(get(&h.url(CAMPAIGNS), Some(&WRITER)).await.status, 200);
    let m = metrics(&h).await;
    assert!(
        m.contains("scopegate_bruteforce_throttled_total{kind=\"sid\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn failures_from_one_address_throttle_the_address() {
    let throttle =
        "bruteforce:\n  max_failures: 100\n  max_failures_per_address: 5\n  cooloff: 1h\n";
    let h = Harness::start_with(throttle, &tokens_yaml()).await;
    for i in 0..5 {
        let random = Fixture {
            sid: Box::leak(format!("SGguess{i}").into_boxed_str()),
            secret: "x",
        };
        assert_eq!(get(&h.url(CAMPAIGNS), Some(&random)).await.status, 403);
    }
    assert_eq!(get(&h.url(CAMPAIGNS), Some(&READER)).await.status, 429);
    assert_eq!(h.upstream.count(), 0);
}
