//! `run INDEX|NAME [--dry-run]`: backs up one schedule now, in the
//! foreground, and prints the run's summary. Exits 0 when everything was
//! archived (or the tree was unchanged under `if-changed`), 3 when the archive
//! is partial, 1 when the run failed. Ctrl-C (or SIGTERM) says it is
//! stopping, abandons the archive within moments, removes the partial file
//! and exits 130 (143). On a terminal a progress bar shows on stderr.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};

use super::{Context, print_lines};
use crate::archive::Watch;
use crate::backup::copy::{CopyError, CopyReport};
use crate::backup::{self, History, RunOutcome, WhenBusy};
use crate::daemon::pidfile::StopPhase;
use crate::daemon::signals::{FirstSignal, Shutdown};
use crate::error::Error;
use crate::exit_codes::ExitCode;
use crate::metrics;
use crate::model::RunState;
use crate::primitives::{error_chain, human_bytes};
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
    #[command(flatten)]
    pub metrics: super::daemon::MetricsArgs,
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let (_, schedule) = ctx.store.find(&args.schedule)?;
    let now = ctx.clock.now();
    if args.dry_run {
        return print_plan(ctx, &schedule, now);
    }
    let shutdown = Shutdown::install(FirstSignal::Abort)
        .map_err(|e| Error::io("install signal handlers for", ctx.home.root(), e))?;
    say_when_stopping(&shutdown, ctx.program, &schedule.name);
    let progress = AtomicU64::new(0);
    let watch = Watch {
        abort: shutdown.abort_flag(),
        progress: Some(&progress),
    };
    // The last run's byte count is the total until a walk has measured the
    // tree as it is now.
    let estimate = History::of(&ctx.home, &schedule)
        .newest_current()
        .map(|(_, manifest)| manifest.bytes_read);
    let metrics = args.metrics.path()?;
    let walk = {
        let (home, schedule) = (ctx.home.clone(), schedule.clone());
        move || backup::estimate_bytes(&home, &schedule)
    };
    let outcome = with_progress_bar(ctx.stderr_is_terminal, estimate, walk, &progress, || {
        backup::run_job(
            &ctx.home,
            ctx.clock.as_ref(),
            &schedule,
            WhenBusy::Wait,
            watch,
        )
    });
    if let Some(path) = &metrics
        && let Err(error) = metrics::write_metrics(path, &ctx.home, ctx.clock.now(), &ctx.zone)
    {
        // The backup's outcome stands: metrics never fail it.
        let error = error_chain(&error);
        eprintln!("{}: warning: {error}", ctx.program);
        log::warn!("{error}");
    }
    let outcome = outcome.map_err(|source| match shutdown.stop_signal() {
        Some(name) if shutdown.aborting() => Error::Interrupted {
            name,
            number: shutdown.stop_signal_number().unwrap_or(2),
            source: Box::new(source),
        },
        _ => Error::Job(source),
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

/// Says at once, on stderr and in the log, that a stop signal (Ctrl-C) is
/// stopping the run. What it left is said when it returns: a partial
/// archive removed, or, when the signal came while a finished archive was
/// being copied (`copy-to`), the archive kept and the copy failed.
fn say_when_stopping(shutdown: &Shutdown, program: &'static str, schedule: &str) {
    let schedule = schedule.to_string();
    let mut said = false;
    shutdown.on_stop(Box::new(move |phase| {
        if phase != StopPhase::Aborting || said {
            return;
        }
        said = true;
        eprintln!("{program}: interrupted: stopping the backup of {schedule}");
        log::info!("Interrupted: stopping the backup of {schedule}");
    }));
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

/// Unknown, for the walk's total while it runs.
const UNKNOWN: u64 = u64::MAX;

/// Runs `work`, drawing a bar of `progress` on stderr when it is a terminal:
/// a percentage, the bytes read and the total, the speed and an ETA, in the
/// units of the run's summary (`human_bytes`: KiB, MiB, …). The total is the
/// last run's byte count at first, then what a walk of the tree (on its own
/// thread, metadata only) finds; a spinner until either is known.
fn with_progress_bar<T>(
    terminal: bool,
    estimate: Option<u64>,
    walk: impl FnOnce() -> Option<u64> + Send + 'static,
    progress: &AtomicU64,
    work: impl FnOnce() -> T,
) -> T {
    if !terminal {
        return work();
    }
    let walked = Arc::new(AtomicU64::new(UNKNOWN));
    {
        let walked = walked.clone();
        // Not scoped: a walk still going when the run ends must not hold it.
        std::thread::spawn(move || {
            if let Some(total) = walk() {
                walked.store(total, Ordering::Relaxed);
            }
        });
    }
    let bar = ProgressBar::new_spinner().with_style(spinner_style());
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            let (mut has_total, mut finishing) = (false, false);
            while !done.load(Ordering::Relaxed) {
                let read = progress.load(Ordering::Relaxed);
                let total = match walked.load(Ordering::Relaxed) {
                    UNKNOWN => estimate,
                    total => Some(total),
                };
                if let Some(total) = total.filter(|&n| n > 0) {
                    if !has_total {
                        bar.set_style(bar_style());
                        has_total = true;
                    }
                    // The tree may have grown since it was measured.
                    bar.set_length(total.max(read));
                    // Everything is read, but a compressor (zstd -19 holds
                    // several MiB) and the sync still work: say so rather
                    // than sit at 100% with an ETA of 0 s.
                    if read >= total && !finishing && walked.load(Ordering::Relaxed) != UNKNOWN {
                        bar.set_style(finishing_style());
                        finishing = true;
                    }
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

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{percent:>3}% [{bar:30}] {read}/{total} {rate} ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
        .with_key("read", |s: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = write!(w, "{}", human_bytes(s.pos()));
        })
        .with_key("total", |s: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = write!(w, "{}", human_bytes(s.len().unwrap_or(0)));
        })
        .with_key("rate", rate)
}

fn finishing_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} all {read} read; finishing the archive ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key("read", |s: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = write!(w, "{}", human_bytes(s.pos()));
        })
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {read} {rate}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key("read", |s: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = write!(w, "{}", human_bytes(s.pos()));
        })
        .with_key("rate", rate)
}

fn rate(state: &ProgressState, w: &mut dyn fmt::Write) {
    let _ = write!(w, "{}/s", human_bytes(state.per_sec() as u64));
}
