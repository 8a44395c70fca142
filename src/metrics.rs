//! The Prometheus text file (node_exporter's textfile collector): one gauge
//! family per fact about each schedule, labelled `schedule="NAME"`, written
//! atomically by the service at start and after each run, and by `run`.
//!
//! Everything in it is read back from the home (the schedule file, the state
//! file, the archives and their manifests) each time it is written, so two
//! runs finishing at once cannot leave it stale or mixed: whichever writes
//! last writes the whole truth. The file replaces the old one by rename
//! (`primitives::write_atomic`): the collector never reads half a file, and
//! a symlink planted at its name is replaced, never followed.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};

use crate::backup::History;
use crate::backup::health::{Judge, last_success};
use crate::file_error::FileError;
use crate::home::Home;
use crate::model::RunState;
use crate::primitives;
use crate::store::state::{RunStates, StateFile};
use crate::store::{Schedule, Store};

/// The file is for a collector run by another user: readable by all.
const MODE: u32 = 0o644;

/// What the file says about one schedule; `None` where nothing is known yet.
#[derive(Debug, Clone, Default, PartialEq)]
struct ScheduleMetrics {
    name: String,
    last_success: Option<DateTime<Utc>>,
    last_run: Option<(DateTime<Utc>, RunState, f64)>,
    last_archive: Option<(u64, u64)>,
    archives: u64,
    archives_bytes: u64,
    check_ok: bool,
}

/// Writes the metrics of every valid schedule of `home` at `now` to `path`.
pub fn write_metrics<Tz: TimeZone>(
    path: &Path,
    home: &Home,
    now: DateTime<Utc>,
    zone: &Tz,
) -> Result<(), FileError>
where
    Tz::Offset: Copy,
{
    let text = render(&collect(home, now, zone), now);
    primitives::write_atomic(path, text.as_bytes(), MODE)
        .map_err(FileError::on("write metrics file", path))
}

/// [`write_metrics`], where a failure is a warning in the log: metrics never
/// fail a backup.
pub fn write_or_warn<Tz: TimeZone>(path: &Path, home: &Home, now: DateTime<Utc>, zone: &Tz)
where
    Tz::Offset: Copy,
{
    if let Err(error) = write_metrics(path, home, now, zone) {
        log::warn!("{}", primitives::error_chain(&error));
    }
}

fn collect<Tz: TimeZone>(home: &Home, now: DateTime<Utc>, zone: &Tz) -> Vec<ScheduleMetrics>
where
    Tz::Offset: Copy,
{
    let store = Store::new(home.schedules_file(), home.schedules_lock());
    // A state file that cannot be read leaves the archives as the truth,
    // as for `check`.
    let states = StateFile::new(home.state_file(), home.state_lock())
        .load()
        .unwrap_or_else(|_| RunStates::default());
    let hooks_trusted = store.hooks_trusted();
    let judge = Judge {
        home,
        states: &states,
        now,
        max_age: None,
        zone,
        hooks_trusted: &hooks_trusted,
    };
    // An unreadable schedule file gives a file without schedules (the
    // written time still shows it is current); the reason goes to the log.
    let entries = store.load().unwrap_or_else(|error| {
        log::warn!("metrics: {}", primitives::error_chain(&error));
        Vec::new()
    });
    entries
        .iter()
        .filter_map(|entry| entry.parsed.as_ref().ok())
        .map(|schedule| of_schedule(home, &states, &judge, schedule, now))
        .collect()
}

