//! `status`: whether the daemon runs (pid, since when) and when each schedule
//! runs next.

use std::process::ExitCode;

use chrono::{DateTime, Local, Utc};

use super::{Context, print_lines};
use crate::clock::log_stamp;
use crate::daemon::{self, pidfile::DaemonState};
use crate::error::Error;

pub fn run(ctx: &Context) -> Result<ExitCode, Error> {
    let mut lines = vec![match daemon::state(&ctx.home)? {
        DaemonState::Running { pid, since } => format!(
            "backup_service: running (pid {pid}, since {})",
            log_stamp(DateTime::<Utc>::from(since))
        ),
        DaemonState::NotRunning { .. } => "backup_service: not running".to_string(),
    }];
    let now = ctx.clock.now().with_timezone(&Local);
    for (index, entry) in ctx.store.load()?.iter().enumerate() {
        lines.push(match &entry.parsed {
            Ok(schedule) => {
                let next = schedule
                    .timing
                    .next_after(&now)
                    .map_or_else(|| "never".to_string(), |t| log_stamp(t.with_timezone(&Utc)));
                format!(
                    "{index}: {}  next run {next}  ({})",
                    schedule.name,
                    entry.text()
                )
            }
            Err(reason) => format!(
                "{index}: not valid, never runs: {} ({reason})",
                entry.text()
            ),
        });
    }
    log::info!("Show status");
    print_lines(lines)?;
    Ok(ExitCode::SUCCESS)
}
