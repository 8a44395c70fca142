//! `status [--json]`: whether the daemon runs (pid, since when) and, for each
//! schedule, its last run (time, state, archive) and its next run.
//!
//! The JSON shape is stable (documented in docs/scheduling.md): times are
//! RFC 3339 in UTC, absent values are `null`, fields may be added but are
//! never renamed or removed.

use std::fs::File;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{Context, print_json, print_lines};
use crate::backup::History;
use crate::backup::progress::read_progress;
use crate::clock::log_stamp;
use crate::daemon::identity::lock_holders;
use crate::daemon::{self, pidfile::DaemonState};
use crate::error::Error;
use crate::exit_codes::ExitCode;
use crate::primitives::{error_chain, human_bytes, printable};
use crate::store::Schedule;
use crate::store::state::{RunRecord, RunStates, StateFile};

#[derive(Serialize)]
struct Status {
    service: Service,
    schedules: Vec<ScheduleStatus>,
}

#[derive(Serialize)]
struct Service {
    running: bool,
    pid: Option<i32>,
    since: Option<String>,
}

#[derive(Serialize)]
struct ScheduleStatus {
    index: usize,
    /// The line as stored.
    line: String,
    valid: bool,
    /// Why the line is not valid.
    error: Option<String>,
    name: Option<String>,
    source: Option<String>,
    /// The time field: `hh:mm` or a cron expression.
    timing: Option<String>,
    next_run: Option<String>,
    last_run: Option<RunRecord>,
    last_success: Option<RunRecord>,
    /// The run going now, if any.
    running: Option<Running>,
}

/// A run in progress.
#[derive(Serialize)]
struct Running {
    since: String,
    pid: i32,
    /// Bytes of file content read so far (published about once a second).
    bytes_read: u64,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead (the shape is documented in docs/scheduling.md)
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let service = match daemon::state(&ctx.home)? {
        DaemonState::Running { pid, since } => Service {
            running: true,
            pid: Some(pid),
            since: Some(rfc3339(since.into())),
        },
        DaemonState::Foreign { pid, why } => {
            let error = error_chain(&daemon::DaemonError::Foreign { pid, why });
            eprintln!("{}: warning: {error}", ctx.program);
            log::warn!("{error}");
            Service {
                running: false,
                pid: None,
                since: None,
            }
        }
        DaemonState::NotRunning { .. } => Service {
            running: false,
            pid: None,
            since: None,
        },
    };
    let states = StateFile::new(ctx.home.state_file(), ctx.home.state_lock())
        .load()
        .unwrap_or_else(|error| {
            let error = error_chain(&error);
            eprintln!("{}: warning: {error}", ctx.program);
            log::warn!("{error}");
            RunStates::default()
        });
    let now = ctx.clock.now().with_timezone(&ctx.zone);
    let mut schedules = Vec::new();
    for (index, entry) in ctx.store.load()?.iter().enumerate() {
        let mut status = ScheduleStatus {
            index,
            line: entry.text(),
            valid: entry.parsed.is_ok(),
            error: entry.parsed.as_ref().err().map(|e| e.to_string()),
            name: None,
            source: None,
            timing: None,
            next_run: None,
            last_run: None,
            last_success: None,
            running: None,
        };
        if let Ok(schedule) = &entry.parsed {
            let known = states.schedules.get(&schedule.name);
            status.name = Some(schedule.name.clone());
            status.source = Some(schedule.source.clone());
            status.timing = Some(schedule.timing.to_string());
            status.next_run = schedule
                .timing
                .next_after(&now)
                .map(|t| rfc3339(t.with_timezone(&Utc)));
            status.last_run = known.and_then(|s| s.last_run.clone());
            status.last_success = known.and_then(|s| s.last_success.clone());
            status.running = running(ctx, schedule);
        }
        schedules.push(status);
    }
    let running = service.running;
    let status = Status { service, schedules };
    log::info!("Show status");
    if args.json {
        print_json(&status)?;
    } else {
        print_lines(text_lines(&status))?;
    }
    // The LSB convention for a service's status: 0 running, 3 not.
    Ok(if running {
        ExitCode::Success
    } else {
        ExitCode::NotRunning
    })
}

/// The run of `schedule` going now: its progress file, if the process it
/// names still holds the schedule's lock (a killed run leaves a file whose
/// pid holds nothing).
fn running(ctx: &Context, schedule: &Schedule) -> Option<Running> {
    let progress = read_progress(&ctx.home, schedule)?;
    let lock = File::open(History::of(&ctx.home, schedule).lock_path()).ok()?;
    let holds = match lock_holders(&lock) {
        Some(holders) => holders.contains(&progress.pid),
        None => std::path::Path::new(&format!("/proc/{}", progress.pid)).exists(),
    };
    holds.then(|| Running {
        since: rfc3339(progress.started),
        pid: progress.pid,
        bytes_read: progress.bytes_read,
    })
}

fn text_lines(status: &Status) -> Vec<String> {
    let mut lines = vec![match (&status.service.pid, &status.service.since) {
        (Some(pid), Some(since)) => format!(
            "backup_service: running (pid {pid}, since {})",
            stamp_of(since)
        ),
        _ => "backup_service: not running".to_string(),
    }];
    for s in &status.schedules {
        let (Some(name), None) = (&s.name, &s.error) else {
            lines.push(format!(
                "{}: not valid, never runs: {} ({})",
                s.index,
                printable(&s.line),
                s.error.as_deref().unwrap_or("")
            ));
            continue;
        };
        let last = match &s.last_run {
            None => "never".to_string(),
            Some(run) => {
                let detail = match (&run.archive, &run.error) {
                    (_, Some(error)) => format!(" ({})", printable(error)),
                    (Some(archive), None) => format!(" {archive}"),
                    (None, None) => String::new(),
                };
                format!("{} {}{detail}", log_stamp(run.started), run.state.as_str())
            }
        };
        let next = s.next_run.as_deref().map_or("never".to_string(), stamp_of);
        lines.push(format!(
            "{}: {name}  last run {last}  next run {next}  ({})",
            s.index,
            printable(&s.line)
        ));
        if let Some(run) = &s.running {
            lines.push(format!(
                "{}: {name}  running since {}, {} read so far (pid {})",
                s.index,
                stamp_of(&run.since),
                human_bytes(run.bytes_read),
                run.pid
            ));
        }
    }
    lines
}

fn stamp_of(rfc: &str) -> String {
    DateTime::parse_from_rfc3339(rfc)
        .map(|t| log_stamp(t.with_timezone(&Utc)))
        .unwrap_or_else(|_| rfc.to_string())
}
