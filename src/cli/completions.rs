//! `completions SHELL` and `man`: a shell completion script and a roff man
//! page, generated from the clap definitions so they never fall behind.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use super::Cli;
use crate::error::Error;

/// Prints the completion script for `shell`.
pub fn completions(program: &'static str, shell: clap_complete::Shell) -> Result<ExitCode, Error> {
    let mut cmd = Cli::command().name(program);
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, program, &mut script);
    print_bytes(&script)
}

/// Prints the man page.
pub fn man(program: &'static str) -> Result<ExitCode, Error> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command().name(program))
        .render(&mut page)
        .map_err(|e| Error::io("render", "the man page", e))?;
    print_bytes(&page)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn print_bytes(bytes: &[u8]) -> Result<ExitCode, Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("write to", "stdout", e))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}
