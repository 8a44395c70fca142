//! `encrypt-to` and `encrypt-to-file`: archives written in the age format,
//! decrypted by the stock `age` tool and by backupctl (`restore
//! --identity`), checked by `verify` with and without the key, named and
//! pruned like the schedule's other archives.

use std::fs;

use crate::support::{TestEnv, same_tree};

const ARCHIVE: &str = "backups/enc_20230208_160700.tar.zst.age";

/// A home with a small tree in `src`, an age key (`key.txt`), an ssh-ed25519
/// key (`id`) and a second, unrelated age key (`other.txt`), made by the
/// stock tools.
fn env_with_keys() -> TestEnv {
    let env = TestEnv::with_tree(
        &["src/empty"],
        &[
            ("src/a.txt", "alpha secret\n"),
            ("src/sub/b.txt", &"beta ".repeat(20_000)),
        ],
    )
    .with_clock("2023-02-08T16:07:00");
    env.bash("age-keygen -o key.txt 2>/dev/null && age-keygen -o other.txt 2>/dev/null && ssh-keygen -q -t ed25519 -N '' -C test -f id")
        .run();
    env
}

fn age_public(env: &TestEnv) -> String {
    let out = env
        .bash("age-keygen -y key.txt")
        .stdout_pattern("age1[..]\n")
        .run();
    out.stdout.trim().to_string()
}

#[test]
fn x25519_and_ssh_ed25519_archives_decrypt_with_stock_age_and_with_restore() {
    let env = env_with_keys();
    let ssh = env.read("id.pub").trim().to_string();
    env.create(&format!(
        "src;10:00;enc;format=tar.zst,keep-last=3,encrypt-to={},encrypt-to={ssh}",
        age_public(&env)
    ));
    env.manager(["run", "enc"])
        .stdout_pattern(format!("{ARCHIVE}: 2 files, [..] MiB/s\n"))
        .run();
    let stored = fs::read(env.path(ARCHIVE)).unwrap();
    assert!(stored.starts_with(b"age-encryption.org/v1\n"));
    assert!(!String::from_utf8_lossy(&stored).contains("alpha secret"));
    assert_eq!(
        env.dir_listing("backups"),
        [
            ".enc.lock",
            "enc_20230208_160700.tar.zst.age",
            "enc_20230208_160700.tar.zst.age.json"
        ]
    );
    // The stock tools, with either key.
    for (key, into) in [("key.txt", "by-age"), ("id", "by-ssh")] {
        env.bash(&format!(
            "mkdir {into} && age -d -i {key} {ARCHIVE} | tar --zstd -x -C {into}"
        ))
        .run();
        same_tree(env.path("src"), env.path(into).join("src")).assert_same();
    }
    // The manifest's plaintext hash is that of what `age -d` prints.
    let manifest: serde_json::Value =
        serde_json::from_str(&env.read(&format!("{ARCHIVE}.json"))).unwrap();
    let plain = env
        .bash(&format!("age -d -i key.txt {ARCHIVE} | sha256sum"))
        .stdout_pattern("[..]  -\n")
        .run();
    assert_eq!(
        manifest["plaintext_sha256"].as_str().unwrap(),
        plain.stdout.split_whitespace().next().unwrap()
    );
    assert_eq!(manifest["format"], "tar.zst");
    // backupctl itself, with either key.
    for (key, into) in [("key.txt", "restored"), ("id", "restored-ssh")] {
        env.ctl([
            "restore",
            "enc_20230208_160700.tar.zst.age",
            "--to",
            into,
            "--identity",
            key,
        ])
        .stdout(
            ["", "/a.txt", "/empty", "/sub", "/sub/b.txt"]
                .map(|p| format!("{into}/src{p}\n"))
                .concat(),
        )
        .run();
        same_tree(env.path("src"), env.path(into).join("src")).assert_same();
    }
    // verify: the stored hash without a key; the whole archive with one.
    env.ctl(["verify", "enc"])
        .stdout(format!(
            "OK {ARCHIVE} (encrypted: stored size and SHA-256 checked; --identity KEY reads it through)\n"
        ))
        .run();
    env.ctl(["verify", "enc", "--identity", "id"])
        .stdout(format!("OK {ARCHIVE}\n"))
        .run();
}

