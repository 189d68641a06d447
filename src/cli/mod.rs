//! The command line: argument parsing and one module per command family.

pub mod audit;
pub mod catalog;
pub mod check;
pub mod demo;
pub mod echo;
pub mod explain;
pub mod notify;
pub mod promql;
pub mod serve;
pub mod token;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "scopegate",
    version,
    about = "A reverse-proxy gateway that enforces scoped API tokens"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, default_value = "config/scopegate.yaml")]
        config: PathBuf,
        /// Log format (overrides `log_format` in the config).
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
        /// Address of the main listener (overrides `listen` in the config).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Address of the admin listener (overrides `admin_listen` in the config).
        #[arg(long, value_name = "ADDR")]
        admin_listen: Option<SocketAddr>,
    },
    /// Validate the configuration; print a summary, or every error and exit 1.
    Check {
        #[arg(long, default_value = "config/scopegate.yaml")]
        config: PathBuf,
    },
    /// Run the gateway on a config folder it names (temporary, or --dir DIR kept), in
    /// front of a built-in echo upstream, with fresh demo tokens; print curl lines and the
    /// commands to create a token, explain and audit.
    Demo {
        /// The example gateway config a new demo folder starts from.
        #[arg(long, default_value = "config/scopegate.yaml")]
        config: PathBuf,
        /// Create the demo's config folder here and keep it (a later `demo --dir` on it
        /// serves it again); default: a temporary folder removed when the demo stops.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Main listener [default: 127.0.0.1:8080, or the folder's config].
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Admin listener [default: 127.0.0.1:9901, or the folder's config].
        #[arg(long, value_name = "ADDR")]
        admin_listen: Option<SocketAddr>,
        /// Where the built-in echo upstream of a new folder listens [default: any free
        /// port; with --dir 127.0.0.1:3000, where `scopegate echo` serves it later].
        #[arg(long, value_name = "ADDR")]
        upstream_listen: Option<SocketAddr>,
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
        /// Serve HTTPS with a freshly generated self-signed certificate (for localhost).
        #[arg(long)]
        tls: bool,
    },
    /// Run the demo's echo upstream alone (the example config's upstream is 127.0.0.1:3000).
    Echo {
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
    },
    /// Read a secret on stdin and print its stored form (`sha256:<hex>`); with --argon2,
    /// read an admin password and print an argon2id PHC string for `admin.users`.
    Hash {
        #[arg(long)]
        argon2: bool,
    },
    /// Manage tokens in the tokens file: create, list, show, update, reset, disable, enable, delete.
    /// Boxed: its arguments outweigh every other command's (clippy::large_enum_variant).
    #[command(subcommand)]
    Token(Box<token::TokenCommand>),
    /// Least-privilege audit: unused scopes, stale tokens, overdue rotations, legacy tokens.
    Audit(audit::AuditArgs),
    /// Explain the decision for one token, method and path.
    Explain(explain::ExplainArgs),
    /// The catalog from the API's OpenAPI document: import it, check it for drift.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Send due notifications to token contacts (expiry, rotation, stale; queued changes).
    Notify(notify::NotifyArgs),
}

/// Exit code of a command whose reader went away (128 + SIGPIPE, what a shell reports).
const CLOSED_STDOUT_EXIT: i32 = 141;

/// `scopegate token list | head`: once the reader has gone, printing fails with a broken
/// pipe, which `println!` turns into a panic and a backtrace note. Such a command ends
/// quietly instead, as command-line tools do; any other panic is reported as before.
fn quiet_on_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(CLOSED_STDOUT_EXIT);
        }
        report(info);
    }));
}

pub fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            log_format,
            listen,
            admin_listen,
        } => serve::run(
            &config,
            log_format,
            serve::ListenOverrides {
                listen,
                admin_listen,
            },
        ),
        Command::Check { config } => check::run(&config),
        Command::Demo {
            config,
            dir,
            listen,
            admin_listen,
            upstream_listen,
            log_format,
            tls,
        } => demo::run(demo::DemoArgs {
            example: config,
            listen,
            admin_listen,
            upstream_listen: upstream_listen.unwrap_or_else(|| {
                let port = if dir.is_some() { 3000 } else { 0 };
                SocketAddr::from(([127, 0, 0, 1], port))
            }),
            dir,
            log_format,
            tls,
        }),
        Command::Echo { listen } => echo::run(listen),
        Command::Hash { argon2 } => hash(argon2),
        Command::Token(cmd) => token::run(*cmd),
        Command::Audit(args) => audit::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Catalog(cmd) => catalog::run(cmd),
        Command::Notify(args) => notify::run(args),
    }
}

fn hash(argon2: bool) -> ExitCode {
    use std::io::Read;
    let mut input = zeroize::Zeroizing::new(String::new());
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("error: cannot read the secret from stdin: {e}");
        return ExitCode::FAILURE;
    }
    let secret = input.strip_suffix('\n').unwrap_or(&input);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    if secret.is_empty() {
        eprintln!("error: the secret is empty");
        return ExitCode::FAILURE;
    }
    if argon2 {
        return match crate::gateway::console::auth::hash_password(secret.as_bytes()) {
            Ok(phc) => {
                println!("{phc}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if crate::domain::secret_format::shape(secret.as_bytes())
        == crate::domain::secret_format::Shape::Corrupt
    {
        eprintln!(
            "error: the secret starts with `sgs_` but is not a valid scopegate secret (length, \
             characters or checksum); the gateway refuses such secrets: pick another"
        );
        return ExitCode::FAILURE;
    }
    println!(
        "{}",
        crate::domain::model::SecretHash::of_secret(secret.as_bytes()).to_stored()
    );
    ExitCode::SUCCESS
}
