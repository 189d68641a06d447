//! `scopegate catalog import|diff`: the catalog from the API's own OpenAPI document, and the
//! drift check that keeps the two in step (SPEC §11). The work is in [`crate::config::openapi`].

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use crate::config;
use crate::config::openapi::{self, drift, render, summary, GroupBy, Options};

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Print an `apis:` block built from an OpenAPI 3.x document (YAML or JSON; 3.0 and 3.1,
    /// later 3.x read with a note), to paste into scopegate.yaml.
    Import(ImportArgs),
    /// Compare an OpenAPI document with the configured catalog and the tokens' grants;
    /// exit 1 on drift.
    Diff(DiffArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum GroupByArg {
    /// One API per tag (an operation's first tag; untagged operations: API `default`).
    Tag,
    /// One API per first literal path segment after the prefix all paths share.
    Path,
}

/// The flags both commands share, so a diff reads the document exactly as the import did.
#[derive(Args, Clone, Debug)]
pub struct DocumentArgs {
    /// The OpenAPI document (YAML or JSON; local `$ref`s only).
    pub file: PathBuf,
    #[arg(long, value_enum, default_value = "tag")]
    pub group_by: GroupByArg,
    /// Literal path segments per API name with `--group-by path`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub path_depth: u8,
    /// The path parameter that holds the caller's account (becomes `{account}`).
    #[arg(long, value_name = "NAME")]
    pub account_param: Option<String>,
    /// The upstream for every API (import); diff compares only that upstream's APIs.
    #[arg(long, value_name = "NAME")]
    pub upstream: Option<String>,
    /// Remove this prefix from every path (when the upstream URL carries it).
    #[arg(long, value_name = "PREFIX")]
    pub strip_prefix: Option<String>,
    /// Use this base path instead of the one in the document's `servers` (`/` for none).
    #[arg(long, value_name = "PATH")]
    pub base_path: Option<String>,
}

#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub doc: DocumentArgs,
}

#[derive(Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub doc: DocumentArgs,
    #[arg(long, default_value = "config/scopegate.yaml")]
    pub config: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl DocumentArgs {
    fn options(&self) -> Result<Options, String> {
        for (flag, value) in [
            ("--strip-prefix", &self.strip_prefix),
            ("--base-path", &self.base_path),
        ] {
            if let Some(v) = value {
                if !v.starts_with('/') {
                    return Err(format!("{flag} must start with `/` (got `{v}`)"));
                }
            }
        }
        if let Some(u) = &self.upstream {
            if u.is_empty()
                || !u
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!("--upstream `{u}` is not a valid upstream name"));
            }
        }
        Ok(Options {
            group_by: match self.group_by {
                GroupByArg::Tag => GroupBy::Tag,
                GroupByArg::Path => GroupBy::Path,
            },
            account_param: self.account_param.clone(),
            upstream: self.upstream.clone(),
            strip_prefix: self.strip_prefix.clone(),
            base_path: self.base_path.clone(),
            path_depth: usize::from(self.path_depth),
        })
    }
}

pub fn run(cmd: CatalogCommand) -> ExitCode {
    match cmd {
        CatalogCommand::Import(args) => import(&args.doc),
        CatalogCommand::Diff(args) => diff(&args),
    }
}

/// Reads and imports the document, or prints why not.
fn load(args: &DocumentArgs) -> Result<(Options, openapi::Import), String> {
    let options = args.options()?;
    let text = read(&args.file)?;
    let imported =
        openapi::import(&text, &options).map_err(|e| format!("{}: {e}", args.file.display()))?;
    Ok((options, imported))
}

/// Reads at most [`openapi::document::MAX_DOCUMENT_BYTES`]: the size a regular file reports
/// fails fast, and the read itself stops one byte past the cap, so that a device
/// (`/dev/zero`) or a pipe cannot fill memory.
fn read(path: &Path) -> Result<String, String> {
    let max = openapi::document::MAX_DOCUMENT_BYTES;
    let too_large = || {
        format!(
            "{}: larger than {} MiB; is this an OpenAPI document?",
            path.display(),
            max / (1024 * 1024)
        )
    };
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if file.metadata().is_ok_and(|m| m.len() > max as u64) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() > max {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))
}

fn import(args: &DocumentArgs) -> ExitCode {
    let (options, imported) = match load(args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for line in summary::skipped_lines(&imported.skipped) {
        eprintln!("warning: not imported: {line}");
    }
    for note in &imported.notes {
        eprintln!("note: {note}");
    }
    if imported.operations.is_empty() {
        eprintln!("warning: the document has no operation that can be granted");
    }
    print!(
        "{}",
        render::yaml_block(&imported, &options, &args.file.display().to_string())
    );
    ExitCode::SUCCESS
}

fn diff(args: &DiffArgs) -> ExitCode {
    let (_, imported) = match load(&args.doc) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match config::load(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(2);
        }
    };
    if let Some(u) = &args.doc.upstream {
        if !config.settings.upstreams.iter().any(|up| &up.name == u) {
            eprintln!(
                "error: --upstream `{u}` is not an upstream of {}",
                args.config.display()
            );
            return ExitCode::from(2);
        }
    }
    let report = drift::compare(
        &imported,
        &config.settings,
        &config.tokens,
        args.doc.upstream.as_deref(),
    );
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
        );
    } else {
        print!("{}", report.text(&args.doc.file.display().to_string()));
    }
    if report.has_drift() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
