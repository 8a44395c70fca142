//! The acceptance test: the spec's usage script, through the symlinked names,
//! compared line by line with the spec's expected output (with the clock set to
//! the spec's 08/02/2023 16:07). Where our output differs from the spec's on
//! purpose, `examples/spec_usage.expected` says so by its content:
//! `backups` is sorted by name, `ls` is not a terminal (one name a line, C
//! locale), log lines carry pids and sizes (normalised here).

use crate::support::TestEnv;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/spec_usage.sh");
const EXPECTED: &str = include_str!("../examples/spec_usage.expected");

/// Replaces what legitimately varies from run to run: pids, the home path,
/// and the sizes and durations after `Backup done for … in …`. The service
/// logs SIGTERM when it arrives, which may be before, among or after the
/// backups of the start-up minute: that line is moved to just after the
/// service's start.
fn normalise(output: &str, home: &str) -> String {
    const SIGTERM: &str = "] SIGTERM received: stopping after the backups in progress";
    let mut lines: Vec<&str> = output.lines().collect();
    if let Some(at) = lines.iter().position(|l| l.ends_with(SIGTERM)) {
        let line = lines.remove(at);
        if let Some(start) = lines
            .iter()
            .position(|l| l.contains("] backup_service started (pid ") && l.contains(", home "))
        {
            lines.insert(start + 1, line);
        }
    }
    lines
        .into_iter()
        .map(|line| {
            let line = line.replace(home, "HOME");
            let line = replace_number_after(&line, "pid ");
            match line
                .find(" (")
                .filter(|_| line.contains("] Backup done for "))
            {
                Some(at) => format!("{} (DETAILS)", &line[..at]),
                None => line,
            }
        })
        .map(|line| line + "\n")
        .collect()
}

fn replace_number_after(line: &str, marker: &str) -> String {
    let Some(at) = line.find(marker) else {
        return line.to_string();
    };
    let start = at + marker.len();
    let digits = line[start..].bytes().take_while(u8::is_ascii_digit).count();
    format!("{}PID{}", &line[..start], &line[start + digits..])
}

#[test]
fn the_spec_usage_script_produces_the_spec_output() {
    let env = TestEnv::bare().with_clock("2023-02-08T16:07:00");
    let home = env.home().to_str().unwrap().to_string();
    env.program("bash")
        .arg(SCRIPT)
        .env("SPEC_TIME", "16:07")
        .env("LC_ALL", "C")
        .stdout_normalised(move |out| normalise(out, &home), EXPECTED)
        // The malformed schedule is refused on stderr, in one line.
        .stderr(
            "backup_manager: malformed schedule: test; (expected path;hh:mm;name or path;hh:mm;name;options, found 2 fields)\n",
        )
        .run();
    // The archives hold the spec's directories, readable by GNU tar.
    assert_eq!(
        env.tar_list("backups/backup_test.tar"),
        ["test/", "test/notes.txt"]
    );
    assert_eq!(
        env.tar_list("backups/office_docs.tar"),
        ["test2/", "test2/notes.txt"]
    );
    assert!(!env.path("backup_service.pid").exists());
}

#[test]
fn the_usage_script_run_from_anywhere_makes_its_own_home() {
    // The README's first command: run outside a prepared directory, the
    // script makes a fresh home under TMPDIR and links the names there.
    let env = TestEnv::bare().with_clock("2023-02-08T16:07:00");
    env.tree(&["elsewhere", "tmp"], &[]);
    let out = env
        .program("bash")
        .arg(SCRIPT)
        .current_dir(env.path("elsewhere"))
        .env("BACKUPCTL", crate::support::BIN)
        .env("TMPDIR", env.path("tmp"))
        .env("SPEC_TIME", "16:07")
        .env("LC_ALL", "C")
        .stdout_contains("--> Create 3 new schedules\n")
        .stderr_pattern(
            "spec_usage.sh: running in a fresh home, [..]/tmp/backupctl-demo.[..]\n\
             backup_manager: malformed schedule: test; (expected path;hh:mm;name or path;hh:mm;name;options, found 2 fields)\n",
        )
        .run();
    let homes = env.dir_listing("tmp");
    assert_eq!(homes.len(), 1, "{homes:?}");
    let home = env.path(&format!("tmp/{}", homes[0]));
    assert_eq!(
        normalise(&out.stdout, home.to_str().unwrap()),
        EXPECTED,
        "the script's output from its own home"
    );
    assert!(home.join("backups/backup_test.tar").is_file());
    assert_eq!(env.dir_listing("elsewhere"), Vec::<String>::new());
}
