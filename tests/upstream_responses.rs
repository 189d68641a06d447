//! What the gateway makes of the bytes an upstream HTTP/1.1 server sends back, and how it
//! frames the request bodies it forwards, byte for byte. A scripted raw upstream answers
//! each request by the last segment of its path and records the raw request it received;
//! a raw client reads exactly what the gateway sends. These pin the behaviour of the
//! gateway's upstream HTTP/1.1 client so that a replacement can be shown to change nothing.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{basic, Fixture, CAMPAIGNS, READER, WRITER};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The longest a client waits for the gateway's next bytes: a guard against a hung test,
/// never a way to wait for something to happen.
const PATIENCE: Duration = Duration::from_secs(20);

/// The JSON body of the gateway's own 502.
const BAD_GATEWAY: &[u8] = br#"{"error":"bad_gateway","message":"Bad Gateway"}"#;

/// A byte stream and what has been read from it but not yet consumed.
struct Conn<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
    /// `Some` on the client side: a read that waits longer fails the test.
    patience: Option<Duration>,
}

impl<S: AsyncRead + Unpin> Conn<S> {
    fn new(stream: S, patience: Option<Duration>) -> Conn<S> {
        Conn {
            stream,
            buf: Vec::new(),
            patience,
        }
    }

    /// Reads more bytes into the buffer; false at end of stream (or a reset).
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        let read = self.stream.read(&mut chunk);
        let n = match self.patience {
            Some(p) => tokio::time::timeout(p, read)
                .await
                .expect("the gateway sent nothing more and kept the connection open"),
            None => read.await,
        };
        match n {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next message head, blank line included; `None` when the stream ends first.
    async fn head(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                return Some(self.buf.drain(..i + 4).collect());
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next line, CRLF included.
    async fn line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                return Some(self.buf.drain(..i + 2).collect());
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Up to `n` bytes: fewer only when the stream ended first.
    async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            if !self.fill().await {
                break;
            }
        }
        let n = n.min(self.buf.len());
        self.buf.drain(..n).collect()
    }

    /// Everything until the stream ends.
    async fn rest(&mut self) -> Vec<u8> {
        while self.fill().await {}
        std::mem::take(&mut self.buf)
    }

    /// A chunked body (RFC 9112 §7.1), read as far as it goes.
    async fn chunked(&mut self) -> Chunked {
        let mut c = Chunked::default();
        loop {
            let Some(line) = self.line().await else {
                return c;
            };
            c.raw.extend_from_slice(&line);
            let text = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
            let size = text.split(';').next().unwrap_or("").trim();
            let Ok(size) = usize::from_str_radix(size, 16) else {
                return c;
            };
            if size == 0 {
                loop {
                    let Some(line) = self.line().await else {
                        return c;
                    };
                    c.raw.extend_from_slice(&line);
                    if line == b"\r\n" {
                        c.complete = true;
                        return c;
                    }
                    c.trailers
                        .push(String::from_utf8_lossy(&line).trim_end().to_owned());
                }
            }
            let data = self.take(size + 2).await;
            c.raw.extend_from_slice(&data);
            if data.len() < size + 2 || !data.ends_with(b"\r\n") {
                c.body.extend_from_slice(&data[..data.len().min(size)]);
                return c;
            }
            c.body.extend_from_slice(&data[..size]);
        }
    }
}

