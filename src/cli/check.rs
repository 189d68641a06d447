//! `scopegate check`: validate both files and summarize, or list every error.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, Config};
use crate::domain::model::{TokenKind, TokenStatus};

pub fn run(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            println!("{}", summary(&config));
            // Warnings, not errors: a stricter policy must not stop the gateway loading the
            // tokens issued before it (expiry is enforced per request anyway).
            for w in policy_warnings(&config) {
                eprintln!("warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{errors}");
            ExitCode::FAILURE
        }
    }
}

pub fn summary(config: &Config) -> String {
    let s = &config.settings;
    let count = |f: &dyn Fn(&crate::config::TokenSpec) -> bool| {
        config.tokens.iter().filter(|t| f(t)).count()
    };
    let quotas = config
        .tokens
        .iter()
        .map(|t| {
            usize::from(t.quota.is_some())
                + t.scope_limits.iter().filter(|l| l.quota.is_some()).count()
        })
        .sum::<usize>();
    let fleet = format!(
        "\n  rate limits {}, {quotas} quota(s); usage record {}",
        if s.redis_rate_limit.is_some() {
            "shared in Redis"
        } else {
            "per replica"
        },
        match &s.usage_redis {
            Some(u) => format!("shared in Redis (every {:?})", u.interval),
            None => "per replica".to_owned(),
        }
    );
    format!(
        "configuration OK: {}\n  listen {} (admin {})\n  {} upstream(s), {} API(s) in the catalog, API versions [{}]\n  {} account(s), {} token(s): {} active, {} disabled, {} legacy\n  tokens file {}{fleet}",
        s.config_path.display(),
        s.listen,
        s.admin_listen,
        s.upstreams.len(),
        s.apis.len(),
        s.api_versions.join(", "),
        config.accounts.len(),
        config.tokens.len(),
        count(&|t| t.status == TokenStatus::Active),
        count(&|t| t.status == TokenStatus::Disabled),
        count(&|t| t.kind == TokenKind::Legacy),
        s.tokens_path.display(),
    )
}

/// Tokens that do not meet `token_policy:`, one line each.
pub fn policy_warnings(config: &Config) -> Vec<String> {
    let policy = config.settings.token_policy;
    if policy.is_empty() {
        return Vec::new();
    }
    let now = time::OffsetDateTime::now_utc();
    let mut out = Vec::new();
    for t in &config.tokens {
        for v in policy.violations(t, now) {
            out.push(format!(
                "token {} (account {}) is past token_policy: {}; reset it (scopegate token \
                 reset {}) to issue a secret within the policy",
                t.sid,
                t.account,
                v.message(),
                t.sid
            ));
        }
    }
    out
}
