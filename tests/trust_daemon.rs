//! Trust between the service and the commands that talk to it, in a home
//! other users may write to: only our own daemon is ever signalled, the
//! daemon keeps no inherited descriptor, a repeated `stop` never aborts a
//! backup, a minute's schedules run once across restarts, and read-only
//! homes can still be read.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{BIN, TestEnv};

/// The pid on the pidfile's first line.
fn daemon_pid(env: &TestEnv) -> i32 {
    env.read("backup_service.pid")
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("a pid in backup_service.pid")
}

/// True while `pid` runs; a zombie (exited, not yet reaped) is not alive.
fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        !state.starts_with('Z')
    })
}

/// A process that is not our daemon: it takes the lock on the pidfile of
/// `env` and writes `named` (its own pid when `None`) into it, as
/// `flock backup_service.pid` would, then sleeps holding it.
fn foreign_lock_holder(env: &TestEnv, named: Option<i32>) -> Child {
    let pid = named.map_or_else(|| "$$".to_string(), |p| p.to_string());
    let script = format!(
        "exec 9>>backup_service.pid; flock 9; echo {pid} > backup_service.pid; exec sleep 60"
    );
    let child = Command::new("bash")
        .args(["-c", &script])
        .current_dir(env.home())
        .stdin(Stdio::null())
        .spawn()
        .expect("bash");
    let expected = named.unwrap_or(child.id() as i32).to_string();
    env.eventually("the stranger's pidfile", || {
        env.read("backup_service.pid").trim() == expected
    });
    child
}

fn still_running(child: &mut Child) -> bool {
    child.try_wait().expect("try_wait").is_none()
}

#[test]
fn stop_and_start_leave_a_foreign_lock_holder_alone() {
    let env = TestEnv::new();
    let mut stranger = foreign_lock_holder(&env, None);
    let pid = stranger.id();
    let stop = env.manager(&["stop"]);
    stop.code(1).stderr_has(&format!(
        "backup_manager: backup_service.pid is locked by pid {pid} (sleep), which is not backup_service of this home"
    ));
    assert_eq!(stop.stderr.lines().count(), 1, "{stop:#?}");
    assert!(still_running(&mut stranger), "stop signalled a stranger");
    env.manager(&["start"]).code(1).stderr_has(&format!(
        "locked by pid {pid} (sleep), which is not backup_service of this home"
    ));
    assert!(still_running(&mut stranger));
    env.manager(&["status"])
        .success()
        .stdout_is("backup_service: not running\n")
        .stderr_has("warning: backup_service.pid is locked by");
    stranger.kill().unwrap();
    stranger.wait().unwrap();
    // With the stranger gone, the service starts and stops as usual.
    env.manager(&["start"]).success();
    env.manager(&["stop"]).success();
}

#[test]
fn an_empty_pidfile_locked_by_flock_is_named_and_left_alone() {
    let env = TestEnv::new();
    // flock(1) takes the lock and runs sleep; the pidfile stays empty.
    let mut flock = Command::new("flock")
        .args(["backup_service.pid", "sleep", "60"])
        .current_dir(env.home())
        .stdin(Stdio::null())
        .spawn()
        .expect("flock");
    let pid = flock.id();
    env.eventually("flock's lock", || {
        fs::read_to_string("/proc/locks").is_ok_and(|locks| {
            locks
                .lines()
                .any(|l| l.split_whitespace().nth(4) == Some(&pid.to_string()))
        })
    });
    let expected = format!(
        "backup_service.pid is locked by pid {pid} (flock), which is not backup_service of this home: the pidfile names no pid"
    );
    env.manager(&["stop"]).code(1).stderr_has(&expected);
    env.manager(&["start"]).code(1).stderr_has(&expected);
    assert!(still_running(&mut flock));
    // flock's sleep first, then flock.
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    for child in children.split_whitespace() {
        let child = nix::unistd::Pid::from_raw(child.parse().unwrap());
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    }
    flock.kill().unwrap();
    flock.wait().unwrap();
}

#[test]
fn a_backupctl_daemon_of_another_home_is_never_signalled_for_this_one() {
    let other = TestEnv::new();
    other.manager(&["start"]).success();
    let theirs = daemon_pid(&other);
    let env = TestEnv::new();
    let mut stranger = foreign_lock_holder(&env, Some(theirs));
    env.manager(&["stop"])
        .code(1)
        .stderr_has(&format!("is locked by pid {theirs} (backupctl)"))
        .stderr_has("does not hold the lock");
    assert!(alive(theirs), "the other home's daemon was signalled");
    assert!(still_running(&mut stranger));
    stranger.kill().unwrap();
    stranger.wait().unwrap();
    other.manager(&["stop"]).success();
}

