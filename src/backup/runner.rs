//! Writing one archive of a schedule, under its lock: clears what a killed
//! run left behind, skips an unchanged tree when asked to, writes the archive
//! and its manifest, prunes old archives and logs the outcome. The job layer
//! ([`super::job`]) wraps this with the free-space check, hooks and the state
//! record.
//!
//! A run ends in one of three states ([`RunState`]): ok (everything
//! archived), partial (the archive is valid but some files were skipped) or
//! failed (no new archive).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SubsecRound, Utc};

use super::chain;
use super::copy::{self, CopyError, CopyReport};
use super::history::{ArchiveFile, History, NextArchive, NoFreeName, PublishError};
use super::lock::ScheduleLock;
use super::retention::Decision;
use crate::archive::encrypt::{self, KeyError};
use crate::archive::incremental;
use crate::archive::manifest::{Contents, Manifest, SkippedFile};
use crate::archive::{
    self, ArchiveError, ArchiveJob, ArchiveReport, ExcludeError, ExcludedBy, Exclusions, Watch,
};
use crate::clock;
use crate::home::Home;
use crate::model::{Format, Recipient, RunState};
use crate::primitives::{self, MIB, error_chain, human_bytes};
use crate::remote::{Rclone, Starting};
use crate::store::{Schedule, Untrusted};

/// Why a run did not produce an archive.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("backup failed for {schedule_source} (schedule {schedule})")]
    Archive {
        schedule: String,
        schedule_source: String,
        #[source]
        source: ArchiveError,
    },
    #[error("backup failed for {schedule_source} (schedule {schedule})")]
    Publish {
        schedule: String,
        schedule_source: String,
        #[source]
        source: PublishError,
    },
    #[error("backup failed for {schedule_source} (schedule {schedule})")]
    NoFreeName {
        schedule: String,
        schedule_source: String,
        #[source]
        source: NoFreeName,
    },
    #[error("backup failed for {schedule_source} (schedule {schedule})")]
    Excludes {
        schedule: String,
        schedule_source: String,
        // Boxed: it is large and rare, and every run returns this enum.
        #[source]
        source: Box<ExcludeError>,
    },
    #[error("backup failed for {schedule_source} (schedule {schedule})")]
    Recipients {
        schedule: String,
        schedule_source: String,
        // Boxed, like `Excludes`: large and rare.
        #[source]
        source: Box<KeyError>,
    },
    #[error("cannot list the archives of {schedule} in {}", path.display())]
    List {
        schedule: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What the caller hands a run.
#[derive(Clone, Copy)]
pub struct RunRequest<'a> {
    /// The run's time, from the caller's clock: it names history archives and
    /// dates the manifest.
    pub now: DateTime<Utc>,
    pub watch: Watch<'a>,
    /// Whether the schedule file may be trusted with hooks, pings and
    /// copies (`store::trust`).
    pub trusted: &'a Result<(), Untrusted>,
}

/// A run that wrote an archive.
#[derive(Debug)]
pub struct Finished {
    pub archive: PathBuf,
    pub report: ArchiveReport,
    /// `Ok` or `Partial`.
    pub state: RunState,
    /// Archives deleted by retention after this one was in place.
    pub pruned: Vec<PathBuf>,
    /// The copy to the schedule's remote (`copy-to`), when it has one.
    pub copy: Option<Result<CopyReport, CopyError>>,
}

/// What a run did. One per run, never in a collection: the size difference
/// between the variants costs nothing worth a box.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum RunOutcome {
    Finished(Finished),
    /// `if-changed`, and the tree matches the fingerprint of this archive.
    /// The copy still runs: the remote catches up with what it missed.
    Unchanged {
        since: ArchiveFile,
        copy: Option<Result<CopyReport, CopyError>>,
    },
}

impl RunOutcome {
    /// The copy to the schedule's remote, when it has one.
    pub fn copy(&self) -> Option<&Result<CopyReport, CopyError>> {
        match self {
            RunOutcome::Finished(finished) => finished.copy.as_ref(),
            RunOutcome::Unchanged { copy, .. } => copy.as_ref(),
        }
    }
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
    /// What the schedule's `exclude*` rules leave out, and which rule.
    pub excluded: Vec<(PathBuf, ExcludedBy)>,
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
        Err(error) => log::error!("{}", error_chain(error)),
    }
    outcome
}

