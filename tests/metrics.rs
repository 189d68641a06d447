//! Metrics end to end: the real gateway on port 0, real clients over TCP, `/metrics` read
//! from the admin listener and parsed as the Prometheus text format; then a real
//! Prometheus (Debian package `prometheus`, installed by `.ci/install-test-deps.sh`)
//! scrapes the gateway and is queried over its HTTP API.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use support::exposition::*;
use support::process::find_tool;
use support::prom::*;
use support::*;

const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];
const DECISIONS: [&str; 7] = [
    "allowed",
    "denied_scope",
    "denied_credentials",
    "denied_disabled",
    "unauthenticated",
    "rate_limited",
    "bad_request",
];

async fn scrape(h: &Harness) -> (String, Vec<Sample>) {
    let text = metrics(h).await;
    let samples = parse_exposition(&text);
    (text, samples)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

// ------------------------------------------------------------------ raw requests

/// Sends one request on a fresh connection (`Connection: close`) and reads the response;
/// `None` when the server closed without answering.
async fn raw_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(String, String)],
) -> Option<Reply> {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream.write_all(req.as_bytes()).await.ok()?;
    read_response(&mut stream).await
}

fn auth(f: &Fixture) -> (&'static str, String) {
    ("authorization", basic(f))
}

// ------------------------------------------------------------------ 1. exact counts

