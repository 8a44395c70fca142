//! `run` at a terminal and under Ctrl-C: the progress bar's percentage, ETA,
//! units and last phase (read through a pseudo-terminal made by `script`), and a SIGINT
//! that stops a zstd -19 run within a second, removes its partial archive
//! and leaves the earlier one intact.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{BIN, TestEnv, eventually};

/// `len` bytes that no compressor shrinks (xorshift), fast to make.
fn incompressible(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn the_progress_bar_shows_a_percentage_an_eta_and_iec_units() {
    let env = TestEnv::with_tree(&["src"], &[]);
    env.write("src/data", incompressible(2 << 20));
    env.create("src;23:00;z;format=tar.zst,level=19");
    // `script` gives the run a terminal for stderr; what it drew comes back
    // on script's stdout, frames separated by carriage returns.
    let out = env
        .program("script")
        .args(["-qec", &format!("{BIN} run z"), "/dev/null"])
        .stdout_contains("backups/z.tar.zst: 1 file, 2.0 MiB in")
        .run();
    let frames: Vec<&str> = out
        .stdout
        .split(['\r', '\n'])
        .filter(|f| f.contains('%'))
        .collect();
    assert!(!frames.is_empty(), "no bar drawn: {:?}", out.stdout);
    for frame in &frames {
        assert!(
            frame.contains("/2.0 MiB") && frame.contains("/s ETA ") && !frame.contains("MB"),
            "{frame:?}"
        );
    }
    // The total came from the walk: the first run has no earlier one to go by.
    assert!(frames.iter().any(|f| f.contains("% [")), "{frames:?}");
    // Everything is read long before zstd -19 is done with it: the bar says
    // so instead of sitting at 100% with an ETA of 0 s.
    assert!(
        out.stdout
            .contains("all 2.0 MiB read; finishing the archive ("),
        "{:?}",
        out.stdout
    );
}

#[test]
fn ctrl_c_stops_a_zstd_19_run_within_a_second_and_keeps_the_last_archive() {
    let env = TestEnv::with_tree(&["src"], &[("src/small.txt", "small")]);
    env.create("src;23:00;big;format=tar.zst,level=19");
    env.manager(["run", "big"])
        .stdout_pattern("backups/big.tar.zst: [..]\n")
        .run();
    let earlier = std::fs::read(env.path("backups/big.tar.zst")).unwrap();
    env.write("src/data", incompressible(48 << 20));

    let mut run = env
        .manager(["run", "big"])
        .status(130)
        .stderr_pattern(
            "backup_manager: interrupted: stopping the backup of big\n\
             backup_manager: interrupted by SIGINT: backup failed for src (schedule big): stopped before [..]/backups/big.tar.zst was complete; the partial file was removed\n",
        )
        .spawn();
    // Mid-run: compressed output has reached the partial archive.
    eventually("compressed output in the partial archive", || {
        env.partial_archives("big")
            .first()
            .and_then(|p| std::fs::metadata(env.path(p)).ok())
            .is_some_and(|m| m.len() > 0)
    });
    let sent = Instant::now();
    run.signal(Signal::SIGINT);
    while run.is_running() {
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "still running a second after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    run.wait();
    assert_eq!(env.partial_archives("big"), Vec::<String>::new());
    assert_eq!(
        std::fs::read(env.path("backups/big.tar.zst")).unwrap(),
        earlier
    );
    env.ctl(["verify", "big"])
        .stdout("OK backups/big.tar.zst\n")
        .run();
    assert!(env.log_has(
        "backup_service.log",
        "Interrupted: stopping the backup of big"
    ));
}
