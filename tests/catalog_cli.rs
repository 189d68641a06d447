//! `scopegate catalog import|diff` through the built binary, and the method shorthands
//! (`read`, `write`, `all`) through the CLI, the config loader and the real gateway.

mod support;

use std::path::Path;

use serde_yaml::Value;
use support::*;

fn petstore() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/openapi/swagger-petstore.yaml");
    std::fs::read_to_string(path).expect("vendored document")
}

/// A gateway config whose catalog is the printed import block, pasted as is.
fn config_from_import(dir: &TempDir, document: &Path, tokens: &str) -> std::path::PathBuf {
    let doc = document.to_str().expect("utf-8 path");
    let (code, block, stderr) =
        cli::scopegate(&["catalog", "import", doc, "--upstream", "main"]).parts();
    assert_eq!(code, 0, "{stderr}");
    dir.write("tokens.yaml", tokens);
    dir.write(
        "scopegate.yaml",
        &format!(
            "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\ntokens_file: tokens.yaml\n\
             upstreams:\n  main:\n    url: http://127.0.0.1:9\n  billing:\n    url: http://127.0.0.1:9\n\
             api_versions: [\"v1\"]\n{block}"
        ),
    )
}

const TOKENS: &str = r#"accounts:
  - id: IRacme
    tokens:
      - sid: SGpets
        name: pets
        auth_token_hash: "sha256:8b2c6f1d0e9a7b5c3d1e2f4a6b8c0d9e7f5a3b1c2d4e6f8a0b9c7d5e3f1a2b4c"
        scopes:
          - {api: pet, methods: [GET, POST, PUT, DELETE]}
          - {api: store, methods: [read, POST, DELETE]}
          - {api: user, methods: [read]}
"#;

/// Edits the vendored document: `f` gets its `paths` mapping.
fn edited(
    dir: &TempDir,
    name: &str,
    f: impl FnOnce(&mut serde_yaml::Mapping),
) -> std::path::PathBuf {
    let mut doc: Value = serde_yaml::from_str(&petstore()).expect("yaml");
    let paths = doc
        .get_mut("paths")
        .and_then(Value::as_mapping_mut)
        .expect("paths");
    f(paths);
    dir.write(name, &serde_yaml::to_string(&doc).expect("yaml"))
}

#[test]
fn import_block_passes_check_as_is() {
    let dir = TempDir::new();
    let doc = dir.write("petstore.yaml", &petstore());
    let config = config_from_import(&dir, &doc, TOKENS);
    let (code, out, err) =
        cli::scopegate(&["check", "--config", config.to_str().unwrap_or_default()]).parts();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 API(s) in the catalog"), "{out}");
    let text = std::fs::read_to_string(&config).unwrap_or_default();
    assert!(
        text.contains("    # methods: GET, POST, PUT, DELETE (8 operations; from pet)"),
        "{text}"
    );
}

#[test]
fn import_refuses_what_is_not_openapi_with_exit_2() {
    let dir = TempDir::new();
    let swagger = dir.write("swagger.yaml", "swagger: '2.0'\npaths: {}\n");
    let (code, out, err) =
        cli::scopegate(&["catalog", "import", swagger.to_str().unwrap_or_default()]).parts();
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("Swagger 2.0"), "{err}");
    let (code, _, err) = cli::scopegate(&["catalog", "import", "/nonexistent/doc.yaml"]).parts();
    assert_eq!(code, 2);
    assert!(err.starts_with("error: /nonexistent/doc.yaml"), "{err}");
    let (code, _, err) = cli::scopegate(&[
        "catalog",
        "import",
        swagger.to_str().unwrap_or_default(),
        "--strip-prefix",
        "api",
    ])
    .parts();
    assert_eq!(code, 2);
    assert!(err.contains("--strip-prefix must start with `/`"), "{err}");
}

