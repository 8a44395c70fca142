//! The second stage of parsing (ripgrep's `HiArgs`): what the command line
//! and the environment mean for every command, resolved once. The home
//! directory, the clock, the time zone, where the event log goes and whether
//! stdout and stderr are terminals are read here and nowhere else in `cli`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Command, GlobalArgs, Personality};
use crate::clock::{self, Clock};
use crate::error::Error;
use crate::home::Home;
use crate::logging::{self, LogTarget, Rotation};
use crate::store::Store;

/// What every subcommand gets.
pub struct Context {
    /// The name messages start with (`backup_manager: …`).
    pub program: &'static str,
    /// Where the schedules, archives, logs and pidfile live.
    pub home: Home,
    /// The schedule file of [`Context::home`].
    pub store: Store,
    /// What time it is (`BACKUPCTL_FAKE_NOW` may start it elsewhere).
    pub clock: Arc<dyn Clock>,
    /// The time zone schedules run in and times are shown in.
    pub zone: chrono::Local,
    /// Where this command's event log goes.
    pub log: LogPlan,
    /// Whether stdout is a terminal.
    pub stdout_is_terminal: bool,
    /// Whether stderr is a terminal (`run` draws its progress bar there).
    pub stderr_is_terminal: bool,
}

/// A log file and how it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub path: PathBuf,
    /// Copy each line to stderr as well (the foreground service).
    pub echo_to_stderr: bool,
    pub rotation: Rotation,
}

impl LogFile {
    /// The target [`logging::init`] takes.
    pub fn target(&self) -> LogTarget<'_> {
        LogTarget {
            file: &self.path,
            echo_to_stderr: self.echo_to_stderr,
            rotation: self.rotation,
        }
    }
}

/// Where a command's event log goes, and who opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogPlan {
    /// Nothing is logged: `completions` and `man` touch no file.
    Nowhere,
    /// The cli opens this log before the command runs.
    Cli(LogFile),
    /// The service opens this log itself, after it has detached: the file
    /// must belong to the process that keeps running.
    Service(LogFile),
}

/// Decides where a command logs: the service and `run` (a backup) write the
/// service log, the other commands the manager log; a refused command line
/// (`None`) goes to the manager log.
pub fn log_plan(home: &Home, command: Option<&Command>, rotation: Rotation) -> LogPlan {
    let file = |path, echo_to_stderr| LogFile {
        path,
        echo_to_stderr,
        rotation,
    };
    match command {
        Some(Command::Completions(_) | Command::Man(_)) => LogPlan::Nowhere,
        Some(Command::Daemon(args)) => LogPlan::Service(file(home.service_log(), args.foreground)),
        Some(Command::Run(_)) => LogPlan::Cli(file(home.service_log(), false)),
        Some(_) | None => LogPlan::Cli(file(home.manager_log(), false)),
    }
}

impl Context {
    /// Resolves what `command` needs from the global options and the
    /// environment. Touches no file.
    pub fn resolve(
        personality: Personality,
        global: &GlobalArgs,
        command: &Command,
    ) -> Result<Self, Error> {
        let clock: Arc<dyn Clock> = Arc::from(clock::from_env()?);
        let home = Home::resolve(global.home.as_deref()).map_err(Error::CurrentDir)?;
        let store = Store::new(home.schedules_file(), home.schedules_lock());
        let log = log_plan(&home, Some(command), global.rotation());
        Ok(Self {
            program: personality.program_name(),
            home,
            store,
            clock,
            zone: chrono::Local,
            log,
            stdout_is_terminal: std::io::stdout().is_terminal(),
            stderr_is_terminal: std::io::stderr().is_terminal(),
        })
    }

    /// Opens the log when the cli is the one to open it, creating the home's
    /// layout first.
    pub fn open_log(&self) -> Result<(), Error> {
        let LogPlan::Cli(log) = &self.log else {
            return Ok(());
        };
        self.home
            .ensure_layout()
            .map_err(|e| Error::io("create", self.home.root(), e))?;
        logging::init(log.target(), self.clock.clone())
            .map_err(|e| Error::io("open log file", &log.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn backups_log_to_the_service_log_and_generated_text_logs_nowhere() {
        let home = Home::resolve(Some(Path::new("/srv/bk"))).unwrap();
        let rotation = Rotation::default();
        let plan = |command: Option<&Command>| log_plan(&home, command, rotation);
        let service = |echo| LogFile {
            path: home.service_log(),
            echo_to_stderr: echo,
            rotation,
        };
        let daemon = Command::Daemon(super::super::daemon::Args {
            foreground: true,
            jobs: 1,
        });
        assert_eq!(plan(Some(&daemon)), LogPlan::Service(service(true)));
        let man = Command::Man(super::super::man::Args {});
        assert_eq!(plan(Some(&man)), LogPlan::Nowhere);
        assert_eq!(
            plan(None),
            LogPlan::Cli(LogFile {
                path: home.manager_log(),
                echo_to_stderr: false,
                rotation
            })
        );
    }
}
