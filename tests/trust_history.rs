//! What a schedule's history promises under attack and accident: retention
//! deletes only the schedule's own archives, a clock that was wrong once
//! erases nothing after it, a published archive always has a matching
//! manifest (a kill at any step, a `verify` racing a run), and a backup never
//! contains itself.

use std::fs;

use nix::sys::signal::Signal;

use crate::support::{TestEnv, eventually, stopped};

/// `run NAME`, expecting success and a summary line for `archive`.
fn run_ok(env: &TestEnv, name: &str) {
    env.manager(["run", name]).stdout_contains(" MiB/s\n").run();
}

/// The archives in `backups/` (hidden files and manifests left out).
fn archives(env: &TestEnv) -> Vec<String> {
    env.dir_listing("backups")
        .into_iter()
        .filter(|n| !n.starts_with('.') && !n.ends_with(".json"))
        .collect()
}

#[test]
fn retention_deletes_only_archives_whose_manifest_names_the_schedule() {
    let env = TestEnv::with_tree(&["src"], &[("src/a.txt", "a")]);
    env.create("src;10:00;docs;keep-last=1");
    // Files that only look like docs's history: another schedule's single
    // archive (its manifest names it), and one with no manifest at all.
    env.write("backups/docs_20200101_000000.tar", "another schedule's");
    env.write_manifest("docs_20200101_000000.tar", "docs_20200101_000000");
    env.write("backups/docs_20200102_000000.tar", "nobody's");
    for _ in 0..3 {
        run_ok(&env, "docs");
    }
    let left = archives(&env);
    assert_eq!(left.len(), 3, "{left:?}");
    assert_eq!(
        env.read("backups/docs_20200101_000000.tar"),
        "another schedule's"
    );
    assert_eq!(env.read("backups/docs_20200102_000000.tar"), "nobody's");
    // `prune` judges the same way.
    env.manager(["prune", "docs"])
        .stdout_pattern("keep    backups/docs_[..].tar  (newest, keep-last)\n")
        .run();
}

#[test]
fn names_whose_files_could_be_taken_for_another_schedules_are_refused() {
    let env = TestEnv::with_tree(&["src"], &[]);
    let before = env.schedules();
    for name in [
        "docs_20200101_000000",
        "x.tar",
        "x.tar.gz",
        "x.tar.zst",
        "x.tar.json",
        "x.partial",
        "x.lock",
    ] {
        env.manager(["create", &format!("src;10:00;{name}")])
            .status(2)
            .stderr_pattern(format!(
                "backup_manager: malformed schedule: src;10:00;{name} (backup name \"{name}\" ends like [..])\n"
            ))
            .run();
        assert_eq!(env.schedules(), before, "{name}");
    }
}

#[test]
fn a_clock_that_was_years_ahead_once_erases_nothing_after_it() {
    let env = TestEnv::with_tree(&["src"], &[("src/a.txt", "a")]);
    env.create("src;10:00;docs;keep-within=36h");
    // One run while the clock was five years ahead.
    env.manager(["run", "docs"])
        .env("BACKUPCTL_FAKE_NOW", "2031-01-01T10:00:00")
        .stdout_pattern("backups/docs_20310101_100000.tar: [..]\n")
        .run();
    // Then the clock is right again: every run keeps its own archive, and
    // the future one anchors nothing.
    for day in 1..=3 {
        env.manager(["run", "docs"])
            .env("BACKUPCTL_FAKE_NOW", format!("2026-01-0{day}T10:00:00"))
            .stdout_contains(format!("backups/docs_2026010{day}_100000.tar: "))
            .run();
        assert!(
            env.path(&format!("backups/docs_2026010{day}_100000.tar"))
                .exists(),
            "day {day}: the run deleted its own archive"
        );
    }
    // keep-within=36h from the newest dated archive (the 3rd): the 1st went.
    assert_eq!(
        archives(&env),
        [
            "docs_20260102_100000.tar",
            "docs_20260103_100000.tar",
            "docs_20310101_100000.tar"
        ]
    );
    assert!(env.log_has(
        "backup_service.log",
        "backups/docs_20310101_100000.tar is dated after this run's clock"
    ));
    env.manager(["check"])
        .env("BACKUPCTL_FAKE_NOW", "2026-01-03T10:01:00")
        .status(1)
        .stdout(
            "docs: 1 archive dated after the current time (newest docs_20310101_100000.tar); retention keeps it until then: was the clock wrong when it was written?\n",
        )
        .run();
}

