use super::super::spans::tests::TOKENS;
use super::*;
use proptest::prelude::*;

const SID: &str = "SG5f2a0000000000000000000000000000";

fn doc(src: &str) -> TokensDoc {
    match TokensDoc::parse(src) {
        Ok(d) => d,
        Err(e) => panic!("parse failed: {e}\n{src}"),
    }
}

fn ok(r: Result<(), EditError>) {
    if let Err(e) = r {
        panic!("edit failed: {e}");
    }
}

fn yaml(src: &str) -> Value {
    match serde_yaml::from_str(src) {
        Ok(v) => v,
        Err(e) => panic!("serde_yaml rejected the text: {e}\n{src}"),
    }
}

fn fields(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

/// Every `# comment` in `src`, in order (good enough for test fixtures: no `#` in strings).
fn comments(src: &str) -> Vec<String> {
    src.lines()
        .filter_map(|l| {
            let t = l.trim_start();
            if t.starts_with('#') {
                Some(t.to_string())
            } else {
                l.find(" #").map(|i| l[i + 1..].to_string())
            }
        })
        .collect()
}

fn assert_subsequence(needles: &[String], hay: &[String]) {
    let mut it = hay.iter();
    for n in needles {
        assert!(
            it.any(|h| h == n),
            "comment lost or reordered: {n:?}\nhave: {hay:?}"
        );
    }
}

#[test]
fn parses_example_and_finds_tokens() {
    let d = doc(TOKENS);
    assert_eq!(d.text(), TOKENS);
    assert_eq!(d.find_token(SID), Some((0, 0)));
    assert_eq!(d.find_token("SGnope"), None);
    assert_eq!(d.spans().line_of("accounts[0].tokens[0].kind"), 14);
}

#[test]
fn empty_and_comment_only_docs_are_valid() {
    for src in ["", "# just a comment\n", "\n\n# two\n# comments", "---\n"] {
        let d = doc(src);
        assert_eq!(d.find_token(SID), None);
    }
    assert!(matches!(
        TokensDoc::parse("- a\n- b\n"),
        Err(EditError::Unsupported(_))
    ));
    assert!(matches!(
        TokensDoc::parse("a: [1\n"),
        Err(EditError::Syntax(_))
    ));
    assert!(matches!(
        TokensDoc::parse("a: 1\n---\nb: 2\n"),
        Err(EditError::Syntax(_))
    ));
    assert!(matches!(
        TokensDoc::parse("a: 1\rb: 2\r"),
        Err(EditError::Unsupported(_))
    ));
}

#[test]
fn set_field_replaces_scalar_keeping_comment() {
    let mut d = doc(TOKENS);
    ok(d.set_token_field(SID, "status", "disabled"));
    assert!(d
        .text()
        .contains("\n        status: disabled                # or disabled\n"));
    // Only that line changed.
    let before: Vec<&str> = TOKENS.lines().collect();
    let after: Vec<&str> = d.text().lines().collect();
    assert_eq!(before.len(), after.len());
    let changed: Vec<usize> = (0..before.len())
        .filter(|&i| before[i] != after[i])
        .collect();
    assert_eq!(changed, vec![12]);

    ok(d.set_token_field(SID, "auth_token_hash", &quote_scalar("sha256:00ff")));
    assert!(d
        .text()
        .contains("\n        auth_token_hash: \"sha256:00ff\"\n"));
    ok(d.set_token_field(
        SID,
        "developer_emails",
        &flow_seq(&["a@x.example", "b@x.example"]),
    ));
    assert!(d
        .text()
        .contains("developer_emails: [a@x.example, b@x.example]\n"));
    let v = yaml(d.text());
    let tok = &v["accounts"][0]["tokens"][0];
    assert_eq!(tok["status"], Value::from("disabled"));
    assert_eq!(tok["auth_token_hash"], Value::from("sha256:00ff"));
    assert_eq!(tok["developer_emails"][1], Value::from("b@x.example"));
    assert_eq!(d.value(), &v);
}

#[test]
fn set_field_replaces_block_sequence_with_one_line() {
    let mut d = doc(TOKENS);
    let scopes = flow_seq_rendered(&[
        flow_map(&[
            ("api", quote_scalar("campaigns")),
            ("methods", flow_seq(&["GET", "POST"])),
        ]),
        flow_map(&[
            ("api", quote_scalar("reports")),
            ("methods", flow_seq(&["GET"])),
        ]),
    ]);
    ok(d.set_token_field(SID, "scopes", &scopes));
    assert!(d.text().contains(
            "\n        scopes: [{api: campaigns, methods: [GET, POST]}, {api: reports, methods: [GET]}]\n        rate_limit:"
        ));
    assert!(!d.text().contains("- {api: campaigns"));
    let v = yaml(d.text());
    assert_eq!(v["accounts"][0]["tokens"][0]["scopes"], yaml(&scopes));
    assert_eq!(TOKENS.lines().count() - 1, d.text().lines().count());
}

#[test]
fn set_field_inserts_at_end_of_token() {
    let mut d = doc(TOKENS);
    ok(d.set_token_field(SID, "expires_at", "2027-01-01T00:00:00Z"));
    assert!(d.text().contains(
            "rate_limit: {requests_per_second: 20, burst: 40}\n        expires_at: 2027-01-01T00:00:00Z\ndeleted_sids:"
        ));
    assert_eq!(
        yaml(d.text())["accounts"][0]["tokens"][0]["expires_at"],
        Value::from("2027-01-01T00:00:00Z")
    );
    // Empty value renders as a bare key (null).
    ok(d.set_token_field(SID, "note", ""));
    assert!(d.text().contains("\n        note:\n"));
    assert_eq!(
        yaml(d.text())["accounts"][0]["tokens"][0]["note"],
        Value::Null
    );
    // And a null value can be replaced again.
    ok(d.set_token_field(SID, "note", "hello"));
    assert!(d.text().contains("\n        note: hello\n"));
}

#[test]
fn set_field_multiline_values_and_key_line_comment() {
    let src = "accounts:\n  - id: A\n    tokens:\n      - sid: S1\n        description: |   # why\n          line one\n          line two\n        # about q\n        q: \"multi\n          line\"\n        scopes:   # the scopes\n          # first\n          - {api: x}\n          - {api: y}\n        last: 1\n";
    let mut d = doc(src);
    ok(d.set_token_field("S1", "description", "short"));
    ok(d.set_token_field("S1", "q", "single"));
    ok(d.set_token_field("S1", "scopes", "[{api: z}]"));
    let want = "accounts:\n  - id: A\n    tokens:\n      - sid: S1\n        description: short   # why\n        # about q\n        q: single\n        scopes: [{api: z}]   # the scopes\n        last: 1\n";
    assert_eq!(d.text(), want);
}

#[test]
fn remove_field_variants() {
    let mut d = doc(TOKENS);
    ok(d.remove_token_field(SID, "description"));
    assert!(!d.text().contains("description:"));
    assert_eq!(d.text().lines().count(), TOKENS.lines().count() - 1);
    // Absent: no-op.
    let before = d.text().to_string();
    ok(d.remove_token_field(SID, "nope"));
    assert_eq!(d.text(), before);
    // A multi-line value goes with all its lines.
    ok(d.remove_token_field(SID, "scopes"));
    assert!(!d.text().contains("api: campaigns"));
    assert!(d
        .text()
        .contains("rotated_at: 2026-08-01T00:00:00Z\n        rate_limit:"));
    // The first key shares the dash line: the next key moves up.
    ok(d.remove_token_field(SID, "sid"));
    assert!(d.text().contains(
        "      # nightly export\n      - name: reporting-sync\n        primary_contact:"
    ));
    let v = yaml(d.text());
    assert!(v["accounts"][0]["tokens"][0].get("sid").is_none());
    assert!(v["accounts"][0]["tokens"][0].get("description").is_none());
    assert_eq!(d.value(), &v);
}

#[test]
fn remove_only_field_is_refused() {
    let src = "accounts:\n  - id: A\n    tokens:\n      - sid: S1\n";
    let mut d = doc(src);
    assert!(matches!(
        d.remove_token_field("S1", "sid"),
        Err(EditError::Unsupported(_))
    ));
    assert_eq!(d.text(), src);
}

#[test]
fn append_token_to_existing_account() {
    let mut d = doc(TOKENS);
    let f = fields(&[
        ("sid", "SGbbbb"),
        ("name", "ci-bot"),
        ("status", "active"),
        ("scopes", "[{api: campaigns, methods: [GET]}]"),
    ]);
    ok(d.append_token("IRacme", Some("ignored"), &f));
    assert!(d.text().contains(
            "burst: 40}\n      - sid: SGbbbb\n        name: ci-bot\n        status: active\n        scopes: [{api: campaigns, methods: [GET]}]\ndeleted_sids:"
        ));
    assert_eq!(d.find_token("SGbbbb"), Some((0, 1)));
    let v = yaml(d.text());
    assert_eq!(v["accounts"][0]["name"], Value::from("Acme Corp"));
    assert_eq!(v["accounts"][0]["tokens"][1]["name"], Value::from("ci-bot"));
    // Duplicate SIDs are refused.
    assert!(matches!(
        d.append_token("IRacme", None, &f),
        Err(EditError::Unsupported(_))
    ));
    // First field must be the sid.
    let bad = fields(&[("name", "x"), ("sid", "SGc")]);
    assert!(matches!(
        d.append_token("IRacme", None, &bad),
        Err(EditError::Unsupported(_))
    ));
}

#[test]
fn append_token_creates_account() {
    let mut d = doc(TOKENS);
    ok(d.append_token(
        "IRnew",
        Some("New: Co"),
        &fields(&[("sid", "SGn1"), ("name", "n1")]),
    ));
    assert!(d.text().contains(
            "burst: 40}\n  - id: IRnew\n    name: \"New: Co\"\n    tokens:\n      - sid: SGn1\n        name: n1\ndeleted_sids:"
        ));
    assert_eq!(d.find_token("SGn1"), Some((1, 0)));
    // Without a name.
    ok(d.append_token("IRnameless", None, &fields(&[("sid", "SGn2")])));
    assert!(d
        .text()
        .contains("  - id: IRnameless\n    tokens:\n      - sid: SGn2\n"));
}

#[test]
fn append_to_account_without_tokens_key() {
    let src = "accounts:\n  - id: IRa   # first\n    name: A\n  # between\n  - id: IRb\n";
    let mut d = doc(src);
    ok(d.append_token("IRa", None, &fields(&[("sid", "SG1"), ("name", "one")])));
    assert_eq!(
            d.text(),
            "accounts:\n  - id: IRa   # first\n    name: A\n    tokens:\n      - sid: SG1\n        name: one\n  # between\n  - id: IRb\n"
        );
    ok(d.append_token("IRb", None, &fields(&[("sid", "SG2")])));
    assert!(d
        .text()
        .ends_with("  - id: IRb\n    tokens:\n      - sid: SG2\n"));
}

#[test]
fn append_to_empty_and_null_lists() {
    let src = "accounts:\n  - id: IRa\n    tokens: []   # none yet\n";
    let mut d = doc(src);
    ok(d.append_token("IRa", None, &fields(&[("sid", "SG1")])));
    assert_eq!(
        d.text(),
        "accounts:\n  - id: IRa\n    tokens:   # none yet\n      - sid: SG1\n"
    );

    let src = "accounts:   # all of them\nother: 1\n";
    let mut d = doc(src);
    ok(d.append_token("IRa", Some("A"), &fields(&[("sid", "SG1")])));
    assert_eq!(
            d.text(),
            "accounts:   # all of them\n  - id: IRa\n    name: A\n    tokens:\n      - sid: SG1\nother: 1\n"
        );
}

#[test]
fn append_to_empty_and_comment_only_files() {
    let mut d = doc("");
    ok(d.append_token(
        "IR1",
        Some("One"),
        &fields(&[("sid", "SG1"), ("name", "x")]),
    ));
    assert_eq!(
        d.text(),
        "accounts:\n  - id: IR1\n    name: One\n    tokens:\n      - sid: SG1\n        name: x\n"
    );
    let mut d = doc("# tokens file\n# keep me");
    ok(d.append_token("IR1", None, &fields(&[("sid", "SG1")])));
    assert_eq!(
        d.text(),
        "# tokens file\n# keep me\naccounts:\n  - id: IR1\n    tokens:\n      - sid: SG1\n"
    );
    // Top-level mapping without `accounts`.
    let mut d = doc("version: 1   # schema\n");
    ok(d.append_token("IR1", None, &fields(&[("sid", "SG1")])));
    assert_eq!(
        d.text(),
        "version: 1   # schema\naccounts:\n  - id: IR1\n    tokens:\n      - sid: SG1\n"
    );
    // No trailing newline.
    let mut d = doc("version: 1");
    ok(d.add_tombstone("SGx"));
    assert_eq!(d.text(), "version: 1\ndeleted_sids:\n  - SGx\n");
}

#[test]
fn four_space_indentation_is_detected() {
    let src =
        "accounts:\n    - id: IRa\n      tokens:\n          - sid: SG1\n            name: one\n";
    let mut d = doc(src);
    ok(d.append_token("IRa", None, &fields(&[("sid", "SG2"), ("name", "two")])));
    ok(d.append_token("IRb", None, &fields(&[("sid", "SG3")])));
    assert_eq!(
            d.text(),
            "accounts:\n    - id: IRa\n      tokens:\n          - sid: SG1\n            name: one\n          - sid: SG2\n            name: two\n    - id: IRb\n      tokens:\n          - sid: SG3\n"
        );

    let src = "accounts:\n    -   id: IRa\n        tokens:\n            -   sid: SG1\n                name: one\n";
    let mut d = doc(src);
    ok(d.append_token("IRa", None, &fields(&[("sid", "SG2"), ("name", "two")])));
    ok(d.append_token("IRb", None, &fields(&[("sid", "SG3")])));
    ok(d.set_token_field("SG3", "name", "three"));
    assert_eq!(
            d.text(),
            "accounts:\n    -   id: IRa\n        tokens:\n            -   sid: SG1\n                name: one\n            -   sid: SG2\n                name: two\n    -   id: IRb\n        tokens:\n            -   sid: SG3\n                name: three\n"
        );

    // A 4-space file whose only hint is a nested mapping.
    let mut d = doc("settings:\n    owner: ops\n");
    ok(d.add_tombstone("SGx"));
    assert_eq!(
        d.text(),
        "settings:\n    owner: ops\ndeleted_sids:\n    - SGx\n"
    );
}

#[test]
fn unindented_sequences_are_detected() {
    let src = "accounts:\n- id: IRa\n  tokens:\n  - sid: SG1\n    name: one\n";
    let mut d = doc(src);
    ok(d.append_token("IRa", None, &fields(&[("sid", "SG2")])));
    ok(d.append_token("IRb", None, &fields(&[("sid", "SG3")])));
    ok(d.add_tombstone("SGdead"));
    assert_eq!(
            d.text(),
            "accounts:\n- id: IRa\n  tokens:\n  - sid: SG1\n    name: one\n  - sid: SG2\n- id: IRb\n  tokens:\n  - sid: SG3\ndeleted_sids:\n- SGdead\n"
        );
}

#[test]
fn remove_token_variants() {
    let mut d = doc(TOKENS);
    ok(d.append_token("IRacme", None, &fields(&[("sid", "SG2"), ("name", "two")])));
    ok(d.remove_token(SID));
    // Exactly the item's lines went; the comment above it stays.
    assert!(d.text().contains(
        "    tokens:\n      # nightly export\n      - sid: SG2\n        name: two\ndeleted_sids:"
    ));
    ok(d.remove_token("SG2"));
    assert!(d
        .text()
        .contains("    tokens: []\n      # nightly export\ndeleted_sids:"));
    let v = yaml(d.text());
    assert_eq!(v["accounts"][0]["tokens"], Value::Sequence(vec![]));
    assert!(matches!(d.remove_token("SG2"), Err(EditError::NotFound(_))));
}

#[test]
fn tombstones() {
    let mut d = doc(TOKENS);
    ok(d.add_tombstone("SGnew"));
    assert!(d
        .text()
        .ends_with("deleted_sids: [SGdead..., SGnew]   # optional top-level tombstone list\n"));
    let before = d.text().to_string();
    ok(d.add_tombstone("SGnew"));
    ok(d.add_tombstone("SGdead..."));
    assert_eq!(d.text(), before);

    let mut d = doc("accounts: []\ndeleted_sids: []\n");
    ok(d.add_tombstone("a b"));
    assert_eq!(d.text(), "accounts: []\ndeleted_sids: [a b]\n");
    ok(d.add_tombstone("yes"));
    assert_eq!(d.text(), "accounts: []\ndeleted_sids: [a b, \"yes\"]\n");

    let mut d = doc("accounts: []\ndeleted_sids:\n  - SG1   # old\n# trailing\n");
    ok(d.add_tombstone("SG2"));
    assert_eq!(
        d.text(),
        "accounts: []\ndeleted_sids:\n  - SG1   # old\n  - SG2\n# trailing\n"
    );

    let mut d = doc("accounts: []\ndeleted_sids:\nz: 1\n");
    ok(d.add_tombstone("SG2"));
    assert_eq!(d.text(), "accounts: []\ndeleted_sids:\n  - SG2\nz: 1\n");

    let mut d = doc("accounts: []   # none\n# end\n");
    ok(d.add_tombstone("SG2"));
    assert_eq!(
        d.text(),
        "accounts: []   # none\ndeleted_sids:\n  - SG2\n# end\n"
    );
    let v = yaml(d.text());
    assert_eq!(v["deleted_sids"][0], Value::from("SG2"));
}

#[test]
fn all_comments_survive_every_operation() {
    let mut d = doc(TOKENS);
    let original = comments(TOKENS);
    ok(d.append_token(
        "IRacme",
        None,
        &fields(&[("sid", "SGcc"), ("name", "two"), ("kind", "legacy")]),
    ));
    ok(d.append_token("IRother", Some("Other"), &fields(&[("sid", "SGdd")])));
    ok(d.set_token_field(SID, "status", "disabled"));
    ok(d.set_token_field(SID, "kind", "legacy"));
    ok(d.set_token_field(SID, "scopes", "[{api: reports, methods: [GET]}]"));
    ok(d.set_token_field(SID, "expires_at", "never"));
    ok(d.set_token_field("SGcc", "rate_limit", "{requests_per_second: 1, burst: 1}"));
    ok(d.remove_token_field(SID, "description"));
    ok(d.remove_token_field(SID, "developer_emails"));
    ok(d.remove_token_field("SGcc", "kind"));
    ok(d.add_tombstone("SGold"));
    assert_subsequence(&original, &comments(d.text()));

    let expected = yaml(
        r#"
accounts:
  - id: IRacme
    name: Acme Corp
    tokens:
      - sid: SG5f2a0000000000000000000000000000
        name: reporting-sync
        primary_contact: data-eng@acme.example
        api_version: v15
        status: disabled
        kind: legacy
        auth_token_hash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        created_at: 2026-08-01T00:00:00Z
        rotated_at: 2026-08-01T00:00:00Z
        scopes: [{api: reports, methods: [GET]}]
        rate_limit: {requests_per_second: 20, burst: 40}
        expires_at: never
      - sid: SGcc
        name: two
        rate_limit: {requests_per_second: 1, burst: 1}
  - id: IRother
    name: Other
    tokens:
      - sid: SGdd
deleted_sids: [SGdead..., SGold]
"#,
    );
    assert_eq!(yaml(d.text()), expected);
}

#[test]
fn flow_style_tokens_are_refused_not_corrupted() {
    let src = "accounts:\n  - id: A\n    tokens:\n      - {sid: S1, name: x}\n      - sid: S2\n";
    let mut d = doc(src);
    assert_eq!(d.find_token("S1"), Some((0, 0)));
    assert!(matches!(
        d.set_token_field("S1", "name", "y"),
        Err(EditError::Unsupported(_))
    ));
    assert!(matches!(
        d.remove_token_field("S1", "name"),
        Err(EditError::Unsupported(_))
    ));
    assert_eq!(d.text(), src);
    // Deleting the whole one-line item is still safe.
    ok(d.remove_token("S1"));
    assert_eq!(
        d.text(),
        "accounts:\n  - id: A\n    tokens:\n      - sid: S2\n"
    );

    let src = "accounts: [{id: A, tokens: [{sid: S1}]}]\n";
    let mut d = doc(src);
    assert_eq!(d.find_token("S1"), Some((0, 0)));
    assert!(matches!(
        d.append_token("A", None, &fields(&[("sid", "S2")])),
        Err(EditError::Unsupported(_))
    ));
    assert!(matches!(
        d.remove_token("S1"),
        Err(EditError::Unsupported(_))
    ));
    assert!(matches!(
        d.set_token_field("S1", "x", "1"),
        Err(EditError::Unsupported(_))
    ));
    assert_eq!(d.text(), src);

    let mut d = doc("{accounts: []}\n");
    assert!(matches!(
        d.add_tombstone("S"),
        Err(EditError::Unsupported(_))
    ));
}

#[test]
fn bad_values_are_refused_and_doc_unchanged() {
    let mut d = doc(TOKENS);
    for v in ["a: b", "[unclosed", "x\ny", "- a", "*nope", "} x"] {
        let r = d.set_token_field(SID, "name", v);
        assert!(
            matches!(r, Err(EditError::Unsupported(_))),
            "{v:?} -> {r:?}"
        );
        assert_eq!(d.text(), TOKENS);
    }
    assert!(matches!(
        d.set_token_field("SGmissing", "name", "x"),
        Err(EditError::NotFound(_))
    ));
    assert!(matches!(
        d.set_token_field(SID, "", "x"),
        Err(EditError::Unsupported(_))
    ));
    // Odd but valid keys are quoted.
    ok(d.set_token_field(SID, "x: y", "1"));
    assert!(d.text().contains("\n        \"x: y\": 1\n"));
}

#[test]
fn crlf_files_stay_crlf() {
    let src = TOKENS.replace('\n', "\r\n");
    let mut d = doc(&src);
    ok(d.set_token_field(SID, "status", "disabled"));
    ok(d.append_token("IRacme", None, &fields(&[("sid", "SGz"), ("name", "z")])));
    ok(d.add_tombstone("SGq"));
    ok(d.remove_token_field(SID, "description"));
    assert!(!d.text().replace("\r\n", "").contains('\n'));
    assert!(d
        .text()
        .contains("\r\n      - sid: SGz\r\n        name: z\r\n"));
}

#[test]
fn anchors_and_block_scalars_in_tokens() {
    let src = "defaults: &rl {requests_per_second: 5, burst: 10}\naccounts:\n  - id: A\n    tokens:\n      - sid: S1\n        rate_limit: *rl\n        description: >-\n          folded\n          text\n      # next token\n      - sid: S2\n";
    let mut d = doc(src);
    ok(d.set_token_field("S1", "rate_limit", "{requests_per_second: 1, burst: 2}"));
    ok(d.remove_token_field("S1", "description"));
    assert_eq!(
            d.text(),
            "defaults: &rl {requests_per_second: 5, burst: 10}\naccounts:\n  - id: A\n    tokens:\n      - sid: S1\n        rate_limit: {requests_per_second: 1, burst: 2}\n      # next token\n      - sid: S2\n"
        );
}

const EXOTIC: &str = r#"%YAML 1.2
---
# header
accounts:   # list


  - id: "IRacme"   # quoted id
    name: 'Acme'
    tokens:

      - sid: SGaaaa
        description: >
          folded text
          # still text

        # comment between
        scopes:
          - api: campaigns   # c
            methods:
              - GET
              - POST
        rate_limit: &rl
          requests_per_second: 20
          burst: 40
      -   sid: SGbbbb
          name: "multi
            line"
          rate_limit: *rl
          note: plain
            continued  # trailing

  # comment at account level
  - id: IRbeta
    tokens:
    - sid: SGcc
      x: [1,
        2]   # after
      y: !!str 5
      z: |+
        keep

    # dedented comment
deleted_sids:
- SGold
...
"#;

#[test]
fn exotic_layouts_edit_cleanly() {
    let mut d = doc(EXOTIC);
    ok(d.set_token_field("SGbbbb", "note", "short"));
    ok(d.set_token_field("SGbbbb", "name", "n"));
    ok(d.set_token_field("SGaaaa", "description", "\"d\""));
    ok(d.set_token_field("SGaaaa", "scopes", "[]"));
    ok(d.set_token_field("SGcc", "x", "[3]"));
    ok(d.set_token_field("SGcc", "after_keep", "1"));
    ok(d.append_token("IRgamma", None, &fields(&[("sid", "SGg")])));
    ok(d.add_tombstone("SGt"));
    let want = r#"%YAML 1.2
---
# header
accounts:   # list


  - id: "IRacme"   # quoted id
    name: 'Acme'
    tokens:

      - sid: SGaaaa
        description: "d"

        # comment between
        scopes: []
        rate_limit: &rl
          requests_per_second: 20
          burst: 40
      -   sid: SGbbbb
          name: n
          rate_limit: *rl
          note: short  # trailing

  # comment at account level
  - id: IRbeta
    tokens:
    - sid: SGcc
      x: [3]   # after
      y: !!str 5
      z: |+
        keep

      after_keep: 1
  - id: IRgamma
    tokens:
      - sid: SGg
    # dedented comment
deleted_sids:
- SGold
- SGt
...
"#;
    assert_eq!(d.text(), want);
    assert_eq!(
        d.value()["accounts"][1]["tokens"][0]["z"],
        Value::from("keep\n\n")
    );

    // Edits that would orphan the `*rl` alias are refused, leaving the file alone.
    let before = d.text().to_string();
    assert!(matches!(
        d.remove_token_field("SGaaaa", "rate_limit"),
        Err(EditError::Unsupported(_))
    ));
    assert!(matches!(
        d.set_token_field("SGaaaa", "rate_limit", "{burst: 1}"),
        Err(EditError::Unsupported(_))
    ));
    assert!(matches!(
        d.remove_token("SGaaaa"),
        Err(EditError::Unsupported(_))
    ));
    assert_eq!(d.text(), before);
    // The alias user can be edited freely.
    ok(d.set_token_field("SGbbbb", "rate_limit", "{burst: 1}"));
    ok(d.remove_token("SGbbbb"));
    assert_eq!(d.find_token("SGbbbb"), None);
}

#[test]
fn file_round_trip_through_disk() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let path = dir.path().join("tokens.yaml");
    let write = |p: &std::path::Path, s: &str| {
        if let Err(e) = std::fs::write(p, s) {
            panic!("write: {e}");
        }
    };
    let read = |p: &std::path::Path| match std::fs::read_to_string(p) {
        Ok(s) => s,
        Err(e) => panic!("read: {e}"),
    };
    write(&path, TOKENS);
    let mut d = doc(&read(&path));
    ok(d.set_token_field(SID, "rotated_at", "2026-09-01T00:00:00Z"));
    write(&path, d.text());
    let again = doc(&read(&path));
    assert_eq!(
        again.value()["accounts"][0]["tokens"][0]["rotated_at"],
        Value::from("2026-09-01T00:00:00Z")
    );
    assert_eq!(comments(&read(&path)), comments(TOKENS));
}

