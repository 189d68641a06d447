//! The one atomic replace of a file, used for everything scopegate writes: the tokens file
//! (`scopegate token`, the console), the usage record and the notifier's state.
//!
//! A temp file is created next to the target (never an existing one: `create_new`), given
//! the old file's permission bits and owner, written, fsynced and renamed over the target;
//! then the folder is fsynced so the rename survives a crash. Readers (the gateway's reload,
//! `scopegate audit`) see the old file or the new one, never a partial one. It lives here,
//! the lowest layer that touches files, so the gateway and the command line share it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a replace could not keep. The content is in place either way; the caller says so
/// in its own voice (stderr for a command, the log for the gateway).
#[derive(Debug, Default)]
#[must_use = "a replace that could not keep the owner or sync the folder should say so"]
pub struct Replaced {
    /// The old file's owner and group (uid, gid), when the new file could not be given
    /// them: only root (or the owner, for a group it belongs to) may give a file away.
    pub owner_lost: Option<(u32, u32, io::Error)>,
    /// The folder's fsync failed after the rename: a crash may still bring the old file back.
    pub folder_unsynced: Option<io::Error>,
}

/// Replaces `path` with `bytes` atomically, creating its folder if needed. The new file
/// keeps the old one's permission bits and owner; a file that did not exist gets
/// `new_mode` (exactly: the umask does not narrow it), or the default mode left by the
/// umask when `None`. On error nothing is replaced and no temp file is left behind.
pub fn write_atomic(path: &Path, bytes: &[u8], new_mode: Option<u32>) -> io::Result<Replaced> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let old = std::fs::metadata(path).ok();
    let mut replaced = Replaced::default();
    let written = write_new(&tmp, bytes, old.as_ref(), new_mode, &mut replaced)
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename is durable only once the folder is synced.
    #[cfg(unix)]
    if let Err(e) = File::open(&dir).and_then(|d| d.sync_all()) {
        replaced.folder_unsynced = Some(e);
    }
    Ok(replaced)
}

/// Creates `tmp` (which must not exist) with the old file's mode and owner, or `new_mode`,
/// writes `bytes` and fsyncs it.
fn write_new(
    tmp: &Path,
    bytes: &[u8],
    old: Option<&std::fs::Metadata>,
    new_mode: Option<u32>,
    replaced: &mut Replaced,
) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Never wider than the final mode while the content is being written.
        if old.is_some() || new_mode.is_some() {
            options.mode(0o600);
        }
    }
    let mut file: File = options.open(tmp)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if let Some(old) = old {
            let created = file.metadata()?;
            if created.uid() != old.uid() || created.gid() != old.gid() {
                // Keep the owner and group the other readers (the gateway) read it as.
                if let Err(e) = std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid())) {
                    replaced.owner_lost = Some((old.uid(), old.gid(), e));
                }
            }
        }
        // Set explicitly: the umask must not narrow (or the create widen) the old bits.
        if let Some(mode) = old.map(|m| m.mode() & 0o7777).or(new_mode) {
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (old, new_mode, &replaced);
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_files(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn content_is_replaced_and_no_temp_file_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "old content, longer than the new one\n").unwrap();
        let replaced = write_atomic(&path, b"new\n", None).unwrap();
        assert!(replaced.owner_lost.is_none() && replaced.folder_unsynced.is_none());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert!(temp_files(dir.path()).is_empty());
    }

    #[test]
    fn a_missing_folder_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("usage.json");
        let _ = write_atomic(&path, b"{}\n", None).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
    }

    #[test]
    fn a_failed_rename_leaves_the_target_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty folder where the file should be: the temp file is written, the
        // rename over it fails.
        let path = dir.path().join("tokens.yaml");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), "kept").unwrap();
        assert!(write_atomic(&path, b"tokens\n", Some(0o600)).is_err());
        assert!(temp_files(dir.path()).is_empty());
        assert_eq!(
            std::fs::read_to_string(path.join("inside")).unwrap(),
            "kept"
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_old_mode_is_kept_and_a_new_file_gets_new_mode() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("tokens.yaml");
        std::fs::write(&kept, "a").unwrap();
        std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o640)).unwrap();
        let _ = write_atomic(&kept, b"b", Some(0o600)).unwrap();
        assert_eq!(mode(&kept), 0o640, "the old file's bits win over new_mode");
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "b");

        let fresh = dir.path().join("fresh.yaml");
        let _ = write_atomic(&fresh, b"c", Some(0o600)).unwrap();
        assert_eq!(mode(&fresh), 0o600);
    }
}
