//! Running backupctl as a system service: a command finds its home (or
//! refuses, creating nothing), `status` and `check` answer as monitoring
//! expects, the service's log lines name their schedule and suit journald,
//! and schedules and their archives are named rather than counted.

use crate::support::{Service, TestEnv, foreground_stderr};

/// `the current directory "DIR" is not a backupctl home …`, as printed.
fn not_a_home_here(env: &TestEnv, nor: Option<&str>) -> String {
    let nor = nor.map(|s| format!(", nor is \"{s}\"")).unwrap_or_default();
    format!(
        "backup_manager: the current directory \"{}\" is not a backupctl home{nor} (no backup_schedules.txt); name one with --home DIR or BACKUPCTL_HOME=DIR, or start one with create\n",
        env.home().display()
    )
}

#[test]
fn outside_a_home_commands_refuse_and_create_nothing() {
    let env = TestEnv::bare();
    let before = env.paths_below(".");
    for command in [
        &["status"][..],
        &["list"],
        &["backups"],
        &["check"],
        &["stop"],
        &["start"],
        &["daemon", "--foreground"],
        &["delete", "0"],
        &["run", "docs"],
        &["prune", "docs"],
        &["verify", "--all"],
    ] {
        env.manager(command)
            .status(2)
            .stderr(not_a_home_here(&env, None))
            .run();
    }
    // The foreground service under its own name, too.
    env.service::<&str>([])
        .status(2)
        .stderr(not_a_home_here(&env, None).replace("backup_manager:", "backup_service:"))
        .run();
    // A mistyped command logs nowhere outside a home.
    env.manager(["lsit"])
        .status(2)
        .stderr_contains("lsit")
        .run();
    // `next` needs no home.
    env.manager(["next", "02:00", "-n", "1"])
        .stdout_pattern("[..] 02:00 [..]\n")
        .run();
    assert_eq!(env.paths_below("."), before);
}

#[test]
fn a_named_home_that_does_not_exist_is_not_created() {
    let env = TestEnv::bare();
    let missing = env.path("nonexistent");
    let message = format!(
        "backup_manager: \"{}\" is not a backupctl home (no backup_schedules.txt); name one with --home DIR or BACKUPCTL_HOME=DIR, or start one with create\n",
        missing.display()
    );
    env.manager(["list"])
        .env("BACKUPCTL_HOME", &missing)
        .status(2)
        .stderr(message.clone())
        .run();
    env.manager(["status", "--home"])
        .arg(&missing)
        .status(2)
        .stderr(message)
        .run();
    assert!(!missing.exists());
}

#[test]
fn start_inside_backups_does_not_start_a_second_service_there() {
    let env = TestEnv::with_tree(&["src"], &[("src/a", "a")]);
    env.create("src;02:00;docs");
    let inside = env.path("backups");
    let shown = format!(
        "backup_manager: the current directory \"{}\" is not a backupctl home (no backup_schedules.txt); name one with --home DIR or BACKUPCTL_HOME=DIR, or start one with create\n",
        inside.display()
    );
    env.manager(["start"])
        .current_dir(&inside)
        .status(2)
        .stderr(shown)
        .run();
    assert_eq!(env.paths_below("backups"), Vec::<String>::new());
}

#[test]
fn outside_a_home_the_system_home_is_used_if_it_is_one() {
    let system = TestEnv::with_tree(&["src"], &[("src/a", "a")]);
    system.create("src;02:00;docs");
    let env = TestEnv::bare();
    env.manager(["list"])
        .env("BACKUPCTL_SYSTEM_HOME", system.home())
        .stdout("0: src;02:00;docs\n")
        .run();
    // One that is not a home is named in the refusal.
    let elsewhere = env.path("no-service");
    env.manager(["list"])
        .env("BACKUPCTL_SYSTEM_HOME", &elsewhere)
        .status(2)
        .stderr(not_a_home_here(
            &env,
            Some(&elsewhere.display().to_string()),
        ))
        .run();
    // `create` starts a home here, as in the original usage, not there.
    env.write("test/a", "a");
    env.manager(["create", "test;03:00;here"])
        .env("BACKUPCTL_SYSTEM_HOME", system.home())
        .run();
    assert_eq!(env.schedules(), "test;03:00;here\n");
    assert_eq!(system.schedules(), "src;02:00;docs\n");
    // A home here wins over the system home.
    env.manager(["list"])
        .env("BACKUPCTL_SYSTEM_HOME", system.home())
        .stdout("0: test;03:00;here\n")
        .run();
}

