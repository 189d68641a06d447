//! Reading the fleet's usage from Prometheus (`scopegate audit --prometheus URL`).
//!
//! Every replica exports, per token and scope (catalog API and method):
//!
//! - `scopegate_scope_last_used_timestamp_seconds{token,api,method}`: the Unix second of
//!   the last allowed request (a gauge, set at most once per second per scope);
//! - `scopegate_requests_total{...,decision="allowed"}`: the requests (a counter).
//!
//! The audit asks Prometheus, at the audit's instant and over its window (`--stale-after`):
//!
//! - last use: `max by (token,api,method) (max_over_time(<gauge>[W]))`, the latest use on
//!   any replica. Exact to the second, for every use that a scrape saw: a replica that dies
//!   between a use and its next scrape loses that use (at most one scrape interval).
//!   Unlike `increase()` on the counter, a gauge also sees a scope used exactly once on a
//!   replica (a counter series born at 1 has no increase in Prometheus' eyes);
//! - counts: `sum by (token,api,method) (max_over_time(<counter>[W]))`, each replica's
//!   requests since it started, summed (a replica restarted in the window contributes its
//!   larger run). Counts only size the legacy-token findings;
//! - coverage: the earliest sample of `scopegate_build_info` in the window (to the
//!   query's step, W/1000), so a fleet scraped for less than the window is not called idle.
//!
//! Bounded: each query has a 30 s deadline and an answer larger than 64 MiB is refused.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::gateway::usage::{ScopeRecord, TokenRecord, UsageState, STATE_VERSION};

const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_ANSWER: usize = 64 << 20;

/// The PromQL of the last use per token and scope over `window` seconds.
pub fn last_used_query(window_secs: u64) -> String {
    format!(
        "max by (token, api, method) \
         (max_over_time(scopegate_scope_last_used_timestamp_seconds[{window_secs}s]))"
    )
}

