//! Hardening: slow clients, oversized heads, connection limits, broken upstreams and
//! secret hygiene. The gateway must answer each fault with the right status, keep serving
//! everyone else, and never leak a secret.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::process::Proc;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn get_request(who: &Fixture) -> String {
    format!(
        "GET {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
        basic(who)
    )
}

/// Every later head on a kept-alive connection has the same limit as the first, however
/// many requests went before it.
#[tokio::test]
async fn a_slow_head_after_quick_requests_on_one_connection_is_cut_off() {
    let h = Harness::start_with("timeouts:\n  header_read: 1s\n", &tokens_yaml()).await;
    let mut conn = TcpStream::connect(h.addr()).await.unwrap();
    let request = get_request(&READER);
    for _ in 0..5 {
        conn.write_all(request.as_bytes()).await.unwrap();
        assert_eq!(read_response(&mut conn).await.unwrap().status, 200);
    }
    let started = Instant::now();
    conn.write_all(&request.as_bytes()[..12]).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut rest)).await;
    let took = started.elapsed();
    assert!(closed.is_ok(), "the connection stayed open");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "cut off after {took:?}"
    );
    assert_eq!(h.upstream.count(), 5);
}

#[tokio::test]
async fn slowloris_is_cut_off_while_others_are_served() {
    let h = Harness::start_with("timeouts:\n  header_read: 1s\n", &tokens_yaml()).await;
    let mut slow = TcpStream::connect(h.addr()).await.unwrap();
    let started = Instant::now();
    let request = get_request(&READER);
    let mut cut_off = false;
    // One byte every 200 ms: the head would take ~30 s; the gateway must give up at 1 s.
    for b in request.as_bytes() {
        if slow.write_all(&[*b]).await.is_err() {
            cut_off = true;
            break;
        }
        // Meanwhile another client is served normally.
        let r = get(&h.url(CAMPAIGNS), Some(&WRITER)).await;
        assert_eq!(r.status, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
        if started.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    if !cut_off {
        // The write side may still be open; the read side shows the close (408 or EOF).
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), slow.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf);
        assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut off at the header timeout"
    );
    assert!(h
        .upstream
        .take()
        .iter()
        .all(|r| r.headers["x-scopegate-token"] == WRITER.sid));
}

