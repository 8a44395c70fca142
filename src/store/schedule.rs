//! One schedule line, `path;hh:mm;name`: parsing, validation and the question
//! the service asks of it, "when does this run next?".

use std::fmt;

use chrono::{DateTime, TimeZone};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use super::options::{OptionError, Options};
use crate::primitives::{is_layout_char, printable, quote_at};

/// How much of a field a message quotes: the message also quotes the line.
pub const FIELD_QUOTE: usize = 32;

/// A field of a bad line as a message shows it: shortened, escaped.
pub fn quote_field(text: &str) -> String {
    quote_at(text, FIELD_QUOTE)
}

/// How much of croner's reason for refusing an expression a message shows:
/// it can repeat the field, which the message already quotes.
const CRONER_REASON_LIMIT: usize = 40;

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
    /// A newline, CR, NUL, ESC or other character that would change how
    /// the stored line reads back, or what a terminal shows of it.
    #[error("the {field} contains a control character ({})", printable(&found.to_string()))]
    ControlChar { field: Field, found: char },
    #[error("the {field} starts or ends with whitespace")]
    SurroundingSpace { field: Field },
    #[error(
        "time \"{}\" is not hh:mm (00:00 to 23:59), a cron expression or @hourly, @daily, @weekly, @monthly",
        quote_field(.0)
    )]
    BadTime(String),
    /// `why` is shown whole when it is one of ours; croner's, which can
    /// repeat the expression, is cut where it is made (see `parse_cron`).
    #[error(
        "cron expression \"{}\" is not valid: {}",
        quote_field(expr),
        printable(why)
    )]
    BadCron { expr: String, why: String },
    #[error("the backup name is empty")]
    EmptyName,
    #[error("backup name \"{}\" {why}", quote_field(name))]
    BadName { name: String, why: &'static str },
    #[error(transparent)]
    BadOption(#[from] OptionError),
    /// Two sources whose archive entries would start with the same name.
    #[error(
        "sources \"{}\" and \"{}\" would both be stored as {name}/ in the archive; back up a parent directory instead",
        quote_field(first),
        quote_field(second)
    )]
    SourcesCollide {
        name: String,
        first: String,
        second: String,
    },
}

/// The fields of a schedule line, as messages name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Path,
    Time,
    Name,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Path => "path",
            Field::Time => "time",
            Field::Name => "backup name",
        })
    }
}

/// Refuses a field holding a character that would not survive the store
/// (one line per schedule, a trailing CR dropped on reading) or that a
/// terminal would act on instead of showing. What `create` validates must
/// be exactly what `load` reads back.
fn check_characters(field: Field, text: &str) -> Result<(), ScheduleError> {
    match text.chars().find(|&c| is_layout_char(c)) {
        Some(found) => Err(ScheduleError::ControlChar { field, found }),
        None => Ok(()),
    }
}

/// Refuses leading or trailing whitespace, which would make the field mean
/// something else than what `list` seems to show (a path " data", a cron
/// expression that croner trims).
fn check_edges(field: Field, text: &str) -> Result<(), ScheduleError> {
    if text.trim() == text {
        Ok(())
    } else {
        Err(ScheduleError::SurroundingSpace { field })
    }
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
    /// A five-field cron expression (`*/15 * * * *`, `30 2 * * mon-fri`) or a
    /// nickname (`@hourly`, `@daily`, `@weekly`, `@monthly`), local time.
    Cron {
        /// The expression as typed, for display.
        expr: String,
        cron: Box<Cron>,
    },
}

/// The cron nicknames accepted (croner's expansion of each is the usual one).
const NICKNAMES: [&str; 6] = [
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
];

fn cron_parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
}

impl Timing {
    fn daily(hour: u8, minute: u8) -> Self {
        let pattern = format!("{minute} {hour} * * *");
        let cron = cron_parser()
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
        self.cron().find_next_occurrence(after, false).ok()
    }

    /// The last run at or before `at`, in `at`'s time zone.
    pub fn last_at_or_before<Tz: TimeZone>(&self, at: &DateTime<Tz>) -> Option<DateTime<Tz>>
    where
        Tz::Offset: Copy,
    {
        self.cron().find_previous_occurrence(at, true).ok()
    }

