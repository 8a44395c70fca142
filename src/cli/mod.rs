//! The command line: clap definitions (what the user typed), the personality
//! chosen by argv[0], and the one place that dispatches to a subcommand.

mod backups;
mod check;
mod completions;
mod create;
mod delete;
mod list;
mod next;
mod personality;
mod prune;
mod restore;
mod run;
mod start;
mod status;
mod stop;
mod usage;
mod verify;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use personality::Personality;
pub use usage::report_usage_error;

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

    #[command(flatten)]
    pub log: LogArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Log rotation, for every command that writes a log.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Rotate a log file when it would grow past SIZE (bytes, or with K, M, G);
    /// 0 never rotates
    #[arg(long, global = true, value_name = "SIZE", default_value = "10M",
          env = "BACKUPCTL_LOG_MAX_SIZE", value_parser = logging::parse_size)]
    pub log_max_size: u64,

    /// How many rotated log files to keep (NAME.log.1 is the newest)
    #[arg(
        long,
        global = true,
        value_name = "N",
        default_value_t = 3,
        env = "BACKUPCTL_LOG_KEEP"
    )]
    pub log_keep: u32,
}

impl LogArgs {
    fn rotation(&self) -> logging::Rotation {
        logging::Rotation {
            max_size: self.log_max_size,
            keep: self.log_keep,
        }
    }
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
        /// directory every day at that time into backups/NAME.tar. The time
        /// may also be a cron expression ("30 2 * * mon-fri") or @hourly,
        /// @daily, @weekly, @monthly; try it with `next` first
        #[arg(allow_hyphen_values = true)]
        schedule: String,
    },
    /// Delete the schedule at INDEX (as shown by `list`, starting at 0)
    Delete {
        #[arg(allow_hyphen_values = true)]
        index: String,
    },
    /// Show the schedules with their index
    List {
        /// Print the schedules as JSON (shape in docs/archives.md)
        #[arg(long)]
        json: bool,
    },
    /// List the archive files in backups/
    Backups {
        /// Show each archive's date and size
        #[arg(long, short)]
        long: bool,
        /// Print the archives as JSON, with their schedule and checksum
        #[arg(long, conflicts_with = "long")]
        json: bool,
    },
    /// Apply retention now: delete the archives no rule keeps
    Prune {
        /// The schedule (index or name) [default: every schedule with retention rules]
        #[arg(allow_hyphen_values = true)]
        schedule: Option<String>,
        /// Print each archive with keep (and the rules that keep it) or delete;
        /// change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Check archives against their manifests and read them through
    Verify {
        /// Schedule names (all their archives), archive file names in backups/,
        /// or paths to archives
        #[arg(allow_hyphen_values = true, conflicts_with = "all")]
        targets: Vec<String>,
        /// Verify every archive in backups/
        #[arg(long)]
        all: bool,
        /// Print the results as JSON (shape in docs/archives.md)
        #[arg(long)]
        json: bool,
    },
    /// Extract an archive into a directory, safely
    Restore {
        /// An archive file name in backups/, or a path to an archive
        #[arg(allow_hyphen_values = true)]
        archive: String,
        /// The directory to restore into (created if missing)
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Replace existing files and symlinks (never directories)
        #[arg(long)]
        force: bool,
    },
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
    /// Show whether the service runs, and each schedule's last and next run
    Status {
        /// Print JSON instead (the shape is documented in docs/scheduling.md)
        #[arg(long)]
        json: bool,
    },
    /// Print the next run times of a schedule time ("02:30", "*/15 * * * *", "@daily")
    Next {
        /// The time field of a schedule: hh:mm, a five-field cron expression or
        /// @hourly, @daily, @weekly, @monthly
        #[arg(allow_hyphen_values = true)]
        expression: String,
        /// How many run times to print (1 to 1000)
        #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 5,
              value_parser = clap::value_parser!(u16).range(1..=1000))]
        count: u16,
    },
    /// Exit 0 when every schedule has a recent enough backup, else list the
    /// overdue ones and exit 1 (for cron, monitoring or a healthcheck)
    Check {
        /// Overdue after this long without a successful backup (90m, 36h, 7d)
        /// [default: the schedule's interval plus a margin]
        #[arg(long, value_name = "DURATION", value_parser = parse_max_age)]
        max_age: Option<chrono::TimeDelta>,
    },
    /// Run the backup service (detached, unless --foreground)
    Daemon {
        /// Stay in the foreground and log to stderr too (systemd, containers)
        #[arg(long, short)]
        foreground: bool,
        /// How many backups may run at the same time
        #[arg(long, short, value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), e.g. `backupctl man > backupctl.1`
    Man,
}

