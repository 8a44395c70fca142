//! Retention: which of a schedule's timestamped archives to keep. The rules
//! combine like restic's `forget` (an archive kept by any rule is kept), with
//! safety rules on top: the newest archive is never deleted, `min-keep` always
//! holds, and age is counted from the newest archive, not from now.
//!
//! Rules, each named in [`Decision::reasons`] when it keeps an archive:
//!
//! - `newest`: the newest archive, always.
//! - `min-keep=N`: the N newest archives, whatever the other rules say.
//! - `keep-last=N`: the N newest archives.
//! - `keep-hourly=N`, `keep-daily=N`, `keep-weekly=N`, `keep-monthly=N`: the
//!   newest archive of each of the last N hours, days, ISO weeks or months
//!   that have archives (periods without an archive do not count, so a paused
//!   schedule keeps what it had).
//! - `keep-within=D`: every archive less than D older than the newest one.
//! - `no-keep-rule`: when only `min-keep` is set there is no rule that says
//!   what may go, so, like restic, nothing is deleted.
//! - `future`: an archive dated after the planning run's clock; see [`plan`].
//! - `just-written`: the archive the planning run has just written.
//!
//! Stamps are the local times in the archive names; periods are calendar
//! periods of those local times.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDateTime, Timelike};

use crate::archive::manifest::manifest_path;
use crate::model::Retention;

/// The verdict on one archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub path: PathBuf,
    pub stamp: NaiveDateTime,
    pub keep: bool,
    /// The rules that keep it (`keep-last`, `keep-daily`, `newest`, …); empty
    /// when it is to be deleted.
    pub reasons: Vec<String>,
}

/// A calendar period an archive falls in, for the bucket rules.
type Period = (i32, u32, u32, u32);

/// A bucket rule: its name, its count, and the period of a stamp.
type BucketRule = (&'static str, Option<u32>, fn(&NaiveDateTime) -> Period);

fn bucket_rules(rules: &Retention) -> [BucketRule; 4] {
    [
        ("keep-hourly", rules.keep_hourly, |t| {
            (t.year(), t.month(), t.day(), t.hour())
        }),
        ("keep-daily", rules.keep_daily, |t| {
            (t.year(), t.month(), t.day(), 0)
        }),
        ("keep-weekly", rules.keep_weekly, |t| {
            let week = t.iso_week();
            (week.year(), week.week(), 0, 0)
        }),
        ("keep-monthly", rules.keep_monthly, |t| {
            (t.year(), t.month(), 0, 0)
        }),
    ]
}

/// How far past the planning run's clock a stamp may lie and still count as
/// dated: a run that finds its second taken names its archive after the next
/// free one, up to an hour on (see `History::next_archive`).
pub const FUTURE_TOLERANCE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// When and for which run a plan is made.
#[derive(Debug, Clone, Copy)]
pub struct PlanContext<'a> {
    /// The planning run's own time, as a local wall-clock time. Archives
    /// stamped more than [`FUTURE_TOLERANCE`] after it were written while
    /// the clock was wrong (or the clock is wrong now): they are kept, and
    /// they anchor nothing.
    pub now: NaiveDateTime,
    /// The archive the run has just written: kept whatever the rules say.
    pub just_written: Option<&'a Path>,
}

