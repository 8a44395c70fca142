//! A run in progress, as `status` shows it: `backups/.NAME.progress`, a
//! small JSON record (schedule, pid, start, bytes read so far) that the run
//! replaces atomically about once a second while it holds the schedule's
//! lock, and removes when it ends.
//!
//! Why a file of its own rather than the state file: the state file is
//! shared by every schedule and rewritten under a lock, so a write per
//! second from each running schedule would contend with the records of
//! finished runs; and a record in it would outlive a killed run. A file per
//! schedule beside its lock is written by one process only, and whether it
//! is current is told by whether its pid holds the lock (the kernel drops an
//! `flock` when the process dies), so a stale one misleads nobody.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::history::History;
use crate::home::Home;
use crate::primitives;
use crate::store::Schedule;

/// How often a run replaces its progress file.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// What a run in progress publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunProgress {
    pub schedule: String,
    /// The process running it (the service, or a `run`), which holds the
    /// schedule's lock while the run lasts.
    pub pid: i32,
    pub started: DateTime<Utc>,
    /// Bytes of file content read so far.
    pub bytes_read: u64,
}

/// The progress file of `schedule`.
pub fn progress_path(home: &Home, schedule: &Schedule) -> PathBuf {
    History::of(home, schedule).progress_path()
}

/// The progress file of `schedule` as it is now, if there is one that
/// reads; whether its run still goes is for the caller to judge (by the
/// lock).
pub fn read_progress(home: &Home, schedule: &Schedule) -> Option<RunProgress> {
    let text = std::fs::read(progress_path(home, schedule)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Publishes one run's progress until `stop` is dropped, then removes the
/// file. A file that cannot be written is logged once: progress is for
/// show and never fails a run.
pub fn publish_until(
    path: PathBuf,
    mut record: RunProgress,
    bytes_read: &AtomicU64,
    stop: Receiver<()>,
) {
    let mut warned = false;
    loop {
        record.bytes_read = bytes_read.load(Ordering::Relaxed);
        if let Err(error) = write(&path, &record)
            && !warned
        {
            warned = true;
            log::warn!(
                "cannot publish the progress of {} in {}: {error}",
                record.schedule,
                path.display()
            );
        }
        match stop.recv_timeout(PUBLISH_EVERY) {
            Err(RecvTimeoutError::Timeout) => continue,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = std::fs::remove_file(&path);
}

fn write(path: &std::path::Path, record: &RunProgress) -> std::io::Result<()> {
    let text = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    // Readable like the state file `status` also reads.
    primitives::write_atomic(path, &text, 0o600)
}
