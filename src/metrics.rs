//! Prometheus metrics: one registry built at start-up and passed down, never the global one.
//!
//! Label values only ever come from configuration (SID, account, catalog API name) or from
//! small fixed sets (`unknown`, `none`, `other`, decisions, status classes): nothing a client
//! sends can create a series. Per-token counter handles are cached on the token's runtime
//! state, so the hot path pays a short scan instead of prometheus' label hashing.

use std::sync::{Arc, RwLock};

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Label used for the token and account of requests that named no configured token.
pub const UNKNOWN: &str = "unknown";
/// Label used for requests that matched no catalog API.
pub const NO_API: &str = "none";

/// What happened to a request, as counted in `scopegate_requests_total{decision}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionLabel {
    Allowed,
    DeniedScope,
    DeniedCredentials,
    DeniedDisabled,
    Unauthenticated,
    RateLimited,
    BadRequest,
}

impl DecisionLabel {
    pub const ALL: [DecisionLabel; 7] = [
        DecisionLabel::Allowed,
        DecisionLabel::DeniedScope,
        DecisionLabel::DeniedCredentials,
        DecisionLabel::DeniedDisabled,
        DecisionLabel::Unauthenticated,
        DecisionLabel::RateLimited,
        DecisionLabel::BadRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DecisionLabel::Allowed => "allowed",
            DecisionLabel::DeniedScope => "denied_scope",
            DecisionLabel::DeniedCredentials => "denied_credentials",
            DecisionLabel::DeniedDisabled => "denied_disabled",
            DecisionLabel::Unauthenticated => "unauthenticated",
            DecisionLabel::RateLimited => "rate_limited",
            DecisionLabel::BadRequest => "bad_request",
        }
    }
}

/// All scopegate metrics.
pub struct Metrics {
    pub registry: Registry,
    requests: IntCounterVec,
    upstream_responses: IntCounterVec,
    duration: HistogramVec,
    pub rate_limit_remaining: IntGaugeVec,
    pub rate_limit_utilization: GaugeVec,
    last_used: GaugeVec,
    tokens: IntGaugeVec,
    reloads: IntCounterVec,
    pub last_reload_success: Gauge,
    pub generation: IntGauge,
    shadow_denied: IntCounterVec,
    pub throttled: IntCounterVec,
    /// Handles for requests without a configured token (bounded: decisions x methods).
    anonymous: SeriesCache,
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
    pub fn new() -> Arc<Metrics> {
        let registry = Registry::new();
        let requests = build(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "scopegate_requests_total",
                    "Requests by token, API, method and decision.",
                ),
                &["account", "token", "api", "method", "decision"],
            ),
        );
        let upstream_responses = build(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "scopegate_upstream_responses_total",
                    "Upstream responses by token, API and status class.",
                ),
                &["account", "token", "api", "code"],
            ),
        );
        let duration = build(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "scopegate_request_duration_seconds",
                    "Time from request to upstream response headers, by API.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0,
                ]),
                &["api"],
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
                    "Unix time of the token's last authenticated request.",
                ),
                &["token"],
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
                    "Configuration reloads by result.",
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
            rate_limit_remaining,
            rate_limit_utilization,
            last_used,
            tokens,
            reloads,
            last_reload_success,
            generation,
            shadow_denied,
            throttled,
            anonymous: SeriesCache::default(),
        })
    }

    /// Counts one request. `token` is `None` when no configured token was named.
    pub fn count_request(
        &self,
        token: Option<&TokenSeries>,
        api: &str,
        method: &'static str,
        decision: DecisionLabel,
    ) {
        match token {
            Some(t) => t
                .cache
                .counter(&self.requests, &t.account, &t.sid, api, method, decision)
                .inc(),
            None => self
                .anonymous
                .counter(&self.requests, UNKNOWN, UNKNOWN, api, method, decision)
                .inc(),
        }
    }

    pub fn count_upstream(&self, token: &TokenSeries, api: &str, status: http::StatusCode) {
        let class = match status.as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.upstream_responses
            .with_label_values(&[&token.account, &token.sid, api, class])
            .inc();
    }

    pub fn observe_duration(&self, api: &str, seconds: f64) {
        self.duration.with_label_values(&[api]).observe(seconds);
    }

    pub fn mark_used(&self, token: &TokenSeries, unix_seconds: f64) {
        self.last_used
            .with_label_values(&[&token.sid])
            .set(unix_seconds);
    }

    pub fn count_shadow_denied(&self, sid: &str, api: &str, method: &str) {
        self.shadow_denied
            .with_label_values(&[sid, api, method])
            .inc();
    }

    pub fn count_reload(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "success" } else { "error" }])
            .inc();
    }

    /// Replaces the `scopegate_tokens` gauge with the counts of a new configuration.
    pub fn set_token_counts<'a>(&self, counts: impl Iterator<Item = (&'a str, &'a str, i64)>) {
        self.tokens.reset();
        for (account, status, n) in counts {
            self.tokens.with_label_values(&[account, status]).set(n);
        }
    }

    /// Drops every series of a token that a reload removed, so dashboards stop showing it
    /// and the registry does not grow with token churn.
    pub fn forget_token(&self, token: &TokenSeries) {
        let sid = token.sid.as_str();
        let account = token.account.as_str();
        for key in token.cache.keys() {
            let _ = self.requests.remove_label_values(&[
                account,
                sid,
                &key.api,
                key.method,
                key.decision.as_str(),
            ]);
        }
        for api in token.cache.apis() {
            for class in ["1xx", "2xx", "3xx", "4xx", "5xx"] {
                let _ = self
                    .upstream_responses
                    .remove_label_values(&[account, sid, &api, class]);
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
    cache: SeriesCache,
}

impl TokenSeries {
    pub fn new(sid: &str, account: &str) -> TokenSeries {
        TokenSeries {
            sid: sid.to_owned(),
            account: account.to_owned(),
            cache: SeriesCache::default(),
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
struct SeriesKey {
    api: Arc<str>,
    method: &'static str,
    decision: DecisionLabel,
}

/// A small per-token list of resolved counters. A token uses few (API, method, decision)
/// combinations, so a linear scan under a read lock beats hashing five label values.
#[derive(Default)]
struct SeriesCache {
    entries: RwLock<Vec<(SeriesKey, IntCounter)>>,
}

impl SeriesCache {
    fn counter(
        &self,
        vec: &IntCounterVec,
        account: &str,
        sid: &str,
        api: &str,
        method: &'static str,
        decision: DecisionLabel,
    ) -> IntCounter {
        let matches =
            |k: &SeriesKey| k.decision == decision && k.method == method && &*k.api == api;
        if let Ok(entries) = self.entries.read() {
            if let Some((_, c)) = entries.iter().find(|(k, _)| matches(k)) {
                return c.clone();
            }
        }
        let counter = vec.with_label_values(&[account, sid, api, method, decision.as_str()]);
        if let Ok(mut entries) = self.entries.write() {
            if !entries.iter().any(|(k, _)| matches(k)) {
                entries.push((
                    SeriesKey {
                        api: Arc::from(api),
                        method,
                        decision,
                    },
                    counter.clone(),
                ));
            }
        }
        counter
    }

    fn keys(&self) -> Vec<SeriesKey> {
        self.entries
            .read()
            .map(|e| e.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default()
    }

    fn apis(&self) -> Vec<Arc<str>> {
        let mut apis: Vec<Arc<str>> = self.keys().into_iter().map(|k| k.api).collect();
        apis.sort();
        apis.dedup();
        apis
    }
}
