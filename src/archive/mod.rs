//! Writing archives: walking a source tree in a stable order and streaming it
//! through compression and a checksum into a tar, tar.gz or tar.zst file that
//! appears under its final name only once it is complete and synced.

mod beneath;
pub mod chain_restore;
mod dumpdir;
pub mod encrypt;
mod fingerprint;
pub mod incremental;
pub mod listing;
pub mod manifest;
mod owners;
mod pax;
mod pax_tap;
mod pgzip;
mod read_ahead;
mod reader;
pub mod restore;
mod restore_meta;
mod scan;
pub mod selection;
mod sparse;
mod sparse_restore;
pub mod stored;
mod tree;
pub mod verify;
mod writer;
mod xattrs;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::model::{Format, Recipient};

pub use reader::AbortRequested;
pub use scan::fingerprint_sources;
pub use tree::{
    ExcludeError, ExcludedBy, Exclusions, Watch, fingerprint_tree, list_excluded, tree_bytes,
};

/// Why an archive could not be written. A skipped file inside the tree is not
/// an error: it is reported in [`ArchiveReport::skipped`].
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("source {} does not exist", path.display())]
    SourceMissing { path: PathBuf },
    #[error("cannot read source {}", path.display())]
    SourceUnreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write archive {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("sources {} and {} would both be stored as {}/ in the archive", first.display(), second.display(), name.display())]
    SourcesCollide {
        name: PathBuf,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("stopped before {} was complete; the partial file was removed", path.display())]
    Aborted { path: PathBuf },
}

/// What to archive and where.
pub struct ArchiveJob<'a> {
    /// The directory (or file) to archive, already resolved.
    pub source: &'a Path,
    /// The archive's final name, for messages.
    pub destination: &'a Path,
    pub format: Format,
    /// Compression level; `None` for the format's default.
    pub level: Option<i32>,
    /// What the walk leaves out: the home's own files, pseudo-filesystems.
    pub exclude: &'a Exclusions,
    /// More sources, each with its own exclusions, stored after the main
    /// one under their own top-level names (`also=`).
    pub also: &'a [(PathBuf, Exclusions)],
    /// Record extended attributes and POSIX ACLs (on unless a schedule
    /// says `no-xattrs`).
    pub xattrs: bool,
    /// The abort flag and the progress counter.
    pub watch: Watch<'a>,
    /// Encrypt the archive with age to these recipients (none: plain).
    pub encrypt_to: &'a [Recipient],
}

/// A file or directory of the tree that is missing from the archive, or that
/// was archived in an inconsistent state, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// What a finished archive holds.
#[derive(Debug, Clone, Default)]
pub struct ArchiveReport {
    /// Entries written: directories, files, links and special files.
    pub entries: u64,
    /// Regular files among them.
    pub files: u64,
    /// Bytes of file content read from the source.
    pub bytes_read: u64,
    /// Size of the archive file.
    pub archive_size: u64,
    /// SHA-256 of the archive file, lower-case hex, computed while writing.
    pub sha256: String,
    /// For an encrypted archive, the SHA-256 of its plaintext.
    pub plaintext_sha256: Option<String>,
    /// The source tree's fingerprint (see [`fingerprint_tree`]).
    pub fingerprint: String,
    /// Problems inside the tree; the archive is valid but incomplete.
    pub skipped: Vec<Skipped>,
    /// Sockets met in the tree; they cannot be archived and are left out.
    pub sockets_ignored: u64,
    /// backupctl's own files and pseudo-filesystems met in the tree and left
    /// out (see [`Exclusions`]).
    pub left_out: Vec<PathBuf>,
    /// Entries the schedule's `exclude*` rules left out; an excluded
    /// directory counts once.
    pub excluded: u64,
    pub duration: Duration,
}

/// Writes the archive into `file` (a fresh temporary file) and syncs it.
/// Publishing it under its final name, with its manifest, is the caller's
/// step; on any error, or on abort, the caller removes the file and nothing
/// under a final name has changed.
pub fn write_archive(job: &ArchiveJob<'_>, file: File) -> Result<ArchiveReport, ArchiveError> {
    write_with(job, file, |builder, report| {
        tree::append_tree(builder, job, report)
    })
}

/// The tar stream `append` fills, compressed, hashed, written to `file`
/// and synced: [`write_archive`] and [`incremental::write_incremental`].
fn write_with<'j>(
    job: &ArchiveJob<'j>,
    file: File,
    append: impl FnOnce(
        &mut tar::Builder<Box<dyn writer::ArchiveStream + 'j>>,
        &mut ArchiveReport,
    ) -> io::Result<()>,
) -> Result<ArchiveReport, ArchiveError> {
    let started = Instant::now();
    check_source(job.source)?;
    let mut names = vec![(tree::base_name(job.source), job.source)];
    for (source, _) in job.also {
        check_source(source)?;
        let name = tree::base_name(source);
        if let Some((_, first)) = names.iter().find(|(n, _)| *n == name) {
            return Err(ArchiveError::SourcesCollide {
                name,
                first: first.to_path_buf(),
                second: source.clone(),
            });
        }
        names.push((name, source));
    }
    let write_error = |source: io::Error| ArchiveError::Write {
        path: job.destination.to_path_buf(),
        source,
    };
    let mut report = ArchiveReport::default();
    let encryptor = if job.encrypt_to.is_empty() {
        None
    } else {
        Some(encrypt::encryptor(job.encrypt_to).map_err(write_error)?)
    };
    let stream = writer::open_stream(job.format, job.level, file, job.watch.abort, encryptor);
    let mut builder = tar::Builder::new(stream);
    append(&mut builder, &mut report).map_err(|e| {
        if AbortRequested::is(&e) {
            ArchiveError::Aborted {
                path: job.destination.to_path_buf(),
            }
        } else {
            write_error(e)
        }
    })?;
    let written = builder
        .into_inner()
        .and_then(|stream| stream.finish())
        .map_err(write_error)?;
    written.file.sync_all().map_err(write_error)?;
    report.archive_size = written.size;
    report.sha256 = written.sha256;
    report.plaintext_sha256 = written.plaintext_sha256;
    report.duration = started.elapsed();
    Ok(report)
}

/// Fails the way [`write_archive`] would when the source is missing.
pub fn check_source(source: &Path) -> Result<(), ArchiveError> {
    match fs::metadata(source) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ArchiveError::SourceMissing {
            path: source.to_path_buf(),
        }),
        Err(source_error) => Err(ArchiveError::SourceUnreadable {
            path: source.to_path_buf(),
            source: source_error,
        }),
    }
}