#[test]
fn import_reports_unusable_paths_on_stderr_and_in_the_block() {
    let dir = TempDir::new();
    let doc = edited(&dir, "odd.yaml", |paths| {
        paths.insert(
            "/pet/{a}.{b}".into(),
            serde_yaml::from_str("{get: {tags: [pet]}}").unwrap_or_default(),
        );
        paths.insert(
            "/pet;x".into(),
            serde_yaml::from_str("{get: {tags: [pet]}}").unwrap_or_default(),
        );
    });
    let (code, out, err) =
        cli::scopegate(&["catalog", "import", doc.to_str().unwrap_or_default()]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning: not imported: GET /pet/{a}.{b}: segment `{a}.{b}` holds more than one parameter"), "{err}");
    assert!(err.contains("warning: not imported: GET /pet;x:"), "{err}");
    assert!(out.contains("# Not imported (2)"), "{out}");
    assert!(!out.contains("pet;x\""), "{out}");
}

#[test]
fn diff_finds_added_and_removed_operations() {
    let dir = TempDir::new();
    let original = dir.write("petstore.yaml", &petstore());
    let config = config_from_import(&dir, &original, TOKENS);
    let cfg = config.to_str().unwrap_or_default();

    // In step: exit 0.
    let (code, out, err) = cli::scopegate(&[
        "catalog",
        "diff",
        original.to_str().unwrap_or_default(),
        "--config",
        cfg,
    ])
    .parts();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("no drift"), "{out}");

    // An added operation: uncovered, exit 1.
    let added = edited(&dir, "added.yaml", |paths| {
        paths.insert(
            "/pet/{petId}/vaccinations".into(),
            serde_yaml::from_str("{get: {tags: [pet]}}").unwrap_or_default(),
        );
    });
    let (code, out, _) = cli::scopegate(&[
        "catalog",
        "diff",
        added.to_str().unwrap_or_default(),
        "--config",
        cfg,
        "--json",
    ])
    .parts();
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["drift"], true);
    assert_eq!(
        report["uncovered_operations"],
        serde_json::json!([{
            "method": "GET",
            "path": "/api/v3/pet/{petId}/vaccinations",
            "pattern": "/api/v3/pet/*/vaccinations",
            "suggested_api": "pet",
        }])
    );
    assert_eq!(report["apis_without_operations"], serde_json::json!([]));
    assert_eq!(
        report["granted_methods_without_operations"],
        serde_json::json!([])
    );

    // Removed operations: every `/user` path (the API loses all its operations) and the
    // DELETE of a store order (the token's DELETE on `store` is now unused).
    let removed = edited(&dir, "removed.yaml", |paths| {
        paths.retain(|k, _| !k.as_str().unwrap_or_default().starts_with("/user"));
        if let Some(order) = paths
            .get_mut("/store/order/{orderId}")
            .and_then(Value::as_mapping_mut)
        {
            order.remove("delete");
        }
    });
    let (code, out, _) = cli::scopegate(&[
        "catalog",
        "diff",
        removed.to_str().unwrap_or_default(),
        "--config",
        cfg,
        "--json",
    ])
    .parts();
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["uncovered_operations"], serde_json::json!([]));
    assert_eq!(report["apis_without_operations"][0]["api"], "user");
    assert_eq!(
        report["apis_without_operations"].as_array().map(Vec::len),
        Some(1)
    );
    let extra = &report["granted_methods_without_operations"];
    assert_eq!(
        extra.as_array().map(|a| a
            .iter()
            .map(|g| (g["api"].clone(), g["methods"].clone()))
            .collect::<Vec<_>>()),
        Some(vec![
            ("store".into(), serde_json::json!(["DELETE"])),
            ("user".into(), serde_json::json!(["GET", "HEAD"])),
        ]),
        "{out}"
    );
    assert_eq!(extra[0]["sid"], "SGpets");

    // The same as text.
    let (code, out, _) = cli::scopegate(&[
        "catalog",
        "diff",
        removed.to_str().unwrap_or_default(),
        "--config",
        cfg,
    ])
    .parts();
    assert_eq!(code, 1);
    assert!(
        out.contains("APIs no operation of the document uses (1):\n  user: /api/v3/user"),
        "{out}"
    );
    assert!(
        out.contains("SGpets (pets, account IRacme): store DELETE"),
        "{out}"
    );
}

