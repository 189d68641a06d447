//! `scopegate explain` agrees with the gateway. One table of requests drives both: each
//! request goes through the real gateway (raw HTTP/1.1 over TCP, its decision read back
//! from `scopegate_requests_total`) and through `explain` (the library function, and the
//! binary for exit codes and output); the decision and API labels must be equal.

mod support;

use std::collections::BTreeMap;

use serde_json::Value;
use support::*;

use scopegate::cli::explain::{explain, parse_headers, Explanation};
use scopegate::gateway::metrics::Metrics;
use scopegate::gateway::runtime::RuntimeRegistry;
use scopegate::gateway::snapshot::Policy;

struct Case {
    what: &'static str,
    sid: &'static str,
    secret: &'static str,
    method: &'static str,
    target: &'static str,
    headers: &'static [(&'static str, &'static str)],
    /// (decision label, api label)
    want: (&'static str, &'static str),
}

const fn c(
    what: &'static str,
    who: &Fixture,
    method: &'static str,
    target: &'static str,
    headers: &'static [(&'static str, &'static str)],
    want: (&'static str, &'static str),
) -> Case {
    Case {
        what,
        sid: who.sid,
        secret: who.secret,
        method,
        target,
        headers,
        want,
    }
}

const NOBODY: Fixture = Fixture {
    sid: "SGnobody",
    secret: "x",
};
const DELETED: Fixture = Fixture {
    sid: "SGdeleted",
    secret: "x",
};

const ALLOWED: &str = "allowed";
const SCOPE: &str = "denied_scope";
const CREDS: &str = "denied_credentials";
const DISABLED_L: &str = "denied_disabled";
const BAD: &str = "bad_request";

