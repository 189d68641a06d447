use super::*;
use crate::config::RateLimit;
use crate::domain::model::{SecretHash, TokenKind};

fn methods(list: &[&str]) -> MethodSet {
    let mut set = MethodSet::EMPTY;
    for m in list {
        set.grant(crate::domain::model::method_index(m).expect("known method"));
    }
    set
}

fn token(sid: &str, secret: &str, scopes: Vec<ScopeGrant>) -> TokenSpec {
    TokenSpec {
        sid: sid.into(),
        account: "IRacme".into(),
        name: format!("{sid}-name"),
        description: String::new(),
        primary_contact: String::new(),
        developer_emails: Vec::new(),
        api_version: None,
        status: TokenStatus::Active,
        kind: TokenKind::Scoped,
        hash: SecretHash::of_secret(secret.as_bytes()),
        previous: None,
        environment: None,
        created_at: None,
        rotated_at: None,
        expires_at: None,
        scopes,
        shadow_scopes: None,
        rate_limit: None,
        allowed_ips: None,
        quota: None,
        scope_limits: Vec::new(),
    }
}

fn grant(api: u16, m: &[&str]) -> ScopeGrant {
    ScopeGrant {
        api: api as _,
        methods: methods(m),
    }
}

fn refs(sids: &[&str]) -> Vec<TokenRef> {
    sids.iter()
        .map(|s| TokenRef {
            sid: (*s).into(),
            name: format!("{s}-name"),
        })
        .collect()
}

const APIS: &[&str] = &["campaigns", "reports"];

#[test]
fn identical_sets_have_no_diff() {
    let a = vec![token("SGa", "s", vec![grant(0, &["GET"])])];
    assert!(diff_tokens(&a, APIS, &a, APIS).is_empty());
}

#[test]
fn added_removed_disabled_enabled() {
    let mut off = token("SGoff", "s", vec![]);
    off.status = TokenStatus::Disabled;
    let old = vec![
        token("SGgone", "s", vec![]),
        token("SGkeep", "s", vec![]),
        token("SGdis", "s", vec![]),
        off.clone(),
    ];
    let mut dis = token("SGdis", "s", vec![]);
    dis.status = TokenStatus::Disabled;
    off.status = TokenStatus::Active;
    let new = vec![
        token("SGnew", "s", vec![]),
        token("SGkeep", "s", vec![]),
        dis,
        off,
    ];
    let d = diff_tokens(&old, APIS, &new, APIS);
    assert_eq!(d.added, refs(&["SGnew"]));
    assert_eq!(d.removed, refs(&["SGgone"]));
    assert_eq!(d.disabled, refs(&["SGdis"]));
    assert_eq!(d.enabled, refs(&["SGoff"]));
    assert!(d.scopes_changed.is_empty() && d.rotated.is_empty());
    assert!(d.other_changed.is_empty());
}

#[test]
fn scope_changes_compare_by_api_name_not_id() {
    let old = vec![
        token("SGa", "s", vec![grant(0, &["GET"])]),
        token("SGb", "s", vec![grant(0, &["GET"])]),
    ];
    // The catalog gained an API in front: ids shift, names stay.
    let new_apis = &["aaa", "campaigns", "reports"];
    let new = vec![
        token("SGa", "s", vec![grant(1, &["GET"])]),
        token("SGb", "s", vec![grant(1, &["GET", "POST"])]),
    ];
    let d = diff_tokens(&old, APIS, &new, new_apis);
    assert_eq!(d.scopes_changed, refs(&["SGb"]));
    let moved = vec![token("SGa", "s", vec![grant(2, &["GET"])])];
    let d = diff_tokens(&old[..1], APIS, &moved, new_apis);
    assert_eq!(d.scopes_changed, refs(&["SGa"]), "same id, other API");
}

#[test]
fn rotation_is_a_hash_change_and_nothing_secret_is_reported() {
    let old = vec![token("SGa", "old-secret", vec![])];
    let mut rotated = token("SGa", "new-secret", vec![]);
    rotated.previous = Some((
        SecretHash::of_secret(b"old-secret"),
        time::OffsetDateTime::UNIX_EPOCH,
    ));
    let d = diff_tokens(&old, APIS, &[rotated], APIS);
    assert_eq!(d.rotated, refs(&["SGa"]));
    assert!(d.other_changed.is_empty(), "{:?}", d.other_changed);
    let text = format!("{d:?} {}", List(d.rotated.iter(), MAX_LISTED));
    assert!(!text.contains("secret"), "{text}");
    assert!(!text.contains(&hex_of("new-secret")), "{text}");
}

fn hex_of(secret: &str) -> String {
    SecretHash::of_secret(secret.as_bytes())
        .to_stored()
        .trim_start_matches("sha256:")
        .to_owned()
}

