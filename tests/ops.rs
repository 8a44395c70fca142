//! Working with archives already written: `prune` (retention on archives with
//! faked dates), `verify` (a flipped byte, a truncated file, a missing
//! manifest), `restore` (round trip, `--force`, hostile archives) and the
//! `--json`/`--long` listings. Archives are made here with GNU tar under the
//! names the writer uses, with manifests in the writer's format.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{TestEnv, same_tree};

/// `src/` with a file (mode 0640, an old mtime), a subdirectory and a symlink.
fn make_source(env: &TestEnv) {
    env.tree(
        &[],
        &[("src/a.txt", "hello\n"), ("src/sub/b.txt", "second file\n")],
    );
    env.symlink("a.txt", "src/link");
    env.chmod("src/a.txt", 0o640);
    let status = Command::new("touch")
        .args(["-d", "2020-01-02 03:04:05"])
        .arg(env.path("src/a.txt"))
        .status()
        .unwrap();
    assert!(status.success());
}

/// Archives `src/` with GNU tar into `backups/NAME` (format from the name).
fn gnu_tar(env: &TestEnv, name: &str) {
    let compress: &[&str] = if name.ends_with(".tar.gz") {
        &["-z"]
    } else if name.ends_with(".tar.zst") {
        &["--zstd"]
    } else {
        &[]
    };
    fs::create_dir_all(env.path("backups")).unwrap();
    let status = Command::new("tar")
        .args(compress)
        .arg("-cf")
        .arg(env.path("backups").join(name))
        .arg("-C")
        .arg(env.home())
        .arg("src")
        .status()
        .unwrap();
    assert!(status.success(), "tar for {name}");
}

