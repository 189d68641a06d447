use std::path::Path;

use super::tokens_on;
use crate::config::error::ErrorSink;
use crate::config::raw::RawTokensFile;
use crate::config::test_fixture::gateway_yaml;
use crate::config::{parse_gateway, parse_yaml, ConfigError};

const HASH: &str = "sha256:8b2c6f1d0e9a7b5c3d1e2f4a6b8c0d9e7f5a3b1c2d4e6f8a0b9c7d5e3f1a2b4c";

/// A tokens file with errors of every kind the checks across tokens and the checks of one
/// token report, spread so that the two threads each see some (the cut falls between
/// accounts, at about half the tokens).
fn tokens_file(errors: bool) -> String {
    let mut src = String::from("accounts:\n");
    for a in 0..6 {
        // Account 4 repeats account 1; account 5's id is invalid.
        let id = match a {
            4 if errors => "IR1".to_owned(),
            5 if errors => "IR 5".to_owned(),
            _ => format!("IR{a}"),
        };
        src.push_str(&format!("  - id: {id}\n    tokens:\n"));
        for t in 0..4 {
            // SG0x0 is listed again in accounts 3 and 5; SGgone was deleted.
            let sid = match (a, t) {
                (3, 1) | (5, 0) if errors => "SG0x0".to_owned(),
                (2, 2) if errors => "SGgone".to_owned(),
                _ => format!("SG{a}x{t}"),
            };
            let bad = |at| errors && (a, t) == at;
            let email = if bad((4, 3)) { "nobody" } else { "a@b.example" };
            let api = if bad((1, 1)) { "nope" } else { "campaigns" };
            let hash = if bad((3, 3)) { "sha256:zz" } else { HASH };
            src.push_str(&format!(
                "      - sid: {sid}\n        name: t{t}\n        primary_contact: {email}\n        auth_token_hash: \"{hash}\"\n        scopes:\n          - {{api: {api}, methods: [GET]}}\n"
            ));
        }
    }
    src.push_str("deleted_sids: [SGgone]\n");
    src
}

/// What validation makes of `src` with its per-token checks on `threads` threads.
fn validated(src: &str, threads: usize, max_active: usize) -> (String, Vec<ConfigError>) {
    let file = Path::new("/tmp/tokens.yaml");
    let gateway = gateway_yaml(&format!("max_active_tokens_per_account: {max_active}\n"));
    let settings = parse_gateway(Path::new("/tmp/scopegate.yaml"), &gateway).expect("gateway");
    let mut sink = ErrorSink::new(file, src);
    let raw: RawTokensFile = parse_yaml(file, src, &mut sink).expect("yaml");
    let (inputs, deleted) = raw.into_inputs();
    let out = tokens_on(inputs, deleted, &settings, &mut sink, threads);
    (format!("{out:?}"), sink.errors)
}

#[test]
fn two_threads_report_the_same_errors_in_the_same_order_and_lines_as_one() {
    let src = tokens_file(true);
    let (one, one_errors) = validated(&src, 1, 3);
    let (two, two_errors) = validated(&src, 2, 3);
    assert_eq!(one, two);
    assert_eq!(one_errors, two_errors);
    // The file does have each kind of error, with lines found.
    let fields: Vec<&str> = one_errors.iter().map(|e| e.field.as_str()).collect();
    for expected in [
        "accounts[1].tokens[1].scopes[0].api",
        "accounts[2].tokens[2].sid",
        "accounts[3].tokens[1].sid",
        "accounts[3].tokens[3].auth_token_hash",
        "accounts[4].id",
        "accounts[4].tokens[3].primary_contact",
        "accounts[5].id",
        "accounts[5].tokens[0].sid",
        "accounts[0].tokens[3]",
    ] {
        assert!(
            fields.contains(&expected),
            "no error at {expected}: {fields:?}"
        );
    }
    assert!(one_errors.iter().all(|e| e.line > 0), "{one_errors:?}");
}

#[test]
fn a_valid_file_validates_the_same_on_two_threads() {
    let src = tokens_file(false);
    let (one, one_errors) = validated(&src, 1, 4);
    let (two, two_errors) = validated(&src, 2, 4);
    assert_eq!(one_errors, []);
    assert_eq!(one, two);
    assert_eq!(two_errors, []);
}
