//! The `scopegate` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    scopegate::cli::main()
}
