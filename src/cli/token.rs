//! `scopegate token ...`: the token lifecycle against the tokens file. (Being implemented.)

use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {}

pub fn run(_cmd: TokenCommand) -> ExitCode {
    ExitCode::FAILURE
}
