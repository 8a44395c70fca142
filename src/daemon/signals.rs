//! Signals, turned into flags and wake-ups. A first SIGTERM or SIGINT asks for a
//! graceful stop; a second one aborts the backup in progress. SIGHUP wakes the
//! loop (the store is re-read at every cycle anyway).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

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
}

impl Shutdown {
    /// Starts the signal thread. Call after forking, never before.
    pub fn install(first: FirstSignal) -> io::Result<Self> {
        let stop = Arc::new(AtomicI32::new(0));
        let abort = Arc::new(AtomicBool::new(false));
        let (tx, wakes) = mpsc::channel();
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        let (thread_stop, thread_abort) = (stop.clone(), abort.clone());
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    let wake = if signal == SIGHUP {
                        Wake::Hangup
                    } else {
                        // Not logged here: the loop logs the stop in order
                        // with the backups it finishes first.
                        let again = thread_stop
                            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
                            .is_err();
                        if again || first == FirstSignal::Abort {
                            thread_abort.store(true, Ordering::SeqCst);
                        }
                        Wake::Stop
                    };
                    if tx.send(wake).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self { stop, abort, wakes })
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