#[test]
fn status_exits_3_without_the_service_and_0_with_it() {
    let env = TestEnv::with_tree(&["src"], &[("src/a", "a")]);
    env.create("src;02:00;docs");
    env.manager(["status"])
        .status(3)
        .stdout_pattern(
            "backup_service: not running\n0: docs  last run never  next run [..]  (src;02:00;docs)\n",
        )
        .run();
    let service = Service::start(&env);
    env.manager(["status"])
        .stdout_pattern("backup_service: running (pid [..], since [..])\n0: docs  last run never  next run [..]\n")
        .run();
    service.stop();
}

#[test]
fn status_shows_a_run_in_progress() {
    let env = TestEnv::with_tree(&["src"], &[("src/a", "a")]).with_clock("2030-01-02T10:07:00");
    let hold = env.holding_hook("run");
    env.create(&format!("src;02:00;docs;before={hold}"));
    let run = env
        .manager(["run", "docs"])
        .stdout_pattern("backups/docs.tar: 1 file, [..]\n")
        .spawn();
    env.wait_for_hook("run");
    env.manager(["status"])
        .status(3)
        .stdout_pattern(format!(
            "backup_service: not running\n0: docs  last run never  next run [..]  (src;02:00;docs;before={hold})\n0: docs  running since 02/01/2030 10:07, 0 B read so far (pid {})\n",
            run.pid()
        ))
        .run();
    let json = env
        .manager(["status", "--json"])
        .status(3)
        .stdout_json()
        .run();
    let running = &json.json()["schedules"][0]["running"];
    assert_eq!(running["pid"], run.pid());
    assert_eq!(running["bytes_read"], 0);
    env.release_hook("run");
    run.wait();
    // Done: no run shown, no progress file left.
    let json = env.status_json(3);
    assert_eq!(json["schedules"][0]["running"], serde_json::Value::Null);
    assert!(!env.path("backups/.docs.progress").exists());
}

#[test]
fn a_progress_file_left_by_a_killed_run_is_not_a_run_in_progress() {
    let env = TestEnv::with_tree(&["src"], &[("src/a", "a")]);
    env.create("src;02:00;docs");
    env.write(
        "backups/.docs.progress",
        format!(
            r#"{{"schedule":"docs","pid":{},"started":"2030-01-02T10:07:00Z","bytes_read":5}}"#,
            std::process::id()
        ),
    );
    let json = env.status_json(3);
    assert_eq!(json["schedules"][0]["running"], serde_json::Value::Null);
}

#[test]
fn check_quiet_prints_nothing_on_success_and_the_problems_otherwise() {
    let env = TestEnv::with_tree(&["src"], &[("src/a", "a")]);
    env.create("src;02:00;docs");
    env.manager(["check", "-q"])
        .status(1)
        .stdout("docs: never backed up\n")
        .run();
    env.manager(["run", "docs"])
        .stdout_pattern("backups/docs.tar: 1 file, [..]\n")
        .run();
    env.manager(["check", "--quiet"]).run();
    env.manager(["check"])
        .stdout("ok: 1 schedule backed up in time\n")
        .run();
}

#[test]
fn start_takes_jobs_like_daemon() {
    let env = TestEnv::with_tree(&["src"], &[("src/a", "a")]);
    env.create("src;02:00;docs");
    env.manager(["start", "--jobs", "0"])
        .status(2)
        .stderr(
            "backup_manager: invalid value '0' for '--jobs <N>': 0 is not in 1..=64 (see --help)\n",
        )
        .run();
    env.manager(["start", "--jobs", "3"]).run();
    env.wait_for_log("backup_service.log", "up to 3 backups run at once");
    env.manager(["stop"]).run();
}

