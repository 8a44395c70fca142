//! Archives read back with GNU tar and compared with the source tree: names,
//! sizes, modes, symlink targets and contents, for ordinary and odd trees.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::support::{TestEnv, same_tree};

fn extract(env: &TestEnv, archive: &str, into: &str) -> PathBuf {
    env.gnu_tar_extract(archive, &["-xpf"], into)
}

#[test]
fn an_archive_round_trips_through_gnu_tar() {
    let env = TestEnv::with_tree(
        &["src/empty-dir"],
        &[("src/readme.txt", "hello\n"), ("src/empty", "")],
    );
    env.write(
        "src/sub/deeper/data.bin",
        (0..=255u8).cycle().take(100_000).collect::<Vec<_>>(),
    );
    env.chmod("src/readme.txt", 0o640);
    env.chmod("src/sub", 0o750);
    env.symlink("readme.txt", "src/link");
    env.create("src;04:00;src");
    env.manager(["run", "src"])
        .stdout_pattern("backups/src.tar: 3 files, [..] MiB/s\n")
        .run();
    let out = extract(&env, "backups/src.tar", "out");
    same_tree(env.path("src"), out.join("src")).assert_same();
    // Stable, sorted entry order.
    assert_eq!(
        env.tar_list("backups/src.tar"),
        [
            "src/",
            "src/empty",
            "src/empty-dir/",
            "src/link",
            "src/readme.txt",
            "src/sub/",
            "src/sub/deeper/",
            "src/sub/deeper/data.bin"
        ]
    );
    let mode = fs::metadata(env.path("backups/src.tar")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600, "archives hold users' files: owner only");
}

#[test]
fn odd_trees_archive_without_hanging_or_escaping() {
    let env = TestEnv::with_tree(&[], &[("odd/plain.txt", "plain")]);
    // A FIFO nobody writes to: opening it for reading would hang forever.
    env.mkfifo("odd/fifo");
    // A socket: cannot be archived, left out.
    let _socket = std::os::unix::net::UnixListener::bind(env.path("odd/sock")).unwrap();
    // Symlink loops and a link to the outside: stored as links, never followed.
    env.symlink("loop-b", "odd/loop-a");
    env.symlink("loop-a", "odd/loop-b");
    env.symlink("..", "odd/parent");
    env.symlink("/etc", "odd/etc");
    // A path longer than 100 bytes and a link target longer than 100 bytes.
    let long_dir = format!("odd/{}/{}", "d".repeat(120), "e".repeat(120));
    env.write(&format!("{long_dir}/long-file.txt"), b"deep");
    env.symlink("t".repeat(150), "odd/long-target");
    // A name that is not UTF-8.
    let latin1 = OsStr::from_bytes(b"caf\xe9.txt");
    fs::write(env.path("odd").join(latin1), b"latin-1 name").unwrap();

    env.create("odd;04:00;odd");
    // The socket is reported.
    env.manager(["run", "odd"])
        .stdout_pattern("backups/odd.tar: [..] MiB/s, 1 sockets left out\n")
        .run();
    let out = extract(&env, "backups/odd.tar", "out");
    same_tree(env.path("odd"), out.join("odd"))
        .left_out("sock")
        .assert_same();
    let fifo = fs::symlink_metadata(out.join("odd/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(
        fs::read(out.join("odd").join(latin1)).unwrap(),
        b"latin-1 name"
    );
}

#[test]
fn a_source_given_as_a_symlink_is_followed_at_the_top_only() {
    let env = TestEnv::with_tree(&[], &[("real/inner.txt", "inside")]);
    env.symlink("inner.txt", "real/alias");
    env.symlink("real", "via-link");
    env.create("via-link;04:00;vl");
    env.manager(["run", "vl"])
        .stdout_pattern("backups/vl.tar: 1 file, [..] MiB/s\n")
        .run();
    assert_eq!(
        env.tar_list("backups/vl.tar"),
        ["via-link/", "via-link/alias", "via-link/inner.txt"]
    );
    let out = extract(&env, "backups/vl.tar", "out");
    assert!(fs::symlink_metadata(out.join("via-link")).unwrap().is_dir());
    assert_eq!(
        fs::read_link(out.join("via-link/alias")).unwrap(),
        Path::new("inner.txt")
    );
    same_tree(env.path("real"), out.join("via-link")).assert_same();
}

#[test]
fn relative_sources_are_taken_from_the_home_wherever_the_command_runs() {
    let env = TestEnv::with_tree(&[], &[("docs/a.txt", "a")]);
    let home = env.home().display().to_string();
    env.ctl(["--home", &home, "create", "docs;04:00;docs"])
        .current_dir("/")
        .run();
    env.ctl(["--home", &home, "run", "0"])
        .current_dir("/")
        .stdout_pattern("backups/docs.tar: 1 file, [..] MiB/s\n")
        .run();
    assert_eq!(env.tar_list("backups/docs.tar"), ["docs/", "docs/a.txt"]);
}

#[test]
fn a_failed_run_reports_why_and_keeps_the_previous_archive() {
    let env = TestEnv::with_tree(&[], &[("docs/a.txt", "a")]);
    env.create("docs;04:00;docs");
    env.manager(["run", "docs"])
        .stdout_pattern("backups/docs.tar: 1 file, [..] MiB/s\n")
        .run();
    let before = fs::read(env.path("backups/docs.tar")).unwrap();
    fs::rename(env.path("docs"), env.path("moved")).unwrap();
    env.manager(["run", "docs"])
        .status(1)
        .stderr(format!(
            "backup_manager: backup failed for docs (schedule docs): source {} does not exist\n",
            env.shown("docs")
        ))
        .run();
    assert_eq!(fs::read(env.path("backups/docs.tar")).unwrap(), before);
    env.manager(["run", "nosuch"])
        .status(2)
        .stderr("backup_manager: no schedule with index or name \"nosuch\"\n")
        .run();
    // A plain number out of range is an index, as for `delete`.
    env.manager(["run", "7"])
        .status(2)
        .stderr("backup_manager: no schedule at index 7: the only schedule is 0\n")
        .run();
}

#[test]
fn backups_lists_only_finished_archives() {
    let env = TestEnv::with_tree(
        &["backups/a-directory"],
        &[
            ("backups/.x.partial", "half"),
            ("backups/b.tar", ""),
            ("backups/a.tar", ""),
        ],
    );
    env.manager(["backups"]).stdout("a.tar\nb.tar\n").run();
}
