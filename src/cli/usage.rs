//! Command-line errors found by clap. Help and version pass through as clap
//! prints them; a usage error becomes one line on stderr naming the bad input
//! (`backup_manager: unrecognized subcommand 'frobnicate' (see --help)`), exit
//! code 2, and a line in the manager log when the home already has a log
//! directory (a mistyped command creates nothing).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::error::ErrorKind;

use super::Personality;
use crate::clock::{self, Clock, SystemClock};
use crate::error::EXIT_INVALID_INPUT;
use crate::home::{HOME_VAR, Home};
use crate::logging::{self, LogTarget};

pub fn report_usage_error(
    personality: Personality,
    args: &[OsString],
    error: &clap::Error,
) -> ExitCode {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(EXIT_INVALID_INPUT));
    }
    let message = first_paragraph(&error.render().to_string());
    eprintln!("{}: {message} (see --help)", personality.program_name());
    log_to_existing_manager_log(args, &message);
    ExitCode::from(EXIT_INVALID_INPUT)
}

/// clap's message without its `error:` prefix, usage and tips, on one line.
fn first_paragraph(rendered: &str) -> String {
    let text = rendered.trim_start().trim_start_matches("error:");
    text.lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn log_to_existing_manager_log(args: &[OsString], message: &str) {
    let Ok(home) = Home::resolve(home_argument(args).as_deref()) else {
        return;
    };
    if !home.logs_dir().is_dir() {
        return;
    }
    let clock: Arc<dyn Clock> = clock::from_env().map_or(Arc::new(SystemClock), Arc::from);
    let log = home.manager_log();
    let target = LogTarget {
        file: &log,
        echo_to_stderr: false,
        rotation: Default::default(),
    };
    if logging::init(target, clock).is_ok() {
        log::error!("invalid command line: {message}");
    }
}

/// The home the user meant, read without clap (which just refused the line):
/// `--home DIR`, `--home=DIR`, then the environment.
fn home_argument(args: &[OsString]) -> Option<PathBuf> {
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        if arg == "--home" {
            return rest.next().map(PathBuf::from);
        }
        if let Some(dir) = arg.to_str().and_then(|a| a.strip_prefix("--home=")) {
            return Some(Path::new(dir).to_path_buf());
        }
    }
    std::env::var_os(HOME_VAR).map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_messages_fold_to_one_line() {
        let rendered = "error: the following required arguments were not provided:\n  <SCHEDULE>\n\nUsage: backupctl run <SCHEDULE>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            first_paragraph(rendered),
            "the following required arguments were not provided: <SCHEDULE>"
        );
    }

    #[test]
    fn the_home_is_found_without_clap() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            home_argument(&args(&["b", "x", "--home", "/h"])),
            Some(PathBuf::from("/h"))
        );
        assert_eq!(
            home_argument(&args(&["b", "--home=/k", "x"])),
            Some(PathBuf::from("/k"))
        );
    }
}
