//! The backup service: detaching, the pidfile, signals and the loop, plus the
//! single-schedule runner that `run` shares with it.

pub mod identity;
pub mod pidfile;
pub mod scheduler;
pub mod service;
pub mod signals;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use daemonize::{Daemonize, Outcome};

use crate::clock::Clock;
use crate::file_error::FileError;
use crate::home::Home;
use crate::logging::{self, LogTarget};
use identity::{NotOurs, Process};
use pidfile::{AcquireError, DaemonState, PidFile, Probe, StopPhase};
use signals::{FirstSignal, Shutdown};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("backup_service is already running (pid {pid})")]
    AlreadyRunning { pid: String },
    #[error("backup_service is not running")]
    NotRunning,
    /// The pidfile's lock is held by a process that is not our daemon.
    #[error("backup_service.pid is locked by {}, which is not backup_service of this home: {why}", holder_name(*.pid))]
    Foreign { pid: Option<i32>, why: NotOurs },
    #[error(transparent)]
    Io(#[from] FileError),
    #[error("cannot detach the daemon")]
    Detach(#[source] daemonize::Error),
    #[error("backup_service did not start: the daemon exited with {status}")]
    StartExited { status: std::process::ExitStatus },
    #[error("backup_service did not start: no pidfile after {seconds} s; see {}", log.display())]
    StartTimeout { seconds: u64, log: PathBuf },
    #[error(
        "backup_service (pid {pid}) did not stop within {seconds} s; it is still running (stop --now aborts the backups in progress)"
    )]
    StopTimeout { pid: i32, seconds: u64 },
    #[error("another stop is signalling backup_service (it holds {})", lock.display())]
    StopBusy { lock: PathBuf },
    #[error("cannot send {signal} to backup_service (pid {pid})")]
    Signal {
        pid: i32,
        signal: &'static str,
        #[source]
        source: io::Error,
    },
}

fn holder_name(pid: Option<i32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}{}", command_name(pid)),
        None => "another process".into(),
    }
}

/// ` (sleep)`: the command name of `pid`, when it can be read.
fn command_name(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|name| format!(" ({})", crate::primitives::quote(name.trim())))
        .unwrap_or_default()
}

impl DaemonError {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io(FileError::new(action, path, source))
    }
}

/// Reads the daemon's state from the pidfile (removing a stale one).
pub fn state(home: &Home) -> Result<DaemonState, DaemonError> {
    Ok(match find(home)? {
        Found::Ours { pid, since, .. } => DaemonState::Running { pid, since },
        Found::Foreign { pid, why } => DaemonState::Foreign { pid, why },
        Found::Nobody { stale } => DaemonState::NotRunning { stale },
    })
}

/// The daemon, pinned so that it can be signalled safely.
pub enum Found {
    Ours {
        pid: i32,
        since: std::time::SystemTime,
        /// Whether it was asked to stop already.
        phase: StopPhase,
        process: Process,
    },
    Foreign {
        pid: Option<i32>,
        why: NotOurs,
    },
    Nobody {
        stale: bool,
    },
}

/// Finds the process holding the pidfile and proves it is our daemon for
/// `home` before anyone may signal it (see `identity.rs`).
pub fn find(home: &Home) -> Result<Found, DaemonError> {
    let path = home.pidfile();
    let (file, pid, since, phase) =
        match pidfile::probe(&path).map_err(|e| DaemonError::io("read pidfile", &path, e))? {
            Probe::Unlocked { stale } => return Ok(Found::Nobody { stale }),
            Probe::Locked {
                file,
                pid,
                since,
                phase,
            } => (file, pid, since, phase),
        };
    let Some(pid) = pid else {
        // Name the process that holds the lock, so the user can find it.
        let holder = identity::lock_holders(&file).and_then(|h| h.first().copied());
        return Ok(Found::Foreign {
            pid: holder,
            why: NotOurs::NoPid,
        });
    };
    let process = match Process::open(pid) {
        Ok(process) => process,
        Err(e) => {
            return Ok(Found::Foreign {
                pid: Some(pid),
                why: NotOurs::Unverifiable {
                    reason: e.to_string(),
                },
            });
        }
    };
    Ok(match process.verify(home.root(), &file) {
        Ok(()) => Found::Ours {
            pid,
            since,
            phase,
            process,
        },
        Err(why) => Found::Foreign {
            pid: Some(pid),
            why,
        },
    })
}

/// How the service runs.
pub struct DaemonOptions<'a> {
    /// Stay in the foreground.
    pub foreground: bool,
    /// How many backups may run at once (at least 1).
    pub jobs: usize,
    /// The service log, opened once detached (the cli decides which file).
    pub log: LogTarget<'a>,
    /// The time zone schedules are read in (resolved once by the cli).
    pub zone: chrono::Local,
    /// The Prometheus text file to write at start and after each run.
    pub metrics: Option<&'a std::path::Path>,
}

