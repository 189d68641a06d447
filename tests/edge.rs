//! Edge hardening: one raw-socket test per class an outside red team found (Unicode folding in
//! paths, h2c upgrades and prior knowledge, gateway-owned headers, `Expect: 100-continue` on a
//! refused request, HTTP/0.9 request lines, Basic with several spaces). Each asserts the exact
//! status and what the upstream received (nothing, or the header removed or overwritten).

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn get_line(target: &str, who: &Fixture, extra: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n{extra}\r\n",
        basic(who)
    )
}

/// Reads whatever the peer sends until it closes (bounded), for refusals that close.
async fn read_until_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    out
}

#[tokio::test]
async fn unicode_folding_and_trailing_dot_targets_are_refused() {
    let h = Harness::start().await;
    let refused = [
        // fullwidth, leader and small forms of `.`, `/`, `\`, `%` (NFKC)
        "/public/%EF%BC%8E%EF%BC%8E/x",
        "/public/a%EF%BC%8F..%EF%BC%8F..%EF%BC%8FMediapartners",
        "/public/..%EF%BC%BC..%EF%BC%BCx",
        "/public/%E2%80%A5/x",
        "/public/%E2%80%A4%E2%80%A4/x",
        "/public/%EF%B9%92%EF%B9%92/x",
        "/public/%EF%B9%A8..%EF%B9%A8x",
        "/public/%EF%BC%85%32%65%EF%BC%85%32%65/x",
        "/public/..%EF%BC%9B/x",
        // Windows best-fit only: yen (932), won (949), division slash, set minus
        "/public/%C2%A5..%C2%A5x",
        "/public/..%E2%82%A9x",
        "/public/..%E2%88%95x",
        "/public/..%E2%88%96x",
        // dots and spaces, invisible characters
        "/public/..%20/x",
        "/public/.%20./x",
        "/public/%20../x",
        "/public/...%20/x",
        "/public/..%E2%80%8B/x",
        "/public/%E2%80%8B/x",
        // trailing dot or space, spelled any way: Windows reads `Items`, a more specific
        // API (campaign_items) than the campaigns grant that would match
        "/Mediapartners/IRacme/Campaigns/5/Items.",
        "/Mediapartners/IRacme/Campaigns/5/Items%2E",
        "/Mediapartners/IRacme/Campaigns/5/Items%20",
        "/Mediapartners/IRacme/Campaigns/5/Items%E3%80%80",
        "/Mediapartners/IRacme/Campaigns/5/Items%C2%A0",
        // a compatibility letter NFKC turns into the more specific API's literal
        "/Mediapartners/IRacme/Campaigns/5/%EF%BC%A9tems",
    ];
    for target in refused {
        let r = raw(h.addr(), get_line(target, &READER, "").as_bytes()).await;
        assert_eq!(r.status, 400, "{target}");
    }
    assert_eq!(
        h.upstream.count(),
        0,
        "nothing refused reached the upstream"
    );

    // Non-ASCII that no fold turns into ASCII is forwarded exactly as authorized.
    for target in [
        "/public/Jos%C3%A9",
        "/public/%E6%97%A5%E6%9C%AC",
        "/public/a.b",
    ] {
        let r = raw(h.addr(), get_line(target, &READER, "").as_bytes()).await;
        assert_eq!(r.status, 200, "{target}");
        assert_eq!(h.upstream.last().unwrap().target, target);
    }
}

#[tokio::test]
async fn non_ascii_paths_can_be_refused_altogether() {
    let h = Harness::start_with("refuse_non_ascii_paths: true\n", &tokens_yaml()).await;
    let r = raw(
        h.addr(),
        get_line("/public/Jos%C3%A9", &READER, "").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(h.upstream.count(), 0);
    let r = raw(h.addr(), get_line("/public/Jose", &READER, "").as_bytes()).await;
    assert_eq!(r.status, 200);
}

/// A raw upstream that records each request head and answers `101` to any request carrying
/// `Upgrade` (or to every request when `always_101`), `200` otherwise, then closes.
async fn switching_upstream(always_101: bool) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let Some(head) = read_head(&mut s).await else {
                    return;
                };
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let upgrade = always_101 || head.contains("\r\nupgrade:");
                record.lock().unwrap().push(head);
                let reply: &[u8] = if upgrade {
                    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                };
                let _ = s.write_all(reply).await;
                // An HTTP/2 server would now send its SETTINGS frame on the new protocol.
                if upgrade {
                    let _ = s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await;
                }
            });
        }
    });
    (addr, heads)
}

