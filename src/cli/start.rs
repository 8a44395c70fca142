//! `start`: launches `backupctl daemon` and returns once the daemon runs and
//! holds its pidfile, or says why it could not start.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Context;
use crate::daemon::pidfile::DaemonState;
use crate::daemon::{self, DaemonError};
use crate::error::Error;
use crate::exit_codes::ExitCode;

/// How long a daemon may take to write its pidfile.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many backups may run at the same time
    #[arg(long, short, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    #[command(flatten)]
    pub metrics: super::daemon::MetricsArgs,
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    match daemon::state(&ctx.home)? {
        DaemonState::Running { pid, .. } => {
            return Err(DaemonError::AlreadyRunning {
                pid: pid.to_string(),
            }
            .into());
        }
        DaemonState::Foreign { pid, why } => return Err(DaemonError::Foreign { pid, why }.into()),
        DaemonState::NotRunning { .. } => {}
    }
    let exe =
        std::env::current_exe().map_err(|e| Error::io("find", "the backupctl executable", e))?;
    // The child forks the daemon and exits; errors before that reach our stderr.
    let mut daemon = Command::new(&exe);
    daemon
        .arg("--home")
        .arg(ctx.home.root())
        .arg("daemon")
        .arg("--jobs")
        .arg(args.jobs.to_string());
    if let Some(path) = args.metrics.path()? {
        daemon.arg("--metrics-file").arg(path);
    }
    let status = daemon
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| Error::io("run", &exe, e))?;
    if !status.success() {
        return Err(DaemonError::StartExited { status }.into());
    }
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if let DaemonState::Running { pid, .. } = daemon::state(&ctx.home)? {
            log::info!("backup_service started (pid {pid})");
            return Ok(ExitCode::Success);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(DaemonError::StartTimeout {
        seconds: START_TIMEOUT.as_secs(),
        log: ctx
            .home
            .service_log()
            .strip_prefix(ctx.home.root())
            .unwrap_or(&ctx.home.service_log())
            .to_path_buf(),
    }
    .into())
}