fn run_locked(
    home: &Home,
    schedule: &Schedule,
    request: &RunRequest<'_>,
) -> Result<RunOutcome, RunError> {
    let history = History::of(home, schedule);
    // Under the lock, these can only be leftovers of a killed run.
    match history.clear_leftovers() {
        Ok(removed) => {
            for path in removed {
                log::warn!(
                    "removed {} left by an interrupted run of {}",
                    home.display_path(&path),
                    schedule.name
                );
            }
        }
        Err(e) => log::warn!(
            "cannot clear what an interrupted run of {} left in {}: {e}",
            schedule.name,
            home.display_path(history.dir())
        ),
    }
    let source = home.resolve_source(&schedule.source);
    let exclude = exclusions(home, schedule, &source)?;
    let also = extra_sources(home, schedule)?;
    let early = early_rclone(schedule, request);
    if schedule.options.if_changed
        && let Some(since) = unchanged_since(&history, schedule, (&source, &exclude), &also)
    {
        let copy = copy_to_remote(&history, schedule, request, &[], early);
        return Ok(RunOutcome::Unchanged { since, copy });
    }
    let recipients = recipients(home, schedule)?;
    let NextArchive { path: archive, .. } = next_archive(&history, schedule, request.now)?;
    let archive_error = |source| RunError::Archive {
        schedule: schedule.name.clone(),
        schedule_source: schedule.source.clone(),
        source,
    };
    let (file, temp) = primitives::create_temporary(&history.temp_base(), "partial", 0o600)
        .map_err(|source| {
            archive_error(ArchiveError::Write {
                path: archive.clone(),
                source,
            })
        })?;
    let temp = TempFile(Some(temp));
    let job = ArchiveJob {
        source: &source,
        destination: &archive,
        format: schedule.options.format,
        level: schedule.options.effective_level(),
        exclude: &exclude,
        also: &also,
        xattrs: !schedule.options.no_xattrs,
        watch: request.watch,
        encrypt_to: &recipients,
    };
    let link = chain::next_link(&history, schedule, &source);
    let (report, chain) = match &link {
        None => (
            archive::write_archive(&job, file).map_err(archive_error)?,
            None,
        ),
        Some(link) => {
            let (report, files) = write_link(&history, &job, file, link).map_err(archive_error)?;
            (report, Some(link.record(files)))
        }
    };
    if !report.left_out.is_empty() {
        let shown: Vec<String> = report
            .left_out
            .iter()
            .map(|p| home.display_path(p))
            .collect();
        log::info!(
            "{}: left out of the archive (backupctl's own files, pseudo-filesystems): {}",
            schedule.name,
            shown.join(", ")
        );
    }
    let mut state = if report.skipped.is_empty() {
        RunState::Ok
    } else {
        RunState::Partial
    };
    let mut manifest = manifest_for(schedule, &archive, &report, state, request.now);
    manifest.chain = chain;
    history
        .publish(temp.path(), &archive, manifest)
        .map_err(|source| RunError::Publish {
            schedule: schedule.name.clone(),
            schedule_source: schedule.source.clone(),
            source,
        })?;
    temp.keep();
    // Pruning only ever follows a new archive that is in place with its
    // manifest; a failed run returned above.
    let pruned = if history.keeps_history() {
        prune(home, schedule, &history, request.now, &archive)
    } else {
        Vec::new()
    };
    // The copy follows the archive, its manifest and the local pruning: a
    // failed copy never undoes the local archive.
    let copy = copy_to_remote(&history, schedule, request, &pruned, early);
    if matches!(copy, Some(Err(_))) {
        state = RunState::CopyFailed;
    }
    Ok(RunOutcome::Finished(Finished {
        archive,
        report,
        state,
        pruned,
        copy,
    }))
}

/// The home's files no source may archive, should it contain the home:
/// archives (which would double at every run), logs, the state file, locks
/// and the pidfile.
fn own_files(home: &Home) -> Vec<PathBuf> {
    vec![
        home.backups_dir(),
        home.logs_dir(),
        home.state_file(),
        home.state_lock(),
        home.schedules_lock(),
        home.pidfile(),
    ]
}

/// What the walk of `source` leaves out: the home's own files,
/// pseudo-filesystems and the schedule's `exclude*` rules.
fn exclusions(home: &Home, schedule: &Schedule, source: &Path) -> Result<Exclusions, RunError> {
    let rules = &schedule.options.excludes;
    let from_files: Vec<(String, PathBuf)> = rules
        .from_files
        .iter()
        .map(|typed| (typed.clone(), home.resolve_source(typed)))
        .collect();
    Exclusions::for_source(source, &own_files(home))
        .with_rules(rules, source, &from_files)
        .map_err(|source| RunError::Excludes {
            schedule: schedule.name.clone(),
            schedule_source: schedule.source.clone(),
            source: Box::new(source),
        })
}

