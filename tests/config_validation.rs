//! Configuration validation: one case per error kind. Each asserts that the message names
//! the file, the line and the field path, and that all errors are reported at once.

mod support;

use scopegate::config::{self, ConfigError};
use support::{hash, TempDir};

const GATEWAY: &str = r#"listen: 127.0.0.1:8080
admin_listen: 127.0.0.1:9901
upstreams:
  main:
    url: http://127.0.0.1:3000
api_versions: [v14, v15]
apis:
  campaigns:
    paths: ["/Mediapartners/{account}/Campaigns/**"]
    upstream: main
"#;

fn token(sid: &str, extra: &str) -> String {
    format!(
        "      - sid: {sid}\n        name: n-{sid}\n        auth_token_hash: \"{}\"\n        scopes: [{{api: campaigns, methods: [GET]}}]\n{extra}",
        hash("s")
    )
}

fn tokens_with(body: &str) -> String {
    format!("accounts:\n  - id: IRacme\n    tokens:\n{body}")
}

/// Loads the two texts; returns the errors.
fn errors(gateway: &str, tokens: &str) -> Vec<ConfigError> {
    let dir = TempDir::new();
    let cfg = dir.write("scopegate.yaml", gateway);
    dir.write("tokens.yaml", tokens);
    match config::load(&cfg) {
        Ok(_) => panic!("expected errors for:\n{gateway}\n---\n{tokens}"),
        Err(e) => e.0,
    }
}

/// The 1-based line of the first line containing `marker`.
fn line_of(text: &str, marker: &str) -> usize {
    text.lines()
        .position(|l| l.contains(marker))
        .expect("marker present")
        + 1
}

fn assert_error(errs: &[ConfigError], file: &str, field: &str, line: usize, words: &str) {
    let found = errs
        .iter()
        .find(|e| e.field == field)
        .unwrap_or_else(|| panic!("no error for field {field}; got: {errs:#?}"));
    assert!(found.file.ends_with(file), "{found}");
    assert_eq!(found.line, line, "{found}");
    assert!(found.message.contains(words), "{found}");
    assert!(!found.hint.is_empty(), "every error has a hint: {found}");
    let shown = found.to_string();
    assert!(
        shown.contains(&format!("{file}:{line}: {field}: ")),
        "{shown}"
    );
}

#[test]
fn unknown_api_in_scope() {
    let t = tokens_with(&token("SGa", "").replace("api: campaigns", "api: nope"));
    let errs = errors(GATEWAY, &t);
    assert_error(
        &errs,
        "tokens.yaml",
        "accounts[0].tokens[0].scopes[0].api",
        line_of(&t, "nope"),
        "unknown API `nope`",
    );
}

#[test]
fn bad_method() {
    let t = tokens_with(&token("SGa", "").replace("[GET]", "[GET, FETCH]"));
    let errs = errors(GATEWAY, &t);
    assert_error(
        &errs,
        "tokens.yaml",
        "accounts[0].tokens[0].scopes[0].methods[1]",
        line_of(&t, "FETCH"),
        "unknown method `FETCH`",
    );
}

#[test]
fn shorthands_are_lower_case_and_typos_are_named() {
    let ok = tokens_with(&token("SGa", "").replace("[GET]", "[read, write, all]"));
    let dir = TempDir::new();
    let cfg = dir.write("scopegate.yaml", GATEWAY);
    dir.write("tokens.yaml", &ok);
    let loaded = config::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let methods = loaded.tokens[0].scopes[0].methods;
    assert_eq!(methods, scopegate::domain::model::MethodSet::ALL);
    let t = tokens_with(&token("SGa", "").replace("[GET]", "[read, Write]"));
    let errs = errors(GATEWAY, &t);
    assert_error(
        &errs,
        "tokens.yaml",
        "accounts[0].tokens[0].scopes[0].methods[1]",
        line_of(&t, "Write"),
        "unknown method `Write`",
    );
    assert!(errs.iter().any(|e| e.hint.contains("read (GET, HEAD)")));
}

#[test]
fn duplicate_sid() {
    let t = tokens_with(&format!("{}{}", token("SGa", ""), token("SGa", "")));
    let errs = errors(GATEWAY, &t);
    let second = t
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("sid: SGa"))
        .nth(1)
        .unwrap()
        .0
        + 1;
    assert_error(
        &errs,
        "tokens.yaml",
        "accounts[0].tokens[1].sid",
        second,
        "duplicate SID",
    );
}