#[test]
fn quote_scalar_examples() {
    let plain = [
        "campaigns",
        "GET",
        "Acme Corp",
        "data-eng@acme.example",
        "/v15/x",
        "SGdead...",
        "Ünïcödé",
        "a-b_c.d",
    ];
    for s in plain {
        assert_eq!(quote_scalar(s), s);
    }
    let quoted = [
        ("", "\"\""),
        ("yes", "\"yes\""),
        ("null", "\"null\""),
        ("123", "\"123\""),
        ("-", "\"-\""),
        (": x", "\": x\""),
        ("#x", "\"#x\""),
        (" pad ", "\" pad \""),
        ("a\"b\\c", "\"a\\\"b\\\\c\""),
        ("tab\there\n", "\"tab\\there\\n\""),
        (
            "\u{1}\u{7f}\u{85}\u{2028}\u{feff}",
            "\"\\x01\\x7F\\N\\L\\uFEFF\"",
        ),
        ("sha256:ab", "\"sha256:ab\""),
        ("a, b", "\"a, b\""),
        (".inf", "\".inf\""),
    ];
    for (s, q) in quoted {
        assert_eq!(quote_scalar(s), q, "{s:?}");
    }
    assert_eq!(
        flow_seq(&["GET".to_string(), "no".to_string()]),
        "[GET, \"no\"]"
    );
    assert_eq!(flow_seq::<&str>(&[]), "[]");
    assert_eq!(
        flow_map(&[
            ("api", quote_scalar("campaigns")),
            ("methods", flow_seq(&["GET"]))
        ]),
        "{api: campaigns, methods: [GET]}"
    );
}

