//! Client addresses end to end: `allowed_ips` judged on the TCP peer (clients bound to
//! other loopback addresses: Linux routes all of 127/8 locally), on a trusted proxy's
//! `X-Forwarded-For`, and on PROXY protocol v1/v2 headers written byte by byte (also before
//! TLS); an untrusted client's spoofed `X-Forwarded-For` changes nothing; what the
//! upstream receives in `X-Forwarded-For`; the per-address throttle keyed on the resolved
//! client; `denied_ip` in metrics; config errors; `explain --from`.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use support::process::Proc;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Allowed from 127.0.0.1 only.
const PINNED: Fixture = Fixture {
    sid: "SGpinned",
    secret: "pinned-secret",
};
/// Allowed from documentation ranges only (reachable through a proxy or PROXY header).
const DOC: Fixture = Fixture {
    sid: "SGdoc",
    secret: "doc-secret",
};

fn tokens() -> String {
    format!(
        r#"accounts:
  - id: {ACCOUNT}
    tokens:
      - sid: {r}
        name: reader
        auth_token_hash: "{rh}"
        scopes: [{{api: campaigns, methods: [GET]}}]
      - sid: {p}
        name: pinned
        auth_token_hash: "{ph}"
        allowed_ips: [127.0.0.1]
        scopes: [{{api: campaigns, methods: [GET]}}]
      - sid: {d}
        name: doc
        auth_token_hash: "{dh}"
        allowed_ips: [192.0.2.0/24, "2001:db8::/32"]
        scopes: [{{api: campaigns, methods: [GET]}}]
"#,
        r = READER.sid,
        rh = hash(READER.secret),
        p = PINNED.sid,
        ph = hash(PINNED.secret),
        d = DOC.sid,
        dh = hash(DOC.secret),
    )
}

async fn connect_from(src: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{src}:0").parse().unwrap())
        .expect("bind a loopback source address");
    socket.connect(addr).await.unwrap()
}

fn request(f: &Fixture, extra_headers: &str) -> Vec<u8> {
    request_with(&basic(f), extra_headers)
}

fn request_with(authorization: &str, extra_headers: &str) -> Vec<u8> {
    format!(
        "GET {CAMPAIGNS} HTTP/1.1\r\nHost: gw\r\nAuthorization: {authorization}\r\n{extra_headers}\r\n"
    )
    .into_bytes()
}

/// Sends `bytes` (a PROXY header and/or a request) from `src`, reads one response.
async fn send_from(src: &str, addr: SocketAddr, bytes: &[u8]) -> Reply {
    let mut s = connect_from(src, addr).await;
    s.write_all(bytes).await.unwrap();
    read_response(&mut s).await.expect("a response")
}

fn assert_denied(r: &Reply) {
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("Access Denied"), "{}", r.text());
}

