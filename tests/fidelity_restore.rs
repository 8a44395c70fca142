//! What `restore` puts back, compared with the source and with what GNU tar
//! (`tar --xattrs --acls -xpf`, as root) extracts from the same archive:
//! owners by name or id, exact modes, hard links as one inode, holes,
//! xattrs and ACLs, devices, FIFOs and mtimes to the nanosecond. Run as
//! another user, restore gives up owners, set-uid bits, devices and the
//! attributes it may not set, one line each. Hostile archives for the new
//! entry kinds are refused before anything is written.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fidelity_write::{NAMELESS_ID, described, output, sh};
use crate::support::{BIN, TestEnv};

/// Every path below `root`, relative to it, sorted.
fn relative_paths(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.symlink_metadata().unwrap().is_dir() {
                stack.push(path.clone());
            }
            found.push(path.strip_prefix(root).unwrap().to_path_buf());
        }
    }
    found.sort();
    found
}

/// `copy` holds what `source` holds, entry by entry (types, contents or
/// sparse ends, modes, owners, mtimes), with hard links as one inode and
/// the same xattrs and ACLs.
#[track_caller]
fn assert_faithful(env: &TestEnv, source: &Path, copy: &Path) {
    let names = relative_paths(source);
    assert_eq!(relative_paths(copy), names, "{}", copy.display());
    for name in &names {
        assert_eq!(
            described(&copy.join(name)),
            described(&source.join(name)),
            "{} in {}",
            name.display(),
            copy.display()
        );
    }
    let inode = |name: &str| fs::metadata(copy.join(name)).unwrap().ino();
    assert_eq!(inode("linked"), inode("dir/second-name"));
    assert_eq!(inode("linked"), inode("third-name"));
    let blocks = fs::metadata(copy.join("sparse")).unwrap().blocks();
    assert!(blocks < 1024, "{blocks} blocks: the holes were filled");
    for name in ["xattrs", "dir", "setuid"] {
        let attributes = |root: &Path| {
            let path = root.join(name);
            let path = path.to_str().unwrap();
            let xattrs = output(
                env,
                "getfattr",
                &["--absolute-names", "-d", "-m", "-", "-e", "hex", path],
            );
            let acl = output(env, "getfacl", &["--omit-header", "--", path]);
            let xattrs: Vec<_> = xattrs.lines().skip(1).map(str::to_string).collect();
            (xattrs, acl)
        };
        assert_eq!(attributes(copy), attributes(source), "{name}");
    }
}

#[test]
fn restore_as_root_puts_back_what_gnu_tar_does() {
    let env = TestEnv::with_tree(&["src/dir"], &[("src/plain", "plain\n")]);
    for name in [
        "owned-by-nobody",
        "nameless-owner",
        "linked",
        "xattrs",
        "setuid",
    ] {
        env.write(&format!("src/{name}"), format!("{name}\n"));
    }
    sh(
        &env,
        &format!(
            "chown nobody:nogroup src/owned-by-nobody src/setuid
             chmod 6750 src/setuid
             chown {NAMELESS_ID}:{NAMELESS_ID} src/nameless-owner
             mkdir -m 1777 src/sticky
             ln src/linked src/dir/second-name
             ln src/linked src/third-name
             truncate -s 3G src/sparse && printf end >> src/sparse
             printf start | dd of=src/sparse conv=notrunc status=none
             setfattr -n user.colour -v blue src/xattrs
             setfattr -n trusted.secret -v 0x00ff10 src/xattrs
             setfacl -m u:nobody:rw,g:nogroup:r src/xattrs
             setfacl -d -m u:nobody:rx src/dir
             mknod src/null c 1 3
             mknod src/loop b 7 200
             mkfifo src/pipe
             ln -s plain src/link
             touch -d '2021-03-04 05:06:07.123456789' src/plain src/linked src/sparse src/xattrs src/pipe src/null
             touch -d '2001-02-03 04:05:06.000000001' src/setuid
             touch -h -d '2020-01-01 00:00:00.5' src/link
             touch -d '2019-05-06 07:08:09.987654321' src/dir src/sticky"
        ),
    );
    env.create("src;04:00;src");
    env.manager(["run", "src"])
        .stdout_pattern("backups/src.tar: [..] MiB/s\n")
        .run();
    let restored = env
        .manager(["restore", "src.tar", "--to", "out"])
        .stdout_contains("out/src/setuid\n")
        .run();
    assert_eq!(restored.stdout_lines().len(), 16);
    let source = env.path("src");
    assert_faithful(&env, &source, &env.path("out/src"));
    let link = fs::symlink_metadata(env.path("out/src/link")).unwrap();
    assert_eq!((link.mtime(), link.mtime_nsec()), (1577836800, 500_000_000));
    // GNU tar, from the same archive, gives the same tree (told to restore
    // every namespace: by default it restores `user.*` only).
    let flags = ["--xattrs", "--xattrs-include=*", "--acls", "-xpf"];
    let gnu = env.gnu_tar_extract("backups/src.tar", &flags, "gnu");
    assert_faithful(&env, &source, &gnu.join("src"));
    // And backupctl restores what GNU tar writes (its ACL text, its sparse
    // map) as faithfully.
    sh(
        &env,
        "tar --format=posix --xattrs --xattrs-include='*' --acls --sparse -cpf backups/gnu.tar src",
    );
    env.manager(["restore", "gnu.tar", "--to", "from-gnu"])
        .stdout_contains("from-gnu/src/setuid\n")
        .stderr_pattern("backup_manager: warning: [..]gnu.tar has no manifest[..]\n")
        .run();
    assert_faithful(&env, &source, &env.path("from-gnu/src"));
}

