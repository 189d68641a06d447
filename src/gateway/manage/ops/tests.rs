//! Rewrites of a token's scope list keep what each remaining scope entry carries besides
//! `api` and `methods` (its own `rate_limit` and `quota`): through the real store, on a
//! tokens file in a temporary folder, validated as the gateway would load it.

use std::path::{Path, PathBuf};

use super::*;

/// Quotas need the shared Redis backend to validate; nothing here connects to it.
const GATEWAY: &str = r#"listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
tokens_file: tokens.yaml
rate_limit:
  requests_per_second: 100
  burst: 200
  backend: redis
  redis_url: redis://127.0.0.1:9/
upstreams:
  main:
    url: http://127.0.0.1:9
default_upstream: main
api_versions: ["v15"]
apis:
  campaigns:
    paths: ["/Mediapartners/{account}/Campaigns/**"]
  reports:
    paths: ["/Mediapartners/{account}/Reports/**"]
  public:
    paths: ["/public/**"]
"#;

const SID: &str = "SGlimits";

/// One token whose scopes are written in both styles, two of them with limits of their own.
fn tokens() -> String {
    format!(
        r#"accounts:
  - id: IRacme
    tokens:
      - sid: {SID}
        name: limits
        auth_token_hash: "{hash}"
        scopes:
          - {{api: campaigns, methods: [GET], rate_limit: {{requests_per_second: 5, burst: 10}}}}
          - api: reports
            methods: [GET]
            quota: {{requests: 3, per: month}}
          - {{api: public, methods: [GET]}}
        shadow_scopes:
          - {{api: campaigns, methods: [GET]}}
"#,
        hash = SecretHash::of_secret(b"limits-secret").to_stored()
    )
}

/// A store on a fresh copy of [`GATEWAY`] and [`tokens`].
fn store() -> (tempfile::TempDir, Store, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let config = dir.path().join("scopegate.yaml");
    std::fs::write(&config, GATEWAY).expect("the config is written");
    std::fs::write(dir.path().join("tokens.yaml"), tokens()).expect("the tokens are written");
    let store = Store::open(&config).unwrap_or_else(|f| panic!("{}", f.message));
    (dir, store, config)
}

fn actor() -> Actor {
    Actor {
        who: "test".into(),
        via: "test",
    }
}

fn scope(s: &str) -> ScopeArg {
    crate::gateway::manage::parse::parse_scope(s).expect("a valid scope")
}

/// Applies `change`, checks that the gateway still loads the file, and returns the token's
/// `scopes:` line as written.
#[track_caller]
fn scopes_after(change: &Change) -> String {
    let (_dir, store, config) = store();
    update(&store, SID, change, &actor()).unwrap_or_else(|f| panic!("{}", f.message));
    field_line(&store.tokens_path, &config, "scopes:")
}

#[track_caller]
fn field_line(tokens: &Path, config: &Path, key: &str) -> String {
    crate::config::load(config).unwrap_or_else(|e| panic!("the gateway refuses the file: {e}"));
    let text = std::fs::read_to_string(tokens).expect("the tokens file");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with(key))
        .collect();
    assert_eq!(lines.len(), 1, "one `{key}` line:\n{text}");
    lines[0].trim().to_owned()
}

const CAMPAIGNS_LIMITED: &str =
    "{api: campaigns, methods: [GET], rate_limit: {requests_per_second: 5, burst: 10}}";
const REPORTS_LIMITED: &str = "{api: reports, methods: [GET], quota: {requests: 3, per: month}}";

#[test]
fn adding_methods_keeps_every_scopes_limits() {
    let line = scopes_after(&Change {
        scopes: vec![scope("campaigns:POST"), scope("reports:POST")],
        ..Change::default()
    });
    assert_eq!(
        line,
        "scopes: [{api: campaigns, methods: [GET, POST], rate_limit: {requests_per_second: 5, burst: 10}}, \
         {api: reports, methods: [GET, POST], quota: {requests: 3, per: month}}, \
         {api: public, methods: [GET]}]"
    );
}