/// Decides for each archive (any order) whether `rules` keep it. The decisions
/// come back oldest first.
///
/// Archives dated after `context.now` (beyond [`FUTURE_TOLERANCE`]) are kept
/// as `future` and take no part
/// in the rules: with them as "newest", one run made while the clock was
/// years ahead would make every later run look old and delete its own new
/// archive. The newest, the counts and the ages are all taken among the
/// archives dated up to now.
pub fn plan(
    archives: &[(PathBuf, NaiveDateTime)],
    rules: &Retention,
    context: PlanContext<'_>,
) -> Vec<Decision> {
    let mut newest_first: Vec<&(PathBuf, NaiveDateTime)> = archives.iter().collect();
    newest_first.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    let (future, dated): (Vec<_>, Vec<_>) = newest_first
        .into_iter()
        .partition(|(_, stamp)| *stamp > context.now + FUTURE_TOLERANCE);
    let newest = dated.first().map(|(_, stamp)| *stamp);
    let has_keep_rule = rules.keep_last.is_some()
        || rules.keep_within.is_some()
        || bucket_rules(rules)
            .iter()
            .any(|(_, count, _)| count.is_some());
    let counted = |n: Option<u32>| n.map_or(0, |n| n as usize);

    let buckets = bucket_rules(rules);
    let mut remaining: Vec<usize> = buckets.iter().map(|(_, n, _)| counted(*n)).collect();
    let mut last_period: Vec<Option<Period>> = vec![None; buckets.len()];

    let decide = |path: &PathBuf, stamp: NaiveDateTime, mut reasons: Vec<&str>| {
        if context.just_written == Some(path.as_path()) {
            reasons.push("just-written");
        }
        Decision {
            path: path.clone(),
            stamp,
            keep: !reasons.is_empty(),
            reasons: reasons.into_iter().map(str::to_string).collect(),
        }
    };
    let mut decisions: Vec<Decision> = future
        .iter()
        .map(|(path, stamp)| decide(path, *stamp, vec!["future"]))
        .collect();
    for (position, (path, stamp)) in dated.iter().enumerate() {
        let mut reasons: Vec<&str> = Vec::new();
        if position == 0 {
            reasons.push("newest");
        }
        if position < counted(rules.min_keep) {
            reasons.push("min-keep");
        }
        if !has_keep_rule {
            reasons.push("no-keep-rule");
        }
        if position < counted(rules.keep_last) {
            reasons.push("keep-last");
        }
        for (i, (name, _, period_of)) in buckets.iter().enumerate() {
            let period = period_of(stamp);
            // Newest first, so the first archive met in a period is its newest.
            if remaining[i] > 0 && last_period[i] != Some(period) {
                last_period[i] = Some(period);
                remaining[i] -= 1;
                reasons.push(name);
            }
        }
        if let (Some(within), Some(newest)) = (rules.keep_within, newest)
            && newest - *stamp < within
        {
            reasons.push("keep-within");
        }
        decisions.push(decide(path, *stamp, reasons));
    }
    decisions.reverse();
    decisions
}

