//! Configuration: reading both files, validating them in full, reporting every error.
//!
//! `raw` holds the serde shapes, `validate` the rules, `settings` the checked result and
//! `error` the file/line/field error type; `token_cache` keeps a large tokens file's
//! validated result for the next start or reload. Loading does blocking file I/O: call it from
//! `spawn_blocking` on a running server.

pub mod admin;
pub mod atomic;
pub mod error;
mod key_names;
pub mod notify;
pub mod openapi;
pub mod raw;
pub mod redis_url;
pub mod token_cache;
pub mod token_policy;
pub mod tokens_yaml;
pub use crate::domain::settings;
#[cfg(test)]
pub(crate) mod test_fixture;
pub mod validate;
pub mod yamlsrc;

use std::path::{Path, PathBuf};

pub use error::{ConfigError, ConfigErrors, ErrorSink};
pub use settings::*;
pub use validate::duration_or;

/// Reads and validates `scopegate.yaml` and the tokens file it names.
pub fn load(config_path: &Path) -> Result<Config, ConfigErrors> {
    let config_path = absolute(config_path);
    let gateway_src = read(&config_path)?;
    let tokens_path_hint = None;
    load_from_sources(&config_path, &gateway_src, tokens_path_hint)
}

/// Validates both files, reading the tokens file from disk unless its text is given
/// (the CLI validates a pending edit before writing it).
pub fn load_from_sources(
    config_path: &Path,
    gateway_src: &str,
    tokens_src: Option<&str>,
) -> Result<Config, ConfigErrors> {
    let (settings, errors) = parse_gateway_checked(config_path, gateway_src)?;
    with_tokens(settings, errors, |settings| match tokens_src {
        Some(s) => Ok(s.to_owned()),
        None => read(&settings.tokens_path),
    })
}

/// Like [`load`], through the tokens cache ([`token_cache`]) for tokens files of at least
/// `cache_min_bytes`: the configuration, and after a miss the cache to write (the caller
/// writes it once the configuration is in use). Errors are exactly [`load`]'s: the cache
/// is only consulted for a `scopegate.yaml` without errors, and a file it does not match
/// is read, validated and reported as always.
pub fn load_cached(
    config_path: &Path,
    cache_min_bytes: u64,
) -> Result<(Config, Option<token_cache::Pending>), ConfigErrors> {
    let config_path = absolute(config_path);
    let gateway_src = read(&config_path)?;
    let (settings, errors) = parse_gateway_checked(&config_path, &gateway_src)?;
    let cache = errors
        .is_empty()
        .then(|| token_cache::Cache::new(&settings, cache_min_bytes))
        .flatten();
    if let Some(hit) = cache.as_ref().and_then(token_cache::Cache::load) {
        let config = Config {
            settings,
            accounts: hit.accounts,
            tokens: hit.tokens,
            deleted_sids: hit.deleted_sids,
        };
        return Ok((config, None));
    }
    let mut read_digest = None;
    let config = with_tokens(settings, errors, |settings| {
        let src = read(&settings.tokens_path)?;
        read_digest = Some(token_cache::Digest::of(src.as_bytes()));
        Ok(src)
    })?;
    let pending = cache
        .zip(read_digest)
        .and_then(|(cache, digest)| cache.pending(&digest, &config));
    Ok((config, pending))
}

/// Reads the tokens file with `tokens_src` (unless `scopegate.yaml`'s errors make that
/// pointless) and validates it against `settings`; every error of both files at once.
fn with_tokens(
    settings: Settings,
    mut errors: Vec<ConfigError>,
    tokens_src: impl FnOnce(&Settings) -> Result<String, ConfigErrors>,
) -> Result<Config, ConfigErrors> {
    // Errors in settings the tokens do not depend on (a timeout, a limit) still let the
    // tokens file be checked, so that both files' errors come in one report.
    if errors.iter().any(|e| tokens_depend_on(&e.field)) {
        return Err(ConfigErrors(errors));
    }
    let tokens_src = match tokens_src(&settings) {
        Ok(s) => s,
        Err(mut e) => {
            errors.append(&mut e.0);
            return Err(ConfigErrors(errors));
        }
    };
    let tokens_path = settings.tokens_path.clone();
    let mut sink = ErrorSink::new(&tokens_path, &tokens_src);
    sink.errors = errors;
    let (inputs, deleted) = match fast_tokens(&tokens_src) {
        Some(typed) => typed.into_inputs(),
        None => {
            parse_yaml::<raw::RawTokensFile>(&tokens_path, &tokens_src, &mut sink)?.into_inputs()
        }
    };
    let (accounts, tokens, deleted_sids) = validate::tokens(inputs, deleted, &settings, &mut sink);
    if !sink.errors.is_empty() {
        return Err(ConfigErrors(sink.errors));
    }
    Ok(Config {
        settings,
        accounts,
        tokens,
        deleted_sids,
    })
}

