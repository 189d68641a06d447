//! The token operations shared by the CLI and the admin API/console: create, update, reset,
//! disable/enable and delete, each one locked, validated, atomic transaction of the tokens
//! file ([`Store::transact`]) followed by an admin-log entry ([`crate::gateway::adminlog`]).
//!
//! Nothing here prints: warnings are returned for the caller to show (stderr for the CLI,
//! the JSON answer or a console banner for the admin listener), and failures carry a
//! [`FailKind`] the API maps to an HTTP status. The message is the same in every front end.

use std::time::Duration;

use serde_yaml::{Mapping, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::parse::ScopeArg;
use super::store::{fail, Fail, FailKind, Store};
use super::view::{self, scopes_field, str_field, str_list, ScopeView};
use crate::config::yamlsrc::{
    flow_map, flow_seq, flow_seq_rendered, flow_value, quote_scalar, TokensDoc,
};
use crate::config::Settings;
use crate::domain::model::{SecretHash, KNOWN_METHODS};
use crate::gateway::adminlog::{self, Actor};
use crate::gateway::notifier::EventKind;

/// A token to create, with the fields as named in `tokens.yaml`.
#[derive(Debug, Default, Clone)]
pub struct NewToken {
    pub account: String,
    /// Display name for the account, when this creates it.
    pub account_name: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub contact: Option<String>,
    pub developers: Vec<String>,
    pub api_version: Option<String>,
    pub scopes: Vec<ScopeArg>,
    pub legacy: bool,
    pub environment: Option<String>,
    pub rate: Option<f64>,
    pub burst: Option<u32>,
    pub expires: Option<OffsetDateTime>,
    /// Create it disabled (not counted against the active-token limit).
    pub disabled: bool,
    /// A proposed narrower set, evaluated but not enforced.
    pub shadow_scopes: Vec<ScopeArg>,
    /// `allowed_ips` entries (canonical CIDRs); empty: any client address.
    pub allowed_ips: Vec<String>,
}

/// A freshly created token: the secret exists only here (zeroized on drop).
pub struct Created {
    pub sid: String,
    pub secret: Zeroizing<String>,
    pub stamp: String,
    pub scopes: Vec<ScopeView>,
    pub warnings: Vec<String>,
}

/// Changes to a token's fields and scopes; `None`/empty/false leaves a field alone.
#[derive(Debug, Default, Clone)]
pub struct Change {
    pub name: Option<String>,
    pub description: Option<String>,
    pub contact: Option<String>,
    /// Replaces the developer emails (applied before add/remove).
    pub set_developers: Option<Vec<String>>,
    pub add_developer: Vec<String>,
    pub remove_developer: Vec<String>,
    pub api_version: Option<String>,
    pub scopes: Vec<ScopeArg>,
    pub remove_scope: Vec<String>,
    /// Remove all grants (applied before `scopes`, so both together replace the set).
    pub clear_scopes: bool,
    pub shadow_scopes: Vec<ScopeArg>,
    pub clear_shadow_scopes: bool,
    pub promote_shadow: bool,
    pub rate: Option<f64>,
    pub burst: Option<u32>,
    pub clear_rate: bool,
    pub environment: Option<String>,
    pub expires: Option<OffsetDateTime>,
    pub no_expiry: bool,
    /// Replaces `allowed_ips` (canonical CIDRs, not empty); applied before add/remove.
    pub set_allowed_ips: Option<Vec<String>>,
    /// Entries to add to / remove from `allowed_ips` (canonical CIDRs).
    pub allow_ips: Vec<String>,
    pub remove_ips: Vec<String>,
    /// Drop `allowed_ips`: any client address may use the token again.
    pub any_ip: bool,
}

pub struct Updated {
    /// What changed, for the operator ("name", "scopes", ...).
    pub changes: Vec<&'static str>,
    pub warnings: Vec<String>,
}

/// A new secret for an existing token.
pub struct Reset {
    pub secret: Zeroizing<String>,
    pub stamp: String,
    pub account: String,
    pub name: String,
    pub legacy: bool,
    pub scopes: Vec<ScopeView>,
    pub grace_until: Option<String>,
    pub warnings: Vec<String>,
}

pub fn create(store: &Store, a: &NewToken, actor: &Actor) -> Result<Created, Fail> {
    let now = now_utc();
    let mut warnings = Vec::new();
    let expires = store
        .settings
        .token_policy
        .check_requested(now, a.expires)
        .map_err(|e| fail(format!("{e}; nothing was written")))?;
    if let Some(t) = a.expires {
        if t <= now {
            warnings.push("the expiry is in the past: the token is refused from the start".into());
        }
    }
    let sid = crate::gateway::manage::secrets::new_sid()
        .map_err(|e| fail_kind(FailKind::Internal, format!("no randomness: {e}")))?;
    let secret = crate::gateway::manage::secrets::new_secret()
        .map_err(|e| fail_kind(FailKind::Internal, format!("no randomness: {e}")))?;
    let hash = SecretHash::of_secret(secret.as_bytes()).to_stored();
    let stamp = rfc3339(now);

    let mut fields: Vec<(&str, String)> =
        vec![("sid", quote_scalar(&sid)), ("name", quote_scalar(&a.name))];
    if let Some(d) = &a.description {
        fields.push(("description", quote_scalar(d)));
    }
    if let Some(c) = &a.contact {
        fields.push(("primary_contact", quote_scalar(c)));
    }
    if !a.developers.is_empty() {
        fields.push(("developer_emails", flow_seq(&dedup(&a.developers))));
    }
    if let Some(v) = &a.api_version {
        fields.push(("api_version", quote_scalar(v)));
    }
    fields.push((
        "status",
        if a.disabled { "disabled" } else { "active" }.into(),
    ));
    fields.push(("kind", if a.legacy { "legacy" } else { "scoped" }.into()));
    if let Some(env) = &a.environment {
        fields.push(("environment", quote_scalar(env)));
    }
    fields.push(("auth_token_hash", quote_scalar(&hash)));
    fields.push(("created_at", stamp.clone()));
    fields.push(("rotated_at", stamp.clone()));
    if let Some(t) = expires {
        fields.push(("expires_at", rfc3339(t)));
    }
    let scopes = merge_scopes(Vec::new(), &a.scopes);
    if !a.legacy {
        fields.push(("scopes", render_scope_list(&scopes)));
    }
    if !a.shadow_scopes.is_empty() {
        let shadow = merge_scopes(Vec::new(), &a.shadow_scopes);
        fields.push(("shadow_scopes", render_scope_list(&shadow)));
    }
    if let Some(rate) = a.rate {
        fields.push(("rate_limit", render_rate(rate, a.burst)));
    }
    if !a.allowed_ips.is_empty() {
        fields.push(("allowed_ips", flow_seq(&dedup(&a.allowed_ips))));
    }

    store.transact(|doc| {
        let root = doc.value().clone();
        if !a.legacy && !a.disabled {
            check_limit(&root, &store.settings, &a.account, None)?;
        }
        warn_duplicate_name(&mut warnings, &root, &a.account, &a.name, None);
        if let Some(want) = &a.account_name {
            if let Some(acc) = find_account(&root, &a.account) {
                let have = str_field(acc, "name");
                if have.as_deref() != Some(want.as_str()) {
                    warnings.push(format!(
                        "account {} already exists; its name is left as {}",
                        a.account,
                        have.as_deref().unwrap_or("(unset)")
                    ));
                }
            }
        }
        doc.append_token(&a.account, a.account_name.as_deref(), &fields)
            .map_err(|e| store.edit_fail(&e))
    })?;

    if !a.legacy && scopes.is_empty() {
        warnings.push(format!(
            "the token has no scopes, so every request is refused; grant some with \
             `scopegate token update {sid} --scope API:METHODS`"
        ));
    }
    let mut what = vec![format!("account {}", a.account), format!("name {}", a.name)];
    what.push(if a.legacy {
        "kind legacy".to_owned()
    } else {
        format!("scopes {}", view::render_scopes(&scopes))
    });
    adminlog::record(&store.settings, actor, "create", &sid, what, &mut warnings);
    Ok(Created {
        sid,
        secret,
        stamp,
        scopes,
        warnings,
    })
}

pub fn update(store: &Store, sid: &str, a: &Change, actor: &Actor) -> Result<Updated, Fail> {
    let mut warnings: Vec<String> = Vec::new();
    let changes = store.transact(|doc| {
        let (ai, ti) = locate(store, doc, sid)?;
        let root = doc.value().clone();
        let account = &root["accounts"][ai];
        let token = &root["accounts"][ai]["tokens"][ti];
        let account_id = str_field(account, "id").unwrap_or_default();
        let mut changes: Vec<&'static str> = Vec::new();
        let set = |doc: &mut TokensDoc, key: &str, value: String| {
            doc.set_token_field(sid, key, &value)
                .map_err(|e| store.edit_fail(&e))
        };
        let remove = |doc: &mut TokensDoc, key: &str| {
            doc.remove_token_field(sid, key)
                .map_err(|e| store.edit_fail(&e))
        };

        if let Some(name) = &a.name {
            warn_duplicate_name(&mut warnings, &root, &account_id, name, Some(sid));
            set(doc, "name", quote_scalar(name))?;
            changes.push("name");
        }
        if let Some(d) = &a.description {
            set(doc, "description", quote_scalar(d))?;
            changes.push("description");
        }
        if let Some(c) = &a.contact {
            set(doc, "primary_contact", quote_scalar(c))?;
            changes.push("primary contact");
        }
        if a.set_developers.is_some()
            || !a.add_developer.is_empty()
            || !a.remove_developer.is_empty()
        {
            let mut devs = match &a.set_developers {
                Some(list) => dedup(list),
                None => str_list(token, "developer_emails"),
            };
            for r in &a.remove_developer {
                let before = devs.len();
                devs.retain(|d| !d.eq_ignore_ascii_case(r));
                if devs.len() == before {
                    warnings.push(format!("{r} is not a developer email of {sid}"));
                }
            }
            for add in &a.add_developer {
                if !devs.iter().any(|d| d.eq_ignore_ascii_case(add)) {
                    devs.push(add.clone());
                }
            }
            if devs.is_empty() {
                remove(doc, "developer_emails")?;
            } else {
                set(doc, "developer_emails", flow_seq(&devs))?;
            }
            changes.push("developer emails");
        }
        if let Some(v) = &a.api_version {
            set(doc, "api_version", quote_scalar(v))?;
            changes.push("api version");
        }
        let is_legacy = str_field(token, "kind").as_deref() == Some("legacy");
        if a.clear_scopes || !a.remove_scope.is_empty() || !a.scopes.is_empty() {
            if is_legacy {
                warnings.push(format!(
                    "{sid} is a legacy token with full access; its scopes take effect only once \
                     it is migrated to `kind: scoped`"
                ));
            }
            let before = scopes_field(token, "scopes").unwrap_or_default();
            let mut scopes = if a.clear_scopes {
                Vec::new()
            } else {
                before.clone()
            };
            for api in &a.remove_scope {
                let before = scopes.len();
                scopes.retain(|s| s.api != *api);
                if scopes.len() == before {
                    warnings.push(format!("{sid} has no scope on API `{api}`"));
                }
            }
            let scopes = keep_own_fields(merge_scopes(scopes, &a.scopes), &before);
            if scopes.is_empty() && !is_legacy {
                warnings.push(format!(
                    "{sid} now has no scopes, so every request it makes is refused"
                ));
            }
            set(doc, "scopes", render_scope_list(&scopes))?;
            changes.push("scopes");
        }
        if a.clear_shadow_scopes || !a.shadow_scopes.is_empty() {
            let before = scopes_field(token, "shadow_scopes").unwrap_or_default();
            let current = if a.clear_shadow_scopes {
                Vec::new()
            } else {
                before.clone()
            };
            let shadow = keep_own_fields(merge_scopes(current, &a.shadow_scopes), &before);
            if shadow.is_empty() {
                remove(doc, "shadow_scopes")?;
            } else {
                set(doc, "shadow_scopes", render_scope_list(&shadow))?;
            }
            changes.push("shadow scopes");
        }
        if a.promote_shadow {
            let Some(shadow) = scopes_field(token, "shadow_scopes") else {
                return Err(fail_kind(
                    FailKind::Conflict,
                    format!("{sid} has no shadow scopes to promote; nothing was written"),
                ));
            };
            // An API granted before and after keeps its limits; shadow entries carry none.
            let granted = scopes_field(token, "scopes").unwrap_or_default();
            set(
                doc,
                "scopes",
                render_scope_list(&keep_own_fields(shadow, &granted)),
            )?;
            remove(doc, "shadow_scopes")?;
            changes.push("scopes (promoted from shadow scopes)");
        }
        if let Some(rate) = a.rate {
            set(doc, "rate_limit", render_rate(rate, a.burst))?;
            changes.push("rate limit");
        }
        if a.clear_rate {
            remove(doc, "rate_limit")?;
            changes.push("rate limit (back to the default)");
        }
        if let Some(env) = &a.environment {
            set(doc, "environment", quote_scalar(env))?;
            changes.push("environment");
        }
        if let Some(t) = a.expires {
            if let Some(max) = store.settings.token_policy.max_lifetime {
                if t > now_utc() + max {
                    return Err(fail(format!(
                        "the expiry is beyond token_policy.max_lifetime ({} days from now); \
                         nothing was written",
                        max.as_secs() / 86_400
                    )));
                }
            }
            if t <= now_utc() {
                warnings.push("the expiry is in the past: the token is refused from now on".into());
            }
            set(doc, "expires_at", rfc3339(t))?;
            changes.push("expiry");
        }
        if a.no_expiry {
            if store.settings.token_policy.require_expiry {
                return Err(fail(
                    "token_policy.require_expiry is on: a token cannot be made to never expire; \
                     nothing was written",
                ));
            }
            remove(doc, "expires_at")?;
            changes.push("expiry (removed)");
        }
        if a.any_ip {
            remove(doc, "allowed_ips")?;
            changes.push("allowed ips (any address)");
        }
        if let Some(list) = &a.set_allowed_ips {
            set(doc, "allowed_ips", flow_seq(&dedup(list)))?;
            changes.push("allowed ips");
        }
        if !a.allow_ips.is_empty() || !a.remove_ips.is_empty() {
            let current = match &a.set_allowed_ips {
                Some(list) => dedup(list),
                None => str_list(token, "allowed_ips"),
            };
            let ips = edit_allowed_ips(sid, current, &a.allow_ips, &a.remove_ips, &mut warnings)?;
            set(doc, "allowed_ips", flow_seq(&ips))?;
            changes.push("allowed ips");
        }
        if changes.is_empty() {
            return Err(fail(
                "nothing to change: give at least one option (see `scopegate token update --help`)",
            ));
        }
        Ok(changes)
    })?;
    let mut what: Vec<String> = changes.iter().map(|c| (*c).to_owned()).collect();
    if changes.contains(&"scopes") {
        // The new scope list is not secret and is what an auditor wants to see.
        if let Ok(doc) = store.read_doc() {
            if let Some(t) = view::all_tokens(doc.value())
                .into_iter()
                .find(|t| t.sid == sid)
            {
                what.push(format!("scopes now {}", view::render_scopes(&t.scopes)));
            }
        }
    }
    adminlog::record(&store.settings, actor, "update", sid, what, &mut warnings);
    Ok(Updated { changes, warnings })
}

pub fn reset(
    store: &Store,
    sid: &str,
    grace: Option<Duration>,
    actor: &Actor,
) -> Result<Reset, Fail> {
    let secret = crate::gateway::manage::secrets::new_secret()
        .map_err(|e| fail_kind(FailKind::Internal, format!("no randomness: {e}")))?;
    let hash = SecretHash::of_secret(secret.as_bytes()).to_stored();
    let now = now_utc();
    let stamp = rfc3339(now);
    let deadline = grace.map(|g| rfc3339(now + g));
    let mut warnings = Vec::new();

    let (account, name, legacy, scopes, grace_until, contact) = store.transact(|doc| {
        let (ai, ti) = locate(store, doc, sid)?;
        let contact = token_view(doc, sid);
        let token = doc.value()["accounts"][ai]["tokens"][ti].clone();
        let account = str_field(&doc.value()["accounts"][ai], "id").unwrap_or_default();
        let old = str_field(&token, "auth_token_hash");
        let edit = |e| store.edit_fail(&e);
        doc.set_token_field(sid, "auth_token_hash", &quote_scalar(&hash))
            .map_err(edit)?;
        doc.set_token_field(sid, "rotated_at", &stamp)
            .map_err(edit)?;
        // token_policy: a new secret gets a full lifetime.
        if let Some(until) = store.settings.token_policy.expiry_from(now) {
            doc.set_token_field(sid, "expires_at", &rfc3339(until))
                .map_err(edit)?;
        }
        let old = old.filter(|h| SecretHash::parse(h).is_ok());
        let grace_until = match (&deadline, old) {
            (Some(until), Some(old)) => {
                doc.set_token_field(sid, "previous_auth_token_hash", &quote_scalar(&old))
                    .map_err(edit)?;
                doc.set_token_field(sid, "previous_valid_until", until)
                    .map_err(edit)?;
                Some(until.clone())
            }
            (grace, _) => {
                if grace.is_some() {
                    warnings.push(format!(
                        "{sid} had no usable previous secret; the grace period has nothing to keep"
                    ));
                }
                doc.remove_token_field(sid, "previous_auth_token_hash")
                    .map_err(edit)?;
                doc.remove_token_field(sid, "previous_valid_until")
                    .map_err(edit)?;
                None
            }
        };
        Ok((
            account,
            str_field(&token, "name").unwrap_or_default(),
            str_field(&token, "kind").as_deref() == Some("legacy"),
            scopes_field(&token, "scopes").unwrap_or_default(),
            grace_until,
            contact,
        ))
    })?;
    queue_notification(store, EventKind::Reset, contact.as_ref(), &mut warnings);
    let what = match &grace_until {
        Some(until) => vec![format!(
            "new secret; the previous one is valid until {until}"
        )],
        None => vec!["new secret; the previous one is revoked".to_owned()],
    };
    adminlog::record(&store.settings, actor, "reset", sid, what, &mut warnings);
    Ok(Reset {
        secret,
        stamp,
        account,
        name,
        legacy,
        scopes,
        grace_until,
        warnings,
    })
}

/// Disables or enables a token; `Ok(false)` when it already had that status.
pub fn set_status(
    store: &Store,
    sid: &str,
    enable: bool,
    actor: &Actor,
) -> Result<(bool, Vec<String>), Fail> {
    let want = if enable { "active" } else { "disabled" };
    let changed = store.transact(|doc| {
        let (ai, ti) = locate(store, doc, sid)?;
        let root = doc.value().clone();
        let token = &root["accounts"][ai]["tokens"][ti];
        let status = str_field(token, "status").unwrap_or_else(|| "active".into());
        if status == want {
            return Ok(None);
        }
        let view = token_view(doc, sid);
        if enable && str_field(token, "kind").as_deref() != Some("legacy") {
            let account = str_field(&root["accounts"][ai], "id").unwrap_or_default();
            check_limit(&root, &store.settings, &account, Some(sid))?;
        }
        doc.set_token_field(sid, "status", want)
            .map_err(|e| store.edit_fail(&e))?;
        Ok(Some(view))
    })?;
    let mut warnings = Vec::new();
    if !enable {
        if let Some(view) = &changed {
            queue_notification(store, EventKind::Disabled, view.as_ref(), &mut warnings);
        }
    }
    let changed = changed.is_some();
    if changed {
        let action = if enable { "enable" } else { "disable" };
        let what = vec![format!("status {want}")];
        adminlog::record(&store.settings, actor, action, sid, what, &mut warnings);
    }
    Ok((changed, warnings))
}

/// Deletes a token for good (tombstoned); returns its name and account.
pub fn delete(
    store: &Store,
    sid: &str,
    actor: &Actor,
) -> Result<(String, String, Vec<String>), Fail> {
    let (name, account, contact) = store.transact(|doc| {
        let (ai, ti) = locate(store, doc, sid)?;
        let contact = token_view(doc, sid);
        let root = doc.value();
        let name = str_field(&root["accounts"][ai]["tokens"][ti], "name").unwrap_or_default();
        let account = str_field(&root["accounts"][ai], "id").unwrap_or_default();
        // Tombstone first: `deleted_sids` then goes after the token, so comment lines that
        // sat above the token stay where it was instead of trailing the tombstone list.
        doc.add_tombstone(sid).map_err(|e| store.edit_fail(&e))?;
        doc.remove_token(sid).map_err(|e| store.edit_fail(&e))?;
        Ok((name, account, contact))
    })?;
    let mut warnings = Vec::new();
    queue_notification(store, EventKind::Deleted, contact.as_ref(), &mut warnings);
    let what = vec![format!("account {account}"), format!("name {name}")];
    adminlog::record(&store.settings, actor, "delete", sid, what, &mut warnings);
    Ok((name, account, warnings))
}

// ---- helpers --------------------------------------------------------------------------------

/// A token's `allowed_ips` after removals and additions (entries compared as ranges, so
/// `10.0.0.1` and `10.0.0.1/32` are one). Removing the last entry is refused: an empty list
/// would refuse every request.
fn edit_allowed_ips(
    sid: &str,
    mut ips: Vec<String>,
    add: &[String],
    remove: &[String],
    warnings: &mut Vec<String>,
) -> Result<Vec<String>, Fail> {
    let canonical = |s: &str| crate::domain::netaddr::parse_cidr(s).map(|net| net.to_string());
    let same = |written: &str, wanted: &str| canonical(written).is_ok_and(|w| w == wanted);
    for r in remove {
        let before = ips.len();
        ips.retain(|x| !same(x, r));
        if ips.len() == before {
            warnings.push(format!("{r} is not in the allowed_ips of {sid}"));
        }
    }
    for new in add {
        if !ips.iter().any(|x| same(x, new)) {
            ips.push(new.clone());
        }
    }
    if ips.is_empty() {
        return Err(fail(format!(
            "that would leave {sid} with no allowed address; use --any-ip to accept any \
             address, or `scopegate token disable {sid}`; nothing was written"
        )));
    }
    Ok(ips)
}

/// The token as the file has it before a change (for its contacts).
fn token_view(doc: &TokensDoc, sid: &str) -> Option<view::TokenView> {
    view::all_tokens(doc.value())
        .into_iter()
        .find(|t| t.sid == sid)
}

/// Queues the lifecycle notification for a change just written, when `notifications:` is
/// configured (a small durable write; delivery is the caller's [`crate::gateway::notifier::deliver_outbox`]
/// or the gateway's periodic pass). The change itself is done: a queueing problem is a warning.
pub(crate) fn queue_notification(
    store: &Store,
    kind: EventKind,
    t: Option<&view::TokenView>,
    warnings: &mut Vec<String>,
) {
    let Some(t) = t else { return };
    let token = crate::gateway::notifier::TokenRef {
        sid: &t.sid,
        account: &t.account,
        name: &t.name,
        primary_contact: &t.primary_contact,
        developer_emails: &t.developer_emails,
        expires_at: t.expires_at.clone(),
    };
    if let Err(e) = crate::gateway::notifier::queue(&store.settings, kind, &token) {
        warnings.push(format!("the contacts will not be notified: {e}"));
    }
}

pub fn fail_kind(kind: FailKind, msg: impl Into<String>) -> Fail {
    Fail {
        message: msg.into(),
        kind,
    }
}

pub fn now_utc() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// RFC 3339 in UTC with whole seconds: `2026-08-01T00:00:00Z`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

fn dedup(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(i) {
            out.push(i.clone());
        }
    }
    out
}

