//! Restoring an archive into a directory, safely.
//!
//! `tar::Archive::unpack` strips a leading `/` and skips `..` entries, but it
//! silently rewrites what it does not like, follows symlinks already in the
//! destination for parent directories, and overwrites existing files. Restore
//! does its own checks instead, in two passes over the archive:
//!
//! 1. **Validation, before anything is written.** Every entry is checked: its
//!    path must be relative with no `..` component; it must not lie under a
//!    symlink the archive itself creates ("a symlink then a file through it")
//!    nor under a file; it must appear only once; a hard link must point to a
//!    regular file restored earlier from the same archive. Each path is also
//!    checked against the destination: no parent may be a symlink or a
//!    non-directory, and without `force` nothing may exist at the path (an
//!    existing directory for a directory entry is fine). The archive is hashed
//!    on the way and, when it has a manifest, must match it.
//! 2. **Extraction.** The same checks run again entry by entry (the archive
//!    could have changed in between), parents are checked with `lstat` before
//!    use, files are created with `O_CREAT|O_EXCL|O_NOFOLLOW`, so nothing is
//!    ever written through a symlink. Owners, modes, nanosecond mtimes,
//!    xattrs and ACLs are restored as GNU tar `-xp` does (`restore_meta`);
//!    directories get theirs last, so a read-only directory can still be
//!    filled; symlinks, FIFOs and devices get theirs without being followed
//!    or opened. Devices are made by root only, reported and skipped
//!    otherwise.
//!
//! Passes 1 and 2 assume nobody else is changing the destination meanwhile.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::stat::{Mode, SFlag};
use tar::EntryType;

use super::manifest;
use super::manifest::Match;
use super::pax_tap::{PaxTap, Records, entry_records};
use super::read_ahead::ReadAhead;
use super::restore_meta::{EntryMetadata, MetadataWriter, Node, Unrestored};
use super::selection::Selection;
use super::sparse_restore;
use super::verify::{HashingReader, decompressed, format_of};
use crate::model::Format;

/// Why a restore was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("archive {} does not exist", path.display())]
    ArchiveMissing { path: PathBuf },
    #[error("{} is not an archive name (expected .tar, .tar.gz or .tar.zst)", path.display())]
    UnknownFormat { path: PathBuf },
    #[error("cannot read archive {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("archive {} does not match its manifest ({why}); run `verify` on it", path.display())]
    Mismatch { path: PathBuf, why: String },
    #[error("refusing hostile archive {}: entry {entry:?} {why}", archive.display())]
    Hostile {
        archive: PathBuf,
        entry: String,
        why: String,
    },
    #[error(
        "refusing to restore into {}: the archive's files need {} and the filesystem has {} free",
        path.display(), crate::primitives::human_bytes(*needed), crate::primitives::human_bytes(*free)
    )]
    NoSpace {
        path: PathBuf,
        needed: u64,
        free: u64,
    },
    #[error("not in archive {}: {}", archive.display(), quote_all(missing))]
    NotInArchive {
        archive: PathBuf,
        missing: Vec<String>,
    },
    #[error("refusing to restore over {}: it already exists (use --force to replace it)", path.display())]
    Exists { path: PathBuf },
    #[error("refusing to restore into {}: {why}", path.display())]
    UnsafeDestination { path: PathBuf, why: &'static str },
    #[error("cannot restore {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl RestoreError {
    /// True when the command line named something that cannot be restored.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            RestoreError::ArchiveMissing { .. }
                | RestoreError::UnknownFormat { .. }
                | RestoreError::NotInArchive { .. }
        )
    }
}

/// `"a", "b*"`: the PATHs and patterns a restore found nothing for.
fn quote_all(missing: &[String]) -> String {
    let quoted: Vec<String> = missing
        .iter()
        .map(|m| format!("\"{}\"", crate::primitives::quote(m)))
        .collect();
    quoted.join(", ")
}

