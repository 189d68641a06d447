use super::*;

/// The tokens file example from the design notes (also used by `edit`'s tests).
pub(crate) const TOKENS: &str = r#"# Tokens for scopegate (managed by `scopegate token ...`; comments are kept)
accounts:
  - id: IRacme            # the Acme account
    name: Acme Corp
    tokens:
      # nightly export
      - sid: SG5f2a0000000000000000000000000000
        name: reporting-sync
        description: Nightly export of campaign stats to the data warehouse (live)
        primary_contact: data-eng@acme.example
        developer_emails: [alice@acme.example]
        api_version: v15
        status: active                # or disabled
        kind: scoped                  # or legacy
        auth_token_hash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        created_at: 2026-08-01T00:00:00Z
        rotated_at: 2026-08-01T00:00:00Z
        scopes:
          - {api: campaigns, methods: [GET]}
        rate_limit: {requests_per_second: 20, burst: 40}
deleted_sids: [SGdead...]   # optional top-level tombstone list
"#;

const GATEWAY: &str = r#"# scopegate gateway config
listen: 0.0.0.0:8080
tokens_file: /etc/scopegate/tokens.yaml

upstreams:
  main:
    url: https://api.example.com   # production
    timeout_ms: 5000
apis:
  campaigns:
    upstream: main
    paths:
      - /v15/campaigns
      - "/v15/campaigns/*"
  reports: {upstream: main,
            paths: [/v15/reports, "/v15/reports/*"]}
"#;

fn idx(src: &str) -> SpanIndex {
    match SpanIndex::build(src) {
        Ok(i) => i,
        Err(e) => panic!("unexpected syntax error: {e}"),
    }
}

#[test]
fn tokens_example_lines() {
    let i = idx(TOKENS);
    let cases = [
        ("accounts", 2),
        ("accounts[0]", 3),
        ("accounts[0].id", 3),
        ("accounts[0].name", 4),
        ("accounts[0].tokens", 5),
        ("accounts[0].tokens[0]", 7),
        ("accounts[0].tokens[0].sid", 7),
        ("accounts[0].tokens[0].description", 9),
        ("accounts[0].tokens[0].developer_emails[0]", 11),
        ("accounts[0].tokens[0].status", 13),
        ("accounts[0].tokens[0].auth_token_hash", 15),
        ("accounts[0].tokens[0].scopes", 18),
        ("accounts[0].tokens[0].scopes[0]", 19),
        ("accounts[0].tokens[0].scopes[0].api", 19),
        ("accounts[0].tokens[0].scopes[0].methods[0]", 19),
        ("accounts[0].tokens[0].rate_limit", 20),
        ("accounts[0].tokens[0].rate_limit.burst", 20),
        ("deleted_sids", 21),
        ("deleted_sids[0]", 21),
    ];
    for (path, line) in cases {
        assert_eq!(i.exact_line(path), Some(line), "{path}");
        assert_eq!(i.line_of(path), line, "{path}");
    }
}

#[test]
fn gateway_config_lines() {
    let i = idx(GATEWAY);
    assert_eq!(i.line_of("listen"), 2);
    assert_eq!(i.line_of("tokens_file"), 3);
    assert_eq!(i.line_of("upstreams"), 5);
    assert_eq!(i.line_of("upstreams.main"), 6);
    assert_eq!(i.line_of("upstreams.main.url"), 7);
    assert_eq!(i.line_of("upstreams.main.timeout_ms"), 8);
    assert_eq!(i.line_of("apis.campaigns.paths"), 12);
    assert_eq!(i.line_of("apis.campaigns.paths[0]"), 13);
    assert_eq!(i.line_of("apis.campaigns.paths[1]"), 14);
    assert_eq!(i.line_of("apis.reports"), 15);
    assert_eq!(i.line_of("apis.reports.upstream"), 15);
    assert_eq!(i.line_of("apis.reports.paths"), 16);
    assert_eq!(i.line_of("apis.reports.paths[1]"), 16);
}

#[test]
fn missing_paths_fall_back_to_nearest_ancestor() {
    let i = idx(TOKENS);
    // Missing field of a token -> the token mapping's line.
    assert_eq!(i.exact_line("accounts[0].tokens[0].enabled"), None);
    assert_eq!(i.line_of("accounts[0].tokens[0].enabled"), 7);
    // Index past the end -> the sequence's key.
    assert_eq!(i.line_of("accounts[0].tokens[3].sid"), 5);
    assert_eq!(i.line_of("accounts[9]"), 2);
    // Indexing a scalar / keying a sequence.
    assert_eq!(i.line_of("accounts[0].name.first"), 4);
    assert_eq!(i.line_of("accounts.x"), 2);
    // Unknown top-level key -> the root mapping (its first key).
    assert_eq!(i.line_of("listen"), 2);
    assert_eq!(i.exact_line("listen"), None);
    // Malformed paths: nearest well-formed prefix.
    assert_eq!(i.exact_line("accounts[0"), None);
    assert_eq!(i.line_of("accounts[0].tokens[x].sid"), 5);
    assert_eq!(i.exact_line("accounts..id"), None);
    assert_eq!(i.exact_line(""), Some(2));

    let g = idx(GATEWAY);
    assert_eq!(g.line_of("upstreams.main.retries"), 6);
    assert_eq!(g.line_of("apis.campaigns.paths[7]"), 12);
}

