//! Command lines clap refused. Help and version pass through as clap prints
//! them; a usage error becomes one line on stderr naming the bad input
//! (`backup_manager: unrecognized subcommand 'lsit'; did you mean 'list'? (see
//! --help)`), built from the error's kind and context rather than from its
//! rendered text, exit code 2, and a line in the manager log when the home
//! already has a log directory (a mistyped command creates nothing).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::sync::Arc;

use clap::FromArgMatches;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use super::context::{LogPlan, log_plan};
use super::{GlobalArgs, Parsed, Personality, clap_command};
use crate::clock::{self, Clock, SystemClock};
use crate::error::Error;
use crate::exit_codes::ExitCode;
use crate::home;
use crate::logging;
use crate::primitives::quote;

/// What a refused command line becomes: text to show (help, version), or a
/// usage error, logged.
pub fn refused(
    personality: Personality,
    args: &[OsString],
    error: clap::Error,
) -> Result<Parsed, Error> {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return Ok(Parsed::Show(error));
    }
    let message = describe(&error);
    log_to_existing_manager_log(personality, args, &message);
    Err(Error::Usage { message })
}

/// Prints help or version text as clap does; the exit code is clap's (0, or 2
/// for help shown because a command was missing).
pub fn show(text: &clap::Error) -> ExitCode {
    let _ = text.print();
    if text.exit_code() == 0 {
        ExitCode::Success
    } else {
        ExitCode::InvalidInput
    }
}

/// The one-line message for a usage error: what was wrong, from the error's
/// kind and context, then clap's suggestion if it has one.
fn describe(error: &clap::Error) -> String {
    let text = |kind| match error.get(kind) {
        Some(ContextValue::String(s)) => Some(quote(s)),
        Some(ContextValue::Strings(list)) => {
            Some(list.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", "))
        }
        _ => None,
    };
    let arg = text(ContextKind::InvalidArg);
    let value = text(ContextKind::InvalidValue);
    let mut message = match (error.kind(), arg, value) {
        (ErrorKind::InvalidSubcommand, _, _) => match text(ContextKind::InvalidSubcommand) {
            Some(sub) => format!("unrecognized subcommand '{sub}'"),
            None => "unrecognized subcommand".to_string(),
        },
        (ErrorKind::UnknownArgument, Some(arg), _) => format!("unexpected argument '{arg}' found"),
        (ErrorKind::InvalidValue, Some(arg), Some(value)) if value.is_empty() => {
            format!("a value is required for '{arg}' but none was supplied")
        }
        (ErrorKind::InvalidValue | ErrorKind::ValueValidation, Some(arg), Some(value)) => {
            format!("invalid value '{value}' for '{arg}'")
        }
        (ErrorKind::MissingRequiredArgument, Some(args), _) => {
            format!("the following required arguments were not provided: {args}")
        }
        (ErrorKind::ArgumentConflict, Some(arg), _) => match text(ContextKind::PriorArg) {
            Some(prior) if prior == arg => {
                format!("the argument '{arg}' cannot be used multiple times")
            }
            Some(prior) => format!("the argument '{arg}' cannot be used with '{prior}'"),
            None => format!("the argument '{arg}' cannot be used with the other arguments"),
        },
        (ErrorKind::TooManyValues, Some(arg), Some(value)) => {
            format!("unexpected value '{value}' for '{arg}' found; no more were expected")
        }
        (ErrorKind::NoEquals, Some(arg), _) => {
            format!("equal sign is needed when assigning values to '{arg}'")
        }
        (kind, Some(arg), _) => format!(
            "{} ('{arg}')",
            kind.as_str().unwrap_or("invalid command line")
        ),
        (kind, None, _) => kind.as_str().unwrap_or("invalid command line").to_string(),
    };
    if error.kind() == ErrorKind::ValueValidation
        && let Some(reason) = std::error::Error::source(error)
    {
        let _ = write!(message, ": {}", quote(&reason.to_string()));
    }
    if let Some(valid) = text(ContextKind::ValidValue) {
        let _ = write!(message, " [possible values: {valid}]");
    }
    for (kind, tip) in [
        (ContextKind::SuggestedSubcommand, "did you mean"),
        (ContextKind::SuggestedArg, "did you mean"),
        (ContextKind::SuggestedValue, "did you mean"),
    ] {
        if let Some(suggestion) = text(kind) {
            let _ = write!(message, "; {tip} '{suggestion}'?");
        }
    }
    // Other tips ("to pass '-x' as a value, use '-- -x'"), as plain text.
    if let Some(ContextValue::StyledStrs(tips)) = error.get(ContextKind::Suggested) {
        for tip in tips {
            let _ = write!(message, "; {}", quote(&tip.to_string()));
        }
    }
    message
}

