//! Incremental chains (`incremental`, `full-every=N`): each archive holds
//! what changed and a `GNU.dumpdir` per directory, so stock GNU tar
//! restores the chain, deletions and renames included; bsdtar lists every
//! archive; manifests name level and parent; `if-changed` writes nothing
//! for an unchanged tree; a kill leaves the chain usable.

use std::fs;
use std::process::Command;

use serde_json::Value;

use crate::support::{TestEnv, same_tree};

fn manifest(env: &TestEnv, archive: &str) -> Value {
    serde_json::from_str(&env.read(&format!("{archive}.json"))).expect("manifest")
}

/// The schedule's archives, oldest first, as `backups/NAME`.
fn archives(env: &TestEnv) -> Vec<String> {
    let mut names: Vec<String> = env
        .dir_listing("backups")
        .into_iter()
        .filter(|n| n.ends_with(".tar"))
        .map(|n| format!("backups/{n}"))
        .collect();
    names.sort();
    names
}

/// Restores `chain` (a full archive, then its incrementals in order) with
/// stock GNU tar into a fresh directory `into`, and checks it is `src`.
#[track_caller]
fn gnu_tar_restores(env: &TestEnv, chain: &[String], into: &str) {
    for archive in chain {
        env.gnu_tar_extract(archive, &["--listed-incremental=/dev/null", "-xf"], into);
    }
    same_tree(env.path("src"), env.path(into).join("src")).assert_same();
}

/// `backupctl restore` of the newest archive of a chain applies the whole
/// chain into a fresh directory `into`, which then holds `src`.
#[track_caller]
fn backupctl_restores(env: &TestEnv, archive: &str, into: &str) {
    let name = archive.trim_start_matches("backups/");
    env.ctl(["restore", name, "--to", into])
        .stdout_contains(format!("{into}/src\n"))
        .run();
    same_tree(env.path("src"), env.path(into).join("src"))
        .with_mtimes()
        .assert_same();
}