#[test]
fn other_fields_are_named() {
    let old = vec![token("SGa", "s", vec![])];
    let mut new = token("SGa", "s", vec![]);
    new.rate_limit = Some(RateLimit {
        requests_per_second: 1.0,
        burst: 1,
    });
    new.description = "now described".into();
    new.shadow_scopes = Some(vec![grant(1, &["GET"])]);
    let d = diff_tokens(&old, APIS, &[new], APIS);
    assert_eq!(
        d.other_changed,
        vec![(
            refs(&["SGa"]).remove(0),
            vec!["rate_limit", "shadow_scopes", "metadata"]
        )]
    );
}

#[test]
fn ref_list_is_capped() {
    let many: Vec<TokenRef> = (0..60)
        .map(|i| TokenRef {
            sid: format!("SG{i}"),
            name: String::new(),
        })
        .collect();
    let text = List(many.iter(), MAX_LISTED).to_string();
    assert!(text.ends_with(r#", "... 10 more"]"#), "{text}");
    assert_eq!(
        List(refs(&["SGa"]).iter(), MAX_LISTED).to_string(),
        r#"["SGa (SGa-name)"]"#
    );
}

/// Settings as the validator builds them (a literal would break whenever a field is
/// added).
fn settings() -> Settings {
    let yaml = "listen: 127.0.0.1:8080\nadmin_listen: 127.0.0.1:9901\n\
                    upstreams: {main: {url: \"http://127.0.0.1:1\"}}\n\
                    default_upstream: main\n\
                    apis: {campaigns: {paths: [\"/c/**\"]}}\n";
    config::parse_gateway(Path::new("/c/scopegate.yaml"), yaml).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn restart_needed_names_fixed_settings_only() {
    let running = settings();
    let mut new = settings();
    new.access_log = false;
    new.timeouts.upstream_response = Duration::from_secs(1);
    new.limits.max_target_length = 10;
    new.tokens_path = "/elsewhere/tokens.yaml".into();
    assert!(restart_needed(&running, &new).is_empty());
    new.listen = "127.0.0.1:8081".parse().unwrap();
    new.timeouts.shutdown = Duration::from_secs(1);
    new.limits.max_connections = 1;
    new.http2_cleartext = !running.http2_cleartext;
    assert_eq!(
        restart_needed(&running, &new),
        vec![
            "listen",
            "http2_cleartext",
            "limits.max_connections",
            "timeouts.shutdown"
        ]
    );
}

#[test]
fn reading_is_not_a_change() {
    use notify::event::{CreateKind, ModifyKind, RenameMode};
    assert!(!relevant_kind(&EventKind::Access(AccessKind::Open(
        AccessMode::Any
    ))));
    assert!(!relevant_kind(&EventKind::Access(AccessKind::Close(
        AccessMode::Read
    ))));
    assert!(relevant_kind(&EventKind::Access(AccessKind::Close(
        AccessMode::Write
    ))));
    assert!(relevant_kind(&EventKind::Create(CreateKind::File)));
    assert!(relevant_kind(&EventKind::Modify(ModifyKind::Name(
        RenameMode::To
    ))));
}

#[test]
fn every_list_is_sorted_by_sid_whatever_the_input_order() {
    let sids = ["SGm", "SGb", "SGz", "SGa", "SGq"];
    let old: Vec<TokenSpec> = sids
        .iter()
        .map(|s| token(&format!("{s}old"), "s", vec![]))
        .chain(sids.iter().map(|s| token(s, "s", vec![])))
        .collect();
    let new: Vec<TokenSpec> = sids
        .iter()
        .map(|s| token(&format!("{s}new"), "s", vec![]))
        .chain(sids.iter().map(|s| token(s, "t", vec![grant(1, &["GET"])])))
        .collect();
    let d = diff_tokens(&old, APIS, &new, APIS);
    let sorted = |suffix: &str| {
        let mut v: Vec<String> = sids.iter().map(|s| format!("{s}{suffix}")).collect();
        v.sort();
        v
    };
    let sids_of = |list: &[TokenRef]| list.iter().map(|r| r.sid.clone()).collect::<Vec<_>>();
    assert_eq!(sids_of(&d.added), sorted("new"));
    assert_eq!(sids_of(&d.removed), sorted("old"));
    assert_eq!(sids_of(&d.rotated), sorted(""));
    assert_eq!(sids_of(&d.scopes_changed), sorted(""));
}

#[test]
fn equal_scope_ids_under_a_changed_catalog_are_compared_by_name() {
    // The same ids mean other APIs once the catalog changed: a scope change.
    let old = vec![token("SGa", "s", vec![grant(0, &["GET"])])];
    let d = diff_tokens(&old, APIS, &old, &["reports", "campaigns"]);
    assert_eq!(d.scopes_changed, refs(&["SGa"]));
}
