//! The per-request decision: authenticate the credentials, then authorize the method(s)
//! and canonical path against the token's scopes. Pure: no I/O, no HTTP responses.
//!
//! The gateway and `scopegate explain` both call [`decide`], so what `explain` prints is
//! what the gateway does.

use crate::auth::Credentials;
use crate::metrics::DecisionLabel;
use crate::model::TokenStatus;
use crate::policy::{Policy, Token};
use crate::scope::catalog::{ApiId, Match};

/// Why credentials were not accepted. The client is never told which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialFailure {
    UnknownSid,
    WrongSecret,
    Deleted,
    Expired,
    Disabled,
    /// An `sgs_` secret whose length, alphabet or checksum is wrong: not one scopegate
    /// issued (a typo or a forgery), refused before the SID or any hash is looked at.
    BadChecksum,
}

/// Why an authenticated request is outside the token's scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeFailure {
    /// The path matches no API among the token's scopes (or none at all, or another
    /// account's resources).
    NoApi,
    /// An API of the token's scopes matches, but not with this method.
    Method { api: ApiId },
    /// A method-override header or `_method` names a method outside the scopes, or one
    /// that is not a standard method.
    Override { api: Option<ApiId> },
}

/// A refusal, with the token when one was identified (for metrics and logs).
#[derive(Debug, Clone, Copy)]
pub enum Denial<'p> {
    Credentials {
        token: Option<&'p Token>,
        reason: CredentialFailure,
    },
    Scope {
        token: &'p Token,
        reason: ScopeFailure,
    },
}

impl Denial<'_> {
    pub fn label(&self) -> DecisionLabel {
        match self {
            Denial::Credentials {
                reason: CredentialFailure::Disabled,
                ..
            } => DecisionLabel::DeniedDisabled,
            Denial::Credentials { .. } => DecisionLabel::DeniedCredentials,
            Denial::Scope { .. } => DecisionLabel::DeniedScope,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Denial::Credentials { reason, .. } => match reason {
                CredentialFailure::UnknownSid => "unknown_sid",
                CredentialFailure::WrongSecret => "wrong_secret",
                CredentialFailure::Deleted => "deleted",
                CredentialFailure::Expired => "expired",
                CredentialFailure::Disabled => "disabled",
                CredentialFailure::BadChecksum => "bad_secret_checksum",
            },
            Denial::Scope { reason, .. } => match reason {
                ScopeFailure::NoApi => "no_matching_scope",
                ScopeFailure::Method { .. } => "method_not_granted",
                ScopeFailure::Override { .. } => "method_override_not_granted",
            },
        }
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("sid", &self.spec.sid)
            .finish_non_exhaustive()
    }
}

/// Which of the token's secrets matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretUsed {
    Current,
    /// The previous secret, inside its `reset --grace` window.
    Previous,
}

/// An allowed request.
#[derive(Debug, Clone, Copy)]
pub struct Allowed<'p> {
    pub token: &'p Token,
    /// The most specific matching API among the token's scopes; `None` for a legacy
    /// token's request outside the catalog.
    pub api: Option<ApiId>,
    /// Index into `settings.upstreams`.
    pub upstream: usize,
    pub secret: SecretUsed,
}

/// What is being asked: standard-method indexes (see `model::KNOWN_METHODS`).
pub struct Ask<'a> {
    /// The wire method, `None` for an extension method (never grantable).
    pub method: Option<u8>,
    /// Methods named by override headers or `_method`; `None` entries are unknown verbs.
    pub overrides: &'a [Option<u8>],
    /// The canonical path.
    pub path: &'a str,
}