#[tokio::test]
async fn h2c_upgrade_is_removed_before_forwarding() {
    let (up, heads) = switching_upstream(false).await;
    let (gw, _dir) = gateway_for(up, "").await;
    let h2c = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n";
    let r = raw(gw.addr, get_line(CAMPAIGNS, &READER, h2c).as_bytes()).await;
    assert_eq!(
        r.status, 200,
        "served as the plain HTTP/1.1 request it also is"
    );
    // Other protocols, several protocols at once, a WebSocket handshake that is not a GET,
    // and a websocket upgrade over HTTP/1.0 are not upgrades the gateway passes either.
    for extra in [
        "Connection: Upgrade\r\nUpgrade: h2c, websocket\r\n",
        "Connection: Upgrade\r\nUpgrade: websocket\r\nUpgrade: h2c\r\n",
        "Connection: Upgrade\r\nUpgrade: TLS/1.2\r\n",
        "Connection: upgrade\r\nUpgrade: h2\r\n",
    ] {
        let r = raw(gw.addr, get_line(CAMPAIGNS, &READER, extra).as_bytes()).await;
        assert_eq!(r.status, 200, "{extra}");
    }
    let post = format!(
        "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n",
        basic(&WRITER)
    );
    assert_eq!(raw(gw.addr, post.as_bytes()).await.status, 200);
    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 6);
    for head in heads {
        assert!(!head.contains("\r\nupgrade:"), "{head}");
        assert!(!head.contains("http2-settings"), "{head}");
        assert!(!head.contains("connection: upgrade"), "{head}");
    }
}

#[tokio::test]
async fn heads_after_an_upgrade_that_did_not_happen_are_still_judged() {
    let (up, heads) = switching_upstream(false).await;
    let (gw, _dir) = gateway_for(up, "").await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let h2c = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n";
    s.write_all(get_line(CAMPAIGNS, &READER, h2c).as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut s).await.unwrap().status, 200);
    // The connection stays HTTP/1.1, so its next head is judged like any: both framings
    // at once are refused, and that request never reaches the upstream.
    let both = format!(
        "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 4\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        basic(&WRITER)
    );
    s.write_all(both.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.unwrap().status, 400);
    assert_eq!(
        heads.lock().unwrap().len(),
        1,
        "only the first request was forwarded"
    );
}

#[tokio::test]
async fn a_101_without_an_allowed_upgrade_never_reaches_the_client() {
    let (up, heads) = switching_upstream(true).await;
    let (gw, _dir) = gateway_for(up, "").await;
    for extra in ["", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"] {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(get_line(CAMPAIGNS, &READER, extra).as_bytes())
            .await
            .unwrap();
        let got = read_until_close(&mut s).await;
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 502 "), "{text}");
        assert!(!text.contains("101"), "{text}");
    }
    // A WebSocket handshake answered with a switch to another protocol is refused too.
    let ws = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(get_line(CAMPAIGNS, &READER, ws).as_bytes())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&read_until_close(&mut s).await).into_owned();
    assert!(text.starts_with("HTTP/1.1 502 "), "{text}");
    assert_eq!(heads.lock().unwrap().len(), 3);
}

/// The HTTP/2 connection preface followed by an empty SETTINGS frame.
const H2_PRIOR_KNOWLEDGE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

#[tokio::test]
async fn h2c_prior_knowledge_is_not_served_unless_enabled() {
    let h = Harness::start().await;
    let mut s = TcpStream::connect(h.addr()).await.unwrap();
    s.write_all(H2_PRIOR_KNOWLEDGE).await.unwrap();
    assert!(
        read_until_close(&mut s).await.is_empty(),
        "closed without an HTTP/2 frame"
    );
    // The preface in pieces is refused the same way.
    let mut s = TcpStream::connect(h.addr()).await.unwrap();
    s.write_all(&H2_PRIOR_KNOWLEDGE[..7]).await.unwrap();
    s.flush().await.unwrap();
    s.write_all(&H2_PRIOR_KNOWLEDGE[7..]).await.unwrap();
    assert!(read_until_close(&mut s).await.is_empty());
    assert_eq!(h.upstream.count(), 0);

    let enabled = Harness::start_with("http2_cleartext: true\n", &tokens_yaml()).await;
    let mut s = TcpStream::connect(enabled.addr()).await.unwrap();
    s.write_all(H2_PRIOR_KNOWLEDGE).await.unwrap();
    let mut frame = [0u8; 9];
    s.read_exact(&mut frame).await.unwrap();
    assert_eq!(frame[3], 0x04, "the server's SETTINGS frame");
}

