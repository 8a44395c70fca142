//! Trust between the service and the commands that talk to it, in a home
//! other users may write to: only our own daemon is ever signalled, the
//! daemon keeps no inherited descriptor, a repeated `stop` never aborts a
//! backup, a minute's schedules run once across restarts, and read-only
//! homes can still be read.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{
    BIN, PIDFILE, Process, SIGTERM_AGAIN, SIGTERM_STOPPING, Service, Test, TestEnv, alive,
    daemon_pid, eventually, foreground_stderr,
};

/// A process that is not our daemon holding the lock on `env`'s pidfile:
/// `flock backup_service.pid sh -c SCRIPT`, where flock(1) takes the lock
/// and waits for its child, which writes `named` into the pidfile (`$PPID`:
/// flock's own pid; `None`: nothing) and sleeps.
struct LockHolder {
    flock: Process,
}

impl LockHolder {
    fn start(env: &TestEnv, named: Option<&str>) -> Self {
        let script = match named {
            Some(pid) => format!("echo {pid} > {PIDFILE}; exec sleep 60"),
            None => "exec sleep 60".to_string(),
        };
        // flock exits 128 + 9 once its sleep is killed (see `end`).
        let flock = env
            .program("flock")
            .args([PIDFILE, "sh", "-c", &script])
            .status(137)
            .spawn();
        let pid = flock.pid();
        eventually("flock's lock and the pidfile", || {
            let locked = fs::read_to_string("/proc/locks").is_ok_and(|locks| {
                locks
                    .lines()
                    .any(|l| l.split_whitespace().nth(4) == Some(&pid.to_string()))
            });
            let written = match named {
                Some("$PPID") => env.read(PIDFILE) == format!("{pid}\n"),
                Some(named) => env.read(PIDFILE) == format!("{named}\n"),
                None => env.read(PIDFILE).is_empty(),
            };
            locked && written && !children(pid).is_empty()
        });
        Self { flock }
    }

    fn pid(&self) -> i32 {
        self.flock.pid()
    }

    fn is_running(&mut self) -> bool {
        self.flock.is_running()
    }

    /// Kills flock's child (which holds the lock too), so that flock exits.
    fn end(self) {
        for child in children(self.pid()) {
            kill(Pid::from_raw(child), Signal::SIGKILL).unwrap();
        }
        self.flock.wait();
    }
}

/// The children of `pid`.
fn children(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|child| child.parse().unwrap())
        .collect()
}

/// The executable `pid` runs, as `/proc/PID/exe` names it.
fn exe_of(pid: i32) -> String {
    fs::read_link(format!("/proc/{pid}/exe"))
        .unwrap()
        .display()
        .to_string()
}

/// The refusal of `backup_manager` to touch a pidfile held by `holder`.
fn foreign(holder: &str, why: &str) -> String {
    format!(
        "backup_manager: backup_service.pid is locked by {holder}, which is not backup_service of this home: {why}\n"
    )
}

#[test]
fn stop_and_start_leave_a_foreign_lock_holder_alone() {
    let env = TestEnv::new();
    let mut stranger = LockHolder::start(&env, Some("$PPID"));
    let pid = stranger.pid();
    let refusal = foreign(
        &format!("pid {pid} (flock)"),
        &format!("that process runs {}, not backupctl", exe_of(pid)),
    );
    env.manager(["stop"]).status(1).stderr(&refusal).run();
    assert!(stranger.is_running(), "stop signalled a stranger");
    env.manager(["start"]).status(1).stderr(&refusal).run();
    assert!(stranger.is_running(), "start signalled a stranger");
    env.manager(["status"])
        .status(3)
        .stdout("backup_service: not running\n")
        .stderr(refusal.replacen("backup_manager: ", "backup_manager: warning: ", 1))
        .run();
    assert_eq!(
        env.read(PIDFILE),
        format!("{pid}\n"),
        "the pidfile was touched"
    );
    stranger.end();
    // With the stranger gone, the service starts and stops as usual.
    Service::start(&env).stop();
}

