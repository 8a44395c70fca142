//! Restore into a destination someone else changes while it runs (root
//! restoring into a directory another user can write): a directory, file or
//! node swapped for a symlink at a chosen instant (`BACKUPCTL_PAUSE_AT=
//! restore-entry:PATH` before an entry is written, `restore-written:PATH`
//! before its metadata is set) never makes restore write, change or delete
//! anything outside it.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;

use crate::support::{Process, TestEnv, eventually, stopped};

/// A home with `backups/docs.tar` of `src/{a/1,a/2,b/x,link,pipe}` (in
/// that order in the archive) and an empty `outside/`.
fn home_with_archive() -> TestEnv {
    let env = TestEnv::with_tree(
        &["src/a", "src/b", "outside"],
        &[("src/a/1", "one"), ("src/a/2", "two"), ("src/b/x", "ex")],
    );
    env.symlink("a/1", "src/link");
    env.mkfifo("src/pipe");
    env.chmod("src/pipe", 0o640);
    env.create("src;02:00;docs");
    env.ctl(["run", "docs"])
        .stdout_pattern("backups/docs.tar: 3 files, [..]\n")
        .run();
    env
}

/// `restore docs.tar --to out [--force]`, stopped at `step`, to exit with
/// `status` and `stderr`.
fn restore_stopped_at(
    env: &TestEnv,
    step: &str,
    force: bool,
    status: i32,
    stderr: &str,
) -> Process {
    let mut args = vec!["restore", "docs.tar", "--to", "out"];
    if force {
        args.push("--force");
    }
    let run = env
        .manager(args)
        .env("BACKUPCTL_PAUSE_AT", step)
        .stdout_contains("out/src/a/1\n")
        .status(status)
        .stderr(stderr)
        .spawn();
    eventually(&format!("the restore to stop at {step}"), || {
        stopped(run.pid())
    });
    run
}

/// A file outside the destination, mode 0600, modified at second 1000:
/// what a swapped link points to.
fn precious(env: &TestEnv, rel: &str) -> std::path::PathBuf {
    env.write(rel, "precious");
    env.chmod(rel, 0o600);
    let file = fs::File::options().write(true).open(env.path(rel)).unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1000))
        .unwrap();
    env.path(rel)
}

#[track_caller]
fn untouched(env: &TestEnv, rel: &str) {
    let meta = fs::symlink_metadata(env.path(rel)).unwrap();
    assert!(meta.is_file(), "{rel} is no longer a file");
    assert_eq!(env.read(rel), "precious", "{rel} was written");
    assert_eq!(meta.mode() & 0o7777, 0o600, "{rel} was chmodded");
    assert_eq!(meta.mtime(), 1000, "{rel} got another mtime");
    assert_eq!(meta.uid(), fs::metadata(env.home()).unwrap().uid());
}

#[test]
fn a_directory_swapped_for_a_symlink_during_a_restore_is_never_written_through() {
    let env = home_with_archive();
    // Restore has made out/src/b and is about to write b/x into it.
    let run = restore_stopped_at(
        &env,
        "restore-entry:src/b/x",
        false,
        1,
        "backup_manager: refusing to restore into out/src/b: it is a symlink, and restore never writes through one\n",
    );
    fs::remove_dir(env.path("out/src/b")).unwrap();
    env.symlink(env.path("outside"), "out/src/b");
    let out = run.signal_and_wait(Signal::SIGCONT);
    assert_eq!(fs::read_dir(env.path("outside")).unwrap().count(), 0);
    // What came before stays, as the docs say; nothing after was written.
    assert_eq!(env.read("out/src/a/2"), "two");
    assert!(!out.stdout.contains("out/src/b/x"), "{}", out.stdout);
    assert!(!env.path("out/src/pipe").exists());
    assert!(
        env.log_messages("backup_manager.log")
            .iter()
            .any(|l| l.contains("refusing to restore into out/src/b: it is a symlink"))
    );
}

#[test]
fn a_forced_restore_never_follows_what_is_swapped_in_under_it() {
    let env = home_with_archive();
    env.manager(["restore", "docs.tar", "--to", "out"])
        .stdout_contains("out/src/b/x\n")
        .run();
    // A file swapped for a symlink just before --force replaces it: the
    // link is replaced, its target untouched.
    precious(&env, "outside/target");
    let run = restore_stopped_at(&env, "restore-entry:src/b/x", true, 0, "");
    fs::remove_file(env.path("out/src/b/x")).unwrap();
    env.symlink(env.path("outside/target"), "out/src/b/x");
    run.signal_and_wait(Signal::SIGCONT);
    untouched(&env, "outside/target");
    assert!(
        fs::symlink_metadata(env.path("out/src/b/x"))
            .unwrap()
            .is_file()
    );
    assert_eq!(env.read("out/src/b/x"), "ex");

    // The directory holding it swapped for a symlink to a directory with a
    // file of that name: refused, the file outside untouched.
    precious(&env, "outside/x");
    let run = restore_stopped_at(
        &env,
        "restore-entry:src/b/x",
        true,
        1,
        "backup_manager: refusing to restore into out/src/b: it is a symlink, and restore never writes through one\n",
    );
    fs::rename(env.path("out/src/b"), env.path("out/b-was-here")).unwrap();
    env.symlink(env.path("outside"), "out/src/b");
    run.signal_and_wait(Signal::SIGCONT);
    untouched(&env, "outside/x");
    untouched(&env, "outside/target");
}

