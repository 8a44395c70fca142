//! Proof that a process is our daemon before it is ever signalled. The
//! pidfile's lock says that *some* process holds it, and the pid inside is
//! whatever the file's writer put there; in a home other users may write to,
//! neither is proof. A process is taken for the backup service of a home
//! only when all of these hold:
//!
//! - it holds the `flock` on the pidfile (read from `/proc/locks`, so the pid
//!   written in the file cannot point at a bystander);
//! - it runs our executable: `/proc/PID/exe` is the same file (device and
//!   inode) as `/proc/self/exe`, or, after an upgrade replaced the binary,
//!   the deleted file that was at our own path;
//! - its working directory is the home (the daemon always changes into it).
//!
//! The process is pinned with a pidfd before the checks, and the signal goes
//! through that pidfd, so a pid reused in between can never receive it.

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::libc;
use nix::sys::signal::Signal;

/// Why the process holding a pidfile is not taken for our daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotOurs {
    /// The pidfile is locked but names no pid.
    NoPid,
    /// The pid named in the file does not hold the lock.
    NotTheHolder { holders: Vec<i32> },
    /// It runs another program.
    OtherProgram { exe: PathBuf },
    /// It is a backupctl working somewhere else.
    OtherHome { cwd: PathBuf },
    /// Its `/proc` entries cannot be read (another user's process, or gone).
    Unverifiable { reason: String },
}

impl fmt::Display for NotOurs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotOurs::NoPid => write!(f, "the pidfile names no pid"),
            NotOurs::NotTheHolder { holders } if holders.is_empty() => {
                write!(f, "that process does not hold the lock")
            }
            NotOurs::NotTheHolder { holders } => {
                let list: Vec<String> = holders.iter().map(i32::to_string).collect();
                write!(
                    f,
                    "that process does not hold the lock (pid {} does)",
                    list.join(", ")
                )
            }
            NotOurs::OtherProgram { exe } => {
                write!(f, "that process runs {}, not backupctl", exe.display())
            }
            NotOurs::OtherHome { cwd } => {
                write!(
                    f,
                    "that process works in {}, not in this home",
                    cwd.display()
                )
            }
            NotOurs::Unverifiable { reason } => {
                write!(f, "that process cannot be inspected ({reason})")
            }
        }
    }
}

/// A process pinned by a pidfd (when the kernel has them), so that checking
/// it and signalling it concern the same process.
pub struct Process {
    pid: i32,
    pidfd: Option<OwnedFd>,
}

impl Process {
    /// Pins `pid`. Fails with `ESRCH` when it no longer exists.
    pub fn open(pid: i32) -> io::Result<Self> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd >= 0 {
            // SAFETY: the kernel just gave us this descriptor; nobody else owns it.
            let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            return Ok(Self {
                pid,
                pidfd: Some(pidfd),
            });
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            // Older kernels: fall back to the bare pid.
            Some(libc::ENOSYS) => Ok(Self { pid, pidfd: None }),
            _ => Err(error),
        }
    }

    /// Proves that this process is the backup service of `home`, holding
    /// the lock on `pidfile` (see the module comment).
    pub fn verify(&self, home: &Path, pidfile: &File) -> Result<(), NotOurs> {
        let pid = self.pid;
        if let Some(holders) = settled_lock_holders(pidfile)
            && !holders.contains(&pid)
        {
            return Err(NotOurs::NotTheHolder { holders });
        }
        let unverifiable = |e: io::Error| NotOurs::Unverifiable {
            reason: e.to_string(),
        };
        let exe = format!("/proc/{pid}/exe");
        if !runs_our_executable(Path::new(&exe)).map_err(unverifiable)? {
            return Err(NotOurs::OtherProgram {
                exe: fs::read_link(&exe).map_err(unverifiable)?,
            });
        }
        let cwd = format!("/proc/{pid}/cwd");
        if !same_file(Path::new(&cwd), home).map_err(unverifiable)? {
            return Err(NotOurs::OtherHome {
                cwd: fs::read_link(&cwd).map_err(unverifiable)?,
            });
        }
        // Checked last: the pidfd is still the process we inspected.
        if !self.alive() {
            return Err(NotOurs::Unverifiable {
                reason: "it has exited".into(),
            });
        }
        Ok(())
    }

    fn alive(&self) -> bool {
        self.send(None).is_ok()
    }

    /// Sends `signal` to this very process (never to a reused pid).
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        self.send(Some(signal))
    }

    fn send(&self, signal: Option<Signal>) -> io::Result<()> {
        let number = signal.map_or(0, |s| s as i32);
        let result = match &self.pidfd {
            // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
            Some(fd) => unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    number,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            },
            // SAFETY: kill with a pid and a signal number.
            None => unsafe { libc::kill(self.pid, number) }.into(),
        };
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// True when `exe` (a `/proc/PID/exe` link) is our own executable, or the
/// deleted file our executable's path held before an upgrade replaced it.
fn runs_our_executable(exe: &Path) -> io::Result<bool> {
    let ours = Path::new("/proc/self/exe");
    if same_file(exe, ours)? {
        return Ok(true);
    }
    let (theirs, ours) = (fs::read_link(exe)?, fs::read_link(ours)?);
    let mut replaced = ours.into_os_string();
    replaced.push(" (deleted)");
    Ok(theirs.as_os_str() == replaced)
}

fn same_file(a: &Path, b: &Path) -> io::Result<bool> {
    let (a, b) = (fs::metadata(a)?, fs::metadata(b)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

/// [`lock_holders`] for a file the caller found locked: if `/proc/locks`
/// shows no holder at all, which contradicts that, it is read again a few
/// times (once, under heavy load, a test saw an empty answer for a lock its
/// daemon held) before the answer is taken.
fn settled_lock_holders(file: &File) -> Option<Vec<i32>> {
    let mut holders = lock_holders(file)?;
    for _ in 0..10 {
        if !holders.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        holders = lock_holders(file)?;
    }
    Some(holders)
}

/// The pids holding an `flock` on `file`, from `/proc/locks`; `None` when
/// that cannot be read. Matched by inode number: the device `/proc/locks`
/// shows is the superblock's, which `stat` does not always report (btrfs).
pub fn lock_holders(file: &File) -> Option<Vec<i32>> {
    let inode = file.metadata().ok()?.ino();
    let table = fs::read_to_string("/proc/locks").ok()?;
    Some(holders_in(&table, inode))
}

fn holders_in(table: &str, inode: u64) -> Vec<i32> {
    table
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // `1: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF`; waiters
            // have a `->` after the number and hold nothing.
            match fields.as_slice() {
                [_, "FLOCK", _, _, pid, id, ..] => {
                    let ino = id.rsplit(':').next()?.parse::<u64>().ok()?;
                    (ino == inode).then(|| pid.parse().ok()).flatten()
                }
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_holders_are_read_by_inode_and_waiters_are_ignored() {
        let table = "1: FLOCK  ADVISORY  WRITE 17444 fe:00:10010634 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 17500 fe:00:10010634 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 99 fe:00:10010634 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 16371 fe:00:5406867 0 EOF\n";
        assert_eq!(holders_in(table, 10010634), [17444]);
        assert!(holders_in(table, 1).is_empty());
    }

    #[test]
    fn we_are_our_own_executable_and_another_program_is_not() {
        assert!(runs_our_executable(Path::new("/proc/self/exe")).unwrap());
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let exe = format!("/proc/{}/exe", child.id());
        assert!(!runs_our_executable(Path::new(&exe)).unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
