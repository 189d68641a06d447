//! The per-request decision: authenticate the credentials, check the client address
//! against the token's `allowed_ips`, then authorize the method(s) and canonical path
//! against the token's scopes. Pure: no I/O, no HTTP responses.
//!
//! The gateway and `scopegate explain` both call [`decide`], so what `explain` prints is
//! what the gateway does.

use std::net::IpAddr;

use crate::domain::auth::Credentials;
use crate::domain::labels::DecisionLabel;
use crate::domain::model::{MethodSet, TokenStatus};
use crate::domain::policy::{Policy, Token};
use crate::domain::scope::catalog::{ApiId, Match};

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

/// A refusal, with the token when one was identified (for metrics and logs). `R` is the
/// per-token runtime state the gateway attaches (`()` for `explain`).
pub enum Denial<'p, R> {
    Credentials {
        token: Option<&'p Token<R>>,
        reason: CredentialFailure,
    },
    Scope {
        token: &'p Token<R>,
        reason: ScopeFailure,
    },
    /// Right secret, but the client address is outside the token's `allowed_ips` (or
    /// could not be established behind a trusted proxy).
    Address { token: &'p Token<R> },
}

// Manual impls: a derive would require `R: Clone`/`R: Debug` of the runtime state, which
// only sits behind a reference here.
impl<R> Clone for Denial<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for Denial<'_, R> {}
impl<R> std::fmt::Debug for Denial<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denial::Credentials { token, reason } => f
                .debug_struct("Credentials")
                .field("token", token)
                .field("reason", reason)
                .finish(),
            Denial::Scope { token, reason } => f
                .debug_struct("Scope")
                .field("token", token)
                .field("reason", reason)
                .finish(),
            Denial::Address { token } => f.debug_struct("Address").field("token", token).finish(),
        }
    }
}

impl<R> Denial<'_, R> {
    pub fn label(&self) -> DecisionLabel {
        match self {
            Denial::Credentials {
                reason: CredentialFailure::Disabled,
                ..
            } => DecisionLabel::DeniedDisabled,
            Denial::Credentials { .. } => DecisionLabel::DeniedCredentials,
            Denial::Scope { .. } => DecisionLabel::DeniedScope,
            Denial::Address { .. } => DecisionLabel::DeniedIp,
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
            Denial::Address { .. } => "ip_not_allowed",
        }
    }
}

impl<R> std::fmt::Debug for Token<R> {
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
pub struct Allowed<'p, R> {
    pub token: &'p Token<R>,
    /// The most specific matching API among the token's scopes; `None` for a legacy
    /// token's request outside the catalog.
    pub api: Option<ApiId>,
    /// Index into `settings.upstreams`.
    pub upstream: usize,
    pub secret: SecretUsed,
}

impl<R> Clone for Allowed<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for Allowed<'_, R> {}

/// What is being asked: standard-method indexes (see `model::KNOWN_METHODS`).
pub struct Ask<'a> {
    /// The wire method, `None` for an extension method (never grantable).
    pub method: Option<u8>,
    /// Methods named by override headers or `_method`; `None` entries are unknown verbs.
    pub overrides: &'a [Option<u8>],
    /// The canonical path.
    pub path: &'a str,
}

/// [`authenticate_found`] with its own lookup of the SID.
#[cfg(any(test, feature = "test-util"))]
pub fn authenticate<'p, R>(
    policy: &'p Policy<R>,
    creds: &Credentials,
    now_unix: i64,
) -> Result<(&'p Token<R>, SecretUsed), Denial<'p, R>> {
    let found = policy.tokens.get(creds.sid()).map(|t| &**t);
    authenticate_found(policy, found, creds, now_unix)
}

/// Checks the credentials: a well-formed `sgs_` secret if prefixed, known, not deleted,
/// right secret, active, not expired. `found` is `policy`'s token for `creds.sid()`,
/// looked up by the caller, which needs it before (the gateway's throttle).
pub fn authenticate_found<'p, R>(
    policy: &'p Policy<R>,
    found: Option<&'p Token<R>>,
    creds: &Credentials,
    now_unix: i64,
) -> Result<(&'p Token<R>, SecretUsed), Denial<'p, R>> {
    let deny = |token, reason| Denial::Credentials { token, reason };
    if crate::domain::secret_format::shape(creds.secret())
        == crate::domain::secret_format::Shape::Corrupt
    {
        return Err(deny(None, CredentialFailure::BadChecksum));
    }
    let Some(token) = found else {
        let reason = if policy.deleted.contains(creds.sid()) {
            CredentialFailure::Deleted
        } else {
            CredentialFailure::UnknownSid
        };
        return Err(deny(None, reason));
    };
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
pub fn authorize<'p, R>(
    policy: &'p Policy<R>,
    token: &'p Token<R>,
    secret: SecretUsed,
    ask: &Ask<'_>,
) -> Result<Allowed<'p, R>, Denial<'p, R>> {
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
    if !ask.overrides.is_empty() {
        let granted = grants_on_path(policy, token, ask.path);
        if ask
            .overrides
            .iter()
            .any(|over| !over.is_some_and(|i| granted.contains(i)))
        {
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

/// Every method the token is granted on some API of its scopes that matches `path`: what
/// a method override may name (the wire method must be granted on the API the request is
/// counted under; an override only on some API that matches).
pub fn grants_on_path<R>(policy: &Policy<R>, token: &Token<R>, path: &str) -> MethodSet {
    let mut granted = MethodSet::EMPTY;
    policy
        .catalog
        .for_each_match(path, token.spec.account.as_str(), |m| {
            if let Some(g) = token.grant(m.api) {
                granted = granted.union(g.methods);
            }
        });
    granted
}

/// Checks the client address against the token's `allowed_ips`; `client` is `None` when
/// the address could not be established (a malformed `X-Forwarded-For` from a trusted
/// proxy), which only a token without an allowlist accepts.
///
/// It runs after [`authenticate`], so only a caller holding the token's secret can tell
/// this refusal from a wrong secret at all (and the response is the same): the check adds
/// nothing to what an attacker without the secret can learn about which SIDs exist, and
/// costs the same time for every SID.
pub fn check_address<'p, R>(
    token: &'p Token<R>,
    client: Option<IpAddr>,
) -> Result<(), Denial<'p, R>> {
    match (&token.spec.allowed_ips, client) {
        (None, _) => Ok(()),
        (Some(allowed), Some(ip)) if allowed.contains(ip) => Ok(()),
        (Some(_), _) => Err(Denial::Address { token }),
    }
}

/// The three steps, as the gateway runs them: authenticate, check the client address,
/// authorize. The gateway runs them as separate phases; the benchmark and the tests call
/// them together.
#[cfg(any(test, feature = "test-util"))]
pub fn decide<'p, R>(
    policy: &'p Policy<R>,
    creds: &Credentials,
    ask: &Ask<'_>,
    client: Option<IpAddr>,
    now_unix: i64,
) -> Result<Allowed<'p, R>, Denial<'p, R>> {
    let (token, secret) = authenticate(policy, creds, now_unix)?;
    check_address(token, client)?;
    authorize(policy, token, secret, ask)
}

/// For a request allowed under `scopes`: would the token's `shadow_scopes` (a proposed
/// narrower set) deny it? `None` when the token has no shadow set.
pub fn shadow_denies<R>(policy: &Policy<R>, token: &Token<R>, ask: &Ask<'_>) -> Option<bool> {
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

#[cfg(test)]
mod tests;
