//! The tokens file as the CLI and the console edit it: where it is, a lock serializing
//! edits, validation of a pending edit against the gateway config, and atomic writes.
//!
//! Every change is one transaction ([`Store::transact`]): take `tokens.yaml.lock`, read the
//! file, apply the edit to a [`TokensDoc`] (comment-preserving text splices), validate the
//! new text with every rule of `config::load_from_sources`, then replace the file atomically
//! ([`config::atomic::write_atomic`]: temp file in the same folder, write, fsync, rename,
//! fsync the folder) keeping its permission bits and, where allowed, its owner. The lock is
//! held from the read to the rename, so two concurrent runs can never lose each other's
//! update.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::yamlsrc::{EditError, TokensDoc};
use crate::config::{self, ConfigError, ConfigErrors, Settings};

/// A failed command: one line for the operator (printed as `error: ...`), and what kind of
/// failure it is (the admin API answers with the matching status).
#[derive(Debug)]
pub struct Fail {
    pub message: String,
    pub kind: FailKind,
}

/// Why an operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// The request breaks a rule (bad value, validation error): 422.
    Invalid,
    /// No such token (or it was deleted): 404.
    NotFound,
    /// The request conflicts with the state (token limit, nothing to promote): 409.
    Conflict,
    /// The tokens file cannot be written (a read-only mount): 409.
    ReadOnly,
    /// Reading, locking or randomness failed: 500.
    Internal,
}

pub fn fail(msg: impl Into<String>) -> Fail {
    Fail {
        message: msg.into(),
        kind: FailKind::Invalid,
    }
}

fn fail_as(kind: FailKind, msg: impl Into<String>) -> Fail {
    Fail {
        message: msg.into(),
        kind,
    }
}

/// The gateway config and the tokens file it names.
pub struct Store {
    pub config_path: PathBuf,
    gateway_src: String,
    pub settings: Settings,
    /// The tokens file, with its folder (and the file itself, if it is a symlink) resolved,
    /// so that every CLI run locks and replaces the same real file.
    pub tokens_path: PathBuf,
}

impl Store {
    /// Reads and validates `scopegate.yaml` (the tokens file is not read yet).
    pub fn open(config_path: &Path) -> Result<Store, Fail> {
        let config_path = config::absolute(config_path);
        let gateway_src = config::read(&config_path).map_err(|e| gateway_fail(&e))?;
        let settings =
            config::parse_gateway(&config_path, &gateway_src).map_err(|e| gateway_fail(&e))?;
        let tokens_path = resolve(&settings.tokens_path)?;
        Ok(Store {
            config_path,
            gateway_src,
            settings,
            tokens_path,
        })
    }

    pub fn display(&self) -> String {
        self.tokens_path.display().to_string()
    }

    /// The current text of the tokens file; a missing file reads as empty.
    pub fn read(&self) -> Result<String, Fail> {
        match std::fs::read(&self.tokens_path) {
            Ok(bytes) => String::from_utf8(bytes)
                .map_err(|_| fail(format!("{} is not UTF-8 text", self.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(fail_as(
                FailKind::Internal,
                format!("cannot read {}: {e}", self.display()),
            )),
        }
    }

    /// Reads and parses the tokens file without taking the lock (for `list`, `show` and the
    /// confirmation step of `delete`: the file is only ever replaced whole, so an unlocked
    /// read sees one version or the next).
    pub fn read_doc(&self) -> Result<TokensDoc, Fail> {
        let text = self.read()?;
        TokensDoc::parse(&text).map_err(|e| self.edit_fail(&e))
    }

    /// Validates the whole configuration with `text` as the tokens file.
    pub fn validate(&self, text: &str) -> Result<config::Config, ConfigErrors> {
        config::load_from_sources(&self.config_path, &self.gateway_src, Some(text))
    }

    /// Lock, read, edit, validate, write. `edit` changes the document and returns what the
    /// command wants to report; when it leaves the text unchanged nothing is written.
    pub fn transact<T>(
        &self,
        edit: impl FnOnce(&mut TokensDoc) -> Result<T, Fail>,
    ) -> Result<T, Fail> {
        let _lock = self.lock()?;
        let before = self.read()?;
        let mut doc = TokensDoc::parse(&before).map_err(|e| self.edit_fail(&e))?;
        let out = edit(&mut doc)?;
        if doc.text() != before {
            self.check(&before, doc.text())?;
            self.write(doc.text())?;
        }
        Ok(out)
    }

    pub fn edit_fail(&self, e: &EditError) -> Fail {
        fail_as(
            FailKind::Internal,
            format!("cannot edit {}: {e}; nothing was written", self.display()),
        )
    }

    /// Refuses an edit that breaks a validation rule. Errors that the file already had
    /// before the edit (a hand edit gone wrong) do not block a change that adds none, so an
    /// operator can still disable or delete a token to repair the file; they are reported
    /// as a warning.
    fn check(&self, before: &str, after: &str) -> Result<(), Fail> {
        let Err(after_errors) = self.validate(after) else {
            return Ok(());
        };
        let mut known: Vec<String> = match self.validate(before) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| e.message).collect(),
        };
        let new: Vec<&ConfigError> = after_errors
            .0
            .iter()
            .filter(|e| match known.iter().position(|m| *m == e.message) {
                Some(i) => {
                    known.swap_remove(i);
                    false
                }
                None => true,
            })
            .collect();
        match new.first() {
            None => {
                eprintln!(
                    "warning: {} still has {} validation error(s) from before this change; the \
                     gateway keeps its previous state until they are fixed (see `scopegate check`)",
                    self.display(),
                    after_errors.0.len()
                );
                Ok(())
            }
            Some(first) => {
                let more = match new.len() {
                    1 => String::new(),
                    n => format!(" (and {} more; see `scopegate check`)", n - 1),
                };
                let hint = if first.hint.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", first.hint)
                };
                Err(fail(format!(
                    "{}{hint}{more}; nothing was written",
                    first.message
                )))
            }
        }
    }

