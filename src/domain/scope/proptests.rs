//! Property tests for the scope pipeline: totality, canonical fixed points, trie-vs-reference
//! agreement and, above all, that no accepted path can escape its grant when an upstream reads
//! it with a different (more permissive) URL parser: percent-decoding once or twice, `\` as a
//! separator, `;parameters` stripped, Unicode NFKC or Windows best-fit folding, Windows'
//! trailing dot/space trim, merged slashes and RFC 3986 dot-segment removal, in every
//! combination.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use unicode_normalization::UnicodeNormalization;

use super::{
    canonicalize, parse_pattern, ApiId, Catalog, CatalogBuilder, Pattern, Segment, Target,
    MAX_SEGMENTS,
};
use crate::domain::scope::pattern::Affix;

const CASES: u32 = 2000;

fn build(patterns: &[(ApiId, &Pattern)]) -> Catalog {
    let mut builder = CatalogBuilder::new();
    for (index, &(api, pattern)) in patterns.iter().enumerate() {
        builder.add(api, u16::try_from(index).unwrap_or(u16::MAX), pattern);
    }
    builder.build()
}

fn build_text(patterns: &[(ApiId, &str)]) -> Catalog {
    let parsed: Vec<(ApiId, Pattern)> = patterns
        .iter()
        .map(|&(api, text)| {
            (
                api,
                parse_pattern(text).unwrap_or_else(|e| panic!("{text}: {e}")),
            )
        })
        .collect();
    let refs: Vec<(ApiId, &Pattern)> = parsed.iter().map(|(api, p)| (*api, p)).collect();
    build(&refs)
}

fn all_matches(catalog: &Catalog, path: &str, account: &str) -> Vec<(ApiId, u16, u32)> {
    let mut found = Vec::new();
    catalog.for_each_match(path, account, |m| {
        found.push((m.api, m.pattern_index, m.specificity))
    });
    found.sort_unstable();
    found
}

// ---------------------------------------------------------------------------------------------
// Independent RFC 3986 reader, deliberately written without any code from `target.rs`.

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Decodes every well-formed `%XX`; malformed `%` are kept as-is (lenient servers do that).
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            if let (Some(hi), Some(lo)) = (
                input.get(i + 1).copied().and_then(hex),
                input.get(i + 2).copied().and_then(hex),
            ) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// RFC 3986 §5.2.4 remove_dot_segments, verbatim.