fn tricky_string() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "yes",
        "No",
        "ON",
        "off",
        "y",
        "~",
        "null",
        "Null",
        "true",
        "FALSE",
        "123",
        "0x1F",
        "0o17",
        "1e3",
        "-1.5",
        ".5",
        ".inf",
        "-.Inf",
        ".NaN",
        "nan",
        "inf",
        "1_000",
        "2026-08-01",
        "2026-08-01T00:00:00Z",
        "12:30:00",
        "-",
        "--",
        "---",
        "...",
        "?",
        ":",
        ": x",
        "x:",
        "#",
        "#x",
        " #x",
        "a #b",
        "&a",
        "*a",
        "!t",
        "!!str",
        "%YAML",
        "@",
        "`",
        "|",
        ">",
        "'",
        "\"",
        "[",
        "]",
        "{",
        "}",
        ",",
        "<<",
        "=",
        " ",
        "\t",
        "\n",
        "\r\n",
        "\\",
        "\u{85}",
        "\u{2028}",
        "\u{2029}",
        "\u{feff}",
        "\u{a0}",
        "\u{0}",
        "\u{1b}",
        "\u{7f}",
        "\u{9f}",
        "é",
        "日本",
        "🙂",
        "a",
        "Z",
        "_",
        "/",
        ".",
        "+",
        "0",
    ]);
    prop::collection::vec(atoms, 0..6).prop_map(|v| v.concat())
}