/// Runs the service: detached into the background unless `foreground`. In the
/// background case this returns in the calling process once the daemon is
/// forked, and runs the loop in the detached one.
pub fn run_daemon(
    home: &Home,
    clock: Arc<dyn Clock>,
    options: DaemonOptions<'_>,
) -> Result<(), DaemonError> {
    let foreground = options.foreground;
    // Before anything else: a descriptor inherited from whoever started us
    // (the pipe of `out=$(backupctl start)`, a supervisor's) would be held
    // for the daemon's whole life, and the caller would wait for its EOF.
    close_inherited_descriptors();
    home.ensure_layout()
        .map_err(|e| DaemonError::io("create", home.root(), e))?;
    // Refuse here, where the caller still sees our stderr.
    match state(home)? {
        DaemonState::Running { pid, .. } => {
            return Err(DaemonError::AlreadyRunning {
                pid: pid.to_string(),
            });
        }
        DaemonState::Foreign { pid, why } => return Err(DaemonError::Foreign { pid, why }),
        DaemonState::NotRunning { .. } => {}
    }
    // The service's only voice once detached is its log: make sure it can
    // be opened while the caller still sees our stderr.
    logging::check_writable(options.log.file)
        .map_err(|e| DaemonError::io("open log file", home.display_path(options.log.file), e))?;
    // The metrics at start, written while the caller still sees our stderr:
    // a path that cannot be written is refused here, not found out later.
    if let Some(path) = options.metrics {
        crate::metrics::write_metrics(path, home, clock.now(), &options.zone)?;
    }
    if foreground {
        // Detached or not, the daemon works in its home: that is how `stop`
        // recognises it (`identity.rs`).
        std::env::set_current_dir(home.root())
            .map_err(|e| DaemonError::io("change into", home.root(), e))?;
    } else {
        let detach = Daemonize::new()
            .working_directory(home.root())
            .umask(0o077u32);
        match detach.execute() {
            Outcome::Parent(Ok(_)) => return Ok(()),
            Outcome::Parent(Err(e)) | Outcome::Child(Err(e)) => {
                return Err(DaemonError::Detach(e));
            }
            Outcome::Child(Ok(_)) => {}
        }
    }
    let log = options.log.file;
    logging::init(options.log, clock.clone())
        .map_err(|e| DaemonError::io("open log file", log, e))?;
    let serving = service::Serving {
        jobs: options.jobs,
        metrics: options.metrics,
    };
    let result = serve_with_pidfile(home, clock.as_ref(), &options.zone, &serving);
    if let Err(error) = &result {
        log::error!("{}", crate::primitives::error_chain(error));
    }
    result
}

/// Closes every descriptor above stderr (daemon(7)). Nothing of ours is open
/// yet; stdin, stdout and stderr go to /dev/null when `daemonize` detaches.
fn close_inherited_descriptors() {
    // SAFETY: close_range only closes descriptors; none above 2 is in use.
    let closed = unsafe { nix::libc::syscall(nix::libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if closed == 0 {
        return;
    }
    // Kernels before 5.9: close what /proc/self/fd lists.
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: as above; the directory's own descriptor is closed by now
        // or fails harmlessly with EBADF.
        unsafe { nix::libc::close(fd) };
    }
}

fn serve_with_pidfile(
    home: &Home,
    clock: &dyn Clock,
    zone: &chrono::Local,
    serving: &service::Serving<'_>,
) -> Result<(), DaemonError> {
    let jobs = serving.jobs;
    // Signals first: once the pidfile exists, `stop` may signal us.
    let shutdown = Shutdown::install(FirstSignal::Graceful)
        .map_err(|e| DaemonError::io("install signal handlers for", home.root(), e))?;
    let pid_path = home.pidfile();
    let pidfile = PidFile::acquire(&pid_path).map_err(|e| match e {
        AcquireError::AlreadyRunning { pid } => DaemonError::AlreadyRunning {
            pid: pid.map_or_else(|| "unknown".into(), |p| p.to_string()),
        },
        AcquireError::Io(e) => DaemonError::io("write pidfile", &pid_path, e),
    })?;
    match pidfile.phase_recorder() {
        Ok(mut recorder) => shutdown.on_stop(Box::new(move |phase| {
            if let Err(e) = recorder.record(phase) {
                log::warn!("cannot record the stop in the pidfile: {e}");
            }
        })),
        Err(e) => log::warn!("cannot record stops in the pidfile: {e}"),
    }
    log::info!(
        "backup_service started (pid {}, home {})",
        std::process::id(),
        home.root().display()
    );
    if jobs > 1 {
        log::info!("up to {jobs} backups run at once");
    }
    service::serve(home, clock, zone, &shutdown, serving);
    log::info!("backup_service stopped (pid {})", std::process::id());
    drop(pidfile);
    Ok(())
}
