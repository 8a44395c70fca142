//! The daemon through `backup_manager start|stop|status` and `backup_service`:
//! start-up, refusal to run twice, stale and foreign pidfiles, graceful stop,
//! abort on a second signal, failures that do not stop other schedules.

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::TestEnv;

fn pid_in_pidfile(env: &TestEnv) -> i32 {
    env.read("backup_service.pid").trim().parse().expect("pid")
}

/// True while `pid` runs; a zombie (exited, not yet reaped) is not alive.
fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        !state.starts_with('Z')
    })
}

#[test]
fn start_returns_with_the_daemon_running_and_stop_waits_for_it() {
    let env = TestEnv::new();
    env.old_manager(&["start"]).success().stdout_is("");
    let pid = pid_in_pidfile(&env);
    assert!(alive(pid));
    let status = env.old_manager(&["status"]);
    assert!(
        status
            .success()
            .stdout
            .starts_with(&format!("backup_service: running (pid {pid}, since "))
    );
    env.old_manager(&["stop"]).success().stdout_is("");
    assert!(!env.path("backup_service.pid").exists());
    assert!(
        !alive(pid),
        "daemon still alive after stop returned: {:?}",
        fs::read_to_string(format!("/proc/{pid}/stat"))
    );
    env.old_manager(&["status"])
        .success()
        .stdout_is("backup_service: not running\n");
    let log = env.log_messages("backup_manager.log");
    assert_eq!(
        log,
        [
            format!("backup_service started (pid {pid})"),
            "Show status".into(),
            "backup_service stopped".into(),
            "Show status".into()
        ]
    );
}

#[test]
fn a_second_start_is_refused_and_leaves_the_first_daemon_alone() {
    let env = TestEnv::new();
    env.old_manager(&["start"]).success();
    let pid = pid_in_pidfile(&env);
    env.old_manager(&["start"])
        .code(1)
        .stderr_has(&format!("backup_service is already running (pid {pid})"));
    // A direct second daemon is refused too.
    env.old_ctl(&["daemon"])
        .code(1)
        .stderr_has("already running");
    assert!(alive(pid));
    assert_eq!(pid_in_pidfile(&env), pid);
    env.old_manager(&["stop"]).success();
}

#[test]
fn stop_without_a_daemon_fails_clearly() {
    let env = TestEnv::new();
    env.old_manager(&["stop"])
        .code(1)
        .stderr_has("backup_manager: backup_service is not running");
    assert!(
        env.log_messages("backup_manager.log")
            .contains(&"Error: backup_service is not running".to_string())
    );
}

#[test]
fn a_stale_pidfile_is_ignored_and_replaced() {
    let env = TestEnv::new();
    env.write("backup_service.pid", b"999999\n");
    env.old_manager(&["status"])
        .success()
        .stdout_is("backup_service: not running\n");
    env.write("backup_service.pid", b"999999\n");
    env.old_manager(&["start"]).success();
    let pid = pid_in_pidfile(&env);
    assert_ne!(pid, 999_999);
    env.old_manager(&["stop"]).success();
}

#[test]
fn a_pidfile_naming_a_foreign_live_process_never_gets_it_signalled() {
    let env = TestEnv::new();
    let mut stranger = Command::new("sleep").arg("30").spawn().unwrap();
    env.write(
        "backup_service.pid",
        format!("{}\n", stranger.id()).as_bytes(),
    );
    env.old_manager(&["stop"]).code(1).stderr_has("not running");
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "the stranger was signalled"
    );
    // And a real daemon can start despite the leftover.
    env.old_manager(&["start"]).success();
    env.old_manager(&["stop"]).success();
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "the stranger was signalled"
    );
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}

#[test]
fn the_service_runs_what_is_due_and_a_failing_schedule_does_not_stop_the_others() {
    let env = TestEnv::new().with_clock("2024-05-06T09:30:00");
    env.write("docs/a.txt", b"alpha");
    env.old_manager(&["create", "missing;09:30;broken"])
        .success();
    env.old_manager(&["create", "docs;09:30;docs"]).success();
    env.old_manager(&["create", "docs;09:31;later"]).success();
    env.old_manager(&["start"]).success();
    env.old_manager(&["stop"]).success();
    env.old_manager(&["backups"])
        .success()
        .stdout_is("docs.tar\n");
    let log = env.log_messages("backup_service.log");
    assert!(
        log.iter().any(
            |l| l.starts_with("Error: backup failed for missing: source ")
                && l.ends_with("missing does not exist")
        ),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("Backup done for docs in backups/docs.tar ("))
    );
}

