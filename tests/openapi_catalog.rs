//! The catalog from real OpenAPI documents (vendored under `tests/data/openapi/`): each one is
//! imported, its block is loaded as the gateway's catalog, and every operation is sent through
//! the real gateway (port 0) to a real upstream with tokens granted one API and one method.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use scopegate::config::openapi::{self, render, GroupBy, Import, Operation, Options};
use support::{basic_raw, hash, send, start_gateway, TempDir, Upstream, ACCOUNT, OTHER_ACCOUNT};

/// The value every non-account parameter gets; no literal segment of these documents has it.
const SAMPLE: &str = "p7q";

fn data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/openapi")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The (path, method) pairs of a document, counted without the importer.
fn count_operations(text: &str) -> usize {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).expect("the document parses");
    let paths = doc
        .get("paths")
        .and_then(|p| p.as_mapping())
        .expect("paths");
    paths
        .values()
        .map(|item| {
            [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ]
            .iter()
            .filter(|m| item.get(**m).is_some())
            .count()
        })
        .sum()
}

/// A template segment as (prefix, parameter, suffix); no parameter: (segment, None, "").
fn template_segment(segment: &str) -> (&str, Option<&str>, &str) {
    match (segment.find('{'), segment.find('}')) {
        (Some(open), Some(close)) if open < close => (
            &segment[..open],
            Some(&segment[open + 1..close]),
            &segment[close + 1..],
        ),
        _ => (segment, None, ""),
    }
}

/// Fills a template: the account parameter with `account`, every other one with [`SAMPLE`].
fn concrete(template: &str, account_param: Option<&str>, account: &str) -> String {
    let filled: Vec<String> = template
        .split('/')
        .map(|segment| match template_segment(segment) {
            (prefix, Some(name), suffix) => {
                let value = if Some(name) == account_param {
                    account
                } else {
                    SAMPLE
                };
                format!("{prefix}{value}{suffix}")
            }
            (literal, None, _) => literal.to_owned(),
        })
        .collect();
    let path = filled.join("/");
    if path.len() > 1 {
        path.trim_end_matches('/').to_owned()
    } else {
        path
    }
}

/// Whether the document's template matches a concrete path (written here from the OpenAPI
/// rules, independent of the gateway's matcher).
fn template_matches(template: &str, path: &str, account_param: Option<&str>) -> bool {
    let template = template.trim_end_matches('/');
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| match template_segment(t) {
            (prefix, Some(name), suffix) => {
                p.len() > prefix.len() + suffix.len()
                    && p.starts_with(prefix)
                    && p.ends_with(suffix)
                    && (Some(name) != account_param
                        || &p[prefix.len()..p.len() - suffix.len()] == ACCOUNT)
            }
            (literal, None, _) => literal == *p,
        })
}

/// Whether some operation of `api` matches `path`: a token granted a method on an API may use
/// it on every path of the API (the catalog is API x methods, SPEC §1).
fn api_allows(import: &Import, api: usize, path: &str, param: Option<&str>) -> bool {
    import
        .operations
        .iter()
        .any(|op| op.api == api && template_matches(&op.full_path, path, param))
}

fn sid(api: usize, method: &str) -> String {
    format!("SGa{api}{method}")
}

fn secret(api: usize, method: &str) -> String {
    format!("secret-{api}-{method}")
}

/// The gateway config: the imported block pasted as is, one token per (API, method).
fn write_config(
    dir: &TempDir,
    upstream: &Upstream,
    block: &str,
    import: &Import,
) -> std::path::PathBuf {
    let gateway = format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\ntokens_file: tokens.yaml\n\
         max_active_tokens_per_account: 100000\n\
         rate_limit: {{requests_per_second: 1000000, burst: 1000000}}\n\
         upstreams:\n  main:\n    url: http://{}\napi_versions: [\"v1\"]\n{block}",
        upstream.addr
    );
    let mut tokens = format!("accounts:\n  - id: {ACCOUNT}\n    tokens:\n");
    let mut pairs: Vec<(usize, &str)> = import
        .operations
        .iter()
        .map(|o| (o.api, o.method))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    for (api, method) in pairs {
        tokens.push_str(&format!(
            "      - sid: {}\n        name: t\n        auth_token_hash: \"{}\"\n        scopes: [{{api: {}, methods: [{method}]}}]\n",
            sid(api, method),
            hash(&secret(api, method)),
            import.apis[api].name,
        ));
    }
    // One token of the other account, on every API with every method.
    tokens.push_str(&format!("  - id: {OTHER_ACCOUNT}\n    tokens:\n      - sid: SGotheracct\n        name: o\n        auth_token_hash: \"{}\"\n        scopes:\n", hash("other")));
    for api in &import.apis {
        tokens.push_str(&format!(
            "          - {{api: {}, methods: [all]}}\n",
            api.name
        ));
    }
    dir.write("tokens.yaml", &tokens);
    let config = dir.write("scopegate.yaml", &gateway);
    if let Err(e) = scopegate::config::load(&config) {
        panic!("the imported block does not pass check: {e}\n{block}");
    }
    config
}

