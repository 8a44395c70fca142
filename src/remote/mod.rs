//! Remote storage through the `rclone` binary (`copy-to=REMOTE:PATH`).
//!
//! rclone is the client restic, borg 2 and kopia also drive for this: one
//! well-kept program that reaches S3, B2, SFTP, WebDAV, GCS, Azure and the
//! rest, with its own configuration file and environment
//! (`RCLONE_CONFIG_NAME_TYPE=…`) for remotes and credentials. backupctl runs
//! it as a child process and stores no secrets; linking a storage SDK per
//! backend would be the opposite of that.
//!
//! What this module offers is small and exact: list a directory, look at one
//! file (size, and SHA-256 when the backend keeps one), upload a file under a
//! temporary name and move it onto its final name, delete one file by name,
//! and stream one file (`rclone cat`). Nothing here knows schedules;
//! `backup::copy` decides what to upload and delete.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Deserialize;

pub use crate::model::RemoteTarget;
use crate::primitives::{self, quote};

/// Why a remote operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "rclone is not installed (no rclone on PATH); copy-to needs it (Debian package rclone)"
    )]
    NotInstalled,
    #[error("cannot run {}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("rclone {action} \"{}\" failed: {}", quote(location), quote(message))]
    Rclone {
        action: &'static str,
        location: String,
        message: String,
    },
    #[error(
        "rclone {action} \"{}\" printed what backupctl cannot read",
        quote(location)
    )]
    Unreadable {
        action: &'static str,
        location: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("\"{}\" is not on the remote", quote(location))]
    Missing { location: String },
    #[error(
        "rclone {action} \"{}\" stopped: the run is being stopped",
        quote(location)
    )]
    Stopped {
        action: &'static str,
        location: String,
    },
    #[error(
        "rclone {action} \"{}\" printed more than {}",
        quote(location),
        primitives::human_bytes(STDOUT_LIMIT as u64)
    )]
    TooLarge {
        action: &'static str,
        location: String,
    },
    #[error(
        "\"{}\" is {actual} bytes on the remote, the archive {expected}",
        quote(location)
    )]
    Size {
        location: String,
        actual: u64,
        expected: u64,
    },
    #[error(
        "\"{}\" has SHA-256 {actual} on the remote, the archive {expected}",
        quote(location)
    )]
    Checksum {
        location: String,
        actual: String,
        expected: String,
    },
}

/// A file on the remote, as `rclone lsjson` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub name: String,
    pub size: u64,
    /// Lower-case hex SHA-256, when the backend keeps one (S3 and SFTP in
    /// rclone 1.60 do not; local disks and some others do).
    pub sha256: Option<String>,
}

#[derive(Deserialize)]
struct LsJson {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Size")]
    size: i64,
    #[serde(rename = "IsDir", default)]
    is_dir: bool,
    #[serde(rename = "Hashes", default)]
    hashes: std::collections::BTreeMap<String, String>,
}

impl From<LsJson> for RemoteFile {
    fn from(entry: LsJson) -> Self {
        RemoteFile {
            sha256: entry.hashes.get("sha256").map(|h| h.to_ascii_lowercase()),
            name: entry.name,
            size: u64::try_from(entry.size).unwrap_or(0),
        }
    }
}

/// rclone's exit codes for "directory not found" and "file not found".
const NOT_FOUND: [i32; 2] = [3, 4];

/// The most of rclone's standard output read (a listing of some 400,000
/// files): a hostile or huge remote directory must not exhaust memory.
const STDOUT_LIMIT: usize = 64 << 20;

/// How much of the end of rclone's standard error is kept: its last line is
/// the message.
const STDERR_KEEP: usize = 64 << 10;

/// The longest wait between two looks at a request to stop.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Never set: the request to stop of a command that is not a run's.
static NEVER: AtomicBool = AtomicBool::new(false);

/// The `rclone` program, and the flag that stops it (a run's abort: the
/// service's second signal, Ctrl-C).
#[derive(Debug, Clone)]
pub struct Rclone<'a> {
    program: PathBuf,
    stop: &'a AtomicBool,
}

