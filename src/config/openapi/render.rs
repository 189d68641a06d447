//! The `apis:` block printed by `scopegate catalog import`: valid YAML that pastes into
//! `scopegate.yaml` as is, with each API's methods and any operation left out as comments.

use std::fmt::Write as _;

use super::{Import, Options};
use crate::config::yamlsrc::render::quote_scalar;

/// The block, with a header naming the document and the flags that reproduce it.
pub fn yaml_block(import: &Import, options: &Options, source: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Catalog imported from {} by `scopegate catalog import{}`",
        comment(source),
        comment(&flags(options))
    );
    let _ = writeln!(
        out,
        "# Document: {} {} (OpenAPI {}); {} operations in {} APIs.",
        comment(&import.title),
        comment(&import.version),
        comment(&import.openapi),
        import.operations.len(),
        import.apis.len()
    );
    if !import.skipped.is_empty() {
        let _ = writeln!(
            out,
            "# Not imported ({}): no pattern matches exactly these paths; add patterns by hand \
             if a wider grant is acceptable.",
            import.skipped.len()
        );
        for s in &import.skipped {
            let _ = writeln!(
                out,
                "#   {} {}: {}",
                comment(&s.method),
                comment(&s.path),
                comment(&s.reason)
            );
        }
    }
    if import.apis.is_empty() {
        out.push_str("apis: {}\n");
        return out;
    }
    out.push_str("apis:\n");
    for api in &import.apis {
        // Names are made plain-safe (see `group`); quoting as needed keeps any name that
        // reaches here reading back as itself.
        let _ = writeln!(out, "  {}:", quote_scalar(&api.name));
        let _ = writeln!(
            out,
            "    # methods: {} ({} operation{}; from {})",
            api.methods.join(", "),
            api.operations,
            if api.operations == 1 { "" } else { "s" },
            comment(&api.key)
        );
        let _ = writeln!(out, "    description: {}", quote(&api.description));
        if let Some(upstream) = &options.upstream {
            let _ = writeln!(out, "    upstream: {}", quote(upstream));
        }
        out.push_str("    paths:\n");
        for pattern in &api.patterns {
            let _ = writeln!(out, "      - {}", quote(pattern));
        }
    }
    out
}

/// The flags as they would be typed again.
fn flags(options: &Options) -> String {
    let mut out = String::new();
    if options.group_by == super::GroupBy::Path {
        out.push_str(" --group-by path");
        if options.path_depth > 1 {
            let _ = write!(out, " --path-depth {}", options.path_depth);
        }
    }
    for (flag, value) in [
        ("--account-param", &options.account_param),
        ("--upstream", &options.upstream),
        ("--strip-prefix", &options.strip_prefix),
        ("--base-path", &options.base_path),
    ] {
        if let Some(v) = value {
            let _ = write!(out, " {flag} {v}");
        }
    }
    out
}

/// A double-quoted YAML scalar (JSON string syntax is valid YAML).
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Text safe inside a one-line comment: control characters (a newline would end the
/// comment and inject YAML) become `?`.
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::openapi::import;

    #[test]
    fn block_is_yaml_with_comments_that_cannot_inject() {
        let doc = "openapi: 3.0.3\ninfo: {title: \"T\\nx: 1\", version: '1'}\npaths:\n  \"/a\\nb: 2\":\n    get: {}\n  /ok/{id}:\n    get: {tags: [\"we\\\"ird\\ntag\"]}\n";
        let imported = import(doc, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
        let block = yaml_block(&imported, &Options::default(), "doc.yaml");
        let value: serde_yaml::Value =
            serde_yaml::from_str(&block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        let apis = value.get("apis").and_then(|a| a.as_mapping()).cloned();
        assert_eq!(apis.map(|a| a.len()), Some(1), "{block}");
        assert!(
            value.get("x").is_none() && value.get("a").is_none(),
            "{block}"
        );
        assert_eq!(imported.skipped.len(), 1, "{block}");
    }
}