fn sha256_hex(path: &Path) -> String {
    let digest = Sha256::digest(fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn archive_with_manifest(env: &TestEnv, name: &str, schedule: &str) {
    gnu_tar(env, name);
    env.write_manifest(name, schedule);
}

/// The names in `backups/`, hidden ones (the run lock) left out.
fn backups_dir(env: &TestEnv) -> Vec<String> {
    let mut names = env.dir_listing("backups");
    names.retain(|name| !name.starts_with('.'));
    names
}

/// Dummy history archives with manifests: retention only reads names.
fn fake_history(env: &TestEnv, schedule: &str, stamps: &[&str], ext: &str) {
    for stamp in stamps {
        let name = format!("{schedule}_{stamp}.{ext}");
        env.write(&format!("backups/{name}"), b"archive");
        env.write_manifest(&name, schedule);
    }
}

/// `lines` as command output, each ended by a newline.
fn text(lines: &[impl AsRef<str>]) -> String {
    lines.iter().map(|l| format!("{}\n", l.as_ref())).collect()
}

/// `create LINE` for a schedule whose source `src` the test has not made.
fn create_without_source(env: &TestEnv, line: &str) {
    env.manager(["create", line])
        .stderr(env.missing_source_warning("backup_manager", "src"))
        .run();
}

// ---------------------------------------------------------------- prune

#[test]
fn prune_combines_rules_keeps_min_keep_and_leaves_foreign_files() {
    let env = TestEnv::new().with_clock("2025-03-01T12:00:00");
    create_without_source(
        &env,
        "src;02:00;docs;format=tar.gz,keep-last=2,keep-weekly=2,min-keep=3",
    );
    create_without_source(&env, "src;03:00;docs_extra;keep-last=1");
    // Daily runs from Wed 2025-01-01 to Fri 2025-01-10.
    let stamps: Vec<String> = (1..=10).map(|d| format!("202501{d:02}_020000")).collect();
    let stamps: Vec<&str> = stamps.iter().map(String::as_str).collect();
    fake_history(&env, "docs", &stamps, "tar.gz");
    // Not docs' history: another schedule's, the unstamped archive, strays.
    let foreign = [
        "docs.tar.gz",
        "docs_extra_20250101_020000.tar",
        "docs_2025010_020000.tar.gz",
        "docs_20250101_020000.zip",
        "notes.txt",
    ];
    for name in foreign {
        env.write(&format!("backups/{name}"), b"not mine");
    }
    let before = backups_dir(&env);

    let expected = [
        "delete  backups/docs_20250101_020000.tar.gz",
        "delete  backups/docs_20250102_020000.tar.gz",
        "delete  backups/docs_20250103_020000.tar.gz",
        "delete  backups/docs_20250104_020000.tar.gz",
        "keep    backups/docs_20250105_020000.tar.gz  (keep-weekly)",
        "delete  backups/docs_20250106_020000.tar.gz",
        "delete  backups/docs_20250107_020000.tar.gz",
        "keep    backups/docs_20250108_020000.tar.gz  (min-keep)",
        "keep    backups/docs_20250109_020000.tar.gz  (min-keep, keep-last)",
        "keep    backups/docs_20250110_020000.tar.gz  (newest, min-keep, keep-last, keep-weekly)",
    ];
    env.manager(["prune", "docs", "--dry-run"])
        .stdout(text(&expected))
        .run();
    assert_eq!(backups_dir(&env), before, "--dry-run changed backups/");

    env.manager(["prune", "docs"])
        .stdout(text(&expected.map(|l| l.replace("delete  ", "deleted "))))
        .run();
    let mut left: Vec<String> = ["05", "08", "09", "10"]
        .iter()
        .flat_map(|d| {
            let name = format!("docs_202501{d}_020000.tar.gz");
            [name.clone(), format!("{name}.json")]
        })
        .chain(foreign.iter().map(|s| s.to_string()))
        .collect();
    left.sort();
    assert_eq!(backups_dir(&env), left);
    let log = env.log_messages("backup_manager.log");
    assert!(
        log.contains(&"Pruned backups/docs_20250101_020000.tar.gz (retention of docs)".to_string()),
        "{log:?}"
    );
    assert!(log.contains(&"Prune of docs: deleted 6 of 10 archives".to_string()));
}

#[test]
fn a_paused_schedule_keeps_its_history_when_pruned() {
    // The last runs were in 2020; keep-within counts from the newest archive.
    let env = TestEnv::new().with_clock("2026-06-01T12:00:00");
    create_without_source(&env, "src;02:00;old;keep-within=2d");
    fake_history(
        &env,
        "old",
        &[
            "20200101_020000",
            "20200105_020000",
            "20200106_020000",
            "20200107_020000",
        ],
        "tar",
    );
    env.manager(["prune"])
        .stdout(
            "deleted backups/old_20200101_020000.tar\n\
             deleted backups/old_20200105_020000.tar\n\
             keep    backups/old_20200106_020000.tar  (keep-within)\n\
             keep    backups/old_20200107_020000.tar  (newest, keep-within)\n",
        )
        .run();
    assert_eq!(
        backups_dir(&env),
        [
            "old_20200106_020000.tar",
            "old_20200106_020000.tar.json",
            "old_20200107_020000.tar",
            "old_20200107_020000.tar.json",
        ]
    );
}

#[test]
fn prune_refuses_what_it_cannot_do() {
    let env = TestEnv::new();
    create_without_source(&env, "src;02:00;plain");
    env.write("backups/plain.tar", b"archive");
    env.manager(["prune", "plain"])
        .status(2)
        .stderr_pattern("backup_manager: schedule \"plain\" has no retention rules[..]\n")
        .run();
    env.manager(["prune", "nope"])
        .status(2)
        .stderr_pattern("backup_manager: no schedule with index or name \"nope\"[..]\n")
        .run();
    env.manager(["prune"])
        .stderr_pattern(
            "backup_manager: [..]no schedule has retention rules; nothing to prune[..]\n",
        )
        .run();
    assert_eq!(backups_dir(&env), ["plain.tar"]);
}

// ---------------------------------------------------------------- verify

#[test]
fn verify_passes_good_archives_in_every_format() {
    let env = TestEnv::new();
    make_source(&env);
    env.create("src;02:00;docs;format=tar.gz,keep-last=3");
    archive_with_manifest(&env, "docs_20250101_020000.tar.gz", "docs");
    archive_with_manifest(&env, "docs_20250102_020000.tar.zst", "docs");
    archive_with_manifest(&env, "plain.tar", "plain");
    env.write("backups/notes.txt", b"not an archive");

    env.manager(["verify", "--all"])
        .stdout(
            "OK backups/docs_20250101_020000.tar.gz\n\
             OK backups/docs_20250102_020000.tar.zst\n\
             OK backups/plain.tar\n",
        )
        .run();
    // A schedule name selects its archives; a file name or a path one archive.
    env.manager(["verify", "docs"])
        .stdout("OK backups/docs_20250101_020000.tar.gz\nOK backups/docs_20250102_020000.tar.zst\n")
        .run();
    env.manager(["verify", "plain.tar"])
        .stdout("OK backups/plain.tar\n")
        .run();
    env.ctl(["verify", &env.shown("backups/plain.tar")])
        .stdout("OK backups/plain.tar\n")
        .run();

    let results = env
        .ctl(["verify", "--json", "docs"])
        .stdout_json()
        .run()
        .json();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["archive"], "docs_20250101_020000.tar.gz");
    assert_eq!(results[0]["path"], "backups/docs_20250101_020000.tar.gz");
    assert_eq!(results[0]["ok"], true);
    assert_eq!(results[0]["error"], Value::Null);
    assert_eq!(
        results[0]["sha256"],
        sha256_hex(&env.path("backups/docs_20250101_020000.tar.gz"))
    );
    assert_eq!(results[1]["entries"], 5);
    assert!(
        env.log_messages("backup_manager.log")
            .contains(&"Verified backups/plain.tar: OK (5 entries)".to_string())
    );
}

#[test]
fn verify_catches_flipped_bytes_truncation_and_missing_manifests() {
    let env = TestEnv::new();
    make_source(&env);
    let flipped = "docs_20250101_020000.tar.gz";
    let truncated = "docs_20250102_020000.tar.zst";
    let resealed = "docs_20250103_020000.tar.gz";
    let unsealed = "docs_20250104_020000.tar";
    for name in [flipped, truncated, resealed] {
        archive_with_manifest(&env, name, "docs");
    }
    gnu_tar(&env, unsealed);

    let flip = |name: &str| {
        let path = env.path("backups").join(name);
        let mut bytes = fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        fs::write(&path, bytes).unwrap();
    };
    flip(flipped);
    let path = env.path("backups").join(truncated);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    // Damaged, then given a matching manifest: only reading it through tells.
    flip(resealed);
    env.write_manifest(resealed, "docs");

    env.manager(["verify", "--all"])
        .status(1)
        .stdout_pattern(format!(
            "FAILED backups/{flipped}: SHA-256 is [..]the manifest says[..]\n\
             FAILED backups/{truncated}: size is {} bytes, the manifest says {}[..]does not read through[..]\n\
             FAILED backups/{resealed}: does not read through[..]\n\
             FAILED backups/{unsealed}: no manifest, not verified\n",
            bytes.len() / 2,
            bytes.len()
        ))
        .stderr("backup_manager: 4 of 4 archives failed verification\n")
        .run();
    let log = env.log_messages("backup_manager.log");
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("Error: Verification failed for backups/docs_"))
            .count(),
        4,
        "{log:?}"
    );

    let results = env
        .ctl(["verify", "--json", "--all"])
        .status(1)
        .stdout_json()
        .stderr("backupctl: 4 of 4 archives failed verification\n")
        .run()
        .json();
    let results = results.as_array().unwrap();
    assert!(
        results
            .iter()
            .all(|r| r["ok"] == false && r["sha256"].is_null())
    );
    assert_eq!(results[3]["error"], "no manifest, not verified");
}