#[test]
fn quoted_keys_in_paths() {
    let src = "routes:\n  \"a.b\":\n    x: 1\n  'c[0]': 2\n  plain: {\"d.e\": [10, 20]}\n";
    let i = idx(src);
    assert_eq!(i.exact_line("routes[\"a.b\"].x"), Some(3));
    assert_eq!(i.exact_line("routes.[\"a.b\"]"), Some(2));
    assert_eq!(i.exact_line("routes[\"c[0]\"]"), Some(4));
    assert_eq!(i.exact_line("routes.plain[\"d.e\"][1]"), Some(5));
    assert_eq!(i.exact_line("routes[\"a\\\".b\"]"), None);
}

#[test]
fn flow_collections_spanning_lines() {
    let src = "a: [1,\n  2,\n  {b: 3,\n   c: [4]}]\nd: {e: f}\n";
    let i = idx(src);
    assert_eq!(i.exact_line("a[1]"), Some(2));
    assert_eq!(i.exact_line("a[2]"), Some(3));
    assert_eq!(i.exact_line("a[2].c[0]"), Some(4));
    assert_eq!(i.exact_line("d.e"), Some(5));
    let a = i.map_get(i.root.unwrap_or(0), "a").map(|(_, v)| v);
    assert_eq!(a.map(|v| i.end_line(v)), Some(4));
}

#[test]
fn anchors_and_aliases() {
    let src = "defaults: &d\n  timeout: 5\n  retries: 2\nmain:\n  settings: *d\nlist: &l [x, y]\nother: *l\n";
    let i = idx(src);
    assert_eq!(i.exact_line("defaults.retries"), Some(3));
    // The alias use gets its own line ...
    assert_eq!(i.exact_line("main.settings"), Some(5));
    // ... and steps through it land in the anchored definition.
    assert_eq!(i.exact_line("main.settings.retries"), Some(3));
    assert_eq!(i.exact_line("other[1]"), Some(6));
    assert_eq!(i.exact_line("main.settings.nope"), None);
    assert_eq!(i.line_of("main.settings.nope"), 5);
}

#[test]
fn only_first_document_is_indexed() {
    let src = "a: 1\nb:\n  c: 2\n---\nz: 9\n";
    let i = idx(src);
    assert_eq!(i.exact_line("b.c"), Some(3));
    assert_eq!(i.exact_line("z"), None);
    let src = "---\n# comment\nx: [1]\n...\n---\ny: 2\n";
    let i = idx(src);
    assert_eq!(i.exact_line("x[0]"), Some(3));
    assert_eq!(i.exact_line("y"), None);
}

#[test]
fn empty_and_comment_only_documents() {
    for src in ["", "\n\n", "# nothing here\n", "---\n", "# a\n# b"] {
        let i = idx(src);
        assert!(i.is_empty(), "{src:?}");
        assert_eq!(i.line_of("listen"), 1);
        assert_eq!(i.exact_line("listen"), None);
        assert_eq!(i.exact_line(""), None);
    }
}

#[test]
fn block_scalars_and_multiline_plain() {
    let src = "a: |\n  line one\n  # not a comment\n# a real comment\nb: >-\n  folded\n  text\nc: plain\n  continued\nd:\n  - |\n    x\n  - e\n";
    let i = idx(src);
    let root = i.root.unwrap_or(0);
    let end = |k: &str| i.map_get(root, k).map(|(_, v)| i.end_line(v));
    assert_eq!(i.exact_line("a"), Some(1));
    assert_eq!(end("a"), Some(3));
    assert_eq!(i.exact_line("b"), Some(5));
    assert_eq!(end("b"), Some(7));
    assert_eq!(end("c"), Some(9));
    assert_eq!(i.exact_line("d[0]"), Some(11));
    assert_eq!(i.exact_line("d[1]"), Some(13));
    assert_eq!(end("d"), Some(13));
}

#[test]
fn properties_before_first_key_set_the_indentation() {
    // The anchor belongs to the key `a`, so the mapping is indented at column 0 and the
    // second line continues the plain scalar.
    let src = "&x a: first\n  second\nb: 2\n";
    let i = idx(src);
    let root = i.root.unwrap_or(0);
    let (_, a) = i.map_get(root, "a").unwrap_or((0, 0));
    let n = i.node(a).cloned();
    assert_eq!(
        n.map(|n| src[n.start..n.end].to_string()).as_deref(),
        Some("first\n  second")
    );
    assert_eq!(i.exact_line("b"), Some(3));
    let src = " &a a: ---\n  &a \n";
    let i = idx(src);
    let root = i.root.unwrap_or(0);
    let (_, a) = i.map_get(root, "a").unwrap_or((0, 0));
    assert_eq!(i.end_line(a), 2);
}

