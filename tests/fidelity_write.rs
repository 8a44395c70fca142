//! What `run` writes, compared with the source after GNU tar extracts it
//! (`tar --xattrs --acls -xpf`, as root) and as bsdtar lists it: owners by
//! name and by bare id, hard links as one inode, sparse files with their
//! holes, xattrs and ACLs, devices and mtimes to the nanosecond.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use crate::support::TestEnv;

/// A uid and gid no user or group of the test machine has.
pub const NAMELESS_ID: u32 = 4_000_000;

pub fn sh(env: &TestEnv, script: &str) {
    let status = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(env.home())
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
}

pub fn output(env: &TestEnv, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(env.home())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything about one entry a faithful copy keeps (not its inode).
pub fn described(path: &Path) -> String {
    let m = fs::symlink_metadata(path).unwrap();
    let kind = m.file_type();
    let what = if kind.is_file() && m.len() > 1 << 20 {
        // A sparse file: its ends, where the source has data (hashing
        // gigabytes of zeros would only slow the test down).
        format!("file {} bytes, ends {:?}", m.len(), ends_of(path))
    } else if kind.is_file() {
        format!("file {} bytes sha {}", m.len(), sha256_of(path))
    } else if kind.is_symlink() {
        format!("link -> {:?}", fs::read_link(path).unwrap())
    } else if kind.is_char_device() || kind.is_block_device() {
        format!("device {:x}", m.rdev())
    } else {
        String::from("other")
    };
    let mtime = if kind.is_symlink() {
        String::new() // GNU tar does not set a symlink's time
    } else {
        format!(" {}.{:09}", m.mtime(), m.mtime_nsec())
    };
    format!(
        "{what} mode {:o} owner {}:{}{mtime}",
        m.mode(),
        m.uid(),
        m.gid()
    )
}

fn ends_of(path: &Path) -> (Vec<u8>, Vec<u8>) {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = fs::File::open(path).unwrap();
    let (mut head, mut tail) = (vec![0; 4096], Vec::new());
    file.read_exact(&mut head).unwrap();
    file.seek(SeekFrom::End(-4096)).unwrap();
    file.read_to_end(&mut tail).unwrap();
    (head, tail)
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn gnu_tar_restores_owners_links_holes_xattrs_acls_devices_and_mtimes() {
    let env = TestEnv::with_tree(&["src/dir"], &[("src/plain", "plain\n")]);
    env.write("src/owned-by-nobody", "n\n");
    env.write("src/nameless-owner", "x\n");
    env.write("src/linked", "one inode, three names\n");
    env.write("src/xattrs", "with attributes\n");
    sh(
        &env,
        &format!(
            "chown nobody:nogroup src/owned-by-nobody
             chown {NAMELESS_ID}:{NAMELESS_ID} src/nameless-owner
             ln src/linked src/dir/second-name
             ln src/linked src/third-name
             truncate -s 3G src/sparse && printf end >> src/sparse
             printf start | dd of=src/sparse conv=notrunc status=none
             setfattr -n user.colour -v blue src/xattrs
             setfattr -n user.binary -v 0x00ff10 src/xattrs
             setfacl -m u:nobody:rw,g:nogroup:r src/xattrs
             setfacl -d -m u:nobody:rx src/dir
             mknod src/null c 1 3
             mknod src/loop b 7 200
             touch -d '2021-03-04 05:06:07.123456789' src/plain src/linked src/sparse src/xattrs"
        ),
    );
    let blocks = fs::metadata(env.path("src/sparse")).unwrap().blocks();
    assert!(blocks < 1024, "the source is sparse: {blocks} blocks");
    env.create("src;04:00;src");
    env.manager(["run", "src"])
        .stdout_pattern("backups/src.tar: [..] MiB/s\n")
        .run();
    let size = fs::metadata(env.path("backups/src.tar")).unwrap().len();
    assert!(
        size < 1 << 20,
        "a 3 GiB sparse file archived in {size} bytes"
    );

    // bsdtar reads the owner names, the link and the sparse file's size.
    let listing = output(&env, "bsdtar", &["-tvf", "backups/src.tar"]);
    let line = |name: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(name) || l.contains(&format!("{name} link to")))
            .unwrap_or_else(|| panic!("{name} in {listing}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(line("src/owned-by-nobody")[2..4], ["nobody", "nogroup"]);
    assert_eq!(line("src/nameless-owner")[2..4], ["4000000", "4000000"]);
    assert_eq!(line("src/sparse")[4], "3221225475");
    assert!(line("src/third-name").ends_with(&["link", "to", "src/dir/second-name"]));

    let out = env.gnu_tar_extract("backups/src.tar", &["--xattrs", "--acls", "-xpf"], "out");
    let (source, copy) = (env.path("src"), out.join("src"));
    for name in [
        "plain",
        "owned-by-nobody",
        "nameless-owner",
        "linked",
        "dir/second-name",
        "third-name",
        "sparse",
        "xattrs",
        "null",
        "loop",
    ] {
        assert_eq!(
            described(&copy.join(name)),
            described(&source.join(name)),
            "{name}"
        );
    }
    // Hard links: one inode, three names.
    let inode = |name: &str| fs::metadata(copy.join(name)).unwrap().ino();
    assert_eq!(inode("linked"), inode("dir/second-name"));
    assert_eq!(inode("linked"), inode("third-name"));
    assert_eq!(fs::metadata(copy.join("linked")).unwrap().nlink(), 3);
    // Holes: the copy is as sparse as the source.
    let copied_blocks = fs::metadata(copy.join("sparse")).unwrap().blocks();
    assert!(copied_blocks < 1024, "{copied_blocks} blocks");
    // Extended attributes and ACLs.
    let attributes = |root: &Path| {
        output(
            &env,
            "getfattr",
            &[
                "--absolute-names",
                "-d",
                "-e",
                "hex",
                root.join("xattrs").to_str().unwrap(),
            ],
        )
        .lines()
        .skip(1)
        .collect::<Vec<_>>()
        .join("\n")
    };
    assert_eq!(attributes(&copy), attributes(&source));
    assert!(attributes(&copy).contains("user.colour=0x626c7565"));
    for name in ["xattrs", "dir"] {
        let acl = |root: &Path| {
            output(
                &env,
                "getfacl",
                &["--omit-header", "--", root.join(name).to_str().unwrap()],
            )
        };
        assert_eq!(acl(&copy), acl(&source), "{name}");
        assert!(
            acl(&copy).contains("user:nobody:"),
            "{name}: {}",
            acl(&copy)
        );
    }
}

#[test]
fn no_xattrs_leaves_attributes_and_acls_out() {
    let env = TestEnv::with_tree(&[], &[("src/file", "f\n")]);
    sh(
        &env,
        "setfattr -n user.colour -v blue src/file; setfacl -m u:nobody:r src/file",
    );
    env.create("src;04:00;src;no-xattrs");
    env.manager(["run", "src"])
        .stdout_pattern("backups/src.tar: [..] MiB/s\n")
        .run();
    let archive = fs::read(env.path("backups/src.tar")).unwrap();
    let holds = |needle: &[u8]| archive.windows(needle.len()).any(|w| w == needle);
    assert!(!holds(b"SCHILY.xattr") && !holds(b"SCHILY.acl"));
    env.manager(["create", "other;04:00;other;no-xattrs=maybe"])
        .status(2)
        .stderr_pattern("backup_manager: [..]no-xattrs=maybe[..]\n")
        .run();
}

#[test]
fn a_ten_gib_sparse_file_makes_a_small_archive_quickly() {
    let env = TestEnv::new();
    env.sparse_file("src/disk.img", 10 << 30);
    sh(&env, "printf data >> src/disk.img");
    env.create("src;04:00;src");
    let started = std::time::Instant::now();
    env.manager(["run", "src"])
        .stdout_pattern("backups/src.tar: 1 file, [..] MiB/s\n")
        .run();
    let took = started.elapsed();
    let size = fs::metadata(env.path("backups/src.tar")).unwrap().len();
    println!("10 GiB sparse file: archive {size} bytes in {took:?}");
    assert!(size < 64 << 10, "{size} bytes");
    assert!(took.as_secs() < 10, "{took:?}");
    let listing = output(&env, "tar", &["-tvf", "backups/src.tar"]);
    assert!(listing.contains(" 10737418244 "), "{listing}");
}
