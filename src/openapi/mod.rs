//! The catalog from an API's own OpenAPI document (SPEC §11): [`document`] reads the file and
//! walks its operations, [`template`] turns path templates into patterns, [`group`] assigns
//! operations to named APIs, [`render`] prints the `apis:` block, [`drift`] compares a
//! document with a configured catalog. Pure: the CLI (`scopegate catalog ...`) does the I/O.

pub mod document;
pub mod drift;
pub mod group;
pub mod render;
pub mod template;

use crate::model::KNOWN_METHODS;
use crate::scope::Pattern;

pub use document::Document;

/// The demo's OpenAPI document, shipped in `config/`.
pub const DEMO_DOCUMENT: &str = include_str!("../../config/demo-openapi.yaml");

/// How operations are grouped into APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupBy {
    #[default]
    Tag,
    Path,
}

/// The flags of `catalog import` and `catalog diff`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub group_by: GroupBy,
    /// The path parameter that becomes `{account}`.
    pub account_param: Option<String>,
    /// Written as each API's `upstream:`.
    pub upstream: Option<String>,
    /// Removed from the start of every path (after the servers' base path is joined).
    pub strip_prefix: Option<String>,
    /// Replaces the servers' base path (`/` for none).
    pub base_path: Option<String>,
    /// Literal segments per API name with `--group-by path` (default 1).
    pub path_depth: usize,
}

/// One operation of the document that the catalog can grant.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Upper-case standard method.
    pub method: &'static str,
    /// The `paths` key, as written.
    pub path: String,
    /// The full path after base path and prefix handling, as matched.
    pub full_path: String,
    pub pattern_text: String,
    pub pattern: Pattern,
    /// Index into [`Import::apis`].
    pub api: usize,
}

/// An operation that could not be turned into a pattern, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub method: String,
    pub path: String,
    pub reason: String,
}

/// One API of the imported catalog.
#[derive(Debug, Clone)]
pub struct ImportedApi {
    pub name: String,
    /// The tag or path key it was built from.
    pub key: String,
    pub description: String,
    /// Distinct pattern texts, in document order.
    pub patterns: Vec<String>,
    /// Methods its operations use, in standard order.
    pub methods: Vec<&'static str>,
    pub operations: usize,
}

/// The result of importing a document.
#[derive(Debug, Clone)]
pub struct Import {
    pub openapi: String,
    pub title: String,
    pub version: String,
    pub apis: Vec<ImportedApi>,
    pub operations: Vec<Operation>,
    pub skipped: Vec<Skipped>,
    /// Things worth telling the operator that did not stop an operation.
    pub notes: Vec<String>,
}

