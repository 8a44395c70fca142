//! `contents` lists an archive as GNU `tar tv` does, by file name, path or
//! schedule name; `restore NAME` and `restore NAME --at TIME` pick a
//! schedule's archive by time.

use std::fs;

use crate::fidelity_write::{output, sh};
use crate::support::TestEnv;

/// A tree with every kind of entry `tar tv` prints differently.
fn varied_tree(env: &TestEnv) {
    env.tree(&["src/dir"], &[("src/plain", "plain\n")]);
    env.write("src/name with\nnewline", "n\n");
    sh(
        env,
        "chown nobody:nogroup src/plain && chmod 4755 src/plain
         ln src/plain src/dir/hard
         ln -s plain src/link
         mknod src/null c 1 3
         mknod src/loop b 7 200
         mkfifo src/pipe
         truncate -s 1G src/sparse && printf end >> src/sparse
         mkdir -m 1777 src/sticky
         touch -d '2021-03-04 05:06:07.5' src/plain",
    );
}

#[test]
fn contents_lists_an_archive_as_gnu_tar_does() {
    let env = TestEnv::new();
    varied_tree(&env);
    env.create("src;04:00;plain");
    env.create("src;04:00;packed;format=tar.zst");
    for name in ["plain", "packed"] {
        env.manager(["run", name])
            .stdout_pattern("backups/[..]: [..] MiB/s\n")
            .run();
    }
    // GNU tar's own archive of the tree, with an ACL.
    sh(
        &env,
        "setfacl -m u:nobody:r src/dir/hard
         tar --format=posix --xattrs --acls --sparse -cf backups/gnu.tar src",
    );
    for (target, file) in [
        ("plain", "backups/plain.tar"),
        ("packed.tar.zst", "backups/packed.tar.zst"),
        ("backups/gnu.tar", "backups/gnu.tar"),
    ] {
        let expected = output(&env, "tar", &["-tvf", file]);
        assert!(expected.contains("src/null") && expected.contains(" link to "));
        env.ctl(["contents", target]).stdout(expected).run();
    }
    let listed = env
        .ctl(["contents", "plain"])
        .stdout_contains("")
        .run()
        .stdout;
    for line in [
        "-rwsr-xr-x nobody/nogroup    6 2021-03-04 05:06 src/dir/hard",
        "hrwsr-xr-x nobody/nogroup    0 2021-03-04 05:06 src/plain link to src/dir/hard",
        "lrwxrwxrwx root/root         0 ",
        "crw-r--r-- root/root       1,3 ",
        "-rw-r--r-- root/root 1073741827 ",
        "src/name with\\nnewline",
        // The column widens for the long size and stays wide after it.
        "drwxrwxrwt root/root          0 ",
    ] {
        assert!(listed.contains(line), "{line:?} in\n{listed}");
    }
    // `head` closing the pipe early is not an error.
    env.bash(&format!(
        "set -o pipefail; {BIN} contents plain | head -1",
        BIN = crate::support::BIN
    ))
    .stdout_pattern("drwxr-xr-x root/root [..] src/\n")
    .run();
    env.ctl(["contents", "nothing-here"])
        .status(2)
        .stderr("backupctl: no archive or schedule \"nothing-here\" in backups/ or at that path\n")
        .run();
    env.write("backups/notes.txt", "not an archive");
    env.ctl(["contents", &env.shown("backups/notes.txt")])
        .status(2)
        .stderr_pattern("backupctl: [..]notes.txt is not an archive name (expected .tar, .tar.gz or .tar.zst)\n")
        .run();
}

