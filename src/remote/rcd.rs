//! A [`Session`]: one long-lived `rclone rcd` (rclone's remote control
//! server) per copy, each operation one HTTP request to it.
//!
//! Why not one `rclone` command per operation: each start costs about
//! 0.1 s (and, for SFTP, a new SSH connection), and a copy takes five of
//! them per archive (the upload to a temporary name, the move, the check,
//! the manifest's upload and move), which made a copy of a 337 MiB archive
//! over loopback 0.7-0.8× as fast as a bare `rclone copyto`. One rcd pays
//! the start once, and keeps its connections to the remote between
//! requests; a run starts it before writing its archive
//! ([`Rclone::start_session`]), so that not even that start is waited for.
//! The operations are rclone's own (`operations/copyfile`, `movefile`,
//! `stat`, `list`, `deletefile`), the same code its commands run.
//!
//! The control channel is the service's credentials to the remote, so:
//! - it listens on 127.0.0.1 on a port the kernel picks, read back from the
//!   rcd's own log line (nobody can take the port before it);
//! - it requires a user and a password drawn from the OS's random source
//!   for this session, handed over in the rcd's environment
//!   (`RCLONE_RC_USER`, `RCLONE_RC_PASS`), never on its command line, which
//!   `ps` shows every user, and never logged; the caller's own `RCLONE_RC_*`
//!   variables are removed, so none turns authentication off or serves
//!   files;
//! - the client ignores proxy variables (loopback only) and bounds every
//!   answer in size ([`RESPONSE_LIMIT`]) and every request but the
//!   transfers in time ([`REQUEST_BOUND`]; rclone's own timeouts bound a
//!   stalled transfer);
//! - the rcd is killed and reaped when the session ends, at once when the
//!   run is being stopped (a transfer in flight included), and by the
//!   kernel if backupctl itself dies (`PR_SET_PDEATHSIG`).
//!
//! What is left: should the rcd die in the middle of a session, another
//! local process could take its port before the next request, which would
//! then carry the password (worthless once its rcd is dead) to that process
//! and read its made-up answer. rclone 1.60 (Debian bookworm) cannot listen
//! on a unix socket, which a directory of our own would have guarded.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    LsJson, RESPONSE_LIMIT, Rclone, RemoteError, RemoteFile, RemoteTarget, STDERR_KEEP, STOP_POLL,
    last_error_line, read_tail,
};
use crate::primitives;

/// How long a request other than a transfer may take: beyond rclone's own
/// timeouts (one minute to connect, five without a byte), so that its
/// message wins, but not without end.
const REQUEST_BOUND: Duration = Duration::from_secs(600);

/// How long the rcd may take to say where it listens.
const START_BOUND: Duration = Duration::from_secs(30);

/// What the rcd logs once it listens, before its address.
const SERVING: &str = "Serving remote control on http://127.0.0.1:";

/// The rc user name (the password is the secret).
const USER: &str = "backupctl";

/// One `rclone rcd` and a client for it; see the module's documentation.
/// Dropping it kills and reaps the rcd.
pub struct Session<'a> {
    child: Child,
    /// `http://127.0.0.1:PORT/`.
    url: String,
    /// `Basic …` of the session's user and password.
    authorization: String,
    agent: ureq::Agent,
    stop: &'a AtomicBool,
}

/// rclone's answer to a request it refused.
#[derive(Deserialize)]
struct Refusal {
    #[serde(default)]
    error: String,
}

/// A request that rclone answered with an error.
struct Failed {
    status: u16,
    message: String,
}

impl Failed {
    /// rclone's "directory not found" or "object not found" (404), as
    /// opposed to a method it does not know.
    fn not_found(&self) -> bool {
        self.status == 404 && !self.message.contains("couldn't find method")
    }

    fn into_error(self, action: &'static str, location: String) -> RemoteError {
        RemoteError::Rclone {
            action,
            location,
            message: self.message,
        }
    }
}

