//! Prometheus metrics: one registry built at start-up and passed down, never the global one.
//!
//! Label values only ever come from configuration (SID, account, catalog API name) or from
//! small fixed sets (`unknown`, `none`, `other`, decisions, status classes): nothing a client
//! sends can create a series.
//!
//! Hot path: every per-request handle (request counter, upstream-response counter, latency
//! histogram, last-use gauge) is resolved once and cached on the token's [`TokenSeries`],
//! which lives in the token's runtime state. Reading the cache is lock-free (an `ArcSwap`
//! snapshot and a short scan of the few combinations one token uses); prometheus' label
//! hashing and its `RwLock` are only paid the first time a combination is seen.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub use crate::domain::labels::{DecisionLabel, NO_API, UNKNOWN};
use crate::domain::model::TokenStatus;
/// Buckets of `scopegate_request_duration_seconds`.
const DURATION_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The status class of an upstream response, the `code` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    Informational,
    Success,
    Redirection,
    ClientError,
    ServerError,
}

impl StatusClass {
    pub fn of(status: http::StatusCode) -> StatusClass {
        match status.as_u16() {
            100..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
        }
    }
}

/// Start-up choices that change label sets (fixed for the life of the process: a metric's
/// label set cannot change under a running Prometheus).
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsOptions {
    /// Adds a `token` label to `scopegate_request_duration_seconds` (SPEC §5: "and `token`
    /// where configured"). Off by default: a histogram per token is 18 series per token
    /// and API.
    pub duration_by_token: bool,
}

/// All scopegate metrics.
pub struct Metrics {
    pub registry: Registry,
    requests: IntCounterVec,
    upstream_responses: IntCounterVec,
    duration: HistogramVec,
    duration_by_token: bool,
    /// Per-token rate-limit gauges; the limiter resolves its handles once per token.
    pub rate_limit_remaining: IntGaugeVec,
    pub rate_limit_utilization: GaugeVec,
    last_used: GaugeVec,
    /// Last use per token and scope, for `scopegate audit --prometheus`.
    scope_last_used: GaugeVec,
    tokens: IntGaugeVec,
    /// The counts `scopegate_tokens` exports now, per account (see `set_token_counts`).
    token_count_keys: Mutex<HashMap<String, [i64; 2]>>,
    reloads: IntCounterVec,
    /// Unix time of the last successful (re)load; set by the loader.
    pub last_reload_success: Gauge,
    last_reload_successful: IntGauge,
    pub generation: IntGauge,
    shadow_denied: IntCounterVec,
    pub throttled: IntCounterVec,
    /// Main-listener connections closed for a missing or refused PROXY protocol header.
    pub proxy_protocol_rejected: IntCounterVec,
    /// `sgs_` secrets refused for a bad checksum, length or alphabet (SPEC §12).
    pub secret_checksum_failures: IntCounter,
    /// Open client connections per worker (`balance`): labels are worker indexes only.
    pub worker_connections: IntGaugeVec,
    /// Handles for requests without a configured token (bounded: decisions x methods).
    anonymous: TokenSeries,
}

fn build<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<T>,
) -> T {
    // Names and label sets are static and unique: a failure here is a programming error.
    let metric = metric.expect("static metric definition is valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric is registered once");
    metric
}

impl Metrics {
    /// The metrics with default options.
    pub fn new() -> Arc<Metrics> {
        Metrics::with_options(MetricsOptions::default())
    }

