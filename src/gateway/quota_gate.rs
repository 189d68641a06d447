//! The request path's quota step: which quotas apply to an allowed request (the token's,
//! and the scope's for the API it is recorded under) and what to answer when one is used
//! up. The counting itself is [`crate::gateway::quota`]'s.

use crate::domain::scope::catalog::ApiId;
use crate::gateway::proxy::Shared;
use crate::gateway::quota::{Applicable, QuotaDecision, QuotaState};
use crate::gateway::snapshot::Token;

/// A request refused by a quota.
pub struct Refused {
    /// The quota that is used up; `None` when Redis could not answer under `deny`.
    pub state: Option<QuotaState>,
    /// For the access log.
    pub reason: &'static str,
}

/// Whether any quota applies to a request of `token` under `api`: the request path skips
/// the quota step (and its future) for the rest.
pub fn applies(token: &Token, api: Option<ApiId>) -> bool {
    token.spec.quota.is_some() || scope_quota(token, api).is_some()
}

/// The quota of the token's scope for `api`, when that scope has one of its own.
fn scope_quota(token: &Token, api: Option<ApiId>) -> Option<crate::domain::backends::Quota> {
    api.and_then(|a| token.spec.scope_limits(a))
        .and_then(|l| l.quota)
}

/// Takes the request from every quota that applies. Costs nothing for a token without
/// quotas (no allocation, no Redis call).
pub async fn check(
    shared: &Shared,
    token: &Token,
    api: Option<ApiId>,
    api_name: &str,
    now_unix: i64,
) -> Result<Vec<QuotaState>, Refused> {
    let scope_quota = scope_quota(token, api);
    if token.spec.quota.is_none() && scope_quota.is_none() {
        return Ok(Vec::new());
    }
    // Validation refuses quotas without Redis; a snapshot that still has one (the backend
    // is read at start only) lets the request through, uncounted.
    let Some(backend) = &shared.quotas else {
        return Ok(Vec::new());
    };
    let mut applicable = Vec::with_capacity(2);
    if let Some(q) = token.spec.quota {
        applicable.push(Applicable {
            api: None,
            quota: q,
        });
    }
    if let Some(q) = scope_quota {
        applicable.push(Applicable {
            api: Some(api_name),
            quota: q,
        });
    }
    match backend.take(&token.spec.sid, &applicable, now_unix).await {
        QuotaDecision::Allowed(states) => Ok(states),
        QuotaDecision::Uncounted => Ok(Vec::new()),
        QuotaDecision::Limited(Some(state)) => Err(Refused {
            state: Some(state),
            reason: "quota_exhausted",
        }),
        QuotaDecision::Limited(None) => Err(Refused {
            state: None,
            reason: "quota_backend_unavailable",
        }),
    }
}
