//! `scopegate token scan PATH...`: the first step of the leak runbook. Finds identifiable
//! secrets (`sgs_`, valid checksum: look-alikes are ignored) in files, folders (recursively)
//! and stdin (`-`), and names the token each belongs to by hashing it and comparing with
//! the stored hashes. Never prints a secret. With `--disable`, every matched token is
//! disabled in one atomic write of the tokens file.
//!
//! Exit status: 0 nothing found, 1 a secret with a valid checksum was found (whether or
//! not a token matched), 2 the scan itself failed (unreadable path, bad config).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::domain::model::SecretHash;
use crate::domain::secret_format::{self, SECRET_LEN};
use crate::gateway::manage::store::{fail, Fail, Store};
use crate::gateway::manage::view::{self, str_field};

/// Files larger than this are skipped by default (logs and dumps are scanned; disk images
/// are not).
const DEFAULT_MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Bytes inspected for a NUL to tell binary files apart, as git and grep do.
const BINARY_SNIFF: usize = 8192;
/// Folder depth bound: deeper trees are reported, not followed.
const MAX_DEPTH: usize = 64;

#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    #[command(flatten)]
    pub config: super::ConfigArg,
    /// Files or folders to scan (folders recursively); `-` reads stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Disable every token whose secret was found, in one atomic write.
    #[arg(long)]
    pub disable: bool,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Skip files larger than this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FILE_BYTES)]
    pub max_file_size: u64,
}