#[test]
fn an_ssh_rsa_recipient_is_taken_and_its_key_decrypts() {
    let env = env_with_keys();
    env.bash("ssh-keygen -q -t rsa -b 3072 -N '' -C rsa -f rsa")
        .run();
    let rsa = env.read("rsa.pub").trim().to_string();
    env.create(&format!("src;10:00;enc;encrypt-to={rsa}"));
    let archive = "backups/enc.tar.age";
    env.manager(["run", "enc"])
        .stdout_pattern(format!("{archive}: [..]\n"))
        .run();
    env.bash(&format!("age -d -i rsa {archive} | tar -t | head -1"))
        .stdout("src/\n")
        .run();
    env.ctl(["verify", "enc", "--identity", "rsa"])
        .stdout(format!("OK {archive}\n"))
        .run();
}

#[test]
fn a_wrong_key_is_a_clear_error_and_restores_nothing() {
    let env = env_with_keys();
    env.create(&format!(
        "src;10:00;enc;format=tar.zst,encrypt-to={}",
        age_public(&env)
    ));
    let archive = "backups/enc.tar.zst.age";
    env.manager(["run", "enc"])
        .stdout_pattern(format!("{archive}: [..]\n"))
        .run();
    env.ctl(["restore", "enc.tar.zst.age", "--to", "out", "--identity", "other.txt"])
        .status(1)
        .stderr(format!(
            "backupctl: cannot read archive {}: the key given does not match any recipient of this archive\n",
            env.shown(archive)
        ))
        .run();
    assert!(!env.path("out").exists());
    env.ctl(["restore", "enc.tar.zst.age", "--to", "out"])
        .status(1)
        .stderr(format!(
            "backupctl: cannot read archive {}: the archive is encrypted; give the key with --identity KEY\n",
            env.shown(archive)
        ))
        .run();
    env.ctl(["verify", "enc", "--identity", "other.txt"])
        .status(1)
        .stdout(format!(
            "FAILED {archive}: does not read through: the key given does not match any recipient of this archive\n"
        ))
        .stderr("backupctl: 1 of 1 archives failed verification\n")
        .run();
    env.ctl(["verify", "enc", "--identity", "missing.txt"])
        .status(2)
        .stderr(
            "backupctl: cannot read the identity file missing.txt: No such file or directory (os error 2)\n",
        )
        .run();
}

#[test]
fn a_flipped_byte_in_the_ciphertext_is_caught_by_verify_with_or_without_the_key() {
    let env = env_with_keys();
    env.create(&format!(
        "src;10:00;enc;format=tar.gz,encrypt-to={}",
        age_public(&env)
    ));
    env.manager(["run", "enc"]).stdout_pattern("[..]\n").run();
    let path = env.path("backups/enc.tar.gz.age");
    let mut bytes = fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    env.ctl(["verify", "enc"])
        .status(1)
        .stdout_pattern("FAILED backups/enc.tar.gz.age: SHA-256 is [..], the manifest says [..]\n")
        .stderr("backupctl: 1 of 1 archives failed verification\n")
        .run();
    env.ctl(["verify", "enc", "--identity", "key.txt"])
        .status(1)
        .stdout_pattern(
            "FAILED backups/enc.tar.gz.age: SHA-256 is [..]; does not read through: [..]\n",
        )
        .stderr("backupctl: 1 of 1 archives failed verification\n")
        .run();
}

#[test]
fn bad_recipients_are_refused_at_create_naming_the_value() {
    let env = env_with_keys();
    let cases = [
        (
            "src;10:00;e;encrypt-to=age1nope",
            "option \"encrypt-to=age1nope\" is not an age public key (invalid Bech32 encoding)",
        ),
        (
            "src;10:00;e;encrypt-to=ssh-dss AAAA",
            "option \"encrypt-to=ssh-dss AAAA\" is not a valid ssh-ed25519 or ssh-rsa public key",
        ),
        (
            "src;10:00;e;encrypt-to=hello",
            "option \"encrypt-to=hello\" is not an age public key (age1...) nor an ssh-ed25519 or ssh-rsa public key",
        ),
    ];
    for (line, why) in cases {
        env.manager(["create", line])
            .status(2)
            .stderr(format!(
                "backup_manager: malformed schedule: {line} ({why})\n"
            ))
            .run();
    }
    env.write("team.txt", "# the team\nage1nope\n");
    env.manager(["create", "src;10:00;e;encrypt-to-file=team.txt"])
        .status(2)
        .stderr(format!(
            "backup_manager: recipient \"age1nope\" on line 2 of {} is not an age public key (invalid Bech32 encoding)\n",
            env.shown("team.txt")
        ))
        .run();
    assert_eq!(env.schedules(), "");
}