struct Run<'a> {
    import: &'a Import,
    upstream: &'a Upstream,
    base: String,
    param: Option<&'a str>,
    forwarded: usize,
    refused: usize,
}

impl Run<'_> {
    /// Sends one request with the token for (api, granted) and checks the outcome.
    async fn expect(&mut self, method: &str, path: &str, api: usize, granted: &str, allowed: bool) {
        let auth = basic_raw(&sid(api, granted), &secret(api, granted));
        self.expect_with(method, path, &auth, allowed).await;
    }

    async fn expect_with(&mut self, method: &str, path: &str, auth: &str, allowed: bool) {
        let before = self.upstream.count();
        let reply = send(
            method,
            &format!("{}{path}", self.base),
            &[("authorization", auth)],
            "",
        )
        .await;
        if allowed {
            assert_eq!(
                reply.status,
                200,
                "{method} {path} should be forwarded: {}",
                reply.text()
            );
            let seen = self.upstream.last().expect("the upstream saw the request");
            assert_eq!((seen.method.as_str(), seen.target.as_str()), (method, path));
            self.forwarded += 1;
        } else {
            assert_eq!(
                reply.status,
                403,
                "{method} {path} should be refused: {}",
                reply.text()
            );
            self.refused += 1;
        }
        assert_eq!(
            self.upstream.count(),
            before + usize::from(allowed),
            "{method} {path}"
        );
    }
}

/// Imports `file`, checks that nothing was skipped and that every operation was read, then
/// drives every operation through the gateway.
async fn exercise(file: &str, options: Options) -> Import {
    let text = data(file);
    let import = openapi::import(&text, &options).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(import.skipped.is_empty(), "{file}: {:?}", import.skipped);
    assert_eq!(import.operations.len(), count_operations(&text), "{file}");
    let options = Options {
        upstream: Some("main".into()),
        ..options
    };
    let block = render::yaml_block(&import, &options, file);

    let upstream = Upstream::start().await;
    let dir = TempDir::new();
    let config = write_config(&dir, &upstream, &block, &import);
    let gateway = start_gateway(&config).await;
    let param = options.account_param.as_deref();
    let mut run = Run {
        import: &import,
        upstream: &upstream,
        base: format!("http://{}", gateway.addr),
        param,
        forwarded: 0,
        refused: 0,
    };
    // Methods each API's operations use.
    let mut methods: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for op in &import.operations {
        methods.entry(op.api).or_default().push(op.method);
    }
    for op in &import.operations {
        check_operation(&mut run, op, &methods).await;
    }
    assert!(run.forwarded >= import.operations.len());
    assert!(run.refused >= import.operations.len() * 2);
    gateway.shutdown().await;
    import
}