impl<'a> Rclone<'a> {
    /// Starts an `rclone rcd` for the operations of one copy (or one
    /// command) and waits until it listens; killed as soon as this
    /// rclone's stop flag is set.
    pub fn session(&self) -> Result<Session<'a>, RemoteError> {
        self.start_session()?.ready()
    }

    /// Starts an `rclone rcd` without waiting for it: a run starts its
    /// copy's before it writes the archive, and [`Starting::ready`] then
    /// finds it listening.
    pub fn start_session(&self) -> Result<Starting<'a>, RemoteError> {
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).map_err(|e| RemoteError::Start {
            message: format!("no random password: {e}"),
        })?;
        let password = primitives::hex(&secret);
        let mut command = self.command([
            "rcd",
            "--rc-addr",
            "127.0.0.1:0",
            // rclone's default of one hour counts from the request, so the
            // answer to an upload longer than that (36 GB at 10 MB/s)
            // would be cut off, and the copy fail, however well it went.
            "--rc-server-write-timeout",
            "0",
        ]);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("RCLONE_RC_") {
                command.env_remove(key);
            }
        }
        // The address is read from the log: it must reach stderr. And at
        // debug level rclone logs each variable it reads, the password too.
        for key in [
            "RCLONE_LOG_LEVEL",
            "RCLONE_LOG_FILE",
            "RCLONE_QUIET",
            "RCLONE_SYSLOG",
            "RCLONE_VERBOSE",
        ] {
            command.env_remove(key);
        }
        command
            .env("RCLONE_RC_USER", USER)
            .env("RCLONE_RC_PASS", &password)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl(2) is async-signal-safe and touches no memory of
        // the parent; it only asks the kernel to kill the rcd should the
        // thread that started it die (backupctl killed outright).
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = command.spawn().map_err(|source| self.spawn_error(source))?;
        let (ready, port) = mpsc::channel();
        let stderr = child.stderr.take().map(|stderr| {
            std::thread::spawn(move || {
                let mut sent = false;
                read_tail(stderr, STDERR_KEEP, |tail| {
                    if !sent && let Some(port) = serving_port(tail) {
                        sent = ready.send(port).is_ok();
                    }
                })
            })
        });
        Ok(Starting {
            child: Some(child),
            port,
            stderr,
            password,
            started: Instant::now(),
            stop: self.stop,
        })
    }
}

/// An `rclone rcd` started and not yet known to listen; see
/// [`Rclone::start_session`]. Dropping it kills and reaps the rcd.
pub struct Starting<'a> {
    child: Option<Child>,
    /// The port, from the thread that reads the rcd's log.
    port: mpsc::Receiver<u16>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    password: String,
    started: Instant,
    stop: &'a AtomicBool,
}

