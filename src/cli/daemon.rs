//! `daemon [--foreground] [--jobs N]` (and the `backup_service` personality):
//! runs the backup service, detached unless `--foreground`, writing its
//! metrics file when `--metrics-file` names one. The service opens
//! its own log, as the context planned it, once it has detached.

use std::path::PathBuf;

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
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// Where the service and `run` write their Prometheus metrics.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MetricsArgs {
    /// Write Prometheus metrics (node_exporter's textfile collector) to PATH,
    /// replaced atomically at start and after each run
    #[arg(long, value_name = "PATH", env = "BACKUPCTL_METRICS_FILE")]
    pub metrics_file: Option<PathBuf>,
}

impl MetricsArgs {
    /// The path, absolute (the service changes into its home), or `None`.
    pub fn path(&self) -> Result<Option<PathBuf>, Error> {
        self.metrics_file
            .as_deref()
            .map(|path| {
                std::path::absolute(path).map_err(|e| Error::io("resolve metrics file", path, e))
            })
            .transpose()
    }
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
    let metrics = args.metrics.path()?;
    let options = DaemonOptions {
        foreground: args.foreground,
        jobs: usize::from(args.jobs),
        log: log.target(),
        zone: ctx.zone,
        metrics: metrics.as_deref(),
    };
    daemon::run_daemon(&ctx.home, ctx.clock.clone(), options).map_err(Error::Service)?;
    Ok(ExitCode::Success)
}