#[test]
fn every_service_line_about_a_run_names_its_schedule() {
    let env = TestEnv::with_tree(&["src"], &[("src/a", "a")]).with_clock("2024-05-06T09:30:00");
    // Two schedules on one directory, and two on one missing directory.
    env.create("src;09:30;plain");
    env.create("src;09:30;kept;keep-last=2,if-changed");
    for name in ["first", "second"] {
        env.manager(["create", &format!("missing;09:30;{name}")])
            .stderr(env.missing_source_warning("backup_manager", "missing"))
            .run();
    }
    Service::start(&env).stop();
    // A second run of `kept` finds its tree unchanged.
    env.manager(["run", "kept"])
        .stdout_pattern("[..]unchanged[..]\n")
        .run();
    let mut runs: Vec<String> = env
        .log_messages("backup_service.log")
        .into_iter()
        .filter(|l| l.contains("ackup ") && !l.starts_with("backup_service"))
        // Without the run's figures and the failure's cause.
        .map(|l| l.split(" (1 file").next().unwrap_or_default().to_string())
        .map(|l| l.split(": source").next().unwrap_or_default().to_string())
        .collect();
    runs.sort();
    assert_eq!(
        runs,
        [
            "Backup done for src in backups/kept_20240506_093000.tar",
            "Backup done for src in backups/plain.tar",
            "Backup skipped for src: unchanged since backups/kept_20240506_093000.tar",
            "Error: backup failed for missing (schedule first)",
            "Error: backup failed for missing (schedule second)",
        ]
    );
}

#[test]
fn under_systemd_the_foreground_service_writes_for_journald() {
    let env = TestEnv::with_tree(&["src"], &[("src/a", "a")]).with_clock("2024-05-06T09:30:00");
    env.create("src;09:30;docs");
    env.manager(["create", "missing;09:30;broken"])
        .stderr(env.missing_source_warning("backup_manager", "missing"))
        .run();
    // What a killed run left: its removal is a warning.
    env.write("backups/.docs.0123456789abcdef.partial", "x");
    // systemd names the stream it hands over as stderr, DEVICE:INODE.
    let script = "export JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2); exec ./backup_service";
    let home = env.home().display();
    let service = Service::foreground(
        &env,
        env.bash(script).stderr_pattern(format!(
            "<6>backup_service started (pid [..], home {home})\n\
             <4>Warning: removed backups/.docs.0123456789abcdef.partial left by an interrupted run of docs\n\
             <6>Backup done for src in backups/docs.tar ([..])\n\
             <3>Error: backup failed for missing (schedule broken): source [..]missing does not exist\n\
             <6>SIGTERM received: stopping after the backups in progress\n\
             <6>backup_service stopped (pid [..])\n"
        )),
    );
    service.wait_for_log("backup failed for missing");
    service.stop();
    // The log file keeps its own stamps and no priorities.
    let log = env.read("logs/backup_service.log");
    assert!(
        log.lines().all(|l| l.starts_with("[06/05/2024 09:30] ")),
        "{log}"
    );
    // A foreground service whose stderr is not the stream systemd named
    // (a redirected child of a service) stamps its lines as usual.
    let other = TestEnv::new().with_clock("2024-05-06T09:30:00");
    Service::foreground(
        &other,
        other
            .service::<&str>([])
            .env("JOURNAL_STREAM", "1:1")
            .stderr_pattern(foreground_stderr(&other, "06/05/2024", &[])),
    )
    .stop();
}