#[test]
fn empty_values_end_on_their_own_line() {
    let src = "a:\n# c\nb: &x\nc:\n  -\n  - 2\n";
    let i = idx(src);
    let root = i.root.unwrap_or(0);
    assert_eq!(i.exact_line("a"), Some(1));
    let (_, a) = i.map_get(root, "a").unwrap_or((0, 0));
    assert_eq!(i.end_line(a), 1);
    let (_, b) = i.map_get(root, "b").unwrap_or((0, 0));
    assert_eq!(i.end_line(b), 3);
    assert_eq!(i.exact_line("c[0]"), Some(5));
    assert_eq!(i.exact_line("c[1]"), Some(6));
}

#[test]
fn crlf_and_unicode() {
    let src = "a: \"☃ snow\"\r\nb:\r\n  - é\r\n  - x\r\n";
    let i = idx(src);
    assert_eq!(i.exact_line("b[1]"), Some(4));
    let root = i.root.unwrap_or(0);
    let (_, a) = i.map_get(root, "a").unwrap_or((0, 0));
    let n = i.node(a).cloned();
    assert_eq!(n.map(|n| &src[n.start..n.end] == "\"☃ snow\""), Some(true));
}

#[test]
fn syntax_errors_have_line_numbers() {
    let cases: &[(&str, usize)] = &[
        ("a: [1\nb: 2\n", 2),
        // An unterminated quote is reported where the quoted scalar starts.
        ("a: 1\nb: \"open\n", 2),
        ("a:\n  b: 1\n c: 2\n", 3),
        ("a: 1\nb:\n\t- x\n", 3),
        ("a: 1\n  b: 2\n", 2),
        ("ok: 1\nlist:\n  - a\n  b: 2\n", 4),
        ("x: *nope\n", 1),
    ];
    for (src, line) in cases {
        match SpanIndex::build(src) {
            Ok(_) => panic!("expected an error for {src:?}"),
            Err(e) => {
                assert_eq!(e.line, *line, "{src:?}: {e}");
                assert!(e.column >= 1);
                assert!(e.to_string().contains(&format!("line {line}")));
            }
        }
    }
}

#[test]
fn syntax_error_column_is_one_based() {
    let e = SpanIndex::build("key: value: x\n").err();
    assert_eq!(e.map(|e| (e.line, e.column)), Some((1, 11)));
}

#[test]
fn deep_nesting_does_not_overflow() {
    let depth = 20_000;
    let src = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    // yaml-rust2 caps flow depth; either answer is fine as long as nothing crashes.
    let _ = SpanIndex::build(&src);
    let mut block = String::new();
    for d in 0..2_000 {
        block.push_str(&" ".repeat(d));
        block.push_str("k:\n");
    }
    let i = SpanIndex::build(&block);
    assert!(i.is_ok());
    let path = vec!["k"; 2_000].join(".");
    assert_eq!(i.map(|i| i.line_of(&path)).ok(), Some(2_000));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

    #[test]
    fn never_panics_on_arbitrary_input(src in "[ -~\\n\\t\u{e9}\u{2603}]{0,80}", path in "[a-z.\\[\\]0-9\"]{0,12}") {
        if let Ok(i) = SpanIndex::build(&src) {
            let _ = i.line_of(&path);
            let _ = i.exact_line(&path);
            for n in &i.nodes {
                proptest::prop_assert!(n.start <= n.end && n.end <= src.len());
                proptest::prop_assert!(src.is_char_boundary(n.start) && src.is_char_boundary(n.end));
            }
        }
    }

    #[test]
    fn never_panics_on_yamlish_input(src in "([ ]{0,4}(- |[a-c]: |\\? |# c|&a |\\*a|!t |\\||>|\"x\"|'y'|\\[|\\]|\\{|\\}|, |---|\\.\\.\\.|z)){0,6}(\\n[ ]{0,4}(- |[a-c]: |# c|&a |\\*a|\\||\"x\\n|'y|\\[|\\]|\\{|\\}|, |z)){0,10}") {
        if let Ok(i) = SpanIndex::build(&src) {
            for n in &i.nodes {
                proptest::prop_assert!(n.start <= n.end && n.end <= src.len());
                let text = &src[n.start..n.end];
                match &n.kind {
                    // A one-line plain scalar's extent is exactly its value.
                    Kind::Scalar { value, form: ScalarForm::Plain } if !text.contains('\n') => {
                        proptest::prop_assert_eq!(text, value.as_str(), "{:?}", src);
                    }
                    Kind::Scalar { form: ScalarForm::Quoted, .. } => {
                        let q = text.chars().next();
                        proptest::prop_assert!(text.len() >= 2 && q.is_some_and(|q| text.ends_with(q)), "{:?} {:?}", src, text);
                    }
                    _ => {}
                }
            }
            let _ = i.line_of("a.b[0].c");
        }
    }
}