impl Rclone<'static> {
    /// `rclone` on the PATH, or [`RemoteError::NotInstalled`].
    pub fn find() -> Result<Self, RemoteError> {
        find_on_path("rclone")
            .map(|program| Self {
                program,
                stop: &NEVER,
            })
            .ok_or(RemoteError::NotInstalled)
    }

    /// This rclone, each of its children killed (and reaped) as soon as
    /// `stop` is set: a copy to a server that hangs, or a long upload,
    /// never holds a run that is being aborted. (rclone's own timeouts
    /// bound a hung server otherwise: one minute to connect, five without
    /// a byte.)
    pub fn stopped_by(self, stop: &AtomicBool) -> Rclone<'_> {
        Rclone {
            program: self.program,
            stop,
        }
    }
}

impl Rclone<'_> {
    fn command<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Command {
        let mut command = Command::new(&self.program);
        // One attempt per call: backupctl retries with its own backoff and
        // its own bound (see `backup::copy`).
        command
            .args(["--retries", "1", "--low-level-retries", "2"])
            .args(args)
            .stdin(Stdio::null());
        command
    }

    fn run<S: AsRef<OsStr>>(
        &self,
        action: &'static str,
        location: &str,
        args: impl IntoIterator<Item = S>,
    ) -> Result<Output, RemoteError> {
        let output = self.output(self.command(args), action, location)?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(failure(action, location, &output))
        }
    }

    /// The file at `location` (`REMOTE:PATH/NAME`), `None` when it is not
    /// there.
    pub fn stat(&self, location: &str) -> Result<Option<RemoteFile>, RemoteError> {
        let args = [
            "lsjson",
            "--stat",
            "--no-mimetype",
            "--hash",
            "--hash-type",
            "sha256",
            location,
        ];
        let output = match self.run("lsjson", location, args) {
            Ok(output) => output,
            Err(RemoteError::Rclone { .. }) if self.not_found(location)? => return Ok(None),
            Err(error) => return Err(error),
        };
        let entry: LsJson =
            serde_json::from_slice(&output.stdout).map_err(|source| RemoteError::Unreadable {
                action: "lsjson",
                location: location.to_string(),
                source,
            })?;
        Ok((!entry.is_dir).then(|| entry.into()))
    }

    /// True when a failed `stat` of `location` failed because nothing is
    /// there, as opposed to the remote being unreachable: its directory
    /// lists fine, or is itself not found.
    fn not_found(&self, location: &str) -> Result<bool, RemoteError> {
        self.list_dir(&parent_of(location)).map(|_| true)
    }

    /// `rclone lsjson` of the directory `dir`; `None` when it does not exist.
    fn list_dir(&self, dir: &str) -> Result<Option<Output>, RemoteError> {
        let args = [
            "lsjson",
            "--files-only",
            "--no-mimetype",
            "--max-depth",
            "1",
        ];
        let mut command = self.command(args);
        command.arg(dir);
        let output = self.output(command, "lsjson", dir)?;
        match output.status.code() {
            Some(0) => Ok(Some(output)),
            Some(code) if NOT_FOUND.contains(&code) => Ok(None),
            _ => Err(failure("lsjson", dir, &output)),
        }
    }

    /// Runs `command` to its end, like [`Command::output`], but with its
    /// standard output bounded ([`STDOUT_LIMIT`]), only the end of its
    /// standard error kept, and the child killed and reaped once the stop
    /// flag is set.
    fn output(
        &self,
        mut command: Command,
        action: &'static str,
        location: &str,
    ) -> Result<Output, RemoteError> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| self.spawn_error(source))?;
        let stdout = child
            .stdout
            .take()
            .map(|out| std::thread::spawn(move || read_bounded(out, STDOUT_LIMIT)));
        let stderr = child
            .stderr
            .take()
            .map(|err| std::thread::spawn(move || read_tail(err, STDERR_KEEP)));
        let status = self.wait(&mut child);
        let stdout = stdout
            .and_then(|h| h.join().ok())
            .unwrap_or(Some(Vec::new()));
        let stderr = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
        let stopped = || RemoteError::Stopped {
            action,
            location: location.to_string(),
        };
        let status = status
            .map_err(|source| self.spawn_error(source))?
            .ok_or_else(stopped)?;
        let stdout = stdout.ok_or_else(|| RemoteError::TooLarge {
            action,
            location: location.to_string(),
        })?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// `child`'s exit, or `None` when the stop flag was set first (then the
    /// child is killed and reaped). Looks again after 1 ms, 2 ms, … up to
    /// [`STOP_POLL`]: a quick command is not slowed down.
    fn wait(&self, child: &mut Child) -> io::Result<Option<ExitStatus>> {
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(status));
            }
            if self.stop.load(Ordering::SeqCst) {
                let _ = child.kill();
                child.wait()?;
                return Ok(None);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(STOP_POLL);
        }
    }

    fn spawn_error(&self, source: io::Error) -> RemoteError {
        RemoteError::Spawn {
            program: self.program.clone(),
            source,
        }
    }

    /// The files directly in `target` (none when the directory does not
    /// exist yet).
    pub fn list(&self, target: &RemoteTarget) -> Result<Vec<RemoteFile>, RemoteError> {
        let location = target.as_str();
        let Some(output) = self.list_dir(location)? else {
            return Ok(Vec::new());
        };
        let entries: Vec<LsJson> =
            serde_json::from_slice(&output.stdout).map_err(|source| RemoteError::Unreadable {
                action: "lsjson",
                location: location.to_string(),
                source,
            })?;
        Ok(entries
            .into_iter()
            .filter(|e| !e.is_dir)
            .map(RemoteFile::from)
            .collect())
    }

    /// Uploads `local` as `target/name`: first under a hidden temporary name
    /// (`.NAME.RANDOM.partial`), then moved onto `name`, so nothing partial
    /// ever sits under the final name. An upload cut short leaves only the
    /// temporary file, which [`Rclone::list`] shows and the caller removes.
    pub fn upload(
        &self,
        local: &Path,
        target: &RemoteTarget,
        name: &str,
    ) -> Result<(), RemoteError> {
        let temp = primitives::temporary_name(OsStr::new(name), "partial");
        let temp = target.join(&temp.to_string_lossy());
        let location = target.join(name);
        let local_arg = local.as_os_str();
        self.run(
            "copyto",
            &location,
            [OsStr::new("copyto"), local_arg, OsStr::new(&temp)],
        )?;
        self.run(
            "moveto",
            &location,
            ["moveto", temp.as_str(), location.as_str()],
        )
        .map(drop)
    }

    /// Deletes the one file `location`; one already gone is fine.
    pub fn delete(&self, location: &str) -> Result<(), RemoteError> {
        match self.run("deletefile", location, ["deletefile", location]) {
            Ok(_) => Ok(()),
            Err(error @ RemoteError::Rclone { .. }) => match self.stat(location)? {
                None => Ok(()),
                Some(_) => Err(error),
            },
            Err(error) => Err(error),
        }
    }

    /// The bytes of `location`, streamed from `rclone cat`. A failure of
    /// rclone (the remote gone mid-way) is an error of the read that meets
    /// the end of the stream, never a silent short read.
    pub fn cat(&self, location: &str) -> Result<CatStream, RemoteError> {
        let mut child = self
            .command(["cat", location])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| self.spawn_error(source))?;
        let stdout = child.stdout.take();
        let stderr = child
            .stderr
            .take()
            .map(|stderr| std::thread::spawn(move || read_tail(stderr, STDERR_KEEP)));
        Ok(CatStream {
            child,
            stdout,
            stderr,
            location: location.to_string(),
        })
    }
}

