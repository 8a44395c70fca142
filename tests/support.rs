//! `TestEnv`: a temporary home with the `backup_manager` and `backup_service`
//! symlinks, running the real binary and returning what a user would see.
#![allow(dead_code)] // helpers serve many test modules; not all use every one

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_backupctl");

/// What a command printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn success(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success, got {self:#?}");
        self
    }

    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(self.code, expected, "wrong exit code: {self:#?}");
        self
    }

    #[track_caller]
    pub fn stdout_is(&self, expected: &str) -> &Self {
        assert_eq!(
            self.stdout, expected,
            "stdout differs; stderr: {}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}: {self:#?}"
        );
        self
    }

    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// A temporary home directory. Any daemon started in it is stopped on drop.
pub struct TestEnv {
    dir: tempfile::TempDir,
    fake_now: Option<String>,
}

impl TestEnv {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("backupctl-test")
            .tempdir()
            .expect("temp dir");
        for name in ["backup_manager", "backup_service"] {
            symlink(BIN, dir.path().join(name)).expect("symlink");
        }
        Self {
            dir,
            fake_now: None,
        }
    }

    /// Starts every command's clock at this local time (`2023-02-08T16:07:00`).
    pub fn with_clock(mut self, local: &str) -> Self {
        self.fake_now = Some(local.to_string());
        self
    }

    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A command for one of the names in the home (`backup_manager`,
    /// `backup_service`) or `backupctl` itself, run from the home.
    pub fn command(&self, program: &str) -> Command {
        let exe = match program {
            "backupctl" => PathBuf::from(BIN),
            name => self.path(name),
        };
        self.prepare(Command::new(exe))
    }

    /// `bash SCRIPT`, run from the home like the other commands.
    pub fn bash(&self, script: &str) -> Command {
        let mut cmd = self.prepare(Command::new("bash"));
        cmd.arg(script);
        cmd
    }

    /// The home as working directory, no stdin, no inherited home or clock.
    fn prepare(&self, mut cmd: Command) -> Command {
        cmd.current_dir(self.home())
            .env_remove("BACKUPCTL_HOME")
            .env_remove("BACKUPCTL_FAKE_NOW")
            .stdin(Stdio::null());
        if let Some(now) = &self.fake_now {
            cmd.env("BACKUPCTL_FAKE_NOW", now);
        }
        cmd
    }

    pub fn run_cmd(&self, mut cmd: Command) -> Run {
        let out = cmd.output().expect("run backupctl");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `backup_manager ARGS` from the home.
    pub fn manager(&self, args: &[&str]) -> Run {
        let mut cmd = self.command("backup_manager");
        cmd.args(args);
        self.run_cmd(cmd)
    }

    /// Runs `backupctl ARGS` from the home.
    pub fn ctl(&self, args: &[&str]) -> Run {
        let mut cmd = self.command("backupctl");
        cmd.args(args);
        self.run_cmd(cmd)
    }

    pub fn write(&self, rel: &str, content: &[u8]) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    pub fn schedules(&self) -> String {
        self.read("backup_schedules.txt")
    }

    /// Lines of a log, without their `[dd/mm/YYYY HH:MM] ` stamps.
    pub fn log_messages(&self, log: &str) -> Vec<String> {
        self.read(&format!("logs/{log}"))
            .lines()
            .map(|l| l.split_once("] ").map_or(l, |(_, m)| m).to_string())
            .collect()
    }

    /// Names of the entries in a tar archive, as GNU tar lists them.
    pub fn tar_list(&self, archive: &str) -> Vec<String> {
        let out = Command::new("tar")
            .arg("-tf")
            .arg(self.path(archive))
            .output()
            .expect("GNU tar");
        assert!(out.status.success(), "tar -tf {archive}: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Extracts `archive` with GNU tar (`tar FLAGS ARCHIVE -C INTO`, e.g.
    /// flags `-xpf`, `-xzf`, `--zstd -xf`) into `into` under the home.
    #[track_caller]
    pub fn gnu_tar_extract(&self, archive: &str, flags: &[&str], into: &str) -> PathBuf {
        let dest = self.path(into);
        fs::create_dir_all(&dest).unwrap();
        let status = Command::new("tar")
            .args(flags)
            .arg(self.path(archive))
            .arg("-C")
            .arg(&dest)
            .status()
            .expect("GNU tar");
        assert!(
            status.success(),
            "GNU tar {flags:?} could not extract {archive}"
        );
        dest
    }

    /// Polls `condition` for up to ten seconds.
    #[track_caller]
    pub fn eventually(&self, what: &str, mut condition: impl FnMut() -> bool) {
        for _ in 0..500 {
            if condition() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for {what}");
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.path("backup_service.pid").exists() {
            let _ = self.ctl(&["stop", "--timeout", "10"]);
        }
    }
}
