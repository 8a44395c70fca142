//! What a schedule backs up: option values in quotes, excludes and several
//! sources, checked against the names in the archive.

use crate::support::TestEnv;

#[test]
fn a_quoted_hook_holds_commas_and_semicolons() {
    let env = TestEnv::with_tree(&[], &[("src/file", "f\n")]);
    env.create(r#"src;04:00;src;before="printf '%s\n' 'a,b' > hook.out; echo \"c;d\" >> hook.out",catch-up"#);
    env.manager(["run", "src"])
        .stdout_pattern("backups/src.tar: [..] MB/s\n")
        .run();
    assert_eq!(env.read("hook.out"), "a,b\nc;d\n");
}

#[test]
fn an_unterminated_quote_is_refused_naming_the_option() {
    let env = TestEnv::with_tree(&[], &[("src/file", "f\n")]);
    env.create("src;04:00;first");
    let before = env.schedules();
    env.manager(["create", r#"src;04:00;src;catch-up,before="echo a;b"#])
        .status(2)
        .stderr(
            "backup_manager: malformed schedule: src;04:00;src;catch-up,before=\"echo a;b (option \"before\" has an unterminated quote (a value that starts with \" must end with \"))\n",
        )
        .run();
    assert_eq!(env.schedules(), before);
}
