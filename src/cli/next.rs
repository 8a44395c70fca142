//! `next "EXPR" [-n N]`: prints the next N run times of a schedule time
//! (`02:30`, `*/15 * * * *`, `@daily`), so an expression can be checked
//! before it goes into a schedule.

use super::{Context, print_lines};
use crate::error::Error;
use crate::exit_codes::ExitCode;
use crate::primitives::printable;
use crate::store::schedule;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The time field of a schedule: hh:mm, a five-field cron expression or
    /// @hourly, @daily, @weekly, @monthly
    #[arg(allow_hyphen_values = true)]
    pub expression: String,
    /// How many run times to print (1 to 1000)
    #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub count: u16,
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let timing = schedule::parse_time(&args.expression).map_err(Error::BadTime)?;
    let mut at = ctx.clock.now().with_timezone(&ctx.zone);
    let mut lines = Vec::new();
    for _ in 0..args.count {
        let Some(next) = timing.next_after(&at) else {
            break;
        };
        // The offset shows which side of a clock change a run falls on.
        lines.push(next.format("%a %d/%m/%Y %H:%M %:z").to_string());
        at = next;
    }
    log::info!("Show next runs of {}", printable(&args.expression));
    print_lines(lines)?;
    Ok(ExitCode::Success)
}
