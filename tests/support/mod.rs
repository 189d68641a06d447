//! Test harness: a recording upstream on port 0 (`upstream`), the real gateway on port 0
//! in-process, and clients that talk to it over TCP (`client`); the shared fixtures
//! (`fixtures`), one parser of the metrics text (`exposition`), the built binary run once
//! (`cli`) or kept running (`process`), and real Redis and Prometheus servers.

#![allow(dead_code)]

pub mod cli;
mod client;
pub mod exposition;
mod fixtures;
pub mod process;
pub mod prom;
pub mod redis_server;
mod upstream;

pub use client::*;
pub use fixtures::*;
pub use upstream::*;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

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

/// Reads the admin `/metrics` text.
pub async fn metrics(h: &Harness) -> String {
    metrics_at(h.gateway.admin_addr).await
}

/// Reads the `/metrics` text of an admin listener.
pub async fn metrics_at(admin: SocketAddr) -> String {
    get(&format!("http://{admin}/metrics"), None).await.text()
}

/// The `scopes:` line of the writer token (`name: writer`) in a tokens file's text, trimmed:
/// what the scope-list rewrites are checked against, through the CLI and the admin API.
#[track_caller]
pub fn writer_scopes_line(tokens_text: &str) -> String {
    let writer = &tokens_text[tokens_text.find("name: writer").unwrap()..];
    let line = writer
        .lines()
        .find(|l| l.trim_start().starts_with("scopes:"))
        .unwrap_or_else(|| panic!("no scopes line:\n{tokens_text}"));
    line.trim().to_owned()
}

/// An address where a connection is refused for as long as this value lives: a socket
/// bound to a port but never listening. Unlike a port that was free a moment ago, no other
/// test running in parallel can start a server on it meanwhile.
pub struct RefusingAddr {
    _bound: tokio::net::TcpSocket,
    pub addr: std::net::SocketAddr,
}

impl RefusingAddr {
    pub fn new() -> RefusingAddr {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        RefusingAddr {
            _bound: socket,
            addr,
        }
    }
}

/// A port that was free a moment ago (the built binary needs fixed ports in its config).
///
/// Taken from below the kernel's ephemeral range, from which every `bind(0)` and every
/// outgoing connection draws its port: a port from there, freed for the child to bind,
/// could meanwhile go to another test's listener or client (seen in CI as "address already
/// in use"). Below the range only this function hands ports out, each once per test
/// binary, starting at an offset from the process id so that binaries differ.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let low = ephemeral_low.saturating_sub(12_000).max(1024);
    let span = ephemeral_low - low;
    let offset = std::process::id() * 127;
    for _ in 0..span {
        let port = low + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        if let Ok(port) = u16::try_from(port) {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    panic!("no free port below the ephemeral range ({low}-{ephemeral_low})")
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
