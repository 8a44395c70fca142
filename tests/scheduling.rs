//! The scheduler as a user meets it: `next`, cron schedules, `status`,
//! `check`, hooks, the free-space guard, the per-schedule lock shared by `run`
//! and the daemon, catch-up, SIGHUP and log rotation.
//! Clocks are injected with `TestEnv::with_clock`; no test waits for the wall
//! clock to change minute.

use std::fs::{self, File, OpenOptions};
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;

use crate::support::{
    SIGTERM_STOPPING, Service, TestEnv, eventually, foreground_stderr, foreground_stderr_of,
    signal_pending,
};

fn set_mtime(path: &std::path::Path, t: SystemTime) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.set_modified(t).unwrap();
}

#[test]
fn next_prints_the_coming_run_times() {
    // (clock, zone, arguments, output)
    let cases: &[(&str, &str, &[&str], &str)] = &[
        (
            "2024-03-04T10:07:00",
            "UTC",
            &["*/15 * * * *", "-n", "3"],
            "Mon 04/03/2024 10:15 +00:00\nMon 04/03/2024 10:30 +00:00\nMon 04/03/2024 10:45 +00:00\n",
        ),
        // Weekdays only, Friday then Monday; five lines by default.
        (
            "2024-03-04T10:07:00",
            "UTC",
            &["30 2 * * mon-fri"],
            "Tue 05/03/2024 02:30 +00:00\nWed 06/03/2024 02:30 +00:00\nThu 07/03/2024 02:30 +00:00\n\
             Fri 08/03/2024 02:30 +00:00\nMon 11/03/2024 02:30 +00:00\n",
        ),
        (
            "2024-03-04T10:07:00",
            "UTC",
            &["@monthly", "-n", "1"],
            "Mon 01/04/2024 00:00 +00:00\n",
        ),
        // TZ is honoured across the spring-forward gap: 02:30 does not exist
        // on 31/03 in Berlin.
        (
            "2024-03-30T12:00:00",
            "Europe/Berlin",
            &["30 2 * * *", "-n", "2"],
            "Sun 31/03/2024 03:00 +02:00\nMon 01/04/2024 02:30 +02:00\n",
        ),
    ];
    for (clock, zone, args, expected) in cases {
        let env = TestEnv::new().with_clock(clock);
        env.ctl(["next"])
            .args(args.iter())
            .env("TZ", zone)
            .stdout(*expected)
            .run();
    }
}

#[test]
fn bad_expressions_are_refused_naming_them() {
    let env = TestEnv::with_tree(&["p"], &[]);
    env.ctl(["next", "61 * * * *"])
        .status(2)
        .stderr_pattern("backupctl: cron expression \"61 * * * *\" is not valid[..]\n")
        .run();
    env.manager(["create", "p;0 0 * * funday;n"])
        .status(2)
        .stderr_pattern(
            "backup_manager: malformed schedule: p;0 0 * * funday;n (cron expression \"0 0 * * funday\" is not valid: [..])\n",
        )
        .run();
    env.manager(["create", "p;@reboot;n"])
        .status(2)
        .stderr(
            "backup_manager: malformed schedule: p;@reboot;n (cron expression \"@reboot\" is not valid: the nicknames are @hourly, @daily, @weekly, @monthly and @yearly)\n",
        )
        .run();
    assert_eq!(env.schedules(), "");
    env.create("p;*/15 * * * *;quarter");
    env.create("p;@daily;daily;catch-up");
    env.manager(["list"])
        .stdout("0: p;*/15 * * * *;quarter\n1: p;@daily;daily;catch-up\n")
        .run();
    assert!(
        env.log_messages("backup_manager.log")
            .iter()
            .any(|l| l.starts_with("Error: cron expression \"61 * * * *\""))
    );
}

