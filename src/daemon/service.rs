//! The service loop: check at start-up and then at every minute boundary,
//! queue what is due, and let `jobs` worker threads run the queue, so overdue
//! runs after a wake-up wait their turn instead of stampeding. The store is
//! re-read every cycle; SIGHUP reopens the logs and reloads it at once.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use chrono::{DateTime, TimeZone, Utc};

use super::scheduler::{self, Decision, MinuteTracker, Window};
use super::signals::{Shutdown, Wake};
use crate::backup::{self, History, Watch, WhenBusy};
use crate::clock::{Clock, log_stamp};
use crate::home::Home;
use crate::primitives::error_chain;
use crate::store::{Entry, Schedule, StateFile, Store};

/// Why a run was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Due,
    /// A run missed while the service was down or the machine slept.
    CatchUp {
        due: DateTime<Utc>,
    },
}

/// One run waiting for a worker.
#[derive(Debug, Clone)]
pub struct QueuedRun {
    pub schedule: Schedule,
    pub trigger: Trigger,
}

/// The runs waiting for a worker, first in first out. A schedule is queued or
/// running at most once: a second due time meanwhile adds nothing.
#[derive(Default)]
pub struct RunQueue {
    inner: Mutex<QueueInner>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueInner {
    waiting: VecDeque<QueuedRun>,
    in_flight: HashSet<String>,
    closed: bool,
}

impl RunQueue {
    fn lock(&self) -> MutexGuard<'_, QueueInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `run`; false when that schedule is already queued or running.
    pub fn push(&self, run: QueuedRun) -> bool {
        let mut inner = self.lock();
        if inner.closed || !inner.in_flight.insert(run.schedule.name.clone()) {
            return false;
        }
        inner.waiting.push_back(run);
        self.ready.notify_all();
        true
    }

