//! A small policy written as its two YAML files, for the unit tests that decide and run the
//! request phases in memory (no file read, no socket): the decision's, the request
//! phases' and the refusal mapping's. Parsing the YAML through the real loader keeps the
//! fixture readable and the compiled policy exactly what the gateway would build.

use std::path::Path;

use crate::config::{load_from_sources, Config};
use crate::domain::model::SecretHash;

/// A token's SID and its secret.
pub struct Cred {
    pub sid: &'static str,
    pub secret: &'static str,
}

/// GET on campaigns and public; `api_version` and contacts set.
pub const READER: Cred = Cred {
    sid: "SGreader",
    secret: "reader-secret",
};
/// GET, POST and DELETE on campaigns, GET on reports.
pub const WRITER: Cred = Cred {
    sid: "SGwriter",
    secret: "writer-secret",
};
/// A legacy token: full access, no scopes.
pub const LEGACY: Cred = Cred {
    sid: "SGlegacy",
    secret: "legacy-secret",
};
pub const DISABLED: Cred = Cred {
    sid: "SGdisabled",
    secret: "disabled-secret",
};
/// Expired in 2020.
pub const EXPIRED: Cred = Cred {
    sid: "SGexpired",
    secret: "expired-secret",
};
/// Reset with a grace period that lasts until 2999: [`GRACE_OLD`] still works.
pub const GRACE: Cred = Cred {
    sid: "SGgrace",
    secret: "grace-new-secret",
};
/// [`GRACE`]'s previous secret, inside its grace period.
pub const GRACE_OLD: &str = "grace-old-secret";
/// Reset with a grace period that ended in 2020: [`LAPSED_OLD`] no longer works.
pub const LAPSED: Cred = Cred {
    sid: "SGlapsed",
    secret: "lapsed-new-secret",
};
pub const LAPSED_OLD: &str = "lapsed-old-secret";
/// GET on campaigns, only from 192.0.2.0/24.
pub const PINNED: Cred = Cred {
    sid: "SGpinned",
    secret: "pinned-secret",
};
/// Scopes GET and POST on campaigns; `shadow_scopes` only GET.
pub const SHADOW: Cred = Cred {
    sid: "SGshadow",
    secret: "shadow-secret",
};
/// GET on campaigns, a burst of one request (refilling once an hour).
pub const LIMITED: Cred = Cred {
    sid: "SGlimited",
    secret: "limited-secret",
};
/// GET on campaigns, in the other account.
pub const OTHER: Cred = Cred {
    sid: "SGother",
    secret: "other-secret",
};
/// A SID listed in `deleted_sids`.
pub const DELETED_SID: &str = "SGdeleted";

/// The failed-authentication throttle of [`config`]: a SID is throttled after
/// `SID_FAILURES` wrong secrets, an address after `ADDRESS_FAILURES` failures.
pub const SID_FAILURES: u32 = 3;
pub const ADDRESS_FAILURES: u32 = 5;

/// `/Mediapartners/IRacme/Campaigns`: the reader's, writer's and most tokens' API.
pub const CAMPAIGNS: &str = "/Mediapartners/IRacme/Campaigns";

fn hash(secret: &str) -> String {
    SecretHash::of_secret(secret.as_bytes()).to_stored()
}

/// `scopegate.yaml`, with `extra` lines appended (e.g. `invalid_credentials_status: 401`).
pub fn gateway_yaml(extra: &str) -> String {
    format!(
        r#"listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
tokens_file: tokens.yaml
upstreams:
  main:
    url: http://127.0.0.1:9
default_upstream: main
apis:
  campaigns:
    paths: ["/Mediapartners/{{account}}/Campaigns", "/Mediapartners/{{account}}/Campaigns/**"]
  campaign_items:
    paths: ["/Mediapartners/{{account}}/Campaigns/*/Items"]
  reports:
    paths: ["/Mediapartners/{{account}}/Reports/**"]
  public:
    paths: ["/public/**"]
bruteforce:
  max_failures: {SID_FAILURES}
  max_failures_per_address: {ADDRESS_FAILURES}
  cooloff: 1h
{extra}"#
    )
}

