//! `list`: prints each schedule with its index, `0: test;16:07;backup_test`.
//! Lines that are not valid schedules are shown as stored and flagged on stderr.

use std::process::ExitCode;

use super::{Context, print_lines};
use crate::error::Error;

pub fn run(ctx: &Context) -> Result<ExitCode, Error> {
    let entries = ctx.store.load()?;
    log::info!("Show schedules list");
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
            .map(|(index, entry)| format!("{index}: {}", entry.text())),
    )?;
    Ok(ExitCode::SUCCESS)
}