#[derive(Default)]
struct Chunked {
    /// The bytes as they came, framing included.
    raw: Vec<u8>,
    /// The decoded content.
    body: Vec<u8>,
    trailers: Vec<String>,
    /// Whether the last chunk and the trailer section's end arrived.
    complete: bool,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The header fields of a raw head, names lowercased, in order.
fn fields(head: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(head)
        .split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

fn values(fields: &[(String, String)], name: &str) -> Vec<String> {
    fields
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .collect()
}

/// A request as the upstream received it.
#[derive(Debug, Clone)]
struct Seen {
    /// Which upstream connection it came on, counted from 1.
    connection: usize,
    /// The head as received, blank line included.
    head: String,
    /// The body bytes as they came on the wire, chunked framing included.
    raw_body: Vec<u8>,
    /// The body, decoded.
    body: Vec<u8>,
    /// Whether the body's framing ended before the connection did.
    complete: bool,
}

/// What the upstream does with a request: the bytes it writes, then whether it closes.
struct Script {
    reply: Vec<u8>,
    close: bool,
}

fn reply(text: &str) -> Script {
    Script {
        reply: text.as_bytes().to_vec(),
        close: false,
    }
}

fn reply_then_close(text: &str) -> Script {
    Script {
        reply: text.as_bytes().to_vec(),
        close: true,
    }
}

/// 1 MiB of a pattern that shows any lost, repeated or reordered stretch.
fn mebibyte() -> Vec<u8> {
    (0..1 << 20).map(|i: u32| (i % 251) as u8).collect()
}

/// `body` in a chunked framing whose chunk sizes vary from 1 byte to 64 KiB.
fn chunked_framing(body: &[u8]) -> Vec<u8> {
    let sizes = [1usize, 10, 100, 1000, 4096, 10_000, 65_536];
    let mut out = Vec::new();
    let mut rest = body;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*size).min(rest.len()));
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
        rest = tail;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// The answer to a request whose path ends in `segment`.
fn script(method: &str, segment: &str) -> Script {
    match segment {
        "length" => reply("HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello world"),
        "chunked" => reply(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n\
             5;name=val\r\nhello\r\n6;a=b;c=\"d e\"\r\n world\r\n0;last\r\nx-sum: 42\r\n\r\n",
        ),
        "until-close" => reply_then_close(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nthe body ends when the connection does",
        ),
        "head" if method == "HEAD" => reply("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"),
        "204" => reply("HTTP/1.1 204 No Content\r\nx-n: 1\r\n\r\n"),
        "304" => reply("HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\n\r\n"),
        "interim" => reply(
            "HTTP/1.1 100 Continue\r\n\r\n\
             HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n\
             HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal",
        ),
        "chunked-and-length" => reply(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 100\r\n\r\n\
             5\r\nhello\r\n0\r\n\r\n",
        ),
        "length-abc" => reply("HTTP/1.1 200 OK\r\ncontent-length: abc\r\n\r\nok"),
        "length-negative" => reply("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\nok"),
        "length-twice" => {
            reply("HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nok")
        }
        "length-list" => reply("HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\nok"),
        "not-http" => reply("HELLO\r\n\r\n"),
        "bare-lf" => reply("HTTP/1.1 200 OK\ncontent-length: 2\n\nok"),
        "obs-fold" => reply("HTTP/1.1 200 OK\r\nx-folded: a\r\n b\r\ncontent-length: 2\r\n\r\nok"),
        "space-before-colon" => reply("HTTP/1.1 200 OK\r\ncontent-length : 2\r\n\r\nok"),
        "status-2000" => reply("HTTP/1.1 2000 X\r\ncontent-length: 2\r\n\r\nok"),
        "silent" => reply_then_close(""),
        "half-head" => reply_then_close("HTTP/1.1 200 OK\r\ncontent-le"),
        "cut-body" => reply_then_close("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello"),
        "huge-head" => reply(&format!(
            "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 2\r\n\r\nok",
            "a".repeat(600_000)
        )),
        "many-fields" => reply(&format!(
            "HTTP/1.1 200 OK\r\n{}content-length: 2\r\n\r\nok",
            (0..200).map(|i| format!("x-f{i}: v\r\n")).collect::<String>()
        )),
        // The upstream keeps its side open: only the gateway's reading of the response can
        // keep it from sending the next request here.
        "close" => reply("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"),
        "http10" => reply("HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"),
        "reason" => reply("HTTP/1.1 200 Fine\r\ncontent-length: 2\r\n\r\nok"),
        "bad-chunk" => reply("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"),
        "big-length" => {
            let body = mebibyte();
            let mut r = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len())
                .into_bytes();
            r.extend_from_slice(&body);
            Script {
                reply: r,
                close: false,
            }
        }
        "big-chunked" => {
            let mut r = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
            r.extend_from_slice(&chunked_framing(&mebibyte()));
            Script {
                reply: r,
                close: false,
            }
        }
        _ => reply("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
    }
}

/// A raw upstream on port 0 that answers by [`script`] and records every request.
struct ScriptedUpstream {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    seen: Arc<watch::Sender<Vec<Seen>>>,
}

impl ScriptedUpstream {
    async fn start() -> ScriptedUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(watch::Sender::new(Vec::new()));
        let (count, record) = (connections.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(serve(Conn::new(stream, None), n, record.clone()));
            }
        });
        ScriptedUpstream {
            addr,
            connections,
            seen,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The requests received so far, once there are at least `n` (their bodies read as far
    /// as they went).
    async fn requests(&self, n: usize) -> Vec<Seen> {
        let mut rx = self.seen.subscribe();
        let seen = tokio::time::timeout(PATIENCE, rx.wait_for(|s| s.len() >= n))
            .await
            .expect("the upstream received the requests")
            .expect("the upstream is running");
        seen.clone()
    }

    /// The upstream connection numbers of the requests received so far, in order.
    fn by_connection(&self) -> Vec<usize> {
        self.seen.borrow().iter().map(|s| s.connection).collect()
    }
}

/// Serves one upstream connection: each request is read whole (by Content-Length or
/// chunked), recorded, and answered by its script.
async fn serve(mut conn: Conn, connection: usize, record: Arc<watch::Sender<Vec<Seen>>>) {
    loop {
        let Some(head) = conn.head().await else {
            return;
        };
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut slots);
        req.parse(&head)
            .expect("the gateway sent a valid request head");
        let method = req.method.unwrap_or("").to_owned();
        let target = req.path.unwrap_or("").to_owned();
        let head = String::from_utf8_lossy(&head).into_owned();
        let f = fields(head.as_bytes());
        let path = target.split('?').next().unwrap_or("");
        let segment = path.rsplit('/').next().unwrap_or("");
        if let Some(answer) = answer_while_reading(segment, &mut conn, &f).await {
            record.send_modify(|s| {
                s.push(Seen {
                    connection,
                    head,
                    raw_body: Vec::new(),
                    body: answer.echoed.clone(),
                    complete: answer.complete,
                })
            });
            return;
        }
        let chunked = values(&f, "transfer-encoding")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("chunked"));
        let length = values(&f, "content-length")
            .first()
            .map(|v| v.parse::<usize>().expect("a numeric Content-Length"));
        let (raw_body, body, complete) = if chunked {
            let c = conn.chunked().await;
            (c.raw, c.body, c.complete)
        } else if let Some(n) = length {
            let b = conn.take(n).await;
            let complete = b.len() == n;
            (b.clone(), b, complete)
        } else {
            (Vec::new(), Vec::new(), true)
        };
        record.send_modify(|s| {
            s.push(Seen {
                connection,
                head,
                raw_body,
                body,
                complete,
            })
        });
        if !complete {
            return;
        }
        let script = script(&method, segment);
        if conn.stream.write_all(&script.reply).await.is_err() || script.close {
            return;
        }
    }
}

