//! `man [SUBCOMMAND] [--dir DIR]`: the roff man pages. backupctl(1) documents
//! everything a user needs offline: the options, the commands, the schedule
//! line and every schedule option (from `store::options::OPTION_HELP`), the
//! files of a home, the exit codes (from `exit_codes::TABLE`), the
//! environment, the signals and examples. Each command has its own page
//! (backupctl-create(1), …), which backupctl(1) refers to. Generated from the
//! clap definitions and those tables, so they never fall behind.

use std::io;
use std::path::PathBuf;

use clap::CommandFactory;
use clap_mangen::Man;
use roff::{Roff, bold, italic, roman};

use super::completions::print_bytes;
use super::{Cli, Context};
use crate::error::Error;
use crate::exit_codes::{self, ExitCode};
use crate::primitives::{self, quote};
use crate::store::options::OPTION_HELP;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the page of this command instead of backupctl(1) (for create:
    /// backupctl-create(1))
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
    /// Write every page (backupctl.1, backupctl-create.1 and so on) into DIR, e.g.
    /// /usr/local/share/man/man1, and print their paths
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub dir: Option<PathBuf>,
}

/// The pages are always backupctl's, whatever name it was called by: the
/// other names are symlinks with no pages of their own.
const NAME: &str = "backupctl";

pub fn run(args: &Args, _ctx: &Context) -> Result<ExitCode, Error> {
    if let Some(dir) = &args.dir {
        let mut written = Vec::new();
        for (file, page) in pages().map_err(render_error)? {
            let path = dir.join(&file);
            primitives::write_atomic(&path, &page, 0o644)
                .map_err(|e| Error::io("write man page", &path, e))?;
            written.push(path.display().to_string());
        }
        return super::print_lines(written).map(|()| ExitCode::Success);
    }
    let page = match &args.command {
        None => main_page(),
        Some(name) => {
            let Some(command) = built().find_subcommand(name).cloned() else {
                return Err(Error::Usage {
                    message: format!(
                        "no man page for \"{}\"; the commands are {}",
                        quote(name),
                        command_names().join(", ")
                    ),
                });
            };
            command_page(command)
        }
    };
    print_bytes(&page.map_err(render_error)?)
}

fn render_error(e: io::Error) -> Error {
    Error::io("render", "the man page", e)
}

/// The command line as clap sees it once built: subcommands know their
/// display names (`backupctl-create`), as the pages call them.
fn built() -> clap::Command {
    let mut command = Cli::command().name(NAME).disable_help_subcommand(true);
    command.build();
    command
}

fn command_names() -> Vec<String> {
    built()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect()
}

/// Every page, as (file name, roff).
pub fn pages() -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut pages = vec![(format!("{NAME}.1"), main_page()?)];
    for command in built().get_subcommands() {
        let file = Man::new(command.clone()).get_filename();
        pages.push((file, command_page(command.clone())?));
    }
    Ok(pages)
}

/// backupctl-COMMAND(1): clap's page, and a pointer to backupctl(1), where
/// the schedule format, files, exit codes and signals are.
fn command_page(command: clap::Command) -> io::Result<Vec<u8>> {
    let mut page = Vec::new();
    Man::new(command).render(&mut page)?;
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]).text([roman(format!(
        "{NAME}(1), for the schedule format and its options, the files of a home, the exit codes, \
         the environment and the signals."
    ))]);
    page.extend(roff.to_roff().as_bytes());
    Ok(page)
}