#[test]
fn log_files_can_be_stamped_in_iso_8601() {
    let env = TestEnv::with_tree(&["src"], &[("src/a", "a")]).with_clock("2026-11-24T15:36:04");
    env.manager(["--log-time", "iso", "create", "src;15:36;docs"])
        .env("TZ", "Europe/Paris")
        .run();
    // The environment chooses it too, for the service started by systemd.
    let home = env.home().display();
    let service = Service::foreground(
        &env,
        env.service::<&str>([])
            .env("TZ", "Europe/Paris")
            .env("BACKUPCTL_LOG_TIME", "iso")
            .stderr_pattern(format!(
                "[2026-11-24T15:36:0[..]+01:00] backup_service started (pid [..], home {home})\n\
                 [2026-11-24T15:36:0[..]+01:00] Backup done for src in backups/docs.tar ([..])\n\
                 [2026-11-24T15:36:0[..]+01:00] SIGTERM received: stopping after the backups in progress\n\
                 [2026-11-24T15:36:0[..]+01:00] backup_service stopped (pid [..])\n"
            )),
    );
    service.wait_for_log("Backup done");
    service.stop();
    assert_eq!(
        env.read("logs/backup_manager.log"),
        "[2026-11-24T15:36:04+01:00] New schedule added: src;15:36;docs\n"
    );
    assert!(
        env.read("logs/backup_service.log")
            .lines()
            .all(|l| l.starts_with("[2026-11-24T15:36:0") && l.contains("+01:00] ")),
    );
    // The default stays the original format.
    env.manager(["list"]).stdout("0: src;15:36;docs\n").run();
    assert!(
        env.read("logs/backup_manager.log")
            .ends_with("] Show schedules list\n")
    );
    assert!(
        env.log_has("backup_manager.log", "Show schedules list")
            && env
                .read("logs/backup_manager.log")
                .contains("\n[24/11/2026 15:36] Show schedules list\n")
    );
    env.manager(["--log-time", "rfc", "list"])
        .status(2)
        .stderr_contains("\"rfc\" is not a log time format: dmy ([dd/mm/YYYY HH:MM]) or iso")
        .run();
}

#[test]
fn delete_takes_a_name_as_well_as_an_index() {
    let env = TestEnv::with_tree(&["src"], &[("src/a", "a")]);
    // `7` is a name here; `-1` is not an index, so a name too.
    for line in [
        "src;10:00;docs",
        "src;11:00;7",
        "src;12:00;www",
        "src;13:00;-1",
    ] {
        env.create(line);
    }
    // Indexes shift after a delete, names do not: delete by name twice.
    env.manager(["delete", "docs"]).run();
    env.manager(["delete", "www"]).run();
    env.manager(["list"])
        .stdout("0: src;11:00;7\n1: src;13:00;-1\n")
        .run();
    // A number in range is an index; out of range, a name if there is one.
    env.manager(["delete", "7"]).run();
    env.manager(["list"]).stdout("0: src;13:00;-1\n").run();
    env.manager(["delete", "-1"]).run();
    assert_eq!(env.schedules(), "");
    env.create("src;10:00;docs");
    let before = env.schedules();
    for (key, message) in [
        ("3", "no schedule at index 3: the only schedule is 0"),
        ("nope", "no schedule with index or name \"nope\""),
        ("1.0", "no schedule with index or name \"1.0\""),
        ("do\ncs", "no schedule with index or name \"do\\ncs\""),
    ] {
        env.manager(["delete", key])
            .status(2)
            .stderr(format!("backup_manager: {message}\n"))
            .run();
        assert_eq!(env.schedules(), before, "changed by {key:?}");
    }
    // The log names the index the schedule had, whichever way it was named.
    let log = env.log_messages("backup_manager.log");
    for deleted in [
        "Schedule deleted: 0: src;10:00;docs",
        "Schedule deleted: 1: src;12:00;www",
        "Schedule deleted: 0: src;11:00;7",
        "Schedule deleted: 0: src;13:00;-1",
    ] {
        assert!(log.contains(&deleted.to_string()), "{deleted}: {log:#?}");
    }
}

#[test]
fn a_hand_edited_line_is_deleted_by_index_not_by_name() {
    let env = TestEnv::new();
    env.write("backup_schedules.txt", "broken line\n");
    env.manager(["delete", "broken line"])
        .status(2)
        .stderr("backup_manager: no schedule with index or name \"broken line\"\n")
        .run();
    env.manager(["delete", "0"]).run();
    assert_eq!(env.schedules(), "");
}

