//! `create "path;hh:mm;name[;options]"`: validates a schedule and appends it to the store.

use super::Context;
use crate::archive::encrypt;
use crate::error::Error;
use crate::exit_codes::ExitCode;
use crate::primitives::{printable, redact_urls};
use crate::remote::Rclone;
use crate::store::Schedule;

#[derive(Debug, clap::Args)]
#[command(after_long_help = crate::store::options::help())]
pub struct Args {
    /// The schedule, e.g. "/home/me/docs;02:30;docs": back up the
    /// directory every day at that time into backups/NAME.tar. The time
    /// may also be a cron expression ("30 2 * * mon-fri") or @hourly,
    /// @daily, @weekly, @monthly; try it with `next` first. An optional
    /// fourth field holds options (see --help)
    #[arg(allow_hyphen_values = true)]
    pub schedule: String,
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let line = &args.schedule;
    // A malformed line is refused by `add` with its own message.
    if let Ok(schedule) = Schedule::parse(line) {
        check_outside_the_line(ctx, &schedule)?;
    }
    let schedule = ctx.store.add(line)?;
    log::info!("New schedule added: {}", printable(&redact_urls(line)));
    let typed = std::iter::once(&schedule.source).chain(&schedule.options.also);
    for source in typed.map(|s| ctx.home.resolve_source(s)) {
        if !source.exists() {
            let warning = format!(
                "source {} does not exist yet; its backups will fail until it does",
                source.display()
            );
            log::warn!("{warning}");
            eprintln!("{}: warning: {warning}", ctx.program);
        }
    }
    Ok(ExitCode::Success)
}

/// What a schedule needs besides its line, checked before it is stored:
/// its recipients files read and valid, rclone installed for `copy-to`.
fn check_outside_the_line(ctx: &Context, schedule: &Schedule) -> Result<(), Error> {
    for file in &schedule.options.encrypt_to_files {
        encrypt::read_recipients_file(&ctx.home.resolve_source(file))?;
    }
    if schedule.options.copy_to.is_some() {
        Rclone::find()?;
    }
    Ok(())
}
