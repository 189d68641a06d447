//! `scopegate audit`: the least-privilege report ([`crate::gateway::manage::audit`]) for
//! a configuration and the usage record it finds (the fleet's, from Prometheus or Redis,
//! or the replica's own), printed as text or JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use time::OffsetDateTime;

use crate::config::{self, Config, TokenSpec};
use crate::gateway::manage::audit::*;
use crate::gateway::usage::{self, StateError, UsageState};

mod render;
mod source;

pub use render::render_text;
use source::*;

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    #[arg(long, default_value = "config/scopegate.yaml")]
    pub config: PathBuf,
    /// Print one JSON document (for scripts) instead of the readable report.
    #[arg(long)]
    pub json: bool,
    /// A token (or a granted method) not used for this long is reported.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub stale_after: Duration,
    /// A secret older than this (since `rotated_at`, else `created_at`) is due for rotation.
    #[arg(long, default_value = "90d", value_parser = parse_duration)]
    pub rotate_after: Duration,
    /// Exit 1 when any finding is at or above this severity (`none`: always exit 0).
    #[arg(long, value_enum, default_value_t = FailOn::None)]
    pub fail_on: FailOn,
    /// The usage record to read (default: the fleet record in Redis with
    /// `usage.backend: redis`, else `<state_dir>/usage.json` of the config).
    #[arg(long, conflicts_with = "prometheus")]
    pub state: Option<PathBuf>,
    /// Read the fleet's usage from this Prometheus server (e.g. http://prometheus:9090),
    /// which scrapes every replica, instead of a usage record.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// Evaluate as of this instant (RFC 3339), for reproducible reports.
    #[arg(long, hide = true)]
    pub now: Option<String>,
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
pub(crate) fn print_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = crate::domain::duration::parse(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

pub fn run(args: AuditArgs) -> ExitCode {
    let config = match config::load(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            eprint!("{errors}");
            eprintln!("scopegate audit: fix the configuration first (see `scopegate check`)");
            return ExitCode::from(2);
        }
    };
    let now_unix = match &args.now {
        None => OffsetDateTime::now_utc().unix_timestamp(),
        Some(s) => match OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
            Ok(t) => t.unix_timestamp(),
            Err(e) => {
                eprintln!("scopegate audit: --now: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let mut notes = Vec::new();
    let fleet = match fleet_usage(&args, &config, now_unix) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("scopegate audit: {e}");
            return ExitCode::from(2);
        }
    };
    let state = match fleet {
        Some((label, state, note)) => {
            notes.push(note);
            Some((PathBuf::from(label), state))
        }
        None => match local_usage(&args, &config, &mut notes) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("scopegate audit: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let options = AuditOptions {
        stale_after: args.stale_after,
        rotate_after: args.rotate_after,
        fail_on: args.fail_on,
        now_unix,
    };
    let mut report = audit(
        &config,
        state.as_ref().map(|(p, s)| (p.as_path(), s)),
        &options,
    );
    let mut all_notes = notes;
    all_notes.append(&mut report.notes);
    report.notes = all_notes;
    // The suggested commands act on the configuration this audit read.
    let config_arg = format!(
        "--config {}",
        shell_quote(&args.config.display().to_string())
    );
    for f in &mut report.findings {
        f.recommendation = with_config(&f.recommendation, &config_arg);
        if let Some(c) = f.command.as_mut() {
            *c = with_config(c, &config_arg);
        }
    }
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => print_stdout(&format!("{s}\n")),
            Err(e) => {
                eprintln!("scopegate audit: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print_stdout(&render_text(&report, &config));
    }
    if report.fails() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Adds `--config ...` after every `scopegate token <verb>` in a suggestion.
fn with_config(text: &str, config_arg: &str) -> String {
    const PREFIX: &str = "scopegate token ";
    let mut out = String::with_capacity(text.len() + config_arg.len());
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        let after = &rest[at + PREFIX.len()..];
        let verb_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let end = at + PREFIX.len() + verb_len;
        out.push_str(&rest[..end]);
        out.push(' ');
        out.push_str(config_arg);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod config_arg_tests {
    #[test]
    fn every_suggested_command_names_the_config() {
        assert_eq!(
            super::with_config(
                "disable it (scopegate token disable SG1) and delete it (scopegate token delete SG1)",
                "--config c.yaml"
            ),
            "disable it (scopegate token disable --config c.yaml SG1) and delete it \
             (scopegate token delete --config c.yaml SG1)"
        );
        assert_eq!(super::with_config("no command", "--config c"), "no command");
    }
}
