//! The snapshot the running gateway swaps: the domain's [`Policy`](policy::Policy) with
//! each token's runtime state attached (metric series, buckets, failure counts), which
//! outlives any one snapshot in the [`RuntimeRegistry`].

use crate::domain::policy::{self, Attached};
use crate::gateway::metrics::Metrics;
use crate::gateway::runtime::{RuntimeRegistry, TokenRuntime};

/// The gateway's policy snapshot.
pub type Policy = policy::Policy<TokenRuntime>;
/// A token of the gateway's snapshot.
pub type Token = policy::Token<TokenRuntime>;

/// Compiles a validated configuration into the gateway's snapshot: attaches the state of
/// every token that still exists, forgets the rest, and refreshes the token-count gauges.
pub fn build(
    config: crate::domain::settings::Config,
    generation: u64,
    registry: &RuntimeRegistry,
    metrics: &Metrics,
) -> Policy {
    let policy = Policy::build(config, generation, |spec, limit, scope_limits| {
        let runtime = registry.attach(&spec.sid, &spec.account, limit, metrics);
        let scope_limiters = runtime.scope_limiters(scope_limits);
        Attached {
            limiter: Some(runtime.limiter.load_full()),
            runtime,
            scope_limiters,
        }
    });
    registry.retain(|sid| policy.tokens.contains_key(sid), metrics);
    metrics.set_token_counts(policy.token_counts().into_iter());
    policy
}
