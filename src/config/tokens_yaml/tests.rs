use super::read;
use crate::config::raw::TypedTokensFile;

/// What the full parser makes of `src` (`None`: it refuses it).
fn full(src: &str) -> Option<String> {
    serde_saphyr::from_str::<TypedTokensFile>(src)
        .ok()
        .map(|f| format!("{f:?}"))
}

/// The subset reader reads `src`, and exactly as the full parser does.
#[track_caller]
fn same_as_full(src: &str) {
    let fast = read::<TypedTokensFile>(src).map(|f| format!("{f:?}"));
    assert!(fast.is_some(), "the subset reader gave up on:\n{src}");
    assert_eq!(fast, full(src), "the readers disagree on:\n{src}");
}

/// The subset reader declines `src` (the full parser then decides).
#[track_caller]
fn declined(src: &str) {
    assert!(
        read::<TypedTokensFile>(src).is_none(),
        "the subset reader should give up on:\n{src}"
    );
}

const WRITTEN: &str = r#"# scopegate tokens (managed by `scopegate token ...`).
accounts:
  - id: IRacme
    name: Acme Corp
    tokens:
      # Nightly export.
      - sid: SG5f2a7c1e9d3b4a6f8e0c2d4b6a8f0e1c
        name: reporting-sync
        description: Nightly export of campaign stats (live) # trailing comment
        primary_contact: data-eng@acme.example
        developer_emails: [alice@acme.example, "bob@acme.example"]
        api_version: v15
        status: active
        kind: scoped
        auth_token_hash: "sha256:8b2c6f1d0e9a7b5c3d1e2f4a6b8c0d9e7f5a3b1c2d4e6f8a0b9c7d5e3f1a2b4c"
        created_at: 2026-08-01T00:00:00Z
        expires_at: '2027-08-01T00:00:00Z'
        scopes:
          - {api: campaigns, methods: [GET]}
          - {api: reports, methods: [GET, POST], rate_limit: {requests_per_second: 2.5, burst: 0}}
        shadow_scopes: []
        rate_limit: {requests_per_second: 20, burst: 40}
        allowed_ips:
          - 203.0.113.0/24
          - "2001:db8::/48"
        quota: {requests: 1000, per: day}

      - sid: SGsecond
        name: "Zoë's tool: v2 #1"
        description:
        environment: ~
        status: disabled
        scopes:
        - api: campaigns
          methods:
          - GET
          rate_limit:
            requests_per_second: 1000000
  - id: IRempty
    tokens: []
accounts_note_is_unknown_field_elsewhere_so_not_here: null
"#;

#[test]
fn a_file_as_the_cli_writes_it_reads_as_the_full_parser_reads_it() {
    // Without the unknown key at the end, which both refuse.
    let src = WRITTEN.replace(
        "accounts_note_is_unknown_field_elsewhere_so_not_here: null\n",
        "deleted_sids:\n  - SGgone\n  - \"SGgone2\"\n",
    );
    same_as_full(&src);
}

#[test]
fn block_sequences_may_sit_at_their_keys_indentation() {
    same_as_full(
        "accounts:\n- id: a\n  tokens:\n  - sid: s\n    name: n\n  name: A\ndeleted_sids: [x]\n",
    );
    same_as_full("deleted_sids: []\naccounts: []\n");
    // An empty value for a list: the full parser decides what it means.
    declined("accounts:\n");
}

#[test]
fn what_only_the_full_parser_may_decide_is_declined() {
    declined(WRITTEN); // an unknown field
    declined("");
    declined("# only a comment\n");
    for (what, src) in [
        ("tab", "accounts:\n\t- id: a\n"),
        ("crlf", "accounts: []\r\n"),
        ("bom", "\u{feff}accounts: []\n"),
        ("document marker", "---\naccounts: []\n"),
        ("second document", "accounts: []\n---\naccounts: []\n"),
        ("anchor", "accounts:\n  - &a\n    id: a\n"),
        ("alias", "accounts:\n  - id: a\n    name: *n\n"),
        ("tag", "accounts:\n  - id: !!str a\n"),
        ("escape", "accounts:\n  - id: \"a\\tb\"\n"),
        ("quote escape", "accounts:\n  - id: 'it''s'\n"),
        ("multi-line plain", "accounts:\n  - id: a\n    name: first\n      second\n"),
        ("block scalar", "accounts:\n  - id: a\n    name: |\n      text\n"),
        ("multi-line flow", "deleted_sids: [a,\n  b]\n"),
        ("trailing comma", "deleted_sids: [a, b, ]\n"),
        ("quoted key", "\"accounts\": []\n"),
        ("null string", "accounts:\n  - id: null\n"),
        ("leading zero", "accounts:\n  - id: a\n    tokens:\n      - sid: s\n        rate_limit: {requests_per_second: 010}\n"),
        ("hex", "accounts:\n  - id: a\n    tokens:\n      - sid: s\n        rate_limit: {requests_per_second: 0x10}\n"),
        ("exponent", "accounts:\n  - id: a\n    tokens:\n      - sid: s\n        rate_limit: {requests_per_second: 1e3}\n"),
        ("quoted number", "accounts:\n  - id: a\n    tokens:\n      - sid: s\n        quota: {requests: \"5\", per: day}\n"),
        ("quoted enum", "accounts:\n  - id: a\n    tokens:\n      - sid: s\n        status: \"active\"\n"),
        ("duplicate key", "accounts:\n  - id: a\n    id: b\n"),
        ("colon in flow plain", "deleted_sids: [a:b]\n"),
        ("mapping in plain", "accounts:\n  - id: a: b\n"),
        ("deeper stray line", "accounts:\n  - id: a\n      name: b\n"),
        ("bare dash", "deleted_sids:\n  -\n    x\n"),
        ("indented root", "  accounts: []\n"),
    ] {
        assert!(
            read::<TypedTokensFile>(src).is_none(),
            "{what}: the subset reader should give up on:\n{src}"
        );
    }
}

