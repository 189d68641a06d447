//! The catalog from an API's own OpenAPI document (SPEC §11): [`tree`] reads the text,
//! [`document`] walks its operations ([`servers`] reads their servers, [`spanning`] spots
//! parameters that hold several segments), [`template`] turns path templates into patterns,
//! [`group`] assigns operations to named APIs, [`notes`] and [`summary`] say what the
//! operator should know, [`render`] prints the `apis:` block, [`drift`] compares a document
//! with a configured catalog. Pure: the CLI (`scopegate catalog ...`) does the I/O.

pub mod document;
pub mod drift;
pub mod group;
pub mod notes;
pub mod render;
pub mod servers;
pub mod spanning;
pub mod summary;
pub mod template;
pub mod tree;

use crate::domain::model::KNOWN_METHODS;
use crate::domain::scope::Pattern;

pub use document::Document;

/// The demo's OpenAPI document, shipped in `config/`.
pub const DEMO_DOCUMENT: &str = include_str!("../../../config/demo-openapi.yaml");

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
    /// The `paths` key, as written (kept for the unit tests' checks; the catalog uses
    /// `full_path`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub path: String,
    /// The full path after base path and prefix handling, as matched.
    pub full_path: String,
    pub pattern_text: String,
    pub pattern: Pattern,
    /// Index into [`Import::apis`].
    pub api: usize,
    /// The host of the server that serves it (`None`: the document's own, or unnamed).
    pub host: Option<String>,
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

/// Reads a document and builds its catalog. `Err` when the text is not a readable OpenAPI 3.x
/// document, or when its `paths` has entries but not one operation could be imported (an
/// unbundled document: an empty catalog would read as "nothing to grant"); operations that
/// cannot be granted are listed in `skipped`.
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
    let mut notes = doc.notes.clone();
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
        if !op.path.starts_with('/') {
            skipped.push(skip(
                "the path does not start with `/` (OpenAPI requires it)".into(),
            ));
            continue;
        }
        let base = match (&base_override, &op.servers.base) {
            (Some(b), _) => b.clone(),
            (None, Ok(b)) => b.clone(),
            (None, Err(reason)) => {
                skipped.push(skip(format!("{reason} (or pass --base-path)")));
                continue;
            }
        };
        if let (None, Some(note)) = (&base_override, &op.servers.disagreement) {
            push_once(&mut notes, note);
        }
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
                    push_once(&mut notes, note);
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
        .flat_map(|(op, ..)| {
            let in_template = template::param_names(&op.path);
            op.path_params.iter().map(String::as_str).chain(in_template)
        })
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
    let spanning: Vec<notes::Spanning<'_>> = converted
        .iter()
        .flat_map(|(op, method, full_path, c)| {
            op.spanning.iter().map(move |(param, why)| notes::Spanning {
                param,
                why,
                method,
                template: full_path,
                pattern: &c.text,
            })
        })
        .collect();
    notes.extend(notes::spanning(&spanning));
    drop(spanning);
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
            host: op.servers.host,
        });
    }
    for api in &mut apis {
        api.methods
            .sort_by_key(|m| KNOWN_METHODS.iter().position(|k| k == m));
    }
    notes.extend(notes::overlaps(&apis, &operations));
    notes.extend(notes::other_hosts(
        doc.host().as_deref(),
        &apis,
        &operations,
    ));
    if operations.is_empty() && doc.path_count() > 0 {
        return Err(nothing_imported(doc.path_count(), &skipped));
    }
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

/// Adds a note unless it is there already (a path's note comes once, not once per method).
fn push_once(notes: &mut Vec<String>, note: &str) {
    if !notes.iter().any(|n| n == note) {
        notes.push(note.to_owned());
    }
}

