//! The write path of `run`: compressed formats read back with GNU tar,
//! manifests checked against `sha256sum`, history names, `if-changed`, the
//! three exit states and `--dry-run`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{BIN, Run, TestEnv};

/// A small tree with a nested directory, a symlink and an executable.
fn make_tree(env: &TestEnv, dir: &str) {
    env.write(&format!("{dir}/a.txt"), b"alpha\n");
    env.write(
        &format!("{dir}/sub/b.txt"),
        "beta ".repeat(10_000).as_bytes(),
    );
    env.write(&format!("{dir}/sub/run.sh"), b"#!/bin/sh\necho hi\n");
    let script = env.path(&format!("{dir}/sub/run.sh"));
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    symlink("../a.txt", env.path(&format!("{dir}/sub/link"))).unwrap();
}

fn manifest(env: &TestEnv, archive: &str) -> Value {
    let text = env.read(&format!("{archive}.json"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{archive}.json: {e}: {text:?}"))
}

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Extracts `archive` with GNU tar into a fresh directory and checks the tree
/// is the source's, byte for byte, with its modes and link targets.
#[track_caller]
fn assert_extracts_to_source(env: &TestEnv, archive: &str, tar_flags: &[&str], source: &str) {
    let into = format!("extract-{}", archive.replace('/', "_"));
    let extracted = env.gnu_tar_extract(archive, tar_flags, &into).join(source);
    let diff = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(env.path(source))
        .arg(&extracted)
        .output()
        .unwrap();
    assert!(diff.status.success(), "{archive} differs: {diff:?}");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        mode(&extracted.join("sub/run.sh")),
        mode(&env.path(&format!("{source}/sub/run.sh")))
    );
    assert_eq!(
        fs::read_link(extracted.join("sub/link")).unwrap(),
        Path::new("../a.txt")
    );
}

/// The archive names under `backups/`, as `backups` lists them.
fn backups(env: &TestEnv) -> Vec<String> {
    let run = env.old_ctl(&["backups"]);
    run.success();
    run.stdout_lines().iter().map(|s| s.to_string()).collect()
}

fn dir_listing(env: &TestEnv, dir: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(env.path(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn spec_mode_writes_the_spec_archive_with_a_manifest() {
    let env = TestEnv::new();
    make_tree(&env, "test");
    env.old_manager(&["create", "test;16:07;backup_test"])
        .success();
    let run = env.old_ctl(&["run", "backup_test"]);
    run.success();
    assert_eq!(run.stderr, "", "no progress bar when stderr is not a tty");
    assert!(
        run.stdout
            .starts_with("backups/backup_test.tar: 3 files, 48.9 KiB in, archive "),
        "{run:?}"
    );
    assert!(run.stdout.trim_end().ends_with("MB/s"), "{run:?}");
    let log = env.log_messages("backup_service.log");
    assert!(
        log.iter()
            .any(|l| l.starts_with("Backup done for test in backups/backup_test.tar (3 files")),
        "{log:?}"
    );
    assert_extracts_to_source(&env, "backups/backup_test.tar", &["-xf"], "test");

    let m = manifest(&env, "backups/backup_test.tar");
    let archive = env.path("backups/backup_test.tar");
    assert_eq!(m["schedule"], "backup_test");
    assert_eq!(m["source"], "test");
    assert_eq!(m["archive"], "backup_test.tar");
    assert_eq!(m["format"], "tar");
    assert_eq!(m["level"], Value::Null);
    assert_eq!(m["state"], "ok");
    assert_eq!(m["sha256"], sha256sum(&archive).as_str());
    assert_eq!(m["archive_size"], fs::metadata(&archive).unwrap().len());
    assert_eq!(m["entries"], 6);
    assert_eq!(m["bytes_read"], 6 + 50_000 + 18);
    assert_eq!(m["skipped"], Value::Array(vec![]));
    assert_eq!(m["fingerprint"].as_str().unwrap().len(), 64);
    let created = m["created"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );

    // A second run replaces the archive; the listing never shows manifests.
    env.old_ctl(&["run", "backup_test"]).success();
    assert_eq!(backups(&env), ["backup_test.tar"]);
    assert_eq!(
        dir_listing(&env, "backups"),
        [
            ".backup_test.lock",
            "backup_test.tar",
            "backup_test.tar.json"
        ]
    );
}

#[test]
fn compressed_formats_open_with_gnu_tar_and_match_their_manifest() {
    let env = TestEnv::new();
    make_tree(&env, "src");
    let cases = [
        (
            "gz",
            "format=tar.gz",
            "backups/gz.tar.gz",
            "tar.gz",
            6,
            "-xzf",
        ),
        (
            "gz1",
            "format=tar.gz,level=1",
            "backups/gz1.tar.gz",
            "tar.gz",
            1,
            "-xzf",
        ),
        (
            "zst",
            "format=tar.zst",
            "backups/zst.tar.zst",
            "tar.zst",
            3,
            "--zstd",
        ),
        (
            "zst19",
            "format=tar.zst,level=19",
            "backups/zst19.tar.zst",
            "tar.zst",
            19,
            "--zstd",
        ),
    ];
    for (name, options, archive, format, level, flag) in cases {
        env.old_ctl(&["create", &format!("src;03:00;{name};{options}")])
            .success();
        let run = env.old_ctl(&["run", name]);
        run.success();
        assert!(
            run.stdout.starts_with(&format!("{archive}: 3 files")),
            "{run:?}"
        );
        let flags: &[&str] = if flag == "--zstd" {
            &["--zstd", "-xf"]
        } else {
            &[flag]
        };
        assert_extracts_to_source(&env, archive, flags, "src");
        let m = manifest(&env, archive);
        assert_eq!(m["format"], format);
        assert_eq!(m["level"], level);
        assert_eq!(m["sha256"], sha256sum(&env.path(archive)).as_str());
        assert_eq!(
            m["archive_size"],
            fs::metadata(env.path(archive)).unwrap().len()
        );
    }
    assert_eq!(
        backups(&env),
        ["gz.tar.gz", "gz1.tar.gz", "zst.tar.zst", "zst19.tar.zst"]
    );
}

#[test]
fn retention_keeps_one_stamped_archive_per_run_even_within_a_second() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    make_tree(&env, "src");
    env.old_ctl(&["create", "src;03:00;docs;format=tar.gz,keep-last=5"])
        .success();
    // Each process starts its clock at 05:06:07: the second run finds that
    // second taken and takes the next one.
    env.old_ctl(&["run", "docs"]).success();
    env.old_ctl(&["run", "docs"]).success();
    assert_eq!(
        backups(&env),
        ["docs_20250304_050607.tar.gz", "docs_20250304_050608.tar.gz"]
    );
    for archive in ["docs_20250304_050607.tar.gz", "docs_20250304_050608.tar.gz"] {
        let m = manifest(&env, &format!("backups/{archive}"));
        assert_eq!(m["archive"], archive);
        assert!(
            m["created"]
                .as_str()
                .unwrap()
                .starts_with("2025-03-04T05:06:0"),
            "{m}"
        );
    }
}

#[test]
fn if_changed_skips_an_unchanged_tree_and_runs_after_a_change() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    make_tree(&env, "src");
    env.old_ctl(&["create", "src;03:00;docs;if-changed,keep-last=9"])
        .success();
    env.old_ctl(&["run", "docs"]).success();
    let first = "backups/docs_20250304_050607.tar";
    let skipped = env.old_ctl(&["run", "docs"]);
    skipped.success().stdout_is(&format!(
        "src: unchanged since {first}; no archive written\n"
    ));
    assert_eq!(backups(&env), ["docs_20250304_050607.tar"]);
    env.old_ctl(&["run", "docs", "--dry-run"])
        .success()
        .stdout_is(&format!("would skip: src unchanged since {first}\n"));
    let log = env.log_messages("backup_service.log");
    assert!(
        log.contains(&format!("Backup skipped for src: unchanged since {first}")),
        "{log:?}"
    );

    // Same size, new content and mtime: a change.
    env.write("src/a.txt", b"ALPHA\n");
    let file = fs::File::options()
        .write(true)
        .open(env.path("src/a.txt"))
        .unwrap();
    file.set_modified(std::time::SystemTime::UNIX_EPOCH)
        .unwrap();
    env.old_ctl(&["run", "docs"]).success();
    assert_eq!(
        backups(&env),
        ["docs_20250304_050607.tar", "docs_20250304_050608.tar"]
    );
    let m1 = manifest(&env, first);
    let m2 = manifest(&env, "backups/docs_20250304_050608.tar");
    assert_ne!(m1["fingerprint"], m2["fingerprint"]);

    // A new entry is a change too.
    env.write("src/new.txt", b"new");
    env.old_ctl(&["run", "docs"]).success();
    assert_eq!(backups(&env).len(), 3);
}

#[test]
fn a_missing_source_fails_with_exit_1_and_leaves_nothing() {
    let env = TestEnv::new();
    env.old_ctl(&["create", "nowhere;03:00;n;format=tar.zst"])
        .success();
    let run = env.old_ctl(&["run", "n"]);
    run.code(1)
        .stderr_has("backupctl: backup failed for nowhere: source ")
        .stderr_has("nowhere does not exist");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    let log = env.log_messages("backup_service.log");
    let failures: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("Error: backup failed for nowhere: source "))
        .collect();
    assert_eq!(failures.len(), 1, "logged once: {log:?}");
    assert_eq!(dir_listing(&env, "backups"), [".n.lock"]);
}

#[test]
fn sockets_are_left_out_without_making_the_run_partial() {
    let env = TestEnv::new();
    make_tree(&env, "src");
    let _listener = std::os::unix::net::UnixListener::bind(env.path("src/sock")).unwrap();
    env.old_ctl(&["create", "src;03:00;s"]).success();
    let run = env.old_ctl(&["run", "s"]);
    run.success();
    assert!(run.stdout.contains(", 1 sockets left out"), "{run:?}");
    assert_eq!(manifest(&env, "backups/s.tar")["state"], "ok");
    assert!(
        !env.tar_list("backups/s.tar")
            .iter()
            .any(|n| n.contains("sock"))
    );
}

/// Runs `backupctl ARGS` as the unprivileged user `nobody` when the tests
/// run as root (root reads a mode-000 file), else as the current user.
fn run_unprivileged(env: &TestEnv, args: &[&str]) -> Run {
    // The home was created by this process, so it is owned by our user.
    let root = fs::metadata(env.home()).unwrap().uid() == 0;
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
        .stdin(std::process::Stdio::null());
    if root {
        chown_tree(env.home(), 65534);
    }
    env.run_cmd(cmd)
}

fn chown_tree(dir: &Path, uid: u32) {
    std::os::unix::fs::lchown(dir, Some(uid), Some(uid)).unwrap();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.symlink_metadata().unwrap().is_dir() {
            chown_tree(&path, uid);
        } else {
            std::os::unix::fs::lchown(&path, Some(uid), Some(uid)).unwrap();
        }
    }
}

