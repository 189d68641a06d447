//! Processes a test runs besides the gateway in-process. The built binary as a
//! long-running process (`serve`, `demo`): its output in files, waits on what it prints,
//! on `/readyz` and on a reload generation (never a fixed sleep), signals, and a stop on
//! drop that still lets it clean up. Other programs: found on PATH, killed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{cli, TempDir};

/// How long a process may take to print, become ready, reload or exit.
pub const WAIT: Duration = Duration::from_secs(60);

/// A `scopegate` process with its stdout and stderr in files.
pub struct Proc {
    pub child: Child,
    out: PathBuf,
    err: PathBuf,
    _dir: TempDir,
}

impl Proc {
    /// Starts `scopegate <args...>` with `RUST_LOG=info`, `NO_COLOR` unset and `env`.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let dir = TempDir::new();
        let out = dir.path("stdout.txt");
        let err = dir.path("stderr.txt");
        let mut cmd = cli::bin();
        cmd.args(args)
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Proc {
            child: cmd.spawn().unwrap(),
            out,
            err,
            _dir: dir,
        }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Fails the test, with the process' output, if it has exited.
    fn assert_running(&mut self, waiting_for: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "exited ({status}) before {waiting_for}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
        }
    }

    /// Waits until `what` shows in stdout (or stderr with `in_stderr`), failing if the
    /// process exits first.
    pub async fn wait_for(&mut self, what: &str, in_stderr: bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = if in_stderr {
                self.stderr()
            } else {
                self.stdout()
            };
            if text.contains(what) {
                return text;
            }
            self.assert_running(&format!("printing {what:?}"));
            assert!(Instant::now() < deadline, "no {what:?}: {}", self.stderr());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the admin listener at `admin` answers `/readyz` with 200, failing if
    /// the process exits first.
    pub async fn wait_ready(&mut self, admin: &str) {
        let deadline = Instant::now() + WAIT;
        while !super::is_ready(admin).await {
            self.assert_running("being ready");
            assert!(Instant::now() < deadline, "not ready: {}", self.stderr());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    /// Waits for the process to exit.
    pub async fn exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "did not exit: {}", self.stderr());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    /// A failed test stops the process with SIGTERM first, so that a demo still removes
    /// its temporary folder; SIGKILL after 5 s.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls the admin `/generation` at `admin` (host:port) until it reaches `n` or passes
/// it; returns the generation seen. A listener not answering yet is polled again.
pub async fn wait_generation(admin: &str, n: u64) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let url = format!("http://{admin}/generation");
        if let Some(r) = super::try_send("GET", &url, &[]).await {
            if r.status == 200 {
                let v: serde_json::Value =
                    serde_json::from_slice(&r.body).expect("JSON generation");
                let g = v["generation"].as_u64().expect("a number");
                if g >= n {
                    return g;
                }
            }
        }
        assert!(Instant::now() < deadline, "generation {n} not reached");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A child process killed (and reaped) on drop.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Finds an executable on PATH (or `$ENV` when set).
pub fn find_tool(name: &str, env: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

pub fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// `serve` with its own config and fixed ports; `listen` in the config is overridden.
pub fn start_serve(
    upstream: SocketAddr,
    extra: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Proc, String, String, TempDir) {
    let dir = TempDir::new();
    let config = dir.write("scopegate.yaml", &super::gateway_yaml(upstream, extra));
    dir.write("tokens.yaml", &super::tokens_yaml());
    let (p, listen, admin) = serve_config(&config, args, env);
    (p, listen, admin, dir)
}

/// `serve --config <config>` on free ports given with `--listen`/`--admin-listen` (the
/// config's own addresses are not used), then `args`; returns both addresses.
pub fn serve_config(config: &Path, args: &[&str], env: &[(&str, &str)]) -> (Proc, String, String) {
    let listen = format!("127.0.0.1:{}", super::free_port());
    let admin = format!("127.0.0.1:{}", super::free_port());
    let config_s = config.display().to_string();
    let mut all = vec![
        "serve",
        "--config",
        &config_s,
        "--listen",
        &listen,
        "--admin-listen",
        &admin,
    ];
    all.extend_from_slice(args);
    (Proc::start(&all, env), listen, admin)
}