fn table() -> Vec<Case> {
    vec![
        // Allowed.
        c(
            "get in scope",
            &READER,
            "GET",
            CAMPAIGNS,
            &[],
            (ALLOWED, "campaigns"),
        ),
        c(
            "head by a get grant",
            &READER,
            "HEAD",
            CAMPAIGNS,
            &[],
            (ALLOWED, "campaigns"),
        ),
        c(
            "trailing slash",
            &READER,
            "GET",
            "/Mediapartners/IRacme/Campaigns/",
            &[],
            (ALLOWED, "campaigns"),
        ),
        c(
            "encoded unreserved",
            &READER,
            "GET",
            "/Mediapartners/IRacme/%43ampaigns/%7Ex",
            &[],
            (ALLOWED, "campaigns"),
        ),
        c(
            "overlapping api not granted",
            &READER,
            "GET",
            "/Mediapartners/IRacme/Campaigns/7/Items",
            &[],
            (ALLOWED, "campaigns"),
        ),
        c(
            "globstar root",
            &READER,
            "GET",
            "/public",
            &[],
            (ALLOWED, "public"),
        ),
        c(
            "query kept",
            &READER,
            "GET",
            "/public/a/b?x=%2F..&y=1",
            &[],
            (ALLOWED, "public"),
        ),
        c(
            "post in scope",
            &WRITER,
            "POST",
            CAMPAIGNS,
            &[],
            (ALLOWED, "campaigns"),
        ),
        c(
            "override in scope",
            &WRITER,
            "POST",
            CAMPAIGNS,
            &[("x-http-method-override", "DELETE")],
            (ALLOWED, "campaigns"),
        ),
        c(
            "_method in scope",
            &WRITER,
            "POST",
            "/Mediapartners/IRacme/Campaigns?_method=delete",
            &[],
            (ALLOWED, "campaigns"),
        ),
        c(
            "second api",
            &WRITER,
            "GET",
            "/Mediapartners/IRacme/Reports/r1",
            &[],
            (ALLOWED, "reports"),
        ),
        c(
            "legacy outside the catalog",
            &LEGACY,
            "GET",
            "/anything/at/all",
            &[],
            (ALLOWED, "none"),
        ),
        c(
            "legacy in the catalog",
            &LEGACY,
            "DELETE",
            "/Mediapartners/IRacme/Reports/1",
            &[],
            (ALLOWED, "reports"),
        ),
        c(
            "own account",
            &OTHER,
            "GET",
            "/Mediapartners/IRother/Campaigns",
            &[],
            (ALLOWED, "campaigns"),
        ),
        c(
            "absolute form, same host",
            &READER,
            "GET",
            "http://x/Mediapartners/IRacme/Campaigns",
            &[],
            (ALLOWED, "campaigns"),
        ),
        // Outside the scopes.
        c(
            "method out of scope",
            &READER,
            "POST",
            CAMPAIGNS,
            &[],
            (SCOPE, "campaigns"),
        ),
        c(
            "delete out of scope",
            &READER,
            "DELETE",
            CAMPAIGNS,
            &[],
            (SCOPE, "campaigns"),
        ),
        c(
            "path matches no api",
            &READER,
            "GET",
            "/Mediapartners/IRacme/Secrets",
            &[],
            (SCOPE, "none"),
        ),
        c(
            "api not in scopes",
            &READER,
            "GET",
            "/Mediapartners/IRacme/Reports/1",
            &[],
            (SCOPE, "none"),
        ),
        c(
            "other account",
            &WRITER,
            "GET",
            "/Mediapartners/IRother/Campaigns",
            &[],
            (SCOPE, "none"),
        ),
        c(
            "case-sensitive path",
            &READER,
            "GET",
            "/mediapartners/IRacme/Campaigns",
            &[],
            (SCOPE, "none"),
        ),
        c(
            "globstar is not a prefix",
            &READER,
            "GET",
            "/publicity",
            &[],
            (SCOPE, "none"),
        ),
        c(
            "extension method",
            &WRITER,
            "BREW",
            CAMPAIGNS,
            &[],
            (SCOPE, "campaigns"),
        ),
        c(
            "lower-case method",
            &READER,
            "get",
            CAMPAIGNS,
            &[],
            (SCOPE, "campaigns"),
        ),
        c(
            "override out of scope",
            &READER,
            "GET",
            CAMPAIGNS,
            &[("x-http-method-override", "DELETE")],
            (SCOPE, "campaigns"),
        ),
        c(
            "x-http-method out of scope",
            &READER,
            "GET",
            CAMPAIGNS,
            &[("x-http-method", "POST")],
            (SCOPE, "campaigns"),
        ),
        c(
            "unknown override verb",
            &WRITER,
            "GET",
            CAMPAIGNS,
            &[("x-method-override", "BREW")],
            (SCOPE, "campaigns"),
        ),
        c(
            "_method out of scope",
            &READER,
            "GET",
            "/Mediapartners/IRacme/Campaigns?_method=delete",
            &[],
            (SCOPE, "campaigns"),
        ),
        c(
            "options asterisk",
            &WRITER,
            "OPTIONS",
            "*",
            &[],
            (SCOPE, "none"),
        ),
        c(
            "legacy other account",
            &LEGACY,
            "GET",
            "/Mediapartners/IRother/Campaigns",
            &[],
            (ALLOWED, "none"),
        ),
        // Credentials (no secret check in explain; the rest of authentication is there).
        c(
            "disabled token",
            &DISABLED,
            "GET",
            CAMPAIGNS,
            &[],
            (DISABLED_L, "none"),
        ),
        c(
            "expired token",
            &EXPIRED,
            "GET",
            CAMPAIGNS,
            &[],
            (CREDS, "none"),
        ),
        c(
            "unknown sid",
            &NOBODY,
            "GET",
            CAMPAIGNS,
            &[],
            (CREDS, "none"),
        ),
        c(
            "deleted sid",
            &DELETED,
            "GET",
            CAMPAIGNS,
            &[],
            (CREDS, "none"),
        ),
        // Refused before authentication.
        c(
            "dot segment",
            &READER,
            "GET",
            "/Mediapartners/IRacme/Campaigns/../Secrets",
            &[],
            (BAD, "none"),
        ),
        c(
            "encoded dot segment",
            &READER,
            "GET",
            "/Mediapartners/IRacme/Campaigns/%2e%2e/Secrets",
            &[],
            (BAD, "none"),
        ),
        c(
            "encoded slash",
            &READER,
            "GET",
            "/Mediapartners/IRacme/Campaigns%2f..%2fSecrets",
            &[],
            (BAD, "none"),
        ),
        c(
            "encoded backslash",
            &READER,
            "GET",
            "/Mediapartners/IRacme/Campaigns/%5c",
            &[],
            (BAD, "none"),
        ),
        c(
            "double encoding",
            &READER,
            "GET",
            "/Mediapartners/IRacme/Campaigns/%252e",
            &[],
            (BAD, "none"),
        ),
        c(
            "empty segment",
            &READER,
            "GET",
            "/Mediapartners//IRacme/Campaigns",
            &[],
            (BAD, "none"),
        ),
        c(
            "raw backslash",
            &READER,
            "GET",
            "/Mediapartners/IRacme/Campaigns\\x",
            &[],
            (BAD, "none"),
        ),
        c(
            "raw semicolon",
            &READER,
            "GET",
            "/Mediapartners/IRacme/Campaigns;x=1",
            &[],
            (BAD, "none"),
        ),
        c(
            "encoded NUL",
            &READER,
            "GET",
            "/Mediapartners/IRacme/Campaigns/%00",
            &[],
            (BAD, "none"),
        ),
        c(
            "overlong utf-8",
            &READER,
            "GET",
            "/Mediapartners/IRacme/Campaigns/%c0%ae%c0%ae",
            &[],
            (BAD, "none"),
        ),
        c(
            "malformed percent",
            &READER,
            "GET",
            "/Mediapartners/IRacme/Campaigns/%zz",
            &[],
            (BAD, "none"),
        ),
        c(
            "raw non-ascii",
            &READER,
            "GET",
            "/Mediapartners/IRacme/Campaigns/caf\u{e9}",
            &[],
            (BAD, "none"),
        ),
        c(
            "caret",
            &READER,
            "GET",
            "/Mediapartners/IRacme/Campaigns/a^b",
            &[],
            (BAD, "none"),
        ),
        c(
            "asterisk form for GET",
            &READER,
            "GET",
            "*",
            &[],
            (BAD, "none"),
        ),
        c(
            "several hosts",
            &READER,
            "GET",
            CAMPAIGNS,
            &[("host", "a.example"), ("host", "b.example")],
            (BAD, "none"),
        ),
        c(
            "absolute form, other host",
            &READER,
            "GET",
            "http://evil.example/Mediapartners/IRacme/Campaigns",
            &[],
            (BAD, "none"),
        ),
        c(
            "userinfo",
            &READER,
            "GET",
            "http://u:p@x/Mediapartners/IRacme/Campaigns",
            &[],
            (BAD, "none"),
        ),
        c(
            "bad target on unknown sid",
            &NOBODY,
            "GET",
            "/a/../b",
            &[],
            (BAD, "none"),
        ),
    ]
}