    pub fn with_options(options: MetricsOptions) -> Arc<Metrics> {
        let registry = Registry::new();
        let requests = build(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "scopegate_requests_total",
                    "Requests by account, token, API, method and decision.",
                ),
                &["account", "token", "api", "method", "decision"],
            ),
        );
        let upstream_responses = build(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "scopegate_upstream_responses_total",
                    "Upstream responses by account, token, API and status class.",
                ),
                &["account", "token", "api", "code"],
            ),
        );
        let duration_labels: &[&str] = if options.duration_by_token {
            &["api", "token"]
        } else {
            &["api"]
        };
        let duration = build(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "scopegate_request_duration_seconds",
                    "Time from receiving a forwarded request to the upstream's response headers.",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                duration_labels,
            ),
        );
        let rate_limit_remaining = build(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "scopegate_rate_limit_remaining",
                    "Requests the token may still send right now (burst capacity left).",
                ),
                &["token"],
            ),
        );
        let rate_limit_utilization = build(
            &registry,
            GaugeVec::new(
                Opts::new(
                    "scopegate_rate_limit_utilization",
                    "Share of the token's burst capacity in use, 0 to 1.",
                ),
                &["token"],
            ),
        );
        let last_used = build(
            &registry,
            GaugeVec::new(
                Opts::new(
                    "scopegate_token_last_used_timestamp_seconds",
                    "Unix time of the token's last allowed request.",
                ),
                &["token"],
            ),
        );
        let scope_last_used = build(
            &registry,
            GaugeVec::new(
                Opts::new(
                    "scopegate_scope_last_used_timestamp_seconds",
                    "Unix time of the token's last allowed request per scope (catalog API and \
                     method); `scopegate audit --prometheus` reads its maximum over replicas.",
                ),
                &["token", "api", "method"],
            ),
        );
        let tokens = build(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "scopegate_tokens",
                    "Configured tokens by account and status.",
                ),
                &["account", "status"],
            ),
        );
        let reloads = build(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "scopegate_config_reloads_total",
                    "Configuration loads by result (the start-up load counts as a success).",
                ),
                &["result"],
            ),
        );
        let last_reload_success = build(
            &registry,
            Gauge::new(
                "scopegate_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful configuration load.",
            ),
        );
        let last_reload_successful = build(
            &registry,
            IntGauge::new(
                "scopegate_config_last_reload_successful",
                "1 if the last configuration load attempt succeeded, 0 if it was rejected.",
            ),
        );
        let generation = build(
            &registry,
            IntGauge::new(
                "scopegate_config_generation",
                "Generation of the configuration in force; bumps on every successful reload.",
            ),
        );
        let shadow_denied = build(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "scopegate_shadow_denied_total",
                    "Requests served under `scopes` that the token's `shadow_scopes` would deny.",
                ),
                &["token", "api", "method"],
            ),
        );
        let throttled = build(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "scopegate_bruteforce_throttled_total",
                    "Requests refused by the failed-authentication throttle, by key kind.",
                ),
                &["kind"],
            ),
        );
        let proxy_protocol_rejected = build(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "scopegate_proxy_protocol_rejected_total",
                    "Connections closed because their PROXY protocol header was missing, \
                     invalid, too long, too slow, or came from a peer outside trusted_proxies.",
                ),
                &["reason"],
            ),
        );
        for reason in crate::gateway::proxy_protocol::ProxyHeaderError::LABELS {
            proxy_protocol_rejected.with_label_values(&[reason]);
        }
        let secret_checksum_failures = build(
            &registry,
            IntCounter::new(
                "scopegate_secret_checksum_failures_total",
                "Requests whose sgs_ secret failed the format or checksum check (refused before any lookup).",
            ),
        );
        let worker_connections = build(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "scopegate_worker_connections",
                    "Client connections each worker serves now (main listener); connections \
                     are spread so that no worker serves two more than the least loaded.",
                ),
                &["worker"],
            ),
        );
        let build_info = build(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "scopegate_build_info",
                    "Always 1; the labels tell the running scopegate version.",
                ),
                &["version"],
            ),
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Both results exist from the start, so `increase(...{result="error"}[15m])` sees
        // the first failure.
        for result in ["success", "error"] {
            reloads.with_label_values(&[result]);
        }
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            // Registration only fails on a duplicate; ignore rather than abort start-up.
            let _ = registry.register(Box::new(pc));
        }
        Arc::new(Metrics {
            registry,
            requests,
            upstream_responses,
            duration,
            duration_by_token: options.duration_by_token,
            rate_limit_remaining,
            rate_limit_utilization,
            last_used,
            scope_last_used,
            tokens,
            token_count_keys: Mutex::default(),
            reloads,
            last_reload_success,
            last_reload_successful,
            generation,
            shadow_denied,
            throttled,
            proxy_protocol_rejected,
            secret_checksum_failures,
            worker_connections,
            anonymous: TokenSeries::new(UNKNOWN, UNKNOWN),
        })
    }

    /// Counts one request. `token` is `None` when no configured token was named (or its
    /// secret was not verified): it is then counted under `token="unknown"`.
    /// `method` is a standard method name or `other` (`model::method_label`).
    pub fn count_request(
        &self,
        token: Option<&TokenSeries>,
        api: &str,
        method: &'static str,
        decision: DecisionLabel,
    ) {
        let t = token.unwrap_or(&self.anonymous);
        let labels = |api| [&*t.account, &*t.sid, api, method, decision.as_str()];
        let cached = t.requests.with(
            |k| k.decision == decision && k.method == method && &*k.api == api,
            || {
                let key = RequestKey {
                    api: Arc::from(api),
                    method,
                    decision,
                };
                (key, self.requests.with_label_values(&labels(api)))
            },
            |c| c.inc(),
        );
        if cached == Cached::Inserted && t.is_forgotten() {
            // Raced with `forget_token`: the labels carry the account, so this removes
            // only the old state's series, never one of a re-created token.
            let _ = self.requests.remove_label_values(&labels(api));
        }
    }

    /// Counts an upstream response by status class.
    pub fn count_upstream(&self, token: &TokenSeries, api: &str, status: http::StatusCode) {
        let class = StatusClass::of(status);
        let labels = |api| [&*token.account, &*token.sid, api, class.as_str()];
        let cached = token.upstream.with(
            |(a, c)| *c == class && &**a == api,
            || {
                let c = self.upstream_responses.with_label_values(&labels(api));
                ((Arc::from(api), class), c)
            },
            |c| c.inc(),
        );
        if cached == Cached::Inserted && token.is_forgotten() {
            let _ = self.upstream_responses.remove_label_values(&labels(api));
        }
    }

    /// Observes a forwarded request's duration (from receiving it to the upstream's
    /// response headers) through the token's cached handle, with a `token` label when
    /// [`MetricsOptions::duration_by_token`] is on.
    pub fn observe_token_duration(&self, token: &TokenSeries, api: &str, seconds: f64) {
        if self.duration_by_token && token.is_forgotten() {
            return;
        }
        token.durations.with(
            |a| &**a == api,
            || {
                let h = if self.duration_by_token {
                    self.duration.with_label_values(&[api, &token.sid])
                } else {
                    self.duration.with_label_values(&[api])
                };
                (Arc::from(api), h)
            },
            |h| h.observe(seconds),
        );
    }

    /// Observes a duration by API only (cached per API). With `duration_by_token` on this
    /// records `token="unknown"`: prefer [`Metrics::observe_token_duration`].
    pub fn observe_duration(&self, api: &str, seconds: f64) {
        self.observe_token_duration(&self.anonymous, api, seconds);
    }

    /// Sets the token's last-use gauge (the caller throttles this to once per second).
    pub fn mark_used(&self, token: &TokenSeries, unix_seconds: f64) {
        if let Some(g) = token.last_used.get() {
            g.set(unix_seconds);
        } else if !token.is_forgotten() {
            token
                .last_used
                .get_or_init(|| self.last_used.with_label_values(&[&token.sid]))
                .set(unix_seconds);
        }
    }

    /// Sets the last-use gauge of one scope (the caller calls it only when the second
    /// changes). `api` is a catalog name or `none`, `method` a standard method or `other`.
    pub fn mark_scope_used(&self, token: &TokenSeries, api: &str, method: &str, unix: i64) {
        if token.is_forgotten() {
            return;
        }
        self.scope_last_used
            .with_label_values(&[&token.sid, api, method])
            .set(unix as f64);
    }

    /// Drops a token's per-scope last-use series (`scopes`: the (API, method) pairs its
    /// usage record holds, which are exactly the series it set).
    pub fn forget_scopes<'a>(
        &self,
        token: &TokenSeries,
        scopes: impl Iterator<Item = (&'a str, &'a str)>,
    ) {
        for (api, method) in scopes {
            let _ = self
                .scope_last_used
                .remove_label_values(&[&token.sid, api, method]);
        }
    }

    /// Counts a request that `shadow_scopes` would deny. `method` is a standard method or
    /// `other`; `sid` a configured SID.
    pub fn count_shadow_denied(&self, sid: &str, api: &str, method: &str) {
        self.shadow_denied
            .with_label_values(&[sid, api, method])
            .inc();
    }

    /// The shadow-scope would-be denials counted for one token: (api, method, count).
    pub fn shadow_denied_of(&self, sid: &str) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        for family in self.shadow_denied.collect() {
            for m in family.get_metric() {
                let label = |name: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == name)
                        .map(|l| l.value().to_owned())
                        .unwrap_or_default()
                };
                if label("token") == sid {
                    out.push((
                        label("api"),
                        label("method"),
                        m.get_counter().value() as u64,
                    ));
                }
            }
        }
        out
    }

    /// Counts one configuration load attempt and sets `scopegate_config_last_reload_successful`.
    pub fn count_reload(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "success" } else { "error" }])
            .inc();
        self.set_last_reload_ok(ok);
    }

    /// Sets `scopegate_config_last_reload_successful` (1 or 0).
    pub fn set_last_reload_ok(&self, ok: bool) {
        self.last_reload_successful.set(i64::from(ok));
    }

    /// Replaces the `scopegate_tokens` gauge with the counts of a new configuration, per
    /// account in [`TokenStatus::ALL`] order. Every account gets both statuses (0 when
    /// none); accounts that disappeared are removed. The gauge is never reset as a whole,
    /// so a scrape during a reload sees no gap, and only counts that changed are written:
    /// at 25,000 accounts a reload would otherwise look up 50,000 series.
    pub fn set_token_counts<'a>(&self, counts: impl Iterator<Item = (&'a str, [i64; 2])>) {
        let Ok(mut current) = self.token_count_keys.lock() else {
            return;
        };
        let next: HashMap<&str, [i64; 2]> = counts.collect();
        current.retain(|account, _| {
            let keep = next.contains_key(account.as_str());
            if !keep {
                for status in TokenStatus::ALL {
                    let _ = self.tokens.remove_label_values(&[account, status.as_str()]);
                }
            }
            keep
        });
        for (account, counts) in next {
            let old = current.get(account).copied();
            for (i, status) in TokenStatus::ALL.into_iter().enumerate() {
                if old.map(|o| o[i]) != Some(counts[i]) {
                    self.tokens
                        .with_label_values(&[account, status.as_str()])
                        .set(counts[i]);
                }
            }
            match current.get_mut(account) {
                Some(exported) => *exported = counts,
                None => {
                    current.insert(account.to_owned(), counts);
                }
            }
        }
    }

    /// Drops every series of a token that a reload removed, so dashboards stop showing it
    /// and the registry does not grow with token churn. A request still in flight with the
    /// old state cannot bring the series back: its cached handles are detached, a request
    /// or upstream series it creates afterwards is removed again, and it creates no
    /// last-use or per-token latency series at all.
    ///
    /// The `token`-only series (last use, rate-limit gauges) are removed by SID: when a
    /// token is re-created under another account, forget the old state *before* building
    /// the new one, or the new one's pre-resolved gauges are detached with the old ones.
    pub fn forget_token(&self, token: &TokenSeries) {
        if std::ptr::eq(token, &self.anonymous) {
            return;
        }
        token.forgotten.store(true, Ordering::SeqCst);
        let sid = token.sid.as_str();
        let account = token.account.as_str();
        for (key, _) in token.requests.snapshot().iter() {
            let _ = self.requests.remove_label_values(&[
                account,
                sid,
                &key.api,
                key.method,
                key.decision.as_str(),
            ]);
        }
        for ((api, class), _) in token.upstream.snapshot().iter() {
            let _ =
                self.upstream_responses
                    .remove_label_values(&[account, sid, api, class.as_str()]);
        }
        if self.duration_by_token {
            for (api, _) in token.durations.snapshot().iter() {
                let _ = self.duration.remove_label_values(&[api, sid]);
            }
        }
        // Shadow series are few (only tokens under evaluation): find them by label.
        for family in self.shadow_denied.collect() {
            for metric in family.get_metric() {
                let labels = metric.get_label();
                let value = |name: &str| {
                    labels
                        .iter()
                        .find(|l| l.name() == name)
                        .map(|l| l.value().to_owned())
                        .unwrap_or_default()
                };
                if value("token") == sid {
                    let _ = self.shadow_denied.remove_label_values(&[
                        sid,
                        &value("api"),
                        &value("method"),
                    ]);
                }
            }
        }
        let _ = self.last_used.remove_label_values(&[sid]);
        let _ = self.rate_limit_remaining.remove_label_values(&[sid]);
        let _ = self.rate_limit_utilization.remove_label_values(&[sid]);
    }

    /// The text exposition for `GET /metrics`.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// The identity of one token's series plus its cached handles. Lives in the token's
