//! `next "EXPR" [-n N]`: prints the next N run times of a schedule time
//! (`02:30`, `*/15 * * * *`, `@daily`), so an expression can be checked
//! before it goes into a schedule.

use std::process::ExitCode;

use chrono::Local;

use super::{Context, print_lines};
use crate::error::Error;
use crate::primitives::printable;
use crate::store::schedule;

pub fn run(ctx: &Context, expression: &str, count: u16) -> Result<ExitCode, Error> {
    let timing =
        schedule::parse_time(expression).map_err(|reason| Error::Invalid(reason.to_string()))?;
    let mut at = ctx.clock.now().with_timezone(&Local);
    let mut lines = Vec::new();
    for _ in 0..count {
        let Some(next) = timing.next_after(&at) else {
            break;
        };
        // The offset shows which side of a clock change a run falls on.
        lines.push(next.format("%a %d/%m/%Y %H:%M %:z").to_string());
        at = next;
    }
    log::info!("Show next runs of {}", printable(expression));
    print_lines(lines)?;
    Ok(ExitCode::SUCCESS)
}