    /// Takes `<tokens file>.lock` (exclusive, blocking). Released when the file is dropped.
    fn lock(&self) -> Result<File, Fail> {
        let mut name = self.tokens_path.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&path).map_err(|e| {
            read_only_or_internal(
                &e,
                format!("cannot open the lock file {}: {e}", path.display()),
            )
        })?;
        lock_file(&file, &path)?;
        Ok(file)
    }

    /// Replaces the tokens file atomically with `text` ([`config::atomic::write_atomic`]),
    /// keeping its permission bits and owner (0600 for a new file).
    fn write(&self, text: &str) -> Result<(), Fail> {
        let replaced =
            config::atomic::write_atomic(&self.tokens_path, text.as_bytes(), Some(0o600)).map_err(
                |e| {
                    read_only_or_internal(
                        &e,
                        format!("cannot write {}: {e}; nothing was written", self.display()),
                    )
                },
            )?;
        if let Some((uid, gid, e)) = replaced.owner_lost {
            eprintln!(
                "warning: cannot keep the tokens file's owner {uid}:{gid} ({e}); the new file \
                 belongs to this user: check that the gateway can still read it"
            );
        }
        if let Some(e) = replaced.folder_unsynced {
            eprintln!(
                "warning: {} was replaced, but syncing its folder failed: {e}",
                self.display()
            );
        }
        Ok(())
    }
}

/// A write refused by permissions or a read-only file system (a ConfigMap mount) is
/// [`FailKind::ReadOnly`]; anything else is internal.
fn read_only_or_internal(e: &io::Error, msg: String) -> Fail {
    let read_only = e.kind() == io::ErrorKind::PermissionDenied
        || e.kind() == io::ErrorKind::ReadOnlyFilesystem;
    fail_as(
        if read_only {
            FailKind::ReadOnly
        } else {
            FailKind::Internal
        },
        msg,
    )
}

/// Whether this process can replace the tokens file: its folder must take a new file (the
/// atomic write creates a temp file there and renames it). A ConfigMap mount cannot.
impl Store {
    pub fn writable(&self) -> bool {
        let dir = match self.tokens_path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let probe = dir.join(format!(
            ".scopegate-write-probe.{}.{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        match OpenOptions::new().write(true).create_new(true).open(&probe) {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
                true
            }
            Err(_) => false,
        }
    }
}

/// `File::lock` (std, stable since Rust 1.89): `flock` on Unix, `LockFileEx` on Windows.
/// The project therefore needs Rust 1.89; the allow goes once Cargo.toml's `rust-version`
/// says so.
fn lock_file(file: &File, path: &Path) -> Result<(), Fail> {
    use std::fs::TryLockError;
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => {
            eprintln!(
                "waiting for another `scopegate token` run to finish (lock {})...",
                path.display()
            );
            file.lock()
                .map_err(|e| fail(format!("cannot lock {}: {e}", path.display())))
        }
        Err(TryLockError::Error(e)) => Err(fail(format!("cannot lock {}: {e}", path.display()))),
    }
}

/// Resolves the tokens file's folder (and the file, if it is a symlink) so that the lock
/// and the rename act on the real file.
fn resolve(path: &Path) -> Result<PathBuf, Fail> {
    let name = path
        .file_name()
        .ok_or_else(|| fail(format!("tokens_file {} names no file", path.display())))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(parent).map_err(|e| {
        fail(format!(
            "the folder of the tokens file {} is not usable: {e}",
            path.display()
        ))
    })?;
    let joined = dir.join(name);
    match std::fs::symlink_metadata(&joined) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(&joined).map_err(|e| {
            fail(format!(
                "the tokens file {} is a dangling symlink: {e}",
                joined.display()
            ))
        }),
        _ => Ok(joined),
    }
}

fn gateway_fail(errors: &ConfigErrors) -> Fail {
    let text = errors.to_string();
    fail(format!(
        "the gateway config is invalid, fix it first:\n{}",
        text.trim_end()
    ))
}
