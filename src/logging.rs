//! The event log. Set up once per process with [`init`]; nothing else knows the
//! line format, which is the spec's: `[dd/mm/YYYY HH:MM] message`, one event per
//! line (`--log-time iso` stamps it `[2026-11-24T15:36:04+01:00]` instead).
//! Errors and warnings are prefixed `Error:` / `Warning:` as in the spec's
//! `Error: malformed schedule: test;`. A foreground service under systemd
//! writes stderr for journald instead ([`Echo::Journal`]).
//!
//! Log files rotate themselves: when a line would take a log past
//! [`Rotation::max_size`] (10 MiB by default), `x.log` becomes `x.log.1`
//! (`.1` becomes `.2`, …) and only [`Rotation::keep`] old files are kept.
//! Every line is written to the file now at the log's path: a log moved away
//! (by logrotate) or rotated by another process is followed at the next line,
//! and [`reopen`] (SIGHUP) forces a fresh open. A log is never opened
//! through a symlink, and one we create is mode 0640, not world-readable.
//!
//! Why not the `file-rotate` crate: it assumes one writer that owns the file,
//! while here several processes append to one log (the service and each
//! `run`), and logrotate may move it away underneath them. Rotation therefore
//! happens under an `flock` on the file, after checking that the file at the
//! path is still ours, which file-rotate has no place for.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use log::{Level, LevelFilter};

use crate::clock::{self, Clock};
use crate::primitives;

/// Where a process logs to.
pub struct LogTarget<'a> {
    /// The log file, appended to.
    pub file: &'a Path,
    /// Whether and how each line is copied to stderr.
    pub echo: Echo,
    pub rotation: Rotation,
    /// How lines are stamped.
    pub time: LogTime,
}

/// How a log line is stamped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogTime {
    /// `[dd/mm/YYYY HH:MM]`, the original specification's.
    #[default]
    Dmy,
    /// `[2026-11-24T15:36:04+01:00]`: ISO 8601 with seconds and the UTC
    /// offset, which sorts as text and parses anywhere.
    Iso,
}

impl LogTime {
    fn stamp(self, instant: chrono::DateTime<chrono::Utc>) -> String {
        match self {
            LogTime::Dmy => clock::log_stamp(instant),
            LogTime::Iso => clock::iso_stamp(instant),
        }
    }
}

/// Parses `--log-time`: `dmy` or `iso`.
pub fn parse_log_time(text: &str) -> Result<LogTime, String> {
    match text {
        "dmy" => Ok(LogTime::Dmy),
        "iso" => Ok(LogTime::Iso),
        _ => Err(format!(
            "{text:?} is not a log time format: dmy ([dd/mm/YYYY HH:MM]) or iso ([YYYY-mm-ddTHH:MM:SS+hh:mm])"
        )),
    }
}

/// How log lines are copied to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// Not at all: a detached service, the commands.
    Off,
    /// As in the log file: a foreground service on a terminal or in a container.
    Stamped,
    /// For journald (a foreground service under systemd): a syslog priority
    /// (`<3>` error, `<4>` warning, `<6>` info) and no time stamp, so the
    /// journal keeps the level and stamps the line itself.
    Journal,
}

/// True when stderr is the journal stream systemd named in `JOURNAL_STREAM`
/// (`DEVICE:INODE`): the variable is inherited by children whose stderr was
/// redirected elsewhere, so its presence alone is not enough (systemd.exec(5)).
pub fn stderr_is_journal(journal_stream: Option<&std::ffi::OsStr>) -> bool {
    let Some((dev, ino)) = journal_stream
        .and_then(|v| v.to_str())
        .and_then(|v| v.split_once(':'))
    else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    use std::os::fd::AsFd;
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .and_then(|fd| File::from(fd).metadata());
    stderr.is_ok_and(|s| s.dev() == dev && s.ino() == ino)
}

/// When a log file is rotated, and how many old ones are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before a line would take the file past this size; 0 never rotates.
    pub max_size: u64,
    /// Rotated files kept: `x.log.1` (newest) to `x.log.KEEP`.
    pub keep: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            max_size: 10 * 1024 * 1024,
            keep: 3,
        }
    }
}

