//! The layering rule, checked on the source: the top-level modules of `src/` depend on
//! each other one way only (cli -> gateway -> config -> domain, as the table below says),
//! and the domain stays free of the runtime (tokio, hyper, prometheus, notify, redis,
//! file access). A new `crate::cli` import under `src/gateway`, or a `tokio::` under
//! `src/domain`, fails here instead of quietly bringing back an import circle.

use std::path::{Path, PathBuf};

/// Each layer and the layers it may use. `src/lib.rs` (the wiring) and `src/main.rs` may
/// use all of them.
const ALLOWED: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("config", &["domain"]),
    ("gateway", &["domain", "config"]),
    ("cli", &["domain", "config", "gateway"]),
];

/// Crates the domain must not name: it is the pure rules, with no I/O and no runtime.
const DOMAIN_FORBIDDEN: &[&str] = &[
    "tokio",
    "tokio_rustls",
    "hyper",
    "hyper_util",
    "hyper_rustls",
    "prometheus",
    "notify",
    "redis",
    "lettre",
];

fn layer_names() -> Vec<&'static str> {
    ALLOWED.iter().map(|(l, _)| *l).collect()
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("readable folder entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// How many `super::` reach the crate root from a file at `rel` (relative to `src/`):
/// `gateway/mod.rs` is one level down, `gateway/proxy.rs` two, `gateway/console/mod.rs` two.
fn depth(rel: &Path) -> usize {
    let parts = rel.components().count();
    if rel.file_name().is_some_and(|n| n == "mod.rs") {
        parts - 1
    } else {
        parts
    }
}

/// The identifier at the start of `s` (letters, digits, `_`).
fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Whether `s[at..]` starts a path of its own (not the tail of `a::b`, not inside a name).
fn path_starts_at(s: &str, at: usize) -> bool {
    let before = s[..at].chars().next_back();
    !matches!(before, Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The rule's violations in one file of `layer` (`rel` is its path under `src/`).
fn violations(layer: &str, rel: &Path, source: &str) -> Vec<String> {
    let allowed = ALLOWED
        .iter()
        .find(|(l, _)| *l == layer)
        .map(|(_, a)| *a)
        .expect("a known layer");
    let mut found = Vec::new();
    let supers = "super::".repeat(depth(rel));
    for (n, line) in source.lines().enumerate() {
        let code = line.trim_start();
        // Comments and doc links are not dependencies.
        if code.starts_with("//") {
            continue;
        }
        let at = |what: String| format!("src/{}:{}: {what}: {}", rel.display(), n + 1, code);
        for (i, _) in code.match_indices("crate::") {
            if !path_starts_at(code, i) {
                continue;
            }
            let rest = &code[i + "crate::".len()..];
            if rest.starts_with('{') {
                found.push(at(
                    "a grouped `crate::{...}` import (write one path per layer)".into(),
                ));
                continue;
            }
            let used = ident(rest);
            if used != layer && layer_names().contains(&used) && !allowed.contains(&used) {
                found.push(at(format!("`{layer}` may not use `{used}`")));
            }
        }
        for (i, _) in code.match_indices(&supers) {
            let used = ident(&code[i + supers.len()..]);
            if path_starts_at(code, i)
                && used != layer
                && layer_names().contains(&used)
                && !allowed.contains(&used)
            {
                found.push(at(format!(
                    "`{layer}` may not use `{used}` (through super::)"
                )));
            }
        }
        if layer == "domain" {
            for krate in DOMAIN_FORBIDDEN {
                let path = format!("{krate}::");
                let named = code
                    .match_indices(&path)
                    .any(|(i, _)| path_starts_at(code, i))
                    || code.starts_with(&format!("use {krate};"))
                    || code.contains(&format!("extern crate {krate}"));
                if named {
                    found.push(at(format!("the domain may not use `{krate}`")));
                }
            }
            let fs = code
                .match_indices("std::fs")
                .any(|(i, _)| path_starts_at(code, i) && ident(&code[i + 5..]) == "fs");
            let grouped_fs = code.contains("std::{")
                && code["std::{".len() + code.find("std::{").unwrap_or(0)..]
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .any(|w| w == "fs");
            if fs || grouped_fs {
                found.push(at("the domain may not touch files (`std::fs`)".into()));
            }
        }
    }
    found
}

#[test]
fn top_level_modules_depend_one_way_and_the_domain_has_no_runtime() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    let mut scanned = 0;
    for layer in layer_names() {
        let mut files = Vec::new();
        rust_files(&src.join(layer), &mut files);
        assert!(!files.is_empty(), "src/{layer} has no source files");
        for file in files {
            let text = std::fs::read_to_string(&file).expect("readable source file");
            let rel = file.strip_prefix(&src).expect("under src/");
            all.extend(violations(layer, rel, &text));
            scanned += 1;
        }
    }
    // Every top-level folder of src/ is a layer in the table (a new one must be placed).
    for entry in std::fs::read_dir(&src).expect("src/ is readable") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                layer_names().contains(&name.as_str()),
                "src/{name}/ is not in the layering table of tests/layering.rs: place it"
            );
        }
    }
    assert!(scanned > 50, "only {scanned} files scanned");
    assert!(all.is_empty(), "layering violations:\n{}", all.join("\n"));
}

#[test]
fn the_check_sees_each_kind_of_violation() {
    let file = Path::new("gateway/console/api.rs");
    assert_eq!(
        violations("gateway", file, "use crate::cli::token::ops;").len(),
        1
    );
    assert_eq!(
        violations("gateway", file, "let x = crate::cli::audit::run(a);").len(),
        1
    );
    assert_eq!(
        violations("gateway", file, "use crate::{cli, config};").len(),
        1
    );
    assert_eq!(
        violations("gateway", Path::new("gateway/mod.rs"), "use super::cli::x;").len(),
        1
    );
    assert_eq!(
        violations(
            "gateway",
            Path::new("gateway/proxy.rs"),
            "use super::super::cli;"
        )
        .len(),
        1
    );
    let domain = Path::new("domain/policy.rs");
    for bad in [
        "use tokio::sync::watch;",
        "    let r = prometheus::Registry::new();",
        "use std::fs::File;",
        "use std::{fs, io};",
        "let s = std::fs::read_to_string(p)?;",
        "use crate::config::Settings;",
    ] {
        assert_eq!(violations("domain", domain, bad).len(), 1, "{bad}");
    }
    // What is allowed: lower layers, own layer, comments, other crates' `notify` paths.
    for good in [
        "use crate::domain::model::TokenKind;",
        "pub notifications: Option<crate::domain::notify::NotifySettings>,",
        "/// See [`crate::gateway::proxy`] for how the gateway runs it.",
        "use std::fmt;",
        "let fsync = 1;",
    ] {
        assert!(violations("domain", domain, good).is_empty(), "{good}");
    }
    assert!(violations(
        "cli",
        Path::new("cli/token.rs"),
        "use crate::gateway::manage::ops;"
    )
    .is_empty());
}
