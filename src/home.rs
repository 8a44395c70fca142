//! The home directory and the fixed layout inside it. Every path the program
//! touches is derived here, once, from one absolute base directory.

use std::io;
use std::path::{Path, PathBuf};

/// Environment variable naming the home directory (same as `--home`).
pub const HOME_VAR: &str = "BACKUPCTL_HOME";

/// The home directory: `backup_schedules.txt`, `backups/`, `logs/` and the
/// pidfile live here, as in the spec's working directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// Resolves `dir` (or the current directory) to an absolute path. The
    /// directory itself is created later, by [`Home::ensure_layout`].
    pub fn resolve(dir: Option<&Path>) -> io::Result<Self> {
        let cwd = std::env::current_dir()?;
        let root = match dir {
            Some(dir) if dir.is_absolute() => dir.to_path_buf(),
            Some(dir) => cwd.join(dir),
            None => cwd,
        };
        Ok(Self { root })
    }

    /// Creates the home, `backups/` and `logs/` if they are missing.
    pub fn ensure_layout(&self) -> io::Result<()> {
        std::fs::create_dir_all(self.backups_dir())?;
        std::fs::create_dir_all(self.logs_dir())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn schedules_file(&self) -> PathBuf {
        self.root.join("backup_schedules.txt")
    }

    /// Lock file serialising edits of the schedule file (the file itself is
    /// replaced by rename, so it cannot carry the lock).
    pub fn schedules_lock(&self) -> PathBuf {
        self.root.join(".backup_schedules.lock")
    }

    pub fn backups_dir(&self) -> PathBuf {
        self.root.join("backups")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn manager_log(&self) -> PathBuf {
        self.logs_dir().join("backup_manager.log")
    }

    pub fn service_log(&self) -> PathBuf {
        self.logs_dir().join("backup_service.log")
    }

    /// The run state of every schedule (hidden: the spec's `ls` shows none of it).
    pub fn state_file(&self) -> PathBuf {
        self.root.join(".backupctl-state.json")
    }

    pub fn state_lock(&self) -> PathBuf {
        self.root.join(".backupctl-state.lock")
    }

    pub fn pidfile(&self) -> PathBuf {
        self.root.join("backup_service.pid")
    }

    /// Lock file held by `stop` while it signals the daemon, so that two
    /// `stop`s at once send one SIGTERM, not two (which would abort).
    pub fn stop_lock(&self) -> PathBuf {
        self.root.join(".backup_service.stop.lock")
    }

    /// A schedule's source as typed: absolute paths stay, relative ones are
    /// taken from the home, wherever the command or the daemon runs from.
    pub fn resolve_source(&self, source: &str) -> PathBuf {
        let path = Path::new(source);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.root.join(path)
        }
    }

    /// `path` shown relative to the home when it lies inside it
    /// (`backups/backup_test.tar`), as the spec's log lines do.
    pub fn display_path(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_sources_resolve_against_the_home() {
        let home = Home::resolve(Some(Path::new("/srv/bk"))).unwrap();
        assert_eq!(home.resolve_source("test"), Path::new("/srv/bk/test"));
        assert_eq!(home.resolve_source("/etc"), Path::new("/etc"));
        assert_eq!(
            home.display_path(&home.backups_dir().join("a.tar")),
            "backups/a.tar"
        );
    }
}