/// Writes an archive of an incremental chain and moves its file state into
/// place beside it (before the archive and its manifest are published, so
/// a published link always has its state; a state whose archive never came
/// is a leftover [`History::clear_leftovers`] removes).
fn write_link(
    history: &History,
    job: &ArchiveJob<'_>,
    file: fs::File,
    link: &chain::NextLink,
) -> Result<(ArchiveReport, Contents), ArchiveError> {
    let write_error = |source| ArchiveError::Write {
        path: job.destination.to_path_buf(),
        source,
    };
    let (state, temp) = primitives::create_temporary(&history.temp_base(), "partial", 0o600)
        .map_err(write_error)?;
    let temp = TempFile(Some(temp));
    let input = incremental::ChainInput {
        parent_state: link.parent_state.as_deref(),
        forced: &link.forced,
        state,
        state_path: temp.path(),
    };
    let (report, written) = incremental::write_incremental(job, file, input)?;
    let state_path = incremental::state_path(job.destination);
    fs::rename(temp.path(), &state_path)
        .and_then(|()| primitives::sync_parent_dir(&state_path))
        .map_err(write_error)?;
    temp.keep();
    Ok((
        report,
        Contents {
            archive_size: written.size,
            sha256: written.sha256,
        },
    ))
}

/// Everyone the schedule's archives are encrypted to: its `encrypt-to`
/// recipients and those of its `encrypt-to-file` files, read now.
fn recipients(home: &Home, schedule: &Schedule) -> Result<Vec<Recipient>, RunError> {
    let mut all = schedule.options.encrypt_to.clone();
    for file in &schedule.options.encrypt_to_files {
        let listed =
            encrypt::read_recipients_file(&home.resolve_source(file)).map_err(|source| {
                RunError::Recipients {
                    schedule: schedule.name.clone(),
                    schedule_source: schedule.source.clone(),
                    source: Box::new(source),
                }
            })?;
        all.extend(listed);
    }
    Ok(all)
}

/// The rclone of the schedule's copy (`copy-to`), started now so that it
/// listens by the time the archive is written (its start is most of what a
/// copy costs beyond the transfer). `None` when there is no copy, when it
/// will be refused, or when rclone does not start: the copy then starts
/// its own, and reports what goes wrong.
fn early_rclone<'a>(schedule: &Schedule, request: &RunRequest<'a>) -> Option<Starting<'a>> {
    schedule.options.copy_to.as_ref()?;
    request.trusted.as_ref().ok()?;
    Rclone::find()
        .ok()?
        .stopped_by(request.watch.abort)
        .start_session()
        .ok()
}

/// Brings the schedule's remote (`copy-to`) up to date, if it has one.
fn copy_to_remote(
    history: &History,
    schedule: &Schedule,
    request: &RunRequest<'_>,
    pruned: &[PathBuf],
    early: Option<Starting<'_>>,
) -> Option<Result<CopyReport, CopyError>> {
    schedule.options.copy_to.as_ref().map(|target| {
        // Like hooks and pings: the copy spends the service user's
        // credentials (its rclone configuration) to write and delete on a
        // remote, and carries what that user could read; only the service's
        // user may choose where.
        if let Err(untrusted) = request.trusted {
            return Err(copy::refused(target, untrusted.clone()));
        }
        copy::sync(
            history,
            target,
            schedule.options.remote_keep,
            pruned,
            request.now,
            request.watch.abort,
            early,
        )
    })
}

/// The schedule's `also=` sources, resolved, each with its exclusions.
fn extra_sources(home: &Home, schedule: &Schedule) -> Result<Vec<(PathBuf, Exclusions)>, RunError> {
    let mut also = Vec::new();
    for typed in &schedule.options.also {
        let source = home.resolve_source(typed);
        let exclude = exclusions(home, schedule, &source)?;
        also.push((source, exclude));
    }
    Ok(also)
}

/// Removes the temporary archive when dropped, unless it was published.
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(path);
        }
    }
}

