//! `scopegate explain`: why a token may or may not make a request. (Being implemented.)

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {}

pub fn run(_args: ExplainArgs) -> ExitCode {
    ExitCode::FAILURE
}
