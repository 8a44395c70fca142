//! Which schedules are due: the service checks minute by minute, but never
//! trusts that it woke on time. It remembers the last minute it checked and, at
//! each wake-up, covers every minute since, so a late wake-up or a long backup
//! never drops a run, and each minute is checked once, so nothing fires twice.

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, TimeZone, Utc};

use crate::store::Timing;

/// The minutes a check covers: those after `after`, up to and including `upto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub after: DateTime<Utc>,
    pub upto: DateTime<Utc>,
}

/// Remembers the last minute that was checked.
#[derive(Debug, Clone)]
pub struct MinuteTracker {
    last_checked: DateTime<Utc>,
}

impl MinuteTracker {
    /// A tracker whose first window is the current minute, so a schedule for
    /// the minute the service starts in runs at once.
    pub fn starting_at(now: DateTime<Utc>) -> Self {
        Self {
            last_checked: minute_floor(now) - TimeDelta::minutes(1),
        }
    }

    /// The minutes not yet checked, up to `now`'s minute; `None` when this
    /// minute was checked already, or the clock went back (minutes already
    /// checked are not checked again).
    pub fn advance(&mut self, now: DateTime<Utc>) -> Option<Window> {
        let upto = minute_floor(now);
        if upto <= self.last_checked {
            return None;
        }
        let window = Window {
            after: self.last_checked,
            upto,
        };
        self.last_checked = upto;
        Some(window)
    }
}

/// True when `timing` has a run in `window`, judged on `zone`'s wall clock.
/// Several runs in one window (a long outage) still give one backup.
pub fn is_due<Tz: TimeZone>(timing: &Timing, window: &Window, zone: &Tz) -> bool
where
    Tz::Offset: Copy,
{
    let after = window.after.with_timezone(zone);
    timing
        .next_after(&after)
        .is_some_and(|next| next.with_timezone(&Utc) <= window.upto)
}

/// How much longer than asked a sleep may last before we take it that the
/// machine was suspended (or the clock was set forward) meanwhile.
pub const SLEEP_TOLERANCE: TimeDelta = TimeDelta::seconds(90);

/// True when a sleep of `asked` that began at `before` and ended at `after`
/// (wall clock) lasted so much longer that the machine must have slept.
pub fn slept_through(before: DateTime<Utc>, after: DateTime<Utc>, asked: Duration) -> bool {
    let asked = TimeDelta::from_std(asked).unwrap_or(TimeDelta::MAX);
    after - before
        > asked
            .checked_add(&SLEEP_TOLERANCE)
            .unwrap_or(TimeDelta::MAX)
}

/// What the loop does about one schedule in one cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Due now: run it.
    Run,
    /// A run was due at `due` while the service was down or the machine
    /// slept, none has happened since, and the schedule has `catch-up`.
    CatchUp {
        due: DateTime<Utc>,
    },
    /// Same, without `catch-up`: only logged.
    Missed {
        due: DateTime<Utc>,
    },
    Nothing,
}

/// The decision for a window the service was awake for, or, when
/// `woke_from_sleep`, one that it slept through except for its last minute.
/// `last_run` is when the schedule last ran (state file or newest archive).
pub fn decide<Tz: TimeZone>(
    timing: &Timing,
    catch_up: bool,
    window: &Window,
    woke_from_sleep: bool,
    last_run: Option<DateTime<Utc>>,
    zone: &Tz,
) -> Decision
where
    Tz::Offset: Copy,
{
    if !woke_from_sleep {
        return if is_due(timing, window, zone) {
            Decision::Run
        } else {
            Decision::Nothing
        };
    }
    let now_minute = Window {
        after: window.upto - TimeDelta::minutes(1),
        upto: window.upto,
    };
    if is_due(timing, &now_minute, zone) {
        return Decision::Run;
    }
    missed_since(
        timing,
        catch_up,
        window.after,
        now_minute.after,
        last_run,
        zone,
    )
}

/// The decision at start-up, for the time the service was down: everything
/// before `now`'s minute (which the first cycle covers as usual).
pub fn decide_at_start<Tz: TimeZone>(
    timing: &Timing,
    catch_up: bool,
    now: DateTime<Utc>,
    last_run: Option<DateTime<Utc>>,
    zone: &Tz,
) -> Decision
where
    Tz::Offset: Copy,
{
    let this_minute = minute_floor(now);
    let first = Window {
        after: this_minute - TimeDelta::minutes(1),
        upto: this_minute,
    };
    if !catch_up || is_due(timing, &first, zone) {
        return Decision::Nothing;
    }
    let since = last_run.unwrap_or(DateTime::<Utc>::MIN_UTC);
    missed_since(timing, catch_up, since, first.after, last_run, zone)
}

