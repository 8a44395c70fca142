//! What `create` stores, what `check` reports, when hooks run, how bad input
//! is quoted, and what the archive keeps of devices: the "trust" review.

use std::fs;

use nix::sys::signal::Signal;

use crate::support::{TestEnv, eventually, stopped};

/// `create` with `line` is refused with exit 2 and exactly `stderr` (one
/// line, bad characters escaped), and leaves the schedule file as it was.
#[track_caller]
fn refused_unchanged(env: &TestEnv, line: &str, stderr: &str) {
    let before = env.schedules();
    env.manager(["create", line]).status(2).stderr(stderr).run();
    assert_eq!(
        env.schedules(),
        before,
        "{line:?} changed the schedule file"
    );
}

#[test]
fn control_characters_in_any_field_are_refused() {
    let env = TestEnv::with_tree(&["src"], &[]);
    env.create("src;10:00;first");
    for (line, stderr) in [
        (
            "src;\n0 0 * * *;00:00;catch-up",
            r"backup_manager: malformed schedule: src;\n0 0 * * *;00:00;catch-up (the time contains a control character (\n))",
        ),
        (
            "src\n;10:00;n",
            r"backup_manager: malformed schedule: src\n;10:00;n (the path contains a control character (\n))",
        ),
        (
            "src;10:00;n;catch-up\r",
            r#"backup_manager: malformed schedule: src;10:00;n;catch-up\r (option "catch-up\r" contains a control character (\r))"#,
        ),
        (
            "src;10:00;n;before=true\nrm -rf /",
            r#"backup_manager: malformed schedule: src;10:00;n;before=true\nrm -rf / (option "before=true\nrm -rf /" contains a control character (\n))"#,
        ),
        (
            "src;10:00;n;after=\u{1b}[31mx",
            r#"backup_manager: malformed schedule: src;10:00;n;after=\u{1b}[31mx (option "after=\u{1b}[31mx" contains a control character (\u{1b}))"#,
        ),
        (
            "src\u{7f};10:00;n",
            r"backup_manager: malformed schedule: src\u{7f};10:00;n (the path contains a control character (\u{7f}))",
        ),
        (
            "src;10:00\r;n",
            r"backup_manager: malformed schedule: src;10:00\r;n (the time contains a control character (\r))",
        ),
        (
            "src;0 0 * * *\u{85};n",
            r"backup_manager: malformed schedule: src;0 0 * * *\u{85};n (the time contains a control character (\u{85}))",
        ),
        (
            "sr\u{202e}c;10:00;n",
            r"backup_manager: malformed schedule: sr\u{202e}c;10:00;n (the path contains a control character (\u{202e}))",
        ),
        (
            "src;0 0 * * * ;n",
            "backup_manager: malformed schedule: src;0 0 * * * ;n (the time starts or ends with whitespace)",
        ),
        (
            " src;10:00;n",
            "backup_manager: malformed schedule:  src;10:00;n (the path starts or ends with whitespace)",
        ),
    ] {
        refused_unchanged(&env, line, &format!("{stderr}\n"));
    }
    assert_eq!(env.schedules(), "src;10:00;first\n");
    env.manager(["list"]).stdout("0: src;10:00;first\n").run();
}