fn remove_dot_segments(path: &[u8]) -> Vec<u8> {
    let mut input = path.to_vec();
    let mut output: Vec<u8> = Vec::new();
    let pop_last = |output: &mut Vec<u8>| {
        let cut = output.iter().rposition(|&b| b == b'/').unwrap_or(0);
        output.truncate(cut);
    };
    while !input.is_empty() {
        if input.starts_with(b"../") {
            input.drain(..3);
        } else if input.starts_with(b"./") || input.starts_with(b"/./") {
            // A: drop "./"; B: replace "/./" with "/" (same as dropping two bytes).
            input.drain(..2);
        } else if input == b"/." {
            input = b"/".to_vec();
        } else if input.starts_with(b"/../") {
            input.drain(..3);
            pop_last(&mut output);
        } else if input == b"/.." {
            input = b"/".to_vec();
            pop_last(&mut output);
        } else if input == b"." || input == b".." {
            input.clear();
        } else {
            let start = usize::from(input.first() == Some(&b'/'));
            let end = input[start..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(input.len(), |p| p + start);
            output.extend(input.drain(..end));
        }
    }
    output
}

/// One way an upstream may read a path; every combination is checked.
#[derive(Debug, Clone, Copy)]
struct Reader {
    /// Percent-decoding passes (1, or 2 for double decoders).
    passes: usize,
    /// Unicode NFKC after decoding (normalizing frameworks).
    nfkc: bool,
    /// Windows best-fit conversion to an ANSI code page after decoding.
    best_fit: bool,
    /// `;parameters` stripped from each segment (Tomcat, Jetty, Spring).
    semicolons: bool,
    /// Trailing dots and spaces dropped from each segment (Windows, IIS).
    windows_trim: bool,
}

fn readers() -> impl Iterator<Item = Reader> {
    (0..32usize).map(|bits| Reader {
        passes: 1 + (bits & 1),
        nfkc: bits & 2 != 0,
        best_fit: bits & 4 != 0,
        semicolons: bits & 8 != 0,
        windows_trim: bits & 16 != 0,
    })
}

/// Best-fit mappings to structural ASCII, written down here independently of `fold.rs`
/// (from Microsoft's bestfit*.txt tables at unicode.org).
fn best_fit(c: char) -> char {
    match c {
        '\u{00A5}' | '\u{20A9}' | '\u{2216}' | '\u{FF3C}' => '\\',
        '\u{00B4}' | '\u{2044}' | '\u{2215}' | '\u{FF0F}' => '/',
        '\u{066A}' | '\u{FF05}' => '%',
        '\u{037E}' | '\u{FF1B}' => ';',
        '\u{FF0E}' => '.',
        _ => c,
    }
}

/// How an upstream using `reader` reads the path: decode, fold, `\` is a separator, `//`
/// collapses, parameters and trailing dots/spaces go, dot segments are resolved. Returns the
/// segments (no trailing empty one).
fn upstream_reading(target: &str, reader: Reader) -> Vec<Vec<u8>> {
    let path = target.split('?').next().unwrap_or_default();
    let mut bytes = path.as_bytes().to_vec();
    for _ in 0..reader.passes {
        bytes = percent_decode(&bytes);
    }
    if reader.nfkc || reader.best_fit {
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if reader.nfkc {
            text = text.nfkc().collect();
        }
        if reader.best_fit {
            text = text.chars().map(best_fit).collect();
        }
        bytes = text.into_bytes();
    }
    for b in bytes.iter_mut() {
        if *b == b'\\' {
            *b = b'/';
        }
    }
    let mut cleaned: Vec<u8> = Vec::with_capacity(bytes.len());
    for (i, segment) in bytes.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            cleaned.push(b'/');
        }
        let mut segment = segment;
        if reader.semicolons {
            segment = segment.split(|&b| b == b';').next().unwrap_or_default();
        }
        if reader.windows_trim {
            while let Some((&last, rest)) = segment.split_last() {
                if last != b'.' && last != b' ' {
                    break;
                }
                // Windows keeps `.` and `..` themselves (they are resolved below).
                if segment == b"." || segment == b".." {
                    break;
                }
                segment = rest;
            }
        }
        cleaned.extend_from_slice(segment);
    }
    let mut bytes = cleaned;
    bytes.dedup_by(|a, b| *a == b'/' && *b == b'/');
    let resolved = remove_dot_segments(&bytes);
    let mut segments: Vec<Vec<u8>> = resolved
        .strip_prefix(b"/")
        .unwrap_or(&resolved)
        .split(|&b| b == b'/')
        .map(<[u8]>::to_vec)
        .collect();
    if segments.last().is_some_and(Vec::is_empty) {
        segments.pop();
    }
    segments
}

const ACCOUNT: &str = "acme";
const ACCOUNT_GRANT: ApiId = 1; // /api/{account}/reports/**
const PUBLIC_GRANT: ApiId = 2; // /pub/*
const SUFFIX_GRANT: ApiId = 3; // /files/*.json
const ACCOUNT_SUFFIX_GRANT: ApiId = 4; // /own/{account}.json
const ADMIN_GRANT: ApiId = 5; // /pub/admin, more specific than /pub/*

fn grant_catalog() -> Catalog {
    build_text(&[
        (ACCOUNT_GRANT, "/api/{account}/reports/**"),
        (PUBLIC_GRANT, "/pub/*"),
        (SUFFIX_GRANT, "/files/*.json"),
        (ACCOUNT_SUFFIX_GRANT, "/own/{account}.json"),
        (ADMIN_GRANT, "/pub/admin"),
    ])
}

