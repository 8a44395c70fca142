//! What every integration test stands on: `TestEnv` (a temporary home with the
//! `backup_manager` and `backup_service` names, fixtures and readers), `Test`
//! (a command whose status, stdout and stderr are checked together),
//! `Service` (the daemon harness), `same_tree` (the one tree comparison) and
//! `eventually` (the one way to wait).
#![allow(dead_code)] // helpers serve many test modules; not all use every one

mod expect;
pub mod http;
pub mod prometheus;
pub mod remote;
mod service;
mod tree;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use expect::{Process, Test};
pub use service::{
    PIDFILE, SIGTERM_AGAIN, SIGTERM_STOPPING, Service, alive, daemon_pid, foreground_stderr,
    foreground_stderr_of, signal_pending,
};
pub use tree::same_tree;

pub const BIN: &str = env!("CARGO_BIN_EXE_backupctl");

/// Polls `condition` every 20 ms for up to thirty seconds: a ceiling for a
/// loaded machine, not a wait, since it returns as soon as the condition
/// holds. The only way tests wait: for a file, a log line, a process to
/// exit; never a fixed sleep.
#[track_caller]
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True when process `pid` is stopped (state `T` in /proc/PID/stat), as a
/// run is at a `BACKUPCTL_PAUSE_AT` step until it gets SIGCONT.
pub fn stopped(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('T'))
    })
}

/// A temporary home directory. Any daemon started in it is stopped on drop.
pub struct TestEnv {
    dir: tempfile::TempDir,
    fake_now: Option<String>,
}

impl TestEnv {
    /// A home: a temporary directory with the two names and an empty
    /// `backup_schedules.txt` (what makes a directory a home).
    pub fn new() -> Self {
        let env = Self::bare();
        env.write("backup_schedules.txt", "");
        env
    }

