//! The process exit codes, in one table. Commands return an [`ExitCode`] (or
//! an error, whose [`crate::error::Error::exit_code`] picks one); `main` turns
//! it into the process's status once. fd's `exit_codes.rs` is the model.
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | success |
//! | 1    | the operation failed: a backup failed, the daemon is not running (`stop`) or already running (`start`), an I/O error |
//! | 2    | the input was refused: a malformed schedule, a bad index or name, a command-line usage error; nothing was changed |
//! | 3    | `run` wrote a valid but partial archive: some files could not be read and were skipped (listed on stderr and in the manifest); `status`: the service is not running (the LSB convention for init scripts, where 0 is running) |
//! | 4    | `run` wrote the archive and kept it locally, but could not copy it to the schedule's remote (`copy-to`); the next run uploads what is missing |
//! | 130, 143 | `run` was stopped by SIGINT (Ctrl-C) or SIGTERM (128 + the signal's number, as shells report it); its partial archive was removed |

/// The table above, for the man page's EXIT STATUS.
pub const TABLE: &[(&str, &str)] = &[
    (
        "0",
        "success (for run: everything archived, or the tree was unchanged under if-changed; for status: the service is running)",
    ),
    (
        "1",
        "the operation failed: a backup failed, the service is not running (stop) or already running (start), verify found a bad archive, check found a problem, an I/O error",
    ),
    (
        "2",
        "the input was refused: a malformed schedule, a bad index or name, a usage error, no home where the command ran; nothing was changed",
    ),
    (
        "3",
        "run wrote a valid but partial archive: some files could not be read and were skipped (listed on stderr and in the manifest); status: the service is not running (LSB)",
    ),
    (
        "130, 143",
        "run was stopped by SIGINT (Ctrl-C) or SIGTERM (128 + the signal's number); its partial archive was removed",
    ),
];

/// How the process ends (see the table above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Success,
    Failure,
    InvalidInput,
    Partial,
    /// `status` of a service that is not running (LSB: 3).
    NotRunning,
    /// `run` stopped by this signal (SIGINT: 2): 128 + its number.
    Interrupted {
        signal: u8,
    },
    /// `run` kept its archive locally but could not copy it (`copy-to`).
    CopyFailed,
}

impl ExitCode {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::Failure => 1,
            ExitCode::InvalidInput => 2,
            ExitCode::Partial | ExitCode::NotRunning => 3,
            ExitCode::Interrupted { signal } => 128 + signal,
            ExitCode::CopyFailed => 4,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        Self::from(code.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_table() {
        let table = [
            (ExitCode::Success, 0),
            (ExitCode::Failure, 1),
            (ExitCode::InvalidInput, 2),
            (ExitCode::Partial, 3),
            (ExitCode::NotRunning, 3),
            (ExitCode::Interrupted { signal: 2 }, 130),
            (ExitCode::Interrupted { signal: 15 }, 143),
            (ExitCode::CopyFailed, 4),
        ];
        for (code, number) in table {
            assert_eq!(code.code(), number, "{code:?}");
        }
    }
}
