//! `verify [NAME|ARCHIVE…] [--all] [--json]`: checks archives against their
//! manifests (SHA-256 and size) and reads each one through, printing `OK` or
//! `FAILED` with the reason per archive. Exit 1 if any failed.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Context, print_json, print_lines};
use crate::archive::verify::{self, Verified};
use crate::backup::{self, History};
use crate::error::Error;
use crate::exit_codes::ExitCode;

/// One archive's result in `verify --json`.
#[derive(Debug, Serialize)]
struct VerifyJson {
    archive: String,
    path: String,
    ok: bool,
    error: Option<String>,
    sha256: Option<String>,
    size: Option<u64>,
    entries: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Schedule names (all their archives), archive file names in backups/,
    /// or paths to archives (after `--` when one starts with '-')
    #[arg(conflicts_with = "all")]
    pub targets: Vec<String>,
    /// Verify every archive in backups/
    #[arg(long)]
    pub all: bool,
    /// Print the results as JSON (shape in docs/archives.md)
    #[arg(long)]
    pub json: bool,
    /// Decrypt encrypted archives (.age) with this key (an age identity
    /// file or an OpenSSH private key) and check their plaintext too;
    /// without it only their stored SHA-256 and size are checked
    #[arg(long, value_name = "KEY")]
    pub identity: Option<PathBuf>,
    /// Verify the copies on the remote of the schedules named (or of every
    /// schedule with copy-to): the remote's SHA-256 where the backend keeps
    /// one, else each copy streamed and checked against its manifest
    #[arg(long, conflicts_with_all = ["all", "json"])]
    pub remote: bool,
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let json = args.json;
    let identities = super::load_identities(ctx, args.identity.as_deref())?;
    if args.remote {
        return super::remote::verify(ctx, &args.targets, identities.as_ref());
    }
    let archives = if args.all {
        every_archive(ctx)?
    } else if args.targets.is_empty() {
        return Err(Error::NothingToVerify);
    } else {
        let mut found = Vec::new();
        for target in &args.targets {
            for path in resolve(ctx, target)? {
                if !found.contains(&path) {
                    found.push(path);
                }
            }
        }
        found
    };
    if archives.is_empty() {
        eprintln!("{}: no archives in backups/ to verify", ctx.program);
    }
    let mut results = Vec::new();
    for path in &archives {
        let shown = ctx.home.display_path(path);
        let result = verify::verify_with(path, identities.as_ref());
        match &result {
            Ok(v) => log::info!("Verified {shown}: OK ({} entries)", v.entries),
            Err(failure) => log::error!("Verification failed for {shown}: {failure}"),
        }
        if !json {
            // Text results appear as they come: a long check shows progress.
            print_lines([result_line(&shown, &result)])?;
        }
        results.push((path, shown, result));
    }
    let failed = results.iter().filter(|(_, _, r)| r.is_err()).count();
    if json {
        let json: Vec<VerifyJson> = results
            .iter()
            .map(|(path, shown, result)| to_json(path, shown, result))
            .collect();
        print_json(&json)?;
    }
    Ok(if failed > 0 {
        let summary = format!("{failed} of {} archives failed verification", results.len());
        eprintln!("{}: {summary}", ctx.program);
        log::error!("{summary}");
        ExitCode::Failure
    } else {
        ExitCode::Success
    })
}

/// `OK backups/x.tar` or `FAILED backups/x.tar: reason`.
fn result_line(shown: &str, result: &Result<Verified, verify::Failure>) -> String {
    match result {
        Ok(v) if !v.read_through => format!(
            "OK {shown} (encrypted: stored size and SHA-256 checked; --identity KEY reads it through)"
        ),
        Ok(_) => format!("OK {shown}"),
        Err(failure) => format!("FAILED {shown}: {failure}"),
    }
}

fn to_json(path: &Path, shown: &str, result: &Result<Verified, verify::Failure>) -> VerifyJson {
    let archive = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    match result {
        Ok(v) => VerifyJson {
            archive,
            path: shown.to_string(),
            ok: true,
            error: None,
            sha256: Some(v.sha256.clone()),
            size: Some(v.size),
            entries: Some(v.entries),
        },
        Err(failure) => VerifyJson {
            archive,
            path: shown.to_string(),
            ok: false,
            error: Some(failure.to_string()),
            sha256: None,
            size: None,
            entries: None,
        },
    }
}

/// Every archive file in `backups/` (manifests and other files left out).
fn every_archive(ctx: &Context) -> Result<Vec<PathBuf>, Error> {
    let dir = ctx.home.backups_dir();
    Ok(backup::archive_names(&dir)
        .map_err(|e| Error::io("list", &dir, e))?
        .into_iter()
        .map(|name| dir.join(name))
        .filter(|path| verify::format_of(path).is_some())
        .collect())
}

/// A target is, in this order: an archive file name in `backups/`, a schedule
/// name (all its archives, also those of a deleted schedule), or a path.
fn resolve(ctx: &Context, target: &str) -> Result<Vec<PathBuf>, Error> {
    let dir = ctx.home.backups_dir();
    if !target.contains('/') && !target.starts_with('.') && dir.join(target).is_file() {
        return Ok(vec![dir.join(target)]);
    }
    let archives = History::named(&ctx.home, target)
        .list()
        .map_err(|e| Error::io("list", &dir, e))?;
    let is_schedule = ctx
        .store
        .load()?
        .iter()
        .any(|entry| matches!(&entry.parsed, Ok(s) if s.name == target));
    if !archives.is_empty() {
        return Ok(archives.into_iter().map(|a| a.path).collect());
    }
    if is_schedule {
        return Err(Error::NoArchivesToVerify {
            schedule: target.to_string(),
        });
    }
    let path = Path::new(target);
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    Err(Error::NoVerifyTarget {
        target: target.to_string(),
    })
}
