//! Walking the source tree into a tar stream: entries in sorted order, named
//! from the source's base name (as `tar cf x.tar -C parent base` would name
//! them). Symlinks are stored, never followed; FIFOs and devices are recorded
//! but never opened; sockets are left out.

use std::fs::{Metadata, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tar::{Builder, EntryType, Header, HeaderMode};
use walkdir::WalkDir;

use super::reader::{AbortRequested, ExactSizeReader};
use super::{ArchiveReport, Skipped};

/// Appends every entry under `source` and finishes the tar stream.
pub fn append_tree<W: Write>(
    builder: &mut Builder<W>,
    source: &Path,
    abort: &AtomicBool,
    report: &mut ArchiveReport,
) -> io::Result<()> {
    let base = base_name(source);
    let walk = WalkDir::new(source)
        .follow_links(false)
        .follow_root_links(true)
        .sort_by_file_name();
    for item in walk {
        if abort.load(Ordering::Relaxed) {
            return Err(AbortRequested::error());
        }
        let entry = match item {
            Ok(entry) => entry,
            Err(error) => {
                let path = error.path().unwrap_or(source).to_path_buf();
                let reason = error
                    .io_error()
                    .map_or_else(|| error.to_string(), |e| e.to_string());
                report.skipped.push(Skipped { path, reason });
                continue;
            }
        };
        let name = match entry.path().strip_prefix(source) {
            Ok(rel) if rel.as_os_str().is_empty() => base.clone(),
            Ok(rel) => base.join(rel),
            Err(_) => continue,
        };
        let metadata = if entry.depth() == 0 {
            std::fs::metadata(entry.path())
        } else {
            entry.path().symlink_metadata()
        };
        let metadata = match metadata {
            Ok(m) => m,
            Err(e) => {
                report.skipped.push(skipped(entry.path(), &e));
                continue;
            }
        };
        append_entry(builder, entry.path(), &name, &metadata, abort, report)?;
    }
    builder.finish()
}

fn append_entry<W: Write>(
    builder: &mut Builder<W>,
    path: &Path,
    name: &Path,
    metadata: &Metadata,
    abort: &AtomicBool,
    report: &mut ArchiveReport,
) -> io::Result<()> {
    let kind = metadata.file_type();
    if kind.is_socket() {
        report.sockets_ignored += 1;
        return Ok(());
    }
    if kind.is_file() {
        return append_file(builder, path, name, abort, report);
    }
    let mut header = header_for(metadata);
    if kind.is_symlink() {
        let target = match std::fs::read_link(path) {
            Ok(target) => target,
            Err(e) => {
                report.skipped.push(skipped(path, &e));
                return Ok(());
            }
        };
        builder.append_link(&mut header, name, target)?;
    } else {
        // Directories, FIFOs and devices: the header is the whole entry.
        builder.append_data(&mut header, name, io::empty())?;
    }
    report.entries += 1;
    Ok(())
}

/// Opens without following a symlink and without blocking (a FIFO swapped in
/// after the walk looked must not hang the backup), then archives what the
/// opened descriptor says it is.
fn append_file<W: Write>(
    builder: &mut Builder<W>,
    path: &Path,
    name: &Path,
    abort: &AtomicBool,
    report: &mut ArchiveReport,
) -> io::Result<()> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .and_then(|file| file.metadata().map(|m| (file, m)));
    let (file, metadata) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            report.skipped.push(skipped(path, &e));
            return Ok(());
        }
    };
    if !metadata.is_file() {
        report.skipped.push(Skipped {
            path: path.to_path_buf(),
            reason: "changed type while the backup ran".to_string(),
        });
        return Ok(());
    }
    let mut header = header_for(&metadata);
    let mut reader = ExactSizeReader::new(file, metadata.len(), abort);
    builder.append_data(&mut header, name, &mut reader)?;
    report.entries += 1;
    report.bytes_read += metadata.len();
    if let Some(reason) = reader.into_problem() {
        report.skipped.push(Skipped {
            path: path.to_path_buf(),
            reason,
        });
    }
    Ok(())
}

fn header_for(metadata: &Metadata) -> Header {
    let mut header = Header::new_gnu();
    header.set_metadata_in_mode(metadata, HeaderMode::Complete);
    if !metadata.is_file() {
        header.set_size(0);
    }
    if metadata.file_type().is_symlink() {
        header.set_entry_type(EntryType::Symlink);
    }
    header
}

fn skipped(path: &Path, error: &io::Error) -> Skipped {
    let reason = match error.kind() {
        io::ErrorKind::NotFound => "vanished while the backup ran".to_string(),
        _ => error.to_string(),
    };
    Skipped {
        path: path.to_path_buf(),
        reason,
    }
}

/// The name the tree is stored under: the source's own last component, or the
/// real directory's name for paths such as `.` that have none.
fn base_name(source: &Path) -> PathBuf {
    let named = source
        .file_name()
        .filter(|n| *n != "." && *n != "..")
        .map(PathBuf::from);
    named
        .or_else(|| {
            std::fs::canonicalize(source)
                .ok()
                .and_then(|p| p.file_name().map(PathBuf::from))
        })
        .unwrap_or_else(|| PathBuf::from("root"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names_come_from_the_path_as_given() {
        assert_eq!(base_name(Path::new("/srv/data")), PathBuf::from("data"));
        assert_eq!(base_name(Path::new("test/")), PathBuf::from("test"));
        assert_eq!(base_name(Path::new("/")), PathBuf::from("root"));
    }
}