#[test]
fn diff_with_upstream_compares_only_that_upstreams_apis() {
    let dir = TempDir::new();
    let original = dir.write("petstore.yaml", &petstore());
    let config = config_from_import(&dir, &original, TOKENS);
    let mut text = std::fs::read_to_string(&config).unwrap_or_default();
    text.push_str("  invoices:\n    upstream: billing\n    paths: [\"/billing/invoices/**\"]\n");
    std::fs::write(&config, text).unwrap_or_default();
    let (cfg, doc) = (
        config.to_str().unwrap_or_default(),
        original.to_str().unwrap_or_default(),
    );
    let (code, out, _) = cli::scopegate(&["catalog", "diff", doc, "--config", cfg]).parts();
    assert_eq!(code, 1);
    assert!(out.contains("invoices: /billing/invoices/**"), "{out}");
    let (code, out, _) = cli::scopegate(&[
        "catalog",
        "diff",
        doc,
        "--config",
        cfg,
        "--upstream",
        "main",
    ])
    .parts();
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = cli::scopegate(&[
        "catalog",
        "diff",
        doc,
        "--config",
        cfg,
        "--upstream",
        "nope",
    ])
    .parts();
    assert_eq!(code, 2);
    assert!(
        err.contains("--upstream `nope` is not an upstream"),
        "{err}"
    );
}

/// Shorthands in tokens.yaml, enforced by the real gateway in front of a real upstream.
#[tokio::test]
async fn shorthands_grant_their_methods_at_the_gateway() {
    let tokens = format!(
        r#"accounts:
  - id: {ACCOUNT}
    tokens:
      - sid: SGread
        name: r
        auth_token_hash: "{}"
        scopes: [{{api: campaigns, methods: [read]}}]
      - sid: SGwrite
        name: w
        auth_token_hash: "{}"
        scopes: [{{api: campaigns, methods: [write]}}]
      - sid: SGall
        name: a
        auth_token_hash: "{}"
        scopes: [{{api: campaigns, methods: [all]}}]
"#,
        hash("r"),
        hash("w"),
        hash("a")
    );
    let h = Harness::start_with("", &tokens).await;
    let url = h.url("/Mediapartners/IRacme/Campaigns");
    for (sid, secret, method, allowed) in [
        ("SGread", "r", "GET", true),
        ("SGread", "r", "HEAD", true),
        ("SGread", "r", "POST", false),
        ("SGread", "r", "DELETE", false),
        ("SGwrite", "w", "POST", true),
        ("SGwrite", "w", "PUT", true),
        ("SGwrite", "w", "PATCH", true),
        ("SGwrite", "w", "DELETE", true),
        ("SGwrite", "w", "GET", false),
        ("SGwrite", "w", "OPTIONS", false),
        ("SGall", "a", "OPTIONS", true),
        ("SGall", "a", "GET", true),
        ("SGall", "a", "DELETE", true),
    ] {
        let before = h.upstream.count();
        let reply = send(
            method,
            &url,
            &[("authorization", &basic_raw(sid, secret))],
            "",
        )
        .await;
        let expected = if allowed { 200 } else { 403 };
        assert_eq!(reply.status, expected, "{sid} {method}");
        assert_eq!(
            h.upstream.count(),
            before + usize::from(allowed),
            "{sid} {method}"
        );
    }
}

