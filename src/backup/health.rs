//! Whether one schedule is healthy: what `check` prints and what the metrics
//! file's `backupctl_check_ok` reports, judged in one place. A schedule is
//! fresh when its last successful backup is recent enough for its interval;
//! it is healthy when it is fresh and nothing else is wrong (a partial last
//! run, archives dated in the future, hooks that will not run).

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::{History, retention};
use crate::clock::log_stamp;
use crate::home::Home;
use crate::model::RunState;
use crate::primitives::printable;
use crate::store::Schedule;
use crate::store::state::RunStates;
use crate::store::trust::Untrusted;

/// The slack `check` allows beyond a schedule's interval by default: half the
/// interval, and at least an hour (a backup takes time, a machine reboots).
pub fn default_max_age(interval: TimeDelta) -> TimeDelta {
    interval + (interval / 2).max(TimeDelta::hours(1))
}

/// What is known of one schedule's health at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Backed up recently enough.
    pub fresh: bool,
    /// One line per problem, as `check` prints them; empty when healthy.
    pub problems: Vec<String>,
}

impl Health {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What `check` needs to judge schedules, read once for all of them.
pub struct Judge<'a, Tz: TimeZone> {
    pub home: &'a Home,
    pub states: &'a RunStates,
    pub now: DateTime<Utc>,
    /// `check --max-age`; `None`: the schedule's interval plus a margin.
    pub max_age: Option<TimeDelta>,
    pub zone: &'a Tz,
    /// Whether the schedule file may supply hooks.
    pub hooks_trusted: &'a Result<(), Untrusted>,
}

impl<Tz: TimeZone> Judge<'_, Tz>
where
    Tz::Offset: Copy,
{
    /// Judges `schedule`: is it fresh, and what is wrong with it.
    pub fn health(&self, schedule: &Schedule) -> Health {
        let mut problems = Vec::new();
        if let Some(problem) = self.future_archives(schedule) {
            problems.push(problem);
        }
        let last = last_success(self.home, self.states, schedule, self.now);
        let verdict = judge(schedule, last, self.now, self.max_age, self.zone);
        match verdict {
            Verdict::Fresh => {}
            Verdict::Never => problems.push(format!("{}: never backed up", schedule.name)),
            Verdict::Overdue { last, allowed } => problems.push(format!(
                "{}: overdue, last successful backup {} ({} ago, allowed {})",
                schedule.name,
                log_stamp(last),
                human_duration(self.now - last),
                human_duration(allowed)
            )),
        }
        if let Some(problem) = partial_last_run(self.states, schedule) {
            problems.push(problem);
        }
        if let Some(problem) = copy_failed_last_run(self.states, schedule) {
            problems.push(problem);
        }
        if let (Err(untrusted), true) = (self.hooks_trusted, has_hooks(schedule)) {
            problems.push(format!(
                "{}: its hooks will not run: {untrusted}",
                schedule.name
            ));
        }
        if let (Err(untrusted), Some(target)) = (self.hooks_trusted, &schedule.options.copy_to) {
            problems.push(format!(
                "{}: its copy to {target} will not be made: {untrusted}",
                schedule.name
            ));
        }
        Health {
            fresh: verdict == Verdict::Fresh,
            problems,
        }
    }

    /// Says so when the schedule has archives dated after `now`: retention
    /// keeps them (they cannot anchor its rules) until the clock passes them.
    fn future_archives(&self, schedule: &Schedule) -> Option<String> {
        let future = History::of(self.home, schedule).future(self.now).ok()?;
        let newest = future.last()?;
        let one = future.len() == 1;
        Some(format!(
            "{}: {} {} dated after the current time (newest {}); retention keeps {} until then: was the clock wrong when {} written?",
            schedule.name,
            future.len(),
            if one { "archive" } else { "archives" },
            newest.name(),
            if one { "it" } else { "them" },
            if one { "it was" } else { "they were" },
        ))
    }
}

/// How one schedule's last success compares with what is allowed.
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
pub fn last_success(
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