/// bsdtar reads every archive as ordinary entries.
#[track_caller]
fn bsdtar_lists(env: &TestEnv, archive: &str) -> Vec<String> {
    let out = Command::new("bsdtar")
        .arg("-tf")
        .arg(env.path(archive))
        .output()
        .expect("bsdtar");
    assert!(out.status.success(), "bsdtar -tf {archive}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs the schedule and returns the archive it wrote.
#[track_caller]
fn run(env: &TestEnv) -> String {
    // The archive's line, then a `pruned` line for each archive retention
    // deleted.
    let out = env.ctl(["run", "docs"]).stdout_contains(" MiB/s\n").run();
    let archive = out.stdout.split(':').next().unwrap_or_default().to_string();
    assert!(archive.starts_with("backups/docs_"), "{}", out.stdout);
    assert!(env.path(&archive).exists(), "{archive}");
    archive
}

/// The changes of each step of the chain test, as a shell script run in
/// the home.
const STEPS: &[&str] = &[
    // added, changed, deleted
    "echo new > src/added.txt && echo more >> src/a.txt && rm src/sub/run.sh",
    // a file renamed, a directory renamed, a file turned into a directory
    "mv src/a.txt src/renamed.txt && mv src/sub src/moved && rm src/link && mkdir src/link && echo in > src/link/f",
    // the directory turned back into a file; an empty directory; a symlink
    "rm -r src/link && echo back > src/link && mkdir src/empty && ln -s moved/b.txt src/to-b",
    // nothing changed but one file's mode
    "chmod 600 src/added.txt",
    // a deep new tree, and a deleted directory with contents
    "mkdir -p src/x/y/z && echo deep > src/x/y/z/deep && rm -r src/moved",
];

#[test]
fn a_chain_restores_with_gnu_tar_after_every_kind_of_change() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    env.tree(
        &["src/sub"],
        &[
            ("src/a.txt", "alpha\n"),
            ("src/sub/b.txt", &"beta ".repeat(10_000)),
            ("src/sub/run.sh", "#!/bin/sh\n"),
            ("src/link", "a file for now\n"),
        ],
    );
    env.create("src;03:00;docs;incremental,full-every=4,keep-last=20");
    let mut chain = vec![run(&env)];
    let full = manifest(&env, &chain[0]);
    assert_eq!(full["chain"]["level"], 0, "{full}");
    assert!(full["chain"].get("parent").is_none(), "{full}");
    gnu_tar_restores(&env, &chain, "restore-0");
    for (i, step) in STEPS.iter().enumerate() {
        env.bash(step).run();
        let archive = run(&env);
        let m = manifest(&env, &archive);
        // full-every=4: runs 0 and 4 are full archives.
        let level = (i + 1) % 4;
        assert_eq!(m["chain"]["level"], level, "step {i}: {m}");
        if level == 0 {
            chain.clear();
        } else {
            let parent = manifest(&env, chain.last().unwrap());
            assert_eq!(
                m["chain"]["parent"]["archive"].as_str(),
                chain.last().unwrap().strip_prefix("backups/"),
                "{m}"
            );
            assert_eq!(m["chain"]["parent"]["sha256"], parent["sha256"], "{m}");
        }
        chain.push(archive);
        gnu_tar_restores(&env, &chain, &format!("restore-{}", i + 1));
        backupctl_restores(&env, chain.last().unwrap(), &format!("ours-{}", i + 1));
    }
    for archive in archives(&env) {
        let listed = bsdtar_lists(&env, &archive);
        assert_eq!(
            listed.first().map(String::as_str),
            Some("src/"),
            "{listed:?}"
        );
    }
}

#[test]
fn an_incremental_holds_only_what_changed_and_every_directory_with_its_dumpdir() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    env.tree(
        &["src/d1/sub", "src/d2"],
        &[
            ("src/a", "a\n"),
            ("src/d1/b", "b\n"),
            ("src/d1/sub/c", "c\n"),
        ],
    );
    env.create("src;03:00;docs;incremental,keep-last=20");
    let full = run(&env);
    assert_eq!(
        env.tar_list(&full),
        [
            "src/",
            "src/d1/",
            "src/d1/sub/",
            "src/d2/",
            "src/a",
            "src/d1/b",
            "src/d1/sub/c"
        ]
    );
    env.bash("echo changed > src/a && echo new > src/n && rm src/d1/b")
        .run();
    let incremental = run(&env);
    // Directories first, then only the changed and new files, as GNU tar
    // orders a `--listed-incremental` archive.
    assert_eq!(
        env.tar_list(&incremental),
        [
            "src/",
            "src/d1/",
            "src/d1/sub/",
            "src/d2/",
            "src/a",
            "src/n"
        ]
    );
    // The dumpdirs, as GNU tar lists them: Y stored here, N unchanged, D a
    // directory; `b` is gone from d1's.
    let out = Command::new("tar")
        .args(["--listed-incremental=/dev/null", "-tvvf"])
        .arg(env.path(&incremental))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    for expected in ["Y a\nD d1\nD d2\nY n\n", "D sub\n", "N c\n"] {
        assert!(listing.contains(expected), "{expected:?} in\n{listing}");
    }
    let stored: u64 = manifest(&env, &incremental)["archive_size"]
        .as_u64()
        .unwrap();
    let whole: u64 = manifest(&env, &full)["archive_size"].as_u64().unwrap();
    assert!(stored <= whole, "{stored} > {whole}");
}

#[test]
fn if_changed_with_incremental_writes_nothing_for_an_unchanged_tree() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    env.tree(&["src/sub"], &[("src/a", "a\n"), ("src/sub/b", "b\n")]);
    env.create("src;03:00;docs;incremental,if-changed,keep-last=20");
    let first = run(&env);
    env.ctl(["run", "docs"])
        .stdout(format!(
            "src: unchanged since {first}; no archive written\n"
        ))
        .run();
    assert_eq!(archives(&env), std::slice::from_ref(&first));
    env.write("src/sub/b", "B\n");
    let second = run(&env);
    assert_eq!(manifest(&env, &second)["chain"]["level"], 1);
    env.ctl(["run", "docs"])
        .stdout(format!(
            "src: unchanged since {second}; no archive written\n"
        ))
        .run();
    assert_eq!(archives(&env), [first, second]);
}