/// Adds grants to a scope list: a new API is appended, an existing one gains the methods
/// (kept in the standard order) and keeps its other fields (its own limits).
pub fn merge_scopes(mut scopes: Vec<ScopeView>, add: &[ScopeArg]) -> Vec<ScopeView> {
    for s in add {
        match scopes.iter_mut().find(|x| x.api == s.api) {
            Some(existing) => {
                for m in &s.methods {
                    if !existing.methods.contains(m) {
                        existing.methods.push(m.clone());
                    }
                }
                existing.methods.sort_by_key(|m| {
                    KNOWN_METHODS
                        .iter()
                        .position(|k| k == m)
                        .unwrap_or(KNOWN_METHODS.len())
                });
            }
            None => scopes.push(ScopeView {
                api: s.api.clone(),
                methods: s.methods.clone(),
                rest: Default::default(),
            }),
        }
    }
    scopes
}

/// Gives each scope of a rewritten list the fields besides `api` and `methods` (its own
/// `rate_limit`, `quota`, and any field added later) that the file wrote on the entries for
/// the same API in `before`, where the scope does not set them itself.
///
/// A scope list is rewritten whole from [`ScopeView`]s: by `--scope`, `--remove-scope`,
/// `--clear-scopes`, `--promote-shadow`, the API's `PATCH` with `scopes` (which replaces the
/// list) and the console's editor. The rule is the same for all of them: an API that is
/// still in the list keeps its limits, however the list was built (so replacing the list,
/// or removing and re-adding an API in one command, keeps them too); an API that left the
/// list loses them with it. Neither the CLI nor the API sets a scope's limits (the API
/// refuses them in a scope, see [`crate::gateway::console::api`]): they are written in
/// `tokens.yaml` by hand, and only a hand edit changes or drops them.
pub fn keep_own_fields(mut scopes: Vec<ScopeView>, before: &[ScopeView]) -> Vec<ScopeView> {
    for scope in &mut scopes {
        for old in before.iter().filter(|b| b.api == scope.api) {
            for (k, v) in &old.rest {
                if !scope.rest.contains_key(k) {
                    scope.rest.insert(k.clone(), v.clone());
                }
            }
        }
    }
    scopes
}

