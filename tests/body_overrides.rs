//! Method overrides in request bodies: `_method` in a form, multipart or JSON body is read
//! by Rails (Rack), Symfony and Laravel, and Express's `method-override`, so it must be
//! granted like the wire method. Each case asserts the exact status and what the upstream
//! received: nothing for a small body, never the whole body for a long one.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A POST to the campaigns API with `content_type` (none when empty) and `body`.
fn post(who: &Fixture, content_type: &str, body: &[u8]) -> Vec<u8> {
    let ct = if content_type.is_empty() {
        String::new()
    } else {
        format!("Content-Type: {content_type}\r\n")
    };
    let mut req = format!(
        "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n{ct}Content-Length: {}\r\n\r\n",
        basic(who),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

fn multipart(fields: &[(&str, &str)]) -> String {
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--sgB0undary\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str("--sgB0undary--\r\n");
    body
}

const MULTIPART: &str = "multipart/form-data; boundary=sgB0undary";

/// The writer may GET, POST and DELETE campaigns, not PUT or PATCH.
#[tokio::test]
async fn an_override_in_a_body_outside_the_scopes_is_refused_before_the_upstream() {
    let h = Harness::start().await;
    let cases: Vec<(&str, String)> = vec![
        (
            "application/x-www-form-urlencoded",
            "a=1&_method=PUT".into(),
        ),
        ("", "_method=patch".into()),
        ("application/x-www-form-urlencoded", "_%6dethod=PUT".into()),
        (
            "application/x-www-form-urlencoded; charset=UTF-8",
            "x=1;_method=PUT".into(),
        ),
        (MULTIPART, multipart(&[("a", "1"), ("_method", "PUT")])),
        (
            "multipart/mixed; boundary=sgB0undary",
            multipart(&[("_method", "put")]),
        ),
        (
            "application/json",
            r#"{"title":"x","_method":"PUT"}"#.into(),
        ),
        (
            "application/vnd.api+json",
            r#"{"\u005fmethod":"PATCH"}"#.into(),
        ),
        // An unknown verb is never granted.
        ("application/x-www-form-urlencoded", "_method=PURGE".into()),
        ("application/json", r#"{"_method":["DELETE"]}"#.into()),
        // Named the ways PHP and Rack also read: Content-ID, a single-quoted first word.
        (
            MULTIPART,
            "--sgB0undary\r\nContent-ID: _method\r\n\r\nPUT\r\n--sgB0undary--\r\n".into(),
        ),
        (
            MULTIPART,
            "--sgB0undary\r\nContent-Disposition: name='_method'\r\n\r\nPUT\r\n--sgB0undary--\r\n"
                .into(),
        ),
        ("application/json", "\u{feff}{\"_method\":\"PUT\"}".into()),
        // Two Content-Type fields: parsers pick different ones.
        (
            "multipart/form-data; boundary=B\r\nContent-Type: multipart/form-data; boundary=sgB0undary",
            multipart(&[("a", "1")]),
        ),
        // Compressed: it could name anything, and the writer lacks PUT and PATCH.
        (
            "application/json\r\nContent-Encoding: gzip",
            "\u{1f}\u{8b}".into(),
        ),
    ];
    for (content_type, body) in &cases {
        let mut s = TcpStream::connect(h.addr()).await.unwrap();
        s.write_all(&post(&WRITER, content_type, body.as_bytes()))
            .await
            .unwrap();
        let reply = read_response(&mut s).await.expect("a response");
        assert_eq!(reply.status, 403, "{content_type}: {body}");
        assert_eq!(
            reply.text(),
            r#"{"error":"access_denied","message":"Access Denied"}"#
        );
        // The body was read whole: the connection serves the next request.
        s.write_all(&get_request(&WRITER)).await.unwrap();
        let next = read_response(&mut s).await.expect("kept alive");
        assert_eq!(next.status, 200, "{content_type}: {body}");
    }
    let seen = h.upstream.take();
    assert_eq!(seen.len(), cases.len(), "only the follow-up GETs arrived");
    assert!(seen.iter().all(|r| r.method == "GET"));
    let samples = exposition::parse_exposition(&metrics(&h).await);
    let denied = exposition::sum(
        &samples,
        "scopegate_requests_total",
        &[("token", WRITER.sid), ("decision", "denied_scope")],
    );
    assert_eq!(denied, cases.len() as f64, "each counted as a scope denial");
}

fn get_request(who: &Fixture) -> Vec<u8> {
    format!(
        "GET {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
        basic(who)
    )
    .into_bytes()
}

#[tokio::test]
async fn granted_overrides_and_bodies_no_framework_reads_pass_unchanged() {
    let h = Harness::start().await;
    let cases: Vec<(&str, String)> = vec![
        (
            "application/x-www-form-urlencoded",
            "a=1&_method=DELETE".into(),
        ),
        (
            MULTIPART,
            multipart(&[("_method", "delete"), ("file", "PUT")]),
        ),
        (
            "application/json",
            r#"{"a":{"_method":"PUT"},"_method":"DELETE"}"#.into(),
        ),
        ("application/json", r#"{"note":"_method=PUT"}"#.into()),
        // Not parameters to any framework.
        ("text/plain", "_method=PUT".into()),
        ("application/octet-stream", "_method=PUT".into()),
        (
            "application/x-www-form-urlencoded",
            "x_method=PUT&_methods=PUT".into(),
        ),
    ];
    for (content_type, body) in &cases {
        let reply = raw(h.addr(), &post(&WRITER, content_type, body.as_bytes())).await;
        assert_eq!(reply.status, 200, "{content_type}: {body}");
        let seen = h.upstream.last().expect("forwarded");
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.body, body.as_bytes(), "the body arrives as sent");
    }
    // A legacy token is not held to scopes.
    let reply = raw(
        h.addr(),
        &post(&LEGACY, "application/x-www-form-urlencoded", b"_method=PUT"),
    )
    .await;
    assert_eq!(reply.status, 200);
}

/// A chunked body is judged whole too, an override split across chunks included.
#[tokio::test]
async fn a_chunked_body_is_judged_across_its_chunks() {
    let h = Harness::start().await;
    let head = format!(
        "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n",
        basic(&WRITER)
    );
    let refused = format!("{head}6\r\na=1&_m\r\n4\r\neth%\r\n7\r\n6Fd=PUT\r\n0\r\n\r\n");
    assert_eq!(raw(h.addr(), refused.as_bytes()).await.status, 403);
    assert_eq!(h.upstream.count(), 0);
    let allowed = format!("{head}6\r\na=1&_m\r\n4\r\neth%\r\nA\r\n6Fd=DELETE\r\n0\r\n\r\n");
    assert_eq!(raw(h.addr(), allowed.as_bytes()).await.status, 200);
    assert_eq!(h.upstream.last().unwrap().body, "a=1&_meth%6Fd=DELETE");
}

/// Past 64 KiB a body streams as it is judged; the frame that completes it is held back
/// until the scan is done, so the upstream never gets the whole of a refused body. The
/// client is refused, and the connection closed.
#[tokio::test]
async fn a_long_body_with_an_override_at_its_end_never_reaches_the_upstream_whole() {
    let h = Harness::start().await;
    let file = "x".repeat(1 << 20);
    let body = multipart(&[("file", &file), ("_method", "PUT")]);
    let reply = send_in_pieces(h.addr(), &post(&WRITER, MULTIPART, body.as_bytes())).await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.headers.get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    let mut refused = vec![body];
    // A form's last pair is only complete when the body ends: judged before the frame
    // that ends it is handed on.
    let form = format!("a={}&_method=PUT", "y".repeat(300_000));
    let reply = send_in_pieces(
        h.addr(),
        &post(
            &WRITER,
            "application/x-www-form-urlencoded",
            form.as_bytes(),
        ),
    )
    .await;
    assert_eq!(reply.status, 403);
    refused.push(form);
    // The same upload with a granted override arrives whole.
    let body = multipart(&[("file", &file), ("_method", "DELETE")]);
    let reply = send_in_pieces(h.addr(), &post(&WRITER, MULTIPART, body.as_bytes())).await;
    assert_eq!(reply.status, 200);
    assert_eq!(h.upstream.last().unwrap().body, body.as_bytes());
    // And a long form body, chunked, without any override.
    let form = format!("a={}&b=2", "y".repeat(300_000));
    let mut chunked = format!(
        "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        basic(&WRITER)
    )
    .into_bytes();
    for piece in form.as_bytes().chunks(40_000) {
        chunked.extend_from_slice(format!("{:X}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let reply = send_in_pieces(h.addr(), &chunked).await;
    assert_eq!(reply.status, 200);
    assert_eq!(h.upstream.last().unwrap().body, form.as_bytes());
    // By now the upstream has seen the end of the refused requests' connections (the
    // requests after them were answered): none of them arrived whole.
    let seen = h.upstream.take();
    assert_eq!(seen.iter().filter(|r| !r.body.is_empty()).count(), 2);
    for body in &refused {
        assert!(
            seen.iter().all(|r| r.body != body.as_bytes()),
            "the upstream got a whole refused body"
        );
    }
}

/// Writes `request` in 16 KiB pieces (so the body arrives over many reads) while reading
/// the response.
async fn send_in_pieces(addr: std::net::SocketAddr, request: &[u8]) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let request = request.to_vec();
    let writer = tokio::spawn(async move {
        for piece in request.chunks(16 * 1024) {
            if write.write_all(piece).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
        // Keep the write half open until the reader is done.
        std::future::pending::<()>().await;
    });
    let reply = tokio::time::timeout(Duration::from_secs(20), read_response(&mut read))
        .await
        .expect("a response in time")
        .expect("a response");
    writer.abort();
    reply
}

/// A client that stops sending its body part-way is answered 408 once the upstream's
/// `response_timeout` passes without a byte, and nothing reaches the upstream.
#[tokio::test]
async fn a_body_that_stalls_while_it_is_judged_is_a_408() {
    let h = Harness::start_with("timeouts:\n  upstream_response: 1s\n", &tokens_yaml()).await;
    let head = format!(
        "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\na=1&_meth",
        basic(&WRITER)
    );
    let mut s = TcpStream::connect(h.addr()).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let reply = read_response(&mut s).await.expect("a response");
    assert_eq!(reply.status, 408);
    assert!(closed_by_peer(&mut s).await);
    assert_eq!(h.upstream.count(), 0);
}

/// A form body read ahead is held to `limits.max_body_bytes` as it is read: 413, and
/// nothing reaches the upstream.
#[tokio::test]
async fn a_form_body_over_the_limit_is_a_413_before_the_upstream() {
    let h = Harness::start_with("limits:\n  max_body_bytes: 16\n", &tokens_yaml()).await;
    let req = format!(
        "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n",
        basic(&WRITER)
    );
    let reply = raw(h.addr(), req.as_bytes()).await;
    assert_eq!(reply.status, 413);
    assert_eq!(h.upstream.count(), 0);
}

/// Trailers end a chunked body before its end is read: the scan still ends once, so a
/// granted override is not counted twice or taken for an unreadable one.
#[tokio::test]
async fn a_chunked_body_with_trailers_is_judged_once() {
    let h = Harness::start().await;
    let body = "--sgB0undary\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE";
    let req = format!(
        "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: {MULTIPART}\r\nTransfer-Encoding: chunked\r\n\r\n{:X}\r\n{body}\r\n0\r\nX-Sum: 1\r\n\r\n",
        basic(&WRITER),
        body.len()
    );
    assert_eq!(raw(h.addr(), req.as_bytes()).await.status, 200);
    assert_eq!(h.upstream.last().unwrap().body, body.as_bytes());
}

/// Over HTTP/2 (h2c) too: the body's frames are judged the same way.
#[tokio::test]
async fn an_override_in_an_http2_body_is_refused_too() {
    let h = Harness::start_with("http2_cleartext: true\n", &tokens_yaml()).await;
    let (mut h2, _conn) = h2c(h.addr()).await;
    let post = |body: &'static str| {
        http::Request::post(format!("http://localhost{CAMPAIGNS}"))
            .header("authorization", basic(&WRITER))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                body.as_bytes(),
            )))
            .unwrap()
    };
    let resp = h2.send_request(post("a=1&_method=PUT")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert_eq!(h.upstream.count(), 0, "nothing reached the upstream");
    let resp = h2.send_request(post("a=1&_method=DELETE")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(h.upstream.last().unwrap().body, "a=1&_method=DELETE");
}
