//! `check [--max-age DURATION]`: a health check for cron, monitoring or a
//! container. Exits 0 when every schedule's last successful backup is recent
//! enough, else prints one line per problem and exits 1: a schedule overdue
//! or never backed up, archives dated in the future, a last run that was
//! partial, hooks that will not run, a line that is not a valid schedule, a
//! home with no schedules at all. It needs no daemon: the state file and the
//! archives are the truth.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::{Context, print_lines};
use crate::backup::{History, retention};
use crate::clock::log_stamp;
use crate::error::Error;
use crate::exit_codes::ExitCode;
use crate::home::Home;
use crate::model::RunState;
use crate::primitives::{error_chain, printable};
use crate::store::Schedule;
use crate::store::state::{RunStates, StateFile};

/// The slack `check` allows beyond a schedule's interval by default: half the
/// interval, and at least an hour (a backup takes time, a machine reboots).
pub fn default_max_age(interval: TimeDelta) -> TimeDelta {
    interval + (interval / 2).max(TimeDelta::hours(1))
}

/// How `check` judges one schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Fresh,
    Overdue {
        last: DateTime<Utc>,
        allowed: TimeDelta,
    },
    Never,
}

fn judge<Tz: TimeZone>(
    schedule: &Schedule,
    last_success: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    max_age: Option<TimeDelta>,
    zone: &Tz,
) -> Verdict
where
    Tz::Offset: Copy,
{
    let Some(last) = last_success else {
        return Verdict::Never;
    };
    let interval = schedule
        .timing
        .interval_before(&now.with_timezone(zone))
        .unwrap_or(TimeDelta::days(1));
    let allowed = max_age.unwrap_or_else(|| default_max_age(interval));
    if now - last <= allowed {
        Verdict::Fresh
    } else {
        Verdict::Overdue { last, allowed }
    }
}