/// A scope list as one line of flow YAML: `api` and `methods` first, then the entry's
/// other fields as the file had them.
pub fn render_scope_list(scopes: &[ScopeView]) -> String {
    let items: Vec<String> = scopes.iter().map(render_scope).collect();
    flow_seq_rendered(&items)
}

fn render_scope(s: &ScopeView) -> String {
    let mut entry = Mapping::new();
    entry.insert("api".into(), s.api.clone().into());
    entry.insert("methods".into(), s.methods.iter().cloned().collect());
    entry.extend(s.rest.clone());
    flow_value(&Value::Mapping(entry))
}

pub fn render_rate(rps: f64, burst: Option<u32>) -> String {
    let mut entries = vec![("requests_per_second", format!("{rps}"))];
    if let Some(b) = burst {
        entries.push(("burst", b.to_string()));
    }
    flow_map(&entries)
}

fn find_account<'v>(root: &'v Value, id: &str) -> Option<&'v Value> {
    root.get("accounts")?
        .as_sequence()?
        .iter()
        .find(|a| str_field(a, "id").as_deref() == Some(id))
}

/// Refuses a create/enable that would exceed the account's active scoped tokens (the
/// validation rule, checked first for a clearer message).
fn check_limit(
    root: &Value,
    settings: &Settings,
    account: &str,
    except_sid: Option<&str>,
) -> Result<(), Fail> {
    let max = settings.max_active_tokens_per_account;
    let active = view::all_tokens(root)
        .iter()
        .filter(|t| t.account == account)
        .filter(|t| except_sid != Some(t.sid.as_str()))
        .filter(|t| t.status != "disabled" && !t.is_legacy())
        .count();
    if active >= max {
        return Err(fail_kind(
            FailKind::Conflict,
            format!(
                "account {account} already has {active} active scoped tokens (the limit is \
                 {max}); disable or delete one it no longer needs first; nothing was written"
            ),
        ));
    }
    Ok(())
}