fn check_round_trip(s: &str) -> Result<(), TestCaseError> {
    let q = quote_scalar(s);
    prop_assert!(!q.contains(['\n', '\r']), "not one line: {q:?}");
    let want = Value::String(s.to_string());
    let alone: Result<Value, _> = serde_yaml::from_str(&q);
    prop_assert_eq!(alone.ok(), Some(want.clone()), "alone: {:?}", q);
    let in_map: Result<Value, _> = serde_yaml::from_str(&format!("k: {q}   # c\n"));
    prop_assert_eq!(
        in_map.ok().map(|v| v["k"].clone()),
        Some(want.clone()),
        "in map: {:?}",
        q
    );
    let in_flow: Result<Value, _> = serde_yaml::from_str(&format!("k: [{q}, {q}]\n"));
    prop_assert_eq!(
        in_flow.ok().map(|v| v["k"][1].clone()),
        Some(want.clone()),
        "in flow: {:?}",
        q
    );
    let in_fmap: Result<Value, _> = serde_yaml::from_str(&format!("k: {{{q}: {q}}}\n"));
    prop_assert_eq!(
        in_fmap
            .ok()
            .and_then(|v| v["k"].as_mapping().and_then(|m| m.get(&want).cloned())),
        Some(want),
        "in flow map: {:?}",
        q
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2500))]

    #[test]
    fn quote_scalar_round_trips_arbitrary(s in any::<String>()) {
        check_round_trip(&s)?;
    }

    #[test]
    fn quote_scalar_round_trips_tricky(s in tricky_string()) {
        check_round_trip(&s)?;
    }
}

