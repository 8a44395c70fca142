//! Backing up one schedule: shared by the service loop and `run` (through
//! `daemon::job`). Runs under the schedule's lock ([`lock_schedule`]), so the
//! same schedule never runs twice at once; clears what a killed run left behind, skips an unchanged tree when
//! asked to, writes the archive and its manifest, prunes old archives and
//! logs the outcome.
//!
//! A run ends in one of three states: ok (everything archived), partial (the
//! archive is valid but some files were skipped) or failed (no new archive).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Local, NaiveDateTime, SecondsFormat, TimeDelta, Utc};

use crate::archive::manifest::{self, Manifest, SkippedFile};
use crate::archive::naming::{self, archive_file_name};
use crate::archive::retention::{self, Decision};
use crate::archive::{self, ArchiveError, ArchiveJob, ArchiveReport, Watch};
use crate::home::Home;
use crate::store::{Format, Schedule};

/// How far past its own second a history run looks for a free name.
const MAX_STAMP_SHIFT: i64 = 3600;

/// Why a run did not produce an archive.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("backup failed for {schedule_source}: {source}")]
    Archive {
        schedule_source: String,
        #[source]
        source: ArchiveError,
    },
    #[error(
        "backup failed for {schedule_source}: cannot write the manifest {}: {source}",
        path.display()
    )]
    Manifest {
        schedule_source: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("backup failed for {schedule_source}: no free archive name near {stamp} in {}", dir.display())]
    NoFreeName {
        schedule_source: String,
        dir: PathBuf,
        stamp: NaiveDateTime,
    },
    #[error("backup of {name} skipped: another run of it is in progress")]
    Busy { name: String },
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot list {}: {source}", path.display())]
    List {
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

/// What the caller hands a run.
#[derive(Clone, Copy)]
pub struct RunRequest<'a> {
    /// The run's time, from the caller's clock: it names history archives and
    /// dates the manifest.
    pub now: DateTime<Utc>,
    pub watch: Watch<'a>,
}

/// How a run that wrote an archive ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Every entry was archived.
    Ok,
    /// The archive is valid, but some files are missing or inconsistent.
    Partial,
}

impl RunState {
    /// The manifest's `state` field.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Ok => "ok",
            RunState::Partial => "partial",
        }
    }
}

/// A run that wrote an archive.
#[derive(Debug)]
pub struct Finished {
    pub archive: PathBuf,
    pub report: ArchiveReport,
    pub state: RunState,
    /// Archives deleted by retention after this one was in place.
    pub pruned: Vec<PathBuf>,
}

/// What a run did.
#[derive(Debug)]
pub enum RunOutcome {
    Finished(Finished),
    /// `if-changed`, and the tree matches the fingerprint of this archive.
    Unchanged {
        since: PathBuf,
    },
}

/// What `run --dry-run` reports, without changing anything.
#[derive(Debug)]
pub struct DryRun {
    pub archive: PathBuf,
    pub format: Format,
    pub level: Option<i32>,
    /// Set when `if-changed` would skip the run.
    pub unchanged_since: Option<PathBuf>,
    /// Retention's verdict on the archives as they would be after the run.
    pub decisions: Vec<Decision>,
}

/// The fixed files of one schedule inside `backups/`.
pub struct ScheduleFiles {
    pub dir: PathBuf,
    pub temp: PathBuf,
    pub lock: PathBuf,
}

impl ScheduleFiles {
    pub fn new(home: &Home, schedule: &Schedule) -> Self {
        let dir = home.backups_dir();
        let name = &schedule.name;
        Self {
            temp: dir.join(format!(".{name}.partial")),
            lock: dir.join(format!(".{name}.lock")),
            dir,
        }
    }

