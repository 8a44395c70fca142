//! The copy of a schedule's archives to its remote (`copy-to=REMOTE:PATH`),
//! run after each new archive is published and pruned locally.
//!
//! Each attempt drives one `rclone rcd` (`remote::Session`). Each archive is
//! uploaded under a temporary name and moved onto its own
//! (`remote::Session::upload`), then checked on the remote (size, and SHA-256
//! where the backend keeps one); only then is the copy recorded in the
//! local manifest (`remote_copy`: where, and when it was checked), and that
//! manifest uploaded the same way, last. So a manifest on the remote always
//! follows a complete archive, and an archive whose manifest does not
//! record its copy is uploaded again by the next run: a run whose copy
//! failed leaves the remote to catch up later, oldest first.
//!
//! Remote retention: what retention deletes locally is deleted on the
//! remote by exact name (the archive, then its manifest), never anything
//! else there; `remote-keep=N` keeps the N newest copies of the schedule
//! on the remote beyond what is kept locally.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};

use super::history::{self, History, file_name};
use crate::archive::manifest::{self, Manifest};
use crate::model::{RemoteCopy, RemoteTarget};
use crate::remote::{Rclone, RemoteError, RemoteFile, Session, Starting};
use crate::store::Untrusted;

/// Environment variable: how long (whole seconds) a run keeps retrying a
/// failed copy before it ends `copy-failed`. Default 300. The tests set it
/// small.
pub const RETRY_FOR_VAR: &str = "BACKUPCTL_COPY_RETRY_FOR";

const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(300);
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(60);
const ABORT_POLL: Duration = Duration::from_millis(50);

/// A copy that did not complete within the retry bound.
#[derive(Debug, thiserror::Error)]
#[error(
    "copy to {target} failed ({attempts} attempts); the archive stays in backups/ and the next run uploads what is missing"
)]
pub struct CopyError {
    pub target: String,
    pub attempts: u32,
    #[source]
    pub source: CopyStepError,
}

/// One failed step of a copy.
#[derive(Debug, thiserror::Error)]
pub enum CopyStepError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("cannot read or record the manifest of {}", path.display())]
    Manifest {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot list the archives in {}", path.display())]
    List {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("copy-to refused: {0}")]
    Untrusted(Untrusted),
}

/// The copy not even tried: the schedule file may not be trusted with it.
pub fn refused(target: &RemoteTarget, untrusted: Untrusted) -> CopyError {
    log::warn!("copy to {target} refused: {untrusted}");
    copy_error(target, 0, CopyStepError::Untrusted(untrusted))
}

/// What a copy did.
#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    /// Archives uploaded (and checked), as `REMOTE:PATH/NAME`, oldest first.
    pub uploaded: Vec<String>,
    /// Archives deleted on the remote by retention.
    pub deleted: Vec<String>,
    /// The copy of the newest archive.
    pub newest: Option<RemoteCopy>,
}

/// Brings `target` up to date with the schedule's archives in `history`,
/// retrying with backoff for at most the retry bound ([`RETRY_FOR_VAR`]).
/// `pruned` are the archives retention just deleted locally; `early` the
/// rclone the run started for the copy while it wrote the archive, used by
/// the first attempt.
pub fn sync(
    history: &History,
    target: &RemoteTarget,
    remote_keep: Option<u32>,
    pruned: &[PathBuf],
    now: DateTime<Utc>,
    abort: &AtomicBool,
    mut early: Option<Starting<'_>>,
) -> Result<CopyReport, CopyError> {
    let deadline = Instant::now() + retry_for();
    let mut delay = FIRST_DELAY;
    let mut attempts = 0;
    let mut report = CopyReport::default();
    loop {
        attempts += 1;
        let started = Instant::now();
        let session = match early.take() {
            Some(starting) => starting.ready(),
            None => Rclone::find().and_then(|rclone| rclone.stopped_by(abort).session()),
        };
        let job = Job {
            history,
            target,
            remote_keep,
            pruned,
            now,
        };
        let attempt = session
            .map_err(CopyStepError::from)
            .and_then(|session| sync_once(&session, job, started, &mut report));
        match attempt {
            Ok(()) => return Ok(report),
            // No rclone: retrying will not install it.
            Err(error @ CopyStepError::Remote(RemoteError::NotInstalled)) => {
                return Err(copy_error(target, attempts, error));
            }
            Err(error) if Instant::now() + delay < deadline && !abort.load(Ordering::SeqCst) => {
                log::warn!(
                    "copy of {} to {target} failed, retrying in {:.1} s: {}",
                    history.name(),
                    delay.as_secs_f64(),
                    crate::primitives::error_chain(&error)
                );
                // In short steps, so that a request to stop (the service's
                // second signal, Ctrl-C) ends the wait at once.
                let until = Instant::now() + delay;
                while Instant::now() < until && !abort.load(Ordering::SeqCst) {
                    std::thread::sleep(ABORT_POLL);
                }
                delay = (delay * 2).min(MAX_DELAY);
            }
            Err(error) => return Err(copy_error(target, attempts, error)),
        }
    }
}

