//! The command line: clap definitions (what the user typed), the personality
//! chosen by argv[0], and the one place that dispatches to a subcommand.

mod backups;
mod create;
mod delete;
mod list;
mod personality;
mod run;
mod start;
mod status;
mod stop;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use personality::Personality;

use crate::clock::{self, Clock};
use crate::error::Error;
use crate::home::Home;
use crate::logging::{self, LogTarget};
use crate::store::Store;

/// Scheduled backups of directories into tar archives.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// Directory holding backup_schedules.txt, backups/, logs/ and the pidfile
    /// [default: the current directory]
    #[arg(long, global = true, value_name = "DIR", env = crate::home::HOME_VAR)]
    pub home: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the backup service in the background
    Start,
    /// Stop the backup service, waiting for the backups in progress to finish
    Stop {
        /// Give up waiting after this many seconds [default: wait until it exits]
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
    },
    /// Add a schedule: "path;hh:mm;name"
    Create {
        /// The schedule, e.g. "/home/me/docs;02:30;docs": back up the
        /// directory every day at that time into backups/NAME.tar
        #[arg(allow_hyphen_values = true)]
        schedule: String,
    },
    /// Delete the schedule at INDEX (as shown by `list`, starting at 0)
    Delete {
        #[arg(allow_hyphen_values = true)]
        index: String,
    },
    /// Show the schedules with their index
    List,
    /// List the archive files in backups/
    Backups,
    /// Back up one schedule now, in the foreground (exit 0: done, 3: partial, 1: failed)
    Run {
        /// The schedule's index or name
        #[arg(allow_hyphen_values = true)]
        schedule: String,
        /// Print the archive it would write and what retention would delete;
        /// change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Show whether the service runs and when each schedule runs next
    Status,
    /// Run the backup service (detached, unless --foreground)
    Daemon {
        /// Stay in the foreground and log to stderr too (systemd, containers)
        #[arg(long, short)]
        foreground: bool,
    },
}

/// The `backup_service` personality: the spec's service script.
#[derive(Debug, Parser)]
#[command(version, about = "Run the backup service in the foreground", long_about = None)]
struct ServiceCli {
    /// Directory holding backup_schedules.txt, backups/, logs/ and the pidfile
    /// [default: the current directory]
    #[arg(long, value_name = "DIR", env = crate::home::HOME_VAR)]
    home: Option<PathBuf>,
}

/// A parsed command line.
#[derive(Debug)]
pub struct Invocation {
    pub personality: Personality,
    pub home: Option<PathBuf>,
    pub command: Command,
}

/// Parses `args` (argv[0] included) for `personality`.
pub fn parse(personality: Personality, args: &[OsString]) -> Result<Invocation, clap::Error> {
    let name = personality.program_name();
    if personality == Personality::Service {
        let matches = ServiceCli::command()
            .name(name)
            .try_get_matches_from(args)?;
        let cli = ServiceCli::from_arg_matches(&matches)?;
        return Ok(Invocation {
            personality,
            home: cli.home,
            command: Command::Daemon { foreground: true },
        });
    }
    let matches = Cli::command().name(name).try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    Ok(Invocation {
        personality,
        home: cli.home,
        command: cli.command,
    })
}

/// What every subcommand gets: where the files are and what time it is.
pub struct Context {
    pub home: Home,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub program: &'static str,
}

/// Runs a parsed command. Errors are logged here; [`report_error`] prints them.
pub fn run(invocation: Invocation) -> Result<ExitCode, Error> {
    let clock: Arc<dyn Clock> = Arc::from(clock::from_env().map_err(Error::Invalid)?);
    let home = Home::resolve(invocation.home.as_deref())
        .map_err(|e| Error::io("find the current directory", ".", e))?;
    let store = Store::new(home.schedules_file(), home.schedules_lock());
    let ctx = Context {
        home,
        store,
        clock,
        program: invocation.personality.program_name(),
    };
    if let Command::Daemon { foreground } = invocation.command {
        // The daemon sets up its own log, after detaching.
        crate::daemon::run_daemon(&ctx.home, ctx.clock.clone(), foreground)?;
        return Ok(ExitCode::SUCCESS);
    }
    ctx.home
        .ensure_layout()
        .map_err(|e| Error::io("create", ctx.home.root(), e))?;
    let log = match invocation.command {
        Command::Run { .. } => ctx.home.service_log(),
        _ => ctx.home.manager_log(),
    };
    logging::init(
        LogTarget {
            file: &log,
            echo_to_stderr: false,
        },
        ctx.clock.clone(),
    )
    .map_err(|e| Error::io("open log file", &log, e))?;
    let result = dispatch(&ctx, invocation.command);
    // A backup run logs its own outcome, failures included (runner.rs).
    if let Err(error) = &result
        && !matches!(error, Error::Run(_))
    {
        log::error!("{error}");
    }
    result
}

fn dispatch(ctx: &Context, command: Command) -> Result<ExitCode, Error> {
    match command {
        Command::Start => start::run(ctx),
        Command::Stop { timeout } => stop::run(ctx, timeout),
        Command::Create { schedule } => create::run(ctx, &schedule),
        Command::Delete { index } => delete::run(ctx, &index),
        Command::List => list::run(ctx),
        Command::Backups => backups::run(ctx),
        Command::Run { schedule, dry_run } => run::run(ctx, &schedule, dry_run),
        Command::Status => status::run(ctx),
        Command::Daemon { .. } => unreachable!("handled before logging is set up"),
    }
}

/// Prints an error once, at the top: `program: message`, then its causes.
pub fn report_error(personality: Personality, error: &Error) {
    let mut text = format!("{}: {error}", personality.program_name());
    let mut source = std::error::Error::source(error);
    // Causes already quoted in the message are not repeated.
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(&format!("\n  caused by: {line}"));
        }
        source = cause.source();
    }
    eprintln!("{text}");
}

/// Writes command output to stdout. A closed stdout (`list | head -1`) ends
/// the output quietly: it is not an error.
pub fn print_lines<I: IntoIterator<Item = String>>(lines: I) -> Result<(), Error> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in lines {
        match writeln!(out, "{line}") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(Error::io("write to", "stdout", e)),
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("write to", "stdout", e))
        }
        _ => Ok(()),
    }
}