/// Every `scopegate_requests_total` series, by its labels.
fn request_counts(text: &str) -> BTreeMap<BTreeMap<String, String>, f64> {
    exposition::series_of(text, "scopegate_requests_total")
        .into_iter()
        .collect()
}

fn label(labels: &BTreeMap<String, String>, name: &str) -> String {
    labels.get(name).cloned().unwrap_or_default()
}

/// Sends one case through the gateway and reads back its (decision, api) labels.
async fn gateway_decision(h: &Harness, case: &Case) -> (String, String, u16) {
    let before = request_counts(&metrics(h).await);
    let mut req = format!("{} {} HTTP/1.1\r\n", case.method, case.target);
    if !case.headers.iter().any(|(k, _)| *k == "host") {
        req.push_str("Host: x\r\n");
    }
    for (k, v) in case.headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Authorization: {}\r\nConnection: close\r\n\r\n",
        basic_raw(case.sid, case.secret)
    ));
    let reply = raw(h.addr(), req.as_bytes()).await;
    let after = request_counts(&metrics(h).await);
    let changed: Vec<&BTreeMap<String, String>> = after
        .iter()
        .filter(|(k, v)| before.get(*k).copied().unwrap_or(0.0) < **v)
        .map(|(k, _)| k)
        .collect();
    let status = reply.status.as_u16();
    match changed.as_slice() {
        [one] => (label(one, "decision"), label(one, "api"), status),
        // Refused by the HTTP parser itself, before the gateway's service ran.
        [] if status == 400 => (BAD.into(), "none".into(), status),
        other => panic!("{}: unexpected metric changes {other:?}", case.what),
    }
}