/// backupctl(1): clap's sections, then the ones only prose can give.
fn main_page() -> io::Result<Vec<u8>> {
    let man = Man::new(built());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    page.extend(description().to_roff().as_bytes());
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    let mut extra = Roff::new();
    schedules(&mut extra);
    files(&mut extra);
    exit_status(&mut extra);
    environment(&mut extra);
    signals(&mut extra);
    examples(&mut extra);
    see_also(&mut extra);
    page.extend(extra.to_roff().as_bytes());
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// A `.TP` item: a bold term and its text.
fn item(roff: &mut Roff, term: &str, text: &str) {
    roff.control("TP", [])
        .text([bold(term)])
        .text([roman(text)]);
}

fn paragraph(roff: &mut Roff, text: &str) {
    roff.control("PP", []).text([roman(text)]);
}

fn description() -> Roff {
    let mut roff = Roff::new();
    paragraph(
        &mut roff,
        "backupctl backs up directories into tar archives (optionally gzip or zstd) on a schedule: \
         add schedules with create, start the service, and it runs each one when due. Everything \
         lives in a home directory: the schedules, the archives, the logs and the service's pidfile.",
    );
    paragraph(
        &mut roff,
        "The same executable answers to two more names, usually symlinks: backup_manager behaves \
         exactly like backupctl, and backup_service runs the service in the foreground (like \
         backupctl daemon --foreground).",
    );
    paragraph(
        &mut roff,
        "The home is the directory named by --home, else by BACKUPCTL_HOME, else the current \
         directory if it holds backup_schedules.txt, else /var/lib/backupctl (the systemd unit's) \
         if that does. create starts a home; every other command run where there is none says so \
         and exits 2, creating nothing.",
    );
    roff
}

fn schedules(roff: &mut Roff) {
    roff.control("SH", ["SCHEDULES"]);
    roff.text([roman("One line per schedule in backup_schedules.txt:")]);
    roff.control("PP", []).control("RS", []);
    roff.text([bold("path;time;name[;options]")]);
    roff.control("RE", []);
    item(
        roff,
        "path",
        "The directory to back up; a relative path is taken from the home.",
    );
    item(
        roff,
        "time",
        "hh:mm (every day at that local time), a five-field cron expression (*/15 * * * *, \
         30 2 * * mon-fri) or @hourly, @daily, @weekly, @monthly. Local time; TZ is honoured. \
         backupctl next TIME prints when a time would run.",
    );
    item(
        roff,
        "name",
        "The archive's name: a plain file name (no /, not starting with a dot, no control \
         characters, at most 200 bytes), unique among the schedules. Archives are \
         backups/NAME.tar (replaced at each run) or, with any keep-* option, \
         backups/NAME_YYYYMMDD_HHMMSS.tar, with .tar.gz or .tar.zst for the compressed formats.",
    );
    item(
        roff,
        "options",
        "Optional, comma-separated, each at most once unless said:",
    );
    roff.control("RS", []);
    for (syntax, what) in OPTION_HELP {
        item(roff, syntax, what);
    }
    roff.control("RE", []);
    paragraph(
        roff,
        "A value that holds , or ; goes in double quotes (before=\"curl -d 'a,b' URL\"), with \\\" \
         for a quote and \\\\ for a backslash inside. No field may hold a control character. \
         create refuses a malformed line with one line naming the problem, exit code 2, and \
         leaves the file untouched. Hooks and pings run only when the schedule file is owned by \
         the service's user and writable by nobody else.",
    );
}

fn files(roff: &mut Roff) {
    roff.control("SH", ["FILES"]);
    roff.text([roman("Inside the home:")]);
    for (path, what) in [
        ("backup_schedules.txt", "the schedules, one a line"),
        (
            "backups/NAME.EXT, backups/NAME_YYYYMMDD_HHMMSS.EXT",
            "the archives (mode 0600)",
        ),
        (
            "backups/ARCHIVE.json",
            "each archive's manifest: schedule, source, time, format, size, SHA-256, entries, skipped files, duration",
        ),
        (
            "logs/backup_manager.log",
            "every command and every refused input",
        ),
        (
            "logs/backup_service.log",
            "the service and run: start, stop, each backup and each failure, naming its schedule",
        ),
        (
            "backup_service.pid",
            "the running service's pid, locked by it while it runs",
        ),
        (
            ".backupctl-state.json",
            "each schedule's last run and last success (status, check, catch-up)",
        ),
        (
            "backups/.NAME.lock, backups/.NAME.*.partial",
            "a schedule's run lock and the archive being written",
        ),
        ("backups/.NAME.progress", "a run in progress, for status"),
    ] {
        item(roff, path, what);
    }
}

fn exit_status(roff: &mut Roff) {
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in exit_codes::TABLE {
        item(roff, code, meaning);
    }
}

/// Every variable backupctl reads. A test checks that each one the command
/// line reads is here.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    ("BACKUPCTL_HOME", "the home, as --home"),
    (
        "BACKUPCTL_SYSTEM_HOME",
        "the system home looked at last (default /var/lib/backupctl; empty: none)",
    ),
    (
        "BACKUPCTL_LOG_MAX_SIZE",
        "rotate a log past this size, as --log-max-size (default 10M)",
    ),
    (
        "BACKUPCTL_LOG_KEEP",
        "rotated logs kept, as --log-keep (default 3)",
    ),
    ("BACKUPCTL_LOG_TIME", "dmy or iso, as --log-time"),
    (
        "BACKUPCTL_METRICS_FILE",
        "the Prometheus text file, as --metrics-file",
    ),
    (
        "TZ",
        "the time zone schedules run in and times are shown in",
    ),
    (
        "JOURNAL_STREAM",
        "set by systemd: a foreground service whose stderr is the journal writes syslog priorities and no time stamps",
    ),
    (
        "BACKUPCTL_FAKE_NOW",
        "testing aid: start the clock at this local time (2023-02-08T16:07:00)",
    ),
    (
        "BACKUPCTL_CRASH_AT, BACKUPCTL_PAUSE_AT",
        "testing aids: abort or stop run at a step of publishing an archive; PAUSE_AT also stops restore at restore-checked, restore-entry:PATH or restore-written:PATH",
    ),
];

