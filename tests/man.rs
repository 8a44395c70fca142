//! The man pages: backupctl(1) holds the schedule format, every schedule
//! option, the exit codes, the environment and the signals; every page it
//! refers to exists; groff reads each without a warning when installed.

use std::fs;
use std::process::Command;

use backupctl::exit_codes;
use backupctl::store::options::OPTION_HELP;

use crate::support::TestEnv;

/// Roff text as a reader sees it, for the parts these tests look at.
fn plain(roff: &str) -> String {
    roff.replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fR", "")
        .replace("\\fI", "")
}

#[test]
fn the_main_page_documents_schedules_options_exit_codes_and_more() {
    let env = TestEnv::bare();
    let roff = env
        .ctl(["man"])
        .stdout_contains(".TH backupctl 1")
        .run()
        .stdout;
    let page = plain(&roff);
    for needle in [
        "path;time;name[;options]",
        ".SH SCHEDULES",
        ".SH FILES",
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        ".SH SIGNALS",
        ".SH EXAMPLES",
        "backup_schedules.txt",
        "BACKUPCTL_HOME",
        "BACKUPCTL_METRICS_FILE",
        "SIGHUP",
        "mkdir -p /usr/local/share/man/man1",
    ] {
        assert!(
            page.contains(needle),
            "{needle:?} missing from backupctl(1)"
        );
    }
    for (syntax, what) in OPTION_HELP {
        assert!(
            page.contains(&format!(".TP\n{syntax}\n")),
            "option {syntax}"
        );
        assert!(page.contains(what), "option {syntax}: {what}");
    }
    for (code, meaning) in exit_codes::TABLE {
        assert!(
            page.contains(&format!(".TP\n{code}\n{meaning}\n")),
            "exit {code}"
        );
    }
    // The other names print the same page: it is backupctl's.
    env.manager(["man"]).stdout(roff).run();
}

#[test]
fn every_page_referred_to_exists() {
    let env = TestEnv::bare();
    fs::create_dir(env.path("man1")).unwrap();
    let listed = env
        .ctl(["man", "--dir", "man1"])
        .stdout_contains("man1/backupctl.1\n")
        .run()
        .stdout;
    let files = env.dir_listing("man1");
    assert_eq!(listed.lines().count(), files.len());
    assert!(files.contains(&"backupctl.1".to_string()));
    assert!(files.contains(&"backupctl-create.1".to_string()));
    let mut referred = Vec::new();
    for file in &files {
        let page = plain(&env.read(&format!("man1/{file}")));
        assert!(page.contains(".TH "), "{file}");
        // Each `backupctl-NAME(1)` or `backupctl(1)` the page names.
        for (at, _) in page.match_indices("(1)") {
            let name: String = page[..at]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if name.starts_with("backupctl") {
                referred.push(format!("{name}.1"));
            }
        }
        if let Ok(groff) = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(env.path(&format!("man1/{file}")))
            .output()
        {
            assert!(
                groff.status.success() && groff.stderr.is_empty(),
                "groff on {file}: {}",
                String::from_utf8_lossy(&groff.stderr)
            );
        }
    }
    assert!(referred.len() > files.len(), "{referred:?}");
    for page in referred {
        assert!(files.contains(&page), "{page} is referred to but missing");
    }
    // One command's page, alone, is the file's.
    env.ctl(["man", "create"])
        .stdout(env.read("man1/backupctl-create.1"))
        .run();
}

#[test]
fn man_refuses_an_unknown_command_and_a_missing_directory() {
    let env = TestEnv::bare();
    env.ctl(["man", "restor"])
        .status(2)
        .stderr_pattern("backupctl: no man page for \"restor\"; the commands are start, [..], man (see --help)\n")
        .run();
    env.ctl(["man", "--dir", "nowhere"])
        .status(1)
        .stderr(
            "backupctl: cannot write man page nowhere/backupctl.1: No such file or directory (os error 2)\n",
        )
        .run();
    assert!(!env.path("nowhere").exists());
}

#[test]
fn man_dir_replaces_a_planted_symlink_and_never_writes_through_it() {
    // Run as root into a directory another user can write: a link planted
    // at a page's name is replaced by the page, its target left alone.
    let env = TestEnv::bare();
    fs::create_dir(env.path("man1")).unwrap();
    env.write("victim", "untouched");
    env.symlink(env.path("victim"), "man1/backupctl.1");
    env.ctl(["man", "--dir", "man1"])
        .stdout_contains("man1/backupctl.1\n")
        .run();
    assert_eq!(env.read("victim"), "untouched");
    let page = fs::symlink_metadata(env.path("man1/backupctl.1")).unwrap();
    assert!(page.is_file(), "the symlink was replaced by the page");
    assert!(env.read("man1/backupctl.1").contains(".TH "));
}
