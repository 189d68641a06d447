//! The decision in memory, over a policy compiled from the YAML fixture: each credential
//! failure, the previous secret's grace period, the client-address check, scopes (method,
//! path, account, overrides, the most specific API, legacy tokens) and `shadow_scopes`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::*;
use crate::config::test_fixture::{self as fx, Cred};
use crate::domain::auth::{parse_basic_value, Credentials};
use crate::domain::model::method_index;

/// Any instant after 2020 and before 2999 (the fixture's expiry and grace bounds).
const NOW: i64 = 1_800_000_000;

fn policy() -> Policy<()> {
    Policy::detached(fx::config(""), 1)
}

fn creds(sid: &str, secret: &str) -> Credentials {
    let value = format!("Basic {}", STANDARD.encode(format!("{sid}:{secret}")));
    parse_basic_value(value.as_bytes()).expect("well-formed Basic credentials")
}

fn authn<'p>(
    policy: &'p Policy<()>,
    sid: &str,
    secret: &str,
) -> Result<(&'p Token<()>, SecretUsed), Denial<'p, ()>> {
    authenticate(policy, &creds(sid, secret), NOW)
}

/// The credential failure, and the SID of the token it names, if any.
fn failure(
    result: Result<(&Token<()>, SecretUsed), Denial<'_, ()>>,
) -> (CredentialFailure, Option<String>) {
    match result {
        Err(Denial::Credentials { token, reason }) => (reason, token.map(|t| t.spec.sid.clone())),
        Err(other) => panic!("not a credential failure: {other:?}"),
        Ok((t, _)) => panic!("{} was accepted", t.spec.sid),
    }
}

/// Authorizes `method path` (with override methods) for `cred`, after authentication.
fn ask<'p>(
    policy: &'p Policy<()>,
    cred: &Cred,
    method: &str,
    path: &str,
    overrides: &[&str],
) -> Result<Allowed<'p, ()>, Denial<'p, ()>> {
    let overrides: Vec<Option<u8>> = overrides.iter().map(|m| method_index(m)).collect();
    let ask = Ask {
        method: method_index(method),
        overrides: &overrides,
        path,
    };
    decide(policy, &creds(cred.sid, cred.secret), &ask, None, NOW)
}

fn scope_failure(result: Result<Allowed<'_, ()>, Denial<'_, ()>>) -> ScopeFailure {
    match result {
        Err(Denial::Scope { reason, .. }) => reason,
        Err(other) => panic!("not a scope failure: {other:?}"),
        Ok(a) => panic!("allowed under {:?}", a.api),
    }
}

fn api_of(policy: &Policy<()>, allowed: &Allowed<'_, ()>) -> Option<String> {
    allowed.api.map(|a| policy.api_name(a).to_owned())
}

#[test]
fn the_current_secret_authenticates() {
    let p = policy();
    let (token, secret) = authn(&p, fx::READER.sid, fx::READER.secret).expect("accepted");
    assert_eq!(token.spec.sid, fx::READER.sid);
    assert_eq!(secret, SecretUsed::Current);
}

#[test]
fn each_credential_failure_is_told_apart_and_names_the_token_only_when_it_exists() {
    let p = policy();
    let reader = Some(fx::READER.sid.to_owned());
    assert_eq!(
        failure(authn(&p, fx::READER.sid, "guess")),
        (CredentialFailure::WrongSecret, reader)
    );
    assert_eq!(
        failure(authn(&p, "SGnobody", "x")),
        (CredentialFailure::UnknownSid, None)
    );
    assert_eq!(
        failure(authn(&p, fx::DELETED_SID, "x")),
        (CredentialFailure::Deleted, None)
    );
    assert_eq!(
        failure(authn(&p, fx::DISABLED.sid, fx::DISABLED.secret)),
        (
            CredentialFailure::Disabled,
            Some(fx::DISABLED.sid.to_owned())
        )
    );
    assert_eq!(
        failure(authn(&p, fx::EXPIRED.sid, fx::EXPIRED.secret)),
        (CredentialFailure::Expired, Some(fx::EXPIRED.sid.to_owned()))
    );
}

#[test]
fn disabled_and_expired_need_the_right_secret_first() {
    // A wrong secret for a disabled or expired token is a wrong secret: its state is only
    // told to a caller that proved the secret.
    let p = policy();
    assert_eq!(
        failure(authn(&p, fx::DISABLED.sid, "guess")).0,
        CredentialFailure::WrongSecret
    );
    assert_eq!(
        failure(authn(&p, fx::EXPIRED.sid, "guess")).0,
        CredentialFailure::WrongSecret
    );
}

