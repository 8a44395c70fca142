//! The schedule commands through `backup_manager`: create, list, delete and
//! every refused input (which must leave the store as it was).

use crate::support::TestEnv;

#[test]
fn create_then_list_shows_indexed_schedules() {
    let env = TestEnv::new();
    env.manager(["create", "test;16:07;backup_test"])
        .stderr(env.missing_source_warning("backup_manager", "test"))
        .run();
    env.manager(["create", "test1;16:07;personal_data"])
        .stderr(env.missing_source_warning("backup_manager", "test1"))
        .run();
    env.manager(["list"])
        .stdout("0: test;16:07;backup_test\n1: test1;16:07;personal_data\n")
        .run();
    assert_eq!(
        env.schedules(),
        "test;16:07;backup_test\ntest1;16:07;personal_data\n"
    );
    let missing = |dir: &str| {
        format!(
            "Warning: source {} does not exist yet; its backups will fail until it does",
            env.shown(dir)
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
    let env = TestEnv::with_tree(&["here"], &[]);
    env.manager(["create", "nowhere;10:00;n"])
        .stderr(format!(
            "backup_manager: warning: source {} does not exist yet; its backups will fail until it does\n",
            env.shown("nowhere")
        ))
        .run();
    // An existing source: no warning at all.
    env.create("here;10:00;m");
}

#[test]
fn refused_schedules_name_the_input_and_change_nothing() {
    let env = TestEnv::new();
    env.manager(["create", "a;10:00;taken"])
        .stderr(env.missing_source_warning("backup_manager", "a"))
        .run();
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
        // One line, naming the program first, then the reason.
        env.manager(["create", input])
            .status(2)
            .stderr_pattern(format!("backup_manager: [..]{message}[..]\n"))
            .run();
        assert_eq!(env.schedules(), before, "store changed by {input:?}");
    }
    let log = env.log_messages("backup_manager.log");
    assert!(
        log.iter()
            .any(|l| l.starts_with("Error: malformed schedule: test; (")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("Error: a schedule named \"taken\"")),
        "{log:#?}"
    );
}

#[test]
fn delete_removes_by_index_and_refuses_unknown_schedules() {
    let env = TestEnv::with_tree(&["a", "b", "c"], &[]);
    for line in ["a;10:00;one", "b;11:00;two", "c;12:00;three"] {
        env.create(line);
    }
    env.manager(["delete", "1"]).run();
    env.manager(["list"])
        .stdout("0: a;10:00;one\n1: c;12:00;three\n")
        .run();
    let before = env.schedules();
    for (bad, message) in [
        ("2", "no schedule at index 2: schedules are numbered 0 to 1"),
        // Not a plain number: a name, and there is none such.
        ("-1", "no schedule with index or name \"-1\""),
        ("x", "no schedule with index or name \"x\""),
        ("1.0", "no schedule with index or name \"1.0\""),
    ] {
        env.manager(["delete", bad])
            .status(2)
            .stderr_pattern(format!("backup_manager: [..]{message}[..]\n"))
            .run();
        assert_eq!(env.schedules(), before);
    }
    assert!(
        env.log_messages("backup_manager.log")
            .contains(&"Schedule deleted: 1: b;11:00;two".to_string())
    );
}

#[test]
fn hand_edited_lines_are_listed_kept_and_deletable() {
    let env = TestEnv::with_tree(&["c"], &[]);
    env.write(
        "backup_schedules.txt",
        "a;10:00;one\nthis is not a schedule\n\nb;11:00;two\n",
    );
    env.manager(["list"])
        .stdout("0: a;10:00;one\n1: this is not a schedule\n2: b;11:00;two\n")
        .stderr_pattern("backup_manager: warning: schedule 1 is not valid: [..]\n")
        .run();
    env.create("c;12:00;three");
    assert!(env.schedules().contains("this is not a schedule\n"));
    env.manager(["delete", "1"]).run();
    env.manager(["list"])
        .stdout("0: a;10:00;one\n1: b;11:00;two\n2: c;12:00;three\n")
        .run();
}

#[test]
fn concurrent_creates_lose_nothing() {
    let env = TestEnv::new();
    let creates: Vec<_> = (0..40)
        .map(|i| {
            env.manager(["create", &format!("src{i};10:{:02};name{i}", i % 60)])
                .stderr(env.missing_source_warning("backup_manager", &format!("src{i}")))
                .spawn()
        })
        .collect();
    for create in creates {
        create.wait();
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
    let home = env.shown("elsewhere");
    env.ctl(["--home", &home, "create", "x;10:00;n"])
        .stderr(env.missing_source_warning("backupctl", "elsewhere/x"))
        .run();
    assert_eq!(env.read("elsewhere/backup_schedules.txt"), "x;10:00;n\n");
    env.ctl(["list"])
        .env("BACKUPCTL_HOME", &home)
        .stdout("0: x;10:00;n\n")
        .run();
}

#[test]
fn list_into_a_closed_pipe_is_not_an_error() {
    let env = TestEnv::new();
    let many: String = (0..5000).map(|i| format!("p;10:00;n{i}\n")).collect();
    env.write("backup_schedules.txt", many);
    // pipefail: the status is `backup_manager`'s own, which must be success.
    env.bash("set -o pipefail && ./backup_manager list | head -1")
        .stdout("0: p;10:00;n0\n")
        .run();
}

#[test]
fn help_and_version_work_under_every_name() {
    let env = TestEnv::new();
    env.manager(["--help"])
        .stdout_contains("\nUsage: backup_manager [OPTIONS] <COMMAND>\n")
        .run();
    env.ctl(["--version"])
        .stdout(format!("backupctl {}\n", env!("CARGO_PKG_VERSION")))
        .run();
    env.service(["--help"])
        .stdout_contains("\nUsage: backup_service [OPTIONS]\n")
        .run();
    // A mistyped subcommand: see the next test.
}

#[test]
fn usage_errors_are_one_line_and_logged_when_the_home_has_logs() {
    let env = TestEnv::new();
    // No logs/ yet: a mistyped command creates nothing.
    env.manager(["frobnicate"])
        .status(2)
        .stderr("backup_manager: unrecognized subcommand 'frobnicate' (see --help)\n")
        .run();
    assert!(!env.path("logs").exists());
    env.manager(["list"]).run();
    env.manager(["delete"])
        .status(2)
        .stderr(
            "backup_manager: the following required arguments were not provided: <INDEX|NAME> (see --help)\n",
        )
        .run();
    assert_eq!(
        env.log_messages("backup_manager.log")
            .last()
            .map(String::as_str),
        Some(
            "Error: invalid command line: the following required arguments were not provided: <INDEX|NAME>"
        )
    );
}