/// An archive written by Python's tarfile (which writes what it is told), PAX
/// format: `entries` are lines of `add(t, NAME, …)` calls.
fn python_pax_tar(env: &TestEnv, name: &str, entries: &str) {
    let script = format!(
        r#"
import io, sys, tarfile
def add(t, name, data=b"x", typ=tarfile.REGTYPE, link="", uid=0, gid=0, uname="", gname="", pax=None):
    i = tarfile.TarInfo(name); i.type = typ; i.linkname = link; i.mode = 0o644
    i.uid, i.gid, i.uname, i.gname = uid, gid, uname, gname
    i.pax_headers = pax or {{}}
    if typ == tarfile.REGTYPE:
        i.size = len(data); t.addfile(i, io.BytesIO(data))
    else:
        t.addfile(i)
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
{entries}
"#
    );
    fs::create_dir_all(env.path("backups")).unwrap();
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(env.path(&format!("backups/{name}")))
        .status()
        .expect("python3");
    assert!(status.success(), "python3 tarfile for {name}");
}

/// A plain `.tar` is read with seeks over the data of its files, in both
/// passes: the PAX records of the entries after that data are still read
/// whole (an xattr value holding a newline, which the tar crate alone
/// splits and drops).
#[test]
fn pax_records_after_data_restore_seeks_over_are_read_whole() {
    let env = TestEnv::new();
    python_pax_tar(
        &env,
        "pax.tar",
        "    add(t, 'big', data=b'y' * 200000); add(t, 'small', data=b'z' * 3)
    add(t, 'marked', pax={'SCHILY.xattr.user.note': 'one\\ntwo'})",
    );
    env.manager(["restore", "pax.tar", "--to", "out"])
        .stdout("out/big\nout/small\nout/marked\n")
        .stderr_pattern("backup_manager: warning: [..]pax.tar has no manifest[..]\n")
        .run();
    assert_eq!(xattr_of(&env, "out/marked", "user.note"), "one\ntwo");
    assert_eq!(fs::read(env.path("out/big")).unwrap(), vec![b'y'; 200_000]);
    assert_eq!(env.read("out/small"), "zzz");
}

#[test]
fn owners_come_back_by_name_or_with_numeric_owner_by_id() {
    let env = TestEnv::new();
    python_pax_tar(
        &env,
        "owners.tar",
        "    add(t, 'by-name', uid=12345, gid=12346, uname='nobody', gname='nogroup')
    add(t, 'unknown-name', uid=4000000, gid=4000001, uname='no-such-user-x', gname='no-such-group-x')
    add(t, 'big-id', uid=0, gid=0, pax={'uid': '3000000000', 'gid': '3000000001'})",
    );
    let owner = |path: &str| {
        let m = fs::metadata(env.path(path)).unwrap();
        (m.uid(), m.gid())
    };
    let quiet_but_unsealed =
        "backup_manager: warning: [..] has no manifest; its integrity was not checked\n";
    env.manager(["restore", "owners.tar", "--to", "names"])
        .stdout("names/by-name\nnames/unknown-name\nnames/big-id\n")
        .stderr_pattern(quiet_but_unsealed)
        .run();
    assert_eq!(owner("names/by-name"), (65534, 65534));
    assert_eq!(owner("names/unknown-name"), (4_000_000, 4_000_001));
    assert_eq!(owner("names/big-id"), (3_000_000_000, 3_000_000_001));
    env.manager(["restore", "owners.tar", "--to", "ids", "--numeric-owner"])
        .stdout("ids/by-name\nids/unknown-name\nids/big-id\n")
        .stderr_pattern(quiet_but_unsealed)
        .run();
    assert_eq!(owner("ids/by-name"), (12345, 12346));
    assert_eq!(owner("ids/unknown-name"), (4_000_000, 4_000_001));
}

