//! The daemon through `backup_manager start|stop|status` and `backup_service`:
//! start-up, refusal to run twice, stale and foreign pidfiles, graceful stop,
//! abort on a second signal, failures that do not stop other schedules.

use std::fs;
use std::process::Command;

use nix::sys::signal::Signal;

use crate::support::{
    PIDFILE, SIGTERM_AGAIN, SIGTERM_STOPPING, Service, TestEnv, alive, eventually,
    foreground_stderr, foreground_stderr_of,
};

#[test]
fn start_returns_with_the_daemon_running_and_stop_waits_for_it() {
    let env = TestEnv::new();
    let service = Service::start(&env);
    let pid = service.pid();
    env.manager(["status"])
        .stdout_pattern(format!("backup_service: running (pid {pid}, since [..])\n"))
        .run();
    service.stop();
    assert!(
        !alive(pid),
        "daemon still alive after stop returned: {:?}",
        fs::read_to_string(format!("/proc/{pid}/stat"))
    );
    env.manager(["status"])
        .status(3)
        .stdout("backup_service: not running\n")
        .run();
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
    let service = Service::start(&env);
    let pid = service.pid();
    env.manager(["start"])
        .status(1)
        .stderr(format!(
            "backup_manager: backup_service is already running (pid {pid})\n"
        ))
        .run();
    // A direct second daemon is refused too.
    env.ctl(["daemon"])
        .status(1)
        .stderr_pattern("backupctl: [..]already running[..]\n")
        .run();
    assert!(alive(pid));
    assert_eq!(service.pid(), pid);
    service.stop();
}

#[test]
fn without_a_daemon_status_and_stop_say_so_whatever_the_pidfile_holds() {
    // No pidfile; a stale one; one naming a live process that is not ours.
    let mut stranger = Command::new("sleep").arg("30").spawn().unwrap();
    let leftovers = [None, Some(999_999), Some(stranger.id())];
    for leftover in leftovers {
        let env = TestEnv::new();
        let plant = || {
            if let Some(pid) = leftover {
                env.write(PIDFILE, format!("{pid}\n"));
            }
        };
        plant();
        env.manager(["status"])
            .status(3)
            .stdout("backup_service: not running\n")
            .run();
        plant();
        env.manager(["stop"])
            .status(1)
            .stderr("backup_manager: backup_service is not running\n")
            .run();
        assert!(
            env.log_messages("backup_manager.log")
                .contains(&"Error: backup_service is not running".to_string()),
            "{leftover:?}"
        );
        assert!(
            stranger.try_wait().unwrap().is_none(),
            "the stranger was signalled"
        );
        // And a real daemon can start despite the leftover, and replaces it.
        plant();
        let service = Service::start(&env);
        assert_ne!(Some(service.pid() as u32), leftover);
        service.stop();
        assert!(
            stranger.try_wait().unwrap().is_none(),
            "the stranger was signalled"
        );
    }
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}

#[test]
fn the_service_runs_what_is_due_and_a_failing_schedule_does_not_stop_the_others() {
    let env = TestEnv::with_tree(&[], &[("docs/a.txt", "alpha")]).with_clock("2024-05-06T09:30:00");
    env.manager(["create", "missing;09:30;broken"])
        .stderr(env.missing_source_warning("backup_manager", "missing"))
        .run();
    env.create("docs;09:30;docs");
    env.create("docs;09:31;later");
    // Stopped at once: the runs due at start still happen.
    Service::start(&env).stop();
    env.manager(["backups"]).stdout("docs.tar\n").run();
    let log = env.log_messages("backup_service.log");
    assert!(
        log.iter().any(|l| l
            .starts_with("Error: backup failed for missing (schedule broken): source ")
            && l.ends_with("missing does not exist")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("Backup done for docs in backups/docs.tar (")),
        "{log:#?}"
    );
}

#[test]
fn the_foreground_service_runs_what_is_due_and_stops_on_sigterm() {
    // (program, arguments, what it logs before the backup)
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("backup_service", &[], &[]),
        (
            "backup_service",
            &["--jobs", "2"],
            &["up to 2 backups run at once"],
        ),
        // `backupctl daemon --foreground` is the same service.
        ("backupctl", &["daemon", "--foreground"], &[]),
    ];
    for (program, args, first) in cases {
        let env =
            TestEnv::with_tree(&[], &[("docs/a.txt", "alpha")]).with_clock("2024-05-06T09:30:00");
        env.create("docs;09:30;docs");
        let mut logged = first.to_vec();
        logged.push("Backup done for docs in backups/docs.tar ([..])");
        let mut service = Service::foreground(
            &env,
            env.test(program)
                .args(args.iter())
                .stderr_pattern(foreground_stderr(&env, "06/05/2024", &logged)),
        );
        // The service logs a SIGTERM when it arrives: stopped once the
        // backup is logged, so that the SIGTERM comes after it.
        service.wait_for_log("Backup done for docs in backups/docs.tar");
        assert!(env.path("backups/docs.tar").exists());
        assert_eq!(
            service.pid(),
            service.process().pid(),
            "the foreground service is the pidfile's process"
        );
        // Exit 0, the output above, no pidfile left.
        service.stop();
        let log = env.log_messages("backup_service.log");
        for line in *first {
            assert!(log.iter().any(|l| l == line), "{program} {args:?}: {log:?}");
        }
        assert!(
            log.iter().any(|l| l == SIGTERM_STOPPING),
            "{program} {args:?}: {log:?}"
        );
        assert!(
            log.last().unwrap().starts_with("backup_service stopped"),
            "{program} {args:?}: {log:?}"
        );
    }
}

