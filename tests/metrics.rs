//! The Prometheus text file: written by `run --metrics-file` and by the
//! service at start and after each run, parsed strictly (and by promtool
//! when installed), replaced atomically, never through a planted symlink.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::support::prometheus::{self, Metrics};
use crate::support::{Service, TestEnv, eventually, foreground_stderr};

const CLOCK: &str = "2024-05-06T09:30:00";

/// The clock's start as Unix seconds, in the tests' own time zone (the
/// children's too).
fn clock_epoch() -> f64 {
    chrono::NaiveDateTime::parse_from_str(CLOCK, "%Y-%m-%dT%H:%M:%S")
        .unwrap()
        .and_local_timezone(chrono::Local)
        .unwrap()
        .timestamp() as f64
}

#[track_caller]
fn read_metrics(env: &TestEnv, rel: &str) -> Metrics {
    let text = env.read(rel);
    prometheus::promtool_check(&text);
    prometheus::parse(&text)
}

fn size(env: &TestEnv, rel: &str) -> f64 {
    fs::metadata(env.path(rel)).unwrap().len() as f64
}

#[test]
fn run_writes_metrics_that_say_what_each_schedule_did() {
    let env = TestEnv::with_tree(
        &["docs/sub"],
        &[("docs/a.txt", "alpha"), ("docs/sub/b", "b")],
    )
    .with_clock(CLOCK);
    env.create("docs;09:30;docs;keep-last=5");
    // A name the label value must escape, whose source is missing.
    let odd = r#"we"ird\name"#;
    env.manager(["create", &format!("gone;09:30;{odd}")])
        .stderr(env.missing_source_warning("backup_manager", "gone"))
        .run();
    for stamp in ["093000", "093001"] {
        env.manager(["run", "docs", "--metrics-file", "m.prom"])
            .stdout_pattern(format!("backups/docs_20240506_{stamp}.tar: [..]\n"))
            .run();
    }
    env.manager(["run", odd, "--metrics-file", "m.prom"])
        .status(1)
        .stderr_pattern("backup_manager: [..]\n")
        .run();

    let m = read_metrics(&env, "m.prom");
    let (first, newest) = (
        "backups/docs_20240506_093000.tar",
        "backups/docs_20240506_093001.tar",
    );
    assert_eq!(m.of("backupctl_archives", "docs"), 2.0);
    assert_eq!(
        m.of("backupctl_archives_size_bytes", "docs"),
        size(&env, first) + size(&env, newest)
    );
    assert_eq!(
        m.of("backupctl_last_archive_size_bytes", "docs"),
        size(&env, newest)
    );
    assert_eq!(
        m.of("backupctl_last_archive_files", "docs"),
        env.tar_list(newest).len() as f64
    );
    let success = m.of("backupctl_last_success_timestamp_seconds", "docs");
    assert!(
        (clock_epoch()..clock_epoch() + 60.0).contains(&success),
        "{success} vs {}",
        clock_epoch()
    );
    assert!(m.of("backupctl_last_run_duration_seconds", "docs") >= 0.0);
    assert_eq!(m.of("backupctl_check_ok", "docs"), 1.0);
    let state = |schedule: &str, state: &str| {
        m.get(
            "backupctl_last_run_state",
            &[("schedule", schedule), ("state", state)],
        )
    };
    assert_eq!(
        ["ok", "partial", "failed"].map(|s| state("docs", s)),
        [Some(1.0), Some(0.0), Some(0.0)]
    );
    // The failed schedule: its state, no archive, check fails, and no
    // success time rather than a misleading 0.
    assert_eq!(
        ["ok", "partial", "failed"].map(|s| state(odd, s)),
        [Some(0.0), Some(0.0), Some(1.0)]
    );
    assert_eq!(m.of("backupctl_archives", odd), 0.0);
    assert_eq!(m.of("backupctl_check_ok", odd), 0.0);
    assert_eq!(
        m.get(
            "backupctl_last_success_timestamp_seconds",
            &[("schedule", odd)]
        ),
        None
    );
    assert_eq!(m.types["backupctl_check_ok"], "gauge");
    assert!(
        m.get("backupctl_metrics_written_timestamp_seconds", &[])
            .is_some()
    );
    // A collector running as another user reads it.
    let mode = fs::metadata(env.path("m.prom"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    // No temporary left beside it.
    assert!(
        !env.dir_listing(".")
            .iter()
            .any(|n| n.starts_with(".m.prom")),
        "{:?}",
        env.dir_listing(".")
    );
}

#[test]
fn the_service_writes_metrics_at_start_and_after_each_run() {
    let env = TestEnv::with_tree(&[], &[("docs/a.txt", "alpha")]).with_clock(CLOCK);
    env.create("docs;09:30;docs");
    env.create("docs;23:00;later");
    let service = Service::foreground(
        &env,
        env.service(["--metrics-file", "m.prom"])
            .stderr_pattern(foreground_stderr(
                &env,
                "06/05/2024",
                &["Backup done for docs in backups/docs.tar ([..])"],
            )),
    );
    // Written before the pidfile: there as soon as the service runs.
    assert!(env.path("m.prom").exists(), "no metrics at start");
    service.wait_for_log("Backup done for docs");
    eventually("the metrics after the run", || {
        prometheus::parse(&env.read("m.prom")).get("backupctl_archives", &[("schedule", "docs")])
            == Some(1.0)
    });
    let m = read_metrics(&env, "m.prom");
    assert_eq!(
        m.of("backupctl_last_archive_size_bytes", "docs"),
        size(&env, "backups/docs.tar")
    );
    assert_eq!(m.of("backupctl_archives", "later"), 0.0);
    assert_eq!(m.of("backupctl_check_ok", "later"), 0.0);
    service.stop();
}

#[test]
fn start_passes_a_metrics_path_taken_from_where_it_was_typed() {
    let env = TestEnv::with_tree(&["elsewhere", "docs"], &[]);
    env.create("docs;23:00;later");
    let home = env.home().display().to_string();
    env.manager(["--home", &home, "start", "--metrics-file", "m.prom"])
        .current_dir(env.path("elsewhere"))
        .run();
    // The daemon works in its home; the path was relative to `elsewhere`.
    eventually("the metrics file", || env.path("elsewhere/m.prom").exists());
    let m = read_metrics(&env, "elsewhere/m.prom");
    assert_eq!(m.of("backupctl_archives", "later"), 0.0);
    assert!(!env.path("m.prom").exists());
    env.manager(["stop"]).run();
}

#[test]
fn metrics_never_go_through_a_symlink_nor_fail_a_backup() {
    let env = TestEnv::with_tree(&[], &[("docs/a.txt", "alpha"), ("victim", "keep me")]);
    env.create("docs;23:00;docs");
    env.symlink(env.path("victim"), "m.prom");
    env.manager(["run", "docs", "--metrics-file", "m.prom"])
        .stdout_pattern("backups/docs.tar: [..]\n")
        .run();
    assert_eq!(env.read("victim"), "keep me");
    let planted = fs::symlink_metadata(env.path("m.prom")).unwrap();
    assert!(planted.is_file(), "the symlink was replaced by the file");
    read_metrics(&env, "m.prom");

    // A path that cannot be written: `run` still backs up and says so;
    // the service refuses to start, naming the path.
    let missing = env.shown("missing/m.prom");
    env.manager(["run", "docs", "--metrics-file", "missing/m.prom"])
        .stdout_pattern("backups/docs.tar: [..]\n")
        .stderr(format!(
            "backup_manager: warning: cannot write metrics file {missing}: No such file or directory (os error 2)\n"
        ))
        .run();
    assert!(env.log_has(
        "backup_service.log",
        &format!("cannot write metrics file {missing}")
    ));
    env.service(["--metrics-file", "missing/m.prom"])
        .status(1)
        .stderr(format!(
            "backup_service: cannot write metrics file {missing}: No such file or directory (os error 2)\n"
        ))
        .run();
    assert!(!env.path("backup_service.pid").exists());
}
