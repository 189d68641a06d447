//! Reading an OpenAPI 3.x document: YAML or JSON text to a value tree, local `$ref`s, and the
//! walk over `paths` that yields one raw operation per (path, method).
//!
//! Why a value tree and not a typed OpenAPI crate: the catalog needs the paths, methods, tags,
//! servers and parameters only, and the maintained typed crates each read one version
//! (`openapiv3`: 3.0, `oas3`: 3.1), failing a whole document on a schema construct of the other
//! version (`nullable`, `exclusiveMinimum: true`, `type: [string, "null"]`). Walking a
//! `serde_yaml::Value` reads both, keeps the document's order, and ignores every field and
//! `x-` extension it does not need.

use serde_yaml::{Mapping, Value};

use super::servers::{self, Servers};
use super::{spanning, template, tree};

/// Largest document read, so a wrong file (a log, a dump) fails fast instead of filling memory.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

/// How many `$ref` hops one lookup may take (refs to refs), so a cycle ends with an error.
const MAX_REF_HOPS: usize = 32;

/// The operation keys of a Path Item Object (OpenAPI 3.0 and 3.1), in the spec's order.
const METHOD_KEYS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// AWS API Gateway's path-item key for "any method" (in its OpenAPI exports).
const AWS_ANY_METHOD: &str = "x-amazon-apigateway-any-method";

/// A parsed document and what the catalog needs from its header.
#[derive(Debug)]
pub struct Document {
    pub root: Value,
    /// The `openapi` field, e.g. `3.0.4` or `3.1.0`.
    pub openapi: String,
    pub title: String,
    pub version: String,
    /// What the operator should know about the reading itself (a version newer than the
    /// importer knows, a key written twice).
    pub notes: Vec<String>,
}

/// One (path, method) of the document, before its path becomes a pattern.
#[derive(Debug, Clone)]
pub struct RawOperation {
    /// Upper-case method (`GET`), or the key as written when it is not a standard method.
    pub method: String,
    /// The `paths` key, as written.
    pub path: String,
    /// The operation's tags, in order.
    pub tags: Vec<String>,
    /// The servers that apply (operation, path item, then document level).
    pub servers: Servers,
    /// Names of the `in: path` parameters declared at path-item and operation level.
    pub path_params: Vec<String>,
    /// Parameters of the path that may hold several segments, and why (see [`spanning`]).
    pub spanning: Vec<(String, String)>,
}

/// A path or method the walk could not read, with the reason.
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub method: String,
    pub path: String,
    pub reason: String,
}