/// Whether an upstream reading of the path stays inside `api`'s grant, i.e. is a path the
/// gateway would also have matched and recorded under `api`. Stricter than the gateway's
/// rule (any matching scope allows): `/pub/admin` is not inside `/pub/*`, since the more
/// specific admin API would be the one recorded and routed.
fn inside_grant(api: ApiId, segments: &[Vec<u8>]) -> bool {
    match api {
        ACCOUNT_GRANT => {
            segments.len() >= 3
                && segments[0] == b"api"
                && segments[1] == ACCOUNT.as_bytes()
                && segments[2] == b"reports"
        }
        PUBLIC_GRANT => {
            segments.len() == 2
                && segments[0] == b"pub"
                && !segments[1].is_empty()
                && segments[1] != b"admin"
        }
        ADMIN_GRANT => segments.len() == 2 && segments[0] == b"pub" && segments[1] == b"admin",
        SUFFIX_GRANT => {
            segments.len() == 2
                && segments[0] == b"files"
                && segments[1].len() > 5
                && segments[1].ends_with(b".json")
        }
        ACCOUNT_SUFFIX_GRANT => {
            segments.len() == 2 && segments[0] == b"own" && segments[1] == b"acme.json"
        }
        _ => false,
    }
}

/// Checks the security property for one raw target; returns how many grants it matched.
fn check_no_escape(catalog: &Catalog, raw: &str) -> Result<usize, TestCaseError> {
    let Ok(target) = canonicalize(raw) else {
        return Ok(0);
    };
    // The gateway decides by the most specific matching API.
    let mut best: Option<(u32, ApiId)> = None;
    catalog.for_each_match(&target.path, ACCOUNT, |m| {
        if best.is_none_or(|(s, _)| m.specificity > s) {
            best = Some((m.specificity, m.api));
        }
    });
    let Some((_, api)) = best else {
        return Ok(0);
    };
    // The upstream may see the original target or the canonical one the gateway forwards.
    for forwarded in [raw, &target.path] {
        for reader in readers() {
            let reading = upstream_reading(forwarded, reader);
            prop_assert!(
                inside_grant(api, &reading),
                "{raw:?} matched grant {api} as {:?}, but an upstream ({reader:?}) reads \
                 {forwarded:?} as {:?}",
                target.path,
                reading
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<Vec<_>>()
            );
        }
    }
    Ok(1)
}

// ---------------------------------------------------------------------------------------------
// Strategies.

fn tricky_token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/",
        "/",
        "/",
        ".",
        ".",
        "%",
        "2e",
        "2E",
        "2f",
        "2F",
        "5c",
        "5C",
        "a",
        "b",
        ";",
        "\\",
        "?",
        "%2e",
        "%2E",
        "%2f",
        "%5c",
        "%25",
        "%61",
        "..",
        "acme",
        "api",
        "pub",
        "reports",
        "%3B",
        "%3f",
        "#",
        "%c3%a9",
        // Unicode compatibility and best-fit forms of `.`, `/`, `\\`, `%`, `;`, spaces,
        // invisible characters, and a fullwidth letter spelling the more specific `admin`
        "%EF%BC%8E",
        "%ef%bc%8f",
        "%EF%BC%BC",
        "%E2%80%A5",
        "%E2%80%A4",
        "%EF%B9%A8",
        "%EF%B9%92",
        "%EF%BC%85",
        "%EF%BC%9B",
        "%C2%A5",
        "%E2%82%A9",
        "%E2%88%95",
        "%E2%81%84",
        "%20",
        "%C2%A0",
        "%E3%80%80",
        "%E2%80%8B",
        "%CC%81",
        "%EF%BD%81dmin",
        "admin",
        // double encodings, whole: a permissive reader decoding twice must not be fooled
        "%252e",
        "%252E",
        "%252f",
        "%255c",
        "%25%32%65",
        "%%32%65",
    ])
}

