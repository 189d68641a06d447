//! A real Prometheus for tests: finding the binaries, starting a server on a free port
//! that scrapes given targets every second, querying its HTTP API and polling it until
//! an answer is there (never sleeping a fixed time).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::process::{find_tool, ChildGuard};
use super::{free_port, TempDir};

/// Percent-encodes a query parameter value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET with a real HTTP client; errors (connection refused while starting) are returned.
pub async fn http_get(url: &str) -> Result<(StatusCode, String), String> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let resp = tokio::time::timeout(Duration::from_secs(5), client.get(uri))
        .await
        .map_err(|_| format!("{url}: timed out"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Runs an instant query; the result vector of a successful answer.
pub async fn prom_query(base: &str, query: &str) -> Result<Vec<serde_json::Value>, String> {
    let url = format!("{base}/api/v1/query?query={}", urlencode(query));
    let (status, body) = http_get(&url).await?;
    if status != StatusCode::OK {
        return Err(format!("{query}: HTTP {status}: {body}"));
    }
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("{query}: {e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("{query}: {body}"));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// Polls `probe` until it returns `Some`, or fails after `deadline` with `what` and the
/// last error (plus Prometheus' log).
pub async fn poll<T, F, Fut>(what: &str, deadline: Duration, log: &Path, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, String>>,
{
    let start = Instant::now();
    let mut last: String;
    loop {
        match probe().await {
            Ok(Some(v)) => return v,
            Ok(None) => last = "not there yet".into(),
            Err(e) => last = e,
        }
        if start.elapsed() > deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "{what}: not within {deadline:?} (last: {last})\nprometheus log (last lines, newest first):\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The `prometheus` and `promtool` binaries, or the reason to skip (outside CI) or fail
/// (on CI, `CI=true`).
pub fn prometheus_tools() -> Option<(PathBuf, PathBuf)> {
    let prometheus = find_tool("prometheus", "PROMETHEUS_BIN");
    let promtool = find_tool("promtool", "PROMTOOL_BIN");
    match (prometheus, promtool) {
        (Some(p), Some(t)) => Some((p, t)),
        (p, t) => {
            let missing: Vec<&str> = [("prometheus", p.is_none()), ("promtool", t.is_none())]
                .into_iter()
                .filter_map(|(n, m)| m.then_some(n))
                .collect();
            let msg = format!(
                "{} not found on PATH: install the Debian package `prometheus` \
                 (`bash .ci/install-test-deps.sh`), or set PROMETHEUS_BIN/PROMTOOL_BIN",
                missing.join(" and ")
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true: {msg}");
            }
            eprintln!("SKIPPED real-Prometheus test: {msg}");
            None
        }
    }
}

/// Pipes an exposition into `promtool check metrics` (parse errors and lint problems).
pub async fn promtool_check_metrics(promtool: &Path, text: &str) -> std::process::Output {
    let promtool = promtool.to_owned();
    let text = text.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run promtool");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(text.as_bytes()).unwrap();
        }
        child.wait_with_output().expect("promtool output")
    })
    .await
    .unwrap()
}

/// A Prometheus server scraping `targets` (admin listeners) every second, stopped on drop.
pub struct PrometheusServer {
    pub base: String,
    pub log_path: PathBuf,
    child: ChildGuard,
    _dir: TempDir,
}

impl PrometheusServer {
    /// Starts Prometheus (with `rules` as its rule file, when given) and waits until its
    /// HTTP API answers.
    pub async fn start(prometheus: &Path, targets: &[SocketAddr], rules: Option<&Path>) -> Self {
        let dir = TempDir::new();
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let rules = rules
            .map(|r| format!("rule_files:\n  - {:?}\n", r.display().to_string()))
            .unwrap_or_default();
        let config = dir.write(
            "prometheus.yml",
            &format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 {rules}\
                 scrape_configs:\n  - job_name: scopegate\n    metrics_path: /metrics\n    \
                 static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        );
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let log_path = dir.path("prometheus.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let mut server = PrometheusServer {
            base,
            log_path,
            child: ChildGuard(child),
            _dir: dir,
        };
        let url = format!("{}/-/ready", server.base);
        let log_path = server.log_path.clone();
        let child = &mut server.child;
        poll(
            "prometheus ready",
            Duration::from_secs(30),
            &log_path,
            || {
                let exited = child.0.try_wait().ok().flatten();
                let url = url.clone();
                async move {
                    if let Some(status) = exited {
                        return Err(format!("prometheus exited: {status}"));
                    }
                    let (status, _) = http_get(&url).await?;
                    Ok((status == StatusCode::OK).then_some(()))
                }
            },
        )
        .await;
        server
    }

    /// Polls until every target has been scraped at least `after` (Unix seconds, a
    /// scrape that started after the caller's traffic), within 30 s.
    pub async fn wait_scraped_after(&self, targets: usize, after: f64) {
        let base = self.base.clone();
        poll(
            "a scrape of every replica after the traffic",
            Duration::from_secs(30),
            &self.log_path,
            || {
                let base = base.clone();
                async move {
                    let r = prom_query(&base, "timestamp(up{job=\"scopegate\"} == 1)").await?;
                    let fresh = r
                        .iter()
                        .filter(|s| {
                            s["value"][1]
                                .as_str()
                                .and_then(|v| v.parse::<f64>().ok())
                                .is_some_and(|t| t > after)
                        })
                        .count();
                    Ok((fresh >= targets).then_some(()))
                }
            },
        )
        .await;
    }
}
