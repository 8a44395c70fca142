//! `copy-to=REMOTE:PATH` against real servers on loopback: an OpenSSH server
//! through rclone's SFTP backend and `rclone serve webdav`. Upload, remote
//! retention (only the schedule's own files, by name), `backups --remote`,
//! `verify --remote`, restore from the copy, and a server stopped in the
//! middle of an upload.

use std::fs;

use serde_json::Value;

use crate::support::remote::{
    RemoteServer, any_command_line_holds, descendants, listening_ports, rclone_daemons,
};
use crate::support::{Service, Test, TestEnv, eventually, foreground_stderr, same_tree};

/// `test` with the variables that make rclone reach `server`.
fn through(test: Test, server: &RemoteServer) -> Test {
    server
        .env()
        .into_iter()
        .fold(test, |test, (key, value)| test.env(&key, value))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

fn env_with_tree() -> TestEnv {
    TestEnv::with_tree(
        &["src/empty"],
        &[
            ("src/a.txt", "alpha\n"),
            ("src/sub/b.txt", &"beta ".repeat(20_000)),
        ],
    )
    .with_clock("2023-02-08T16:07:00")
}

/// Runs the schedule `bk` at 16:MM through `server`, expecting `stdout`.
fn run_at(env: &TestEnv, server: &RemoteServer, minute: &str, stdout: String) {
    through(env.manager(["run", "bk"]), server)
        .env("BACKUPCTL_FAKE_NOW", format!("2023-02-08T16:{minute}:00"))
        .stdout_pattern(stdout)
        .run();
}

/// Three runs with keep-last=2: uploads, remote pruning of exactly what was
/// pruned locally, the records, listing, verification (the copy streamed
/// back: neither backend keeps SHA-256 in rclone 1.60), a damaged copy, and
/// a restore from the copy once the local archive is gone.
fn upload_prune_verify_restore(server: &RemoteServer) {
    let env = env_with_tree();
    let target = server.target("bk");
    // Not the schedule's: another schedule's archive, one whose name only
    // starts like it, strangers, names that would be options to rclone, and
    // names that only look like the schedule's files or partial uploads.
    // None of them may be touched.
    let strangers = [
        "--delete-excluded",
        "-v",
        ".bk_20230208_160700.tar.x.partial",
        "bk_1_20230208_160700.tar",
        "bk_20230208_160700.tar.json.bak",
        "notes.txt",
        "other_20230208_160700.tar",
    ];
    fs::create_dir(server.path("bk")).unwrap();
    for name in strangers {
        fs::write(server.path(&format!("bk/{name}")), "not yours\n").unwrap();
    }
    env.create(&format!("src;10:00;bk;keep-last=2,copy-to={target}"));
    let name = |minute: &str| format!("bk_20230208_16{minute}00.tar");
    run_at(
        &env,
        server,
        "07",
        format!(
            "backups/{}: [..]\ncopied to {target}/{}\n",
            name("07"),
            name("07")
        ),
    );
    run_at(
        &env,
        server,
        "08",
        format!(
            "backups/{}: [..]\ncopied to {target}/{}\n",
            name("08"),
            name("08")
        ),
    );
    run_at(
        &env,
        server,
        "09",
        format!(
            "backups/{n9}: [..]\npruned backups/{n7}\ncopied to {target}/{n9}\npruned {target}/{n7}\n",
            n9 = name("09"),
            n7 = name("07")
        ),
    );
    let mut expected: Vec<String> = strangers.iter().map(|s| s.to_string()).collect();
    for minute in ["08", "09"] {
        expected.push(name(minute));
        expected.push(format!("{}.json", name(minute)));
    }
    expected.sort();
    assert_eq!(server.listing("bk"), expected);
    for stranger in strangers {
        assert_eq!(
            fs::read_to_string(server.path(&format!("bk/{stranger}"))).unwrap(),
            "not yours\n"
        );
    }
    // The copies are the archives, byte for byte, and the manifests on both
    // sides record where the copy is.
    let location = format!("{target}/{}", name("09"));
    assert_eq!(
        fs::read(server.path(&format!("bk/{}", name("09")))).unwrap(),
        fs::read(env.path(&format!("backups/{}", name("09")))).unwrap()
    );
    let local = json(&env.read(&format!("backups/{}.json", name("09"))));
    let remote =
        json(&fs::read_to_string(server.path(&format!("bk/{}.json", name("09")))).unwrap());
    assert_eq!(local["remote_copy"]["location"], location.as_str());
    assert_eq!(remote, local);
    let state = json(&env.read(".backupctl-state.json"));
    assert_eq!(
        state["schedules"]["bk"]["last_run"]["remote_copy"]["location"],
        location.as_str()
    );
    through(env.ctl(["backups", "--remote", "bk"]), server)
        .stdout_pattern(format!(
            "{target}/{}\n{target}/{}\n2 copies, [..] in total\n",
            name("08"),
            name("09")
        ))
        .run();
    through(env.ctl(["verify", "--remote", "bk"]), server)
        .stdout(format!(
            "OK {target}/{}\nOK {target}/{}\n",
            name("08"),
            name("09")
        ))
        .run();
    // A damaged copy is caught.
    let copy = server.path(&format!("bk/{}", name("08")));
    let mut bytes = fs::read(&copy).unwrap();
    bytes[700] ^= 0x20;
    fs::write(&copy, &bytes).unwrap();
    through(env.ctl(["verify", "--remote", "bk"]), server)
        .status(1)
        .stdout_pattern(format!(
            "FAILED {target}/{}: SHA-256 is [..], the manifest says [..]\nOK {target}/{}\n",
            name("08"),
            name("09")
        ))
        .stderr("backupctl: 1 of 2 copies failed verification\n")
        .run();
    // The local archive is lost: restore streams the copy.
    fs::remove_file(env.path(&format!("backups/{}", name("09")))).unwrap();
    through(env.ctl(["restore", &name("09"), "--to", "out"]), server)
        .stdout(
            ["", "/a.txt", "/empty", "/sub", "/sub/b.txt"]
                .map(|p| format!("out/src{p}\n"))
                .concat(),
        )
        .run();
    same_tree(env.path("src"), env.path("out/src")).assert_same();
    // Each command's rclone rcd ended with it.
    assert!(server.rclone_daemons().is_empty());
}

#[test]
fn sftp_copies_are_uploaded_pruned_verified_and_restored() {
    upload_prune_verify_restore(&RemoteServer::sftp());
}

#[test]
fn webdav_copies_are_uploaded_pruned_verified_and_restored() {
    upload_prune_verify_restore(&RemoteServer::webdav());
}

#[test]
fn encrypted_copies_with_remote_keep_outlive_local_retention() {
    let server = RemoteServer::webdav();
    let env = env_with_tree();
    env.bash("age-keygen -o key.txt 2>/dev/null").run();
    let key = env
        .bash("age-keygen -y key.txt")
        .stdout_pattern("age1[..]\n")
        .run()
        .stdout;
    let target = server.target("enc");
    env.create(&format!(
        "src;10:00;bk;format=tar.zst,keep-last=1,remote-keep=2,encrypt-to={},copy-to={target}",
        key.trim()
    ));
    let name = |minute: &str| format!("bk_20230208_16{minute}00.tar.zst.age");
    run_at(
        &env,
        &server,
        "07",
        format!(
            "backups/{n}: [..]\ncopied to {target}/{n}\n",
            n = name("07")
        ),
    );
    run_at(
        &env,
        &server,
        "08",
        format!(
            "backups/{n}: [..]\npruned backups/{o}\ncopied to {target}/{n}\n",
            n = name("08"),
            o = name("07")
        ),
    );
    run_at(
        &env,
        &server,
        "09",
        format!(
            "backups/{n}: [..]\npruned backups/{o}\ncopied to {target}/{n}\npruned {target}/{old}\n",
            n = name("09"),
            o = name("08"),
            old = name("07")
        ),
    );
    assert_eq!(
        server.listing("enc"),
        [
            name("08"),
            format!("{}.json", name("08")),
            name("09"),
            format!("{}.json", name("09"))
        ]
    );
    // The copy kept only remotely decrypts with the stock tool.
    env.bash(&format!(
        "age -d -i key.txt {} | zstd -dc | tar -t | head -1",
        server.path(&format!("enc/{}", name("08"))).display()
    ))
    .stdout("src/\n")
    .run();
    through(
        env.ctl(["verify", "--remote", "bk", "--identity", "key.txt"]),
        &server,
    )
    .stdout(format!(
        "OK {target}/{}\nOK {target}/{}\n",
        name("08"),
        name("09")
    ))
    .run();
    through(
        env.ctl([
            "restore",
            &name("08"),
            "--to",
            "out",
            "--identity",
            "key.txt",
        ]),
        &server,
    )
    .stdout_pattern("out/src\n[..]\n[..]\n[..]\n[..]\n")
    .run();
    same_tree(env.path("src"), env.path("out/src")).assert_same();
}

#[test]
fn a_server_stopped_mid_upload_ends_copy_failed_and_the_next_run_catches_up() {
    let mut server = RemoteServer::sftp();
    let env = env_with_tree();
    // Incompressible, and uploaded at 1 MiB/s: a few seconds of upload.
    env.bash("head -c 6M /dev/urandom > src/random.bin").run();
    let target = server.target("bk");
    env.create(&format!(
        "src;10:00;bk;keep-last=5,copy-to={target},on-failure=\"echo $BACKUPCTL_STATE > failure-hook\""
    ));
    let first = "bk_20230208_160700.tar";
    let run = through(env.manager(["run", "bk"]), &server)
        .env("RCLONE_BWLIMIT", "1M")
        .env("BACKUPCTL_COPY_RETRY_FOR", "2")
        .status(4)
        .stdout_pattern(format!("backups/{first}: [..]\n"))
        .stderr_pattern(format!(
            "backup_manager: copy to {target} failed ([..] attempts); the archive stays in backups/ and the next run uploads what is missing: [..]\n"
        ))
        .spawn();
    eventually("the upload to start", || {
        server.listing("bk").iter().any(|n| {
            n.starts_with(&format!(".{first}."))
                && fs::metadata(server.path(&format!("bk/{n}"))).is_ok_and(|m| m.len() > 0)
        })
    });
    server.stop();
    run.wait();
    // Nothing under a final name on the remote; the archive is intact here.
    assert!(
        server.listing("bk").iter().all(|n| n.starts_with('.')),
        "{:?}",
        server.listing("bk")
    );
    env.ctl(["verify", "bk"])
        .stdout(format!("OK backups/{first}\n"))
        .run();
    let state = json(&env.read(".backupctl-state.json"));
    assert_eq!(state["schedules"]["bk"]["last_run"]["state"], "copy-failed");
    assert_eq!(env.read("failure-hook"), "copy-failed\n");
    env.ctl(["check"])
        .status(1)
        .stdout_pattern(
            "bk: last run [..] could not copy its archive to the remote: copy to [..]\n",
        )
        .run();
    // The server is back: the next run uploads the missed archive first,
    // then its own, and clears the partial upload.
    server.start();
    let second = "bk_20230208_160800.tar";
    through(env.manager(["run", "bk"]), &server)
        .env("BACKUPCTL_FAKE_NOW", "2023-02-08T16:08:00")
        .stdout_pattern(format!(
            "backups/{second}: [..]\ncopied to {target}/{first}\ncopied to {target}/{second}\n"
        ))
        .run();
    assert_eq!(
        server.listing("bk"),
        [
            first.to_string(),
            format!("{first}.json"),
            second.to_string(),
            format!("{second}.json")
        ]
    );
    assert_eq!(
        fs::read(server.path(&format!("bk/{first}"))).unwrap(),
        fs::read(env.path(&format!("backups/{first}"))).unwrap()
    );
    env.ctl(["check"]).stdout_pattern("ok: [..]\n").run();
}

#[test]
fn copy_to_without_rclone_is_refused_at_create() {
    let env = env_with_tree();
    env.manager(["create", "src;10:00;bk;copy-to=off:backups"])
        .env("PATH", "/nonexistent")
        .status(2)
        .stderr(
            "backup_manager: rclone is not installed (no rclone on PATH); copy-to needs it (Debian package rclone)\n",
        )
        .run();
    assert_eq!(env.schedules(), "");
    env.manager(["create", "src;10:00;bk;copy-to=nocolon"])
        .status(2)
        .stderr(
            "backup_manager: malformed schedule: src;10:00;bk;copy-to=nocolon (option \"copy-to=nocolon\" must be REMOTE:PATH, an rclone remote and a directory on it)\n",
        )
        .run();
}

#[test]
fn ctrl_c_ends_the_retries_of_a_copy_at_once() {
    let mut server = RemoteServer::webdav();
    let env = env_with_tree();
    let target = server.target("bk");
    env.create(&format!("src;10:00;bk;copy-to={target}"));
    server.stop();
    let run = through(env.manager(["run", "bk"]), &server)
        .env("BACKUPCTL_COPY_RETRY_FOR", "600")
        .status(4)
        .stdout_pattern("backups/bk.tar: [..]\n")
        .stderr_pattern(format!(
            "backup_manager: interrupted: stopping the backup of bk\n\
             backup_manager: copy to {target} failed ([..] attempts); the archive stays in backups/ and the next run uploads what is missing: [..]\n"
        ))
        .spawn();
    env.wait_for_log(
        "backup_service.log",
        "copy of bk to dav:bk failed, retrying in",
    );
    // Within the ten seconds `wait` allows, far less than the retry bound.
    run.signal_and_wait(nix::sys::signal::Signal::SIGINT);
    env.ctl(["verify", "bk"])
        .stdout("OK backups/bk.tar\n")
        .run();
}

#[test]
fn an_unchanged_tree_still_lets_the_remote_catch_up() {
    let mut server = RemoteServer::webdav();
    let env = env_with_tree();
    let target = server.target("bk");
    env.create(&format!("src;10:00;bk;if-changed,copy-to={target}"));
    server.stop();
    through(env.manager(["run", "bk"]), &server)
        .env("BACKUPCTL_COPY_RETRY_FOR", "1")
        .status(4)
        .stdout_pattern("backups/bk.tar: [..]\n")
        .stderr_pattern("backup_manager: copy to dav:bk failed [..]\n")
        .run();
    server.start();
    through(env.manager(["run", "bk"]), &server)
        .stdout(format!(
            "src: unchanged since backups/bk.tar; no archive written\ncopied to {target}/bk.tar\n"
        ))
        .run();
    assert_eq!(server.listing("bk"), ["bk.tar", "bk.tar.json"]);
    let state = json(&env.read(".backupctl-state.json"));
    assert_eq!(state["schedules"]["bk"]["last_run"]["state"], "ok");
    assert_eq!(
        state["schedules"]["bk"]["last_run"]["remote_copy"]["location"],
        format!("{target}/bk.tar").as_str()
    );
    // Unchanged and copied: nothing to do, nothing printed but the skip.
    through(env.manager(["run", "bk"]), &server)
        .stdout("src: unchanged since backups/bk.tar; no archive written\n")
        .run();
}

#[test]
fn a_wedged_server_holds_no_run_once_it_is_interrupted() {
    // A server that takes the connection and never answers: rclone would
    // wait for its own five-minute timeout. Ctrl-C (the service's second
    // signal likewise) kills it at once, and the run ends.
    let server = crate::support::http::HttpServer::silent();
    let env = env_with_tree();
    let url = server.url("");
    let wedged = |test: Test| {
        test.env("RCLONE_CONFIG_WEDGED_TYPE", "webdav")
            .env("RCLONE_CONFIG_WEDGED_URL", &url)
            .env("RCLONE_CONFIG_WEDGED_VENDOR", "other")
            .env(
                "RCLONE_CONFIG",
                env.path("rclone.conf").display().to_string(),
            )
    };
    env.create("src;10:00;bk;copy-to=wedged:bk");
    let run = wedged(env.manager(["run", "bk"]))
        // What the caller's environment says of rclone's remote control is
        // not what backupctl's rcd obeys.
        .env("RCLONE_RC_NO_AUTH", "true")
        .env("RCLONE_RC_PASS", "the-callers-password")
        .env("RCLONE_RC_ADDR", "0.0.0.0:5572")
        // At debug level, rclone would log its password.
        .env("RCLONE_VERBOSE", "2")
        .status(4)
        .stdout_pattern("backups/bk.tar: [..]\n")
        .stderr_pattern(
            "backup_manager: interrupted: stopping the backup of bk\n\
             backup_manager: copy to wedged:bk failed (1 attempts); the archive stays in backups/ and the next run uploads what is missing: rclone list \"wedged:bk\" stopped: the run is being stopped\n",
        )
        .spawn();
    eventually("rclone's request", || !server.requests().is_empty());
    let rcd = the_rclone_daemon(&env.path("rclone.conf"), run.pid());
    // Within the ten seconds `wait` allows.
    run.signal_and_wait(nix::sys::signal::Signal::SIGINT);
    // The abort killed the rcd at work and reaped it.
    assert!(
        !std::path::Path::new(&format!("/proc/{}", rcd.pid)).exists(),
        "rclone rcd (pid {}) outlived the run",
        rcd.pid
    );
    assert!(rclone_daemons(&env.path("rclone.conf")).is_empty());
    let password = rcd.var("RCLONE_RC_PASS").unwrap_or_default();
    for log in env.paths_below("logs") {
        assert!(!env.read(&log).contains(password), "{log}");
    }
    env.ctl(["verify", "bk"])
        .stdout("OK backups/bk.tar\n")
        .run();
}

/// The one `rclone rcd` of the run `run_pid` (rclone's configuration
/// `rclone_config`), checked while it works: a child of the run, listening
/// on 127.0.0.1 only, refusing a request without its password or with
/// another, its password random and in its environment only, never on a
/// command line (what `ps` shows every user).
fn the_rclone_daemon(
    rclone_config: &std::path::Path,
    run_pid: i32,
) -> crate::support::remote::RcloneDaemon {
    let mut daemons = rclone_daemons(rclone_config);
    assert_eq!(daemons.len(), 1, "one rclone rcd");
    let rcd = daemons.remove(0);
    assert!(descendants(run_pid as u32).contains(&rcd.pid));
    let password = rcd.var("RCLONE_RC_PASS").unwrap_or_default().to_string();
    assert!(
        password.len() == 64 && password.chars().all(|c| c.is_ascii_hexdigit()),
        "{password:?}"
    );
    assert!(!any_command_line_holds(&password));
    assert_eq!(rcd.var("RCLONE_RC_NO_AUTH"), None);
    assert_eq!(rcd.var("RCLONE_RC_ADDR"), None);
    assert_eq!(rcd.var("RCLONE_VERBOSE"), None);
    assert!(
        rcd.args
            .windows(3)
            .any(|w| w == ["rcd", "--rc-addr", "127.0.0.1:0"]),
        "{:?}",
        rcd.args
    );
    let ports = listening_ports(rcd.pid);
    assert!(matches!(ports[..], [(_, true)]), "{ports:?}");
    for authorization in ["", "Authorization: Basic YmFja3VwY3RsOndyb25n\r\n"] {
        let answer = http_post(ports[0].0, "/operations/list", authorization);
        assert!(answer.starts_with("HTTP/1.1 401 "), "{answer}");
    }
    rcd
}

/// The status line and headers of a POST of `{}` to 127.0.0.1:`port`.
fn http_post(port: u16, path: &str, headers: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}Content-Length: 2\r\n\r\n{{}}"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn an_untrusted_schedule_file_copies_nothing() {
    // Like hooks and pings: a copy writes and deletes on a remote with the
    // service user's credentials, and carries what that user can read.
    let server = RemoteServer::webdav();
    let env = env_with_tree();
    let target = server.target("bk");
    env.create(&format!("src;10:00;bk;copy-to={target},remote-keep=1"));
    env.chmod("backup_schedules.txt", 0o664);
    let refused = format!(
        "{} is writable by its group (mode 0664)",
        env.shown("backup_schedules.txt")
    );
    through(env.manager(["run", "bk"]), &server)
        .status(4)
        .stdout_pattern("backups/bk.tar: [..]\n")
        .stderr(format!(
            "backup_manager: copy to {target} failed (0 attempts); the archive stays in backups/ and the next run uploads what is missing: copy-to refused: {refused}\n"
        ))
        .run();
    assert_eq!(server.listing("bk"), Vec::<String>::new());
    assert!(
        env.log_has(
            "backup_service.log",
            &format!("Warning: copy to {target} refused: {refused}")
        ),
        "{}",
        env.read("logs/backup_service.log")
    );
    env.ctl(["check"])
        .status(1)
        .stdout(format!(
            "bk: last run 08/02/2023 16:07 could not copy its archive to the remote: copy to {target} failed (0 attempts); the archive stays in backups/ and the next run uploads what is missing: copy-to refused: {refused}\n\
             bk: its copy to {target} will not be made: {refused}\n"
        ))
        .run();
    env.ctl(["verify", "bk"])
        .stdout("OK backups/bk.tar\n")
        .run();
}

#[test]
fn the_service_keeps_no_rclone_once_its_copy_is_done() {
    // The service outlives its runs: the rcd of a copy ends with the copy,
    // not with the process.
    let server = RemoteServer::webdav();
    let env = env_with_tree();
    let target = server.target("bk");
    env.create(&format!("src;16:07;bk;copy-to={target}"));
    let service = Service::foreground(
        &env,
        through(env.service::<&str>([]), &server).stderr_pattern(foreground_stderr(
            &env,
            "08/02/2023",
            &[
                "Copied bk.tar to dav:bk/bk.tar ([..])",
                "Backup done for src in backups/bk.tar ([..])",
            ],
        )),
    );
    // The run is recorded once its copy is done.
    eventually("the run's record", || {
        let state: Value =
            serde_json::from_str(&env.read(".backupctl-state.json")).unwrap_or_default();
        state["schedules"]["bk"]["last_run"]["remote_copy"]["location"] == "dav:bk/bk.tar"
    });
    assert_eq!(server.listing("bk"), ["bk.tar", "bk.tar.json"]);
    assert!(server.rclone_daemons().is_empty());
    service.stop();
}
