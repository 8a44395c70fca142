//! The daemon's pidfile. The running daemon holds an exclusive `flock` on it
//! for its whole life; the kernel drops the lock when the process dies, however
//! it dies. So whether a daemon runs is decided by the lock, never by the pid
//! alone: a stale pidfile, or one naming some other live process, is unlocked
//! and no process is ever signalled because of it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// What the pidfile says about the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonState {
    /// A daemon holds the lock.
    Running { pid: i32, since: SystemTime },
    /// Nobody holds the lock. `stale` is true when a leftover pidfile was found
    /// (and removed).
    NotRunning { stale: bool },
}

/// The pidfile of the running daemon; removed when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    _file: File,
}

impl PidFile {
    /// Takes the lock and writes our pid. Fails with the running daemon's pid
    /// when another daemon holds it.
    pub fn acquire(path: &Path) -> Result<Self, AcquireError> {
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(AcquireError::Io)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    let pid = read_pid_patiently(&mut file);
                    return Err(AcquireError::AlreadyRunning { pid });
                }
                Err(fs::TryLockError::Error(e)) => return Err(AcquireError::Io(e)),
            }
            // Someone may have removed a stale file between our open and our
            // lock; then we hold a lock on an unlinked file. Start over.
            if !same_file(&file, path) {
                continue;
            }
            file.set_len(0).map_err(AcquireError::Io)?;
            file.rewind().map_err(AcquireError::Io)?;
            writeln!(file, "{}", std::process::id()).map_err(AcquireError::Io)?;
            file.sync_all().map_err(AcquireError::Io)?;
            return Ok(Self {
                path: path.to_path_buf(),
                _file: file,
            });
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Removed while still locked, so no reader can mistake it for stale.
        let _ = fs::remove_file(&self.path);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    #[error("already running with pid {}", pid.map_or_else(|| "unknown".to_string(), |p| p.to_string()))]
    AlreadyRunning { pid: Option<i32> },
    #[error(transparent)]
    Io(io::Error),
}

/// Reads the daemon's state from the pidfile. A pidfile that nobody has
/// locked is stale: it is removed (under our own lock) and reported as such.
pub fn probe(path: &Path) -> io::Result<DaemonState> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(DaemonState::NotRunning { stale: false });
        }
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => {
            if same_file(&file, path) {
                fs::remove_file(path)?;
            }
            Ok(DaemonState::NotRunning { stale: true })
        }
        Err(fs::TryLockError::WouldBlock) => match read_pid_patiently(&mut file) {
            Some(pid) => {
                let since = file.metadata()?.modified()?;
                Ok(DaemonState::Running { pid, since })
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is locked but holds no pid", path.display()),
            )),
        },
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Waits until no daemon holds the lock, or `timeout` passes.
pub fn wait_until_released(path: &Path, timeout: Option<Duration>) -> io::Result<bool> {
    let started = Instant::now();
    loop {
        if let DaemonState::NotRunning { .. } = probe(path)? {
            return Ok(true);
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A daemon that has just taken the lock may not have written its pid yet;
/// give it a moment.
fn read_pid_patiently(file: &mut File) -> Option<i32> {
    for _ in 0..40 {
        let mut text = String::new();
        if file.rewind().is_ok()
            && file.read_to_string(&mut text).is_ok()
            && let Ok(pid) = text.trim().parse::<i32>()
            && pid > 0
        {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_pidfile_reports_running_and_blocks_a_second_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        let held = PidFile::acquire(&path).unwrap();
        let me = std::process::id() as i32;
        assert!(matches!(probe(&path).unwrap(), DaemonState::Running { pid, .. } if pid == me));
        assert!(matches!(
            PidFile::acquire(&path),
            Err(AcquireError::AlreadyRunning { pid: Some(p) }) if p == me
        ));
        drop(held);
        assert!(!path.exists());
        assert_eq!(
            probe(&path).unwrap(),
            DaemonState::NotRunning { stale: false }
        );
    }

    #[test]
    fn an_unlocked_pidfile_is_stale_whatever_pid_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        // pid 1 is alive, but it does not hold our lock.
        fs::write(&path, "1\n").unwrap();
        assert_eq!(
            probe(&path).unwrap(),
            DaemonState::NotRunning { stale: true }
        );
        assert!(!path.exists());
    }
}