    /// The archive a run at `now` writes: `<name>.<ext>` (replaced) without
    /// retention, else `<name>_YYYYMMDD_HHMMSS.<ext>` in local time. When
    /// that stamp is taken (two runs within one second, or the hour that
    /// repeats when clocks go back) the next free second is used: a run never
    /// replaces another run's archive, and is never refused for it.
    fn archive_for_run(
        &self,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Result<(PathBuf, Option<NaiveDateTime>), RunError> {
        let options = &schedule.options;
        if !options.keeps_history() {
            let name = archive_file_name(&schedule.name, options.format, None);
            return Ok((self.dir.join(name), None));
        }
        let wanted = now.with_timezone(&Local).naive_local();
        let stamp = (0..MAX_STAMP_SHIFT)
            .map(|shift| wanted + TimeDelta::seconds(shift))
            .find(|stamp| !self.stamp_taken(schedule, *stamp))
            .ok_or_else(|| RunError::NoFreeName {
                schedule_source: schedule.source.clone(),
                dir: self.dir.clone(),
                stamp: wanted,
            })?;
        let name = archive_file_name(&schedule.name, options.format, Some(stamp));
        Ok((self.dir.join(name), Some(stamp)))
    }

    /// Any archive or manifest of this schedule with this stamp, any format.
    fn stamp_taken(&self, schedule: &Schedule, stamp: NaiveDateTime) -> bool {
        [Format::Tar, Format::TarGz, Format::TarZst]
            .into_iter()
            .map(|format| {
                self.dir
                    .join(archive_file_name(&schedule.name, format, Some(stamp)))
            })
            .any(|path| {
                path.symlink_metadata().is_ok()
                    || manifest::manifest_path(&path).symlink_metadata().is_ok()
            })
    }
}

/// Backs up `schedule` now and logs the outcome, good or bad. The lock
/// argument is the proof that the caller holds the schedule's lock.
pub fn run_schedule(
    home: &Home,
    schedule: &Schedule,
    request: &RunRequest<'_>,
    _lock: &ScheduleLock,
) -> Result<RunOutcome, RunError> {
    let outcome = run_locked(home, schedule, request);
    match &outcome {
        Ok(outcome) => log_outcome(home, schedule, outcome),
        Err(error) => log::error!("{error}"),
    }
    outcome
}

fn run_locked(
    home: &Home,
    schedule: &Schedule,
    request: &RunRequest<'_>,
) -> Result<RunOutcome, RunError> {
    let files = ScheduleFiles::new(home, schedule);
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
    if schedule.options.if_changed
        && let Some(since) = unchanged_since(&files.dir, schedule, &source)
    {
        return Ok(RunOutcome::Unchanged { since });
    }
    let (archive, _) = files.archive_for_run(schedule, request.now)?;
    let job = ArchiveJob {
        source: &source,
        destination: &archive,
        temp: &files.temp,
        format: schedule.options.format,
        level: schedule.options.effective_level(),
        watch: request.watch,
    };
    let report = archive::write_archive(&job).map_err(|source| RunError::Archive {
        schedule_source: schedule.source.clone(),
        source,
    })?;
    let state = if report.skipped.is_empty() {
        RunState::Ok
    } else {
        RunState::Partial
    };
    let manifest = manifest_for(schedule, &archive, &report, state, request.now);
    manifest::write_manifest(&archive, &manifest).map_err(|source| RunError::Manifest {
        schedule_source: schedule.source.clone(),
        path: manifest::manifest_path(&archive),
        source,
    })?;
    // Pruning only ever follows a new archive that is in place with its
    // manifest; a failed run returned above.
    let pruned = if schedule.options.keeps_history() {
        prune(home, &files.dir, schedule)
    } else {
        Vec::new()
    };
    Ok(RunOutcome::Finished(Finished {
        archive,
        report,
        state,
        pruned,
    }))
}

/// What a run at `now` would do, changing nothing: no lock, no archive, no
/// deletion. A failure is logged, as for a real run.
pub fn plan_run(home: &Home, schedule: &Schedule, now: DateTime<Utc>) -> Result<DryRun, RunError> {
    let plan = plan_unlogged(home, schedule, now);
    if let Err(error) = &plan {
        log::error!("{error}");
    }
    plan
}

fn plan_unlogged(home: &Home, schedule: &Schedule, now: DateTime<Utc>) -> Result<DryRun, RunError> {
    let files = ScheduleFiles::new(home, schedule);
    let source = home.resolve_source(&schedule.source);
    let unchanged_since = if schedule.options.if_changed {
        unchanged_since(&files.dir, schedule, &source)
    } else {
        None
    };
    let (archive, stamp) = files.archive_for_run(schedule, now)?;
    let decisions = match stamp {
        // Retention judges the archives as they would be after the run.
        Some(stamp) if unchanged_since.is_none() => {
            let mut stamped = stamped_archives(&files.dir, schedule)?;
            stamped.push((archive.clone(), stamp));
            retention::plan(&stamped, &schedule.options.retention)
        }
        _ => Vec::new(),
    };
    Ok(DryRun {
        archive,
        format: schedule.options.format,
        level: schedule.options.effective_level(),
        unchanged_since,
        decisions,
    })
}

/// The schedule's timestamped archives, for retention.
fn stamped_archives(
    dir: &Path,
    schedule: &Schedule,
) -> Result<Vec<(PathBuf, NaiveDateTime)>, RunError> {
    let archives =
        naming::schedule_archives(dir, &schedule.name).map_err(|source| RunError::List {
            path: dir.to_path_buf(),
            source,
        })?;
    Ok(archives
        .into_iter()
        .filter_map(|a| a.stamp.map(|stamp| (a.path, stamp)))
        .collect())
}

/// Applies retention to the schedule's archives. A failure here does not undo
/// the good archive just written: it is logged, and the next run retries.
fn prune(home: &Home, dir: &Path, schedule: &Schedule) -> Vec<PathBuf> {
    let deleted = stamped_archives(dir, schedule)
        .map(|stamped| retention::plan(&stamped, &schedule.options.retention))
        .map_err(|e| e.to_string())
        .and_then(|decisions| retention::apply(&decisions).map_err(|e| e.to_string()));
    match deleted {
        Ok(deleted) => deleted,
        Err(error) => {
            log::warn!(
                "retention for {} not applied: {error}",
                home.display_path(dir)
            );
            Vec::new()
        }
    }
}

/// The schedule's newest archive in its current format and naming mode, with
/// its manifest, if it has one.
pub fn newest_manifest(home: &Home, schedule: &Schedule) -> Option<(PathBuf, Manifest)> {
    newest_manifest_in(&home.backups_dir(), schedule)
}

fn newest_manifest_in(dir: &Path, schedule: &Schedule) -> Option<(PathBuf, Manifest)> {
    let options = &schedule.options;
    let archives = naming::schedule_archives(dir, &schedule.name).ok()?;
    let newest = archives
        .into_iter()
        .rfind(|a| a.format == options.format && a.stamp.is_some() == options.keeps_history())?;
    let manifest = manifest::read_manifest(&newest.path).ok()?;
    Some((newest.path, manifest))
}

/// The newest archive whose manifest records a complete run of the same
/// source with the tree's current fingerprint. An archive without a manifest,
/// or a partial one, never counts: the run goes ahead.
fn unchanged_since(dir: &Path, schedule: &Schedule, source: &Path) -> Option<PathBuf> {
    let (archive, manifest) = newest_manifest_in(dir, schedule)?;
    let comparable = manifest.state == RunState::Ok.as_str() && manifest.source == schedule.source;
    if !comparable || archive::check_source(source).is_err() {
        return None;
    }
    let current = archive::fingerprint_tree(source);
    (current == manifest.fingerprint).then_some(archive)
}

fn manifest_for(
    schedule: &Schedule,
    archive: &Path,
    report: &ArchiveReport,
    state: RunState,
    now: DateTime<Utc>,
) -> Manifest {
    Manifest {
        schedule: schedule.name.clone(),
        source: schedule.source.clone(),
        archive: archive
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        created: now
            .with_timezone(&Local)
            .to_rfc3339_opts(SecondsFormat::Secs, false),
        format: schedule.options.format.extension().to_string(),
        level: schedule.options.effective_level(),
        archive_size: report.archive_size,
        sha256: report.sha256.clone(),
        entries: report.entries,
        bytes_read: report.bytes_read,
        skipped: report
            .skipped
            .iter()
            .map(|s| SkippedFile {
                path: s.path.to_string_lossy().into_owned(),
                reason: s.reason.clone(),
            })
            .collect(),
        state: state.as_str().to_string(),
        duration_seconds: report.duration.as_secs_f64(),
        backupctl_version: env!("CARGO_PKG_VERSION").to_string(),
        fingerprint: report.fingerprint.clone(),
    }
}

/// A held schedule lock (`backups/.NAME.lock`), released when dropped. It is
/// an `flock`: the kernel drops it when the process dies, so it never goes
/// stale. Runs, hooks and `prune` of one schedule all happen under it.
#[derive(Debug)]
pub struct ScheduleLock {
    _file: File,
}

/// Takes the lock of `schedule`, waiting or not when another run holds it.
pub fn lock_schedule(
    home: &Home,
    schedule: &Schedule,
    when_busy: WhenBusy,
) -> Result<ScheduleLock, RunError> {
    let path = ScheduleFiles::new(home, schedule).lock;
    let lock_error = |source| RunError::Lock {
        path: path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(lock_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) if when_busy == WhenBusy::Wait => {
            log::info!("waiting for another run of {} to finish", schedule.name);
            file.lock().map_err(lock_error)?;
        }
        Err(fs::TryLockError::WouldBlock) => {
            return Err(RunError::Busy {
                name: schedule.name.clone(),
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(lock_error(e)),
    }
    Ok(ScheduleLock { _file: file })
}

fn log_outcome(home: &Home, schedule: &Schedule, outcome: &RunOutcome) {
    let finished = match outcome {
        RunOutcome::Unchanged { since } => {
            log::info!(
                "Backup skipped for {}: unchanged since {}",
                schedule.source,
                home.display_path(since)
            );
            return;
        }
        RunOutcome::Finished(finished) => finished,
    };
    let report = &finished.report;
    for skipped in &report.skipped {
        log::warn!(
            "{}: {} ({})",
            schedule.name,
            skipped.path.display(),
            skipped.reason
        );
    }
    let archive = home.display_path(&finished.archive);
    match finished.state {
        RunState::Ok => log::info!(
            "Backup done for {} in {archive} ({})",
            schedule.source,
            summary(report)
        ),
        RunState::Partial => log::info!(
            "Backup partial for {} in {archive} ({} files skipped; {})",
            schedule.source,
            report.skipped.len(),
            summary(report)
        ),
    }
    for pruned in &finished.pruned {
        log::info!("Pruned {} (retention)", home.display_path(pruned));
    }
}

/// `12 files, 3.4 MiB in, archive 1.1 MiB, ratio 3.09, 0.21 s, 16.2 MB/s`.
/// The ratio is bytes in per archive byte; MB/s is bytes in per second.
pub fn summary(report: &ArchiveReport) -> String {
    let seconds = report.duration.as_secs_f64();
    let ratio = if report.archive_size == 0 {
        0.0
    } else {
        report.bytes_read as f64 / report.archive_size as f64
    };
    let speed = if seconds > 0.0 {
        report.bytes_read as f64 / seconds / 1e6
    } else {
        0.0
    };
    let mut text = format!(
        "{} {}, {} in, archive {}, ratio {ratio:.2}, {seconds:.2} s, {speed:.1} MB/s",
        report.files,
        if report.files == 1 { "file" } else { "files" },
        human_bytes(report.bytes_read),
        human_bytes(report.archive_size),
    );
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
    use std::time::Duration;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }

    #[test]
    fn the_summary_gives_files_sizes_ratio_and_speed() {
        let report = ArchiveReport {
            files: 3,
            bytes_read: 4_000_000,
            archive_size: 1_000_000,
            duration: Duration::from_secs(2),
            ..ArchiveReport::default()
        };
        assert_eq!(
            summary(&report),
            "3 files, 3.8 MiB in, archive 976.6 KiB, ratio 4.00, 2.00 s, 2.0 MB/s"
        );
    }

    fn history_schedule(name: &str) -> Schedule {
        Schedule::parse(&format!("src;10:00;{name};keep-last=2")).unwrap()
    }

    #[test]
    fn a_taken_second_moves_the_stamp_to_the_next_free_one() {
        let dir = tempfile::tempdir().unwrap();
        let files = ScheduleFiles {
            dir: dir.path().to_path_buf(),
            temp: dir.path().join(".n.partial"),
            lock: dir.path().join(".n.lock"),
        };
        let schedule = history_schedule("n");
        let now = Utc::now();
        let (first, first_stamp) = files.archive_for_run(&schedule, now).unwrap();
        fs::write(&first, b"").unwrap();
        let (second, second_stamp) = files.archive_for_run(&schedule, now).unwrap();
        assert_ne!(first, second);
        assert_eq!(
            second_stamp.unwrap() - first_stamp.unwrap(),
            TimeDelta::seconds(1)
        );
    }

    #[test]
    fn a_partial_run_is_recorded_as_partial() {
        let dir = tempfile::tempdir().unwrap();
        let report = ArchiveReport {
            skipped: vec![archive::Skipped {
                path: dir.path().join("gone"),
                reason: "vanished while the backup ran".into(),
            }],
            ..ArchiveReport::default()
        };
        let schedule = history_schedule("n");
        let manifest = manifest_for(
            &schedule,
            &dir.path().join("n_20250101_000000.tar"),
            &report,
            RunState::Partial,
            Utc::now(),
        );
        assert_eq!(manifest.state, "partial");
        assert_eq!(manifest.skipped[0].reason, "vanished while the backup ran");
    }
}
