//! Test harness: a recording upstream on port 0, the real gateway on port 0 in-process,
//! and clients that talk to it over TCP (a hyper client, and raw sockets for requests a
//! client library would normalize).

#![allow(dead_code)]

pub mod cli;
pub mod exposition;
pub mod process;
pub mod prom;
pub mod redis_server;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// An HTTP upstream that records every request and answers 200 `upstream ok`.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let record = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let record = record.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let record = record.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            record.lock().unwrap().push(Recorded {
                                method: parts.method.to_string(),
                                target: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                            });
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                                b"upstream ok",
                            ))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream { addr, seen }
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn last(&self) -> Option<Recorded> {
        self.seen.lock().unwrap().last().cloned()
    }

    pub fn take(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

pub const ACCOUNT: &str = "IRacme";
/// The campaigns listing of [`ACCOUNT`]: the path most tests request.
pub const CAMPAIGNS: &str = "/Mediapartners/IRacme/Campaigns";
pub const OTHER_ACCOUNT: &str = "IRother";

/// A token fixture: SID, secret, and its YAML lines after `sid`/hash.
pub struct Fixture {
    pub sid: &'static str,
    pub secret: &'static str,
}

pub const READER: Fixture = Fixture {
    sid: "SGreader",
    secret: "reader-secret",
};
pub const WRITER: Fixture = Fixture {
    sid: "SGwriter",
    secret: "writer-secret",
};
pub const LEGACY: Fixture = Fixture {
    sid: "SGlegacy",
    secret: "legacy-secret",
};
pub const DISABLED: Fixture = Fixture {
    sid: "SGdisabled",
    secret: "disabled-secret",
};
pub const EXPIRED: Fixture = Fixture {
    sid: "SGexpired",
    secret: "expired-secret",
};
pub const OTHER: Fixture = Fixture {
    sid: "SGother",
    secret: "other-secret",
};

pub fn hash(secret: &str) -> String {
    scopegate::domain::model::SecretHash::of_secret(secret.as_bytes()).to_stored()
}

pub fn gateway_yaml(upstream: SocketAddr, extra: &str) -> String {
    format!(
        r#"listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
tokens_file: tokens.yaml
upstreams:
  main:
    url: http://{upstream}
default_upstream: main
api_versions: ["v14", "v15"]
apis:
  campaigns:
    description: Campaign listings
    paths: ["/Mediapartners/{{account}}/Campaigns", "/Mediapartners/{{account}}/Campaigns/**"]
    upstream: main
  campaign_items:
    description: One campaign's items (overlaps campaigns, more specific)
    paths: ["/Mediapartners/{{account}}/Campaigns/*/Items"]
  reports:
    paths: ["/Mediapartners/{{account}}/Reports/**"]
  public:
    paths: ["/public/**"]
{extra}"#
    )
}

pub fn tokens_yaml() -> String {
    format!(
        r#"accounts:
  - id: {ACCOUNT}
    name: Acme
    tokens:
      - sid: {r}
        name: reader
        description: reads campaigns
        primary_contact: ops@acme.example
        api_version: v15
        auth_token_hash: "{rh}"
        scopes:
          - {{api: campaigns, methods: [GET]}}
          - {{api: public, methods: [GET]}}
      - sid: {w}
        name: writer
        auth_token_hash: "{wh}"
        scopes:
          - {{api: campaigns, methods: [GET, POST, DELETE]}}
          - {{api: reports, methods: [GET]}}
      - sid: {l}
        name: legacy
        kind: legacy
        auth_token_hash: "{lh}"
      - sid: {d}
        name: disabled
        status: disabled
        auth_token_hash: "{dh}"
        scopes: [{{api: campaigns, methods: [GET]}}]
      - sid: {e}
        name: expired
        expires_at: 2020-01-01T00:00:00Z
        auth_token_hash: "{eh}"
        scopes: [{{api: campaigns, methods: [GET]}}]
  - id: {OTHER_ACCOUNT}
    tokens:
      - sid: {o}
        name: other
        auth_token_hash: "{oh}"
        scopes: [{{api: campaigns, methods: [GET]}}]
deleted_sids: [SGdeleted]
"#,
        r = READER.sid,
        rh = hash(READER.secret),
        w = WRITER.sid,
        wh = hash(WRITER.secret),
        l = LEGACY.sid,
        lh = hash(LEGACY.secret),
        d = DISABLED.sid,
        dh = hash(DISABLED.secret),
        e = EXPIRED.sid,
        eh = hash(EXPIRED.secret),
        o = OTHER.sid,
        oh = hash(OTHER.secret),
    )
}

/// `tokens` with `lines` (YAML, indented as a token's fields) added to the token named
/// `name`.
pub fn with_token_lines(tokens: &str, name: &str, lines: &str) -> String {
    let marker = format!("        name: {name}\n");
    assert!(tokens.contains(&marker), "no token named {name}");
    tokens.replacen(&marker, &format!("{marker}{lines}"), 1)
}

/// The harness tokens with the reader's and the writer's own `rate_limit`s.
pub fn tokens_with_limits(reader_limit: &str, writer_limit: &str) -> String {
    let limit = |l: &str| format!("        rate_limit: {l}\n");
    let tokens = with_token_lines(&tokens_yaml(), "reader", &limit(reader_limit));
    with_token_lines(&tokens, "writer", &limit(writer_limit))
}

/// A private folder for one test's config files, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix("scopegate-test")
            .tempdir()
            .unwrap();
        TempDir(dir.keep())
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The gateway, running in-process on port 0 in front of a recording upstream.
pub struct Harness {
    pub upstream: Upstream,
    pub gateway: scopegate::Running,
    pub dir: TempDir,
    pub config_path: PathBuf,
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with("", &tokens_yaml()).await
    }

    pub async fn start_with(extra_gateway_yaml: &str, tokens: &str) -> Harness {
        let upstream = Upstream::start().await;
        let dir = TempDir::new();
        let config_path = dir.write(
            "scopegate.yaml",
            &gateway_yaml(upstream.addr, extra_gateway_yaml),
        );
        dir.write("tokens.yaml", tokens);
        let gateway = start_gateway(&config_path).await;
        Harness {
            upstream,
            gateway,
            dir,
            config_path,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.gateway.addr, path)
    }

    pub fn addr(&self) -> SocketAddr {
        self.gateway.addr
    }
}