    /// The time between the last two runs at or before `at`: how often the
    /// schedule runs, as `check` judges it (a month is as long as it was).
    pub fn interval_before<Tz: TimeZone>(&self, at: &DateTime<Tz>) -> Option<chrono::TimeDelta>
    where
        Tz::Offset: Copy,
    {
        let last = self.last_at_or_before(at)?;
        let before = self.cron().find_previous_occurrence(&last, false).ok()?;
        Some(last.with_timezone(&chrono::Utc) - before.with_timezone(&chrono::Utc))
    }

    fn cron(&self) -> &Cron {
        match self {
            Timing::Daily { cron, .. } | Timing::Cron { cron, .. } => cron,
        }
    }

    /// Parses a cron expression or nickname, refusing one that never fires.
    pub fn parse_cron(expr: &str) -> Result<Self, ScheduleError> {
        let bad = |why: String| ScheduleError::BadCron {
            expr: expr.to_string(),
            why,
        };
        let trimmed = expr.trim();
        if trimmed.starts_with('@') {
            if !NICKNAMES.iter().any(|n| n.eq_ignore_ascii_case(trimmed)) {
                return Err(bad(
                    "the nicknames are @hourly, @daily, @weekly, @monthly and @yearly".into(),
                ));
            }
        } else if trimmed.contains('@') {
            return Err(bad("'@' only starts a nickname such as @daily".into()));
        } else if trimmed.split_whitespace().count() != 5 {
            return Err(bad(format!(
                "expected five fields (minute hour day-of-month month day-of-week), found {}",
                trimmed.split_whitespace().count()
            )));
        }
        // croner's message can repeat the whole field: cut it short.
        let cron = cron_parser()
            .parse(trimmed)
            .map_err(|e| bad(quote_at(&e.to_string(), CRONER_REASON_LIMIT)))?;
        // A pattern such as `0 0 31 2 *` parses but never fires.
        let probe = chrono::DateTime::<chrono::Utc>::from_timestamp(946_684_800, 0)
            .ok_or_else(|| bad("no reference date".into()))?;
        cron.find_next_occurrence(&probe, false)
            .map_err(|_| bad("it never matches a date".into()))?;
        Ok(Timing::Cron {
            expr: expr.to_string(),
            cron: Box::new(cron),
        })
    }
}

impl fmt::Display for Timing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timing::Daily { hour, minute, .. } => write!(f, "{hour:02}:{minute:02}"),
            Timing::Cron { expr, .. } => f.write_str(expr),
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
        let fields = split_fields(line);
        let (source, time, name, options) = match fields[..] {
            [source, time, name] => (source, time, name, None),
            [source, time, name, options] => (source, time, name, Some(options)),
            _ => {
                return Err(ScheduleError::FieldCount {
                    found: fields.len(),
                });
            }
        };
        let source = validate_source(source)?.to_string();
        check_characters(Field::Time, time)?;
        check_edges(Field::Time, time)?;
        let schedule = Self {
            source,
            timing: parse_time(time)?,
            name: check_name(name)?.to_string(),
            options: options.map(Options::parse).transpose()?.unwrap_or_default(),
        };
        check_top_level_names(&schedule.source, &schedule.options.also)?;
        Ok(schedule)
    }
}

/// Splits a line at its `;`s. The path, time and name hold no quotes (a `"`
/// there is an ordinary character, as it always was); in the options field a
/// `;` inside a double-quoted value is part of the value (see
/// [`options::split_items`](super::options::split_items)). An unterminated
/// quote keeps the rest of the line in the options field, whose parser then
/// names the option.
fn split_fields(line: &str) -> Vec<&str> {
    let mut fields: Vec<&str> = line.splitn(4, ';').collect();
    if fields.len() == 4 {
        let options = fields.pop().unwrap_or_default();
        let mut start = 0;
        for end in super::options::unquoted_positions(options, b';') {
            fields.push(&options[start..end]);
            start = end + 1;
        }
        fields.push(&options[start..]);
    }
    fields
}

