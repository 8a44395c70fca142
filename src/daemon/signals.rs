//! Signals, turned into flags and wake-ups. A first SIGTERM or SIGINT asks for a
//! graceful stop; a second one aborts the backup in progress. SIGHUP wakes the
//! loop (the store is re-read at every cycle anyway). The daemon logs a stop
//! signal and records it in its pidfile the moment it arrives (see
//! [`Shutdown::on_stop`]), so `stop` can tell that one was sent already.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use std::sync::Mutex;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::pidfile::StopPhase;

/// Told of each stop phase as its signal arrives (the daemon's pidfile).
pub type StopNotice = Box<dyn FnMut(StopPhase) + Send>;

/// How the first stop signal is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstSignal {
    /// Finish the current work, then stop (the daemon).
    Graceful,
    /// Abort at once (a single `run`: there is nothing to finish first).
    Abort,
}

/// What the signal thread reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Stop,
    Hangup,
    Timeout,
}

/// Flags set by signals, and a channel that wakes a sleeping loop.
pub struct Shutdown {
    /// The first stop signal received, 0 before any.
    stop: Arc<AtomicI32>,
    abort: Arc<AtomicBool>,
    wakes: Receiver<Wake>,
    notice: Arc<Mutex<Option<StopNotice>>>,
}

impl Shutdown {
    /// Starts the signal thread. Call after forking, never before.
    pub fn install(first: FirstSignal) -> io::Result<Self> {
        let stop = Arc::new(AtomicI32::new(0));
        let abort = Arc::new(AtomicBool::new(false));
        let (tx, wakes) = mpsc::channel();
        let notice: Arc<Mutex<Option<StopNotice>>> = Arc::default();
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        let (thread_stop, thread_abort) = (stop.clone(), abort.clone());
        let thread_notice = notice.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    let wake = if signal == SIGHUP {
                        Wake::Hangup
                    } else {
                        // Only this thread writes the flags. The signal is
                        // logged before they are set, so nothing it causes
                        // (an abort, the daemon's exit) is logged before it;
                        // the notice comes after, so that `on_stop` sees
                        // either the flags or the notice, never neither.
                        let again = thread_stop.load(Ordering::SeqCst) != 0;
                        let phase = if again || first == FirstSignal::Abort {
                            StopPhase::Aborting
                        } else {
                            StopPhase::Stopping
                        };
                        if first == FirstSignal::Graceful {
                            log_stop_signal(signal, again);
                        }
                        if !again {
                            thread_stop.store(signal, Ordering::SeqCst);
                        }
                        if phase == StopPhase::Aborting {
                            thread_abort.store(true, Ordering::SeqCst);
                        }
                        tell(phase, &thread_notice);
                        Wake::Stop
                    };
                    if tx.send(wake).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            stop,
            abort,
            wakes,
            notice,
        })
    }

    /// Has `notice` told of each stop phase from now on, and at once of the
    /// one already reached (a signal may come before the pidfile exists).
    pub fn on_stop(&self, mut notice: StopNotice) {
        let mut slot = self.notice.lock().unwrap_or_else(|e| e.into_inner());
        if self.stop_requested() {
            notice(StopPhase::Stopping);
        }
        if self.aborting() {
            notice(StopPhase::Aborting);
        }
        *slot = Some(notice);
    }

    pub fn stop_requested(&self) -> bool {
        self.stop_signal().is_some()
    }

    /// The name of the first stop signal received (`SIGTERM`, `SIGINT`).
    pub fn stop_signal(&self) -> Option<&'static str> {
        match self.stop.load(Ordering::SeqCst) {
            0 => None,
            SIGINT => Some("SIGINT"),
            _ => Some("SIGTERM"),
        }
    }

    /// The number of the first stop signal received (2 for SIGINT).
    pub fn stop_signal_number(&self) -> Option<u8> {
        u8::try_from(self.stop.load(Ordering::SeqCst))
            .ok()
            .filter(|&n| n != 0)
    }

    pub fn aborting(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    /// The flag archive writers poll.
    pub fn abort_flag(&self) -> &AtomicBool {
        &self.abort
    }

    /// Sleeps up to `timeout`, waking early for a signal.
    pub fn wait(&self, timeout: Duration) -> Wake {
        match self.wakes.recv_timeout(timeout) {
            Ok(wake) => wake,
            Err(RecvTimeoutError::Timeout) => Wake::Timeout,
            Err(RecvTimeoutError::Disconnected) => Wake::Stop,
        }
    }
}

/// Logs a stop signal of the daemon as it arrives.
fn log_stop_signal(signal: i32, again: bool) {
    let name = if signal == SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    if again {
        log::info!("{name} received again: aborting the backups in progress");
    } else {
        log::info!("{name} received: stopping after the backups in progress");
    }
}

/// Tells the notice, if one is installed yet, of the phase a stop signal began.
fn tell(phase: StopPhase, notice: &Mutex<Option<StopNotice>>) {
    if let Some(notice) = notice.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        notice(phase);
    }
}