/// The error for a document whose `paths` yields no operation at all.
fn nothing_imported(paths: usize, skipped: &[Skipped]) -> String {
    let paths = if paths == 1 {
        "its 1 path".to_owned()
    } else {
        format!("its {paths} paths")
    };
    if skipped.is_empty() {
        return format!(
            "no operation could be imported from {paths}: no path item holds an operation \
             (`get`, `put`, `post`, `delete`, `options`, `head`, `patch`, `trace`)"
        );
    }
    let mut message = format!("no operation could be imported from {paths}:");
    for line in summary::skipped_lines(skipped) {
        message.push_str("\n  ");
        message.push_str(&line);
    }
    message
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A document with the awkward things real ones contain.
    const AWKWARD: &str = r##"
openapi: 3.0.3
info: {title: Awkward, version: "2", x-logo: {url: x}}
x-top: 1
servers: [{url: "https://api.example.com/v1/"}]
tags:
  - {name: Pet, description: "Pets\nsecond line"}
  - {name: pet}
  - {name: unused}
components:
  parameters:
    Acct: {name: accountId, in: path, required: true}
  pathItems:
    Shared:
      get: {tags: [pet], x-internal: true}
x-common: &common
  tags: [Pet, pet]
paths:
  x-extension: {get: {}}
  /accounts/{accountId}/pets/:
    parameters: [{$ref: "#/components/parameters/Acct"}]
    get: *common
    post: {<<: *common, operationId: add}
    x-ignored: {}
  /accounts/{accountId}/pets:
    put: {tags: [Pet]}
  /accounts/{accountId}/pets/{id}.json:
    $ref: "#/components/pathItems/Shared"
    summary: beside the $ref
  /alias:
    $ref: "#/paths/~1accounts~1{accountId}~1pets"
  /untagged/{id}:
    delete: {}
  /café au lait: {get: {tags: [Pet]}}
  /x;y: {get: {}}
  /files/{name}.{ext}: {get: {}}
  /files/*: {get: {}}
  /double//slash: {get: {}}
  relative: {get: {}}
  /external: {$ref: "other.yaml#/paths/~1x"}
  /search: {query: {}, get: {parameters: [{$ref: "#/components/parameters/Missing"}]}}
"##;

    fn awkward(options: &Options) -> Import {
        import(AWKWARD, options).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn awkward_document_imports_what_it_can_and_says_why_not() {
        let options = Options {
            account_param: Some("accountId".into()),
            ..Options::default()
        };
        let got = awkward(&options);
        let names: Vec<&str> = got.apis.iter().map(|a| a.name.as_str()).collect();
        // Tag list order first, `Pet` and `pet` kept apart, untagged operations in `default`.
        assert_eq!(names, ["pet", "pet_2", "default"]);
        assert_eq!(got.apis[0].description, "Pets");
        let pet = &got.apis[0];
        assert_eq!(
            pet.patterns,
            [
                "/v1/accounts/{account}/pets",
                "/v1/alias",
                "/v1/caf%C3%A9%20au%20lait"
            ]
        );
        assert_eq!(pet.methods, ["GET", "POST", "PUT"]);
        assert_eq!(got.apis[1].patterns, ["/v1/accounts/{account}/pets/*.json"]);
        let skipped: Vec<(&str, &str)> = got
            .skipped
            .iter()
            .map(|s| (s.method.as_str(), s.path.as_str()))
            .collect();
        for expected in [
            ("GET", "/x;y"),
            ("GET", "/files/{name}.{ext}"),
            ("GET", "/files/*"),
            ("GET", "/double//slash"),
            ("GET", "relative"),
            ("", "/external"),
            ("QUERY", "/search"),
        ] {
            assert!(skipped.contains(&expected), "{expected:?} in {skipped:?}");
        }
        let reason = |path: &str| {
            got.skipped
                .iter()
                .find(|s| s.path == path)
                .map(|s| s.reason.clone())
                .unwrap_or_default()
        };
        assert!(reason("/external").contains("outside the document"));
        assert!(reason("/x;y").contains("raw `;`"));
        assert!(reason("/files/{name}.{ext}").contains("more than one parameter"));
        // The `/alias` path item is the `/accounts/{accountId}/pets` one: its PUT.
        assert!(got
            .operations
            .iter()
            .any(|o| o.path == "/alias" && o.method == "PUT" && o.pattern_text == "/v1/alias"));
        // `/search` GET survives its broken parameter `$ref` (parameters feed notes only).
        assert!(got.operations.iter().any(|o| o.path == "/search"));
        // Every emitted pattern is valid, and the block loads as YAML.
        let block = render::yaml_block(&got, &options, "awkward.yaml");
        let value: serde_yaml::Value = serde_yaml::from_str(&block).unwrap_or_default();
        assert_eq!(
            value
                .get("apis")
                .and_then(|a| a.as_mapping())
                .map(|m| m.len()),
            Some(3),
            "{block}"
        );
    }

    #[test]
    fn prefix_and_base_path_flags() {
        let strip = Options {
            strip_prefix: Some("/v1/accounts".into()),
            ..Options::default()
        };
        let got = awkward(&strip);
        assert!(got
            .operations
            .iter()
            .any(|o| o.pattern_text == "/*/pets/*.json"));
        assert!(got
            .skipped
            .iter()
            .any(|s| s.path == "/untagged/{id}" && s.reason.contains("--strip-prefix")));
        let base = Options {
            base_path: Some("/".into()),
            ..Options::default()
        };
        assert!(awkward(&base)
            .operations
            .iter()
            .any(|o| o.pattern_text == "/untagged/*"));
        // Without --account-param the importer points at the likely account parameter.
        assert!(awkward(&base)
            .notes
            .iter()
            .any(|n| n.contains("--account-param accountId")));
    }

    #[test]
    fn group_by_path_names_by_first_literal_segment() {
        let options = Options {
            group_by: GroupBy::Path,
            base_path: Some("/".into()),
            ..Options::default()
        };
        let got = awkward(&options);
        let names: Vec<&str> = got.apis.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            ["accounts", "alias", "untagged", "caf_au_lait", "search"]
        );
    }

    #[test]
    fn demo_catalog_comes_from_the_shipped_document() {
        let apis = demo_apis().unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = apis
            .as_mapping()
            .map(|m| m.keys().filter_map(|k| k.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["campaigns", "reports", "actions", "catalogs"]);
        let campaigns = apis.get("campaigns").and_then(|c| c.get("paths"));
        let paths: Vec<&str> = campaigns
            .and_then(|p| p.as_sequence())
            .map(|s| s.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        assert!(paths.contains(&"/Mediapartners/{account}/Campaigns"));
        let reports = apis.get("reports").and_then(|c| c.get("paths"));
        assert!(format!("{reports:?}").contains("/Mediapartners/{account}/Reports/*.json"));
    }

    #[test]
    fn overlapping_apis_are_noted() {
        let doc = "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths:\n  /pets/{id}: {get: {tags: [a]}}\n  /pets/mine: {get: {tags: [b]}}\n  /pets: {get: {tags: [a]}, post: {tags: [b]}}\n  /cats: {get: {tags: [b]}}\n";
        let got = import(doc, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
        let notes = got.notes.join("\n");
        assert!(
            notes.contains("/pets/* (API `a`) and /pets/mine (API `b`)"),
            "{notes}"
        );
        assert!(
            notes.contains("/pets (API `a`) and /pets (API `b`)"),
            "{notes}"
        );
        assert!(!notes.contains("/cats"), "{notes}");
    }

    #[test]
    fn a_path_note_comes_once_not_once_per_method() {
        let doc = "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths:\n  /search?q={q}: {get: {}, post: {}, delete: {}}\n";
        let got = import(doc, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
        let dropped: Vec<&String> = got.notes.iter().filter(|n| n.contains("dropped")).collect();
        assert_eq!(
            dropped,
            ["`/search?q={q}`: the part from `?`/`#` on was dropped (grants match the path only)"]
        );
        assert_eq!(got.operations.len(), 3);
    }

    #[test]
    fn paths_that_yield_no_operation_are_an_error() {
        // An unbundled document: every path item is an external `$ref`.
        let mut doc = String::from("openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths:\n");
        for i in 0..40 {
            doc.push_str(&format!("  /v2/r{i}: {{$ref: 'resources/r{i}.yml'}}\n"));
        }
        assert_eq!(
            import(&doc, &Options::default()).unwrap_err(),
            "no operation could be imported from its 40 paths:\n  /v2/r0: `$ref: \
             resources/r0.yml` points outside the document: only local references (`#/...`) \
             are read; bundle the document first (e.g. `redocly bundle`) (and 39 more \
             operations for the same reason, e.g. /v2/r1, /v2/r2, /v2/r3)"
        );
        let empty_item = "openapi: 3.0.1\ninfo: {title: t, version: '1'}\npaths: {/a: {}}\n";
        assert_eq!(
            import(empty_item, &Options::default()).unwrap_err(),
            "no operation could be imported from its 1 path: no path item holds an operation \
             (`get`, `put`, `post`, `delete`, `options`, `head`, `patch`, `trace`)"
        );
        // No paths at all (a 3.1 document of webhooks or components): an empty catalog.
        let no_paths = "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths: {x-note: 1}\n";
        assert!(import(no_paths, &Options::default()).is_ok_and(|i| i.apis.is_empty()));
    }

    #[test]
    fn operations_on_other_hosts_are_noted() {
        let doc = r#"
openapi: 3.0.0
info: {title: t, version: '1'}
servers: [{url: "https://api.box.com/2.0"}]
paths:
  /files/{id}: {get: {tags: [files]}}
  /files/content:
    post: {tags: [uploads], servers: [{url: "https://upload.box.com/api/2.0"}]}
  /files/upload_sessions:
    post:
      tags: [uploads]
      servers: [{url: "https://{s}/api/2.0", variables: {s: {default: Upload.box.com}}}]
  /zip_downloads: {post: {tags: [zip]}}
  /zip_downloads/{id}/content:
    get: {tags: [zip], servers: [{url: "https://dl.boxcloud.com/2.0"}]}
"#;
        let got = import(doc, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
        let hosts: Vec<&String> = got
            .notes
            .iter()
            .filter(|n| n.contains("served by"))
            .collect();
        assert_eq!(
            hosts,
            [
                "2 operations are served by `upload.box.com`, not `api.box.com` (the document's \
                 main server): POST /api/2.0/files/content, POST /api/2.0/files/upload_sessions \
                 (API `uploads`); route it to an upstream for that host",
                "1 operation is served by `dl.boxcloud.com`, not `api.box.com` (the document's \
                 main server): GET /2.0/zip_downloads/{id}/content (API `zip`); route it to an \
                 upstream for that host; `zip` also has operations on another host: split it by \
                 hand",
            ]
        );
    }

    #[test]
    fn servers_that_disagree_on_the_base_path_are_noted() {
        let doc = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\nservers:\n  - {url: 'http://localhost:8080'}\n  - {url: 'https://api.example.com/v1'}\npaths:\n  /pets: {get: {}, post: {}}\n";
        let got = import(doc, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.operations[0].full_path, "/pets");
        let disagree: Vec<&String> = got
            .notes
            .iter()
            .filter(|n| n.contains("disagree"))
            .collect();
        assert_eq!(
            disagree,
            [
                "the servers disagree on the base path: `http://localhost:8080` (base path none), \
              `https://api.example.com/v1` (base path /v1); the first one's is used, pass \
              --base-path to choose (e.g. --base-path /v1)"
            ]
        );
        // Choosing one with --base-path: no note.
        let chosen = Options {
            base_path: Some("/v1".into()),
            ..Options::default()
        };
        let got = import(doc, &chosen).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.operations[0].full_path, "/v1/pets");
        assert!(
            !got.notes.iter().any(|n| n.contains("disagree")),
            "{:?}",
            got.notes
        );
        // A scheme-relative server URL gives its path, not a `//` segment.
        let relative = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\nservers: [{url: '//api.example.com/v1'}]\npaths:\n  /pets: {get: {}}\n";
        let got = import(relative, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.operations[0].pattern_text, "/v1/pets");
    }

    #[test]
    fn parameters_that_span_segments_are_noted_and_grpc_bindings_translated() {
        let doc = r#"
openapi: 3.0.0
info: {title: t, version: '1'}
paths:
  /v1/{name}:
    get:
      tags: [executions]
      parameters:
        - {name: name, in: path, description: "Format: projects/{project}/locations/{location}"}
  /v1/{name}:cancel:
    post:
      tags: [executions]
      parameters:
        - {name: name, in: path, description: "Format: projects/{project}/locations/{location}"}
  /logs/{logpath}: {get: {tags: [logs]}}
  /v1/{parent=projects/*/locations/*}/topics: {get: {tags: [topics]}}
  /pets/{id}: {get: {tags: [pets]}}
"#;
        let got = import(doc, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
        let spanning: Vec<&String> = got.notes.iter().filter(|n| n.contains("span")).collect();
        assert_eq!(
            spanning,
            [
                "`{name}` may span several segments (its description shows \
                 `projects/{project}/locations/{location}`) but `*` matches one: GET /v1/{name}, \
                 POST /v1/{name}:cancel refuse such values; grant them with a wider pattern by \
                 hand (e.g. `/v1/**`, which grants more than the document's paths)",
                "`{logpath}` may span several segments (its name says it is a path) but `*` \
                 matches one: GET /logs/{logpath} refuses such values; grant them with a wider \
                 pattern by hand (e.g. `/logs/**`, which grants more than the document's paths)",
            ]
        );
        assert!(got.skipped.is_empty(), "{:?}", got.skipped);
        let patterns: Vec<&str> = got
            .operations
            .iter()
            .map(|o| o.pattern_text.as_str())
            .collect();
        assert_eq!(
            patterns,
            [
                "/v1/*",
                "/v1/*:cancel",
                "/logs/*",
                "/v1/projects/*/locations/*/topics",
                "/pets/*"
            ]
        );
    }

    #[test]
    fn unreadable_documents_are_refused() {
        assert!(import("swagger: '2.0'", &Options::default()).is_err());
        assert!(import(
            "openapi: 3.1.0\ninfo: {title: t, version: '1'}\n",
            &Options::default()
        )
        .is_ok_and(|i| i.operations.is_empty() && i.apis.is_empty()));
    }
}
