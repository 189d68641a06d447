//! The benchmark's control: the smallest hyper proxy that does scopegate's job on the
//! shared benchmark (`../shared/bench/`), so every table shows how far the product is from
//! the framework's floor. It parses Basic credentials, checks the secret's SHA-256, walks
//! the token's scope patterns, refuses non-canonical paths, strips `Authorization` and
//! forwards; nothing else (no metrics, no rate limit, no reload, no access log, no TLS).
//!
//! It is not the product and never ships: `benches/compare.sh` builds it as an example and
//! hands it to the harness as an extra target.
//!
//! ```sh
//! control-proxy --listen 127.0.0.1:18084 --upstream 127.0.0.1:18080 --tokens out/tokens.tsv --threads 1
//! ```
//!
//! Each worker is a single-threaded runtime accepting on the shared socket (as scopegate's
//! workers are); each client connection drives its own upstream connection, opened on its
//! first allowed request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};

type Body = UnsyncBoxBody<Bytes, hyper::Error>;

/// One segment of a scope pattern.
enum Segment {
    Literal(String),
    /// `*`: exactly one non-empty segment.
    One,
    /// `**` (last only): any remaining segments, including none.
    Rest,
}

struct Scope {
    methods: Vec<Method>,
    pattern: Vec<Segment>,
}

struct Token {
    secret_sha256: [u8; 32],
    scopes: Vec<Scope>,
}

struct Config {
    tokens: HashMap<String, Token>,
    upstream: SocketAddr,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut listen, mut upstream, mut tokens, mut threads) = (None, None, None, 1usize);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--listen" => listen = value.parse::<SocketAddr>().ok(),
            "--upstream" => upstream = value.parse::<SocketAddr>().ok(),
            "--tokens" => tokens = Some(value),
            "--threads" => threads = value.parse().unwrap_or(1).max(1),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    let (Some(listen), Some(upstream), Some(tokens)) = (listen, upstream, tokens) else {
        usage("--listen, --upstream and --tokens are required")
    };
    let text =
        std::fs::read_to_string(&tokens).unwrap_or_else(|e| usage(&format!("{tokens}: {e}")));
    let config = Arc::new(Config {
        tokens: parse_tokens(&text),
        upstream,
    });
    let listener =
        std::net::TcpListener::bind(listen).unwrap_or_else(|e| usage(&format!("{listen}: {e}")));
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let listener = listener.try_clone().expect("listener clone");
            let config = config.clone();
            std::thread::spawn(move || worker(listener, config))
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}

fn usage(why: &str) -> ! {
    eprintln!("control-proxy: {why}\nusage: control-proxy --listen ADDR --upstream ADDR --tokens FILE [--threads N]");
    std::process::exit(2)
}

/// `sid secret account scopes` per line after a header; scopes `GET,POST:/a/**;GET:/b/*`
/// with `{account}` standing for the token's account.
fn parse_tokens(text: &str) -> HashMap<String, Token> {
    let mut tokens = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let [sid, secret, account, scopes] = f[..] else {
            continue;
        };
        let scopes = scopes
            .split(';')
            .filter_map(|s| s.split_once(':'))
            .map(|(methods, pattern)| {
                let mut methods: Vec<Method> =
                    methods.split(',').filter_map(|m| m.parse().ok()).collect();
                if methods.contains(&Method::GET) {
                    methods.push(Method::HEAD);
                }
                let pattern = pattern.replace("{account}", account);
                let pattern = pattern
                    .split('/')
                    .skip(1)
                    .map(|s| match s {
                        "*" => Segment::One,
                        "**" => Segment::Rest,
                        lit => Segment::Literal(lit.to_owned()),
                    })
                    .collect();
                Scope { methods, pattern }
            })
            .collect();
        tokens.insert(
            sid.to_owned(),
            Token {
                secret_sha256: Sha256::digest(secret.as_bytes()).into(),
                scopes,
            },
        );
    }
    tokens
}

