//! A validated binary cache of the tokens file: a restart, or a reload that leaves the
//! tokens file as it was, skips parsing and validating it (at 100,000 tokens, most of
//! start-up).
//!
//! Trust: the cache holds what validation produced from one exact tokens file under one
//! exact configuration, and it is used only when its key matches. The key is a SHA-256
//! over the tokens file's bytes as they are now, the validated settings (everything else
//! validation reads: the catalog, the API versions, the limits), this build (version,
//! executable size and modification time) and the cache format. A missing, stale,
//! corrupt (checksum), unreadable or group/world-writable cache is ignored and the tokens
//! file is read as always (with a log line, except for a missing or stale one, which is
//! the normal case after an edit); a miss then rewrites the cache off the critical path,
//! mode 0600, since it holds the tokens' secret hashes. A folder that cannot be written
//! (a read-only mount) only means no cache.
//!
//! Where: `<state_dir>/tokens.cache` when `state_dir` is set, else `<tokens file>.cache`
//! beside the tokens file (the same owner and permissions as the file it caches). Only
//! for tokens files of at least [`MIN_BYTES`]: below that, reading the file is as fast.

mod codec;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

pub use codec::Tokens;

use crate::config::{Config, Settings};

/// The file's first bytes; the last one is the format, raised whenever the encoding or
/// what validation produces changes.
const MAGIC: &[u8; 8] = b"SGTOKC\0\x01";
/// Magic, key, checksum of the payload.
const HEADER: usize = 8 + 32 + 32;
/// Tokens files smaller than this (about 2,000 tokens) are not cached.
pub const MIN_BYTES: u64 = 1 << 20;
/// The cache's file name inside `state_dir`.
const STATE_FILE: &str = "tokens.cache";

/// The cache of one configuration's tokens file.
pub struct Cache {
    path: PathBuf,
    tokens_path: PathBuf,
    min_bytes: u64,
    /// SHA-256 of what the key covers besides the tokens file.
    context: [u8; 32],
}

/// The tokens file as it was read and validated: its SHA-256 and its size.
pub struct Digest {
    sha256: [u8; 32],
    len: u64,
}

impl Digest {
    pub fn of(tokens_src: &[u8]) -> Digest {
        Digest {
            sha256: Sha256::digest(tokens_src).into(),
            len: tokens_src.len() as u64,
        }
    }
}

/// A cache to write after a miss (see [`Pending::write`]).
pub struct Pending {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Cache {
    /// The cache for `settings` (validated without errors), for tokens files of at least
    /// `min_bytes`; `None` when this build cannot identify its executable, since a cache
    /// written by another build could then pass for its own.
    pub fn new(settings: &Settings, min_bytes: u64) -> Option<Cache> {
        let exe = std::env::current_exe().ok()?;
        let meta = std::fs::metadata(&exe).ok()?;
        let modified = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        let mut context = Sha256::new();
        for part in [
            MAGIC.as_slice(),
            env!("CARGO_PKG_VERSION").as_bytes(),
            exe.as_os_str().as_encoded_bytes(),
            &meta.len().to_le_bytes(),
            &modified.as_nanos().to_le_bytes(),
            format!("{settings:?}").as_bytes(),
        ] {
            // Length-prefixed, so that no two different inputs hash the same sequence.
            context.update((part.len() as u64).to_le_bytes());
            context.update(part);
        }
        let path = match &settings.state_dir {
            Some(dir) => dir.join(STATE_FILE),
            None => {
                let mut name = settings.tokens_path.as_os_str().to_owned();
                name.push(".cache");
                PathBuf::from(name)
            }
        };
        Some(Cache {
            path,
            tokens_path: settings.tokens_path.clone(),
            min_bytes,
            context: context.finalize().into(),
        })
    }

    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn key(&self, tokens_digest: &[u8; 32]) -> [u8; 32] {
        let mut key = Sha256::new();
        key.update(self.context);
        key.update(tokens_digest);
        key.finalize().into()
    }

    /// The cached tokens, when the cache matches the tokens file as it is now.
    pub fn load(&self) -> Option<Tokens> {
        if std::fs::metadata(&self.tokens_path).ok()?.len() < self.min_bytes {
            return None;
        }
        match self.try_load() {
            Ok(tokens) => tokens,
            Err(why) => {
                tracing::warn!(
                    cache = %self.path.display(),
                    "tokens cache ignored ({why}); reading the tokens file"
                );
                None
            }
        }
    }

    /// `Ok(None)` for a missing or stale cache, `Err` for one that should not be there
    /// as it is.
    fn try_load(&self) -> Result<Option<Tokens>, String> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("unreadable: {e}")),
        };
        let meta = file.metadata().map_err(|e| format!("unreadable: {e}"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o022 != 0 {
                return Err("writable by group or others".into());
            }
        }
        let mut header = [0u8; HEADER];
        if file.read_exact(&mut header).is_err() || &header[..8] != MAGIC {
            // Truncated, or written by a build with another format.
            return Ok(None);
        }
        // The tokens file is read by the full path when this fails; it reports why.
        let Ok(digest) = file_digest(&self.tokens_path) else {
            return Ok(None);
        };
        if header[8..40] != self.key(&digest) {
            return Ok(None);
        }
        // Decoded as it is read, the checksum taken on the way: the payload is never in
        // memory whole (at 100,000 tokens that would add 25 MB to the peak).
        let mut payload = Checksummed {
            inner: file,
            sha256: Sha256::new(),
        };
        let tokens = codec::decode_from(&mut payload);
        if header[40..] != payload.sha256.finalize()[..] {
            return Err("corrupt: checksum mismatch".into());
        }
        tokens
            .map(Some)
            .ok_or_else(|| "corrupt: undecodable".into())
    }

    /// The cache to write for `config`, validated from the tokens file `read`; `None`
    /// for a tokens file below the size worth caching.
    pub fn pending(&self, read: &Digest, config: &Config) -> Option<Pending> {
        if read.len < self.min_bytes {
            return None;
        }
        let mut bytes = Vec::with_capacity(HEADER + (read.len / 2) as usize);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.key(&read.sha256));
        bytes.extend_from_slice(&[0; 32]);
        codec::encode(
            &mut bytes,
            &config.accounts,
            &config.tokens,
            &config.deleted_sids,
        );
        let checksum = Sha256::digest(&bytes[HEADER..]);
        bytes[40..HEADER].copy_from_slice(&checksum);
        Some(Pending {
            path: self.path.clone(),
            bytes,
        })
    }
}

impl Pending {
    /// Replaces the cache file (mode 0600). A failure is logged and changes nothing else:
    /// the next start reads the tokens file in full.
    pub fn write(self) {
        // The replace keeps an existing file's mode; a cache someone opened up is
        // removed instead, so the new one gets 0600.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if std::fs::metadata(&self.path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
        match crate::config::atomic::write_atomic(&self.path, &self.bytes, Some(0o600)) {
            Ok(_) => tracing::debug!(cache = %self.path.display(), "tokens cache written"),
            Err(e) => tracing::info!(
                cache = %self.path.display(),
                error = %e,
                "tokens cache not written; start-up reads the tokens file in full"
            ),
        }
    }
}

/// A reader that hashes what passes through it.
struct Checksummed<R> {
    inner: R,
    sha256: Sha256,
}

impl<R: Read> Read for Checksummed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha256.update(&buf[..n]);
        Ok(n)
    }
}

/// SHA-256 of a file, read in pieces (no copy of a 50 MB file in memory).
fn file_digest(path: &Path) -> io::Result<[u8; 32]> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(hasher.finalize().into()),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
