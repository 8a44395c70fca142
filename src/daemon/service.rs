//! The service loop: check at start-up and then at every minute boundary, run
//! what is due one schedule after another, re-read the store every cycle.

use std::collections::HashSet;

use chrono::TimeZone;

use super::runner::{self, WhenBusy};
use super::scheduler::{self, MinuteTracker, Window};
use super::signals::{Shutdown, Wake};
use crate::clock::Clock;
use crate::home::Home;
use crate::store::Store;

/// Runs until a stop signal. The cycle that is under way when the signal
/// comes (including the one at start-up) finishes first.
pub fn serve<Tz: TimeZone>(home: &Home, clock: &dyn Clock, zone: &Tz, shutdown: &Shutdown)
where
    Tz::Offset: Copy,
{
    let store = Store::new(home.schedules_file(), home.schedules_lock());
    let mut tracker = MinuteTracker::starting_at(clock.now());
    let mut reported_invalid = HashSet::new();
    loop {
        if let Some(window) = tracker.advance(clock.now()) {
            run_due(
                home,
                &store,
                &window,
                zone,
                clock,
                shutdown,
                &mut reported_invalid,
            );
        }
        if shutdown.stop_requested() {
            break;
        }
        match shutdown.wait(scheduler::until_next_minute(clock.now())) {
            Wake::Hangup => log::info!("SIGHUP received: schedules are re-read every minute"),
            Wake::Stop | Wake::Timeout => {}
        }
    }
}

fn run_due<Tz: TimeZone>(
    home: &Home,
    store: &Store,
    window: &Window,
    zone: &Tz,
    clock: &dyn Clock,
    shutdown: &Shutdown,
    reported_invalid: &mut HashSet<Vec<u8>>,
) where
    Tz::Offset: Copy,
{
    let entries = match store.load() {
        Ok(entries) => entries,
        Err(error) => {
            log::error!("{error}; no backups this minute");
            return;
        }
    };
    for (index, entry) in entries.iter().enumerate() {
        let schedule = match &entry.parsed {
            Ok(schedule) => schedule,
            Err(reason) => {
                // Said once per distinct line, not every minute.
                if reported_invalid.insert(entry.raw.clone()) {
                    log::error!(
                        "schedule {index} skipped, it is not valid: {} ({reason})",
                        entry.text()
                    );
                }
                continue;
            }
        };
        if !scheduler::is_due(&schedule.timing, window, zone) {
            continue;
        }
        if shutdown
            .abort_flag()
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            log::warn!("backup of {} not started: aborting", schedule.name);
            continue;
        }
        // Failures are logged by the runner and never stop the other schedules.
        let request = runner::RunRequest {
            when_busy: WhenBusy::Skip,
            now: clock.now(),
            watch: crate::archive::Watch {
                abort: shutdown.abort_flag(),
                progress: None,
            },
        };
        let _ = runner::run_schedule(home, schedule, &request);
    }
}