#[test]
fn verify_refuses_unknown_targets() {
    let env = TestEnv::new();
    env.manager(["verify"])
        .status(2)
        .stderr_pattern(
            "backup_manager: [..]name the archives or schedules to verify, or give --all[..]\n",
        )
        .run();
    env.manager(["verify", "ghost"])
        .status(2)
        .stderr_pattern("backup_manager: [..]no archive or schedule named \"ghost\"[..]\n")
        .run();
    env.manager(["verify", "--all", "x"])
        .status(2)
        .stderr_pattern("backup_manager: [..]\n")
        .run();
    create_without_source(&env, "src;02:00;empty;keep-last=2");
    env.manager(["verify", "empty"])
        .status(2)
        .stderr_pattern(
            "backup_manager: [..]schedule \"empty\" has no archives in backups/ to verify[..]\n",
        )
        .run();
}

// ---------------------------------------------------------------- restore

/// The five lines `restore` prints for `make_source`'s tree, in any order.
const FIVE_RESTORED: &str = "[..]\n[..]\n[..]\n[..]\n[..]\n";

#[test]
fn restore_round_trips_modes_mtimes_and_symlinks() {
    let env = TestEnv::new();
    make_source(&env);
    for name in [
        "docs_20250101_020000.tar.gz",
        "docs_20250102_020000.tar.zst",
    ] {
        archive_with_manifest(&env, name, "docs");
        let out = format!("out-{name}");
        // A sealed archive restores quietly: nothing on stderr.
        let run = env
            .manager(["restore", name, "--to", &out])
            .stdout_pattern(FIVE_RESTORED)
            .run();
        let mut printed = run.stdout_lines();
        printed.sort();
        assert_eq!(
            printed,
            ["src", "src/a.txt", "src/link", "src/sub", "src/sub/b.txt"]
                .map(|p| format!("{out}/{p}"))
        );
        let restored = env.path(&out).join("src");
        // Contents, link targets, modes and mtimes of files, links and the
        // subdirectory.
        same_tree(env.path("src"), &restored)
            .with_mtimes()
            .assert_same();
        let copy = fs::metadata(restored.join("a.txt")).unwrap();
        assert_eq!(copy.mode() & 0o777, 0o640);
    }
    let log = env.log_messages("backup_manager.log");
    assert!(log.contains(
        &"Restored 5 entries from backups/docs_20250101_020000.tar.gz into out-docs_20250101_020000.tar.gz"
            .to_string()
    ));
}

