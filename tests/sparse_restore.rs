//! Sparse files come back from `restore` as sparse files, byte for byte, and
//! a sparse map that lies about the archive is refused before anything is
//! written.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use crate::support::TestEnv;

#[test]
fn a_sparse_file_restores_with_its_holes() {
    let env = TestEnv::with_tree(&["src"], &[("src/a.txt", "a")]);
    // 3 GiB with data at the start, in the middle and at the end.
    let path = env.path("src/disk.img");
    let mut file = fs::File::create(&path).unwrap();
    file.set_len(3 << 30).unwrap();
    for (offset, data) in [(0u64, "head"), (1 << 30, "middle"), ((3 << 30) - 4, "tail")] {
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.write_all(data.as_bytes()).unwrap();
    }
    drop(file);
    env.create("src;10:00;img");
    env.manager(["run", "img"])
        .stdout_contains(" MiB/s\n")
        .run();
    assert!(fs::metadata(env.path("backups/img.tar")).unwrap().len() < 1 << 20);
    env.manager(["restore", "img.tar", "--to", "out"])
        .stdout("out/src\nout/src/a.txt\nout/src/disk.img\n")
        .run();
    let restored = fs::metadata(env.path("out/src/disk.img")).unwrap();
    assert_eq!(restored.len(), 3 << 30);
    assert!(
        restored.blocks() < 1024,
        "{} blocks: the holes were filled",
        restored.blocks()
    );
    let same = Command::new("cmp")
        .arg(&path)
        .arg(env.path("out/src/disk.img"))
        .status()
        .unwrap();
    assert!(same.success(), "the restored file differs");
}

/// An archive with one GNU sparse 1.0 entry whose map is `map` and whose
/// data is `data`, built with Python's tarfile (which writes what it is told).
fn sparse_archive(env: &TestEnv, name: &str, realsize: u64, map: &str, data: &str) {
    let script = r#"
import io, sys, tarfile
realsize, mapping, data = int(sys.argv[2]), sys.argv[3].replace("|", "\n"), sys.argv[4].encode()
block = mapping.encode()
block += b"\0" * (-len(block) % 512)
payload = block + data
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    i = tarfile.TarInfo("src/GNUSparseFile.0/big"); i.size = len(payload)
    i.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                     "GNU.sparse.name": "src/big", "GNU.sparse.realsize": str(realsize)}
    t.addfile(i, io.BytesIO(payload))
"#;
    fs::create_dir_all(env.path("backups")).unwrap();
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(env.path(&format!("backups/{name}")))
        .args([realsize.to_string(), map.to_string(), data.to_string()])
        .status()
        .expect("python3");
    assert!(status.success());
}

#[test]
fn sparse_maps_that_lie_are_refused_before_anything_is_written() {
    let env = TestEnv::new();
    let cases = [
        // claims 9 bytes of data, holds 3
        (
            "short.tar",
            100,
            "1|0|9|",
            "abc",
            "has a sparse map that claims 9 bytes of data where the archive holds 3",
        ),
        // a segment past the real size
        (
            "past.tar",
            10,
            "1|8|3|",
            "abc",
            "has a sparse map whose segments overlap or lie past its size",
        ),
        // overlapping segments
        (
            "overlap.tar",
            100,
            "2|0|3|1|3|",
            "abcdef",
            "has a sparse map whose segments overlap or lie past its size",
        ),
    ];
    for (name, realsize, map, data, why) in cases {
        sparse_archive(&env, name, realsize, map, data);
        env.manager(["restore", name, "--to", "out"])
            .status(1)
            .stderr(format!(
                "backup_manager: refusing hostile archive {}: entry \"src/big\" {why}\n",
                env.path(&format!("backups/{name}")).display()
            ))
            .run();
        assert!(!env.path("out").exists(), "{name}: something was written");
    }
    // An honest map with a huge real size restores as holes, not as bytes.
    sparse_archive(&env, "huge.tar", 3 << 30, "1|0|3|", "abc");
    env.manager(["restore", "huge.tar", "--to", "out"])
        .stdout("out/src/big\n")
        .stderr_contains("has no manifest")
        .run();
    let restored = fs::metadata(env.path("out/src/big")).unwrap();
    assert_eq!(restored.len(), 3 << 30);
    assert!(restored.blocks() < 64);
}