#[derive(Debug, Clone)]
enum Op {
    Set(usize, usize, String),
    Remove(usize, usize),
    Append(usize, usize, Vec<(usize, String)>),
    RemoveToken(usize),
    Tombstone(usize),
}

const SIDS: [&str; 5] = [SID, "SGaaaa", "SGbbbb", "yes", "SG cc"];
const KEYS: [&str; 8] = [
    "sid",
    "name",
    "status",
    "scopes",
    "rate_limit",
    "description",
    "new_field",
    "kind",
];
const ACCOUNTS: [&str; 3] = ["IRacme", "IRbeta", "123"];

fn value_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        tricky_string().prop_map(|s| quote_scalar(&s)),
        prop::collection::vec(tricky_string(), 0..3).prop_map(|v| flow_seq(&v)),
        (
            tricky_string(),
            prop::collection::vec(tricky_string(), 0..3)
        )
            .prop_map(|(a, m)| flow_seq_rendered(&[flow_map(&[
                ("api", quote_scalar(&a)),
                ("methods", flow_seq(&m))
            ])])),
        any::<i32>().prop_map(|n| n.to_string()),
        // Arbitrary junk: must be refused or applied, never corrupt.
        "[ -~]{0,12}",
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..SIDS.len(), 0..KEYS.len(), value_strategy()).prop_map(|(s, k, v)| Op::Set(s, k, v)),
        (0..SIDS.len(), 0..KEYS.len()).prop_map(|(s, k)| Op::Remove(s, k)),
        (
            0..ACCOUNTS.len(),
            0..SIDS.len(),
            prop::collection::vec((1..KEYS.len(), value_strategy()), 0..3)
        )
            .prop_map(|(a, s, f)| Op::Append(a, s, f)),
        (0..SIDS.len()).prop_map(Op::RemoveToken),
        (0..SIDS.len()).prop_map(Op::Tombstone),
    ]
}

