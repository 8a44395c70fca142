//! `stop`: sends SIGTERM to the daemon named by the locked pidfile and waits
//! until it has finished its backups in progress and exited.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::Context;
use crate::daemon::pidfile;
use crate::daemon::{self, DaemonError, Found};
use crate::error::Error;
use crate::exit_codes::ExitCode;

/// After this long, say what we are waiting for.
const PATIENCE: Duration = Duration::from_secs(3);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Give up waiting after this many seconds [default: wait until it exits]
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let timeout = args.timeout;
    let (pid, process) = match daemon::find(&ctx.home)? {
        Found::Ours { pid, process, .. } => (pid, process),
        Found::Foreign { pid, why } => return Err(DaemonError::Foreign { pid, why }.into()),
        Found::Nobody { stale } => {
            if stale {
                log::warn!("removed a stale pidfile");
            }
            return Err(DaemonError::NotRunning.into());
        }
    };
    // Only our own daemon, proven and pinned, gets here: never a stranger.
    match process.signal(Signal::SIGTERM) {
        Ok(()) => {}
        // Gone since we looked: stopped already.
        Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => {}
        Err(source) => {
            return Err(DaemonError::Signal {
                pid,
                signal: "SIGTERM",
                source,
            }
            .into());
        }
    }
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