#[test]
fn shorthands_on_the_command_line_and_in_token_show() {
    let dir = TempDir::new();
    let upstream: std::net::SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let config = dir.write("scopegate.yaml", &gateway_yaml(upstream, ""));
    dir.write("tokens.yaml", "accounts: []\n");
    let cfg = config.to_str().unwrap_or_default();
    let (code, out, err) = cli::scopegate(&[
        "token",
        "create",
        "--config",
        cfg,
        "--account",
        "IRacme",
        "--name",
        "n",
        "--api-version",
        "v15",
        "--scope",
        "reports:READ",
        "--scope",
        "campaigns:write,GET",
        "--json",
    ])
    .parts();
    assert_eq!(code, 0, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).expect("json");
    let sid = created["sid"].as_str().unwrap_or_default().to_owned();
    let tokens = std::fs::read_to_string(dir.path("tokens.yaml")).unwrap_or_default();
    assert!(
        tokens.contains("{api: reports, methods: [read]}"),
        "{tokens}"
    );
    let (code, out, err) = cli::scopegate(&["token", "show", &sid, "--config", cfg]).parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("  reports: GET, HEAD (written: read)"),
        "{out}"
    );
    assert!(
        out.contains("  campaigns: GET, HEAD, POST, PUT, PATCH, DELETE (written: write, GET)"),
        "{out}"
    );
    let (_, out, _) = cli::scopegate(&["token", "show", &sid, "--config", cfg, "--json"]).parts();
    let shown: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(shown["scopes"][0]["methods"], serde_json::json!(["read"]));
    assert_eq!(
        shown["scopes"][0]["expanded_methods"],
        serde_json::json!(["GET", "HEAD"])
    );
    // A typo is refused before anything is written.
    let (code, _, err) = cli::scopegate(&[
        "token",
        "create",
        "--config",
        cfg,
        "--account",
        "IRacme",
        "--name",
        "m",
        "--scope",
        "reports:reads",
    ])
    .parts();
    assert_ne!(code, 0);
    assert!(
        err.contains("unknown method `reads`") && err.contains("read (GET, HEAD)"),
        "{err}"
    );
}

/// `prefix*suffix` and `prefix{account}suffix` segments at the gateway: exact matching, and
/// the most specific API recorded when a token holds several overlapping ones.
#[tokio::test]
async fn affixed_patterns_at_the_gateway_most_specific_wins() {
    let apis = "  docs_any:\n    paths: [\"/docs/*\"]\n  docs_json:\n    paths: [\"/docs/*.json\"]\n  docs_own:\n    paths: [\"/docs/{account}.json\"]\n";
    let tokens = format!(
        r#"accounts:
  - id: {ACCOUNT}
    tokens:
      - sid: SGboth
        name: b
        auth_token_hash: "{}"
        scopes: [{{api: docs_any, methods: [read]}}, {{api: docs_json, methods: [read]}}, {{api: docs_own, methods: [read]}}]
      - sid: SGjson
        name: j
        auth_token_hash: "{}"
        scopes: [{{api: docs_json, methods: [GET]}}]
"#,
        hash("b"),
        hash("j")
    );
    let h = Harness::start_with(apis, &tokens).await;
    let both = basic_raw("SGboth", "b");
    let json = basic_raw("SGjson", "j");
    for (auth, path, status) in [
        (&both, "/docs/x.json", 200),
        (&both, "/docs/IRacme.json", 200),
        (&both, "/docs/x", 200),
        (&json, "/docs/x.json", 200),
        (&json, "/docs/%C3%A9.json", 200),
        (&json, "/docs/x.json/", 200),
        (&json, "/docs/x", 403),
        (&json, "/docs/.json", 403),
        (&json, "/docs/x.jsonx", 403),
        (&json, "/docs/x.json/y", 403),
        (&json, "/docs/a/b.json", 403),
        (&json, "/docs/a%2Fb.json", 400),
        (&json, "/docs/..json", 200),
    ] {
        let before = h.upstream.count();
        let reply = send("GET", &h.url(path), &[("authorization", auth)], "").await;
        assert_eq!(reply.status, status, "{path}");
        assert_eq!(
            h.upstream.count(),
            before + usize::from(status == 200),
            "{path}"
        );
        if status == 200 {
            let seen = h.upstream.last().expect("forwarded");
            assert_eq!(seen.target, path);
        }
    }
    let text = metrics(&h).await;
    for api in ["docs_json", "docs_own", "docs_any"] {
        let line = format!(
            "scopegate_requests_total{{account=\"IRacme\",api=\"{api}\",decision=\"allowed\",method=\"GET\",token=\"SGboth\"}} 1\n"
        );
        assert!(text.contains(&line), "{line} in\n{text}");
    }
}