/// Checks the credentials: a well-formed `sgs_` secret if prefixed, known, not deleted,
/// right secret, active, not expired.
pub fn authenticate<'p>(
    policy: &'p Policy,
    creds: &Credentials,
    now_unix: i64,
) -> Result<(&'p Token, SecretUsed), Denial<'p>> {
    let deny = |token, reason| Denial::Credentials { token, reason };
    if crate::secret_format::shape(creds.secret()) == crate::secret_format::Shape::Corrupt {
        return Err(deny(None, CredentialFailure::BadChecksum));
    }
    let Some(token) = policy.tokens.get(creds.sid()) else {
        let reason = if policy.deleted.contains(creds.sid()) {
            CredentialFailure::Deleted
        } else {
            CredentialFailure::UnknownSid
        };
        return Err(deny(None, reason));
    };
    let token: &Token = token;
    let secret = if token.spec.hash.verify(creds.secret()) {
        SecretUsed::Current
    } else {
        let in_grace = token
            .previous_until_unix
            .is_some_and(|until| now_unix < until);
        match &token.spec.previous {
            Some((previous, _)) if in_grace && previous.verify(creds.secret()) => {
                SecretUsed::Previous
            }
            _ => return Err(deny(Some(token), CredentialFailure::WrongSecret)),
        }
    };
    if token.spec.status == TokenStatus::Disabled {
        return Err(deny(Some(token), CredentialFailure::Disabled));
    }
    if token.expires_unix.is_some_and(|t| now_unix >= t) {
        return Err(deny(Some(token), CredentialFailure::Expired));
    }
    Ok((token, secret))
}

/// Checks the request against the token's scopes and picks the API and upstream.
pub fn authorize<'p>(
    policy: &'p Policy,
    token: &'p Token,
    secret: SecretUsed,
    ask: &Ask<'_>,
) -> Result<Allowed<'p>, Denial<'p>> {
    let deny = |reason| Denial::Scope { token, reason };
    let account = token.spec.account.as_str();

    // The best match among the token's scopes for the wire method, and whether any scope
    // matched the path at all (to tell "no API" from "wrong method").
    let mut best: Option<Match> = None;
    let mut path_matched: Option<ApiId> = None;
    let mut best_any: Option<Match> = None;
    let legacy = token.is_legacy();
    policy.catalog.for_each_match(ask.path, account, |m| {
        if best_any.is_none_or(|b| m.specificity > b.specificity) {
            best_any = Some(m);
        }
        let Some(grant) = token.grant(m.api) else {
            return;
        };
        path_matched.get_or_insert(m.api);
        if ask.method.is_some_and(|i| grant.methods.contains(i))
            && best.is_none_or(|b| m.specificity > b.specificity)
        {
            best = Some(m);
        }
    });

    if legacy {
        // Legacy tokens predate scopes and keep full access: record under the most
        // specific catalog API, else send to the default upstream.
        let api = best_any.map(|m| m.api);
        let upstream = match api {
            Some(a) => policy.settings.apis[usize::from(a)].upstream,
            None => match policy.settings.default_upstream {
                Some(u) => u,
                None => return Err(deny(ScopeFailure::NoApi)),
            },
        };
        return Ok(Allowed {
            token,
            api,
            upstream,
            secret,
        });
    }

    let Some(best) = best else {
        return Err(deny(match path_matched {
            None => ScopeFailure::NoApi,
            Some(api) => ScopeFailure::Method { api },
        }));
    };

    // Every override must be granted on some API of the token that matches the path.
    for over in ask.overrides {
        let Some(idx) = *over else {
            return Err(deny(ScopeFailure::Override {
                api: Some(best.api),
            }));
        };
        let mut granted = false;
        policy.catalog.for_each_match(ask.path, account, |m| {
            if token.grant(m.api).is_some_and(|g| g.methods.contains(idx)) {
                granted = true;
            }
        });
        if !granted {
            return Err(deny(ScopeFailure::Override {
                api: Some(best.api),
            }));
        }
    }

    Ok(Allowed {
        token,
        api: Some(best.api),
        upstream: policy.settings.apis[usize::from(best.api)].upstream,
        secret,
    })
}

/// Both steps, as the gateway runs them.
pub fn decide<'p>(
    policy: &'p Policy,
    creds: &Credentials,
    ask: &Ask<'_>,
    now_unix: i64,
) -> Result<Allowed<'p>, Denial<'p>> {
    let (token, secret) = authenticate(policy, creds, now_unix)?;
    authorize(policy, token, secret, ask)
}

/// For a request allowed under `scopes`: would the token's `shadow_scopes` (a proposed
/// narrower set) deny it? `None` when the token has no shadow set.
pub fn shadow_denies(policy: &Policy, token: &Token, ask: &Ask<'_>) -> Option<bool> {
    let shadow = token.spec.shadow_scopes.as_ref()?;
    let grant = |api: ApiId| {
        shadow
            .binary_search_by_key(&api, |g| g.api)
            .ok()
            .map(|i| shadow[i].methods)
    };
    let allows = |method: Option<u8>| {
        let Some(idx) = method else { return false };
        let mut ok = false;
        policy
            .catalog
            .for_each_match(ask.path, &token.spec.account, |m| {
                if grant(m.api).is_some_and(|g| g.contains(idx)) {
                    ok = true;
                }
            });
        ok
    };
    Some(!(allows(ask.method) && ask.overrides.iter().all(|o| allows(*o))))
}