fn start_docs() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
            TOKENS.to_string(),
            String::new(),
            "# only a comment\n".to_string(),
            "accounts:\n- id: IRbeta\n  tokens:\n  - sid: SGaaaa   # a\n    name: |\n      multi\n      # line\n    scopes:\n    - api: x\n".to_string(),
            "accounts:\n    - id: IRacme\n      tokens: []\ndeleted_sids:\n    - SGold\n".to_string(),
            TOKENS.replace('\n', "\r\n"),
        ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_edits_never_break_the_file(start in start_docs(), ops in prop::collection::vec(op_strategy(), 1..8)) {
        let mut d = doc(&start);
        let original_comments = comments(&start);
        for op in ops {
            let before = d.text().to_string();
            let result = match &op {
                Op::Set(s, k, v) => d.set_token_field(SIDS[*s], KEYS[*k], v),
                Op::Remove(s, k) => d.remove_token_field(SIDS[*s], KEYS[*k]),
                Op::Append(a, s, f) => {
                    let mut fs: Vec<(&str, String)> = vec![("sid", quote_scalar(SIDS[*s]))];
                    for (k, v) in f {
                        if fs.iter().all(|(kk, _)| kk != &KEYS[*k]) {
                            fs.push((KEYS[*k], v.clone()));
                        }
                    }
                    d.append_token(ACCOUNTS[*a], Some("Some Name"), &fs)
                }
                Op::RemoveToken(s) => d.remove_token(SIDS[*s]),
                Op::Tombstone(s) => d.add_tombstone(SIDS[*s]),
            };
            // Whatever happened, the text is a valid tokens file.
            let reparsed: Result<Value, _> = serde_yaml::from_str(d.text());
            prop_assert!(reparsed.is_ok(), "broken after {:?}:\n{}", op, d.text());
            prop_assert!(TokensDoc::parse(d.text()).is_ok());
            match result {
                Err(_) => prop_assert_eq!(d.text(), before.as_str()),
                Ok(()) => {
                    let v = d.value().clone();
                    match &op {
                        Op::Set(s, k, val) => {
                            let loc = d.find_token(SIDS[*s]);
                            prop_assert!(loc.is_some() || KEYS[*k] == "sid");
                            if let Some((a, t)) = loc {
                                let want: Value = serde_yaml::from_str(val.trim()).unwrap_or(Value::Null);
                                prop_assert_eq!(&v["accounts"][a]["tokens"][t][KEYS[*k]], &want);
                            }
                        }
                        Op::Remove(s, k) => {
                            if let Some((a, t)) = d.find_token(SIDS[*s]) {
                                prop_assert!(v["accounts"][a]["tokens"][t].get(KEYS[*k]).is_none());
                            }
                        }
                        Op::Append(_, s, _) => prop_assert!(d.find_token(SIDS[*s]).is_some()),
                        Op::RemoveToken(s) => prop_assert!(d.find_token(SIDS[*s]).is_none()),
                        Op::Tombstone(s) => {
                            let listed = v["deleted_sids"]
                                .as_sequence()
                                .is_some_and(|l| l.contains(&Value::from(SIDS[*s])));
                            prop_assert!(listed);
                        }
                    }
                }
            }
        }
        // Edits only touch what they are about; comment-free ops keep the rest. At least
        // the file-level comment of the example must always survive.
        if let Some(first) = original_comments.first() {
            if first.starts_with("# Tokens") || first.starts_with("# only") {
                prop_assert!(d.text().contains(first.as_str()));
            }
        }
    }
}