/// Deletes the archives `plan` did not keep, each archive first and then its
/// manifest, and returns the archives deleted. Only the paths in `decisions`
/// are touched. An archive or manifest already gone is not an error. Stops at
/// the first failure; the error names the file.
pub fn apply(decisions: &[Decision]) -> io::Result<Vec<PathBuf>> {
    if !decisions.is_empty() && decisions.iter().all(|d| !d.keep) {
        // `plan` always keeps the newest; refuse a plan that would empty the history.
        return Err(io::Error::other(
            "refusing a retention plan that deletes every archive",
        ));
    }
    let mut deleted = Vec::new();
    for decision in decisions.iter().filter(|d| !d.keep) {
        remove_if_present(&decision.path)?;
        remove_if_present(&manifest_path(&decision.path))?;
        remove_if_present(&crate::archive::incremental::state_path(&decision.path))?;
        deleted.push(decision.path.clone());
    }
    Ok(deleted)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot delete {}: {e}", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    /// A plan made long after every test stamp, for no run in particular.
    fn plan_late(archives: &[(PathBuf, NaiveDateTime)], rules: &Retention) -> Vec<Decision> {
        let context = PlanContext {
            now: at("2100-01-01 00:00"),
            just_written: None,
        };
        plan(archives, rules, context)
    }

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    fn archives(stamps: &[&str]) -> Vec<(PathBuf, NaiveDateTime)> {
        stamps
            .iter()
            .map(|s| {
                let t = at(s);
                (
                    PathBuf::from(t.format("a_%Y%m%d_%H%M%S.tar").to_string()),
                    t,
                )
            })
            .collect()
    }

    /// Every day at 02:00 from `first` for `days` days.
    fn daily(first: &str, days: i64) -> Vec<(PathBuf, NaiveDateTime)> {
        let start = at(first);
        let stamps: Vec<String> = (0..days)
            .map(|d| {
                (start + TimeDelta::days(d))
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .collect();
        archives(&stamps.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The stamps kept, oldest first, as `MM-DD HH:MM`.
    fn kept(decisions: &[Decision]) -> Vec<String> {
        decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.stamp.format("%m-%d %H:%M").to_string())
            .collect()
    }

    fn reasons_of<'a>(decisions: &'a [Decision], stamp: &str) -> Vec<&'a str> {
        let t = at(stamp);
        decisions
            .iter()
            .find(|d| d.stamp == t)
            .unwrap()
            .reasons
            .iter()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn nothing_to_plan() {
        let rules = Retention {
            keep_last: Some(1),
            ..Default::default()
        };
        assert!(plan_late(&[], &rules).is_empty());
    }

    #[test]
    fn keep_last_keeps_the_newest_n_and_says_so() {
        let rules = Retention {
            keep_last: Some(2),
            ..Default::default()
        };
        let d = plan_late(&daily("2025-01-01 02:00", 4), &rules);
        assert_eq!(kept(&d), ["01-03 02:00", "01-04 02:00"]);
        assert_eq!(reasons_of(&d, "2025-01-04 02:00"), ["newest", "keep-last"]);
        assert_eq!(reasons_of(&d, "2025-01-03 02:00"), ["keep-last"]);
        assert!(reasons_of(&d, "2025-01-01 02:00").is_empty());
        // Oldest first, whatever the input order.
        let mut shuffled = daily("2025-01-01 02:00", 4);
        shuffled.reverse();
        shuffled.swap(0, 2);
        assert_eq!(plan_late(&shuffled, &rules), d);
    }

    #[test]
    fn the_newest_archive_is_always_kept() {
        let rules = Retention {
            keep_within: Some(TimeDelta::minutes(1)),
            ..Default::default()
        };
        let d = plan_late(&daily("2025-01-01 02:00", 3), &rules);
        assert_eq!(kept(&d), ["01-03 02:00"]);
        assert_eq!(
            reasons_of(&d, "2025-01-03 02:00"),
            ["newest", "keep-within"]
        );
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day() {
        let rules = Retention {
            keep_daily: Some(2),
            ..Default::default()
        };
        let a = archives(&[
            "2025-03-01 08:00",
            "2025-03-01 20:00",
            "2025-03-02 08:00",
            "2025-03-02 20:00",
            "2025-03-03 08:00",
            "2025-03-03 09:00",
        ]);
        let d = plan_late(&a, &rules);
        assert_eq!(kept(&d), ["03-02 20:00", "03-03 09:00"]);
    }

    #[test]
    fn hourly_counts_hours_that_have_archives() {
        let rules = Retention {
            keep_hourly: Some(3),
            ..Default::default()
        };
        let a = archives(&[
            "2025-03-01 08:10",
            "2025-03-01 08:50",
            "2025-03-01 09:30",
            "2025-03-01 13:05",
            "2025-03-01 13:45",
        ]);
        assert_eq!(
            kept(&plan_late(&a, &rules)),
            ["03-01 08:50", "03-01 09:30", "03-01 13:45"]
        );
    }

    #[test]
    fn weekly_uses_iso_weeks_across_the_new_year() {
        let rules = Retention {
            keep_weekly: Some(2),
            ..Default::default()
        };
        // 2024-12-30 (Mon) to 2025-01-05 (Sun) is ISO week 2025-W01.
        let a = archives(&[
            "2024-12-27 02:00",
            "2024-12-29 02:00",
            "2024-12-30 02:00",
            "2025-01-05 02:00",
        ]);
        assert_eq!(kept(&plan_late(&a, &rules)), ["12-29 02:00", "01-05 02:00"]);
    }

    #[test]
    fn monthly_keeps_the_last_of_each_month() {
        let rules = Retention {
            keep_monthly: Some(3),
            ..Default::default()
        };
        let d = plan_late(&daily("2025-01-20 02:00", 60), &rules);
        assert_eq!(kept(&d), ["01-31 02:00", "02-28 02:00", "03-20 02:00"]);
    }

    #[test]
    fn within_counts_from_the_newest_archive_not_from_now() {
        let rules = Retention {
            keep_within: Some(TimeDelta::days(3)),
            ..Default::default()
        };
        // A schedule paused for a year: its last runs are all still kept.
        let d = plan_late(&daily("2020-01-01 02:00", 10), &rules);
        assert_eq!(kept(&d), ["01-08 02:00", "01-09 02:00", "01-10 02:00"]);
        // Exactly D older than the newest is outside the window (as restic).
        assert!(reasons_of(&d, "2020-01-07 02:00").is_empty());
    }

    #[test]
    fn min_keep_overrides_the_other_rules() {
        let rules = Retention {
            keep_within: Some(TimeDelta::hours(1)),
            min_keep: Some(3),
            ..Default::default()
        };
        let d = plan_late(&daily("2025-01-01 02:00", 5), &rules);
        assert_eq!(kept(&d), ["01-03 02:00", "01-04 02:00", "01-05 02:00"]);
        assert_eq!(reasons_of(&d, "2025-01-03 02:00"), ["min-keep"]);
        assert_eq!(
            reasons_of(&d, "2025-01-05 02:00"),
            ["newest", "min-keep", "keep-within"]
        );
    }

    #[test]
    fn min_keep_alone_deletes_nothing() {
        let rules = Retention {
            min_keep: Some(2),
            ..Default::default()
        };
        let d = plan_late(&daily("2025-01-01 02:00", 4), &rules);
        assert!(d.iter().all(|d| d.keep));
        assert_eq!(reasons_of(&d, "2025-01-01 02:00"), ["no-keep-rule"]);
    }

    #[test]
    fn rules_combine_like_restic_forget() {
        let rules = Retention {
            keep_last: Some(2),
            keep_daily: Some(3),
            keep_weekly: Some(2),
            keep_monthly: Some(2),
            ..Default::default()
        };
        // Two runs a day (02:00 and 14:00) from 2025-01-01 to 2025-02-14.
        let mut a = daily("2025-01-01 02:00", 45);
        a.extend(daily("2025-01-01 14:00", 45));
        let d = plan_late(&a, &rules);
        assert_eq!(
            kept(&d),
            [
                "01-31 14:00", // keep-monthly (January)
                "02-09 14:00", // keep-weekly (week 6 ends on Sunday 02-09)
                "02-12 14:00", // keep-daily
                "02-13 14:00", // keep-daily
                "02-14 02:00", // keep-last
                "02-14 14:00", // newest
            ]
        );
        assert_eq!(
            reasons_of(&d, "2025-02-14 14:00"),
            [
                "newest",
                "keep-last",
                "keep-daily",
                "keep-weekly",
                "keep-monthly"
            ]
        );
        assert_eq!(reasons_of(&d, "2025-02-09 14:00"), ["keep-weekly"]);
        assert_eq!(reasons_of(&d, "2025-01-31 14:00"), ["keep-monthly"]);
        assert_eq!(d.iter().filter(|d| !d.keep).count(), 90 - 6);
    }

    #[test]
    fn equal_stamps_in_two_formats_are_two_archives() {
        // The format changed between two runs in the same second.
        let t = at("2025-01-01 02:00");
        let a = vec![
            (PathBuf::from("a_20250101_020000.tar"), t),
            (PathBuf::from("a_20250101_020000.tar.gz"), t),
        ];
        let rules = Retention {
            keep_daily: Some(1),
            ..Default::default()
        };
        let d = plan_late(&a, &rules);
        assert_eq!(d.iter().filter(|d| d.keep).count(), 1);
        assert!(d[1].keep, "the later name sorts as the newer one");
    }

    /// The safety rules hold for many archive sets and rule combinations
    /// (a small deterministic generator stands in for a property test).
    #[test]
    fn safety_rules_always_hold() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        let pick = |n: u64| (n > 0).then_some(n as u32);
        for _ in 0..500 {
            let start = at("2024-01-01 00:00");
            let count = next(40) as usize;
            let archives: Vec<(PathBuf, NaiveDateTime)> = (0..count)
                .map(|i| {
                    let t = start + TimeDelta::minutes(next(60 * 24 * 120) as i64);
                    (PathBuf::from(format!("a_{i}.tar")), t)
                })
                .collect();
            let rules = Retention {
                keep_last: pick(next(4)),
                keep_hourly: pick(next(3)),
                keep_daily: pick(next(5)),
                keep_weekly: pick(next(3)),
                keep_monthly: pick(next(3)),
                keep_within: (next(3) == 0).then(|| TimeDelta::hours(next(200) as i64 + 1)),
                min_keep: pick(next(6)),
            };
            let d = plan_late(&archives, &rules);
            assert_eq!(d.len(), count);
            assert!(
                d.windows(2).all(|w| w[0].stamp <= w[1].stamp),
                "oldest first"
            );
            assert!(d.iter().all(|d| d.keep != d.reasons.is_empty()));
            if let Some(newest) = d.last() {
                assert!(newest.keep && newest.reasons[0] == "newest", "{rules:?}");
            }
            let min_keep = rules.min_keep.unwrap_or(0) as usize;
            assert!(d.iter().rev().take(min_keep).all(|d| d.keep), "{rules:?}");
            let kept = d.iter().filter(|d| d.keep).count();
            let bound = 1 + [rules.keep_last, rules.keep_hourly, rules.keep_daily]
                .iter()
                .chain([rules.keep_weekly, rules.keep_monthly, rules.min_keep].iter())
                .map(|n| n.unwrap_or(0) as usize)
                .sum::<usize>();
            if rules.keep_within.is_none()
                && rules
                    != (Retention {
                        min_keep: rules.min_keep,
                        ..Default::default()
                    })
            {
                assert!(kept <= bound, "kept {kept} > {bound} with {rules:?}");
            }
        }
    }

    #[test]
    fn apply_deletes_archive_then_manifest_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let a = archives(&["2025-01-01 02:00", "2025-01-02 02:00"]);
        let a: Vec<_> = a
            .into_iter()
            .map(|(p, t)| (dir.path().join(p), t))
            .collect();
        for (path, _) in &a {
            std::fs::write(path, b"tar").unwrap();
            std::fs::write(manifest_path(path), b"{}").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        let rules = Retention {
            keep_last: Some(1),
            ..Default::default()
        };
        let deleted = apply(&plan_late(&a, &rules)).unwrap();
        assert_eq!(deleted, [a[0].0.clone()]);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "a_20250102_020000.tar",
                "a_20250102_020000.tar.json",
                "notes.txt"
            ]
        );
        // Running it again finds nothing more to do.
        assert!(apply(&plan_late(&a[1..], &rules)).unwrap().is_empty());
    }

    #[test]
    fn apply_refuses_a_plan_that_keeps_nothing() {
        let decision = Decision {
            path: PathBuf::from("/nonexistent/a_20250101_020000.tar"),
            stamp: at("2025-01-01 02:00"),
            keep: false,
            reasons: vec![],
        };
        assert!(apply(&[decision]).is_err());
    }
}
