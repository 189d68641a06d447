//! `scopegate notify`: run the notifier outside `serve` (cron, a sidecar, tests). One pass
//! with `--once`; otherwise a pass every `notifications.interval` until stopped.

use std::path::PathBuf;
use std::process::ExitCode;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config;
use crate::gateway::notifier::{self, NotifyMetrics};

#[derive(clap::Args, Debug)]
pub struct NotifyArgs {
    #[arg(long, default_value = "config/scopegate.yaml")]
    pub config: PathBuf,
    /// One pass, then exit: 0 when every due delivery succeeded, 1 when any failed.
    #[arg(long)]
    pub once: bool,
    /// Evaluate as of this instant (RFC 3339), for tests and what-if runs.
    #[arg(long, hide = true)]
    pub now: Option<String>,
}

pub fn run(a: NotifyArgs) -> ExitCode {
    let now = match &a.now {
        None => None,
        Some(s) => match OffsetDateTime::parse(s, &Rfc3339) {
            Ok(t) => Some(t.unix_timestamp()),
            Err(e) => {
                eprintln!("error: --now: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let config = match config::load(&a.config) {
        Ok(c) => c,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(2);
        }
    };
    if config.settings.notifications.is_none() {
        eprintln!(
            "error: {} has no `notifications:` section; nothing to send",
            a.config.display()
        );
        return ExitCode::from(2);
    }
    let metrics = NotifyMetrics::register(&prometheus::Registry::new());
    if !a.once {
        crate::cli::serve::init_tracing(crate::config::LogFormat::Text);
        if let Err(e) = notifier::spawn_periodic(config::absolute(&a.config), metrics) {
            eprintln!("error: cannot start the notifier: {e}");
            return ExitCode::FAILURE;
        }
        loop {
            std::thread::park();
        }
    }
    let now = now.unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp());
    match notifier::run_blocking(notifier::run_pass(&config, &metrics, now, false)) {
        Ok(Ok(r)) => {
            println!("notifications: {} sent, {} failed", r.sent, r.failed);
            if r.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Ok(Err(e)) | Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
