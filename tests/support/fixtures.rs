//! The token and configuration fixtures most tests share: two accounts, a reader, a
//! writer, a legacy, a disabled, an expired and another account's token, and the
//! catalog they are scoped on; plus the edits tests make to them.

use std::net::SocketAddr;

pub const ACCOUNT: &str = "IRacme";
/// The campaigns listing of [`ACCOUNT`]: the path most tests request.
pub const CAMPAIGNS: &str = "/Mediapartners/IRacme/Campaigns";
pub const OTHER_ACCOUNT: &str = "IRother";

/// A token of the fixtures: its SID and secret.
pub struct Fixture {
    pub sid: &'static str,
    pub secret: &'static str,
}

pub const READER: Fixture = Fixture {
    sid: "SGreader",
    secret: "reader-secret",
};
pub const WRITER: Fixture = Fixture {
    sid: "SGwriter",
    secret: "writer-secret",
};
pub const LEGACY: Fixture = Fixture {
    sid: "SGlegacy",
    secret: "legacy-secret",
};
pub const DISABLED: Fixture = Fixture {
    sid: "SGdisabled",
    secret: "disabled-secret",
};
pub const EXPIRED: Fixture = Fixture {
    sid: "SGexpired",
    secret: "expired-secret",
};
pub const OTHER: Fixture = Fixture {
    sid: "SGother",
    secret: "other-secret",
};

pub fn hash(secret: &str) -> String {
    scopegate::domain::model::SecretHash::of_secret(secret.as_bytes()).to_stored()
}

pub fn gateway_yaml(upstream: SocketAddr, extra: &str) -> String {
    format!(
        r#"listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
tokens_file: tokens.yaml
upstreams:
  main:
    url: http://{upstream}
default_upstream: main
api_versions: ["v14", "v15"]
apis:
  campaigns:
    description: Campaign listings
    paths: ["/Mediapartners/{{account}}/Campaigns", "/Mediapartners/{{account}}/Campaigns/**"]
    upstream: main
  campaign_items:
    description: One campaign's items (overlaps campaigns, more specific)
    paths: ["/Mediapartners/{{account}}/Campaigns/*/Items"]
  reports:
    paths: ["/Mediapartners/{{account}}/Reports/**"]
  public:
    paths: ["/public/**"]
{extra}"#
    )
}

pub fn tokens_yaml() -> String {
    format!(
        r#"accounts:
  - id: {ACCOUNT}
    name: Acme
    tokens:
      - sid: {r}
        name: reader
        description: reads campaigns
        primary_contact: ops@acme.example
        api_version: v15
        auth_token_hash: "{rh}"
        scopes:
          - {{api: campaigns, methods: [GET]}}
          - {{api: public, methods: [GET]}}
      - sid: {w}
        name: writer
        auth_token_hash: "{wh}"
        scopes:
          - {{api: campaigns, methods: [GET, POST, DELETE]}}
          - {{api: reports, methods: [GET]}}
      - sid: {l}
        name: legacy
        kind: legacy
        auth_token_hash: "{lh}"
      - sid: {d}
        name: disabled
        status: disabled
        auth_token_hash: "{dh}"
        scopes: [{{api: campaigns, methods: [GET]}}]
      - sid: {e}
        name: expired
        expires_at: 2020-01-01T00:00:00Z
        auth_token_hash: "{eh}"
        scopes: [{{api: campaigns, methods: [GET]}}]
  - id: {OTHER_ACCOUNT}
    tokens:
      - sid: {o}
        name: other
        auth_token_hash: "{oh}"
        scopes: [{{api: campaigns, methods: [GET]}}]
deleted_sids: [SGdeleted]
"#,
        r = READER.sid,
        rh = hash(READER.secret),
        w = WRITER.sid,
        wh = hash(WRITER.secret),
        l = LEGACY.sid,
        lh = hash(LEGACY.secret),
        d = DISABLED.sid,
        dh = hash(DISABLED.secret),
        e = EXPIRED.sid,
        eh = hash(EXPIRED.secret),
        o = OTHER.sid,
        oh = hash(OTHER.secret),
    )
}

/// `tokens` with `lines` (YAML, indented as a token's fields) added to the token named
/// `name`.
pub fn with_token_lines(tokens: &str, name: &str, lines: &str) -> String {
    let marker = format!("        name: {name}\n");
    assert!(tokens.contains(&marker), "no token named {name}");
    tokens.replacen(&marker, &format!("{marker}{lines}"), 1)
}

/// The harness tokens with the reader's and the writer's own `rate_limit`s.
pub fn tokens_with_limits(reader_limit: &str, writer_limit: &str) -> String {
    let limit = |l: &str| format!("        rate_limit: {l}\n");
    let tokens = with_token_lines(&tokens_yaml(), "reader", &limit(reader_limit));
    with_token_lines(&tokens, "writer", &limit(writer_limit))
}

/// The harness config with fixed ports instead of port 0, for the built binary.
pub fn with_ports(yaml: &str, port: u16, admin: u16) -> String {
    yaml.replace(
        "admin_listen: 127.0.0.1:0",
        &format!("admin_listen: 127.0.0.1:{admin}"),
    )
    .replacen(
        "listen: 127.0.0.1:0",
        &format!("listen: 127.0.0.1:{port}"),
        1,
    )
}
