//! What a schedule backs up: option values in quotes, excludes and several
//! sources, checked against the names in the archive.

use crate::support::TestEnv;

#[test]
fn a_quoted_hook_holds_commas_and_semicolons() {
    let env = TestEnv::with_tree(&[], &[("src/file", "f\n")]);
    env.create(r#"src;04:00;src;before="printf '%s\n' 'a,b' > hook.out; echo \"c;d\" >> hook.out",catch-up"#);
    env.manager(["run", "src"])
        .stdout_pattern("backups/src.tar: [..] MiB/s\n")
        .run();
    assert_eq!(env.read("hook.out"), "a,b\nc;d\n");
}

#[test]
fn an_unterminated_quote_is_refused_naming_the_option() {
    let env = TestEnv::with_tree(&[], &[("src/file", "f\n")]);
    env.create("src;04:00;first");
    let before = env.schedules();
    env.manager(["create", r#"src;04:00;src;catch-up,before="echo a;b"#])
        .status(2)
        .stderr(
            "backup_manager: malformed schedule: src;04:00;src;catch-up,before=\"echo a;b (option \"before\" has an unterminated quote (a value that starts with \" must end with \"))\n",
        )
        .run();
    assert_eq!(env.schedules(), before);
}

const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n";

/// A tree with something for every exclude rule, and what it keeps.
fn excludes_env() -> TestEnv {
    TestEnv::with_tree(
        &["src/empty"],
        &[
            ("src/keep.txt", "k\n"),
            ("src/a.o", "o\n"),
            ("src/sub/b.o", "o\n"),
            ("src/sub/c.txt", "c\n"),
            ("src/sub/d.log", "l\n"),
            ("src/build/out/x", "x\n"),
            ("src/build/keep", "k\n"),
            ("src/sub/build/out/y", "y\n"),
            ("src/deep/x/tmp/q", "q\n"),
            ("src/cache/CACHEDIR.TAG", CACHEDIR_TAG),
            ("src/cache/blob", "b\n"),
            ("src/cache/sub/y", "y\n"),
            ("src/fake-cache/CACHEDIR.TAG", "not a signature\n"),
            ("src/fake-cache/z", "z\n"),
            ("src/proj/.nobackup", ""),
            ("src/proj/file", "f\n"),
            ("src/big.bin", &"x".repeat(2048)),
            ("src/o.dir/inside", "i\n"),
            ("excludes.txt", "# build products\n\n*.log\n"),
        ],
    )
}

const EXCLUDE_OPTIONS: &str = "exclude=*.o,exclude=/build/out,exclude=**/tmp/,exclude-from=excludes.txt,exclude-caches,exclude-if-present=.nobackup,exclude-larger-than=1k";

#[test]
fn excludes_leave_out_what_tar_and_restic_would() {
    let env = excludes_env();
    env.create(&format!("src;04:00;src;{EXCLUDE_OPTIONS}"));
    env.manager(["run", "src"])
        .stdout_pattern("backups/src.tar: 8 files, [..] MiB/s, 9 excluded\n")
        .run();
    let mut names = env.tar_list("backups/src.tar");
    names.sort();
    assert_eq!(
        names,
        [
            "src/",
            "src/build/",
            "src/build/keep",
            "src/cache/",
            "src/cache/CACHEDIR.TAG",
            "src/deep/",
            "src/deep/x/",
            "src/empty/",
            "src/fake-cache/",
            "src/fake-cache/CACHEDIR.TAG",
            "src/fake-cache/z",
            "src/keep.txt",
            "src/o.dir/",
            "src/o.dir/inside",
            "src/sub/",
            "src/sub/build/",
            "src/sub/build/out/",
            "src/sub/build/out/y",
            "src/sub/c.txt",
        ]
    );
    let manifest = env.read("backups/src.tar.json");
    assert!(manifest.contains("\"excluded\": 9"), "{manifest}");
}

#[test]
fn dry_run_lists_what_is_excluded_and_why() {
    let env = excludes_env();
    env.create(&format!("src;04:00;src;{EXCLUDE_OPTIONS}"));
    env.manager(["run", "src", "--dry-run"])
        .stdout(
            "would write backups/src.tar (format tar, level none)
exclude src/a.o (exclude=*.o)
exclude src/big.bin (exclude-larger-than)
exclude src/build/out (exclude=/build/out)
exclude src/cache/blob (exclude-caches)
exclude src/cache/sub (exclude-caches)
exclude src/deep/x/tmp (exclude=**/tmp/)
exclude src/proj (exclude-if-present=.nobackup)
exclude src/sub/b.o (exclude=*.o)
exclude src/sub/d.log (*.log from exclude-from=excludes.txt)
no retention: the archive replaces the previous one
",
        )
        .run();
    assert!(!env.path("backups/src.tar").exists());
}

#[test]
fn bad_exclude_options_are_refused_and_change_nothing() {
    let env = TestEnv::with_tree(&[], &[("src/file", "f\n")]);
    env.create("src;04:00;first");
    let before = env.schedules();
    for (options, message) in [
        (
            "exclude=a[b",
            "option \"exclude=a[b\" is not a valid pattern: unclosed character class; missing ']'",
        ),
        ("exclude=", "option \"exclude=\" needs a value"),
        (
            "exclude-larger-than=1x",
            "option \"exclude-larger-than=1x\" is not a size such as 500k, 20M or 2G (powers of 1024)",
        ),
        (
            "exclude-if-present=a/b",
            "option \"exclude-if-present=a/b\" must be a plain file name",
        ),
        (
            "exclude-caches=yes",
            "option \"exclude-caches=yes\" takes no value",
        ),
        (
            "one-file-system,one-file-system",
            "option \"one-file-system\" is given twice",
        ),
    ] {
        let line = format!("src;04:00;src;{options}");
        env.manager(["create", &line])
            .status(2)
            .stderr(format!(
                "backup_manager: malformed schedule: {line} ({message})\n"
            ))
            .run();
        assert_eq!(env.schedules(), before, "{options}");
    }
}

#[test]
fn a_missing_exclude_file_fails_the_run_naming_it() {
    let env = TestEnv::with_tree(&[], &[("src/file", "f\n")]);
    env.create("src;04:00;src;exclude-from=missing.txt");
    env.manager(["run", "src"])
        .status(1)
        .stderr(format!(
            "backup_manager: backup failed for src (schedule src): cannot read exclude file {}: No such file or directory (os error 2)\n",
            env.shown("missing.txt")
        ))
        .run();
}

#[test]
fn one_file_system_keeps_mount_points_empty() {
    let env = TestEnv::with_tree(&["src/mnt"], &[("src/file", "f\n")]);
    let mount = |args: &[&str]| {
        std::process::Command::new(args[0])
            .args(&args[1..])
            .status()
            .is_ok_and(|s| s.success())
    };
    let point = env.shown("src/mnt");
    assert!(
        mount(&["mount", "-t", "tmpfs", "none", &point]),
        "tests run as root"
    );
    env.write("src/mnt/inside", "i\n");
    env.create("src;04:00;src;one-file-system");
    env.manager(["run", "src"])
        .stdout_pattern("backups/src.tar: 1 file, [..] MiB/s, 1 excluded\n")
        .run();
    let names = env.tar_list("backups/src.tar");
    assert!(mount(&["umount", &point]));
    assert_eq!(names, ["src/", "src/file", "src/mnt/"]);
}