#[test]
fn backups_name_lists_that_schedules_own_archives_with_a_total() {
    let env = TestEnv::with_tree(&["src"], &[("src/a", "a")]);
    env.create("src;02:00;docs;keep-last=5");
    env.create("src;03:00;empty");
    let kib = |n: usize| "x".repeat(1024 * n);
    for (name, contents, owner) in [
        ("docs_20250102_020000.tar", kib(2), Some("docs")),
        ("docs_20250101_020000.tar.gz", kib(1), Some("docs")),
        // Named like one of docs's, but another schedule's by its manifest.
        (
            "docs_20200101_000000.tar",
            kib(4),
            Some("docs_20200101_000000"),
        ),
        // Named like docs's, but no manifest: nobody's own.
        ("docs.tar", kib(8), None),
        // A deleted schedule's.
        ("old.tar", "12345".to_string(), Some("old")),
    ] {
        env.write(&format!("backups/{name}"), contents);
        if let Some(owner) = owner {
            env.write_manifest(name, owner);
        }
    }
    env.manager(["backups", "docs"])
        .stdout(
            "docs_20250101_020000.tar.gz\n\
             docs_20250102_020000.tar\n\
             2 archives, 3.0 KiB in total\n",
        )
        .run();
    env.manager(["backups", "docs", "--long"])
        .stdout_pattern(
            "[..]     1.0 KiB  docs_20250101_020000.tar.gz\n\
             [..]     2.0 KiB  docs_20250102_020000.tar\n\
             2 archives, 3.0 KiB in total\n",
        )
        .run();
    let json = env
        .manager(["backups", "--json", "docs"])
        .stdout_json()
        .run();
    let rows = json.json();
    let rows = rows.as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["archive"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["docs_20250101_020000.tar.gz", "docs_20250102_020000.tar"]
    );
    assert!(rows.iter().all(|r| r["schedule"] == "docs"));
    // A deleted schedule's archives, and a schedule without any.
    env.manager(["backups", "old"])
        .stdout("old.tar\n1 archive, 5 B in total\n")
        .run();
    env.manager(["backups", "empty"])
        .stdout("0 archives, 0 B in total\n")
        .run();
    env.manager(["backups", "empty", "--json"])
        .stdout("[]\n")
        .run();
    // Neither a schedule nor the owner of an archive: one line, exit 2.
    for args in [
        &["backups", "nope"][..],
        &["backups", "--long", "nope"],
        &["backups", "0"],
    ] {
        let name = args[args.len() - 1];
        env.manager(args)
            .status(2)
            .stderr(format!(
                "backup_manager: no schedule named \"{name}\", nor archives of one in backups/\n"
            ))
            .run();
    }
    // Without a name, every archive, as before.
    env.manager(["backups"])
        .stdout(
            "docs.tar\n\
             docs_20200101_000000.tar\n\
             docs_20250101_020000.tar.gz\n\
             docs_20250102_020000.tar\n\
             old.tar\n",
        )
        .run();
}

#[test]
fn create_help_documents_every_option_and_the_separators() {
    let env = TestEnv::new();
    let mut help = env.manager(["create", "--help"]).stdout_contains(
        "\nSchedule options (the optional fourth field, \"opt,opt=value,...\", each at most once):\n",
    );
    for option in [
        "format=tar|tar.gz|tar.zst",
        "level=N",
        "keep-last=N",
        "keep-hourly=N",
        "keep-daily=N",
        "keep-weekly=N",
        "keep-monthly=N",
        "keep-within=D",
        "min-keep=N",
        "if-changed",
        "catch-up",
        "before=CMD",
        "after=CMD",
        "on-failure=CMD",
        "no-xattrs",
        "exclude=PATTERN",
        "exclude-from=FILE",
        "exclude-caches",
        "exclude-if-present=NAME",
        "one-file-system",
        "exclude-larger-than=SIZE",
    ] {
        help = help.stdout_contains(format!("\n  {option}  "));
    }
    help.stdout_contains(
        "one that holds ',' or ';' goes in double quotes (before=\"curl -d 'a,b' URL\")",
    )
    .run();
    // The short help points at the long one.
    env.manager(["create", "-h"])
        .stdout_contains("fourth field holds options (see --help)")
        .run();
}
