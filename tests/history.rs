//! The write path of `run`: compressed formats read back with GNU tar,
//! manifests checked against `sha256sum`, history names, `if-changed`, the
//! three exit states and `--dry-run`.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{Service, TestEnv, eventually, same_tree};

/// A small tree with a nested directory, a symlink and an executable.
fn make_tree(env: &TestEnv, dir: &str) {
    env.tree(
        &[],
        &[
            (&format!("{dir}/a.txt"), "alpha\n"),
            (&format!("{dir}/sub/b.txt"), &"beta ".repeat(10_000)),
            (&format!("{dir}/sub/run.sh"), "#!/bin/sh\necho hi\n"),
        ],
    );
    env.chmod(&format!("{dir}/sub/run.sh"), 0o755);
    env.symlink("../a.txt", &format!("{dir}/sub/link"));
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
/// is the source's: names, types, modes, sizes, contents and link targets.
#[track_caller]
fn assert_extracts_to_source(env: &TestEnv, archive: &str, tar_flags: &[&str], source: &str) {
    let into = format!("extract-{}", archive.replace('/', "_"));
    let extracted = env.gnu_tar_extract(archive, tar_flags, &into).join(source);
    same_tree(env.path(source), extracted).assert_same();
}

/// `backups` lists exactly these archives.
#[track_caller]
fn assert_backups(env: &TestEnv, names: &[&str]) {
    let listing: String = names.iter().map(|n| format!("{n}\n")).collect();
    env.ctl(["backups"]).stdout(listing).run();
}

/// What `run` prints for a successful archive of `make_tree`'s three files.
fn three_files(archive: &str) -> String {
    format!("{archive}: 3 files, [..] MiB/s\n")
}

#[test]
fn spec_mode_writes_the_spec_archive_with_a_manifest() {
    let env = TestEnv::new();
    make_tree(&env, "test");
    env.create("test;16:07;backup_test");
    // No progress bar when stderr is not a tty: stderr stays empty.
    env.ctl(["run", "backup_test"])
        .stdout_pattern("backups/backup_test.tar: 3 files, 48.9 KiB in, archive [..] MiB/s\n")
        .run();
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
    env.ctl(["run", "backup_test"])
        .stdout_pattern(three_files("backups/backup_test.tar"))
        .run();
    assert_backups(&env, &["backup_test.tar"]);
    assert_eq!(
        env.dir_listing("backups"),
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
    // (schedule, options, archive, format, level, GNU tar flags)
    type Case<'a> = (&'a str, &'a str, &'a str, &'a str, u32, &'a [&'a str]);
    let cases: [Case; 4] = [
        (
            "gz",
            "format=tar.gz",
            "backups/gz.tar.gz",
            "tar.gz",
            6,
            &["-xzf"],
        ),
        (
            "gz1",
            "format=tar.gz,level=1",
            "backups/gz1.tar.gz",
            "tar.gz",
            1,
            &["-xzf"],
        ),
        (
            "zst",
            "format=tar.zst",
            "backups/zst.tar.zst",
            "tar.zst",
            3,
            &["--zstd", "-xf"],
        ),
        (
            "zst19",
            "format=tar.zst,level=19",
            "backups/zst19.tar.zst",
            "tar.zst",
            19,
            &["--zstd", "-xf"],
        ),
    ];
    for (name, options, archive, format, level, flags) in cases {
        env.ctl(["create", &format!("src;03:00;{name};{options}")])
            .run();
        env.ctl(["run", name])
            .stdout_pattern(three_files(archive))
            .run();
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
    assert_backups(
        &env,
        &["gz.tar.gz", "gz1.tar.gz", "zst.tar.zst", "zst19.tar.zst"],
    );
}

#[test]
fn retention_keeps_one_stamped_archive_per_run_even_within_a_second() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    make_tree(&env, "src");
    env.ctl(["create", "src;03:00;docs;format=tar.gz,keep-last=5"])
        .run();
    // Each process starts its clock at 05:06:07: the second run finds that
    // second taken and takes the next one.
    for archive in ["docs_20250304_050607.tar.gz", "docs_20250304_050608.tar.gz"] {
        env.ctl(["run", "docs"])
            .stdout_pattern(three_files(&format!("backups/{archive}")))
            .run();
    }
    assert_backups(
        &env,
        &["docs_20250304_050607.tar.gz", "docs_20250304_050608.tar.gz"],
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
    env.ctl(["create", "src;03:00;docs;if-changed,keep-last=9"])
        .run();
    let first = "backups/docs_20250304_050607.tar";
    env.ctl(["run", "docs"])
        .stdout_pattern(three_files(first))
        .run();
    env.ctl(["run", "docs"])
        .stdout(format!(
            "src: unchanged since {first}; no archive written\n"
        ))
        .run();
    assert_backups(&env, &["docs_20250304_050607.tar"]);
    env.ctl(["run", "docs", "--dry-run"])
        .stdout(format!("would skip: src unchanged since {first}\n"))
        .run();
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
    env.ctl(["run", "docs"])
        .stdout_pattern(three_files("backups/docs_20250304_050608.tar"))
        .run();
    assert_backups(
        &env,
        &["docs_20250304_050607.tar", "docs_20250304_050608.tar"],
    );
    let m1 = manifest(&env, first);
    let m2 = manifest(&env, "backups/docs_20250304_050608.tar");
    assert_ne!(m1["fingerprint"], m2["fingerprint"]);

    // A new entry is a change too.
    env.write("src/new.txt", b"new");
    env.ctl(["run", "docs"])
        .stdout_pattern("backups/docs_20250304_050609.tar: 4 files, [..] MiB/s\n")
        .run();
    assert_backups(
        &env,
        &[
            "docs_20250304_050607.tar",
            "docs_20250304_050608.tar",
            "docs_20250304_050609.tar",
        ],
    );
}

#[test]
fn a_missing_source_fails_with_exit_1_and_leaves_nothing() {
    let env = TestEnv::new();
    env.ctl(["create", "nowhere;03:00;n;format=tar.zst"])
        .stderr(env.missing_source_warning("backupctl", "nowhere"))
        .run();
    env.ctl(["run", "n"])
        .status(1)
        .stderr(format!(
            "backupctl: backup failed for nowhere (schedule n): source {} does not exist\n",
            env.shown("nowhere")
        ))
        .run();
    let log = env.log_messages("backup_service.log");
    let failures: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("Error: backup failed for nowhere (schedule n): source "))
        .collect();
    assert_eq!(failures.len(), 1, "logged once: {log:?}");
    assert_eq!(env.dir_listing("backups"), [".n.lock"]);
}

#[test]
fn sockets_are_left_out_without_making_the_run_partial() {
    let env = TestEnv::new();
    make_tree(&env, "src");
    let _listener = std::os::unix::net::UnixListener::bind(env.path("src/sock")).unwrap();
    env.ctl(["create", "src;03:00;s"]).run();
    env.ctl(["run", "s"])
        .stdout_pattern("backups/s.tar: 3 files, [..] MiB/s, 1 sockets left out\n")
        .run();
    assert_eq!(manifest(&env, "backups/s.tar")["state"], "ok");
    assert!(
        !env.tar_list("backups/s.tar")
            .iter()
            .any(|n| n.contains("sock"))
    );
}

#[test]
fn unreadable_files_make_a_partial_run_that_exits_3() {
    let env = TestEnv::new();
    make_tree(&env, "src");
    env.write("src/secret", b"top secret");
    env.ctl(["create", "src;03:00;p;format=tar.gz"]).run();
    // The binary is reached through the temporary home by `nobody`.
    env.chmod("", 0o755);
    env.chmod("src/secret", 0o000);
    env.unprivileged()
        .args(["run", "p"])
        .status(3)
        .stdout_pattern("backups/p.tar.gz: [..]\n")
        .stderr(format!(
            "backupctl: warning: skipped {}: Permission denied (os error 13)\n",
            env.shown("src/secret")
        ))
        .run();
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
    let names = env.tar_list("backups/p.tar.gz");
    assert!(
        names.iter().any(|n| n == "src/sub/b.txt") && !names.iter().any(|n| n.contains("secret")),
        "{names:?}"
    );
}

#[test]
fn dry_run_says_what_it_would_do_and_changes_nothing() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    make_tree(&env, "src");
    env.ctl([
        "create",
        "src;03:00;docs;format=tar.zst,level=5,keep-last=2",
    ])
    .run();
    let old = [
        "docs_20250301_030000.tar.zst",
        "docs_20250302_030000.tar.zst",
        "docs_20250303_030000.tar.zst",
    ];
    for name in old {
        env.write(&format!("backups/{name}"), b"old");
        env.write_manifest(name, "docs");
    }
    env.write("backups/other_20250301_030000.tar", b"foreign");
    let before = env.dir_listing("backups");
    // One verdict per archive of this schedule, the new one included, newest
    // first; the other schedule's archive is not considered.
    let out = env
        .ctl(["run", "docs", "--dry-run"])
        .stdout_pattern(
            "would write backups/docs_20250304_050607.tar.zst (format tar.zst, level 5)\n\
             keep   backups/docs_20250304_050607.tar.zst ([..])\n\
             keep   backups/docs_20250303_030000.tar.zst ([..])\n\
             delete backups/docs_20250302_030000.tar.zst\n\
             delete backups/docs_20250301_030000.tar.zst\n",
        )
        .run();
    let lines = out.stdout_lines();
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
    assert_eq!(env.dir_listing("backups"), before);
}

#[test]
fn dry_run_in_spec_mode_names_the_archive_it_would_replace() {
    let env = TestEnv::new();
    make_tree(&env, "test");
    env.create("test;16:07;backup_test");
    env.ctl(["run", "backup_test", "--dry-run"])
        .stdout(
            "would write backups/backup_test.tar (format tar, level none)\n\
             no retention: the archive replaces the previous one\n",
        )
        .run();
    assert_eq!(env.dir_listing("backups"), Vec::<String>::new());
}

#[test]
fn a_successful_history_run_prunes_by_retention() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    make_tree(&env, "src");
    env.ctl(["create", "src;03:00;docs;keep-last=2"]).run();
    env.ctl(["run", "docs"])
        .stdout_pattern(three_files("backups/docs_20250304_050607.tar"))
        .run();
    env.ctl(["run", "docs"])
        .stdout_pattern(three_files("backups/docs_20250304_050608.tar"))
        .run();
    env.ctl(["run", "docs"])
        .stdout_pattern(format!(
            "{}pruned backups/docs_20250304_050607.tar\n",
            three_files("backups/docs_20250304_050609.tar")
        ))
        .run();
    assert_backups(
        &env,
        &["docs_20250304_050608.tar", "docs_20250304_050609.tar"],
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
    env.ctl(["create", "gone;03:00;docs;keep-last=1"])
        .stderr(env.missing_source_warning("backupctl", "gone"))
        .run();
    for name in ["docs_20250301_030000.tar", "docs_20250302_030000.tar"] {
        env.write(&format!("backups/{name}"), b"old");
    }
    env.ctl(["run", "docs"])
        .status(1)
        .stderr(format!(
            "backupctl: backup failed for gone (schedule docs): source {} does not exist\n",
            env.shown("gone")
        ))
        .run();
    assert_backups(
        &env,
        &["docs_20250301_030000.tar", "docs_20250302_030000.tar"],
    );
}

#[test]
fn the_service_writes_stamped_archives_at_the_scheduled_minute() {
    // The daemon's clock starts two seconds before the schedule's minute.
    let env = TestEnv::new().with_clock("2025-03-04T05:06:58");
    make_tree(&env, "src");
    env.ctl(["create", "src;05:07;docs;format=tar.gz,keep-last=3"])
        .run();
    let service = Service::start(&env);
    eventually("the 05:07 archive and its manifest", || {
        fs::read_dir(env.path("backups")).is_ok_and(|dir| {
            dir.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".tar.gz.json"))
        })
    });
    service.stop();
    let listing = env
        .ctl(["backups"])
        .stdout_pattern("docs_20250304_0507[..].tar.gz\n")
        .run();
    let archive = format!("backups/{}", listing.stdout.trim_end());
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
