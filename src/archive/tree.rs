//! Walking the source tree into a tar stream: entries in sorted order, named
//! from the source's base name (as `tar cf x.tar -C parent base` would name
//! them). Symlinks are stored, never followed; FIFOs and devices are recorded
//! but never opened; sockets are left out. The same walk yields the tree's
//! fingerprint, while archiving or on its own for `if-changed`.

use std::fs::{Metadata, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tar::{Builder, EntryType, Header, HeaderMode};
use walkdir::{DirEntryExt, WalkDir};

use super::fingerprint::Fingerprint;
use super::reader::{AbortRequested, ExactSizeReader};
use super::{ArchiveReport, Skipped};

/// What the walk watches while it archives.
#[derive(Clone, Copy)]
pub struct Watch<'a> {
    /// Set from a signal handler to abandon the archive at once.
    pub abort: &'a AtomicBool,
    /// Bytes of file content read so far, for a progress display.
    pub progress: Option<&'a AtomicU64>,
}

/// One step of the sorted walk: an entry with its own (not followed)
/// metadata and, for a symlink, its target; or a path that could not be read.
enum Step {
    Entry {
        path: PathBuf,
        relative: PathBuf,
        metadata: Metadata,
        target: Option<io::Result<PathBuf>>,
    },
    Unreadable {
        path: PathBuf,
        relative: PathBuf,
        reason: String,
    },
}

/// What a walk leaves out: backupctl's own files (a source that contains the
/// home must not archive its archives, which would double at every run), and
/// the mount points of pseudo-filesystems (`/proc`, `/sys`, `/dev`, …), which
/// hold no data and never end.
#[derive(Debug, Clone, Default)]
pub struct Exclusions {
    /// Device and inode of each own file or directory.
    own: Vec<(u64, u64)>,
    /// Mount points of pseudo-filesystems, relative to the source.
    pseudo: Vec<PathBuf>,
}

/// Filesystem types that hold no data worth a backup.
const PSEUDO_FILESYSTEMS: [&str; 22] = [
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "mqueue",
    "hugetlbfs",
    "binfmt_misc",
    "autofs",
    "efivarfs",
    "selinuxfs",
    "nsfs",
    "rpc_pipefs",
    "ramfs",
];

impl Exclusions {
    /// The exclusions for a walk of `source`: `own` are paths of backupctl's
    /// files (missing ones are ignored); pseudo-filesystems come from
    /// `/proc/self/mountinfo`.
    pub fn for_source(source: &Path, own: &[PathBuf]) -> Self {
        let own = own
            .iter()
            .filter_map(|path| path.symlink_metadata().ok())
            .map(|m| (m.dev(), m.ino()))
            .collect();
        let pseudo = match source.canonicalize() {
            Ok(root) => pseudo_mounts_under(&root),
            Err(_) => Vec::new(),
        };
        Self { own, pseudo }
    }

    fn leaves_out(&self, entry: &walkdir::DirEntry, source: &Path) -> bool {
        if entry.depth() == 0 {
            return false;
        }
        if self.own.iter().any(|&(_, ino)| ino == entry.ino())
            && let Ok(m) = entry.path().symlink_metadata()
            && self.own.contains(&(m.dev(), m.ino()))
        {
            return true;
        }
        // Cheap tests first: this runs for every entry of the walk.
        !self.pseudo.is_empty()
            && entry.file_type().is_dir()
            && entry
                .path()
                .strip_prefix(source)
                .is_ok_and(|relative| self.pseudo.iter().any(|p| p == relative))
    }
}

