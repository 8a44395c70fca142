//! The schedule commands through `backup_manager`: create, list, delete and
//! every refused input (which must leave the store as it was).

use crate::support::TestEnv;

#[test]
fn create_then_list_shows_indexed_schedules() {
    let env = TestEnv::new();
    env.manager(&["create", "test;16:07;backup_test"])
        .success()
        .stdout_is("");
    env.manager(&["create", "test1;16:07;personal_data"])
        .success();
    env.manager(&["list"])
        .success()
        .stdout_is("0: test;16:07;backup_test\n1: test1;16:07;personal_data\n");
    assert_eq!(
        env.schedules(),
        "test;16:07;backup_test\ntest1;16:07;personal_data\n"
    );
    let missing = |dir: &str| {
        format!(
            "Warning: source {} does not exist yet; its backups will fail until it does",
            env.path(dir).display()
        )
    };
    assert_eq!(
        env.log_messages("backup_manager.log"),
        [
            "New schedule added: test;16:07;backup_test".to_string(),
            missing("test"),
            "New schedule added: test1;16:07;personal_data".to_string(),
            missing("test1"),
            "Show schedules list".to_string(),
        ]
    );
}

#[test]
fn a_missing_source_is_accepted_with_a_warning() {
    let env = TestEnv::new();
    env.manager(&["create", "nowhere;10:00;n"])
        .success()
        .stderr_has("warning: source")
        .stderr_has("nowhere does not exist yet");
    std::fs::create_dir(env.path("here")).unwrap();
    let run = env.manager(&["create", "here;10:00;m"]);
    assert_eq!(run.success().stderr, "");
}

#[test]
fn refused_schedules_name_the_input_and_change_nothing() {
    let env = TestEnv::new();
    env.manager(&["create", "a;10:00;taken"]).success();
    let before = env.schedules();
    let cases: &[(&str, &str)] = &[
        (
            "test;",
            "malformed schedule: test; (expected path;hh:mm;name",
        ),
        ("", "found 1 fields"),
        (";10:00;n", "the path is empty"),
        ("p;10:00;", "the backup name is empty"),
        ("p;24:00;n", "time \"24:00\" is not hh:mm"),
        ("p;9:00;n", "time \"9:00\""),
        ("p;10:00;a/b", "backup name \"a/b\" contains '/'"),
        ("p;10:00;..", "backup name \"..\" is not a file name"),
        ("p;10:00;x\ny", "contains a control character"),
        (
            "p;10:00;taken",
            "a schedule named \"taken\" already exists at index 0",
        ),
        ("p;10:00;n;bogus", "option \"bogus\" is not a known option"),
        ("-p;10:00", "malformed schedule: -p;10:00"),
    ];
    for (input, message) in cases {
        let run = env.manager(&["create", input]);
        run.code(2)
            .stderr_has("backup_manager: ")
            .stderr_has(message);
        assert_eq!(
            run.stderr.lines().count(),
            1,
            "one line for {input:?}: {run:?}"
        );
        assert_eq!(env.schedules(), before, "store changed by {input:?}");
    }
    let log = env.log_messages("backup_manager.log");
    assert!(
        log.iter()
            .any(|l| l.starts_with("Error: malformed schedule: test; ("))
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("Error: a schedule named \"taken\""))
    );
}

#[test]
fn delete_removes_by_index_and_refuses_bad_indexes() {
    let env = TestEnv::new();
    for line in ["a;10:00;one", "b;11:00;two", "c;12:00;three"] {
        env.manager(&["create", line]).success();
    }
    env.manager(&["delete", "1"]).success();
    env.manager(&["list"])
        .stdout_is("0: a;10:00;one\n1: c;12:00;three\n");
    let before = env.schedules();
    for (bad, message) in [
        ("2", "no schedule at index 2: schedules are numbered 0 to 1"),
        ("-1", "invalid index \"-1\""),
        ("x", "invalid index \"x\""),
        ("1.0", "invalid index \"1.0\""),
    ] {
        env.manager(&["delete", bad]).code(2).stderr_has(message);
        assert_eq!(env.schedules(), before);
    }
    assert!(
        env.log_messages("backup_manager.log")
            .contains(&"Schedule deleted: 1: b;11:00;two".to_string())
    );
}