#[test]
fn a_removed_scope_takes_its_limits_and_the_others_keep_theirs() {
    let line = scopes_after(&Change {
        remove_scope: vec!["campaigns".into()],
        scopes: vec![scope("public:POST")],
        ..Change::default()
    });
    assert_eq!(
        line,
        format!("scopes: [{REPORTS_LIMITED}, {{api: public, methods: [GET, POST]}}]")
    );
}

/// What `PATCH` with `scopes`, the console's editor and its "narrow" action send: the list
/// is replaced, and an API that stays in it keeps the limits the file gave it.
#[test]
fn a_replaced_list_keeps_the_limits_of_the_apis_it_still_names() {
    let line = scopes_after(&Change {
        clear_scopes: true,
        scopes: vec![scope("reports:GET,POST"), scope("public:GET")],
        ..Change::default()
    });
    assert_eq!(
        line,
        "scopes: [{api: reports, methods: [GET, POST], quota: {requests: 3, per: month}}, \
         {api: public, methods: [GET]}]"
    );
}

#[test]
fn cleared_scopes_keep_no_limits() {
    let line = scopes_after(&Change {
        clear_scopes: true,
        ..Change::default()
    });
    assert_eq!(line, "scopes: []");
}

#[test]
fn promoted_shadow_scopes_keep_the_limits_of_apis_still_granted() {
    let line = scopes_after(&Change {
        promote_shadow: true,
        ..Change::default()
    });
    assert_eq!(line, format!("scopes: [{CAMPAIGNS_LIMITED}]"));
}

/// Shadow-scope edits leave the enforced scopes (and their limits) as they were.
#[test]
fn shadow_edits_leave_the_scopes_and_their_limits_alone() {
    let (_dir, store, config) = store();
    let before = field_line(&store.tokens_path, &config, "- api: reports");
    let change = Change {
        shadow_scopes: vec![scope("reports:GET")],
        ..Change::default()
    };
    update(&store, SID, &change, &actor()).unwrap_or_else(|f| panic!("{}", f.message));
    assert_eq!(
        field_line(&store.tokens_path, &config, "shadow_scopes:"),
        "shadow_scopes: [{api: campaigns, methods: [GET]}, {api: reports, methods: [GET]}]"
    );
    assert_eq!(
        field_line(&store.tokens_path, &config, "- api: reports"),
        before
    );
    assert_eq!(
        field_line(&store.tokens_path, &config, "quota:"),
        "quota: {requests: 3, per: month}"
    );
}

/// Fields this version does not know yet are carried too, whatever their shape, so that a
/// field added later is not dropped by an older CLI.
#[test]
fn every_other_field_of_an_entry_survives_a_rewrite() {
    let src = "scopes:\n  - api: campaigns\n    note: \"keep: me\"\n    methods: [GET]\n    \
               weights: [1, 2.5, -3, true, null, {deep: [x]}]\n  - {api: reports, methods: [GET]}\n";
    let doc: Value = serde_yaml::from_str(src).expect("valid YAML");
    let scopes = scopes_field(&doc, "scopes").expect("a scope list");
    let merged = merge_scopes(scopes, &[scope("campaigns:POST")]);
    let rendered = render_scope_list(&merged);
    assert_eq!(
        rendered,
        "[{api: campaigns, methods: [GET, POST], note: \"keep: me\", \
         weights: [1, 2.5, -3, true, null, {deep: [x]}]}, {api: reports, methods: [GET]}]"
    );
    let reread: Value = serde_yaml::from_str(&format!("scopes: {rendered}\n")).expect("valid YAML");
    assert_eq!(reread["scopes"][0]["weights"], doc["scopes"][0]["weights"]);
    assert_eq!(reread["scopes"][0]["note"], doc["scopes"][0]["note"]);
}
