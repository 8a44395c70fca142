//! The command line as a user types it: options after a command's names and
//! values are options (a target never swallows `--json` or `--home`), usage
//! errors are one line naming the bad input, and errors print their causes
//! once, on one line.

use crate::support::TestEnv;

/// A home with one schedule, `docs`, backed up once into `backups/docs.tar`.
fn with_one_archive() -> TestEnv {
    let env = TestEnv::with_tree(&["src"], &[("src/a.txt", "a")]);
    env.create("src;02:00;docs");
    env.manager(["run", "docs"])
        .stdout_pattern("backups/docs.tar: 1 file, [..]\n")
        .run();
    env
}

#[test]
fn verify_reads_options_after_its_targets() {
    let env = with_one_archive();
    let out = env
        .manager(["verify", "docs", "--json"])
        .stdout_json()
        .run();
    assert_eq!(out.json()[0]["ok"], true, "{}", out.stdout);

    let elsewhere = tempfile::tempdir().unwrap();
    env.ctl(["verify", "docs", "--home"])
        .arg(env.home())
        .current_dir(elsewhere.path())
        .stdout("OK backups/docs.tar\n")
        .run();

    env.manager(["verify", "docs", "--all"])
        .status(2)
        .stderr_contains("cannot be used with")
        .run();
    // A target that starts with '-' goes after `--`.
    env.manager(["verify", "--", "-x"])
        .status(2)
        .stderr(
            "backup_manager: no archive or schedule named \"-x\" (looked in backups/ and at that path)\n",
        )
        .run();
}

#[test]
fn every_command_reads_options_after_its_arguments() {
    let env = with_one_archive();
    let home = env.home().to_str().unwrap();
    env.manager(["run", "docs", "--dry-run", "--home", home])
        .stdout_contains("would write backups/docs.tar")
        .run();
    env.manager(["next", "02:00", "--count", "1", "--home", home])
        .stdout_pattern("[..] 02:00 [..]\n")
        .run();
    env.manager(["restore", "docs.tar", "--to", "out", "--home", home])
        .stdout("out/src\nout/src/a.txt\n")
        .run();
    assert!(env.path("out").is_dir());
    env.manager(["create", "src;03:00;more", "--home", home])
        .run();
    env.manager(["delete", "1", "--home", home]).run();
    assert_eq!(env.schedules(), "src;02:00;docs\n");
}

#[test]
fn a_mistyped_command_is_one_line_with_a_suggestion_and_logged_in_its_home() {
    let env = with_one_archive();
    let elsewhere = tempfile::tempdir().unwrap();
    env.manager(["lsit", "--home"])
        .arg(env.home())
        .current_dir(elsewhere.path())
        .status(2)
        .stderr(
            "backup_manager: unrecognized subcommand 'lsit'; did you mean 'list'? (see --help)\n",
        )
        .run();
    assert_eq!(
        env.log_messages("backup_manager.log")
            .last()
            .map(String::as_str),
        Some("Error: invalid command line: unrecognized subcommand 'lsit'; did you mean 'list'?")
    );
    assert!(!elsewhere.path().join("logs").exists());
}

#[test]
fn errors_print_each_cause_once_on_one_line() {
    let env = TestEnv::bare();
    std::fs::create_dir(env.path("backup_schedules.txt")).unwrap();
    env.manager(["list"])
        .status(1)
        .stderr(format!(
            "backup_manager: cannot read schedule file {}: Is a directory (os error 21)\n",
            env.path("backup_schedules.txt").display()
        ))
        .run();

    std::fs::remove_dir(env.path("backup_schedules.txt")).unwrap();
    env.write("backup_schedules.txt", "");
    env.manager(["verify", "ghost\u{1b}[31m"])
        .status(2)
        .stderr(
            "backup_manager: no archive or schedule named \"ghost\\u{1b}[31m\" (looked in backups/ and at that path)\n",
        )
        .run();

    env.manager(["list"])
        .env("BACKUPCTL_FAKE_NOW", "yesterday\n")
        .status(2)
        .stderr(
            "backup_manager: BACKUPCTL_FAKE_NOW=yesterday\\n is not a local time like 2023-02-08T16:07:00\n",
        )
        .run();
}