impl Document {
    /// Parses YAML or JSON text and checks that it is an OpenAPI 3.x document.
    pub fn parse(text: &str) -> Result<Document, String> {
        if text.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "the document is larger than {} MiB",
                MAX_DOCUMENT_BYTES / (1024 * 1024)
            ));
        }
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let tree = tree::read(text)?;
        let root = tree.root;
        if !root.is_mapping() {
            return Err("not an OpenAPI document: the top level is not a mapping".into());
        }
        let openapi = match root.get("openapi").and_then(scalar_text) {
            Some(v) => v,
            None if root.get("swagger").is_some() => {
                return Err(
                    "this is a Swagger 2.0 document: convert it to OpenAPI 3 first \
                     (e.g. with swagger2openapi)"
                        .into(),
                )
            }
            None => return Err("not an OpenAPI document: no `openapi` version field".into()),
        };
        if !openapi.starts_with("3.") {
            return Err(format!(
                "OpenAPI version `{openapi}` is not supported (3.0 and 3.1 are)"
            ));
        }
        match root.get("paths") {
            None | Some(Value::Null | Value::Mapping(_)) => {}
            Some(other) => {
                return Err(format!(
                    "`paths` is {}, not a mapping of path templates to path items",
                    kind(other)
                ))
            }
        }
        let mut notes = Vec::new();
        if !["3.0", "3.1"]
            .iter()
            .any(|known| is_version(&openapi, known))
        {
            notes.push(format!(
                "OpenAPI {openapi} is read as 3.1 (the versions this importer knows are 3.0 \
                 and 3.1); check the result"
            ));
        }
        for steps in tree.duplicates.iter().filter(|s| importer_reads(s)) {
            let Some((key, parent)) = steps.split_last() else {
                continue;
            };
            notes.push(format!(
                "`{key}` is written twice in {}: the last one is used",
                pointer(parent)
            ));
        }
        let info = root.get("info");
        let text_of = |key: &str| {
            info.and_then(|i| i.get(key))
                .and_then(scalar_text)
                .unwrap_or_default()
        };
        let (title, version) = (text_of("title"), text_of("version"));
        Ok(Document {
            root,
            openapi,
            title,
            version,
            notes,
        })
    }

    /// How many path templates `paths` holds (its `x-` extensions left out).
    pub fn path_count(&self) -> usize {
        self.root
            .get("paths")
            .and_then(Value::as_mapping)
            .map_or(0, |paths| {
                paths
                    .keys()
                    .filter(|k| !k.as_str().is_some_and(|k| k.starts_with("x-")))
                    .count()
            })
    }

    /// The host of the document's first top-level server (`None`: none, or a relative URL).
    pub fn host(&self) -> Option<String> {
        servers::read(self.root.get("servers")).host
    }

    /// Follows `$ref` (local `#/...` pointers only) until a value without one.
    pub fn resolve<'a>(&'a self, mut value: &'a Value) -> Result<&'a Value, String> {
        for _ in 0..MAX_REF_HOPS {
            let Some(reference) = value.get("$ref") else {
                return Ok(value);
            };
            let Some(reference) = reference.as_str() else {
                return Err("`$ref` is not a string".into());
            };
            value = self.pointer(reference)?;
        }
        Err(format!("more than {MAX_REF_HOPS} `$ref` hops (a cycle?)"))
    }

    /// The value a local reference (`#/components/parameters/Id`) points to.
    fn pointer(&self, reference: &str) -> Result<&Value, String> {
        let Some(pointer) = reference.strip_prefix('#') else {
            return Err(format!(
                "`$ref: {reference}` points outside the document: only local references \
                 (`#/...`) are read; bundle the document first (e.g. `redocly bundle`)"
            ));
        };
        let pointer = percent_decode(pointer);
        let mut node = &self.root;
        if pointer.is_empty() {
            return Ok(node);
        }
        let Some(pointer) = pointer.strip_prefix('/') else {
            return Err(format!("`$ref: {reference}` is not a JSON pointer"));
        };
        for token in pointer.split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            let next = match node {
                Value::Mapping(map) => map.get(token.as_str()),
                Value::Sequence(seq) => token.parse::<usize>().ok().and_then(|i| seq.get(i)),
                _ => None,
            };
            node = next.ok_or_else(|| format!("`$ref: {reference}` points to nothing"))?;
        }
        Ok(node)
    }

    /// Every (path, method) of `paths`, in document order, and what could not be read.
    pub fn operations(&self) -> (Vec<RawOperation>, Vec<Unreadable>) {
        let mut found = Vec::new();
        let mut unreadable = Vec::new();
        let Some(paths) = self.root.get("paths").and_then(Value::as_mapping) else {
            return (found, unreadable);
        };
        let root_servers = servers::read(self.root.get("servers"));
        for (key, item) in paths {
            let Some(path) = key.as_str() else {
                unreadable.push(Unreadable {
                    method: String::new(),
                    path: format!("{key:?}"),
                    reason: "the path key is not a string".into(),
                });
                continue;
            };
            if path.starts_with("x-") {
                continue; // a specification extension of the Paths Object
            }
            let item = match self.path_item(item) {
                Ok(item) => item,
                Err(reason) => {
                    unreadable.push(Unreadable {
                        method: String::new(),
                        path: path.to_owned(),
                        reason,
                    });
                    continue;
                }
            };
            let item_servers = item
                .get("servers")
                .map(|s| servers::read(Some(s)))
                .unwrap_or_else(|| root_servers.clone());
            let item_params = self.path_param_values(item.get("parameters"));
            unreadable.extend(method_like_keys(&item).into_iter().map(|(method, reason)| {
                Unreadable {
                    method,
                    path: path.to_owned(),
                    reason,
                }
            }));
            for (method_key, operation) in operation_entries(&item) {
                let operation = match self.resolve(operation) {
                    Ok(op) if op.is_mapping() => op,
                    Ok(_) => {
                        unreadable.push(Unreadable {
                            method: method_key.to_ascii_uppercase(),
                            path: path.to_owned(),
                            reason: "the operation is not a mapping".into(),
                        });
                        continue;
                    }
                    Err(reason) => {
                        unreadable.push(Unreadable {
                            method: method_key.to_ascii_uppercase(),
                            path: path.to_owned(),
                            reason,
                        });
                        continue;
                    }
                };
                let tags = operation
                    .get("tags")
                    .and_then(Value::as_sequence)
                    .map(|tags| tags.iter().filter_map(scalar_text).collect())
                    .unwrap_or_default();
                let servers = operation
                    .get("servers")
                    .map(|s| servers::read(Some(s)))
                    .unwrap_or_else(|| item_servers.clone());
                let op_params = self.path_param_values(operation.get("parameters"));
                let mut path_params: Vec<String> = Vec::new();
                for name in item_params
                    .iter()
                    .chain(&op_params)
                    .filter_map(|p| p.get("name").and_then(scalar_text))
                {
                    if !path_params.contains(&name) {
                        path_params.push(name);
                    }
                }
                let spanning = template::param_names(path)
                    .filter_map(|name| {
                        // An operation's parameter overrides the path item's of that name.
                        let declared = op_params
                            .iter()
                            .chain(&item_params)
                            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
                            .copied();
                        let why = spanning::evidence(name, declared, path)?;
                        Some((name.to_owned(), why))
                    })
                    .collect();
                found.push(RawOperation {
                    method: method_key,
                    path: path.to_owned(),
                    tags,
                    servers,
                    path_params,
                    spanning,
                });
            }
        }
        (found, unreadable)
    }

    /// A Path Item Object with its `$ref` (if any) resolved; fields written beside the `$ref`
    /// are kept and win (OpenAPI 3.1 allows `summary`/`description` there).
    fn path_item(&self, item: &Value) -> Result<Mapping, String> {
        let Some(local) = item.as_mapping() else {
            return Err("the path item is not a mapping".into());
        };
        let mut merged = Mapping::new();
        if item.get("$ref").is_some() {
            match self.resolve(item)? {
                Value::Mapping(target) => merged.extend(target.clone()),
                _ => return Err("the path item's `$ref` does not point to a mapping".into()),
            }
        }
        for (k, v) in local {
            if k.as_str() != Some("$ref") {
                merged.insert(k.clone(), v.clone());
            }
        }
        Ok(merged)
    }

    /// The `in: path` parameters of a parameter list, `$ref`s resolved; unreadable entries
    /// are skipped (parameters only serve notes, never patterns).
    fn path_param_values<'a>(&'a self, list: Option<&'a Value>) -> Vec<&'a Value> {
        let Some(list) = list.and_then(Value::as_sequence) else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|p| self.resolve(p).ok())
            .filter(|p| p.get("in").and_then(Value::as_str) == Some("path"))
            .collect()
    }
}