#[test]
fn over_the_active_token_limit() {
    let body: String = (0..21).map(|i| token(&format!("SG{i}"), "")).collect();
    let t = tokens_with(&body);
    let errs = errors(GATEWAY, &t);
    assert_error(
        &errs,
        "tokens.yaml",
        "accounts[0].tokens[20]",
        line_of(&t, "sid: SG20"),
        "more than 20 active scoped tokens",
    );
}

#[test]
fn disabled_and_legacy_tokens_do_not_count_toward_the_limit() {
    let mut body: String = (0..20).map(|i| token(&format!("SG{i}"), "")).collect();
    body.push_str(&token("SGoff", "        status: disabled\n"));
    body.push_str(&token("SGold", "        kind: legacy\n"));
    let dir = TempDir::new();
    let cfg = dir.write("scopegate.yaml", GATEWAY);
    dir.write("tokens.yaml", &tokens_with(&body));
    let loaded = config::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.tokens.len(), 22);
}

#[test]
fn unknown_upstream() {
    let g = GATEWAY.replace("upstream: main", "upstream: elsewhere");
    let errs = errors(&g, &tokens_with(&token("SGa", "")));
    assert_error(
        &errs,
        "scopegate.yaml",
        "apis.campaigns.upstream",
        line_of(&g, "elsewhere"),
        "unknown upstream `elsewhere`",
    );
}

#[test]
fn malformed_hash() {
    let t = tokens_with(&token("SGa", "")).replace("sha256:", "sha256:zz");
    let errs = errors(GATEWAY, &t);
    assert_error(
        &errs,
        "tokens.yaml",
        "accounts[0].tokens[0].auth_token_hash",
        line_of(&t, "auth_token_hash"),
        "malformed hash",
    );
}

#[test]
fn bad_duration() {
    let g = format!("{GATEWAY}timeouts:\n  upstream_response: soon\n");
    let errs = errors(&g, &tokens_with(&token("SGa", "")));
    assert_error(
        &errs,
        "scopegate.yaml",
        "timeouts.upstream_response",
        line_of(&g, "soon"),
        "`soon` is not a duration",
    );
}

/// A value of the wrong type names its key and line, top-level and nested (serde_yaml's
/// own message names only the type, and had every such error at line 1).
#[test]
fn wrong_type_names_the_key_and_its_line() {
    let cases = [
        (
            "proxy_protocol: maybe\n",
            "proxy_protocol",
            "maybe",
            "expected a boolean",
        ),
        (
            "worker_cpu_affinity: always\n",
            "worker_cpu_affinity",
            "always",
            "expected `auto` or `off`",
        ),
        (
            "usage:\n  backend: mongo\n",
            "usage.backend",
            "mongo",
            "unknown variant `mongo`",
        ),
        (
            "limits:\n  max_headers: many\n",
            "limits.max_headers",
            "many",
            "invalid type: string \"many\"",
        ),
    ];
    for (extra, field, marker, words) in cases {
        let g = format!("{GATEWAY}{extra}");
        let errs = errors(&g, &tokens_with(&token("SGa", "")));
        assert_error(&errs, "scopegate.yaml", field, line_of(&g, marker), words);
    }
    // An unknown key nested in a section keeps its path once.
    let g = format!("{GATEWAY}timeouts:\n  bogus: 1s\n");
    let errs = errors(&g, &tokens_with(&token("SGa", "")));
    assert_error(
        &errs,
        "scopegate.yaml",
        "timeouts.bogus",
        line_of(&g, "bogus"),
        "unknown field `bogus`",
    );
}

#[test]
fn unknown_field_is_named() {
    let t = tokens_with(&token("SGa", "        scpoes: []\n"));
    let errs = errors(GATEWAY, &t);
    assert_error(
        &errs,
        "tokens.yaml",
        "accounts[0].tokens[0].scpoes",
        line_of(&t, "scpoes"),
        "unknown field `scpoes`",
    );
}

#[test]
fn bad_email_and_api_version_and_timestamp() {
    let t = tokens_with(&token(
        "SGa",
        "        primary_contact: not-an-email\n        api_version: v9\n        expires_at: tomorrow\n",
    ));
    let errs = errors(GATEWAY, &t);
    assert_error(
        &errs,
        "tokens.yaml",
        "accounts[0].tokens[0].primary_contact",
        line_of(&t, "not-an-email"),
        "not an email",
    );
    assert_error(
        &errs,
        "tokens.yaml",
        "accounts[0].tokens[0].api_version",
        line_of(&t, "v9"),
        "unknown API version",
    );
    assert_error(
        &errs,
        "tokens.yaml",
        "accounts[0].tokens[0].expires_at",
        line_of(&t, "tomorrow"),
        "RFC 3339",
    );
}

