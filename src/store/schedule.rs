//! One schedule line, `path;hh:mm;name`: parsing, validation and the question
//! the service asks of it, "when does this run next?".

use std::fmt;

use chrono::{DateTime, TimeZone};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use super::options::{OptionError, Options};

/// Longest schedule name accepted, in bytes. Archive names add a timestamp and
/// an extension to it and must stay under the 255-byte file-name limit.
pub const MAX_NAME_LEN: usize = 200;

/// Why a schedule line was refused. Each reason names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("expected path;hh:mm;name or path;hh:mm;name;options, found {found} fields")]
    FieldCount { found: usize },
    #[error("the path is empty")]
    EmptyPath,
    #[error("the path contains a control character")]
    PathControl,
    #[error("time {0:?} is not hh:mm between 00:00 and 23:59")]
    BadTime(String),
    #[error("the backup name is empty")]
    EmptyName,
    #[error("backup name {name:?} {why}")]
    BadName { name: String, why: &'static str },
    #[error(transparent)]
    BadOption(#[from] OptionError),
}

/// When a schedule runs.
#[derive(Debug, Clone)]
pub enum Timing {
    /// Every day at `hh:mm`, local time.
    Daily {
        hour: u8,
        minute: u8,
        cron: Box<Cron>,
    },
}

impl Timing {
    fn daily(hour: u8, minute: u8) -> Self {
        let pattern = format!("{minute} {hour} * * *");
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(&pattern)
            .expect("a pattern built from a valid hh:mm always parses");
        Timing::Daily {
            hour,
            minute,
            cron: Box::new(cron),
        }
    }

    /// The first run strictly after `after`, in `after`'s time zone. A time that
    /// does not exist on a spring-forward day runs once just after the gap; a
    /// time that happens twice on a fall-back day runs once, the first time.
    pub fn next_after<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>>
    where
        Tz::Offset: Copy,
    {
        match self {
            Timing::Daily { cron, .. } => cron.find_next_occurrence(after, false).ok(),
        }
    }
}

impl fmt::Display for Timing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timing::Daily { hour, minute, .. } => write!(f, "{hour:02}:{minute:02}"),
        }
    }
}

/// A valid schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The source path as typed; relative paths are taken from the home.
    pub source: String,
    pub timing: Timing,
    /// The backup name; also the archive's file name stem.
    pub name: String,
    /// The optional fourth field.
    pub options: Options,
}

impl Schedule {
    /// Parses and validates one line, as typed by a user or read from the store.
    pub fn parse(line: &str) -> Result<Self, ScheduleError> {
        let fields: Vec<&str> = line.split(';').collect();
        let (source, time, name, options) = match fields[..] {
            [source, time, name] => (source, time, name, None),
            [source, time, name, options] => (source, time, name, Some(options)),
            _ => {
                return Err(ScheduleError::FieldCount {
                    found: fields.len(),
                });
            }
        };
        Ok(Self {
            source: validate_source(source)?.to_string(),
            timing: parse_time(time)?,
            name: validate_name(name)?.to_string(),
            options: options.map(Options::parse).transpose()?.unwrap_or_default(),
        })
    }
}

fn validate_source(source: &str) -> Result<&str, ScheduleError> {
    if source.is_empty() {
        Err(ScheduleError::EmptyPath)
    } else if source.chars().any(char::is_control) {
        Err(ScheduleError::PathControl)
    } else {
        Ok(source)
    }
}

/// Strict `hh:mm`: two digits each, 00:00 to 23:59.
fn parse_time(text: &str) -> Result<Timing, ScheduleError> {
    let bad = || ScheduleError::BadTime(text.to_string());
    let bytes = text.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return Err(bad());
    }
    let two_digits = |s: &[u8]| -> Option<u8> {
        match s {
            [a @ b'0'..=b'9', b @ b'0'..=b'9'] => Some((a - b'0') * 10 + (b - b'0')),
            _ => None,
        }
    };
    match (two_digits(&bytes[0..2]), two_digits(&bytes[3..5])) {
        (Some(hour), Some(minute)) if hour < 24 && minute < 60 => Ok(Timing::daily(hour, minute)),
        _ => Err(bad()),
    }
}

/// A backup name must be usable as a plain file name in `backups/`.
pub fn validate_name(name: &str) -> Result<&str, ScheduleError> {
    let why = if name.is_empty() {
        return Err(ScheduleError::EmptyName);
    } else if name == "." || name == ".." {
        "is not a file name"
    } else if name.contains('/') {
        "contains '/'"
    } else if name.chars().any(char::is_control) {
        "contains a control character"
    } else if name.starts_with('.') {
        "starts with '.' (hidden names are kept for temporary files)"
    } else if name.len() > MAX_NAME_LEN {
        "is longer than 200 bytes"
    } else {
        return Ok(name);
    };
    Err(ScheduleError::BadName {
        name: name.to_string(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};

    #[test]
    fn the_spec_lines_parse() {
        let s = Schedule::parse("test;16:07;backup_test").unwrap();
        assert_eq!(s.source, "test");
        assert_eq!(s.name, "backup_test");
        assert_eq!(s.options, Options::default());
    }

    #[test]
    fn malformed_lines_are_refused_with_the_reason() {
        let cases = [
            ("test;", ScheduleError::FieldCount { found: 2 }),
            ("a;b;c;d;e", ScheduleError::FieldCount { found: 5 }),
            (
                "p;07:05;n;colour",
                ScheduleError::BadOption(OptionError {
                    option: "colour".into(),
                    why: "is not a known option".into(),
                }),
            ),
            (";16:07;n", ScheduleError::EmptyPath),
            ("p;16:07;", ScheduleError::EmptyName),
            ("p;24:00;n", ScheduleError::BadTime("24:00".into())),
            ("p;7:05;n", ScheduleError::BadTime("7:05".into())),
            ("p;07:60;n", ScheduleError::BadTime("07:60".into())),
            ("p;07-05;n", ScheduleError::BadTime("07-05".into())),
            ("p;+1:05;n", ScheduleError::BadTime("+1:05".into())),
            ("p\tq;07:05;n", ScheduleError::PathControl),
        ];
        for (line, expected) in cases {
            assert_eq!(Schedule::parse(line).unwrap_err(), expected, "{line}");
        }
    }

    #[test]
    fn names_must_be_plain_file_names() {
        for bad in [".", "..", "a/b", "a\nb", ".hidden", &"x".repeat(201)] {
            let line = format!("p;10:00;{bad}");
            assert!(
                matches!(Schedule::parse(&line), Err(ScheduleError::BadName { .. })),
                "{bad:?} accepted"
            );
        }
        assert!(Schedule::parse("p;10:00;ok-name_1.x").is_ok());
    }

    #[test]
    fn daily_next_run_rolls_over_to_tomorrow() {
        let s = Schedule::parse("p;00:05;n").unwrap();
        let at = Utc.with_ymd_and_hms(2024, 12, 31, 23, 59, 0).unwrap();
        let next = s.timing.next_after(&at).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2025, 1, 1, 0, 5, 0).unwrap());
        // Strictly after: asking at the run minute itself gives tomorrow's run.
        let same = s.timing.next_after(&next).unwrap();
        assert_eq!(same - next, Duration::days(1));
    }
}