#[test]
fn another_user_restores_without_owners_special_bits_devices_or_privileged_xattrs() {
    let env = TestEnv::with_tree(&[], &[("src/plain", "plain\n"), ("src/setuid", "s\n")]);
    sh(
        &env,
        "chmod 4755 src/setuid
         setfattr -n user.colour -v blue src/plain
         setfattr -n trusted.secret -v hidden src/plain
         mknod src/null c 1 3
         touch -d '2021-03-04 05:06:07.123456789' src/plain",
    );
    env.create("src;04:00;src");
    env.manager(["run", "src"])
        .stdout_pattern("backups/src.tar: [..] MiB/s\n")
        .run();
    // `nobody` owns the home (its log included) and reaches the binary.
    sh(&env, "chmod 755 . && chown -R 65534:65534 .");
    let out = env
        .program("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(["restore", "src.tar", "--to", "out"])
        .stdout("out/src\nout/src/plain\nout/src/setuid\n")
        .stderr(
            "backupctl: warning: out/src/null not restored: character devices are restored only by root\n\
             backupctl: warning: not running as root: owners and set-uid/set-gid/sticky bits of 3 entries were not restored\n\
             backupctl: warning: extended attributes or ACLs of 1 entries could not be restored (first: out/src/plain: trusted.secret: Operation not permitted (os error 1))\n",
        )
        .run();
    assert!(out.stdout.contains("plain"));
    let meta = |path: &str| fs::metadata(env.path(path)).unwrap();
    assert_eq!(meta("out/src/setuid").mode() & 0o7777, 0o755);
    assert_eq!(meta("out/src/plain").uid(), 65534);
    let plain = meta("out/src/plain");
    assert_eq!((plain.mtime(), plain.mtime_nsec()), (1614834367, 123456789));
    let colour = xattr_of(&env, "out/src/plain", "user.colour");
    assert_eq!(colour, "blue");
    assert!(!env.path("out/src/null").exists());
    assert!(env.log_has(
        "backup_manager.log",
        "Restore of backups/src.tar: not running as root: owners and set-uid/set-gid/sticky bits of 3 entries were not restored"
    ));
}

fn xattr_of(env: &TestEnv, path: &str, name: &str) -> String {
    output(
        env,
        "getfattr",
        &[
            "--only-values",
            "-n",
            name,
            env.path(path).to_str().unwrap(),
        ],
    )
}

#[test]
fn hostile_archives_with_links_sizes_and_xattrs_are_refused_before_writing() {
    let env = TestEnv::new();
    fs::create_dir(env.path("outside")).unwrap();
    env.write("out/existing", "already there\n");
    let cases = [
        (
            "xattr-outside.tar",
            "    add(t, 'fine'); add(t, '../outside/x', pax={'SCHILY.xattr.user.evil': 'yes'})",
            "entry \"../outside/x\" goes up with `..`",
        ),
        (
            "link-to-existing.tar",
            "    add(t, 'fine'); add(t, 'h', typ=tarfile.LNKTYPE, link='existing')",
            "entry \"h\" is a hard link to something that is not a file restored before it",
        ),
        (
            "link-to-absolute.tar",
            "    add(t, 'fine'); add(t, 'h', typ=tarfile.LNKTYPE, link='/etc/shadow')",
            "entry \"h\" is a hard link that is an absolute path",
        ),
        (
            "huge-sparse.tar",
            "    add(t, 'fine'); add(t, 'GNUSparseFile.0/big', data=b'0\\n' + b'\\0' * 510, pax={'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.name': 'big', 'GNU.sparse.realsize': '18446744073709551615'})",
            "entry \"big\" is a sparse file of an impossible size",
        ),
    ];
    for (name, entries, why) in cases {
        python_pax_tar(&env, name, entries);
        env.manager(["restore", name, "--to", "out"])
            .status(1)
            .stderr(format!(
                "backup_manager: refusing hostile archive {}: {why}\n",
                env.shown(&format!("backups/{name}"))
            ))
            .run();
        assert_eq!(env.paths_below("out"), ["out/existing"], "{name}");
    }
    assert!(env.paths_below("outside").is_empty());
}