#[test]
fn restore_keeps_existing_files_unless_forced() {
    let env = TestEnv::new();
    make_source(&env);
    gnu_tar(&env, "plain.tar");
    let unsealed = "backup_manager: warning: backups/plain.tar has no manifest; its integrity was not checked\n";
    env.manager(["restore", "plain.tar", "--to", "out"])
        .stdout_pattern(FIVE_RESTORED)
        .stderr(unsealed)
        .run();
    env.write("out/src/a.txt", b"edited since");
    env.write("out/src/only-here", b"mine");

    env.manager(["restore", "plain.tar", "--to", "out"])
        .status(1)
        .stderr_pattern(
            "backup_manager: refusing to restore over out/src/[..] (use --force to replace it)\n",
        )
        .run();
    assert_eq!(env.read("out/src/a.txt"), "edited since");

    env.manager(["restore", "plain.tar", "--to", "out", "--force"])
        .stdout_pattern(FIVE_RESTORED)
        .stderr(unsealed)
        .run();
    assert_eq!(env.read("out/src/a.txt"), "hello\n");
    assert_eq!(env.read("out/src/only-here"), "mine");

    // --force replaces a symlink planted where a file goes, without following it.
    fs::remove_file(env.path("out/src/a.txt")).unwrap();
    env.write("outside/target", b"precious");
    env.symlink(env.path("outside/target"), "out/src/a.txt");
    env.manager(["restore", "plain.tar", "--to", "out", "--force"])
        .stdout_pattern(FIVE_RESTORED)
        .stderr(unsealed)
        .run();
    assert_eq!(env.read("outside/target"), "precious");
    assert!(
        fs::symlink_metadata(env.path("out/src/a.txt"))
            .unwrap()
            .is_file()
    );

    // A symlinked directory in the destination is never written through.
    fs::remove_dir_all(env.path("out/src")).unwrap();
    fs::create_dir(env.path("elsewhere")).unwrap();
    env.symlink(env.path("elsewhere"), "out/src");
    env.manager(["restore", "plain.tar", "--to", "out", "--force"])
        .status(1)
        .stderr(
            "backup_manager: refusing to restore into out/src: it is a symlink, and restore never writes through one\n",
        )
        .run();
    assert_eq!(fs::read_dir(env.path("elsewhere")).unwrap().count(), 0);

    env.write("a-file", b"");
    env.manager(["restore", "plain.tar", "--to", "a-file"])
        .status(1)
        .stderr("backup_manager: refusing to restore into a-file: it is not a directory\n")
        .run();
    env.manager(["restore", "plain.tar", "--to", ""])
        .status(2)
        .stderr_pattern("backup_manager: [..]a value is required for '--to <DIR>'[..]\n")
        .run();
    env.manager(["restore", "missing.tar", "--to", "out"])
        .status(2)
        .stderr_pattern(
            "backup_manager: [..]no archive or schedule \"missing.tar\" in backups/ or at that path[..]\n",
        )
        .run();
}