/// runtime state, which survives reloads.
pub struct TokenSeries {
    pub sid: String,
    pub account: String,
    requests: HandleCache<RequestKey, IntCounter>,
    upstream: HandleCache<(Arc<str>, StatusClass), IntCounter>,
    durations: HandleCache<Arc<str>, Histogram>,
    last_used: OnceLock<Gauge>,
    /// Set by [`Metrics::forget_token`]; a handle resolved afterwards is dropped again.
    forgotten: AtomicBool,
}

impl TokenSeries {
    pub fn new(sid: &str, account: &str) -> TokenSeries {
        TokenSeries {
            sid: sid.to_owned(),
            account: account.to_owned(),
            requests: HandleCache::default(),
            upstream: HandleCache::default(),
            durations: HandleCache::default(),
            last_used: OnceLock::new(),
            forgotten: AtomicBool::new(false),
        }
    }

    /// Checked only after resolving a new handle (ordered against `forget_token`, which
    /// sets the flag before reading the caches).
    fn is_forgotten(&self) -> bool {
        self.forgotten.load(Ordering::SeqCst)
    }
}

#[derive(Clone, PartialEq, Eq)]
struct RequestKey {
    api: Arc<str>,
    method: &'static str,
    decision: DecisionLabel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cached {
    Hit,
    Inserted,
}

/// A small per-token list of resolved handles. A token uses few (API, method, decision)
/// combinations, and the set is bounded by configuration, so a linear scan of an
/// immutable snapshot beats hashing label values. Reads take no lock (`ArcSwap::load`);
/// the list is copied on the rare insert.
struct HandleCache<K, H> {
    entries: ArcSwap<Vec<(K, H)>>,
}

impl<K, H> Default for HandleCache<K, H> {
    fn default() -> Self {
        HandleCache {
            entries: ArcSwap::from_pointee(Vec::new()),
        }
    }
}

impl<K: Clone, H: Clone> HandleCache<K, H> {
    /// Runs `f` on the cached handle matching `matches`, resolving it with `resolve` (and
    /// caching it) on first use.
    fn with(
        &self,
        matches: impl Fn(&K) -> bool,
        resolve: impl FnOnce() -> (K, H),
        f: impl FnOnce(&H),
    ) -> Cached {
        {
            let entries = self.entries.load();
            if let Some((_, h)) = entries.iter().find(|(k, _)| matches(k)) {
                f(h);
                return Cached::Hit;
            }
        }
        let (key, handle) = resolve();
        self.entries.rcu(|current| {
            if current.iter().any(|(k, _)| matches(k)) {
                Arc::clone(current)
            } else {
                let mut next = Vec::with_capacity(current.len() + 1);
                next.extend(current.iter().cloned());
                next.push((key.clone(), handle.clone()));
                Arc::new(next)
            }
        });
        f(&handle);
        Cached::Inserted
    }