/// A known set of requests, one or more per decision; `/metrics` then shows exactly these
/// counts per token and decision, and nothing else.
#[tokio::test]
async fn known_traffic_is_counted_exactly_per_token_and_decision() {
    // A burst of 5 that refills every 100 s: the reader's sixth allowed request is limited.
    let h = Harness::start_with(
        "rate_limit: {requests_per_second: 0.01, burst: 5}\n",
        &tokens_yaml(),
    )
    .await;
    let t0 = unix_now().floor();
    let (_, before) = scrape(&h).await;
    assert_eq!(
        of(&before, "scopegate_requests_total").count(),
        0,
        "no request series before any request"
    );

    let expect = |reply: Reply, status: u16, what: &str| {
        assert_eq!(reply.status, status, "{what}: {}", reply.text());
    };
    let reader = auth(&READER);
    let writer = auth(&WRITER);

    // allowed (reader: 5 of its burst of 5)
    for _ in 0..3 {
        expect(
            send(
                "GET",
                &h.url(CAMPAIGNS),
                &[(reader.0, reader.1.as_str())],
                "",
            )
            .await,
            200,
            "reader GET campaigns",
        );
    }
    expect(
        send(
            "GET",
            &h.url("/public/docs"),
            &[(reader.0, reader.1.as_str())],
            "",
        )
        .await,
        200,
        "reader GET public",
    );
    expect(
        send(
            "HEAD",
            &h.url(CAMPAIGNS),
            &[(reader.0, reader.1.as_str())],
            "",
        )
        .await,
        200,
        "reader HEAD campaigns",
    );
    // denied_scope: wrong method, no API, extension method, override outside the scopes
    for _ in 0..2 {
        expect(
            send(
                "POST",
                &h.url(CAMPAIGNS),
                &[(reader.0, reader.1.as_str())],
                "{}",
            )
            .await,
            403,
            "reader POST campaigns",
        );
    }
    expect(
        send(
            "GET",
            &h.url("/nowhere"),
            &[(reader.0, reader.1.as_str())],
            "",
        )
        .await,
        403,
        "reader GET /nowhere",
    );
    expect(
        send(
            "PURGE",
            &h.url(CAMPAIGNS),
            &[(reader.0, reader.1.as_str())],
            "",
        )
        .await,
        403,
        "reader PURGE",
    );
    expect(
        send(
            "GET",
            &h.url(CAMPAIGNS),
            &[
                (reader.0, reader.1.as_str()),
                ("x-http-method-override", "DELETE"),
            ],
            "",
        )
        .await,
        403,
        "reader GET with a DELETE override",
    );
    // rate_limited: the reader's burst is used up
    let limited = send(
        "GET",
        &h.url(CAMPAIGNS),
        &[(reader.0, reader.1.as_str())],
        "",
    )
    .await;
    expect(limited, 429, "reader over its burst");
    // the writer and the legacy token
    expect(
        send(
            "DELETE",
            &h.url(&format!("{CAMPAIGNS}/7")),
            &[(writer.0, writer.1.as_str())],
            "",
        )
        .await,
        200,
        "writer DELETE",
    );
    expect(
        send(
            "GET",
            &h.url("/Mediapartners/IRacme/Reports/r1"),
            &[(writer.0, writer.1.as_str())],
            "",
        )
        .await,
        200,
        "writer GET reports",
    );
    expect(
        get(&h.url("/anything/else"), Some(&LEGACY)).await,
        200,
        "legacy outside the catalog",
    );
    // denied_credentials: wrong secret, unknown SID, deleted SID -> token "unknown";
    // expired (secret verified) -> the token's own SID
    let wrong = basic_raw(WRITER.sid, "not-the-secret");
    for _ in 0..2 {
        expect(
            send("GET", &h.url(CAMPAIGNS), &[("authorization", &wrong)], "").await,
            403,
            "writer with a wrong secret",
        );
    }
    let nobody = basic_raw("SGnobody", "whatever");
    expect(
        send("GET", &h.url(CAMPAIGNS), &[("authorization", &nobody)], "").await,
        403,
        "unknown SID",
    );
    let deleted = basic_raw("SGdeleted", "whatever");
    expect(
        send(
            "POST",
            &h.url(CAMPAIGNS),
            &[("authorization", &deleted)],
            "",
        )
        .await,
        403,
        "deleted SID",
    );
    expect(
        get(&h.url(CAMPAIGNS), Some(&EXPIRED)).await,
        403,
        "expired token",
    );
    // denied_disabled
    expect(
        get(&h.url(CAMPAIGNS), Some(&DISABLED)).await,
        403,
        "disabled token",
    );
    // denied_scope for another account's resources
    expect(
        get(&h.url(CAMPAIGNS), Some(&OTHER)).await,
        403,
        "other account",
    );
    // unauthenticated
    for _ in 0..2 {
        expect(get(&h.url(CAMPAIGNS), None).await, 401, "no credentials");
    }
    expect(
        send(
            "GET",
            &h.url(CAMPAIGNS),
            &[("authorization", "Bearer abc")],
            "",
        )
        .await,
        401,
        "not Basic",
    );
    // bad_request: decided before authentication, so never attributed to a token
    let r = raw_request(
        h.addr(),
        "GET",
        &format!("{CAMPAIGNS}/%2e%2e/x"),
        &[(reader.0.to_owned(), reader.1.clone())],
    )
    .await
    .expect("a response");
    expect(r, 400, "encoded dot segment");
    let r = raw_request(h.addr(), "DELETE", "/a//b", &[])
        .await
        .expect("a response");
    expect(r, 400, "empty segment");
    let t1 = unix_now().ceil();

    let (text, samples) = scrape(&h).await;

    // scopegate_requests_total: exactly these series with exactly these values.
    let got: BTreeMap<[String; 5], f64> = of(&samples, "scopegate_requests_total")
        .map(|s| {
            (
                ["account", "token", "api", "method", "decision"].map(|l| s.label(l).to_owned()),
                s.value,
            )
        })
        .collect();
    let want: BTreeMap<[String; 5], f64> = [
        (["IRacme", "SGreader", "campaigns", "GET", "allowed"], 3.0),
        (["IRacme", "SGreader", "public", "GET", "allowed"], 1.0),
        (["IRacme", "SGreader", "campaigns", "HEAD", "allowed"], 1.0),
        (
            ["IRacme", "SGreader", "campaigns", "GET", "rate_limited"],
            1.0,
        ),
        (
            ["IRacme", "SGreader", "campaigns", "POST", "denied_scope"],
            2.0,
        ),
        (["IRacme", "SGreader", "none", "GET", "denied_scope"], 1.0),
        (
            ["IRacme", "SGreader", "campaigns", "other", "denied_scope"],
            1.0,
        ),
        (
            ["IRacme", "SGreader", "campaigns", "GET", "denied_scope"],
            1.0,
        ),
        (
            ["IRacme", "SGwriter", "campaigns", "DELETE", "allowed"],
            1.0,
        ),
        (["IRacme", "SGwriter", "reports", "GET", "allowed"], 1.0),
        (["IRacme", "SGlegacy", "none", "GET", "allowed"], 1.0),
        (
            ["unknown", "unknown", "none", "GET", "denied_credentials"],
            3.0,
        ),
        (
            ["unknown", "unknown", "none", "POST", "denied_credentials"],
            1.0,
        ),
        (
            ["IRacme", "SGexpired", "none", "GET", "denied_credentials"],
            1.0,
        ),
        (
            ["IRacme", "SGdisabled", "none", "GET", "denied_disabled"],
            1.0,
        ),
        (["IRother", "SGother", "none", "GET", "denied_scope"], 1.0),
        (
            ["unknown", "unknown", "none", "GET", "unauthenticated"],
            3.0,
        ),
        (["unknown", "unknown", "none", "GET", "bad_request"], 1.0),
        (["unknown", "unknown", "none", "DELETE", "bad_request"], 1.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.map(str::to_owned), v))
    .collect();
    assert_eq!(got, want, "scopegate_requests_total\n{text}");
    // Every sample line of the family, as text (label order is part of the format).
    assert!(text.contains(
        "scopegate_requests_total{account=\"IRacme\",api=\"campaigns\",decision=\"allowed\",method=\"GET\",token=\"SGreader\"} 3\n"
    ));

    // scopegate_upstream_responses_total: only forwarded requests, by status class.
    let got: BTreeMap<[String; 4], f64> = of(&samples, "scopegate_upstream_responses_total")
        .map(|s| {
            (
                ["account", "token", "api", "code"].map(|l| s.label(l).to_owned()),
                s.value,
            )
        })
        .collect();
    let want: BTreeMap<[String; 4], f64> = [
        (["IRacme", "SGreader", "campaigns", "2xx"], 4.0),
        (["IRacme", "SGreader", "public", "2xx"], 1.0),
        (["IRacme", "SGwriter", "campaigns", "2xx"], 1.0),
        (["IRacme", "SGwriter", "reports", "2xx"], 1.0),
        (["IRacme", "SGlegacy", "none", "2xx"], 1.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.map(str::to_owned), v))
    .collect();
    assert_eq!(got, want, "scopegate_upstream_responses_total\n{text}");

    // Latency: one observation per forwarded request, by API.
    let got: BTreeMap<String, f64> = of(&samples, "scopegate_request_duration_seconds_count")
        .map(|s| (s.label("api").to_owned(), s.value))
        .collect();
    let want: BTreeMap<String, f64> = [
        ("campaigns", 5.0),
        ("public", 1.0),
        ("reports", 1.0),
        ("none", 1.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(got, want, "request duration counts\n{text}");

    // Last use: only for tokens that made an allowed (or rate-limited) request.
    let used: BTreeMap<String, f64> = of(&samples, "scopegate_token_last_used_timestamp_seconds")
        .map(|s| (s.label("token").to_owned(), s.value))
        .collect();
    assert_eq!(
        used.keys().map(String::as_str).collect::<Vec<_>>(),
        ["SGlegacy", "SGreader", "SGwriter"],
        "last_used only for used tokens\n{text}"
    );
    for (token, t) in &used {
        assert!(
            (t0..=t1).contains(t),
            "{token}: last used {t} outside [{t0}, {t1}]"
        );
    }

    // Rate-limit gauges of the limited token.
    let reader_labels = [("token", READER.sid)];
    assert_eq!(
        value(&samples, "scopegate_rate_limit_remaining", &reader_labels),
        Some(0.0)
    );
    assert_eq!(
        value(&samples, "scopegate_rate_limit_utilization", &reader_labels),
        Some(1.0)
    );

    // Configuration metrics.
    for (account, status, n) in [
        ("IRacme", "active", 4.0),
        ("IRacme", "disabled", 1.0),
        ("IRother", "active", 1.0),
        ("IRother", "disabled", 0.0),
    ] {
        assert_eq!(
            value(
                &samples,
                "scopegate_tokens",
                &[("account", account), ("status", status)]
            ),
            Some(n),
            "scopegate_tokens{{account={account},status={status}}}\n{text}"
        );
    }
    assert_eq!(
        value(
            &samples,
            "scopegate_config_reloads_total",
            &[("result", "success")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "scopegate_config_reloads_total",
            &[("result", "error")]
        ),
        Some(0.0),
        "the error series exists from the start"
    );
    assert_eq!(
        value(&samples, "scopegate_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "scopegate_config_generation", &[]),
        Some(1.0)
    );
    let last_ok = value(
        &samples,
        "scopegate_config_last_reload_success_timestamp_seconds",
        &[],
    )
    .expect("last reload success timestamp");
    assert!(last_ok > 1.6e9 && last_ok <= t1, "{last_ok}");
    if cfg!(target_os = "linux") {
        assert!(
            value(&samples, "process_start_time_seconds", &[]).is_some(),
            "process metrics\n{text}"
        );
    }
    // Every metric family at once (all decisions, gauges, histogram) through promtool's
    // linter, when it is installed (the real-Prometheus test requires it on CI).
    if let Some(promtool) = find_tool("promtool", "PROMTOOL_BIN") {
        let check = promtool_check_metrics(&promtool, &text).await;
        assert!(
            check.status.success(),
            "promtool check metrics failed ({}):\n{}{}\n--- scraped text ---\n{text}",
            check.status,
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr),
        );
    }
}

// ------------------------------------------------------------------ 2. cardinality

/// xorshift64*: a seeded, reproducible source of "random" client input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn word(&mut self, alphabet: &[u8], min: usize, max: usize) -> String {
        let len = min + self.below(max - min + 1);
        (0..len).map(|_| char::from(*self.pick(alphabet))).collect()
    }
}

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const BASE62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Characters of a segment that is always valid and never a dot segment.
const SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~";
/// Anything a request line may carry, including `%`, `.` and sub-delimiters.
const ANY: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%:@!$&'()*+=";

/// The credentials a flood request carries.
#[derive(Debug, Clone, Copy)]
enum Cred {
    None,
    RandomSid,
    Garbage,
    Bearer,
    Reader,
    Writer,
    WrongSecret,
}

const CREDS: [Cred; 7] = [
    Cred::None,
    Cred::RandomSid,
    Cred::Garbage,
    Cred::Bearer,
    Cred::Reader,
    Cred::Writer,
    Cred::WrongSecret,
];
/// Path shapes: random outside the catalog, campaigns, campaign items, reports of three
/// accounts, public, malformed, and random over every allowed character.
const PATH_CLASSES: usize = 9;
/// Methods: the standard ones, then an extension verb.
const METHOD_CLASSES: usize = STANDARD_METHODS.len() + 1;
/// Method overrides: none, a standard method, an extension verb.
const OVERRIDE_CLASSES: usize = STANDARD_METHODS.len() + 2;

type RawRequest = (String, String, Vec<(String, String)>);

/// A method of a class: standard, or a random extension verb (upper case, a case variant
/// of a standard method, or `X-...`).
fn method_of(rng: &mut Rng, class: usize) -> String {
    if let Some(m) = STANDARD_METHODS.get(class) {
        return (*m).to_owned();
    }
    match rng.below(3) {
        0 => rng.word(UPPER, 3, 10),
        1 => {
            let m = rng.pick(&STANDARD_METHODS);
            format!("{}{}", &m[..1], m[1..].to_lowercase())
        }
        _ => format!("X-{}", rng.word(UPPER, 1, 6)),
    }
}

/// One flood request of the given classes, with random content: (method, target, headers).
/// What the gateway decides depends on the classes; the random content (SIDs, secrets,
/// segments, verbs, header spellings) must never show up in a label.
fn flood_request(rng: &mut Rng, cred: Cred, path: usize, method: usize, over: usize) -> RawRequest {
    let method = method_of(rng, method);
    let safe = |rng: &mut Rng| rng.word(SAFE, 1, 12);
    let mut target = match path {
        0 => {
            let n = 1 + rng.below(4);
            format!(
                "/r{}",
                (0..n)
                    .map(|_| format!("/{}", safe(rng)))
                    .collect::<String>()
            )
        }
        1 => format!("{CAMPAIGNS}/{}", safe(rng)),
        2 => format!("{CAMPAIGNS}/{}/Items", safe(rng)),
        3 => format!("/Mediapartners/{ACCOUNT}/Reports/{}", safe(rng)),
        4 => format!("/Mediapartners/{OTHER_ACCOUNT}/Reports/{}", safe(rng)),
        5 => format!("/Mediapartners/IR{}/Reports/{}", safe(rng), safe(rng)),
        6 => format!("/public/{}", safe(rng)),
        7 => format!(
            "{}/{}",
            rng.pick(&[
                "/a/%2e%2e",
                "/a//b",
                "/x/%2F",
                "/%zz",
                "/a/./b",
                "/p%00",
                "/a\\b"
            ]),
            rng.word(ANY, 1, 12)
        ),
        _ => {
            let n = 1 + rng.below(4);
            (0..n)
                .map(|_| format!("/{}", rng.word(ANY, 1, 12)))
                .collect::<String>()
        }
    };
    let mut headers = Vec::new();
    let auth = match cred {
        Cred::None => None,
        Cred::RandomSid => {
            let sid = format!("SG{}", rng.word(BASE62, 32, 32));
            Some(basic_raw(&sid, &rng.word(BASE62, 8, 40)))
        }
        Cred::Garbage => Some(format!("Basic {}", rng.word(ANY, 1, 30))),
        Cred::Bearer => Some(format!("Bearer {}", rng.word(BASE62, 1, 30))),
        Cred::Reader => Some(basic(&READER)),
        Cred::Writer => Some(basic(&WRITER)),
        Cred::WrongSecret => Some(basic_raw(WRITER.sid, &rng.word(BASE62, 1, 20))),
    };
    if let Some(a) = auth {
        headers.push(("Authorization".to_owned(), a));
    }
    if over > 0 {
        let value = method_of(rng, over - 1);
        match rng.below(4) {
            0 => target.push_str(&format!("?_method={value}")),
            n => {
                let name = [
                    "X-HTTP-Method-Override",
                    "X-HTTP-Method",
                    "X-Method-Override",
                ][n - 1];
                headers.push((name.to_owned(), value));
            }
        }
    }
    (method, target, headers)
}

fn random_request(rng: &mut Rng) -> RawRequest {
    let cred = *rng.pick(&CREDS);
    let path = rng.below(PATH_CLASSES);
    let method = rng.below(METHOD_CLASSES);
    let over = if rng.below(3) == 0 {
        1 + rng.below(OVERRIDE_CLASSES - 1)
    } else {
        0
    };
    flood_request(rng, cred, path, method, over)
}

/// Every combination of classes once, with random content: afterwards every series a
/// flood can reach exists, so a further flood must not add any.
fn sweep_requests(rng: &mut Rng) -> Vec<RawRequest> {
    let mut out = Vec::new();
    for cred in CREDS {
        for path in 0..PATH_CLASSES {
            for method in 0..METHOD_CLASSES {
                for over in 0..OVERRIDE_CLASSES {
                    out.push(flood_request(rng, cred, path, method, over));
                }
            }
        }
    }
    out
}

/// Sends the requests, 32 at a time; returns how many got a response.
async fn send_all(addr: SocketAddr, requests: Vec<RawRequest>) -> usize {
    let mut answered = 0;
    for chunk in requests.chunks(32) {
        let mut set = tokio::task::JoinSet::new();
        for request in chunk {
            let (method, target, headers) = request.clone();
            set.spawn(async move { raw_request(addr, &method, &target, &headers).await });
        }
        while let Some(r) = set.join_next().await {
            answered += usize::from(r.expect("request task").is_some());
        }
    }
    answered
}

/// `n` random requests from a seed.
async fn flood(addr: SocketAddr, seed: u64, n: usize) -> usize {
    let mut rng = Rng(seed);
    let requests: Vec<_> = (0..n).map(|_| random_request(&mut rng)).collect();
    send_all(addr, requests).await
}

fn scopegate_series(samples: &[Sample]) -> BTreeSet<String> {
    samples
        .iter()
        .filter(|s| s.name.starts_with("scopegate_"))
        .map(Sample::series)
        .collect()
}

/// Thousands of requests with random SIDs, secrets, paths, methods (extension verbs too)
/// and override headers: every label value stays a configured name or one of the fixed
/// fallbacks, the series count stays under a bound computed from the configuration, and a
/// second flood adds not a single series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_flood_does_not_create_series() {
    // Generous limits, so that every request is decided on its content alone.
    let h = Harness::start_with(
        "rate_limit: {requests_per_second: 1000000, burst: 1000000}\n\
         bruteforce: {max_failures: 1000000, max_failures_per_address: 1000000}\n",
        &tokens_yaml(),
    )
    .await;

    // Known traffic first: every standard method once, so only fallback values are new.
    for m in STANDARD_METHODS {
        let r = raw_request(
            h.addr(),
            m,
            "/nowhere",
            &[("authorization".into(), basic(&READER))],
        )
        .await
        .expect("a response");
        assert!(r.status.is_client_error(), "{m}: {}", r.status);
    }
    // ... and each flooding token's APIs once, so the configured API names exist too.
    for (path, token) in [
        (CAMPAIGNS, &READER),
        ("/public/w", &READER),
        (CAMPAIGNS, &WRITER),
        ("/Mediapartners/IRacme/Reports/w", &WRITER),
    ] {
        let r = get(&h.url(path), Some(token)).await;
        assert_eq!(r.status, 200, "{path}");
    }
    let (_, before) = scrape(&h).await;
    let before_series = scopegate_series(&before);
    let before_values: BTreeSet<String> = before
        .iter()
        .filter(|s| s.name.starts_with("scopegate_"))
        .flat_map(|s| s.labels.values().cloned())
        .collect();

    // Every class of request once, then 3000 random ones.
    let sweep = sweep_requests(&mut Rng(0x5EED_0000));
    let sent = sweep.len() + 3000;
    let answered = send_all(h.addr(), sweep).await + flood(h.addr(), 0x5EED_0001, 3000).await;
    assert!(
        answered > sent * 9 / 10,
        "only {answered} of {sent} requests were answered"
    );

    let (text, after) = scrape(&h).await;
    let total: f64 = of(&after, "scopegate_requests_total")
        .map(|s| s.value)
        .sum();
    assert!(
        total >= (answered + STANDARD_METHODS.len() + 4) as f64 * 0.9,
        "the flood was counted: {total} requests\n{text}"
    );

    // Every label value is a configured name or a fixed fallback.
    let sids = [
        READER.sid,
        WRITER.sid,
        LEGACY.sid,
        DISABLED.sid,
        EXPIRED.sid,
        OTHER.sid,
    ];
    let accounts = [ACCOUNT, OTHER_ACCOUNT];
    let apis = ["campaigns", "campaign_items", "reports", "public"];
    let allowed: BTreeMap<&str, BTreeSet<&str>> = [
        ("token", sids.iter().copied().chain(["unknown"]).collect()),
        (
            "account",
            accounts.iter().copied().chain(["unknown"]).collect(),
        ),
        ("api", apis.iter().copied().chain(["none"]).collect()),
        (
            "method",
            STANDARD_METHODS.iter().copied().chain(["other"]).collect(),
        ),
        ("decision", DECISIONS.into_iter().collect()),
        (
            "code",
            ["1xx", "2xx", "3xx", "4xx", "5xx"].into_iter().collect(),
        ),
    ]
    .into_iter()
    .collect();
    for s in after.iter().filter(|s| s.name.starts_with("scopegate_")) {
        for (label, v) in &s.labels {
            if let Some(set) = allowed.get(label.as_str()) {
                assert!(
                    set.contains(v.as_str()),
                    "{}: label {label}={v:?} is not a configured value",
                    s.series()
                );
            }
        }
    }

    // The flood added only fixed fallback label values, never client input.
    let fixed: BTreeSet<&str> = ["unknown", "none", "other"]
        .into_iter()
        .chain(DECISIONS)
        .collect();
    let new_values: BTreeSet<String> = after
        .iter()
        .filter(|s| s.name.starts_with("scopegate_"))
        .flat_map(|s| s.labels.values().cloned())
        .filter(|v| !before_values.contains(v))
        .collect();
    for v in &new_values {
        assert!(
            fixed.contains(v.as_str()),
            "new label value {v:?} after the flood (new values: {new_values:?})"
        );
    }

    // A bound computed from the configuration: what the label sets allow at most.
    let tokens = sids.len();
    let apis_n = apis.len() + 1;
    let methods = STANDARD_METHODS.len() + 1;
    let bound = (tokens + 1) * apis_n * methods * DECISIONS.len() // requests
        + tokens * apis_n * 5 // upstream responses
        + apis_n * (15 + 3) // duration histogram: buckets, +Inf, sum, count
        + tokens * methods * apis_n // shadow denials
        + tokens * 3 // last used, rate-limit remaining and utilisation
        + accounts.len() * 2 // tokens by status
        + 2 + 4 // bruteforce kinds; reloads x2, last success, last ok
        + 2; // generation, build info
    let after_series = scopegate_series(&after);
    assert!(
        after_series.len() <= bound,
        "{} series after the flood, bound {bound}",
        after_series.len()
    );
    let added: Vec<&String> = after_series.difference(&before_series).collect();
    // What was added is at most the anonymous fallback series and the two flooding
    // tokens' combinations: nothing proportional to the 3000 requests.
    let anonymous_bound = methods * DECISIONS.len();
    let token_bound = 2 * apis_n * methods * DECISIONS.len() + 2 * apis_n * 5;
    assert!(
        added.len() <= anonymous_bound + token_bound + apis_n * 18,
        "the flood added {} series: {added:#?}",
        added.len()
    );
    assert!(
        before_series.is_subset(&after_series),
        "no series disappeared"
    );

    // A second flood with other random values adds not a single series.
    let answered = flood(h.addr(), 0x5EED_0002, 2000).await;
    assert!(
        answered > 1800,
        "only {answered} of 2000 requests were answered"
    );
    let (_, again) = scrape(&h).await;
    let again_series = scopegate_series(&again);
    let grown: Vec<&String> = again_series.difference(&after_series).collect();
    assert!(
        grown.is_empty(),
        "the second flood added series: {grown:#?}"
    );
    eprintln!(
        "cardinality: {} scopegate series before, {} after {sent} requests, {} after 2000 more (bound {bound})",
        before_series.len(),
        after_series.len(),
        again_series.len()
    );
}

