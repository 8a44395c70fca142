//! The daemon's pidfile. The running daemon holds an exclusive `flock` on it
//! for its whole life; the kernel drops the lock when the process dies, however
//! it dies. So whether a daemon runs is decided by the lock, never by the pid
//! alone: a stale pidfile, or one naming some other live process, is unlocked
//! and no process is ever signalled because of it. A locked pidfile is still
//! not proof that the holder is ours: see `identity.rs`.
//!
//! The daemon creates the file itself, exclusively, mode 0600, never through
//! a symlink: a leftover file (whoever made it) is removed first, never
//! reused, and a symlink or other non-file at the name is refused.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::libc;

use super::identity::NotOurs;
use crate::primitives;

/// What the pidfile says about the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonState {
    /// Our daemon, serving this home, holds the lock.
    Running { pid: i32, since: SystemTime },
    /// Some process that is not our daemon holds the lock.
    Foreign { pid: Option<i32>, why: NotOurs },
    /// Nobody holds the lock. `stale` is true when a leftover pidfile was found
    /// (and removed, if we could).
    NotRunning { stale: bool },
}

/// How far a daemon has got in stopping, as it records it in its pidfile
/// (a line after the pid) the moment a stop signal arrives, so that `stop`
/// knows whether a SIGTERM was already sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopPhase {
    /// Running as usual.
    Serving,
    /// A first SIGTERM or SIGINT: finishing the backups in progress.
    Stopping,
    /// A second one (or `stop --now`): aborting them.
    Aborting,
}

impl StopPhase {
    fn line(self) -> &'static str {
        match self {
            StopPhase::Serving => "",
            StopPhase::Stopping => "stopping",
            StopPhase::Aborting => "aborting",
        }
    }

    /// The furthest phase the pidfile's lines after the pid record.
    fn of_lines(lines: &[String]) -> Self {
        lines
            .iter()
            .skip(1)
            .map(|line| match line.trim() {
                "stopping" => StopPhase::Stopping,
                "aborting" => StopPhase::Aborting,
                _ => StopPhase::Serving,
            })
            .max()
            .unwrap_or(StopPhase::Serving)
    }
}

/// What the pidfile shows, before anyone checks who holds it.
#[derive(Debug)]
pub enum Probe {
    /// Someone holds the lock; `file` is the pidfile, open for reading.
    Locked {
        file: File,
        pid: Option<i32>,
        since: SystemTime,
        phase: StopPhase,
    },
    Unlocked {
        stale: bool,
    },
}

/// The pidfile of the running daemon; removed when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    file: File,
}

/// How often [`PidFile::acquire`] starts over after losing a race.
const ACQUIRE_ATTEMPTS: usize = 50;

impl PidFile {
    /// Creates the pidfile, takes the lock and writes our pid. Fails with
    /// the holder's pid when another process holds the lock.
    pub fn acquire(path: &Path) -> Result<Self, AcquireError> {
        for _ in 0..ACQUIRE_ATTEMPTS {
            let file = match primitives::create_new(path, 0o600) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    match probe(path).map_err(AcquireError::Io)? {
                        Probe::Locked { pid, .. } => {
                            return Err(AcquireError::AlreadyRunning { pid });
                        }
                        // Removed (or gone): try again.
                        Probe::Unlocked { .. } => continue,
                    }
                }
                Err(e) => return Err(AcquireError::Io(e)),
            };
            match file.try_lock() {
                Ok(()) => {}
                // A prober is checking whether our fresh file is stale.
                Err(fs::TryLockError::WouldBlock) => continue,
                Err(fs::TryLockError::Error(e)) => return Err(AcquireError::Io(e)),
            }
            // A prober may have taken our fresh, unlocked file for a stale
            // one and removed it; then we hold a lock on an unlinked file.
            if !same_file(&file, path) {
                continue;
            }
            let mut held = Self {
                path: path.to_path_buf(),
                file,
            };
            held.write_line(&std::process::id().to_string())
                .map_err(AcquireError::Io)?;
            return Ok(held);
        }
        Err(AcquireError::Io(io::Error::other(
            "the pidfile keeps changing under us",
        )))
    }

    /// Appends one line to the pidfile (one `write`, so a reader sees the
    /// whole line or none of it).
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        append_line(&mut self.file, line)
    }

    /// A handle that records the daemon's stop phase in the pidfile, for the
    /// signal thread.
    pub fn phase_recorder(&self) -> io::Result<PhaseRecorder> {
        Ok(PhaseRecorder(self.file.try_clone()?))
    }
}

fn append_line(file: &mut File, line: &str) -> io::Result<()> {
    file.seek(io::SeekFrom::End(0))?;
    file.write_all(format!("{line}\n").as_bytes())?;
    file.sync_data()
}