/// What to restore, where.
pub struct RestoreJob<'a> {
    pub archive: &'a Path,
    /// Created if missing.
    pub destination: &'a Path,
    /// Replace existing files and symlinks (never directories).
    pub force: bool,
    /// As root, give files the archive's numeric ids rather than looking
    /// its user and group names up.
    pub numeric_owner: bool,
    /// The entries to write (with what is under them); the whole archive is
    /// checked all the same.
    pub selection: &'a Selection,
}

/// What the manifest said about the archive.
#[derive(Debug)]
pub enum ManifestCheck {
    /// Size and SHA-256 match the manifest.
    Matched,
    /// No manifest: the archive's integrity is unknown.
    Missing,
    /// The manifest could not be read; why.
    Unreadable(io::Error),
}

/// What a restore did.
#[derive(Debug)]
pub struct RestoreReport {
    pub manifest: ManifestCheck,
    pub restored: u64,
    /// Entries not restored (devices), with why.
    pub skipped: Vec<(PathBuf, String)>,
    /// Owners and attributes that could not be put back.
    pub unrestored: Unrestored,
}

/// Restores `job.archive` into `job.destination`, calling `on_restored` with
/// each path written (inside the destination) as it is written.
pub fn restore(
    job: &RestoreJob<'_>,
    on_restored: &mut dyn FnMut(&Path),
) -> Result<RestoreReport, RestoreError> {
    let format = format_of(job.archive).ok_or_else(|| RestoreError::UnknownFormat {
        path: job.archive.to_path_buf(),
    })?;
    let exists = destination_exists(job.destination)?;
    let (manifest, link_targets) = validate(job, format, !exists)?;
    if !exists {
        // Made here and now, or refused: a destination that appeared since
        // the check is not the empty one validation counted on.
        let write_error = |source| RestoreError::Write {
            path: job.destination.to_path_buf(),
            source,
        };
        if let Some(parent) = job
            .destination
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            fs::create_dir_all(parent).map_err(write_error)?;
        }
        fs::create_dir(job.destination).map_err(write_error)?;
    }
    let mut report = extract(job, format, !exists, &link_targets, on_restored)?;
    report.manifest = manifest;
    Ok(report)
}

fn open_archive(path: &Path) -> Result<File, RestoreError> {
    File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            RestoreError::ArchiveMissing {
                path: path.to_path_buf(),
            }
        } else {
            read_error(path, e)
        }
    })
}

fn read_error(path: &Path, error: io::Error) -> RestoreError {
    RestoreError::Read {
        path: path.to_path_buf(),
        source: error,
    }
}

