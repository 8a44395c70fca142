//! `man`: the roff man page, generated from the clap definitions so it never
//! falls behind.

use clap::CommandFactory;

use super::completions::print_bytes;
use super::{Cli, Context};
use crate::error::Error;
use crate::exit_codes::ExitCode;

/// `man` takes no arguments of its own.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Prints the man page.
pub fn run(_args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command().name(ctx.program))
        .render(&mut page)
        .map_err(|e| Error::io("render", "the man page", e))?;
    print_bytes(&page)
}