#[tokio::test]
async fn oversized_heads_and_targets() {
    let h = Harness::start_with(
        "limits:\n  max_header_bytes: 8192\n  max_headers: 20\n  max_target_length: 200\n",
        &tokens_yaml(),
    )
    .await;
    let auth = basic(&READER);
    let big = format!(
        "GET {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(raw(h.addr(), big.as_bytes()).await.status, 431);
    let many: String = (0..40).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many =
        format!("GET {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n{many}\r\n");
    assert_eq!(raw(h.addr(), many.as_bytes()).await.status, 431);
    let long = format!(
        "GET {CAMPAIGNS}/{} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n",
        "x".repeat(300)
    );
    assert_eq!(raw(h.addr(), long.as_bytes()).await.status, 414);
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let h = Harness::start_with("limits:\n  max_body_bytes: 1000\n", &tokens_yaml()).await;
    let r = send(
        "POST",
        &h.url(CAMPAIGNS),
        &[("authorization", &basic(&WRITER))],
        &"x".repeat(5000),
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(h.upstream.count(), 0);
    let r = send(
        "POST",
        &h.url(CAMPAIGNS),
        &[("authorization", &basic(&WRITER))],
        &"x".repeat(500),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn connection_limit_makes_new_connections_wait() {
    let h = Harness::start_with("limits:\n  max_connections: 2\n", &tokens_yaml()).await;
    let mut a = TcpStream::connect(h.addr()).await.unwrap();
    let mut b = TcpStream::connect(h.addr()).await.unwrap();
    for s in [&mut a, &mut b] {
        s.write_all(get_request(&READER).as_bytes()).await.unwrap();
        assert_eq!(read_response(s).await.unwrap().status, 200);
    }
    // A third connection is accepted by the kernel but not served while two are open.
    let mut c = TcpStream::connect(h.addr()).await.unwrap();
    c.write_all(get_request(&READER).as_bytes()).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(500), read_response(&mut c)).await;
    assert!(waited.is_err(), "the third connection waits");
    // Existing connections are unaffected.
    a.write_all(get_request(&READER).as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut a).await.unwrap().status, 200);
    drop(b);
    let served = tokio::time::timeout(Duration::from_secs(5), read_response(&mut c)).await;
    assert_eq!(
        served.expect("served once a slot frees").unwrap().status,
        200
    );
}

/// A raw upstream that behaves badly in one of several ways. Zero linger makes the close
/// a TCP reset, which is the fault being simulated.
#[allow(deprecated)]
async fn bad_upstream(kind: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                match kind {
                    "reset_before_headers" => {
                        let _ = s.set_linger(Some(Duration::ZERO));
                        drop(s);
                    }
                    "reset_mid_body" => {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
                            .await;
                        let _ = s.flush().await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let _ = s.set_linger(Some(Duration::ZERO));
                        drop(s);
                    }
                    "malformed" => {
                        let _ = s.write_all(b"HTTP/1.1 2xx Nope\r\n\x01\x02\r\n\r\n").await;
                    }
                    _ => {}
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn upstream_faults_map_to_statuses_and_the_gateway_keeps_serving() {
    for (kind, want) in [("reset_before_headers", 502u16), ("malformed", 502)] {
        let up = bad_upstream(kind).await;
        let (gw, _dir) = gateway_for(up, "").await;
        for _ in 0..3 {
            let r = get(&format!("http://{}{CAMPAIGNS}", gw.addr), Some(&READER)).await;
            assert_eq!(r.status.as_u16(), want, "{kind}");
        }
        let admin = get(&format!("http://{}/healthz", gw.admin_addr), None).await;
        assert_eq!(admin.status, 200, "still healthy after {kind}");
    }
}

#[tokio::test]
async fn reset_mid_response_aborts_the_client_stream() {
    let up = bad_upstream("reset_mid_body").await;
    let (gw, _dir) = gateway_for(up, "").await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(get_request(&READER).as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("content-length: 1000"), "{text}");
    let body_len = buf.len() - text.find("\r\n\r\n").unwrap() - 4;
    assert!(
        body_len < 1000,
        "the client sees a short body and a closed connection, not a complete 200"
    );
    // The gateway keeps serving.
    let r = get(&format!("http://{}/healthz", gw.admin_addr), None).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn smuggling_framings_are_refused_and_closed() {
    let h = Harness::start().await;
    let auth = basic(&WRITER);
    for req in [
        format!("POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
        format!("POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        format!("POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: gzip\r\n\r\nabc"),
        format!("POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
        format!("POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 3, 4\r\n\r\nabcd"),
        // A coding before the final chunked would be dropped on the way upstream.
        format!("POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
        format!("POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ] {
        let mut s = TcpStream::connect(h.addr()).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let r = read_response(&mut s).await.unwrap();
        assert_eq!(r.status, 400, "{req:?}");
        assert!(closed_by_peer(&mut s).await, "connection closed: {req:?}");
    }
    assert_eq!(h.upstream.count(), 0);
}

/// A full run of traffic with debug logging on the real binary: no secret, no
/// Authorization value and no query string reaches the logs or /metrics.
#[tokio::test]
async fn secrets_never_reach_logs_or_metrics() {
    let upstream = Upstream::start().await;
    let dir = TempDir::new();
    dir.write("tokens.yaml", &tokens_yaml());
    let (port, admin) = (free_port(), free_port());
    let yaml = with_ports(&gateway_yaml(upstream.addr, ""), port, admin);
    let cfg = dir.write("scopegate.yaml", &yaml);
    let cfg = cfg.to_str().expect("a UTF-8 test path");
    let mut p = Proc::start(&["serve", "--config", cfg], &[("RUST_LOG", "debug")]);
    let base = format!("http://127.0.0.1:{port}");
    let admin_base = format!("http://127.0.0.1:{admin}");
    p.wait_ready(&format!("127.0.0.1:{admin}")).await;
    let guess = "guessed-secret-value-1234";
    let query_secret = "api_key=query-secret-5678";
    for _ in 0..3 {
        assert_eq!(
            get(&format!("{base}{CAMPAIGNS}?{query_secret}"), Some(&READER))
                .await
                .status,
            200
        );
        assert_eq!(
            send(
                "POST",
                &format!("{base}{CAMPAIGNS}"),
                &[("authorization", &basic(&READER))],
                "{}"
            )
            .await
            .status,
            403
        );
        assert_eq!(
            get(
                &format!("{base}{CAMPAIGNS}"),
                Some(&Fixture {
                    sid: READER.sid,
                    secret: guess
                })
            )
            .await
            .status,
            403
        );
        assert_eq!(
            get(
                &format!("{base}{CAMPAIGNS}"),
                Some(&Fixture {
                    sid: "SGnobody",
                    secret: guess
                })
            )
            .await
            .status,
            403
        );
        assert_eq!(
            send(
                "GET",
                &format!("{base}{CAMPAIGNS}"),
                &[("authorization", "Basic !!!garbage-auth!!!")],
                ""
            )
            .await
            .status,
            401
        );
    }
    let metrics = get(&format!("{admin_base}/metrics"), None).await.text();
    p.signal("TERM");
    let _ = tokio::time::timeout(Duration::from_secs(10), p.exit()).await;
    let logs = format!("{}{}", p.stdout(), p.stderr());
    assert!(
        logs.contains("scopegate::access"),
        "access log present: {logs}"
    );
    let forbidden = [
        READER.secret.to_string(),
        guess.to_string(),
        basic(&READER),
        basic(&READER).trim_start_matches("Basic ").to_string(),
        "garbage-auth".to_string(),
        "query-secret-5678".to_string(),
        support::hash(READER.secret),
    ];
    for secret in &forbidden {
        assert!(!logs.contains(secret.as_str()), "logs leak {secret}");
        assert!(!metrics.contains(secret.as_str()), "metrics leak {secret}");
    }
}

/// A POST whose upstream connection dies before any response is answered 502 and is
/// never replayed on another connection: non-idempotent requests are not retried.
#[tokio::test]
async fn a_failed_post_is_not_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                if s.read(&mut buf).await.unwrap_or(0) > 0 {
                    seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                drop(s); // close without answering
            });
        }
    });
    let (gw, _dir) = gateway_for(up, "").await;
    let r = send(
        "POST",
        &format!("http://{}{CAMPAIGNS}", gw.addr),
        &[("authorization", &basic(&WRITER))],
        "{\"charge\":1}",
    )
    .await;
    assert_eq!(r.status, 502);
    assert_eq!(
        requests.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the POST reached the upstream exactly once"
    );
}

/// A connection that sends nothing at all is closed after `timeouts.header_read`, as one
/// that stops half-way through its head is: silent sockets cannot hold the connection slots.
#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let h = Harness::start_with("timeouts:\n  header_read: 1s\n", &tokens_yaml()).await;
    let mut silent = TcpStream::connect(h.addr()).await.unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut rest)).await;
    let took = started.elapsed();
    assert!(closed.is_ok(), "the silent connection stayed open");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    assert!(
        rest.is_empty(),
        "nothing is sent to a client that asked nothing"
    );
    // A client that speaks in time is served as before.
    let mut conn = TcpStream::connect(h.addr()).await.unwrap();
    conn.write_all(get_request(&READER).as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut conn).await.unwrap().status, 200);
}

/// A request body whose chunked framing breaks on the way upstream is the client's fault:
/// 400 and the connection closed, never a 502 that blames the upstream.
#[tokio::test]
async fn a_malformed_chunked_body_is_400_not_502() {
    let h = Harness::start().await;
    let auth = basic(&WRITER);
    for body in [
        "zz\r\nabc\r\n0\r\n\r\n",
        "3\nabc\r\n0\r\n\r\n",
        "0x3\r\nabc\r\n0\r\n\r\n",
        "ffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        "3\r\nabcdef\r\n0\r\n\r\n",
    ] {
        let req = format!(
            "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        );
        let mut s = TcpStream::connect(h.addr()).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let r = read_response(&mut s).await.unwrap();
        assert_eq!(r.status, 400, "{body:?}");
        assert!(closed_by_peer(&mut s).await, "connection closed: {body:?}");
    }
}

/// `limits.max_connections` is one count for the whole gateway, however many workers
/// accept: with two workers and a limit of 2, a third connection still waits.
#[tokio::test]
async fn the_connection_limit_holds_across_workers() {
    let upstream = Upstream::start().await;
    let dir = TempDir::new();
    dir.write("tokens.yaml", &tokens_yaml());
    let config = dir.write(
        "scopegate.yaml",
        &gateway_yaml(upstream.addr, "limits:\n  max_connections: 2\n"),
    );
    let config = scopegate::config::load(&config).unwrap_or_else(|e| panic!("{e}"));
    let shared = scopegate::build_shared(config);
    let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = scopegate::start_workers(shared, main, admin, 2).unwrap();
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(gateway.addr).await.unwrap();
        s.write_all(get_request(&READER).as_bytes()).await.unwrap();
        assert_eq!(read_response(&mut s).await.unwrap().status, 200);
        open.push(s);
    }
    // Several more, so that each worker gets at least one to decide on.
    let mut waiting = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(gateway.addr).await.unwrap();
        s.write_all(get_request(&READER).as_bytes()).await.unwrap();
        waiting.push(s);
    }
    for s in &mut waiting {
        let served = tokio::time::timeout(Duration::from_millis(300), read_response(s)).await;
        assert!(served.is_err(), "a connection past the limit was served");
    }
    drop(open);
    for s in &mut waiting {
        let served = tokio::time::timeout(Duration::from_secs(10), read_response(s)).await;
        assert_eq!(served.expect("served once slots free").unwrap().status, 200);
        // Frees its slot for the next one.
        s.shutdown().await.unwrap();
    }
}
