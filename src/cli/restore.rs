//! `restore ARCHIVE --to DIR [--force]`: extracts an archive into DIR safely
//! (see `archive::restore`): a hostile archive is refused before anything is
//! written, existing files are kept unless `--force`. An incremental is
//! restored with its chain (see `archive::chain_restore`). Prints each
//! restored path.

use std::path::{Path, PathBuf};

use super::{Context, print_lines};
use crate::archive::chain_restore;
use crate::archive::restore::{ManifestCheck, RestoreJob};
use crate::archive::stored::{Input, StreamSource};
use crate::error::Error;
use crate::exit_codes::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// An archive file name in backups/, or a path to an archive
    #[arg(allow_hyphen_values = true)]
    pub archive: String,
    /// The directory to restore into (created if missing)
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Replace existing files and symlinks (never directories)
    #[arg(long)]
    pub force: bool,
    /// Decrypt an encrypted archive (.age) with this key: an age identity
    /// file or an OpenSSH private key
    #[arg(long, value_name = "KEY")]
    pub identity: Option<PathBuf>,
    /// Restore from the copy on the schedule's remote (copy-to), streamed,
    /// even when the archive is still in backups/ (without it, the remote
    /// copy is used only when the local archive is gone)
    #[arg(long)]
    pub remote: bool,
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let (to, force) = (args.to.as_path(), args.force);
    let identities = super::load_identities(ctx, args.identity.as_deref())?;
    let local = if args.remote {
        Err(Error::NoSuchArchive {
            archive: args.archive.clone(),
        })
    } else {
        resolve(ctx, &args.archive)
    };
    // The remote copy, when the local archive is gone (or --remote).
    let remote = match &local {
        Ok(_) => None,
        Err(_) => super::remote::restore_source(ctx, &args.archive)?,
    };
    let opener = remote
        .as_ref()
        .map(|(rclone, location, _)| super::remote::cat_opener(rclone, location));
    let stream = match (&remote, &opener) {
        (Some((_, _, manifest)), Some(open)) => Some(StreamSource {
            open,
            manifest: manifest.clone(),
        }),
        _ => None,
    };
    let (archive, shown) = match (&remote, local) {
        (Some((_, location, _)), _) => (PathBuf::from(&args.archive), location.clone()),
        (None, local) => {
            let archive = local?;
            let shown = ctx.home.display_path(&archive);
            (archive, shown)
        }
    };
    let job = RestoreJob {
        archive: &archive,
        destination: to,
        force,
        input: Input {
            stream: stream.as_ref(),
            identities: identities.as_ref(),
        },
    };
    let mut printed = Ok(());
    let report = chain_restore::restore_chain(&job, &mut |path| {
        if printed.is_ok() {
            printed = print_lines([path.display().to_string()]);
        }
    })?;
    printed?;
    match &report.manifest {
        ManifestCheck::Matched => {}
        ManifestCheck::Missing => eprintln!(
            "{}: warning: {shown} has no manifest; its integrity was not checked",
            ctx.program
        ),
        ManifestCheck::Unreadable(why) => eprintln!(
            "{}: warning: the manifest of {shown} cannot be read ({why}); its integrity was not checked",
            ctx.program
        ),
    }
    for (path, why) in &report.skipped {
        eprintln!(
            "{}: warning: {} not restored: {why}",
            ctx.program,
            path.display()
        );
    }
    log::info!(
        "Restored {} entries from {shown} into {}{}",
        report.restored,
        to.display(),
        if force { " (--force)" } else { "" }
    );
    Ok(ExitCode::Success)
}

/// An archive file name in `backups/`, or a path.
fn resolve(ctx: &Context, archive: &str) -> Result<PathBuf, Error> {
    let in_backups = ctx.home.backups_dir().join(archive);
    if !archive.contains('/') && !archive.starts_with('.') && in_backups.is_file() {
        return Ok(in_backups);
    }
    let path = Path::new(archive);
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    Err(Error::NoSuchArchive {
        archive: archive.to_string(),
    })
}