async fn check_operation(run: &mut Run<'_>, op: &Operation, methods: &BTreeMap<usize, Vec<&str>>) {
    let (import, param) = (run.import, run.param);
    let path = concrete(&op.full_path, param, ACCOUNT);
    // Its own API and method: forwarded.
    run.expect(op.method, &path, op.api, op.method, true).await;
    // Another method on the same token: refused.
    let other_method = ["DELETE", "PUT", "POST"]
        .into_iter()
        .find(|m| *m != op.method)
        .unwrap_or("PATCH");
    run.expect(other_method, &path, op.api, op.method, false)
        .await;
    // Tokens of up to three other APIs that use the same method: refused, unless one of
    // that API's own operations matches this path too (documents overlap, e.g. Twilio's
    // `IncomingPhoneNumbers/{Sid}.json` and `IncomingPhoneNumbers/Local.json`).
    let others = (1..import.apis.len())
        .map(|k| (op.api + k) % import.apis.len())
        .filter(|a| methods.get(a).is_some_and(|m| m.contains(&op.method)))
        .take(3)
        .collect::<Vec<_>>();
    for other in others {
        let allowed = api_allows(import, other, &path, param);
        run.expect(op.method, &path, other, op.method, allowed)
            .await;
    }
    // Paths outside the document: an extra segment, the suffix cut off, another account.
    let extra = format!("{}/{SAMPLE}x", path.trim_end_matches('/'));
    let allowed = api_allows(import, op.api, &extra, param);
    run.expect(op.method, &extra, op.api, op.method, allowed)
        .await;
    let last = op.full_path.rsplit('/').next().unwrap_or_default();
    if let (_, Some(_), suffix) = template_segment(last) {
        if !suffix.is_empty() {
            let cut = &path[..path.len() - suffix.len()];
            let allowed = api_allows(import, op.api, cut, param);
            run.expect(op.method, cut, op.api, op.method, allowed).await;
        }
    }
    if let Some(p) = param {
        if op.full_path.contains(&format!("{{{p}}}")) {
            let theirs = concrete(&op.full_path, param, OTHER_ACCOUNT);
            run.expect(op.method, &theirs, op.api, op.method, false)
                .await;
            // The other account's own token, granted everything, is refused on our account.
            run.expect_with(op.method, &path, &basic_raw("SGotheracct", "other"), false)
                .await;
        }
    }
}

#[tokio::test]
async fn twilio_large_document_with_account_parameter_and_json_suffixes() {
    let import = exercise(
        "twilio_api_v2010.yaml",
        Options {
            account_param: Some("AccountSid".into()),
            ..Options::default()
        },
    )
    .await;
    assert_eq!(import.openapi, "3.0.1");
    assert!(import.apis.len() > 50);
    let patterns: Vec<&str> = import
        .operations
        .iter()
        .map(|o| o.pattern_text.as_str())
        .collect();
    assert!(patterns.contains(&"/2010-04-01/Accounts/{account}/Calls/*.json"));
    assert!(
        patterns.contains(&"/2010-04-01/Accounts/{account}.json")
            || patterns.contains(&"/2010-04-01/Accounts/*.json")
    );
    assert!(patterns.iter().all(|p| !p.contains("**")));
}

#[tokio::test]
async fn swagger_petstore_tagged_with_relative_server_url() {
    let import = exercise("swagger-petstore.yaml", Options::default()).await;
    let names: Vec<&str> = import.apis.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["pet", "store", "user"]);
    assert!(import
        .operations
        .iter()
        .all(|o| o.full_path.starts_with("/api/v3/")));
}

#[tokio::test]
async fn redocly_museum_openapi_3_1_with_base_path_override() {
    let import = exercise(
        "redocly-museum.yaml",
        Options {
            base_path: Some("/".into()),
            ..Options::default()
        },
    )
    .await;
    assert_eq!(import.openapi, "3.1.0");
    assert!(import
        .operations
        .iter()
        .any(|o| o.pattern_text == "/special-events/*"));
}

#[tokio::test]
async fn oai_link_example_without_tags_grouped_by_path() {
    let import = exercise(
        "oai-link-example.yaml",
        Options {
            group_by: GroupBy::Path,
            ..Options::default()
        },
    )
    .await;
    let names: Vec<&str> = import.apis.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["users", "repositories"]);
}

#[tokio::test]
async fn oai_tictactoe_json_with_path_level_parameters() {
    let import = exercise("oai-tictactoe.json", Options::default()).await;
    assert!(import
        .operations
        .iter()
        .any(|o| o.pattern_text == "/board/*/*"));
}

/// Loads an imported block through the real config loader and checks that every API name
/// comes back as the same string (a name YAML reads as a number, boolean or null fails
/// `check`, or worse, becomes another name).
fn assert_names_read_back(dir: &TempDir, import: &Import, group_by: GroupBy, label: &str) {
    let options = Options {
        group_by,
        upstream: Some("main".into()),
        ..Options::default()
    };
    let block = render::yaml_block(import, &options, label);
    dir.write("tokens.yaml", "accounts: []\n");
    let config = dir.write(
        "scopegate.yaml",
        &format!(
            "listen: 127.0.0.1:0\ntokens_file: tokens.yaml\nupstreams:\n  main:\n    \
             url: http://127.0.0.1:9\napi_versions: [\"v1\"]\n{block}"
        ),
    );
    let loaded = scopegate::config::load(&config)
        .unwrap_or_else(|e| panic!("{label} ({group_by:?}) does not pass check: {e}\n{block}"));
    let mut loaded: Vec<&str> = loaded
        .settings
        .apis
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    let mut imported: Vec<&str> = import.apis.iter().map(|a| a.name.as_str()).collect();
    loaded.sort_unstable();
    imported.sort_unstable();
    assert_eq!(loaded, imported, "{label} ({group_by:?})");
}