fn copy_error(target: &RemoteTarget, attempts: u32, source: CopyStepError) -> CopyError {
    CopyError {
        target: target.as_str().to_string(),
        attempts,
        source,
    }
}

fn retry_for() -> Duration {
    std::env::var(RETRY_FOR_VAR)
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(DEFAULT_RETRY_FOR, Duration::from_secs)
}

/// What each attempt of a copy is given (the arguments of [`sync`]).
#[derive(Clone, Copy)]
struct Job<'a> {
    history: &'a History,
    target: &'a RemoteTarget,
    remote_keep: Option<u32>,
    pruned: &'a [PathBuf],
    now: DateTime<Utc>,
}

/// One attempt, through `rclone`'s rcd. `started` is when the attempt
/// began: the first archive's time counts the wait for the rcd and the
/// listing, what the copy costs beyond a bare `rclone copyto`.
fn sync_once(
    rclone: &Session,
    job: Job<'_>,
    mut started: Instant,
    report: &mut CopyReport,
) -> Result<(), CopyStepError> {
    let Job {
        history,
        target,
        remote_keep,
        pruned,
        now,
    } = job;
    let mut remote = rclone.list(target)?;
    remove_partial_uploads(rclone, history, target, &remote)?;
    let owned = history.owned().map_err(|source| CopyStepError::List {
        path: history.dir().to_path_buf(),
        source,
    })?;
    for archive in &owned {
        let name = archive.name();
        let mut manifest =
            history
                .read_manifest(&archive.path)
                .map_err(|source| CopyStepError::Manifest {
                    path: manifest::manifest_path(&archive.path),
                    source,
                })?;
        let location = target.join(&name);
        if is_copied(&manifest, &location, &remote) {
            report.newest = manifest.remote_copy.clone();
            continue;
        }
        rclone.upload(&archive.path, target, &name)?;
        let hashed = check_copy(rclone, target, &name, &manifest)?;
        let copy = RemoteCopy {
            location: location.clone(),
            verified: now,
        };
        manifest.remote_copy = Some(copy.clone());
        manifest::write_manifest(&archive.path, &manifest).map_err(|source| {
            CopyStepError::Manifest {
                path: manifest::manifest_path(&archive.path),
                source,
            }
        })?;
        let manifest_path = manifest::manifest_path(&archive.path);
        rclone.upload(&manifest_path, target, &format!("{name}.json"))?;
        let seconds = started.elapsed().as_secs_f64();
        log::info!(
            "Copied {} to {location} ({} in {seconds:.2} s, {:.1} MiB/s; size{} checked on the remote)",
            name,
            crate::primitives::human_bytes(manifest.archive_size),
            manifest.archive_size as f64 / seconds.max(1e-9) / crate::primitives::MIB,
            if hashed { " and SHA-256" } else { "" }
        );
        started = Instant::now();
        report.uploaded.push(location);
        report.newest = Some(copy);
        remote.push(RemoteFile {
            name,
            size: manifest.archive_size,
            sha256: None,
        });
    }
    let kept: HashSet<String> = owned.iter().map(|a| a.name()).collect();
    for name in remote_deletions(history.name(), &remote, &kept, remote_keep, pruned) {
        let location = target.join(&name);
        rclone.delete(target, &name)?;
        rclone.delete(target, &format!("{name}.json"))?;
        log::info!("Pruned {location} on the remote (retention)");
        if !report.deleted.contains(&location) {
            report.deleted.push(location);
        }
    }
    Ok(())
}

/// True when the manifest records a copy at `location` and the remote
/// listing holds a file there of the archive's size, and its manifest: a
/// copy deleted or cut on the remote since, or a run killed between
/// recording the copy and uploading the manifest, is uploaded again.
fn is_copied(manifest: &Manifest, location: &str, remote: &[RemoteFile]) -> bool {
    let name = location.rsplit(['/', ':']).next().unwrap_or_default();
    let manifest_name = format!("{name}.json");
    manifest
        .remote_copy
        .as_ref()
        .is_some_and(|copy| copy.location == location)
        && remote
            .iter()
            .any(|f| f.name == name && f.size == manifest.archive_size)
        && remote.iter().any(|f| f.name == manifest_name)
}