/// Logs the refused line to the manager log of the home the user meant, if
/// it is a home and already has a log directory.
fn log_to_existing_manager_log(personality: Personality, args: &[OsString], message: &str) {
    let global = home_and_rotation(personality, args);
    let Ok(cwd) = std::env::current_dir() else {
        return;
    };
    let named = global.as_ref().and_then(|g| g.home.as_deref());
    let located = home::locate(named, &cwd, home::system_home_from_env().as_deref());
    let home = located.home.clone();
    if !located.is_home() || !home.logs_dir().is_dir() {
        return;
    }
    let style = global
        .map(|g| (g.rotation(), g.log_time))
        .unwrap_or_default();
    let LogPlan::Cli(log) = log_plan(&home, None, style, false) else {
        return;
    };
    let clock: Arc<dyn Clock> = clock::from_env().map_or(Arc::new(SystemClock), Arc::from);
    if logging::init(log.target(), clock).is_ok() {
        log::error!("invalid command line: {message}");
    }
}

/// The global options (`--home`, the environment, log rotation) of a command
/// line clap refused, read by clap again. clap stops at the first error it
/// meets, so the input an error names is dropped and the line read again
/// (`frobnicate --home DIR` still finds DIR); what is left is read with
/// errors ignored.
fn home_and_rotation(personality: Personality, args: &[OsString]) -> Option<GlobalArgs> {
    let mut args = args.to_vec();
    for _ in 1..args.len() {
        let Err(error) = clap_command(personality).try_get_matches_from(&args) else {
            break;
        };
        // The bad input, as typed: a subcommand, an option or a value.
        let at = [
            ContextKind::InvalidSubcommand,
            ContextKind::InvalidArg,
            ContextKind::InvalidValue,
        ]
        .into_iter()
        .filter_map(|kind| match error.get(kind) {
            Some(ContextValue::String(text)) => Some(text),
            _ => None,
        })
        .find_map(|text| args.iter().skip(1).position(|a| *a == **text));
        let Some(at) = at else {
            break;
        };
        args.remove(at + 1);
    }
    let matches = clap_command(personality)
        .ignore_errors(true)
        .try_get_matches_from(&args)
        .ok()?;
    GlobalArgs::from_arg_matches(&matches).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(line: &[&str]) -> String {
        let args: Vec<OsString> = line.iter().map(OsString::from).collect();
        let error = clap_command(Personality::Backupctl)
            .try_get_matches_from(&args)
            .expect_err("refused");
        describe(&error)
    }

    #[test]
    fn messages_name_the_bad_input_on_one_line() {
        assert_eq!(
            refusal(&["b", "frobnicate"]),
            "unrecognized subcommand 'frobnicate'"
        );
        assert_eq!(
            refusal(&["b", "lsit"]),
            "unrecognized subcommand 'lsit'; did you mean 'list'?"
        );
        assert_eq!(
            refusal(&["b", "delete"]),
            "the following required arguments were not provided: <INDEX|NAME>"
        );
        assert_eq!(
            refusal(&["b", "list", "--jsno"]),
            "unexpected argument '--jsno' found; did you mean '--json'?"
        );
        assert_eq!(
            refusal(&["b", "next", "-n", "0", "x"]),
            "invalid value '0' for '--count <N>': 0 is not in 1..=1000"
        );
        assert_eq!(
            refusal(&["b", "verify", "--all", "x"]),
            "the argument '--all' cannot be used with '[TARGETS]...'"
        );
        assert_eq!(
            refusal(&["b", "completions", "bsh"]),
            "invalid value 'bsh' for '<SHELL>' [possible values: bash, elvish, fish, powershell, zsh]; did you mean 'bash'?"
        );
        assert_eq!(
            refusal(&["b", "list", "\u{1b}[31m"]),
            "unexpected argument '\\u{1b}[31m' found"
        );
    }

    #[test]
    fn the_home_of_a_refused_line_comes_from_clap() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let home =
            |v: &[&str]| home_and_rotation(Personality::Manager, &args(v)).and_then(|g| g.home);
        assert_eq!(home(&["b", "delete", "--home", "/h"]), Some("/h".into()));
        assert_eq!(home(&["b", "--home=/k", "frobnicate"]), Some("/k".into()));
        assert_eq!(
            home(&["b", "frobnicate", "--home", "/k"]),
            Some("/k".into())
        );
        assert_eq!(
            home(&["b", "completions", "bsh", "--home", "/l"]),
            Some("/l".into())
        );
        assert_eq!(
            home(&["b", "list", "--bogus", "--home", "/j"]),
            Some("/j".into())
        );
    }
}
