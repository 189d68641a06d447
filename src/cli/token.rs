//! `scopegate token ...`: the token lifecycle against the tokens file (SPEC §1, §7).
//!
//! `create`, `update`, `reset`, `disable`, `enable` and `delete` are each one locked
//! read-modify-write of the tokens file ([`store::Store::transact`]): the edit is a
//! comment-preserving text splice ([`crate::yamlsrc::TokensDoc`], located with yaml-rust2
//! spans and verified by re-parsing), the result is validated with every rule of
//! `config::load_from_sources` before anything is written, and the write is atomic. The
//! running gateway picks the new file up through its reload.
//!
//! Secrets: 32 bytes from the OS CSPRNG ([`super::secrets`]), held in `Zeroizing`, hashed,
//! and printed once on stdout after the file is safely written. Only the hash is stored; the
//! secret never reaches the file, stderr, logs, `list` or `show`.

mod scan;
mod store;
mod view;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_yaml::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::config::Settings;
use crate::model::{SecretHash, KNOWN_METHODS};
use crate::yamlsrc::{flow_map, flow_seq, flow_seq_rendered, quote_scalar, TokensDoc};
use store::{fail, Fail, Store};
use view::{scopes_field, str_field, str_list, ScopeView};

/// The longest `reset --grace`: an overlap for a rollout, not a second permanent secret.
const MAX_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token; prints its SID and secret once.
    Create(CreateArgs),
    /// List tokens as a table (or JSON).
    List(ListArgs),
    /// Show one token's card (never its secret or hash).
    Show(ShowArgs),
    /// Change a token's fields and scopes.
    Update(UpdateArgs),
    /// Issue a new secret (printed once); the old one stops working, or after --grace.
    Reset(ResetArgs),
    /// Disable a token: it is refused like an invalid one until enabled again.
    Disable(SidArgs),
    /// Enable a disabled token (checks the account's active-token limit).
    Enable(SidArgs),
    /// Delete a token for good: its SID is tombstoned and can never authenticate again.
    Delete(DeleteArgs),
    /// Find leaked `sgs_` secrets in files, folders or stdin; name the tokens they belong to.
    Scan(scan::ScanArgs),
}

#[derive(clap::Args, Debug)]
pub struct ConfigArg {
    /// The gateway config; the tokens file is the one its `tokens_file` names.
    #[arg(long, default_value = "config/scopegate.yaml")]
    pub config: PathBuf,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum EnvArg {
    Test,
    Live,
}

impl EnvArg {
    fn as_str(self) -> &'static str {
        match self {
            EnvArg::Test => "test",
            EnvArg::Live => "live",
        }
    }
}

/// `API:METHOD[,METHOD]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeArg {
    pub api: String,
    pub methods: Vec<String>,
}