/// The gateway on port 0 in front of `upstream` (an upstream a test runs itself), with the
/// harness fixtures and `extra` settings; the folder holds its config files.
pub async fn gateway_for(upstream: SocketAddr, extra: &str) -> (scopegate::Running, TempDir) {
    let dir = TempDir::new();
    dir.write("tokens.yaml", &tokens_yaml());
    let cfg = dir.write("scopegate.yaml", &gateway_yaml(upstream, extra));
    (start_gateway(&cfg).await, dir)
}

pub async fn start_gateway(config_path: &Path) -> scopegate::Running {
    let config = scopegate::config::load(config_path).unwrap_or_else(|e| panic!("{e}"));
    let shared = scopegate::build_shared(config);
    let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    scopegate::start(shared, main, admin).unwrap()
}

pub fn basic(f: &Fixture) -> String {
    basic_raw(f.sid, f.secret)
}

pub fn basic_raw(sid: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{sid}:{secret}"))
    )
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends a request with a real HTTP client (hyper's pooled client) over TCP.
pub async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    try_send_body(method, url, headers, body)
        .await
        .expect("request reached the gateway")
}

/// Like [`send`] without a body, for a server that may not answer yet: `None` when
/// nothing answered within 30 s.
pub async fn try_send(method: &str, url: &str, headers: &[(&str, &str)]) -> Option<Reply> {
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        try_send_body(method, url, headers, ""),
    )
    .await
    .ok()?
}

async fn try_send_body(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<Reply> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).ok()?;
    let resp = client.request(req).await.ok()?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Some(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// A proxied GET with Basic credentials: the status the client sees.
pub async fn proxy_get(h: &Harness, sid: &str, secret: &str, path: &str) -> u16 {
    let auth = basic_raw(sid, secret);
    send("GET", &h.url(path), &[("authorization", &auth)], "")
        .await
        .status
        .as_u16()
}

pub async fn get(url: &str, auth: Option<&Fixture>) -> Reply {
    match auth {
        Some(f) => send("GET", url, &[("authorization", &basic(f))], "").await,
        None => send("GET", url, &[], "").await,
    }
}

/// Writes raw bytes on a fresh connection and reads one response (the server closes or
/// the response is complete by Content-Length).
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_response(&mut stream).await.expect("a response")
}

/// Reads one HTTP/1.1 response (head + Content-Length body) from a stream.
pub async fn read_response(stream: &mut TcpStream) -> Option<Reply> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    resp.parse(&buf[..head_end]).ok()?;
    let status = StatusCode::from_u16(resp.code?).ok()?;
    let mut map = HeaderMap::new();
    for h in resp.headers.iter() {
        map.append(
            http::HeaderName::from_bytes(h.name.as_bytes()).ok()?,
            http::HeaderValue::from_bytes(h.value).ok()?,
        );
    }
    let len: usize = map
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Some(Reply {
        status,
        headers: map,
        body: Bytes::from(body),
    })
}

/// Reads one message head, up to and including the blank line, byte by byte (so nothing
/// after it is consumed); `None` if the peer closes first.
pub async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut b).await.unwrap_or(0) == 0 {
            return None;
        }
        head.push(b[0]);
    }
    Some(head)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads until the peer closes; true if it closed (EOF) rather than sending more.
pub async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Reads the admin `/metrics` text.
pub async fn metrics(h: &Harness) -> String {
    metrics_at(h.gateway.admin_addr).await
}

/// Reads the `/metrics` text of an admin listener.
pub async fn metrics_at(admin: SocketAddr) -> String {
    get(&format!("http://{admin}/metrics"), None).await.text()
}

/// A port that was free a moment ago (the built binary needs fixed ports in its config).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The harness config with fixed ports instead of port 0, for the built binary.
pub fn with_ports(yaml: &str, port: u16, admin: u16) -> String {
    yaml.replace(
        "admin_listen: 127.0.0.1:0",
        &format!("admin_listen: 127.0.0.1:{admin}"),
    )
    .replacen(
        "listen: 127.0.0.1:0",
        &format!("listen: 127.0.0.1:{port}"),
        1,
    )
}

/// Polls the admin `/readyz` of a gateway process until it answers 200 (bounded).
pub async fn wait_ready(admin: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !is_ready(&format!("127.0.0.1:{admin}")).await {
        assert!(
            std::time::Instant::now() < deadline,
            "gateway did not become ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Whether the admin listener at `admin` (host:port) answers `/readyz` with 200 now.
pub async fn is_ready(admin: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(admin).await else {
        return false;
    };
    let _ = s
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    read_response(&mut s).await.is_some_and(|r| r.status == 200)
}