#[test]
fn numbers_are_read_only_in_the_forms_every_schema_agrees_on() {
    for n in ["0", "7", "20", "2.5", "0.25", "1000000"] {
        same_as_full(&format!(
            "accounts:\n  - id: a\n    tokens:\n      - sid: s\n        rate_limit: {{requests_per_second: {n}, burst: 3}}\n"
        ));
    }
    declined("accounts:\n  - id: a\n    tokens:\n      - sid: s\n        rate_limit: {requests_per_second: 1, burst: -3}\n");
}

/// Differential property: whatever file of scalars, quoting styles and numbers is
/// generated, the subset reader either declines it or reads exactly what the full parser
/// reads (and never accepts a file the full parser refuses).
mod differential {
    use proptest::prelude::*;

    use super::{full, read, TypedTokensFile};

    /// Characters that matter to YAML's scalars: indicators, quotes, comment and mapping
    /// markers, escapes, spaces, non-ASCII.
    fn scalar_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                20 => proptest::char::range('a', 'z'),
                3 => proptest::char::range('0', '9'),
                2 => Just(' '),
                1 => proptest::sample::select(vec![
                    ' ', '#', ':', '-', '\'', '"', '[', ']', '{', '}', ',', '&', '*', '!', '|',
                    '>', '%', '@', '`', '?', '~', '.', '\\', '/', '=', '+', 'é', '→', '\u{a0}',
                ]),
            ],
            0..12,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    /// One scalar, written plain, single-quoted or double-quoted (escaped as YAML wants).
    fn scalar() -> impl Strategy<Value = String> {
        (scalar_text(), 0..4u8).prop_map(|(s, style)| match style {
            0 | 1 => s,
            2 => format!("'{}'", s.replace('\'', "''")),
            _ => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        })
    }

    /// A number as a person might write one, in forms the YAML schemas agree and disagree on.
    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => (0u32..100_000).prop_map(|n| n.to_string()),
            2 => (0u32..1000, 1u32..100).prop_map(|(a, b)| format!("{a}.{b}")),
            1 => proptest::sample::select(vec![
                "0", "01", "1.5", "-1", "+1", ".5", "1e3", "0x10", "0o7", "1_000", ".inf",
                "true", "~", "null", "'5'", "\"5\"", "2.", "-0", "1.0",
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn token() -> impl Strategy<Value = String> {
        (
            scalar(),
            scalar(),
            scalar(),
            proptest::collection::vec(scalar(), 0..3),
            prop_oneof![
                4 => Just("active".to_owned()),
                2 => Just("disabled".to_owned()),
                1 => scalar()
            ],
            scalar(),
            number(),
            number(),
        )
            .prop_map(|(sid, name, desc, emails, status, api, rps, burst)| {
                format!(
                    "      - sid: {sid}\n        name: {name}\n        description: {desc}\n        developer_emails: [{}]\n        status: {status}\n        scopes:\n          - {{api: {api}, methods: [GET]}}\n        rate_limit: {{requests_per_second: {rps}, burst: {burst}}}\n",
                    emails.join(", ")
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]

        #[test]
        fn the_subset_reader_declines_or_agrees(
            account in scalar(),
            tokens in proptest::collection::vec(token(), 1..3),
        ) {
            let src = format!("accounts:\n  - id: {account}\n    tokens:\n{}", tokens.concat());
            if let Some(fast) = read::<TypedTokensFile>(&src) {
                prop_assert_eq!(Some(format!("{fast:?}")), full(&src), "file:\n{}", src);
            }
        }
    }
}