fn forwarded_for(h: &Harness) -> String {
    h.upstream.last().expect("a forwarded request").headers["x-forwarded-for"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The value of `scopegate_requests_total` for one token and decision.
async fn requests_total(h: &Harness, token: &str, decision: &str) -> u64 {
    let samples = exposition::parse_exposition(&metrics(h).await);
    let labels = [("token", token), ("decision", decision)];
    exposition::sum(&samples, "scopegate_requests_total", &labels) as u64
}

#[tokio::test]
async fn allowlist_judges_the_tcp_peer() {
    let h = Harness::start_with("", &tokens()).await;
    let r = send_from("127.0.0.1", h.addr(), &request(&PINNED, "")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(forwarded_for(&h), "127.0.0.1");
    assert_eq!(h.upstream.count(), 1);

    let r = send_from("127.0.0.2", h.addr(), &request(&PINNED, "")).await;
    assert_denied(&r);
    assert_eq!(
        h.upstream.count(),
        1,
        "a refusal never reaches the upstream"
    );

    // A token without allowed_ips is served from anywhere.
    let r = send_from("127.0.0.2", h.addr(), &request(&READER, "")).await;
    assert_eq!(r.status, 200);
    assert_eq!(forwarded_for(&h), "127.0.0.2");

    // A wrong secret from the allowed address is still a credentials failure.
    let wrong = Fixture {
        sid: PINNED.sid,
        secret: "nope",
    };
    let r = send_from("127.0.0.1", h.addr(), &request(&wrong, "")).await;
    assert_eq!(r.status, 403);
    assert_eq!(h.upstream.count(), 2);

    assert_eq!(requests_total(&h, PINNED.sid, "denied_ip").await, 1);
    assert_eq!(requests_total(&h, PINNED.sid, "allowed").await, 1);
}

#[tokio::test]
async fn denied_ip_answers_like_a_wrong_secret_under_401() {
    let h = Harness::start_with("invalid_credentials_status: 401\n", &tokens()).await;
    let r = send_from("127.0.0.2", h.addr(), &request(&PINNED, "")).await;
    assert_eq!(r.status, 401);
    let wrong = Fixture {
        sid: PINNED.sid,
        secret: "nope",
    };
    let w = send_from("127.0.0.2", h.addr(), &request(&wrong, "")).await;
    assert_eq!(w.status, 401);
    assert_eq!(
        r.body, w.body,
        "the client cannot tell a right secret from a wrong one"
    );
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn an_untrusted_clients_forwarded_for_is_ignored() {
    // No trusted proxies at all, then trusted proxies that do not include the client.
    for extra in ["", "trusted_proxies: [127.0.0.5]\n"] {
        let h = Harness::start_with(extra, &tokens()).await;
        let spoof = "X-Forwarded-For: 127.0.0.1\r\nX-Real-IP: 127.0.0.1\r\n";
        let r = send_from("127.0.0.2", h.addr(), &request(&PINNED, spoof)).await;
        assert_denied(&r);
        let r = send_from(
            "127.0.0.2",
            h.addr(),
            &request(&DOC, "X-Forwarded-For: 192.0.2.1\r\n"),
        )
        .await;
        assert_denied(&r);
        assert_eq!(h.upstream.count(), 0, "{extra:?}");

        // Allowed from its real address; the spoofed chain is not passed on.
        let r = send_from(
            "127.0.0.1",
            h.addr(),
            &request(&PINNED, "X-Forwarded-For: 192.0.2.1, 10.0.0.1\r\n"),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(forwarded_for(&h), "127.0.0.1", "{extra:?}");
    }
}

#[tokio::test]
async fn allowlist_through_a_trusted_proxys_forwarded_for() {
    let h = Harness::start_with("trusted_proxies: [127.0.0.5, 127.0.0.6]\n", &tokens()).await;
    let via = |xff: &str| request(&DOC, &format!("X-Forwarded-For: {xff}\r\n"));

    let r = send_from("127.0.0.5", h.addr(), &via("192.0.2.44")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(forwarded_for(&h), "192.0.2.44, 127.0.0.5");

    // Walked from the right past trusted hops; the client's own left part is dropped.
    let r = send_from(
        "127.0.0.5",
        h.addr(),
        &via("203.0.113.9, 192.0.2.44, 127.0.0.6"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(forwarded_for(&h), "192.0.2.44, 127.0.0.6, 127.0.0.5");
    assert_eq!(h.upstream.count(), 2);

    // The right-most untrusted entry decides, whatever the client wrote left of it.
    let r = send_from("127.0.0.5", h.addr(), &via("192.0.2.44, 198.51.100.4")).await;
    assert_denied(&r);
    // IPv6 clients and ports in entries.
    let r = send_from("127.0.0.5", h.addr(), &via("[2001:db8::9]:4711")).await;
    assert_eq!(r.status, 200);
    assert_eq!(forwarded_for(&h), "2001:db8::9, 127.0.0.5");
    // An entry that is not an address: the client is unknown, allowlists refuse.
    let r = send_from("127.0.0.5", h.addr(), &via("192.0.2.44, unknown")).await;
    assert_denied(&r);
    // ...while a token without allowed_ips is still served.
    let r = send_from(
        "127.0.0.5",
        h.addr(),
        &request(&READER, "X-Forwarded-For: 192.0.2.44, unknown\r\n"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(h.upstream.count(), 4);
    // Several header lines are one list.
    let r = send_from(
        "127.0.0.5",
        h.addr(),
        &request(
            &DOC,
            "X-Forwarded-For: 198.51.100.4\r\nX-Forwarded-For: 192.0.2.45\r\n",
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(forwarded_for(&h), "192.0.2.45, 127.0.0.5");
    assert_eq!(requests_total(&h, DOC.sid, "denied_ip").await, 2);
}

#[tokio::test]
async fn the_throttle_counts_failures_per_resolved_client() {
    let h = Harness::start_with(
        "trusted_proxies: [127.0.0.5]\nbruteforce: {max_failures_per_address: 2}\n",
        &tokens(),
    )
    .await;
    let unknown = Fixture {
        sid: "SGnobody",
        secret: "x",
    };
    for _ in 0..2 {
        let r = send_from(
            "127.0.0.5",
            h.addr(),
            &request(&unknown, "X-Forwarded-For: 198.51.100.4\r\n"),
        )
        .await;
        assert_eq!(r.status, 403);
    }
    // That client is throttled, even with a right secret...
    let r = send_from(
        "127.0.0.5",
        h.addr(),
        &request(&READER, "X-Forwarded-For: 198.51.100.4\r\n"),
    )
    .await;
    assert_eq!(r.status, 429);
    // ...another client behind the same proxy is not, nor the proxy itself.
    let r = send_from(
        "127.0.0.5",
        h.addr(),
        &request(&READER, "X-Forwarded-For: 198.51.100.5\r\n"),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = send_from("127.0.0.5", h.addr(), &request(&READER, "")).await;
    assert_eq!(r.status, 200);
    assert_eq!(h.upstream.count(), 2);
}

fn v1(src: &str, port: u16) -> Vec<u8> {
    let family = if src.contains(':') { "TCP6" } else { "TCP4" };
    let dst = if src.contains(':') {
        "::1"
    } else {
        "127.0.0.1"
    };
    format!("PROXY {family} {src} {dst} {port} 8080\r\n").into_bytes()
}

/// A v2 PROXY header for TCP over IPv4, with an authority TLV and a NOOP TLV to skip.
fn v2(src: [u8; 4], port: u16) -> Vec<u8> {
    let mut payload = src.to_vec();
    payload.extend_from_slice(&[127, 0, 0, 1]);
    payload.extend_from_slice(&port.to_be_bytes());
    payload.extend_from_slice(&8080u16.to_be_bytes());
    payload.extend_from_slice(&[0x02, 0, 11]);
    payload.extend_from_slice(b"api.example");
    payload.extend_from_slice(&[0x04, 0, 2, 0, 0]);
    let mut h = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11]);
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&payload);
    h
}

/// A v2 LOCAL header (a balancer's health check): no address.
fn v2_local() -> Vec<u8> {
    let mut h = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x20, 0x00, 0, 0]);
    h
}

async fn rejected(h: &Harness, reason: &str) -> u64 {
    let series = format!("scopegate_proxy_protocol_rejected_total{{reason=\"{reason}\"}}");
    exposition::series_value(&metrics(h).await, &series).unwrap_or(0.0) as u64
}

#[tokio::test]
async fn allowlist_through_proxy_protocol_v1_and_v2() {
    let h = Harness::start_with(
        "proxy_protocol: true\ntrusted_proxies: [127.0.0.1]\n",
        &tokens(),
    )
    .await;
    let with = |header: Vec<u8>, f: &Fixture| [header, request(f, "")].concat();

    let r = send_from("127.0.0.1", h.addr(), &with(v1("192.0.2.10", 5000), &DOC)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(forwarded_for(&h), "192.0.2.10");
    let r = send_from(
        "127.0.0.1",
        h.addr(),
        &with(v1("198.51.100.10", 5000), &DOC),
    )
    .await;
    assert_denied(&r);
    let r = send_from("127.0.0.1", h.addr(), &with(v1("2001:db8::10", 5000), &DOC)).await;
    assert_eq!(r.status, 200);
    assert_eq!(forwarded_for(&h), "2001:db8::10");
    // An IPv4-mapped IPv6 source is the IPv4 client it carries.
    let r = send_from(
        "127.0.0.1",
        h.addr(),
        &with(v1("::ffff:192.0.2.11", 5000), &DOC),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(forwarded_for(&h), "192.0.2.11");
    let mapped_out = with(v1("::ffff:198.51.100.11", 5000), &DOC);
    assert_denied(&send_from("127.0.0.1", h.addr(), &mapped_out).await);

    let r = send_from(
        "127.0.0.1",
        h.addr(),
        &with(v2([192, 0, 2, 20], 6000), &DOC),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(forwarded_for(&h), "192.0.2.20");
    let r = send_from(
        "127.0.0.1",
        h.addr(),
        &with(v2([198, 51, 100, 20], 6000), &DOC),
    )
    .await;
    assert_denied(&r);
    // The PROXY source, not the balancer, is the client: the balancer's own address
    // (127.0.0.1) is allowed for PINNED, the header's is not.
    let r = send_from(
        "127.0.0.1",
        h.addr(),
        &with(v2([192, 0, 2, 20], 6000), &PINNED),
    )
    .await;
    assert_denied(&r);
    // A spoofed X-Forwarded-For behind an untrusted PROXY source is ignored.
    let spoofed = [
        v1("198.51.100.10", 5000),
        request(&DOC, "X-Forwarded-For: 192.0.2.1\r\n"),
    ]
    .concat();
    assert_denied(&send_from("127.0.0.1", h.addr(), &spoofed).await);
    // A health check (LOCAL) is the balancer itself.
    let r = send_from("127.0.0.1", h.addr(), &with(v2_local(), &PINNED)).await;
    assert_eq!(r.status, 200);
    assert_eq!(forwarded_for(&h), "127.0.0.1");
    assert_eq!(h.upstream.count(), 5);

    // Keep-alive: the header is read once, later requests follow on the connection.
    let mut s = connect_from("127.0.0.1", h.addr()).await;
    s.write_all(&with(v1("192.0.2.30", 1), &DOC)).await.unwrap();
    assert_eq!(read_response(&mut s).await.unwrap().status, 200);
    s.write_all(&request(&DOC, "")).await.unwrap();
    assert_eq!(read_response(&mut s).await.unwrap().status, 200);
    assert_eq!(forwarded_for(&h), "192.0.2.30");
    assert_eq!(h.upstream.count(), 7);
    assert_eq!(requests_total(&h, DOC.sid, "denied_ip").await, 4);
}

/// Writes `bytes` from `src` and expects the gateway to close without answering.
async fn closed_without_answer(src: &str, addr: SocketAddr, bytes: &[u8]) {
    let mut s = connect_from(src, addr).await;
    let _ = s.write_all(bytes).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("the gateway closes the connection");
    assert!(
        buf.is_empty(),
        "no response expected, got {:?} ({read:?})",
        String::from_utf8_lossy(&buf)
    );
}

#[tokio::test]
async fn connections_without_a_valid_proxy_header_are_closed() {
    let h = Harness::start_with(
        "proxy_protocol: true\ntrusted_proxies: [127.0.0.1]\ntimeouts: {header_read: 1s}\n",
        &tokens(),
    )
    .await;
    // A plain request, as if the balancer were bypassed.
    closed_without_answer("127.0.0.1", h.addr(), &request(&READER, "")).await;
    // Malformed headers.
    let bad_v1 = [
        b"PROXY TCP4 192.0.2.999 127.0.0.1 1 2\r\n".to_vec(),
        request(&READER, ""),
    ];
    closed_without_answer("127.0.0.1", h.addr(), &bad_v1.concat()).await;
    let mut bad_v2 = v2([192, 0, 2, 1], 1);
    bad_v2[12] = 0x11; // version 1 in a v2 signature
    closed_without_answer(
        "127.0.0.1",
        h.addr(),
        &[bad_v2, request(&READER, "")].concat(),
    )
    .await;
    // Announcing more TLV bytes than the bound.
    let mut huge = b"\r\n\r\n\x00\r\nQUIT\n\x21\x11".to_vec();
    huge.extend_from_slice(&60000u16.to_be_bytes());
    closed_without_answer("127.0.0.1", h.addr(), &huge).await;
    // A header that never completes: closed by the header read timeout.
    closed_without_answer("127.0.0.1", h.addr(), b"PROXY TCP4 192.0.2.1").await;
    // A valid header from a peer outside trusted_proxies.
    let from_elsewhere = [v1("192.0.2.10", 5000), request(&DOC, "")].concat();
    closed_without_answer("127.0.0.2", h.addr(), &from_elsewhere).await;

    assert_eq!(h.upstream.count(), 0);
    assert_eq!(rejected(&h, "invalid").await, 3);
    assert_eq!(rejected(&h, "too_long").await, 1);
    assert_eq!(rejected(&h, "timeout").await, 1);
    assert_eq!(rejected(&h, "untrusted_peer").await, 1);
}

#[tokio::test]
async fn proxy_protocol_comes_before_tls() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let upstream = Upstream::start().await;
    let dir = TempDir::new();
    dir.write("cert.pem", &ck.cert.pem());
    dir.write("key.pem", &ck.key_pair.serialize_pem());
    let cfg = dir.write(
        "scopegate.yaml",
        &gateway_yaml(
            upstream.addr,
            "tls: {cert: cert.pem, key: key.pem}\nproxy_protocol: true\n",
        ),
    );
    dir.write("tokens.yaml", &tokens());
    let gateway = start_gateway(&cfg).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    for (src, status) in [([192, 0, 2, 50], 200), ([198, 51, 100, 50], 403)] {
        let mut tcp = TcpStream::connect(gateway.addr).await.unwrap();
        tcp.write_all(&v2(src, 7000)).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        tls.write_all(&request(&DOC, "Connection: close\r\n"))
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tls.read_to_end(&mut buf).await;
        let text = String::from_utf8_lossy(&buf);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status} ")),
            "{src:?}: {text}"
        );
    }
    assert_eq!(upstream.count(), 1);
    let seen = upstream.last().unwrap();
    assert_eq!(seen.headers["x-forwarded-for"], "192.0.2.50");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    gateway.shutdown().await;
}

#[test]
fn address_lists_are_validated_with_file_line_and_field() {
    let dir = TempDir::new();
    let gateway = gateway_yaml(
        "127.0.0.1:9".parse().unwrap(),
        "trusted_proxies: [10.0.0.0/8, 10.0.0.1/8, proxy.internal]\n",
    );
    let cfg = dir.write("scopegate.yaml", &gateway);
    let tokens = tokens()
        .replace(
            "allowed_ips: [127.0.0.1]",
            "allowed_ips: [127.0.0.1, 300.1.1.1, \"::1/129\"]",
        )
        .replace(
            "allowed_ips: [192.0.2.0/24, \"2001:db8::/32\"]",
            "allowed_ips: []",
        );
    dir.write("tokens.yaml", &tokens);

    let errors = match scopegate::config::load(&cfg) {
        Err(e) => e.0,
        Ok(_) => panic!("bad gateway addresses must be refused"),
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["trusted_proxies[1]", "trusted_proxies[2]"],
        "{errors:?}"
    );
    assert!(errors[0].message.contains("did you mean 10.0.0.0/8"));
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert_eq!(errors[0].line, line_of(&gateway, "trusted_proxies"));

    // The gateway file fixed, the tokens file's errors are all reported.
    dir.write(
        "scopegate.yaml",
        &gateway_yaml(
            "127.0.0.1:9".parse().unwrap(),
            "trusted_proxies: [10.0.0.0/8]\n",
        ),
    );
    let errors = match scopegate::config::load(&cfg) {
        Err(e) => e.0,
        Ok(_) => panic!("bad allowed_ips must be refused"),
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "accounts[0].tokens[1].allowed_ips[1]",
            "accounts[0].tokens[1].allowed_ips[2]",
            "accounts[0].tokens[2].allowed_ips",
        ],
        "{errors:?}"
    );
    assert_eq!(errors[0].line, line_of(&tokens, "300.1.1.1"));
    assert_eq!(errors[2].line, line_of(&tokens, "allowed_ips: []"));
    assert!(errors[0].file.ends_with("tokens.yaml"));
    assert!(errors.iter().all(|e| !e.hint.is_empty()));
}

#[tokio::test]
async fn explain_checks_an_address_given_with_from() {
    let h = Harness::start_with("", &tokens()).await;
    let cfg = &h.config_path;
    let (code, out) = cli::explain(
        cfg,
        &[
            "--token",
            DOC.sid,
            "--from",
            "198.51.100.7",
            "GET",
            CAMPAIGNS,
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("denied_ip (ip_not_allowed)"), "{out}");
    assert!(out.contains("192.0.2.0/24, 2001:db8::/32"), "{out}");

    let (code, out) = cli::explain(
        cfg,
        &[
            "--token",
            DOC.sid,
            "--from",
            "::ffff:192.0.2.7",
            "--json",
            "GET",
            CAMPAIGNS,
        ],
    );
    assert_eq!(code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["decision"], "allowed");
    assert_eq!(json["from"], "192.0.2.7");
    assert_eq!(json["allowed_ips"][1], "2001:db8::/32");

    // Without --from the allowlist is reported, not checked.
    let (code, out) = cli::explain(cfg, &["--token", DOC.sid, "GET", CAMPAIGNS]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pass --from IP"), "{out}");
    // The address is checked after the secret-independent credential checks and before
    // the scopes, as the gateway does: a scope miss from a bad address is denied_ip.
    let (code, out) = cli::explain(
        cfg,
        &["--token", DOC.sid, "--from", "10.0.0.1", "POST", CAMPAIGNS],
    );
    assert_eq!(code, 1);
    assert!(out.contains("denied_ip"), "{out}");
    let (code, _) = cli::explain(
        cfg,
        &["--token", DOC.sid, "--from", "not-an-ip", "GET", CAMPAIGNS],
    );
    assert_eq!(code, 2);
}

#[tokio::test]
async fn denied_ip_counts_like_a_wrong_secret_in_the_throttle() {
    let h = Harness::start_with("bruteforce: {max_failures: 2}\n", &tokens()).await;
    for _ in 0..2 {
        assert_denied(&send_from("127.0.0.2", h.addr(), &request(&PINNED, "")).await);
    }
    // The SID is now throttled, as after two wrong secrets: 429 even from its address.
    let r = send_from("127.0.0.1", h.addr(), &request(&PINNED, "")).await;
    assert_eq!(r.status, 429);
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn a_reload_changes_allowlists_and_trusted_proxies() {
    let h = Harness::start_with("", &tokens()).await;
    let via_proxy = request(&DOC, "X-Forwarded-For: 192.0.2.9\r\n");
    assert_denied(&send_from("127.0.0.2", h.addr(), &request(&PINNED, "")).await);
    assert_denied(&send_from("127.0.0.5", h.addr(), &via_proxy).await);

    let tokens = tokens().replace("[127.0.0.1]", "[127.0.0.1, 127.0.0.2]");
    h.dir.write("tokens.yaml", &tokens);
    h.dir.write(
        "scopegate.yaml",
        &gateway_yaml(h.upstream.addr, "trusted_proxies: [127.0.0.5]\n"),
    );
    scopegate::gateway::reload::reload(&h.gateway.shared, &h.config_path)
        .await
        .expect("a valid configuration reloads");

    let r = send_from("127.0.0.2", h.addr(), &request(&PINNED, "")).await;
    assert_eq!(r.status, 200);
    let r = send_from("127.0.0.5", h.addr(), &via_proxy).await;
    assert_eq!(r.status, 200);
    assert_eq!(forwarded_for(&h), "192.0.2.9, 127.0.0.5");
}

/// `scopegate token <args...>`: (success, stdout, stderr).
fn token_cli(cfg: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["token"];
    all.extend_from_slice(args);
    let r = cli::run(cfg, &all);
    (r.ok(), r.stdout, r.stderr)
}

#[tokio::test]
async fn the_token_cli_manages_allowed_ips() {
    let h = Harness::start_with("", &tokens()).await;
    let cfg = h.config_path.clone();
    let (ok, out, err) = token_cli(
        &cfg,
        &[
            "create",
            "--account",
            ACCOUNT,
            "--name",
            "pinned-cli",
            "--scope",
            "campaigns:GET",
            "--allow-ip",
            "127.0.0.2",
            "--allow-ip",
            "2001:db8::/32",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let sid = created["sid"].as_str().unwrap().to_owned();
    let auth = basic_raw(&sid, created["secret"].as_str().unwrap());
    let (ok, out, err) = token_cli(&cfg, &["show", &sid, "--json"]);
    assert!(ok, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        shown["allowed_ips"],
        serde_json::json!(["127.0.0.2/32", "2001:db8::/32"])
    );
    let reload = || scopegate::gateway::reload::reload(&h.gateway.shared, &h.config_path);
    reload().await.expect("the CLI wrote a valid file");
    let status = |src: &'static str| {
        let req = request_with(&auth, "");
        let addr = h.addr();
        async move { send_from(src, addr, &req).await.status }
    };
    assert_eq!(status("127.0.0.2").await, 200);
    assert_eq!(status("127.0.0.1").await, 403);

    let (ok, _, err) = token_cli(
        &cfg,
        &[
            "update",
            &sid,
            "--allow-ip",
            "127.0.0.1",
            "--remove-ip",
            "127.0.0.2/32",
        ],
    );
    assert!(ok, "{err}");
    reload().await.unwrap();
    assert_eq!(status("127.0.0.1").await, 200);
    assert_eq!(status("127.0.0.2").await, 403);

    // Emptying the list is refused and writes nothing; a malformed entry never gets in.
    let before = std::fs::read_to_string(h.dir.path("tokens.yaml")).unwrap();
    let (ok, _, err) = token_cli(
        &cfg,
        &[
            "update",
            &sid,
            "--remove-ip",
            "127.0.0.1",
            "--remove-ip",
            "2001:db8::/32",
        ],
    );
    assert!(!ok);
    assert!(err.contains("--any-ip"), "{err}");
    let (ok, _, err) = token_cli(&cfg, &["update", &sid, "--allow-ip", "127.0.0.1/8"]);
    assert!(!ok);
    assert!(err.contains("127.0.0.0/8"), "{err}");
    assert_eq!(
        std::fs::read_to_string(h.dir.path("tokens.yaml")).unwrap(),
        before
    );

    let (ok, _, err) = token_cli(&cfg, &["update", &sid, "--any-ip"]);
    assert!(ok, "{err}");
    reload().await.unwrap();
    assert_eq!(status("127.0.0.2").await, 200);
    let (_, out, _) = token_cli(&cfg, &["show", &sid]);
    assert!(out.contains("any address"), "{out}");
}

#[tokio::test]
async fn the_access_log_names_the_decision_and_the_resolved_client() {
    let upstream = Upstream::start().await;
    let dir = TempDir::new();
    let (port, admin) = (free_port(), free_port());
    let yaml = with_ports(
        &gateway_yaml(upstream.addr, "trusted_proxies: [127.0.0.5]\n"),
        port,
        admin,
    );
    let cfg = dir.write("scopegate.yaml", &yaml);
    dir.write("tokens.yaml", &tokens());
    let cfg = cfg.to_str().expect("a UTF-8 test path");
    let mut p = Proc::start(&["serve", "--log-format", "json", "--config", cfg], &[]);
    p.wait_ready(&format!("127.0.0.1:{admin}")).await;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let r = send_from(
        "127.0.0.5",
        addr,
        &request(&PINNED, "X-Forwarded-For: 127.0.0.1, 198.51.100.23\r\n"),
    )
    .await;
    assert_denied(&r);

    // The access-log line is written before the response; the file may lag a little.
    let denied = "\"decision\":\"denied_ip\"";
    let log = p.wait_for(denied, true).await;
    let line = log
        .lines()
        .find(|l| l.contains(denied))
        .expect("the line just seen")
        .to_owned();
    drop(p);
    assert!(line.contains("\"client\":\"198.51.100.23\""), "{line}");
    assert!(line.contains("\"token\":\"SGpinned\""), "{line}");
    assert!(line.contains("\"reason\":\"ip_not_allowed\""), "{line}");
    assert!(line.contains("\"status\":403"), "{line}");
    assert!(!line.contains(PINNED.secret), "{line}");
    assert_eq!(upstream.count(), 0);
}
