//! The audit report as text, grouped by account and token.

use super::*;

/// The readable report: findings grouped by account and token.
pub fn render_text(report: &Report, config: &Config) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "scopegate audit, {}", report.generated_at);
    let _ = writeln!(out, "  config        {}", report.config.display());
    match &report.usage_record {
        Some(u) => {
            let _ = writeln!(
                out,
                "  usage record  {} (saved {})",
                u.path.display(),
                u.saved_at
            );
        }
        None => {
            let _ = writeln!(out, "  usage record  none");
        }
    }
    let _ = writeln!(
        out,
        "  thresholds    stale after {}, rotate after {}",
        human(Duration::from_secs(report.stale_after_seconds)),
        human(Duration::from_secs(report.rotate_after_seconds))
    );
    for n in &report.notes {
        let _ = writeln!(out, "  note: {n}");
    }

    let mut clean: Vec<&str> = Vec::new();
    for account in &config.accounts {
        let account_findings: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.account == account.id)
            .collect();
        let tokens: Vec<&TokenSpec> = config
            .tokens
            .iter()
            .filter(|t| t.account == account.id)
            .collect();
        if account_findings.is_empty() {
            clean.extend(tokens.iter().map(|t| t.sid.as_str()));
            continue;
        }
        let _ = writeln!(out, "\naccount {} ({})", account.id, account.name);
        for f in account_findings.iter().filter(|f| f.sid.is_none()) {
            write_finding(&mut out, f, "  ");
        }
        for t in tokens {
            let mine: Vec<&&Finding> = account_findings
                .iter()
                .filter(|f| f.sid.as_deref() == Some(t.sid.as_str()))
                .collect();
            if mine.is_empty() {
                clean.push(&t.sid);
                continue;
            }
            let _ = writeln!(
                out,
                "  token {} \"{}\" ({}, {})",
                t.sid,
                t.name,
                t.kind.as_str(),
                t.status.as_str()
            );
            for f in mine {
                write_finding(&mut out, f, "    ");
            }
        }
    }
    if !clean.is_empty() {
        let _ = writeln!(out, "\nno findings: {}", clean.join(", "));
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "\nsummary: {} critical, {} warning, {} info in {} token(s) of {} account(s) (fail-on: {})",
        s.critical,
        s.warning,
        s.info,
        s.tokens,
        s.accounts,
        match report.fail_on {
            FailOn::None => "none",
            FailOn::Info => "info",
            FailOn::Warning => "warning",
            FailOn::Critical => "critical",
        }
    );
    out
}

pub(super) fn write_finding(out: &mut String, f: &Finding, indent: &str) {
    use std::fmt::Write;
    let sev = f.severity.as_str().to_ascii_uppercase();
    let _ = writeln!(out, "{indent}{sev:<8} {}: {}", f.kind.as_str(), f.message);
    let pad = format!("{indent}         ");
    let _ = writeln!(out, "{pad}-> {}", f.recommendation);
    if let Some(yaml) = &f.scopes_yaml {
        let label = match f.kind {
            FindingKind::LegacyToken => "proposed scopes",
            _ => "narrowed scopes",
        };
        let _ = writeln!(out, "{pad}{label}:");
        for line in yaml.lines() {
            let _ = writeln!(out, "{pad}    {line}");
        }
    }
    if let Some(cmd) = &f.command {
        let _ = writeln!(out, "{pad}$ {cmd}");
    }
}