#[tokio::test]
async fn refused_expect_continue_gets_the_final_status_without_100() {
    let h = Harness::start().await;
    // In scope for GET only: the POST is refused (403) before any `100 Continue`.
    let head = format!(
        "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        basic(&READER)
    );
    let mut s = TcpStream::connect(h.addr()).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let text = String::from_utf8_lossy(&read_until_close(&mut s).await).into_owned();
    assert!(text.starts_with("HTTP/1.1 403 "), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    // No credentials: 401, same way.
    let head = format!(
        "PUT {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    );
    let mut s = TcpStream::connect(h.addr()).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let text = String::from_utf8_lossy(&read_until_close(&mut s).await).into_owned();
    assert!(text.starts_with("HTTP/1.1 401 "), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert_eq!(h.upstream.count(), 0);

    // An authorized request gets `100 Continue` (only now), then its answer.
    let head = format!(
        "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        basic(&WRITER)
    );
    let mut s = TcpStream::connect(h.addr()).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).await.unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").await.unwrap();
    assert_eq!(read_response(&mut s).await.unwrap().status, 200);
    assert_eq!(&h.upstream.last().unwrap().body[..], b"hello");
}

#[tokio::test]
async fn http09_request_lines_get_400_at_once() {
    let h = Harness::start_with("timeouts:\n  header_read: 30s\n", &tokens_yaml()).await;
    for (first, rest) in [
        ("GET /", "\r\n"),
        ("GET", " /public/x\r\n"),
        ("GET /public/x", "\n"),
    ] {
        let mut s = TcpStream::connect(h.addr()).await.unwrap();
        s.write_all(first.as_bytes()).await.unwrap();
        // An incomplete line gets no answer (the gateway reads it as a partial head)...
        let mut b = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(200), s.read(&mut b)).await;
        assert!(early.is_err(), "answered before the line was complete");
        // ...and the complete HTTP/0.9 line a 400 well before the 30 s header timeout.
        s.write_all(rest.as_bytes()).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(3), read_response(&mut s))
            .await
            .expect("answered at once")
            .expect("a response");
        assert_eq!(reply.status, 400, "{first:?} + {rest:?}");
        assert!(closed_by_peer(&mut s).await);
    }
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn basic_with_several_spaces_is_accepted() {
    let h = Harness::start().await;
    let creds = basic(&READER).replacen("Basic ", "Basic   ", 1);
    let req = format!("GET {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {creds}\r\n\r\n");
    assert_eq!(raw(h.addr(), req.as_bytes()).await.status, 200);
    let tab = basic(&READER).replacen("Basic ", "Basic\t", 1);
    let req = format!("GET {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {tab}\r\n\r\n");
    assert_eq!(raw(h.addr(), req.as_bytes()).await.status, 401);
    assert_eq!(h.upstream.count(), 1);
}

/// Routing and identity names public bypass tools send (a sample; the unit tests of
/// `owned_headers` hold the long list).
const TOOL_NAMES: &[&str] = &[
    "Forwarded",
    "X-Real-IP",
    "True-Client-IP",
    "X-Client-IP",
    "Client-IP",
    "CF-Connecting-IP",
    "Fastly-Client-IP",
    "X-Cluster-Client-IP",
    "X-Originating-IP",
    "X-Remote-IP",
    "X-Remote-Addr",
    "X-Host",
    "X-Forwarded-Port",
    "X-Forwarded-Scheme",
    "X-Forwarded-Uri",
    "X-Forwarded-Server",
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-Original-Path",
    "X-HTTP-Path-Override",
    "X-Override-URL",
    "X-Envoy-Original-Path",
    "X-Envoy-Internal",
    "X-Scopegate-Token",
    "X-Scopegate-Account",
    "X-Scopegate-Other",
    "X-Custom-IP-Authorization",
    "X-ProxyUser-Ip",
    "WL-Proxy-Client-IP",
    "X-Originally-Forwarded-For",
    "Forwarded-For",
    "X-Forward-For",
    "X-HTTP-Host-Override",
    "Base-Url",
    "Request-Uri",
    "X-Remote-User",
    // Client-certificate identity and auth-proxy users, as TLS-terminating and auth
    // proxies pass them on.
    "X-SSL-Client-Cert",
    "X-SSL-Client-DN",
    "X-SSL-Client-Verify",
    "X-Client-Cert",
    "X-Client-Verify",
    "Ssl-Client-Cert",
    "SSL_CLIENT_S_DN",
    "X-ARR-ClientCert",
    "X-Auth-User",
    "X-User",
    "X-Userid",
    "X-Proxy-User",
    "X-Pomerium-Jwt-Assertion",
    "X-Real-Host",
    "X-Scheme",
];

#[tokio::test]
async fn gateway_owned_headers_never_reach_the_upstream() {
    let extra = "limits:\n  max_headers: 400\n  max_header_bytes: 65536\n\
                 strip_request_headers: [X-Internal-User, \"x-acme-*\"]\n\
                 set_forwarded: true\nset_x_real_ip: true\n";
    let h = Harness::start_with(extra, &tokens_yaml()).await;
    let mut names: Vec<String> = TOOL_NAMES.iter().map(|n| n.to_string()).collect();
    for family in scopegate::domain::owned_headers::FAMILIES {
        for rule in family.rules {
            names.push(match *rule {
                scopegate::domain::owned_headers::Rule::Exact(e) => e.to_owned(),
                scopegate::domain::owned_headers::Rule::Prefix(p) => format!("{p}probe"),
                scopegate::domain::owned_headers::Rule::Word(w) => format!("x-{w}-probe"),
            });
        }
    }
    names.extend(["X-Internal-User", "X-Acme-Role", "X_Acme_Tenant"].map(String::from));
    let mut head = format!(
        "GET {CAMPAIGNS} HTTP/1.1\r\nHost: gw.example:8080\r\nAuthorization: {}\r\nX-Request-Id: kept-1\r\nX-Acmex: kept-2\r\n",
        basic(&READER)
    );
    for name in &names {
        head.push_str(&format!("{name}: 127.0.0.1\r\n"));
    }
    head.push_str("\r\n");
    assert_eq!(raw(h.addr(), head.as_bytes()).await.status, 200);
    let seen = h.upstream.last().unwrap().headers;

    // The gateway's own values, never the client's.
    let own: &[(&str, &str)] = &[
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "gw.example:8080"),
        (
            "forwarded",
            "for=127.0.0.1;proto=http;host=\"gw.example:8080\"",
        ),
        ("x-real-ip", "127.0.0.1"),
        ("x-scopegate-token", READER.sid),
        ("x-scopegate-account", "IRacme"),
    ];
    for (name, value) in own {
        let values: Vec<_> = seen.get_all(*name).iter().collect();
        assert_eq!(values.len(), 1, "{name}: {values:?}");
        assert_eq!(values[0], *value, "{name}");
    }
    for name in &names {
        let lower = name.to_ascii_lowercase();
        if own.iter().any(|(n, _)| *n == lower) {
            continue;
        }
        assert!(
            !seen.contains_key(lower.as_str()),
            "{name} reached the upstream"
        );
    }
    assert_eq!(seen["x-request-id"], "kept-1");
    assert_eq!(seen["x-acmex"], "kept-2");
}