fn environment(roff: &mut Roff) {
    roff.control("SH", ["ENVIRONMENT"]);
    for (name, what) in ENVIRONMENT {
        item(roff, name, what);
    }
    paragraph(
        roff,
        "Hooks get BACKUPCTL_SCHEDULE, BACKUPCTL_SOURCE, BACKUPCTL_ARCHIVE, BACKUPCTL_STATE \
         (running, ok, partial, unchanged or failed), BACKUPCTL_SIZE, BACKUPCTL_DURATION and \
         BACKUPCTL_ERROR.",
    );
}

fn signals(roff: &mut Roff) {
    roff.control("SH", ["SIGNALS"]);
    item(
        roff,
        "SIGTERM, SIGINT (service)",
        "Stop after the backups in progress and those already queued, then exit 0 and remove \
         the pidfile. A second one aborts the backups in progress (their partial archives are \
         removed).",
    );
    item(
        roff,
        "SIGHUP (service)",
        "Reopen the log file and reload the schedules.",
    );
    item(
        roff,
        "SIGINT, SIGTERM (run)",
        "Stop at once: say so, remove the partial archive and exit 130 (143 for SIGTERM). \
         Earlier archives are never touched.",
    );
}

fn examples(roff: &mut Roff) {
    roff.control("SH", ["EXAMPLES"]);
    for (what, command) in [
        (
            "Back up a directory every night at 02:30, zstd, keeping a week of dailies:",
            "backupctl create \"/home/me/docs;02:30;docs;format=tar.zst,keep-daily=7,min-keep=3\"",
        ),
        (
            "Every 15 minutes when something changed, pinging a monitor:",
            "backupctl create \"/srv/www;*/15 * * * *;www;if-changed,keep-last=20,ping=https://hc-ping.com/UUID\"",
        ),
        (
            "Start the service, writing metrics for node_exporter:",
            "backupctl start --metrics-file /var/lib/node_exporter/textfile_collector/backupctl.prom",
        ),
        ("Back up one schedule now:", "backupctl run docs"),
        (
            "Check from cron that every backup is recent, quietly:",
            "backupctl check -q",
        ),
        (
            "Restore an archive into a new directory:",
            "backupctl restore docs_20250101_023000.tar.zst --to /tmp/docs",
        ),
        (
            "Install the man pages:",
            "mkdir -p /usr/local/share/man/man1 && backupctl man --dir /usr/local/share/man/man1",
        ),
    ] {
        roff.control("PP", []).text([roman(what)]);
        roff.control("RS", [])
            .text([italic(command)])
            .control("RE", []);
    }
}

fn see_also(roff: &mut Roff) {
    roff.control("SH", ["SEE ALSO"]);
    let mut refs: Vec<String> = command_names()
        .iter()
        .map(|name| format!("{NAME}-{name}(1)"))
        .collect();
    refs.extend(["tar(1)", "zstd(1)", "crontab(5)", "systemd.service(5)"].map(String::from));
    roff.text([roman(refs.join(", "))]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_section_names_every_variable_the_command_line_reads() {
        fn envs(command: &clap::Command, out: &mut Vec<String>) {
            for arg in command.get_arguments() {
                if let Some(env) = arg.get_env() {
                    out.push(env.to_string_lossy().into_owned());
                }
            }
            for sub in command.get_subcommands() {
                envs(sub, out);
            }
        }
        let mut read = Vec::new();
        envs(&built(), &mut read);
        assert!(read.len() >= 5, "{read:?}");
        for name in read {
            assert!(
                ENVIRONMENT.iter().any(|(listed, _)| listed.contains(&name)),
                "{name} is not in the ENVIRONMENT section"
            );
        }
    }
}