#[test]
fn invalid_path_pattern() {
    let g = GATEWAY.replace("Campaigns/**", "**/Campaigns");
    let errs = errors(&g, &tokens_with(&token("SGa", "")));
    assert_error(
        &errs,
        "scopegate.yaml",
        "apis.campaigns.paths[0]",
        line_of(&g, "**/Campaigns"),
        "invalid path pattern",
    );
}

#[test]
fn deleted_sid_cannot_come_back() {
    let t = format!("{}deleted_sids: [SGa]\n", tokens_with(&token("SGa", "")));
    let errs = errors(GATEWAY, &t);
    assert_error(
        &errs,
        "tokens.yaml",
        "accounts[0].tokens[0].sid",
        line_of(&t, "sid: SGa"),
        "was deleted",
    );
}

#[test]
fn missing_hash_and_name() {
    let t = tokens_with("      - sid: SGa\n        scopes: []\n");
    let errs = errors(GATEWAY, &t);
    assert_error(
        &errs,
        "tokens.yaml",
        "accounts[0].tokens[0].auth_token_hash",
        line_of(&t, "sid: SGa"),
        "missing auth_token_hash",
    );
    assert_error(
        &errs,
        "tokens.yaml",
        "accounts[0].tokens[0].name",
        line_of(&t, "sid: SGa"),
        "needs a name",
    );
}

#[test]
fn bad_listen_address() {
    let g = GATEWAY.replace("127.0.0.1:8080", "localhost-8080");
    let errs = errors(&g, &tokens_with(&token("SGa", "")));
    assert_error(&errs, "scopegate.yaml", "listen", 1, "not an address");
}

#[test]
fn yaml_syntax_error_names_its_line() {
    let t = "accounts:\n  - id: IRacme\n    tokens: [\n      {sid: x\n";
    let errs = errors(GATEWAY, t);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].file.ends_with("tokens.yaml"));
    assert!(errs[0].line >= 3, "{}", errs[0]);
    assert!(errs[0].message.contains("YAML syntax"), "{}", errs[0]);
}

#[test]
fn missing_file_is_reported() {
    let dir = TempDir::new();
    let cfg = dir.write("scopegate.yaml", GATEWAY);
    let errs = config::load(&cfg).unwrap_err().0;
    assert!(errs[0].file.ends_with("tokens.yaml"));
    assert!(errs[0].message.contains("file not found"), "{}", errs[0]);
    // No line number for a file that could not be read.
    assert!(
        errs[0].to_string().contains("tokens.yaml: file not found"),
        "{}",
        errs[0]
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let t = tokens_with(&format!(
        "{}{}",
        token("SGa", "").replace("api: campaigns", "api: nope"),
        token("SGb", "        primary_contact: bad\n").replace("[GET]", "[FETCH]")
    ));
    let errs = errors(GATEWAY, &t);
    assert!(errs.len() >= 3, "{errs:#?}");
}

#[test]
fn type_error_in_the_whole_file_names_its_line() {
    let t = "# tokens\n\naccounts: 5\n";
    let errs = errors(GATEWAY, t);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].line, 3, "{}", errs[0]);
    assert!(errs[0].file.ends_with("tokens.yaml"));
}

/// A misspelled field inside a section is named with its whole path, at its own line (serde
/// names only the key, and located it at the start of the file).
#[test]
fn a_misspelled_nested_field_points_at_its_own_line() {
    let g = format!("{GATEWAY}limits:\n  max_headers: 50\n  max_conections: 5\n");
    let errs = errors(&g, &tokens_with(&token("SGa", "")));
    assert_error(
        &errs,
        "scopegate.yaml",
        "limits.max_conections",
        line_of(&g, "max_conections"),
        "unknown field `max_conections`",
    );
}

#[test]
fn admin_allowed_hosts_are_host_names_without_ports() {
    let g = format!(
        "{GATEWAY}admin:\n  allowed_hosts:\n    - gw.internal\n    - \"gw-1:9901\"\n    - \"bad name\"\n    - 7\n"
    );
    let errs = errors(&g, &tokens_with(&token("SGa", "")));
    assert_error(
        &errs,
        "scopegate.yaml",
        "admin.allowed_hosts[1]",
        line_of(&g, "gw-1:9901"),
        "has no port",
    );
    assert_error(
        &errs,
        "scopegate.yaml",
        "admin.allowed_hosts[2]",
        line_of(&g, "bad name"),
        "not a host name",
    );
    assert_error(
        &errs,
        "scopegate.yaml",
        "admin.allowed_hosts[3]",
        line_of(&g, "- 7"),
        "must be a string",
    );
    assert!(
        !errs.iter().any(|e| e.field == "admin.allowed_hosts[0]"),
        "{errs:#?}"
    );
}