#[test]
fn backup_service_runs_in_the_foreground_and_stops_on_sigterm() {
    let env = TestEnv::new().with_clock("2024-05-06T09:30:00");
    env.write("docs/a.txt", b"alpha");
    env.old_manager(&["create", "docs;09:30;docs"]).success();
    let mut service = env.command("backup_service");
    let child = service
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    env.old_eventually("the archive", || env.path("backups/docs.tar").exists());
    let pid = pid_in_pidfile(&env);
    assert_eq!(
        pid,
        child.id() as i32,
        "the foreground service is the pidfile's process"
    );
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("] Backup done for docs in backups/docs.tar ("),
        "{stderr}"
    );
    assert!(stderr.contains("] SIGTERM received: stopping"), "{stderr}");
    assert!(!env.path("backup_service.pid").exists());
}

/// A large sparse file: quick to make, slow enough to archive that a signal
/// lands mid-way.
fn make_big_source(env: &TestEnv, dir: &str) {
    fs::create_dir_all(env.path(dir)).unwrap();
    let file = fs::File::create(env.path(&format!("{dir}/big.bin"))).unwrap();
    file.set_len(2 << 30).unwrap();
}

#[test]
fn a_second_sigterm_aborts_and_removes_the_partial_archive() {
    let env = TestEnv::new().with_clock("2024-05-06T09:30:00");
    make_big_source(&env, "big");
    env.old_manager(&["create", "big;09:30;big"]).success();
    let mut child = env
        .command("backup_service")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    env.old_eventually("the partial archive", || {
        env.path("backups/.big.partial").exists()
    });
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!env.path("backups/.big.partial").exists());
    assert!(!env.path("backups/big.tar").exists());
    let log = env.log_messages("backup_service.log");
    assert!(
        log.iter()
            .any(|l| l.contains("backup failed for big: stopped before")),
        "{log:#?}"
    );
}

#[test]
fn a_run_killed_mid_archive_leaves_the_previous_archive_intact() {
    let env = TestEnv::new();
    make_big_source(&env, "data");
    env.write("data/small.txt", b"first version");
    // A first, complete archive of a small tree.
    fs::rename(env.path("data/big.bin"), env.path("big.bin.aside")).unwrap();
    env.old_manager(&["create", "data;03:00;data"]).success();
    env.old_manager(&["run", "data"]).success();
    let previous = fs::read(env.path("backups/data.tar")).unwrap();
    // Now a slow run, killed while it writes.
    fs::rename(env.path("big.bin.aside"), env.path("data/big.bin")).unwrap();
    let mut child = env
        .command("backup_manager")
        .args(["run", "data"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    env.old_eventually("the partial archive", || {
        fs::metadata(env.path("backups/.data.partial")).is_ok_and(|m| m.len() > 0)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(fs::read(env.path("backups/data.tar")).unwrap(), previous);
    env.old_manager(&["backups"])
        .success()
        .stdout_is("data.tar\n");
    // The next run clears the leftover and succeeds.
    fs::remove_file(env.path("data/big.bin")).unwrap();
    env.old_manager(&["run", "data"]).success();
    assert!(!env.path("backups/.data.partial").exists());
    assert!(env.log_messages("backup_service.log").contains(
        &"Warning: removed backups/.data.partial left by an interrupted run".to_string()
    ));
}

#[test]
fn ctrl_c_abandons_a_run_and_removes_the_partial_archive() {
    let env = TestEnv::new();
    make_big_source(&env, "big");
    env.old_manager(&["create", "big;09:30;big"]).success();
    let child = env
        .command("backup_manager")
        .args(["run", "big"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    env.old_eventually("the partial archive", || {
        env.path("backups/.big.partial").exists()
    });
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("backup failed for big: stopped before"),
        "{stderr}"
    );
    assert!(!env.path("backups/.big.partial").exists());
    assert!(!env.path("backups/big.tar").exists());
}