/// Pass 1: checks every entry and the archive's manifest; writes nothing.
/// Also returns the files outside the selection that hard links inside it
/// need (they are restored too, at their own paths).
fn validate(
    job: &RestoreJob<'_>,
    format: Format,
    fresh: bool,
) -> Result<(ManifestCheck, HashSet<PathBuf>), RestoreError> {
    let mut link_targets = HashSet::new();
    // Entries outside the selection: sizes of files (a link may need one),
    // and every path with whether it is a directory (for PATHs and
    // patterns that match nothing).
    let mut unchosen_sizes: HashMap<PathBuf, u64> = HashMap::new();
    let mut entries_seen: Vec<(PathBuf, bool)> = Vec::new();
    let file = open_archive(job.archive)?;
    // The archive is hashed on the second core while its entries are
    // checked: the hasher reads the same open file at its own offsets.
    let stop = AtomicBool::new(false);
    let (checked, hashed) = std::thread::scope(|scope| {
        let hasher = scope.spawn(|| {
            let reader = PositionalReader {
                file: &file,
                at: 0,
                stop: &stop,
            };
            HashingReader::new(io::BufReader::with_capacity(1 << 20, reader)).finish()
        });
        let mut check = || -> Result<(), RestoreError> {
            let reader = decompressed(format, io::BufReader::new(&file))
                .map_err(|e| read_error(job.archive, e))?;
            let reader = PaxTap::new(reader);
            let seen = reader.seen();
            let mut archive = tar::Archive::new(reader);
            let mut checker = Checker::new(job, fresh);
            let mut needed: u64 = 0;
            for entry in archive.entries().map_err(|e| read_error(job.archive, e))? {
                let mut entry = entry.map_err(|e| read_error(job.archive, e))?;
                let records =
                    entry_records(&mut entry, &seen).map_err(|e| read_error(job.archive, e))?;
                let checked = checker.check(&mut entry, &records)?;
                if let Some(Checked { relative, item }) = &checked {
                    let size = entry.size();
                    if let Item::Sparse { realsize } = item {
                        sparse_restore::read_map(&mut entry, *realsize, size)
                            .map_err(|e| read_error(job.archive, e))?
                            .map_err(|why| checker.hostile(relative, why))?;
                    }
                    let is_dir = matches!(item, Item::Dir);
                    let is_file = matches!(item, Item::File | Item::Sparse { .. });
                    if !job.selection.is_everything() {
                        entries_seen.push((relative.clone(), is_dir));
                    }
                    if job.selection.selects(relative, is_dir) {
                        checker.check_destination(relative, item)?;
                        if is_file {
                            needed = needed.saturating_add(size);
                        }
                        if let Item::HardLink(target) = item
                            && let Some(size) = unchosen_sizes.remove(target)
                        {
                            checker.check_destination(target, &Item::File)?;
                            needed = needed.saturating_add(size);
                            link_targets.insert(target.clone());
                        }
                    } else if is_file {
                        unchosen_sizes.insert(relative.clone(), size);
                    }
                }
                io::copy(&mut entry, &mut io::sink()).map_err(|e| read_error(job.archive, e))?;
            }
            let missing = job
                .selection
                .unmatched(entries_seen.iter().map(|(p, d)| (p.as_path(), *d)));
            if !missing.is_empty() {
                return Err(RestoreError::NotInArchive {
                    archive: job.archive.to_path_buf(),
                    missing,
                });
            }
            check_free_space(job.destination, needed)?;
            io::copy(&mut archive.into_inner(), &mut io::sink())
                .map_err(|e| read_error(job.archive, e))?;
            Ok(())
        };
        let checked = check();
        if checked.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        (checked, hasher.join())
    });
    checked?;
    let (sha256, size) = hashed
        .unwrap_or_else(|_| Err(io::Error::other("the hashing thread stopped")))
        .map_err(|e| read_error(job.archive, e))?;
    let manifest = match manifest::read_manifest(job.archive) {
        Ok(m) => match m.describes(size, &sha256) {
            Match::Current | Match::Previous => ManifestCheck::Matched,
            Match::WrongSize { expected } => {
                return Err(RestoreError::Mismatch {
                    path: job.archive.to_path_buf(),
                    why: format!("size is {size} bytes, the manifest says {expected}"),
                });
            }
            Match::WrongChecksum { expected } => {
                return Err(RestoreError::Mismatch {
                    path: job.archive.to_path_buf(),
                    why: format!("SHA-256 is {sha256}, the manifest says {expected}"),
                });
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => ManifestCheck::Missing,
        Err(e) => ManifestCheck::Unreadable(e),
    };
    Ok((manifest, link_targets))
}

/// Reads `file` from its start with `pread`, leaving the file offset to
/// another reader; fails once `stop` is set.
struct PositionalReader<'a> {
    file: &'a File,
    at: u64,
    stop: &'a AtomicBool,
}

impl Read for PositionalReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        if self.stop.load(Ordering::Relaxed) {
            return Err(io::Error::other("restore refused"));
        }
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Refuses a restore whose files need more bytes than the filesystem of
/// `destination` (or of its nearest existing parent) has free: a small
/// hostile archive must not fill the disk. Holes of sparse files need no
/// space and are not counted.
fn check_free_space(destination: &Path, needed: u64) -> Result<(), RestoreError> {
    let mut probe = destination;
    while !probe.exists() {
        match probe.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => probe = parent,
            _ => {
                probe = Path::new(".");
                break;
            }
        }
    }
    let free = crate::primitives::free_space(probe).map_err(|e| RestoreError::Write {
        path: probe.to_path_buf(),
        source: io::Error::from(e),
    })?;
    if needed > free {
        return Err(RestoreError::NoSpace {
            path: destination.to_path_buf(),
            needed,
            free,
        });
    }
    Ok(())
}