#[test]
fn a_corrupt_sgs_secret_is_refused_before_the_sid_is_looked_up() {
    let p = policy();
    let secret = crate::domain::secret_format::generate().expect("random secret");
    let mut corrupt = secret.to_string();
    let last = corrupt.pop().expect("non-empty");
    corrupt.push(if last == 'A' { 'B' } else { 'A' });
    // Even for a SID that exists, and one that does not: no token is named.
    assert_eq!(
        failure(authn(&p, fx::READER.sid, &corrupt)),
        (CredentialFailure::BadChecksum, None)
    );
    assert_eq!(
        failure(authn(&p, "SGnobody", &corrupt)),
        (CredentialFailure::BadChecksum, None)
    );
}

#[test]
fn the_previous_secret_works_only_inside_its_grace_period() {
    let p = policy();
    let (_, used) = authn(&p, fx::GRACE.sid, fx::GRACE_OLD).expect("previous secret in grace");
    assert_eq!(used, SecretUsed::Previous);
    let (_, used) = authn(&p, fx::GRACE.sid, fx::GRACE.secret).expect("current secret");
    assert_eq!(used, SecretUsed::Current);
    assert_eq!(
        failure(authn(&p, fx::LAPSED.sid, fx::LAPSED_OLD)).0,
        CredentialFailure::WrongSecret
    );
    assert!(authn(&p, fx::LAPSED.sid, fx::LAPSED.secret).is_ok());
    // The previous secret is carried into the allowed request.
    let allowed = {
        let ask = Ask {
            method: method_index("GET"),
            overrides: &[],
            path: fx::CAMPAIGNS,
        };
        decide(&p, &creds(fx::GRACE.sid, fx::GRACE_OLD), &ask, None, NOW)
    };
    assert_eq!(allowed.expect("allowed").secret, SecretUsed::Previous);
}

#[test]
fn the_address_check_follows_allowed_ips() {
    let p = policy();
    let pinned = &p.tokens[fx::PINNED.sid];
    let reader = &p.tokens[fx::READER.sid];
    let inside = Some("192.0.2.7".parse().unwrap());
    let outside = Some("198.51.100.1".parse().unwrap());
    assert!(check_address(pinned, inside).is_ok());
    assert!(matches!(
        check_address(pinned, outside),
        Err(Denial::Address { .. })
    ));
    // An address that could not be established passes only without an allowlist.
    assert!(matches!(
        check_address(pinned, None),
        Err(Denial::Address { .. })
    ));
    assert!(check_address(reader, None).is_ok());
    assert!(check_address(reader, outside).is_ok());
    // `decide` runs the check between authentication and scopes.
    let ask = Ask {
        method: method_index("GET"),
        overrides: &[],
        path: fx::CAMPAIGNS,
    };
    let right = creds(fx::PINNED.sid, fx::PINNED.secret);
    assert!(decide(&p, &right, &ask, inside, NOW).is_ok());
    let Err(denied) = decide(&p, &right, &ask, outside, NOW) else {
        panic!("allowed from outside allowed_ips");
    };
    assert_eq!(denied.label(), DecisionLabel::DeniedIp);
    assert_eq!(denied.reason(), "ip_not_allowed");
}

#[test]
fn scopes_grant_methods_per_api_and_pick_its_upstream() {
    let p = policy();
    let allowed = ask(&p, &fx::READER, "GET", fx::CAMPAIGNS, &[]).expect("reader GET");
    assert_eq!(api_of(&p, &allowed).as_deref(), Some("campaigns"));
    assert_eq!(p.settings.upstreams[allowed.upstream].name, "main");
    assert_eq!(
        scope_failure(ask(&p, &fx::READER, "POST", fx::CAMPAIGNS, &[])),
        ScopeFailure::Method {
            api: allowed.api.expect("an API")
        }
    );
    // An extension method is never granted.
    assert!(matches!(
        scope_failure(ask(&p, &fx::READER, "PURGE", fx::CAMPAIGNS, &[])),
        ScopeFailure::Method { .. }
    ));
    assert!(ask(&p, &fx::WRITER, "POST", fx::CAMPAIGNS, &[]).is_ok());
}

#[test]
fn paths_outside_the_scopes_or_the_account_match_no_api() {
    let p = policy();
    // Reports exist in the catalog, but not among the reader's scopes.
    assert_eq!(
        scope_failure(ask(
            &p,
            &fx::READER,
            "GET",
            "/Mediapartners/IRacme/Reports/x",
            &[]
        )),
        ScopeFailure::NoApi
    );
    assert_eq!(
        scope_failure(ask(&p, &fx::READER, "GET", "/nowhere", &[])),
        ScopeFailure::NoApi
    );
    // Another account's resources, under an API the token holds.
    assert_eq!(
        scope_failure(ask(
            &p,
            &fx::READER,
            "GET",
            "/Mediapartners/IRother/Campaigns",
            &[]
        )),
        ScopeFailure::NoApi
    );
    assert!(ask(
        &p,
        &fx::OTHER,
        "GET",
        "/Mediapartners/IRother/Campaigns",
        &[]
    )
    .is_ok());
}