/// What an upstream that answers before the request body is all read did.
struct EarlyAnswer {
    /// The body bytes it read (and echoed).
    echoed: Vec<u8>,
    /// Whether it read the whole body.
    complete: bool,
}

/// The upstreams whose answer is more than bytes written after the whole request, by the
/// path's last segment. Those that do not wait for the request body (RFC 9112 §9.5):
/// `early-413` refuses at once and closes without reading any of it; `duplex` sends its
/// head, then echoes each piece of the body as a chunk as soon as it is read (a streaming
/// upstream: it stops reading while its own writes are stuck). Those that take their time:
/// `stall` sends half its body, then nothing more while keeping the connection open;
/// `trickle` sends its 12-byte body a byte every 100 ms. `None`: any other segment,
/// answered after the whole request by [`script`].
async fn answer_while_reading(
    segment: &str,
    conn: &mut Conn,
    fields: &[(String, String)],
) -> Option<EarlyAnswer> {
    let length: usize = values(fields, "content-length")
        .first()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    match segment {
        "stall" => {
            let _ = conn
                .stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
                .await;
            // Holds the connection open: only the gateway can end this exchange.
            let mut rest = Vec::new();
            let _ = conn.stream.read_to_end(&mut rest).await;
            Some(EarlyAnswer {
                echoed: Vec::new(),
                complete: true,
            })
        }
        "trickle" => {
            let _ = conn
                .stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n")
                .await;
            for byte in b"slow but sure".iter().take(12) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if conn.stream.write_all(&[*byte]).await.is_err() {
                    break;
                }
            }
            Some(EarlyAnswer {
                echoed: Vec::new(),
                complete: true,
            })
        }
        "early-413" => {
            let _ = conn
                .stream
                .write_all(b"HTTP/1.1 413 Payload Too Large\r\nconnection: close\r\ncontent-length: 8\r\n\r\ntoo big!")
                .await;
            Some(EarlyAnswer {
                echoed: Vec::new(),
                complete: false,
            })
        }
        "duplex" => {
            let mut echoed = Vec::new();
            let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
            if conn.stream.write_all(head).await.is_err() {
                return Some(EarlyAnswer {
                    echoed,
                    complete: false,
                });
            }
            while echoed.len() < length {
                if conn.buf.is_empty() && !conn.fill().await {
                    break;
                }
                let piece: Vec<u8> = conn.buf.drain(..).collect();
                let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
                chunk.extend_from_slice(&piece);
                chunk.extend_from_slice(b"\r\n");
                echoed.extend_from_slice(&piece);
                if conn.stream.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            let complete = echoed.len() == length;
            if complete {
                let _ = conn.stream.write_all(b"0\r\n\r\n").await;
            }
            Some(EarlyAnswer { echoed, complete })
        }
        _ => None,
    }
}

/// A response as the client read it off the wire.
#[derive(Debug)]
struct Got {
    /// The head as received, blank line included.
    head: String,
    body: Vec<u8>,
    /// How the gateway framed the body: `none`, `length`, `chunked` or `close`.
    framing: &'static str,
    /// Whether the body's framing ended (a chunked body's last chunk, all of a
    /// Content-Length) rather than the connection closing first.
    complete: bool,
    /// The trailer fields of a chunked body.
    trailers: Vec<String>,
    /// The body bytes as they came, framing included.
    raw_body: Vec<u8>,
}

impl Got {
    fn status_line(&self) -> &str {
        self.head.split("\r\n").next().unwrap_or("")
    }

    /// The header fields, in order, without the ones the gateway adds to every response
    /// (`date`, and the `ratelimit*` fields of the default rate limit).
    fn fields(&self) -> Vec<(String, String)> {
        fields(self.head.as_bytes())
            .into_iter()
            .filter(|(n, _)| n != "date" && !n.starts_with("ratelimit"))
            .collect()
    }
}

/// A client connection to the gateway over raw TCP.
struct Client {
    conn: Conn,
}

impl Client {
    async fn connect(gateway: SocketAddr) -> Client {
        Client {
            conn: Conn::new(TcpStream::connect(gateway).await.unwrap(), Some(PATIENCE)),
        }
    }

    /// Writes `bytes`; a connection the gateway closed shows in the response read next.
    async fn send(&mut self, bytes: &[u8]) {
        let _ = self.conn.stream.write_all(bytes).await;
    }

    /// Sends a bodiless request with `who`'s credentials and reads the final response.
    async fn exchange(&mut self, who: &Fixture, method: &str, path: &str) -> Option<Got> {
        self.send(&request(who, method, path, "", b"")).await;
        self.response(method == "HEAD").await
    }

    /// Sends `GET {CAMPAIGNS}/{segment}` as the reader and reads the final response.
    async fn get(&mut self, segment: &str) -> Option<Got> {
        self.exchange(&READER, "GET", &format!("{CAMPAIGNS}/{segment}"))
            .await
    }