/// Checks the uploaded copy against the manifest: its size, and its
/// SHA-256 when the backend keeps one (then true).
fn check_copy(
    rclone: &Session,
    target: &RemoteTarget,
    name: &str,
    manifest: &Manifest,
) -> Result<bool, RemoteError> {
    let location = &target.join(name);
    let Some(file) = rclone.stat(target, name)? else {
        return Err(RemoteError::Missing {
            location: location.to_string(),
        });
    };
    if file.size != manifest.archive_size {
        return Err(RemoteError::Size {
            location: location.to_string(),
            actual: file.size,
            expected: manifest.archive_size,
        });
    }
    match file.sha256 {
        Some(sha256) if !sha256.eq_ignore_ascii_case(&manifest.sha256) => {
            Err(RemoteError::Checksum {
                location: location.to_string(),
                actual: sha256,
                expected: manifest.sha256.clone(),
            })
        }
        Some(_) => Ok(true),
        None => Ok(false),
    }
}

/// Removes what an interrupted upload of this schedule left on the remote:
/// hidden temporary names of its archives or manifests.
fn remove_partial_uploads(
    rclone: &Session,
    history: &History,
    target: &RemoteTarget,
    remote: &[RemoteFile],
) -> Result<(), RemoteError> {
    for file in remote {
        let Some(of) = history::temporary_target(&file.name, "partial") else {
            continue;
        };
        let archive = of.strip_suffix(".json").unwrap_or(of);
        if history::parse_for_schedule(archive, history.name()).is_some() {
            rclone.delete(target, &file.name)?;
            log::warn!(
                "removed {} left on the remote by an interrupted upload",
                target.join(&file.name)
            );
        }
    }
    Ok(())
}

/// The archives to delete on the remote: those retention just deleted
/// locally, unless `remote_keep` keeps them among the schedule's N newest
/// on the remote; with `remote_keep`, also the schedule's older copies
/// beyond those N that are no longer kept locally.
fn remote_deletions(
    schedule: &str,
    remote: &[RemoteFile],
    kept_locally: &HashSet<String>,
    remote_keep: Option<u32>,
    pruned: &[PathBuf],
) -> Vec<String> {
    let pruned: Vec<String> = pruned.iter().map(|p| file_name(p)).collect();
    let Some(keep) = remote_keep else {
        return pruned;
    };
    // The schedule's stamped archives on the remote, newest first.
    let mut ours: Vec<(NaiveDateTime, String)> = remote
        .iter()
        .filter(|f| !f.name.starts_with('.'))
        .filter_map(|f| {
            let (_, stamp) = history::parse_for_schedule(&f.name, schedule)?;
            Some((stamp?, f.name.clone()))
        })
        .collect();
    ours.sort();
    ours.reverse();
    ours.into_iter()
        .skip(keep as usize)
        .map(|(_, name)| name)
        .filter(|name| !kept_locally.contains(name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> RemoteFile {
        RemoteFile {
            name: name.into(),
            size: 1,
            sha256: None,
        }
    }

    #[test]
    fn a_copy_counts_once_the_remote_holds_it_and_its_manifest() {
        let mut manifest = Manifest::sample("d", "d.tar");
        manifest.archive_size = 1;
        let location = "r:p/d.tar";
        manifest.remote_copy = Some(RemoteCopy {
            location: location.into(),
            verified: chrono::DateTime::UNIX_EPOCH,
        });
        assert!(is_copied(
            &manifest,
            location,
            &[file("d.tar"), file("d.tar.json")]
        ));
        assert!(!is_copied(&manifest, location, &[file("d.tar")]));
        assert!(!is_copied(
            &manifest,
            "r:q/d.tar",
            &[file("d.tar"), file("d.tar.json")]
        ));
        manifest.archive_size = 2;
        assert!(!is_copied(
            &manifest,
            location,
            &[file("d.tar"), file("d.tar.json")]
        ));
    }

    #[test]
    fn the_remote_loses_only_what_retention_deleted_unless_it_keeps_more() {
        let remote: Vec<RemoteFile> = [
            "d_20250101_000000.tar",
            "d_20250101_000000.tar.json",
            "d_20250102_000000.tar",
            "d_20250103_000000.tar",
            "d_1_20250101_000000.tar",
            "notes.txt",
        ]
        .map(file)
        .to_vec();
        let local: HashSet<String> = ["d_20250103_000000.tar".to_string()].into();
        let pruned = [PathBuf::from("backups/d_20250102_000000.tar")];
        assert_eq!(
            remote_deletions("d", &remote, &local, None, &pruned),
            ["d_20250102_000000.tar"]
        );
        assert_eq!(
            remote_deletions("d", &remote, &local, Some(2), &pruned),
            ["d_20250101_000000.tar"]
        );
        assert!(remote_deletions("d", &remote, &local, Some(5), &pruned).is_empty());
    }
}