#[test]
fn hand_edited_lines_are_listed_kept_and_deletable() {
    let env = TestEnv::new();
    env.write(
        "backup_schedules.txt",
        b"a;10:00;one\nthis is not a schedule\n\nb;11:00;two\n",
    );
    let run = env.manager(&["list"]);
    run.success()
        .stdout_is("0: a;10:00;one\n1: this is not a schedule\n2: b;11:00;two\n")
        .stderr_has("schedule 1 is not valid");
    env.manager(&["create", "c;12:00;three"]).success();
    assert!(env.schedules().contains("this is not a schedule\n"));
    env.manager(&["delete", "1"]).success();
    env.manager(&["list"])
        .success()
        .stdout_is("0: a;10:00;one\n1: b;11:00;two\n2: c;12:00;three\n");
}

#[test]
fn concurrent_creates_lose_nothing() {
    let env = TestEnv::new();
    let children: Vec<_> = (0..40)
        .map(|i| {
            let mut cmd = env.command("backup_manager");
            cmd.args(["create", &format!("src{i};10:{:02};name{i}", i % 60)]);
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let stored = env.schedules();
    assert_eq!(stored.lines().count(), 40);
    for i in 0..40 {
        assert!(stored.contains(&format!(";name{i}\n")), "name{i} lost");
    }
}

#[test]
fn home_can_be_given_by_flag_or_environment() {
    let env = TestEnv::new();
    let elsewhere = env.path("elsewhere");
    let home = elsewhere.to_str().unwrap();
    env.ctl(&["--home", home, "create", "x;10:00;n"]).success();
    assert_eq!(
        std::fs::read_to_string(elsewhere.join("backup_schedules.txt")).unwrap(),
        "x;10:00;n\n"
    );
    let mut cmd = env.command("backupctl");
    cmd.env("BACKUPCTL_HOME", home).arg("list");
    env.run_cmd(cmd).success().stdout_is("0: x;10:00;n\n");
}

#[test]
fn list_into_a_closed_pipe_is_not_an_error() {
    let env = TestEnv::new();
    let many: String = (0..5000).map(|i| format!("p;10:00;n{i}\n")).collect();
    env.write("backup_schedules.txt", many.as_bytes());
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("./backup_manager list | head -1; exit ${PIPESTATUS:-0}")
        .current_dir(env.home())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0: p;10:00;n0\n");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{out:?}"
    );
}

#[test]
fn help_and_version_work_under_every_name() {
    let env = TestEnv::new();
    env.manager(&["--help"]).success();
    env.ctl(&["--version"]).success();
    let mut cmd = env.command("backup_service");
    cmd.arg("--help");
    let run = env.run_cmd(cmd);
    run.success();
    assert!(run.stdout.contains("backup_service"), "{run:?}");
    env.manager(&["frobnicate"]).code(2);
}

#[test]
fn usage_errors_are_one_line_and_logged_when_the_home_has_logs() {
    let env = TestEnv::new();
    // No logs/ yet: a mistyped command creates nothing.
    let run = env.manager(&["frobnicate"]);
    run.code(2);
    assert_eq!(
        run.stderr,
        "backup_manager: unrecognized subcommand 'frobnicate' (see --help)\n"
    );
    assert!(!env.path("logs").exists());
    env.manager(&["list"]).success();
    env.manager(&["delete"])
        .code(2)
        .stderr_has("required arguments were not provided: <INDEX>");
    assert_eq!(
        env.log_messages("backup_manager.log")
            .last()
            .map(String::as_str),
        Some(
            "Error: invalid command line: the following required arguments were not provided: <INDEX>"
        )
    );
}
