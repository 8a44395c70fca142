//! `delete INDEX`: removes one schedule, by the index `list` shows.

use std::process::ExitCode;

use super::Context;
use crate::error::Error;

pub fn run(ctx: &Context, index: &str) -> Result<ExitCode, Error> {
    let removed = ctx.store.remove(index)?;
    log::info!("Schedule deleted: {index}: {}", removed.text());
    Ok(ExitCode::SUCCESS)
}
