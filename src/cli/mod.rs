//! The command line, in two stages. clap's derive structs say what the user
//! typed: [`Cli`] with one [`Command`] variant per subcommand, each wrapping
//! the `Args` struct that lives in the subcommand's own file beside its `run`.
//! [`Context`] then resolves, once, what every command needs (home, clock,
//! time zone, log, terminals). [`run`] dispatches with one `match`, logs a
//! failure once and hands it back for [`report_error`] to print.

mod archive_arg;
mod backups;
mod check;
mod completions;
mod contents;
mod context;
mod create;
mod daemon;
mod delete;
mod list;
mod man;
mod next;
mod personality;
mod prune;
mod remote;
mod restore;
mod run;
mod start;
mod status;
mod stop;
mod usage;
mod verify;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use context::{Context, LogFile, LogPlan};
pub use personality::Personality;

use crate::error::Error;
use crate::exit_codes::ExitCode;
use crate::logging;
use crate::primitives::error_chain;

/// Scheduled backups of directories into tar archives.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// The most rotated log files `--log-keep` may ask for.
const MAX_LOG_KEEP: i64 = 1000;

/// The options every command takes, before or after its name.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Directory holding backup_schedules.txt, backups/, logs/ and the pidfile
    /// [default: the current directory if it holds backup_schedules.txt, else
    /// /var/lib/backupctl (BACKUPCTL_SYSTEM_HOME) if that does]
    #[arg(long, global = true, value_name = "DIR", env = crate::home::HOME_VAR)]
    pub home: Option<PathBuf>,

    /// Rotate a log file when it would grow past SIZE (bytes, or with K, M, G);
    /// 0 never rotates
    #[arg(long, global = true, value_name = "SIZE", default_value = "10M",
          env = "BACKUPCTL_LOG_MAX_SIZE", value_parser = logging::parse_size)]
    pub log_max_size: u64,

    /// How many rotated log files to keep (NAME.log.1 is the newest), at most 1000
    #[arg(
        long,
        global = true,
        value_name = "N",
        default_value_t = 3,
        env = "BACKUPCTL_LOG_KEEP",
        // Rotation renames every kept file in turn: a huge count hung it.
        value_parser = clap::value_parser!(u32).range(0..=MAX_LOG_KEEP)
    )]
    pub log_keep: u32,

    /// How log files stamp their lines: dmy ([24/11/2026 15:36], the default)
    /// or iso ([2026-11-24T15:36:04+01:00], ISO 8601 with seconds and UTC offset)
    #[arg(long, global = true, value_name = "FORMAT", default_value = "dmy",
          env = "BACKUPCTL_LOG_TIME", value_parser = logging::parse_log_time)]
    pub log_time: logging::LogTime,
}

impl GlobalArgs {
    pub fn rotation(&self) -> logging::Rotation {
        logging::Rotation {
            max_size: self.log_max_size,
            keep: self.log_keep,
        }
    }
}

/// One variant per subcommand; each wraps the arguments its file defines.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the backup service in the background
    Start(start::Args),
    /// Stop the backup service, waiting for the backups in progress to finish
    Stop(stop::Args),
    /// Add a schedule: "path;hh:mm;name[;options]"
    Create(create::Args),
    /// Delete a schedule by its INDEX (as shown by `list`, starting at 0) or its NAME
    Delete(delete::Args),
    /// Show the schedules with their index
    List(list::Args),
    /// List the archive files in backups/
    Backups(backups::Args),
    /// Apply retention now: delete the archives no rule keeps
    Prune(prune::Args),
    /// Check archives against their manifests and read them through
    Verify(verify::Args),
    /// Extract an archive into a directory, safely
    Restore(restore::Args),
    /// List what an archive holds, as `tar tv` does
    Contents(contents::Args),
    /// Back up one schedule now, in the foreground (exit 0: done, 3: partial, 1: failed)
    Run(run::Args),
    /// Show whether the service runs, and each schedule's last and next run
    Status(status::Args),
    /// Print the next run times of a schedule time ("02:30", "*/15 * * * *", "@daily")
    Next(next::Args),
    /// Exit 0 when every schedule has a recent enough backup, else list the
    /// overdue ones and exit 1 (for cron, monitoring or a healthcheck)
    Check(check::Args),
    /// Run the backup service (detached, unless --foreground)
    Daemon(daemon::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(completions::Args),
    /// Print the man page (roff), or a command's, or write them all with --dir
    Man(man::Args),
}

/// The `backup_service` personality: the spec's service script.
#[derive(Debug, Parser)]
#[command(version, about = "Run the backup service in the foreground", long_about = None)]
struct ServiceCli {
    #[command(flatten)]
    global: GlobalArgs,

    /// How many backups may run at the same time
    #[arg(long, short, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,

    #[command(flatten)]
    metrics: daemon::MetricsArgs,
}

/// A command line clap accepted.
#[derive(Debug)]
pub struct Invocation {
    pub personality: Personality,
    pub global: GlobalArgs,
    pub command: Command,
}

/// What [`parse`] found.
#[derive(Debug)]
pub enum Parsed {
    /// A command to run.
    Run(Invocation),
    /// `--help` or `--version` (or help for a bare command): clap's text,
    /// printed as clap prints it.
    Show(clap::Error),
}

/// The clap definition of `personality`'s command line.
fn clap_command(personality: Personality) -> clap::Command {
    let name = personality.program_name();
    match personality {
        Personality::Service => ServiceCli::command().name(name),
        Personality::Backupctl | Personality::Manager => Cli::command().name(name),
    }
}