/// A hand-written `apis:` key that YAML reads as a number, boolean or null: `check` names
/// every one at its own line (serde alone stopped at the first, without its line).
#[test]
fn check_names_each_api_key_yaml_does_not_read_as_text() {
    let dir = TempDir::new();
    dir.write("tokens.yaml", "accounts: []\n");
    let config = dir.write(
        "scopegate.yaml",
        "listen: 127.0.0.1:0\ntokens_file: tokens.yaml\nupstreams:\n  main:\n    url: http://127.0.0.1:9\n\
         api_versions: [\"v1\"]\napis:\n  pets:\n    upstream: main\n    paths: [\"/pets\"]\n\
         \x20 2:\n    upstream: main\n    paths: [\"/2\"]\n\
         \x20 true:\n    upstream: main\n    paths: [\"/t\"]\n\
         \x20 1.10:\n    upstream: main\n    paths: [\"/v\"]\n\
         \x20 \"3\":\n    upstream: main\n    paths: [\"/3\"]\n",
    );
    let (code, out, err) =
        cli::scopegate(&["check", "--config", config.to_str().unwrap_or_default()]).parts();
    assert_eq!(code, 1, "{out}{err}");
    let text = format!("{out}{err}");
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("scopegate.yaml:"))
        .map(|l| &l[l.find("scopegate.yaml:").unwrap_or(0)..])
        .collect();
    assert_eq!(
        errors,
        [
            "scopegate.yaml:11: apis.2: the API name `2` is read as a number, not as text \
             (hint: quote it: \"2\":)",
            "scopegate.yaml:14: apis.true: the API name `true` is read as a boolean, not as \
             text (hint: quote it: \"true\":)",
            "scopegate.yaml:17: apis[\"1.10\"]: the API name `1.10` is read as a number, not \
             as text (hint: quote it: \"1.10\":)",
        ],
        "{text}"
    );
}

/// Runs `catalog import` on a document written to `dir`.
fn import_text(dir: &TempDir, name: &str, text: &str) -> (i32, String, String) {
    let doc = dir.write(name, text);
    cli::scopegate(&["catalog", "import", doc.to_str().unwrap_or_default()]).parts()
}

#[test]
fn import_reads_past_integers_and_duplicates_it_does_not_use() {
    let dir = TempDir::new();
    // OpenAI's openapi.yaml has int64 bounds written by a JavaScript generator.
    let (code, out, err) = import_text(
        &dir,
        "bigint.yaml",
        "openapi: 3.1.0\ninfo: {title: Big, version: '1'}\npaths:\n  /chat: {post: {tags: [chat]}}\n\
         components:\n  schemas:\n    Seed: {type: integer, minimum: -9223372036854776000, \
         maximum: 18446744073709551616}\n    Pet:\n      description: first\n      description: second\n",
    );
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert!(
        out.contains("  chat:\n") && out.contains("\"/chat\""),
        "{out}"
    );
}