#[test]
fn restore_refuses_an_archive_that_does_not_match_its_manifest() {
    let env = TestEnv::new();
    make_source(&env);
    archive_with_manifest(&env, "docs_20250101_020000.tar", "docs");
    // Append a file: still a valid tar, no longer the archive the manifest describes.
    env.write("extra", b"planted");
    let status = Command::new("tar")
        .arg("-rf")
        .arg(env.path("backups/docs_20250101_020000.tar"))
        .arg("-C")
        .arg(env.home())
        .arg("extra")
        .status()
        .unwrap();
    assert!(status.success());
    env.manager(["restore", "docs_20250101_020000.tar", "--to", "out"])
        .status(1)
        .stderr_pattern(
            "backup_manager: [..]does not match its manifest[..]run `verify` on it[..]\n",
        )
        .run();
    assert!(!env.path("out").exists());
}

/// A plain `.tar` is checked with seeks over its files' data: the bytes
/// passed over are hashed all the same, and an archive that ends inside an
/// entry is refused as before, both before anything is written.
#[test]
fn restore_refuses_damage_in_the_data_it_seeks_over() {
    let env = TestEnv::new();
    let big = "0123456789".repeat(10_000);
    env.tree(
        &[],
        &[
            ("src/first", "first\n"),
            ("src/big", &big),
            ("src/last", "last\n"),
        ],
    );
    let data_of_big = |bytes: &[u8]| {
        bytes
            .windows(1000)
            .position(|w| w == &big.as_bytes()[..1000])
            .expect("the data of src/big")
    };
    // A byte of src/big's data flipped: the manifest's SHA-256 tells.
    let sealed = "docs_20250101_020000.tar";
    archive_with_manifest(&env, sealed, "docs");
    let path = env.path("backups").join(sealed);
    let mut bytes = fs::read(&path).unwrap();
    let at = data_of_big(&bytes) + 50_000;
    bytes[at] ^= 0x55;
    fs::write(&path, &bytes).unwrap();
    env.manager(["restore", sealed, "--to", "out"])
        .status(1)
        .stderr_pattern("backup_manager: [..]does not match its manifest (SHA-256 is [..]\n")
        .run();
    assert!(!env.path("out").exists());
    // Cut inside src/big's data, without a manifest: nothing to compare,
    // and the end of src/big is never read, only sought.
    let cut = "docs_20250102_020000.tar";
    gnu_tar(&env, cut);
    let path = env.path("backups").join(cut);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..data_of_big(&bytes) + 50_000]).unwrap();
    env.manager(["restore", cut, "--to", "out"])
        .status(1)
        .stderr(format!(
            "backup_manager: cannot read archive {}: the archive is cut short: it ends inside an entry\n",
            env.path("backups").join(cut).display()
        ))
        .run();
    assert!(!env.path("out").exists());
}

/// The files of a plain `.tar` are copied by the kernel from the archive
/// file; onto another filesystem (tmpfs) it cannot, and they are read and
/// written instead, the same bytes.
#[test]
fn a_plain_tar_restores_onto_another_filesystem() {
    let env = TestEnv::new();
    make_source(&env);
    env.write("src/big", "0123456789".repeat(50_000));
    let name = "docs_20250101_020000.tar";
    archive_with_manifest(&env, name, "docs");
    let shm = tempfile::Builder::new()
        .prefix("backupctl-test")
        .tempdir_in("/dev/shm");
    let Ok(shm) = shm else {
        eprintln!("no /dev/shm: restore onto another filesystem not tried");
        return;
    };
    if fs::metadata(shm.path()).unwrap().dev() == fs::metadata(env.home()).unwrap().dev() {
        eprintln!("/dev/shm is the home's filesystem: restore onto another not tried");
        return;
    }
    let out = shm.path().join("out");
    env.manager([
        "restore".as_ref(),
        name.as_ref(),
        "--to".as_ref(),
        out.as_os_str(),
    ])
    .stdout_contains("/out/src/big\n")
    .run();
    same_tree(env.path("src"), out.join("src"))
        .with_mtimes()
        .assert_same();
}