#[test]
fn restore_at_takes_the_newest_archive_not_after_the_time() {
    let env = TestEnv::new();
    env.write("src/version", "monday\n");
    env.create("src;04:00;docs;keep-last=5");
    let run_at = |when: &str| {
        env.manager(["run", "docs"])
            .env("BACKUPCTL_FAKE_NOW", when)
            .stdout_pattern("backups/docs_[..]: [..] MiB/s\n")
            .run();
    };
    run_at("2026-11-16T18:00");
    env.write("src/version", "tuesday\n");
    run_at("2026-11-17T18:00");
    env.write("src/version", "wednesday\n");
    run_at("2026-11-18T18:00");
    for (at, expected) in [
        ("2026-11-17 18:00", "tuesday\n"),
        ("2026-11-17 17:59", "monday\n"),
        ("2026-11-30 00:00", "wednesday\n"),
    ] {
        let out = format!("out-{}", expected.trim());
        env.manager(["restore", "docs", "--at", at, "--to", &out])
            .stdout(format!("{out}/src\n{out}/src/version\n"))
            .run();
        assert_eq!(env.read(&format!("{out}/src/version")), expected, "{at}");
    }
    // Without --at: the newest.
    env.manager(["restore", "docs", "--to", "newest"])
        .stdout("newest/src\nnewest/src/version\n")
        .run();
    assert_eq!(env.read("newest/src/version"), "wednesday\n");
    env.manager([
        "restore",
        "docs",
        "--at",
        "2026-11-16 17:59",
        "--to",
        "none",
    ])
    .status(2)
    .stderr(
        "backup_manager: schedule \"docs\" has no archive taken at or before 2026-11-16 17:59:00\n",
    )
    .run();
    env.manager(["restore", "docs", "--at", "last week", "--to", "none"])
        .status(2)
        .stderr_pattern("[..]expected a local date and time like \"2026-11-20 18:00\", found \"last week\"[..]\n")
        .run();
    assert!(!env.path("none").exists());
    // A file merely named like one of its archives is never picked.
    fs::copy(
        env.path("backups/docs_20261116_180000.tar"),
        env.path("backups/docs_20261201_000000.tar"),
    )
    .unwrap();
    env.manager(["contents", "docs"])
        .stdout_contains("src/version\n")
        .run();
    env.manager(["restore", "docs", "--to", "still-newest"])
        .stdout("still-newest/src\nstill-newest/src/version\n")
        .run();
    assert_eq!(env.read("still-newest/src/version"), "wednesday\n");
}

#[test]
fn restore_of_chosen_paths_and_patterns_writes_only_them() {
    use std::os::unix::fs::MetadataExt;
    let env = TestEnv::with_tree(
        &["src/etc/nginx", "src/www/a"],
        &[
            ("src/etc/nginx/site.conf", "server {}\n"),
            ("src/etc/passwd", "root:x:0:0\n"),
            ("src/hard", "<?php\n"),
            ("src/www/a/style.css", "body {}\n"),
        ],
    );
    sh(&env, "ln src/hard src/www/a/index.php");
    env.create("src;04:00;site");
    env.manager(["run", "site"])
        .stdout_pattern("backups/site.tar: [..] MiB/s\n")
        .run();
    let cases: [(&[&str], &str); 4] = [
        (&["src/etc/passwd"], "src/etc/passwd\n"),
        (&["--include", "*.conf"], "src/etc/nginx/site.conf\n"),
        // The hard link needs the file it links to: restored too.
        (
            &["./src/www/"],
            "src/hard\nsrc/www\nsrc/www/a\nsrc/www/a/index.php\nsrc/www/a/style.css\n",
        ),
        (
            &["--include", "src/www/**/*.php"],
            "src/hard\nsrc/www/a/index.php\n",
        ),
    ];
    for (i, (chosen, restored)) in cases.iter().enumerate() {
        let out = format!("out{i}");
        let printed: String = restored.lines().map(|l| format!("{out}/{l}\n")).collect();
        env.manager(["restore", "site"])
            .args(*chosen)
            .args(["--to", &out])
            .stdout(printed)
            .run();
        // Every file on disk is one of those chosen (directories above them
        // are made as needed).
        let is_dir = |p: &str| env.path(p).is_dir();
        let on_disk: Vec<String> = env
            .paths_below(&out)
            .into_iter()
            .filter(|p| !is_dir(p))
            .map(|p| p[out.len() + 1..].to_string())
            .collect();
        let expected: Vec<&str> = restored.lines().filter(|l| !is_dir(l)).collect();
        assert_eq!(on_disk, expected, "{chosen:?}: only the chosen entries");
    }
    let inode = |p: &str| fs::metadata(env.path(p)).unwrap().ino();
    assert_eq!(inode("out2/src/hard"), inode("out2/src/www/a/index.php"));
    // What is already there matters only for the chosen entries.
    env.manager(["restore", "site", "src/etc/nginx", "--to", "out0"])
        .stdout("out0/src/etc/nginx\nout0/src/etc/nginx/site.conf\n")
        .run();
    env.manager([
        "restore",
        "site",
        "src/nope",
        "--include",
        "*.x",
        "--to",
        "none",
    ])
    .status(2)
    .stderr(format!(
        "backup_manager: not in archive {}: \"src/nope\", \"*.x\"\n",
        env.shown("backups/site.tar")
    ))
    .run();
    assert!(!env.path("none").exists());
    env.manager(["restore", "site", "--include", "a[", "--to", "none"])
        .status(2)
        .stderr_pattern("backup_manager: invalid value 'a[' for '--include <PATTERN>': [..]\n")
        .run();
}
