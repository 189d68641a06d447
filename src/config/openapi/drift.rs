//! Drift between an OpenAPI document and the configured catalog (`scopegate catalog diff`):
//! operations no API covers, APIs no operation uses, and methods granted to tokens that the
//! API's operations do not have.

use std::fmt::Write as _;

use serde_json::json;

use super::{Import, Skipped};
use crate::config::{Settings, TokenSpec};
use crate::domain::model::{method_index, MethodSet, TokenKind};
use crate::domain::scope::relate::{covers, overlaps};

/// An operation of the document that no configured pattern covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncovered {
    pub method: &'static str,
    pub path: String,
    /// The pattern that would cover it.
    pub pattern: String,
    /// The API `catalog import` would put it in.
    pub suggested_api: String,
}

/// A configured API that no operation of the document reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedApi {
    pub api: String,
    pub paths: Vec<String>,
}

/// Methods a token is granted on an API that none of the API's operations use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraGrant {
    pub sid: String,
    pub name: String,
    pub account: String,
    pub api: String,
    pub methods: Vec<&'static str>,
}

/// The comparison's result.
#[derive(Debug, Clone, Default)]
pub struct Drift {
    pub uncovered: Vec<Uncovered>,
    pub unused_apis: Vec<UnusedApi>,
    pub extra_grants: Vec<ExtraGrant>,
    /// Operations of the document that cannot be expressed as patterns (not drift, listed).
    pub skipped: Vec<Skipped>,
    /// How many configured APIs were compared (all, or those of `--upstream`).
    pub compared_apis: usize,
}

/// Compares `import` with the configured APIs (only those routed to `upstream`, when given)
/// and the tokens' grants on them.
pub fn compare(
    import: &Import,
    settings: &Settings,
    tokens: &[TokenSpec],
    upstream: Option<&str>,
) -> Drift {
    let compared: Vec<usize> = settings
        .apis
        .iter()
        .enumerate()
        .filter(|(_, api)| {
            upstream.is_none_or(|u| {
                settings
                    .upstreams
                    .get(api.upstream)
                    .is_some_and(|up| up.name == u)
            })
        })
        .map(|(i, _)| i)
        .collect();

    let uncovered = import
        .operations
        .iter()
        .filter(|op| {
            !compared.iter().any(|&i| {
                settings.apis[i]
                    .patterns
                    .iter()
                    .any(|(_, p)| covers(p, &op.pattern))
            })
        })
        .map(|op| Uncovered {
            method: op.method,
            path: op.full_path.clone(),
            pattern: op.pattern_text.clone(),
            suggested_api: import.apis[op.api].name.clone(),
        })
        .collect();

    // The methods of the document's operations that reach each compared API.
    let reached: Vec<(usize, MethodSet)> = compared
        .iter()
        .map(|&i| {
            let mut methods = MethodSet::EMPTY;
            for op in &import.operations {
                let hits = settings.apis[i]
                    .patterns
                    .iter()
                    .any(|(_, p)| overlaps(p, &op.pattern));
                if hits {
                    if let Some(idx) = method_index(op.method) {
                        methods.grant(idx); // GET brings HEAD, as in a grant
                    }
                }
            }
            (i, methods)
        })
        .collect();
    let unused_apis = reached
        .iter()
        .zip(&compared)
        .filter(|((_, m), &i)| {
            m.is_empty()
                && !import.operations.iter().any(|op| {
                    settings.apis[i]
                        .patterns
                        .iter()
                        .any(|(_, p)| overlaps(p, &op.pattern))
                })
        })
        .map(|(_, &i)| UnusedApi {
            api: settings.apis[i].name.clone(),
            paths: settings.apis[i]
                .patterns
                .iter()
                .map(|(t, _)| t.clone())
                .collect(),
        })
        .collect();

    let mut extra_grants = Vec::new();
    for token in tokens.iter().filter(|t| t.kind != TokenKind::Legacy) {
        for grant in &token.scopes {
            let Some((_, used)) = reached.iter().find(|(i, _)| *i == usize::from(grant.api)) else {
                continue;
            };
            let methods: Vec<&'static str> = grant
                .methods
                .names()
                .filter(|m| method_index(m).is_some_and(|idx| !used.contains(idx)))
                .collect();
            if !methods.is_empty() {
                extra_grants.push(ExtraGrant {
                    sid: token.sid.clone(),
                    name: token.name.clone(),
                    account: token.account.clone(),
                    api: settings.apis[usize::from(grant.api)].name.clone(),
                    methods,
                });
            }
        }
    }

    Drift {
        uncovered,
        unused_apis,
        extra_grants,
        skipped: import.skipped.clone(),
        compared_apis: compared.len(),
    }
}

impl Drift {
    pub fn has_drift(&self) -> bool {
        !(self.uncovered.is_empty() && self.unused_apis.is_empty() && self.extra_grants.is_empty())
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "drift": self.has_drift(),
            "compared_apis": self.compared_apis,
            "uncovered_operations": self.uncovered.iter().map(|u| json!({
                "method": u.method,
                "path": u.path,
                "pattern": u.pattern,
                "suggested_api": u.suggested_api,
            })).collect::<Vec<_>>(),
            "apis_without_operations": self.unused_apis.iter().map(|a| json!({
                "api": a.api,
                "paths": a.paths,
            })).collect::<Vec<_>>(),
            "granted_methods_without_operations": self.extra_grants.iter().map(|g| json!({
                "sid": g.sid,
                "name": g.name,
                "account": g.account,
                "api": g.api,
                "methods": g.methods,
            })).collect::<Vec<_>>(),
            "not_importable_operations": self.skipped.iter().map(|s| json!({
                "method": s.method,
                "path": s.path,
                "reason": s.reason,
            })).collect::<Vec<_>>(),
        })
    }

    /// The report for people.
    pub fn text(&self, document: &str) -> String {
        let mut out = String::new();
        if !self.has_drift() {
            let _ = writeln!(
                out,
                "no drift: every operation of {document} is covered, every compared API \
                 ({}) has operations, and no token is granted a method they lack",
                self.compared_apis
            );
        } else {
            let _ = writeln!(out, "drift between {document} and the catalog:");
        }
        if !self.uncovered.is_empty() {
            let _ = writeln!(
                out,
                "\noperations no API covers ({}): requests to them are refused",
                self.uncovered.len()
            );
            for u in &self.uncovered {
                let _ = writeln!(
                    out,
                    "  {} {}  -> pattern {} (import puts it in API `{}`)",
                    u.method, u.path, u.pattern, u.suggested_api
                );
            }
        }
        if !self.unused_apis.is_empty() {
            let _ = writeln!(
                out,
                "\nAPIs no operation of the document uses ({}):",
                self.unused_apis.len()
            );
            for a in &self.unused_apis {
                let _ = writeln!(out, "  {}: {}", a.api, a.paths.join(", "));
            }
        }
        if !self.extra_grants.is_empty() {
            let _ = writeln!(
                out,
                "\nmethods granted that the API's operations do not have ({}):",
                self.extra_grants.len()
            );
            for g in &self.extra_grants {
                let _ = writeln!(
                    out,
                    "  {} ({}, account {}): {} {}",
                    g.sid,
                    g.name,
                    g.account,
                    g.api,
                    g.methods.join(", ")
                );
            }
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(
                out,
                "\noperations that no pattern can express exactly ({}; not counted as drift):",
                self.skipped.len()
            );
            for line in super::summary::skipped_lines(&self.skipped) {
                let _ = writeln!(out, "  {line}");
            }
        }
        out
    }
}
