//! The per-request decision: parse Basic, look the token up, verify its hash, canonicalize
//! the target, match the catalog, and count the request, with 20, 10,000 and 100,000
//! tokens of 20 scopes each. The cost must not grow with the token count.

use std::hint::black_box;
use std::path::Path;

use base64::Engine;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::{HeaderMap, HeaderValue};

use scopegate::domain::auth::parse_basic;
use scopegate::domain::decision::{decide, Ask};
use scopegate::domain::model::{method_index, SecretHash};
use scopegate::domain::scope::canonicalize;
use scopegate::gateway::metrics::{DecisionLabel, Metrics};
use scopegate::gateway::runtime::RuntimeRegistry;
use scopegate::gateway::snapshot::Policy;

const APIS: usize = 24;

fn gateway_yaml() -> String {
    let mut s = String::from(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nrate_limit: {requests_per_second: 1000000000, burst: 1000000000}\nupstreams: {main: {url: 'http://127.0.0.1:9'}}\napi_versions: [v1]\napis:\n",
    );
    for i in 0..APIS {
        s.push_str(&format!(
            "  api{i}: {{paths: ['/v1/accounts/{{account}}/res{i}/**', '/v1/public/res{i}/*']}}\n"
        ));
    }
    s
}

fn tokens_yaml(n: usize) -> String {
    let hash = SecretHash::of_secret(b"bench-secret").to_stored();
    let mut s = String::with_capacity(n * 700);
    s.push_str("accounts:\n");
    for t in 0..n {
        if t % 20 == 0 {
            s.push_str(&format!("  - id: AC{}\n    tokens:\n", t / 20));
        }
        s.push_str(&format!(
            "      - sid: SK{t:032}\n        name: t{t}\n        auth_token_hash: \"{hash}\"\n        scopes:\n"
        ));
        for a in 0..20 {
            s.push_str(&format!(
                "          - {{api: api{}, methods: [GET, POST]}}\n",
                (t + a) % APIS
            ));
        }
    }
    s
}

fn policy(n: usize, metrics: &Metrics) -> Policy {
    let config = scopegate::config::load_from_sources(
        Path::new("/bench/scopegate.yaml"),
        &gateway_yaml(),
        Some(&tokens_yaml(n)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    scopegate::gateway::snapshot::build(config, 1, &RuntimeRegistry::default(), metrics)
}

fn bench_decision(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    for n in [20usize, 10_000, 100_000] {
        let metrics = Metrics::new();
        let policy = policy(n, &metrics);
        // A token in the middle of the set, asking for one of its granted APIs.
        let t = n / 2;
        let sid = format!("SK{t:032}");
        let api = (t + 7) % APIS;
        let account = t / 20;
        let path = format!("/v1/accounts/AC{account}/res{api}/items/42?limit=10");
        let mut headers = HeaderMap::new();
        let cred = base64::engine::general_purpose::STANDARD.encode(format!("{sid}:bench-secret"));
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {cred}")).unwrap(),
        );
        let get = method_index("GET");
        // One request's decision and its counter, as the proxy runs them.
        let decide_and_count = || {
            let target = canonicalize(black_box(&path)).unwrap();
            let creds = parse_basic(black_box(&headers)).unwrap();
            let ask = Ask {
                method: get,
                overrides: &[],
                path: &target.path,
            };
            let allowed = decide(
                &policy,
                &creds,
                &ask,
                Some([127, 0, 0, 1].into()),
                1_800_000_000,
            )
            .unwrap();
            metrics.count_request(
                Some(&allowed.token.runtime.series),
                policy.api_name(allowed.api.unwrap()),
                "GET",
                DecisionLabel::Allowed,
            );
            allowed
        };
        group.bench_with_input(BenchmarkId::new("allowed", n), &n, |b, _| {
            b.iter(|| black_box(decide_and_count().upstream))
        });
        group.bench_with_input(BenchmarkId::new("allowed+limiter", n), &n, |b, _| {
            b.iter(|| {
                let allowed = decide_and_count();
                let limiter = allowed.token.runtime.limiter.load_full();
                let rate = limiter.check();
                allowed
                    .token
                    .runtime
                    .record_rate(&metrics, rate, limiter.limit.burst);
                black_box(rate)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decision);
criterion_main!(benches);