/// The tokens file: one token per [`Cred`] above.
pub fn tokens_yaml() -> String {
    let campaigns_get = "[{api: campaigns, methods: [GET]}]";
    format!(
        r#"accounts:
  - id: IRacme
    name: Acme
    tokens:
      - sid: {reader}
        name: reader
        auth_token_hash: "{reader_h}"
        scopes:
          - {{api: campaigns, methods: [GET]}}
          - {{api: public, methods: [GET]}}
      - sid: {writer}
        name: writer
        auth_token_hash: "{writer_h}"
        scopes:
          - {{api: campaigns, methods: [GET, POST, DELETE]}}
          - {{api: reports, methods: [GET]}}
      - sid: {legacy}
        name: legacy
        kind: legacy
        auth_token_hash: "{legacy_h}"
      - sid: {disabled}
        name: disabled
        status: disabled
        auth_token_hash: "{disabled_h}"
        scopes: {campaigns_get}
      - sid: {expired}
        name: expired
        expires_at: 2020-01-01T00:00:00Z
        auth_token_hash: "{expired_h}"
        scopes: {campaigns_get}
      - sid: {grace}
        name: grace
        auth_token_hash: "{grace_h}"
        previous_auth_token_hash: "{grace_old_h}"
        previous_valid_until: 2999-01-01T00:00:00Z
        scopes: {campaigns_get}
      - sid: {lapsed}
        name: lapsed
        auth_token_hash: "{lapsed_h}"
        previous_auth_token_hash: "{lapsed_old_h}"
        previous_valid_until: 2020-01-01T00:00:00Z
        scopes: {campaigns_get}
      - sid: {pinned}
        name: pinned
        auth_token_hash: "{pinned_h}"
        allowed_ips: [192.0.2.0/24]
        scopes: {campaigns_get}
      - sid: {shadow}
        name: shadow
        auth_token_hash: "{shadow_h}"
        scopes: [{{api: campaigns, methods: [GET, POST]}}]
        shadow_scopes: {campaigns_get}
      - sid: {limited}
        name: limited
        auth_token_hash: "{limited_h}"
        rate_limit: {{requests_per_second: 0.0003, burst: 1}}
        scopes: {campaigns_get}
  - id: IRother
    tokens:
      - sid: {other}
        name: other
        auth_token_hash: "{other_h}"
        scopes: {campaigns_get}
deleted_sids: [{DELETED_SID}]
"#,
        reader = READER.sid,
        reader_h = hash(READER.secret),
        writer = WRITER.sid,
        writer_h = hash(WRITER.secret),
        legacy = LEGACY.sid,
        legacy_h = hash(LEGACY.secret),
        disabled = DISABLED.sid,
        disabled_h = hash(DISABLED.secret),
        expired = EXPIRED.sid,
        expired_h = hash(EXPIRED.secret),
        grace = GRACE.sid,
        grace_h = hash(GRACE.secret),
        grace_old_h = hash(GRACE_OLD),
        lapsed = LAPSED.sid,
        lapsed_h = hash(LAPSED.secret),
        lapsed_old_h = hash(LAPSED_OLD),
        pinned = PINNED.sid,
        pinned_h = hash(PINNED.secret),
        shadow = SHADOW.sid,
        shadow_h = hash(SHADOW.secret),
        limited = LIMITED.sid,
        limited_h = hash(LIMITED.secret),
        other = OTHER.sid,
        other_h = hash(OTHER.secret),
    )
}

/// The validated configuration of both files, `extra` appended to `scopegate.yaml`. The
/// paths are never read: both texts are given.
pub fn config(extra: &str) -> Config {
    load_from_sources(
        Path::new("/scopegate-test/scopegate.yaml"),
        &gateway_yaml(extra),
        Some(&tokens_yaml()),
    )
    .unwrap_or_else(|e| panic!("the test fixture is valid: {e}"))
}