#[tokio::test]
async fn underscore_method_overrides_are_authorized_too() {
    let h = Harness::start().await;
    // READER may only GET campaigns; a CGI-style upstream reads this as DELETE.
    for name in [
        "X_HTTP_Method_Override",
        "X-HTTP_Method",
        "x_method_override",
    ] {
        let head = get_line(CAMPAIGNS, &READER, &format!("{name}: DELETE\r\n"));
        assert_eq!(raw(h.addr(), head.as_bytes()).await.status, 403, "{name}");
    }
    assert_eq!(h.upstream.count(), 0);
    let head = get_line(CAMPAIGNS, &WRITER, "X_HTTP_Method_Override: DELETE\r\n");
    assert_eq!(raw(h.addr(), head.as_bytes()).await.status, 200);
}

#[tokio::test]
async fn without_the_options_forwarded_and_x_real_ip_are_only_removed() {
    let h = Harness::start().await;
    let head = get_line(
        CAMPAIGNS,
        &READER,
        "Forwarded: for=10.0.0.1;proto=https\r\nX-Real-IP: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.1\r\n",
    );
    assert_eq!(raw(h.addr(), head.as_bytes()).await.status, 200);
    let seen = h.upstream.last().unwrap().headers;
    assert!(!seen.contains_key("forwarded"));
    assert!(!seen.contains_key("x-real-ip"));
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
}