/// Writes a tar with Python's tarfile, which writes what it is told.
fn python_tar(env: &TestEnv, name: &str, entries: &str) {
    let script = format!(
        r#"
import io, sys, tarfile
def add(t, name, data=b"x", typ=tarfile.REGTYPE, link=""):
    i = tarfile.TarInfo(name); i.type = typ; i.linkname = link; i.mode = 0o644
    if typ == tarfile.REGTYPE:
        i.size = len(data); t.addfile(i, io.BytesIO(data))
    else:
        t.addfile(i)
with tarfile.open(sys.argv[1], "w") as t:
{entries}
"#
    );
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(env.path(name))
        .status()
        .expect("python3");
    assert!(status.success(), "python3 tarfile for {name}");
}

#[test]
fn restore_refuses_hostile_archives_before_writing_anything() {
    let env = TestEnv::new();
    let outside = env.path("outside");
    fs::create_dir(&outside).unwrap();
    let abs = outside.join("abs").display().to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "up.tar",
            "    add(t, 'fine.txt'); add(t, 'd/../../outside/up')".into(),
            "entry \"d/../../outside/up\" goes up with `..`",
        ),
        (
            "abs.tar",
            format!("    add(t, 'fine.txt'); add(t, '{abs}')"),
            "is an absolute path",
        ),
        (
            "symlink-then-file.tar",
            format!(
                "    add(t, 'fine.txt'); add(t, 'esc', typ=tarfile.SYMTYPE, link='{}'); add(t, 'esc/planted')",
                outside.display()
            ),
            "entry \"esc/planted\" goes through the symlink esc that the archive creates",
        ),
        (
            "hardlink-out.tar",
            "    add(t, 'fine.txt'); add(t, 'h', typ=tarfile.LNKTYPE, link='../outside/x')".into(),
            "entry \"h\" is a hard link that goes up with `..`",
        ),
        (
            "twice.tar",
            "    add(t, 'fine.txt'); add(t, 'l', typ=tarfile.SYMTYPE, link='/etc/passwd'); add(t, 'l', b'overwrite')".into(),
            "entry \"l\" appears twice in the archive",
        ),
        (
            "file-over-parent.tar",
            "    add(t, 'a/b'); add(t, 'a', b'not a directory')".into(),
            "entry \"a\" appears twice in the archive",
        ),
    ];
    for (name, entries, message) in &cases {
        python_tar(&env, name, entries);
        let out = format!("out-{name}");
        env.manager(["restore", &env.shown(name), "--to", &out])
            .status(1)
            .stderr_pattern(format!(
                "backup_manager: refusing hostile archive[..]{message}[..]\n"
            ))
            .run();
        assert!(!env.path(&out).exists(), "{name} wrote into {out}");
    }
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    let log = env.log_messages("backup_manager.log");
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("Error: refusing hostile archive"))
            .count(),
        cases.len()
    );
}

// ---------------------------------------------------------------- listings