#[test]
fn status_shows_last_and_next_runs_also_as_json() {
    let env = TestEnv::with_tree(&[], &[("src/file", "data")]).with_clock("2030-01-02T10:07:00");
    env.create("src;@hourly;hourly");
    env.manager(["create", "missing;30 2 * * *;nightly"])
        .stderr(env.missing_source_warning("backup_manager", "missing"))
        .run();
    env.ctl(["run", "hourly"])
        .stdout_pattern("backups/hourly.tar: 1 file, [..] MiB/s\n")
        .run();
    let failure = format!(
        "backup failed for missing (schedule nightly): source {} does not exist",
        env.shown("missing")
    );
    env.ctl(["run", "nightly"])
        .status(1)
        .stderr(format!("backupctl: {failure}\n"))
        .run();
    env.ctl(["status"])
        .status(3)
        .stdout(format!(
            "backup_service: not running\n\
             0: hourly  last run 02/01/2030 10:07 ok backups/hourly.tar  next run 02/01/2030 11:00  (src;@hourly;hourly)\n\
             1: nightly  last run 02/01/2030 10:07 failed ({failure})  next run 03/01/2030 02:30  (missing;30 2 * * *;nightly)\n"
        ))
        .run();

    let json = env.status_json(3);
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
    assert_eq!(nightly["last_run"]["error"], failure.as_str());
    assert_eq!(nightly["last_success"], serde_json::Value::Null);
}

#[test]
fn check_reports_fresh_overdue_and_never_run_schedules() {
    let env = TestEnv::with_tree(&[], &[("src/file", "data")]).with_clock("2030-01-02T10:07:00");
    let in_time = "ok: 1 schedule backed up in time\n";
    env.create("src;@daily;daily");
    env.ctl(["check"])
        .status(1)
        .stdout("daily: never backed up\n")
        .run();
    env.ctl(["run", "daily"])
        .stdout_pattern("backups/daily.tar: 1 file, [..] MiB/s\n")
        .run();
    env.ctl(["check"]).stdout(in_time).run();

    // A day and a half later (interval 1 day + 12 h margin): still fine; then overdue.
    let env = env.with_clock("2030-01-03T22:00:00");
    env.ctl(["check"]).stdout(in_time).run();
    let env = env.with_clock("2030-01-04T00:00:00");
    env.ctl(["check"])
        .status(1)
        .stdout_pattern("daily: overdue, last successful backup 02/01/2030 10:07 (1d 13h ago[..]\n")
        .run();
    env.ctl(["check", "--max-age", "7d"]).stdout(in_time).run();
    env.ctl(["check", "--max-age", "soon"])
        .status(2)
        .stderr(
            "backupctl: invalid value 'soon' for '--max-age <DURATION>': \"soon\" is not a duration such as 90m, 36h, 7d or 4w (see --help)\n",
        )
        .run();
    // Without the state file, the archive is the truth.
    fs::remove_file(env.path(".backupctl-state.json")).unwrap();
    let archive = env.path("backups/daily.tar");
    set_mtime(
        &archive,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000),
    ); // 2030-01-01
    env.ctl(["check"])
        .status(1)
        .stdout_pattern("daily: overdue, last successful backup 01/01/2030[..]\n")
        .run();
}

#[test]
fn hooks_get_the_run_described_in_their_environment() {
    let env = TestEnv::with_tree(&[], &[("data/f", "12345")]);
    env.create(
        "data;10:00;docs;before=echo preparing $BACKUPCTL_SCHEDULE && env > before.env,after=env > after.env",
    );
    env.ctl(["run", "docs"])
        .stdout_pattern("backups/docs.tar: 1 file, [..] MiB/s\n")
        .run();
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
    assert_eq!(get(&before, "BACKUPCTL_SOURCE"), env.shown("data"));
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
    assert!(env.log_has("backup_service.log", "before hook of docs: preparing docs"));
}

#[test]
fn a_failing_before_hook_skips_the_backup() {
    let env = TestEnv::with_tree(&[], &[("data/f", "x")]);
    env.create(
        "data;10:00;docs;before=echo no database >&2 && exit 7,after=touch after-ran,on-failure=env > failure.env",
    );
    env.ctl(["run", "docs"])
        .status(1)
        .stderr_pattern("backupctl: backup of docs skipped: before hook of docs failed[..]\n")
        .run();
    assert!(!env.path("backups/docs.tar").exists());
    assert!(!env.path("after-ran").exists());
    let failure = env.read("failure.env");
    assert!(failure.contains("BACKUPCTL_STATE=failed\n"), "{failure}");
    assert!(
        failure.contains("BACKUPCTL_ERROR=backup of docs skipped"),
        "{failure}"
    );
    assert!(env.log_has("backup_service.log", "before hook of docs: no database"));
    assert!(env.log_has(
        "backup_service.log",
        "Error: backup of docs skipped: before hook of docs failed"
    ));
    let json = env.status_json(3);
    assert_eq!(json["schedules"][0]["last_run"]["state"], "failed");
}

