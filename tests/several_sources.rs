//! `also=PATH`: one schedule backs up several directories, each under its
//! own top-level name, with the schedule's excludes applied to each; names
//! that would collide are refused at `create`, a missing extra source fails
//! the run as a missing main source does, and `if-changed` watches them all.

use std::fs;

use crate::support::TestEnv;

#[test]
fn each_source_is_stored_under_its_own_name_with_the_excludes_applied() {
    let env = TestEnv::with_tree(
        &["web", "etc", "var/log/app"],
        &[
            ("web/index.html", "<html>\n"),
            ("web/cache.tmp", "junk\n"),
            ("etc/app.conf", "key=value\n"),
            ("etc/old.tmp", "junk\n"),
            ("var/log/app/a.log", "started\n"),
        ],
    );
    let logs = env.shown("var/log/app");
    env.create(&format!(
        "web;04:00;site;also=etc,also={logs},exclude=*.tmp"
    ));
    env.manager(["run", "site"])
        .stdout_pattern("backups/site.tar: 3 files, [..] MiB/s, 2 excluded\n")
        .run();
    let mut names = env.tar_list("backups/site.tar");
    names.sort();
    assert_eq!(
        names,
        [
            "app/",
            "app/a.log",
            "etc/",
            "etc/app.conf",
            "web/",
            "web/index.html"
        ]
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&env.read("backups/site.tar.json")).unwrap();
    assert_eq!(manifest["source"], "web");
    assert_eq!(manifest["also"], serde_json::json!(["etc", logs]));
    assert_eq!(manifest["excluded"], 2);
    env.manager(["restore", "site", "--to", "out"])
        .stdout("out/web\nout/web/index.html\nout/etc\nout/etc/app.conf\nout/app\nout/app/a.log\n")
        .run();
    assert_eq!(env.read("out/app/a.log"), "started\n");
}

#[test]
fn colliding_names_are_refused_at_create() {
    let env = TestEnv::with_tree(&["a/www", "b/www"], &[]);
    env.manager(["create", "a/www;04:00;x;also=b/www"])
        .status(2)
        .stderr(
            "backup_manager: malformed schedule: a/www;04:00;x;also=b/www (sources \"a/www\" and \"b/www\" would both be stored as www/ in the archive; back up a parent directory instead)\n",
        )
        .run();
    env.manager(["create", "a/www;04:00;x;also=a/www/"])
        .status(2)
        .stderr_contains("would both be stored as www/")
        .run();
    assert_eq!(env.schedules(), "");
}

#[test]
fn a_missing_extra_source_fails_the_run_and_if_changed_watches_every_source() {
    let env = TestEnv::with_tree(&["main", "extra"], &[("main/a", "a\n"), ("extra/b", "b\n")]);
    env.create("main;04:00;both;also=extra,if-changed");
    env.manager(["run", "both"])
        .stdout_pattern("backups/both.tar: 2 files, [..] MiB/s\n")
        .run();
    env.manager(["run", "both"])
        .stdout_pattern("main: unchanged since backups/both.tar; no archive written\n")
        .run();
    env.write("extra/b", "changed in the extra source\n");
    env.manager(["run", "both"])
        .stdout_pattern("backups/both.tar: 2 files, [..] MiB/s\n")
        .run();
    fs::remove_dir_all(env.path("extra")).unwrap();
    env.manager(["run", "both"])
        .status(1)
        .stderr(format!(
            "backup_manager: backup failed for main (schedule both): source {} does not exist\n",
            env.shown("extra")
        ))
        .run();
    // The archive of the last good run is intact.
    assert!(
        env.tar_list("backups/both.tar")
            .contains(&"extra/b".to_string())
    );
}