    /// The next response on the connection (an interim one too), framed as the client
    /// must read it; `None` if the gateway closed the connection before a whole head.
    async fn response(&mut self, to_head: bool) -> Option<Got> {
        let raw = self.conn.head().await?;
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut slots);
        resp.parse(&raw)
            .expect("the gateway sent a valid response head");
        let status = resp.code.expect("a status code");
        let head = String::from_utf8_lossy(&raw).into_owned();
        let f = fields(&raw);
        let chunked = values(&f, "transfer-encoding")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("chunked"));
        let length = values(&f, "content-length")
            .first()
            .map(|v| v.parse::<usize>().expect("a numeric Content-Length"));
        let mut got = Got {
            head,
            body: Vec::new(),
            framing: "none",
            complete: true,
            trailers: Vec::new(),
            raw_body: Vec::new(),
        };
        if to_head || status < 200 || status == 204 || status == 304 {
            return Some(got);
        }
        if chunked {
            let c = self.conn.chunked().await;
            got.framing = "chunked";
            got.body = c.body;
            got.complete = c.complete;
            got.trailers = c.trailers;
            got.raw_body = c.raw;
        } else if let Some(n) = length {
            got.framing = "length";
            got.body = self.conn.take(n).await;
            got.complete = got.body.len() == n;
            got.raw_body = got.body.clone();
        } else {
            got.framing = "close";
            got.body = self.conn.rest().await;
            got.raw_body = got.body.clone();
        }
        Some(got)
    }

    /// Whether the gateway closed the connection with nothing more sent.
    async fn closed(&mut self) -> bool {
        self.conn.buf.is_empty() && !self.conn.fill().await
    }
}

/// A raw HTTP/1.1 request with `who`'s credentials; `fields` are extra header lines, each
/// ending in CRLF.
fn request(who: &Fixture, method: &str, path: &str, fields: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nhost: gateway.example\r\nauthorization: {}\r\n{fields}\r\n",
        basic(who)
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

async fn gateway(
    upstream: &ScriptedUpstream,
    extra: &str,
) -> (scopegate::Running, support::TempDir) {
    support::gateway_for(upstream.addr, extra).await
}

/// A scripted upstream, the gateway in front of it (with `extra` settings; keep the third
/// value alive) and one client connection to the gateway.
async fn scene(
    extra: &str,
) -> (
    ScriptedUpstream,
    Client,
    (scopegate::Running, support::TempDir),
) {
    let upstream = ScriptedUpstream::start().await;
    let gateway = gateway(&upstream, extra).await;
    let client = Client::connect(gateway.0.addr).await;
    (upstream, client, gateway)
}

/// `[(name, value)]` as owned strings, to compare with [`Got::fields`].
fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The upstream's `length` answer, passed through whole.
#[track_caller]
fn assert_hello_world(got: Option<Got>) {
    let got = got.expect("a response");
    assert_eq!(got.status_line(), "HTTP/1.1 200 OK", "{got:?}");
    assert_eq!(got.fields(), owned(&[("content-length", "11")]));
    assert_eq!(got.body, b"hello world");
    assert!(got.complete);
}

/// The gateway's own 502, exactly.
#[track_caller]
fn assert_bad_gateway(got: Option<Got>, case: &str) {
    let got = got.unwrap_or_else(|| panic!("{case}: no response"));
    assert_eq!(
        got.status_line(),
        "HTTP/1.1 502 Bad Gateway",
        "{case}: {got:?}"
    );
    assert_eq!(
        got.fields(),
        owned(&[
            ("content-type", "application/json"),
            ("content-length", "47")
        ]),
        "{case}"
    );
    assert_eq!(got.body, BAD_GATEWAY, "{case}");
}

/// Each of `segments` is answered 502 and the client connection survives it; the
/// upstream connection that carried it is never used again, while a good one is.
async fn each_is_a_502_on_a_connection_never_reused(segments: &[&str]) {
    let (upstream, mut client, _gateway) = scene("").await;
    let mut expected = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        assert_bad_gateway(client.get(segment).await, segment);
        assert_hello_world(client.get("length").await);
        // The failed request's connection is dropped; the next request opens one, and the
        // one after (the next failing case) reuses it.
        expected.extend([i + 1, i + 2]);
    }
    assert_eq!(upstream.by_connection(), expected, "{segments:?}");
}

#[tokio::test]
async fn a_content_length_body_arrives_exactly_over_one_reused_connection() {
    let (upstream, mut client, _gateway) = scene("").await;
    assert_hello_world(client.get("length").await);
    assert_hello_world(client.get("length").await);
    assert_eq!(upstream.by_connection(), [1, 1]);
    assert_eq!(upstream.connections(), 1);
}