fn tricky_target() -> impl Strategy<Value = String> {
    let grant_prefix = prop::sample::select(vec![
        "/api/acme/reports/",
        "/api/%61cme/reports/",
        "/api/acme/%72eports/",
        "/pub/",
        "/files/",
        "/own/",
    ]);
    let other_prefix = prop::sample::select(vec![
        "/api/acme/reports",
        "/api/acme/",
        "/api/",
        "/pub",
        "/",
        "",
    ]);
    let prefix = prop_oneof![5 => grant_prefix, 1 => other_prefix];
    // Raw token soup finds adjacency tricks (`%` + `2e`, `.` + `%2e`, `//`); segment-shaped
    // tails keep enough inputs accepted that many of them reach a grant.
    let soup = prop::collection::vec(tricky_token(), 0..12).prop_map(|t| t.concat());
    // Mostly accepted-but-interesting tokens (encoded dots and unreserved, `%3B`, `%3F`...).
    let benign = prop::sample::select(vec![
        "a",
        "b",
        "acme",
        "reports",
        "pub",
        "api",
        "%61",
        "%2e",
        "%2Ea",
        ".a",
        "%3B",
        "%3f",
        "%c3%a9",
        "2e",
        "5c",
        "?",
        "admin",
        "%E6%97%A5",
        ".json",
        "json",
        "%2ejson",
        "acme.json",
        "%2Ejson",
    ]);
    let token = prop_oneof![4 => benign, 1 => tricky_token()];
    let segment = prop::collection::vec(token, 1..4).prop_map(|t| t.concat());
    let segmented = prop::collection::vec(segment, 0..4).prop_map(|segments| segments.join("/"));
    let tail = prop_oneof![1 => soup, 2 => segmented];
    (prefix, tail).prop_map(|(prefix, tail)| format!("{prefix}{tail}"))
}

fn mostly_canonical_target() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "a",
        "Z",
        "0",
        "-",
        "_",
        "~",
        ".",
        "%41",
        "%7e",
        "%2E",
        "%3a",
        "%3A",
        "%20",
        "%C3%A9",
        "%c3%a9",
        "%e2%82%ac",
        "%F0%9F%98%80",
        "!",
        "$",
        "'",
        "(",
        "*",
        "+",
        ",",
        "=",
        ":",
        "@",
        "\"",
        "{",
        "}",
        "|",
        "[",
    ]);
    let segment = prop::collection::vec(token, 1..5).prop_map(|t| t.concat());
    let query = prop::option::of("[a-zA-Z0-9=&%/?.;\\\\]{0,12}");
    (prop::collection::vec(segment, 0..6), any::<bool>(), query).prop_map(
        |(segments, trailing, query)| {
            let mut s = String::from("/");
            s.push_str(&segments.join("/"));
            if trailing && !segments.is_empty() {
                s.push('/');
            }
            if let Some(q) = query {
                s.push('?');
                s.push_str(&q);
            }
            s
        },
    )
}

fn small_pattern() -> impl Strategy<Value = String> {
    let segment = prop::sample::select(vec![
        "a",
        "b",
        "acme",
        "*",
        "{account}",
        "*.json",
        "a*",
        "a*a",
        "*A9",
        "{account}.json",
        "x{account}",
    ]);
    (prop::collection::vec(segment, 0..4), any::<bool>()).prop_map(|(segments, globstar)| {
        let mut s: String = segments.iter().map(|seg| format!("/{seg}")).collect();
        if globstar {
            s.push_str("/**");
        }
        if s.is_empty() {
            s.push('/');
        }
        s
    })
}

fn small_path() -> impl Strategy<Value = String> {
    let segment = prop::sample::select(vec![
        "a",
        "b",
        "acme",
        "x",
        "x.json",
        ".json",
        "acme.json",
        "a.json",
        "aa",
        "aba",
        "xacme",
        "x%C3%A9",
        "xA9",
        "%C3%A9.json",
    ]);
    (prop::collection::vec(segment, 0..5), any::<bool>()).prop_map(|(segments, trailing)| {
        let mut s = format!("/{}", segments.join("/"));
        if trailing && !segments.is_empty() {
            s.push('/');
        }
        s
    })
}