#[test]
fn unreadable_files_make_a_partial_run_that_exits_3() {
    let env = TestEnv::new();
    make_tree(&env, "src");
    env.write("src/secret", b"top secret");
    env.old_ctl(&["create", "src;03:00;p;format=tar.gz"])
        .success();
    // The binary is reached through the temporary home by `nobody`.
    fs::set_permissions(env.home(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(env.path("src/secret"), fs::Permissions::from_mode(0o000)).unwrap();
    let run = run_unprivileged(&env, &["run", "p"]);
    run.code(3)
        .stderr_has("warning: skipped ")
        .stderr_has("src/secret: Permission denied");
    let log = env.log_messages("backup_service.log");
    assert!(
        log.iter()
            .any(|l| l.starts_with("Backup partial for src in backups/p.tar.gz (1 files skipped; ")),
        "{log:?}"
    );
    let m = manifest(&env, "backups/p.tar.gz");
    assert_eq!(m["state"], "partial");
    let skipped = m["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0]["path"].as_str().unwrap().ends_with("src/secret"));
    let out = Command::new("tar")
        .arg("-tzf")
        .arg(env.path("backups/p.tar.gz"))
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&out.stdout);
    assert!(
        names.contains("src/sub/b.txt") && !names.contains("secret"),
        "{names}"
    );
}

#[test]
fn dry_run_says_what_it_would_do_and_changes_nothing() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    make_tree(&env, "src");
    env.old_ctl(&[
        "create",
        "src;03:00;docs;format=tar.zst,level=5,keep-last=2",
    ])
    .success();
    fs::create_dir_all(env.path("backups")).unwrap();
    let old = [
        "docs_20250301_030000.tar.zst",
        "docs_20250302_030000.tar.zst",
        "docs_20250303_030000.tar.zst",
    ];
    for name in old {
        env.write(&format!("backups/{name}"), b"old");
    }
    env.write("backups/other_20250301_030000.tar", b"foreign");
    let before = dir_listing(&env, "backups");
    let run = env.old_ctl(&["run", "docs", "--dry-run"]);
    run.success();
    let lines = run.stdout_lines();
    assert_eq!(
        lines[0],
        "would write backups/docs_20250304_050607.tar.zst (format tar.zst, level 5)"
    );
    // One verdict per archive of this schedule, the new one included, newest
    // first; the other schedule's archive is not considered.
    let verdicts: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap_or_default())
        .collect();
    assert_eq!(
        verdicts,
        [
            "backups/docs_20250304_050607.tar.zst",
            "backups/docs_20250303_030000.tar.zst",
            "backups/docs_20250302_030000.tar.zst",
            "backups/docs_20250301_030000.tar.zst",
        ]
    );
    for line in &lines[1..] {
        assert!(
            line.starts_with("keep ") || line.starts_with("delete "),
            "{line}"
        );
    }
    assert_eq!(dir_listing(&env, "backups"), before);
}