/// Reads and validates `scopegate.yaml` alone.
pub fn parse_gateway(config_path: &Path, src: &str) -> Result<Settings, ConfigErrors> {
    let (settings, errors) = parse_gateway_checked(config_path, src)?;
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// `scopegate.yaml` validated: the settings (with defaults where a value was refused)
/// and the errors found; `Err` when the file could not be parsed at all.
fn parse_gateway_checked(
    config_path: &Path,
    src: &str,
) -> Result<(Settings, Vec<ConfigError>), ConfigErrors> {
    let mut sink = ErrorSink::new(config_path, src);
    let raw: raw::RawGateway = parse_yaml(config_path, src, &mut sink)?;
    let settings = validate::gateway(raw, config_path, &mut sink);
    Ok((settings, sink.errors))
}

/// True for an error in `scopegate.yaml` that the tokens file's validation depends on (the
/// catalog, the API versions, the tokens file itself, the per-account limit): checking
/// the tokens against defaulted values would only report consequences.
fn tokens_depend_on(field: &str) -> bool {
    const INDEPENDENT: &[&str] = &[
        "listen",
        "admin_listen",
        "timeouts",
        "limits",
        "rate_limit",
        "bruteforce",
        "log_format",
        "access_log",
        "tls",
        "state_dir",
        "invalid_credentials_status",
        "forward_authorization",
        "http2_cleartext",
    ];
    let top = field.split(['.', '[']).next().unwrap_or("");
    !INDEPENDENT.contains(&top)
}

/// Tokens files from this size on (about 2,000 tokens) are read on two threads: below it
/// a thread costs more than it saves.
const SPLIT_MIN_BYTES: usize = 1 << 20;

/// The typed single pass over a tokens file: the subset reader for files in the shape
/// `scopegate token` writes (several times faster; on two threads for a large file),
/// else serde-saphyr, which streams the document instead of buffering every parser event
/// first (which matters at 100,000 tokens); `None` sends the file to the value-by-value
/// path that reports every error.
fn fast_tokens(src: &str) -> Option<raw::TypedTokensFile> {
    if src.trim().is_empty() {
        return None;
    }
    if let Some((accounts, tail)) =
        tokens_yaml::read_split::<_, raw::TypedTokensTail>(src, "accounts", SPLIT_MIN_BYTES)
    {
        return Some(raw::TypedTokensFile {
            accounts,
            deleted_sids: tail.deleted_sids,
        });
    }
    if let Some(typed) = tokens_yaml::read(src) {
        return Some(typed);
    }
    // The tokens file is the operator's own (not client input) and legitimately large:
    // no node budget (the default stops at 250,000 nodes, about 20,000 tokens).
    let mut options = serde_saphyr::Options::default();
    options.budget = None;
    serde_saphyr::from_str_with_options::<raw::TypedTokensFile>(src, options).ok()
}

/// Parses a file in two steps, so a syntax error (with serde_yaml's line) is told apart
/// from a value of the wrong type. Names written as keys that YAML reads as numbers,
/// booleans or null are reported first, each at its line ([`key_names`]). An empty file is
/// an empty mapping, not an error: a fresh tokens file starts empty.
fn parse_yaml<T: serde::de::DeserializeOwned + Default>(
    file: &Path,
    src: &str,
    sink: &mut ErrorSink<'_>,
) -> Result<T, ConfigErrors> {
    let value: serde_yaml::Value = serde_yaml::from_str(src).map_err(|e| {
        let message = e.to_string();
        ConfigErrors::single(ConfigError {
            file: file.to_path_buf(),
            line: e.location().map_or(0, |l| l.line()),
            field: String::new(),
            message: format!(
                "YAML syntax error: {}",
                message.split(" at line ").next().unwrap_or(&message)
            ),
            hint: "fix the YAML syntax at that line".into(),
        })
    })?;
    if value.is_null() {
        return Ok(T::default());
    }
    let names = key_names::not_text(&value, src, file);
    if !names.is_empty() {
        return Err(ConfigErrors(names));
    }
    // Through serde_path_to_error: serde_yaml's error for a value of the wrong type names
    // neither the key nor (from a `Value`) the line; the path gives both.
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { "" } else { path.as_str() };
        sink.push_serde(path, e.inner());
        ConfigErrors(std::mem::take(&mut sink.errors))
    })
}

pub fn read(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        let (message, hint) = match e.kind() {
            std::io::ErrorKind::NotFound => (
                "file not found".to_owned(),
                "check the path (relative paths in scopegate.yaml are relative to it)",
            ),
            std::io::ErrorKind::PermissionDenied => (
                "permission denied".to_owned(),
                "let the user running scopegate read the file",
            ),
            _ => (
                format!("cannot read the file: {e}"),
                "check the path and its permissions",
            ),
        };
        ConfigErrors::single(ConfigError {
            file: path.to_path_buf(),
            line: 0,
            field: String::new(),
            message,
            hint: hint.into(),
        })
    })
}

/// Makes a path absolute against the current folder, so that relative paths inside the
/// config keep working after the process changes folder and in error messages.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
