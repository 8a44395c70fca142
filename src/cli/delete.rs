//! `delete INDEX|NAME`: removes one schedule, by the index `list` shows or by
//! its name.

use super::Context;
use crate::error::Error;
use crate::exit_codes::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The schedule: its index, as `list` shows it (0 is the first), or its
    /// name. A plain number in range is an index, anything else a name.
    /// Indexes shift down after each delete; a name does not
    #[arg(allow_hyphen_values = true, value_name = "INDEX|NAME")]
    pub schedule: String,
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let (index, removed) = ctx.store.remove(&args.schedule)?;
    log::info!(
        "Schedule deleted: {index}: {}",
        crate::primitives::redact_urls(&removed.text())
    );
    Ok(ExitCode::Success)
}