#[test]
fn an_empty_pidfile_locked_by_flock_is_named_and_left_alone() {
    let env = TestEnv::new();
    // flock(1) takes the lock and runs sleep; the pidfile stays empty.
    let mut flock = LockHolder::start(&env, None);
    let pid = flock.pid();
    let refusal = foreign(&format!("pid {pid} (flock)"), "the pidfile names no pid");
    env.manager(["stop"]).status(1).stderr(&refusal).run();
    env.manager(["start"]).status(1).stderr(&refusal).run();
    assert!(flock.is_running(), "flock was signalled");
    assert_eq!(env.read(PIDFILE), "", "the pidfile was written");
    flock.end();
}

#[test]
fn a_backupctl_daemon_of_another_home_is_never_signalled_for_this_one() {
    let other = TestEnv::new();
    let service = Service::start(&other);
    let theirs = service.pid();
    let env = TestEnv::new();
    let mut stranger = LockHolder::start(&env, Some(&theirs.to_string()));
    env.manager(["stop"])
        .status(1)
        .stderr(foreign(
            &format!("pid {theirs} (backupctl)"),
            &format!(
                "that process does not hold the lock (pid {} does)",
                stranger.pid()
            ),
        ))
        .run();
    assert!(alive(theirs), "the other home's daemon was signalled");
    assert!(stranger.is_running(), "stop signalled a stranger");
    stranger.end();
    service.stop();
}

#[test]
fn a_foreground_daemon_started_elsewhere_is_recognised_and_stopped() {
    let env = TestEnv::new().with_clock("2024-05-06T09:30:05");
    let mut service = Service::foreground(
        &env,
        env.ctl(["--home"])
            .arg(env.home())
            .args(["daemon", "--foreground"])
            .current_dir("/")
            .stderr_pattern(foreground_stderr(&env, "06/05/2024", &[])),
    );
    assert_eq!(service.pid(), service.process().pid());
    // It logs "started" just after writing its pidfile, and a SIGTERM when
    // it arrives: stopped once started, so that the two come in that order.
    service.wait_for_log("backup_service started");
    env.manager(["stop"]).run();
    assert!(
        !env.path(PIDFILE).exists(),
        "the pidfile outlived the service"
    );
    // Exit 0, having logged its start, the SIGTERM and its stop.
    service.wait();
}

