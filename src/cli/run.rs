//! `run INDEX|NAME [--dry-run]`: backs up one schedule now, in the
//! foreground, and prints the run's summary. Exits 0 when everything was
//! archived (or the tree was unchanged under `if-changed`), 3 when the archive
//! is partial, 1 when the run failed. Ctrl-C abandons the archive and removes
//! the partial file. On a terminal a progress bar shows on stderr.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};

use super::{Context, print_lines};
use crate::archive::Watch;
use crate::backup::copy::{CopyError, CopyReport};
use crate::backup::{self, History, RunOutcome, WhenBusy};
use crate::daemon::signals::{FirstSignal, Shutdown};
use crate::error::Error;
use crate::exit_codes::ExitCode;
use crate::model::RunState;
use crate::store::Schedule;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The schedule's index or name
    #[arg(allow_hyphen_values = true)]
    pub schedule: String,
    /// Print the archive it would write, what the schedule's exclude rules
    /// leave out (`exclude PATH (RULE)`) and what retention would delete;
    /// change nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let (_, schedule) = ctx.store.find(&args.schedule)?;
    let now = ctx.clock.now();
    if args.dry_run {
        return print_plan(ctx, &schedule, now);
    }
    let shutdown = Shutdown::install(FirstSignal::Abort)
        .map_err(|e| Error::io("install signal handlers for", ctx.home.root(), e))?;
    let progress = AtomicU64::new(0);
    let watch = Watch {
        abort: shutdown.abort_flag(),
        progress: Some(&progress),
    };
    // The last run's byte count is the estimate: no extra walk to size the tree.
    let estimate = History::of(&ctx.home, &schedule)
        .newest_current()
        .map(|(_, manifest)| manifest.bytes_read);
    let bar = ctx.stderr_is_terminal.then_some(estimate);
    let outcome = with_progress_bar(bar, &progress, || {
        backup::run_job(
            &ctx.home,
            ctx.clock.as_ref(),
            &schedule,
            WhenBusy::Wait,
            watch,
        )
    })?;
    let copy_failed = report_copy_failure(ctx, outcome.copy());
    let finished = match outcome {
        RunOutcome::Unchanged { since, copy } => {
            let mut lines = vec![format!(
                "{}: unchanged since {}; no archive written",
                schedule.source,
                ctx.home.display_path(&since.path)
            )];
            lines.extend(copy_lines(copy.as_ref()));
            print_lines(lines)?;
            return Ok(if copy_failed {
                ExitCode::CopyFailed
            } else {
                ExitCode::Success
            });
        }
        RunOutcome::Finished(finished) => finished,
    };
    for skipped in &finished.report.skipped {
        eprintln!(
            "{}: warning: skipped {}: {}",
            ctx.program,
            skipped.path.display(),
            skipped.reason
        );
    }
    let mut lines = vec![format!(
        "{}: {}",
        ctx.home.display_path(&finished.archive),
        backup::summary(&finished.report)
    )];
    lines.extend(
        finished
            .pruned
            .iter()
            .map(|p| format!("pruned {}", ctx.home.display_path(p))),
    );
    lines.extend(copy_lines(finished.copy.as_ref()));
    print_lines(lines)?;
    Ok(match finished.state {
        RunState::Partial => ExitCode::Partial,
        RunState::CopyFailed => ExitCode::CopyFailed,
        RunState::Ok | RunState::Failed => ExitCode::Success,
    })
}

/// `copied to LOCATION` and `pruned LOCATION` lines of a copy that worked.
fn copy_lines(copy: Option<&Result<CopyReport, CopyError>>) -> Vec<String> {
    let Some(Ok(copy)) = copy else {
        return Vec::new();
    };
    let uploaded = copy.uploaded.iter().map(|l| format!("copied to {l}"));
    let deleted = copy.deleted.iter().map(|l| format!("pruned {l}"));
    uploaded.chain(deleted).collect()
}

/// Says on stderr why the copy failed, if it did.
fn report_copy_failure(ctx: &Context, copy: Option<&Result<CopyReport, CopyError>>) -> bool {
    let Some(Err(error)) = copy else {
        return false;
    };
    eprintln!("{}: {}", ctx.program, crate::primitives::error_chain(error));
    true
}

/// `run --dry-run`: the archive it would write and retention's verdicts.
fn print_plan(ctx: &Context, schedule: &Schedule, now: DateTime<Utc>) -> Result<ExitCode, Error> {
    let plan = backup::plan_run(&ctx.home, schedule, now)?;
    if let Some(since) = &plan.unchanged_since {
        print_lines([format!(
            "would skip: {} unchanged since {}",
            schedule.source,
            ctx.home.display_path(since)
        )])?;
        return Ok(ExitCode::Success);
    }
    let level = plan
        .level
        .map_or_else(|| "none".to_string(), |l| l.to_string());
    let mut lines = vec![format!(
        "would write {} (format {}, level {level})",
        ctx.home.display_path(&plan.archive),
        plan.format.extension()
    )];
    lines.extend(
        plan.excluded
            .iter()
            .map(|(path, by)| format!("exclude {} ({by})", ctx.home.display_path(path))),
    );
    if !schedule.options.keeps_history() {
        lines.push("no retention: the archive replaces the previous one".to_string());
    }
    let mut decisions = plan.decisions;
    decisions.sort_by_key(|d| std::cmp::Reverse(d.stamp));
    lines.extend(decisions.iter().map(|d| {
        let verdict = if d.keep { "keep  " } else { "delete" };
        let why = if d.reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", d.reasons.join(", "))
        };
        format!("{verdict} {}{why}", ctx.home.display_path(&d.path))
    }));
    print_lines(lines)?;
    Ok(ExitCode::Success)
}

/// Runs `work`, drawing a bar of `progress` on stderr when `bar` is given
/// (stderr is a terminal): against the estimate it holds, or a spinner with a
/// byte count without one.
fn with_progress_bar<T>(
    bar: Option<Option<u64>>,
    progress: &AtomicU64,
    work: impl FnOnce() -> T,
) -> T {
    let Some(estimate) = bar else {
        return work();
    };
    let bar = match estimate.filter(|&n| n > 0) {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let read = progress.load(Ordering::Relaxed);
                // The tree may have grown since the estimate was taken.
                if bar.length().is_some_and(|len| read > len) {
                    bar.set_length(read);
                }
                bar.set_position(read);
                bar.tick();
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let result = work();
        done.store(true, Ordering::Relaxed);
        result
    });
    bar.finish_and_clear();
    result
}
