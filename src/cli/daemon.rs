//! `daemon [--foreground] [--jobs N]` (and the `backup_service` personality):
//! runs the backup service, detached unless `--foreground`. The service opens
//! its own log, as the context planned it, once it has detached.

use super::{Context, LogFile, LogPlan};
use crate::daemon::{self, DaemonOptions};
use crate::error::Error;
use crate::exit_codes::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stay in the foreground and log to stderr too (systemd, containers)
    #[arg(long, short)]
    pub foreground: bool,
    /// How many backups may run at the same time
    #[arg(long, short, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    // context::log_plan gives the daemon the service log, which the daemon
    // opens itself once detached.
    let fallback = LogFile {
        path: ctx.home.service_log(),
        echo: if args.foreground {
            crate::logging::Echo::Stamped
        } else {
            crate::logging::Echo::Off
        },
        rotation: Default::default(),
        time: Default::default(),
    };
    let log = match &ctx.log {
        LogPlan::Service(log) | LogPlan::Cli(log) => log,
        LogPlan::Nowhere => &fallback,
    };
    let options = DaemonOptions {
        foreground: args.foreground,
        jobs: usize::from(args.jobs),
        log: log.target(),
        zone: ctx.zone,
    };
    daemon::run_daemon(&ctx.home, ctx.clock.clone(), options).map_err(Error::Service)?;
    Ok(ExitCode::Success)
}