#[test]
fn the_pidfile_is_private_and_never_written_through_a_symlink() {
    let env = TestEnv::new();
    env.write("victim", "precious\n");
    env.symlink(env.path("victim"), PIDFILE);
    env.manager(["start"])
        .status(1)
        .stderr(format!(
            "backup_manager: cannot read pidfile {}: it is a symbolic link, not a pidfile; refusing to follow it\n",
            env.shown(PIDFILE)
        ))
        .run();
    assert_eq!(env.read("victim"), "precious\n");
    fs::remove_file(env.path(PIDFILE)).unwrap();
    let service = Service::start(&env);
    let mode = fs::metadata(env.path(PIDFILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    service.stop();
}

/// The daemon's descriptors: number and what it points to.
fn descriptors(pid: i32) -> Vec<(i32, String)> {
    let mut fds: Vec<(i32, String)> = fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the daemon's /proc/PID/fd")
        .filter_map(|e| {
            let e = e.ok()?;
            let fd = e.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(e.path()).ok()?;
            Some((fd, target.display().to_string()))
        })
        .collect();
    fds.sort();
    fds
}

#[test]
fn start_captured_by_a_pipe_returns_at_once_and_the_daemon_keeps_nothing_inherited() {
    let env = TestEnv::new();
    // out=$(backupctl start 2>&1): start exits, silent, and both pipes
    // close (`wait` fails if the daemon still holds either).
    env.ctl(["start"]).spawn().wait();
    assert!(alive(daemon_pid(&env)));
    env.manager(["stop"]).run();

    // out=$(exec 3>&1; backupctl start): fd 3 is the same pipe, and fd 4 a
    // file of the home.
    let mut start = env
        .bash(r#"exec 3>&1 4>>"$2/extra"; exec "$0" --home "$2" start"#)
        .arg(BIN)
        .arg("--")
        .arg(env.home())
        .spawn();
    eventually("start to return", || !start.is_running());
    let pid = daemon_pid(&env);
    assert!(alive(pid));
    let fds = descriptors(pid);
    for fd in 0..3 {
        assert!(fds.contains(&(fd, "/dev/null".to_string())), "{fds:?}");
    }
    assert!(
        !fds.iter()
            .any(|(_, target)| target.starts_with("pipe:") || target.ends_with("/extra")),
        "inherited descriptors survive in the daemon: {fds:?}"
    );
    start.wait();
    env.manager(["stop"]).run();
}

/// A home whose `slow` schedule, due at the service's first minute, waits
/// in its `before` hook (`TestEnv::holding_hook`) until the test releases
/// it. Dropping it releases the hook, so a failed test leaves no daemon
/// behind.
struct SlowBackup {
    env: TestEnv,
}

impl Drop for SlowBackup {
    fn drop(&mut self) {
        self.env.release_hook("slow");
    }
}

fn env_with_a_slow_backup() -> SlowBackup {
    let env = TestEnv::with_tree(&[], &[("src/a.txt", "alpha")]).with_clock("2024-05-06T09:30:05");
    let hold = env.holding_hook("slow");
    env.create(&format!("src;09:30;slow;before={hold}"));
    env.manager(["start"]).run();
    env.wait_for_hook("slow");
    SlowBackup { env }
}

/// `stop --timeout 1` (with `--now`: `now`), which gives up on a daemon
/// finishing a backup.
fn stop_times_out(env: &TestEnv, pid: i32, now: bool) {
    let stop = env.manager(["stop"]);
    let stop = if now { stop.arg("--now") } else { stop };
    stop.args(["--timeout", "1"])
        .status(1)
        .stderr(format!(
            "backup_manager: backup_service (pid {pid}) did not stop within 1 s; it is still running (stop --now aborts the backups in progress)\n"
        ))
        .run();
}

#[test]
fn a_repeated_stop_waits_again_and_never_aborts_the_backup() {
    let slow = env_with_a_slow_backup();
    let env = &slow.env;
    let pid = daemon_pid(env);
    stop_times_out(env, pid, false);
    // Logged when it arrived, not when the backup ends.
    let log = env.log_messages("backup_service.log");
    assert!(log.iter().any(|l| l == SIGTERM_STOPPING), "{log:#?}");
    // Again, waiting this time: it says so at once, sends nothing, waits.
    let already = format!(
        "backup_manager: backup_service (pid {pid}) is already stopping; waiting for the backups in progress (stop --now aborts them)\n"
    );
    let mut again = env.manager(["stop"]).stderr(&already).spawn();
    again.wait_for_stderr(&already);
    assert_eq!(again.stderr_so_far(), already);
    assert!(again.is_running(), "the second stop did not wait");
    assert!(alive(pid));
    env.release_hook("slow");
    again.wait();
    assert!(!alive(pid));
    env.manager(["backups"]).stdout("slow.tar\n").run();
    let log = env.log_messages("backup_service.log");
    assert!(!log.iter().any(|l| l.contains("abort")), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("Backup done for src in backups/slow.tar")),
        "{log:#?}"
    );
}

#[test]
fn stop_now_aborts_the_backups_in_progress() {
    let slow = env_with_a_slow_backup();
    let env = &slow.env;
    let pid = daemon_pid(env);
    // The hook itself is not killed: the abort takes effect once it returns.
    stop_times_out(env, pid, true);
    let log = env.log_messages("backup_service.log");
    assert!(
        log.iter().any(|l| l == SIGTERM_STOPPING) && log.iter().any(|l| l == SIGTERM_AGAIN),
        "{log:#?}"
    );
    env.release_hook("slow");
    eventually("the daemon's exit", || !alive(pid));
    env.manager(["backups"]).run();
    let log = env.log_messages("backup_service.log");
    assert!(
        log.iter()
            .any(|l| l.contains("backup failed for src (schedule slow): stopped before")),
        "{log:#?}"
    );
}

/// Starts the service with its clock at `local`, then stops it once it has
/// handled its first minute (a stop lets that minute's runs finish).
fn start_and_stop_at(env: &TestEnv, local: &str) {
    env.manager(["start"])
        .env("BACKUPCTL_FAKE_NOW", local)
        .run();
    env.manager(["stop"]).run();
}

fn backups_done(env: &TestEnv, archive: &str) -> usize {
    let prefix = format!("Backup done for src in backups/{archive} (");
    env.log_messages("backup_service.log")
        .iter()
        .filter(|l| l.starts_with(&prefix))
        .count()
}

#[test]
fn a_restart_within_the_minute_does_not_run_its_schedules_again() {
    let env = TestEnv::with_tree(&[], &[("src/a.txt", "alpha")]).with_clock("2024-05-06T09:30:05");
    env.create("src;09:30;now");
    env.create("src;09:31;next");
    start_and_stop_at(&env, "2024-05-06T09:30:05");
    assert_eq!(backups_done(&env, "now.tar"), 1);
    // Started again within 09:30: nothing new.
    start_and_stop_at(&env, "2024-05-06T09:30:40");
    assert_eq!(backups_done(&env, "now.tar"), 1, "now ran twice in 09:30");
    let log = env.log_messages("backup_service.log");
    assert!(
        log.iter().any(|l| l.starts_with("backup of now for ")
            && l.ends_with(" skipped: it was started for that minute already")),
        "{log:#?}"
    );
    // The next minute's schedule still runs, and only it.
    start_and_stop_at(&env, "2024-05-06T09:31:02");
    assert_eq!(backups_done(&env, "next.tar"), 1);
    assert_eq!(backups_done(&env, "now.tar"), 1);
    env.manager(["backups"]).stdout("next.tar\nnow.tar\n").run();
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { nix::libc::geteuid() == 0 }
}

/// `backupctl ARGS` in the home as `nobody`, who may read the home but not
/// write to it (the tests run as root; as another user, as that user). As
/// `nobody`, each command first warns, exactly `as_nobody` (one line).
fn as_reader(env: &TestEnv, args: &[&str], as_nobody: &str) -> Test {
    if running_as_root() {
        env.program("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
            .args(args)
            .stderr(format!("backupctl: warning: {as_nobody}; not logging\n"))
    } else {
        env.ctl(args)
    }
}

#[test]
fn a_home_the_caller_cannot_write_to_can_still_be_read() {
    let env = TestEnv::with_tree(&[], &[("src/a.txt", "alpha")]).with_clock("2024-05-06T09:30:05");
    env.create("src;03:00;s");
    env.ctl(["run", "s"])
        .stdout_pattern("backups/s.tar: 1 file, [..] MiB/s\n")
        .run();
    // Owned by root (or the test's user), readable by all, writable by none
    // else; the archive made readable so that verify and restore can read it.
    env.chmod(".", 0o755);
    env.chmod("backups/s.tar", 0o644);
    env.chmod("backups/s.tar.json", 0o644);
    env.chmod(".backupctl-state.json", 0o644);
    let before = env.paths_below(".");
    let out = std::env::temp_dir().join(format!("backupctl-restore-{}", std::process::id()));
    let _ = fs::remove_dir_all(&out);
    let cannot_log =
        "cannot open log file logs/backup_manager.log: Permission denied (os error 13)";
    let to = out.to_str().unwrap();
    let commands: [(&[&str], String); 6] = [
        (&["list"], "0: src;03:00;s\n".into()),
        (&["backups"], "s.tar\n".into()),
        (
            &["status"],
            "backup_service: not running\n\
             0: s  last run 06/05/2024 09:30 ok backups/s.tar  next run 07/05/2024 03:00  (src;03:00;s)\n"
                .into(),
        ),
        (&["check"], "ok: 1 schedule backed up in time\n".into()),
        (&["verify", "s.tar"], "OK backups/s.tar\n".into()),
        (
            &["restore", "s.tar", "--to", to],
            format!("{to}/src\n{to}/src/a.txt\n"),
        ),
    ];
    for (args, stdout) in commands {
        // `status` says "not running" with its exit code too (LSB).
        let status = if args == ["status"] { 3 } else { 0 };
        let mut test = as_reader(&env, args, cannot_log)
            .status(status)
            .stdout(stdout);
        if args[0] == "restore" && running_as_root() {
            // `nobody` cannot give the files back to root.
            test = test.stderr(format!(
                "backupctl: warning: {cannot_log}; not logging\n\
                 backupctl: warning: not running as root: owners and set-uid/set-gid/sticky bits of 2 entries were not restored\n"
            ));
        }
        test.run();
    }
    assert_eq!(
        fs::read(out.join("src/a.txt")).unwrap_or_default(),
        b"alpha"
    );
    let _ = fs::remove_dir_all(&out);
    assert_eq!(
        env.paths_below("."),
        before,
        "a read-only command changed the home"
    );
}

#[test]
fn read_only_commands_create_no_directory_in_the_home() {
    let env = TestEnv::new().with_clock("2024-05-06T09:30:05");
    env.write("backup_schedules.txt", "src;03:00;s\n");
    env.chmod(".", 0o755);
    let before = env.paths_below(".");
    let cannot_log = "cannot create logs: Permission denied (os error 13)";
    const STATUS: &str = "backup_service: not running\n\
                          0: s  last run never  next run 07/05/2024 03:00  (src;03:00;s)\n";
    // (arguments, exit status, stdout)
    let commands: [(&[&str], i32, &str); 4] = [
        (&["list"], 0, "0: src;03:00;s\n"),
        (&["backups"], 0, ""),
        (&["status"], 3, STATUS),
        (&["check"], 1, "s: never backed up\n"),
    ];
    for (args, status, stdout) in commands {
        as_reader(&env, args, cannot_log)
            .status(status)
            .stdout(stdout)
            .run();
        assert_eq!(env.paths_below("."), before, "{args:?} changed the home");
    }
    // As the owner: the log is written, backups/ is still not made.
    env.ctl(["list"]).stdout("0: src;03:00;s\n").run();
    env.ctl(["status"]).status(3).stdout(STATUS).run();
    assert!(!env.path("backups").exists());
    assert_eq!(
        env.log_messages("backup_manager.log"),
        ["Show schedules list", "Show status"]
    );
}

#[test]
fn logs_are_private_and_never_written_through_a_planted_symlink() {
    let env = TestEnv::with_tree(&["src"], &[("victim", "precious\n")]);
    env.ctl(["create", "src;03:00;s"]).run();
    let mode = |rel: &str| fs::metadata(env.path(rel)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("logs/backup_manager.log"), 0o640);
    fs::remove_file(env.path("logs/backup_manager.log")).unwrap();
    env.symlink(env.path("victim"), "logs/backup_manager.log");
    // A command still works, says once that it does not log, and the
    // victim is untouched.
    let not_logging = |program: &str| {
        format!(
            "{program}: warning: cannot open log file logs/backup_manager.log: it is a symbolic link; refusing to follow it; not logging\n"
        )
    };
    env.ctl(["list"])
        .stdout("0: src;03:00;s\n")
        .stderr(not_logging("backupctl"))
        .run();
    env.ctl(["create", "src;04:00;t"])
        .stderr(not_logging("backupctl"))
        .run();
    assert_eq!(env.read("victim"), "precious\n");
    // The service, whose log is its only voice, refuses to start.
    env.symlink(env.path("victim"), "logs/backup_service.log");
    env.ctl(["start"])
        .status(1)
        .stderr(format!(
            "{}backupctl: cannot open log file logs/backup_service.log: it is a symbolic link; refusing to follow it\n\
             backupctl: backup_service did not start: the daemon exited with exit status: 1\n",
            not_logging("backupctl")
        ))
        .run();
    assert!(!env.path(PIDFILE).exists());
    assert_eq!(env.read("victim"), "precious\n");
    fs::remove_file(env.path("logs/backup_service.log")).unwrap();
    env.ctl(["start"]).stderr(not_logging("backupctl")).run();
    env.ctl(["stop"]).stderr(not_logging("backupctl")).run();
    assert_eq!(mode("logs/backup_service.log"), 0o640);
    assert_eq!(env.read("victim"), "precious\n");
}
