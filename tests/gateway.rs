//! The request path end to end: the real gateway on port 0, a recording upstream, real
//! clients over TCP. Every refusal asserts its exact status and that nothing reached the
//! upstream; every allowed request asserts what the upstream received.

mod support;

use support::*;

#[tokio::test]
async fn allowed_request_reaches_upstream_rewritten() {
    let h = Harness::start().await;
    let reply = send(
        "GET",
        &h.url(&format!("{CAMPAIGNS}/42?page=2&x=%2F..")),
        &[
            ("authorization", &basic(&READER)),
            ("x-scopegate-token", "SGforged"),
            ("x-scopegate-account", "IRforged"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-original-url", "/admin"),
            ("x-rewrite-url", "/admin"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("connection", "x-hop"),
            ("x-hop", "drop me"),
            ("x-custom", "kept"),
        ],
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "upstream ok");
    let seen = h.upstream.take();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, "GET");
    assert_eq!(
        r.target,
        format!("{CAMPAIGNS}/42?page=2&x=%2F.."),
        "query forwarded unchanged"
    );
    assert!(
        r.headers.get("authorization").is_none(),
        "Authorization removed"
    );
    assert!(r.headers.get("proxy-authorization").is_none());
    assert_eq!(r.headers["x-scopegate-token"], READER.sid);
    assert_eq!(r.headers["x-scopegate-account"], ACCOUNT);
    assert_eq!(r.headers.get_all("x-scopegate-token").iter().count(), 1);
    assert_eq!(r.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(r.headers["x-forwarded-proto"], "http");
    assert_eq!(r.headers["x-forwarded-host"], h.addr().to_string());
    assert!(r.headers.get("x-original-url").is_none());
    assert!(r.headers.get("x-rewrite-url").is_none());
    assert!(
        r.headers.get("x-hop").is_none(),
        "Connection-nominated header removed"
    );
    assert_eq!(r.headers["x-custom"], "kept");
    assert_eq!(r.headers["host"], h.upstream.addr.to_string());
}

#[tokio::test]
async fn percent_encoded_unreserved_is_decoded_before_matching_and_forwarding() {
    let h = Harness::start().await;
    // %43 = 'C': the canonical path is what is authorized and what the upstream gets.
    let reply = get(
        &h.url("/Mediapartners/IRacme/%43ampaigns/%7Eitem"),
        Some(&READER),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        h.upstream.last().unwrap().target,
        "/Mediapartners/IRacme/Campaigns/~item"
    );
}

#[tokio::test]
async fn trailing_slash_and_globstar_root() {
    let h = Harness::start().await;
    for path in [
        CAMPAIGNS,
        "/Mediapartners/IRacme/Campaigns/",
        "/public",
        "/public/",
        "/public/a/b",
    ] {
        let reply = get(&h.url(path), Some(&READER)).await;
        assert_eq!(reply.status, 200, "{path}");
    }
    assert_eq!(h.upstream.take().last().unwrap().target, "/public/a/b");
    let reply = get(&h.url("/publicity"), Some(&READER)).await;
    assert_eq!(reply.status, 403, "/a/** does not match /ab");
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn head_is_allowed_by_a_get_grant() {
    let h = Harness::start().await;
    let reply = send(
        "HEAD",
        &h.url(CAMPAIGNS),
        &[("authorization", &basic(&READER))],
        "",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(h.upstream.last().unwrap().method, "HEAD");
}

/// (description, method, path, credentials, extra headers, expected status)
type Case = (
    &'static str,
    &'static str,
    &'static str,
    Option<String>,
    Vec<(&'static str, &'static str)>,
    u16,
);

fn refusal_cases() -> Vec<Case> {
    let r = || Some(basic(&READER));
    let w = || Some(basic(&WRITER));
    vec![
        ("no credentials", "GET", CAMPAIGNS, None, vec![], 401),
        (
            "bearer scheme",
            "GET",
            CAMPAIGNS,
            Some("Bearer abc".into()),
            vec![],
            401,
        ),
        (
            "bad base64",
            "GET",
            CAMPAIGNS,
            Some("Basic !!!".into()),
            vec![],
            401,
        ),
        (
            "no colon",
            "GET",
            CAMPAIGNS,
            Some("Basic U0dyZWFkZXI=".into()),
            vec![],
            401,
        ),
        (
            "unknown sid",
            "GET",
            CAMPAIGNS,
            Some(basic_raw("SGnobody", "x")),
            vec![],
            403,
        ),
        (
            "wrong secret",
            "GET",
            CAMPAIGNS,
            Some(basic_raw(READER.sid, "wrong")),
            vec![],
            403,
        ),
        (
            "empty secret",
            "GET",
            CAMPAIGNS,
            Some(basic_raw(READER.sid, "")),
            vec![],
            403,
        ),
        (
            "disabled token",
            "GET",
            CAMPAIGNS,
            Some(basic(&DISABLED)),
            vec![],
            403,
        ),
        (
            "expired token",
            "GET",
            CAMPAIGNS,
            Some(basic(&EXPIRED)),
            vec![],
            403,
        ),
        (
            "deleted sid",
            "GET",
            CAMPAIGNS,
            Some(basic_raw("SGdeleted", "x")),
            vec![],
            403,
        ),
        ("method out of scope", "POST", CAMPAIGNS, r(), vec![], 403),
        ("delete out of scope", "DELETE", CAMPAIGNS, r(), vec![], 403),
        (
            "path matches no API",
            "GET",
            "/Mediapartners/IRacme/Secrets",
            r(),
            vec![],
            403,
        ),
        (
            "API not in token scopes",
            "GET",
            "/Mediapartners/IRacme/Reports/1",
            r(),
            vec![],
            403,
        ),
        (
            "other account",
            "GET",
            "/Mediapartners/IRother/Campaigns",
            w(),
            vec![],
            403,
        ),
        (
            "case-sensitive path",
            "GET",
            "/mediapartners/IRacme/Campaigns",
            r(),
            vec![],
            403,
        ),
        ("extension method", "BREW", CAMPAIGNS, w(), vec![], 403),
        (
            "override header out of scope",
            "GET",
            CAMPAIGNS,
            r(),
            vec![("x-http-method-override", "DELETE")],
            403,
        ),
        (
            "x-http-method out of scope",
            "GET",
            CAMPAIGNS,
            r(),
            vec![("x-http-method", "POST")],
            403,
        ),
        (
            "x-method-override unknown",
            "GET",
            CAMPAIGNS,
            w(),
            vec![("x-method-override", "BREW")],
            403,
        ),
        (
            "_method query out of scope",
            "GET",
            "/Mediapartners/IRacme/Campaigns?_method=delete",
            r(),
            vec![],
            403,
        ),
        (
            "dot segment",
            "GET",
            "/Mediapartners/IRacme/Campaigns/../Secrets",
            r(),
            vec![],
            400,
        ),
        (
            "encoded dot segment",
            "GET",
            "/Mediapartners/IRacme/Campaigns/%2e%2e/Secrets",
            r(),
            vec![],
            400,
        ),
        (
            "encoded slash",
            "GET",
            "/Mediapartners/IRacme/Campaigns%2f..%2fSecrets",
            r(),
            vec![],
            400,
        ),
        (
            "encoded backslash",
            "GET",
            "/Mediapartners/IRacme/Campaigns/%5c",
            r(),
            vec![],
            400,
        ),
        (
            "double encoding",
            "GET",
            "/Mediapartners/IRacme/Campaigns/%252e",
            r(),
            vec![],
            400,
        ),
        (
            "empty segment",
            "GET",
            "/Mediapartners//IRacme/Campaigns",
            r(),
            vec![],
            400,
        ),
        (
            "raw backslash",
            "GET",
            "/Mediapartners/IRacme/Campaigns\\x",
            r(),
            vec![],
            400,
        ),
        (
            "raw semicolon",
            "GET",
            "/Mediapartners/IRacme/Campaigns;x=1",
            r(),
            vec![],
            400,
        ),
        (
            "encoded NUL",
            "GET",
            "/Mediapartners/IRacme/Campaigns/%00",
            r(),
            vec![],
            400,
        ),
        (
            "overlong utf-8",
            "GET",
            "/Mediapartners/IRacme/Campaigns/%c0%ae%c0%ae",
            r(),
            vec![],
            400,
        ),
        (
            "malformed percent",
            "GET",
            "/Mediapartners/IRacme/Campaigns/%zz",
            r(),
            vec![],
            400,
        ),
        (
            "several hosts",
            "GET",
            CAMPAIGNS,
            r(),
            vec![("host", "a.example"), ("host", "b.example")],
            400,
        ),
    ]
}

#[tokio::test]
async fn every_refusal_has_its_status_and_reaches_nothing() {
    let h = Harness::start().await;
    for (what, method, path, auth, extra, want) in refusal_cases() {
        let mut headers: Vec<(&str, &str)> = extra.clone();
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        let reply = send(method, &h.url(path), &headers, "").await;
        assert_eq!(reply.status.as_u16(), want, "{what}: {}", reply.text());
        match want {
            401 => {
                assert_eq!(
                    reply.headers["www-authenticate"],
                    r#"Basic realm="scopegate", charset="UTF-8""#,
                    "{what}"
                );
                assert_eq!(
                    reply.text(),
                    r#"{"error":"unauthenticated","message":"Authentication Required"}"#
                );
            }
            403 => assert_eq!(
                reply.text(),
                r#"{"error":"access_denied","message":"Access Denied"}"#,
                "{what}"
            ),
            400 => assert_eq!(
                reply.text(),
                r#"{"error":"bad_request","message":"Bad Request"}"#,
                "{what}"
            ),
            _ => {}
        }
        assert_eq!(reply.headers["content-type"], "application/json", "{what}");
        assert_eq!(
            h.upstream.count(),
            0,
            "{what}: nothing may reach the upstream"
        );
    }
}

#[tokio::test]
async fn allowed_cases_reach_the_upstream() {
    let h = Harness::start().await;
    type Allowed<'a> = (&'a str, &'a str, &'a Fixture, &'a [(&'a str, &'a str)]);
    let cases: &[Allowed] = &[
        ("GET", CAMPAIGNS, &READER, &[]),
        ("POST", CAMPAIGNS, &WRITER, &[]),
        (
            "GET",
            "/Mediapartners/IRacme/Campaigns/7/Items",
            &READER,
            &[],
        ),
        ("GET", "/Mediapartners/IRacme/Reports/r1", &WRITER, &[]),
        (
            "POST",
            CAMPAIGNS,
            &WRITER,
            &[("x-http-method-override", "DELETE")],
        ),
        ("GET", "/anything/at/all", &LEGACY, &[]),
        ("DELETE", "/Mediapartners/IRacme/Reports/1", &LEGACY, &[]),
        ("GET", "/Mediapartners/IRother/Campaigns", &OTHER, &[]),
    ];
    for (i, (method, path, who, extra)) in cases.iter().enumerate() {
        let auth = basic(who);
        let mut headers = extra.to_vec();
        headers.push(("authorization", &auth));
        let reply = send(method, &h.url(path), &headers, "{}").await;
        assert_eq!(reply.status, 200, "{method} {path} as {}", who.sid);
        assert_eq!(h.upstream.count(), i + 1);
        let last = h.upstream.last().unwrap();
        assert_eq!(last.target, *path);
        assert_eq!(last.headers["x-scopegate-token"], who.sid);
    }
}

#[tokio::test]
async fn raw_smuggling_and_host_attempts_are_refused() {
    let h = Harness::start().await;
    let auth = basic(&WRITER);
    let cases: Vec<(String, u16)> = vec![
        (format!("POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"), 400),
        (format!("GET {CAMPAIGNS} HTTP/1.1\r\nAuthorization: {auth}\r\n\r\n"), 400),
        (format!("GET {CAMPAIGNS} HTTP/1.1\r\nHost: a b\r\nAuthorization: {auth}\r\n\r\n"), 400),
        (format!("GET {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nAuthorization: {auth}\r\n\r\n"), 400),
        (format!("GET http://evil.example{CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"), 400),
        (format!("GET http://u:p@x{CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"), 400),
        (format!("GET * HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"), 400),
        (format!("GET /Mediapartners/IRacme/Campaigns/caf\u{e9} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"), 400),
        (format!("GET /Mediapartners/IRacme/Campaigns/a^b HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"), 400),
        (format!("OPTIONS * HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"), 403),
        (format!("GET {CAMPAIGNS}#/../Secrets HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"), 400),
        (format!("GET {CAMPAIGNS}?a=1#frag HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"), 400),
    ];
    for (req, want) in cases {
        let reply = raw(h.addr(), req.as_bytes()).await;
        assert_eq!(reply.status.as_u16(), want, "{req:?}");
        assert_eq!(h.upstream.count(), 0, "{req:?}");
    }
}

#[tokio::test]
async fn absolute_form_with_matching_host_is_forwarded_as_origin_form() {
    let h = Harness::start().await;
    let req = format!(
        "GET http://api.example{CAMPAIGNS} HTTP/1.1\r\nHost: api.example\r\nAuthorization: {}\r\n\r\n",
        basic(&READER)
    );
    let reply = raw(h.addr(), req.as_bytes()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(h.upstream.last().unwrap().target, CAMPAIGNS);
}

#[tokio::test]
async fn refused_request_with_small_body_keeps_the_connection() {
    let h = Harness::start().await;
    let mut stream = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    let req = format!(
        "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 11\r\n\r\n{{\"a\":\"bcd\"}}",
        basic(&READER)
    );
    use tokio::io::AsyncWriteExt;
    stream.write_all(req.as_bytes()).await.unwrap();
    let first = read_response(&mut stream).await.unwrap();
    assert_eq!(first.status, 403);
    assert!(first.headers.get("connection").is_none());
    // The same connection serves the next request.
    let next = format!(
        "GET {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
        basic(&READER)
    );
    stream.write_all(next.as_bytes()).await.unwrap();
    let second = read_response(&mut stream).await.unwrap();
    assert_eq!(second.status, 200);
    assert_eq!(h.upstream.count(), 1);
}

#[tokio::test]
async fn refused_request_with_large_body_says_connection_close() {
    let h = Harness::start().await;
    let mut stream = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    let req = format!(
        "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 10000000\r\n\r\npartial",
        basic(&READER)
    );
    use tokio::io::AsyncWriteExt;
    stream.write_all(req.as_bytes()).await.unwrap();
    let reply = read_response(&mut stream).await.unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.headers["connection"], "close");
    assert!(closed_by_peer(&mut stream).await);
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn upstream_unreachable_is_502() {
    let refusing = RefusingAddr::new();
    let (gw, _dir) = gateway_for(refusing.addr, "").await;
    let reply = get(&format!("http://{}{CAMPAIGNS}", gw.addr), Some(&READER)).await;
    assert_eq!(reply.status, 502);
    assert_eq!(
        reply.text(),
        r#"{"error":"bad_gateway","message":"Bad Gateway"}"#
    );
}

#[tokio::test]
async fn upstream_too_slow_is_504() {
    // An upstream that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let (gw, _dir) = gateway_for(addr, "timeouts:\n  upstream_response: 300ms\n").await;
    let reply = get(&format!("http://{}{CAMPAIGNS}", gw.addr), Some(&READER)).await;
    assert_eq!(reply.status, 504);
}

#[tokio::test]
async fn forward_authorization_passes_the_credentials_once_and_host_is_still_the_upstreams() {
    let h = Harness::start_with("forward_authorization: true\n", &tokens_yaml()).await;
    let auth = basic(&READER);
    let reply = send(
        "GET",
        &h.url(CAMPAIGNS),
        &[("authorization", &auth), ("x-custom", "kept")],
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = h.upstream.take();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.headers.get_all("authorization").iter().count(), 1);
    assert_eq!(r.headers["authorization"], auth.as_str());
    assert_eq!(r.headers.get_all("host").iter().count(), 1);
    assert_eq!(r.headers["host"], h.upstream.addr.to_string());
    assert_eq!(r.headers["x-scopegate-token"], READER.sid);
    assert_eq!(r.headers["x-custom"], "kept");
}

#[tokio::test]
async fn invalid_credentials_status_can_be_401() {
    let h = Harness::start_with("invalid_credentials_status: 401\n", &tokens_yaml()).await;
    let reply = get(
        &h.url(CAMPAIGNS),
        Some(&Fixture {
            sid: "SGnobody",
            secret: "x",
        }),
    )
    .await;
    assert_eq!(reply.status, 401);
    assert!(reply.headers.contains_key("www-authenticate"));
    // Out of scope stays 403.
    let reply = send(
        "POST",
        &h.url(CAMPAIGNS),
        &[("authorization", &basic(&READER))],
        "",
    )
    .await;
    assert_eq!(reply.status, 403);
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn request_body_streams_to_upstream() {
    let h = Harness::start().await;
    let body = "x".repeat(256 * 1024);
    let reply = send(
        "POST",
        &h.url(CAMPAIGNS),
        &[("authorization", &basic(&WRITER))],
        &body,
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(h.upstream.last().unwrap().body.len(), body.len());
}

#[tokio::test]
async fn admin_health_and_readiness() {
    let h = Harness::start().await;
    let admin = h.gateway.admin_addr;
    assert_eq!(
        get(&format!("http://{admin}/healthz"), None).await.status,
        200
    );
    assert_eq!(
        get(&format!("http://{admin}/readyz"), None).await.status,
        200
    );
    assert_eq!(
        get(&format!("http://{admin}/generation"), None)
            .await
            .text()
            .trim(),
        r#"{"generation":1}"#
    );
    // The admin listener never proxies.
    assert_eq!(
        get(&format!("http://{admin}{CAMPAIGNS}"), Some(&READER))
            .await
            .status,
        404
    );
    assert_eq!(h.upstream.count(), 0);
}

/// Sends a head with a raw `#` on `stream`: the framing watch, still following the
/// connection, has it refused with 400 (the `http` crate would drop the fragment).
async fn the_next_head_is_still_judged(stream: &mut tokio::net::TcpStream, auth: &str) {
    use tokio::io::AsyncWriteExt;
    let head =
        format!("GET {CAMPAIGNS}#/../x HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    assert_eq!(read_response(stream).await.unwrap().status, 400);
}

#[tokio::test]
async fn the_framing_watch_follows_heads_as_large_as_the_limits_allow() {
    // Raised above the watch's own floor (128 fields, 64 KiB): every head hyper accepts
    // must still be followed, or the watch would stop and later heads go unjudged.
    let h = Harness::start_with(
        "limits:\n  max_headers: 300\n  max_header_bytes: 131072\n",
        &tokens_yaml(),
    )
    .await;
    let auth = basic(&WRITER);
    use tokio::io::AsyncWriteExt;
    let many: String = (0..200).map(|i| format!("X-Pad-{i}: v\r\n")).collect();
    let long = format!("X-Pad: {}\r\n", "v".repeat(80 * 1024));
    for padding in [&many, &long] {
        // A long head with both framings is refused.
        let mut stream = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
        let req = format!(
            "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n{padding}\
             Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        assert_eq!(read_response(&mut stream).await.unwrap().status, 400);
        // After a long head the watch still judges the next one on the connection: the
        // first is refused for want of credentials (before the upstream), the second for
        // its raw `#`, which the `http` crate would drop and let through.
        let mut stream = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
        let first = format!("GET {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\n{padding}\r\n");
        stream.write_all(first.as_bytes()).await.unwrap();
        assert_eq!(read_response(&mut stream).await.unwrap().status, 401);
        the_next_head_is_still_judged(&mut stream, &auth).await;
    }
    assert_eq!(h.upstream.count(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn the_framing_watch_follows_long_chunk_extensions() {
    // hyper reads up to 16 KiB of chunk extensions; the watch must follow such a body to
    // judge the head after it. (Lines split over reads, which only a slow client causes for
    // sure, are covered by `framing`'s unit test.)
    let h = Harness::start().await;
    let auth = basic(&WRITER);
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    let extension = format!(";x={}", "e".repeat(10 * 1024));
    let first = format!(
        "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Transfer-Encoding: chunked\r\n\r\n3{extension}\r\nabc\r\n0\r\n\r\n"
    );
    stream.write_all(first.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut stream).await.unwrap().status, 200);
    the_next_head_is_still_judged(&mut stream, &auth).await;
    let seen = h.upstream.take();
    assert_eq!(
        seen.len(),
        1,
        "only the chunked request reached the upstream"
    );
    assert_eq!(seen[0].body.as_ref(), b"abc");
}

/// Content-Length together with Transfer-Encoding (in either order): 400, connection
/// closed, and neither the request nor the one smuggled behind it reaches the upstream.
/// hyper resolves the conflict before the service sees the request; the connection's
/// framing watch (src/framing.rs) is what catches it.
#[tokio::test]
async fn content_length_with_chunked_is_refused_and_nothing_is_forwarded() {
    let h = Harness::start().await;
    for headers in [
        "Content-Length: 4\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 4",
    ] {
        let mut stream = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
        let req = format!(
            "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n{headers}\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
            basic(&WRITER)
        );
        use tokio::io::AsyncWriteExt;
        stream.write_all(req.as_bytes()).await.unwrap();
        let reply = read_response(&mut stream).await.unwrap();
        assert_eq!(reply.status, 400, "{headers}");
        assert!(
            closed_by_peer(&mut stream).await,
            "connection closed: {headers}"
        );
    }
    assert_eq!(h.upstream.count(), 0, "nothing forwarded");
    // A clean chunked request and a clean sized one on one connection still pass.
    let mut stream = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    let auth = basic(&WRITER);
    let both = format!(
        "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nPOST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 2\r\n\r\nhi"
    );
    use tokio::io::AsyncWriteExt;
    stream.write_all(both.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut stream).await.unwrap().status, 200);
    assert_eq!(read_response(&mut stream).await.unwrap().status, 200);
    let seen = h.upstream.take();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body.as_ref(), b"abc");
    assert_eq!(seen[1].body.as_ref(), b"hi");
}

/// A gateway of `workers` workers in front of a fresh upstream; the folder holds its files.
async fn workers_gateway(workers: usize) -> (Upstream, TempDir, scopegate::Running) {
    let upstream = Upstream::start().await;
    let dir = TempDir::new();
    dir.write("tokens.yaml", &tokens_yaml());
    let cfg = dir.write("scopegate.yaml", &gateway_yaml(upstream.addr, ""));
    let config = scopegate::config::load(&cfg).unwrap();
    let shared = scopegate::build_shared(config);
    let main = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = scopegate::start_workers(shared, main, admin, workers).unwrap();
    (upstream, dir, gw)
}

/// Several workers (one single-threaded runtime per OS thread, one accepting socket):
/// every connection is served whichever worker accepts it, and shutdown waits for all.
#[tokio::test]
async fn several_workers_serve_and_drain() {
    let (upstream, _dir, gw) = workers_gateway(3).await;
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let url = format!("http://{}{CAMPAIGNS}", gw.addr);
        tasks.push(tokio::spawn(async move {
            get(&url, Some(&READER)).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(upstream.count(), 30);
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), gw.shutdown()).await;
    assert!(stopped.is_ok(), "all workers drained and stopped");
}

/// The value of `scopegate_worker_connections` for each of `workers` workers.
async fn worker_connections(admin: std::net::SocketAddr, workers: usize) -> Vec<i64> {
    let text = metrics_at(admin).await;
    (0..workers)
        .map(|w| {
            let series = format!("scopegate_worker_connections{{worker=\"{w}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(series.as_str()))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("{series} in\n{text}"))
        })
        .collect()
}

/// A burst of keep-alive connections (a load balancer's pool, a benchmark) is spread over
/// the workers, whichever of them the kernel lets accept, and a connection handed from
/// one worker to another serves every request on it.
#[tokio::test]
async fn a_burst_of_connections_is_spread_over_the_workers() {
    use tokio::io::AsyncWriteExt;
    let (upstream, _dir, gw) = workers_gateway(2).await;
    let request = format!(
        "GET {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
        basic(&READER)
    );
    // All connections opened at once, before any request.
    let mut conns = Vec::new();
    for _ in 0..24 {
        conns.push(tokio::net::TcpStream::connect(gw.addr));
    }
    let mut streams = Vec::new();
    for c in conns {
        streams.push(c.await.unwrap());
    }
    for round in 0..2 {
        for s in &mut streams {
            s.write_all(request.as_bytes()).await.unwrap();
        }
        for s in &mut streams {
            let reply = read_response(s).await.unwrap();
            assert_eq!(reply.status, 200, "round {round}");
        }
    }
    assert_eq!(
        upstream.count(),
        48,
        "every request on every connection served"
    );
    // Each connection has been served, so each is counted on the worker serving it.
    let counts = worker_connections(gw.admin_addr, 2).await;
    assert_eq!(counts.iter().sum::<i64>(), 24, "{counts:?}");
    assert!(
        (counts[0] - counts[1]).abs() <= scopegate::gateway::balance::SLACK as i64 + 1,
        "spread evenly: {counts:?}"
    );
    drop(streams);
    // Closed connections leave the count (the workers notice the close on their own time).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while worker_connections(gw.admin_addr, 2).await != [0, 0] {
        assert!(std::time::Instant::now() < deadline, "counts back to 0");
        tokio::task::yield_now().await;
    }
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), gw.shutdown()).await;
    assert!(stopped.is_ok(), "all workers drained and stopped");
}