fn parse_scope(s: &str) -> Result<ScopeArg, String> {
    let (api, methods) = s
        .split_once(':')
        .ok_or("write a scope as API:METHOD[,METHOD], e.g. campaigns:GET,POST or reports:read")?;
    let api = api.trim();
    if api.is_empty() {
        return Err("the scope names no API (write API:METHOD[,METHOD])".into());
    }
    let mut out: Vec<String> = Vec::new();
    for m in methods.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        // On the command line case does not matter: `get` is GET, `READ` is `read`.
        let lower = m.to_ascii_lowercase();
        let name = if crate::shorthand::is_shorthand(&lower) {
            lower
        } else {
            m.to_ascii_uppercase()
        };
        if crate::shorthand::expand(&name).is_none() {
            return Err(format!("unknown method `{m}` ({})", crate::shorthand::HINT));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    if out.is_empty() {
        return Err(format!(
            "the scope for `{api}` names no method (write {api}:GET[,POST])"
        ));
    }
    Ok(ScopeArg {
        api: api.to_owned(),
        methods: out,
    })
}

fn parse_grace(s: &str) -> Result<Duration, String> {
    let d = crate::duration::parse(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be longer than zero (leave --grace out to revoke at once)".into());
    }
    if d > MAX_GRACE {
        return Err("at most 30d: a grace period is a bounded overlap for a rollout".into());
    }
    Ok(d)
}

fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|_| "not an RFC 3339 timestamp (write e.g. 2027-01-31T00:00:00Z)".to_owned())
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if !(r.is_finite() && r > 0.0 && r <= 1e9) {
        return Err("must be a positive number of requests per second".into());
    }
    Ok(r)
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The owning account id (created in the tokens file if new).
    #[arg(long)]
    pub account: String,
    /// Name the token after the integration that uses it.
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub description: Option<String>,
    /// The responsible technical contact (email).
    #[arg(long)]
    pub contact: Option<String>,
    /// Another address to notify (repeatable).
    #[arg(long = "developer", value_name = "EMAIL")]
    pub developers: Vec<String>,
    /// The API version the integration is built against (one of the catalog's).
    #[arg(long)]
    pub api_version: Option<String>,
    /// A grant, API:METHOD[,METHOD] (repeatable). GET also allows HEAD.
    #[arg(long = "scope", value_name = "API:METHODS", value_parser = parse_scope)]
    pub scopes: Vec<ScopeArg>,
    /// A legacy token: full access, flagged by audit (prefer scopes).
    #[arg(long, conflicts_with = "scopes")]
    pub legacy: bool,
    #[arg(long, value_enum)]
    pub env: Option<EnvArg>,
    /// Per-token rate limit override, requests per second.
    #[arg(long, value_name = "RPS", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Burst for the override (default: the rate rounded up).
    #[arg(long, requires = "rate")]
    pub burst: Option<u32>,
    /// Expiry (RFC 3339): the token is refused from then on.
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    pub expires: Option<OffsetDateTime>,
    /// Display name for the account, when this creates it.
    #[arg(long)]
    pub account_name: Option<String>,
    /// Print one JSON object (`sid`, `secret`, ...).
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this account's tokens.
    #[arg(long)]
    pub account: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    pub sid: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    pub sid: String,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long, value_name = "EMAIL")]
    pub contact: Option<String>,
    #[arg(long, value_name = "EMAIL")]
    pub add_developer: Vec<String>,
    #[arg(long, value_name = "EMAIL")]
    pub remove_developer: Vec<String>,
    #[arg(long)]
    pub api_version: Option<String>,
    /// Add a grant, merging methods into an existing grant on the same API (repeatable).
    #[arg(long = "scope", value_name = "API:METHODS", value_parser = parse_scope)]
    pub scopes: Vec<ScopeArg>,
    /// Remove every grant on an API (repeatable).
    #[arg(long, value_name = "API")]
    pub remove_scope: Vec<String>,
    /// Remove all grants (applied before --scope, so both together replace the set).
    #[arg(long)]
    pub clear_scopes: bool,
    /// Add a proposed narrower grant (repeatable); the gateway counts what it would deny.
    #[arg(long = "shadow-scope", value_name = "API:METHODS", value_parser = parse_scope)]
    pub shadow_scopes: Vec<ScopeArg>,
    /// Drop the shadow scopes (applied before --shadow-scope).
    #[arg(long)]
    pub clear_shadow_scopes: bool,
    /// Make the shadow scopes the enforced scopes.
    #[arg(long, conflicts_with_all = ["scopes", "remove_scope", "clear_scopes", "shadow_scopes", "clear_shadow_scopes"])]
    pub promote_shadow: bool,
    #[arg(long, value_name = "RPS", value_parser = parse_rate)]
    pub rate: Option<f64>,
    #[arg(long, requires = "rate")]
    pub burst: Option<u32>,
    /// Back to the gateway's default rate limit.
    #[arg(long, conflicts_with = "rate")]
    pub clear_rate: bool,
    #[arg(long, value_enum)]
    pub env: Option<EnvArg>,
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    pub expires: Option<OffsetDateTime>,
    #[arg(long, conflicts_with = "expires")]
    pub no_expiry: bool,
}

#[derive(clap::Args, Debug)]
pub struct ResetArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    pub sid: String,
    /// Keep the old secret valid this long (e.g. 1h) for a zero-downtime rollout; at most 30d.
    #[arg(long, value_name = "DURATION", value_parser = parse_grace)]
    pub grace: Option<Duration>,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct SidArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    pub sid: String,
}

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    pub sid: String,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

