//! Whether the schedule file may be trusted with commands: its hooks
//! (`before=`, `after=`, `on-failure=`) are run by whoever runs the service,
//! usually root, so, as cron does with crontabs, they run only when nobody
//! else could have written them.
//!
//! The file must be a regular file (not a symlink) owned by the process's
//! effective user (root's service: a root-owned file) and not writable by its
//! group or by others. The directory holding it must be owned by that user or
//! by root, and not writable by group or others unless it is sticky (then
//! nobody else can rename another file over ours). Directories further up are
//! not checked: replacing the home itself needs write access to its parent,
//! which on a server is root's.
//!
//! The state that makes a file trusted can only be reached by its owner or
//! root (a mode is changed by the owner, an owner only by root), so a check
//! made just before the hooks run cannot be fooled by a file that was
//! hostile when the schedules were read and trusted again by the time the
//! hook runs.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::primitives::printable;

/// Why the hooks of a schedule file are not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {why}", printable(&path.display().to_string()))]
pub struct Untrusted {
    /// The schedule file or its directory.
    pub path: PathBuf,
    pub why: String,
}

/// Checks `file` (the schedule file) and its directory for the process's
/// effective user. A missing file holds no hooks: it is trusted.
pub fn check_schedule_file(file: &Path) -> Result<(), Untrusted> {
    let euid = nix::unistd::geteuid().as_raw();
    let untrusted = |path: &Path, why: String| Untrusted {
        path: path.to_path_buf(),
        why,
    };
    let meta = match fs::symlink_metadata(file) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(untrusted(file, format!("cannot be inspected: {e}"))),
    };
    if meta.file_type().is_symlink() {
        return Err(untrusted(file, "is a symbolic link".into()));
    }
    if !meta.is_file() {
        return Err(untrusted(file, "is not a regular file".into()));
    }
    if meta.uid() != euid {
        return Err(untrusted(file, owner_why(meta.uid(), euid, false)));
    }
    if let Some(who) = writable_by_others(meta.mode()) {
        return Err(untrusted(file, who));
    }
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let dir_meta =
        fs::metadata(dir).map_err(|e| untrusted(dir, format!("cannot be inspected: {e}")))?;
    if dir_meta.uid() != euid && dir_meta.uid() != 0 {
        return Err(untrusted(dir, owner_why(dir_meta.uid(), euid, true)));
    }
    let sticky = dir_meta.mode() & 0o1000 != 0;
    match writable_by_others(dir_meta.mode()) {
        Some(who) if !sticky => Err(untrusted(
            dir,
            format!("{who}, without the sticky bit: another user can replace the schedule file"),
        )),
        _ => Ok(()),
    }
}

fn owner_why(owner: u32, euid: u32, or_root: bool) -> String {
    let expected = match (euid, or_root) {
        (0, _) => "root".to_string(),
        (uid, false) => format!("uid {uid}, this process's user"),
        (uid, true) => format!("uid {uid}, this process's user, or root"),
    };
    format!("is owned by uid {owner}, not {expected}")
}

fn writable_by_others(mode: u32) -> Option<String> {
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (_, true) => "everyone",
        (true, false) => "its group",
        (false, false) => return None,
    };
    Some(format!("is writable by {who} (mode {:04o})", mode & 0o7777))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_a_file_nobody_else_can_write_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.txt");
        assert_eq!(check_schedule_file(&file), Ok(()), "a missing file");
        fs::write(&file, "x").unwrap();
        let set = |path: &Path, mode| fs::set_permissions(path, fs::Permissions::from_mode(mode));
        set(dir.path(), 0o755).unwrap();
        set(&file, 0o644).unwrap();
        assert_eq!(check_schedule_file(&file), Ok(()));
        set(&file, 0o664).unwrap();
        let err = check_schedule_file(&file).unwrap_err();
        assert_eq!(err.why, "is writable by its group (mode 0664)");
        set(&file, 0o646).unwrap();
        assert!(
            check_schedule_file(&file)
                .unwrap_err()
                .why
                .contains("everyone")
        );
        set(&file, 0o600).unwrap();
        set(dir.path(), 0o777).unwrap();
        let err = check_schedule_file(&file).unwrap_err();
        assert_eq!(err.path, dir.path());
        assert!(err.why.contains("without the sticky bit"), "{err}");
        set(dir.path(), 0o1777).unwrap();
        assert_eq!(check_schedule_file(&file), Ok(()));
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(
            check_schedule_file(&link).unwrap_err().why,
            "is a symbolic link"
        );
    }
}