/// When `schedule` last wrote an archive: the state file, or else its own
/// archives' modification times, whichever is later, ignoring times after
/// `now` (a success dated in the future, when the clock was wrong, proves
/// nothing about now).
fn last_success(
    home: &Home,
    states: &RunStates,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let plausible = |t: &DateTime<Utc>| *t <= now + retention::FUTURE_TOLERANCE;
    let recorded = states
        .schedules
        .get(&schedule.name)
        .and_then(|s| s.last_success.as_ref())
        .map(|r| r.started)
        .filter(plausible);
    let archived = History::of(home, schedule)
        .owned()
        .unwrap_or_default()
        .into_iter()
        .map(|archive| DateTime::<Utc>::from(archive.modified))
        .filter(plausible)
        .max();
    recorded.max(archived)
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Overdue after this long without a successful backup (90m, 36h, 7d)
    /// [default: the schedule's interval plus a margin]
    #[arg(long, value_name = "DURATION", value_parser = parse_max_age)]
    pub max_age: Option<TimeDelta>,
    /// Print nothing when every schedule is fine (cron mails any output);
    /// problems are still listed
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_max_age(text: &str) -> Result<TimeDelta, String> {
    crate::store::options::parse_duration(text)
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let states = StateFile::new(ctx.home.state_file(), ctx.home.state_lock())
        .load()
        .unwrap_or_else(|error| {
            let error = error_chain(&error);
            eprintln!(
                "{}: warning: {error}; judging by the archives alone",
                ctx.program
            );
            log::warn!("{error}");
            RunStates::default()
        });
    let now = ctx.clock.now();
    let entries = ctx.store.load()?;
    let hooks_trusted = ctx.store.hooks_trusted();
    let mut problems = Vec::new();
    let mut fresh = 0;
    if entries.is_empty() {
        // Most likely run from the wrong directory: say which home was read.
        problems.push(format!(
            "no schedules: the home {} has none in {}",
            printable(&ctx.home.root().display().to_string()),
            ctx.home.display_path(ctx.store.path())
        ));
    }
    for (index, entry) in entries.iter().enumerate() {
        let schedule = match &entry.parsed {
            Ok(schedule) => schedule,
            Err(reason) => {
                problems.push(format!(
                    "schedule {index} is not valid and never runs: {reason}"
                ));
                continue;
            }
        };
        let last = last_success(&ctx.home, &states, schedule, now);
        if let Some(problem) = future_archives(ctx, schedule, now) {
            problems.push(problem);
        }
        match judge(schedule, last, now, args.max_age, &ctx.zone) {
            Verdict::Fresh => fresh += 1,
            Verdict::Never => problems.push(format!("{}: never backed up", schedule.name)),
            Verdict::Overdue { last, allowed } => problems.push(format!(
                "{}: overdue, last successful backup {} ({} ago, allowed {})",
                schedule.name,
                log_stamp(last),
                human_duration(now - last),
                human_duration(allowed)
            )),
        }
        if let Some(problem) = partial_last_run(&states, schedule) {
            problems.push(problem);
        }
        if let Some(problem) = copy_failed_last_run(&states, schedule) {
            problems.push(problem);
        }
        if let (Err(untrusted), true) = (&hooks_trusted, has_hooks(schedule)) {
            problems.push(format!(
                "{}: its hooks will not run: {untrusted}",
                schedule.name
            ));
        }
    }
    if problems.is_empty() {
        let what = if fresh == 1 { "schedule" } else { "schedules" };
        log::info!("Check: {fresh} {what} backed up in time");
        if !args.quiet {
            print_lines([format!("ok: {fresh} {what} backed up in time")])?;
        }
        return Ok(ExitCode::Success);
    }
    log::warn!("Check failed: {}", problems.join("; "));
    print_lines(problems)?;
    Ok(ExitCode::Failure)
}

fn has_hooks(schedule: &Schedule) -> bool {
    let hooks = &schedule.options.hooks;
    hooks.before.is_some() || hooks.after.is_some() || hooks.on_failure.is_some()
}

/// A last run that was partial: its archive misses the files it skipped,
/// however recent it is.
fn partial_last_run(states: &RunStates, schedule: &Schedule) -> Option<String> {
    let last = states.schedules.get(&schedule.name)?.last_run.as_ref()?;
    if last.state != RunState::Partial {
        return None;
    }
    let skipped = match last.skipped {
        Some(1) => "1 file skipped".to_string(),
        Some(n) => format!("{n} files skipped"),
        None => "some files skipped".to_string(),
    };
    let archive = last
        .archive
        .as_deref()
        .map(|a| format!(", listed in the manifest of {}", printable(a)))
        .unwrap_or_default();
    Some(format!(
        "{}: last run {} was partial, {skipped}{archive}",
        schedule.name,
        log_stamp(last.started)
    ))
}

/// A last run whose archive was not copied to the schedule's remote.
fn copy_failed_last_run(states: &RunStates, schedule: &Schedule) -> Option<String> {
    let last = states.schedules.get(&schedule.name)?.last_run.as_ref()?;
    (last.state == RunState::CopyFailed).then(|| {
        format!(
            "{}: last run {} could not copy its archive to the remote: {}",
            schedule.name,
            log_stamp(last.started),
            printable(last.error.as_deref().unwrap_or("no reason recorded"))
        )
    })
}

/// Says so when the schedule has archives dated after `now`: retention
/// keeps them (they cannot anchor its rules) until the clock passes them.
fn future_archives(ctx: &Context, schedule: &Schedule, now: DateTime<Utc>) -> Option<String> {
    let future = History::of(&ctx.home, schedule).future(now).ok()?;
    let newest = future.last()?;
    Some(format!(
        "{}: {} {} dated after the current time (newest {}); retention keeps {} until then: was the clock wrong when {} written?",
        schedule.name,
        future.len(),
        if future.len() == 1 {
            "archive"
        } else {
            "archives"
        },
        newest.name(),
        if future.len() == 1 { "it" } else { "them" },
        if future.len() == 1 {
            "it was"
        } else {
            "they were"
        },
    ))
}

/// `3d 4h`, `2h 5m`, `45m`.
fn human_duration(d: TimeDelta) -> String {
    let minutes = d.num_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours, mins) {
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_overdue_and_never() {
        let hourly = Schedule::parse("s;0 * * * *;n").unwrap();
        let now = Utc.with_ymd_and_hms(2024, 3, 5, 12, 30, 0).unwrap();
        let ago = |m: i64| Some(now - TimeDelta::minutes(m));
        // Hourly: allowed 1 h + 1 h margin.
        assert_eq!(judge(&hourly, ago(119), now, None, &Utc), Verdict::Fresh);
        assert!(matches!(
            judge(&hourly, ago(121), now, None, &Utc),
            Verdict::Overdue { .. }
        ));
        assert_eq!(judge(&hourly, None, now, None, &Utc), Verdict::Never);
        // --max-age wins.
        assert_eq!(
            judge(&hourly, ago(300), now, Some(TimeDelta::hours(6)), &Utc),
            Verdict::Fresh
        );
        assert_eq!(default_max_age(TimeDelta::days(1)), TimeDelta::hours(36));
        assert_eq!(human_duration(TimeDelta::minutes(3 * 1440 + 70)), "3d 1h");
    }
}
