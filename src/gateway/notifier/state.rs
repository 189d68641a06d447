//! What the notifier has sent: `<state_dir>/notifications.json`, guarded by
//! `notifications.json.lock` so `serve`, `scopegate notify` and CLI commands can share it.
//!
//! Each (event, channel) pair is a [`Delivery`] moving `sending -> sent`, or `sending ->
//! failed -> sending ...` until it gives up. Every transition is one locked
//! read-modify-write with an atomic replace of the file ([`crate::gateway::usage::write_atomic`]):
//!
//! - BEFORE a delivery the pair is claimed (`sending`, with the time), so a second notifier
//!   running at the same time skips it, and a restart knows an attempt was under way.
//! - AFTER it the result is recorded (`sent`, or `failed` with the next attempt's time).
//!
//! A restart therefore never loses an event (anything not `sent` is tried again) and never
//! repeats a delivered one (`sent` is final). The one window left is a crash after the
//! receiver accepted the message but before `sent` was written: the claim then expires
//! after [`LEASE`] (an hour) and the message goes out again with the same event id (webhook header
//! `X-Scopegate-Event-Id`, email `Message-ID`), so a receiver can drop the duplicate. No
//! sender can close that window without the receiver's help.
//!
//! Lifecycle events (disable, reset, delete) wait in `outbox` until every channel is done,
//! so a failed delivery is retried by a later pass even though the token may be gone.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::events::Event;

pub const STATE_FILE: &str = "notifications.json";

/// How long a claim holds before another pass may assume its notifier died. Longer than
/// one delivery with all its in-pass retries can take: at most 11 attempts of at most
/// 2 minutes each (validation bounds `retries` and the timeouts) plus 10 backoffs of at
/// most a minute.
pub const LEASE: i64 = 60 * 60;
/// Passes that may fail before a delivery is given up.
pub const MAX_ROUNDS: u32 = 8;
/// Sent records are kept this long, then pruned (the events they are about are long past).
const KEEP_SENT: i64 = 400 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Sending,
    Sent,
    Failed,
    GaveUp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub status: Status,
    /// Attempts made so far, over all passes.
    pub attempts: u32,
    /// Passes that ended in failure.
    pub rounds: u32,
    /// Unix time of the last change.
    pub updated: i64,
    /// `failed`: not before this unix time.
    #[serde(default)]
    pub next_attempt: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub deliveries: BTreeMap<String, Delivery>,
    #[serde(default)]
    pub outbox: Vec<Event>,
}

/// The key of one (event, channel) pair.
pub fn key(event_id: &str, channel: &str) -> String {
    format!("{event_id}#{channel}")
}

impl State {
    /// May this pair be attempted now?
    pub fn may_attempt(&self, key: &str, now: i64) -> bool {
        match self.deliveries.get(key) {
            None => true,
            Some(d) => match d.status {
                Status::Sent | Status::GaveUp => false,
                Status::Sending => now - d.updated >= LEASE,
                Status::Failed => now >= d.next_attempt,
            },
        }
    }

    pub fn is_done(&self, key: &str) -> bool {
        self.deliveries
            .get(key)
            .is_some_and(|d| matches!(d.status, Status::Sent | Status::GaveUp))
    }

    fn prune(&mut self, now: i64) {
        self.deliveries
            .retain(|_, d| !(d.status == Status::Sent && now - d.updated > KEEP_SENT));
    }
}

/// The state file of one `state_dir`.
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(state_dir: &Path) -> StateFile {
        StateFile {
            path: state_dir.join(STATE_FILE),
        }
    }

    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lock, read, change, write atomically. A missing file is an empty state; a corrupt
    /// one is an error (guessing could resend everything).
    pub fn transact<T>(&self, now: i64, f: impl FnOnce(&mut State) -> T) -> io::Result<T> {
        let _lock = self.lock()?;
        let mut state = self.read()?;
        let out = f(&mut state);
        state.prune(now);
        let mut bytes = serde_json::to_vec_pretty(&state).map_err(io::Error::other)?;
        bytes.push(b'\n');
        crate::gateway::usage::write_atomic(&self.path, &bytes)?;
        Ok(out)
    }

    pub fn read(&self) -> io::Result<State> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is corrupt ({e}); move it aside to start over (every due \
                         notification is then sent again)",
                        self.path.display()
                    ),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e),
        }
    }

    fn lock(&self) -> io::Result<File> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut name = self.path.as_os_str().to_owned();
        name.push(".lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(PathBuf::from(name))?;
        file.lock()?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_results_and_leases() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        let k = key("stale/SG1/never", "email");
        assert!(file.read().unwrap().may_attempt(&k, 100));
        file.transact(100, |s| {
            s.deliveries.insert(
                k.clone(),
                Delivery {
                    status: Status::Sending,
                    attempts: 1,
                    rounds: 0,
                    updated: 100,
                    next_attempt: 0,
                },
            );
        })
        .unwrap();
        let s = file.read().unwrap();
        assert!(!s.may_attempt(&k, 101), "claimed by a running notifier");
        assert!(
            s.may_attempt(&k, 100 + LEASE),
            "the claim of a dead notifier expires"
        );
        file.transact(102, |s| {
            s.deliveries.get_mut(&k).unwrap().status = Status::Sent;
        })
        .unwrap();
        assert!(!file.read().unwrap().may_attempt(&k, 100 + 10 * LEASE));
        std::fs::write(file.path(), b"{nope").unwrap();
        assert!(file.read().is_err());
    }
}
