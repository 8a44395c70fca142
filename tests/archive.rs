//! Archives read back with GNU tar and compared with the source tree: names,
//! sizes, modes, symlink targets and contents, for ordinary and odd trees.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::TestEnv;

/// Every entry under `root` with what must survive a round trip.
fn snapshot(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let ft = meta.file_type();
            let what = if ft.is_symlink() {
                format!("link -> {:?}", fs::read_link(&path).unwrap())
            } else if ft.is_dir() {
                stack.push(path.clone());
                format!("dir {:o}", meta.mode() & 0o7777)
            } else if ft.is_file() {
                format!(
                    "file {:o} {} {:?}",
                    meta.mode() & 0o7777,
                    meta.len(),
                    fs::read(&path).unwrap()
                )
            } else {
                format!("special {:o}", meta.mode())
            };
            out.push((rel, what));
        }
    }
    out.sort();
    out
}

fn extract(env: &TestEnv, archive: &str, into: &str) -> PathBuf {
    env.gnu_tar_extract(archive, &["-xpf"], into)
}

#[test]
fn an_archive_round_trips_through_gnu_tar() {
    let env = TestEnv::new();
    env.write("src/readme.txt", b"hello\n");
    env.write(
        "src/sub/deeper/data.bin",
        (0..=255u8).cycle().take(100_000).collect::<Vec<_>>(),
    );
    env.write("src/empty", b"");
    fs::create_dir(env.path("src/empty-dir")).unwrap();
    fs::set_permissions(
        env.path("src/readme.txt"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    fs::set_permissions(env.path("src/sub"), fs::Permissions::from_mode(0o750)).unwrap();
    symlink("readme.txt", env.path("src/link")).unwrap();
    env.old_manager(&["create", "src;04:00;src"]).success();
    let run = env.old_manager(&["run", "src"]);
    run.success();
    assert!(
        run.stdout.starts_with("backups/src.tar: 3 files, "),
        "{run:?}"
    );
    let out = extract(&env, "backups/src.tar", "out");
    assert_eq!(snapshot(&out.join("src")), snapshot(&env.path("src")));
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
    let env = TestEnv::new();
    env.write("odd/plain.txt", b"plain");
    // A FIFO nobody writes to: opening it for reading would hang forever.
    assert!(
        Command::new("mkfifo")
            .arg(env.path("odd/fifo"))
            .status()
            .unwrap()
            .success()
    );
    // A socket: cannot be archived, left out.
    let _socket = std::os::unix::net::UnixListener::bind(env.path("odd/sock")).unwrap();
    // Symlink loops and a link to the outside: stored as links, never followed.
    symlink("loop-b", env.path("odd/loop-a")).unwrap();
    symlink("loop-a", env.path("odd/loop-b")).unwrap();
    symlink("..", env.path("odd/parent")).unwrap();
    symlink("/etc", env.path("odd/etc")).unwrap();
    // A path longer than 100 bytes and a link target longer than 100 bytes.
    let long_dir = format!("odd/{}/{}", "d".repeat(120), "e".repeat(120));
    env.write(&format!("{long_dir}/long-file.txt"), b"deep");
    symlink("t".repeat(150), env.path("odd/long-target")).unwrap();
    // A name that is not UTF-8.
    let latin1 = OsStr::from_bytes(b"caf\xe9.txt");
    fs::write(env.path("odd").join(latin1), b"latin-1 name").unwrap();

    env.old_manager(&["create", "odd;04:00;odd"]).success();
    let run = env.old_manager(&["run", "odd"]);
    run.success();
    assert!(
        run.stdout.contains("left out"),
        "the socket is reported: {run:?}"
    );
    let out = extract(&env, "backups/odd.tar", "out");
    let mut expected = snapshot(&env.path("odd"));
    expected.retain(|(p, _)| p != Path::new("sock"));
    assert_eq!(snapshot(&out.join("odd")), expected);
    let fifo = fs::symlink_metadata(out.join("odd/fifo")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fifo.file_type()));
    assert_eq!(
        fs::read(out.join("odd").join(latin1)).unwrap(),
        b"latin-1 name"
    );
}

#[test]
fn a_source_given_as_a_symlink_is_followed_at_the_top_only() {
    let env = TestEnv::new();
    env.write("real/inner.txt", b"inside");
    symlink("inner.txt", env.path("real/alias")).unwrap();
    symlink("real", env.path("via-link")).unwrap();
    env.old_manager(&["create", "via-link;04:00;vl"]).success();
    env.old_manager(&["run", "vl"]).success();
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
}

#[test]
fn relative_sources_are_taken_from_the_home_wherever_the_command_runs() {
    let env = TestEnv::new();
    env.write("docs/a.txt", b"a");
    let home = env.home().to_str().unwrap().to_string();
    let mut cmd = env.command("backupctl");
    cmd.current_dir("/")
        .args(["--home", &home, "create", "docs;04:00;docs"]);
    env.run_cmd(cmd).success();
    let mut cmd = env.command("backupctl");
    cmd.current_dir("/").args(["--home", &home, "run", "0"]);
    env.run_cmd(cmd).success();
    assert_eq!(env.tar_list("backups/docs.tar"), ["docs/", "docs/a.txt"]);
}

#[test]
fn a_failed_run_reports_why_and_keeps_the_previous_archive() {
    let env = TestEnv::new();
    env.write("docs/a.txt", b"a");
    env.old_manager(&["create", "docs;04:00;docs"]).success();
    env.old_manager(&["run", "docs"]).success();
    let before = fs::read(env.path("backups/docs.tar")).unwrap();
    fs::rename(env.path("docs"), env.path("moved")).unwrap();
    env.old_manager(&["run", "docs"])
        .code(1)
        .stderr_has("backup failed for docs: source ")
        .stderr_has("docs does not exist");
    assert_eq!(fs::read(env.path("backups/docs.tar")).unwrap(), before);
    env.old_manager(&["run", "nosuch"])
        .code(2)
        .stderr_has("no schedule with index or name \"nosuch\"");
    env.old_manager(&["run", "7"]).code(2).stderr_has("\"7\"");
}

#[test]
fn backups_lists_only_finished_archives() {
    let env = TestEnv::new();
    env.write("backups/.x.partial", b"half");
    env.write("backups/b.tar", b"");
    env.write("backups/a.tar", b"");
    fs::create_dir(env.path("backups/a-directory")).unwrap();
    env.old_manager(&["backups"])
        .success()
        .stdout_is("a.tar\nb.tar\n");
}