/// Writes [`StopPhase`] lines into the pidfile.
#[derive(Debug)]
pub struct PhaseRecorder(File);

impl PhaseRecorder {
    pub fn record(&mut self, phase: StopPhase) -> io::Result<()> {
        if phase == StopPhase::Serving {
            return Ok(());
        }
        append_line(&mut self.0, phase.line())
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Removed while still locked, so no reader can mistake it for stale.
        if same_file(&self.file, &self.path) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    #[error("already running with pid {}", pid.map_or_else(|| "unknown".to_string(), |p| p.to_string()))]
    AlreadyRunning { pid: Option<i32> },
    #[error(transparent)]
    Io(io::Error),
}

/// Reads the pidfile. A pidfile that nobody has locked is stale: it is
/// removed (under our own lock) when we may, and reported as such.
pub fn probe(path: &Path) -> io::Result<Probe> {
    let Some(mut file) = open_existing(path)? else {
        return Ok(Probe::Unlocked { stale: false });
    };
    match file.try_lock() {
        Ok(()) => {
            // A home we may not write to keeps its stale file: that is fine,
            // the lock decides.
            if same_file(&file, path) {
                let _ = fs::remove_file(path);
            }
            Ok(Probe::Unlocked { stale: true })
        }
        Err(fs::TryLockError::WouldBlock) => {
            let pid = read_pid_patiently(&mut file);
            let since = file.metadata()?.modified()?;
            let phase =
                read_lines(&mut file).map_or(StopPhase::Serving, |l| StopPhase::of_lines(&l));
            Ok(Probe::Locked {
                file,
                pid,
                since,
                phase,
            })
        }
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Opens an existing pidfile for reading: never through a symlink, never a
/// FIFO or device (which could block or feed us endless data).
fn open_existing(path: &Path) -> io::Result<Option<File>> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "it is a symbolic link, not a pidfile; refusing to follow it",
            ));
        }
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "it is not a regular file",
        ));
    }
    Ok(Some(file))
}

/// Waits until no process holds the lock, or `timeout` passes.
pub fn wait_until_released(path: &Path, timeout: Option<Duration>) -> io::Result<bool> {
    let started = Instant::now();
    loop {
        if let Probe::Unlocked { .. } = probe(path)? {
            return Ok(true);
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines of the pidfile: the pid first. At most 4 KiB are read.
fn read_lines(file: &mut File) -> Option<Vec<String>> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(4096).read_to_string(&mut text).ok()?;
    Some(text.lines().map(str::to_string).collect())
}

/// A daemon that has just taken the lock may not have written its pid yet;
/// give it a moment.
fn read_pid_patiently(file: &mut File) -> Option<i32> {
    for _ in 0..40 {
        if let Some(lines) = read_lines(file)
            && let Some(Ok(pid)) = lines.first().map(|l| l.trim().parse::<i32>())
            && pid > 0
        {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_held_pidfile_reports_locked_and_blocks_a_second_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        let held = PidFile::acquire(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let me = std::process::id() as i32;
        assert!(matches!(probe(&path).unwrap(), Probe::Locked { pid: Some(pid), .. } if pid == me));
        assert!(matches!(
            PidFile::acquire(&path),
            Err(AcquireError::AlreadyRunning { pid: Some(p) }) if p == me
        ));
        drop(held);
        assert!(!path.exists());
        assert!(matches!(
            probe(&path).unwrap(),
            Probe::Unlocked { stale: false }
        ));
    }

    #[test]
    fn an_unlocked_pidfile_is_stale_whatever_pid_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        // pid 1 is alive, but it does not hold our lock.
        fs::write(&path, "1\n").unwrap();
        assert!(matches!(
            probe(&path).unwrap(),
            Probe::Unlocked { stale: true }
        ));
        assert!(!path.exists());
        // A leftover is replaced by a file of our own.
        fs::write(&path, "1\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let _held = PidFile::acquire(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn the_stop_phase_is_read_back_from_the_pidfile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        let held = PidFile::acquire(&path).unwrap();
        let phase = || match probe(&path).unwrap() {
            Probe::Locked { phase, .. } => phase,
            other => panic!("{other:?}"),
        };
        assert_eq!(phase(), StopPhase::Serving);
        let mut recorder = held.phase_recorder().unwrap();
        recorder.record(StopPhase::Stopping).unwrap();
        assert_eq!(phase(), StopPhase::Stopping);
        recorder.record(StopPhase::Aborting).unwrap();
        assert_eq!(phase(), StopPhase::Aborting);
    }

    #[test]
    fn a_planted_symlink_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("d.pid");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(PidFile::acquire(&path).is_err());
        assert!(probe(&path).is_err());
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    }
}
