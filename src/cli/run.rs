//! `run INDEX|NAME`: backs up one schedule now, in the foreground. Ctrl-C
//! abandons the archive and removes the partial file.

use std::process::ExitCode;

use super::{Context, print_lines};
use crate::daemon::runner::{self, ScheduleFiles, WhenBusy};
use crate::daemon::signals::{FirstSignal, Shutdown};
use crate::error::Error;

pub fn run(ctx: &Context, key: &str) -> Result<ExitCode, Error> {
    let (_, schedule) = ctx.store.find(key)?;
    let shutdown = Shutdown::install(FirstSignal::Abort)
        .map_err(|e| Error::io("install signal handlers for", ctx.home.root(), e))?;
    let report = crate::daemon::job::run_job(
        &ctx.home,
        ctx.clock.as_ref(),
        &schedule,
        WhenBusy::Wait,
        shutdown.abort_flag(),
    )?;
    for skipped in &report.skipped {
        eprintln!(
            "{}: warning: {}: {}",
            ctx.program,
            skipped.path.display(),
            skipped.reason
        );
    }
    let archive = ScheduleFiles::new(&ctx.home, &schedule).archive;
    print_lines([format!(
        "{}: {}",
        ctx.home.display_path(&archive),
        runner::summary(&report)
    )])?;
    Ok(ExitCode::SUCCESS)
}