fn parse_max_age(text: &str) -> Result<chrono::TimeDelta, String> {
    crate::store::options::parse_duration(text)
}

/// The `backup_service` personality: the spec's service script.
#[derive(Debug, Parser)]
#[command(version, about = "Run the backup service in the foreground", long_about = None)]
struct ServiceCli {
    /// Directory holding backup_schedules.txt, backups/, logs/ and the pidfile
    /// [default: the current directory]
    #[arg(long, value_name = "DIR", env = crate::home::HOME_VAR)]
    home: Option<PathBuf>,

    #[command(flatten)]
    log: LogArgs,

    /// How many backups may run at the same time
    #[arg(long, short, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
}

/// A parsed command line.
#[derive(Debug)]
pub struct Invocation {
    pub personality: Personality,
    pub home: Option<PathBuf>,
    pub rotation: logging::Rotation,
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
            rotation: cli.log.rotation(),
            command: Command::Daemon {
                foreground: true,
                jobs: cli.jobs,
            },
        });
    }
    let matches = Cli::command().name(name).try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    Ok(Invocation {
        personality,
        home: cli.home,
        rotation: cli.log.rotation(),
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
    match invocation.command {
        Command::Daemon { foreground, jobs } => {
            // The daemon sets up its own log, after detaching.
            let options = crate::daemon::DaemonOptions {
                foreground,
                jobs: usize::from(jobs),
                rotation: invocation.rotation,
            };
            crate::daemon::run_daemon(&ctx.home, ctx.clock.clone(), options)?;
            return Ok(ExitCode::SUCCESS);
        }
        // Generated from the clap definitions; they touch no file.
        Command::Completions { shell } => return completions::completions(ctx.program, shell),
        Command::Man => return completions::man(ctx.program),
        _ => {}
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
            rotation: invocation.rotation,
        },
        ctx.clock.clone(),
    )
    .map_err(|e| Error::io("open log file", &log, e))?;
    let result = dispatch(&ctx, invocation.command);
    // A backup run logs its own outcome, failures included (daemon/job.rs).
    if let Err(error) = &result
        && !matches!(error, Error::Run(_) | Error::Job(_))
    {
        log::error!("{}", crate::primitives::error_chain(error));
    }
    result
}

fn dispatch(ctx: &Context, command: Command) -> Result<ExitCode, Error> {
    match command {
        Command::Start => start::run(ctx),
        Command::Stop { timeout } => stop::run(ctx, timeout),
        Command::Create { schedule } => create::run(ctx, &schedule),
        Command::Delete { index } => delete::run(ctx, &index),
        Command::List { json } => list::run(ctx, json),
        Command::Backups { long, json } => backups::run(
            ctx,
            match (long, json) {
                (_, true) => backups::Style::Json,
                (true, false) => backups::Style::Long,
                (false, false) => backups::Style::Names,
            },
        ),
        Command::Prune { schedule, dry_run } => prune::run(ctx, schedule.as_deref(), dry_run),
        Command::Verify { targets, all, json } => verify::run(ctx, &targets, all, json),
        Command::Restore { archive, to, force } => restore::run(ctx, &archive, &to, force),
        Command::Run { schedule, dry_run } => run::run(ctx, &schedule, dry_run),
        Command::Status { json } => status::run(ctx, json),
        Command::Next { expression, count } => next::run(ctx, &expression, count),
        Command::Check { max_age } => check::run(ctx, max_age),
        Command::Daemon { .. } | Command::Completions { .. } | Command::Man => {
            unreachable!("handled before logging is set up")
        }
    }
}

/// Prints an error once, at the top: `program: message: cause: …`, one line.
pub fn report_error(personality: Personality, error: &Error) {
    eprintln!(
        "{}: {}",
        personality.program_name(),
        crate::primitives::error_chain(error)
    );
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

/// Writes `value` to stdout as pretty-printed JSON, the `--json` outputs.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::io("write to", "stdout", std::io::Error::other(e)))?;
    print_lines([text])
}
