//! How client connections map onto upstream connections: an HTTP/1.1 client connection
//! sends its requests over one upstream connection of its own, never shared with another
//! client, reopened when the upstream closed it, and never re-sending a request.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use support::{basic, read_response, CAMPAIGNS, READER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A raw upstream that counts its connections and the requests on each, and records the
/// `Host` each request carried. `/close` answers and then closes; `/drop` closes without
/// answering.
struct CountingUpstream {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    /// Requests seen, as (connection number, target, host).
    requests: Arc<Mutex<Vec<(usize, String, String)>>>,
}

impl CountingUpstream {
    async fn start() -> CountingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests: Arc<Mutex<Vec<(usize, String, String)>>> = Arc::default();
        let (count, record) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(serve(stream, n, record.clone()));
            }
        });
        CountingUpstream {
            addr,
            connections,
            requests,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<(usize, String, String)> {
        self.requests.lock().unwrap().clone()
    }
}

/// Serves bodiless requests on one connection until the client closes or `/close`,
/// `/drop` end it.
async fn serve(
    mut stream: TcpStream,
    connection: usize,
    record: Arc<Mutex<Vec<(usize, String, String)>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head: Vec<u8> = buf.drain(..end + 4).collect();
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut fields);
        req.parse(&head).unwrap();
        let target = req.path.unwrap().to_owned();
        let host = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("host"))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
            .unwrap_or_default();
        record
            .lock()
            .unwrap()
            .push((connection, target.clone(), host));
        if target.ends_with("/drop") {
            return;
        }
        let close = target.ends_with("/close");
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n{}\r\nok",
            if close { "connection: close\r\n" } else { "" }
        );
        if stream.write_all(reply.as_bytes()).await.is_err() || close {
            return;
        }
    }
}

async fn gateway(upstream: &CountingUpstream) -> (scopegate::Running, support::TempDir) {
    support::gateway_for(upstream.addr, "").await
}

/// Sends one GET on `stream` with the reader's credentials and returns its status.
async fn get(stream: &mut TcpStream, path: &str) -> Option<u16> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: gateway.example\r\nauthorization: {}\r\n\r\n",
        basic(&READER)
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    read_response(stream).await.map(|r| r.status.as_u16())
}

#[tokio::test]
async fn a_client_connection_keeps_one_upstream_connection_of_its_own() {
    let upstream = CountingUpstream::start().await;
    let (gw, _dir) = gateway(&upstream).await;

    let mut first = TcpStream::connect(gw.addr).await.unwrap();
    for _ in 0..5 {
        assert_eq!(get(&mut first, CAMPAIGNS).await, Some(200));
    }
    assert_eq!(
        upstream.connections(),
        1,
        "five requests, one upstream connection"
    );

    // Another client never rides on the first one's connection.
    let mut second = TcpStream::connect(gw.addr).await.unwrap();
    assert_eq!(get(&mut second, CAMPAIGNS).await, Some(200));
    assert_eq!(get(&mut first, CAMPAIGNS).await, Some(200));
    assert_eq!(upstream.connections(), 2);
    let by_connection: Vec<usize> = upstream.requests().iter().map(|r| r.0).collect();
    assert_eq!(by_connection, [1, 1, 1, 1, 1, 2, 1]);

    // The upstream is sent its own authority as `Host`, as a pooled client would.
    let expected_host = upstream.addr.to_string();
    assert!(upstream.requests().iter().all(|r| r.2 == expected_host));
}

#[tokio::test]
async fn an_upstream_that_closes_after_answering_is_reconnected() {
    let upstream = CountingUpstream::start().await;
    let (gw, _dir) = gateway(&upstream).await;
    let mut client = TcpStream::connect(gw.addr).await.unwrap();
    for _ in 0..3 {
        let path = format!("{CAMPAIGNS}/close");
        assert_eq!(get(&mut client, &path).await, Some(200));
    }
    assert_eq!(get(&mut client, CAMPAIGNS).await, Some(200));
    assert_eq!(
        upstream.connections(),
        4,
        "one new connection after each close"
    );
}

#[tokio::test]
async fn a_connection_the_upstream_dropped_mid_request_is_a_502_and_never_reused() {
    let upstream = CountingUpstream::start().await;
    let (gw, _dir) = gateway(&upstream).await;
    let mut client = TcpStream::connect(gw.addr).await.unwrap();
    assert_eq!(get(&mut client, CAMPAIGNS).await, Some(200));
    let path = format!("{CAMPAIGNS}/drop");
    assert_eq!(get(&mut client, &path).await, Some(502));
    // The request that failed is not sent again on another connection.
    let drops = upstream
        .requests()
        .iter()
        .filter(|r| r.1.ends_with("/drop"))
        .count();
    assert_eq!(drops, 1);
    // The client's connection survives the 502 and its next request gets a fresh upstream
    // connection.
    assert_eq!(get(&mut client, CAMPAIGNS).await, Some(200));
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test]
async fn a_refused_request_opens_no_upstream_connection() {
    let upstream = CountingUpstream::start().await;
    let (gw, _dir) = gateway(&upstream).await;
    let mut client = TcpStream::connect(gw.addr).await.unwrap();
    // The reader may not use the reports API.
    assert_eq!(
        get(&mut client, "/Mediapartners/IRacme/Reports/x").await,
        Some(403)
    );
    assert_eq!(upstream.connections(), 0);
    assert!(upstream.requests().is_empty());
}
