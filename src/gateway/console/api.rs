//! The JSON admin API, version 1 (SPEC §10): `/api/v1/tokens`, `/api/v1/catalog`,
//! `/api/v1/audit`. Every write goes through the token operations the CLI uses
//! ([`crate::gateway::manage::ops`]) and answers after the reload that puts it in force.
//! Errors are `{"error": <kind>, "message": <the CLI's message>}`.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::data::{self, blocking};
use super::{Console, Reply};
use crate::gateway::adminlog::Actor;
use crate::gateway::manage::ops;
use crate::gateway::manage::parse::{parse_grace, parse_rfc3339, parse_scope, ScopeArg};
use crate::gateway::manage::store::{fail, Fail, FailKind};
use crate::gateway::proxy::Shared;

/// A JSON answer.
pub fn json_reply(status: StatusCode, body: &Value) -> Reply {
    let mut text = serde_json::to_string_pretty(body).unwrap_or_default();
    text.push('\n');
    Reply::new(status, "application/json", text.into_bytes())
}

pub fn error_reply(status: StatusCode, error: &str, message: &str) -> Reply {
    json_reply(status, &json!({ "error": error, "message": message }))
}

fn fail_reply(f: &Fail) -> Reply {
    let (status, error) = match f.kind {
        FailKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        FailKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        FailKind::Conflict => (StatusCode::CONFLICT, "conflict"),
        FailKind::ReadOnly => (StatusCode::CONFLICT, "read_only"),
        FailKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    error_reply(status, error, &f.message)
}

/// `{api, methods}` as in `tokens.yaml`.
///
/// A scope's own `rate_limit` and `quota` are not accepted here (an unknown field: 422):
/// they are written in `tokens.yaml` by hand. So that replacing the list with `PATCH` does
/// not lose them, a scope naming an API the token already has keeps that API's limits from
/// the file ([`ops::keep_own_fields`]); an API left out of the list loses them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeIn {
    pub api: String,
    pub methods: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateIn {
    requests_per_second: f64,
    burst: Option<u32>,
}

/// `POST /api/v1/tokens`: the token's fields as named in `tokens.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateIn {
    account: String,
    account_name: Option<String>,
    name: String,
    description: Option<String>,
    primary_contact: Option<String>,
    #[serde(default)]
    developer_emails: Vec<String>,
    api_version: Option<String>,
    environment: Option<String>,
    #[serde(default)]
    scopes: Vec<ScopeIn>,
    kind: Option<String>,
    status: Option<String>,
    #[serde(default)]
    shadow_scopes: Vec<ScopeIn>,
    expires_at: Option<String>,
    rate_limit: Option<RateIn>,
    #[serde(default)]
    allowed_ips: Vec<String>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /api/v1/tokens/{sid}`: present fields change; `scopes` replaces the list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchIn {
    name: Option<String>,
    description: Option<String>,
    primary_contact: Option<String>,
    developer_emails: Option<Vec<String>>,
    api_version: Option<String>,
    environment: Option<String>,
    scopes: Option<Vec<ScopeIn>>,
    #[serde(default, deserialize_with = "nullable")]
    shadow_scopes: Option<Option<Vec<ScopeIn>>>,
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    rate_limit: Option<Option<RateIn>>,
    /// A list replaces `allowed_ips`; `null` accepts any client address again.
    #[serde(default, deserialize_with = "nullable")]
    allowed_ips: Option<Option<Vec<String>>>,
}

/// `allowed_ips` entries in canonical CIDR form, checked as validation checks them.
fn cidrs(list: &[String]) -> Result<Vec<String>, Fail> {
    list.iter()
        .map(|s| {
            crate::domain::netaddr::parse_cidr(s)
                .map(|net| net.to_string())
                .map_err(|e| fail(format!("allowed_ips entry `{s}`: {e}")))
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetIn {
    grace: Option<String>,
}

/// Checks scopes with the CLI's parser (`API:METHOD[,METHOD]` rules).
pub fn scope_args(scopes: &[ScopeIn]) -> Result<Vec<ScopeArg>, Fail> {
    scopes
        .iter()
        .map(|s| {
            if s.api.contains(':') {
                return Err(fail(format!("unknown API `{}` in a scope", s.api)));
            }
            parse_scope(&format!("{}:{}", s.api, s.methods.join(",")))
                .map_err(|e| fail(format!("scope for `{}`: {e}", s.api)))
        })
        .collect()
}

fn rate_of(r: &RateIn) -> Result<(f64, Option<u32>), Fail> {
    crate::gateway::manage::parse::parse_rate(&r.requests_per_second.to_string())
        .map(|rps| (rps, r.burst))
        .map_err(|e| fail(format!("rate_limit.requests_per_second: {e}")))
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Fail> {
    serde_json::from_slice(body).map_err(|e| {
        fail(format!(
            "the request body is not valid JSON for this endpoint: {e}"
        ))
    })
}

fn expiry(s: &str) -> Result<OffsetDateTime, Fail> {
    parse_rfc3339(s).map_err(|e| fail(format!("expires_at: {e}")))
}

/// Routes `/api/v1/...` for an authenticated admin `who`.
pub async fn route(
    console: &Console,
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
    who: String,
) -> Reply {
    let actor = Actor { who, via: "api" };
    let rest = path.strip_prefix("/api/v1/").unwrap_or("");
    let parts: Vec<&str> = rest.split('/').collect();
    let result = match (method, parts.as_slice()) {
        (&Method::GET, ["tokens"]) => list(shared, query).await,
        (&Method::POST, ["tokens"]) => create(console, shared, body, actor).await,
        (&Method::GET, ["tokens", sid]) => show(shared, sid).await,
        (&Method::PATCH, ["tokens", sid]) => patch(console, shared, sid, body, actor).await,
        (&Method::DELETE, ["tokens", sid]) => {
            let sid = (*sid).to_owned();
            let s = sid.clone();
            data::write(shared, &console.write_lock, move |store| {
                ops::delete(store, &s, &actor)
            })
            .await
            .map(|(name, account, warnings)| {
                json_reply(
                    StatusCode::OK,
                    &json!({"sid": sid, "name": name, "account": account, "deleted": true, "warnings": warnings}),
                )
            })
        }
        (&Method::POST, ["tokens", sid, "reset"]) => reset(console, shared, sid, body, actor).await,
        (&Method::POST, ["tokens", sid, action @ ("disable" | "enable")]) => {
            let enable = *action == "enable";
            let sid = (*sid).to_owned();
            let s = sid.clone();
            data::write(shared, &console.write_lock, move |store| {
                ops::set_status(store, &s, enable, &actor)
            })
            .await
            .map(|(changed, warnings)| {
                json_reply(
                    StatusCode::OK,
                    &json!({
                        "sid": sid,
                        "status": if enable { "active" } else { "disabled" },
                        "changed": changed,
                        "warnings": warnings,
                    }),
                )
            })
        }
        (&Method::GET, ["catalog"]) => Ok(catalog(shared)),
        (&Method::GET, ["audit"]) => {
            let s = shared.clone();
            blocking(move || data::audit_report(&s)).await.map(|r| {
                json_reply(
                    StatusCode::OK,
                    &serde_json::to_value(&r).unwrap_or_default(),
                )
            })
        }
        (
            _,
            ["tokens"]
            | ["tokens", _]
            | ["tokens", _, "reset" | "disable" | "enable"]
            | ["catalog"]
            | ["audit"],
        ) => Ok(error_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this method is not allowed on this endpoint",
        )),
        _ => Ok(error_reply(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint (see the README: Admin API and console)",
        )),
    };
    result.unwrap_or_else(|f| fail_reply(&f))
}

async fn list(shared: &Arc<Shared>, query: Option<&str>) -> Result<Reply, Fail> {
    let account = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "account")
            .map(|(_, v)| v.into_owned())
    });
    let s = shared.clone();
    let tokens = blocking(move || {
        let store = data::open_store(&s)?;
        data::tokens(&s, &store)
    })
    .await?;
    let now = OffsetDateTime::now_utc();
    let list: Vec<Value> = tokens
        .iter()
        .filter(|t| account.as_deref().is_none_or(|a| t.account == a))
        .map(|t| t.to_json(now))
        .collect();
    Ok(json_reply(StatusCode::OK, &json!({ "tokens": list })))
}

async fn show(shared: &Arc<Shared>, sid: &str) -> Result<Reply, Fail> {
    let s = shared.clone();
    let sid = sid.to_owned();
    blocking(move || {
        let store = data::open_store(&s)?;
        let doc = store.read_doc()?;
        let Some(token) = data::tokens(&s, &store)?.into_iter().find(|t| t.sid == sid) else {
            return Err(ops::not_found(&store, &doc, &sid));
        };
        let report = data::audit_report(&s).ok();
        let insight = data::insight(&s, &sid, report.as_ref());
        let mut out = token.to_json(OffsetDateTime::now_utc());
        if let (Value::Object(map), Ok(Value::Object(extra))) =
            (&mut out, serde_json::to_value(&insight))
        {
            map.extend(extra);
        }
        Ok(json_reply(StatusCode::OK, &out))
    })
    .await
}

async fn create(
    console: &Console,
    shared: &Arc<Shared>,
    body: &[u8],
    actor: Actor,
) -> Result<Reply, Fail> {
    let input: CreateIn = parse_body(body)?;
    let legacy = match input.kind.as_deref() {
        None | Some("scoped") => false,
        Some("legacy") => true,
        Some(other) => return Err(fail(format!("kind `{other}`: use scoped or legacy"))),
    };
    if legacy && !input.scopes.is_empty() {
        return Err(fail(
            "a legacy token has full access: give no scopes, or kind scoped",
        ));
    }
    let disabled = match input.status.as_deref() {
        None | Some("active") => false,
        Some("disabled") => true,
        Some(other) => return Err(fail(format!("status `{other}`: use active or disabled"))),
    };
    let rate = input.rate_limit.as_ref().map(rate_of).transpose()?;
    let new = ops::NewToken {
        disabled,
        shadow_scopes: scope_args(&input.shadow_scopes)?,
        account: input.account,
        account_name: input.account_name,
        name: input.name,
        description: input.description,
        contact: input.primary_contact,
        developers: input.developer_emails,
        api_version: input.api_version,
        scopes: scope_args(&input.scopes)?,
        legacy,
        environment: input.environment,
        rate: rate.map(|r| r.0),
        burst: rate.and_then(|r| r.1),
        expires: input.expires_at.as_deref().map(expiry).transpose()?,
        allowed_ips: cidrs(&input.allowed_ips)?,
    };
    let (account, name) = (new.account.clone(), new.name.clone());
    let created = data::write(shared, &console.write_lock, move |store| {
        ops::create(store, &new, &actor)
    })
    .await?;
    let secret: &str = &created.secret;
    let mut reply = json_reply(
        StatusCode::CREATED,
        &json!({
            "sid": created.sid,
            "secret": secret,
            "account": account,
            "name": name,
            "created_at": created.stamp,
            "warnings": created.warnings,
        }),
    );
    reply.secret = true;
    Ok(reply)
}

async fn patch(
    console: &Console,
    shared: &Arc<Shared>,
    sid: &str,
    body: &[u8],
    actor: Actor,
) -> Result<Reply, Fail> {
    let input: PatchIn = parse_body(body)?;
    let mut change = ops::Change {
        name: input.name,
        description: input.description,
        contact: input.primary_contact,
        set_developers: input.developer_emails,
        api_version: input.api_version,
        environment: input.environment,
        ..ops::Change::default()
    };
    if let Some(scopes) = &input.scopes {
        change.clear_scopes = true;
        change.scopes = scope_args(scopes)?;
    }
    match &input.shadow_scopes {
        Some(Some(s)) => {
            change.clear_shadow_scopes = true;
            change.shadow_scopes = scope_args(s)?;
        }
        Some(None) => change.clear_shadow_scopes = true,
        None => {}
    }
    match &input.allowed_ips {
        Some(Some(list)) if list.is_empty() => {
            return Err(fail(
                "allowed_ips cannot be empty (it would refuse every request): give addresses, \
                 or null to accept any address",
            ))
        }
        Some(Some(list)) => change.set_allowed_ips = Some(cidrs(list)?),
        Some(None) => change.any_ip = true,
        None => {}
    }
    match &input.expires_at {
        Some(Some(t)) => change.expires = Some(expiry(t)?),
        Some(None) => change.no_expiry = true,
        None => {}
    }
    match &input.rate_limit {
        Some(Some(r)) => {
            let (rps, burst) = rate_of(r)?;
            change.rate = Some(rps);
            change.burst = burst;
        }
        Some(None) => change.clear_rate = true,
        None => {}
    }
    let sid = sid.to_owned();
    let s = sid.clone();
    let updated = data::write(shared, &console.write_lock, move |store| {
        ops::update(store, &s, &change, &actor)
    })
    .await?;
    Ok(json_reply(
        StatusCode::OK,
        &json!({"sid": sid, "changed": updated.changes, "warnings": updated.warnings}),
    ))
}

async fn reset(
    console: &Console,
    shared: &Arc<Shared>,
    sid: &str,
    body: &[u8],
    actor: Actor,
) -> Result<Reply, Fail> {
    let input: ResetIn = if body.iter().all(u8::is_ascii_whitespace) {
        ResetIn::default()
    } else {
        parse_body(body)?
    };
    let grace = input
        .grace
        .as_deref()
        .map(|g| parse_grace(g).map_err(|e| fail(format!("grace: {e}"))))
        .transpose()?;
    let sid = sid.to_owned();
    let s = sid.clone();
    let r = data::write(shared, &console.write_lock, move |store| {
        ops::reset(store, &s, grace, &actor)
    })
    .await?;
    let secret: &str = &r.secret;
    let mut reply = json_reply(
        StatusCode::OK,
        &json!({
            "sid": sid,
            "secret": secret,
            "account": r.account,
            "name": r.name,
            "rotated_at": r.stamp,
            "previous_secret_valid_until": r.grace_until,
            "warnings": r.warnings,
        }),
    );
    reply.secret = true;
    Ok(reply)
}

fn catalog(shared: &Shared) -> Reply {
    let policy = shared.policy.load();
    let s = &policy.settings;
    let apis: Vec<Value> = s
        .apis
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "description": a.description,
                "paths": a.patterns.iter().map(|(t, _)| t).collect::<Vec<_>>(),
                "upstream": s.upstreams.get(a.upstream).map(|u| u.name.clone()),
            })
        })
        .collect();
    json_reply(
        StatusCode::OK,
        &json!({"api_versions": s.api_versions, "apis": apis}),
    )
}
