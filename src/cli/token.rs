//! `scopegate token ...`: the token lifecycle against the tokens file (SPEC §1, §7).
//!
//! `create`, `update`, `reset`, `disable`, `enable` and `delete` are each one locked
//! read-modify-write of the tokens file ([`store::Store::transact`]): the edit is a
//! comment-preserving text splice ([`crate::config::yamlsrc::TokensDoc`], located with yaml-rust2
//! spans and verified by re-parsing), the result is validated with every rule of
//! `config::load_from_sources` before anything is written, and the write is atomic. The
//! running gateway picks the new file up through its reload.
//!
//! Secrets: 32 bytes from the OS CSPRNG ([`crate::gateway::manage::secrets`]), held in `Zeroizing`, hashed,
//! and printed once on stdout after the file is safely written. Only the hash is stored; the
//! secret never reaches the file, stderr, logs, `list` or `show`.

mod scan;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::config::Settings;
use crate::gateway::adminlog::Actor;
use crate::gateway::manage::ops::{self, not_found, now_utc};
#[cfg(test)]
use crate::gateway::manage::ops::{merge_scopes, render_rate, render_scope_list, rfc3339};
use crate::gateway::manage::parse::{
    parse_grace, parse_rate, parse_rfc3339, parse_scope, ScopeArg,
};
use crate::gateway::manage::store::{fail, Fail, Store};
use crate::gateway::manage::view::{self, ScopeView};

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
    /// Print the admin log for a token: who changed what, when (never a secret).
    History(ShowArgs),
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
    pub fn as_str(self) -> &'static str {
        match self {
            EnvArg::Test => "test",
            EnvArg::Live => "live",
        }
    }
}

/// An `allowed_ips` entry, checked as validation will check it, in canonical form.
fn parse_allowed_ip(s: &str) -> Result<String, String> {
    crate::domain::netaddr::parse_cidr(s).map(|net| net.to_string())
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
    /// Accept requests only from this client address or CIDR (repeatable; default: any).
    #[arg(long = "allow-ip", value_name = "CIDR", value_parser = parse_allowed_ip)]
    pub allowed_ips: Vec<String>,
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
    /// Add a grant, merging methods into an existing grant on the same API (repeatable);
    /// an API already granted keeps its own rate_limit and quota.
    #[arg(long = "scope", value_name = "API:METHODS", value_parser = parse_scope)]
    pub scopes: Vec<ScopeArg>,
    /// Remove every grant on an API, with its own rate_limit and quota (repeatable).
    #[arg(long, value_name = "API")]
    pub remove_scope: Vec<String>,
    /// Remove all grants (applied before --scope, so both together replace the set; an API
    /// --scope grants again keeps its own rate_limit and quota).
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
    /// Add a client address or CIDR to the token's allowed_ips (repeatable).
    #[arg(long = "allow-ip", value_name = "CIDR", value_parser = parse_allowed_ip)]
    pub allow_ips: Vec<String>,
    /// Remove an entry from the token's allowed_ips (repeatable).
    #[arg(long = "remove-ip", value_name = "CIDR", value_parser = parse_allowed_ip)]
    pub remove_ips: Vec<String>,
    /// Drop allowed_ips: any client address may use the token again.
    #[arg(long, conflicts_with_all = ["allow_ips", "remove_ips"])]
    pub any_ip: bool,
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
        TokenCommand::History(a) => history(a),
        TokenCommand::Scan(a) => return scan::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail { message, .. }) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

// ---- create ---------------------------------------------------------------------------------