    fn snapshot(&self) -> Arc<Vec<(K, H)>> {
        self.entries.load_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &Metrics) -> String {
        String::from_utf8(m.render()).unwrap()
    }

    #[test]
    fn cached_handles_count_the_same_series() {
        let m = Metrics::new();
        let t = TokenSeries::new("SGa", "IRacme");
        for _ in 0..3 {
            m.count_request(Some(&t), "campaigns", "GET", DecisionLabel::Allowed);
            m.count_upstream(&t, "campaigns", http::StatusCode::CREATED);
            m.observe_token_duration(&t, "campaigns", 0.01);
        }
        m.count_request(None, NO_API, "other", DecisionLabel::BadRequest);
        let out = text(&m);
        assert!(out.contains(
            "scopegate_requests_total{account=\"IRacme\",api=\"campaigns\",decision=\"allowed\",method=\"GET\",token=\"SGa\"} 3"
        ), "{out}");
        assert!(out.contains(
            "scopegate_upstream_responses_total{account=\"IRacme\",api=\"campaigns\",code=\"2xx\",token=\"SGa\"} 3"
        ));
        assert!(out.contains("scopegate_request_duration_seconds_count{api=\"campaigns\"} 3"));
        assert!(out.contains(
            "scopegate_requests_total{account=\"unknown\",api=\"none\",decision=\"bad_request\",method=\"other\",token=\"unknown\"} 1"
        ));
        assert_eq!(t.requests.snapshot().len(), 1);
    }

