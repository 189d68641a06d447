//! `token_policy:` as written, and its validation into [`TokenPolicy`].

use std::time::Duration;

use serde::Deserialize;

use crate::domain::token_policy::TokenPolicy;

/// `token_policy:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokenPolicy {
    /// The longest a secret may live, e.g. `90d`.
    pub max_lifetime: Option<String>,
    /// Every token must have an `expires_at`.
    pub require_expiry: Option<bool>,
}

/// Validates `token_policy:`.
pub fn from_raw(raw: RawTokenPolicy, sink: &mut crate::config::ErrorSink<'_>) -> TokenPolicy {
    let max_lifetime = raw.max_lifetime.as_deref().map(|v| {
        crate::config::duration_or(
            sink,
            "token_policy.max_lifetime",
            Some(v),
            Duration::from_secs(90 * 86_400),
        )
    });
    TokenPolicy {
        max_lifetime,
        require_expiry: raw.require_expiry.unwrap_or(false),
    }
}
