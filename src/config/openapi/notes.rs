//! Notes on an imported catalog: things that stopped no operation but change what a grant
//! does. Patterns of different APIs that overlap, operations served by another host than the
//! document's main one, and path parameters that may span several segments.

use super::{ImportedApi, Operation};
use crate::domain::scope::Pattern;

/// Most notes listed about APIs that overlap.
const MAX_OVERLAP_NOTES: usize = 10;

/// Operations named as examples in one note.
const EXAMPLES: usize = 3;

/// Patterns of different APIs that may match a common path: a request is allowed when any of
/// the token's scopes matches (SPEC §2), so a token of either API may call both paths with the
/// methods it holds. OpenAPI's rule that `/pets/mine` wins over `/pets/{id}` cannot be
/// written as a pattern; the operator should know.
pub fn overlaps(apis: &[ImportedApi], operations: &[Operation]) -> Vec<String> {
    // Each (API, pattern) once, in document order.
    let mut entries: Vec<(usize, &str, &Pattern)> = Vec::new();
    for op in operations {
        if !entries
            .iter()
            .any(|(api, text, _)| *api == op.api && *text == op.pattern_text)
        {
            entries.push((op.api, &op.pattern_text, &op.pattern));
        }
    }
    let mut found: Vec<String> = Vec::new();
    let mut total = 0usize;
    for (i, (a_api, a_text, a)) in entries.iter().enumerate() {
        for (b_api, b_text, b) in &entries[i + 1..] {
            if a_api == b_api || !crate::domain::scope::relate::overlaps(a, b) {
                continue;
            }
            total += 1;
            if found.len() < MAX_OVERLAP_NOTES {
                found.push(format!(
                    "{a_text} (API `{}`) and {b_text} (API `{}`) may match the same requests: \
                     a token of either API can call both with the methods it is granted",
                    apis[*a_api].name, apis[*b_api].name
                ));
            }
        }
    }
    if total > found.len() {
        found.push(format!(
            "... and {} more overlapping pattern pairs",
            total - found.len()
        ));
    }
    found
}

/// One note per host other than the main one (the document's first server's, else the most
/// common): its operations reach the gateway's upstream only if an upstream serves that host.
/// `main` is `None` when the document names no host.
pub fn other_hosts(
    main: Option<&str>,
    apis: &[ImportedApi],
    operations: &[Operation],
) -> Vec<String> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for host in operations.iter().filter_map(|o| o.host.as_deref()) {
        match counts.iter_mut().find(|(h, _)| *h == host) {
            Some((_, n)) => *n += 1,
            None => counts.push((host, 1)),
        }
    }
    let Some(main) = main.or_else(|| counts.iter().rev().max_by_key(|(_, n)| *n).map(|(h, _)| *h))
    else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    for (host, _) in counts.iter().filter(|(h, _)| *h != main) {
        let on_host: Vec<&Operation> = operations
            .iter()
            .filter(|o| o.host.as_deref() == Some(host))
            .collect();
        let mut api_names: Vec<String> = Vec::new();
        let mut mixed: Vec<String> = Vec::new();
        for op in &on_host {
            let name = format!("`{}`", apis[op.api].name);
            if api_names.contains(&name) {
                continue;
            }
            if operations
                .iter()
                .any(|o| o.api == op.api && o.host.as_deref() != Some(host))
            {
                mixed.push(name.clone());
            }
            api_names.push(name);
        }
        let mixed = match mixed.len() {
            0 => String::new(),
            1 => format!(
                "; {} also has operations on another host: split it by hand",
                mixed[0]
            ),
            _ => format!(
                "; {} also have operations on another host: split them by hand",
                mixed.join(", ")
            ),
        };
        notes.push(format!(
            "{} served by `{host}`, not `{main}` (the document's main server): {} (API{} {}); \
             route {} to an upstream for that host{mixed}",
            count_of(on_host.len(), "operation is", "operations are"),
            examples(
                on_host
                    .iter()
                    .map(|o| format!("{} {}", o.method, o.full_path))
            ),
            if api_names.len() == 1 { "" } else { "s" },
            api_names.join(", "),
            if api_names.len() == 1 { "it" } else { "them" },
        ));
    }
    notes
}

/// A path parameter of one operation that may span several segments (see
/// [`super::spanning`]).
pub struct Spanning<'a> {
    pub param: &'a str,
    pub why: &'a str,
    pub method: &'a str,
    /// The operation's full path template.
    pub template: &'a str,
    pub pattern: &'a str,
}

/// One note per (parameter, evidence): the operations whose pattern refuses multi-segment
/// values, and a wider pattern the operator could write by hand.
pub fn spanning(found: &[Spanning<'_>]) -> Vec<String> {
    let mut groups: Vec<(&str, &str, Vec<&Spanning<'_>>)> = Vec::new();
    for s in found {
        match groups
            .iter_mut()
            .find(|(p, w, _)| *p == s.param && *w == s.why)
        {
            Some((.., members)) => members.push(s),
            None => groups.push((s.param, s.why, vec![s])),
        }
    }
    groups
        .into_iter()
        .map(|(param, why, members)| {
            let hint = members
                .iter()
                .find_map(|s| wider_pattern(s))
                .map(|p| format!(" (e.g. `{p}`, which grants more than the document's paths)"))
                .unwrap_or_default();
            format!(
                "`{{{param}}}` may span several segments ({why}) but `*` matches one: {} \
                 refuse{} such values; grant them with a wider pattern by hand{hint}",
                examples(
                    members
                        .iter()
                        .map(|s| format!("{} {}", s.method, s.template))
                ),
                if members.len() == 1 { "s" } else { "" },
            )
        })
        .collect()
}

/// The operation's pattern cut before the parameter's segment, with `/**` after it:
/// `/v1/{name}:cancel` -> `/v1/**`.
fn wider_pattern(s: &Spanning<'_>) -> Option<String> {
    let own = format!("{{{}}}", s.param);
    let template: Vec<&str> = s.template.split('/').collect();
    let pattern: Vec<&str> = s.pattern.split('/').collect();
    if template.len() != pattern.len() {
        return None; // a binding or a trailing slash changed the segments
    }
    let at = template.iter().position(|seg| seg.contains(&own))?;
    let prefix = pattern[..at].join("/");
    Some(format!("{prefix}/**"))
}

/// `GET /a, GET /b, GET /c and 4 more`.
fn examples(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    let shown = items[..items.len().min(EXAMPLES)].join(", ");
    if items.len() > EXAMPLES {
        format!("{shown} and {} more", items.len() - EXAMPLES)
    } else {
        shown
    }
}

/// `1 operation is`, `3 operations are`.
fn count_of(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}