#[test]
fn every_fixture_imports_to_names_the_config_loader_reads_back() {
    let dir = TempDir::new();
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/openapi");
    let mut documents: Vec<String> = std::fs::read_dir(&folder)
        .expect("fixture folder")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".json"))
        .collect();
    documents.sort();
    assert!(documents.len() >= 5, "{documents:?}");
    for file in &documents {
        for group_by in [GroupBy::Tag, GroupBy::Path] {
            let options = Options {
                group_by,
                ..Options::default()
            };
            let import =
                openapi::import(&data(file), &options).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(!import.apis.is_empty(), "{file}");
            assert_names_read_back(&dir, &import, group_by, file);
        }
    }
}

#[test]
fn names_yaml_would_misread_are_made_safe_and_stay_distinct() {
    let dir = TempDir::new();
    // Tags as documents write them: quoted, and plain scalars YAML reads as numbers (`1.10`
    // is the float 1.1 to a YAML library, so it must stay apart from `1.1`).
    let tags = [
        "'2'", "'1'", "'true'", "'null'", "'yes'", "'on'", "'no'", "'2024'", "1.10", "1.1", "'~'",
        "'-1'", "'0x1F'", "'1e3'", "'.inf'", "'none'", "False", "'Y'",
    ];
    let mut doc = String::from("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n");
    for (i, tag) in tags.iter().enumerate() {
        doc.push_str(&format!("  /r{i}: {{get: {{tags: [{tag}]}}}}\n"));
    }
    let import = openapi::import(&doc, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = import.apis.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "v2",
            "v1",
            "api_true",
            "api_null",
            "api_yes",
            "api_on",
            "api_no",
            "v2024",
            "v1_10",
            "v1_1",
            "api",
            "api_1",
            "api_0x1_f",
            "api_1e3",
            "api_inf",
            "api_none",
            "api_false",
            "api_y",
        ]
    );
    assert_names_read_back(&dir, &import, GroupBy::Tag, "tags");

    // Grouped by path: version segments keep their dots' meaning.
    let doc = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /1.0/users: {get: {}}\n  \
               /1.1/users: {get: {}}\n  /2.0/files: {get: {}}\n  /v1.5/items: {get: {}}\n  \
               /2/x: {get: {}}\n  /true/y: {get: {}}\n  /Calls.json: {get: {}}\n";
    let options = Options {
        group_by: GroupBy::Path,
        ..Options::default()
    };
    let import = openapi::import(doc, &options).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = import.apis.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["v1_0", "v1_1", "v2_0", "v1_5", "v2", "api_true", "calls"]
    );
    assert_names_read_back(&dir, &import, GroupBy::Path, "versions");
}

#[tokio::test]
async fn google_resource_names_are_noted_as_spanning_segments() {
    let import = exercise("google-workflowexecutions-v1.yaml", Options::default()).await;
    let patterns: Vec<&str> = import
        .operations
        .iter()
        .map(|o| o.pattern_text.as_str())
        .collect();
    assert_eq!(
        patterns,
        [
            "/v1/*",
            "/v1/*:cancel",
            "/v1/*/executions",
            "/v1/*/executions"
        ]
    );
    let spanning: Vec<&String> = import
        .notes
        .iter()
        .filter(|n| n.contains("may span several segments"))
        .collect();
    assert_eq!(
        spanning,
        [
            "`{name}` may span several segments (its description shows \
             `projects/{project}/locations/{location}/workflows/{workflow}/executions/{execution}`) \
             but `*` matches one: GET /v1/{name}, POST /v1/{name}:cancel refuse such values; \
             grant them with a wider pattern by hand (e.g. `/v1/**`, which grants more than the \
             document's paths)",
            "`{parent}` may span several segments (its description shows \
             `projects/{project}/locations/{location}/workflows/{workflow}`) but `*` matches one: \
             GET /v1/{parent}/executions, POST /v1/{parent}/executions refuse such values; grant \
             them with a wider pattern by hand (e.g. `/v1/**`, which grants more than the \
             document's paths)",
        ]
    );
}
