//! The one daemon harness: a service started in a test's home, waited for by
//! its pidfile, stopped by the test, and always stopped on drop.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::expect::{Output, Process, Test};
use super::{TestEnv, eventually};

/// A running `backup_service`: either detached by `backup_manager start` or a
/// foreground process the test started.
pub struct Service<'e> {
    env: &'e TestEnv,
    foreground: Option<Process>,
}

impl<'e> Service<'e> {
    /// `backup_manager start`, which must succeed silently and return with the
    /// daemon running.
    #[track_caller]
    pub fn start(env: &'e TestEnv) -> Self {
        env.manager(["start"]).run();
        let service = Self {
            env,
            foreground: None,
        };
        assert!(alive(service.pid()), "start returned without a live daemon");
        service
    }

    /// Starts `test` (a foreground service, e.g. `env.service([])`) and waits
    /// for its pidfile to name it (the file exists, empty, a moment before).
    /// Its expected status and output are checked at `stop`.
    #[track_caller]
    pub fn foreground(env: &'e TestEnv, test: Test) -> Self {
        let mut process = test.spawn();
        eventually("the daemon's pidfile", || {
            env.read(PIDFILE).contains('\n') || !process.is_running()
        });
        assert!(process.is_running(), "the service exited at start");
        Self {
            env,
            foreground: Some(process),
        }
    }

    /// The pid in the pidfile.
    #[track_caller]
    pub fn pid(&self) -> i32 {
        daemon_pid(self.env)
    }

    /// The foreground process, for a test that needs its pid or exit.
    pub fn process(&mut self) -> &mut Process {
        self.foreground.as_mut().expect("a foreground service")
    }

    #[track_caller]
    pub fn signal(&mut self, signal: Signal) {
        match &mut self.foreground {
            Some(process) => process.signal(signal),
            None => kill(Pid::from_raw(self.pid()), signal).expect("signal the daemon"),
        }
    }

    /// Polls the service log for a line containing `needle`, and for a
    /// foreground service its stderr too: the service writes each line to
    /// its log, then to stderr, so a test that signals the service next (and
    /// expects the signal's line after this one) must see it in both.
    #[track_caller]
    pub fn wait_for_log(&self, needle: &str) {
        self.env.wait_for_log("backup_service.log", needle);
        if let Some(process) = &self.foreground {
            process.wait_for_stderr(needle);
        }
    }

    /// Stops the service: SIGTERM for a foreground one (whose status and
    /// output are then checked), `backup_manager stop` for a detached one
    /// (which must succeed silently and leave no pidfile).
    #[track_caller]
    pub fn stop(mut self) -> Output {
        let output = match self.foreground.take() {
            Some(process) => process.signal_and_wait(Signal::SIGTERM),
            None => self.env.manager(["stop"]).run(),
        };
        assert!(
            !self.env.path(PIDFILE).exists(),
            "the pidfile outlived the service"
        );
        output
    }

    /// Waits for a foreground service to exit by itself (after signals the
    /// test sent) and checks it.
    #[track_caller]
    pub fn wait(mut self) -> Output {
        self.foreground.take().expect("a foreground service").wait()
    }
}

impl Drop for Service<'_> {
    fn drop(&mut self) {
        // A foreground process is killed by its own drop.
        if self.foreground.take().is_none() {
            self.env.stop_any_daemon();
        }
    }
}

/// What the service logs when a first SIGTERM arrives.
pub const SIGTERM_STOPPING: &str = "SIGTERM received: stopping after the backups in progress";

/// What the service logs when a second SIGTERM arrives.
pub const SIGTERM_AGAIN: &str = "SIGTERM received again: aborting the backups in progress";

/// The stderr of a foreground service started on `day` (`dd/mm/YYYY`) that
/// logs `middle` (pattern lines, without their stamps) and is then stopped by
/// SIGTERM: each log line, stamped, as a `Test::stderr_pattern`. For a
/// service signalled while it still has work, see `foreground_stderr_of`.
pub fn foreground_stderr(env: &TestEnv, day: &str, middle: &[&str]) -> String {
    let mut lines = middle.to_vec();
    lines.push(SIGTERM_STOPPING);
    foreground_stderr_of(env, day, &lines)
}

/// The stderr of a foreground service started on `day` that logs `middle`,
/// where the test places the stop signals' lines (`SIGTERM_STOPPING`,
/// `SIGTERM_AGAIN`) itself, since the service logs a signal when it arrives,
/// before what it then finishes or aborts.
pub fn foreground_stderr_of(env: &TestEnv, day: &str, middle: &[&str]) -> String {
    let home = env.home().display();
    let mut lines = vec![format!("backup_service started (pid [..], home {home})")];
    lines.extend(middle.iter().map(|l| l.to_string()));
    lines.push("backup_service stopped (pid [..])".into());
    lines
        .iter()
        .map(|l| format!("[{day} [..]] {l}\n"))
        .collect()
}

/// True while `signal` waits to be delivered to `pid` (it has not reached
/// the process's handler yet), from `/proc/PID/status`.
pub fn signal_pending(pid: i32, signal: Signal) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let bit = 1u64 << (signal as i32 - 1);
    status
        .lines()
        .filter_map(|l| {
            l.strip_prefix("SigPnd:")
                .or_else(|| l.strip_prefix("ShdPnd:"))
        })
        .any(|mask| u64::from_str_radix(mask.trim(), 16).is_ok_and(|m| m & bit != 0))
}

pub const PIDFILE: &str = "backup_service.pid";

/// The pid on the first line of `env`'s pidfile (a stopping daemon records
/// its stop phase on the lines after it).
#[track_caller]
pub fn daemon_pid(env: &TestEnv) -> i32 {
    let text = env.read(PIDFILE);
    text.lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("pidfile holds {text:?}"))
}

/// True while `pid` runs; a zombie (exited, not yet reaped) is not alive.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        !state.starts_with('Z')
    })
}
