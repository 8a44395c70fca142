//! The second stage of parsing (ripgrep's `HiArgs`): what the command line
//! and the environment mean for every command, resolved once. The home
//! directory, the clock, the time zone, where the event log goes and whether
//! stdout and stderr are terminals are read here and nowhere else in `cli`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Command, GlobalArgs, Personality};
use crate::clock::{self, Clock};
use crate::error::Error;
use crate::home::{self, Home, Lookup};
use crate::logging::{self, Echo, LogTarget, LogTime, Rotation};
use crate::primitives::error_chain;
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
    /// The command only reads the home: it creates no directory in it, and
    /// runs without a log when the log cannot be opened.
    pub read_only: bool,
    /// Whether stdout is a terminal.
    pub stdout_is_terminal: bool,
    /// Whether stderr is a terminal (`run` draws its progress bar there).
    pub stderr_is_terminal: bool,
}

/// A log file and how it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub path: PathBuf,
    /// Whether and how each line is copied to stderr (the foreground service).
    pub echo: Echo,
    pub rotation: Rotation,
    pub time: LogTime,
}

impl LogFile {
    /// The target [`logging::init`] takes.
    pub fn target(&self) -> LogTarget<'_> {
        LogTarget {
            file: &self.path,
            echo: self.echo,
            rotation: self.rotation,
            time: self.time,
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
/// (`None`) goes to the manager log. A foreground service copies its lines
/// to stderr, for journald when `journal` (stderr is systemd's journal stream).
pub fn log_plan(
    home: &Home,
    command: Option<&Command>,
    (rotation, time): (Rotation, LogTime),
    journal: bool,
) -> LogPlan {
    let file = |path, echo| LogFile {
        path,
        echo,
        rotation,
        time,
    };
    match command {
        Some(Command::Completions(_) | Command::Man(_)) => LogPlan::Nowhere,
        Some(Command::Daemon(args)) => {
            let echo = match (args.foreground, journal) {
                (false, _) => Echo::Off,
                (true, false) => Echo::Stamped,
                (true, true) => Echo::Journal,
            };
            LogPlan::Service(file(home.service_log(), echo))
        }
        Some(Command::Run(_)) => LogPlan::Cli(file(home.service_log(), Echo::Off)),
        Some(_) | None => LogPlan::Cli(file(home.manager_log(), Echo::Off)),
    }
}

/// What a command needs of the home it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HomeUse {
    /// `create` starts a home where it is named, or in the current directory
    /// (never in the system home: the original usage makes the current
    /// directory a home with `create`).
    Starts,
    /// Every command about schedules, archives or the service refuses to run
    /// outside a home, so that it creates nothing there.
    Needs,
    /// `next`, `completions` and `man` work anywhere; outside a home they do
    /// not log.
    Optional,
}

fn home_use(command: &Command) -> HomeUse {
    match command {
        Command::Create(_) => HomeUse::Starts,
        Command::Next(_) | Command::Completions(_) | Command::Man(_) => HomeUse::Optional,
        _ => HomeUse::Needs,
    }
}

/// Finds the home `command` works in (see [`home::locate`]), or says why
/// there is none. Reads only whether schedule files exist.
pub fn find_home(named: Option<&Path>, command: &Command) -> Result<(Home, bool), Error> {
    let cwd = std::env::current_dir().map_err(Error::CurrentDir)?;
    let usage = home_use(command);
    let system = match usage {
        HomeUse::Starts => None,
        HomeUse::Needs | HomeUse::Optional => home::system_home_from_env(),
    };
    let located = home::locate(named, &cwd, system.as_deref());
    let is_home = located.is_home();
    if usage == HomeUse::Needs && !is_home {
        return Err(Error::NotAHome {
            dir: located.home.root().to_path_buf(),
            named: located.how == Lookup::Named,
            system: match located.how {
                Lookup::Nowhere { system } => system,
                _ => None,
            },
        });
    }
    Ok((located.home, is_home))
}

/// The commands that only read the home (`restore` writes elsewhere).
pub fn reads_only(command: &Command) -> bool {
    matches!(
        command,
        Command::List(_)
            | Command::Backups(_)
            | Command::Status(_)
            | Command::Check(_)
            | Command::Verify(_)
            | Command::Restore(_)
            | Command::Contents(_)
            | Command::Next(_)
    )
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
        let (home, is_home) = find_home(global.home.as_deref(), command)?;
        let store = Store::new(home.schedules_file(), home.schedules_lock());
        let log = match home_use(command) {
            HomeUse::Optional if !is_home => LogPlan::Nowhere,
            _ => log_plan(
                &home,
                Some(command),
                (global.rotation(), global.log_time),
                logging::stderr_is_journal(std::env::var_os("JOURNAL_STREAM").as_deref()),
            ),
        };
        Ok(Self {
            program: personality.program_name(),
            home,
            store,
            clock,
            zone: chrono::Local,
            log,
            read_only: reads_only(command),
            stdout_is_terminal: std::io::stdout().is_terminal(),
            stderr_is_terminal: std::io::stderr().is_terminal(),
        })
    }

    /// Opens the log when the cli is the one to open it. A command that
    /// writes creates the home's layout first. One that only reads creates
    /// at most `logs/` inside an existing home, for its log line, so that it
    /// works in a home it may not write to; and for it a log that cannot be
    /// opened (a read-only home, a symlink planted at its name) is no reason
    /// to refuse: it says so in one warning line on stderr and runs without.
    pub fn open_log(&self) -> Result<(), Error> {
        let LogPlan::Cli(log) = &self.log else {
            return Ok(());
        };
        let warn = |error: Error| {
            eprintln!(
                "{}: warning: {}; not logging",
                self.program,
                error_chain(&error)
            );
        };
        if !self.read_only {
            self.home
                .ensure_layout()
                .map_err(|e| Error::io("create", self.home.root(), e))?;
        } else if let Err(e) = create_dir_if_missing(&self.home.logs_dir()) {
            warn(Error::io(
                "create",
                self.home.display_path(&self.home.logs_dir()),
                e,
            ));
            return Ok(());
        }
        if let Err(e) = logging::init(log.target(), self.clock.clone()) {
            warn(Error::io(
                "open log file",
                self.home.display_path(&log.path),
                e,
            ));
        }
        Ok(())
    }
}

/// Creates `dir` (never its parents) unless it exists.
fn create_dir_if_missing(dir: &std::path::Path) -> std::io::Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_log_to_the_service_log_and_generated_text_logs_nowhere() {
        let home = Home::resolve(Some(Path::new("/srv/bk"))).unwrap();
        let rotation = Rotation::default();
        let style = (rotation, LogTime::Dmy);
        let plan = |command: Option<&Command>| log_plan(&home, command, style, false);
        let service = |echo| LogFile {
            path: home.service_log(),
            echo,
            rotation,
            time: LogTime::Dmy,
        };
        let daemon = Command::Daemon(super::super::daemon::Args {
            foreground: true,
            jobs: 1,
            metrics: Default::default(),
        });
        assert_eq!(
            plan(Some(&daemon)),
            LogPlan::Service(service(Echo::Stamped))
        );
        assert_eq!(
            log_plan(&home, Some(&daemon), style, true),
            LogPlan::Service(service(Echo::Journal))
        );
        let man = Command::Man(super::super::man::Args {
            command: None,
            dir: None,
        });
        assert_eq!(plan(Some(&man)), LogPlan::Nowhere);
        assert_eq!(
            plan(None),
            LogPlan::Cli(LogFile {
                path: home.manager_log(),
                echo: Echo::Off,
                rotation,
                time: LogTime::Dmy,
            })
        );
    }
}