#[test]
fn bad_strip_request_headers_entries_are_named() {
    let yaml = gateway_yaml(
        "127.0.0.1:1".parse().unwrap(),
        "strip_request_headers: [x-ok, \"bad name\", content-length, \"*\"]\n",
    );
    let errors = scopegate::config::load_from_sources(
        std::path::Path::new("/t/scopegate.yaml"),
        &yaml,
        Some(&tokens_yaml()),
    )
    .expect_err("refused");
    let text = errors.to_string();
    for field in [
        "strip_request_headers[1]",
        "strip_request_headers[2]",
        "strip_request_headers[3]",
    ] {
        assert!(text.contains(field), "{field} missing from:\n{text}");
    }
    assert!(!text.contains("strip_request_headers[0]"), "{text}");
}

#[tokio::test]
async fn authority_form_targets_are_refused() {
    let h = Harness::start().await;
    for (method, target, host) in [
        ("CONNECT", "x:443", "x:443"),
        ("CONNECT", "127.0.0.1:22", "127.0.0.1:22"),
        ("GET", "x:443", "x:443"),
        // CONNECT asks for a tunnel in any form, and only http(s) targets name a resource.
        ("CONNECT", CAMPAIGNS, "x"),
        ("CONNECT", &format!("http://x{CAMPAIGNS}"), "x"),
        ("GET", &format!("ftp://x{CAMPAIGNS}"), "x"),
        ("GET", &format!("ws://x{CAMPAIGNS}"), "x"),
    ] {
        let req = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {}\r\n\r\n",
            basic(&LEGACY)
        );
        let r = raw(h.addr(), req.as_bytes()).await;
        assert_eq!(r.status, 400, "{method} {target}");
    }
    assert_eq!(h.upstream.count(), 0);
}

/// A query parameter that some upstream framework reads as `_method` is an override to
/// authorize, however it is spelled: percent-encoded letters, `+` or spaces, `;` as the
/// separator, PHP's rewriting of names, any case.
#[tokio::test]
async fn method_override_parameters_are_authorized_in_every_spelling() {
    let h = Harness::start().await;
    for query in [
        "_%6dethod=DELETE",
        "_metho%64=DELETE",
        "%5f%6d%65%74%68%6f%64=DELETE",
        "_%6Dethod=DELETE",
        "%255fmethod=DELETE",
        "_method=GET&_%6dethod=DELETE",
        "a=1;_method=DELETE",
        "+_method=DELETE",
        "%20_method=DELETE",
        "_method%00=DELETE",
        "_METHOD=DELETE",
        "_method[]=DELETE",
        ".method=DELETE",
    ] {
        let head = get_line(&format!("{CAMPAIGNS}?{query}"), &READER, "");
        assert_eq!(raw(h.addr(), head.as_bytes()).await.status, 403, "{query}");
    }
    assert_eq!(h.upstream.count(), 0, "nothing reached the upstream");
    // Recognized, and allowed when the method they name is in scope.
    let head = get_line(&format!("{CAMPAIGNS}?_%6dethod=GET"), &READER, "");
    assert_eq!(raw(h.addr(), head.as_bytes()).await.status, 200);
    // Names that only look alike are ordinary parameters.
    let head = get_line(
        &format!("{CAMPAIGNS}?x_method=DELETE&_methods=DELETE"),
        &READER,
        "",
    );
    assert_eq!(raw(h.addr(), head.as_bytes()).await.status, 200);
}

