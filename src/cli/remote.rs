//! The remote side of `backups --remote`, `verify --remote` and `restore`
//! (from the copy when the local archive is gone): a schedule's copies on
//! its `copy-to` remote, found by their exact names, with the manifests
//! uploaded beside them.

use std::io::Read;

use serde::Serialize;

use super::{Context, print_json, print_lines};
use crate::archive::encrypt::Identities;
use crate::archive::manifest::Manifest;
use crate::archive::verify::{self, Failure, Problem, Stream, Verified};
use crate::backup::history;
use crate::error::Error;
use crate::exit_codes::ExitCode;
use crate::model::{Format, RemoteTarget, is_encrypted_name};
use crate::primitives::{error_chain, human_bytes, quote};
use crate::remote::{Rclone, RemoteError, RemoteFile, Session};
use crate::store::Schedule;

/// The largest manifest read from a remote: a manifest is a few KiB; a
/// hostile remote must not make us read gigabytes.
const MANIFEST_LIMIT: u64 = 16 << 20;

/// A schedule's archive on its remote.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteArchive {
    pub schedule: String,
    pub archive: String,
    pub location: String,
    pub size: u64,
    /// The remote's own SHA-256, where the backend keeps one.
    pub sha256: Option<String>,
}

/// The schedules named (or, with none, every schedule) that have a
/// `copy-to`, with their targets. A named schedule without one is refused.
fn schedules_with_copies(
    ctx: &Context,
    names: &[String],
) -> Result<Vec<(Schedule, RemoteTarget)>, Error> {
    let all: Vec<Schedule> = ctx
        .store
        .load()?
        .into_iter()
        .filter_map(|entry| entry.parsed.ok())
        .collect();
    if names.is_empty() {
        return Ok(all
            .into_iter()
            .filter_map(|s| s.options.copy_to.clone().map(|t| (s, t)))
            .collect());
    }
    let mut found = Vec::new();
    for name in names {
        let schedule = all
            .iter()
            .find(|s| &s.name == name)
            .ok_or_else(|| Error::NoRemote { name: name.clone() })?;
        let target = schedule
            .options
            .copy_to
            .clone()
            .ok_or_else(|| Error::NoRemote { name: name.clone() })?;
        found.push((schedule.clone(), target));
    }
    Ok(found)
}

/// The schedule's archives on `target`, oldest name first (the names sort
/// by their stamp).
fn list(
    rclone: &Session,
    schedule: &str,
    target: &RemoteTarget,
) -> Result<Vec<RemoteArchive>, RemoteError> {
    let mut archives: Vec<RemoteArchive> = rclone
        .list(target)?
        .into_iter()
        .filter(|f| !f.name.starts_with('.'))
        .filter(|f| history::parse_for_schedule(&f.name, schedule).is_some())
        .map(|RemoteFile { name, size, sha256 }| RemoteArchive {
            schedule: schedule.to_string(),
            location: target.join(&name),
            archive: name,
            size,
            sha256,
        })
        .collect();
    archives.sort_by(|a, b| a.archive.cmp(&b.archive));
    Ok(archives)
}

/// `backups --remote [NAME]`: each copy's location (`--long`: with its
/// size), then a total line.
pub fn backups(
    ctx: &Context,
    name: Option<&str>,
    long: bool,
    json: bool,
) -> Result<ExitCode, Error> {
    let names: Vec<String> = name.map(str::to_string).into_iter().collect();
    let rclone = Rclone::find()?.session()?;
    let mut all = Vec::new();
    for (schedule, target) in schedules_with_copies(ctx, &names)? {
        all.extend(list(&rclone, &schedule.name, &target)?);
    }
    log::info!("Show remote backups list");
    if json {
        print_json(&all)?;
        return Ok(ExitCode::Success);
    }
    let total = all.iter().map(|a| a.size).sum();
    let noun = if all.len() == 1 { "copy" } else { "copies" };
    let lines = all.iter().map(|a| {
        if long {
            format!("{:>10}  {}", human_bytes(a.size), a.location)
        } else {
            a.location.clone()
        }
    });
    print_lines(lines.chain([format!(
        "{} {noun}, {} in total",
        all.len(),
        human_bytes(total)
    )]))?;
    Ok(ExitCode::Success)
}

