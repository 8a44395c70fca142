//! `restore ARCHIVE|NAME [PATH…] [--include PATTERN] [--at TIME] --to DIR
//! [--force]`: extracts an archive (a schedule's newest, or its newest as of
//! TIME), or only the chosen paths, into DIR safely
//! (see `archive::restore`): a hostile archive is refused before anything is
//! written, existing files are kept unless `--force`. An incremental is
//! restored with its chain (see `archive::chain_restore`). Prints each
//! restored path; one warning line for each kind of thing that could not be
//! put back.

use std::path::PathBuf;

use chrono::NaiveDateTime;

use super::{Context, LinePrinter, archive_arg};
use crate::archive::chain_restore;
use crate::archive::restore::{ManifestCheck, RestoreJob};
use crate::archive::selection::Selection;
use crate::archive::stored::{Input, StreamSource};
use crate::error::Error;
use crate::exit_codes::ExitCode;
use crate::model::ExcludePattern;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// An archive file name in backups/, a path to an archive, or a
    /// schedule's name (its newest archive)
    #[arg(allow_hyphen_values = true)]
    pub archive: String,
    /// Restore only these paths of the archive (as `contents` prints them)
    /// and what is under them
    pub paths: Vec<PathBuf>,
    /// Restore only entries matching PATTERN (and what is under them), read
    /// as exclude= patterns are: without '/' it matches a name at any
    /// depth, with one it is anchored at the archive's root; repeatable
    #[arg(long, value_name = "PATTERN", value_parser = ExcludePattern::parse)]
    pub include: Vec<ExcludePattern>,
    /// With a schedule's name: its newest archive taken at or before this
    /// local time ("2026-11-20 18:00")
    #[arg(long, value_name = "TIME", value_parser = archive_arg::parse_at)]
    pub at: Option<NaiveDateTime>,
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
    #[arg(long, conflicts_with = "at")]
    pub remote: bool,
    /// As root, give files the user and group ids stored in the archive
    /// instead of looking up its user and group names on this machine
    #[arg(long)]
    pub numeric_owner: bool,
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    let (to, force) = (args.to.as_path(), args.force);
    let identities = super::load_identities(ctx, args.identity.as_deref())?;
    let local = if args.remote {
        Err(Error::NoSuchArchive {
            archive: args.archive.clone(),
        })
    } else {
        archive_arg::resolve(ctx, &args.archive, args.at)
    };
    // The remote copy, when the local archive is gone (or --remote); the
    // remote knows no --at, so then the local answer stands.
    let remote = match &local {
        Err(_) if args.at.is_none() => super::remote::restore_source(ctx, &args.archive)?,
        _ => None,
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
    let selection = Selection::new(&args.paths, args.include.clone());
    let job = RestoreJob {
        archive: &archive,
        destination: to,
        force,
        input: Input {
            stream: stream.as_ref(),
            identities: identities.as_ref(),
            pinned: None,
        },
        numeric_owner: args.numeric_owner,
        selection: &selection,
    };
    let mut printer = LinePrinter::new(ctx);
    let restored = chain_restore::restore_chain(&job, &mut |path| {
        printer.line(&path.display().to_string());
    });
    let printed = printer.finish();
    let report = restored?;
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
    let unrestored = &report.unrestored;
    if unrestored.owners > 0 {
        let line = format!(
            "not running as root: owners and set-uid/set-gid/sticky bits of {} entries were not restored",
            unrestored.owners
        );
        eprintln!("{}: warning: {line}", ctx.program);
        log::warn!("Restore of {shown}: {line}");
    }
    if let Some((path, why)) = &unrestored.first_attribute {
        let line = format!(
            "extended attributes or ACLs of {} entries could not be restored (first: {}: {why})",
            unrestored.attributes,
            path.display()
        );
        eprintln!("{}: warning: {line}", ctx.program);
        log::warn!("Restore of {shown}: {line}");
    }
    log::info!(
        "Restored {} entries from {shown} into {}{}",
        report.restored,
        to.display(),
        if force { " (--force)" } else { "" }
    );
    Ok(ExitCode::Success)
}