fn policy(h: &Harness) -> Policy {
    let config = scopegate::config::load(&h.config_path).unwrap();
    scopegate::gateway::snapshot::build(config, 1, &RuntimeRegistry::default(), &Metrics::new())
}

fn explain_case(policy: &Policy, case: &Case) -> Explanation {
    // The same headers as the gateway gets (`Host: x` unless the case sets one).
    let mut headers: Vec<String> = case
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    if !case.headers.iter().any(|(k, _)| *k == "host") {
        headers.push("Host: x".into());
    }
    let headers = parse_headers(&headers).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    explain(policy, case.sid, case.method, case.target, &headers, now)
        .unwrap_or_else(|e| panic!("{}: {e}", case.what))
}

#[tokio::test]
async fn explain_agrees_with_the_gateway_on_every_case() {
    let h = Harness::start().await;
    let policy = policy(&h);
    let mut disagreements = Vec::new();
    for case in table() {
        let (decision, api, status) = gateway_decision(&h, &case).await;
        let e = explain_case(&policy, &case);
        let want = (case.want.0.to_owned(), case.want.1.to_owned());
        assert_eq!(
            (decision.clone(), api.clone()),
            want,
            "{}: the gateway's decision (status {status}) is not the table's",
            case.what
        );
        if (e.decision, e.api.as_str()) != (decision.as_str(), api.as_str()) {
            disagreements.push(format!(
                "{}: gateway {decision}/{api}, explain {}/{} ({})",
                case.what, e.decision, e.api, e.why
            ));
        }
        let expected_status = match decision.as_str() {
            ALLOWED => 200,
            BAD => 400,
            _ => 403,
        };
        assert_eq!(status, expected_status, "{}", case.what);
        assert_eq!(e.allowed(), status == 200, "{}", case.what);
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}

#[tokio::test]
async fn explain_names_the_scope_that_allows_or_the_one_missing() {
    let h = Harness::start().await;
    let policy = policy(&h);
    let find = |what: &str| {
        let case = table().into_iter().find(|c| c.what == what).unwrap();
        explain_case(&policy, &case)
    };

    let e = find("get in scope");
    assert_eq!(e.canonical_path.as_deref(), Some(CAMPAIGNS));
    assert_eq!(
        e.allowed_by.as_ref().unwrap().to_string(),
        "{api: campaigns, methods: [GET]}"
    );
    assert_eq!(e.upstream.as_deref(), Some("main"));
    assert_eq!(e.shadow_denies, None);
    assert_eq!(e.matching_apis[0].api, "campaigns");

    let e = find("encoded unreserved");
    assert_eq!(
        e.canonical_path.as_deref(),
        Some("/Mediapartners/IRacme/Campaigns/~x")
    );

    let e = find("method out of scope");
    assert_eq!(
        e.missing.as_ref().unwrap().to_string(),
        "{api: campaigns, methods: [POST]}"
    );
    assert_eq!(
        e.resulting_scope.as_ref().unwrap().to_string(),
        "{api: campaigns, methods: [GET, POST]}"
    );

    let e = find("api not in scopes");
    assert_eq!(
        e.missing.as_ref().unwrap().to_string(),
        "{api: reports, methods: [GET]}"
    );
    assert_eq!(e.matching_apis.len(), 1);
    assert!(e.matching_apis[0].granted.is_none());

    let e = find("override out of scope");
    assert_eq!(e.reason, "method_override_not_granted");
    assert_eq!(e.overrides, vec!["DELETE"]);
    assert_eq!(
        e.missing.as_ref().unwrap().to_string(),
        "{api: campaigns, methods: [DELETE]}"
    );

    let e = find("other account");
    assert!(e.missing.is_none());
    assert!(e.why.contains("IRother"), "{}", e.why);

    let e = find("path matches no api");
    assert!(e.why.contains("no API of the catalog"), "{}", e.why);

    let e = find("overlapping api not granted");
    assert_eq!(
        e.matching_apis[0].api, "campaign_items",
        "most specific first"
    );

    let e = find("disabled token");
    assert_eq!(e.reason, "disabled");

    let e = find("encoded slash");
    assert_eq!(
        e.bad_request.as_deref(),
        Some("encoded slash (%2F) in path")
    );
    assert!(e.canonical_path.is_none());

    let e = find("lower-case method");
    assert!(e.notes.iter().any(|n| n.contains("case-sensitive")));
}

#[tokio::test]
async fn explain_command_output_and_exit_codes() {
    let h = Harness::start().await;
    let (code, out) = cli::explain(
        &h.config_path,
        &[
            "--token",
            READER.sid,
            "GET",
            "/Mediapartners/IRacme/%43ampaigns?page=2",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("canonical    /Mediapartners/IRacme/Campaigns"),
        "{out}"
    );
    assert!(
        out.contains("decision     allowed (in_scope), api campaigns -> upstream main"),
        "{out}"
    );
    assert!(
        out.contains("allowed by   {api: campaigns, methods: [GET]}"),
        "{out}"
    );
    assert!(!out.contains("page=2"), "the query is never echoed: {out}");

    let (code, out) = cli::explain(&h.config_path, &["--token", READER.sid, "POST", CAMPAIGNS]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("decision     denied_scope (method_not_granted), api campaigns"),
        "{out}"
    );
    assert!(out.contains("missing      add {api: campaigns, methods: [POST]} (the scope becomes {api: campaigns, methods: [GET, POST]})"), "{out}");

    let (code, out) = cli::explain(
        &h.config_path,
        &[
            "--token",
            WRITER.sid,
            "--json",
            "--header",
            "X-HTTP-Method-Override: PATCH",
            "POST",
            CAMPAIGNS,
        ],
    );
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"], "denied_scope");
    assert_eq!(v["reason"], "method_override_not_granted");
    assert_eq!(v["missing"]["methods"][0], "PATCH");
    assert_eq!(v["overrides"][0], "PATCH");

    let (code, out) = cli::explain(&h.config_path, &["--token", "SGnobody", "GET", CAMPAIGNS]);
    assert_eq!(code, 1);
    assert!(out.contains("denied_credentials (unknown_sid)"), "{out}");

    let (code, out) = cli::explain(
        &h.config_path,
        &["--token", READER.sid, "GET", "/a/%2e%2e/b"],
    );
    assert_eq!(code, 1);
    assert!(out.contains("refused (400)"), "{out}");

    // Usage and configuration errors exit 2.
    assert_eq!(
        cli::explain(
            &h.config_path,
            &["--token", READER.sid, "--header", "no colon", "GET", "/"]
        )
        .0,
        2
    );
    assert_eq!(
        cli::explain(&h.config_path, &["--token", READER.sid, "G(ET", "/"]).0,
        2
    );
    let out = support::cli::bin()
        .args([
            "explain",
            "--config",
            "/nonexistent/scopegate.yaml",
            "--token",
            "x",
            "GET",
            "/",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `--body`: a body's `_method` is an override to `explain` as to the gateway, which
/// answers the same request the same way.
#[tokio::test]
async fn explain_reads_overrides_in_a_body_as_the_gateway_does() {
    let h = Harness::start().await;
    let form = "Content-Type: application/x-www-form-urlencoded";
    let (code, out) = cli::explain(
        &h.config_path,
        &[
            "--token",
            WRITER.sid,
            "-H",
            form,
            "--body",
            "a=1&_method=PUT",
            "POST",
            CAMPAIGNS,
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("overrides    PUT"), "{out}");
    assert!(
        out.contains("decision     denied_scope (method_override_not_granted)"),
        "{out}"
    );
    let dir = TempDir::new();
    let file = dir.write("body.json", r#"{"_method":"delete"}"#);
    let at_file = format!("@{}", file.display());
    let (code, out) = cli::explain(
        &h.config_path,
        &[
            "--token",
            WRITER.sid,
            "-H",
            "Content-Type: application/json",
            "--body",
            &at_file,
            "POST",
            CAMPAIGNS,
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("overrides    DELETE"), "{out}");
    // The gateway agrees on both.
    for (ct, body, status) in [
        ("application/x-www-form-urlencoded", "a=1&_method=PUT", 403),
        ("application/json", r#"{"_method":"delete"}"#, 200),
    ] {
        let req = format!(
            "POST {CAMPAIGNS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
            basic(&WRITER),
            body.len()
        );
        assert_eq!(raw(h.addr(), req.as_bytes()).await.status, status, "{body}");
    }
}