#[test]
fn backups_long_and_json_describe_each_archive() {
    let env = TestEnv::new();
    make_source(&env);
    env.create("src;02:00;docs;format=tar.zst,keep-last=3");
    archive_with_manifest(&env, "docs_20250101_020000.tar.zst", "docs");
    archive_with_manifest(&env, "gone.tar", "gone");
    gnu_tar(&env, "stray.tar.gz");
    // A manifest that no longer matches its archive.
    archive_with_manifest(&env, "docs_20250102_020000.tar.zst", "docs");
    fs::write(env.path("backups/docs_20250102_020000.tar.zst"), b"other").unwrap();

    let size = fs::metadata(env.path("backups/gone.tar")).unwrap().len();
    let run = env
        .manager(["backups", "--long"])
        .stdout_pattern(format!(
            "[..]  docs_20250101_020000.tar.zst\n\
             [..]       5 B  docs_20250102_020000.tar.zst\n\
             [..]  {:.1} KiB  gone.tar\n\
             [..]  stray.tar.gz\n",
            size as f64 / 1024.0
        ))
        .run();
    let lines = run.stdout_lines();
    let date = &lines[0][..16];
    assert!(
        chrono::NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M").is_ok(),
        "{date}"
    );

    let rows = env
        .manager(["backups", "--json"])
        .stdout_json()
        .run()
        .json();
    let rows = rows.as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["archive"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "docs_20250101_020000.tar.zst",
            "docs_20250102_020000.tar.zst",
            "gone.tar",
            "stray.tar.gz"
        ]
    );
    assert_eq!(rows[0]["schedule"], "docs");
    assert_eq!(
        rows[0]["sha256"],
        sha256_hex(&env.path("backups/docs_20250101_020000.tar.zst"))
    );
    assert_eq!(rows[0]["verified_manifest"], true);
    assert_eq!(rows[1]["size"], 5);
    assert_eq!(rows[1]["verified_manifest"], false);
    assert_eq!(rows[2]["schedule"], "gone", "from the manifest");
    assert_eq!(rows[3]["schedule"], Value::Null);
    assert_eq!(rows[3]["sha256"], Value::Null);
    assert_eq!(rows[3]["verified_manifest"], false);
    for row in rows {
        let modified = row["modified"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(modified).is_ok(),
            "{modified}"
        );
        assert_eq!(row.as_object().unwrap().len(), 6);
    }
    env.manager(["backups", "--json", "--long"])
        .status(2)
        .stderr_pattern("backup_manager: [..]\n")
        .run();
}

#[test]
fn list_json_shows_every_line_valid_or_not() {
    let env = TestEnv::new();
    env.write(
        "backup_schedules.txt",
        b"test;16:07;backup_test\nnot a schedule\nsrc;02:30;docs;format=tar.gz,keep-daily=7\n",
    );
    env.manager(["list"])
        .stdout(
            "0: test;16:07;backup_test\n1: not a schedule\n2: src;02:30;docs;format=tar.gz,keep-daily=7\n",
        )
        .stderr_pattern("backup_manager: warning: schedule 1 is not valid: [..]\n")
        .run();
    // JSON carries the errors itself: nothing on stderr.
    let rows = env.manager(["list", "--json"]).stdout_json().run().json();
    assert_eq!(
        rows[0],
        serde_json::json!({
            "index": 0, "line": "test;16:07;backup_test", "valid": true,
            "source": "test", "time": "16:07", "name": "backup_test",
            "options": null, "error": null
        })
    );
    assert_eq!(rows[1]["valid"], false);
    assert_eq!(rows[1]["name"], Value::Null);
    assert!(
        rows[1]["error"]
            .as_str()
            .unwrap()
            .contains("found 1 fields")
    );
    assert_eq!(rows[2]["options"], "format=tar.gz,keep-daily=7");
    assert_eq!(rows[2]["time"], "02:30");
    assert_eq!(rows.as_array().unwrap().len(), 3);
    // Empty store: an empty array, not nothing.
    let empty = TestEnv::new();
    empty.manager(["list", "--json"]).stdout("[]\n").run();
}

#[test]
fn restore_reads_back_what_run_writes_fifos_and_symlink_times_included() {
    let env = TestEnv::new();
    make_source(&env);
    env.mkfifo("src/pipe");
    env.create("src;02:00;plain");
    env.ctl(["run", "plain"])
        .stdout_pattern("backups/plain.tar: 2 files, [..] MiB/s\n")
        .run();
    env.manager(["restore", "plain.tar", "--to", "out"])
        .stdout(
            "out/src\nout/src/a.txt\nout/src/link\nout/src/pipe\nout/src/sub\nout/src/sub/b.txt\n",
        )
        .run();
    // Types, modes (the FIFO's included), contents, link targets and mtimes
    // (the FIFO's and the symlink's included) of every entry.
    same_tree(env.path("src"), env.path("out/src"))
        .with_mtimes()
        .assert_same();
    assert_eq!(env.read("out/src/a.txt"), "hello\n");
}
