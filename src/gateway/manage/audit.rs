//! The least-privilege audit (`scopegate audit`, the console's audit page, the notifier's
//! expiry and staleness events): the report's findings, built from the configuration and a
//! usage record. Reading the record and printing the report are the callers' part.
//!
//! Compares what each token may do (the configuration) with what it did (the gateway's
//! usage record, `<state_dir>/usage.json`) and reports, each with a severity:
//!
//! | kind | severity |
//! | --- | --- |
//! | `unused_scopes`: granted methods not used in the window, with a narrowed `scopes:` list | warning (info while the record covers less than the window) |
//! | `stale_token`: not used for `--stale-after` (or never, counted from `created_at` / the start of the record) | warning |
//! | `rotation_overdue`: secret older than `--rotate-after` (`rotated_at`, else `created_at`) | warning, critical past twice the limit |
//! | `secret_age_unknown`: neither `rotated_at` nor `created_at` | info |
//! | `legacy_token`: full access; the APIs it used are proposed as scopes | critical |
//! | `expired_token` | info |
//! | `missing_description`, `missing_contact` | info |
//! | `account_near_limit`: at least 80% of `max_active_tokens_per_account` | warning, critical at the limit |
//!
//! Usage is only trusted for the time the record covers: a scope is called unused in the
//! window only when the record (and the token) existed for the whole window, so a fresh
//! gateway or a new token is not reported as idle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::config::{Config, TokenSpec};
use crate::domain::model::{method_index, MethodSet, TokenKind, TokenStatus, KNOWN_METHODS};
use crate::gateway::usage::{self, UsageState};

mod scopes;

use scopes::*;
pub(crate) use scopes::{human, rfc3339, scopes_yaml, shell_quote};

const DAY: i64 = 86_400;
/// The API name a legacy token's out-of-catalog requests are recorded under.
const NO_API: &str = crate::gateway::metrics::NO_API;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FailOn {
    None,
    Info,
    Warning,
    Critical,
}

impl FailOn {
    fn threshold(self) -> Option<Severity> {
        match self {
            FailOn::None => None,
            FailOn::Info => Some(Severity::Info),
            FailOn::Warning => Some(Severity::Warning),
            FailOn::Critical => Some(Severity::Critical),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    AccountNearLimit,
    LegacyToken,
    StaleToken,
    UnusedScopes,
    RotationOverdue,
    SecretAgeUnknown,
    ExpiredToken,
    MissingDescription,
    MissingContact,
    /// Outside `token_policy:` (no expiry, or a lifetime over `max_lifetime`).
    PolicyViolation,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::AccountNearLimit => "account_near_limit",
            FindingKind::LegacyToken => "legacy_token",
            FindingKind::StaleToken => "stale_token",
            FindingKind::UnusedScopes => "unused_scopes",
            FindingKind::RotationOverdue => "rotation_overdue",
            FindingKind::SecretAgeUnknown => "secret_age_unknown",
            FindingKind::ExpiredToken => "expired_token",
            FindingKind::MissingDescription => "missing_description",
            FindingKind::MissingContact => "missing_contact",
            FindingKind::PolicyViolation => "policy_violation",
        }
    }
}

/// A scope as written in `tokens.yaml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScopeOut {
    pub api: String,
    pub methods: Vec<&'static str>,
    /// The entry's own limits as `tokens.yaml` spells them (`rate_limit`, `quota`), kept
    /// in the block to paste: narrowing a token must not drop a limit the operator wrote.
    /// Not in the JSON, which lists grants; the token's own entry shows its limits.
    #[serde(skip)]
    pub own_fields: Vec<(&'static str, String)>,
}

/// One finding. Kind-specific fields are present only for their kind.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_name: Option<String>,
    pub message: String,
    pub recommendation: String,
    /// `unused_scopes`: the granted methods not used in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unused: Option<Vec<ScopeOut>>,
    /// `unused_scopes`: what was used (the scopes to keep); `legacy_token`: the proposed scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<ScopeOut>>,
    /// `scopes` as a ready-to-paste `scopes:` block for `tokens.yaml`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes_yaml: Option<String>,
    /// The `scopegate token ...` command that applies the recommendation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// `legacy_token`: requests (in the window) outside the catalog, which no scope covers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_catalog_requests: Option<u64>,
    /// Last use of the token (RFC 3339); `null` in a `stale_token` finding: never used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used: Option<Option<String>>,
    /// `stale_token`: days without use; `rotation_overdue`: the secret's age in days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days: Option<i64>,
    /// How many days of usage the record covers for this token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_days: Option<i64>,
    /// `rotation_overdue`: the field the age is counted from (`rotated_at` or `created_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_field: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// `account_near_limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_scoped_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl Finding {
    fn new(
        kind: FindingKind,
        severity: Severity,
        account: &str,
        token: Option<&TokenSpec>,
        message: String,
        recommendation: String,
    ) -> Finding {
        Finding {
            kind,
            severity,
            account: account.to_owned(),
            sid: token.map(|t| t.sid.clone()),
            token_name: token.map(|t| t.name.clone()),
            message,
            recommendation,
            unused: None,
            scopes: None,
            scopes_yaml: None,
            command: None,
            out_of_catalog_requests: None,
            last_used: None,
            days: None,
            observed_days: None,
            since_field: None,
            since: None,
            active_scoped_tokens: None,
            limit: None,
        }
    }
}