/// Reads a document and builds its catalog. `Err` only when the text is not a readable
/// OpenAPI 3.x document; operations that cannot be granted are listed in `skipped`.
pub fn import(text: &str, options: &Options) -> Result<Import, String> {
    let doc = Document::parse(text)?;
    let (raw, unreadable) = doc.operations();
    let mut skipped: Vec<Skipped> = unreadable
        .into_iter()
        .map(|u| Skipped {
            method: u.method,
            path: u.path,
            reason: u.reason,
        })
        .collect();
    let mut notes = Vec::new();
    let base_override = options
        .base_path
        .as_deref()
        .map(|b| b.trim_end_matches('/').to_owned());
    let strip = options
        .strip_prefix
        .as_deref()
        .map(|p| p.trim_end_matches('/'))
        .filter(|p| !p.is_empty());

    // (operation, converted pattern, group key)
    let mut converted = Vec::new();
    let mut account_seen = false;
    for op in raw {
        let skip = |reason: String| Skipped {
            method: op.method.clone(),
            path: op.path.clone(),
            reason,
        };
        let Some(method) = KNOWN_METHODS.iter().copied().find(|m| *m == op.method) else {
            skipped.push(skip(format!(
                "method `{}` cannot be granted: scopes grant the standard methods only",
                op.method
            )));
            continue;
        };
        let base = match (&base_override, &op.base_path) {
            (Some(b), _) => b.clone(),
            (None, Ok(b)) => b.clone(),
            (None, Err(reason)) => {
                skipped.push(skip(format!("{reason} (or pass --base-path)")));
                continue;
            }
        };
        let joined = join(&base, &op.path);
        let full_path = match strip {
            None => joined,
            Some(prefix) => match joined.strip_prefix(prefix) {
                Some("") => "/".to_owned(),
                Some(rest) if rest.starts_with('/') => rest.to_owned(),
                _ => {
                    skipped.push(skip(format!(
                        "`{joined}` does not start with --strip-prefix `{prefix}`"
                    )));
                    continue;
                }
            },
        };
        let account = options.account_param.as_deref();
        if account.is_some_and(|a| full_path.contains(&format!("{{{a}}}"))) {
            account_seen = true;
        }
        match template::to_pattern(&full_path, account) {
            Ok(c) => {
                if let Some(note) = &c.note {
                    notes.push(note.clone());
                }
                converted.push((op, method, full_path, c));
            }
            Err(reason) => skipped.push(skip(reason)),
        }
    }
    if let Some(a) = &options.account_param {
        if !account_seen && !converted.is_empty() {
            notes.push(format!(
                "no path has the parameter `{{{a}}}` given by --account-param: no pattern \
                 holds {{account}}"
            ));
        }
    } else if let Some(name) = converted
        .iter()
        .flat_map(|(op, ..)| op.path_params.iter())
        .find(|n| n.to_ascii_lowercase().contains("account"))
    {
        notes.push(format!(
            "path parameter `{name}` looks like an account id: pass --account-param {name} \
             so that a token only reaches its own account's resources"
        ));
    }

    let keys: Vec<String> = match options.group_by {
        GroupBy::Tag => converted
            .iter()
            .map(|(op, ..)| {
                op.tags
                    .first()
                    .cloned()
                    .unwrap_or_else(|| group::UNTAGGED.to_owned())
            })
            .collect(),
        GroupBy::Path => {
            let patterns: Vec<&Pattern> = converted.iter().map(|(.., c)| &c.pattern).collect();
            group::path_keys(&patterns, options.path_depth.max(1))
        }
    };
    if options.group_by == GroupBy::Tag
        && !converted.is_empty()
        && converted.iter().all(|(op, ..)| op.tags.is_empty())
    {
        notes.push(format!(
            "no operation has a tag, so all of them are in API `{}`: use --group-by path to \
             split them by path",
            group::UNTAGGED
        ));
    }
    // Distinct keys in order: the document's own tag list first (its intended order), then
    // first appearance.
    let mut distinct: Vec<String> = Vec::new();
    if options.group_by == GroupBy::Tag {
        for tag in doc_tags(&doc) {
            if keys.contains(&tag.0) && !distinct.contains(&tag.0) {
                distinct.push(tag.0);
            }
        }
    }
    for key in &keys {
        if !distinct.contains(key) {
            distinct.push(key.clone());
        }
    }
    let names = group::unique_names(&distinct);
    let tag_descriptions = doc_tags(&doc);
    let mut apis: Vec<ImportedApi> = distinct
        .iter()
        .zip(&names)
        .map(|(key, name)| ImportedApi {
            name: name.clone(),
            key: key.clone(),
            description: describe(options.group_by, key, &tag_descriptions, &doc.title),
            patterns: Vec::new(),
            methods: Vec::new(),
            operations: 0,
        })
        .collect();
    let mut operations = Vec::with_capacity(converted.len());
    for ((op, method, full_path, c), key) in converted.into_iter().zip(&keys) {
        let Some(index) = distinct.iter().position(|k| k == key) else {
            continue;
        };
        let api = &mut apis[index];
        if !api.patterns.contains(&c.text) {
            api.patterns.push(c.text.clone());
        }
        if !api.methods.contains(&method) {
            api.methods.push(method);
        }
        api.operations += 1;
        operations.push(Operation {
            method,
            path: op.path,
            full_path,
            pattern_text: c.text,
            pattern: c.pattern,
            api: index,
        });
    }
    for api in &mut apis {
        api.methods
            .sort_by_key(|m| KNOWN_METHODS.iter().position(|k| k == m));
    }
    notes.extend(overlap_notes(&apis, &operations));
    Ok(Import {
        openapi: doc.openapi,
        title: doc.title,
        version: doc.version,
        apis,
        operations,
        skipped,
        notes,
    })
}