/// The directory part of `REMOTE:PATH/NAME`.
fn parent_of(location: &str) -> String {
    match location.rsplit_once('/') {
        Some((dir, _)) => dir.to_string(),
        None => match location.split_once(':') {
            Some((remote, _)) => format!("{remote}:"),
            None => location.to_string(),
        },
    }
}

/// rclone's last error line, for a one-line message.
fn failure(action: &'static str, location: &str, output: &Output) -> RemoteError {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let message = stderr
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty() && !line.contains("NOTICE: Config file"))
        .map(|line| primitives::redact_urls(&strip_log_stamp(line)))
        .unwrap_or_else(|| format!("exit status {}", output.status));
    RemoteError::Rclone {
        action,
        location: location.to_string(),
        message,
    }
}

/// `2026/11/24 16:29:53 ERROR : f: …` without its date and time.
fn strip_log_stamp(line: &str) -> String {
    let mut parts = line.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(date), Some(time), Some(rest))
            if date.len() == 10 && date.as_bytes()[4] == b'/' && time.contains(':') =>
        {
            rest.to_string()
        }
        _ => line.to_string(),
    }
}

/// `rclone cat`'s output; see [`Rclone::cat`]. Dropping it early stops
/// rclone.
pub struct CatStream {
    child: Child,
    stdout: Option<ChildStdout>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    location: String,
}