/// Tiny deterministic generator so a proptest seed maps to one token file.
struct Gen(u64);

impl Gen {
    fn n(&mut self, k: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % k as u64) as usize
    }
}

/// A random but valid tokens file in one of many hand-written styles.
fn gen_doc(seed: u64) -> String {
    let mut g = Gen(seed | 1);
    let off = [0, 2, 4][g.n(3)];
    let gap = [2, 2, 3, 4][g.n(4)];
    let ind = [2, 4][g.n(2)];
    let sp = spaces;
    let mut out = String::new();
    if g.n(2) == 0 {
        out.push_str("# header comment\n\n");
    }
    out.push_str(if g.n(2) == 0 {
        "accounts:\n"
    } else {
        "accounts:   # all accounts\n"
    });
    for a in 0..1 + g.n(2) {
        let dash = off;
        let key = dash + gap;
        if g.n(3) == 0 {
            out.push_str(&format!("{}# account {a}\n", sp(dash)));
        }
        out.push_str(&format!("{}-{}id: IR{a}\n", sp(dash), sp(gap - 1)));
        if g.n(2) == 0 {
            out.push_str(&format!("{}name: Account {a}   # display name\n", sp(key)));
        }
        let ntok = g.n(3);
        if ntok == 0 {
            out.push_str(&format!("{}tokens: []\n", sp(key)));
            continue;
        }
        out.push_str(&format!(
            "{}tokens:{}\n",
            sp(key),
            if g.n(2) == 0 { "" } else { "  # list" }
        ));
        for t in 0..ntok {
            let tdash = key + off;
            let tkey = tdash + gap;
            if g.n(3) == 0 {
                out.push_str(&format!("{}# token {a}{t}\n", sp(tdash)));
            }
            out.push_str(&format!("{}-{}sid: SG{a}{t}\n", sp(tdash), sp(gap - 1)));
            for f in 0..g.n(6) {
                let k = sp(tkey);
                let deeper = sp(tkey + 2);
                let line = match g.n(14) {
                    0 => format!("{k}f{f}: plain value\n"),
                    1 => format!("{k}f{f}: \"quoted\"   # c{f}\n"),
                    2 => format!("{k}f{f}: [a,\n{deeper}b]\n"),
                    3 => format!("{k}f{f}: |\n{deeper}line\n{deeper}# text\n"),
                    4 => format!("{k}f{f}: >-   # folded\n{deeper}one\n\n{deeper}two\n"),
                    5 => format!(
                        "{k}f{f}:\n{o}- {{api: x}}\n{o}- {{api: y}}   # y\n",
                        o = sp(tkey + off)
                    ),
                    6 => format!("{k}f{f}:\n{m}a: 1\n{m}b:\n{m}  - 2\n", m = sp(tkey + ind)),
                    7 => format!("{k}f{f}:\n"),
                    8 => format!("{k}f{f}: plain\n{deeper}continued   # tail\n"),
                    9 => format!("{k}f{f}: 'single ''q'''\n"),
                    10 => format!("{k}# comment in token\n"),
                    11 => "\n".to_string(),
                    12 => format!("{k}f{f}: {{a: 1,\n{deeper}b: 2}}\n"),
                    _ => format!("{k}f{f}: \"multi\n{deeper}line\"\n"),
                };
                out.push_str(&line);
            }
        }
    }
    match g.n(4) {
        0 => out.push_str("deleted_sids: [SGold]   # tombstones\n"),
        1 => out.push_str(&format!("deleted_sids:\n{}- SGold\n", sp(off))),
        2 => out.push_str("deleted_sids:\n"),
        _ => {}
    }
    if g.n(3) == 0 {
        out.push_str("# trailing comment\n");
    }
    if g.n(4) == 0 {
        out = out.replace('\n', "\r\n");
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn generated_layouts_are_never_refused_or_broken(
        seed in any::<u64>(),
        ops in prop::collection::vec((0..5usize, 0..4usize, 0..8usize, 0..8usize), 1..10),
    ) {
        let src = gen_doc(seed);
        let mut d = doc(&src);
        let sids = ["SG00", "SG01", "SG10", "SGnew"];
        let keys = ["f0", "f1", "f2", "f3", "f4", "name", "new", "sid"];
        let vals = ["x", "\"q\"", "[a, b]", "{a: 1}", "", "[{api: c, methods: [GET]}]", "'s'", "123"];
        for (op, s, k, v) in ops {
            let (sid, key, val) = (sids[s], keys[k], vals[v]);
            let before = d.text().to_string();
            let r = match op {
                0 => d.set_token_field(sid, key, val),
                1 => d.remove_token_field(sid, key),
                2 => d.append_token(["IR0", "IR1", "IR9"][k % 3], Some("N"), &[("sid", quote_scalar(sid)), ("f0", val.to_string())]),
                3 => d.remove_token(sid),
                _ => d.add_tombstone(sid),
            };
            let reparsed: Result<Value, _> = serde_yaml::from_str(d.text());
            prop_assert!(reparsed.is_ok(), "broken:\n{}", d.text());
            if let Err(e) = r {
                prop_assert_eq!(d.text(), before.as_str());
                let msg = e.to_string();
                prop_assert!(
                    !msg.contains("refusing") && !msg.contains("internal"),
                    "op {} {} {} {:?} refused: {}\n{}", op, sid, key, val, msg, before
                );
            }
        }
    }
}