/// Parses a log size: bytes, or a number with `K`, `M` or `G` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a size such as 10M, 512K or 1048576");
    let upper = text.trim().to_ascii_uppercase();
    let digits = upper.trim_end_matches(['K', 'M', 'G', 'B', 'I']);
    let unit = &upper[digits.len()..];
    let factor: u64 = match unit {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(bad()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(bad)
}

/// Logs name files and sources: readable by the owner's group, not by all.
pub const LOG_MODE: u32 = 0o640;

/// Opens (creating if needed) the log at `path` and closes it again: lets a
/// process find out whether it can log before it depends on it.
pub fn check_writable(path: &Path) -> io::Result<()> {
    primitives::open_append(path, LOG_MODE).map(drop)
}

static REOPEN_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Makes the log file be opened afresh before the next line (SIGHUP).
pub fn reopen() {
    REOPEN_REQUESTED.store(true, Ordering::SeqCst);
}

/// A log file that follows its path and rotates itself. fern writes a line
/// and then flushes; the line is collected and written whole at the flush.
struct LogFile {
    path: PathBuf,
    rotation: Rotation,
    file: Option<File>,
    line: Vec<u8>,
}

impl LogFile {
    fn open(path: &Path, rotation: Rotation) -> io::Result<Self> {
        let mut log = Self {
            path: path.to_path_buf(),
            rotation,
            file: None,
            line: Vec::new(),
        };
        log.file = Some(log.open_path()?);
        Ok(log)
    }

    fn open_path(&self) -> io::Result<File> {
        primitives::open_append(&self.path, LOG_MODE)
    }

    /// True when our file is no longer the one at the path.
    fn moved_away(&self, file: &File) -> bool {
        match (file.metadata(), fs::metadata(&self.path)) {
            (Ok(ours), Ok(theirs)) => ours.ino() != theirs.ino() || ours.dev() != theirs.dev(),
            _ => true,
        }
    }

    fn current(&mut self) -> io::Result<&mut File> {
        let stale = REOPEN_REQUESTED.swap(false, Ordering::SeqCst)
            || self.file.as_ref().is_none_or(|f| self.moved_away(f));
        if stale {
            match self.open_path() {
                Ok(file) => self.file = Some(file),
                // Keep writing where we were rather than lose the line.
                Err(e) if self.file.is_none() => return Err(e),
                Err(_) => {}
            }
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("log file not open"))
    }

    fn write_line(&mut self) -> io::Result<()> {
        let len = self.line.len() as u64;
        let rotation = self.rotation;
        let file = self.current()?;
        let size = file.metadata()?.len();
        if rotation.max_size > 0 && size > 0 && size + len > rotation.max_size {
            self.rotate()?;
        }
        let line = std::mem::take(&mut self.line);
        self.current()?.write_all(&line)
    }

    /// Shifts `x.log` to `x.log.1` and so on, under an flock on the file so
    /// that two processes sharing a log do not both rotate it.
    fn rotate(&mut self) -> io::Result<()> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        file.lock()?;
        if !self.moved_away(&file) {
            let numbered = |n: u32| {
                let mut name = self.path.as_os_str().to_owned();
                name.push(format!(".{n}"));
                PathBuf::from(name)
            };
            if self.rotation.keep == 0 {
                fs::remove_file(&self.path)?;
            } else {
                for n in (1..self.rotation.keep).rev() {
                    match fs::rename(numbered(n), numbered(n + 1)) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                        _ => {}
                    }
                }
                fs::rename(&self.path, numbered(1))?;
            }
        }
        self.file = Some(self.open_path()?);
        Ok(())
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.line.is_empty() {
            return Ok(());
        }
        let result = self.write_line();
        self.line.clear();
        result
    }
}

