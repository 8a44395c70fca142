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
        Err(clap_error) => return cli::report_usage_error(personality, &args, &clap_error),
    };
    match cli::run(invocation) {
        Ok(code) => code,
        Err(error) => {
            cli::report_error(personality, &error);
            ExitCode::from(error.exit_code())
        }
    }
}