/// The steps of publishing an archive that a kill or a pause can hit.
const PUBLISHING_STEPS: [&str; 2] = ["manifest-written", "archive-renamed"];

/// A home whose schedule `docs` (with `options`: none replaces one archive,
/// `;keep-last=5` keeps a history) has one archive, and whose source then
/// changes, so the next run writes a different archive.
fn home_with_one_archive(options: &str) -> TestEnv {
    let env = TestEnv::with_tree(&["src"], &[("src/a.txt", "one")]);
    env.create(&format!("src;10:00;docs{options}"));
    run_ok(&env, "docs");
    env
}

/// `verify --all` says OK for every archive: never FAILED, never "no
/// manifest".
#[track_caller]
fn all_verify(env: &TestEnv, when: &str) {
    let out = env
        .manager(["verify", "--all"])
        .stdout_contains("OK backups/docs")
        .run();
    assert!(
        out.stdout.lines().all(|l| l.starts_with("OK ")),
        "{when}: {}",
        out.stdout
    );
}

/// Runs `name` with the process aborting at `step` of publishing.
fn crash_at(env: &TestEnv, name: &str, step: &str) {
    env.manager(["run", name])
        .env("BACKUPCTL_CRASH_AT", step)
        .killed()
        .stdout_contains("")
        .stderr_contains("")
        .run();
}

#[test]
fn a_kill_at_any_step_of_publishing_leaves_archives_that_verify() {
    for options in ["", ";keep-last=5"] {
        let env = home_with_one_archive(options);
        for step in PUBLISHING_STEPS {
            env.write("src/a.txt", format!("changed before {step}"));
            crash_at(&env, "docs", step);
            all_verify(&env, &format!("after a kill at {step} ({options:?})"));
        }
        // The next run clears what the kills left and leaves no stray file.
        run_ok(&env, "docs");
        all_verify(&env, "after the next run");
        let hidden: Vec<String> = env
            .dir_listing("backups")
            .into_iter()
            .filter(|n| n.starts_with('.') && !n.ends_with(".lock"))
            .collect();
        assert!(hidden.is_empty(), "{hidden:?}");
        let orphans: Vec<String> = env
            .dir_listing("backups")
            .into_iter()
            .filter(|n| {
                n.strip_suffix(".json")
                    .is_some_and(|a| !env.path(&format!("backups/{a}")).exists())
            })
            .collect();
        assert!(orphans.is_empty(), "{orphans:?}");
    }
}

#[test]
fn verify_during_a_run_never_reports_a_good_archive_as_failed() {
    // A run frozen at each instant of publishing, replacing an archive and
    // adding one to a history, while `verify --all` looks at everything.
    for options in ["", ";keep-last=5"] {
        let env = home_with_one_archive(options);
        for step in PUBLISHING_STEPS {
            env.write("src/a.txt", format!("changed before {step}"));
            let run = env
                .manager(["run", "docs"])
                .env("BACKUPCTL_PAUSE_AT", step)
                .stdout_contains(" MiB/s\n")
                .spawn();
            eventually(&format!("the run to stop at {step}"), || stopped(run.pid()));
            all_verify(&env, &format!("while a run is at {step} ({options:?})"));
            run.signal_and_wait(Signal::SIGCONT);
        }
        all_verify(&env, "after the runs");
    }
}

