//! `contents ARCHIVE|NAME [--at TIME]`: what an archive holds, one line an
//! entry, as GNU `tar tv` prints it (see `archive::listing`). A schedule's
//! name lists its newest archive.

use chrono::NaiveDateTime;

use super::{Context, archive_arg, print_lines};
use crate::archive::listing;
use crate::error::Error;
use crate::exit_codes::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// An archive file name in backups/, a path to an archive, or a
    /// schedule's name (its newest archive)
    #[arg(allow_hyphen_values = true)]
    pub archive: String,
    /// With a schedule's name: its newest archive taken at or before this
    /// local time ("2026-11-20 18:00")
    #[arg(long, value_name = "TIME", value_parser = archive_arg::parse_at)]
    pub at: Option<NaiveDateTime>,
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let archive = archive_arg::resolve(ctx, &args.archive, args.at)?;
    listing::list_archive(&archive, &mut |line| print_lines([line]))??;
    Ok(ExitCode::Success)
}
