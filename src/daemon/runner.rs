//! Backing up one schedule: shared by the service loop and `run`. Holds the
//! schedule's lock for the whole run, so the same schedule never runs twice at
//! once, clears what a killed run left behind, writes the archive and logs the
//! outcome.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use crate::archive::{self, ArchiveError, ArchiveJob, ArchiveReport};
use crate::home::Home;
use crate::store::Schedule;

/// Why a run did not produce an archive.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("backup of {name} failed: {source}")]
    Archive {
        name: String,
        #[source]
        source: ArchiveError,
    },
    #[error("backup of {name} skipped: another run of it is in progress")]
    Busy { name: String },
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Whether to wait for a run of the same schedule that is already going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenBusy {
    Wait,
    Skip,
}

/// The files of one schedule inside `backups/`.
pub struct ScheduleFiles {
    pub archive: PathBuf,
    pub temp: PathBuf,
    pub lock: PathBuf,
}

impl ScheduleFiles {
    pub fn new(home: &Home, schedule: &Schedule) -> Self {
        let dir = home.backups_dir();
        let name = &schedule.name;
        Self {
            archive: dir.join(format!("{name}.tar")),
            temp: dir.join(format!(".{name}.partial")),
            lock: dir.join(format!(".{name}.lock")),
        }
    }
}

/// Backs up `schedule` now and logs the outcome, good or bad.
pub fn run_schedule(
    home: &Home,
    schedule: &Schedule,
    when_busy: WhenBusy,
    abort: &AtomicBool,
) -> Result<ArchiveReport, RunError> {
    let outcome = run_locked(home, schedule, when_busy, abort);
    match &outcome {
        Ok(report) => log_success(home, schedule, report),
        Err(error) => log::error!("{error}"),
    }
    outcome
}

fn run_locked(
    home: &Home,
    schedule: &Schedule,
    when_busy: WhenBusy,
    abort: &AtomicBool,
) -> Result<ArchiveReport, RunError> {
    let files = ScheduleFiles::new(home, schedule);
    let _lock = lock_schedule(&files, schedule, when_busy)?;
    // Under the lock, a temporary file can only be a leftover of a killed run.
    match fs::remove_file(&files.temp) {
        Ok(()) => log::warn!(
            "removed {} left by an interrupted run",
            home.display_path(&files.temp)
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("cannot remove {}: {e}", home.display_path(&files.temp)),
    }
    let source = home.resolve_source(&schedule.source);
    let job = ArchiveJob {
        source: &source,
        destination: &files.archive,
        temp: &files.temp,
        abort,
    };
    archive::write_archive(&job).map_err(|source| RunError::Archive {
        name: schedule.name.clone(),
        source,
    })
}

fn lock_schedule(
    files: &ScheduleFiles,
    schedule: &Schedule,
    when_busy: WhenBusy,
) -> Result<File, RunError> {
    let lock_error = |source| RunError::Lock {
        path: files.lock.clone(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&files.lock)
        .map_err(lock_error)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) if when_busy == WhenBusy::Wait => {
            log::info!("waiting for another run of {} to finish", schedule.name);
            file.lock().map_err(lock_error)?;
            Ok(file)
        }
        Err(fs::TryLockError::WouldBlock) => Err(RunError::Busy {
            name: schedule.name.clone(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(lock_error(e)),
    }
}

fn log_success(home: &Home, schedule: &Schedule, report: &ArchiveReport) {
    let files = ScheduleFiles::new(home, schedule);
    for skipped in &report.skipped {
        log::warn!(
            "{}: {} ({})",
            schedule.name,
            skipped.path.display(),
            skipped.reason
        );
    }
    log::info!(
        "Backup done for {} in {} ({})",
        schedule.source,
        home.display_path(&files.archive),
        summary(report)
    );
}

/// `12 entries, 3.4 MiB read, archive 3.5 MiB, 0.21 s`, plus skipped files.
pub fn summary(report: &ArchiveReport) -> String {
    let mut text = format!(
        "{} {}, {} read, archive {}, {:.2} s",
        report.entries,
        if report.entries == 1 {
            "entry"
        } else {
            "entries"
        },
        human_bytes(report.bytes_read),
        human_bytes(report.archive_size),
        report.duration.as_secs_f64()
    );
    if !report.skipped.is_empty() {
        text.push_str(&format!(", {} files skipped", report.skipped.len()));
    }
    if report.sockets_ignored > 0 {
        text.push_str(&format!(", {} sockets left out", report.sockets_ignored));
    }
    text
}

/// Sizes as people read them: `512 B`, `3.4 KiB`, `12.0 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