#[test]
fn a_run_is_refused_when_the_last_archive_would_not_fit() {
    let env = TestEnv::with_tree(&[], &[("data/f", "x")]);
    env.create("data;10:00;big");
    // A sparse "last archive" larger than the free space.
    let stats = nix::sys::statvfs::statvfs(env.home()).unwrap();
    #[allow(clippy::unnecessary_cast)]
    let free = stats.blocks_available() as u64 * stats.fragment_size() as u64;
    env.sparse_file("backups/big.tar", free + (1 << 30));
    let manifest = env.path("backups/big.tar.json");
    std::fs::write(&manifest, r#"{"schedule":"big","source":"data","archive":"big.tar","created":"2025-01-01T02:00:00+00:00","format":"tar","level":null,"archive_size":0,"sha256":"","entries":0,"bytes_read":0,"skipped":[],"state":"ok","duration_seconds":0.0,"backupctl_version":"0","fingerprint":""}"#).unwrap();
    env.ctl(["run", "big"])
        .status(1)
        .stderr_pattern(
            "backupctl: backup of big refused: only [..] free on the backups filesystem, less than its last archive[..]\n",
        )
        .run();
    assert_eq!(
        fs::metadata(env.path("backups/big.tar")).unwrap().len(),
        free + (1 << 30)
    );
}

#[test]
fn run_and_the_daemon_share_the_schedule_lock() {
    let env = TestEnv::with_tree(&[], &[("data/f", "x")]).with_clock("2030-01-02T10:07:00");
    let hold = env.holding_hook("manual");
    env.create(&format!("data;10:07;shared;before={hold}"));
    // A `run` holds the lock through its before hook, which waits for us...
    let manual = env
        .ctl(["run", "shared"])
        .stdout_pattern("backups/shared.tar: 1 file, [..] MiB/s\n")
        .spawn();
    env.wait_for_hook("manual");
    env.wait_for_log("backup_service.log", "Running before hook of shared");
    // ...so the daemon, for which the schedule is due now, skips it.
    let service = Service::foreground(
        &env,
        env.service::<&str>([]).stderr_pattern(foreground_stderr(
            &env,
            "02/01/2030",
            &["Warning: backup of shared skipped: another run of it is in progress"],
        )),
    );
    service.wait_for_log("backup of shared skipped: another run of it is in progress");
    env.release_hook("manual");
    manual.wait();
    service.stop();
    let done = env
        .log_messages("backup_service.log")
        .iter()
        .filter(|l| l.starts_with("Backup done for data"))
        .count();
    assert_eq!(done, 1);

    // A lock held by another process: `run` waits for it, then backs up.
    let lock = File::create(env.path("backups/.shared.lock")).unwrap();
    lock.lock().unwrap();
    let mut waiting = env
        .ctl(["run", "shared"])
        .stdout_pattern("backups/shared.tar: 1 file, [..] MiB/s\n")
        .spawn();
    env.wait_for_log(
        "backup_service.log",
        "waiting for another run of shared to finish",
    );
    assert!(waiting.is_running(), "run did not wait");
    drop(lock);
    waiting.wait();
}

#[test]
fn a_stop_lets_the_queued_runs_of_the_cycle_finish_in_order() {
    let env = TestEnv::with_tree(&[], &[("data/f", "x")]).with_clock("2030-01-02T10:07:00");
    let hold = env.holding_hook("one");
    env.create(&format!("data;10:07;one;before={hold}"));
    for name in ["two", "three"] {
        env.create(&format!("data;10:07;{name}"));
    }
    let mut service = Service::foreground(
        &env,
        env.service::<&str>([]).stderr_pattern(foreground_stderr_of(
            &env,
            "02/01/2030",
            &[
                "Running before hook of one: sh hold-one.sh",
                SIGTERM_STOPPING,
                "Backup done for data in backups/one.tar ([..])",
                "Backup done for data in backups/two.tar ([..])",
                "Backup done for data in backups/three.tar ([..])",
            ],
        )),
    );
    // Stopped while "one" runs and the others wait in the queue: "one" is
    // held by its hook until the daemon has taken (and logged) the signal.
    env.wait_for_hook("one");
    service.signal(Signal::SIGTERM);
    let pid = service.pid();
    eventually("the daemon to take SIGTERM", || {
        !signal_pending(pid, Signal::SIGTERM)
    });
    service.wait_for_log(SIGTERM_STOPPING);
    env.release_hook("one");
    service.wait();
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
    let env = TestEnv::with_tree(&[], &[("data/f", "x")]).with_clock("2030-01-05T12:00:00");
    env.create("data;02:30;nightly;catch-up");
    env.create("data;*/10 * * * *;frequent;catch-up");
    env.create("data;02:30;plain");
    // `frequent` ran at 11:50 (recorded in its state), so nothing is owed
    // before 12:00; `nightly` never ran, and last night's run is owed.
    env.write(
        ".backupctl-state.json",
        br#"{"version":1,"schedules":{"frequent":{"last_run":{"started":"2030-01-05T11:50:00Z","finished":"2030-01-05T11:50:01Z","state":"ok","archive":null,"size":null,"error":null},"last_success":null}}}"#,
    );
    let service = Service::foreground(
        &env,
        env.service::<&str>([]).stderr_pattern(foreground_stderr(
            &env,
            "05/01/2030",
            &[
                "Catch-up run for nightly: due at 05/01/2030 02:30[..]",
                "Backup done for data in backups/nightly.tar ([..])",
                "Backup done for data in backups/frequent.tar ([..])",
            ],
        )),
    );
    service.wait_for_log("Backup done for data in backups/nightly.tar");
    // `frequent` is due at 12:00 itself, which is a normal run. Stopped once
    // it is logged, so that the SIGTERM (logged when it arrives) comes after.
    service.wait_for_log("Backup done for data in backups/frequent.tar");
    assert!(env.path("backups/nightly.tar").exists());
    assert!(env.path("backups/frequent.tar").exists());
    service.stop();
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
    let mut service = Service::foreground(
        &env,
        env.service::<&str>([])
            .stderr_contains("] backup_service started (pid ")
            .stderr_contains("] SIGHUP received: log files reopened, 0 schedules loaded\n")
            .stderr_contains(format!("] {SIGTERM_STOPPING}\n")),
    );
    service.wait_for_log("backup_service started");
    fs::rename(
        env.path("logs/backup_service.log"),
        env.path("logs/backup_service.log.old"),
    )
    .unwrap();
    service.signal(Signal::SIGHUP);
    service.wait_for_log("SIGHUP received: log files reopened");
    service.stop();
    assert!(env.log_has("backup_service.log", "backup_service stopped"));
    let old = env.read("logs/backup_service.log.old");
    assert!(old.contains("backup_service started"), "{old}");
    assert!(!old.contains("SIGHUP"), "{old}");
}

#[test]
fn logs_rotate_past_their_size_keeping_a_few() {
    let env = TestEnv::new();
    for _ in 0..30 {
        env.manager(["list"])
            .env("BACKUPCTL_LOG_MAX_SIZE", "100")
            .env("BACKUPCTL_LOG_KEEP", "2")
            .run();
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
    env.ctl(["--log-max-size", "1M", "--log-keep", "5", "list"])
        .run();
    env.ctl(["--log-max-size", "lots", "list"])
        .status(2)
        .stderr(
            "backupctl: invalid value 'lots' for '--log-max-size <SIZE>': \"lots\" is not a size such as 10M, 512K or 1048576 (see --help)\n",
        )
        .run();
}

#[test]
fn completions_and_the_man_page_come_from_the_cli() {
    let env = TestEnv::new();
    env.ctl(["completions", "bash"])
        .stdout_contains("backupctl")
        .stdout_contains("next")
        .run();
    env.ctl(["man"])
        .stdout_contains(".TH")
        .stdout_contains("backupctl")
        .run();
    env.ctl(["completions", "tcsh"])
        .status(2)
        .stderr(
            "backupctl: invalid value 'tcsh' for '<SHELL>' [possible values: bash, elvish, fish, powershell, zsh]; did you mean 'zsh'? (see --help)\n",
        )
        .run();
}