/// The (method, operation) entries of a path item: the fixed method fields, then OpenAPI
/// 3.2's `query` and `additionalOperations` (kept so that they are reported, not lost).
fn operation_entries(item: &Mapping) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for key in METHOD_KEYS.iter().chain(&["query"]) {
        if let Some(op) = item.get(*key) {
            out.push((key.to_ascii_uppercase(), op));
        }
    }
    if let Some(extra) = item.get("additionalOperations").and_then(Value::as_mapping) {
        for (k, op) in extra {
            if let Some(k) = k.as_str() {
                out.push((k.to_owned(), op));
            }
        }
    }
    out
}

/// Keys of a path item that look like methods but are not operation keys (`GET`, `Post`,
/// `connect`, AWS's any-method key), as (method, why it is not read): left out silently,
/// they would be operations lost without a word.
fn method_like_keys(item: &Mapping) -> Vec<(String, String)> {
    let mut odd = Vec::new();
    for key in item.keys().filter_map(Value::as_str) {
        let upper = key.to_ascii_uppercase();
        if key == AWS_ANY_METHOD {
            odd.push((
                "ANY".to_owned(),
                format!(
                    "`{AWS_ANY_METHOD}` (AWS API Gateway: any method) is not an OpenAPI \
                     operation: grant the methods it serves by hand"
                ),
            ));
        } else if METHOD_KEYS.contains(&key) || key == "query" {
            continue;
        } else if METHOD_KEYS
            .iter()
            .chain(&["query"])
            .any(|m| m.eq_ignore_ascii_case(key))
        {
            odd.push((
                upper,
                format!(
                    "`{key}` is not an operation key: OpenAPI's method keys are lower-case \
                     (`{}`)",
                    key.to_ascii_lowercase()
                ),
            ));
        } else if crate::domain::model::KNOWN_METHODS.contains(&upper.as_str()) {
            odd.push((upper, format!("`{key}` is not an OpenAPI operation key")));
        }
    }
    odd
}