#[test]
fn every_override_must_be_granted_on_the_path() {
    let p = policy();
    assert!(ask(&p, &fx::WRITER, "POST", fx::CAMPAIGNS, &["DELETE"]).is_ok());
    let campaigns = ask(&p, &fx::READER, "GET", fx::CAMPAIGNS, &[])
        .expect("reader GET")
        .api;
    assert_eq!(
        scope_failure(ask(&p, &fx::READER, "GET", fx::CAMPAIGNS, &["DELETE"])),
        ScopeFailure::Override { api: campaigns }
    );
    // An unknown verb in an override is refused even for a legal wire method.
    assert_eq!(
        scope_failure(ask(&p, &fx::WRITER, "POST", fx::CAMPAIGNS, &["FROB"])),
        ScopeFailure::Override { api: campaigns }
    );
    // One refused override among granted ones refuses the request.
    assert!(matches!(
        scope_failure(ask(
            &p,
            &fx::WRITER,
            "GET",
            fx::CAMPAIGNS,
            &["POST", "PATCH"]
        )),
        ScopeFailure::Override { .. }
    ));
}

#[test]
fn the_most_specific_api_is_recorded() {
    let p = policy();
    // The writer's campaigns scope covers `Campaigns/**`; `campaign_items` is more specific
    // but not among its scopes, so the request counts under campaigns.
    let items = "/Mediapartners/IRacme/Campaigns/7/Items";
    let allowed = ask(&p, &fx::WRITER, "GET", items, &[]).expect("writer GET items");
    assert_eq!(api_of(&p, &allowed).as_deref(), Some("campaigns"));
    // A legacy token counts under the most specific catalog API, granted or not.
    let allowed = ask(&p, &fx::LEGACY, "GET", items, &[]).expect("legacy GET items");
    assert_eq!(api_of(&p, &allowed).as_deref(), Some("campaign_items"));
}

#[test]
fn legacy_tokens_keep_full_access_through_the_default_upstream() {
    let p = policy();
    let allowed = ask(&p, &fx::LEGACY, "DELETE", "/anything/at/all", &["PATCH"])
        .expect("legacy tokens predate scopes");
    assert_eq!(allowed.api, None);
    assert_eq!(Some(allowed.upstream), p.settings.default_upstream);
}

#[test]
fn shadow_scopes_say_what_they_would_deny() {
    let p = policy();
    let shadow = &p.tokens[fx::SHADOW.sid];
    let reader = &p.tokens[fx::READER.sid];
    let with = |method: &str, overrides: &[Option<u8>]| {
        let ask = Ask {
            method: method_index(method),
            overrides,
            path: fx::CAMPAIGNS,
        };
        (
            shadow_denies(&p, shadow, &ask),
            shadow_denies(&p, reader, &ask),
        )
    };
    assert_eq!(with("GET", &[]), (Some(false), None));
    assert_eq!(with("POST", &[]), (Some(true), None));
    // An override outside the shadow set is a would-be denial too.
    assert_eq!(with("GET", &[method_index("POST")]), (Some(true), None));
    // The scopes, not the shadow, decide: POST is served.
    assert!(ask(&p, &fx::SHADOW, "POST", fx::CAMPAIGNS, &[]).is_ok());
}

#[test]
fn labels_and_reasons_of_each_denial() {
    let p = policy();
    let reader = &p.tokens[fx::READER.sid];
    let cases: [(Denial<'_, ()>, DecisionLabel, &str); 5] = [
        (
            Denial::Credentials {
                token: None,
                reason: CredentialFailure::UnknownSid,
            },
            DecisionLabel::DeniedCredentials,
            "unknown_sid",
        ),
        (
            Denial::Credentials {
                token: Some(reader),
                reason: CredentialFailure::Disabled,
            },
            DecisionLabel::DeniedDisabled,
            "disabled",
        ),
        (
            Denial::Scope {
                token: reader,
                reason: ScopeFailure::NoApi,
            },
            DecisionLabel::DeniedScope,
            "no_matching_scope",
        ),
        (
            Denial::Scope {
                token: reader,
                reason: ScopeFailure::Override { api: None },
            },
            DecisionLabel::DeniedScope,
            "method_override_not_granted",
        ),
        (
            Denial::Address { token: reader },
            DecisionLabel::DeniedIp,
            "ip_not_allowed",
        ),
    ];
    for (denial, label, reason) in cases {
        assert_eq!(
            (denial.label(), denial.reason()),
            (label, reason),
            "{denial:?}"
        );
    }
}
