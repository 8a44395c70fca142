//! The top-level error and the exit codes, in one table:
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | success |
//! | 1    | the operation failed: a backup failed, the daemon is not running (`stop`) or already running (`start`), an I/O error |
//! | 2    | the input was refused: a malformed schedule, a bad index or name, a command-line usage error; nothing was changed |
//! | 3    | `run` wrote a valid but partial archive: some files could not be read and were skipped (listed on stderr and in the manifest) |

use std::io;
use std::path::PathBuf;

use crate::archive::restore::RestoreError;
use crate::backup::{JobError, LockError, RunError};
use crate::daemon::DaemonError;
use crate::file_error::FileError;
use crate::store::StoreError;

pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_INVALID_INPUT: u8 = 2;
pub const EXIT_PARTIAL: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Io(#[from] FileError),
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io(FileError::new(action, path, source))
    }

    /// The process exit code for this error (see the table above).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Store(e) if e.is_input_error() => EXIT_INVALID_INPUT,
            Error::Invalid(_) => EXIT_INVALID_INPUT,
            Error::Restore(e) if e.is_input_error() => EXIT_INVALID_INPUT,
            _ => EXIT_FAILURE,
        }
    }
}
