//! `prune [NAME] [--dry-run]`: applies retention now, to one schedule or to
//! every schedule that has retention rules. Prints each archive with `keep`
//! (and the rules that keep it) or `delete`; `--dry-run` changes nothing.

use super::{Context, print_lines};
use crate::backup::retention::Decision;
use crate::backup::{self, History, WhenBusy};
use crate::error::Error;
use crate::exit_codes::ExitCode;
use crate::store::Schedule;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The schedule (index or name) [default: every schedule with retention rules]
    #[arg(allow_hyphen_values = true)]
    pub schedule: Option<String>,
    /// Print each archive with keep (and the rules that keep it) or delete;
    /// change nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let schedules = match args.schedule.as_deref() {
        Some(key) => {
            let (_, schedule) = ctx.store.find(key)?;
            if !schedule.options.retention.is_set() {
                return Err(Error::NoRetention {
                    schedule: schedule.name,
                });
            }
            vec![schedule]
        }
        None => ctx
            .store
            .load()?
            .into_iter()
            .filter_map(|entry| entry.parsed.ok())
            .filter(|schedule| schedule.options.retention.is_set())
            .collect(),
    };
    if schedules.is_empty() {
        eprintln!(
            "{}: no schedule has retention rules; nothing to prune",
            ctx.program
        );
        log::info!("Prune: no schedule has retention rules");
    }
    for schedule in &schedules {
        prune_schedule(ctx, schedule, args.dry_run)?;
    }
    Ok(ExitCode::Success)
}

fn prune_schedule(ctx: &Context, schedule: &Schedule, dry_run: bool) -> Result<(), Error> {
    // A run of the schedule prunes too: one at a time.
    let _lock = if dry_run {
        None
    } else {
        Some(backup::lock_schedule(&ctx.home, schedule, WhenBusy::Wait)?)
    };
    let history = History::of(&ctx.home, schedule);
    let dir = history.dir();
    let decisions = history
        .prune_plan(ctx.clock.now(), None, None)
        .map_err(|e| Error::io("list", dir, e))?;
    let doomed = decisions.iter().filter(|d| !d.keep).count();
    if dry_run {
        log::info!(
            "Prune dry run for {}: would delete {doomed} of {} archives",
            schedule.name,
            decisions.len()
        );
        return print_lines(decisions.iter().map(|d| line(ctx, d, "delete")));
    }
    let deleted = history
        .prune(&decisions)
        .map_err(|e| Error::io("prune", dir, e))?;
    for path in &deleted {
        log::info!(
            "Pruned {} (retention of {})",
            ctx.home.display_path(path),
            schedule.name
        );
    }
    log::info!(
        "Prune of {}: deleted {} of {} archives",
        schedule.name,
        deleted.len(),
        decisions.len()
    );
    print_lines(decisions.iter().map(|d| line(ctx, d, "deleted")))
}

/// `keep    backups/docs_20250101_020000.tar.gz  (newest, keep-daily)` or
/// `delete  backups/docs_20250101_020000.tar.gz`.
fn line(ctx: &Context, decision: &Decision, deleted: &str) -> String {
    let path = ctx.home.display_path(&decision.path);
    if decision.keep {
        format!("{:<7} {path}  ({})", "keep", decision.reasons.join(", "))
    } else {
        format!("{deleted:<7} {path}")
    }
}