#[test]
fn a_kill_during_an_incremental_run_leaves_the_chain_whole() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    env.tree(&["src"], &[("src/a", "a\n")]);
    env.create("src;03:00;docs;incremental,keep-last=20");
    let full = run(&env);
    for step in ["manifest-written", "archive-renamed"] {
        env.write("src/a", format!("changed before {step}\n"));
        env.manager(["run", "docs"])
            .env("BACKUPCTL_CRASH_AT", step)
            .killed()
            .stdout_contains("")
            .stderr_contains("")
            .run();
    }
    env.write("src/b", "b\n");
    let next = run(&env);
    // Every archive left has its manifest and file state, and no file state
    // is left without its archive.
    for name in env.dir_listing("backups") {
        if let Some(archive) = name.strip_suffix(".files") {
            assert!(env.path(&format!("backups/{archive}")).exists(), "{name}");
        }
    }
    let chain: Vec<String> = archives(&env);
    assert_eq!(chain.first(), Some(&full));
    assert_eq!(chain.last(), Some(&next));
    for archive in &chain {
        assert!(env.path(&format!("{archive}.files")).exists(), "{archive}");
    }
    env.manager(["verify", "--all"])
        .stdout_contains("OK ")
        .run();
    gnu_tar_restores(&env, &chain, "restored");
}

#[test]
fn incremental_options_are_checked_when_the_schedule_is_created() {
    let env = TestEnv::with_tree(&["src"], &[]);
    let cases = [
        (
            "src;03:00;docs;incremental",
            "option \"incremental\" needs a keep-* or min-keep option",
        ),
        (
            "src;03:00;docs;full-every=3,keep-last=2",
            "option \"full-every=3\" needs incremental",
        ),
        (
            "src;03:00;docs;incremental,full-every=0,keep-last=2",
            "option \"full-every=0\" must be a whole number of at least 1",
        ),
        (
            "src;03:00;docs;incremental,keep-last=2,also=src",
            "option \"incremental\" cannot be combined with also=PATH yet",
        ),
    ];
    for (line, message) in cases {
        env.ctl(["create", line])
            .status(2)
            .stderr_pattern(format!("backupctl: [..]{message}[..]\n"))
            .run();
    }
    assert_eq!(env.schedules(), "");
    fs::metadata(env.path("src")).unwrap();
}

#[test]
fn retention_keeps_the_parents_a_kept_archive_needs_and_says_so() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    env.tree(&["src"], &[("src/a", "a\n")]);
    env.create("src;03:00;docs;incremental,full-every=3,keep-last=2");
    let mut written = Vec::new();
    for i in 0..3 {
        env.write("src/a", format!("run {i}\n"));
        written.push(run(&env));
    }
    // keep-last=2 keeps runs 1 and 2; run 1 needs run 0.
    assert_eq!(archives(&env), written);
    env.ctl(["prune", "docs", "--dry-run"])
        .stdout(format!(
            "keep    {}  (parent of {})\nkeep    {}  (keep-last)\nkeep    {}  (newest, keep-last)\n",
            written[0],
            written[1].trim_start_matches("backups/"),
            written[1],
            written[2],
        ))
        .run();
    gnu_tar_restores(&env, &written, "restored-2");
    // Run 3 (full-every=3) starts a new chain; keep-last=2 keeps run 2,
    // which needs the whole first chain.
    let name = |i: usize| written[i].trim_start_matches("backups/").to_string();
    env.ctl(["run", "docs", "--dry-run"])
        .stdout_pattern(format!(
            "would write backups/docs_[..].tar (format tar, level none)\n\
             keep   backups/docs_[..].tar (newest, keep-last, just-written)\n\
             keep   {} (keep-last)\n\
             keep   {} (parent of {})\n\
             keep   {} (parent of {})\n",
            written[2],
            written[1],
            name(2),
            written[0],
            name(1)
        ))
        .run();
    // Run 3 starts a new chain.
    env.write("src/a", "run 3\n");
    written.push(run(&env));
    assert_eq!(manifest(&env, &written[3])["chain"]["level"], 0);
    // keep-last=2 keeps runs 2 and 3; run 2 needs 1, which needs 0.
    assert_eq!(archives(&env), written);
    // Run 4 needs only run 3: the first chain can go.
    env.write("src/a", "run 4\n");
    env.ctl(["run", "docs", "--dry-run"])
        .stdout_pattern(format!(
            "would write backups/docs_[..].tar (format tar, level none)\n\
             keep   backups/docs_[..].tar (newest, keep-last, just-written)\n\
             keep   {} (keep-last)\n\
             delete {}\n\
             delete {}\n\
             delete {}\n",
            written[3], written[2], written[1], written[0]
        ))
        .run();
    written.push(run(&env));
    // Runs 3 and 4 are kept, and 4 needs only 3: the first chain is gone,
    // file states included.
    assert_eq!(archives(&env), written[3..]);
    assert!(!env.path(&format!("{}.files", written[0])).exists());
    gnu_tar_restores(&env, &written[3..], "restored-4");
}