impl<'a> Starting<'a> {
    /// The session, once the rcd listens: at once if it already does.
    pub fn ready(mut self) -> Result<Session<'a>, RemoteError> {
        let port = loop {
            match self.port.recv_timeout(STOP_POLL) {
                Ok(port) => break Ok(port),
                Err(RecvTimeoutError::Timeout) if self.stop.load(Ordering::SeqCst) => {
                    break Err("the run is being stopped".to_string());
                }
                Err(RecvTimeoutError::Timeout) if self.started.elapsed() > START_BOUND => {
                    break Err(format!(
                        "it did not listen within {} s",
                        START_BOUND.as_secs()
                    ));
                }
                Err(RecvTimeoutError::Timeout) => {}
                // It ended (or closed its log) without listening.
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().map(|child| {
                        let _ = child.kill();
                        child.wait()
                    });
                    let tail = self
                        .stderr
                        .take()
                        .and_then(|h| h.join().ok())
                        .unwrap_or_default();
                    break Err(last_error_line(&tail).unwrap_or_else(|| match status {
                        Some(Ok(status)) => format!("it ended ({status})"),
                        Some(Err(e)) => format!("it ended: {e}"),
                        None => "it ended".to_string(),
                    }));
                }
            }
        };
        // Dropping `self` on an error kills and reaps the rcd.
        let port = port.map_err(|message| RemoteError::Start { message })?;
        let Some(child) = self.child.take() else {
            return Err(RemoteError::Start {
                message: "it ended".to_string(),
            });
        };
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{}", self.password));
        let agent = ureq::Agent::config_builder()
            .proxy(None)
            .http_status_as_error(false)
            .user_agent(concat!("backupctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Session {
            child,
            url: format!("http://127.0.0.1:{port}/"),
            authorization: format!("Basic {credentials}"),
            agent,
            stop: self.stop,
        })
    }
}

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Session<'_> {
    /// The files directly in `target` (none when the directory does not
    /// exist yet).
    pub fn list(&self, target: &RemoteTarget) -> Result<Vec<RemoteFile>, RemoteError> {
        #[derive(Deserialize)]
        struct Listing {
            list: Vec<LsJson>,
        }
        let location = target.as_str();
        let params = json!({
            "fs": location,
            "remote": "",
            "opt": {"filesOnly": true, "noMimeType": true, "noModTime": true},
        });
        let body = match self.request("list", location, &params, Some(REQUEST_BOUND))? {
            Ok(body) => body,
            Err(failed) if failed.not_found() => return Ok(Vec::new()),
            Err(failed) => return Err(failed.into_error("list", location.to_string())),
        };
        let listing: Listing = parse("list", location, &body)?;
        Ok(listing
            .list
            .into_iter()
            .filter(|e| !e.is_dir)
            .map(RemoteFile::from)
            .collect())
    }

    /// The file `name` in `target` (its size, and its SHA-256 where the
    /// backend keeps one); `None` when it is not there.
    pub fn stat(
        &self,
        target: &RemoteTarget,
        name: &str,
    ) -> Result<Option<RemoteFile>, RemoteError> {
        #[derive(Deserialize)]
        struct Stat {
            item: Option<LsJson>,
        }
        let location = target.join(name);
        let params = json!({
            "fs": target.as_str(),
            "remote": name,
            "opt": {"noMimeType": true, "showHash": true, "hashTypes": ["sha256"]},
        });
        let body = self.call("stat", &location, &params, Some(REQUEST_BOUND))?;
        let stat: Stat = parse("stat", &location, &body)?;
        Ok(stat.item.filter(|e| !e.is_dir).map(RemoteFile::from))
    }

    /// Uploads `local` as `target/name`: first under a hidden temporary name
    /// (`.NAME.RANDOM.partial`), then moved onto `name`, so nothing partial
    /// ever sits under the final name. An upload cut short leaves only the
    /// temporary file, which [`Session::list`] shows and the caller removes.
    pub fn upload(
        &self,
        local: &Path,
        target: &RemoteTarget,
        name: &str,
    ) -> Result<(), RemoteError> {
        let not_utf8 = || RemoteError::NotUtf8 {
            path: local.to_path_buf(),
        };
        // An absolute directory: a relative one with a colon would name a
        // remote.
        let local = std::path::absolute(local).map_err(|_| not_utf8())?;
        let (Some(dir), Some(file)) = (
            local.parent().and_then(Path::to_str),
            local.file_name().and_then(|f| f.to_str()),
        ) else {
            return Err(not_utf8());
        };
        let temp = primitives::temporary_name(std::ffi::OsStr::new(name), "partial");
        let temp = temp.to_string_lossy();
        let location = target.join(name);
        let fs = target.as_str();
        self.call(
            "copyfile",
            &location,
            &json!({"srcFs": dir, "srcRemote": file, "dstFs": fs, "dstRemote": temp}),
            None,
        )?;
        self.call(
            "movefile",
            &location,
            &json!({"srcFs": fs, "srcRemote": temp, "dstFs": fs, "dstRemote": name}),
            None,
        )
        .map(drop)
    }

    /// Deletes the one file `name` in `target`; one already gone is fine.
    pub fn delete(&self, target: &RemoteTarget, name: &str) -> Result<(), RemoteError> {
        let location = target.join(name);
        let params = json!({"fs": target.as_str(), "remote": name});
        match self.request("deletefile", &location, &params, Some(REQUEST_BOUND))? {
            Ok(_) => Ok(()),
            Err(failed) if failed.not_found() => Ok(()),
            Err(failed) => Err(failed.into_error("deletefile", location)),
        }
    }

    /// `request`, with a refusal an error.
    fn call(
        &self,
        action: &'static str,
        location: &str,
        params: &Value,
        bound: Option<Duration>,
    ) -> Result<Vec<u8>, RemoteError> {
        self.request(action, location, params, bound)?
            .map_err(|failed| failed.into_error(action, location.to_string()))
    }

    /// Sends `operations/ACTION` with `params` and waits for the answer
    /// (at most `bound`, if any), looking at the stop flag meanwhile: once
    /// it is set, the rcd is killed (whatever it was doing) and this is
    /// [`RemoteError::Stopped`].
    fn request(
        &self,
        action: &'static str,
        location: &str,
        params: &Value,
        bound: Option<Duration>,
    ) -> Result<Result<Vec<u8>, Failed>, RemoteError> {
        let stopped = || RemoteError::Stopped {
            action,
            location: location.to_string(),
        };
        if self.stop.load(Ordering::SeqCst) {
            return Err(stopped());
        }
        let url = format!("{}operations/{action}", self.url);
        let body = params.to_string();
        let (done, answer) = mpsc::channel();
        let answer = std::thread::scope(|scope| {
            scope.spawn(|| {
                let _ = done.send(self.send(&url, &body, bound));
            });
            loop {
                match answer.recv_timeout(STOP_POLL) {
                    Ok(answer) if !self.stop.load(Ordering::SeqCst) => return Some(answer),
                    Err(RecvTimeoutError::Timeout) if !self.stop.load(Ordering::SeqCst) => {}
                    _ => {
                        // The request ends once its connection is gone.
                        self.kill();
                        return None;
                    }
                }
            }
        });
        let (status, body) = match answer.ok_or_else(stopped)? {
            Ok(answer) => answer,
            Err(ureq::Error::BodyExceedsLimit(_)) => {
                return Err(RemoteError::TooLarge {
                    action,
                    location: location.to_string(),
                });
            }
            Err(source) => {
                return Err(RemoteError::NoAnswer {
                    action,
                    location: location.to_string(),
                    source: Box::new(source),
                });
            }
        };
        if status == 200 {
            return Ok(Ok(body));
        }
        let message = serde_json::from_slice::<Refusal>(&body)
            .ok()
            .map(|r| r.error)
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| format!("HTTP status {status}"));
        Ok(Err(Failed {
            status,
            message: primitives::redact_urls(&message),
        }))
    }

    fn send(
        &self,
        url: &str,
        body: &str,
        bound: Option<Duration>,
    ) -> Result<(u16, Vec<u8>), ureq::Error> {
        let mut response = self
            .agent
            .post(url)
            .header("Authorization", &self.authorization)
            .header("Content-Type", "application/json")
            .config()
            .timeout_global(bound)
            .build()
            .send(body)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_LIMIT as u64)
            .read_to_vec()?;
        Ok((status, body))
    }

    /// Kills the rcd (not yet reaped: its pid is still its own).
    fn kill(&self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    action: &'static str,
    location: &str,
    body: &[u8],
) -> Result<T, RemoteError> {
    serde_json::from_slice(body).map_err(|source| RemoteError::Unreadable {
        action,
        location: location.to_string(),
        source,
    })
}

/// The port in the rcd's `Serving remote control on
/// http://127.0.0.1:PORT/` line, once `log` holds it whole.
fn serving_port(log: &[u8]) -> Option<u16> {
    let log = String::from_utf8_lossy(log);
    let (_, rest) = log.split_once(SERVING)?;
    let (port, _) = rest.split_once('/')?;
    port.parse().ok().filter(|&port| port != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_read_from_the_whole_serving_line() {
        let line =
            b"2026/11/24 19:28:47 NOTICE: Serving remote control on http://127.0.0.1:38273/\n";
        assert_eq!(serving_port(line), Some(38273));
        assert_eq!(serving_port(&line[..line.len() - 3]), None);
        assert_eq!(serving_port(b"NOTICE: Config file not found\n"), None);
        assert_eq!(
            serving_port(b"Serving remote control on http://0.0.0.0:5572/\n"),
            None
        );
    }
}