/// Straightforward per-pattern matcher the trie must agree with.
fn reference_match(pattern: &Pattern, path: &str, account: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segments: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    if segments.len() > MAX_SEGMENTS {
        return false;
    }
    let wanted = pattern.segments();
    let count_ok = if pattern.ends_with_globstar() {
        segments.len() >= wanted.len()
    } else {
        segments.len() == wanted.len()
    };
    count_ok
        && wanted.iter().zip(&segments).all(|(w, s)| match w {
            Segment::Literal(text) => **text == **s,
            Segment::Account => !s.is_empty() && *s == account,
            Segment::Star => !s.is_empty(),
            Segment::AffixedStar(affix) => reference_affix(affix, s, None),
            Segment::AffixedAccount(affix) => reference_affix(affix, s, Some(account)),
        })
}

/// Byte offsets where a canonical segment's units (a byte, or a whole `%XX`) start, plus the
/// end: the only places where literal text may begin or end.
fn unit_boundaries(segment: &str) -> Vec<usize> {
    let bytes = segment.as_bytes();
    let mut out = vec![0];
    let mut i = 0;
    while i < bytes.len() {
        i += if bytes[i] == b'%' { 3 } else { 1 };
        out.push(i);
    }
    out
}

/// Reference for `prefix*suffix` / `prefix{account}suffix`: split the segment at every pair
/// of unit boundaries and look for one where the three parts fit.
fn reference_affix(affix: &Affix, segment: &str, account: Option<&str>) -> bool {
    let bounds = unit_boundaries(segment);
    bounds.iter().any(|&start| {
        bounds.iter().any(|&end| {
            start < end
                && segment.get(..start) == Some(&*affix.prefix)
                && segment.get(end..) == Some(&*affix.suffix)
                && match account {
                    Some(account) => segment.get(start..end) == Some(account),
                    None => true,
                }
        })
    })
}

// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// (a) Totality: nothing panics on arbitrary input.
    #[test]
    fn never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let text = String::from_utf8_lossy(&bytes);
        let catalog = build_text(&[(1, "/a/**"), (2, "/{account}/*"), (3, "/")]);
        let _ = canonicalize(&text);
        let _ = parse_pattern(&text);
        catalog.for_each_match(&text, &text, |_| {});
        catalog.for_each_match(&text, "a", |_| {});
    }

    #[test]
    fn never_panics_on_random_strings(text in any::<String>(), account in any::<String>()) {
        let catalog = build_text(&[(1, "/a/**"), (2, "/{account}/*"), (3, "/**")]);
        let _ = canonicalize(&text);
        if let Ok(pattern) = parse_pattern(&text) {
            build(&[(1, &pattern)]).for_each_match(&text, &account, |_| {});
        }
        catalog.for_each_match(&text, &account, |_| {});
    }

    #[test]
    fn never_panics_on_url_like_strings(
        text in "[/%.a-fA-F0-9?#;\\\\{}*é\u{0}-\u{20}]{0,48}",
    ) {
        let _ = canonicalize(&text);
        if let Ok(pattern) = parse_pattern(&text) {
            // A parsed pattern must print back to itself and match its own literal paths.
            prop_assert_eq!(pattern.to_string(), text.clone());
            let catalog = build(&[(1, &pattern)]);
            catalog.for_each_match(&text, "{account}", |_| {});
        }
        if let Ok(target) = canonicalize(&text) {
            grant_catalog().for_each_match(&target.path, ACCOUNT, |_| {});
        }
    }

    /// (b) Canonical outputs are fixed points (and borrowed), and normalization never changes
    /// what the path decodes to.
    #[test]
    fn canonicalize_is_idempotent(text in mostly_canonical_target()) {
        if let Ok(first) = canonicalize(&text) {
            let second = canonicalize(&first.path);
            prop_assert!(second.is_ok(), "{:?} -> {:?} refused: {:?}", text, first.path, second);
            if let Ok(second) = second {
                prop_assert_eq!(&second.path, &first.path);
                prop_assert!(matches!(second.path, Cow::Borrowed(_)));
                prop_assert_eq!(second.query, None);
            }
            let raw_path = text.split('?').next().unwrap_or_default();
            prop_assert_eq!(
                percent_decode(raw_path.as_bytes()),
                percent_decode(first.path.as_bytes())
            );
            if matches!(first.path, Cow::Borrowed(_)) {
                prop_assert_eq!(&*first.path, raw_path);
            } else {
                prop_assert_ne!(&*first.path, raw_path);
            }
        }
    }

    #[test]
    fn accepted_tricky_targets_are_idempotent(text in tricky_target()) {
        if let Ok(first) = canonicalize(&text) {
            let second = canonicalize(&first.path);
            let fixed_point = matches!(
                second,
                Ok(Target { path: Cow::Borrowed(p), query: None }) if p == first.path
            );
            prop_assert!(fixed_point, "{:?} -> {:?} -> {:?}", text, first.path, second);
        }
    }

    /// A `prefix*suffix` segment pattern matches exactly the segments that start with the
    /// prefix, end with the suffix and have a non-empty middle of whole units; it never
    /// matches across `/` (the rest of the path must match the following segments).
    #[test]
    fn affixed_star_matches_exactly_prefix_middle_suffix(
        prefix in prop::sample::select(vec!["", "a", "v", ".", "ab", "%C3%A9", "x-"]),
        suffix in prop::sample::select(vec!["", ".json", "a", "A9", "b", "..", "%C3%A9"]),
        segment in "[ab.vxjsonA9/-]{0,4}(%C3%A9)?[ab.vxjsonA9/-]{0,4}",
    ) {
        prop_assume!(!(prefix.is_empty() && suffix.is_empty()));
        let pattern_text = format!("/s/{prefix}*{suffix}/t");
        let pattern = parse_pattern(&pattern_text);
        prop_assert!(pattern.is_ok(), "{}: {:?}", pattern_text, pattern);
        let Ok(pattern) = pattern else { return Ok(()) };
        let catalog = build(&[(1, &pattern)]);
        let path = format!("/s/{segment}/t");
        let matched = !all_matches(&catalog, &path, ACCOUNT).is_empty();
        let bounds = unit_boundaries(&segment);
        let expected = !segment.contains('/')
            && segment.len() > prefix.len() + suffix.len()
            && segment.starts_with(prefix)
            && segment.ends_with(suffix)
            && bounds.contains(&prefix.len())
            && bounds.contains(&(segment.len() - suffix.len()));
        prop_assert_eq!(matched, expected, "{} vs {}", pattern_text, path);
        // The same with `{account}`: the middle must be the account itself.
        let account_pattern = parse_pattern(&format!("/s/{prefix}{{account}}{suffix}/t"));
        prop_assert!(account_pattern.is_ok());
        if let Ok(account_pattern) = account_pattern {
            let catalog = build(&[(1, &account_pattern)]);
            let own = format!("/s/{prefix}{ACCOUNT}{suffix}/t");
            prop_assert!(!all_matches(&catalog, &own, ACCOUNT).is_empty());
            let expected = segment == format!("{prefix}{ACCOUNT}{suffix}");
            prop_assert_eq!(!all_matches(&catalog, &path, ACCOUNT).is_empty(), expected);
        }
    }

    /// The trie agrees with a per-pattern reference matcher on every combination.
    #[test]
    fn trie_agrees_with_reference(
        patterns in prop::collection::vec(small_pattern(), 1..8),
        path in small_path(),
        account in prop::sample::select(vec!["acme", "a", "x", ""]),
    ) {
        let parsed: Vec<Pattern> = patterns
            .iter()
            .filter_map(|p| parse_pattern(p).ok())
            .collect();
        prop_assert_eq!(parsed.len(), patterns.len());
        let refs: Vec<(ApiId, &Pattern)> = parsed
            .iter()
            .enumerate()
            .map(|(i, p)| (u16::try_from(i % 3).unwrap_or_default(), p))
            .collect();
        let catalog = build(&refs);
        let mut expected: Vec<(ApiId, u16, u32)> = refs
            .iter()
            .enumerate()
            .filter(|(_, (_, p))| reference_match(p, &path, account))
            .map(|(i, &(api, p))| (api, u16::try_from(i).unwrap_or_default(), p.specificity()))
            .collect();
        expected.sort_unstable();
        prop_assert_eq!(all_matches(&catalog, &path, account), expected);
    }
}