    #[test]
    fn forget_drops_every_series_of_the_token_and_late_handles_too() {
        let m = Metrics::with_options(MetricsOptions {
            duration_by_token: true,
        });
        let t = TokenSeries::new("SGgone", "IRacme");
        m.count_request(Some(&t), "campaigns", "GET", DecisionLabel::Allowed);
        m.count_upstream(&t, "campaigns", http::StatusCode::OK);
        m.observe_token_duration(&t, "campaigns", 0.01);
        m.mark_used(&t, 1.0);
        m.count_shadow_denied("SGgone", "campaigns", "GET");
        assert!(text(&m).contains("SGgone"));
        m.forget_token(&t);
        assert!(!text(&m).contains("SGgone"), "{}", text(&m));
        // A request still holding the old state resolves a new combination: not exported.
        m.count_request(Some(&t), "reports", "POST", DecisionLabel::DeniedScope);
        m.mark_used(&t, 2.0);
        assert!(!text(&m).contains("SGgone"), "{}", text(&m));
    }

    #[test]
    fn reload_gauges_and_token_counts() {
        let m = Metrics::new();
        let out = text(&m);
        assert!(out.contains("scopegate_config_reloads_total{result=\"success\"} 0"));
        assert!(out.contains("scopegate_config_reloads_total{result=\"error\"} 0"));
        m.count_reload(true);
        assert!(text(&m).contains("scopegate_config_last_reload_successful 1"));
        m.count_reload(false);
        assert!(text(&m).contains("scopegate_config_last_reload_successful 0"));
        m.set_last_reload_ok(true);
        assert!(text(&m).contains("scopegate_config_last_reload_successful 1"));

        let counts = |m: &Metrics, expected: &[(&str, &str, i64)]| {
            let out = text(m);
            for (account, status, n) in expected {
                let series =
                    format!("scopegate_tokens{{account=\"{account}\",status=\"{status}\"}} {n}");
                assert!(out.contains(&series), "{series} in {out}");
            }
            out
        };
        m.set_token_counts([("IRa", [2, 0]), ("IRb", [0, 1])].into_iter());
        let both = [
            ("IRa", "active", 2),
            ("IRa", "disabled", 0),
            ("IRb", "active", 0),
            ("IRb", "disabled", 1),
        ];
        counts(&m, &both);
        m.set_token_counts([("IRa", [1, 0])].into_iter());
        let out = counts(&m, &[("IRa", "active", 1)]);
        assert!(!out.contains("IRb"), "{out}");
        // An account that comes back is exported again; an unchanged one keeps its count.
        m.set_token_counts([("IRa", [1, 0]), ("IRb", [0, 1])].into_iter());
        counts(&m, &[("IRa", "active", 1), ("IRa", "disabled", 0)]);
        counts(&m, &both[2..]);
    }
}
