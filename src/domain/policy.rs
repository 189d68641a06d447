//! The policy snapshot: everything a request needs, built once per (re)load and swapped in
//! whole, so a request sees one configuration or the next, never a mix.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use time::OffsetDateTime;

use crate::domain::model::{TokenKind, TokenStatus};
use crate::domain::ratelimit::TokenLimiter;
use crate::domain::scope::catalog::{ApiId, Catalog, CatalogBuilder};
use crate::domain::settings::{Config, RateLimit, ScopeGrant, Settings, TokenSpec};

/// A token as the request path sees it: the validated spec plus its runtime state `R`
/// (the gateway's metric handles and buckets; `()` where nothing runs, as in `explain`).
pub struct Token<R> {
    pub spec: TokenSpec,
    pub runtime: Arc<R>,
    /// `expires_at` as Unix seconds, compared on every request.
    pub expires_unix: Option<i64>,
    /// End of the previous secret's grace period as Unix seconds.
    pub previous_until_unix: Option<i64>,
    /// `X-Scopegate-Token` / `X-Scopegate-Account` values, built once per snapshot
    /// instead of once per request.
    pub sid_header: Option<http::HeaderValue>,
    pub account_header: Option<http::HeaderValue>,
    /// The scopes with a `rate_limit` of their own, sorted by API.
    pub scope_limiters: Vec<(ApiId, Arc<ScopeLimiter>)>,
    /// The token's bucket as of this snapshot (a reload that changes the limit builds a
    /// new snapshot with the new bucket). A request borrows it for as long as it holds
    /// the snapshot, instead of cloning an `Arc` whose count every worker would write.
    /// `None` where no runtime state is attached.
    pub limiter: Option<Arc<TokenLimiter>>,
}

/// A scope's own rate limit: its bucket here, and its key in a shared backend.
pub struct ScopeLimiter {
    /// `SID:api`: SIDs never contain `:`, so this cannot collide with a token's bucket.
    pub bucket: String,
    pub limiter: TokenLimiter,
}

/// What a token gets attached when a snapshot is built: its runtime state and the
/// limiters of its scopes that have a `rate_limit` of their own.
pub struct Attached<R> {
    pub runtime: Arc<R>,
    pub scope_limiters: Vec<Arc<ScopeLimiter>>,
    pub limiter: Option<Arc<TokenLimiter>>,
}

impl<R> Token<R> {
    /// The grant for an API, if any (scopes are sorted by API id).
    pub fn grant(&self, api: ApiId) -> Option<&ScopeGrant> {
        self.spec
            .scopes
            .binary_search_by_key(&api, |g| g.api)
            .ok()
            .map(|i| &self.spec.scopes[i])
    }

    /// The limiter of the scope for `api`, when that scope has its own `rate_limit`.
    pub fn scope_limiter(&self, api: ApiId) -> Option<&ScopeLimiter> {
        self.scope_limiters
            .binary_search_by_key(&api, |(a, _)| *a)
            .ok()
            .map(|i| &*self.scope_limiters[i].1)
    }

    pub fn is_legacy(&self) -> bool {
        self.spec.kind == TokenKind::Legacy
    }
}

/// One immutable generation of the whole configuration.
pub struct Policy<R> {
    pub generation: u64,
    pub settings: Settings,
    pub catalog: Catalog,
    /// Lookup by SID. The snapshot is immutable, so a plain map read by many threads at
    /// once needs no lock; the gateway keeps its state across snapshots elsewhere.
    pub tokens: HashMap<String, Arc<Token<R>>>,
    pub deleted: HashSet<String>,
    /// Account display names by id.
    pub accounts: HashMap<String, String>,
}

impl Policy<()> {
    /// A snapshot with no runtime state, for commands that decide without serving
    /// (`explain`, the benchmarks).
    pub fn detached(config: Config, generation: u64) -> Policy<()> {
        let unit = Arc::new(());
        Policy::build(config, generation, |_, _, _| Attached {
            runtime: unit.clone(),
            scope_limiters: Vec::new(),
            limiter: None,
        })
    }
}

/// From this many tokens on, a snapshot's tokens are built on two threads.
const PARALLEL_MIN_TOKENS: usize = 2_000;

