//! `daemon [--foreground] [--jobs N]` (and the `backup_service` personality):
//! runs the backup service, detached unless `--foreground`. The service opens
//! its own log, as the context planned it, once it has detached.

use super::{Context, LogPlan};
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
    let LogPlan::Service(log) = &ctx.log else {
        unreachable!("context::log_plan gives the daemon the service log")
    };
    let options = DaemonOptions {
        foreground: args.foreground,
        jobs: usize::from(args.jobs),
        log: log.target(),
    };
    daemon::run_daemon(&ctx.home, ctx.clock.clone(), options).map_err(Error::Service)?;
    Ok(ExitCode::Success)
}
