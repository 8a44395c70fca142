//! Where "now" comes from. Code that needs the time takes a [`Clock`], so tests
//! can run the scheduler at any date (a day rollover, a late wake-up, the night
//! clocks change) without waiting for the wall clock.

use std::time::Instant;

use chrono::{DateTime, FixedOffset, Local, NaiveDateTime, TimeZone, Utc};

/// Environment variable that starts the process clock at a fixed local time
/// (`YYYY-MM-DDTHH:MM[:SS]`); it then advances in real time. A testing aid: it
/// lets the end-to-end tests reproduce the spec's output for 08/02/2023 16:07.
pub const FAKE_NOW_VAR: &str = "BACKUPCTL_FAKE_NOW";

/// A source of the current instant.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that starts at a chosen instant and advances with real time.
#[derive(Debug, Clone)]
pub struct OffsetClock {
    start: DateTime<Utc>,
    started_at: Instant,
}

impl OffsetClock {
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            start,
            started_at: Instant::now(),
        }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.started_at.elapsed())
            .unwrap_or(chrono::Duration::zero());
        self.start + elapsed
    }
}

/// A clock that always answers the same instant, for unit tests.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// [`FAKE_NOW_VAR`] holds something that is not a local time.
#[derive(Debug, thiserror::Error)]
#[error(
    "{FAKE_NOW_VAR}={} is not a local time like 2023-02-08T16:07:00",
    crate::primitives::quote(value)
)]
pub struct BadFakeNow {
    pub value: String,
}

/// The clock for this process: the system clock, unless [`FAKE_NOW_VAR`] names a
/// start time. A value that does not parse is an error, not silently ignored.
pub fn from_env() -> Result<Box<dyn Clock>, BadFakeNow> {
    match std::env::var(FAKE_NOW_VAR) {
        Err(_) => Ok(Box::new(SystemClock)),
        Ok(text) => {
            let start = parse_local(&text).ok_or(BadFakeNow { value: text })?;
            Ok(Box::new(OffsetClock::starting_at(start)))
        }
    }
}

/// `YYYY-MM-DDTHH:MM[:SS]` on the local wall clock, as an instant.
pub fn parse_local(text: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
        .ok()?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// `instant` on the local wall clock, with its offset. With [`log_stamp`]
/// and [`parse_local`] the one place below the command line that reads the
/// local time zone (`TZ`, `/etc/localtime`); the commands read it once in
/// their context and the service loop takes it from there.
pub fn to_local(instant: DateTime<Utc>) -> DateTime<FixedOffset> {
    instant.with_timezone(&Local).fixed_offset()
}

/// ISO 8601 with seconds and the UTC offset, `2026-11-24T15:36:04+01:00`,
/// in local time: the `--log-time iso` stamp.
pub fn iso_stamp(instant: DateTime<Utc>) -> String {
    to_local(instant).to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// The spec's log timestamp, `dd/mm/YYYY HH:MM`, in local time.
pub fn log_stamp(instant: DateTime<Utc>) -> String {
    instant
        .with_timezone(&Local)
        .format("%d/%m/%Y %H:%M")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_clock_starts_at_the_given_instant() {
        let start = Utc.with_ymd_and_hms(2023, 2, 8, 16, 7, 0).unwrap();
        let clock = OffsetClock::starting_at(start);
        let now = clock.now();
        assert!(now >= start && now - start < chrono::Duration::seconds(5));
    }

    #[test]
    fn fake_time_parses_with_and_without_seconds() {
        assert!(parse_local("2023-02-08T16:07").is_some());
        assert!(parse_local("2023-02-08T16:07:30").is_some());
        assert!(parse_local("yesterday").is_none());
    }
}
