//! TLS, HTTP/2 and upgrades: certificates made in the test with rcgen; HTTPS over HTTP/1.1
//! and HTTP/2 through the gateway with the same decisions as cleartext; an https upstream
//! with a private CA; certificate rotation; a WebSocket-style upgrade; curl against the
//! built binary.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls_pki_types::CertificateDer;
use support::process::Proc;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A leaf for localhost/127.0.0.1; returns (cert PEM, key PEM, cert DER).
    fn leaf(&self, cn: &str) -> (String, String, Vec<u8>) {
        let mut params =
            CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }
}

fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// A TLS connection to the gateway; returns the stream and the server's leaf certificate.
async fn tls_connect(
    addr: SocketAddr,
    ca_pem: &str,
    alpn: &[u8],
) -> (tokio_rustls::client::TlsStream<TcpStream>, Vec<u8>) {
    let mut cfg = (*client_config(ca_pem)).clone();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (stream, leaf)
}

type H1Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn h1_over(stream: tokio_rustls::client::TlsStream<TcpStream>) -> H1Sender {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn h1_send(sender: &mut H1Sender, method: &str, path: &str, auth: &Fixture) -> u16 {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("authorization", basic(auth))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

async fn tls_harness(ca: &Ca) -> (Harness, String) {
    let (cert, key, _) = ca.leaf("gateway-1");
    let upstream = Upstream::start().await;
    let dir = TempDir::new();
    dir.write("cert.pem", &cert);
    dir.write("key.pem", &key);
    let cfg = dir.write(
        "scopegate.yaml",
        &gateway_yaml(upstream.addr, "tls:\n  cert: cert.pem\n  key: key.pem\n"),
    );
    dir.write("tokens.yaml", &tokens_yaml());
    let gateway = start_gateway(&cfg).await;
    (
        Harness {
            upstream,
            gateway,
            dir,
            config_path: cfg,
        },
        ca.pem(),
    )
}

#[tokio::test]
async fn https_http1_and_http2_make_the_same_decisions() {
    let ca = Ca::new("test CA");
    let (h, ca_pem) = tls_harness(&ca).await;

    let (stream, _) = tls_connect(h.addr(), &ca_pem, b"http/1.1").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut h1 = h1_over(stream).await;
    assert_eq!(h1_send(&mut h1, "GET", CAMPAIGNS, &READER).await, 200);
    assert_eq!(h1_send(&mut h1, "POST", CAMPAIGNS, &READER).await, 403);
    assert_eq!(
        h.upstream.last().unwrap().headers["x-forwarded-proto"],
        "https"
    );

    let (stream, _) = tls_connect(h.addr(), &ca_pem, b"h2").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for (method, who, want) in [
        ("GET", &READER, 200u16),
        ("POST", &READER, 403),
        ("GET", &WRITER, 200),
    ] {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("https://localhost{CAMPAIGNS}"))
            .header("authorization", basic(who))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = h2.send_request(req).await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{method} over h2");
        assert_eq!(resp.version(), http::Version::HTTP_2);
    }
    assert_eq!(h.upstream.count(), 3, "two allowed over h2, one over h1");
}

#[tokio::test]
async fn certificate_rotation_keeps_open_connections() {
    let ca = Ca::new("test CA");
    let (h, ca_pem) = tls_harness(&ca).await;
    let (stream, first_leaf) = tls_connect(h.addr(), &ca_pem, b"http/1.1").await;
    let mut open = h1_over(stream).await;
    assert_eq!(h1_send(&mut open, "GET", CAMPAIGNS, &READER).await, 200);

    let (cert2, key2, der2) = ca.leaf("gateway-2");
    h.dir.write("cert.pem", &cert2);
    h.dir.write("key.pem", &key2);
    scopegate::gateway::reload::reload_from(&h.gateway.shared, &h.config_path)
        .await
        .unwrap();

    let (_, new_leaf) = tls_connect(h.addr(), &ca_pem, b"http/1.1").await;
    assert_eq!(new_leaf, der2, "new handshakes get the new certificate");
    assert_ne!(new_leaf, first_leaf);
    assert_eq!(
        h1_send(&mut open, "GET", CAMPAIGNS, &READER).await,
        200,
        "the open connection keeps working"
    );

    // A broken replacement keeps the current certificate.
    h.dir.write("cert.pem", "not a certificate");
    let _ = scopegate::gateway::reload::reload_from(&h.gateway.shared, &h.config_path).await;
    let (_, still) = tls_connect(h.addr(), &ca_pem, b"http/1.1").await;
    assert_eq!(still, der2);
}

/// An https upstream with a certificate from a private CA.
async fn tls_upstream(ca: &Ca) -> SocketAddr {
    use rustls_pki_types::pem::PemObject;
    let (cert, key, _) = ca.leaf("upstream");
    let certs: Vec<_> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"tls upstream"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_upstream_with_private_ca() {
    let ca = Ca::new("upstream CA");
    let up = tls_upstream(&ca).await;
    let dir = TempDir::new();
    dir.write("ca.pem", &ca.pem());
    dir.write("tokens.yaml", &tokens_yaml());
    let with_ca = gateway_yaml(up, "").replace(
        &format!("url: http://{up}"),
        &format!(
            "url: https://localhost:{}\n    tls: {{ca: ca.pem}}",
            up.port()
        ),
    );
    let cfg = dir.write("scopegate.yaml", &with_ca);
    let gw = start_gateway(&cfg).await;
    let reply = get(&format!("http://{}{CAMPAIGNS}", gw.addr), Some(&READER)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "tls upstream");

    let without = gateway_yaml(up, "").replace(
        &format!("url: http://{up}"),
        &format!("url: https://localhost:{}", up.port()),
    );
    let dir2 = TempDir::new();
    dir2.write("tokens.yaml", &tokens_yaml());
    let cfg2 = dir2.write("scopegate.yaml", &without);
    let gw2 = start_gateway(&cfg2).await;
    let reply = get(&format!("http://{}{CAMPAIGNS}", gw2.addr), Some(&READER)).await;
    assert_eq!(
        reply.status, 502,
        "an untrusted upstream certificate is a bad gateway"
    );
}

/// An upstream that accepts an HTTP/1.1 upgrade and then echoes bytes.
async fn upgrade_upstream() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                if read_head(&mut s).await.is_none() {
                    return;
                }
                s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
                    .await
                    .unwrap();
                let mut buf = [0u8; 1024];
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn websocket_upgrade_passes_for_allowed_tokens_only() {
    let (up, seen) = upgrade_upstream().await;
    let (gw, _dir) = gateway_for(up, "").await;

    let upgrade = |who: &Fixture| {
        format!(
            "GET {CAMPAIGNS}/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: {}\r\n\r\n",
            basic(who)
        )
    };
    // No scope on this path for the other account's token: refused, nothing reaches the upstream.
    let refused = raw(gw.addr, upgrade(&OTHER).as_bytes()).await;
    assert_eq!(refused.status, 403);
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 0);

    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(upgrade(&READER).as_bytes()).await.unwrap();
    let head = read_head(&mut s).await.expect("a response head");
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    for msg in [&b"hello"[..], b"scoped frames"] {
        s.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, msg);
    }
}