fn warn_all(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

fn create(a: CreateArgs) -> Result<(), Fail> {
    let store = Store::open(&a.config.config)?;
    let new = ops::NewToken {
        account: a.account.clone(),
        account_name: a.account_name.clone(),
        name: a.name.clone(),
        description: a.description.clone(),
        contact: a.contact.clone(),
        developers: a.developers.clone(),
        api_version: a.api_version.clone(),
        scopes: a.scopes.clone(),
        legacy: a.legacy,
        environment: a.env.map(|e| e.as_str().to_owned()),
        rate: a.rate,
        burst: a.burst,
        expires: a.expires,
        allowed_ips: a.allowed_ips.clone(),
        ..ops::NewToken::default()
    };
    let created = ops::create(&store, &new, &Actor::cli())?;
    warn_all(&created.warnings);
    let sid = &created.sid;
    let issued = Issued {
        sid,
        secret: &created.secret,
        account: &a.account,
        name: &a.name,
        stamp: &created.stamp,
        grace_until: None,
    };
    if a.json {
        print_secret_json(&issued, "created_at")
    } else {
        let path = example_path(&store.settings, &a.account, a.legacy, &created.scopes);
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

fn history(a: ShowArgs) -> Result<(), Fail> {
    let store = Store::open(&a.config.config)?;
    let log = crate::gateway::adminlog::path(&store.settings);
    let (entries, skipped) = crate::gateway::adminlog::read(&store.settings, Some(&a.sid))
        .map_err(|e| fail(format!("cannot read the admin log {}: {e}", log.display())))?;
    if skipped > 0 {
        eprintln!(
            "warning: {skipped} line(s) of {} are not valid entries and were skipped",
            log.display()
        );
    }
    if a.json {
        let doc = serde_json::json!({ "sid": a.sid, "entries": entries });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else if entries.is_empty() {
        println!("no admin log entries for {} in {}", a.sid, log.display());
    } else {
        for e in &entries {
            let what = if e.changes.is_empty() {
                String::new()
            } else {
                format!(": {}", e.changes.join("; "))
            };
            println!("{}  {:<8} {} ({}){what}", e.at, e.action, e.who, e.via);
        }
    }
    Ok(())
}

// ---- update ---------------------------------------------------------------------------------

fn update(a: UpdateArgs) -> Result<(), Fail> {
    let store = Store::open(&a.config.config)?;
    let change = ops::Change {
        name: a.name,
        description: a.description,
        contact: a.contact,
        set_developers: None,
        add_developer: a.add_developer,
        remove_developer: a.remove_developer,
        api_version: a.api_version,
        scopes: a.scopes,
        remove_scope: a.remove_scope,
        clear_scopes: a.clear_scopes,
        shadow_scopes: a.shadow_scopes,
        clear_shadow_scopes: a.clear_shadow_scopes,
        promote_shadow: a.promote_shadow,
        rate: a.rate,
        burst: a.burst,
        clear_rate: a.clear_rate,
        environment: a.env.map(|e| e.as_str().to_owned()),
        expires: a.expires,
        no_expiry: a.no_expiry,
        set_allowed_ips: None,
        allow_ips: a.allow_ips,
        remove_ips: a.remove_ips,
        any_ip: a.any_ip,
    };
    let updated = ops::update(&store, &a.sid, &change, &Actor::cli())?;
    warn_all(&updated.warnings);
    println!("Updated token {}: {}.", a.sid, updated.changes.join(", "));
    Ok(())
}

// ---- reset ----------------------------------------------------------------------------------

fn reset(a: ResetArgs) -> Result<(), Fail> {
    let store = Store::open(&a.config.config)?;
    let r = ops::reset(&store, &a.sid, a.grace, &Actor::cli())?;
    warn_all(&r.warnings);
    let (account, name) = (&r.account, &r.name);
    let issued = Issued {
        sid: &a.sid,
        secret: &r.secret,
        account,
        name,
        stamp: &r.stamp,
        grace_until: r.grace_until.as_deref(),
    };
    // The secret first: telling the contacts may wait on a slow mail server.
    if a.json {
        let printed = print_secret_json(&issued, "rotated_at");
        deliver_notifications(&store);
        return printed;
    }
    let mut out = secret_buffer(&format!(
        "Reset the secret of token {} (account {account}, name: {name}).\n",
        a.sid
    ));
    match &r.grace_until {
        Some(until) => out.push_str(&format!(
            "The previous secret keeps working until {until} (grace period); roll the new one \
             out before then.\n\n"
        )),
        None => out.push_str("The previous secret stops working at the gateway's next reload.\n\n"),
    }
    let path = example_path(&store.settings, account, r.legacy, &r.scopes);
    credentials_block(&mut out, &store.settings, &issued, &path);
    out.push_str(
        "\nThe new secret is shown only this once and cannot be recovered (only its hash is \
         stored).\n",
    );
    let printed = print_zeroizing(&out);
    deliver_notifications(&store);
    printed
}

// ---- disable / enable -----------------------------------------------------------------------

fn set_status(a: SidArgs, enable: bool) -> Result<(), Fail> {
    let store = Store::open(&a.config.config)?;
    let want = if enable { "active" } else { "disabled" };
    let (changed, warnings) = ops::set_status(&store, &a.sid, enable, &Actor::cli())?;
    warn_all(&warnings);
    if changed {
        println!(
            "Token {} is now {want}{}.",
            a.sid,
            if enable {
                ""
            } else {
                " (refused like an invalid token; `scopegate token enable` undoes it)"
            }
        );
        if !enable {
            deliver_notifications(&store);
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
    let (name, account, warnings) = ops::delete(&store, &a.sid, &Actor::cli())?;
    warn_all(&warnings);
    println!(
        "Deleted token {} ({name}, account {account}). Its SID is listed in `deleted_sids` and \
         can never authenticate again, even if re-added by hand.",
        a.sid
    );
    deliver_notifications(&store);
    Ok(())
}

// ---- shared helpers -------------------------------------------------------------------------

/// Tells the token's contacts about a change just written by `token scan --disable` (when
/// `notifications:` is configured): queues the event, then one delivery attempt.
fn notify_contacts(store: &Store, kind: crate::gateway::notifier::EventKind, t: &view::TokenView) {
    let mut warnings = Vec::new();
    ops::queue_notification(store, kind, Some(t), &mut warnings);
    warn_all(&warnings);
    deliver_notifications(store);
}

/// Delivers what the last operation queued for the token's contacts, one attempt per
/// channel. The change itself is done: a delivery problem is a warning, and what was not
/// delivered stays queued for the gateway's next notification pass.
fn deliver_notifications(store: &Store) {
    if store.settings.notifications.is_none() {
        return;
    }
    match crate::gateway::notifier::deliver_outbox(&store.config_path) {
        Ok(r) if r.failed == 0 => {
            if r.sent > 0 {
                eprintln!("Notified the token's contacts ({} deliveries).", r.sent);
            }
        }
        Ok(r) => eprintln!(
            "warning: {} notification deliveries failed; they stay queued and are retried by \
             the gateway's notifier (or `scopegate notify --once`)",
            r.failed
        ),
        Err(e) => eprintln!("warning: the contacts were not notified: {e}"),
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
    use time::format_description::well_known::Rfc3339;

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
                ..ScopeView::default()
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