#[test]
fn a_source_that_contains_the_home_never_archives_the_home_s_own_files() {
    let env = TestEnv::with_tree(&["data"], &[("data/a.txt", "some data")]);
    env.create(".;10:00;home;keep-last=5");
    run_ok(&env, "home");
    let first = fs::metadata(env.path(&format!("backups/{}", archives(&env)[0])))
        .unwrap()
        .len();
    run_ok(&env, "home");
    run_ok(&env, "home");
    let names = archives(&env);
    assert_eq!(names.len(), 3);
    let last = &names[2];
    let size = fs::metadata(env.path(&format!("backups/{last}")))
        .unwrap()
        .len();
    assert!(
        size < first + 64 * 1024,
        "the third archive grew from {first} to {size} bytes"
    );
    let listed = env.tar_list(&format!("backups/{last}"));
    let dir = env
        .home()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(listed.contains(&format!("{dir}/data/a.txt")), "{listed:?}");
    for own in ["backups/", "logs/", ".backupctl-state.json"] {
        assert!(
            !listed
                .iter()
                .any(|n| n.starts_with(&format!("{dir}/{own}"))),
            "{own} archived: {listed:?}"
        );
    }
    assert!(env.log_has(
        "backup_service.log",
        "home: left out of the archive (backupctl's own files, pseudo-filesystems):"
    ));
}

#[test]
fn two_schedules_never_share_a_temporary_file() {
    // Two schedules of one tree run at once; each writes its own partial
    // archive, created exclusively under a fresh name.
    let env = TestEnv::with_tree(&["src"], &[]);
    env.allocated_file("src/big.bin", 4 << 30);
    env.create("src;10:00;a");
    env.create("src;10:00;b");
    let abandoned = |name: &str| {
        env.manager(["run", name])
            .status(130)
            .stderr_contains("the partial file was removed")
            .spawn()
    };
    let (one, two) = (abandoned("a"), abandoned("b"));
    eventually("both partial archives", || {
        env.partial_archives("a").len() == 1 && env.partial_archives("b").len() == 1
    });
    assert_ne!(env.partial_archives("a"), env.partial_archives("b"));
    one.signal_and_wait(Signal::SIGINT);
    two.signal_and_wait(Signal::SIGINT);
    assert!(env.partial_archives("a").is_empty() && env.partial_archives("b").is_empty());
}

/// Unmounts on drop, so a failing test leaves no mount behind.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_source_never_descends_into_a_pseudo_filesystem() {
    let env = TestEnv::with_tree(&["src/proc"], &[("src/a.txt", "a")]);
    let mount_point = env.path("src/proc");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "proc", "proc"])
        .arg(&mount_point)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: this machine does not let the tests mount /proc");
        return;
    }
    let _guard = Mounted(mount_point);
    env.create("src;10:00;src");
    run_ok(&env, "src");
    assert_eq!(env.tar_list("backups/src.tar"), ["src/", "src/a.txt"]);
    assert!(env.log_has(
        "backup_service.log",
        "src: left out of the archive (backupctl's own files, pseudo-filesystems): src/proc"
    ));
}

#[test]
fn a_pipe_or_a_device_planted_as_a_manifest_never_hangs_a_run() {
    // The home's user plants them for the root service to open: a pipe
    // nobody writes would hold the open (and the service) for ever, a
    // device would be read without end.
    let env = TestEnv::with_tree(&["src"], &[("src/a.txt", "a")]);
    env.create("src;10:00;docs;keep-last=1");
    env.write("backups/docs_20200101_000000.tar", "planted");
    env.symlink("/dev/zero", "backups/docs_20200101_000000.tar.json");
    env.write("backups/docs_20200102_000000.tar", "planted");
    env.bash("mkfifo backups/docs_20200102_000000.tar.json")
        .run();
    run_ok(&env, "docs");
    run_ok(&env, "docs");
    assert_eq!(archives(&env).len(), 3, "{:?}", archives(&env));
    assert_eq!(env.read("backups/docs_20200102_000000.tar"), "planted");
}