thread_local! {
    /// The lines this thread logs while [`capture_lines`] runs.
    static CAPTURED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Runs `work` and returns, with its result, the log lines this thread wrote
/// meanwhile, stamped as in the log file (a run's lines, for its ping). Other
/// threads' lines (another schedule's run) are not taken.
pub fn capture_lines<T>(work: impl FnOnce() -> T) -> (T, Vec<String>) {
    let outer = CAPTURED.with(|c| c.replace(Some(Vec::new())));
    let result = work();
    let lines = CAPTURED.with(|c| c.replace(outer)).unwrap_or_default();
    (result, lines)
}

fn capture(record: &log::Record<'_>) {
    CAPTURED.with(|c| {
        if let Some(lines) = c.borrow_mut().as_mut() {
            lines.push(record.args().to_string());
        }
    });
}

/// Installs the global logger. Fails when the log file cannot be opened; the
/// caller reports that on stderr, since there is no log to write it to.
pub fn init(target: LogTarget<'_>, clock: Arc<dyn Clock>) -> std::io::Result<()> {
    let time = target.time;
    let stamped = move || {
        let clock = clock.clone();
        fern::Dispatch::new().format(move |out, message, record| {
            let line = format_line(&time.stamp(clock.now()), record.level(), message);
            out.finish(format_args!("{line}"))
        })
    };
    let file = fern::Output::writer(Box::new(LogFile::open(target.file, target.rotation)?), "\n");
    let mut dispatch = fern::Dispatch::new()
        .level(LevelFilter::Info)
        .chain(stamped().chain(file).chain(fern::Output::call(capture)));
    match target.echo {
        Echo::Off => {}
        Echo::Stamped => dispatch = dispatch.chain(stamped().chain(std::io::stderr())),
        Echo::Journal => {
            let journal = fern::Dispatch::new().format(|out, message, record| {
                out.finish(format_args!("{}", journal_line(record.level(), message)))
            });
            dispatch = dispatch.chain(journal.chain(std::io::stderr()));
        }
    }
    // A second init in one process (only possible in tests) keeps the first logger.
    let _ = dispatch.apply();
    Ok(())
}

/// One log line, without the trailing newline. Newlines and other control
/// characters in the message (a file name can hold them) are escaped, so one
/// event is always one line.
pub fn format_line(stamp: &str, level: Level, message: &std::fmt::Arguments<'_>) -> String {
    format!("[{stamp}] {}", message_text(level, message))
}

/// One line for journald: `<PRIORITY>` (sd-daemon(3)) and the message as the
/// log file has it, without a stamp.
pub fn journal_line(level: Level, message: &std::fmt::Arguments<'_>) -> String {
    let priority = match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    };
    format!("<{priority}>{}", message_text(level, message))
}

fn message_text(level: Level, message: &std::fmt::Arguments<'_>) -> String {
    let prefix = match level {
        Level::Error => "Error: ",
        Level::Warn => "Warning: ",
        _ => "",
    };
    let mut text = String::new();
    let _ = write!(text, "{message}");
    format!("{prefix}{}", primitives::printable(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("10M"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("512k"), Ok(512 * 1024));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        for bad in ["", "M", "1.5M", "-1", "10X", "99999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_log_rotates_keeping_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut log = LogFile::open(
            &path,
            Rotation {
                max_size: 10,
                keep: 2,
            },
        )
        .unwrap();
        for line in ["aaaaaaa\n", "bbbbbbb\n", "ccccccc\n", "ddddddd\n"] {
            log.write_all(line.as_bytes()).unwrap();
            log.flush().unwrap();
        }
        let read =
            |suffix: &str| fs::read_to_string(dir.path().join(format!("x.log{suffix}"))).unwrap();
        assert_eq!(read(""), "ddddddd\n");
        assert_eq!(read(".1"), "ccccccc\n");
        assert_eq!(read(".2"), "bbbbbbb\n");
        assert!(!dir.path().join("x.log.3").exists());
    }

    #[test]
    fn a_log_moved_away_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut log = LogFile::open(&path, Rotation::default()).unwrap();
        log.write_all(b"one\n").unwrap();
        log.flush().unwrap();
        fs::rename(&path, dir.path().join("old.log")).unwrap();
        log.write_all(b"two\n").unwrap();
        log.flush().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two\n");
    }

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
    fn log_time_formats_parse() {
        assert_eq!(parse_log_time("dmy"), Ok(LogTime::Dmy));
        assert_eq!(parse_log_time("iso"), Ok(LogTime::Iso));
        assert!(parse_log_time("ISO8601").is_err());
    }

    #[test]
    fn journal_lines_carry_a_priority_and_no_stamp() {
        let line = |level| journal_line(level, &format_args!("x"));
        assert_eq!(line(Level::Error), "<3>Error: x");
        assert_eq!(line(Level::Warn), "<4>Warning: x");
        assert_eq!(line(Level::Info), "<6>x");
    }

    #[test]
    fn only_a_journal_stream_naming_stderr_counts() {
        use std::ffi::OsStr;
        assert!(!stderr_is_journal(None));
        assert!(!stderr_is_journal(Some(OsStr::new("garbage"))));
        assert!(!stderr_is_journal(Some(OsStr::new("1:1"))));
        if let Ok(stderr) = fs::metadata("/proc/self/fd/2") {
            // fstat(2) of what fd 2 is, as systemd records it.
            let named = format!("{}:{}", stderr.dev(), stderr.ino());
            assert!(stderr_is_journal(Some(OsStr::new(&named))));
        }
    }

    #[test]
    fn control_characters_cannot_split_an_event() {
        let line = format_line("d", Level::Info, &format_args!("a\nb"));
        assert_eq!(line, "[d] a\\nb");
    }
}