/// Whether `version` is `known` or a patch of it (`3.1` matches `3.1` and `3.1.0`, not `3.10`).
fn is_version(version: &str, known: &str) -> bool {
    version
        .strip_prefix(known)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// A value's kind, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Whether a key written twice (its path from the root) is one the importer reads: in the
/// header, `servers`, `tags`, a path item's operations, servers and parameters, or the
/// components a path item or parameter `$ref` points to. Elsewhere (schemas, examples,
/// descriptions of operations) a duplicate changes nothing the catalog uses.
fn importer_reads(steps: &[String]) -> bool {
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    match steps.as_slice() {
        [] => false,
        ["openapi" | "swagger" | "paths" | "tags" | "servers" | "components"] => true,
        ["info", rest @ ..] => matches!(rest, [] | ["title" | "version"]),
        ["servers", rest @ ..] => server_part(rest),
        ["tags", _, rest @ ..] => matches!(rest, [] | ["name" | "description"]),
        ["paths", _, rest @ ..] => path_item_part(rest),
        ["components", "pathItems", rest @ ..] => match rest {
            [] | [_] => true,
            [_, item @ ..] => path_item_part(item),
        },
        ["components", "parameters", rest @ ..] => match rest {
            [] | [_] => true,
            [_, param @ ..] => matches!(param, ["name" | "in" | "$ref"]),
        },
        _ => false,
    }
}

/// Within a path item: see [`importer_reads`].
fn path_item_part(steps: &[&str]) -> bool {
    let is_operation = |k: &str| METHOD_KEYS.contains(&k) || k == "query";
    match steps {
        [] => true,
        [key] => {
            is_operation(key)
                || matches!(
                    *key,
                    "servers" | "parameters" | "$ref" | "additionalOperations"
                )
        }
        ["servers", rest @ ..] => server_part(rest),
        ["parameters", _, rest @ ..] => matches!(rest, [] | ["name" | "in" | "$ref"]),
        ["additionalOperations", _, rest @ ..] => operation_part(rest),
        [method, rest @ ..] if is_operation(method) => operation_part(rest),
        _ => false,
    }
}

/// Within an operation: see [`importer_reads`].
fn operation_part(steps: &[&str]) -> bool {
    match steps {
        [] | ["tags" | "servers" | "parameters" | "$ref"] => true,
        ["servers", rest @ ..] => server_part(rest),
        ["parameters", _, rest @ ..] => matches!(rest, [] | ["name" | "in" | "$ref"]),
        _ => false,
    }
}

/// Within a `servers` list: see [`importer_reads`].
fn server_part(steps: &[&str]) -> bool {
    matches!(
        steps,
        [] | [_] | [_, "url" | "variables"] | [_, "variables", _] | [_, "variables", _, "default"]
    )
}

/// A path from the root as a JSON pointer (`#/paths/~1pets`), as `$ref`s write it.
fn pointer(steps: &[String]) -> String {
    let mut out = String::from("#");
    for step in steps {
        out.push('/');
        out.push_str(&step.replace('~', "~0").replace('/', "~1"));
    }
    out
}

/// A scalar as text (tags and names are sometimes written as numbers or booleans in YAML).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Decodes `%XX` (a `$ref` fragment is URI-encoded, RFC 6901 §6; path segments are named
/// after their decoded text); malformed escapes are kept as written.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Document {
        Document::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn content_the_importer_does_not_read_cannot_fail_the_document() {
        // OpenAI's int64 bounds, a u64 overflow, a duplicate key in a schema.
        let doc = parse(
            "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /chat: {post: {tags: [chat]}}\ncomponents:\n  schemas:\n    Seed: {type: integer, minimum: -9223372036854776000, maximum: 18446744073709551616}\n    Pet:\n      description: first\n      description: second\n",
        );
        assert_eq!(doc.operations().0.len(), 1);
        assert!(doc.notes.is_empty(), "{:?}", doc.notes);
    }

    #[test]
    fn a_duplicate_the_importer_reads_is_noted_and_the_last_wins() {
        let doc = parse(
            "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /pets:\n    get: {tags: [a]}\n    get: {tags: [b]}\n",
        );
        assert_eq!(
            doc.notes,
            ["`get` is written twice in #/paths/~1pets: the last one is used"]
        );
        assert_eq!(doc.operations().0[0].tags, ["b"]);
    }

    #[test]
    fn newer_3_x_versions_are_read_with_a_note() {
        let doc = parse("openapi: 3.2.0\ninfo: {title: t, version: '1'}\npaths: {}\n");
        assert_eq!(
            doc.notes,
            [
                "OpenAPI 3.2.0 is read as 3.1 (the versions this importer knows are 3.0 and \
              3.1); check the result"
            ]
        );
        assert!(parse("openapi: 3.1.1\npaths: {}\n").notes.is_empty());
        assert!(parse("openapi: 3.0\npaths: {}\n").notes.is_empty());
    }

    #[test]
    fn paths_must_be_a_mapping() {
        assert_eq!(
            Document::parse("openapi: 3.0.3\npaths: [/a, /b]\n").unwrap_err(),
            "`paths` is a list, not a mapping of path templates to path items"
        );
        assert_eq!(parse("openapi: 3.0.3\npaths:\n").path_count(), 0);
    }

    #[test]
    fn keys_that_look_like_methods_are_reported() {
        let doc = parse(
            "openapi: 3.0.3\npaths:\n  /pets:\n    GET: {}\n    Post: {}\n    connect: {}\n    delete: {}\n  /{proxy+}:\n    x-amazon-apigateway-any-method: {}\n",
        );
        let (ops, bad) = doc.operations();
        assert_eq!(ops.len(), 1);
        let bad: Vec<(&str, &str)> = bad
            .iter()
            .map(|u| (u.method.as_str(), u.reason.as_str()))
            .collect();
        assert_eq!(
            bad,
            [
                ("GET", "`GET` is not an operation key: OpenAPI's method keys are lower-case (`get`)"),
                ("POST", "`Post` is not an operation key: OpenAPI's method keys are lower-case (`post`)"),
                ("CONNECT", "`connect` is not an OpenAPI operation key"),
                ("ANY", "`x-amazon-apigateway-any-method` (AWS API Gateway: any method) is not an OpenAPI operation: grant the methods it serves by hand"),
            ]
        );
    }

    #[test]
    fn refs_resolve_locally_with_escapes() {
        let doc = Document::parse(
            "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a/{id}:\n    $ref: '#/components/pathItems/A'\ncomponents:\n  pathItems:\n    A:\n      parameters: [{$ref: '#/components/parameters/Id'}]\n      get: {tags: [x]}\n  parameters:\n    Id: {name: id, in: path, required: true}\n    Loop: {$ref: '#/components/parameters/Loop'}\n  x~/y: {v: 1}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (ops, bad) = doc.operations();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].method, "GET");
        assert_eq!(ops[0].path_params, ["id"]);
        assert!(doc.pointer("#/components/x~0~1y/v").is_ok());
        assert!(doc.pointer("#/components/x%7E0~1y").is_ok());
        let looped = Value::from(Mapping::from_iter([(
            Value::from("$ref"),
            Value::from("#/components/parameters/Loop"),
        )]));
        assert!(doc.resolve(&looped).is_err());
        assert!(doc
            .pointer("other.yaml#/x")
            .unwrap_err()
            .contains("outside"));
    }

    #[test]
    fn refuses_what_is_not_openapi_3() {
        assert!(Document::parse("swagger: '2.0'\n")
            .unwrap_err()
            .contains("Swagger 2.0"));
        assert!(Document::parse("openapi: 2.5\n").is_err());
        assert!(Document::parse("- a\n").is_err());
        assert!(Document::parse("a: [\n").unwrap_err().contains("YAML"));
        assert!(Document::parse("{\"openapi\": ")
            .unwrap_err()
            .contains("JSON"));
        assert!(Document::parse("{\"openapi\": \"3.1.0\", \"paths\": {}}").is_ok());
        assert!(Document::parse("{openapi: 3.1.0, paths: {}}").is_ok());
        assert!(Document::parse("\u{feff}openapi: 3.0.0\n").is_ok());
    }
}
