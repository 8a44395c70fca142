//! Remote storage through the `rclone` binary (`copy-to=REMOTE:PATH`).
//!
//! rclone is the client restic, borg 2 and kopia also drive for this: one
//! well-kept program that reaches S3, B2, SFTP, WebDAV, GCS, Azure and the
//! rest, with its own configuration file and environment
//! (`RCLONE_CONFIG_NAME_TYPE=…`) for remotes and credentials. backupctl runs
//! it as a child process and stores no secrets; linking a storage SDK per
//! backend would be the opposite of that.
//!
//! What this module offers is small and exact. A [`Session`] (one
//! `rclone rcd` driven over loopback, see `rcd.rs`) lists a directory, looks
//! at one file (size, and SHA-256 when the backend keeps one), uploads a
//! file under a temporary name and moves it onto its final name, and
//! deletes one file by name; [`Rclone::cat`] streams one file through
//! `rclone cat`. Nothing here knows schedules; `backup::copy` decides what
//! to upload and delete.

mod rcd;

use std::ffi::OsStr;
use std::io::{self, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::AtomicBool;
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
    #[error("cannot start rclone rcd: {}", quote(message))]
    Start { message: String },
    #[error("rclone {action} \"{}\": no answer from rclone rcd", quote(location))]
    NoAnswer {
        action: &'static str,
        location: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error(
        "{} is not UTF-8, which rclone's remote control cannot name",
        quote(&path.to_string_lossy())
    )]
    NotUtf8 { path: PathBuf },
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
        "rclone {action} \"{}\" answered more than {}",
        quote(location),
        primitives::human_bytes(RESPONSE_LIMIT as u64)
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

pub use rcd::{Session, Starting};

/// A file on the remote, as rclone lists it (`operations/list`, `stat`).
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

/// The most of an answer of rclone read (a listing of some 400,000 files):
/// a hostile or huge remote directory must not exhaust memory.
const RESPONSE_LIMIT: usize = 64 << 20;

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

    /// This rclone, the rcd of each of its sessions killed (and reaped) as
    /// soon as `stop` is set: a copy to a server that hangs, or a long
    /// upload, never holds a run that is being aborted. (rclone's own
    /// timeouts bound a hung server otherwise: one minute to connect, five
    /// without a byte.)
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

    fn spawn_error(&self, source: io::Error) -> RemoteError {
        RemoteError::Spawn {
            program: self.program.clone(),
            source,
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
            .map(|stderr| std::thread::spawn(move || read_tail(stderr, STDERR_KEEP, |_| ())));
        Ok(CatStream {
            child,
            stdout,
            stderr,
            location: location.to_string(),
        })
    }
}

/// rclone's last error line in `stderr`, for a one-line message, or `None`
/// when it printed none.
fn last_error_line(stderr: &[u8]) -> Option<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty() && !line.contains("NOTICE: Config file"))
        .map(|line| primitives::redact_urls(&strip_log_stamp(line)))
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
        Err(io::Error::other(RemoteError::Rclone {
            action: "cat",
            location: self.location.clone(),
            message: last_error_line(&stderr).unwrap_or_else(|| format!("exit status {status}")),
        }))
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

/// The last `keep` bytes (about) of `reader`, read to its end; `seen` is
/// shown what is kept after each read (the rcd's log, watched for the
/// address it serves on).
fn read_tail(mut reader: impl Read, keep: usize, mut seen: impl FnMut(&[u8])) -> Vec<u8> {
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
                seen(&tail);
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
    fn locations_join() {
        let target = RemoteTarget::parse("off:backups").unwrap();
        assert_eq!(target.join("a.tar"), "off:backups/a.tar");
        assert_eq!(RemoteTarget::parse("off:").unwrap().join("a"), "off:a");
        assert!(RemoteTarget::parse("nocolon").is_err());
        assert!(RemoteTarget::parse(":x").is_err());
    }

    #[test]
    fn stderr_keeps_its_end() {
        let long: Vec<u8> = (0..100_000u32)
            .flat_map(|n| format!("{n}\n").into_bytes())
            .collect();
        let tail = read_tail(&long[..], 1000, |_| ());
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
