//! The scheduler as a user meets it: `next`, cron schedules, `status`,
//! `check`, hooks, the free-space guard, the per-schedule lock shared by `run`
//! and the daemon, catch-up, SIGHUP, log rotation and the foreground daemon.
//! Clocks are injected with `TestEnv::with_clock`; no test waits for the wall
//! clock to change minute.

use std::fs::{self, File, OpenOptions};
use std::process::{Child, Stdio};
use std::time::{Duration, SystemTime};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::TestEnv;

/// A daemon in the foreground (the `backup_service` name), stopped on drop.
struct Foreground {
    child: Child,
}

impl Foreground {
    fn start(env: &TestEnv, args: &[&str]) -> Self {
        let mut cmd = env.command("backup_service");
        cmd.args(args).stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().expect("start backup_service");
        env.old_eventually("the daemon's pidfile", || {
            env.path("backup_service.pid").exists()
        });
        Self { child }
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("signal the daemon");
    }

    /// Sends SIGTERM and returns the exit code.
    fn stop(mut self) -> Option<i32> {
        self.signal(Signal::SIGTERM);
        for _ in 0..500 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn service_log_has(env: &TestEnv, needle: &str) -> bool {
    env.log_messages("backup_service.log")
        .iter()
        .any(|l| l.contains(needle))
}

fn set_mtime(path: &std::path::Path, t: SystemTime) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.set_modified(t).unwrap();
}

#[test]
fn next_prints_the_coming_run_times() {
    let env = TestEnv::new().with_clock("2024-03-04T10:07:00");
    let run = env.old_ctl(&["next", "*/15 * * * *", "-n", "3"]);
    let lines = run.success().stdout_lines();
    assert_eq!(lines.len(), 3, "{run:?}");
    assert!(lines[0].starts_with("Mon 04/03/2024 10:15"), "{run:?}");
    assert!(lines[2].starts_with("Mon 04/03/2024 10:45"), "{run:?}");
    // Weekdays only, Friday then Monday; five lines by default.
    let run = env.old_ctl(&["next", "30 2 * * mon-fri"]);
    let lines = run.success().stdout_lines();
    assert_eq!(lines.len(), 5);
    assert!(lines[3].starts_with("Fri 08/03/2024 02:30"), "{run:?}");
    assert!(lines[4].starts_with("Mon 11/03/2024 02:30"), "{run:?}");
    env.old_ctl(&["next", "@monthly", "-n", "1"])
        .success()
        .stdout_lines()[0]
        .starts_with("Mon 01/04/2024 00:00")
        .then_some(())
        .expect("@monthly");
}

#[test]
fn next_honours_tz_across_the_spring_forward_gap() {
    let env = TestEnv::new().with_clock("2024-03-30T12:00:00");
    let mut cmd = env.command("backupctl");
    cmd.env("TZ", "Europe/Berlin")
        .args(["next", "30 2 * * *", "-n", "2"]);
    env.run_cmd(cmd)
        .success()
        .stdout_is("Sun 31/03/2024 03:00 +02:00\nMon 01/04/2024 02:30 +02:00\n");
}

#[test]
fn bad_expressions_are_refused_naming_them() {
    let env = TestEnv::new();
    let run = env.old_ctl(&["next", "61 * * * *"]);
    run.code(2)
        .stderr_has("cron expression \"61 * * * *\" is not valid");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    env.old_manager(&["create", "p;0 0 * * funday;n"])
        .code(2)
        .stderr_has("cron expression \"0 0 * * funday\"");
    env.old_manager(&["create", "p;@reboot;n"])
        .code(2)
        .stderr_has("\"@reboot\"");
    assert_eq!(env.schedules(), "");
    env.old_manager(&["create", "p;*/15 * * * *;quarter"])
        .success();
    env.old_manager(&["create", "p;@daily;daily;catch-up"])
        .success();
    env.old_manager(&["list"])
        .success()
        .stdout_is("0: p;*/15 * * * *;quarter\n1: p;@daily;daily;catch-up\n");
    assert!(
        env.log_messages("backup_manager.log")
            .iter()
            .any(|l| l.starts_with("Error: cron expression \"61 * * * *\""))
    );
}

#[test]
fn status_shows_last_and_next_runs_also_as_json() {
    let env = TestEnv::new().with_clock("2030-01-02T10:07:00");
    env.write("src/file", b"data");
    env.old_manager(&["create", "src;@hourly;hourly"]).success();
    env.old_manager(&["create", "missing;30 2 * * *;nightly"])
        .success();
    env.old_ctl(&["run", "hourly"]).success();
    env.old_ctl(&["run", "nightly"]).code(1);
    let run = env.old_ctl(&["status"]);
    let lines = run.success().stdout_lines();
    assert_eq!(lines[0], "backup_service: not running");
    assert!(
        lines[1].starts_with(
            "0: hourly  last run 02/01/2030 10:07 ok backups/hourly.tar  next run 02/01/2030 11:00"
        ),
        "{run:?}"
    );
    assert!(
        lines[2].starts_with("1: nightly  last run 02/01/2030 10:07 failed (")
            && lines[2].contains("next run 03/01/2030 02:30"),
        "{run:?}"
    );

    let run = env.old_ctl(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&run.success().stdout).unwrap();
    assert_eq!(json["service"]["running"], false);
    let hourly = &json["schedules"][0];
    assert_eq!(hourly["name"], "hourly");
    assert_eq!(hourly["timing"], "@hourly");
    assert_eq!(hourly["last_run"]["state"], "ok");
    assert_eq!(hourly["last_run"]["archive"], "backups/hourly.tar");
    assert!(hourly["last_run"]["size"].as_u64().unwrap() > 0);
    assert_eq!(hourly["last_success"], hourly["last_run"]);
    assert!(hourly["next_run"].as_str().unwrap().ends_with('Z'));
    let nightly = &json["schedules"][1];
    assert_eq!(nightly["last_run"]["state"], "failed");
    assert!(
        nightly["last_run"]["error"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
    assert_eq!(nightly["last_success"], serde_json::Value::Null);
}

#[test]
fn check_reports_fresh_overdue_and_never_run_schedules() {
    let env = TestEnv::new().with_clock("2030-01-02T10:07:00");
    env.write("src/file", b"data");
    env.old_manager(&["create", "src;@daily;daily"]).success();
    env.old_ctl(&["check"])
        .code(1)
        .stdout_is("daily: never backed up\n");
    env.old_ctl(&["run", "daily"]).success();
    env.old_ctl(&["check"])
        .success()
        .stdout_is("ok: 1 schedule backed up in time\n");

    // A day and a half later (interval 1 day + 12 h margin): still fine; then overdue.
    let env = env.with_clock("2030-01-03T22:00:00");
    env.old_ctl(&["check"]).success();
    let env = env.with_clock("2030-01-04T00:00:00");
    let run = env.old_ctl(&["check"]);
    run.code(1);
    assert!(
        run.stdout
            .starts_with("daily: overdue, last successful backup 02/01/2030 10:07 (1d 13h ago"),
        "{run:?}"
    );
    env.old_ctl(&["check", "--max-age", "7d"]).success();
    env.old_ctl(&["check", "--max-age", "soon"])
        .code(2)
        .stderr_has("\"soon\" is not a duration");
    // Without the state file, the archive is the truth.
    fs::remove_file(env.path(".backupctl-state.json")).unwrap();
    let archive = env.path("backups/daily.tar");
    set_mtime(
        &archive,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000),
    ); // 2030-01-01
    let run = env.old_ctl(&["check"]);
    run.code(1);
    assert!(
        run.stdout
            .starts_with("daily: overdue, last successful backup 01/01/2030"),
        "{run:?}"
    );
}

#[test]
fn hooks_get_the_run_described_in_their_environment() {
    let env = TestEnv::new();
    env.write("data/f", b"12345");
    env.old_manager(&[
        "create",
        "data;10:00;docs;before=echo preparing $BACKUPCTL_SCHEDULE && env > before.env,after=env > after.env",
    ])
    .success();
    env.old_ctl(&["run", "docs"]).success();
    let vars = |file: &str| -> Vec<(String, String)> {
        env.read(file)
            .lines()
            .filter(|l| l.starts_with("BACKUPCTL_"))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let get = |vars: &[(String, String)], key: &str| {
        vars.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{key} missing"))
    };
    let before = vars("before.env");
    assert_eq!(get(&before, "BACKUPCTL_SCHEDULE"), "docs");
    assert_eq!(get(&before, "BACKUPCTL_STATE"), "running");
    assert_eq!(
        get(&before, "BACKUPCTL_SOURCE"),
        env.path("data").display().to_string()
    );
    let after = vars("after.env");
    assert_eq!(get(&after, "BACKUPCTL_STATE"), "ok");
    let archive = env.path("backups/docs.tar");
    assert_eq!(
        get(&after, "BACKUPCTL_ARCHIVE"),
        archive.display().to_string()
    );
    assert_eq!(
        get(&after, "BACKUPCTL_SIZE"),
        fs::metadata(&archive).unwrap().len().to_string()
    );
    assert!(get(&after, "BACKUPCTL_DURATION").parse::<f64>().is_ok());
    // The hook ran in the home, and its output went to the service log.
    assert!(service_log_has(&env, "before hook of docs: preparing docs"));
}

#[test]
fn a_failing_before_hook_skips_the_backup() {
    let env = TestEnv::new();
    env.write("data/f", b"x");
    env.old_manager(&[
        "create",
        "data;10:00;docs;before=echo no database >&2 && exit 7,after=touch after-ran,on-failure=env > failure.env",
    ])
    .success();
    let run = env.old_ctl(&["run", "docs"]);
    run.code(1)
        .stderr_has("backup of docs skipped: before hook of docs failed");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(!env.path("backups/docs.tar").exists());
    assert!(!env.path("after-ran").exists());
    let failure = env.read("failure.env");
    assert!(failure.contains("BACKUPCTL_STATE=failed\n"), "{failure}");
    assert!(
        failure.contains("BACKUPCTL_ERROR=backup of docs skipped"),
        "{failure}"
    );
    assert!(service_log_has(&env, "before hook of docs: no database"));
    assert!(service_log_has(
        &env,
        "Error: backup of docs skipped: before hook of docs failed"
    ));
    let json: serde_json::Value =
        serde_json::from_str(&env.old_ctl(&["status", "--json"]).stdout).unwrap();
    assert_eq!(json["schedules"][0]["last_run"]["state"], "failed");
}

#[test]
fn a_run_is_refused_when_the_last_archive_would_not_fit() {
    let env = TestEnv::new();
    env.write("data/f", b"x");
    env.old_manager(&["create", "data;10:00;big"]).success();
    // A sparse "last archive" larger than the free space.
    let stats = nix::sys::statvfs::statvfs(env.home()).unwrap();
    #[allow(clippy::unnecessary_cast)]
    let free = stats.blocks_available() as u64 * stats.fragment_size() as u64;
    let archive = env.path("backups/big.tar");
    fs::create_dir_all(archive.parent().unwrap()).unwrap();
    File::create(&archive)
        .unwrap()
        .set_len(free + (1 << 30))
        .unwrap();
    env.old_ctl(&["run", "big"])
        .code(1)
        .stderr_has("backup of big refused: only")
        .stderr_has("free on the backups filesystem, less than its last archive");
    assert_eq!(fs::metadata(&archive).unwrap().len(), free + (1 << 30));
}

#[test]
fn run_and_the_daemon_share_the_schedule_lock() {
    let env = TestEnv::new().with_clock("2030-01-02T10:07:00");
    env.write("data/f", b"x");
    env.old_manager(&["create", "data;10:07;shared;before=sleep 4"])
        .success();
    // A `run` holds the lock through its slow before hook...
    let mut cmd = env.command("backupctl");
    cmd.args(["run", "shared"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut manual = cmd.spawn().unwrap();
    env.old_eventually("the run's before hook", || {
        service_log_has(&env, "Running before hook of shared")
    });
    // ...so the daemon, for which the schedule is due now, skips it.
    let daemon = Foreground::start(&env, &[]);
    env.old_eventually("the daemon's skip line", || {
        service_log_has(
            &env,
            "backup of shared skipped: another run of it is in progress",
        )
    });
    assert!(manual.wait().unwrap().success());
    assert_eq!(daemon.stop(), Some(0));
    let done = env
        .log_messages("backup_service.log")
        .iter()
        .filter(|l| l.starts_with("Backup done for data"))
        .count();
    assert_eq!(done, 1);

    // A lock held by another process: `run` waits for it, then backs up.
    let lock = File::create(env.path("backups/.shared.lock")).unwrap();
    lock.lock().unwrap();
    let mut cmd = env.command("backupctl");
    cmd.args(["run", "shared"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut waiting = cmd.spawn().unwrap();
    env.old_eventually("the waiting line", || {
        service_log_has(&env, "waiting for another run of shared to finish")
    });
    assert!(waiting.try_wait().unwrap().is_none(), "run did not wait");
    drop(lock);
    assert!(waiting.wait().unwrap().success());
}

#[test]
fn the_foreground_daemon_stops_cleanly_on_sigterm() {
    let env = TestEnv::new().with_clock("2030-01-02T10:07:00");
    env.write("data/f", b"x");
    env.old_manager(&["create", "data;10:07;now"]).success();
    let daemon = Foreground::start(&env, &["--jobs", "2"]);
    env.old_eventually("the due backup", || env.path("backups/now.tar").exists());
    assert_eq!(daemon.stop(), Some(0));
    assert!(!env.path("backup_service.pid").exists());
    let log = env.log_messages("backup_service.log");
    assert!(
        log.iter().any(|l| l == "up to 2 backups run at once"),
        "{log:?}"
    );
    // (The wording of the stop line differs between branches; its presence counts.)
    assert!(
        log.iter()
            .any(|l| l.contains("received") && l.contains("stopping")),
        "{log:?}"
    );
    assert!(
        log.last().unwrap().starts_with("backup_service stopped"),
        "{log:?}"
    );
    // `backupctl daemon --foreground` is the same service.
    let mut cmd = env.command("backupctl");
    cmd.args(["daemon", "--foreground"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().unwrap();
    env.old_eventually("the pidfile", || env.path("backup_service.pid").exists());
    assert_eq!(Foreground { child }.stop(), Some(0));
}

#[test]
fn a_stop_lets_the_queued_runs_of_the_cycle_finish_in_order() {
    let env = TestEnv::new().with_clock("2030-01-02T10:07:00");
    env.write("data/f", b"x");
    for name in ["one", "two", "three"] {
        env.old_manager(&["create", &format!("data;10:07;{name};before=sleep 0.3")])
            .success();
    }
    let daemon = Foreground::start(&env, &[]);
    env.old_eventually("the first run", || {
        service_log_has(&env, "Running before hook of one")
    });
    // Stopped while "one" runs and the others wait in the queue.
    assert_eq!(daemon.stop(), Some(0));
    let done: Vec<String> = env
        .log_messages("backup_service.log")
        .into_iter()
        .filter(|l| l.starts_with("Backup done for data in "))
        .collect();
    assert_eq!(
        done.iter()
            .map(|l| l.split(' ').nth(5).unwrap_or(""))
            .collect::<Vec<_>>(),
        ["backups/one.tar", "backups/two.tar", "backups/three.tar"],
        "{done:?}"
    );
}

#[test]
fn catch_up_runs_a_missed_schedule_once_at_start() {
    let env = TestEnv::new().with_clock("2030-01-05T12:00:00");
    env.write("data/f", b"x");
    env.old_manager(&["create", "data;02:30;nightly;catch-up"])
        .success();
    env.old_manager(&["create", "data;*/10 * * * *;frequent;catch-up"])
        .success();
    env.old_manager(&["create", "data;02:30;plain"]).success();
    // `frequent` ran at 11:50 (recorded in its state), so nothing is owed
    // before 12:00; `nightly` never ran, and last night's run is owed.
    env.write(
        ".backupctl-state.json",
        br#"{"version":1,"schedules":{"frequent":{"last_run":{"started":"2030-01-05T11:50:00Z","finished":"2030-01-05T11:50:01Z","state":"ok","archive":null,"size":null,"error":null},"last_success":null}}}"#,
    );
    let daemon = Foreground::start(&env, &[]);
    env.old_eventually("the catch-up run", || {
        env.path("backups/nightly.tar").exists()
    });
    // `frequent` is due at 12:00 itself, which is a normal run.
    env.old_eventually("the 12:00 run", || {
        env.path("backups/frequent.tar").exists()
    });
    assert_eq!(daemon.stop(), Some(0));
    let log = env.log_messages("backup_service.log");
    let catch_ups: Vec<_> = log
        .iter()
        .filter(|l| l.starts_with("Catch-up run"))
        .collect();
    assert_eq!(catch_ups.len(), 1, "{log:?}");
    assert!(
        catch_ups[0].starts_with("Catch-up run for nightly: due at 05/01/2030 02:30"),
        "{log:?}"
    );
    assert!(
        !env.path("backups/plain.tar").exists(),
        "no catch-up without the option"
    );
}

#[test]
fn sighup_reopens_a_log_that_was_moved_away() {
    let env = TestEnv::new();
    let daemon = Foreground::start(&env, &[]);
    env.old_eventually("the start line", || {
        service_log_has(&env, "backup_service started")
    });
    fs::rename(
        env.path("logs/backup_service.log"),
        env.path("logs/backup_service.log.old"),
    )
    .unwrap();
    daemon.signal(Signal::SIGHUP);
    env.old_eventually("the reopened log", || {
        service_log_has(&env, "SIGHUP received: log files reopened")
    });
    assert_eq!(daemon.stop(), Some(0));
    assert!(service_log_has(&env, "backup_service stopped"));
    let old = env.read("logs/backup_service.log.old");
    assert!(old.contains("backup_service started"), "{old}");
    assert!(!old.contains("SIGHUP"), "{old}");
}

#[test]
fn logs_rotate_past_their_size_keeping_a_few() {
    let env = TestEnv::new();
    for _ in 0..30 {
        let mut cmd = env.command("backup_manager");
        cmd.env("BACKUPCTL_LOG_MAX_SIZE", "100")
            .env("BACKUPCTL_LOG_KEEP", "2")
            .arg("list");
        env.run_cmd(cmd).success();
    }
    for suffix in ["", ".1", ".2"] {
        let path = env.path(&format!("logs/backup_manager.log{suffix}"));
        let size = fs::metadata(&path).unwrap().len();
        assert!(
            size > 0 && size <= 100,
            "{} is {size} bytes",
            path.display()
        );
    }
    assert!(!env.path("logs/backup_manager.log.3").exists());
    // The same settings as flags.
    env.old_ctl(&["--log-max-size", "1M", "--log-keep", "5", "list"])
        .success();
    env.old_ctl(&["--log-max-size", "lots", "list"])
        .code(2)
        .stderr_has("\"lots\" is not a size");
}

#[test]
fn completions_and_the_man_page_come_from_the_cli() {
    let env = TestEnv::new();
    let bash = env.old_ctl(&["completions", "bash"]);
    assert!(bash.success().stdout.contains("backupctl"), "{bash:?}");
    assert!(bash.stdout.contains("catch") || bash.stdout.contains("next"));
    let man = env.old_ctl(&["man"]);
    assert!(man.success().stdout.contains(".TH"), "{man:?}");
    assert!(man.stdout.contains("backupctl"));
    env.old_ctl(&["completions", "tcsh"]).code(2);
}
