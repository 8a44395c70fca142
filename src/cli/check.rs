//! `check [--max-age DURATION]`: a health check for cron, monitoring or a
//! container. Exits 0 when every schedule's last successful backup is recent
//! enough, else prints one line per problem and exits 1: a schedule overdue
//! or never backed up, archives dated in the future, a last run that was
//! partial, hooks that will not run, a line that is not a valid schedule, a
//! home with no schedules at all. It needs no daemon: the state file and the
//! archives are the truth.

use chrono::TimeDelta;

use super::{Context, print_lines};
use crate::backup::health::Judge;
use crate::error::Error;
use crate::exit_codes::ExitCode;
use crate::primitives::{error_chain, printable};
use crate::store::state::{RunStates, StateFile};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Overdue after this long without a successful backup (90m, 36h, 7d)
    /// [default: the schedule's interval plus a margin]
    #[arg(long, value_name = "DURATION", value_parser = parse_max_age)]
    pub max_age: Option<TimeDelta>,
    /// Print nothing when every schedule is fine (cron mails any output);
    /// problems are still listed
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_max_age(text: &str) -> Result<TimeDelta, String> {
    crate::store::options::parse_duration(text)
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let states = StateFile::new(ctx.home.state_file(), ctx.home.state_lock())
        .load()
        .unwrap_or_else(|error| {
            let error = error_chain(&error);
            eprintln!(
                "{}: warning: {error}; judging by the archives alone",
                ctx.program
            );
            log::warn!("{error}");
            RunStates::default()
        });
    let entries = ctx.store.load()?;
    let hooks_trusted = ctx.store.hooks_trusted();
    let mut problems = Vec::new();
    let mut fresh = 0;
    if entries.is_empty() {
        // Most likely run from the wrong directory: say which home was read.
        problems.push(format!(
            "no schedules: the home {} has none in {}",
            printable(&ctx.home.root().display().to_string()),
            ctx.home.display_path(ctx.store.path())
        ));
    }
    let judge = Judge {
        home: &ctx.home,
        states: &states,
        now: ctx.clock.now(),
        max_age: args.max_age,
        zone: &ctx.zone,
        hooks_trusted: &hooks_trusted,
    };
    for (index, entry) in entries.iter().enumerate() {
        let schedule = match &entry.parsed {
            Ok(schedule) => schedule,
            Err(reason) => {
                problems.push(format!(
                    "schedule {index} is not valid and never runs: {reason}"
                ));
                continue;
            }
        };
        let health = judge.health(schedule);
        fresh += usize::from(health.fresh);
        problems.extend(health.problems);
    }
    if problems.is_empty() {
        let what = if fresh == 1 { "schedule" } else { "schedules" };
        log::info!("Check: {fresh} {what} backed up in time");
        if !args.quiet {
            print_lines([format!("ok: {fresh} {what} backed up in time")])?;
        }
        return Ok(ExitCode::Success);
    }
    log::warn!("Check failed: {}", problems.join("; "));
    print_lines(problems)?;
    Ok(ExitCode::Failure)
}
