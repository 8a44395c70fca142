//! `completions SHELL`: a shell completion script, generated from the clap
//! definitions so it never falls behind.

use clap::CommandFactory;

use super::{Cli, Context};
use crate::error::Error;
use crate::exit_codes::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for
    pub shell: clap_complete::Shell,
}

/// Prints the completion script for the shell.
pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let mut cmd = Cli::command().name(ctx.program);
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, ctx.program, &mut script);
    print_bytes(&script)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
pub fn print_bytes(bytes: &[u8]) -> Result<ExitCode, Error> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("write to", "stdout", e))
        }
        _ => Ok(ExitCode::Success),
    }
}