/// Rewrites the dumpdir of directory `dir` in `archive` (GNU tar's pax
/// format, through Python's tarfile) and seals the archive again in its
/// manifest, so that only the dumpdir is hostile.
fn forge_dumpdir(env: &TestEnv, archive: &str, dir: &str, dumpdir: &str) {
    let script = format!(
        "import tarfile, hashlib, json, os, sys\n\
         path = sys.argv[1]\n\
         src = tarfile.open(path)\n\
         members = [(m, src.extractfile(m).read() if m.isfile() else None) for m in src.getmembers()]\n\
         out = tarfile.open(path + '.new', 'w', format=tarfile.PAX_FORMAT)\n\
         for m, data in members:\n\
         \x20   if m.name == {dir:?}:\n\
         \x20       m.pax_headers['GNU.dumpdir'] = {dumpdir:?}\n\
         \x20   out.addfile(m, None if data is None else __import__('io').BytesIO(data))\n\
         out.close()\n\
         os.replace(path + '.new', path)\n\
         data = open(path, 'rb').read()\n\
         m = json.load(open(path + '.json'))\n\
         m['sha256'] = hashlib.sha256(data).hexdigest()\n\
         m['archive_size'] = len(data)\n\
         json.dump(m, open(path + '.json', 'w'))\n"
    );
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(env.path(archive))
        .status()
        .expect("python3");
    assert!(status.success(), "python3 tarfile for {archive}");
}

#[test]
fn restore_refuses_a_hostile_incremental_before_writing_or_deleting() {
    let cases = [
        ("Yb\0Y../x\0\0", "\"../x\", which is not a plain file name"),
        (
            "Y/etc/passwd\0\0",
            "\"/etc/passwd\", which is not a plain file name",
        ),
        ("Yb\0Rsrc/b\0T../../x\0\0", "rename records"),
    ];
    for (dumpdir, why) in cases {
        let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
        env.tree(&["src"], &[("src/a", "a\n"), ("src/b", "b\n")]);
        env.create("src;03:00;docs;incremental,keep-last=20");
        let full = run(&env);
        env.write("src/b", "changed\n");
        let incremental = run(&env);
        forge_dumpdir(&env, &incremental, "src", &dumpdir.replace("\\0", "\0"));
        // The forged archive verifies by itself: only its dumpdir is bad.
        env.ctl(["verify", incremental.trim_start_matches("backups/")])
            .stdout_contains("OK ")
            .run();
        // Into a fresh directory: nothing created.
        let name = incremental.trim_start_matches("backups/");
        env.ctl(["restore", name, "--to", "fresh"])
            .status(1)
            .stderr_pattern(format!(
                "backupctl: refusing hostile archive {}: entry \"src/\" has a dumpdir that [..]{why}[..]\n",
                env.shown(&incremental)
            ))
            .run();
        assert!(!env.path("fresh").exists());
        // Over an earlier restore: nothing deleted, nothing replaced.
        env.ctl([
            "restore",
            full.trim_start_matches("backups/"),
            "--to",
            "old",
        ])
        .stdout_contains("old/src\n")
        .run();
        env.write("old/x", "beside the restore\n");
        env.ctl(["restore", name, "--to", "old", "--force"])
            .status(1)
            .stderr_contains("refusing hostile archive")
            .run();
        assert_eq!(env.read("old/x"), "beside the restore\n");
        assert_eq!(env.read("old/src/b"), "b\n");
    }
}

