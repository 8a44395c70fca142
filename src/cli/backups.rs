//! `backups`: lists the archive files in `backups/`, sorted by name.

use std::process::ExitCode;

use super::{Context, print_lines};
use crate::archive;
use crate::error::Error;

pub fn run(ctx: &Context) -> Result<ExitCode, Error> {
    let dir = ctx.home.backups_dir();
    let names = archive::list_archives(&dir).map_err(|e| Error::io("list", &dir, e))?;
    log::info!("Show backups list");
    print_lines(names)?;
    Ok(ExitCode::SUCCESS)
}
