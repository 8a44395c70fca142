//! The run state, `.backupctl-state.json` in the home: for each schedule, its
//! last run (when, how it ended, which archive) and its last successful run.
//! `status`, `check` and the daemon's catch-up read it; every run updates it.
//! The service also notes the minute it last fired each schedule for, so a
//! restart within that minute does not fire it again.
//!
//! Like the schedule store, it is never modified in place: a writer takes an
//! exclusive lock on `.backupctl-state.lock`, reads the file, writes a
//! temporary copy, syncs it and renames it over the original. Readers need no
//! lock. The file is hidden, so the home's listing stays as the spec shows it.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::file_error::FileError;
use crate::model::RemoteCopy;
pub use crate::model::RunState;
use crate::primitives;

/// One run of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// When the run started.
    #[serde(with = "rfc3339")]
    pub started: DateTime<Utc>,
    /// When it ended.
    #[serde(with = "rfc3339")]
    pub finished: DateTime<Utc>,
    pub state: RunState,
    /// The archive written, relative to the home; `None` when it failed.
    pub archive: Option<String>,
    /// The archive's size in bytes.
    pub size: Option<u64>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// How many files a `partial` run skipped (0 for `ok`); `None` for a
    /// failed run, and in files written before this was recorded.
    #[serde(default)]
    pub skipped: Option<u64>,
    /// With `copy-to`: the copy of the newest archive on the remote and
    /// when it was checked there (the run's own archive, or, after a failed
    /// copy, none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_copy: Option<RemoteCopy>,
}

/// What is known about one schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    pub last_run: Option<RunRecord>,
    /// The last run that wrote an archive (`ok` or `partial`).
    pub last_success: Option<RunRecord>,
    /// The last minute (its start, UTC) the service fired this schedule
    /// for. Absent in files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fired: Option<DateTime<Utc>>,
}

/// The whole file: schedules by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStates {
    pub version: u32,
    pub schedules: BTreeMap<String, ScheduleState>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Io(#[from] FileError),
    #[error("state file {} is not valid", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The state file and its lock.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
    lock_path: PathBuf,
}

impl StateFile {
    pub fn new(path: PathBuf, lock_path: PathBuf) -> Self {
        Self { path, lock_path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The recorded states; a missing file means nothing has run yet.
    pub fn load(&self) -> Result<RunStates, StateError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(RunStates::default()),
            Err(source) => {
                return Err(FileError::new("read state file", &self.path, source).into());
            }
        };
        serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
            path: self.path.clone(),
            source,
        })
    }

    /// Records a finished run of `name`. A corrupt file is replaced (and the
    /// caller told), since the archives themselves are still the truth.
    pub fn record(&self, name: &str, run: RunRecord) -> Result<(), StateError> {
        self.update(|states| {
            let entry = states.schedules.entry(name.to_string()).or_default();
            if run.state.produced_archive() {
                entry.last_success = Some(run.clone());
            }
            entry.last_run = Some(run);
        })
    }

    /// Notes that the service fired each of `names` for `minute`.
    pub fn record_fired(&self, names: &[String], minute: DateTime<Utc>) -> Result<(), StateError> {
        self.update(|states| {
            for name in names {
                states.schedules.entry(name.clone()).or_default().last_fired = Some(minute);
            }
        })
    }

    /// Changes the file under its lock: read, `change`, write atomically.
    fn update(&self, change: impl FnOnce(&mut RunStates)) -> Result<(), StateError> {
        let io = |action, path: &Path| {
            let on = FileError::on(action, path);
            move |source| StateError::Io(on(source))
        };
        let lock = primitives::open_lock_file(&self.lock_path)
            .map_err(io("open lock file", &self.lock_path))?;
        lock.lock().map_err(io("lock", &self.lock_path))?;
        let mut states = match self.load() {
            Ok(states) => states,
            Err(error @ StateError::Corrupt { .. }) => {
                log::warn!("{}; starting a new one", primitives::error_chain(&error));
                RunStates::default()
            }
            Err(error) => return Err(error),
        };
        states.version = 1;
        change(&mut states);
        let mut text =
            serde_json::to_vec_pretty(&states).map_err(|source| StateError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        text.push(b'\n');
        primitives::write_atomic(&self.path, &text, 0o600).map_err(|source| {
            StateError::Io(FileError::new("write state file", &self.path, source))
        })
    }
}

/// Times are stored as RFC 3339 text, in UTC, to the millisecond (so a
/// run's duration can be read back; files from before hold whole seconds).
mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn record(state: RunState, hour: u32) -> RunRecord {
        let t = Utc.with_ymd_and_hms(2025, 1, 2, hour, 0, 0).unwrap();
        RunRecord {
            started: t,
            finished: t,
            state,
            archive: state.produced_archive().then(|| "backups/a.tar".into()),
            size: Some(10),
            error: None,
            skipped: Some(0),
            remote_copy: None,
        }
    }

    #[test]
    fn a_failure_keeps_the_last_success() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"), dir.path().join(".s.lock"));
        assert_eq!(file.load().unwrap(), RunStates::default());
        file.record("a", record(RunState::Ok, 1)).unwrap();
        file.record("a", record(RunState::Failed, 2)).unwrap();
        let states = file.load().unwrap();
        let a = &states.schedules["a"];
        assert_eq!(a.last_run.as_ref().unwrap().state, RunState::Failed);
        assert_eq!(a.last_success, Some(record(RunState::Ok, 1)));
    }

    #[test]
    fn fired_minutes_are_kept_and_old_files_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"), dir.path().join(".s.lock"));
        fs::write(
            file.path(),
            r#"{"version":1,"schedules":{"a":{"last_run":null,"last_success":null}}}"#,
        )
        .unwrap();
        assert_eq!(file.load().unwrap().schedules["a"].last_fired, None);
        let minute = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 0).unwrap();
        file.record_fired(&["a".into(), "b".into()], minute)
            .unwrap();
        file.record("a", record(RunState::Ok, 1)).unwrap();
        let states = file.load().unwrap();
        assert_eq!(states.schedules["a"].last_fired, Some(minute));
        assert_eq!(states.schedules["b"].last_fired, Some(minute));
        assert!(states.schedules["a"].last_run.is_some());
    }

    #[test]
    fn a_corrupt_file_is_reported_and_then_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"), dir.path().join(".s.lock"));
        fs::write(file.path(), "{not json").unwrap();
        assert!(matches!(file.load(), Err(StateError::Corrupt { .. })));
        file.record("b", record(RunState::Partial, 3)).unwrap();
        assert!(file.load().unwrap().schedules["b"].last_success.is_some());
    }
}