/// Refuses sources whose archive entries would start with the same name
/// (`/srv/www` and `/var/www`). A path ending in `.` or `..` is named at
/// run time, from where it leads; the run refuses a collision then.
fn check_top_level_names(source: &str, also: &[String]) -> Result<(), ScheduleError> {
    let named = |typed: &str| {
        std::path::Path::new(typed)
            .file_name()
            .filter(|n| *n != "." && *n != "..")
            .map(|n| n.to_string_lossy().into_owned())
    };
    let mut seen: Vec<(String, &str)> = Vec::new();
    for typed in std::iter::once(source).chain(also.iter().map(String::as_str)) {
        let Some(name) = named(typed) else { continue };
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            return Err(ScheduleError::SourcesCollide {
                name,
                first: first.to_string(),
                second: typed.to_string(),
            });
        }
        seen.push((name, typed));
    }
    Ok(())
}

fn validate_source(source: &str) -> Result<&str, ScheduleError> {
    if source.is_empty() {
        return Err(ScheduleError::EmptyPath);
    }
    check_characters(Field::Path, source)?;
    check_edges(Field::Path, source)?;
    Ok(source)
}

/// The name's own rules ([`validate_name`]), then the characters every field
/// must avoid.
fn check_name(name: &str) -> Result<&str, ScheduleError> {
    let name = validate_name(name)?;
    check_characters(Field::Name, name)?;
    Ok(name)
}

/// The time field: a cron expression (it has spaces or starts with `@`) or
/// strict `hh:mm`, two digits each, 00:00 to 23:59.
pub fn parse_time(text: &str) -> Result<Timing, ScheduleError> {
    if text.trim_start().starts_with('@') || text.contains(char::is_whitespace) {
        return Timing::parse_cron(text);
    }
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

/// Endings of the files backupctl keeps in `backups/`: a name ending so
/// would be taken for one of them (`verify x.tar` would mean two things).
const RESERVED_ENDINGS: [&str; 9] = [
    ".tar", ".tar.gz", ".tar.zst", ".json", ".partial", ".tmp", ".lock", ".log", ".pid",
];

/// A backup name must be usable as a plain file name in `backups/`, and no
/// file of its schedule may be mistaken for another schedule's: `docs_20200101_000000`
/// would own `docs_20200101_000000.tar`, which is also a history name of
/// `docs`; `x.tar.json` would look like the manifest of `x.tar`.
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
    } else if has_history_suffix(name) {
        "ends like a history archive's time stamp (_YYYYMMDD_HHMMSS); its archives would be taken for another schedule's"
    } else if RESERVED_ENDINGS.iter().any(|ending| name.ends_with(ending)) {
        "ends like one of backupctl's own files (.tar, .tar.gz, .tar.zst, .json, .partial, .tmp, .lock, .log, .pid)"
    } else {
        return Ok(name);
    };
    Err(ScheduleError::BadName {
        name: name.to_string(),
        why,
    })
}

