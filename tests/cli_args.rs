//! The command line as a user types it: options after a command's names and
//! values are options (a target never swallows `--json` or `--home`), usage
//! errors are one line naming the bad input, and errors print their causes
//! once, on one line.

use crate::support::TestEnv;

/// A home with one schedule, `docs`, backed up once into `backups/docs.tar`.
fn with_one_archive() -> TestEnv {
    let env = TestEnv::new();
    env.write("src/a.txt", b"a");
    env.manager(&["create", "src;02:00;docs"]).success();
    env.manager(&["run", "docs"]).success();
    env
}

#[test]
fn verify_reads_options_after_its_targets() {
    let env = with_one_archive();
    let run = env.manager(&["verify", "docs", "--json"]);
    run.success();
    assert!(run.stdout.starts_with("[\n"), "not JSON: {run:?}");

    let elsewhere = tempfile::tempdir().unwrap();
    let mut cmd = env.command("backupctl");
    cmd.current_dir(elsewhere.path())
        .args(["verify", "docs", "--home"])
        .arg(env.home());
    env.run_cmd(cmd)
        .success()
        .stdout_is("OK backups/docs.tar\n");

    env.manager(&["verify", "docs", "--all"])
        .code(2)
        .stderr_has("cannot be used with");
    // A target that starts with '-' goes after `--`.
    env.manager(&["verify", "--", "-x"])
        .code(2)
        .stderr_has("no archive or schedule named \"-x\"");
}

#[test]
fn every_command_reads_options_after_its_arguments() {
    let env = with_one_archive();
    let home = env.home().to_str().unwrap();
    env.manager(&["run", "docs", "--dry-run", "--home", home])
        .success();
    env.manager(&["next", "02:00", "--count", "1", "--home", home])
        .success();
    env.manager(&["restore", "docs.tar", "--to", "out", "--home", home])
        .success();
    assert!(env.path("out").is_dir());
    env.manager(&["create", "src;03:00;more", "--home", home])
        .success();
    env.manager(&["delete", "1", "--home", home]).success();
    assert_eq!(env.schedules(), "src;02:00;docs\n");
}

#[test]
fn a_mistyped_command_is_one_line_with_a_suggestion_and_logged_in_its_home() {
    let env = with_one_archive();
    let elsewhere = tempfile::tempdir().unwrap();
    let mut cmd = env.command("backup_manager");
    cmd.current_dir(elsewhere.path())
        .args(["lsit", "--home"])
        .arg(env.home());
    let run = env.run_cmd(cmd);
    run.code(2);
    assert_eq!(
        run.stderr,
        "backup_manager: unrecognized subcommand 'lsit'; did you mean 'list'? (see --help)\n"
    );
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
    let env = TestEnv::new();
    std::fs::create_dir(env.path("backup_schedules.txt")).unwrap();
    let run = env.manager(&["list"]);
    run.code(1);
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(
        run.stderr
            .starts_with("backup_manager: cannot read schedule file "),
        "{run:?}"
    );
    assert_eq!(run.stderr.matches("directory").count(), 1, "{run:?}");

    std::fs::remove_dir(env.path("backup_schedules.txt")).unwrap();
    let run = env.manager(&["verify", "ghost\u{1b}[31m"]);
    run.code(2);
    assert_eq!(
        run.stderr,
        "backup_manager: no archive or schedule named \"ghost\\u{1b}[31m\" (looked in backups/ and at that path)\n"
    );
}
