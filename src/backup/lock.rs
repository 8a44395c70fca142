//! A schedule's lock, `backups/.NAME.lock`: runs, hooks and `prune` of one
//! schedule all happen under it, so the same schedule never runs twice at
//! once (the daemon's run and a `run`, or two `run`s). It is an `flock`: the
//! kernel drops it when the process dies, so it never goes stale.

use std::fs::{self, File};
use std::io;
use std::path::PathBuf;

use super::history::History;
use crate::home::Home;
use crate::primitives;
use crate::store::Schedule;

/// Whether to wait for a run of the same schedule that is already going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenBusy {
    Wait,
    Skip,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("backup of {name} skipped: another run of it is in progress")]
    Busy { name: String },
    #[error("cannot lock {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A held schedule lock, released when dropped.
#[derive(Debug)]
pub struct ScheduleLock {
    _file: File,
}

/// Takes the lock of `schedule`, waiting or not when another run holds it.
pub fn lock_schedule(
    home: &Home,
    schedule: &Schedule,
    when_busy: WhenBusy,
) -> Result<ScheduleLock, LockError> {
    let path = History::of(home, schedule).lock_path();
    let lock_error = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let file = primitives::open_lock_file(&path).map_err(lock_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) if when_busy == WhenBusy::Wait => {
            log::info!("waiting for another run of {} to finish", schedule.name);
            file.lock().map_err(lock_error)?;
        }
        Err(fs::TryLockError::WouldBlock) => {
            return Err(LockError::Busy {
                name: schedule.name.clone(),
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(lock_error(e)),
    }
    Ok(ScheduleLock { _file: file })
}