    /// A temporary directory with the two names and nothing else: not a
    /// home until `create` starts one.
    pub fn bare() -> Self {
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

    /// A home holding a tree, fd-style: `dirs` (made with their parents),
    /// then `files` as (path, contents). Paths are relative to the home.
    pub fn with_tree(dirs: &[&str], files: &[(&str, &str)]) -> Self {
        let env = Self::new();
        env.tree(dirs, files);
        env
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

    /// `path` as text, for messages that name it.
    pub fn shown(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    // ------------------------------------------------------------ commands

    /// A command for one of the names in the home (`backup_manager`,
    /// `backup_service`) or `backupctl` itself, run from the home, with no
    /// stdin and no inherited home or clock. Expects status 0 and no output
    /// until told otherwise.
    pub fn test(&self, program: &str) -> Test {
        let exe = match program {
            "backupctl" => PathBuf::from(BIN),
            name => self.path(name),
        };
        Test::new(self.prepare(Command::new(exe)), program.to_string())
    }

    /// `backup_manager ARGS`.
    pub fn manager<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Test {
        self.test("backup_manager").args(args)
    }

    /// `backupctl ARGS`.
    pub fn ctl<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Test {
        self.test("backupctl").args(args)
    }

    /// `backup_service ARGS` (the foreground daemon).
    pub fn service<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Test {
        self.test("backup_service").args(args)
    }

    /// `backupctl ARGS` as the unprivileged user `nobody` when the tests run
    /// as root (root reads a mode-000 file), with the whole home handed to
    /// it (so its schedule file stays trusted); else as the current user.
    pub fn unprivileged(&self) -> Test {
        use std::os::unix::fs::MetadataExt;
        // The home was created by this process, so it is owned by our user.
        if fs::metadata(self.home()).unwrap().uid() == 0 {
            chown_tree(self.home(), 65534);
            self.program("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        } else {
            self.test("backupctl")
        }
    }

    /// `bash -c SCRIPT`, run from the home like the other commands.
    pub fn bash(&self, script: &str) -> Test {
        let mut cmd = self.prepare(Command::new("bash"));
        cmd.arg("-c").arg(script);
        Test::new(cmd, format!("bash -c {script:?}"))
    }

    /// Any other program (`setpriv`, `sh`), prepared like the others.
    pub fn program(&self, program: &str) -> Test {
        Test::new(self.prepare(Command::new(program)), program.to_string())
    }

    fn prepare(&self, mut cmd: Command) -> Command {
        // No system home: a test never looks at the machine's own service.
        cmd.current_dir(self.home())
            .env_remove("BACKUPCTL_HOME")
            .env_remove("BACKUPCTL_FAKE_NOW")
            // Tests run under systemd write for a terminal all the same.
            .env_remove("JOURNAL_STREAM")
            .env("BACKUPCTL_SYSTEM_HOME", "");
        if let Some(now) = &self.fake_now {
            cmd.env("BACKUPCTL_FAKE_NOW", now);
        }
        cmd
    }

    /// `backup_manager create LINE`, which must succeed silently: the source
    /// (the first field, relative to the home) must exist. For a missing
    /// source, see `missing_source_warning`.
    #[track_caller]
    pub fn create(&self, line: &str) {
        self.manager(["create", line]).run();
    }

    /// The warning `create` prints for a source that does not exist yet.
    pub fn missing_source_warning(&self, program: &str, source: &str) -> String {
        format!(
            "{program}: warning: source {} does not exist yet; its backups will fail until it does\n",
            self.shown(source)
        )
    }

    /// Stops a detached daemon left in this home, quietly (for drops).
    pub fn stop_any_daemon(&self) {
        if self.path(PIDFILE).exists() {
            let _ = self
                .prepare(Command::new(BIN))
                .args(["stop", "--timeout", "10"])
                .output();
        }
    }

    // ------------------------------------------------------------ fixtures

    /// Creates `dirs` (with parents) and `files` (path, contents) in one call.
    pub fn tree(&self, dirs: &[&str], files: &[(&str, &str)]) {
        for dir in dirs {
            fs::create_dir_all(self.path(dir)).unwrap();
        }
        for (path, contents) in files {
            self.write(path, contents.as_bytes());
        }
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    /// A symlink at `link` pointing at `target` (kept as given).
    pub fn symlink(&self, target: impl AsRef<Path>, link: &str) {
        symlink(target, self.path(link)).unwrap();
    }

    pub fn chmod(&self, rel: &str, mode: u32) {
        fs::set_permissions(self.path(rel), fs::Permissions::from_mode(mode)).unwrap();
    }

    pub fn mkfifo(&self, rel: &str) {
        let status = Command::new("mkfifo").arg(self.path(rel)).status().unwrap();
        assert!(status.success(), "mkfifo {rel}");
    }

    /// A sparse file of `len` bytes, all hole: quick to make, and quick to
    /// archive (the archive stores it sparse).
    pub fn sparse_file(&self, rel: &str, len: u64) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::File::create(path).unwrap().set_len(len).unwrap();
    }

    /// A file of `len` zero bytes whose blocks are all allocated
    /// (`posix_fallocate`): quick to make, and read in full by a backup, so
    /// slow enough to archive that a signal lands mid-way.
    pub fn allocated_file(&self, rel: &str, len: u64) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = fs::File::create(path).unwrap();
        nix::fcntl::posix_fallocate(&file, 0, len as i64).unwrap();
    }

    /// A hook command (for `before=`) that holds its run until the test
    /// calls `release_hook(name)`, so a test orders events by what it sees
    /// rather than by guessing how long a run takes. The hook touches
    /// `NAME.started` when it begins.
    pub fn holding_hook(&self, name: &str) -> String {
        self.write(
            &format!("hold-{name}.sh"),
            format!("touch {name}.started\nwhile [ ! -e {name}.release ]; do sleep 0.02; done\n"),
        );
        format!("sh hold-{name}.sh")
    }

    #[track_caller]
    pub fn wait_for_hook(&self, name: &str) {
        let started = self.path(&format!("{name}.started"));
        eventually(&format!("the {name} hook to start"), || started.exists());
    }

    pub fn release_hook(&self, name: &str) {
        self.write(&format!("{name}.release"), "");
    }

    // ------------------------------------------------------------ readers

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

    /// Some line of `logs/LOG` contains `needle`.
    pub fn log_has(&self, log: &str, needle: &str) -> bool {
        self.log_messages(log).iter().any(|l| l.contains(needle))
    }

    #[track_caller]
    pub fn wait_for_log(&self, log: &str, needle: &str) {
        eventually(&format!("{needle:?} in {log}"), || {
            self.log_has(log, needle)
        });
    }

    /// Every path below `rel` (`.` for the whole home), relative to the
    /// home, sorted; symlinks are listed, not followed. For "nothing was
    /// created or removed" checks.
    pub fn paths_below(&self, rel: &str) -> Vec<String> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            {
                let path = entry.unwrap().path();
                if path.symlink_metadata().unwrap().is_dir() {
                    walk(&path, out);
                }
                out.push(path);
            }
        }
        let mut found = Vec::new();
        walk(&self.path(rel), &mut found);
        let mut names: Vec<String> = found
            .iter()
            .map(|p| p.strip_prefix(self.home()).unwrap().display().to_string())
            .collect();
        names.sort();
        names
    }

    /// The sorted names in a directory under the home.
    pub fn dir_listing(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.path(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Writes the manifest of `backups/NAME` for `schedule`, as a run would
    /// (size and SHA-256 of the file as it is): the archive becomes one of
    /// the schedule's own.
    pub fn write_manifest(&self, name: &str, schedule: &str) {
        use backupctl::archive::manifest::{Manifest, write_manifest};
        use backupctl::model::{Format, RunState};
        use sha2::{Digest, Sha256};
        let path = self.path("backups").join(name);
        let bytes = fs::read(&path).unwrap();
        let manifest = Manifest {
            schedule: schedule.into(),
            source: "src".into(),
            archive: name.into(),
            created: chrono::DateTime::parse_from_rfc3339("2025-01-01T02:00:00+00:00").unwrap(),
            format: Format::of_file_name(name).unwrap(),
            level: None,
            archive_size: bytes.len() as u64,
            sha256: backupctl::primitives::hex(&Sha256::digest(&bytes)),
            entries: 5,
            bytes_read: 18,
            skipped: vec![],
            state: RunState::Ok,
            duration_seconds: 0.1,
            backupctl_version: "0.1.0".into(),
            fingerprint: "0".into(),
            excluded: 0,
            also: Vec::new(),
            previous: None,
            chain: None,
            plaintext_sha256: None,
            remote_copy: None,
        };
        write_manifest(&path, &manifest).unwrap();
    }

    /// `status --json` through `backupctl`, expecting exit `status` (0 with
    /// the service running, 3 without), as parsed JSON.
    #[track_caller]
    pub fn status_json(&self, status: i32) -> serde_json::Value {
        self.ctl(["status", "--json"])
            .status(status)
            .stdout_json()
            .run()
            .json()
    }

    /// The partial archives a run of `schedule` is writing (or a killed one
    /// left): `backups/.NAME.RANDOM.partial`, relative to the home.
    pub fn partial_archives(&self, schedule: &str) -> Vec<String> {
        let prefix = format!(".{schedule}.");
        let Ok(entries) = fs::read_dir(self.path("backups")) else {
            return Vec::new();
        };
        let mut found: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| {
                name.strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(".partial"))
                    .is_some_and(|random| random.len() == 16 && !random.contains('.'))
            })
            .map(|name| format!("backups/{name}"))
            .collect();
        found.sort();
        found
    }

    /// Names of the entries in a tar archive, as GNU tar lists them
    /// (compression detected by GNU tar).
    #[track_caller]
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
}

fn chown_tree(dir: &Path, uid: u32) {
    std::os::unix::fs::lchown(dir, Some(uid), Some(uid)).unwrap();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.symlink_metadata().unwrap().is_dir() {
            chown_tree(&path, uid);
        } else {
            std::os::unix::fs::lchown(&path, Some(uid), Some(uid)).unwrap();
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.stop_any_daemon();
    }
}