/// Parses `args` (argv[0] included) for `personality`. A refused command
/// line is an [`Error::Usage`], already logged (see `usage.rs`).
pub fn parse(personality: Personality, args: &[OsString]) -> Result<Parsed, Error> {
    match parse_invocation(personality, args) {
        Ok(invocation) => Ok(Parsed::Run(invocation)),
        Err(error) => usage::refused(personality, args, error),
    }
}

fn parse_invocation(
    personality: Personality,
    args: &[OsString],
) -> Result<Invocation, clap::Error> {
    let matches = clap_command(personality).try_get_matches_from(args)?;
    let (global, command) = match personality {
        Personality::Service => {
            let cli = ServiceCli::from_arg_matches(&matches)?;
            let daemon = daemon::Args {
                foreground: true,
                jobs: cli.jobs,
                metrics: cli.metrics,
            };
            (cli.global, Command::Daemon(daemon))
        }
        Personality::Backupctl | Personality::Manager => {
            let cli = Cli::from_arg_matches(&matches)?;
            (cli.global, cli.command)
        }
    };
    Ok(Invocation {
        personality,
        global,
        command,
    })
}

/// Runs what [`parse`] found. A failure is logged here, once (unless the
/// backup pipeline logged it already), and returned for [`report_error`].
pub fn run(parsed: Parsed) -> Result<ExitCode, Error> {
    let invocation = match parsed {
        Parsed::Show(text) => return Ok(usage::show(&text)),
        Parsed::Run(invocation) => invocation,
    };
    let ctx = Context::resolve(
        invocation.personality,
        &invocation.global,
        &invocation.command,
    )?;
    ctx.open_log()?;
    let result = dispatch(&invocation.command, &ctx);
    if let Err(error) = &result
        && !error.logged_by_pipeline()
    {
        log::error!("{}", error_chain(error));
    }
    result
}

fn dispatch(command: &Command, ctx: &Context) -> Result<ExitCode, Error> {
    match command {
        Command::Start(args) => start::run(args, ctx),
        Command::Stop(args) => stop::run(args, ctx),
        Command::Create(args) => create::run(args, ctx),
        Command::Delete(args) => delete::run(args, ctx),
        Command::List(args) => list::run(args, ctx),
        Command::Backups(args) => backups::run(args, ctx),
        Command::Prune(args) => prune::run(args, ctx),
        Command::Verify(args) => verify::run(args, ctx),
        Command::Restore(args) => restore::run(args, ctx),
        Command::Contents(args) => contents::run(args, ctx),
        Command::Run(args) => run::run(args, ctx),
        Command::Status(args) => status::run(args, ctx),
        Command::Next(args) => next::run(args, ctx),
        Command::Check(args) => check::run(args, ctx),
        Command::Daemon(args) => daemon::run(args, ctx),
        Command::Completions(args) => completions::run(args, ctx),
        Command::Man(args) => man::run(args, ctx),
    }
}

/// The one printer of errors: `program: error: cause: root cause`, one line
/// on stderr.
pub fn report_error(personality: Personality, error: &Error) {
    eprintln!("{}: {}", personality.program_name(), error_chain(error));
}

/// Writes command output to stdout. A closed stdout (`list | head -1`) ends
/// the output quietly: it is not an error.
pub fn print_lines<I: IntoIterator<Item = String>>(lines: I) -> Result<(), Error> {
    let mut printer = LinePrinter::with_flush_per_line(false);
    for line in lines {
        printer.line(&line);
    }
    printer.finish()
}

/// Command output written line by line as it happens (`restore`'s paths):
/// in blocks when stdout is a pipe or a file, each line at once on a
/// terminal. A closed stdout ends the output quietly, as in [`print_lines`].
pub struct LinePrinter {
    out: std::io::BufWriter<std::io::Stdout>,
    each_line: bool,
    result: Result<(), Error>,
    closed: bool,
}

impl LinePrinter {
    pub fn new(ctx: &Context) -> Self {
        Self::with_flush_per_line(ctx.stdout_is_terminal)
    }

    fn with_flush_per_line(each_line: bool) -> Self {
        LinePrinter {
            out: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()),
            each_line,
            result: Ok(()),
            closed: false,
        }
    }

    pub fn line(&mut self, line: &str) {
        use std::io::Write;
        if self.closed || self.result.is_err() {
            return;
        }
        let mut written = writeln!(self.out, "{line}");
        if written.is_ok() && self.each_line {
            written = self.out.flush();
        }
        self.note(written);
    }

    /// Flushes what is left; the first error writing, if any.
    pub fn finish(mut self) -> Result<(), Error> {
        use std::io::Write;
        if !self.closed && self.result.is_ok() {
            let flushed = self.out.flush();
            self.note(flushed);
        }
        std::mem::replace(&mut self.result, Ok(()))
    }

    fn note(&mut self, written: std::io::Result<()>) {
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => self.closed = true,
            Err(e) => self.result = Err(Error::io("write to", "stdout", e)),
        }
    }
}

/// Writes `value` to stdout as pretty-printed JSON, the `--json` outputs.
/// The keys of `--identity KEY`, if given; a key file other users can read
/// is used, with a warning on stderr and in the log.
pub fn load_identities(
    ctx: &Context,
    path: Option<&std::path::Path>,
) -> Result<Option<crate::archive::encrypt::Identities>, Error> {
    let Some(path) = path else {
        return Ok(None);
    };
    let identities = crate::archive::encrypt::Identities::load(path)?;
    if let Some(mode) = identities.exposed() {
        let warning = format!(
            "the identity file {} can be read by other users (mode {mode:04o}); a private key should be mode 0600",
            crate::primitives::printable(&path.display().to_string())
        );
        log::warn!("{warning}");
        eprintln!("{}: warning: {warning}", ctx.program);
    }
    Ok(Some(identities))
}

pub fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(Error::Json)?;
    print_lines([text])
}