#[test]
fn metadata_of_a_fifo_never_lands_on_what_is_swapped_in_for_it() {
    let env = home_with_archive();
    precious(&env, "outside/target");
    // The FIFO made, about to get its mode, owner and time: swapped for a
    // symlink to a file outside.
    let run = restore_stopped_at(
        &env,
        "restore-written:src/pipe",
        false,
        1,
        "backup_manager: refusing to restore into out/src/pipe: it was replaced by something else during the restore\n",
    );
    fs::remove_file(env.path("out/src/pipe")).unwrap();
    env.symlink(env.path("outside/target"), "out/src/pipe");
    run.signal_and_wait(Signal::SIGCONT);
    untouched(&env, "outside/target");
}

#[test]
fn metadata_of_a_symlink_stays_on_the_symlink() {
    // An archive whose symlink carries an extended attribute and a time:
    // both belong to the link, never to the file it points to.
    let env = TestEnv::new();
    let target = precious(&env, "outside/target");
    let script = r#"
import sys, tarfile
i = tarfile.TarInfo("l"); i.type = tarfile.SYMTYPE; i.linkname = sys.argv[2]
i.mtime = 2000
i.pax_headers = {"SCHILY.xattr.user.planted": "1", "SCHILY.xattr.trusted.kept": "1"}
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    t.addfile(i)
"#;
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(env.path("link.tar"))
        .arg(&target)
        .status()
        .expect("python3");
    assert!(status.success());
    let run = env
        .manager(["restore", &env.shown("link.tar"), "--to", "out"])
        .stdout("out/l\n")
        .stderr_contains("has no manifest")
        .run();
    untouched(&env, "outside/target");
    assert_eq!(xattr::get(&target, "user.planted").unwrap(), None);
    let link = fs::symlink_metadata(env.path("out/l")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!(link.mtime(), 2000);
    assert_eq!(xattr::get(&target, "trusted.kept").unwrap(), None);
    if nix::unistd::geteuid().is_root() {
        // Root may put a trusted attribute on a symlink: it is there.
        assert_eq!(
            xattr::get(env.path("out/l"), "trusted.kept").unwrap(),
            Some(b"1".to_vec())
        );
    }
    // Linux keeps user attributes off symlinks: reported, not fatal.
    assert!(
        run.stderr
            .contains("extended attributes or ACLs of 1 entries could not be restored"),
        "{}",
        run.stderr
    );
    assert_eq!(
        fs::metadata(&target).unwrap().permissions().mode() & 0o7777,
        0o600
    );
}

#[test]
fn a_hard_link_never_takes_an_inode_swapped_in_for_its_target() {
    let env = home_with_archive();
    fs::hard_link(env.path("src/a/1"), env.path("src/h")).unwrap();
    env.ctl(["run", "docs"])
        .stdout_pattern("backups/docs.tar: 3 files, [..]\n")
        .run();
    // src/a/1 is restored; before src/h links to it, it is replaced by a
    // link to a file outside.
    let target = precious(&env, "outside/target");
    let run = restore_stopped_at(
        &env,
        "restore-entry:src/h",
        false,
        1,
        "backup_manager: refusing to restore into out/src/a/1: it was replaced by something else during the restore\n",
    );
    fs::remove_file(env.path("out/src/a/1")).unwrap();
    fs::hard_link(&target, env.path("out/src/a/1")).unwrap();
    run.signal_and_wait(Signal::SIGCONT);
    untouched(&env, "outside/target");
    assert!(!env.path("out/src/h").exists());
    assert_eq!(fs::metadata(&target).unwrap().nlink(), 2);
}

#[test]
fn a_destination_that_is_a_symlink_is_refused() {
    let env = home_with_archive();
    env.symlink(env.path("outside"), "out");
    env.manager(["restore", "docs.tar", "--to", "out"])
        .status(1)
        .stderr("backup_manager: refusing to restore into out: it is a symlink, and restore never writes through one\n")
        .run();
    assert_eq!(fs::read_dir(env.path("outside")).unwrap().count(), 0);
}

#[test]
fn an_archive_replaced_after_it_was_checked_is_not_what_is_restored() {
    let env = home_with_archive();
    // Another archive, with other content under the same names, ready to
    // take the checked one's name while restore is between its passes.
    env.write("evil/src/a/1", "evil");
    let made = Command::new("tar")
        .args(["-cf", "backups/other.tar", "-C", "evil", "src"])
        .current_dir(env.home())
        .status()
        .unwrap();
    assert!(made.success());
    let run = env
        .manager(["restore", "docs.tar", "--to", "out"])
        .env("BACKUPCTL_PAUSE_AT", "restore-checked")
        .stdout_contains("out/src/a/1\n")
        .spawn();
    eventually("the restore to stop once the archive is checked", || {
        stopped(run.pid())
    });
    fs::rename(env.path("backups/other.tar"), env.path("backups/docs.tar")).unwrap();
    run.signal_and_wait(Signal::SIGCONT);
    assert_eq!(env.read("out/src/a/1"), "one");
    assert_eq!(env.read("out/src/b/x"), "ex");
}