#[test]
fn security_property_is_not_vacuous() {
    let catalog = grant_catalog();
    let mut hits = 0;
    for raw in [
        "/api/acme/reports",
        "/api/acme/reports/",
        "/api/%61cme/reports/x",
        "/api/acme/reports/..a/b",
        "/api/acme/reports/%2e%2ea",
        "/api/acme/reports/x%3A",
        "/api/acme/reports/a?x=/../..;\\",
        "/pub/a",
        "/pub/a/",
        "/pub/%2E%2Ex",
        "/pub/%c3%a9",
        "/pub/admin",
        "/pub/a%20b",
        "/pub/Jose%CC%81",
        "/files/x.json",
        "/files/x%2ejson",
        "/own/acme.json",
    ] {
        let Ok(n) = check_no_escape(&catalog, raw) else {
            panic!("{raw:?} escaped");
        };
        assert_eq!(n, 1, "{raw:?} should match one grant");
        hits += n;
    }
    assert_eq!(hits, 17);
    for raw in [
        "/files/.json",
        "/files/%2Ejson",
        "/own/acme.jsonx",
        "/files/a/b.json",
    ] {
        assert_eq!(check_no_escape(&catalog, raw).ok(), Some(0), "{raw:?}");
    }
}

#[test]
fn the_reader_does_see_classic_escapes() {
    // Sanity check of the test oracle: these all escape when read permissively, and all are
    // refused by `canonicalize`.
    for raw in [
        "/pub/%EF%BC%8E%EF%BC%8E/x",
        "/pub/x%EF%BC%8F..%EF%BC%8F..%EF%BC%8Fapi",
        "/pub/%E2%80%A5/x",
        "/pub/..%20/x",
        "/pub/x%C2%A5..%C2%A5..%C2%A5api",
        "/pub/%EF%BD%81dmin",
        "/pub/admin.",
        "/pub/admin%20",
        "/pub/admin;x",
        "/pub/../admin",
        "/pub/%2e%2e/admin",
        "/pub/.%2e/admin",
        "/pub/x%2f..%2f..%2fadmin",
        "/pub/x%5c..%5c..%5cadmin",
        "/pub/x\\..\\..\\admin",
        "/pub/%252e%252e/admin",
        "/api/acme/reports/../../evil/reports/x",
        "/api/acme//../evil/reports",
    ] {
        let escapes = readers().any(|reader| {
            let reading = upstream_reading(raw, reader);
            !inside_grant(PUBLIC_GRANT, &reading) && !inside_grant(ACCOUNT_GRANT, &reading)
        });
        assert!(escapes, "{raw:?}");
        assert!(canonicalize(raw).is_err(), "{raw:?}");
    }
}

#[test]
fn remove_dot_segments_matches_rfc_examples() {
    assert_eq!(remove_dot_segments(b"/a/b/c/./../../g"), b"/a/g");
    assert_eq!(remove_dot_segments(b"mid/content=5/../6"), b"mid/6");
    assert_eq!(remove_dot_segments(b"/../a"), b"/a");
    assert_eq!(remove_dot_segments(b"/a/.."), b"/");
}

/// (c) Security: an accepted path that matches a grant is read inside that same grant by a
/// permissive upstream, whether it is forwarded raw or canonical. Run by hand so it can also
/// assert that enough generated cases actually reach a grant (a vacuous pass proves nothing).
#[test]
fn accepted_paths_cannot_escape_their_grant() {
    let catalog = grant_catalog();
    let hits = AtomicUsize::new(0);
    let mut runner = TestRunner::new(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(CASES)
    });
    let outcome = runner.run(&tricky_target(), |text| {
        if check_no_escape(&catalog, &text)? > 0 {
            hits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    let hits = hits.into_inner();
    assert!(
        hits >= CASES as usize / 5,
        "only {hits} of {CASES} generated targets matched a grant"
    );
}
