//! `scopegate audit`: least-privilege report. (Being implemented.)

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct AuditArgs {}

pub fn run(_args: AuditArgs) -> ExitCode {
    ExitCode::FAILURE
}