/// RFC 9112 §6.3: `Transfer-Encoding` overrides `Content-Length`, and an intermediary
/// removes the length before forwarding; the connection is not used again.
#[tokio::test]
async fn a_length_beside_chunked_never_reaches_the_client() {
    let (upstream, mut client, _gateway) = scene("").await;
    let got = client.get("chunked-and-length").await.expect("a response");
    assert_eq!(got.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(got.fields(), owned(&[("transfer-encoding", "chunked")]));
    assert_eq!((got.framing, got.complete), ("chunked", true));
    assert_eq!(got.body, b"hello");
    assert_hello_world(client.get("length").await);
    assert_eq!(upstream.by_connection(), [1, 2]);
}

#[tokio::test]
async fn a_chunked_body_arrives_decoded_without_extensions_or_trailers() {
    let (upstream, mut client, _gateway) = scene("").await;
    let got = client.get("chunked").await.expect("a response");
    assert_eq!(got.status_line(), "HTTP/1.1 200 OK");
    // The upstream's `trailer` field is hop-by-hop and dropped; the gateway frames the
    // body chunked itself.
    assert_eq!(got.fields(), owned(&[("transfer-encoding", "chunked")]));
    assert_eq!((got.framing, got.complete), ("chunked", true));
    assert_eq!(got.body, b"hello world");
    assert!(got.trailers.is_empty(), "{:?}", got.trailers);
    assert!(
        find(&got.raw_body, b";").is_none(),
        "a chunk extension reached the client: {:?}",
        String::from_utf8_lossy(&got.raw_body)
    );
    // The whole chunked body was read: the connection is reused.
    assert_hello_world(client.get("length").await);
    assert_eq!(upstream.by_connection(), [1, 1]);
}

#[tokio::test]
async fn a_close_delimited_body_arrives_whole_and_the_next_request_opens_a_connection() {
    let (upstream, mut client, _gateway) = scene("").await;
    let got = client.get("until-close").await.expect("a response");
    assert_eq!(got.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(
        got.fields(),
        owned(&[
            ("content-type", "text/plain"),
            ("transfer-encoding", "chunked")
        ])
    );
    assert_eq!((got.framing, got.complete), ("chunked", true));
    assert_eq!(got.body, b"the body ends when the connection does");
    assert_hello_world(client.get("length").await);
    assert_eq!(upstream.by_connection(), [1, 2]);
}

#[tokio::test]
async fn a_head_response_has_its_content_length_and_no_body() {
    let (upstream, mut client, _gateway) = scene("").await;
    let path = format!("{CAMPAIGNS}/head");
    let got = client
        .exchange(&READER, "HEAD", &path)
        .await
        .expect("a response");
    assert_eq!(got.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(got.fields(), owned(&[("content-length", "10")]));
    // No body byte follows the head: the next bytes on the connection are the next
    // response's status line.
    assert!(client.conn.buf.is_empty(), "{:?}", client.conn.buf);
    assert_hello_world(client.get("length").await);
    let got = client
        .exchange(&READER, "HEAD", &path)
        .await
        .expect("a response");
    assert_eq!(got.fields(), owned(&[("content-length", "10")]));
    assert_hello_world(client.get("length").await);
    assert_eq!(upstream.by_connection(), [1, 1, 1, 1]);
}

#[tokio::test]
async fn no_content_and_not_modified_end_at_their_head_and_keep_the_connection() {
    let (upstream, mut client, _gateway) = scene("").await;
    let got = client.get("204").await.expect("a response");
    assert_eq!(got.status_line(), "HTTP/1.1 204 No Content");
    assert_eq!(got.fields(), owned(&[("x-n", "1")]));
    assert!(client.conn.buf.is_empty(), "{:?}", client.conn.buf);
    assert_hello_world(client.get("length").await);
    let got = client.get("304").await.expect("a response");
    assert_eq!(got.status_line(), "HTTP/1.1 304 Not Modified");
    assert_eq!(got.fields(), owned(&[("etag", "\"v1\"")]));
    assert!(client.conn.buf.is_empty(), "{:?}", client.conn.buf);
    assert_hello_world(client.get("length").await);
    assert_eq!(upstream.by_connection(), [1, 1, 1, 1]);
}

#[tokio::test]
async fn interim_responses_from_the_upstream_never_reach_the_client() {
    let (upstream, mut client, _gateway) = scene("").await;
    // The upstream sends `100 Continue` and `103 Early Hints` (with a `link`) before its
    // 200: the client's first and only response is the 200.
    let got = client.get("interim").await.expect("a response");
    assert_eq!(got.status_line(), "HTTP/1.1 200 OK", "{got:?}");
    assert_eq!(got.fields(), owned(&[("content-length", "5")]));
    assert_eq!(got.body, b"final");
    assert!(client.conn.buf.is_empty(), "{:?}", client.conn.buf);
    assert_hello_world(client.get("length").await);
    assert_eq!(upstream.by_connection(), [1, 1]);
}

#[tokio::test]
async fn an_invalid_content_length_is_a_502_and_its_connection_is_never_reused() {
    each_is_a_502_on_a_connection_never_reused(&[
        "length-abc",
        "length-negative",
        "length-twice",
        "length-list",
    ])
    .await;
}

#[tokio::test]
async fn a_malformed_response_head_is_a_502_and_its_connection_is_never_reused() {
    // `HELLO`, a folded field line, a space before a colon, a four-digit status.
    each_is_a_502_on_a_connection_never_reused(&[
        "not-http",
        "obs-fold",
        "space-before-colon",
        "status-2000",
    ])
    .await;
}

#[tokio::test]
async fn a_head_with_bare_lf_line_ends_is_accepted() {
    let (upstream, mut client, _gateway) = scene("").await;
    let got = client.get("bare-lf").await.expect("a response");
    assert_eq!(got.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(got.fields(), owned(&[("content-length", "2")]));
    assert_eq!(got.body, b"ok");
    assert_hello_world(client.get("length").await);
    assert_eq!(upstream.by_connection(), [1, 1]);
}

#[tokio::test]
async fn an_upstream_that_closes_before_its_head_ends_is_a_502() {
    // Closed with nothing sent; closed in the middle of a field name.
    each_is_a_502_on_a_connection_never_reused(&["silent", "half-head"]).await;
}

#[tokio::test]
async fn a_body_cut_short_never_looks_complete_to_the_client() {
    let (_upstream, mut client, _gateway) = scene("").await;
    // The head and the first bytes may reach the client before the gateway sees the
    // upstream close (then the upstream's length is kept, so the client can tell the body
    // is short), or the close arrives with them and nothing is sent: never a whole response.
    let got = client.get("cut-body").await;
    if let Some(got) = &got {
        assert_eq!(got.status_line(), "HTTP/1.1 200 OK");
        assert_eq!(got.fields(), owned(&[("content-length", "10")]));
        assert!(got.body.len() < 10);
        assert!(!got.complete);
    }
    // The gateway closed the connection before the tenth byte.
    assert!(client.closed().await);
}

#[tokio::test]
async fn a_head_too_large_or_with_too_many_fields_is_a_502() {
    // A 600 KB field; 200 fields.
    each_is_a_502_on_a_connection_never_reused(&["huge-head", "many-fields"]).await;
}

/// The upstream's `segment` answer reaches the client as a plain `ok` over HTTP/1.1 with the
/// client's connection kept, and the next request goes over a new upstream connection.
async fn ok_then_the_next_request_on_a_new_connection(segment: &str) {
    let (upstream, mut client, _gateway) = scene("").await;
    let got = client.get(segment).await.expect("a response");
    // The gateway states its own version, not the upstream's (RFC 9110 §2.5), and
    // `connection: close` is hop-by-hop: the client's own connection stays open.
    assert_eq!(got.status_line(), "HTTP/1.1 200 OK", "{segment}");
    assert_eq!(got.fields(), owned(&[("content-length", "2")]), "{segment}");
    assert_eq!(got.body, b"ok");
    // The upstream kept its side open, so only the gateway's reading of the head keeps
    // the next request off that connection.
    assert_hello_world(client.get("length").await);
    assert_eq!(upstream.by_connection(), [1, 2], "{segment}");
}

#[tokio::test]
async fn a_response_saying_connection_close_is_not_followed_on_its_connection() {
    ok_then_the_next_request_on_a_new_connection("close").await;
}

#[tokio::test]
async fn an_http10_response_without_keep_alive_is_not_followed_on_its_connection() {
    ok_then_the_next_request_on_a_new_connection("http10").await;
}

#[tokio::test]
async fn a_non_canonical_reason_phrase_reaches_the_client() {
    let (upstream, mut client, _gateway) = scene("").await;
    let got = client.get("reason").await.expect("a response");
    assert_eq!(got.status_line(), "HTTP/1.1 200 Fine");
    assert_eq!(got.body, b"ok");
    assert_hello_world(client.get("length").await);
    assert_eq!(upstream.by_connection(), [1, 1]);
}

#[tokio::test]
async fn an_invalid_chunk_size_aborts_the_clients_response() {
    let (upstream, mut client, _gateway) = scene("").await;
    // Currently no byte reaches the client (the head and the bad chunk arrive together);
    // a head followed by an unfinished body would be an abort as well.
    let got = client.get("bad-chunk").await;
    assert!(got.as_ref().is_none_or(|g| !g.complete), "{got:?}");
    assert!(client.closed().await);
    assert_eq!(upstream.by_connection(), [1]);
}

#[tokio::test]
async fn a_mebibyte_by_content_length_and_chunked_arrives_exactly() {
    let (upstream, mut client, _gateway) = scene("").await;
    let expected = mebibyte();
    let got = client.get("big-length").await.expect("a response");
    assert_eq!(got.fields(), owned(&[("content-length", "1048576")]));
    assert_eq!((got.framing, got.complete), ("length", true));
    assert_eq!(got.body.len(), expected.len());
    assert!(got.body == expected, "the body's bytes differ");
    let got = client.get("big-chunked").await.expect("a response");
    assert_eq!(got.fields(), owned(&[("transfer-encoding", "chunked")]));
    assert_eq!((got.framing, got.complete), ("chunked", true));
    assert_eq!(got.body.len(), expected.len());
    assert!(got.body == expected, "the body's bytes differ");
    assert_hello_world(client.get("length").await);
    assert_eq!(upstream.by_connection(), [1, 1, 1]);
}

/// The head the upstream receives for the writer's `method` on `{CAMPAIGNS}/echo`, sent
/// by the client with `host: gateway.example`: `first` are the fields that follow `Host`,
/// `last` those after the gateway's identity fields (each line ending in CRLF).
fn forwarded_head(upstream: &ScriptedUpstream, method: &str, first: &str, last: &str) -> String {
    format!(
        "{method} {CAMPAIGNS}/echo HTTP/1.1\r\nhost: {}\r\n{first}\
         x-scopegate-token: SGwriter\r\nx-scopegate-account: IRacme\r\n\
         x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\n\
         x-forwarded-host: gateway.example\r\n{last}\r\n",
        upstream.addr
    )
}

/// The upstream's default answer, `ok`.
#[track_caller]
fn assert_ok(got: Option<Got>) {
    let got = got.expect("a response");
    assert_eq!(got.status_line(), "HTTP/1.1 200 OK", "{got:?}");
    assert_eq!(got.body, b"ok");
}

#[tokio::test]
async fn a_content_length_request_body_is_forwarded_with_its_length() {
    let (upstream, mut client, _gateway) = scene("").await;
    let path = format!("{CAMPAIGNS}/echo");
    for _ in 0..2 {
        let post = request(
            &WRITER,
            "POST",
            &path,
            "content-length: 11\r\n",
            b"hello world",
        );
        client.send(&post).await;
        assert_ok(client.response(false).await);
    }
    let seen = upstream.requests(2).await;
    for s in &seen {
        assert_eq!(
            s.head,
            forwarded_head(&upstream, "POST", "content-length: 11\r\n", "")
        );
        assert_eq!(s.raw_body, b"hello world");
    }
    assert_eq!(upstream.by_connection(), [1, 1]);
}

#[tokio::test]
async fn a_chunked_request_body_is_forwarded_chunked_without_extensions_or_trailers() {
    let (upstream, mut client, _gateway) = scene("").await;
    let path = format!("{CAMPAIGNS}/echo");
    let post = request(
        &WRITER,
        "POST",
        &path,
        "content-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n",
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-t: 1\r\n\r\n",
    );
    client.send(&post).await;
    assert_ok(client.response(false).await);
    let seen = upstream.requests(1).await;
    assert_eq!(
        seen[0].head,
        forwarded_head(
            &upstream,
            "POST",
            "content-type: application/octet-stream\r\n",
            "transfer-encoding: chunked\r\n"
        )
    );
    // An octet stream is not read ahead (a form's start would be, as one chunk): the
    // client's chunks are kept as chunks; the extension and the trailer are dropped.
    assert_eq!(
        String::from_utf8_lossy(&seen[0].raw_body),
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    );
    assert_eq!(seen[0].body, b"hello world");
    // The chunked body ended cleanly: the connection is reused.
    client.send(&post).await;
    assert_ok(client.response(false).await);
    assert_eq!(upstream.by_connection(), [1, 1]);
}

#[tokio::test]
async fn an_empty_post_keeps_its_zero_length_and_a_get_gets_no_framing() {
    let (upstream, mut client, _gateway) = scene("").await;
    let path = format!("{CAMPAIGNS}/echo");
    client
        .send(&request(
            &WRITER,
            "POST",
            &path,
            "content-length: 0\r\n",
            b"",
        ))
        .await;
    assert_ok(client.response(false).await);
    client.send(&request(&WRITER, "GET", &path, "", b"")).await;
    assert_ok(client.response(false).await);
    let seen = upstream.requests(2).await;
    assert_eq!(
        seen[0].head,
        forwarded_head(&upstream, "POST", "content-length: 0\r\n", "")
    );
    assert_eq!(seen[1].head, forwarded_head(&upstream, "GET", "", ""));
    assert!(seen.iter().all(|s| s.raw_body.is_empty()));
    assert_eq!(upstream.by_connection(), [1, 1]);
}

#[tokio::test]
async fn expect_continue_is_answered_by_the_gateway_and_forwarded_with_the_body() {
    let (upstream, mut client, _gateway) = scene("").await;
    let path = format!("{CAMPAIGNS}/echo");
    let head = request(
        &WRITER,
        "POST",
        &path,
        "content-length: 11\r\nexpect: 100-continue\r\n",
        b"",
    );
    client.send(&head).await;
    // The gateway says `100 Continue` itself, before the body was sent...
    let interim = client.response(false).await.expect("an interim response");
    assert_eq!(interim.head, "HTTP/1.1 100 Continue\r\n\r\n");
    client.send(b"hello world").await;
    assert_ok(client.response(false).await);
    // ...and the upstream gets the expectation with the body right behind it (it never
    // sent a 100 of its own), its fields in the client's order.
    let seen = upstream.requests(1).await;
    assert_eq!(
        seen[0].head,
        forwarded_head(
            &upstream,
            "POST",
            "content-length: 11\r\nexpect: 100-continue\r\n",
            ""
        )
    );
    assert_eq!(seen[0].raw_body, b"hello world");
    assert_eq!(upstream.by_connection(), [1]);
}

#[tokio::test]
async fn a_chunked_request_body_over_the_limit_is_a_413_and_cut_off_upstream() {
    // An octet stream: streamed, not read ahead for method overrides (a form body over the
    // limit is refused before the upstream: `tests/body_overrides.rs`).
    let (upstream, mut client, _gateway) = scene("limits:\n  max_body_bytes: 16\n").await;
    let path = format!("{CAMPAIGNS}/echo");
    let post = request(
        &WRITER,
        "POST",
        &path,
        "content-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n",
        b"a\r\n0123456789\r\na\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n",
    );
    client.send(&post).await;
    let got = client.response(false).await.expect("a response");
    assert_eq!(got.status_line(), "HTTP/1.1 413 Payload Too Large");
    assert_eq!(
        got.fields(),
        owned(&[
            ("content-type", "application/json"),
            ("connection", "close"),
            ("content-length", "59")
        ])
    );
    assert_eq!(
        got.body,
        br#"{"error":"payload_too_large","message":"Payload Too Large"}"#
    );
    assert!(client.closed().await);
    // The upstream got the head and the first chunk (within the limit), then the
    // connection closed before the body's end: it can never take it for a whole body.
    let seen = upstream.requests(1).await;
    assert_eq!(
        seen[0].head,
        forwarded_head(
            &upstream,
            "POST",
            "content-type: application/octet-stream\r\n",
            "transfer-encoding: chunked\r\n"
        )
    );
    assert_eq!(
        String::from_utf8_lossy(&seen[0].raw_body),
        "A\r\n0123456789\r\n"
    );
    assert!(!seen[0].complete);
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn a_mebibyte_request_body_reaches_the_upstream_exactly() {
    let (upstream, mut client, _gateway) = scene("").await;
    let path = format!("{CAMPAIGNS}/echo");
    let body = mebibyte();
    let by_length = request(&WRITER, "POST", &path, "content-length: 1048576\r\n", &body);
    client.send(&by_length).await;
    assert_ok(client.response(false).await);
    let chunked = request(
        &WRITER,
        "POST",
        &path,
        "transfer-encoding: chunked\r\n",
        &chunked_framing(&body),
    );
    client.send(&chunked).await;
    assert_ok(client.response(false).await);
    let seen = upstream.requests(2).await;
    assert_eq!(
        seen[0].head,
        forwarded_head(&upstream, "POST", "content-length: 1048576\r\n", "")
    );
    assert_eq!(seen[0].raw_body.len(), body.len());
    assert!(seen[0].raw_body == body, "the body's bytes differ");
    // How the chunks are cut depends on how the client's bytes arrived: only the content
    // is pinned.
    assert_eq!(
        seen[1].head,
        forwarded_head(&upstream, "POST", "", "transfer-encoding: chunked\r\n")
    );
    assert!(seen[1].complete);
    assert_eq!(seen[1].body.len(), body.len());
    assert!(seen[1].body == body, "the body's bytes differ");
    assert_eq!(upstream.by_connection(), [1, 1]);
}

/// A request body of `len` bytes of a pattern that shows any lost or reordered stretch.
fn patterned(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8).collect()
}

/// Opens a client connection to `gateway` and posts `body` to `{CAMPAIGNS}/{segment}` as
/// the writer, from a task of its own, in 64 KiB pieces: the response can be read (from
/// the connection returned) while the body is still going out. Writes the gateway stops
/// taking are given up. The task gives the write half back open: closing it would end the
/// client connection for the gateway.
async fn post_in_background(
    gateway: SocketAddr,
    segment: &str,
    body: Vec<u8>,
) -> (Conn<OwnedReadHalf>, tokio::task::JoinHandle<OwnedWriteHalf>) {
    let head = request(
        &WRITER,
        "POST",
        &format!("{CAMPAIGNS}/{segment}"),
        &format!("content-length: {}\r\n", body.len()),
        b"",
    );
    let (from_gateway, mut to_gateway) = TcpStream::connect(gateway).await.unwrap().into_split();
    let writer = tokio::spawn(async move {
        if to_gateway.write_all(&head).await.is_err() {
            return to_gateway;
        }
        for piece in body.chunks(64 * 1024) {
            if to_gateway.write_all(piece).await.is_err() {
                break;
            }
        }
        to_gateway
    });
    (Conn::new(from_gateway, Some(PATIENCE)), writer)
}

#[tokio::test]
async fn an_upstream_refusing_a_large_body_early_is_heard_not_turned_into_a_502() {
    let (upstream, _client, gateway) = scene("").await;
    // 64 MiB, far more than the socket buffers hold: the upstream reads none of it, answers
    // 413 and closes, so the gateway's writes fail while the answer waits to be read.
    let (mut conn, writer) =
        post_in_background(gateway.0.addr, "early-413", patterned(64 << 20)).await;
    let head = conn.head().await.expect("a response head");
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(
        head.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{head}"
    );
    assert_eq!(values(&fields(head.as_bytes()), "content-length"), ["8"]);
    assert_eq!(conn.take(8).await, b"too big!");
    let seen = upstream.requests(1).await;
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].complete);
    drop(writer);
}

#[tokio::test]
async fn an_upstream_streaming_its_answer_as_it_reads_is_not_deadlocked() {
    let (upstream, _client, gateway) = scene("").await;
    // 32 MiB each way, more than both directions' socket buffers: a gateway that sent the
    // whole request before reading the answer would wait on the upstream, which waits on it.
    let body = patterned(32 << 20);
    let (mut conn, writer) = post_in_background(gateway.0.addr, "duplex", body.clone()).await;
    let head = conn.head().await.expect("a response head");
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let echoed = conn.chunked().await;
    assert!(
        echoed.complete,
        "the echo ended early: {} of {} bytes, then {:?}",
        echoed.body.len(),
        body.len(),
        String::from_utf8_lossy(&echoed.raw[echoed.raw.len().saturating_sub(60)..])
    );
    assert_eq!(echoed.body.len(), body.len());
    assert!(echoed.body == body, "the echoed bytes differ");
    let mut to_gateway = writer.await.unwrap();
    let seen = upstream.requests(1).await;
    assert!(seen[0].complete);
    // Answered before the request was all sent: that upstream connection is not used
    // again, and the next request on the same client connection opens another.
    let next = request(&READER, "GET", &format!("{CAMPAIGNS}/length"), "", b"");
    to_gateway.write_all(&next).await.unwrap();
    let head = conn.head().await.expect("a response head");
    assert!(head.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(conn.take(11).await, b"hello world");
    assert_eq!(upstream.by_connection(), [1, 2]);
}

#[tokio::test]
async fn a_response_body_that_stalls_is_cut_off_after_the_response_timeout() {
    // 1 s: the stalled body must end between one and two of them after its last byte.
    let (_upstream, mut client, _gateway) = scene("timeouts:\n  upstream_response: 1s\n").await;
    let got = client.get("stall").await.expect("a response head");
    assert_eq!(got.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(got.body, b"hello");
    assert!(!got.complete, "a cut-off body never looks whole");
    assert!(client.closed().await);
}

#[tokio::test]
async fn a_response_body_that_keeps_coming_slowly_is_not_cut_off() {
    // A byte every 100 ms for 1.2 s, under a 1 s stall limit: never a second without
    // progress, though the whole body takes longer than the limit (a deadline from the
    // first wait would cut it off).
    let (_upstream, mut client, _gateway) = scene("timeouts:\n  upstream_response: 1s\n").await;
    let got = client.get("trickle").await.expect("a response head");
    assert_eq!(got.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(got.body, b"slow but sur");
    assert!(got.complete);
}