#[test]
fn a_huge_line_gives_a_short_error_and_changes_nothing() {
    let env = TestEnv::with_tree(&["src"], &[]);
    env.create("src;10:00;first");
    let before = env.schedules();
    let huge = "y".repeat(100_000);
    let y = |n: usize| "y".repeat(n);
    // Each message shows the start of the line and of the bad field, and
    // counts what it leaves out.
    for (line, reason) in [
        (
            huge.clone(),
            format!(
                "{}… (99940 more characters) (expected path;hh:mm;name or path;hh:mm;name;options, found 1 fields)",
                y(60)
            ),
        ),
        (
            format!("src;{huge};n"),
            format!(
                "src;{}… (99946 more characters) (time \"{}… (99968 more characters)\" is not hh:mm (00:00 to 23:59), a cron expression or @hourly, @daily, @weekly, @monthly)",
                y(56),
                y(32)
            ),
        ),
        (
            format!("src;10:00;{huge}"),
            format!(
                "src;10:00;{}… (99950 more characters) (backup name \"{}… (99968 more characters)\" is longer than 200 bytes)",
                y(50),
                y(32)
            ),
        ),
        (
            format!("src;0 0 * * {huge};n"),
            format!(
                "src;0 0 * * {}… (99954 more characters) (cron expression \"0 0 * * {}… (99976 more characters)\" is not valid: Pattern contains illegal characters: Cro… (100050 more characters))",
                y(48),
                y(24)
            ),
        ),
        (
            format!("src;10:00;n;keep-within={huge}"),
            format!(
                "src;10:00;n;keep-within={}… (99964 more characters) (option \"keep-within={}… (99980 more characters)\" is not a duration such as 90m, 36h, 7d or 4w)",
                y(36),
                y(20)
            ),
        ),
        (
            format!("src;10:00;n;{huge}"),
            format!(
                "src;10:00;n;{}… (99952 more characters) (option \"{}… (99968 more characters)\" is not a known option)",
                y(48),
                y(32)
            ),
        ),
        (
            format!("src;10:00;n;before={huge}\n"),
            format!(
                "src;10:00;n;before={}… (99960 more characters) (option \"before={}… (99976 more characters)\" contains a control character (\\n))",
                y(41),
                y(25)
            ),
        ),
        (
            format!("{huge}\u{1b}[31m;10:00;n"),
            format!(
                "{}… (99953 more characters) (the path contains a control character (\\u{{1b}}))",
                y(60)
            ),
        ),
        (
            format!("src;10:00;first;format=tar.zst,keep-last=1{huge}"),
            format!(
                "src;10:00;first;format=tar.zst,keep-last=1{}… (99982 more characters) (option \"keep-last=1{}… (99979 more characters)\" must be a whole number of at least 1)",
                y(18),
                y(21)
            ),
        ),
    ] {
        let stderr = format!("backup_manager: malformed schedule: {reason}\n");
        assert!(stderr.len() < 300, "{} bytes: {stderr}", stderr.len());
        env.manager(["create", &line])
            .status(2)
            .stderr(stderr)
            .run();
        assert_eq!(env.schedules(), before);
    }
    let shown = format!("{}… (99880 more characters)", y(120));
    for (command, stderr) in [
        (
            "delete",
            format!("backup_manager: no schedule with index or name \"{shown}\"\n"),
        ),
        (
            "run",
            format!("backup_manager: no schedule with index or name \"{shown}\"\n"),
        ),
        (
            "prune",
            format!("backup_manager: no schedule with index or name \"{shown}\"\n"),
        ),
    ] {
        assert!(stderr.len() < 300, "{} bytes: {stderr}", stderr.len());
        env.manager([command, huge.as_str()])
            .status(2)
            .stderr(stderr)
            .run();
    }
    let log = env.log_messages("backup_manager.log");
    let refused = log
        .iter()
        .filter(|l| l.contains("malformed schedule"))
        .count();
    assert_eq!(refused, 9, "{log:?}");
    assert!(log.iter().all(|l| l.len() < 400), "{log:?}");
}