/// The manifest uploaded beside `location`.
fn fetch_manifest(rclone: &Rclone, location: &str) -> Result<Manifest, Problem> {
    let manifest_location = format!("{location}.json");
    let mut text = Vec::new();
    rclone
        .cat(&manifest_location)
        .map_err(|e| Problem::Unreadable {
            source: std::io::Error::other(e),
        })?
        .take(MANIFEST_LIMIT)
        .read_to_end(&mut text)
        .map_err(|_| Problem::NoManifest)?;
    serde_json::from_slice(&text).map_err(|e| Problem::BadManifest {
        path: manifest_location.into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

/// Checks one copy: the remote's SHA-256 and size against the manifest where
/// the backend keeps a SHA-256 (and no key asks for more), else the copy
/// streamed through `rclone cat` and checked like a local archive.
fn verify_copy(
    rclone: &Rclone,
    archive: &RemoteArchive,
    identities: Option<&Identities>,
) -> Result<Verified, Failure> {
    let manifest = fetch_manifest(rclone, &archive.location)?;
    let format = Format::of_file_name(&archive.archive).ok_or(Problem::UnknownFormat)?;
    let encrypted = is_encrypted_name(&archive.archive);
    if let (Some(sha256), None) = (&archive.sha256, identities) {
        return match verify::compare(&manifest, archive.size, sha256) {
            None => Ok(Verified {
                sha256: sha256.clone(),
                size: archive.size,
                entries: manifest.entries,
                read_through: false,
            }),
            Some(problem) => Err(problem.into()),
        };
    }
    let stream = rclone
        .cat(&archive.location)
        .map_err(|e| Problem::Unreadable {
            source: std::io::Error::other(e),
        })?;
    let how = Stream {
        format,
        encrypted,
        identities,
    };
    verify::check_stream(&manifest, &archive.archive, how, stream)
}

/// `verify --remote [NAME…] [--identity KEY]`: every copy of the schedules
/// named (or of every schedule with `copy-to`).
pub fn verify(
    ctx: &Context,
    names: &[String],
    identities: Option<&Identities>,
) -> Result<ExitCode, Error> {
    let rclone = Rclone::find()?;
    let session = rclone.session()?;
    let mut checked = 0;
    let mut failed = 0;
    for (schedule, target) in schedules_with_copies(ctx, names)? {
        let copies = list(&session, &schedule.name, &target)?;
        if copies.is_empty() {
            eprintln!(
                "{}: schedule \"{}\" has no copies on {target}",
                ctx.program,
                quote(&schedule.name)
            );
        }
        for copy in copies {
            checked += 1;
            let line = match verify_copy(&rclone, &copy, identities) {
                Ok(v) => {
                    log::info!("Verified {}: OK", copy.location);
                    if v.read_through {
                        format!("OK {}", copy.location)
                    } else {
                        format!("OK {} (remote SHA-256 and size checked)", copy.location)
                    }
                }
                Err(failure) => {
                    failed += 1;
                    log::error!("Verification failed for {}: {failure}", copy.location);
                    format!("FAILED {}: {failure}", copy.location)
                }
            };
            print_lines([line])?;
        }
    }
    if failed > 0 {
        let summary = format!("{failed} of {checked} copies failed verification");
        eprintln!("{}: {summary}", ctx.program);
        log::error!("{summary}");
        return Ok(ExitCode::Failure);
    }
    Ok(ExitCode::Success)
}

/// The copy of `archive` (a file name) on the remote of the schedule it is
/// named for, with its manifest, ready for `restore` to stream; `None` when
/// no schedule with `copy-to` names it.
pub fn restore_source(
    ctx: &Context,
    archive: &str,
) -> Result<Option<(Rclone<'static>, String, Manifest)>, Error> {
    if archive.contains('/') {
        return Ok(None);
    }
    let schedules = schedules_with_copies(ctx, &[])?;
    let Some((_, target)) = schedules
        .iter()
        .find(|(s, _)| history::parse_for_schedule(archive, &s.name).is_some())
    else {
        return Ok(None);
    };
    let rclone = Rclone::find()?;
    if rclone.session()?.stat(target, archive)?.is_none() {
        return Ok(None);
    }
    let location = target.join(archive);
    let manifest = fetch_manifest(&rclone, &location).map_err(|problem| Error::RemoteManifest {
        location: location.clone(),
        why: error_chain(&problem),
    })?;
    Ok(Some((rclone, location, manifest)))
}

/// A `StreamSource` opener reading `location` through `rclone cat`.
pub fn cat_opener(
    rclone: &Rclone,
    location: &str,
) -> impl Fn() -> std::io::Result<Box<dyn Read + Send>> {
    let rclone = rclone.clone();
    let location = location.to_string();
    move || {
        rclone
            .cat(&location)
            .map(|stream| Box::new(stream) as Box<dyn Read + Send>)
            .map_err(std::io::Error::other)
    }
}
