//! `list`: prints each schedule with its index, `0: test;16:07;backup_test`.
//! Lines that are not valid schedules are shown as stored and flagged on stderr;
//! control characters of hand-edited lines are shown escaped (`\u{1b}`),
//! never sent to the terminal. `--json` keeps them, JSON-escaped.
//! `--json` prints every line as an object instead (shape in docs/archives.md).

use serde::Serialize;

use super::{Context, print_json, print_lines};
use crate::error::Error;
use crate::exit_codes::ExitCode;
use crate::primitives::printable;
use crate::store::Entry;

/// One schedule line in `list --json`.
#[derive(Debug, Serialize)]
struct ScheduleJson {
    index: usize,
    line: String,
    valid: bool,
    source: Option<String>,
    time: Option<String>,
    name: Option<String>,
    /// The options field as stored, if the line has one.
    options: Option<String>,
    error: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the schedules as JSON (shape in docs/archives.md)
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let entries = ctx.store.load()?;
    log::info!("Show schedules list");
    if args.json {
        let rows: Vec<ScheduleJson> = entries
            .iter()
            .enumerate()
            .map(|(index, entry)| to_json(index, entry))
            .collect();
        print_json(&rows)?;
        return Ok(ExitCode::Success);
    }
    for (index, entry) in entries.iter().enumerate() {
        if let Err(reason) = &entry.parsed {
            eprintln!(
                "{}: warning: schedule {index} is not valid: {reason}",
                ctx.program
            );
        }
    }
    print_lines(
        entries
            .iter()
            .enumerate()
            .map(|(index, entry)| format!("{index}: {}", printable(&entry.text()))),
    )?;
    Ok(ExitCode::Success)
}

fn to_json(index: usize, entry: &Entry) -> ScheduleJson {
    let line = entry.text();
    match &entry.parsed {
        Ok(schedule) => ScheduleJson {
            index,
            valid: true,
            source: Some(schedule.source.clone()),
            time: Some(schedule.timing.to_string()),
            name: Some(schedule.name.clone()),
            options: line.splitn(4, ';').nth(3).map(str::to_string),
            error: None,
            line,
        },
        Err(reason) => ScheduleJson {
            index,
            valid: false,
            source: None,
            time: None,
            name: None,
            options: None,
            error: Some(reason.to_string()),
            line,
        },
    }
}
