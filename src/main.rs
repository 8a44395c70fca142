//! The `backupctl` executable: works out which personality it was called as
//! (`backupctl`, `backup_manager` or `backup_service`), parses the command line,
//! runs the command and turns the outcome into an exit code. Everything else
//! lives in the library.

use std::process::ExitCode;

use backupctl::cli::{self, Personality};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let personality = Personality::from_argv0(args.first().map(|a| a.as_os_str()));
    let invocation = match cli::parse(personality, &args) {
        Ok(invocation) => invocation,
        Err(clap_error) => {
            // clap prints help, version and usage errors itself; usage errors exit 2.
            let _ = clap_error.print();
            return ExitCode::from(clap_error.exit_code().clamp(0, 255) as u8);
        }
    };
    match cli::run(invocation) {
        Ok(code) => code,
        Err(error) => {
            cli::report_error(personality, &error);
            ExitCode::from(error.exit_code())
        }
    }
}
