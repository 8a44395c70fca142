//! What `create` stores, what `check` reports, when hooks run, how bad input
//! is quoted, and what the archive keeps of devices: the "trust" review.

use std::fs;

use crate::support::TestEnv;

/// `create` with `line` is refused with exit 2, naming `field`, and leaves
/// the schedule file byte for byte as it was.
#[track_caller]
fn refused_unchanged(env: &TestEnv, line: &str, field: &str) {
    let before = fs::read(env.path("backup_schedules.txt")).unwrap_or_default();
    let run = env.manager(&["create", line]);
    run.code(2).stderr_has(field);
    assert_eq!(run.stderr.lines().count(), 1, "{run:#?}");
    assert!(
        !run.stderr.contains('\u{1b}') && !run.stderr.contains('\r'),
        "{run:#?}"
    );
    let after = fs::read(env.path("backup_schedules.txt")).unwrap_or_default();
    assert_eq!(after, before, "{line:?} changed the schedule file");
}

#[test]
fn control_characters_in_any_field_are_refused() {
    let env = TestEnv::new();
    env.manager(&["create", "src;10:00;first"]).success();
    for (line, field) in [
        ("src;\n0 0 * * *;00:00;catch-up", "time"),
        ("src\n;10:00;n", "path"),
        ("src;10:00;n;catch-up\r", "catch-up\\r"),
        (
            "src;10:00;n;before=true\nrm -rf /",
            "before=true\\nrm -rf /",
        ),
        ("src;10:00;n;after=\u{1b}[31mx", "after=\\u{1b}[31mx"),
        ("src\u{7f};10:00;n", "path"),
        ("src;10:00\r;n", "time"),
        ("src;0 0 * * *\u{85};n", "time"),
        ("sr\u{202e}c;10:00;n", "path"),
        ("src;0 0 * * * ;n", "time"),
        (" src;10:00;n", "path"),
    ] {
        refused_unchanged(&env, line, field);
    }
    assert_eq!(env.read("backup_schedules.txt"), "src;10:00;first\n");
    env.manager(&["list"])
        .success()
        .stdout_is("0: src;10:00;first\n");
}