/// Most notes listed about APIs that overlap.
const MAX_OVERLAP_NOTES: usize = 10;

/// Operations of different APIs whose patterns may match a common path with the same
/// method: a request is allowed when any of the token's scopes matches (SPEC §2), so a token
/// of either API may call both. OpenAPI's rule that `/pets/mine` wins over `/pets/{id}`
/// cannot be written as a pattern; the operator should know.
fn overlap_notes(apis: &[ImportedApi], operations: &[Operation]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut total = 0usize;
    for (i, a) in operations.iter().enumerate() {
        for b in &operations[i + 1..] {
            if a.api == b.api || a.method != b.method || a.pattern_text == b.pattern_text {
                continue;
            }
            if !crate::scope::relate::overlaps(&a.pattern, &b.pattern) {
                continue;
            }
            total += 1;
            if found.len() < MAX_OVERLAP_NOTES {
                found.push(format!(
                    "{} {} (API `{}`) and {} (API `{}`) may match the same requests: a token \
                     granted {} on either API can make them",
                    a.method,
                    a.pattern_text,
                    apis[a.api].name,
                    b.pattern_text,
                    apis[b.api].name,
                    a.method
                ));
            }
        }
    }
    if total > found.len() {
        found.push(format!(
            "... and {} more overlapping operation pairs",
            total - found.len()
        ));
    }
    found
}

/// `base` + `path` with exactly one `/` between them.
fn join(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.is_empty() {
        path.to_owned()
    } else if path.starts_with('/') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    }
}

/// The document's top-level tags: (name, description).
fn doc_tags(doc: &Document) -> Vec<(String, String)> {
    let Some(tags) = doc
        .root
        .get("tags")
        .and_then(serde_yaml::Value::as_sequence)
    else {
        return Vec::new();
    };
    tags.iter()
        .filter_map(|t| {
            let name = t.get("name").and_then(document::scalar_text)?;
            let description = t
                .get("description")
                .and_then(document::scalar_text)
                .unwrap_or_default();
            Some((name, description))
        })
        .collect()
}

/// A one-line description: the tag's own, else what the API was built from.
fn describe(by: GroupBy, key: &str, tags: &[(String, String)], title: &str) -> String {
    let own = tags
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, d)| d.lines().next().unwrap_or_default().trim().to_owned())
        .filter(|d| !d.is_empty());
    let text = own.unwrap_or_else(|| match (by, key) {
        (GroupBy::Tag, group::UNTAGGED) => format!("Untagged operations of {title}"),
        (GroupBy::Tag, _) => format!("Operations tagged {key} in {title}"),
        (GroupBy::Path, _) => format!("Operations under {key} in {title}"),
    });
    text.chars().take(200).collect()
}

/// The demo catalog: the `apis:` mapping imported from [`DEMO_DOCUMENT`], ready to be put
/// in a config (its account parameter is `AccountSid`).
pub fn demo_apis() -> Result<serde_yaml::Value, String> {
    let options = Options {
        account_param: Some("AccountSid".into()),
        ..Options::default()
    };
    let imported = import(DEMO_DOCUMENT, &options)?;
    let block = render::yaml_block(&imported, &options, "config/demo-openapi.yaml");
    let value: serde_yaml::Value =
        serde_yaml::from_str(&block).map_err(|e| format!("demo catalog: {e}"))?;
    value
        .get("apis")
        .cloned()
        .ok_or_else(|| "demo catalog: no apis".to_owned())
}
