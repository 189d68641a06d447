//! A real `redis-server` for tests (Debian package `redis-server`; `.ci/install-redis.sh`
//! installs it): started on a free port, killed (SIGKILL) and restarted on demand.
//! Without it a test says why and passes, except under `CI=true`, where it fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, TempDir};

/// A `redis-server` child process on a fixed port, killed on drop.
pub struct RedisServer {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

pub fn redis_installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts Redis, or says why the test is skipped (outside CI) and returns `None`.
pub async fn redis_or_skip(test: &str) -> Option<RedisServer> {
    if !redis_installed() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: `redis-server` is not installed, and CI=true requires these tests to run: \
             install it with `bash .ci/install-redis.sh` (Debian package redis-server)"
        );
        eprintln!(
            "SKIPPED {test}: `redis-server` is not installed \
             (`bash .ci/install-redis.sh` or `apt-get install redis-server`)"
        );
        return None;
    }
    Some(RedisServer::start().await)
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        // The port is free when picked; another process may take it before Redis binds,
        // so a server that exits at once is retried on a new port.
        let mut log = String::new();
        for _ in 0..5 {
            let mut server = RedisServer {
                port: free_port(),
                dir: TempDir::new(),
                child: None,
            };
            if server.spawn_and_wait().await {
                return server;
            }
            log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
        }
        panic!("redis-server exited at start five times; its last log:\n{log}");
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path("redis.log")
    }

    /// Spawns the server and polls PING until it answers (true), or until the process
    /// exits or a deadline passes (false).
    pub async fn spawn_and_wait(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir.0)
            .arg("--logfile")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if child.try_wait().ok().flatten().is_some() {
                    self.child = None;
                    return false;
                }
            }
            if self.ping().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "redis-server on port {} did not answer PING within 10 s; its log:\n{}",
            self.port,
            std::fs::read_to_string(self.log_path()).unwrap_or_default()
        );
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn connection(&self) -> Option<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url()).ok()?;
        tokio::time::timeout(
            Duration::from_millis(500),
            client.get_multiplexed_async_connection(),
        )
        .await
        .ok()?
        .ok()
    }

    pub async fn ping(&self) -> bool {
        let Some(mut conn) = self.connection().await else {
            return false;
        };
        let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        pong.is_ok_and(|p| p == "PONG")
    }

    /// A token's bucket key and its remaining time to live (ms), if the key exists.
    pub async fn bucket_ttl_ms(&self, sid: &str) -> Option<i64> {
        let mut conn = self.connection().await.expect("Redis is up");
        let ttl: i64 = redis::cmd("PTTL")
            .arg(format!("scopegate:rl:{sid}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        (ttl >= 0).then_some(ttl)
    }

    /// Kills the server (SIGKILL: no goodbye to the clients) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a fresh server (empty: nothing is saved) on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn_and_wait().await,
            "redis-server did not restart on port {}; its log:\n{}",
            self.port,
            std::fs::read_to_string(self.log_path()).unwrap_or_default()
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
