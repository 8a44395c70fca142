//! `stop [--timeout S] [--now]`: asks the daemon of this home to stop (one
//! SIGTERM) and waits until it has finished its backups in progress and
//! exited. A daemon already stopping is not signalled again, since a second
//! SIGTERM aborts its backups; `--now` asks for exactly that.

use std::fs::File;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::Context;
use crate::daemon::identity::Process;
use crate::daemon::pidfile::{self, StopPhase};
use crate::daemon::{self, DaemonError, Found};
use crate::error::Error;
use crate::exit_codes::ExitCode;
use crate::primitives;

/// After this long, say what we are waiting for.
const PATIENCE: Duration = Duration::from_secs(3);

/// How long the daemon may take to record a signal in its pidfile, and
/// another `stop` to finish signalling.
const ACKNOWLEDGE: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Give up waiting after this many seconds [default: wait until it exits]
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Abort the backups in progress (their partial files are removed)
    /// instead of waiting for them to finish
    #[arg(long)]
    pub now: bool,
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let timeout = args.timeout;
    let pid = {
        // Held while we signal, so a concurrent `stop` sees what we did.
        let _lock = take_stop_lock(ctx)?;
        let (pid, phase, process) = ours(ctx)?;
        if phase >= StopPhase::Stopping && !args.now {
            eprintln!(
                "{}: backup_service (pid {pid}) is already stopping; waiting for the backups in progress (stop --now aborts them)",
                ctx.program
            );
        }
        let wanted = if args.now {
            StopPhase::Aborting
        } else {
            StopPhase::Stopping
        };
        // Each SIGTERM moves the daemon one phase on; wait for it to record
        // each one, so two signals never merge into one.
        let mut phase = phase;
        while phase < wanted {
            signal(&process, pid)?;
            match acknowledged(ctx, phase)? {
                Some(next) => phase = next,
                None => break,
            }
        }
        pid
    };
    let path = ctx.home.pidfile();
    let wait = |limit: Option<Duration>| {
        pidfile::wait_until_released(&path, limit).map_err(|e| Error::io("read pidfile", &path, e))
    };
    let limit = timeout.map(Duration::from_secs);
    let mut stopped = wait(Some(limit.map_or(PATIENCE, |l| l.min(PATIENCE))))?;
    if !stopped && limit.is_none_or(|l| l > PATIENCE) {
        eprintln!(
            "{}: waiting for backup_service (pid {pid}) to finish the backups in progress...",
            ctx.program
        );
        stopped = wait(limit.map(|l| l - PATIENCE))?;
    }
    if !stopped {
        return Err(DaemonError::StopTimeout {
            pid,
            seconds: timeout.unwrap_or_default(),
        }
        .into());
    }
    wait_for_exit(pid);
    log::info!("backup_service stopped");
    Ok(ExitCode::Success)
}

/// Our daemon, proven (never a stranger), with its stop phase.
fn ours(ctx: &Context) -> Result<(i32, StopPhase, Process), Error> {
    match daemon::find(&ctx.home)? {
        Found::Ours {
            pid,
            phase,
            process,
            ..
        } => Ok((pid, phase, process)),
        Found::Foreign { pid, why } => Err(DaemonError::Foreign { pid, why }.into()),
        Found::Nobody { stale } => {
            if stale {
                log::warn!("removed a stale pidfile");
            }
            Err(DaemonError::NotRunning.into())
        }
    }
}

fn signal(process: &Process, pid: i32) -> Result<(), Error> {
    match process.signal(Signal::SIGTERM) {
        Ok(()) => Ok(()),
        // Gone since we looked: stopped already.
        Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => Ok(()),
        Err(source) => Err(DaemonError::Signal {
            pid,
            signal: "SIGTERM",
            source,
        }
        .into()),
    }
}

/// Waits for the daemon to record a phase past `before`; `None` when it is
/// gone or does not say (a daemon of an older version).
fn acknowledged(ctx: &Context, before: StopPhase) -> Result<Option<StopPhase>, Error> {
    let started = Instant::now();
    while started.elapsed() < ACKNOWLEDGE {
        match daemon::find(&ctx.home)? {
            Found::Ours { phase, .. } if phase > before => return Ok(Some(phase)),
            Found::Ours { .. } => {}
            Found::Foreign { .. } | Found::Nobody { .. } => return Ok(None),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(None)
}

/// Takes the stop lock, waiting a little for another `stop` to finish
/// signalling.
fn take_stop_lock(ctx: &Context) -> Result<File, Error> {
    let path = ctx.home.stop_lock();
    let file =
        primitives::open_lock_file(&path).map_err(|e| Error::io("open lock file", &path, e))?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < ACKNOWLEDGE => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(DaemonError::StopBusy { lock: path }.into());
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
        }
    }
}

/// The lock goes a moment before the process: wait (briefly) for the process
/// itself to be gone, so that "stopped" means exited. A zombie has exited.
fn wait_for_exit(pid: i32) {
    for _ in 0..200 {
        let gone = kill(Pid::from_raw(pid), None).is_err()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit(')')
                    .next()
                    .is_some_and(|rest| rest.trim_start().starts_with('Z'))
            });
        if gone {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
