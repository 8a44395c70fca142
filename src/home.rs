//! The home directory and the fixed layout inside it. Every path the program
//! touches is derived here, once, from one absolute base directory.

use std::io;
use std::path::{Path, PathBuf};

/// Environment variable naming the home directory (same as `--home`).
pub const HOME_VAR: &str = "BACKUPCTL_HOME";

/// The home of the shipped systemd unit (`examples/backupctl.service`): a
/// command run outside any home shows that service, if it is installed.
pub const SYSTEM_HOME: &str = "/var/lib/backupctl";

/// Environment variable replacing [`SYSTEM_HOME`] (empty: no system home),
/// for packages that install the unit elsewhere and for tests, which must
/// never look at the machine's own service.
pub const SYSTEM_HOME_VAR: &str = "BACKUPCTL_SYSTEM_HOME";

/// Where a command looked for its home, and what it found.
#[derive(Debug, Clone)]
pub struct Located {
    /// The home found, or the directory a new one would start in (the named
    /// one, else the current directory).
    pub home: Home,
    pub how: Lookup,
}

/// How [`locate`] chose the home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// `--home` or `BACKUPCTL_HOME` named it (a home or not).
    Named,
    /// The current directory is a home.
    CurrentDir,
    /// The system home is a home, and the current directory is not.
    System,
    /// No home: neither the current directory nor the system home (if any,
    /// kept here to name it in the message) is one.
    Nowhere { system: Option<PathBuf> },
}

impl Located {
    /// True when [`Located::home`] holds a schedule file.
    pub fn is_home(&self) -> bool {
        !matches!(self.how, Lookup::Nowhere { .. }) && self.home.exists()
    }
}

/// Finds the home: `named` (`--home` or `BACKUPCTL_HOME`), else `cwd` if it
/// is a home, else `system` if it is one. Reads only whether
/// `backup_schedules.txt` exists; creates nothing.
pub fn locate(named: Option<&Path>, cwd: &Path, system: Option<&Path>) -> Located {
    if let Some(dir) = named {
        let root = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            cwd.join(dir)
        };
        return Located {
            home: Home { root },
            how: Lookup::Named,
        };
    }
    let here = Home {
        root: cwd.to_path_buf(),
    };
    if here.exists() {
        return Located {
            home: here,
            how: Lookup::CurrentDir,
        };
    }
    if let Some(system) = system.filter(|s| s.is_absolute()) {
        let there = Home {
            root: system.to_path_buf(),
        };
        if there.exists() {
            return Located {
                home: there,
                how: Lookup::System,
            };
        }
    }
    Located {
        home: here,
        how: Lookup::Nowhere {
            system: system.map(Path::to_path_buf),
        },
    }
}

/// The system home: [`SYSTEM_HOME_VAR`] if set (empty: none), else
/// [`SYSTEM_HOME`].
pub fn system_home_from_env() -> Option<PathBuf> {
    match std::env::var_os(SYSTEM_HOME_VAR) {
        Some(value) if value.is_empty() => None,
        Some(value) => Some(PathBuf::from(value)),
        None => Some(PathBuf::from(SYSTEM_HOME)),
    }
}

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

    /// True when the directory holds a schedule file (anything at its name:
    /// one that cannot be read is reported by whoever reads it).
    pub fn exists(&self) -> bool {
        self.schedules_file().symlink_metadata().is_ok()
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

    #[test]
    fn the_home_is_named_then_here_then_the_system_one() {
        let here = tempfile::tempdir().unwrap();
        let system = tempfile::tempdir().unwrap();
        let named = Path::new("/srv/bk");
        let found = locate(Some(named), here.path(), Some(system.path()));
        assert_eq!((found.home.root(), found.how), (named, Lookup::Named));
        let found = locate(None, here.path(), Some(system.path()));
        assert!(!found.is_home());
        assert_eq!(found.home.root(), here.path());
        std::fs::write(system.path().join("backup_schedules.txt"), "").unwrap();
        let found = locate(None, here.path(), Some(system.path()));
        assert_eq!(
            (found.home.root(), found.how),
            (system.path(), Lookup::System)
        );
        std::fs::write(here.path().join("backup_schedules.txt"), "").unwrap();
        let found = locate(None, here.path(), Some(system.path()));
        assert_eq!(
            (found.home.root(), found.how),
            (here.path(), Lookup::CurrentDir)
        );
    }
}
