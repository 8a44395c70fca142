//! `ping=URL`: healthchecks.io-style pings around each run, received by a
//! server the test runs on 127.0.0.1; a ping that fails never fails the
//! backup nor holds it up for long.

use std::time::{Duration, Instant};

use crate::support::http::{HttpServer, closed_port_url};
use crate::support::{Service, TestEnv, foreground_stderr};

#[test]
fn a_run_pings_start_then_success_with_its_log_lines() {
    let server = HttpServer::start();
    let env = TestEnv::with_tree(&[], &[("docs/a.txt", "alpha")]);
    env.create(&format!("docs;23:00;docs;ping={}", server.url("uuid")));
    env.manager(["run", "docs"])
        .stdout_pattern("backups/docs.tar: [..]\n")
        .run();
    let requests = server.requests();
    assert_eq!(server.paths(), ["/uuid/start", "/uuid"], "{requests:#?}");
    assert!(requests.iter().all(|r| r.method == "POST"));
    assert_eq!(requests[0].body, "");
    // The body is the run's log lines, as the log has them.
    let log = env.read("logs/backup_service.log");
    let done = log
        .lines()
        .find(|l| l.contains("Backup done for docs"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        requests[1].body.lines().any(|l| l == done),
        "{:?} lacks {done:?}",
        requests[1].body
    );
}

#[test]
fn a_failed_or_partial_run_pings_its_exit_code() {
    let server = HttpServer::start();
    let env = TestEnv::with_tree(&["docs"], &[("docs/a.txt", "alpha"), ("docs/secret", "s")]);
    env.manager([
        "create",
        &format!("gone;23:00;gone;ping={}", server.url("g/")),
    ])
    .stderr(env.missing_source_warning("backup_manager", "gone"))
    .run();
    env.manager(["run", "gone"])
        .status(1)
        .stderr_pattern("backup_manager: [..]\n")
        .run();
    assert_eq!(server.paths(), ["/g/start", "/g/1"]);
    let failure = &server.requests()[1].body;
    assert!(
        failure.contains("Error: ") && failure.contains("gone"),
        "{failure:?}"
    );

    // A file it cannot read: a partial archive, exit code 3, pinged as such.
    env.chmod("docs/secret", 0o000);
    env.create(&format!("docs;23:00;docs;ping={}", server.url("d")));
    env.chmod("", 0o755); // the binary's name in the home, for `nobody`
    env.unprivileged()
        .args(["run", "docs"])
        .status(3)
        .stdout_pattern("backups/docs.tar: [..]\n")
        .stderr_pattern("backupctl: warning: skipped [..]secret: Permission denied (os error 13)\n")
        .run();
    assert_eq!(server.paths()[2..], ["/d/start", "/d/3"]);
    assert!(
        server.requests()[3]
            .body
            .contains("Backup partial for docs")
    );
}

#[test]
fn the_service_pings_for_the_runs_it_starts() {
    let server = HttpServer::start();
    let env = TestEnv::with_tree(&[], &[("docs/a.txt", "alpha")]).with_clock("2024-05-06T09:30:00");
    env.create(&format!("docs;09:30;docs;ping={}", server.url("svc")));
    let service = Service::foreground(
        &env,
        env.service::<&str>([]).stderr_pattern(foreground_stderr(
            &env,
            "06/05/2024",
            &["Backup done for docs in backups/docs.tar ([..])"],
        )),
    );
    service.wait_for_log("Backup done for docs");
    crate::support::eventually("the end ping", || server.paths().len() == 2);
    assert_eq!(server.paths(), ["/svc/start", "/svc"]);
    service.stop();
}

#[test]
fn a_ping_that_fails_is_a_warning_and_never_holds_the_backup_long() {
    for (what, url, server) in [
        ("nothing listening", closed_port_url("x"), None),
        (
            "a server that never answers",
            String::new(),
            Some(HttpServer::silent()),
        ),
    ] {
        let url = server.as_ref().map_or(url, |s| s.url("x"));
        let env = TestEnv::with_tree(&[], &[("docs/a.txt", "alpha")]);
        env.create(&format!("docs;23:00;docs;ping={url}"));
        let began = Instant::now();
        env.manager(["run", "docs"])
            .stdout_pattern("backups/docs.tar: [..]\n")
            .run();
        let took = began.elapsed();
        // The start ping runs beside the backup; both pings together hold
        // the run's end for about 3 s at most (at least 1 s for the end one).
        assert!(took < Duration::from_millis(5500), "{what}: took {took:?}");
        assert!(env.path("backups/docs.tar").exists());
        let warnings: Vec<String> = env
            .log_messages("backup_service.log")
            .into_iter()
            .filter(|l| l.starts_with("Warning: ping of docs failed: "))
            .collect();
        assert_eq!(warnings.len(), 2, "{what}: {warnings:#?}");
        assert!(
            warnings[0].contains(&format!("{url}/start")),
            "{warnings:?}"
        );
        if let Some(server) = &server {
            assert_eq!(server.paths(), ["/x/start", "/x"], "{what}");
        }
    }
}

#[test]
fn create_refuses_a_ping_that_is_not_an_http_url() {
    let env = TestEnv::with_tree(&["docs"], &[]);
    for (value, why) in [
        ("ftp://host/x", "must be an http:// or https:// URL"),
        ("hc-ping.com/x", "must be an http:// or https:// URL"),
        ("https:///x", "has no host"),
        ("https://a b/x", "must not contain spaces"),
        ("", "needs a value"),
    ] {
        env.manager(["create", &format!("docs;23:00;docs;ping={value}")])
            .status(2)
            .stderr(format!(
                "backup_manager: malformed schedule: docs;23:00;docs;ping={value} (option \"ping={value}\" {why})\n"
            ))
            .run();
    }
    assert_eq!(env.schedules(), "");
    env.create("docs;23:00;docs;ping=HTTPS://hc-ping.com/0f1e");
}

#[test]
fn an_untrusted_schedule_file_sends_no_ping() {
    // The run's log would leave the machine for a URL another user chose.
    let server = HttpServer::start();
    let env = TestEnv::with_tree(&[], &[("docs/a.txt", "alpha")]);
    env.create(&format!("docs;23:00;docs;ping={}", server.url("u")));
    env.chmod("backup_schedules.txt", 0o664);
    env.manager(["run", "docs"])
        .stdout_pattern("backups/docs.tar: [..]\n")
        .run();
    assert_eq!(server.paths(), Vec::<String>::new());
    let refused = format!(
        "Warning: ping of docs refused: {} is writable by its group (mode 0664)",
        env.shown("backup_schedules.txt")
    );
    assert!(
        env.log_messages("backup_service.log").contains(&refused),
        "{:#?}",
        env.log_messages("backup_service.log")
    );
}

#[test]
fn a_ping_url_with_a_password_or_a_token_keeps_them_out_of_the_log() {
    // healthchecks.io's slug URLs take their options as a query
    // (`?create=1`): the suffixes go on the path, before it.
    let server = HttpServer::start();
    let env = TestEnv::with_tree(&[], &[("docs/a.txt", "alpha")]);
    let url = server.url("k/slug?create=1&token=T0KEN");
    let url = url.replace("http://", "http://user:s3cret@");
    env.create(&format!("docs;23:00;docs;ping={url}"));
    env.manager(["run", "docs"])
        .stdout_pattern("backups/docs.tar: [..]\n")
        .run();
    assert_eq!(
        server.paths(),
        [
            "/k/slug/start?create=1&token=T0KEN",
            "/k/slug?create=1&token=T0KEN"
        ]
    );

    // A ping that fails names the URL in the log without its secrets.
    let closed = closed_port_url("x?token=T0KEN").replace("http://", "http://user:s3cret@");
    env.create(&format!("docs;23:00;gone;ping={closed}"));
    env.manager(["run", "gone"])
        .stdout_pattern("backups/gone.tar: [..]\n")
        .run();
    env.manager(["delete", "gone"]).run();
    let log = env.read("logs/backup_service.log") + &env.read("logs/backup_manager.log");
    assert!(!log.contains("s3cret") && !log.contains("T0KEN"), "{log}");
    let shown = closed
        .replace("user:s3cret@", "***@")
        .replace("?token=T0KEN", "");
    assert!(
        env.log_has(
            "backup_service.log",
            &format!("failed: {shown}/start?***: ")
        ),
        "{log}"
    );
    assert!(env.log_has("backup_manager.log", "ping=http://***@127.0.0.1:"));
}