#[test]
fn list_shows_hand_edited_control_characters_escaped() {
    let env = TestEnv::new();
    env.write(
        "backup_schedules.txt",
        b"src;10:00;ok\nsrc;10:00;\x1b[31mred\r\nbad\x1b[2J\x07;x\n",
    );
    env.manager(["list"])
        .stdout(r"0: src;10:00;ok
1: src;10:00;\u{1b}[31mred
2: bad\u{1b}[2J\u{7};x
")
        .stderr(r#"backup_manager: warning: schedule 1 is not valid: backup name "\u{1b}[31mred" contains a control character
backup_manager: warning: schedule 2 is not valid: expected path;hh:mm;name or path;hh:mm;name;options, found 2 fields
"#)
        .run();
    // A CR that is not at the end of the line is shown too.
    env.write("backup_schedules.txt", b"src;10:00;a\rb\n");
    env.manager(["list"])
        .stdout("0: src;10:00;a\\rb\n")
        .stderr(r#"backup_manager: warning: schedule 0 is not valid: backup name "a\rb" contains a control character
"#)
        .run();
    // --json keeps the line as stored, JSON-escaped.
    env.manager(["list", "--json"])
        .stdout(
            r#"[
  {
    "index": 0,
    "line": "src;10:00;a\rb",
    "valid": false,
    "source": null,
    "time": null,
    "name": null,
    "options": null,
    "error": "backup name \"a\\rb\" contains a control character"
  }
]
"#,
        )
        .run();
}

#[test]
fn check_reports_invalid_lines_an_empty_home_and_partial_runs() {
    let env =
        TestEnv::with_tree(&["src"], &[("src/file", "data")]).with_clock("2030-01-02T10:07:00");
    // No schedules at all: the wrong directory, most likely.
    env.ctl(["check"])
        .status(1)
        .stdout(format!(
            "no schedules: the home {} has none in backup_schedules.txt\n",
            env.home().display()
        ))
        .run();

    env.create("src;@daily;daily");
    env.ctl(["run", "daily"])
        .stdout_pattern("backups/daily.tar: 1 file, 4 B in, archive [..] MiB/s\n")
        .run();
    env.ctl(["check"])
        .stdout("ok: 1 schedule backed up in time\n")
        .run();
    let state = env.read(".backupctl-state.json");
    assert!(state.contains("\"skipped\": 0"), "{state}");

    // A hand-edited line that never runs.
    let mut schedules = env.schedules();
    schedules.push_str("src;25:00;broken\n");
    env.write("backup_schedules.txt", schedules);
    env.ctl(["check"]).status(1).stdout(
        "schedule 1 is not valid and never runs: time \"25:00\" is not hh:mm (00:00 to 23:59), a cron expression or @hourly, @daily, @weekly, @monthly\n",
    ).run();
    env.write("backup_schedules.txt", "src;@daily;daily\n");

    // A partial last run, however recent, is a problem.
    let partial = state
        .replacen("\"state\": \"ok\"", "\"state\": \"partial\"", 1)
        .replacen("\"skipped\": 0", "\"skipped\": 7", 1);
    assert_ne!(partial, state);
    env.write(".backupctl-state.json", partial);
    let problem = "daily: last run 02/01/2030 10:07 was partial, 7 files skipped, listed in the manifest of backups/daily.tar";
    env.ctl(["check"])
        .status(1)
        .stdout(format!("{problem}\n"))
        .run();
    let log = env.log_messages("backup_manager.log");
    assert_eq!(
        log.last(),
        Some(&format!("Warning: Check failed: {problem}")),
        "{log:?}"
    );
}

#[test]
fn device_numbers_are_stored_in_the_tar_header() {
    let env = TestEnv::with_tree(&["src"], &[("src/file", "data")]);
    // /dev/null's numbers, 1,3, on any Linux. A probe: making a device may
    // not be permitted here.
    let made = std::process::Command::new("mknod")
        .arg(env.path("src/null"))
        .args(["c", "1", "3"])
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("note: mknod is not permitted here; device numbers not tested");
        return;
    }
    env.create("src;10:00;dev");
    env.ctl(["run", "dev"])
        .stdout_pattern("backups/dev.tar: 1 file, 4 B in, archive [..] MiB/s\n")
        .run();
    env.program("tar")
        .args(["-tvf", "backups/dev.tar"])
        .stdout_pattern("d[..] src/\n-[..] src/file\nc[..] 1,3 [..] src/null\n")
        .run();
    let mut archive = tar::Archive::new(fs::File::open(env.path("backups/dev.tar")).unwrap());
    let entry = archive
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().ends_with("null"))
        .expect("src/null in the archive");
    assert_eq!(entry.header().entry_type(), tar::EntryType::Char);
    assert_eq!(entry.header().device_major().unwrap(), Some(1));
    assert_eq!(entry.header().device_minor().unwrap(), Some(3));
}

const HOOKS: &str =
    "src;10:00;h;before=touch ran-before,after=touch ran-after,on-failure=touch ran-failure";

/// `run h` refuses every hook for `reason`, fails without backing up, and
/// says so once on stderr and once per refused hook in the log; the state
/// records why, and `check` prints exactly `check` (which names the hooks
/// that will not run).
#[track_caller]
fn hooks_refused(env: &TestEnv, reason: &str, check: &str) {
    let log_before = env.log_messages("backup_service.log").len();
    env.ctl(["run", "h"])
        .status(1)
        .stderr(format!(
            "backupctl: backup of h skipped: before hook of h refused: {reason}\n"
        ))
        .run();
    for hook in ["before", "after", "failure"] {
        assert!(!env.path(&format!("ran-{hook}")).exists(), "{hook} ran");
    }
    assert!(!env.path("backups/h.tar").exists(), "the backup ran");
    let log = env.log_messages("backup_service.log");
    assert_eq!(
        log[log_before..],
        [
            format!("Error: backup of h skipped: before hook of h refused: {reason}"),
            format!("Error: on-failure hook of h refused: {reason}"),
        ],
        "before and on-failure refused, nothing else: {log:?}"
    );
    let state: serde_json::Value =
        serde_json::from_str(&env.read(".backupctl-state.json")).unwrap();
    let last_run = &state["schedules"]["h"]["last_run"];
    assert_eq!(last_run["state"], "failed", "{state:#}");
    assert_eq!(
        last_run["error"],
        format!("backup of h skipped: before hook of h refused: {reason}"),
        "{state:#}"
    );
    env.ctl(["check"]).status(1).stdout(check).run();
}

#[test]
fn hooks_run_only_from_a_schedule_file_nobody_else_can_write() {
    let env = TestEnv::with_tree(&["src"], &[("src/file", "data")]);
    env.create(HOOKS);
    env.create("src;11:00;plain");
    let file = env.shown("backup_schedules.txt");
    let not_run = |why: &str, others: &str| {
        format!("h: never backed up\nh: its hooks will not run: {file} is {why}\n{others}")
    };

    for (mode, why) in [
        (0o666, "writable by everyone (mode 0666)"),
        (0o664, "writable by its group (mode 0664)"),
    ] {
        env.chmod("backup_schedules.txt", mode);
        hooks_refused(
            &env,
            &format!("{file} is {why}"),
            &not_run(why, "plain: never backed up\n"),
        );
    }
    // A schedule without hooks still backs up from such a file.
    env.ctl(["run", "plain"])
        .stdout_pattern("backups/plain.tar: 1 file, 4 B in, archive [..] MiB/s\n")
        .run();
    assert!(env.path("backups/plain.tar").exists());
    // An edit keeps the mode (still 0664): it does not make the file trusted.
    let why = "writable by its group (mode 0664)";
    env.create("src;12:00;third");
    hooks_refused(
        &env,
        &format!("{file} is {why}"),
        &not_run(why, "third: never backed up\n"),
    );
    env.chmod("backup_schedules.txt", 0o644);

    let home = env.home().display().to_string();
    env.chmod(".", 0o777);
    let reason = format!(
        "{home} is writable by everyone (mode 0777), without the sticky bit: another user can replace the schedule file"
    );
    hooks_refused(
        &env,
        &reason,
        &format!(
            "h: never backed up\nh: its hooks will not run: {reason}\nthird: never backed up\n"
        ),
    );
    env.chmod(".", 0o1777);
    env.ctl(["run", "h"])
        .stdout_pattern("backups/h.tar: 1 file, 4 B in, archive [..] MiB/s\n")
        .run();
    assert!(env.path("ran-before").exists() && env.path("ran-after").exists());
    assert!(!env.path("ran-failure").exists());
    env.chmod(".", 0o700);
    for hook in ["before", "after"] {
        fs::remove_file(env.path(&format!("ran-{hook}"))).unwrap();
    }

    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(env.path("backup_schedules.txt"), Some(65534), Some(65534))
            .unwrap();
        fs::remove_file(env.path("backups/h.tar")).unwrap();
        let reason = format!("{file} is owned by uid 65534, not root");
        // h's last success is in the state: only its hooks are a problem.
        hooks_refused(
            &env,
            &reason,
            &format!("h: its hooks will not run: {reason}\nthird: never backed up\n"),
        );
        // root's edit of another user's file keeps its owner.
        env.manager(["delete", "2"]).run();
        assert_eq!(env.schedules(), format!("{HOOKS}\nsrc;11:00;plain\n"));
        let meta = fs::metadata(env.path("backup_schedules.txt")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (65534, 0o644));
    } else {
        eprintln!("note: not root; the owner checks are not tested");
    }
}

#[test]
fn absurd_log_rotation_counts_are_refused() {
    let env = TestEnv::new();
    env.ctl(["--log-keep", "99999999", "list"])
        .status(2)
        .stderr("backupctl: invalid value '99999999' for '--log-keep <N>': 99999999 is not in 0..=1000 (see --help)\n")
        .run();
    env.ctl(["--log-keep", "1000", "list"]).run();
    env.ctl(["list"])
        .env("BACKUPCTL_LOG_KEEP", "4294967295")
        .status(2)
        .stderr("backupctl: invalid value '4294967295' for '--log-keep <N>': 4294967295 is not in 0..=1000 (see --help)\n")
        .run();
}

/// Peak resident memory (VmHWM) of process `pid`, in KiB.
fn peak_rss_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

#[test]
fn the_highest_zstd_level_stays_within_the_memory_budget() {
    // 3 MiB of text that compresses, but not to nothing: two zstd jobs (a
    // few seconds at level 22 even on a loaded machine).
    let mut seed: u64 = 1;
    let mut text = String::new();
    while text.len() < 3 << 20 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        text.push_str(&format!("{:x} ", seed >> 40));
    }
    let env = TestEnv::with_tree(&["src"], &[("src/data.txt", &text)]);
    env.create("src;10:00;z;format=tar.zst,level=22");
    // Stopped once the archive is compressed and in place, the run's high
    // water mark holds everything compressing it took.
    let run = env
        .ctl(["run", "z"])
        .env("BACKUPCTL_PAUSE_AT", "archive-renamed")
        .stdout_pattern("backups/z.tar.zst: 1 file, [..] MiB/s\n")
        .spawn();
    eventually("the run to stop once its archive is in place", || {
        stopped(run.pid())
    });
    let peak_kib = peak_rss_kib(run.pid());
    run.signal_and_wait(Signal::SIGCONT);
    assert!(
        peak_kib < 64 * 1024,
        "level 22 peaked at {} MiB",
        peak_kib / 1024
    );
    assert_eq!(env.tar_list("backups/z.tar.zst"), ["src/", "src/data.txt"]);
}
