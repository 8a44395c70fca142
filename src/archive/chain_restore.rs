//! Incremental chains read back: finding an archive's chain from the
//! manifests (each names its parent by file name and SHA-256), checking it
//! is whole, and restoring it: the full archive, then each incremental in
//! order after deleting what its directories no longer hold — what
//! `tar -x --listed-incremental=/dev/null` does for each archive in turn.
//!
//! Every archive of the chain, and every dumpdir in it, is checked before
//! anything is written or deleted.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::dumpdir;
use super::manifest::{self, Manifest};
use super::restore::{self, RestoreError, RestoreJob, RestoreReport};
use super::stored::Input;
use super::verify::format_of;
use sha2::{Digest, Sha256};

/// Why an archive's chain is not whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{why}")]
pub struct BrokenChain {
    pub why: String,
}

fn broken(why: String) -> BrokenChain {
    BrokenChain { why }
}

/// The archives `archive` needs, oldest (the full archive) first and
/// `archive` last, from the manifests beside it; just `archive` when it is
/// not an incremental. Each parent must be there, with a manifest whose
/// SHA-256 is the one its child names, one level down, and a size that
/// matches it.
pub fn chain_of(archive: &Path, manifest: &Manifest) -> Result<Vec<PathBuf>, BrokenChain> {
    let mut chain = vec![archive.to_path_buf()];
    let mut child = manifest.clone();
    while let Some(link) = child.chain.as_ref().filter(|l| l.level > 0) {
        let parent = link.parent.as_ref().ok_or_else(|| {
            broken(format!(
                "{} is at level {} but names no parent",
                child.archive, link.level
            ))
        })?;
        let name = Path::new(&parent.archive);
        if name.file_name() != Some(name.as_os_str()) || parent.archive.starts_with('.') {
            return Err(broken(format!(
                "{} names the parent {:?}, which is not a file name",
                child.archive, parent.archive
            )));
        }
        let path = archive.with_file_name(name);
        let found = manifest::read_manifest(&path).map_err(|e| {
            broken(format!(
                "the parent {} of {} {}",
                parent.archive,
                child.archive,
                if e.kind() == io::ErrorKind::NotFound {
                    "is missing (or has no manifest)".to_string()
                } else {
                    format!("has an unreadable manifest ({e})")
                }
            ))
        })?;
        let size = path.metadata().map(|m| m.len()).map_err(|_| {
            broken(format!(
                "the parent {} of {} is missing",
                parent.archive, child.archive
            ))
        })?;
        let level = found.chain.as_ref().map(|l| l.level);
        if !found.sha256.eq_ignore_ascii_case(&parent.sha256)
            || size != found.archive_size
            || level != Some(link.level - 1)
        {
            return Err(broken(format!(
                "the parent {} is not the archive {} was built on",
                parent.archive, child.archive
            )));
        }
        chain.push(path);
        child = found;
    }
    chain.reverse();
    Ok(chain)
}

/// Restores `job.archive`, with its whole chain when it is an incremental,
/// calling `on_restored` with each path written. An archive without a
/// manifest, or a full one, is restored alone.
pub fn restore_chain(
    job: &RestoreJob<'_>,
    on_restored: &mut dyn FnMut(&Path),
) -> Result<RestoreReport, RestoreError> {
    let chain = match job.input.manifest(job.archive) {
        Ok(manifest) if manifest.chain.as_ref().is_some_and(|l| l.level > 0) => {
            if job.input.stream.is_some() {
                // Its parents would have to come from the remote too.
                return Err(RestoreError::BrokenChain {
                    path: job.archive.to_path_buf(),
                    source: broken(
                        "an incremental is restored from its local chain only; \
                         restore its full archive from the remote first"
                            .to_string(),
                    ),
                });
            }
            chain_of(job.archive, &manifest).map_err(|source| RestoreError::BrokenChain {
                path: job.archive.to_path_buf(),
                source,
            })?
        }
        _ => return restore::restore(job, on_restored),
    };
    // The incrementals checked first, as restore checks an archive, and
    // their dumpdirs; the full archive is checked by its own restore, which
    // comes first and writes nothing unless it passes. A chosen path may be
    // in any archive of the chain, or (deleted, or never there) in none.
    let selection = job.selection.lenient();
    for archive in &chain[1..] {
        restore::check(&RestoreJob {
            archive,
            selection: &selection,
            ..*job
        })?;
        dumpdirs(archive, &job.input, |_, _| Ok(()))?;
    }
    let mut total: Option<RestoreReport> = None;
    for (i, archive) in chain.iter().enumerate() {
        if i > 0 {
            let mut failed = None;
            dumpdirs(archive, &job.input, |relative, dumpdir| {
                if !selection.selects(&relative, true) {
                    // Only what is restored is made to match the source.
                    return Ok(());
                }
                dumpdir::prune_extra(job.destination, &relative, &dumpdir)
                    .map(drop)
                    .inspect_err(|_| failed = Some(job.destination.join(&relative)))
            })
            .map_err(|e| match (e, failed.take()) {
                (RestoreError::Read { source, .. }, Some(path)) => {
                    RestoreError::Write { path, source }
                }
                (e, _) => e,
            })?;
        }
        // Later archives replace what earlier ones restored.
        let step = RestoreJob {
            archive,
            destination: job.destination,
            force: job.force || i > 0,
            input: job.input,
            numeric_owner: job.numeric_owner,
            selection: &selection,
        };
        let report = restore::restore(&step, on_restored)?;
        total = Some(match total {
            None => report,
            Some(mut sum) => {
                sum.restored += report.restored;
                sum.skipped.extend(report.skipped);
                sum.unrestored.owners += report.unrestored.owners;
                sum.unrestored.attributes += report.unrestored.attributes;
                if sum.unrestored.first_attribute.is_none() {
                    sum.unrestored.first_attribute = report.unrestored.first_attribute;
                }
                sum
            }
        });
    }
    total.ok_or_else(|| RestoreError::ArchiveMissing {
        path: job.archive.to_path_buf(),
    })
}

/// Hands `each` the dumpdirs of `archive`, checked; a hostile one refuses
/// the archive.
fn dumpdirs(
    archive: &Path,
    input: &Input<'_>,
    each: impl FnMut(PathBuf, dumpdir::Dumpdir) -> io::Result<()>,
) -> Result<(), RestoreError> {
    let read_error = |source| RestoreError::Read {
        path: archive.to_path_buf(),
        source,
    };
    let format = format_of(archive).ok_or_else(|| RestoreError::UnknownFormat {
        path: archive.to_path_buf(),
    })?;
    let file = File::open(archive).map_err(read_error)?;
    let mut plaintext = Sha256::new();
    let reader = input
        .tar_stream(archive, format, io::BufReader::new(file), &mut plaintext)
        .map_err(read_error)?;
    dumpdir::for_each(reader, each)
        .map_err(read_error)?
        .map_err(|(entry, why)| RestoreError::Hostile {
            archive: archive.to_path_buf(),
            entry,
            why,
        })
}