    /// The next run, waiting for one; `None` once the queue is closed and
    /// empty.
    pub fn pop(&self) -> Option<QueuedRun> {
        let mut inner = self.lock();
        loop {
            if let Some(run) = inner.waiting.pop_front() {
                return Some(run);
            }
            if inner.closed {
                return None;
            }
            inner = self.ready.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Marks the run of `name` finished.
    pub fn done(&self, name: &str) {
        self.lock().in_flight.remove(name);
        self.ready.notify_all();
    }

    /// Waits until nothing is queued or running.
    pub fn wait_until_idle(&self) {
        let mut inner = self.lock();
        while !inner.in_flight.is_empty() {
            inner = self.ready.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Takes no more runs; the workers stop once the queue is empty. (After
    /// a second stop signal they skip what is left: see [`work`].)
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

/// How the service runs its queue.
pub struct Serving<'a> {
    /// How many backups may run at once (at least 1).
    pub jobs: usize,
    /// The Prometheus text file rewritten after each run.
    pub metrics: Option<&'a std::path::Path>,
}

/// Runs until a stop signal, with `jobs` backups at most at once. The runs
/// queued when the signal comes (the cycle under way, the start-up one
/// included) finish first; a second signal aborts them.
pub fn serve<Tz: TimeZone + Sync>(
    home: &Home,
    clock: &dyn Clock,
    zone: &Tz,
    shutdown: &Shutdown,
    serving: &Serving<'_>,
) where
    Tz::Offset: Copy,
{
    let queue = RunQueue::default();
    let abort = shutdown.abort_flag();
    std::thread::scope(|scope| {
        for _ in 0..serving.jobs.max(1) {
            scope.spawn(|| {
                work(home, clock, &queue, abort, || {
                    if let Some(path) = serving.metrics {
                        crate::metrics::write_or_warn(path, home, clock.now(), zone);
                    }
                })
            });
        }
        run_loop(home, clock, zone, shutdown, &queue);
        queue.close();
    });
    // Here every queued run has finished or been skipped.
}

/// Runs queued backups until the queue closes, calling `after_run` after
/// each one that ran.
fn work(
    home: &Home,
    clock: &dyn Clock,
    queue: &RunQueue,
    abort: &AtomicBool,
    after_run: impl Fn(),
) {
    while let Some(run) = queue.pop() {
        let name = run.schedule.name.clone();
        if abort.load(Ordering::SeqCst) {
            log::warn!("backup of {name} not started: aborting");
        } else {
            if let Trigger::CatchUp { due } = run.trigger {
                log::info!("Catch-up run for {name}: due at {}", log_stamp(due));
            }
            // Outcomes, failures and busy skips are all logged by the job.
            let watch = Watch {
                abort,
                progress: None,
            };
            let _ = backup::run_job(home, clock, &run.schedule, WhenBusy::Skip, watch);
            after_run();
        }
        queue.done(&name);
    }
}

/// The minute loop, on the calling thread.
fn run_loop<Tz: TimeZone>(
    home: &Home,
    clock: &dyn Clock,
    zone: &Tz,
    shutdown: &Shutdown,
    queue: &RunQueue,
) where
    Tz::Offset: Copy,
{
    let store = Store::new(home.schedules_file(), home.schedules_lock());
    let mut cycle = Cycle {
        home,
        store: &store,
        queue,
        reported_invalid: HashSet::new(),
    };
    let start = clock.now();
    cycle.queue_catch_up_at_start(start, zone);
    let mut tracker = MinuteTracker::starting_at(start);
    let mut woke_from_sleep = false;
    loop {
        if let Some(window) = tracker.advance(clock.now()) {
            cycle.queue_due(&window, woke_from_sleep, zone);
        }
        // A stop lets the runs already queued finish before it is acknowledged.
        finish_queue_if_stopping(queue, shutdown);
        // The signal was logged when it arrived (signals.rs).
        if shutdown.stop_requested() {
            break;
        }
        let before = clock.now();
        let nap = scheduler::until_next_minute(before);
        let wake = shutdown.wait(nap);
        let after = clock.now();
        woke_from_sleep = scheduler::slept_through(before, after, nap);
        if woke_from_sleep {
            log::info!(
                "woke up at {} after a sleep that began at {}: checking the missed runs",
                log_stamp(after),
                log_stamp(before)
            );
        }
        if wake == Wake::Hangup {
            crate::logging::reopen();
            cycle.reported_invalid.clear();
            match store.load() {
                Ok(entries) => log::info!(
                    "SIGHUP received: log files reopened, {} schedules loaded",
                    entries.len()
                ),
                Err(error) => log::error!(
                    "SIGHUP received: log files reopened; {}",
                    error_chain(&error)
                ),
            }
        }
    }
}

fn finish_queue_if_stopping(queue: &RunQueue, shutdown: &Shutdown) {
    if shutdown.stop_requested() {
        queue.close();
        queue.wait_until_idle();
    }
}

/// What one cycle needs.
struct Cycle<'a> {
    home: &'a Home,
    store: &'a Store,
    queue: &'a RunQueue,
    /// Invalid lines already reported, so each is said once, not every minute.
    reported_invalid: HashSet<Vec<u8>>,
}

impl Cycle<'_> {
    fn schedules(&mut self) -> Vec<Schedule> {
        let entries = match self.store.load() {
            Ok(entries) => entries,
            Err(error) => {
                log::error!("{}; no backups this minute", error_chain(&error));
                return Vec::new();
            }
        };
        valid_schedules(&entries, &mut self.reported_invalid)
    }

    fn queue_catch_up_at_start<Tz: TimeZone>(&mut self, now: DateTime<Utc>, zone: &Tz)
    where
        Tz::Offset: Copy,
    {
        let last_runs = LastRuns::read(self.home);
        for schedule in self.schedules() {
            let last = last_runs.of(self.home, &schedule);
            let decision = scheduler::decide_at_start(
                &schedule.timing,
                schedule.options.catch_up,
                now,
                last,
                zone,
            );
            self.act(schedule, decision);
        }
    }

    fn queue_due<Tz: TimeZone>(&mut self, window: &Window, woke_from_sleep: bool, zone: &Tz)
    where
        Tz::Offset: Copy,
    {
        let last_runs = woke_from_sleep.then(|| LastRuns::read(self.home));
        let decided: Vec<(Schedule, Decision)> = self
            .schedules()
            .into_iter()
            .map(|schedule| {
                let last = last_runs.as_ref().and_then(|l| l.of(self.home, &schedule));
                let decision = scheduler::decide(
                    &schedule.timing,
                    schedule.options.catch_up,
                    window,
                    woke_from_sleep,
                    last,
                    zone,
                );
                (schedule, decision)
            })
            .collect();
        for (schedule, decision) in self.fire_once(window, decided) {
            self.act(schedule, decision);
        }
    }

    /// Drops the runs a previous service already fired for this window's
    /// minutes (stopped and started again within a minute), and notes the
    /// others in the state file before they are queued.
    fn fire_once(
        &self,
        window: &Window,
        decided: Vec<(Schedule, Decision)>,
    ) -> Vec<(Schedule, Decision)> {
        if !decided.iter().any(|(_, d)| *d == Decision::Run) {
            return decided;
        }
        let file = StateFile::new(self.home.state_file(), self.home.state_lock());
        let states = file.load().unwrap_or_else(|error| {
            log::warn!(
                "{}; cannot tell which schedules already ran this minute",
                error_chain(&error)
            );
            Default::default()
        });
        let fired_here = |name: &str| {
            states
                .schedules
                .get(name)
                .and_then(|s| s.last_fired)
                .is_some_and(|minute| window.after < minute && minute <= window.upto)
        };
        let mut kept = Vec::with_capacity(decided.len());
        let mut firing = Vec::new();
        for (schedule, decision) in decided {
            if decision == Decision::Run {
                if fired_here(&schedule.name) {
                    log::info!(
                        "backup of {} for {} skipped: it was started for that minute already",
                        schedule.name,
                        log_stamp(window.upto)
                    );
                    continue;
                }
                firing.push(schedule.name.clone());
            }
            kept.push((schedule, decision));
        }
        if !firing.is_empty()
            && let Err(error) = file.record_fired(&firing, window.upto)
        {
            log::warn!(
                "{}; a restart within this minute would run these schedules again",
                error_chain(&error)
            );
        }
        kept
    }

    fn act(&self, schedule: Schedule, decision: Decision) {
        let trigger = match decision {
            Decision::Nothing => return,
            Decision::Missed { due } => {
                log::warn!(
                    "run of {} due at {} was missed while the machine was asleep (the schedule has no catch-up option)",
                    schedule.name,
                    log_stamp(due)
                );
                return;
            }
            Decision::Run => Trigger::Due,
            Decision::CatchUp { due } => Trigger::CatchUp { due },
        };
        let name = schedule.name.clone();
        if !self.queue.push(QueuedRun { schedule, trigger }) {
            log::warn!("backup of {name} skipped: its previous run is still queued or in progress");
        }
    }
}

fn valid_schedules(entries: &[Entry], reported_invalid: &mut HashSet<Vec<u8>>) -> Vec<Schedule> {
    let mut valid = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        match &entry.parsed {
            Ok(schedule) => valid.push(schedule.clone()),
            Err(reason) => {
                if reported_invalid.insert(entry.raw.clone()) {
                    log::error!(
                        "schedule {index} skipped, it is not valid: {} ({reason})",
                        entry.text()
                    );
                }
            }
        }
    }
    valid
}

/// When each schedule last ran: the state file, or else its newest archive.
struct LastRuns(crate::store::state::RunStates);

impl LastRuns {
    fn read(home: &Home) -> Self {
        let file = StateFile::new(home.state_file(), home.state_lock());
        Self(file.load().unwrap_or_else(|error| {
            log::warn!(
                "{}; judging missed runs by the archives alone",
                error_chain(&error)
            );
            Default::default()
        }))
    }

    fn of(&self, home: &Home, schedule: &Schedule) -> Option<DateTime<Utc>> {
        let recorded = self
            .0
            .schedules
            .get(&schedule.name)
            .and_then(|s| s.last_run.as_ref())
            .map(|r| r.started);
        let archived = History::of(home, schedule)
            .newest()
            .ok()
            .flatten()
            .map(|newest| DateTime::<Utc>::from(newest.modified));
        recorded.max(archived)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    fn run(name: &str) -> QueuedRun {
        QueuedRun {
            schedule: Schedule::parse(&format!("src;10:00;{name}")).unwrap(),
            trigger: Trigger::Due,
        }
    }

    #[test]
    fn the_queue_keeps_order_and_one_entry_per_schedule() {
        let queue = RunQueue::default();
        assert!(queue.push(run("a")));
        assert!(queue.push(run("b")));
        assert!(!queue.push(run("a")), "a is already queued");
        assert_eq!(queue.pop().unwrap().schedule.name, "a");
        assert!(!queue.push(run("a")), "a is running");
        queue.done("a");
        assert!(queue.push(run("a")));
        // Closed: nothing new, but what was queued still comes out.
        queue.close();
        assert!(!queue.push(run("c")));
        assert_eq!(queue.pop().unwrap().schedule.name, "b");
        assert_eq!(queue.pop().unwrap().schedule.name, "a");
        assert!(queue.pop().is_none());
    }

    /// Overdue runs after a wake-up are all queued at once; `jobs` workers
    /// take them, never more at a time.
    fn most_at_once(jobs: usize) -> usize {
        let queue = RunQueue::default();
        let running = AtomicUsize::new(0);
        let most = Arc::new(AtomicUsize::new(0));
        for i in 0..6 {
            queue.push(run(&format!("s{i}")));
        }
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| {
                    while let Some(r) = queue.pop() {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(30));
                        running.fetch_sub(1, Ordering::SeqCst);
                        queue.done(&r.schedule.name);
                    }
                });
            }
            queue.close();
        });
        most.load(Ordering::SeqCst)
    }

    #[test]
    fn queued_overdue_runs_go_one_after_another_by_default() {
        assert_eq!(most_at_once(1), 1);
        let two = most_at_once(2);
        assert!((1..=2).contains(&two), "{two}");
    }
}