// ------------------------------------------------------------------ 3. real Prometheus

/// A real Prometheus scrapes the running gateway's admin listener; its HTTP API then
/// returns the per-token series with the right value, the repository's recording rules
/// evaluate on them, and `promtool check metrics` accepts the scraped text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_scrapes_per_token_series() {
    let Some((prometheus, promtool)) = prometheus_tools() else {
        return;
    };
    let h = Harness::start().await;

    // Known traffic: 4 allowed and 2 denied_scope for the reader, 1 allowed for the writer.
    for _ in 0..4 {
        assert_eq!(get(&h.url(CAMPAIGNS), Some(&READER)).await.status, 200);
    }
    for _ in 0..2 {
        let r = send(
            "POST",
            &h.url(CAMPAIGNS),
            &[("authorization", &basic(&READER))],
            "",
        )
        .await;
        assert_eq!(r.status, 403);
    }
    let r = send(
        "DELETE",
        &h.url(&format!("{CAMPAIGNS}/1")),
        &[("authorization", &basic(&WRITER))],
        "",
    )
    .await;
    assert_eq!(r.status, 200);

    // promtool check metrics on exactly what Prometheus scrapes.
    let text = metrics(&h).await;
    let check = promtool_check_metrics(&promtool, &text).await;
    assert!(
        check.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- scraped text ---\n{text}",
        check.status,
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr),
    );

    // Prometheus with a 1 s scrape interval on the admin listener, and the repository's
    // rule file so its recording rules run on real gateway output.
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/scopegate-rules.yml");
    let admin = h.gateway.admin_addr;
    let server = PrometheusServer::start(&prometheus, &[admin], Some(&rules)).await;
    let base = server.base.clone();
    let log_path = server.log_path.clone();
    let deadline = Duration::from_secs(30);

    // The per-token series, with the right value.
    let series = poll(
        "scopegate_requests_total{token=\"SGreader\"} in Prometheus",
        deadline,
        &log_path,
        || {
            let base = base.clone();
            async move {
                let result = prom_query(
                    &base,
                    &format!("scopegate_requests_total{{token=\"{}\"}}", READER.sid),
                )
                .await?;
                Ok((result.len() >= 2).then_some(result))
            }
        },
    )
    .await;
    let mut got: BTreeMap<String, String> = BTreeMap::new();
    for s in &series {
        let m = &s["metric"];
        assert_eq!(m["job"], "scopegate");
        assert_eq!(m["instance"], admin.to_string());
        assert_eq!(m["account"], ACCOUNT);
        assert_eq!(m["api"], "campaigns");
        got.insert(
            format!(
                "{}/{}",
                m["method"].as_str().unwrap(),
                m["decision"].as_str().unwrap()
            ),
            s["value"][1].as_str().unwrap().to_owned(),
        );
    }
    let want: BTreeMap<String, String> = [("GET/allowed", "4"), ("POST/denied_scope", "2")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(got, want, "per-token series in Prometheus: {series:#?}");

    // Aggregation the way operators query it.
    let result = prom_query(&base, "sum by (token) (scopegate_requests_total)")
        .await
        .unwrap();
    let sums: BTreeMap<String, String> = result
        .iter()
        .map(|s| {
            (
                s["metric"]["token"].as_str().unwrap_or("").to_owned(),
                s["value"][1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        sums.get(READER.sid).map(String::as_str),
        Some("6"),
        "{sums:?}"
    );
    assert_eq!(
        sums.get(WRITER.sid).map(String::as_str),
        Some("1"),
        "{sums:?}"
    );

    // The repository's recording rules evaluate on the real series (rate() needs two
    // scrapes, so this also waits for a second one).
    poll(
        "account_token:scopegate_requests:rate5m for the reader",
        deadline,
        &log_path,
        || {
            let base = base.clone();
            async move {
                let r = prom_query(
                    &base,
                    &format!(
                        "account_token:scopegate_requests:rate5m{{token=\"{}\"}}",
                        READER.sid
                    ),
                )
                .await?;
                Ok((!r.is_empty()).then_some(()))
            }
        },
    )
    .await;
    let up = prom_query(&base, "up{job=\"scopegate\"}").await.unwrap();
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0]["value"][1], "1");
}

// ------------------------------------------------------------------ reloads

/// A reload that removes a token drops every series of that token (and of its account),
/// keeps the others' counts, and a rejected reload is counted and flips the status gauge.
#[tokio::test]
async fn reload_drops_removed_tokens_series_and_counts_results() {
    let h = Harness::start().await;
    let other_campaigns = format!("/Mediapartners/{OTHER_ACCOUNT}/Campaigns");
    assert_eq!(
        get(&h.url(&other_campaigns), Some(&OTHER)).await.status,
        200
    );
    let r = send(
        "POST",
        &h.url(&other_campaigns),
        &[("authorization", &basic(&OTHER))],
        "",
    )
    .await;
    assert_eq!(r.status, 403);
    for _ in 0..2 {
        assert_eq!(get(&h.url(CAMPAIGNS), Some(&READER)).await.status, 200);
    }
    let (text, samples) = scrape(&h).await;
    for name in [
        "scopegate_requests_total",
        "scopegate_upstream_responses_total",
        "scopegate_token_last_used_timestamp_seconds",
    ] {
        assert!(
            of(&samples, name).any(|s| s.label("token") == OTHER.sid),
            "{name} has {} before the reload\n{text}",
            OTHER.sid
        );
    }

    // The other account and its token are removed from tokens.yaml.
    let full = tokens_yaml();
    let start = full
        .find(&format!("  - id: {OTHER_ACCOUNT}"))
        .expect("fixture has the other account");
    let end = full
        .find("deleted_sids:")
        .expect("fixture has deleted_sids");
    h.dir.write(
        "tokens.yaml",
        &format!("{}{}", &full[..start], &full[end..]),
    );
    let generation = scopegate::gateway::reload::reload_from(&h.gateway.shared, &h.config_path)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(generation, 2);

    let (text, samples) = scrape(&h).await;
    let leftovers: Vec<String> = samples
        .iter()
        .filter(|s| s.name.starts_with("scopegate_"))
        .filter(|s| {
            s.labels
                .values()
                .any(|v| v == OTHER.sid || v == OTHER_ACCOUNT)
        })
        .map(Sample::series)
        .collect();
    assert!(
        leftovers.is_empty(),
        "series of the removed token survived the reload: {leftovers:#?}"
    );
    assert_eq!(
        value(
            &samples,
            "scopegate_requests_total",
            &[
                ("account", ACCOUNT),
                ("token", READER.sid),
                ("api", "campaigns"),
                ("method", "GET"),
                ("decision", "allowed"),
            ]
        ),
        Some(2.0),
        "a kept token's counts survive the reload\n{text}"
    );
    assert!(
        value(
            &samples,
            "scopegate_rate_limit_remaining",
            &[("token", READER.sid)]
        )
        .is_some(),
        "a kept token keeps its rate-limit gauge\n{text}"
    );
    assert_eq!(
        value(
            &samples,
            "scopegate_config_reloads_total",
            &[("result", "success")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(&samples, "scopegate_config_generation", &[]),
        Some(2.0)
    );
    assert_eq!(
        value(&samples, "scopegate_config_last_reload_successful", &[]),
        Some(1.0)
    );

    // A broken file is rejected: counted, the status gauge drops to 0, nothing else moves.
    h.dir
        .write("tokens.yaml", "accounts: [this is not: valid\n");
    assert!(
        scopegate::gateway::reload::reload_from(&h.gateway.shared, &h.config_path)
            .await
            .is_err()
    );
    let (text, samples) = scrape(&h).await;
    assert_eq!(
        value(
            &samples,
            "scopegate_config_reloads_total",
            &[("result", "error")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&samples, "scopegate_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&samples, "scopegate_config_generation", &[]),
        Some(2.0)
    );
    assert_eq!(get(&h.url(CAMPAIGNS), Some(&READER)).await.status, 200);
}