/// curl is a real client users have: HTTP/1.1 and HTTP/2 against the built binary.
#[tokio::test]
async fn curl_http1_and_http2_against_the_binary() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "curl is required on CI"
        );
        eprintln!("skipping: curl not installed");
        return;
    }
    let ca = Ca::new("curl CA");
    let (cert, key, _) = ca.leaf("gateway");
    let upstream = Upstream::start().await;
    let dir = TempDir::new();
    dir.write("cert.pem", &cert);
    dir.write("key.pem", &key);
    let ca_path = dir.write("ca.pem", &ca.pem());
    dir.write("tokens.yaml", &tokens_yaml());
    let port = free_port();
    let admin = free_port();
    let yaml = with_ports(
        &gateway_yaml(upstream.addr, "tls:\n  cert: cert.pem\n  key: key.pem\n"),
        port,
        admin,
    );
    let cfg = dir.write("scopegate.yaml", &yaml);
    let cfg = cfg.to_str().expect("a UTF-8 test path");
    let mut p = Proc::start(&["serve", "--config", cfg], &[]);
    p.wait_ready(&format!("127.0.0.1:{admin}")).await;
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        for (method, want) in [("GET", "200"), ("POST", "403")] {
            let out = tokio::process::Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code} %{http_version}",
                    flag,
                    "--cacert",
                ])
                .arg(&ca_path)
                .args([
                    "-X",
                    method,
                    "-u",
                    &format!("{}:{}", READER.sid, READER.secret),
                ])
                .arg(format!("https://localhost:{port}{CAMPAIGNS}"))
                .output()
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            assert_eq!(text, format!("{want} {version}"), "curl {flag} -X {method}");
        }
    }
    assert_eq!(upstream.count(), 2);
    drop(p);
}