#[test]
fn dry_run_in_spec_mode_names_the_archive_it_would_replace() {
    let env = TestEnv::new();
    make_tree(&env, "test");
    env.old_manager(&["create", "test;16:07;backup_test"])
        .success();
    env.old_ctl(&["run", "backup_test", "--dry-run"])
        .success()
        .stdout_is(
            "would write backups/backup_test.tar (format tar, level none)\n\
             no retention: the archive replaces the previous one\n",
        );
    assert_eq!(dir_listing(&env, "backups"), Vec::<String>::new());
}

#[test]
fn a_successful_history_run_prunes_by_retention() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    make_tree(&env, "src");
    env.old_ctl(&["create", "src;03:00;docs;keep-last=2"])
        .success();
    env.old_ctl(&["run", "docs"]).success();
    env.old_ctl(&["run", "docs"]).success();
    let third = env.old_ctl(&["run", "docs"]);
    third.success();
    assert!(
        third
            .stdout
            .contains("pruned backups/docs_20250304_050607.tar"),
        "{third:?}"
    );
    assert_eq!(
        backups(&env),
        ["docs_20250304_050608.tar", "docs_20250304_050609.tar"]
    );
    assert!(!env.path("backups/docs_20250304_050607.tar.json").exists());
    assert!(
        env.log_messages("backup_service.log")
            .contains(&"Pruned backups/docs_20250304_050607.tar (retention)".to_string())
    );
}

