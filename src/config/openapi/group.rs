//! Which API each operation belongs to, and the API's config name.
//!
//! By tag (the default): an operation goes to its first tag; untagged operations of the
//! document go to an API named `default` (Swagger UI's name for them). By path: to the first
//! literal segment(s) after the literal prefix every path shares (`/api/v3/pet/{id}` ->
//! `pet` when every path starts with `/api/v3`), with a file extension dropped
//! (`Calls.json` -> `calls`; a version segment such as `1.0` keeps its dot's meaning).
//!
//! Names always start with a letter and are never a YAML keyword: a name is written as a key
//! of the `apis:` block, in tokens files and on command lines, and `2`, `1.10`, `true`, `no`
//! or `~` would come back from YAML as a number, a boolean or null (`check` then fails).

use super::document::percent_decode;
use crate::domain::scope::{Pattern, Segment};

/// The API name given to untagged operations when grouping by tag.
pub const UNTAGGED: &str = "default";

/// Longest config name (the name is a metrics label; see config validation).
const MAX_NAME: usize = 64;

/// The literal segments at the start of a pattern.
fn literal_prefix(pattern: &Pattern) -> Vec<&str> {
    pattern
        .segments()
        .iter()
        .map_while(|s| match s {
            Segment::Literal(text) => Some(&**text),
            _ => None,
        })
        .collect()
}

/// The grouping keys by path for a list of patterns (one key per pattern): `depth` literal
/// segments after the prefix shared by all of them.
pub fn path_keys(patterns: &[&Pattern], depth: usize) -> Vec<String> {
    let prefixes: Vec<Vec<&str>> = patterns.iter().map(|p| literal_prefix(p)).collect();
    let mut common = prefixes.first().cloned().unwrap_or_default();
    for prefix in &prefixes {
        let shared = common
            .iter()
            .zip(prefix)
            .take_while(|(a, b)| a == b)
            .count();
        common.truncate(shared);
    }
    patterns
        .iter()
        .map(|pattern| {
            let after: Vec<String> = pattern
                .segments()
                .iter()
                .skip(common.len())
                .filter_map(|s| match s {
                    Segment::Literal(text) => Some(percent_decode(strip_extension(text))),
                    _ => None,
                })
                .take(depth.max(1))
                .collect();
            if after.is_empty() {
                common
                    .last()
                    .map_or_else(|| "root".to_owned(), |s| percent_decode(strip_extension(s)))
            } else {
                after.join("_")
            }
        })
        .collect()
}

/// `Calls.json` -> `Calls`. Only an extension that starts with a letter is one: `1.0`,
/// `v1.5` and `2010-04-01.1` are versions, and `1.0` and `1.1` must stay apart. A leading dot
/// or a dot-only name is kept.
fn strip_extension(segment: &str) -> &str {
    match segment.rfind('.') {
        Some(dot)
            if dot > 0 && segment[dot + 1..].starts_with(|c: char| c.is_ascii_alphabetic()) =>
        {
            &segment[..dot]
        }
        _ => segment,
    }
}

/// Words YAML 1.1 or 1.2 reads as a boolean, null or a float when written plain, and `none`,
/// the metrics label of requests that matched no API.
const RESERVED: &[&str] = &[
    "null", "true", "false", "yes", "no", "y", "n", "on", "off", "inf", "infinity", "nan", "none",
];

/// A valid config name for a tag or path key, deterministic: camelCase split at
/// lower-to-upper steps, lower-cased, anything but letters, digits, `-` and `_` turned into
/// `_`, runs of `_` collapsed, at most 64 bytes; `api` if nothing is left. A name that would
/// not start with a letter gets `v` when the key is a version number (`2.0` -> `v2_0`) and
/// `api_` otherwise (`2024-q1` -> `api_2024-q1`), as does a YAML keyword (`true` ->
/// `api_true`).
pub fn config_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut previous_lower = false;
    for c in key.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            out.push('_');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '-' {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches(['_', '-']);
    let name = if trimmed.is_empty() {
        "api".to_owned()
    } else if !trimmed.starts_with(|c: char| c.is_ascii_alphabetic()) {
        let is_version = key.starts_with(|c: char| c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_digit() || c == '.');
        let prefix = if is_version { "v" } else { "api_" };
        format!("{prefix}{trimmed}")
    } else if RESERVED.contains(&trimmed) {
        format!("api_{trimmed}")
    } else {
        trimmed.to_owned()
    };
    let mut name: String = name.chars().take(MAX_NAME).collect();
    while name.ends_with(['_', '-']) {
        name.pop();
    }
    name
}

