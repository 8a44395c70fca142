//! The top-level error: every failure a command can end with, each variant
//! keeping the value it is about and the underlying error. A `Display` says
//! what went wrong at its own level and leaves the cause to `source()`; the
//! one printer (`cli::report_error`) walks the chain onto one line. The exit
//! code of each error comes from [`Error::exit_code`] (table in
//! [`crate::exit_codes`]).

use std::io;
use std::path::PathBuf;

use crate::archive::listing::{self, ListingError};
use crate::archive::restore::RestoreError;
use crate::backup::{JobError, LockError, RunError};
use crate::daemon::DaemonError;
use crate::exit_codes::ExitCode;
use crate::file_error::FileError;
use crate::primitives::quote;
use crate::store::{ScheduleError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Asking about or signalling the daemon (`start`, `stop`, `status`).
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The service itself failed (`daemon`, `backup_service`); it logs its
    /// own errors once its log is open.
    #[error(transparent)]
    Service(DaemonError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    Listing(#[from] ListingError),
    #[error(transparent)]
    Job(#[from] JobError),
    /// `run` stopped by a signal (Ctrl-C): the job says what it abandoned.
    #[error("interrupted by {name}")]
    Interrupted {
        name: &'static str,
        number: u8,
        #[source]
        source: Box<JobError>,
    },
    /// A schedule's lock could not be taken (`prune`).
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Io(#[from] FileError),
    /// The remote of `copy-to` (or rclone itself).
    #[error(transparent)]
    Remote(#[from] crate::remote::RemoteError),
    /// A recipients or identity file that cannot be used.
    #[error(transparent)]
    Key(#[from] crate::archive::encrypt::KeyError),
    /// The command line was refused; `message` names the bad input.
    #[error("{message} (see --help)")]
    Usage { message: String },
    #[error(transparent)]
    BadFakeNow(#[from] crate::clock::BadFakeNow),
    /// A command that needs a home was run where there is none.
    #[error("{}", not_a_home(dir, system.as_deref(), *named))]
    NotAHome {
        dir: PathBuf,
        /// Whether `--home` or `BACKUPCTL_HOME` named `dir`.
        named: bool,
        /// The system home, also looked at when nothing was named.
        system: Option<PathBuf>,
    },
    #[error("cannot find the current directory")]
    CurrentDir(#[source] io::Error),
    #[error("cannot write JSON to stdout")]
    Json(#[source] serde_json::Error),
    /// `next EXPR` with an expression that is not a schedule time.
    #[error(transparent)]
    BadTime(ScheduleError),
    #[error("name the archives or schedules to verify, or give --all")]
    NothingToVerify,
    #[error(
        "no archive or schedule named \"{}\" (looked in backups/ and at that path)",
        quote(target)
    )]
    NoVerifyTarget { target: String },
    #[error(
        "schedule \"{}\" has no archives in backups/ to verify",
        quote(schedule)
    )]
    NoArchivesToVerify { schedule: String },
    #[error(
        "no archive or schedule \"{}\" in backups/ or at that path",
        quote(archive)
    )]
    NoSuchArchive { archive: String },
    /// `--remote` for a name that is no schedule with `copy-to`.
    #[error("no schedule named \"{}\" with copy-to=REMOTE:PATH", quote(name))]
    NoRemote { name: String },
    #[error(
        "the manifest of the copy \"{}\" cannot be read: {why}",
        quote(location)
    )]
    RemoteManifest { location: String, why: String },
    /// `--at` for a schedule without an archive taken by then.
    #[error(
        "schedule \"{}\" has no archive taken at or before {at}",
        quote(schedule)
    )]
    NoArchiveAt { schedule: String, at: String },
    /// `backups NAME` for a name that is no schedule and owns no archive.
    #[error(
        "no schedule named \"{}\", nor archives of one in backups/",
        quote(name)
    )]
    NoArchivesOwner { name: String },
    #[error(
        "schedule \"{}\" has no retention rules (keep-last=N, keep-daily=N, …): prune has nothing to do",
        quote(schedule)
    )]
    NoRetention { schedule: String },
}

/// `"/srv" is not a backupctl home (no backup_schedules.txt); …`: what was
/// looked at, and how to name a home.
fn not_a_home(dir: &std::path::Path, system: Option<&std::path::Path>, named: bool) -> String {
    let shown = |path: &std::path::Path| quote(&path.display().to_string());
    let place = if named {
        format!("\"{}\" is not a backupctl home", shown(dir))
    } else {
        let mut place = format!(
            "the current directory \"{}\" is not a backupctl home",
            shown(dir)
        );
        if let Some(system) = system {
            place.push_str(&format!(", nor is \"{}\"", shown(system)));
        }
        place
    };
    format!(
        "{place} (no backup_schedules.txt); name one with --home DIR or BACKUPCTL_HOME=DIR, or start one with create"
    )
}

impl Error {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io(FileError::new(action, path, source))
    }

    /// The process exit code for this error (table in [`crate::exit_codes`]).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Store(e) if e.is_input_error() => ExitCode::InvalidInput,
            Error::Restore(e) if e.is_input_error() => ExitCode::InvalidInput,
            Error::Remote(crate::remote::RemoteError::NotInstalled) => ExitCode::InvalidInput,
            Error::Listing(listing::ListingError::UnknownFormat { .. }) => ExitCode::InvalidInput,
            Error::Usage { .. }
            | Error::BadFakeNow(_)
            | Error::BadTime(_)
            | Error::NothingToVerify
            | Error::NoVerifyTarget { .. }
            | Error::NoArchivesToVerify { .. }
            | Error::NoSuchArchive { .. }
            | Error::NoRemote { .. }
            | Error::NoArchiveAt { .. }
            | Error::NoArchivesOwner { .. }
            | Error::NoRetention { .. }
            | Error::Key(_)
            | Error::NotAHome { .. } => ExitCode::InvalidInput,
            Error::Store(_)
            | Error::Daemon(_)
            | Error::Service(_)
            | Error::Run(_)
            | Error::Restore(_)
            | Error::Listing(_)
            | Error::Job(_)
            | Error::Lock(_)
            | Error::Io(_)
            | Error::Remote(_)
            | Error::RemoteManifest { .. }
            | Error::CurrentDir(_)
            | Error::Json(_) => ExitCode::Failure,
            Error::Interrupted { number, .. } => ExitCode::Interrupted { signal: *number },
        }
    }

    /// True for the errors of a backup run and of the service: the pipeline
    /// that met them has logged them already, with their context (which
    /// schedule, which archive). Every other error is logged once, by the cli.
    pub fn logged_by_pipeline(&self) -> bool {
        matches!(
            self,
            Error::Run(_) | Error::Job(_) | Error::Service(_) | Error::Interrupted { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_input_exits_2_and_failures_exit_1() {
        let usage = Error::Usage {
            message: "unrecognized subcommand 'x'".into(),
        };
        assert_eq!(usage.exit_code(), ExitCode::InvalidInput);
        assert_eq!(Error::NothingToVerify.exit_code(), ExitCode::InvalidInput);
        let io = Error::io("read", "f", io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(io.exit_code(), ExitCode::Failure);
        assert_eq!(
            Error::Daemon(DaemonError::NotRunning).exit_code(),
            ExitCode::Failure
        );
    }

    #[test]
    fn untrusted_names_are_quoted_on_one_line() {
        let error = Error::NoSuchArchive {
            archive: "a\nb".into(),
        };
        assert_eq!(
            error.to_string(),
            "no archive or schedule \"a\\nb\" in backups/ or at that path"
        );
    }
}
