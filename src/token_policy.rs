//! `token_policy:` (SPEC §12): how long a token's secret may live and whether every token
//! must expire. The CLI enforces it when it issues secrets (`token create` sets
//! `expires_at`, `token reset` renews it); `check` and `audit` report tokens that do not
//! meet it. Pure: no I/O.
//!
//! A policy violation in the file is a warning, not a load error: tightening the policy
//! must not stop a running gateway from reloading (or starting) with tokens issued under
//! the old rules. Those tokens keep working until they expire (the gateway refuses an
//! expired token with 403), and `check`, `audit` and the notifier point at them.

use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;

use crate::config::TokenSpec;

/// `token_policy:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokenPolicy {
    /// The longest a secret may live, e.g. `90d`.
    pub max_lifetime: Option<String>,
    /// Every token must have an `expires_at`.
    pub require_expiry: Option<bool>,
}

/// The validated policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenPolicy {
    pub max_lifetime: Option<Duration>,
    pub require_expiry: bool,
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

/// A token that does not meet the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// `require_expiry` and the token has no `expires_at`.
    NoExpiry,
    /// `expires_at` lies further than `max_lifetime` after the secret was issued.
    ExpiryBeyondMax { lifetime_days: i64, max_days: i64 },
    /// No `expires_at` (allowed) but the secret is already older than `max_lifetime`.
    OlderThanMax { age_days: i64, max_days: i64 },
}

impl Violation {
    pub fn message(&self) -> String {
        match self {
            Violation::NoExpiry => "has no expires_at, but token_policy.require_expiry is on".into(),
            Violation::ExpiryBeyondMax {
                lifetime_days,
                max_days,
            } => format!(
                "expires {lifetime_days} days after its secret was issued; token_policy.max_lifetime is {max_days} days"
            ),
            Violation::OlderThanMax { age_days, max_days } => format!(
                "its secret is {age_days} days old; token_policy.max_lifetime is {max_days} days"
            ),
        }
    }
}

const DAY: i64 = 86_400;

impl TokenPolicy {
    pub fn is_empty(&self) -> bool {
        self.max_lifetime.is_none() && !self.require_expiry
    }

    /// The expiry a secret issued at `now` gets, if the policy sets one.
    pub fn expiry_from(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.max_lifetime.map(|d| now + d)
    }

    /// Checks a requested expiry for a secret issued at `now`: the error says what to do.
    pub fn check_requested(
        &self,
        now: OffsetDateTime,
        requested: Option<OffsetDateTime>,
    ) -> Result<Option<OffsetDateTime>, String> {
        match (requested, self.max_lifetime) {
            (Some(t), Some(max)) if t > now + max => Err(format!(
                "the expiry is beyond token_policy.max_lifetime ({} days from now); pick an \
                 earlier --expires or leave it out to get the longest allowed",
                max.as_secs() as i64 / DAY
            )),
            (Some(t), _) => Ok(Some(t)),
            (None, Some(_)) => Ok(self.expiry_from(now)),
            (None, None) if self.require_expiry => Err(
                "token_policy.require_expiry is on: give --expires (RFC 3339), or set \
                 token_policy.max_lifetime so tokens get a default expiry"
                    .into(),
            ),
            (None, None) => Ok(None),
        }
    }

    /// What is wrong with a token under this policy (empty when it complies). Disabled
    /// tokens are checked too: enabling one must not bring back a secret the policy forbids.
    pub fn violations(&self, token: &TokenSpec, now: OffsetDateTime) -> Vec<Violation> {
        let mut out = Vec::new();
        let issued = token.rotated_at.or(token.created_at);
        match (token.expires_at, self.max_lifetime) {
            (None, _) if self.require_expiry => out.push(Violation::NoExpiry),
            (Some(exp), Some(max)) => {
                let from = issued.unwrap_or(now);
                let lifetime = exp - from;
                if lifetime > max {
                    out.push(Violation::ExpiryBeyondMax {
                        lifetime_days: lifetime.whole_days(),
                        max_days: max.as_secs() as i64 / DAY,
                    });
                }
            }
            (None, Some(max)) => {
                if let Some(from) = issued {
                    let age = now - from;
                    if age > max {
                        out.push(Violation::OlderThanMax {
                            age_days: age.whole_days(),
                            max_days: max.as_secs() as i64 / DAY,
                        });
                    }
                }
            }
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }

    fn policy(days: u64, require: bool) -> TokenPolicy {
        TokenPolicy {
            max_lifetime: Some(Duration::from_secs(days * 86_400)),
            require_expiry: require,
        }
    }

    #[test]
    fn requested_expiry_is_bounded_and_defaulted() {
        let now = at("2026-01-01T00:00:00Z");
        let p = policy(90, true);
        assert_eq!(
            p.check_requested(now, None).unwrap(),
            Some(at("2026-04-01T00:00:00Z"))
        );
        let early = at("2026-02-01T00:00:00Z");
        assert_eq!(p.check_requested(now, Some(early)).unwrap(), Some(early));
        assert!(p
            .check_requested(now, Some(at("2026-04-01T00:00:01Z")))
            .unwrap_err()
            .contains("max_lifetime"));
        let only_require = TokenPolicy {
            max_lifetime: None,
            require_expiry: true,
        };
        assert!(only_require.check_requested(now, None).is_err());
        assert_eq!(
            TokenPolicy::default().check_requested(now, None).unwrap(),
            None
        );
    }
}