#[derive(Debug, Serialize)]
struct Finding {
    file: String,
    line: usize,
    /// The token whose stored hash matches, or `None`: a valid-looking secret of no token
    /// in this configuration (another installation's, or a deleted token's).
    sid: Option<String>,
    account: Option<String>,
    /// `current`, or `previous` for a secret still inside a reset's grace period.
    matched: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct Skipped {
    path: String,
    reason: String,
}

/// The token a stored hash belongs to.
struct Known {
    sid: String,
    account: String,
    which: &'static str,
}

struct Scanner {
    max: u64,
    findings: Vec<Finding>,
    skipped: Vec<Skipped>,
    visited_dirs: HashSet<(u64, u64)>,
    /// By stored hash (`sha256:<hex>`, normalized): a found secret is hashed once and
    /// looked up, so the cost does not grow with the number of tokens.
    known: HashMap<String, Known>,
    errors: Vec<String>,
}

pub fn run(a: ScanArgs) -> ExitCode {
    match scan(a) {
        Ok(found) => {
            if found {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(Fail { message: msg, .. }) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn known_hashes(root: &serde_yaml::Value) -> HashMap<String, Known> {
    let mut out = HashMap::new();
    let Some(accounts) = root
        .get("accounts")
        .and_then(serde_yaml::Value::as_sequence)
    else {
        return out;
    };
    for acc in accounts {
        let account = str_field(acc, "id").unwrap_or_default();
        let Some(tokens) = acc.get("tokens").and_then(serde_yaml::Value::as_sequence) else {
            continue;
        };
        for t in tokens {
            let Some(sid) = str_field(t, "sid") else {
                continue;
            };
            for (field, which) in [
                ("auth_token_hash", "current"),
                ("previous_auth_token_hash", "previous"),
            ] {
                if let Some(hash) = str_field(t, field).and_then(|h| SecretHash::parse(&h).ok()) {
                    out.entry(hash.to_stored()).or_insert(Known {
                        sid: sid.clone(),
                        account: account.clone(),
                        which,
                    });
                }
            }
        }
    }
    out
}

fn scan(a: ScanArgs) -> Result<bool, Fail> {
    let store = Store::open(&a.config.config)?;
    let doc = store.read_doc()?;
    let mut s = Scanner {
        max: a.max_file_size,
        findings: Vec::new(),
        skipped: Vec::new(),
        visited_dirs: HashSet::new(),
        known: known_hashes(doc.value()),
        errors: Vec::new(),
    };
    for p in &a.paths {
        if p.as_os_str() == "-" {
            let mut buf = Zeroizing::new(Vec::new());
            std::io::stdin()
                .lock()
                .take(s.max + 1)
                .read_to_end(&mut buf)
                .map_err(|e| fail(format!("cannot read stdin: {e}")))?;
            if buf.len() as u64 > s.max {
                s.skipped.push(Skipped {
                    path: "-".into(),
                    reason: format!("larger than {} bytes", s.max),
                });
            } else {
                s.scan_bytes("-", &buf);
            }
        } else {
            s.walk(p, 0, true);
        }
    }
    if !s.errors.is_empty() {
        return Err(fail(s.errors.join("; ")));
    }

    let mut to_disable: Vec<String> = Vec::new();
    for f in &s.findings {
        if let Some(sid) = &f.sid {
            if !to_disable.contains(sid) {
                to_disable.push(sid.clone());
            }
        }
    }
    let mut disabled: Vec<String> = Vec::new();
    if a.disable && !to_disable.is_empty() {
        disabled = store.transact(|doc| {
            let mut changed = Vec::new();
            for sid in &to_disable {
                // Deleted in the meantime: nothing left to disable.
                let Some((ai, ti)) = doc.find_token(sid) else {
                    continue;
                };
                let status = str_field(&doc.value()["accounts"][ai]["tokens"][ti], "status");
                if status.as_deref() == Some("disabled") {
                    continue;
                }
                doc.set_token_field(sid, "status", "disabled")
                    .map_err(|e| store.edit_fail(&e))?;
                changed.push(sid.clone());
            }
            Ok(changed)
        })?;
    }

    if a.json {
        let out = serde_json::json!({
            "findings": s.findings,
            "disabled": disabled,
            "skipped": s.skipped,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        for f in &s.findings {
            match (&f.sid, &f.account) {
                (Some(sid), Some(acc)) => println!(
                    "{}:{}: secret of token {sid} (account {acc}{})",
                    f.file,
                    f.line,
                    if f.matched == Some("previous") {
                        ", previous secret in its grace period"
                    } else {
                        ""
                    }
                ),
                _ => println!("{}:{}: no matching token", f.file, f.line),
            }
        }
        for sk in &s.skipped {
            eprintln!("skipped {}: {}", sk.path, sk.reason);
        }
        if s.findings.is_empty() {
            println!("no scopegate secrets found");
        } else if a.disable {
            if disabled.is_empty() {
                println!("No token was disabled (none matched, or they were already disabled).");
            } else {
                println!(
                    "Disabled {} token(s): {}. Next: reset them (scopegate token reset SID), roll \
                     the new secrets out, then enable them, and tell their contacts.",
                    disabled.len(),
                    disabled.join(", ")
                );
            }
        } else if !to_disable.is_empty() {
            println!(
                "Next: disable the leaked tokens now (rerun with --disable), then reset them and \
                 tell their contacts (README: leak runbook)."
            );
        }
    }
    for sid in &disabled {
        if let Some(t) = view::all_tokens(doc.value())
            .into_iter()
            .find(|t| &t.sid == sid)
        {
            super::notify_contacts(&store, crate::gateway::notifier::EventKind::Disabled, &t);
        }
    }
    Ok(!s.findings.is_empty())
}

impl Scanner {
    fn walk(&mut self, path: &Path, depth: usize, explicit: bool) {
        let shown = path.display().to_string();
        // Symlinks are followed (a link to a file or folder is scanned) but every folder
        // is entered once, by device and inode, so a symlink loop ends.
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                if explicit {
                    self.errors.push(format!("cannot read {shown}: {e}"));
                } else {
                    self.skipped.push(Skipped {
                        path: shown,
                        reason: e.to_string(),
                    });
                }
                return;
            }
        };
        if meta.is_dir() {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                if !self.visited_dirs.insert((meta.dev(), meta.ino())) {
                    return;
                }
            }
            if depth >= MAX_DEPTH {
                self.skipped.push(Skipped {
                    path: shown,
                    reason: format!("deeper than {MAX_DEPTH} folders"),
                });
                return;
            }
            let entries = match std::fs::read_dir(path) {
                Ok(e) => e,
                Err(e) => {
                    self.skipped.push(Skipped {
                        path: shown,
                        reason: e.to_string(),
                    });
                    return;
                }
            };
            let mut children: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            children.sort();
            for child in children {
                self.walk(&child, depth + 1, false);
            }
        } else if meta.is_file() {
            if meta.len() > self.max {
                self.skipped.push(Skipped {
                    path: shown,
                    reason: format!("larger than {} bytes", self.max),
                });
                return;
            }
            let mut buf = Zeroizing::new(Vec::new());
            let read =
                std::fs::File::open(path).and_then(|f| f.take(self.max + 1).read_to_end(&mut buf));
            match read {
                Ok(_) => self.scan_bytes(&shown, &buf),
                Err(e) => self.skipped.push(Skipped {
                    path: shown,
                    reason: e.to_string(),
                }),
            }
        }
        // Sockets, FIFOs and devices are never opened: reading one could block forever.
    }

    fn scan_bytes(&mut self, name: &str, bytes: &[u8]) {
        if bytes[..bytes.len().min(BINARY_SNIFF)].contains(&0) {
            self.skipped.push(Skipped {
                path: name.to_owned(),
                reason: "binary file".into(),
            });
            return;
        }
        let mut line = 1;
        let mut counted_to = 0;
        for c in secret_format::find_all(bytes) {
            if !c.valid {
                continue;
            }
            line += bytes[counted_to..c.start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            counted_to = c.start;
            let secret = &bytes[c.start..c.start + SECRET_LEN];
            // An offline comparison of a found secret with stored hashes: no timing to hide.
            let hit = self.known.get(&SecretHash::of_secret(secret).to_stored());
            self.findings.push(Finding {
                file: name.to_owned(),
                line,
                sid: hit.map(|k| k.sid.clone()),
                account: hit.map(|k| k.account.clone()),
                matched: hit.map(|k| k.which),
            });
        }
    }
}
