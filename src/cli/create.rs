//! `create "path;hh:mm;name"`: validates a schedule and appends it to the store.

use std::process::ExitCode;

use super::Context;
use crate::error::Error;

pub fn run(ctx: &Context, line: &str) -> Result<ExitCode, Error> {
    let schedule = ctx.store.add(line)?;
    log::info!("New schedule added: {}", crate::primitives::printable(line));
    let source = ctx.home.resolve_source(&schedule.source);
    if !source.exists() {
        let warning = format!(
            "source {} does not exist yet; its backups will fail until it does",
            source.display()
        );
        log::warn!("{warning}");
        eprintln!("{}: warning: {warning}", ctx.program);
    }
    Ok(ExitCode::SUCCESS)
}