#[test]
fn restore_of_an_incremental_needs_its_whole_chain() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    env.tree(&["src"], &[("src/a", "a\n")]);
    env.create("src;03:00;docs;incremental,keep-last=20");
    let full = run(&env);
    env.write("src/a", "changed\n");
    let incremental = run(&env);
    fs::rename(env.path(&full), env.path("elsewhere.tar")).unwrap();
    let name = incremental.trim_start_matches("backups/");
    let parent = full.trim_start_matches("backups/");
    env.ctl(["restore", name, "--to", "out"])
        .status(1)
        .stderr(format!(
            "backupctl: cannot restore the incremental {}: its chain is not whole: the parent {parent} of {name} is missing\n",
            env.shown(&incremental)
        ))
        .run();
    assert!(!env.path("out").exists());
}

#[test]
fn verify_of_an_incremental_checks_its_whole_chain() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    env.tree(&["src"], &[("src/a", "a\n")]);
    env.create("src;03:00;docs;incremental,keep-last=20");
    let full = run(&env);
    env.write("src/a", "changed\n");
    let middle = run(&env);
    env.write("src/a", "changed again\n");
    let last = run(&env);
    let name = |a: &str| a.trim_start_matches("backups/").to_string();
    env.ctl(["verify", "docs"])
        .stdout(format!("OK {full}\nOK {middle}\nOK {last}\n"))
        .run();
    // The middle link replaced by another archive under its name.
    let manifest_text = env.read(&format!("{middle}.json"));
    let sealed: Value = serde_json::from_str(&manifest_text).unwrap();
    let mut forged = sealed.clone();
    forged["sha256"] = Value::from("00".repeat(32));
    fs::write(env.path(&format!("{middle}.json")), forged.to_string()).unwrap();
    env.ctl(["verify", &name(&last)])
        .status(1)
        .stderr("backupctl: 1 of 1 archives failed verification\n")
        .stdout(format!(
            "FAILED {last}: its chain is not whole: the parent {} is not the archive {} was built on\n",
            name(&middle),
            name(&last)
        ))
        .run();
    fs::write(env.path(&format!("{middle}.json")), manifest_text).unwrap();
    // The full archive gone.
    fs::remove_file(env.path(&full)).unwrap();
    env.ctl(["verify", &name(&last)])
        .status(1)
        .stderr("backupctl: 1 of 1 archives failed verification\n")
        .stdout(format!(
            "FAILED {last}: its chain is not whole: the parent {} of {} is missing\n",
            name(&full),
            name(&middle)
        ))
        .run();
}

#[test]
fn backups_long_shows_each_archive_s_place_in_its_chain() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    env.tree(&["src"], &[("src/a", "a\n")]);
    env.create("src;03:00;docs;incremental,full-every=2,keep-last=20");
    let mut names = Vec::new();
    for i in 0..3 {
        env.write("src/a", format!("run {i}\n"));
        names.push(run(&env).trim_start_matches("backups/").to_string());
    }
    env.ctl(["backups", "docs", "--long"])
        .stdout_pattern(format!(
            "[..]  {}  level 0 (full)\n\
             [..]  {}  level 1, on {}\n\
             [..]  {}  level 0 (full)\n\
             3 archives, [..] in total\n",
            names[0], names[1], names[0], names[2]
        ))
        .run();
    let json = env.ctl(["backups", "--json"]).stdout_json().run().json();
    assert_eq!(json[1]["level"], 1, "{json}");
    assert_eq!(
        json[1]["parent"].as_str(),
        Some(names[0].as_str()),
        "{json}"
    );
    assert!(json[0].get("parent").is_none(), "{json}");
}