#[test]
fn a_failed_run_prunes_nothing() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    env.old_ctl(&["create", "gone;03:00;docs;keep-last=1"])
        .success();
    fs::create_dir_all(env.path("backups")).unwrap();
    for name in ["docs_20250301_030000.tar", "docs_20250302_030000.tar"] {
        env.write(&format!("backups/{name}"), b"old");
    }
    env.old_ctl(&["run", "docs"]).code(1);
    assert_eq!(
        backups(&env),
        ["docs_20250301_030000.tar", "docs_20250302_030000.tar"]
    );
}

#[test]
fn the_service_writes_stamped_archives_at_the_scheduled_minute() {
    // The daemon's clock starts two seconds before the schedule's minute.
    let env = TestEnv::new().with_clock("2025-03-04T05:06:58");
    make_tree(&env, "src");
    env.old_ctl(&["create", "src;05:07;docs;format=tar.gz,keep-last=3"])
        .success();
    env.old_ctl(&["start"]).success();
    env.old_eventually("the 05:07 archive and its manifest", || {
        fs::read_dir(env.path("backups")).is_ok_and(|dir| {
            dir.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".tar.gz.json"))
        })
    });
    env.old_ctl(&["stop"]).success();
    let archives = backups(&env);
    assert_eq!(archives.len(), 1, "{archives:?}");
    let archive = format!("backups/{}", archives[0]);
    assert!(
        archive.starts_with("backups/docs_20250304_0507"),
        "{archive}"
    );
    assert_extracts_to_source(&env, &archive, &["-xzf"], "src");
    assert_eq!(
        manifest(&env, &archive)["sha256"],
        sha256sum(&env.path(&archive)).as_str()
    );
    let log = env.log_messages("backup_service.log");
    assert!(
        log.iter()
            .any(|l| l.starts_with(&format!("Backup done for src in {archive} (3 files"))),
        "{log:?}"
    );
}