fn warn_duplicate_name(
    warnings: &mut Vec<String>,
    root: &Value,
    account: &str,
    name: &str,
    except_sid: Option<&str>,
) {
    if let Some(other) = view::all_tokens(root)
        .into_iter()
        .find(|t| t.account == account && t.name == name && except_sid != Some(t.sid.as_str()))
    {
        warnings.push(format!(
            "account {account} already has a token named `{name}` ({}); names are easier to \
             audit when they are unique",
            other.sid
        ));
    }
}

/// The token's position, or a clear error for an unknown or deleted SID.
fn locate(store: &Store, doc: &TokensDoc, sid: &str) -> Result<(usize, usize), Fail> {
    doc.find_token(sid)
        .ok_or_else(|| not_found(store, doc, sid))
}

pub fn not_found(store: &Store, doc: &TokensDoc, sid: &str) -> Fail {
    let deleted = doc
        .value()
        .get("deleted_sids")
        .and_then(Value::as_sequence)
        .is_some_and(|l| l.iter().any(|s| s.as_str() == Some(sid)));
    let msg = if deleted {
        format!(
            "token {sid} was deleted (it is listed in deleted_sids); create a new token instead"
        )
    } else {
        format!(
            "no token with SID {sid} in {}; see `scopegate token list`",
            store.display()
        )
    };
    fail_kind(FailKind::NotFound, msg)
}

#[cfg(test)]
mod tests;