fn next_archive(
    history: &History,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<NextArchive, RunError> {
    history
        .next_archive(now)
        .map_err(|source| RunError::NoFreeName {
            schedule: schedule.name.clone(),
            schedule_source: schedule.source.clone(),
            source,
        })
}

/// What a run at `now` would do, changing nothing: no lock, no archive, no
/// deletion. A failure is logged, as for a real run.
pub fn plan_run(home: &Home, schedule: &Schedule, now: DateTime<Utc>) -> Result<DryRun, RunError> {
    let plan = plan_unlogged(home, schedule, now);
    if let Err(error) = &plan {
        log::error!("{}", error_chain(error));
    }
    plan
}

fn plan_unlogged(home: &Home, schedule: &Schedule, now: DateTime<Utc>) -> Result<DryRun, RunError> {
    let history = History::of(home, schedule);
    let source = home.resolve_source(&schedule.source);
    let exclude = exclusions(home, schedule, &source)?;
    let also = extra_sources(home, schedule)?;
    let unchanged_since = if schedule.options.if_changed {
        unchanged_since(&history, schedule, (&source, &exclude), &also).map(|a| a.path)
    } else {
        None
    };
    let next = next_archive(&history, schedule, now)?;
    let decisions = if next.stamp.is_some() && unchanged_since.is_none() {
        // Retention judges the archives as they would be after the run.
        let mut decisions = history
            .prune_plan(now, Some(&next), Some(&next.path))
            .map_err(|source| RunError::List {
                schedule: schedule.name.clone(),
                path: history.dir().to_path_buf(),
                source,
            })?;
        // The run's own archive has no manifest yet to name its parent.
        if let Some(parent) = chain::next_link(&history, schedule, &source).and_then(|l| l.parent) {
            let mut parents = chain::parents_of(&decisions);
            parents.insert(next.path.clone(), history.dir().join(parent.archive));
            chain::keep_parents(&mut decisions, &parents);
        }
        decisions
    } else {
        Vec::new()
    };
    let excluded = if exclude.has_rules() && archive::check_source(&source).is_ok() {
        archive::list_excluded(&source, &exclude)
    } else {
        Vec::new()
    };
    Ok(DryRun {
        excluded,
        archive: next.path,
        format: schedule.options.format,
        level: schedule.options.effective_level(),
        unchanged_since,
        decisions,
    })
}

/// About how many bytes a run of `schedule` will read (see
/// [`archive::tree_bytes`]), for a progress bar; `None` when its source or
/// exclude rules cannot be read (the run will say why).
pub fn estimate_bytes(home: &Home, schedule: &Schedule) -> Option<u64> {
    let source = home.resolve_source(&schedule.source);
    let exclude = exclusions(home, schedule, &source).ok()?;
    archive::check_source(&source).ok()?;
    Some(archive::tree_bytes(&source, &exclude))
}

/// Applies retention to the schedule's archives. A failure here does not undo
/// the good archive just written: it is logged, and the next run retries.
fn prune(
    home: &Home,
    schedule: &Schedule,
    history: &History,
    now: DateTime<Utc>,
    written: &Path,
) -> Vec<PathBuf> {
    let deleted = history
        .prune_plan(now, None, Some(written))
        .and_then(|decisions| {
            for future in decisions.iter().filter(|d| d.reasons.iter().any(|r| r == "future")) {
                log::warn!(
                    "{} is dated after this run's clock ({}): kept, and left out of the age rules; was the clock wrong when it was written?",
                    home.display_path(&future.path),
                    clock::to_local(now).format("%d/%m/%Y %H:%M:%S")
                );
            }
            history.prune(&decisions)
        });
    match deleted {
        Ok(deleted) => deleted,
        Err(error) => {
            log::warn!(
                "retention of {} not applied in {}: {}",
                schedule.name,
                home.display_path(history.dir()),
                error_chain(&error)
            );
            Vec::new()
        }
    }
}

/// The newest archive whose manifest records a complete run of the same
/// source with the tree's current fingerprint. An archive without a manifest,
/// or a partial one, never counts: the run goes ahead.
fn unchanged_since(
    history: &History,
    schedule: &Schedule,
    main: (&Path, &Exclusions),
    also: &[(PathBuf, Exclusions)],
) -> Option<ArchiveFile> {
    let (archive, manifest) = history.newest_current()?;
    let comparable = manifest.state == RunState::Ok
        && manifest.source == schedule.source
        && manifest.also == schedule.options.also;
    let mut sources = vec![main];
    sources.extend(also.iter().map(|(path, exclude)| (path.as_path(), exclude)));
    if !comparable
        || sources
            .iter()
            .any(|(s, _)| archive::check_source(s).is_err())
    {
        return None;
    }
    let current = archive::fingerprint_sources(&sources);
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
        also: schedule.options.also.clone(),
        archive: archive
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        created: clock::to_local(now).trunc_subsecs(0),
        format: schedule.options.format,
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
        state,
        duration_seconds: report.duration.as_secs_f64(),
        backupctl_version: env!("CARGO_PKG_VERSION").to_string(),
        fingerprint: report.fingerprint.clone(),
        excluded: report.excluded,
        previous: None,
        chain: None,
        plaintext_sha256: report.plaintext_sha256.clone(),
        remote_copy: None,
    }
}