/// Mount points of pseudo-filesystems strictly under `root`, relative to it.
fn pseudo_mounts_under(root: &Path) -> Vec<PathBuf> {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    table
        .lines()
        .filter_map(|line| {
            // ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [OPTIONAL…] - TYPE SOURCE …
            let (left, right) = line.split_once(" - ")?;
            let mount_point = unescape_mount_path(left.split(' ').nth(4)?);
            let fs_type = right.split(' ').next()?;
            PSEUDO_FILESYSTEMS
                .contains(&fs_type)
                .then(|| {
                    Path::new(&mount_point)
                        .strip_prefix(root)
                        .ok()
                        .map(Path::to_path_buf)
                })
                .flatten()
                .filter(|relative| !relative.as_os_str().is_empty())
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\040`-style octal.
fn unescape_mount_path(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = field
                .get(i + 1..i + 4)
                .and_then(|octal| u8::from_str_radix(octal, 8).ok())
        {
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The walk both the archive and the fingerprint are made from, so the two
/// always see the tree the same way. The root itself is followed if it is a
/// symlink; nothing below it is. What `exclude` names is left out, with
/// everything under it; `left_out` collects those paths.
fn walk<'a>(
    source: &'a Path,
    exclude: &'a Exclusions,
    left_out: &'a std::cell::RefCell<Vec<PathBuf>>,
) -> impl Iterator<Item = Step> + 'a {
    let relative_of = move |path: &Path| {
        path.strip_prefix(source)
            .map(Path::to_path_buf)
            .unwrap_or_default()
    };
    WalkDir::new(source)
        .follow_links(false)
        .follow_root_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(move |entry| {
            let leave = exclude.leaves_out(entry, source);
            if leave {
                left_out.borrow_mut().push(entry.path().to_path_buf());
            }
            !leave
        })
        .map(move |item| match item {
            Ok(entry) => {
                let metadata = if entry.depth() == 0 {
                    std::fs::metadata(entry.path())
                } else {
                    entry.path().symlink_metadata()
                };
                match metadata {
                    Ok(metadata) => Step::Entry {
                        relative: relative_of(entry.path()),
                        target: link_target(entry.path(), &metadata),
                        path: entry.into_path(),
                        metadata,
                    },
                    Err(e) => Step::Unreadable {
                        relative: relative_of(entry.path()),
                        reason: reason_for(&e),
                        path: entry.into_path(),
                    },
                }
            }
            Err(error) => {
                let path = error.path().unwrap_or(source).to_path_buf();
                let reason = error
                    .io_error()
                    .map_or_else(|| error.to_string(), reason_for);
                Step::Unreadable {
                    relative: relative_of(&path),
                    path,
                    reason,
                }
            }
        })
}

/// A symlink's target, read once for both the fingerprint and the archive.
fn link_target(path: &Path, metadata: &Metadata) -> Option<io::Result<PathBuf>> {
    metadata
        .file_type()
        .is_symlink()
        .then(|| std::fs::read_link(path))
}

/// Adds what the fingerprint keeps of one step; the archive and the
/// `if-changed` check both go through here, so they always agree.
fn add_to_fingerprint(fingerprint: &mut Fingerprint, step: &Step) {
    match step {
        Step::Entry {
            relative,
            metadata,
            target,
            ..
        } => {
            let target = target.as_ref().and_then(|t| t.as_ref().ok());
            fingerprint.add_entry(relative, metadata, target.map(PathBuf::as_path));
        }
        Step::Unreadable { relative, .. } => fingerprint.add_unreadable(relative),
    }
}

/// The fingerprint of the tree under `source`, from metadata alone. What
/// cannot be read is part of it, so this never fails.
pub fn fingerprint_tree(source: &Path, exclude: &Exclusions) -> String {
    let mut fingerprint = Fingerprint::new();
    let left_out = Default::default();
    for step in walk(source, exclude, &left_out) {
        add_to_fingerprint(&mut fingerprint, &step);
    }
    fingerprint.finish()
}

/// Appends every entry under `source`, finishes the tar stream and records
/// the tree's fingerprint in `report`.
pub fn append_tree<W: Write>(
    builder: &mut Builder<W>,
    job: &super::ArchiveJob<'_>,
    report: &mut ArchiveReport,
) -> io::Result<()> {
    let (source, watch) = (job.source, job.watch);
    let base = base_name(source);
    let mut fingerprint = Fingerprint::new();
    let left_out = Default::default();
    for step in walk(source, job.exclude, &left_out) {
        if watch.abort.load(Ordering::Relaxed) {
            return Err(AbortRequested::error());
        }
        add_to_fingerprint(&mut fingerprint, &step);
        match step {
            Step::Entry {
                path,
                relative,
                metadata,
                target,
            } => {
                let name = if relative.as_os_str().is_empty() {
                    base.clone()
                } else {
                    base.join(&relative)
                };
                let entry = Entry {
                    path: &path,
                    name: &name,
                    metadata: &metadata,
                    target,
                };
                append_entry(builder, entry, watch, report)?;
            }
            Step::Unreadable { path, reason, .. } => {
                report.skipped.push(Skipped { path, reason });
            }
        }
    }
    report.fingerprint = fingerprint.finish();
    report.left_out = left_out.into_inner();
    builder.finish()
}

/// An entry on its way into the archive.
struct Entry<'a> {
    path: &'a Path,
    name: &'a Path,
    metadata: &'a Metadata,
    target: Option<io::Result<PathBuf>>,
}

fn append_entry<W: Write>(
    builder: &mut Builder<W>,
    entry: Entry<'_>,
    watch: Watch<'_>,
    report: &mut ArchiveReport,
) -> io::Result<()> {
    let kind = entry.metadata.file_type();
    if kind.is_socket() {
        report.sockets_ignored += 1;
        return Ok(());
    }
    if kind.is_file() {
        return append_file(builder, entry.path, entry.name, watch, report);
    }
    let mut header = header_for(entry.metadata);
    match entry.target {
        Some(Ok(target)) => builder.append_link(&mut header, entry.name, target)?,
        Some(Err(e)) => {
            report.skipped.push(skipped(entry.path, &e));
            return Ok(());
        }
        // Directories are named `dir/`, as GNU tar names them.
        None if kind.is_dir() => {
            let mut name = entry.name.as_os_str().to_os_string();
            name.push("/");
            builder.append_data(&mut header, name, io::empty())?
        }
        // FIFOs and devices: the header is the whole entry.
        None => builder.append_data(&mut header, entry.name, io::empty())?,
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
    watch: Watch<'_>,
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
    let mut reader = ExactSizeReader::new(file, metadata.len(), watch.abort);
    if let Some(progress) = watch.progress {
        reader = reader.counting_into(progress);
    }
    builder.append_data(&mut header, name, &mut reader)?;
    report.entries += 1;
    report.files += 1;
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
    Skipped {
        path: path.to_path_buf(),
        reason: reason_for(error),
    }
}

fn reason_for(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "vanished while the backup ran".to_string(),
        _ => error.to_string(),
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

    #[test]
    fn a_walk_from_the_root_leaves_pseudo_filesystems_out() {
        // This machine's own mount table: /proc is procfs wherever tests run.
        let pseudo = pseudo_mounts_under(Path::new("/"));
        assert!(pseudo.contains(&PathBuf::from("proc")), "{pseudo:?}");
        assert!(!pseudo.iter().any(|p| p.as_os_str().is_empty()));
        // Nothing of it lies under an ordinary directory.
        let dir = tempfile::tempdir().unwrap();
        assert!(pseudo_mounts_under(dir.path()).is_empty());
        assert_eq!(unescape_mount_path(r"/mnt/a\040b"), "/mnt/a b");
    }
}