pub fn run(cmd: TokenCommand) -> ExitCode {
    let result = match cmd {
        TokenCommand::Create(a) => create(a),
        TokenCommand::List(a) => list(a),
        TokenCommand::Show(a) => show(a),
        TokenCommand::Update(a) => update(a),
        TokenCommand::Reset(a) => reset(a),
        TokenCommand::Disable(a) => set_status(a, false),
        TokenCommand::Enable(a) => set_status(a, true),
        TokenCommand::Delete(a) => delete(a),
        TokenCommand::Scan(a) => return scan::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

// ---- create ---------------------------------------------------------------------------------

fn create(a: CreateArgs) -> Result<(), Fail> {
    let store = Store::open(&a.config.config)?;
    let now = now_utc();
    let expires = store
        .settings
        .token_policy
        .check_requested(now, a.expires)
        .map_err(|e| fail(format!("{e}; nothing was written")))?;
    if let Some(t) = a.expires {
        if t <= now {
            eprintln!("warning: --expires is in the past: the token is refused from the start");
        }
    }
    let sid = super::secrets::new_sid().map_err(|e| fail(format!("no randomness: {e}")))?;
    let secret = super::secrets::new_secret().map_err(|e| fail(format!("no randomness: {e}")))?;
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
    fields.push(("status", "active".into()));
    fields.push(("kind", if a.legacy { "legacy" } else { "scoped" }.into()));
    if let Some(env) = a.env {
        fields.push(("environment", env.as_str().into()));
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
    if let Some(rate) = a.rate {
        fields.push(("rate_limit", render_rate(rate, a.burst)));
    }

    store.transact(|doc| {
        let root = doc.value().clone();
        if !a.legacy {
            check_limit(&root, &store.settings, &a.account, None)?;
        }
        warn_duplicate_name(&root, &a.account, &a.name, None);
        if let Some(want) = &a.account_name {
            if let Some(acc) = find_account(&root, &a.account) {
                let have = str_field(acc, "name");
                if have.as_deref() != Some(want.as_str()) {
                    eprintln!(
                        "warning: account {} already exists; its name is left as {}",
                        a.account,
                        have.as_deref().unwrap_or("(unset)")
                    );
                }
            }
        }
        doc.append_token(&a.account, a.account_name.as_deref(), &fields)
            .map_err(|e| store.edit_fail(&e))
    })?;

    if !a.legacy && scopes.is_empty() {
        eprintln!(
            "warning: the token has no scopes, so every request is refused; grant some with \
             `scopegate token update {sid} --scope API:METHODS`"
        );
    }
    let issued = Issued {
        sid: &sid,
        secret: &secret,
        account: &a.account,
        name: &a.name,
        stamp: &stamp,
        grace_until: None,
    };
    if a.json {
        print_secret_json(&issued, "created_at")
    } else {
        let path = example_path(&store.settings, &a.account, a.legacy, &scopes);
        let mut out = secret_buffer(&format!(
            "Created token {sid} for account {} (name: {}).\n\n",
            a.account, a.name
        ));
        credentials_block(&mut out, &store.settings, &issued, &path);
        out.push_str(
            "\nThe secret is shown only this once and cannot be recovered (only its hash is \
             stored); put it into the integration now. The running gateway picks the new token \
             up on its next reload.\n",
        );
        print_zeroizing(&out)
    }
}

// ---- list / show ----------------------------------------------------------------------------

fn list(a: ListArgs) -> Result<(), Fail> {
    let store = Store::open(&a.config.config)?;
    let doc = store.read_doc()?;
    warn_if_invalid(&store, doc.text());
    let now = now_utc();
    let last_used = view::last_used(&store.settings);
    let mut tokens = view::all_tokens(doc.value());
    tokens.retain(|t| a.account.as_deref().is_none_or(|acc| t.account == acc));
    for t in &mut tokens {
        t.last_used = last_used.get(&t.sid).copied();
    }
    if a.json {
        let list: Vec<_> = tokens.iter().map(|t| t.to_json(now)).collect();
        let doc = serde_json::json!({ "tokens": list });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else if tokens.is_empty() {
        println!(
            "no tokens{} in {}",
            a.account
                .as_deref()
                .map(|acc| format!(" for account {acc}"))
                .unwrap_or_default(),
            store.display()
        );
    } else {
        print!("{}", view::table(&tokens, now));
    }
    Ok(())
}

fn show(a: ShowArgs) -> Result<(), Fail> {
    let store = Store::open(&a.config.config)?;
    let doc = store.read_doc()?;
    let now = now_utc();
    let Some(mut token) = view::all_tokens(doc.value())
        .into_iter()
        .find(|t| t.sid == a.sid)
    else {
        return Err(not_found(&store, &doc, &a.sid));
    };
    token.last_used = view::last_used(&store.settings).get(&token.sid).copied();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&token.to_json(now)).unwrap_or_default()
        );
    } else {
        print!("{}", token.card(&store.settings, now));
    }
    Ok(())
}

// ---- update ---------------------------------------------------------------------------------

fn update(a: UpdateArgs) -> Result<(), Fail> {
    let store = Store::open(&a.config.config)?;
    let changes = store.transact(|doc| {
        let (ai, ti) = locate(&store, doc, &a.sid)?;
        let root = doc.value().clone();
        let account = &root["accounts"][ai];
        let token = &root["accounts"][ai]["tokens"][ti];
        let account_id = str_field(account, "id").unwrap_or_default();
        let mut changes: Vec<&str> = Vec::new();
        let set = |doc: &mut TokensDoc, key: &str, value: String| {
            doc.set_token_field(&a.sid, key, &value)
                .map_err(|e| store.edit_fail(&e))
        };

        if let Some(name) = &a.name {
            warn_duplicate_name(&root, &account_id, name, Some(&a.sid));
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
        if !a.add_developer.is_empty() || !a.remove_developer.is_empty() {
            let mut devs = str_list(token, "developer_emails");
            for r in &a.remove_developer {
                let before = devs.len();
                devs.retain(|d| !d.eq_ignore_ascii_case(r));
                if devs.len() == before {
                    eprintln!("warning: {r} is not a developer email of {}", a.sid);
                }
            }
            for add in &a.add_developer {
                if !devs.iter().any(|d| d.eq_ignore_ascii_case(add)) {
                    devs.push(add.clone());
                }
            }
            if devs.is_empty() {
                doc.remove_token_field(&a.sid, "developer_emails")
                    .map_err(|e| store.edit_fail(&e))?;
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
                eprintln!(
                    "warning: {} is a legacy token with full access; its scopes take effect \
                     only once it is migrated to `kind: scoped`",
                    a.sid
                );
            }
            let mut scopes = if a.clear_scopes {
                Vec::new()
            } else {
                scopes_field(token, "scopes").unwrap_or_default()
            };
            for api in &a.remove_scope {
                let before = scopes.len();
                scopes.retain(|s| s.api != *api);
                if scopes.len() == before {
                    eprintln!("warning: {} has no scope on API `{api}`", a.sid);
                }
            }
            let scopes = merge_scopes(scopes, &a.scopes);
            if scopes.is_empty() && !is_legacy {
                eprintln!(
                    "warning: {} now has no scopes, so every request it makes is refused",
                    a.sid
                );
            }
            set(doc, "scopes", render_scope_list(&scopes))?;
            changes.push("scopes");
        }
        if a.clear_shadow_scopes || !a.shadow_scopes.is_empty() {
            let current = if a.clear_shadow_scopes {
                Vec::new()
            } else {
                scopes_field(token, "shadow_scopes").unwrap_or_default()
            };
            let shadow = merge_scopes(current, &a.shadow_scopes);
            if shadow.is_empty() {
                doc.remove_token_field(&a.sid, "shadow_scopes")
                    .map_err(|e| store.edit_fail(&e))?;
            } else {
                set(doc, "shadow_scopes", render_scope_list(&shadow))?;
            }
            changes.push("shadow scopes");
        }
        if a.promote_shadow {
            let Some(shadow) = scopes_field(token, "shadow_scopes") else {
                return Err(fail(format!(
                    "{} has no shadow scopes to promote; nothing was written",
                    a.sid
                )));
            };
            set(doc, "scopes", render_scope_list(&shadow))?;
            doc.remove_token_field(&a.sid, "shadow_scopes")
                .map_err(|e| store.edit_fail(&e))?;
            changes.push("scopes (promoted from shadow scopes)");
        }
        if let Some(rate) = a.rate {
            set(doc, "rate_limit", render_rate(rate, a.burst))?;
            changes.push("rate limit");
        }
        if a.clear_rate {
            doc.remove_token_field(&a.sid, "rate_limit")
                .map_err(|e| store.edit_fail(&e))?;
            changes.push("rate limit (back to the default)");
        }
        if let Some(env) = a.env {
            set(doc, "environment", env.as_str().into())?;
            changes.push("environment");
        }
        if let Some(t) = a.expires {
            let policy = &store.settings.token_policy;
            if let Some(max) = policy.max_lifetime {
                if t > now_utc() + max {
                    return Err(fail(format!(
                        "--expires is beyond token_policy.max_lifetime ({} days from now); \
                         nothing was written",
                        max.as_secs() / 86_400
                    )));
                }
            }
            if t <= now_utc() {
                eprintln!("warning: --expires is in the past: the token is refused from now on");
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
            doc.remove_token_field(&a.sid, "expires_at")
                .map_err(|e| store.edit_fail(&e))?;
            changes.push("expiry (removed)");
        }
        if changes.is_empty() {
            return Err(fail(
                "nothing to change: give at least one option (see `scopegate token update --help`)",
            ));
        }
        Ok(changes)
    })?;
    println!("Updated token {}: {}.", a.sid, changes.join(", "));
    Ok(())
}

// ---- reset ----------------------------------------------------------------------------------

fn reset(a: ResetArgs) -> Result<(), Fail> {
    let store = Store::open(&a.config.config)?;
    let secret = super::secrets::new_secret().map_err(|e| fail(format!("no randomness: {e}")))?;
    let hash = SecretHash::of_secret(secret.as_bytes()).to_stored();
    let now = now_utc();
    let stamp = rfc3339(now);
    let deadline = a.grace.map(|g| rfc3339(now + g));

    let (account, name, legacy, scopes, grace_until, contact) = store.transact(|doc| {
        let (ai, ti) = locate(&store, doc, &a.sid)?;
        let token = doc.value()["accounts"][ai]["tokens"][ti].clone();
        let account = str_field(&doc.value()["accounts"][ai], "id").unwrap_or_default();
        let old = str_field(&token, "auth_token_hash");
        let edit = |e| store.edit_fail(&e);
        doc.set_token_field(&a.sid, "auth_token_hash", &quote_scalar(&hash))
            .map_err(edit)?;
        doc.set_token_field(&a.sid, "rotated_at", &stamp)
            .map_err(edit)?;
        // token_policy: a new secret gets a full lifetime.
        if let Some(until) = store.settings.token_policy.expiry_from(now) {
            doc.set_token_field(&a.sid, "expires_at", &rfc3339(until))
                .map_err(edit)?;
        }
        let contact = view::all_tokens(doc.value())
            .into_iter()
            .find(|t| t.sid == a.sid);
        let old = old.filter(|h| SecretHash::parse(h).is_ok());
        let grace_until = match (&deadline, old) {
            (Some(until), Some(old)) => {
                doc.set_token_field(&a.sid, "previous_auth_token_hash", &quote_scalar(&old))
                    .map_err(edit)?;
                doc.set_token_field(&a.sid, "previous_valid_until", until)
                    .map_err(edit)?;
                Some(until.clone())
            }
            (grace, _) => {
                if grace.is_some() {
                    eprintln!(
                        "warning: {} had no usable previous secret; --grace has nothing to keep",
                        a.sid
                    );
                }
                doc.remove_token_field(&a.sid, "previous_auth_token_hash")
                    .map_err(edit)?;
                doc.remove_token_field(&a.sid, "previous_valid_until")
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
    let issued = Issued {
        sid: &a.sid,
        secret: &secret,
        account: &account,
        name: &name,
        stamp: &stamp,
        grace_until: grace_until.as_deref(),
    };
    // The secret first: telling the contacts may wait on a slow mail server.
    let printed = if a.json {
        print_secret_json(&issued, "rotated_at")
    } else {
        print_reset(&store, &a, &issued, legacy, &scopes)
    };
    if let Some(t) = &contact {
        notify_contacts(&store, crate::notify::EventKind::Reset, t);
    }
    printed
}

fn print_reset(
    store: &Store,
    a: &ResetArgs,
    issued: &Issued<'_>,
    legacy: bool,
    scopes: &[ScopeView],
) -> Result<(), Fail> {
    let (account, name, grace_until) = (issued.account, issued.name, issued.grace_until);
    let mut out = secret_buffer(&format!(
        "Reset the secret of token {} (account {account}, name: {name}).\n",
        a.sid
    ));
    match &grace_until {
        Some(until) => out.push_str(&format!(
            "The previous secret keeps working until {until} (grace period); roll the new one \
             out before then.\n\n"
        )),
        None => out.push_str("The previous secret stops working at the gateway's next reload.\n\n"),
    }
    let path = example_path(&store.settings, account, legacy, scopes);
    credentials_block(&mut out, &store.settings, issued, &path);
    out.push_str(
        "\nThe new secret is shown only this once and cannot be recovered (only its hash is \
         stored).\n",
    );
    print_zeroizing(&out)
}

// ---- disable / enable -----------------------------------------------------------------------

fn set_status(a: SidArgs, enable: bool) -> Result<(), Fail> {
    let store = Store::open(&a.config.config)?;
    let want = if enable { "active" } else { "disabled" };
    let changed = store.transact(|doc| {
        let (ai, ti) = locate(&store, doc, &a.sid)?;
        let root = doc.value().clone();
        let token = &root["accounts"][ai]["tokens"][ti];
        let status = str_field(token, "status").unwrap_or_else(|| "active".into());
        if status == want {
            return Ok(None);
        }
        let view = view::all_tokens(&root).into_iter().find(|t| t.sid == a.sid);
        if enable && str_field(token, "kind").as_deref() != Some("legacy") {
            let account = str_field(&root["accounts"][ai], "id").unwrap_or_default();
            check_limit(&root, &store.settings, &account, Some(&a.sid))?;
        }
        doc.set_token_field(&a.sid, "status", want)
            .map_err(|e| store.edit_fail(&e))?;
        Ok(Some(view))
    })?;
    if let Some(view) = &changed {
        println!(
            "Token {} is now {want}{}.",
            a.sid,
            if enable {
                ""
            } else {
                " (refused like an invalid token; `scopegate token enable` undoes it)"
            }
        );
        if let (false, Some(t)) = (enable, view) {
            notify_contacts(&store, crate::notify::EventKind::Disabled, t);
        }
    } else {
        println!("Token {} is already {want}; nothing changed.", a.sid);
    }
    Ok(())
}

// ---- delete ---------------------------------------------------------------------------------

fn delete(a: DeleteArgs) -> Result<(), Fail> {
    let store = Store::open(&a.config.config)?;
    if !a.yes {
        // Ask before taking the lock: other CLI runs must not wait on a human.
        let doc = store.read_doc()?;
        let Some(token) = view::all_tokens(doc.value())
            .into_iter()
            .find(|t| t.sid == a.sid)
        else {
            return Err(not_found(&store, &doc, &a.sid));
        };
        if !std::io::stdin().is_terminal() {
            return Err(fail(format!(
                "refusing to delete {} without confirmation: stdin is not a terminal; pass --yes",
                a.sid
            )));
        }
        eprint!(
            "Delete token {} ({}, account {})? This is permanent: the SID can never \
             authenticate again. [y/N] ",
            a.sid, token.name, token.account
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| fail(format!("cannot read the answer: {e}")))?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Err(fail("not confirmed; nothing was deleted"));
        }
    }
    let (name, account, contact) = store.transact(|doc| {
        let (ai, ti) = locate(&store, doc, &a.sid)?;
        let contact = view::all_tokens(doc.value())
            .into_iter()
            .find(|t| t.sid == a.sid);
        let root = doc.value();
        let name = str_field(&root["accounts"][ai]["tokens"][ti], "name").unwrap_or_default();
        let account = str_field(&root["accounts"][ai], "id").unwrap_or_default();
        // Tombstone first: `deleted_sids` then goes after the token, so comment lines that
        // sat above the token stay where it was instead of trailing the tombstone list.
        doc.add_tombstone(&a.sid).map_err(|e| store.edit_fail(&e))?;
        doc.remove_token(&a.sid).map_err(|e| store.edit_fail(&e))?;
        Ok((name, account, contact))
    })?;
    println!(
        "Deleted token {} ({name}, account {account}). Its SID is listed in `deleted_sids` and \
         can never authenticate again, even if re-added by hand.",
        a.sid
    );
    if let Some(t) = &contact {
        notify_contacts(&store, crate::notify::EventKind::Deleted, t);
    }
    Ok(())
}

// ---- shared helpers -------------------------------------------------------------------------

/// Tells the token's contacts about a change just written (when `notifications:` is
/// configured). The change itself is done: a delivery problem is a warning, and what was
/// not delivered stays queued for the gateway's next notification pass.
fn notify_contacts(store: &Store, kind: crate::notify::EventKind, t: &view::TokenView) {
    let token = crate::notify::TokenRef {
        sid: &t.sid,
        account: &t.account,
        name: &t.name,
        primary_contact: &t.primary_contact,
        developer_emails: &t.developer_emails,
        expires_at: t.expires_at.clone(),
    };
    match crate::notify::token_changed(&store.config_path, &store.settings, kind, &token) {
        Ok(None) => {}
        Ok(Some(r)) if r.failed == 0 => {
            if r.sent > 0 {
                eprintln!("Notified the token's contacts ({} deliveries).", r.sent);
            }
        }
        Ok(Some(r)) => eprintln!(
            "warning: {} notification deliveries failed; they stay queued and are retried by \
             the gateway's notifier (or `scopegate notify --once`)",
            r.failed
        ),
        Err(e) => eprintln!("warning: the contacts were not notified: {e}"),
    }
}

fn now_utc() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// RFC 3339 in UTC with whole seconds: `2026-08-01T00:00:00Z`.
fn rfc3339(t: OffsetDateTime) -> String {
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
/// (kept in the standard order).
fn merge_scopes(mut scopes: Vec<ScopeView>, add: &[ScopeArg]) -> Vec<ScopeView> {
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
            }),
        }
    }
    scopes
}

fn render_scope_list(scopes: &[ScopeView]) -> String {
    let items: Vec<String> = scopes
        .iter()
        .map(|s| {
            flow_map(&[
                ("api", quote_scalar(&s.api)),
                ("methods", flow_seq(&s.methods)),
            ])
        })
        .collect();
    flow_seq_rendered(&items)
}

fn render_rate(rps: f64, burst: Option<u32>) -> String {
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
        return Err(fail(format!(
            "account {account} already has {active} active scoped tokens (the limit is {max}); \
             disable or delete one it no longer needs first; nothing was written"
        )));
    }
    Ok(())
}

fn warn_duplicate_name(root: &Value, account: &str, name: &str, except_sid: Option<&str>) {
    if let Some(other) = view::all_tokens(root)
        .into_iter()
        .find(|t| t.account == account && t.name == name && except_sid != Some(t.sid.as_str()))
    {
        eprintln!(
            "warning: account {account} already has a token named `{name}` ({}); names are \
             easier to audit when they are unique",
            other.sid
        );
    }
}

/// The token's position, or a clear error for an unknown or deleted SID.
fn locate(store: &Store, doc: &TokensDoc, sid: &str) -> Result<(usize, usize), Fail> {
    doc.find_token(sid)
        .ok_or_else(|| not_found(store, doc, sid))
}

fn not_found(store: &Store, doc: &TokensDoc, sid: &str) -> Fail {
    let deleted = doc
        .value()
        .get("deleted_sids")
        .and_then(Value::as_sequence)
        .is_some_and(|l| l.iter().any(|s| s.as_str() == Some(sid)));
    if deleted {
        fail(format!(
            "token {sid} was deleted (it is listed in deleted_sids); create a new token instead"
        ))
    } else {
        fail(format!(
            "no token with SID {sid} in {}; see `scopegate token list`",
            store.display()
        ))
    }
}

fn warn_if_invalid(store: &Store, text: &str) {
    if let Err(e) = store.validate(text) {
        eprintln!(
            "warning: {} has {} validation error(s); the gateway does not load it until they \
             are fixed (see `scopegate check`)",
            store.display(),
            e.0.len()
        );
    }
}

/// A freshly issued secret and what to print with it.
struct Issued<'a> {
    sid: &'a str,
    secret: &'a Zeroizing<String>,
    account: &'a str,
    name: &'a str,
    stamp: &'a str,
    grace_until: Option<&'a str>,
}

/// The credentials, ready to paste: SID, secret, `SID:SECRET`, and a curl line. Written
/// straight into the caller's zeroized buffer (reserved up front, so it does not move).
fn credentials_block(out: &mut Zeroizing<String>, settings: &Settings, t: &Issued<'_>, path: &str) {
    use std::fmt::Write as _;
    let secret: &str = t.secret;
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let host = match settings.listen.ip() {
        ip if ip.is_unspecified() => "localhost".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let out: &mut String = out;
    let _ = write!(
        out,
        "  SID:     {sid}\n  Secret:  {secret}\n\n  HTTP Basic credentials (username SID, password secret):\n    \
         {sid}:{secret}\n\n  Try it:\n    curl -u '{sid}:{secret}' {scheme}://{host}:{port}{path}\n",
        sid = t.sid,
        port = settings.listen.port(),
    );
}

/// A zeroized output buffer, large enough that appending never reallocates (which would
/// leave a copy of the secret behind in freed memory).
fn secret_buffer(intro: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(4096));
    out.push_str(intro);
    out
}

/// A path the token may call, for the curl example.
fn example_path(settings: &Settings, account: &str, legacy: bool, scopes: &[ScopeView]) -> String {
    let pattern = scopes
        .iter()
        .find(|s| s.methods.iter().any(|m| m == "GET"))
        .or(scopes.first())
        .filter(|_| !legacy)
        .and_then(|s| settings.apis.iter().find(|api| api.name == s.api))
        .and_then(|api| api.patterns.first())
        .map(|(text, _)| text.as_str());
    let Some(pattern) = pattern else {
        return "/".into();
    };
    let pattern = pattern.strip_suffix("/**").unwrap_or(pattern);
    let segments: Vec<String> = pattern
        .split('/')
        .map(|seg| match seg {
            "{account}" => account.to_owned(),
            "*" => "ID".to_owned(),
            "**" => String::new(),
            s => s.to_owned(),
        })
        .collect();
    let path = segments.join("/");
    if path.is_empty() {
        "/".into()
    } else {
        path
    }
}

/// `{"sid": .., "secret": .., ...}` built in zeroized memory. The secret and a generated
/// SID are base64url / base62, which JSON needs no escapes for.
fn print_secret_json(t: &Issued<'_>, stamp_key: &str) -> Result<(), Fail> {
    let secret: &str = t.secret;
    debug_assert!(secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let js = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut out = secret_buffer("{\"sid\":");
    out.push_str(&js(t.sid));
    out.push_str(",\"secret\":\"");
    out.push_str(secret);
    out.push_str("\",\"account\":");
    out.push_str(&js(t.account));
    out.push_str(",\"name\":");
    out.push_str(&js(t.name));
    out.push_str(&format!(",{}:{}", js(stamp_key), js(t.stamp)));
    out.push_str(",\"previous_secret_valid_until\":");
    out.push_str(&t.grace_until.map_or("null".to_owned(), js));
    out.push_str("}\n");
    print_zeroizing(&out)
}

fn print_zeroizing(text: &Zeroizing<String>) -> Result<(), Fail> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| {
            fail(format!(
                "the change was saved, but printing the secret failed ({e}); reset the token to \
                 get a new one"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_arguments_are_parsed_strictly() {
        assert_eq!(
            parse_scope("campaigns:get, POST,get").unwrap(),
            ScopeArg {
                api: "campaigns".into(),
                methods: vec!["GET".into(), "POST".into()],
            }
        );
        assert!(parse_scope("campaigns").is_err());
        assert!(parse_scope(":GET").is_err());
        assert!(parse_scope("campaigns:").is_err());
        assert!(parse_scope("campaigns:BREW").unwrap_err().contains("BREW"));
        assert_eq!(
            parse_scope("reports:READ,write,GET").unwrap(),
            ScopeArg {
                api: "reports".into(),
                methods: vec!["read".into(), "write".into(), "GET".into()],
            }
        );
        assert!(parse_scope("reports:reads")
            .unwrap_err()
            .contains("read (GET, HEAD)"));
    }

    #[test]
    fn grace_is_bounded_and_positive() {
        assert_eq!(parse_grace("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_grace("0s").is_err());
        assert!(parse_grace("31d").is_err());
        assert!(parse_grace("soon").is_err());
    }

    #[test]
    fn scopes_merge_per_api_in_method_order() {
        let scope = |s: &str| parse_scope(s).unwrap();
        let merged = merge_scopes(
            vec![ScopeView {
                api: "campaigns".into(),
                methods: vec!["POST".into()],
            }],
            &[scope("campaigns:GET,POST"), scope("reports:GET")],
        );
        assert_eq!(
            render_scope_list(&merged),
            "[{api: campaigns, methods: [GET, POST]}, {api: reports, methods: [GET]}]"
        );
        assert_eq!(render_scope_list(&[]), "[]");
        assert_eq!(
            render_rate(2.5, Some(4)),
            "{requests_per_second: 2.5, burst: 4}"
        );
        assert_eq!(render_rate(20.0, None), "{requests_per_second: 20}");
    }

    #[test]
    fn timestamps_are_utc_whole_seconds() {
        let t = OffsetDateTime::parse("2026-08-01T02:00:00.75+02:00", &Rfc3339).unwrap();
        assert_eq!(rfc3339(t), "2026-08-01T00:00:00Z");
    }
}