#[test]
fn encrypted_archives_are_the_schedules_own_for_history_and_retention() {
    let env = env_with_keys();
    let ssh = env.read("id.pub");
    env.write("team.txt", format!("# the team\n\n{ssh}"));
    env.create("src;10:00;enc;keep-last=2,encrypt-to-file=team.txt");
    for (minute, pruned) in [
        ("07", ""),
        ("08", ""),
        ("09", "pruned [..]_160700.tar.age\n"),
    ] {
        env.manager(["run", "enc"])
            .env("BACKUPCTL_FAKE_NOW", format!("2023-02-08T16:{minute}:00"))
            .stdout_pattern(format!(
                "backups/enc_20230208_16{minute}00.tar.age: [..]\n{pruned}"
            ))
            .run();
    }
    env.ctl(["backups", "enc"])
        .stdout_pattern(
            "enc_20230208_160800.tar.age\nenc_20230208_160900.tar.age\n2 archives, [..] in total\n",
        )
        .run();
    assert_eq!(
        env.dir_listing("backups")
            .iter()
            .filter(|n| n.ends_with(".age"))
            .count(),
        2
    );
    env.bash("age -d -i id backups/enc_20230208_160900.tar.age | tar -t | head -1")
        .stdout("src/\n")
        .run();
}

#[test]
fn a_recipients_file_is_never_quoted_unless_its_line_is_a_public_key() {
    // Pointed at a private key by mistake, or swapped for a link to one (or
    // to any secret root can read): the message names the line, never its
    // text, which would reach the log and the ping bodies.
    let env = env_with_keys();
    env.manager(["create", "src;10:00;e;encrypt-to-file=key.txt"])
        .status(2)
        .stderr(format!(
            "backup_manager: line 3 of {} is not an age public key (age1...) nor an ssh-ed25519 or ssh-rsa public key; its text is not shown\n",
            env.shown("key.txt")
        ))
        .run();
    assert_eq!(env.schedules(), "");
    env.write("team.txt", format!("{}\n", age_public(&env)));
    env.create("src;10:00;enc;encrypt-to-file=team.txt");
    std::fs::remove_file(env.path("team.txt")).unwrap();
    env.symlink(env.path("key.txt"), "team.txt");
    env.manager(["run", "enc"])
        .status(1)
        .stderr_pattern("backup_manager: [..]line 3 of [..]team.txt is not an age public key [..]; its text is not shown\n")
        .run();
    let secret = env.read("key.txt");
    let secret = secret.lines().last().unwrap();
    assert!(secret.starts_with("AGE-SECRET-KEY-1"));
    for log in ["logs/backup_service.log", "logs/backup_manager.log"] {
        if env.path(log).exists() {
            assert!(!env.read(log).contains(secret), "{log}");
        }
    }

    // Nor is a device or a pipe read without end.
    std::fs::remove_file(env.path("team.txt")).unwrap();
    env.symlink("/dev/zero", "team.txt");
    env.manager(["run", "enc"])
        .status(1)
        .stderr_pattern(
            "backup_manager: [..]cannot read the recipients file [..]team.txt: not a regular file\n",
        )
        .run();
}

#[test]
fn an_identity_file_others_can_read_is_used_with_a_warning() {
    let env = env_with_keys();
    env.create(&format!("src;10:00;enc;encrypt-to={}", age_public(&env)));
    env.manager(["run", "enc"]).stdout_pattern("[..]\n").run();
    env.ctl(["verify", "enc", "--identity", "key.txt"])
        .stdout("OK backups/enc.tar.age\n")
        .run();
    env.chmod("key.txt", 0o644);
    let warning = "the identity file key.txt can be read by other users (mode 0644); a private key should be mode 0600";
    env.ctl(["verify", "enc", "--identity", "key.txt"])
        .stdout("OK backups/enc.tar.age\n")
        .stderr(format!("backupctl: warning: {warning}\n"))
        .run();
    assert!(env.log_has("backup_manager.log", &format!("Warning: {warning}")));
}
