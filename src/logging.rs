//! The event log. Set up once per process with [`init`]; nothing else knows the
//! line format, which is the spec's: `[dd/mm/YYYY HH:MM] message`, one event per
//! line. Errors and warnings are prefixed `Error:` / `Warning:` as in the spec's
//! `Error: malformed schedule: test;`.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use log::{Level, LevelFilter};

use crate::clock::{self, Clock};

/// Where a process logs to.
pub struct LogTarget<'a> {
    /// The log file, appended to.
    pub file: &'a Path,
    /// Also copy each line to stderr (foreground daemon, `run`).
    pub echo_to_stderr: bool,
}

/// Installs the global logger. Fails when the log file cannot be opened; the
/// caller reports that on stderr, since there is no log to write it to.
pub fn init(target: LogTarget<'_>, clock: Arc<dyn Clock>) -> std::io::Result<()> {
    let mut dispatch = fern::Dispatch::new()
        .level(LevelFilter::Info)
        .format(move |out, message, record| {
            let line = format_line(&clock::log_stamp(clock.now()), record.level(), message);
            out.finish(format_args!("{line}"))
        })
        .chain(fern::log_file(target.file)?);
    if target.echo_to_stderr {
        dispatch = dispatch.chain(std::io::stderr());
    }
    // A second init in one process (only possible in tests) keeps the first logger.
    let _ = dispatch.apply();
    Ok(())
}

/// One log line, without the trailing newline. Newlines and other control
/// characters in the message (a file name can hold them) are escaped, so one
/// event is always one line.
pub fn format_line(stamp: &str, level: Level, message: &std::fmt::Arguments<'_>) -> String {
    let prefix = match level {
        Level::Error => "Error: ",
        Level::Warn => "Warning: ",
        _ => "",
    };
    let mut text = String::new();
    let _ = write!(text, "{message}");
    let mut line = format!("[{stamp}] {prefix}");
    for c in text.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_spec_format() {
        let line = format_line(
            "08/02/2023 16:07",
            Level::Error,
            &format_args!("malformed schedule: {}", "test;"),
        );
        assert_eq!(line, "[08/02/2023 16:07] Error: malformed schedule: test;");
    }

    #[test]
    fn control_characters_cannot_split_an_event() {
        let line = format_line("d", Level::Info, &format_args!("a\nb"));
        assert_eq!(line, "[d] a\\nb");
    }
}
