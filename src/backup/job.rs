//! One backup job, as the service and `run` both start it: everything around
//! the runner's archive writing. Under the schedule's lock it checks the
//! free space, runs the `before` hook, backs up, runs the `after` or
//! `on-failure` hook and records the outcome in the state file. Every outcome
//! is logged here (or by the runner), once: callers never log a job's error.
//!
//! The schedule's lock ([`super::lock_schedule`]) is taken before any hook
//! runs, so two runs of one schedule never overlap, hooks included.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;

use chrono::{DateTime, Utc};

use super::copy::{CopyError, CopyReport};
use super::history::History;
use super::hooks::{self, HookEnv, HookError, HookKind};
use super::lock::{self, LockError, ScheduleLock, WhenBusy};
use super::ping;
use super::progress::{self, RunProgress};
use super::runner::{self, RunError, RunOutcome, RunRequest};
use crate::archive::Watch;
use crate::clock::Clock;
use crate::exit_codes::ExitCode;
use crate::home::Home;
use crate::model::RunState;
use crate::primitives::{self, error_chain, human_bytes};
use crate::store::{RunRecord, Schedule, StateFile, Store, Untrusted};

/// Why a job did not produce an archive.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("backup of {name} skipped")]
    BeforeHook {
        name: String,
        #[source]
        source: HookError,
    },
    #[error(
        "backup of {name} refused: only {} free on the backups filesystem, less than its last archive ({})",
        human_bytes(*free), human_bytes(*needed)
    )]
    NoSpace {
        name: String,
        free: u64,
        needed: u64,
    },
    #[error("backup of {name} not started: cannot check the free space of {}", path.display())]
    Statvfs {
        name: String,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

impl JobError {
    /// A run skipped because another run of the schedule holds its lock:
    /// not a failure, nothing is recorded.
    pub fn is_busy(&self) -> bool {
        matches!(self, JobError::Lock(LockError::Busy { .. }))
    }
}

/// Runs one backup of `schedule` with its hooks and pings, and records the
/// outcome.
/// Every outcome is logged; the error is returned for `run`'s exit status.
pub fn run_job(
    home: &Home,
    clock: &dyn Clock,
    schedule: &Schedule,
    when_busy: WhenBusy,
    watch: Watch<'_>,
) -> Result<RunOutcome, JobError> {
    let lock = match lock::lock_schedule(home, schedule, when_busy) {
        Ok(lock) => lock,
        Err(error) => {
            log::warn!("{}", error_chain(&error));
            return Err(error.into());
        }
    };
    // Checked under the lock, just before any hook of this run.
    let trusted = Store::new(home.schedules_file(), home.schedules_lock()).hooks_trusted();
    let pinger = ping::pinger(schedule, &trusted);
    ping::around(
        pinger.as_ref(),
        || run_locked(home, clock, schedule, watch, &lock, &trusted),
        ending_of,
    )
}

/// The run of [`run_job`] once it holds the lock: the backup, its hooks and
/// the state record.
fn run_locked(
    home: &Home,
    clock: &dyn Clock,
    schedule: &Schedule,
    watch: Watch<'_>,
    lock: &ScheduleLock,
    trusted: &Result<(), Untrusted>,
) -> Result<RunOutcome, JobError> {
    let started = clock.now();
    let outcome = backup_publishing_progress(home, clock, schedule, watch, lock, trusted);
    if let Err(error) = &outcome
        && !matches!(error, JobError::Run(_))
    {
        // The runner logs its own failures; these are ours.
        log::error!("{}", error_chain(error));
    }
    let record = record_of(home, &outcome, started, clock.now());
    after_hooks(home, schedule, &outcome, &record, trusted);
    let state = StateFile::new(home.state_file(), home.state_lock());
    if let Err(error) = state.record(&schedule.name, record) {
        log::error!(
            "run of {} not recorded: {}",
            schedule.name,
            error_chain(&error)
        );
    }
    outcome
}

/// What a run's end ping reports: its exit code as `run` gives it.
fn ending_of(outcome: &Result<RunOutcome, JobError>) -> ping::Ending {
    match outcome {
        Ok(RunOutcome::Finished(run)) if run.state == RunState::Partial => {
            ping::Ending::Failure(ExitCode::Partial.code())
        }
        Ok(_) => ping::Ending::Success,
        Err(_) => ping::Ending::Failure(ExitCode::Failure.code()),
    }
}

/// [`backup`], with its progress published for `status` while it runs
/// (`progress.rs`).
fn backup_publishing_progress(
    home: &Home,
    clock: &dyn Clock,
    schedule: &Schedule,
    watch: Watch<'_>,
    lock: &ScheduleLock,
    trusted: &Result<(), Untrusted>,
) -> Result<RunOutcome, JobError> {
    let own_counter = AtomicU64::new(0);
    let bytes_read = watch.progress.unwrap_or(&own_counter);
    let watch = Watch {
        progress: Some(bytes_read),
        ..watch
    };
    let record = RunProgress {
        schedule: schedule.name.clone(),
        pid: std::process::id() as i32,
        started: clock.now(),
        bytes_read: 0,
    };
    let path = progress::progress_path(home, schedule);
    History::of(home, schedule).clear_progress_leftovers();
    std::thread::scope(|scope| {
        let (stop, stopped) = mpsc::channel::<()>();
        scope.spawn(move || progress::publish_until(path, record, bytes_read, stopped));
        let outcome = backup(home, clock, schedule, watch, lock, trusted);
        drop(stop);
        outcome
    })
}

fn backup(
    home: &Home,
    clock: &dyn Clock,
    schedule: &Schedule,
    watch: Watch<'_>,
    lock: &ScheduleLock,
    trusted: &Result<(), Untrusted>,
) -> Result<RunOutcome, JobError> {
    check_free_space(home, schedule)?;
    let env = HookEnv {
        state: "running".into(),
        ..base_env(home, schedule)
    };
    // A refused before hook fails the run like a failing one: the backup
    // must not go ahead as if the hook had prepared it.
    hooks::run_hook(HookKind::Before, schedule, home.root(), &env, trusted).map_err(|source| {
        JobError::BeforeHook {
            name: schedule.name.clone(),
            source,
        }
    })?;
    // Stamped after the hook: the archive is named for when it was taken.
    let request = RunRequest {
        now: clock.now(),
        watch,
        trusted,
    };
    Ok(runner::run_schedule(home, schedule, &request, lock)?)
}

fn after_hooks(
    home: &Home,
    schedule: &Schedule,
    outcome: &Result<RunOutcome, JobError>,
    record: &RunRecord,
    trusted: &Result<(), Untrusted>,
) {
    let mut env = HookEnv {
        state: record.state.as_str().into(),
        archive: record
            .archive
            .as_deref()
            .map(|a| home.root().join(a).display().to_string())
            .unwrap_or_default(),
        size: record.size.map(|s| s.to_string()).unwrap_or_default(),
        duration: format!("{:.3}", (record.finished - record.started).as_seconds_f64()),
        ..base_env(home, schedule)
    };
    let kind = match outcome {
        Ok(_) if record.state == RunState::CopyFailed => {
            env.error = record.error.clone().unwrap_or_default();
            HookKind::OnFailure
        }
        Ok(RunOutcome::Finished(finished)) => {
            env.duration = format!("{:.3}", finished.report.duration.as_secs_f64());
            HookKind::After
        }
        Ok(RunOutcome::Unchanged { .. }) => {
            env.state = "unchanged".into();
            HookKind::After
        }
        Err(error) => {
            env.error = error_chain(error);
            HookKind::OnFailure
        }
    };
    if let Err(error) = hooks::run_hook(kind, schedule, home.root(), &env, trusted) {
        log::error!("{}", error_chain(&error));
    }
}

fn base_env(home: &Home, schedule: &Schedule) -> HookEnv {
    HookEnv {
        schedule: schedule.name.clone(),
        source: home.resolve_source(&schedule.source).display().to_string(),
        ..HookEnv::default()
    }
}

/// What the state file keeps of a run. An unchanged tree under `if-changed`
/// is a success: its last archive is still current.
fn record_of(
    home: &Home,
    outcome: &Result<RunOutcome, JobError>,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
) -> RunRecord {
    let success = |state, archive: &std::path::Path, size, skipped| RunRecord {
        started,
        finished,
        state,
        archive: Some(home.display_path(archive)),
        size,
        error: None,
        skipped: Some(skipped),
        remote_copy: None,
    };
    match outcome {
        Ok(RunOutcome::Finished(run)) => {
            let mut record = success(
                run.state,
                &run.archive,
                Some(run.report.archive_size),
                run.report.skipped.len() as u64,
            );
            record_copy(&mut record, run.copy.as_ref());
            record
        }
        Ok(RunOutcome::Unchanged { since, copy }) => {
            let mut record = success(RunState::Ok, &since.path, Some(since.size), 0);
            record_copy(&mut record, copy.as_ref());
            record
        }
        Err(error) => RunRecord {
            started,
            finished,
            state: RunState::Failed,
            archive: None,
            size: None,
            error: Some(error_chain(error)),
            skipped: None,
            remote_copy: None,
        },
    }
}

/// Notes the copy to the remote in `record`: where the newest copy is, or
/// why the copy failed (the run is then `copy-failed`).
fn record_copy(record: &mut RunRecord, copy: Option<&Result<CopyReport, CopyError>>) {
    match copy {
        Some(Ok(copy)) => record.remote_copy = copy.newest.clone(),
        Some(Err(error)) => {
            record.state = RunState::CopyFailed;
            record.error = Some(error_chain(error));
        }
        None => {}
    }
}

/// Refuses a run when the backups filesystem has less free space than the
/// schedule's last archive: the new one would most likely not fit.
fn check_free_space(home: &Home, schedule: &Schedule) -> Result<(), JobError> {
    let Ok(Some(newest)) = History::of(home, schedule).newest() else {
        return Ok(());
    };
    let needed = newest.size;
    let dir = home.backups_dir();
    let free = primitives::free_space(&dir).map_err(|source| JobError::Statvfs {
        name: schedule.name.clone(),
        path: dir.clone(),
        source,
    })?;
    enough_space(free, needed)
        .then_some(())
        .ok_or(JobError::NoSpace {
            name: schedule.name.clone(),
            free,
            needed,
        })
}

fn enough_space(free: u64, needed: u64) -> bool {
    free >= needed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_must_hold_the_last_archive() {
        assert!(enough_space(100, 100));
        assert!(!enough_space(99, 100));
    }
}