fn of_schedule<Tz: TimeZone>(
    home: &Home,
    states: &RunStates,
    judge: &Judge<'_, Tz>,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> ScheduleMetrics
where
    Tz::Offset: Copy,
{
    let history = History::of(home, schedule);
    let owned = history.owned().unwrap_or_default();
    let last_archive = owned.last().and_then(|newest| {
        let manifest = history.read_manifest(&newest.path).ok()?;
        Some((newest.size, manifest.entries))
    });
    let last_run = states
        .schedules
        .get(&schedule.name)
        .and_then(|s| s.last_run.as_ref())
        .map(|run| {
            let duration = (run.finished - run.started).as_seconds_f64().max(0.0);
            (run.finished, run.state, duration)
        });
    ScheduleMetrics {
        name: schedule.name.clone(),
        last_success: last_success(home, states, schedule, now),
        last_run,
        last_archive,
        archives: owned.len() as u64,
        archives_bytes: owned.iter().map(|a| a.size).sum(),
        check_ok: judge.health(schedule).is_ok(),
    }
}

/// One gauge family: its name, help text and a value for each schedule that
/// has one.
struct Family {
    name: &'static str,
    help: &'static str,
    value: fn(&ScheduleMetrics) -> Option<f64>,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "backupctl_last_success_timestamp_seconds",
        help: "When the schedule's last successful backup (ok or partial) was taken, as check judges it, in seconds since the Unix epoch.",
        value: |m| m.last_success.map(seconds),
    },
    Family {
        name: "backupctl_last_run_timestamp_seconds",
        help: "When the schedule's last run ended, in seconds since the Unix epoch.",
        value: |m| m.last_run.map(|(at, _, _)| seconds(at)),
    },
    Family {
        name: "backupctl_last_run_duration_seconds",
        help: "How long the schedule's last run took.",
        value: |m| m.last_run.map(|(_, _, d)| d),
    },
    Family {
        name: "backupctl_last_archive_size_bytes",
        help: "Size of the schedule's newest archive.",
        value: |m| m.last_archive.map(|(size, _)| size as f64),
    },
    Family {
        name: "backupctl_last_archive_files",
        help: "Entries (files, directories, links) in the schedule's newest archive.",
        value: |m| m.last_archive.map(|(_, files)| files as f64),
    },
    Family {
        name: "backupctl_archives",
        help: "Archives the schedule has in backups/.",
        value: |m| Some(m.archives as f64),
    },
    Family {
        name: "backupctl_archives_size_bytes",
        help: "Total size of the schedule's archives in backups/.",
        value: |m| Some(m.archives_bytes as f64),
    },
    Family {
        name: "backupctl_check_ok",
        help: "1 when `backupctl check` passes for the schedule (backed up recently enough, nothing wrong), else 0.",
        value: |m| Some(f64::from(u8::from(m.check_ok))),
    },
];

const STATE_FAMILY: &str = "backupctl_last_run_state";

/// The exposition text of `schedules` at `now`.
fn render(schedules: &[ScheduleMetrics], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    for family in FAMILIES {
        header(&mut out, family.name, family.help);
        for m in schedules {
            if let Some(value) = (family.value)(m) {
                let _ = writeln!(
                    out,
                    "{}{{schedule=\"{}\"}} {value}",
                    family.name,
                    label(&m.name)
                );
            }
        }
    }
    header(
        &mut out,
        STATE_FAMILY,
        "How the schedule's last run ended: 1 for its state (ok, partial or failed), 0 for the others.",
    );
    for m in schedules {
        let Some((_, ended, _)) = m.last_run else {
            continue;
        };
        for state in [RunState::Ok, RunState::Partial, RunState::Failed] {
            let _ = writeln!(
                out,
                "{STATE_FAMILY}{{schedule=\"{}\",state=\"{}\"}} {}",
                label(&m.name),
                state.as_str(),
                u8::from(state == ended)
            );
        }
    }
    let written = "backupctl_metrics_written_timestamp_seconds";
    header(
        &mut out,
        written,
        "When backupctl wrote this file, in seconds since the Unix epoch.",
    );
    let _ = writeln!(out, "{written} {}", seconds(now));
    out
}

fn header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

fn seconds(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

/// A label value escaped as the exposition format asks: `\`, `"` and
/// newline.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label("x\ny"), "x\\ny");
    }

    #[test]
    fn each_family_has_help_type_and_its_samples() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let m = ScheduleMetrics {
            name: "docs".into(),
            last_run: Some((now, RunState::Partial, 1.5)),
            archives: 2,
            ..Default::default()
        };
        let text = render(&[m], now);
        assert!(text.contains("# TYPE backupctl_archives gauge\n"));
        assert!(text.contains("backupctl_archives{schedule=\"docs\"} 2\n"));
        assert!(text.contains("backupctl_last_run_duration_seconds{schedule=\"docs\"} 1.5\n"));
        assert!(text.contains("backupctl_last_run_state{schedule=\"docs\",state=\"partial\"} 1\n"));
        assert!(text.contains("backupctl_last_run_state{schedule=\"docs\",state=\"ok\"} 0\n"));
        // Never succeeded: no sample rather than a misleading 0.
        assert!(!text.contains("backupctl_last_success_timestamp_seconds{"));
        assert!(text.ends_with("backupctl_metrics_written_timestamp_seconds 1795521600\n"));
    }
}