/// Whether the destination is an existing directory (`false`: to be created).
fn destination_exists(destination: &Path) -> Result<bool, RestoreError> {
    match fs::metadata(destination) {
        Ok(m) if m.is_dir() => Ok(true),
        Ok(_) => Err(RestoreError::UnsafeDestination {
            path: destination.to_path_buf(),
            why: "it is not a directory",
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(RestoreError::Write {
            path: destination.to_path_buf(),
            source,
        }),
    }
}

/// What an entry becomes, once checked.
enum Item {
    Dir,
    File,
    /// A GNU sparse 1.0 file of this real size.
    Sparse {
        realsize: u64,
    },
    Symlink(PathBuf),
    /// A hard link to this earlier entry (relative path).
    HardLink(PathBuf),
    Fifo,
    /// A character or block device: made by root, reported otherwise.
    Device(&'static str),
}

/// A checked entry: where it goes, relative to the destination.
struct Checked {
    relative: PathBuf,
    item: Item,
}

/// The checks of both passes. Paths are relative to the destination.
struct Checker<'a> {
    job: &'a RestoreJob<'a>,
    dirs: HashSet<PathBuf>,
    files: HashSet<PathBuf>,
    others: HashSet<PathBuf>,
    symlinks: HashSet<PathBuf>,
    /// Directories of the destination (relative) seen to be real
    /// directories, by an `lstat` or because this restore made them: each
    /// is looked at once, not once per entry below it (46,000 entries made
    /// 800,000 `lstat`s). Like the rest, this assumes nobody else changes
    /// the destination meanwhile.
    verified: RefCell<HashSet<PathBuf>>,
    /// The destination did not exist: restore makes it, so nothing can be
    /// in the way of an entry and the destination needs no `lstat`s.
    fresh: bool,
}

impl<'a> Checker<'a> {
    fn new(job: &'a RestoreJob<'a>, fresh: bool) -> Self {
        Self {
            job,
            fresh,
            dirs: HashSet::new(),
            files: HashSet::new(),
            others: HashSet::new(),
            symlinks: HashSet::new(),
            verified: RefCell::new(HashSet::new()),
        }
    }

    fn hostile(&self, entry: &Path, why: impl Into<String>) -> RestoreError {
        RestoreError::Hostile {
            archive: self.job.archive.to_path_buf(),
            entry: entry.to_string_lossy().into_owned(),
            why: why.into(),
        }
    }

    /// Checks one entry; `None` for one that writes nothing: the destination
    /// itself (`./`), a pax global header.
    fn check<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        records: &Records,
    ) -> Result<Option<Checked>, RestoreError> {
        if entry.header().entry_type() == EntryType::XGlobalHeader {
            return Ok(None); // pax defaults for the entries after it; nothing to write
        }
        let mut raw = entry
            .path()
            .map_err(|e| read_error(self.job.archive, e))?
            .into_owned();
        let sparse = match sparse_restore::sparse_entry(records) {
            None => None,
            Some(Ok(sparse)) => Some(sparse),
            Some(Err(why)) => return Err(self.hostile(&raw, why)),
        };
        if let Some(sparse) = &sparse {
            raw = sparse.name.clone();
        }
        let relative = safe_relative(&raw).map_err(|why| self.hostile(&raw, why))?;
        if relative.as_os_str().is_empty() {
            return Ok(None);
        }
        let item = match &sparse {
            // No filesystem holds a file past the largest file offset.
            Some(sparse) if sparse.realsize > i64::MAX as u64 => {
                return Err(self.hostile(&raw, "is a sparse file of an impossible size"));
            }
            Some(sparse) if entry.header().entry_type().is_file() => Item::Sparse {
                realsize: sparse.realsize,
            },
            Some(_) => return Err(self.hostile(&raw, "is sparse but not a file")),
            None => self.item(entry, &raw)?,
        };
        self.check_archive_paths(&raw, &relative, &item)?;
        let set = match item {
            Item::Dir => &mut self.dirs,
            Item::File | Item::Sparse { .. } => &mut self.files,
            Item::Symlink(_) => &mut self.symlinks,
            Item::HardLink(_) | Item::Fifo | Item::Device(_) => &mut self.others,
        };
        set.insert(relative.clone());
        // Parents are created as directories even without entries of their own.
        for parent in relative.ancestors().skip(1) {
            self.dirs.insert(parent.to_path_buf());
        }
        Ok(Some(Checked { relative, item }))
    }

    fn item<R: Read>(&self, entry: &tar::Entry<'_, R>, raw: &Path) -> Result<Item, RestoreError> {
        let link_name = || -> Result<PathBuf, RestoreError> {
            match entry.link_name() {
                Ok(Some(target)) => Ok(target.into_owned()),
                Ok(None) => Err(self.hostile(raw, "is a link without a target")),
                Err(e) => Err(read_error(self.job.archive, e)),
            }
        };
        Ok(match entry.header().entry_type() {
            // The tar crate expands sparse files as it reads them.
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Item::File,
            EntryType::Directory => Item::Dir,
            EntryType::Symlink => Item::Symlink(link_name()?),
            EntryType::Link => {
                let target = link_name()?;
                let target = safe_relative(&target)
                    .map_err(|why| self.hostile(raw, format!("is a hard link that {why}")))?;
                if !self.files.contains(&target) {
                    return Err(self.hostile(
                        raw,
                        "is a hard link to something that is not a file restored before it",
                    ));
                }
                Item::HardLink(target)
            }
            EntryType::Fifo => Item::Fifo,
            EntryType::Char => Item::Device(CHAR_DEVICE),
            EntryType::Block => Item::Device(BLOCK_DEVICE),
            other => {
                return Err(self.hostile(raw, format!("has an unsupported type ({other:?})")));
            }
        })
    }

    /// Against the entries before it: no path under a symlink or a file, no
    /// path twice (a directory may repeat).
    fn check_archive_paths(
        &self,
        raw: &Path,
        relative: &Path,
        item: &Item,
    ) -> Result<(), RestoreError> {
        for ancestor in relative.ancestors().skip(1) {
            if self.symlinks.contains(ancestor) {
                return Err(self.hostile(
                    raw,
                    format!(
                        "goes through the symlink {} that the archive creates",
                        ancestor.display()
                    ),
                ));
            }
            if self.files.contains(ancestor) || self.others.contains(ancestor) {
                return Err(self.hostile(
                    raw,
                    format!(
                        "lies under {}, which is not a directory",
                        ancestor.display()
                    ),
                ));
            }
        }
        let seen = self.files.contains(relative)
            || self.symlinks.contains(relative)
            || self.others.contains(relative)
            || (self.dirs.contains(relative) && !matches!(item, Item::Dir));
        if seen {
            return Err(self.hostile(raw, "appears twice in the archive"));
        }
        Ok(())
    }

    /// Against the destination as it is: parents must be real directories,
    /// and the path must be free unless `force`.
    fn check_destination(&self, relative: &Path, item: &Item) -> Result<(), RestoreError> {
        if self.fresh {
            return Ok(());
        }
        let mut parents: Vec<&Path> = relative.ancestors().skip(1).collect();
        parents.reverse();
        for parent in parents.into_iter().filter(|p| !p.as_os_str().is_empty()) {
            if self.verified.borrow().contains(parent) {
                continue;
            }
            let path = self.job.destination.join(parent);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_dir() => {
                    self.verified.borrow_mut().insert(parent.to_path_buf());
                }
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(RestoreError::UnsafeDestination {
                        path,
                        why: "it is a symlink, and restore never writes through one",
                    });
                }
                Ok(_) => {
                    return Err(RestoreError::UnsafeDestination {
                        path,
                        why: "it is not a directory",
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(RestoreError::Write { path, source: e }),
            }
        }
        let path = self.job.destination.join(relative);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RestoreError::Write { path, source: e }),
            Ok(m) if m.file_type().is_dir() && matches!(item, Item::Dir) => Ok(()),
            Ok(_) if !self.job.force => Err(RestoreError::Exists { path }),
            Ok(m) if m.file_type().is_dir() => Err(RestoreError::UnsafeDestination {
                path,
                why: "a directory is there and --force only replaces files and symlinks",
            }),
            Ok(_) => Ok(()),
        }
    }
}