#[test]
fn chosen_paths_are_restored_across_a_chain() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    env.tree(
        &["src/keep", "src/gone"],
        &[("src/keep/a", "a\n"), ("src/gone/old", "old\n")],
    );
    env.create("src;03:00;docs;incremental,keep-last=20");
    run(&env);
    // The next archive holds only the new file; a/ is unchanged, in the
    // full archive alone; gone/old is deleted.
    env.write("src/keep/new", "new\n");
    fs::remove_file(env.path("src/gone/old")).unwrap();
    let newest = run(&env);
    let name = newest.trim_start_matches("backups/");
    env.ctl(["restore", name, "src/keep", "--to", "out"])
        // Each archive of the chain prints what it writes: keep/ is in both.
        .stdout("out/src/keep\nout/src/keep/a\nout/src/keep\nout/src/keep/new\n")
        .run();
    assert_eq!(
        env.paths_below("out"),
        [
            "out/src",
            "out/src/keep",
            "out/src/keep/a",
            "out/src/keep/new"
        ]
    );
    // What the source no longer held at that time does not come back.
    // (The full archive writes gone/old; the next one's dumpdir deletes it.)
    env.ctl(["restore", name, "src/gone", "--to", "out2"])
        .stdout("out2/src/gone\nout2/src/gone/old\nout2/src/gone\n")
        .run();
    assert_eq!(env.paths_below("out2"), ["out2/src", "out2/src/gone"]);
}

#[test]
fn a_damaged_file_state_makes_the_next_run_a_full_archive() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    env.tree(&["src"], &[("src/a", "a\n")]);
    env.create("src;03:00;docs;incremental,keep-last=20");
    let full = run(&env);
    fs::write(env.path(&format!("{full}.files")), b"damaged").unwrap();
    env.write("src/b", "b\n");
    let next = run(&env);
    assert_eq!(manifest(&env, &next)["chain"]["level"], 0);
    let warned = format!(
        "docs: the file state of {} is missing or does not match its manifest; this run writes a full archive",
        full.trim_start_matches("backups/")
    );
    assert!(
        env.log_has("backup_service.log", &warned),
        "{:?}",
        env.log_messages("backup_service.log")
    );
    gnu_tar_restores(&env, &[next], "restored");
}

#[test]
fn restore_at_a_time_applies_the_chain_up_to_the_archive_of_then() {
    let env = TestEnv::new().with_clock("2025-03-04T05:06:07");
    env.tree(&["src/sub"], &[("src/a", "a\n"), ("src/sub/b", "b\n")]);
    env.create("src;03:00;docs;incremental,keep-last=20");
    let steps = [
        "true",
        "echo more >> src/a && rm src/sub/b && echo c > src/sub/c",
        "rm -r src/sub && echo d > src/d",
    ];
    let mut written = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        env.bash(step).run();
        env.bash(&format!("cp -a src snap-{i}")).run();
        written.push(run(&env));
    }
    // The archives are stamped 05:06:07, :08 and :09: as of 05:06:08 the
    // newest is the first incremental, restored with the full archive.
    assert!(written[1].ends_with("_20250304_050608.tar"), "{written:?}");
    env.ctl([
        "restore",
        "docs",
        "--at",
        "2025-03-04 05:06:08",
        "--to",
        "then",
    ])
    .stdout_contains("then/src\n")
    .run();
    same_tree(env.path("snap-1"), env.path("then/src")).assert_same();
    env.ctl([
        "restore",
        "docs",
        "--at",
        "2025-03-04 05:06:09",
        "--to",
        "now",
    ])
    .stdout_contains("now/src\n")
    .run();
    same_tree(env.path("snap-2"), env.path("now/src")).assert_same();
}