fn worker(listener: std::net::TcpListener, config: Arc<Config>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = TcpListener::from_std(listener).expect("listener");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let config = config.clone();
            tokio::spawn(async move {
                let upstream = Arc::new(Mutex::new(None));
                let service = hyper::service::service_fn(move |req| {
                    handle(config.clone(), upstream.clone(), req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

type Upstream = Arc<Mutex<Option<SendRequest<Incoming>>>>;

async fn handle(
    config: Arc<Config>,
    upstream: Upstream,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, hyper::Error> {
    if let Err(status) = authorize(&config, &req) {
        // Read a small body so the connection stays open, as the product does.
        let _ = http_body_util::Limited::new(req.into_body(), 64 * 1024)
            .collect()
            .await;
        return Ok(refusal(status));
    }
    req.headers_mut().remove(header::AUTHORIZATION);
    let mut taken = upstream.lock().map(|mut u| u.take()).unwrap_or(None);
    if let Some(s) = taken.as_mut() {
        if s.ready().await.is_err() {
            taken = None;
        }
    }
    let mut sender = match taken {
        Some(s) => s,
        None => match connect(config.upstream).await {
            Some(s) => s,
            None => return Ok(refusal(StatusCode::BAD_GATEWAY)),
        },
    };
    let sent = sender.send_request(req).await;
    if let Ok(mut slot) = upstream.lock() {
        *slot = Some(sender);
    }
    match sent {
        Ok(resp) => Ok(resp.map(|b| b.boxed_unsync())),
        Err(_) => Ok(refusal(StatusCode::BAD_GATEWAY)),
    }
}

async fn connect(addr: SocketAddr) -> Option<SendRequest<Incoming>> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

fn authorize<B>(config: &Config, req: &Request<B>) -> Result<(), StatusCode> {
    let creds = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64.trim()).ok()
        })
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let creds = std::str::from_utf8(&creds).map_err(|_| StatusCode::UNAUTHORIZED)?;
    let (sid, secret) = creds.split_once(':').ok_or(StatusCode::UNAUTHORIZED)?;
    let token = config.tokens.get(sid).ok_or(StatusCode::FORBIDDEN)?;
    let hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        &hash[..],
        &token.secret_sha256[..],
    )) {
        return Err(StatusCode::FORBIDDEN);
    }
    let path = req.uri().path();
    if !canonical(path) {
        return Err(StatusCode::BAD_REQUEST);
    }
    let path = if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    };
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let allowed = token
        .scopes
        .iter()
        .any(|s| s.methods.contains(req.method()) && matches(&s.pattern, &segments));
    allowed.then_some(()).ok_or(StatusCode::FORBIDDEN)
}

/// No empty, `.` or `..` segment inside the path, and no percent-encoded `.`, `/` or `\`.
fn canonical(path: &str) -> bool {
    let inner = path.strip_suffix('/').unwrap_or(path);
    let lower = path.to_ascii_lowercase();
    path.starts_with('/')
        && !inner
            .split('/')
            .skip(1)
            .any(|s| s.is_empty() || s == "." || s == "..")
        && !["%2e", "%2f", "%5c", "\\"]
            .iter()
            .any(|bad| lower.contains(bad))
}

fn matches(pattern: &[Segment], path: &[&str]) -> bool {
    let mut i = 0;
    for seg in pattern {
        match seg {
            Segment::Rest => return true,
            Segment::One if i < path.len() && !path[i].is_empty() => {}
            Segment::Literal(l) if i < path.len() && path[i] == l => {}
            _ => return false,
        }
        i += 1;
    }
    i == path.len()
}

fn refusal(status: StatusCode) -> Response<Body> {
    let body = match status {
        StatusCode::UNAUTHORIZED => {
            r#"{"error":"unauthenticated","message":"Authentication Required"}"#
        }
        StatusCode::FORBIDDEN => r#"{"error":"access_denied","message":"Access Denied"}"#,
        StatusCode::BAD_REQUEST => r#"{"error":"bad_request","message":"Bad Request"}"#,
        _ => r#"{"error":"bad_gateway","message":"Bad Gateway"}"#,
    };
    let mut resp = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|n| match n {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"control\""),
        );
    }
    resp
}