/// Gives each distinct key a distinct config name, in order: a key whose name is taken gets
/// `_2`, `_3`, ... (shortened to stay within 64 bytes).
pub fn unique_names(keys: &[String]) -> Vec<String> {
    let mut taken: Vec<String> = Vec::with_capacity(keys.len());
    for key in keys {
        let base = config_name(key);
        let mut name = base.clone();
        let mut n = 2;
        while taken.contains(&name) {
            let suffix = format!("_{n}");
            let keep = MAX_NAME.saturating_sub(suffix.len()).min(base.len());
            name = format!("{}{suffix}", &base[..keep]);
            n += 1;
        }
        taken.push(name);
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::scope::parse_pattern;

    #[test]
    fn names_are_valid_and_deterministic() {
        for (key, name) in [
            ("pet", "pet"),
            ("Api20100401AddOnResult", "api20100401_add_on_result"),
            ("Pet Store", "pet_store"),
            ("user-accounts", "user-accounts"),
            ("Événements", "v_nements"),
            ("日本", "api"),
            ("__x__", "x"),
            ("a.b/c", "a_b_c"),
            // Keys YAML would read back as something else than the name's text.
            ("2", "v2"),
            ("1.0", "v1_0"),
            ("1.10", "v1_10"),
            ("2024", "v2024"),
            ("-1", "api_1"),
            ("1e3", "api_1e3"),
            ("0x1F", "api_0x1_f"),
            ("0o17", "api_0o17"),
            ("2024-Q1", "api_2024-q1"),
            ("true", "api_true"),
            ("True", "api_true"),
            ("null", "api_null"),
            ("yes", "api_yes"),
            ("on", "api_on"),
            ("No", "api_no"),
            (".inf", "api_inf"),
            ("~", "api"),
            ("none", "api_none"),
            ("v1.5", "v1_5"),
            ("nothing", "nothing"),
        ] {
            assert_eq!(config_name(key), name, "{key}");
        }
        let long = "x".repeat(100);
        assert_eq!(config_name(&long).len(), 64);
        assert_eq!(config_name(&"9".repeat(100)).len(), 64);
    }

    #[test]
    fn collisions_get_suffixes() {
        let keys: Vec<String> = ["Pet", "pet", "PET", "Pet"].map(String::from).to_vec();
        assert_eq!(unique_names(&keys), ["pet", "pet_2", "pet_3", "pet_4"]);
        let long = vec!["y".repeat(80), "Y".repeat(80)];
        let names = unique_names(&long);
        assert_eq!(names[1].len(), 64);
        assert!(names[1].ends_with("_2"));
    }

    #[test]
    fn path_keys_skip_the_shared_prefix() {
        let parsed: Vec<Pattern> = [
            "/api/v3/pet",
            "/api/v3/pet/*",
            "/api/v3/store/inventory",
            "/api/v3/user/*.json",
            "/api/v3",
        ]
        .iter()
        .filter_map(|p| parse_pattern(p).ok())
        .collect();
        let refs: Vec<&Pattern> = parsed.iter().collect();
        assert_eq!(path_keys(&refs, 1), ["pet", "pet", "store", "user", "v3"]);
        assert_eq!(
            path_keys(&refs, 2),
            ["pet", "pet", "store_inventory", "user", "v3"]
        );
        let parsed: Vec<Pattern> = ["/2010/Accounts.json", "/2010/Accounts/{account}/Calls.json"]
            .iter()
            .filter_map(|p| parse_pattern(p).ok())
            .collect();
        let refs: Vec<&Pattern> = parsed.iter().collect();
        assert_eq!(path_keys(&refs, 1), ["Accounts", "Accounts"]);
        assert_eq!(path_keys(&refs, 2), ["Accounts", "Accounts_Calls"]);
        // Version segments keep their dots: `1.0` and `1.1` stay two APIs.
        let parsed: Vec<Pattern> = ["/1.0/users", "/1.1/users", "/2.0/files", "/v1.5/items.xml"]
            .iter()
            .filter_map(|p| parse_pattern(p).ok())
            .collect();
        let refs: Vec<&Pattern> = parsed.iter().collect();
        assert_eq!(path_keys(&refs, 1), ["1.0", "1.1", "2.0", "v1.5"]);
        assert_eq!(
            path_keys(&refs, 2),
            ["1.0_users", "1.1_users", "2.0_files", "v1.5_items"]
        );
        let keys = path_keys(&refs, 1);
        assert_eq!(unique_names(&keys), ["v1_0", "v1_1", "v2_0", "v1_5"]);
    }
}