impl Read for CatStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(stdout) = self.stdout.as_mut() else {
            return Ok(0);
        };
        let n = stdout.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        self.stdout = None;
        let status = self.child.wait()?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if status.success() {
            return Ok(0);
        }
        let output = Output {
            status,
            stdout: Vec::new(),
            stderr,
        };
        Err(io::Error::other(failure("cat", &self.location, &output)))
    }
}

impl Drop for CatStream {
    fn drop(&mut self) {
        if self.stdout.is_some() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// All of `reader`, or `None` when it holds more than `limit` bytes (the
/// rest is read and dropped, so the writer is not blocked).
fn read_bounded(reader: impl Read, limit: usize) -> Option<Vec<u8>> {
    let mut reader = reader;
    let mut bytes = Vec::new();
    let _ = reader
        .by_ref()
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes);
    if bytes.len() > limit {
        let _ = io::copy(&mut reader, &mut io::sink());
        return None;
    }
    Some(bytes)
}

/// The last `keep` bytes (about) of `reader`, read to its end.
fn read_tail(mut reader: impl Read, keep: usize) -> Vec<u8> {
    let mut tail = Vec::new();
    let mut buf = [0; 8192];
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => return tail,
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 2 * keep {
                    tail.drain(..tail.len() - keep);
                }
            }
        }
    }
}

/// `name` found in one of the PATH's directories as an executable file.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_join_and_split() {
        let target = RemoteTarget::parse("off:backups").unwrap();
        assert_eq!(target.join("a.tar"), "off:backups/a.tar");
        assert_eq!(RemoteTarget::parse("off:").unwrap().join("a"), "off:a");
        assert_eq!(parent_of("off:backups/a.tar"), "off:backups");
        assert_eq!(parent_of("off:a.tar"), "off:");
        assert!(RemoteTarget::parse("nocolon").is_err());
        assert!(RemoteTarget::parse(":x").is_err());
    }

    #[test]
    fn output_is_bounded_and_stderr_keeps_its_end() {
        assert_eq!(read_bounded(&b"abc"[..], 3), Some(b"abc".to_vec()));
        assert_eq!(read_bounded(&b"abcd"[..], 3), None);
        let long: Vec<u8> = (0..100_000u32)
            .flat_map(|n| format!("{n}\n").into_bytes())
            .collect();
        let tail = read_tail(&long[..], 1000);
        assert!(tail.len() <= 2000 && tail.ends_with(b"99999\n"));
    }

    #[test]
    fn rclone_log_lines_lose_their_stamp() {
        assert_eq!(
            strip_log_stamp("2026/11/24 16:29:53 ERROR : f: hash unsupported"),
            "ERROR : f: hash unsupported"
        );
        assert_eq!(strip_log_stamp("plain"), "plain");
    }
}