/// A large file: quick to make, slow enough to archive that a signal lands
/// mid-way.
fn make_big_source(env: &TestEnv, dir: &str) {
    env.allocated_file(&format!("{dir}/big.bin"), 2 << 30);
}

#[test]
fn a_second_sigterm_aborts_and_removes_the_partial_archive() {
    let env = TestEnv::new().with_clock("2024-05-06T09:30:00");
    make_big_source(&env, "big");
    env.create("big;09:30;big");
    let failure = format!(
        "Error: backup failed for big (schedule big): stopped before {} was complete; the partial file was removed",
        env.shown("backups/big.tar")
    );
    let mut service = Service::foreground(
        &env,
        env.service::<&str>([]).stderr_pattern(foreground_stderr_of(
            &env,
            "06/05/2024",
            &[SIGTERM_STOPPING, SIGTERM_AGAIN, &failure],
        )),
    );
    eventually("the partial archive", || {
        !env.partial_archives("big").is_empty()
    });
    // The first SIGTERM asks for a graceful stop, which would wait for the
    // backup; a second aborts it. Two signals that land before the daemon
    // takes the first merge into one, so the second is sent once the daemon
    // has logged the first.
    service.signal(Signal::SIGTERM);
    service.wait_for_log(SIGTERM_STOPPING);
    assert!(
        !env.partial_archives("big").is_empty(),
        "the backup ended before the second SIGTERM"
    );
    service.signal(Signal::SIGTERM);
    service.wait();
    assert_eq!(env.partial_archives("big"), Vec::<String>::new());
    assert!(!env.path("backups/big.tar").exists());
    let log = env.log_messages("backup_service.log");
    assert!(
        log.iter()
            .any(|l| l.contains("backup failed for big (schedule big): stopped before")),
        "{log:#?}"
    );
}

#[test]
fn a_run_killed_mid_archive_leaves_the_previous_archive_intact() {
    let env = TestEnv::with_tree(&[], &[("data/small.txt", "first version")]);
    // A first, complete archive of a small tree.
    env.create("data;03:00;data");
    env.manager(["run", "data"])
        .stdout_pattern("backups/data.tar: 1 file, [..] MiB/s\n")
        .run();
    let previous = fs::read(env.path("backups/data.tar")).unwrap();
    // Now a slow run, killed while it writes.
    make_big_source(&env, "data");
    let mut run = env.manager(["run", "data"]).killed().spawn();
    eventually("the partial archive", || {
        env.partial_archives("data")
            .first()
            .is_some_and(|p| fs::metadata(env.path(p)).is_ok_and(|m| m.len() > 0))
    });
    let partial = env.partial_archives("data");
    run.signal(Signal::SIGKILL);
    run.wait();
    assert_eq!(fs::read(env.path("backups/data.tar")).unwrap(), previous);
    env.manager(["backups"]).stdout("data.tar\n").run();
    // The next run clears the leftover and succeeds.
    fs::remove_file(env.path("data/big.bin")).unwrap();
    env.manager(["run", "data"])
        .stdout_pattern("backups/data.tar: 1 file, [..] MiB/s\n")
        .run();
    assert_eq!(env.partial_archives("data"), Vec::<String>::new());
    assert!(env.log_messages("backup_service.log").contains(&format!(
        "Warning: removed {} left by an interrupted run of data",
        partial[0]
    )));
}

#[test]
fn ctrl_c_abandons_a_run_and_removes_the_partial_archive() {
    let env = TestEnv::new();
    make_big_source(&env, "big");
    env.create("big;09:30;big");
    let run = env
        .manager(["run", "big"])
        .status(130)
        .stderr(format!(
            "backup_manager: interrupted: stopping the backup of big\n\
             backup_manager: interrupted by SIGINT: backup failed for big (schedule big): stopped before {} was complete; the partial file was removed\n",
            env.shown("backups/big.tar")
        ))
        .spawn();
    eventually("the partial archive", || {
        !env.partial_archives("big").is_empty()
    });
    run.signal_and_wait(Signal::SIGINT);
    assert_eq!(env.partial_archives("big"), Vec::<String>::new());
    assert!(!env.path("backups/big.tar").exists());
}
