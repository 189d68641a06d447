//! Fuzz-style property tests. cargo-fuzz needs a nightly toolchain, which this project's
//! machines do not have (one stable toolchain, nothing else can be fetched), so the fuzz
//! targets of the hardening issue are proptest properties with many cases instead: they
//! run on stable in every CI run. Targets: the Basic-auth parser, the request-target
//! canonicalizer + catalog matcher, and the configuration loader.

use std::path::Path;

use base64::Engine;
use proptest::prelude::*;
use scopegate::domain::auth::parse_basic_value;
use scopegate::domain::scope::{canonicalize, parse_pattern, CatalogBuilder};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 5000,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Random bytes never panic the Basic parser.
    #[test]
    fn basic_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let _ = parse_basic_value(&bytes);
    }

    /// Whatever a well-formed credential holds, parsing gives it back exactly.
    #[test]
    fn basic_round_trips(sid in "[A-Za-z0-9_.-]{1,40}", secret in "[ -~]{0,80}") {
        let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{sid}:{secret}")));
        let creds = parse_basic_value(value.as_bytes()).unwrap();
        prop_assert_eq!(creds.sid(), sid.as_str());
        prop_assert_eq!(creds.secret(), secret.as_bytes());
    }

    /// Random targets never panic canonicalization or matching, and whatever is
    /// accepted is a fixed point (one spelling per resource).
    #[test]
    fn canonicalize_and_match_never_panic(target in "[/a-zA-Z0-9%.;\\\\?#&=_~{}*-]{0,120}", account in "[a-zA-Z0-9]{0,8}") {
        let mut b = CatalogBuilder::new();
        for (i, p) in ["/api/{account}/reports/**", "/api/*/x", "/**", "/pub/a"].iter().enumerate() {
            b.add(i as u16, 0, &parse_pattern(p).unwrap());
        }
        let catalog = b.build();
        if let Ok(t) = canonicalize(&target) {
            let again = canonicalize(&t.path).unwrap();
            prop_assert_eq!(again.path.as_ref(), t.path.as_ref());
            catalog.for_each_match(&t.path, &account, |_| {});
        }
        catalog.for_each_match(&target, &account, |_| {});
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    /// The configuration loader never panics on arbitrary text in either file, and an
    /// error always names the file.
    #[test]
    fn config_loader_never_panics(
        gateway in "(listen|apis|upstreams|tokens_file|rate_limit|:| |\\n|-|\\[|\\]|\\{|\\}|a|1|\"|#|\\*|&|!)*",
        tokens in "(accounts|tokens|sid|scopes|api|methods|:| |\\n|-|\\[|\\]|\\{|\\}|x|1|\"|GET)*",
    ) {
        let path = Path::new("/fuzz/scopegate.yaml");
        if let Err(errors) = scopegate::config::load_from_sources(path, &gateway, Some(&tokens)) {
            for e in errors.0 {
                prop_assert!(e.file.to_string_lossy().ends_with(".yaml"));
            }
        }
    }
}