/// True for `…_YYYYMMDD_HHMMSS`, the stamp of a history archive's name.
fn has_history_suffix(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 16
        && bytes[bytes.len() - 16..]
            .iter()
            .enumerate()
            .all(|(i, b)| match i {
                0 | 9 => *b == b'_',
                _ => b.is_ascii_digit(),
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
            (
                "p\tq;07:05;n",
                ScheduleError::ControlChar {
                    field: Field::Path,
                    found: '\t',
                },
            ),
            (
                "p;\n0 0 * * *;n",
                ScheduleError::ControlChar {
                    field: Field::Time,
                    found: '\n',
                },
            ),
            (
                "p;07:05\r;n",
                ScheduleError::ControlChar {
                    field: Field::Time,
                    found: '\r',
                },
            ),
            (
                "p;0 0 * * * ;n",
                ScheduleError::SurroundingSpace { field: Field::Time },
            ),
            (
                " p;07:05;n",
                ScheduleError::SurroundingSpace { field: Field::Path },
            ),
            (
                "p;07:05;n\u{202e}x",
                ScheduleError::ControlChar {
                    field: Field::Name,
                    found: '\u{202e}',
                },
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(Schedule::parse(line).unwrap_err(), expected, "{line}");
        }
    }

    #[test]
    fn a_quoted_semicolon_does_not_split_the_line() {
        let s = Schedule::parse(r#"p;10:00;n;before="a;b",catch-up"#).unwrap();
        assert_eq!(s.options.hooks.before.as_deref(), Some("a;b"));
        assert!(s.options.catch_up);
        // Quotes mean nothing in the first three fields.
        let s = Schedule::parse(r#"p"q;10:00;n"#).unwrap();
        assert_eq!(s.source, r#"p"q"#);
        assert_eq!(
            Schedule::parse(r#"p;10:00;n;before="a";x"#).unwrap_err(),
            ScheduleError::FieldCount { found: 5 }
        );
        assert_eq!(
            Schedule::parse(r#"p;10:00;n;before="a;x"#).unwrap_err(),
            ScheduleError::BadOption(OptionError {
                option: "before".into(),
                why: "has an unterminated quote (a value that starts with \" must end with \")"
                    .into(),
            })
        );
    }

    #[test]
    fn names_must_be_plain_file_names() {
        let long = "x".repeat(201);
        let bad_names = [
            ".",
            "..",
            "a/b",
            "a\nb",
            ".hidden",
            &long,
            // Names whose files another schedule's would be taken for.
            "docs_20200101_000000",
            "x_19991231_235959",
            "a.tar",
            "a.tar.gz",
            "a.tar.zst",
            "x.tar.json",
            "x.partial",
            "x.tmp",
            "x.lock",
            "x.log",
            "x.pid",
        ];
        for bad in bad_names {
            let line = format!("p;10:00;{bad}");
            assert!(
                matches!(Schedule::parse(&line), Err(ScheduleError::BadName { .. })),
                "{bad:?} accepted"
            );
        }
        for good in [
            "ok-name_1.x",
            "docs_2020",
            "docs_20200101",
            "a.tarball",
            "x_2020010_000000",
        ] {
            assert!(
                Schedule::parse(&format!("p;10:00;{good}")).is_ok(),
                "{good}"
            );
        }
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

    fn runs(expr: &str, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let timing = parse_time(expr).unwrap();
        let mut at = from;
        (0..n)
            .map(|_| {
                at = timing.next_after(&at).unwrap();
                at
            })
            .collect()
    }

    fn utc(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        // March 2024: the 4th is a Monday.
        Utc.with_ymd_and_hms(2024, 3, d, h, m, 0).unwrap()
    }

    #[test]
    fn cron_steps_ranges_and_names() {
        assert_eq!(
            runs("*/15 * * * *", utc(4, 10, 7), 3),
            [utc(4, 10, 15), utc(4, 10, 30), utc(4, 10, 45)]
        );
        // Friday 02:30, then the next Monday.
        assert_eq!(
            runs("30 2 * * mon-fri", utc(8, 1, 0), 2),
            [utc(8, 2, 30), utc(11, 2, 30)]
        );
        assert_eq!(
            runs("0 9 1 jan,jul *", utc(4, 0, 0), 1),
            [Utc.with_ymd_and_hms(2024, 7, 1, 9, 0, 0).unwrap()]
        );
        assert_eq!(runs("@hourly", utc(4, 10, 7), 1), [utc(4, 11, 0)]);
        assert_eq!(runs("@daily", utc(4, 10, 7), 1), [utc(5, 0, 0)]);
        // @weekly is Sunday midnight.
        assert_eq!(runs("@weekly", utc(4, 10, 7), 1), [utc(10, 0, 0)]);
        assert_eq!(
            runs("@monthly", utc(4, 10, 7), 1),
            [Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap()]
        );
    }

    #[test]
    fn cron_lines_keep_their_text() {
        let s = Schedule::parse("p;30 2 * * mon-fri;n;catch-up").unwrap();
        assert_eq!(s.timing.to_string(), "30 2 * * mon-fri");
        assert!(s.options.catch_up);
        assert_eq!(
            Schedule::parse("p;07:05;n").unwrap().timing.to_string(),
            "07:05"
        );
    }

    #[test]
    fn bad_cron_expressions_name_the_expression() {
        for bad in [
            "* * * *",
            "* * * * * *",
            "61 * * * *",
            "0 25 * * *",
            "0 0 * * funday",
            "@reboot",
            "@every 5m",
            "0 0 31 2 *",
        ] {
            match Schedule::parse(&format!("p;{bad};n")) {
                Err(ScheduleError::BadCron { expr, .. }) => assert_eq!(expr, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn our_reasons_are_shown_whole_and_croners_cut_short() {
        let message = |line: &str| Schedule::parse(line).unwrap_err().to_string();
        assert_eq!(
            message("p;@reboot;n"),
            "cron expression \"@reboot\" is not valid: the nicknames are @hourly, @daily, @weekly, @monthly and @yearly"
        );
        assert_eq!(
            message("p;* * * *;n"),
            "cron expression \"* * * *\" is not valid: expected five fields (minute hour day-of-month month day-of-week), found 4"
        );
        let croner = message(&format!("p;0 0 * * {};n", "y".repeat(1000)));
        assert!(
            croner.ends_with(
                "is not valid: Pattern contains illegal characters: Cro… (1050 more characters)"
            ),
            "{croner}"
        );
    }

    #[test]
    fn interval_is_the_gap_between_the_last_two_runs() {
        let t = parse_time("0 */6 * * *").unwrap();
        assert_eq!(t.interval_before(&utc(4, 10, 7)), Some(Duration::hours(6)));
        let t = parse_time("30 2 * * mon-fri").unwrap();
        // Monday 10:07: the last two runs were Friday and Monday 02:30.
        assert_eq!(t.interval_before(&utc(4, 10, 7)), Some(Duration::days(3)));
        assert_eq!(t.last_at_or_before(&utc(4, 2, 30)), Some(utc(4, 2, 30)));
    }

    #[test]
    fn cron_in_berlin_across_daylight_saving() {
        use chrono_tz::Europe::Berlin;
        // Spring forward, 2024-03-31: 02:30 does not exist; it runs once, at 03:00.
        let t = parse_time("30 2 * * *").unwrap();
        let eve = Berlin.with_ymd_and_hms(2024, 3, 30, 12, 0, 0).unwrap();
        let first = t.next_after(&eve).unwrap();
        assert_eq!(
            first,
            Berlin.with_ymd_and_hms(2024, 3, 31, 3, 0, 0).unwrap()
        );
        let second = t.next_after(&first).unwrap();
        assert_eq!(
            second,
            Berlin.with_ymd_and_hms(2024, 4, 1, 2, 30, 0).unwrap()
        );
        // Fall back, 2024-10-27: 02:30 happens twice; it runs once.
        let eve = Berlin.with_ymd_and_hms(2024, 10, 26, 12, 0, 0).unwrap();
        let first = t.next_after(&eve).unwrap();
        let second = t.next_after(&first).unwrap();
        assert_eq!(
            first.with_timezone(&Utc),
            Utc.with_ymd_and_hms(2024, 10, 27, 0, 30, 0).unwrap()
        );
        assert_eq!(
            second,
            Berlin.with_ymd_and_hms(2024, 10, 28, 2, 30, 0).unwrap()
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_and_sunday_as_7() {
        // The 1st of April 2024 is a Monday; the 4th of March too.
        let either = runs("0 0 2 * mon", utc(4, 1, 0), 3);
        assert_eq!(
            either,
            [utc(11, 0, 0), utc(18, 0, 0), utc(25, 0, 0)],
            "Mondays in March"
        );
        let first_or_monday = runs("0 0 5 * mon", utc(4, 1, 0), 2);
        assert_eq!(first_or_monday, [utc(5, 0, 0), utc(11, 0, 0)]);
        assert_eq!(runs("0 0 * * 7", utc(4, 1, 0), 1), [utc(10, 0, 0)]);
    }
}