/// The PromQL of the allowed requests per token and scope.
pub fn count_query(window_secs: u64) -> String {
    format!(
        "sum by (token, api, method) \
         (max_over_time(scopegate_requests_total{{decision=\"allowed\"}}[{window_secs}s]))"
    )
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    /// An instant query's `[time, "value"]`.
    #[serde(default)]
    value: Option<(f64, String)>,
    /// A range query's samples.
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// A Prometheus HTTP API endpoint.
pub struct Prometheus {
    base: String,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl Prometheus {
    /// `base` is the server's URL, e.g. `http://prometheus:9090` (a path prefix is kept).
    pub fn new(base: &str) -> Result<Prometheus, String> {
        let uri: http::Uri = base
            .parse()
            .map_err(|e| format!("--prometheus {base}: {e}"))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => {
                return Err(format!(
                    "--prometheus {base}: use an http:// or https:// URL"
                ))
            }
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(
                "--prometheus: credentials in the URL are not supported (put a proxy in front)"
                    .into(),
            );
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.enforce_http(false);
        let tls = crate::gateway::tls::client_config(&crate::gateway::tls::UpstreamTls::default())
            .map_err(|e| e.to_string())?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Ok(Prometheus {
            base: base.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    async fn get(&self, path_and_query: &str) -> Result<Vec<Series>, String> {
        let url = format!("{}{path_and_query}", self.base);
        let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let call = async {
            let resp = self
                .client
                .get(uri)
                .await
                .map_err(|e| format!("{}: {e}", self.base))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| format!("{}: reading the answer: {e}", self.base))?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        let (status, body) = tokio::time::timeout(QUERY_TIMEOUT, call)
            .await
            .map_err(|_| format!("{}: no answer within {QUERY_TIMEOUT:?}", self.base))??;
        let answer: Answer = serde_json::from_slice(&body).map_err(|e| {
            format!(
                "{}: HTTP {status}, not a Prometheus API answer: {e}",
                self.base
            )
        })?;
        if answer.status != "success" {
            return Err(format!(
                "{}: query failed: {}",
                self.base,
                answer.error.unwrap_or_else(|| format!("HTTP {status}"))
            ));
        }
        Ok(answer.data.map(|d| d.result).unwrap_or_default())
    }

    /// An instant query at `time` (Unix seconds), or at Prometheus' own now.
    async fn query(&self, promql: &str, time: Option<i64>) -> Result<Vec<Series>, String> {
        let at = time.map(|t| format!("&time={t}")).unwrap_or_default();
        self.get(&format!("/api/v1/query?query={}{at}", urlencode(promql)))
            .await
    }

    /// The fleet's usage over the `window_secs` before `at` (Unix seconds; `None`: now on
    /// Prometheus' clock, which also sees a scrape made a fraction of a second ago), as a
    /// usage record, and since when Prometheus has data of the fleet (in the window).
    pub async fn usage(
        &self,
        at: Option<i64>,
        window_secs: u64,
    ) -> Result<(UsageState, i64), String> {
        let window_secs = window_secs.max(1);
        let now_unix = at.unwrap_or_else(crate::gateway::clock::unix_now);
        let mut scopes: BTreeMap<(String, String, String), ScopeRecord> = BTreeMap::new();
        let key = |s: &Series| {
            let label = |n: &str| s.metric.get(n).cloned().unwrap_or_default();
            (label("token"), label("api"), label("method"))
        };
        let value = |s: &Series| -> Option<f64> {
            s.value.as_ref().and_then(|(_, v)| v.parse::<f64>().ok())
        };
        for s in self.query(&last_used_query(window_secs), at).await? {
            let k = key(&s);
            let Some(v) = value(&s).filter(|v| v.is_finite() && *v > 0.0) else {
                continue;
            };
            scopes.insert(
                k.clone(),
                ScopeRecord {
                    api: k.1,
                    method: k.2,
                    count: 0,
                    last_used: v as i64,
                },
            );
        }
        for s in self.query(&count_query(window_secs), at).await? {
            if let (Some(rec), Some(v)) = (scopes.get_mut(&key(&s)), value(&s)) {
                rec.count = if v.is_finite() && v > 0.0 {
                    v as u64
                } else {
                    0
                };
            }
        }
        let since = self.coverage_start(now_unix, window_secs).await?;
        let mut tokens: BTreeMap<String, TokenRecord> = BTreeMap::new();
        for ((sid, _, _), rec) in scopes {
            if sid.is_empty() {
                continue;
            }
            tokens
                .entry(sid)
                .or_insert_with(|| TokenRecord {
                    since,
                    scopes: Vec::new(),
                })
                .scopes
                .push(rec);
        }
        Ok((
            UsageState {
                version: STATE_VERSION,
                saved_at: now_unix,
                tokens,
            },
            since,
        ))
    }

    /// The first instant in the window at which any replica had been scraped (to the
    /// step); the end of the window when none was.
    async fn coverage_start(&self, now_unix: i64, window_secs: u64) -> Result<i64, String> {
        let step = (window_secs / 1000).max(1);
        let start = now_unix - i64::try_from(window_secs).unwrap_or(i64::MAX / 2);
        let series = self
            .get(&format!(
                "/api/v1/query_range?query={}&start={start}&end={now_unix}&step={step}",
                urlencode("count(scopegate_build_info)")
            ))
            .await?;
        Ok(series
            .iter()
            .filter_map(|s| s.values.first().map(|(t, _)| *t as i64))
            .min()
            .map_or(now_unix, |t| {
                t.saturating_sub(i64::try_from(step).unwrap_or(0))
            }))
    }
}

/// Percent-encodes a query parameter (everything but RFC 3986 unreserved characters).
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// [`Prometheus::usage`] for a synchronous caller (the CLI).
pub fn usage_blocking(
    base: &str,
    at: Option<i64>,
    window_secs: u64,
) -> Result<(UsageState, i64), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async { Prometheus::new(base)?.usage(at, window_secs).await })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_encoded() {
        assert_eq!(urlencode("a b{c=\"d\"}"), "a%20b%7Bc%3D%22d%22%7D");
        assert!(last_used_query(60).contains("[60s]"));
        assert!(count_query(60).contains("decision=\"allowed\""));
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(Prometheus::new("ftp://x").is_err());
        assert!(Prometheus::new("http://u:p@x:9090").is_err());
        assert!(Prometheus::new("not a url").is_err());
    }

    #[test]
    fn answers_parse() {
        let a: Answer = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"token":"SGa","api":"c","method":"GET"},"value":[1.5,"1700000000"]}]}}"#,
        )
        .unwrap();
        let r = a.data.unwrap().result;
        assert_eq!(r[0].value.as_ref().unwrap().1, "1700000000");
    }
}