/// The last due time in `(after, upto]`, if a run is owed for it.
fn missed_since<Tz: TimeZone>(
    timing: &Timing,
    catch_up: bool,
    after: DateTime<Utc>,
    upto: DateTime<Utc>,
    last_run: Option<DateTime<Utc>>,
    zone: &Tz,
) -> Decision
where
    Tz::Offset: Copy,
{
    let Some(due) = timing
        .last_at_or_before(&upto.with_timezone(zone))
        .map(|t| t.with_timezone(&Utc))
    else {
        return Decision::Nothing;
    };
    if due <= after || last_run.is_some_and(|run| run >= due) {
        return Decision::Nothing;
    }
    if catch_up {
        Decision::CatchUp { due }
    } else {
        Decision::Missed { due }
    }
}

/// How long to sleep so as to wake just after the next minute starts.
pub fn until_next_minute(now: DateTime<Utc>) -> Duration {
    let next = minute_floor(now) + TimeDelta::minutes(1);
    (next - now + TimeDelta::milliseconds(20))
        .to_std()
        .unwrap_or(Duration::from_millis(20))
}

fn minute_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::minutes(1)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Schedule;
    use chrono_tz::Europe::Berlin;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 5, h, m, s).unwrap()
    }

    fn timing(hhmm: &str) -> Timing {
        Schedule::parse(&format!("src;{hhmm};n")).unwrap().timing
    }

    /// Runs the tracker over wake-up times and returns the minutes at which
    /// `hhmm` fired.
    fn fired(hhmm: &str, wakes: &[DateTime<Utc>]) -> Vec<DateTime<Utc>> {
        let t = timing(hhmm);
        let mut tracker = MinuteTracker::starting_at(wakes[0]);
        wakes
            .iter()
            .filter_map(|&now| {
                tracker
                    .advance(now)
                    .filter(|w| is_due(&t, w, &Utc))
                    .map(|w| w.upto)
            })
            .collect()
    }

    #[test]
    fn a_schedule_for_the_start_minute_runs_at_start() {
        assert_eq!(fired("16:07", &[at(16, 7, 42)]), [at(16, 7, 0)]);
    }

    #[test]
    fn each_minute_fires_once_however_often_we_wake() {
        let wakes = [
            at(16, 6, 50),
            at(16, 7, 0),
            at(16, 7, 1),
            at(16, 7, 59),
            at(16, 8, 0),
        ];
        assert_eq!(fired("16:07", &wakes), [at(16, 7, 0)]);
    }

    #[test]
    fn a_late_wake_up_covers_the_minutes_it_slept_through() {
        // Asleep from 16:05 to 16:09 (a long backup, a suspend): 16:07 still runs.
        assert_eq!(
            fired("16:07", &[at(16, 5, 0), at(16, 9, 30)]),
            [at(16, 9, 0)]
        );
    }

    #[test]
    fn the_clock_going_back_does_not_fire_twice() {
        let wakes = [at(16, 7, 5), at(16, 6, 30), at(16, 7, 10), at(16, 8, 0)];
        assert_eq!(fired("16:07", &wakes), [at(16, 7, 0)]);
    }

    #[test]
    fn day_rollover() {
        let t = timing("00:00");
        let mut tracker =
            MinuteTracker::starting_at(Utc.with_ymd_and_hms(2024, 12, 31, 23, 59, 30).unwrap());
        assert!(
            tracker
                .advance(Utc.with_ymd_and_hms(2024, 12, 31, 23, 59, 30).unwrap())
                .is_some_and(|w| !is_due(&t, &w, &Utc))
        );
        let w = tracker
            .advance(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap())
            .unwrap();
        assert!(is_due(&t, &w, &Utc));
    }

    #[test]
    fn wall_clock_times_are_local_to_the_zone() {
        // 16:07 in Berlin (winter, UTC+1) is 15:07 UTC.
        let t = timing("16:07");
        let mut tracker = MinuteTracker::starting_at(at(15, 7, 0));
        let w = tracker.advance(at(15, 7, 0)).unwrap();
        assert!(is_due(&t, &w, &Berlin));
        assert!(!is_due(&t, &w, &Utc));
    }

    #[test]
    fn spring_forward_gap_runs_once_just_after() {
        // 2024-03-31 in Berlin: 02:00 jumps to 03:00 (01:00 UTC).
        let t = timing("02:30");
        let night: Vec<DateTime<Utc>> = (0..180)
            .map(|m| Utc.with_ymd_and_hms(2024, 3, 30, 23, 0, 0).unwrap() + TimeDelta::minutes(m))
            .collect();
        let mut tracker = MinuteTracker::starting_at(night[0]);
        let runs: Vec<_> = night
            .iter()
            .filter_map(|&n| {
                tracker
                    .advance(n)
                    .filter(|w| is_due(&t, w, &Berlin))
                    .map(|w| w.upto)
            })
            .collect();
        assert_eq!(runs, [Utc.with_ymd_and_hms(2024, 3, 31, 1, 0, 0).unwrap()]);
    }

    #[test]
    fn fall_back_hour_runs_once() {
        // 2024-10-27 in Berlin: 03:00 goes back to 02:00, so 02:30 happens twice.
        let t = timing("02:30");
        let night: Vec<DateTime<Utc>> = (0..240)
            .map(|m| Utc.with_ymd_and_hms(2024, 10, 26, 23, 0, 0).unwrap() + TimeDelta::minutes(m))
            .collect();
        let mut tracker = MinuteTracker::starting_at(night[0]);
        let runs = night
            .iter()
            .filter(|&&n| tracker.advance(n).is_some_and(|w| is_due(&t, &w, &Berlin)))
            .count();
        assert_eq!(runs, 1);
    }

    fn day(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, d, h, m, 0).unwrap()
    }

    #[test]
    fn catch_up_after_hours_down_runs_once() {
        let hourly = timing("0 * * * *");
        // Last run 03:00, started again at 09:20: six slots missed, one run.
        let d = decide_at_start(&hourly, true, day(5, 9, 20), Some(day(5, 3, 0)), &Utc);
        assert_eq!(d, Decision::CatchUp { due: day(5, 9, 0) });
        // Without catch-up: nothing.
        let d = decide_at_start(&hourly, false, day(5, 9, 20), Some(day(5, 3, 0)), &Utc);
        assert_eq!(d, Decision::Nothing);
        // Ran at 09:00 already: nothing owed.
        let d = decide_at_start(&hourly, true, day(5, 9, 20), Some(day(5, 9, 0)), &Utc);
        assert_eq!(d, Decision::Nothing);
    }

    #[test]
    fn catch_up_after_days_down_runs_once_for_the_latest_slot() {
        let nightly = timing("02:30");
        let d = decide_at_start(&nightly, true, day(9, 12, 0), Some(day(2, 2, 30)), &Utc);
        assert_eq!(d, Decision::CatchUp { due: day(9, 2, 30) });
        // Never ran at all: the latest slot is owed.
        let d = decide_at_start(&nightly, true, day(9, 12, 0), None, &Utc);
        assert_eq!(d, Decision::CatchUp { due: day(9, 2, 30) });
        // Due in the start minute itself: the normal run covers it.
        let d = decide_at_start(&nightly, true, day(9, 2, 30), Some(day(2, 2, 30)), &Utc);
        assert_eq!(d, Decision::Nothing);
    }

    #[test]
    fn a_wake_up_after_sleep_catches_up_once_or_reports_the_miss() {
        // Suspended from 01:10 to 07:45: the tracker's window covers it all.
        let mut tracker = MinuteTracker::starting_at(day(5, 1, 10));
        tracker.advance(day(5, 1, 10));
        let before = day(5, 1, 10) + TimeDelta::seconds(30);
        let after = day(5, 7, 45) + TimeDelta::seconds(1);
        assert!(slept_through(before, after, until_next_minute(before)));
        assert!(!slept_through(
            before,
            day(5, 1, 11),
            until_next_minute(before)
        ));
        let window = tracker.advance(after).unwrap();
        let last = Some(day(4, 2, 30));
        let nightly = timing("02:30");
        assert_eq!(
            decide(&nightly, true, &window, true, last, &Utc),
            Decision::CatchUp { due: day(5, 2, 30) }
        );
        assert_eq!(
            decide(&nightly, false, &window, true, last, &Utc),
            Decision::Missed { due: day(5, 2, 30) }
        );
        // Due in the minute we woke in: a normal run.
        assert_eq!(
            decide(&timing("07:45"), true, &window, true, last, &Utc),
            Decision::Run
        );
        // Awake all along (a long backup): the whole window counts as usual.
        assert_eq!(
            decide(&nightly, false, &window, false, last, &Utc),
            Decision::Run
        );
    }

    /// Fires of `expr` when the loop checks every UTC minute of a Berlin night.
    fn berlin_fires(expr: &str, night_start: DateTime<Utc>, minutes: i64) -> usize {
        let t = timing(expr);
        let mut tracker = MinuteTracker::starting_at(night_start);
        (0..minutes)
            .map(|m| night_start + TimeDelta::minutes(m))
            .filter(|&n| tracker.advance(n).is_some_and(|w| is_due(&t, &w, &Berlin)))
            .count()
    }

    #[test]
    fn quarter_hour_schedules_follow_real_time_across_dst() {
        // Four hours of real time either side of each change: 16 runs.
        let spring = Utc.with_ymd_and_hms(2024, 3, 30, 23, 0, 0).unwrap();
        assert_eq!(berlin_fires("*/15 * * * *", spring, 240), 16);
        let fall = Utc.with_ymd_and_hms(2024, 10, 26, 23, 0, 0).unwrap();
        assert_eq!(berlin_fires("*/15 * * * *", fall, 240), 16);
        // A fixed time in the gap or the repeated hour: once.
        assert_eq!(berlin_fires("30 2 * * *", spring, 240), 1);
        assert_eq!(berlin_fires("30 2 * * *", fall, 240), 1);
    }

    #[test]
    fn sleeps_until_just_after_the_minute() {
        let d = until_next_minute(at(16, 7, 45));
        assert!(d > Duration::from_secs(15) && d < Duration::from_secs(16));
    }
}
