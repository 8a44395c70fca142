//! `delete INDEX`: removes one schedule, by the index `list` shows.

use super::Context;
use crate::error::Error;
use crate::exit_codes::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The schedule's index, as `list` shows it (0 is the first)
    #[arg(allow_hyphen_values = true)]
    pub index: String,
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let removed = ctx.store.remove(&args.index)?;
    log::info!("Schedule deleted: {}: {}", args.index, removed.text());
    Ok(ExitCode::Success)
}
