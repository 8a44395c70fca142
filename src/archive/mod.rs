//! Writing archives: walking a source tree in a stable order and streaming it
//! into a tar file that appears under its final name only once it is complete
//! and synced.

pub mod manifest;
pub mod naming;
mod reader;
pub mod restore;
pub mod retention;
mod tree;
pub mod verify;

use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

pub use reader::AbortRequested;

/// Output buffer size: large enough that small files do not each cost a write
/// system call, small enough to keep memory flat.
const OUTPUT_BUFFER: usize = 1 << 20;

/// Why an archive could not be written. A skipped file inside the tree is not
/// an error: it is reported in [`ArchiveReport::skipped`].
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("source {} does not exist", path.display())]
    SourceMissing { path: PathBuf },
    #[error("cannot read source {}: {source}", path.display())]
    SourceUnreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write archive {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("stopped before {} was complete; the partial file was removed", path.display())]
    Aborted { path: PathBuf },
}

/// What to archive and where.
pub struct ArchiveJob<'a> {
    /// The directory (or file) to archive, already resolved.
    pub source: &'a Path,
    /// Where the archive goes, e.g. `backups/backup_test.tar`.
    pub destination: &'a Path,
    /// The temporary file written first, in the same directory.
    pub temp: &'a Path,
    /// Set from a signal handler to abandon the archive at once.
    pub abort: &'a AtomicBool,
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
    /// Bytes of file content read from the source.
    pub bytes_read: u64,
    /// Size of the archive file.
    pub archive_size: u64,
    /// Problems inside the tree; the archive is valid but incomplete.
    pub skipped: Vec<Skipped>,
    /// Sockets met in the tree; they cannot be archived and are left out.
    pub sockets_ignored: u64,
    pub duration: Duration,
}

/// Writes the archive to `job.temp`, syncs it and renames it to
/// `job.destination`. On any error, or on abort, the temporary file is removed
/// and the previous archive under the final name is untouched.
pub fn write_archive(job: &ArchiveJob<'_>) -> Result<ArchiveReport, ArchiveError> {
    let started = Instant::now();
    check_source(job.source)?;
    let write_error = |source: io::Error| ArchiveError::Write {
        path: job.destination.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(job.temp)
        .map_err(write_error)?;
    let temp = TempFile(Some(job.temp.to_path_buf()));

    let mut report = ArchiveReport::default();
    let mut builder = tar::Builder::new(BufWriter::with_capacity(OUTPUT_BUFFER, file));
    tree::append_tree(&mut builder, job.source, job.abort, &mut report).map_err(|e| {
        if AbortRequested::is(&e) {
            ArchiveError::Aborted {
                path: job.destination.to_path_buf(),
            }
        } else {
            write_error(e)
        }
    })?;
    let file = builder
        .into_inner()
        .and_then(|buffered| buffered.into_inner().map_err(|e| e.into_error()))
        .map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    report.archive_size = file.metadata().map_err(write_error)?.len();
    drop(file);

    fs::rename(job.temp, job.destination).map_err(write_error)?;
    temp.keep();
    crate::store::sync_parent_dir(job.destination).map_err(write_error)?;
    report.duration = started.elapsed();
    Ok(report)
}

fn check_source(source: &Path) -> Result<(), ArchiveError> {
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

/// Removes the temporary file when dropped, unless it was kept (renamed).
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(path);
        }
    }
}

/// Lists the archive files in `dir`, sorted by name: regular files only, never
/// hidden (temporary, lock) files.
pub fn list_archives(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.file_type()?.is_file() {
            continue;
        }
        names.push(name);
    }
    names.sort();
    Ok(names)
}