/// The entry path as a plain relative path (without `.` components), or why
/// it is refused.
fn safe_relative(path: &Path) -> Result<PathBuf, &'static str> {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("goes up with `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path"),
        }
    }
    if clean.as_os_str().is_empty() && path.as_os_str().is_empty() {
        return Err("has an empty name");
    }
    Ok(clean)
}

/// Pass 2: writes the entries.
fn extract(
    job: &RestoreJob<'_>,
    format: Format,
    fresh: bool,
    link_targets: &HashSet<PathBuf>,
    on_restored: &mut dyn FnMut(&Path),
) -> Result<RestoreReport, RestoreError> {
    let file = open_archive(job.archive)?;
    // Decompression overlaps the writing, on the second core.
    let reader: Box<dyn Read> = match format {
        Format::Tar => Box::new(io::BufReader::new(file)),
        _ => Box::new(
            ReadAhead::spawn(move || decompressed(format, io::BufReader::new(file)))
                .map_err(|e| read_error(job.archive, e))?,
        ),
    };
    let reader = PaxTap::new(reader);
    let seen = reader.seen();
    let mut archive = tar::Archive::new(reader);
    let mut checker = Checker::new(job, fresh);
    let mut metadata = MetadataWriter::new(job.numeric_owner);
    let mut report = RestoreReport {
        manifest: ManifestCheck::Missing,
        restored: 0,
        skipped: Vec::new(),
        unrestored: Unrestored::default(),
    };
    // Directories get their owner, mode and mtime once their content is in
    // place.
    let mut finished_dirs: Vec<(PathBuf, EntryMetadata)> = Vec::new();
    let mut buffer = vec![0u8; 1 << 20];
    for entry in archive.entries().map_err(|e| read_error(job.archive, e))? {
        let mut entry = entry.map_err(|e| read_error(job.archive, e))?;
        let records = entry_records(&mut entry, &seen).map_err(|e| read_error(job.archive, e))?;
        let Some(checked) = checker.check(&mut entry, &records)? else {
            continue;
        };
        let chosen = job
            .selection
            .selects(&checked.relative, matches!(checked.item, Item::Dir))
            || link_targets.contains(&checked.relative);
        if !chosen {
            continue;
        }
        checker.check_destination(&checked.relative, &checked.item)?;
        let path = job.destination.join(&checked.relative);
        let meta = EntryMetadata::read(entry.header(), &records);
        let written = Writer {
            root: job.destination,
            path: &path,
            relative: &checked.relative,
            force: job.force,
            verified: &checker.verified,
        };
        let applied = match &checked.item {
            Item::Dir => {
                written.dir()?;
                finished_dirs.push((path.clone(), meta));
                Ok(())
            }
            Item::File => {
                let file = written.file(&mut entry, &mut buffer, job.archive)?;
                metadata.apply_to_file(&file, &path, &meta)
            }
            Item::Sparse { realsize } => {
                let size = entry.size();
                let segments = sparse_restore::read_map(&mut entry, *realsize, size)
                    .map_err(|e| read_error(job.archive, e))?
                    .map_err(|why| checker.hostile(&checked.relative, why))?;
                let file =
                    written.sparse(&mut entry, &segments, *realsize, &mut buffer, job.archive)?;
                metadata.apply_to_file(&file, &path, &meta)
            }
            Item::Symlink(target) => {
                written.symlink(target)?;
                metadata.apply_no_follow(&path, &meta, Node::Symlink)
            }
            // One inode: its metadata came with the file it links to.
            Item::HardLink(target) => {
                written.hard_link(&job.destination.join(target))?;
                Ok(())
            }
            Item::Fifo => {
                written.fifo()?;
                metadata.apply_no_follow(&path, &meta, Node::Special)
            }
            Item::Device(kind) => {
                if !metadata.is_root() {
                    report
                        .skipped
                        .push((path, format!("{kind}s are restored only by root")));
                    continue;
                }
                let (major, minor) = device_numbers(entry.header());
                let flag = if *kind == CHAR_DEVICE {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                match written.device(flag, major, minor) {
                    Ok(()) => metadata.apply_no_follow(&path, &meta, Node::Special),
                    // A container's root may lack CAP_MKNOD.
                    Err(RestoreError::Write { source, .. })
                        if source.raw_os_error() == Some(nix::libc::EPERM) =>
                    {
                        report
                            .skipped
                            .push((path, format!("cannot create a {kind}: {source}")));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        applied.map_err(|source| RestoreError::Write {
            path: path.clone(),
            source,
        })?;
        report.restored += 1;
        on_restored(&path);
    }
    for (path, meta) in finished_dirs.into_iter().rev() {
        open_dir_no_follow(&path)
            .and_then(|dir| metadata.apply_to_file(&dir, &path, &meta))
            .map_err(|source| RestoreError::Write { path, source })?;
    }
    report.unrestored = metadata.unrestored;
    Ok(report)
}

const CHAR_DEVICE: &str = "character device";
const BLOCK_DEVICE: &str = "block device";

/// A device entry's major and minor numbers (0 when unreadable).
fn device_numbers(header: &tar::Header) -> (u64, u64) {
    let number = |n: io::Result<Option<u32>>| u64::from(n.ok().flatten().unwrap_or(0));
    (number(header.device_major()), number(header.device_minor()))
}

/// Writes one entry at `path` (`root` joined with `relative`).
struct Writer<'a> {
    root: &'a Path,
    path: &'a Path,
    relative: &'a Path,
    /// Something may be at `path` (checked: a file or symlink) to replace.
    force: bool,
    verified: &'a RefCell<HashSet<PathBuf>>,
}

impl Writer<'_> {
    fn error(&self, source: io::Error) -> RestoreError {
        RestoreError::Write {
            path: self.path.to_path_buf(),
            source,
        }
    }

    /// Creates the missing parents, refusing any that is not a real directory.
    fn parents(&self) -> Result<(), RestoreError> {
        let mut current = self.root.to_path_buf();
        let mut relative = PathBuf::new();
        let Some(parent) = self.relative.parent() else {
            return Ok(());
        };
        if self.verified.borrow().contains(parent) {
            return Ok(());
        }
        for part in parent.components() {
            current.push(part);
            relative.push(part);
            if self.verified.borrow().contains(&relative) {
                continue;
            }
            match fs::symlink_metadata(&current) {
                Ok(m) if m.file_type().is_dir() => {
                    self.verified.borrow_mut().insert(relative.clone());
                }
                Ok(_) => {
                    return Err(RestoreError::UnsafeDestination {
                        path: current,
                        why: "it is not a real directory (a symlink or a file)",
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&current).map_err(|source| RestoreError::Write {
                        path: current.clone(),
                        source,
                    })?;
                    self.verified.borrow_mut().insert(relative.clone());
                }
                Err(source) => {
                    return Err(RestoreError::Write {
                        path: current,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Removes what `--force` replaces (validation refused anything else;
    /// without `--force` it made sure nothing is there).
    fn clear(&self) -> Result<(), RestoreError> {
        if !self.force {
            return Ok(());
        }
        match fs::symlink_metadata(self.path) {
            Ok(m) if !m.file_type().is_dir() => {
                fs::remove_file(self.path).map_err(|e| self.error(e))
            }
            _ => Ok(()),
        }
    }

    fn dir(&self) -> Result<(), RestoreError> {
        self.parents()?;
        match fs::create_dir(self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                match fs::symlink_metadata(self.path) {
                    Ok(m) if m.file_type().is_dir() => {}
                    _ => {
                        self.clear()?;
                        fs::create_dir(self.path).map_err(|e| self.error(e))?;
                    }
                }
            }
            Err(e) => return Err(self.error(e)),
        }
        self.verified
            .borrow_mut()
            .insert(self.relative.to_path_buf());
        Ok(())
    }

    /// A file with its content, for its metadata to be set through.
    fn file<R: Read>(
        &self,
        content: &mut R,
        buffer: &mut [u8],
        archive: &Path,
    ) -> Result<File, RestoreError> {
        let mut file = self.new_file()?;
        self.copy(content, &mut file, buffer, archive)?;
        Ok(file)
    }

    /// Copies `content` to the end of `file` in writes of `buffer`'s size
    /// (a 12 KiB file is one write, not two); how many bytes.
    fn copy<R: Read>(
        &self,
        content: &mut R,
        file: &mut File,
        buffer: &mut [u8],
        archive: &Path,
    ) -> Result<u64, RestoreError> {
        use std::io::Write;
        let mut total = 0;
        loop {
            let mut filled = 0;
            while filled < buffer.len() {
                match content.read(&mut buffer[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(read_error(archive, e)),
                }
            }
            file.write_all(&buffer[..filled])
                .map_err(|e| self.error(e))?;
            total += filled as u64;
            if filled < buffer.len() {
                return Ok(total);
            }
        }
    }

    /// Creates the file at `path` (its parents first, a replaced entry
    /// removed), exclusively and never through a symlink, mode 0600 until
    /// its content is in place.
    fn new_file(&self) -> Result<File, RestoreError> {
        self.parents()?;
        self.clear()?;
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(self.path)
            .map_err(|e| self.error(e))
    }

    /// A sparse file: each data segment written at its offset, the holes
    /// left as holes, the size set last.
    fn sparse<R: Read>(
        &self,
        content: &mut R,
        segments: &[(u64, u64)],
        realsize: u64,
        buffer: &mut [u8],
        archive: &Path,
    ) -> Result<File, RestoreError> {
        use std::io::{Seek, SeekFrom};
        let mut file = self.new_file()?;
        for &(offset, length) in segments {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| self.error(e))?;
            let copied = self.copy(&mut content.take(length), &mut file, buffer, archive)?;
            if copied != length {
                return Err(read_error(
                    archive,
                    io::Error::from(io::ErrorKind::UnexpectedEof),
                ));
            }
        }
        file.set_len(realsize).map_err(|e| self.error(e))?;
        Ok(file)
    }

    fn symlink(&self, target: &Path) -> Result<(), RestoreError> {
        self.parents()?;
        self.clear()?;
        std::os::unix::fs::symlink(target, self.path).map_err(|e| self.error(e))
    }

    /// A FIFO, mode 0600 until its metadata is set (without opening it).
    fn fifo(&self) -> Result<(), RestoreError> {
        self.parents()?;
        self.clear()?;
        nix::unistd::mkfifo(self.path, Mode::from_bits_truncate(0o600))
            .map_err(|e| self.error(e.into()))
    }

    /// A device node, mode 0600 until its metadata is set.
    fn device(&self, kind: SFlag, major: u64, minor: u64) -> Result<(), RestoreError> {
        self.parents()?;
        self.clear()?;
        let number = nix::sys::stat::makedev(major, minor);
        nix::sys::stat::mknod(self.path, kind, Mode::from_bits_truncate(0o600), number)
            .map_err(|e| self.error(e.into()))
    }

    fn hard_link(&self, target: &Path) -> Result<(), RestoreError> {
        self.parents()?;
        self.clear()?;
        fs::hard_link(target, self.path).map_err(|e| self.error(e))
    }
}

fn open_dir_no_follow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_DIRECTORY)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_pass() {
        assert_eq!(safe_relative(Path::new("a/./b")), Ok(PathBuf::from("a/b")));
        assert_eq!(safe_relative(Path::new("./")), Ok(PathBuf::new()));
        assert!(safe_relative(Path::new("/etc/passwd")).is_err());
        assert!(safe_relative(Path::new("a/../../b")).is_err());
        assert!(safe_relative(Path::new("..")).is_err());
        assert!(safe_relative(Path::new("")).is_err());
    }
}