/// Where the usage came from.
#[derive(Clone, Debug, Serialize)]
pub struct UsageSource {
    pub path: PathBuf,
    pub saved_at: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub accounts: usize,
    pub tokens: usize,
    pub findings: usize,
    pub critical: usize,
    pub warning: usize,
    pub info: usize,
}

/// The whole report (`--json` prints it as is).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub generated_at: String,
    pub config: PathBuf,
    /// `null` when no usage record was available (usage-based findings are skipped).
    pub usage_record: Option<UsageSource>,
    pub stale_after_seconds: u64,
    pub rotate_after_seconds: u64,
    pub fail_on: FailOn,
    pub summary: Summary,
    pub notes: Vec<String>,
    /// Sorted by account, then account-wide findings before token findings, then SID.
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// Whether the findings reach `--fail-on`.
    pub fn fails(&self) -> bool {
        match (self.fail_on.threshold(), self.max_severity()) {
            (Some(t), Some(m)) => m >= t,
            _ => false,
        }
    }
}

/// What to audit against.
pub struct AuditOptions {
    pub stale_after: Duration,
    pub rotate_after: Duration,
    pub fail_on: FailOn,
    pub now_unix: i64,
}

/// Builds the report. Pure: the configuration, the usage record (and its path), the options.
pub fn audit(config: &Config, usage: Option<(&Path, &UsageState)>, opts: &AuditOptions) -> Report {
    let now = opts.now_unix;
    let stale_secs = opts.stale_after.as_secs() as i64;
    let rotate_secs = opts.rotate_after.as_secs() as i64;
    let window_start = now - stale_secs;
    let settings = &config.settings;
    let mut findings = Vec::new();
    let mut notes = Vec::new();

    // Accounts near the active-token limit.
    let limit = settings.max_active_tokens_per_account;
    for account in &config.accounts {
        let active = config
            .tokens
            .iter()
            .filter(|t| {
                t.account == account.id
                    && t.status == TokenStatus::Active
                    && t.kind == TokenKind::Scoped
            })
            .count();
        if active * 5 >= limit * 4 {
            let at_limit = active >= limit;
            let mut f = Finding::new(
                FindingKind::AccountNearLimit,
                if at_limit {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                &account.id,
                None,
                format!(
                    "{active} of {limit} active scoped tokens{}",
                    if at_limit {
                        ": no new token can be created or enabled"
                    } else {
                        ""
                    }
                ),
                "disable or delete the tokens this account no longer needs (see stale tokens), \
                 or raise max_active_tokens_per_account"
                    .into(),
            );
            f.active_scoped_tokens = Some(active);
            f.limit = Some(limit);
            findings.push(f);
        }
    }

    for t in &config.tokens {
        let record = usage.and_then(|(_, s)| s.tokens.get(&t.sid));
        let expired = t.expires_at.is_some_and(|e| e.unix_timestamp() <= now);
        let active = t.status == TokenStatus::Active && !expired;

        if t.description.trim().is_empty() {
            findings.push(Finding::new(
                FindingKind::MissingDescription,
                Severity::Info,
                &t.account,
                Some(t),
                "no description".into(),
                format!(
                    "say what the integration does: scopegate token update {} --description '...'",
                    t.sid
                ),
            ));
        }
        if t.primary_contact.trim().is_empty() {
            findings.push(Finding::new(
                FindingKind::MissingContact,
                Severity::Info,
                &t.account,
                Some(t),
                "no primary contact".into(),
                format!(
                    "name who answers for it: scopegate token update {} --contact team@example.com",
                    t.sid
                ),
            ));
        }
        if let Ok(at) = OffsetDateTime::from_unix_timestamp(now) {
            for v in settings.token_policy.violations(t, at) {
                findings.push(Finding::new(
                    FindingKind::PolicyViolation,
                    Severity::Warning,
                    &t.account,
                    Some(t),
                    format!("past token_policy: {}", v.message()),
                    format!(
                        "issue a secret within the policy: scopegate token reset {} --grace 24h",
                        t.sid
                    ),
                ));
            }
        }
        if t.status == TokenStatus::Disabled {
            continue;
        }
        if expired {
            let mut f = Finding::new(
                FindingKind::ExpiredToken,
                Severity::Info,
                &t.account,
                Some(t),
                format!(
                    "expired on {}",
                    t.expires_at
                        .map_or_else(String::new, |e| rfc3339(e.unix_timestamp()))
                ),
                format!(
                    "delete it if it is no longer needed: scopegate token delete {}",
                    t.sid
                ),
            );
            f.since = t.expires_at.map(|e| rfc3339(e.unix_timestamp()));
            findings.push(f);
        }
        if !active {
            continue;
        }

        // Secret age.
        match (t.rotated_at, t.created_at) {
            (None, None) => findings.push(Finding::new(
                FindingKind::SecretAgeUnknown,
                Severity::Info,
                &t.account,
                Some(t),
                "neither rotated_at nor created_at is set: the secret's age is unknown".into(),
                format!(
                    "rotate it to start tracking: scopegate token reset {} --grace 24h",
                    t.sid
                ),
            )),
            (rotated, created) => {
                let (field, at) = match rotated {
                    Some(r) => ("rotated_at", r.unix_timestamp()),
                    None => ("created_at", created.map_or(now, |c| c.unix_timestamp())),
                };
                let age = now - at;
                if age >= rotate_secs {
                    let mut f = Finding::new(
                        FindingKind::RotationOverdue,
                        if age >= 2 * rotate_secs {
                            Severity::Critical
                        } else {
                            Severity::Warning
                        },
                        &t.account,
                        Some(t),
                        format!(
                            "secret is {} days old ({field} {}); rotate at least every {}",
                            age / DAY,
                            rfc3339(at),
                            human(opts.rotate_after)
                        ),
                        format!(
                            "issue a new secret, keeping the old one valid while the integration \
                             switches: scopegate token reset {} --grace 24h",
                            t.sid
                        ),
                    );
                    f.days = Some(age / DAY);
                    f.since_field = Some(field);
                    f.since = Some(rfc3339(at));
                    findings.push(f);
                }
            }
        }

        // Usage.
        let legacy = t.kind == TokenKind::Legacy;
        let Some((_, state)) = usage else {
            if legacy {
                findings.push(legacy_finding(t, None, settings, opts));
            }
            continue;
        };
        // The record covers this token from the later of its own start and the token's
        // creation; a token the record does not know was not observed at all.
        let record_since = record.map_or(state.saved_at, |r| r.since);
        let observed_since =
            record_since.max(t.created_at.map_or(i64::MIN, |c| c.unix_timestamp()));
        let observed_days = (now - observed_since).max(0) / DAY;
        let full_window = observed_since <= window_start;
        let last_used = record.and_then(|r| r.last_used());
        let used = UsedScopes::in_window(record, window_start);

        if legacy {
            findings.push(legacy_finding(t, Some(&used), settings, opts));
        }

        let stale = match last_used {
            Some(last) => last < window_start,
            None => full_window,
        };
        if stale {
            let idle_from = last_used.unwrap_or(observed_since);
            let days = (now - idle_from) / DAY;
            let mut f = Finding::new(
                FindingKind::StaleToken,
                Severity::Warning,
                &t.account,
                Some(t),
                match last_used {
                    Some(last) => format!("not used for {days} days (last used {})", rfc3339(last)),
                    None => format!(
                        "never used in the {days} days the usage record covers (since {})",
                        rfc3339(observed_since)
                    ),
                },
                format!(
                    "if nothing needs it any more, disable it (scopegate token disable {sid}) and \
                     delete it once that is confirmed (scopegate token delete {sid})",
                    sid = t.sid
                ),
            );
            f.last_used = Some(last_used.map(rfc3339));
            f.days = Some(days);
            f.observed_days = Some(observed_days);
            findings.push(f);
            continue;
        }
        if legacy {
            continue;
        }

        // Granted but unused methods.
        let mut unused = Vec::new();
        let mut keep = Vec::new();
        for grant in &t.scopes {
            let api = settings.apis[usize::from(grant.api)].name.as_str();
            let granted = written_methods(grant.methods);
            let used_here = normalize_used(used.methods(api), grant.methods);
            let not_used = granted & !used_here;
            let kept = granted & used_here;
            if not_used != 0 {
                unused.push(scope_out(api, not_used));
            }
            if kept != 0 {
                keep.push(scope_out(api, kept).with_limits(t.scope_limits(grant.api)));
            }
        }
        // Nothing of the grants used yet (and not stale): a token still being set up;
        // narrowing it to nothing would not help.
        if !unused.is_empty() && !keep.is_empty() {
            let mut f = Finding::new(
                FindingKind::UnusedScopes,
                if full_window {
                    Severity::Warning
                } else {
                    Severity::Info
                },
                &t.account,
                Some(t),
                format!(
                    "granted but not used in the last {}: {}{}",
                    human(opts.stale_after),
                    scopes_inline(&unused),
                    if full_window {
                        String::new()
                    } else {
                        format!(" (the usage record covers only {observed_days} days of it)")
                    }
                ),
                "narrow the token to the scopes it used (paste the scopes below into \
                 tokens.yaml, or run the command); try them first as shadow_scopes to count \
                 what they would deny without breaking anything"
                    .into(),
            );
            f.scopes_yaml = Some(scopes_yaml(&keep));
            f.command = Some(update_command(&t.sid, &keep));
            f.unused = Some(unused);
            f.scopes = Some(keep);
            f.last_used = Some(last_used.map(rfc3339));
            f.observed_days = Some(observed_days);
            findings.push(f);
        }
    }

    if usage.is_some() {
        let unknown: Vec<&str> = usage
            .map(|(_, s)| {
                s.tokens
                    .keys()
                    .filter(|sid| !config.tokens.iter().any(|t| &t.sid == *sid))
                    .map(String::as_str)
                    .collect()
            })
            .unwrap_or_default();
        if !unknown.is_empty() {
            notes.push(format!(
                "the usage record holds {} token(s) no longer configured (ignored)",
                unknown.len()
            ));
        }
    }

    findings.sort_by(|a, b| (&a.account, &a.sid, a.kind).cmp(&(&b.account, &b.sid, b.kind)));
    let mut summary = Summary {
        accounts: config.accounts.len(),
        tokens: config.tokens.len(),
        findings: findings.len(),
        ..Summary::default()
    };
    for f in &findings {
        match f.severity {
            Severity::Critical => summary.critical += 1,
            Severity::Warning => summary.warning += 1,
            Severity::Info => summary.info += 1,
        }
    }
    Report {
        generated_at: rfc3339(now),
        config: settings.config_path.clone(),
        usage_record: usage.map(|(p, s)| UsageSource {
            path: p.to_path_buf(),
            saved_at: rfc3339(s.saved_at),
        }),
        stale_after_seconds: opts.stale_after.as_secs(),
        rotate_after_seconds: opts.rotate_after.as_secs(),
        fail_on: opts.fail_on,
        summary,
        notes,
        findings,
    }
}

fn legacy_finding(
    t: &TokenSpec,
    used: Option<&UsedScopes>,
    settings: &crate::config::Settings,
    opts: &AuditOptions,
) -> Finding {
    let mut f = Finding::new(
        FindingKind::LegacyToken,
        Severity::Critical,
        &t.account,
        Some(t),
        String::new(),
        String::new(),
    );
    let create = |scopes: &[ScopeOut]| {
        let mut cmd = format!(
            "scopegate token create --account {} --name {}",
            t.account,
            shell_quote(&format!("{} (scoped)", t.name))
        );
        for s in scopes {
            cmd.push_str(&format!(" --scope {}:{}", s.api, s.methods.join(",")));
        }
        cmd
    };
    match used {
        None => {
            f.message = "legacy token: full access to every API and to paths outside the catalog \
                         (no usage record to propose scopes from)"
                .into();
            f.recommendation = "migrate the integration to a scoped token with only the APIs it \
                                needs, then delete this one"
                .into();
        }
        Some(used) => {
            let proposed: Vec<ScopeOut> = used
                .by_api
                .iter()
                .filter(|(api, _)| settings.api_id(api).is_some())
                .filter_map(|(api, bits)| {
                    let bits = normalize_used(*bits, MethodSet::ALL);
                    (bits != 0).then(|| scope_out(api, bits))
                })
                .collect();
            let outside = used.out_of_catalog;
            f.message = format!(
                "legacy token: full access to every API and to paths outside the catalog; in the \
                 last {} it used {}{}",
                human(opts.stale_after),
                if proposed.is_empty() {
                    "no catalog API".to_owned()
                } else {
                    scopes_inline(&proposed)
                },
                if outside > 0 {
                    format!(" and made {outside} request(s) outside the catalog")
                } else {
                    String::new()
                }
            );
            f.recommendation = format!(
                "create a scoped token with the proposed scopes, move the integration to it, \
                 then delete this one (scopegate token delete {}){}",
                t.sid,
                if outside > 0 {
                    "; add the out-of-catalog paths it uses to the catalog first, or they will be \
                     refused"
                } else {
                    ""
                }
            );
            f.scopes_yaml = Some(scopes_yaml(&proposed));
            f.command = Some(create(&proposed));
            f.scopes = Some(proposed);
            f.out_of_catalog_requests = Some(outside);
        }
    }
    f
}