/// `Host` must be `host[:port]` with a real port, and HTTP/1.1 needs it even beside an
/// absolute-form target.
#[tokio::test]
async fn a_host_with_a_port_that_is_not_a_port_or_no_host_is_400() {
    let h = Harness::start().await;
    let auth = basic(&READER);
    for host in [
        "a:x",
        "a:80a",
        "a:-1",
        "a:+80",
        "a:999999",
        "127.0.0.1:18480x",
        "[::1]:x",
        "[::1]evil.example",
        "[::1]x:80",
        "a[b]",
        "[]",
    ] {
        let req =
            format!("GET {CAMPAIGNS} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n\r\n");
        assert_eq!(raw(h.addr(), req.as_bytes()).await.status, 400, "{host}");
    }
    let req = format!("GET http://127.0.0.1{CAMPAIGNS} HTTP/1.1\r\nAuthorization: {auth}\r\n\r\n");
    assert_eq!(raw(h.addr(), req.as_bytes()).await.status, 400, "no Host");
    assert_eq!(h.upstream.count(), 0, "nothing reached the upstream");
    for host in ["a:8080", "a:", "[::1]:8080", "a:65535"] {
        let req =
            format!("GET {CAMPAIGNS} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n\r\n");
        assert_eq!(raw(h.addr(), req.as_bytes()).await.status, 200, "{host}");
    }
}

/// `limits.max_headers` holds on HTTP/2 too (hyper bounds only the size there): 431, and
/// nothing reaches the upstream.
#[tokio::test]
async fn too_many_header_fields_over_http2_get_431() {
    let h = Harness::start_with(
        "http2_cleartext: true\nlimits:\n  max_headers: 20\n",
        &tokens_yaml(),
    )
    .await;
    let (mut h2, _conn) = h2c(h.addr()).await;
    let request = |fields: usize| {
        let mut req = http::Request::builder()
            .uri(format!("http://localhost{CAMPAIGNS}"))
            .header("authorization", basic(&READER));
        for i in 0..fields {
            req = req.header(format!("x-field-{i}"), "v");
        }
        req.body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    let resp = h2.send_request(request(30)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 431);
    assert_eq!(h.upstream.count(), 0, "nothing reached the upstream");
    let resp = h2.send_request(request(10)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // A browser's cookies, one field each over HTTP/2, count as one `Cookie` line.
    let mut req = request(10);
    for i in 0..30 {
        req.headers_mut()
            .append("cookie", format!("c{i}=v").parse().unwrap());
    }
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

/// An HTTP/2 connection with no open stream for `timeouts.header_read` is closed (hyper's
/// HTTP/2 server has no idle timeout, and its keep-alive PINGs keep it busy), while one
/// whose requests keep coming stays open.
#[tokio::test]
async fn an_idle_http2_connection_is_closed() {
    let h = Harness::start_with(
        "http2_cleartext: true\ntimeouts:\n  header_read: 1s\n",
        &tokens_yaml(),
    )
    .await;
    let (mut h2, mut conn) = h2c(h.addr()).await;
    let request = || {
        http::Request::builder()
            .uri(format!("http://localhost{CAMPAIGNS}"))
            .header("authorization", basic(&READER))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    // Busy for three timeouts: never closed.
    for _ in 0..10 {
        let resp = h2.send_request(request()).await.expect("still open");
        assert_eq!(resp.status().as_u16(), 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(!conn.is_finished());
    // Idle: closed between one and two timeouts after the last stream.
    let closed = tokio::time::timeout(Duration::from_secs(5), &mut conn).await;
    assert!(closed.is_ok(), "the idle connection was not closed");
    assert_eq!(h.upstream.count(), 10);
}

/// A connection that sends the HTTP/2 preface and nothing more is closed too.
#[tokio::test]
async fn a_connection_that_only_sends_the_http2_preface_is_closed() {
    let h = Harness::start_with(
        "http2_cleartext: true\ntimeouts:\n  header_read: 1s\n",
        &tokens_yaml(),
    )
    .await;
    let mut s = TcpStream::connect(h.addr()).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
    assert!(
        closed.is_ok(),
        "the silent HTTP/2 connection was not closed"
    );
}
