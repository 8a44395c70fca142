//! The `backupctl` executable: works out which personality it was called as
//! (`backupctl`, `backup_manager` or `backup_service`), parses the command line,
//! runs the command and turns the outcome into an exit code. Everything else
//! lives in the library.

use std::ffi::OsString;
use std::process::ExitCode;

use backupctl::cli::{self, Personality};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let personality = Personality::from_argv0(args.first().map(OsString::as_os_str));
    match cli::parse(personality, &args).and_then(cli::run) {
        Ok(code) => code.into(),
        Err(error) => {
            cli::report_error(personality, &error);
            error.exit_code().into()
        }
    }
}