/// Every line about a run names its schedule, since two schedules may back
/// up one source. A line that names the run's archive does it through the
/// archive's file name, which starts with the schedule's name
/// (`backups/backup_test.tar`, `backups/docs_20250101_023000.tar.gz`): the
/// original specification's `Backup done for test in backups/backup_test.tar`
/// stays as it is. A line without an archive, or with one not so named, says
/// `(schedule NAME)` after the source.
fn schedule_note(schedule: &Schedule, archive: &Path) -> String {
    let file = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let named = file
        .strip_prefix(schedule.name.as_str())
        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('_'));
    if named {
        String::new()
    } else {
        format!(" (schedule {})", schedule.name)
    }
}

fn log_outcome(home: &Home, schedule: &Schedule, outcome: &RunOutcome) {
    if let Some(Err(error)) = outcome.copy() {
        log::error!(
            "Backup copy failed for {} (schedule {}): its archives are kept locally: {}",
            schedule.source,
            schedule.name,
            error_chain(error)
        );
    }
    let finished = match outcome {
        RunOutcome::Unchanged { since, .. } => {
            log::info!(
                "Backup skipped for {}{}: unchanged since {}",
                schedule.source,
                schedule_note(schedule, &since.path),
                home.display_path(&since.path)
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
    let note = schedule_note(schedule, &finished.archive);
    if finished.state == RunState::Partial {
        log::info!(
            "Backup partial for {}{note} in {archive} ({} files skipped; {})",
            schedule.source,
            report.skipped.len(),
            summary(report)
        );
    } else {
        log::info!(
            "Backup done for {}{note} in {archive} ({})",
            schedule.source,
            summary(report)
        );
    }
    for pruned in &finished.pruned {
        log::info!("Pruned {} (retention)", home.display_path(pruned));
    }
}

/// `12 files, 3.4 MiB in, archive 1.1 MiB, ratio 3.09, 0.21 s, 15.5 MiB/s`.
/// The ratio is bytes in per archive byte; MiB/s is bytes in per second, in the same binary units as the sizes.
pub fn summary(report: &ArchiveReport) -> String {
    let seconds = report.duration.as_secs_f64();
    let ratio = if report.archive_size == 0 {
        0.0
    } else {
        report.bytes_read as f64 / report.archive_size as f64
    };
    let speed = if seconds > 0.0 {
        report.bytes_read as f64 / seconds / MIB
    } else {
        0.0
    };
    let mut text = format!(
        "{} {}, {} in, archive {}, ratio {ratio:.2}, {seconds:.2} s, {speed:.1} MiB/s",
        report.files,
        if report.files == 1 { "file" } else { "files" },
        human_bytes(report.bytes_read),
        human_bytes(report.archive_size),
    );
    if report.excluded > 0 {
        text.push_str(&format!(", {} excluded", report.excluded));
    }
    if report.sockets_ignored > 0 {
        text.push_str(&format!(", {} sockets left out", report.sockets_ignored));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
            "3 files, 3.8 MiB in, archive 976.6 KiB, ratio 4.00, 2.00 s, 1.9 MiB/s"
        );
    }

    fn history_schedule(name: &str) -> Schedule {
        Schedule::parse(&format!("src;10:00;{name};keep-last=2")).unwrap()
    }

    #[test]
    fn an_archive_named_after_its_schedule_names_it_in_the_log() {
        let schedule = history_schedule("docs");
        let note = |file: &str| schedule_note(&schedule, Path::new(file));
        assert_eq!(note("backups/docs.tar"), "");
        assert_eq!(note("backups/docs_20250101_023000.tar.gz"), "");
        assert_eq!(note("backups/docsy.tar"), " (schedule docs)");
        assert_eq!(note("backups/other.tar"), " (schedule docs)");
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
        assert_eq!(manifest.state, RunState::Partial);
        assert_eq!(manifest.skipped[0].reason, "vanished while the backup ran");
    }
}