impl<R: Send + Sync> Policy<R> {
    /// Compiles a validated configuration into a snapshot. `attach` gives each token its
    /// runtime state, from its spec, its rate limit and its scopes' own limits (by API
    /// name); the snapshot itself touches no registry and no metric.
    ///
    /// At 100,000 tokens building the tokens (their runtime state, header values and
    /// allocations) is a third of a first start; each token's depends on nothing but its
    /// spec, so a large configuration's are built on two threads, then indexed by SID here.
    pub fn build(
        config: Config,
        generation: u64,
        attach: impl Fn(&TokenSpec, RateLimit, &[(&str, RateLimit)]) -> Attached<R> + Sync,
    ) -> Policy<R> {
        let mut builder = CatalogBuilder::new();
        for (api_index, api) in config.settings.apis.iter().enumerate() {
            for (pattern_index, (_, pattern)) in api.patterns.iter().enumerate() {
                builder.add(api_index as ApiId, pattern_index as u16, pattern);
            }
        }
        let catalog = builder.build();

        let settings = &config.settings;
        let make = |specs: Vec<TokenSpec>, _first: usize| -> Vec<Arc<Token<R>>> {
            specs
                .into_iter()
                .map(|spec| Arc::new(token(spec, settings, &attach)))
                .collect()
        };
        let specs = config.tokens;
        let built = if specs.len() >= PARALLEL_MIN_TOKENS {
            let cut = specs.len() / 2;
            crate::domain::two_threads::map_halves(specs, cut, make)
        } else {
            make(specs, 0)
        };
        let mut tokens = HashMap::with_capacity(built.len());
        for token in built {
            tokens.insert(token.spec.sid.clone(), token);
        }
        Policy {
            generation,
            catalog,
            tokens,
            deleted: config.deleted_sids.into_iter().collect(),
            accounts: config
                .accounts
                .into_iter()
                .map(|a| (a.id, a.name))
                .collect(),
            settings: config.settings,
        }
    }
}

/// One token of a snapshot: its spec with the runtime state `attach` gives it.
fn token<R>(
    spec: TokenSpec,
    settings: &Settings,
    attach: &impl Fn(&TokenSpec, RateLimit, &[(&str, RateLimit)]) -> Attached<R>,
) -> Token<R> {
    let limit = spec.rate_limit.unwrap_or(settings.rate_limit);
    let limited: Vec<(ApiId, &str, RateLimit)> = spec
        .scope_limits
        .iter()
        .filter_map(|l| {
            let api = settings.apis.get(usize::from(l.api))?;
            Some((l.api, api.name.as_str(), l.rate_limit?))
        })
        .collect();
    let by_name: Vec<(&str, RateLimit)> = limited.iter().map(|(_, n, l)| (*n, *l)).collect();
    let attached = attach(&spec, limit, &by_name);
    let scope_limiters = limited
        .iter()
        .map(|(id, _, _)| *id)
        .zip(attached.scope_limiters)
        .collect();
    Token {
        scope_limiters,
        expires_unix: spec.expires_at.map(OffsetDateTime::unix_timestamp),
        previous_until_unix: spec.previous.as_ref().map(|(_, t)| t.unix_timestamp()),
        sid_header: http::HeaderValue::from_str(&spec.sid).ok(),
        account_header: http::HeaderValue::from_str(&spec.account).ok(),
        runtime: attached.runtime,
        limiter: attached.limiter,
        spec,
    }
}

impl<R> Policy<R> {
    pub fn api_name(&self, api: ApiId) -> &str {
        self.settings
            .apis
            .get(usize::from(api))
            .map(|a| a.name.as_str())
            .unwrap_or(crate::domain::labels::NO_API)
    }

    /// Active scoped tokens per account, for the CLI's limit checks.
    pub fn active_scoped_count(&self, account: &str) -> usize {
        self.tokens
            .values()
            .filter(|t| {
                t.spec.account == account
                    && t.spec.status == TokenStatus::Active
                    && t.spec.kind == TokenKind::Scoped
            })
            .count()
    }

    /// Tokens per account, by status in [`TokenStatus::ALL`] order, for the token-count
    /// gauges.
    pub fn token_counts(&self) -> HashMap<&str, [i64; 2]> {
        let mut counts: HashMap<&str, [i64; 2]> = HashMap::with_capacity(self.accounts.len());
        for t in self.tokens.values() {
            counts.entry(t.spec.account.as_str()).or_default()[t.spec.status.index()] += 1;
        }
        counts
    }
}
