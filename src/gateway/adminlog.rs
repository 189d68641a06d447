//! The append-only admin log: one JSON line per token change (who, when, through which
//! front end, what changed), written by the CLI and the admin API alike and read back by
//! `scopegate token history SID`. It never holds a secret or a hash: entries are built from
//! names, statuses and scope lists only.
//!
//! The file is `admin-log.jsonl` in `state_dir` (or, without one, next to the tokens file),
//! opened in append mode for each entry: concurrent writers (the gateway and CLI runs) each
//! add whole lines, since a single `write` of a line under `O_APPEND` is not interleaved.

use std::fs::OpenOptions;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Settings;

/// The file name inside `state_dir`.
pub const FILE_NAME: &str = "admin-log.jsonl";

/// Who made a change and through which front end (`cli`, `api` or `console`).
#[derive(Debug, Clone)]
pub struct Actor {
    pub who: String,
    pub via: &'static str,
}

impl Actor {
    /// The operating-system user running the CLI.
    pub fn cli() -> Actor {
        let who = ["USER", "LOGNAME", "USERNAME"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| "unknown".to_owned());
        Actor { who, via: "cli" }
    }
}

/// One line of the log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// RFC 3339, UTC.
    pub at: String,
    pub who: String,
    pub via: String,
    /// `create`, `update`, `reset`, `disable`, `enable` or `delete`.
    pub action: String,
    pub sid: String,
    /// What changed, in words ("scopes now campaigns:GET", "status disabled").
    #[serde(default)]
    pub changes: Vec<String>,
}

/// Where the log lives for these settings.
pub fn path(settings: &Settings) -> PathBuf {
    match &settings.state_dir {
        Some(dir) => dir.join(FILE_NAME),
        None => settings
            .tokens_path
            .parent()
            .map(|p| p.join(FILE_NAME))
            .unwrap_or_else(|| PathBuf::from(FILE_NAME)),
    }
}

/// Appends an entry; a failure does not undo the change (it is already in force) but is
/// reported to the caller as a warning.
pub fn record(
    settings: &Settings,
    actor: &Actor,
    action: &str,
    sid: &str,
    changes: Vec<String>,
    warnings: &mut Vec<String>,
) {
    let entry = Entry {
        at: crate::gateway::manage::ops::rfc3339(time::OffsetDateTime::now_utc()),
        who: actor.who.clone(),
        via: actor.via.to_owned(),
        action: action.to_owned(),
        sid: sid.to_owned(),
        changes,
    };
    trace(&entry);
    let path = path(settings);
    if let Err(e) = append(&path, &entry) {
        warnings.push(format!(
            "the change is saved, but the admin log {} could not be written: {e}",
            path.display()
        ));
    }
}

/// The entry as a line of the gateway's own log. Quoted and escaped (`?`): the changes carry
/// what an admin typed (a token's name may hold a line break), which must not forge a line
/// of the text log.
fn trace(entry: &Entry) {
    tracing::info!(
        who = ?entry.who,
        via = %entry.via,
        action = %entry.action,
        sid = %entry.sid,
        changes = ?entry.changes.join("; "),
        "admin change"
    );
}

fn append(path: &std::path::Path, entry: &Entry) -> std::io::Result<()> {
    let mut line = serde_json::to_string(entry).map_err(std::io::Error::other)?;
    line.push('\n');
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(line.as_bytes())?;
    file.sync_data()
}

/// Every entry for `sid` (all entries when `None`), oldest first. Lines that do not parse
/// (a torn write, a hand edit) are skipped and counted.
pub fn read(settings: &Settings, sid: Option<&str>) -> std::io::Result<(Vec<Entry>, usize)> {
    let file = match std::fs::File::open(path(settings)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    let mut skipped = 0;
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Entry>(&line) {
            Ok(e) if sid.is_none_or(|s| s == e.sid) => out.push(e),
            Ok(_) => {}
            Err(_) => skipped += 1,
        }
    }
    Ok((out, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What the text log writes, kept for the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn what_an_admin_typed_cannot_forge_a_line_of_the_text_log() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let entry = Entry {
            at: "2026-12-06T00:00:00Z".to_owned(),
            who: "admin".to_owned(),
            via: "api".to_owned(),
            action: "create".to_owned(),
            sid: "SGx".to_owned(),
            changes: vec!["name: a\nINFO forged: yes\u{0}".to_owned()],
        };
        tracing::subscriber::with_default(subscriber, || trace(&entry));
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(
            text.contains(r#"changes="name: a\nINFO forged: yes\0""#),
            "{text:?}"
        );
    }
}