#[test]
fn an_unbundled_document_is_an_error_for_import_and_diff() {
    let dir = TempDir::new();
    let mut text = String::from("openapi: 3.0.0\ninfo: {title: DO, version: '2'}\npaths:\n");
    for i in 0..30 {
        text.push_str(&format!(
            "  /v2/r{i}:\n    get: {{$ref: 'resources/r{i}/list.yml'}}\n    post: {{$ref: 'resources/r{i}/create.yml'}}\n"
        ));
    }
    let doc = dir.write("unbundled.yaml", &text);
    let doc = doc.to_str().unwrap_or_default();
    let (code, out, err) = cli::scopegate(&["catalog", "import", doc]).parts();
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(
        err,
        format!(
            "error: {doc}: no operation could be imported from its 30 paths:\n  GET /v2/r0: `$ref: \
             resources/r0/list.yml` points outside the document: only local references (`#/...`) \
             are read; bundle the document first (e.g. `redocly bundle`) (and 59 more operations \
             for the same reason, e.g. POST /v2/r0, GET /v2/r1, POST /v2/r1)\n"
        )
    );
    let petstore = dir.write("petstore.yaml", &petstore());
    let config = config_from_import(&dir, &petstore, TOKENS);
    let (code, out, err) = cli::scopegate(&[
        "catalog",
        "diff",
        doc,
        "--config",
        config.to_str().unwrap_or_default(),
    ])
    .parts();
    assert_eq!(code, 2, "{out}{err}");
    assert!(!out.contains("no drift"), "{out}");
    assert!(
        err.contains("no operation could be imported from its 30 paths"),
        "{err}"
    );
}

#[test]
fn many_warnings_with_one_reason_are_summarised() {
    let dir = TempDir::new();
    let mut text =
        String::from("openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths:\n  /ok: {get: {}}\n");
    for i in 0..12 {
        text.push_str(&format!("  /ext{i}: {{$ref: 'paths/ext{i}.yaml'}}\n"));
    }
    let (code, out, err) = import_text(&dir, "partial.yaml", &text);
    assert_eq!(code, 0, "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(
        warnings,
        [
            "warning: not imported: /ext0: `$ref: paths/ext0.yaml` points outside the document: \
          only local references (`#/...`) are read; bundle the document first (e.g. `redocly \
          bundle`) (and 11 more operations for the same reason, e.g. /ext1, /ext2, /ext3)"
        ]
    );
    assert!(out.contains("# Not imported (12)"), "{out}");
}

#[test]
fn method_like_keys_and_a_paths_list_are_not_dropped_silently() {
    let dir = TempDir::new();
    let (code, _, err) = import_text(
        &dir,
        "aws.yaml",
        "openapi: 3.0.1\ninfo: {title: t, version: '1'}\npaths:\n  /pets:\n    get: {tags: [pets]}\n    \
         POST: {tags: [pets]}\n  /{proxy+}:\n    x-amazon-apigateway-any-method: {}\n",
    );
    assert_eq!(code, 0, "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(
        warnings,
        [
            "warning: not imported: POST /pets: `POST` is not an operation key: OpenAPI's method \
             keys are lower-case (`post`)",
            "warning: not imported: ANY /{proxy+}: `x-amazon-apigateway-any-method` (AWS API \
             Gateway: any method) is not an OpenAPI operation: grant the methods it serves by hand",
        ]
    );
    let (code, out, err) = import_text(
        &dir,
        "list.yaml",
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: [/a, /b]\n",
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        err.ends_with(": `paths` is a list, not a mapping of path templates to path items\n"),
        "{err}"
    );
}

#[test]
fn openapi_3_2_is_read_with_a_note() {
    let dir = TempDir::new();
    let (code, out, err) = import_text(
        &dir,
        "v32.yaml",
        "openapi: 3.2.0\ninfo: {title: t, version: '1'}\npaths:\n  /a: {get: {tags: [a]}}\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err,
        "note: OpenAPI 3.2.0 is read as 3.1 (the versions this importer knows are 3.0 and 3.1); \
         check the result\n"
    );
    assert!(out.contains("(OpenAPI 3.2.0)"), "{out}");
}

#[test]
fn the_size_cap_holds_for_devices_too() {
    // /dev/zero reports no size and never ends: the read stops past 64 MiB.
    let (code, out, err) = cli::scopegate(&["catalog", "import", "/dev/zero"]).parts();
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert_eq!(
        err,
        "error: /dev/zero: larger than 64 MiB; is this an OpenAPI document?\n"
    );
}