#[test]
fn a_foreground_daemon_started_elsewhere_is_recognised_and_stopped() {
    let env = TestEnv::new();
    let mut daemon = env.command("backupctl");
    daemon
        .arg("--home")
        .arg(env.home())
        .args(["daemon", "--foreground"])
        .current_dir("/")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = daemon.spawn().unwrap();
    env.eventually("the pidfile", || {
        env.read("backup_service.pid").contains('\n')
    });
    assert_eq!(daemon_pid(&env), child.id() as i32);
    env.manager(&["stop"]).success();
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_pidfile_is_private_and_never_written_through_a_symlink() {
    let env = TestEnv::new();
    env.write("victim", b"precious\n");
    std::os::unix::fs::symlink(env.path("victim"), env.path("backup_service.pid")).unwrap();
    env.manager(&["start"])
        .code(1)
        .stderr_has("backup_service.pid: it is a symbolic link, not a pidfile");
    assert_eq!(env.read("victim"), "precious\n");
    fs::remove_file(env.path("backup_service.pid")).unwrap();
    env.manager(&["start"]).success();
    let mode = fs::metadata(env.path("backup_service.pid"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    env.manager(&["stop"]).success();
}

/// Reads `child`'s stdout to its end in a thread, like `out=$(...)`: the
/// text, or `None` when the pipe is still open after ten seconds.
fn output_within_ten_seconds(child: &mut Child) -> Option<String> {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    rx.recv_timeout(Duration::from_secs(10)).ok()
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
    // out=$(backupctl start 2>&1)
    let mut start = env.command("backupctl");
    start
        .arg("start")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = start.spawn().unwrap();
    let out = output_within_ten_seconds(&mut child);
    assert_eq!(out.as_deref(), Some(""), "start's stdout stayed open");
    assert!(child.wait().unwrap().success());
    let pid = daemon_pid(&env);
    assert!(alive(pid));
    env.manager(&["stop"]).success();

    // out=$(exec 3>&1; backupctl start): fd 3 is the same pipe.
    let mut child = Command::new("bash")
        .args([
            "-c",
            r#"exec 3>&1 4>>"$2/extra"; exec "$0" --home "$2" start"#,
            BIN,
        ])
        .arg("--")
        .arg(env.home())
        .current_dir(env.home())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .env_remove("BACKUPCTL_HOME")
        .spawn()
        .unwrap();
    let out = output_within_ten_seconds(&mut child);
    assert_eq!(
        out.as_deref(),
        Some(""),
        "the daemon kept the inherited pipe open: {:?}",
        descriptors(daemon_pid(&env))
    );
    assert!(child.wait().unwrap().success());
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
    env.manager(&["stop"]).success();
}

/// A home whose `slow` schedule, due at the service's first minute, waits
/// in its `before` hook (having touched `started`) until `release` exists.
/// Dropping it releases the hook, so a failed test leaves no daemon behind.
struct SlowBackup {
    env: TestEnv,
}

impl Drop for SlowBackup {
    fn drop(&mut self) {
        let _ = fs::write(self.env.path("release"), b"");
    }
}

fn env_with_a_slow_backup() -> SlowBackup {
    let env = TestEnv::new().with_clock("2024-05-06T09:30:05");
    env.write("src/a.txt", b"alpha");
    env.write(
        "hook.sh",
        b"touch started\nwhile [ ! -e release ]; do sleep 0.02; done\n",
    );
    env.manager(&["create", "src;09:30;slow;before=sh hook.sh"])
        .success();
    env.manager(&["start"]).success();
    env.eventually("the before hook", || env.path("started").exists());
    SlowBackup { env }
}

#[test]
fn a_repeated_stop_waits_again_and_never_aborts_the_backup() {
    let slow = env_with_a_slow_backup();
    let env = &slow.env;
    let pid = daemon_pid(env);
    env.manager(&["stop", "--timeout", "1"])
        .code(1)
        .stderr_has(&format!(
            "backup_service (pid {pid}) did not stop within 1 s; it is still running"
        ));
    // Logged when it arrived, not when the backup ends.
    assert!(
        env.log_messages("backup_service.log")
            .contains(&"SIGTERM received: stopping after the backups in progress".to_string()),
        "{:#?}",
        env.log_messages("backup_service.log")
    );
    // Again, waiting this time: it says so at once, sends nothing, waits.
    let mut again = env.command("backup_manager");
    again
        .arg("stop")
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    let mut again = again.spawn().unwrap();
    let mut stderr = BufReader::new(again.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert_eq!(
        first,
        format!(
            "backup_manager: backup_service (pid {pid}) is already stopping; waiting for the backups in progress (stop --now aborts them)\n"
        )
    );
    assert!(alive(pid));
    fs::write(env.path("release"), b"").unwrap();
    assert!(again.wait().unwrap().success());
    assert!(!alive(pid));
    env.manager(&["backups"]).success().stdout_is("slow.tar\n");
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
    env.manager(&["stop", "--now", "--timeout", "1"]).code(1);
    let log = env.log_messages("backup_service.log");
    assert!(
        log.contains(&"SIGTERM received: stopping after the backups in progress".to_string())
            && log
                .contains(&"SIGTERM received again: aborting the backups in progress".to_string()),
        "{log:#?}"
    );
    fs::write(env.path("release"), b"").unwrap();
    env.eventually("the daemon's exit", || !alive(pid));
    env.manager(&["backups"]).success().stdout_is("");
    let log = env.log_messages("backup_service.log");
    assert!(
        log.iter()
            .any(|l| l.contains("backup failed for src: stopped before")),
        "{log:#?}"
    );
}

/// Starts the service with its clock at `local`, then stops it once it has
/// handled its first minute (a stop lets that minute's runs finish).
fn start_and_stop_at(env: &TestEnv, local: &str) {
    let mut start = env.command("backup_manager");
    start.arg("start").env("BACKUPCTL_FAKE_NOW", local);
    env.run_cmd(start).success();
    env.manager(&["stop"]).success();
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
    let env = TestEnv::new().with_clock("2024-05-06T09:30:05");
    env.write("src/a.txt", b"alpha");
    env.manager(&["create", "src;09:30;now"]).success();
    env.manager(&["create", "src;09:31;next"]).success();
    start_and_stop_at(&env, "2024-05-06T09:30:05");
    assert_eq!(backups_done(&env, "now.tar"), 1);
    // Started again within 09:30: nothing new.
    start_and_stop_at(&env, "2024-05-06T09:30:40");
    assert_eq!(backups_done(&env, "now.tar"), 1, "now ran twice in 09:30");
    assert!(
        env.log_messages("backup_service.log")
            .iter()
            .any(|l| l.starts_with("backup of now for ")
                && l.ends_with(" skipped: it was started for that minute already")),
        "{:#?}",
        env.log_messages("backup_service.log")
    );
    // The next minute's schedule still runs, and only it.
    start_and_stop_at(&env, "2024-05-06T09:31:02");
    assert_eq!(backups_done(&env, "next.tar"), 1);
    assert_eq!(backups_done(&env, "now.tar"), 1);
    env.manager(&["backups"])
        .success()
        .stdout_is("next.tar\nnow.tar\n");
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { nix::libc::geteuid() == 0 }
}

/// Runs `backupctl ARGS` in the home as `nobody`, who may read the home but
/// not write to it (the tests run as root; as another user, as that user).
fn as_reader(env: &TestEnv, args: &[&str]) -> crate::support::Run {
    let root = running_as_root();
    let mut cmd = if root {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        cmd
    } else {
        Command::new(BIN)
    };
    cmd.args(args)
        .current_dir(env.home())
        .env_remove("BACKUPCTL_HOME")
        .env_remove("BACKUPCTL_FAKE_NOW")
        .stdin(Stdio::null());
    env.run_cmd(cmd)
}

fn chmod(env: &TestEnv, rel: &str, mode: u32) {
    fs::set_permissions(env.path(rel), fs::Permissions::from_mode(mode)).unwrap();
}

/// Everything under the home, sorted, for "nothing was created" checks.
fn tree(env: &TestEnv) -> Vec<String> {
    let mut names: Vec<String> = walk(env.home())
        .into_iter()
        .map(|p| p.strip_prefix(env.home()).unwrap().display().to_string())
        .collect();
    names.sort();
    names
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.symlink_metadata().unwrap().is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn a_home_the_caller_cannot_write_to_can_still_be_read() {
    let env = TestEnv::new();
    env.write("src/a.txt", b"alpha");
    env.ctl(&["create", "src;03:00;s"]).success();
    env.ctl(&["run", "s"]).success();
    // Owned by root (or the test's user), readable by all, writable by none
    // else; the archive made readable so that verify and restore can read it.
    chmod(&env, ".", 0o755);
    chmod(&env, "backups/s.tar", 0o644);
    chmod(&env, "backups/s.tar.json", 0o644);
    chmod(&env, ".backupctl-state.json", 0o644);
    let before = tree(&env);
    let out = std::env::temp_dir().join(format!("backupctl-restore-{}", std::process::id()));
    let _ = fs::remove_dir_all(&out);
    let commands: [&[&str]; 6] = [
        &["list"],
        &["backups"],
        &["status"],
        &["check"],
        &["verify", "s.tar"],
        &["restore", "s.tar", "--to", out.to_str().unwrap()],
    ];
    for args in commands {
        let run = as_reader(&env, args);
        run.success();
        if running_as_root() {
            assert_eq!(
                run.stderr,
                "backupctl: warning: cannot open log file logs/backup_manager.log: Permission denied (os error 13); not logging\n",
                "{args:?}"
            );
        }
    }
    assert_eq!(
        fs::read(out.join("src/a.txt")).unwrap_or_default(),
        b"alpha"
    );
    let _ = fs::remove_dir_all(&out);
    assert_eq!(tree(&env), before, "a read-only command changed the home");
}

#[test]
fn read_only_commands_create_no_directory_in_the_home() {
    let env = TestEnv::new();
    env.write("backup_schedules.txt", b"src;03:00;s\n");
    chmod(&env, ".", 0o755);
    let before = tree(&env);
    for args in [&["list"][..], &["backups"], &["status"], &["check"]] {
        let run = as_reader(&env, args);
        if running_as_root() {
            assert_eq!(
                run.stderr.lines().next(),
                Some(
                    "backupctl: warning: cannot create logs: Permission denied (os error 13); not logging"
                ),
                "{args:?}"
            );
        }
        assert_eq!(tree(&env), before, "{args:?} changed the home");
    }
    as_reader(&env, &["list"])
        .success()
        .stdout_is("0: src;03:00;s\n");
    as_reader(&env, &["backups"]).success().stdout_is("");
    as_reader(&env, &["status"]).success();
    // As the owner: the log is written, backups/ is still not made.
    env.ctl(&["list"]).success();
    env.ctl(&["status"]).success();
    assert!(!env.path("backups").exists());
    assert_eq!(
        env.log_messages("backup_manager.log"),
        ["Show schedules list", "Show status"]
    );
}

#[test]
fn logs_are_private_and_never_written_through_a_planted_symlink() {
    let env = TestEnv::new();
    env.write("victim", b"precious\n");
    env.ctl(&["create", "src;03:00;s"]).success();
    let mode = |rel: &str| fs::metadata(env.path(rel)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("logs/backup_manager.log"), 0o640);
    fs::remove_file(env.path("logs/backup_manager.log")).unwrap();
    std::os::unix::fs::symlink(env.path("victim"), env.path("logs/backup_manager.log")).unwrap();
    // A command still works, says once that it does not log, and the
    // victim is untouched.
    let list = env.ctl(&["list"]);
    list.success().stdout_is("0: src;03:00;s\n");
    assert_eq!(
        list.stderr,
        "backupctl: warning: cannot open log file logs/backup_manager.log: it is a symbolic link; refusing to follow it; not logging\n"
    );
    env.ctl(&["create", "src;04:00;t"]).success();
    assert_eq!(env.read("victim"), "precious\n");
    // The service, whose log is its only voice, refuses to start.
    std::os::unix::fs::symlink(env.path("victim"), env.path("logs/backup_service.log")).unwrap();
    env.ctl(&["start"])
        .code(1)
        .stderr_has("cannot open log file logs/backup_service.log: it is a symbolic link; refusing to follow it");
    assert!(!env.path("backup_service.pid").exists());
    assert_eq!(env.read("victim"), "precious\n");
    fs::remove_file(env.path("logs/backup_service.log")).unwrap();
    env.ctl(&["start"]).success();
    env.ctl(&["stop"]).success();
    assert_eq!(mode("logs/backup_service.log"), 0o640);
}
