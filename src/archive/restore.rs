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
//!    checked against the destination as it is then (by path: a hostile
//!    archive or a destination in the way is refused before anything is
//!    written): no parent may be a symlink or a non-directory, and without
//!    `force` nothing may exist at the path (an existing directory for a
//!    directory entry is fine). The archive is hashed on the way and, when it
//!    has a manifest, must match it. A local archive is hashed on a second
//!    thread, every byte of it; a plain `.tar` is then checked with seeks
//!    over its files' data (only a sparse file's map is read), and a seek
//!    past the end of the file is refused as an archive cut short.
//! 2. **Extraction**, where the kernel enforces what validation saw, whatever
//!    another user changes in the destination meanwhile. The destination is
//!    opened once (`O_DIRECTORY|O_NOFOLLOW`); each entry's directory is opened
//!    beneath it (`beneath`: `openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)`,
//!    or one `openat(O_NOFOLLOW)` per component from the directories already
//!    open, made where missing), and the entry is made with one `*at`
//!    call on that descriptor and its name: files with
//!    `O_CREAT|O_EXCL|O_NOFOLLOW` (mode 0600 until their content is in),
//!    `mkdirat`, `symlinkat`, `mknodat`, `linkat` (checked afterwards to be
//!    the inode restore wrote), and with `--force` an `unlinkat` of the file
//!    or symlink in the way. Both passes read one open descriptor of the
//!    archive (`Input::pinned`), so what is written is what was checked even
//!    if another file takes the archive's name in between; its entries are
//!    checked again as they come all the same. The files of a plain `.tar`
//!    are copied from that descriptor by the kernel (`copy_file_range`).
//!    Owners, modes, nanosecond mtimes, xattrs and ACLs are restored as GNU
//!    tar `-xp` does (`restore_meta`): for a file through the descriptor it
//!    was written with; for a symlink, FIFO or device through an
//!    `O_PATH|O_NOFOLLOW` descriptor of the node just made, refused unless
//!    it is still that kind of node with one link; for directories last,
//!    through a descriptor opened beneath the destination again, so a
//!    read-only directory can still be filled. Devices are made by root
//!    only, reported and skipped otherwise.
//!
//! So nothing is created, changed or removed outside the destination, and
//! never through a symlink, even when a directory of it is swapped for a
//! symlink during the restore: the swap is refused at the next open of that
//! directory ([`RestoreError::UnsafeDestination`] naming it), or, for a
//! directory already open, the writing goes on in the directory that was
//! opened, wherever it has been moved.
//!
//! **What a refusal during extraction leaves.** A destination in the way
//! (a symlink or file where a directory goes, a node replaced before its
//! metadata was set, something in the way without `--force`), an entry the
//! second reading finds hostile, or an error reading the archive or writing
//! the disk stops the restore at that entry. Then:
//! - the entries before it are in place, each with its content and its
//!   owner, mode, times and attributes (those are set as each is written),
//!   except directories;
//! - the directories of the archive restore made are there mode 0700, owned
//!   by whoever ran the restore, with the time of the restore (parents the
//!   archive has no entry for are made as `mkdir` makes them, and stay
//!   so, as after a whole restore); those that already existed
//!   keep their own owner and mode (directories get theirs at the very end);
//! - at the failing entry: for a refusal, nothing was made (a node found
//!   replaced, or a hard link found to name another inode, is left as it was
//!   found, resp. unlinked again); for a read or write error, a file may be
//!   there cut short, mode 0600; with `--force`, the file or symlink it
//!   replaces is already gone;
//! - nothing after it was written.
//!
//! Restoring again with `--force` once the cause is gone completes it.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use tar::EntryType;

use super::beneath::{BeneathError, DirStack, Root};

use super::manifest::Match;
use super::pax_tap::{PaxRecordsSeen, PaxTap, Records, entry_records};
use super::read_ahead::ReadAhead;
use super::restore_meta::{EntryMetadata, MetadataWriter, Node, Unrestored};
use super::selection::Selection;
use super::sparse_restore;
use super::stored::{self, Input, cut_short};
use super::verify::{HashingReader, decompressed, format_of};
use crate::model::Format;
use sha2::Digest;

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
    #[error("cannot restore the incremental {}: its chain is not whole", path.display())]
    BrokenChain {
        path: PathBuf,
        #[source]
        source: super::chain_restore::BrokenChain,
    },
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
    /// Where the stored bytes come from and the keys of an encrypted
    /// archive (default: the file, unencrypted).
    pub input: Input<'a>,
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
    let pinned;
    let pinned_job;
    let job = if job.input.stream.is_none() && job.input.pinned.is_none() {
        pinned = job
            .input
            .open_file(job.archive)
            .map_err(|e| open_error(job.archive, e))?;
        pinned_job = RestoreJob {
            input: Input {
                pinned: Some(&pinned),
                ..job.input
            },
            ..*job
        };
        &pinned_job
    } else {
        job
    };
    let exists = destination_exists(job.destination)?;
    let (manifest, links) = validate(job, format, !exists)?;
    crate::primitives::pause_at("restore-checked");
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
    let mut report = extract(job, format, !exists, &links, on_restored)?;
    report.manifest = manifest;
    Ok(report)
}

/// Pass 1 alone, writing nothing: a chain restore checks every archive of
/// the chain before it restores the first (see `chain_restore`).
pub fn check(job: &RestoreJob<'_>) -> Result<ManifestCheck, RestoreError> {
    let format = format_of(job.archive).ok_or_else(|| RestoreError::UnknownFormat {
        path: job.archive.to_path_buf(),
    })?;
    let exists = destination_exists(job.destination)?;
    validate(job, format, !exists).map(|(manifest, _)| manifest)
}

fn open_archive<'a>(job: &RestoreJob<'a>) -> Result<Box<dyn Read + Send + 'a>, RestoreError> {
    job.input
        .open(job.archive)
        .map_err(|e| open_error(job.archive, e))
}

fn open_error(path: &Path, error: io::Error) -> RestoreError {
    if error.kind() == io::ErrorKind::NotFound {
        RestoreError::ArchiveMissing {
            path: path.to_path_buf(),
        }
    } else {
        read_error(path, error)
    }
}

fn read_error(path: &Path, error: io::Error) -> RestoreError {
    RestoreError::Read {
        path: path.to_path_buf(),
        source: error,
    }
}

/// The files hard links name, as validation found them.
#[derive(Default)]
struct Links {
    /// Every file a hard link of the archive names.
    targets: HashSet<PathBuf>,
    /// Those outside the selection that links inside it need (restored
    /// too, at their own paths).
    outside_selection: HashSet<PathBuf>,
}

/// Pass 1: checks every entry and the archive's manifest; writes nothing.
/// Also returns the files hard links name.
fn validate(
    job: &RestoreJob<'_>,
    format: Format,
    fresh: bool,
) -> Result<(ManifestCheck, Links), RestoreError> {
    let mut links = Links::default();
    // A pinned local file is hashed on the second core, with positional
    // reads of the same descriptor, while this thread checks its entries;
    // a stream is hashed as it is read.
    let pinned = job.input.pinned.filter(|_| job.input.stream.is_none());
    let stop = AtomicBool::new(false);
    let mut plaintext = sha2::Sha256::new();
    let (checked, hashed_aside) = std::thread::scope(|scope| {
        let aside = pinned.map(|file| scope.spawn(|| hash_positionally(file, &stop)));
        let checked = check_entries(
            job,
            format,
            fresh,
            pinned.is_none(),
            &mut plaintext,
            &mut links,
        );
        if checked.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let hashed_aside = aside.map(|thread| {
            thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the hashing thread stopped")))
        });
        (checked, hashed_aside)
    });
    let hashed_inline = checked?;
    let (sha256, size) = match (hashed_inline, hashed_aside) {
        (Some(hashed), _) | (None, Some(Ok(hashed))) => hashed,
        (None, Some(Err(e))) => return Err(read_error(job.archive, e)),
        (None, None) => return Err(read_error(job.archive, io::Error::other("not hashed"))),
    };
    let plaintext = crate::primitives::hex(&plaintext.finalize());
    let manifest = match job.input.manifest(job.archive) {
        Ok(m)
            if stored::is_encrypted(job.archive)
                && m.plaintext_sha256.as_ref().is_some_and(|p| *p != plaintext) =>
        {
            return Err(RestoreError::Mismatch {
                path: job.archive.to_path_buf(),
                why: format!(
                    "plaintext SHA-256 is {plaintext}, the manifest says {}",
                    m.plaintext_sha256.unwrap_or_default()
                ),
            });
        }
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
    Ok((manifest, links))
}

/// Pass 1's reading of the entries (see [`validate`]): every entry checked,
/// the selection's paths found, free space for what will be written. With
/// `hash`, the stored bytes are hashed on the way: their SHA-256 and size.
/// Without, a plain `.tar` is read with seeks over the entries' data, which
/// the checks do not need (a sparse file's map excepted): the hashing
/// thread reads every byte, and a seek past the end of the file is refused
/// as an archive cut short.
fn check_entries(
    job: &RestoreJob<'_>,
    format: Format,
    fresh: bool,
    hash: bool,
    plaintext: &mut sha2::Sha256,
    links: &mut Links,
) -> Result<Option<(String, u64)>, RestoreError> {
    let seekable = match format {
        Format::Tar if !hash => job
            .input
            .positional(job.archive)
            .map_err(|e| read_error(job.archive, e))?,
        _ => None,
    };
    if let Some(file) = seekable {
        seeking(job, file, |entries, seen| {
            check_each(job, entries, seen, fresh, links)
        })?;
        return Ok(None);
    }
    let file = open_archive(job)?;
    let (mut hashing, mut unhashed) = if hash {
        (Some(HashingReader::new(file)), None)
    } else {
        (None, Some(file))
    };
    {
        let stored: &mut dyn Read = match (&mut hashing, &mut unhashed) {
            (Some(hashing), _) => hashing,
            (None, Some(file)) => file,
            (None, None) => return Ok(None),
        };
        let reader = job
            .input
            .tar_stream(job.archive, format, stored, plaintext)
            .map_err(|e| read_error(job.archive, e))?;
        let reader = PaxTap::new(reader);
        let seen = reader.seen();
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(|e| read_error(job.archive, e))?;
        check_each(job, entries, &seen, fresh, links)?;
        // The end-of-archive blocks and the compressed stream's trailer.
        io::copy(&mut archive.into_inner(), &mut io::sink())
            .map_err(|e| read_error(job.archive, e))?;
    }
    hashing
        .map(HashingReader::finish)
        .transpose()
        .map_err(|e| read_error(job.archive, e))
}

/// Checks each of `entries` (see [`check_entries`]); the tar crate skips
/// the data left unread, reading it or seeking over it.
fn check_each<R: Read>(
    job: &RestoreJob<'_>,
    entries: tar::Entries<'_, R>,
    seen: &PaxRecordsSeen,
    fresh: bool,
    links: &mut Links,
) -> Result<(), RestoreError> {
    // Entries outside the selection: sizes of files (a link may need one),
    // and every path with whether it is a directory (for PATHs and
    // patterns that match nothing).
    let mut unchosen_sizes: HashMap<PathBuf, u64> = HashMap::new();
    let mut entries_seen: Vec<(PathBuf, bool)> = Vec::new();
    let mut checker = Checker::new(job, fresh);
    let mut needed: u64 = 0;
    for entry in entries {
        let mut entry = entry.map_err(|e| read_error(job.archive, e))?;
        let records = entry_records(&mut entry, seen).map_err(|e| read_error(job.archive, e))?;
        let Some(Checked { relative, item }) = checker.check(&mut entry, &records)? else {
            continue;
        };
        let size = entry.size();
        if let Item::Sparse { realsize } = item {
            sparse_restore::read_map(&mut entry, realsize, size)
                .map_err(|e| read_error(job.archive, e))?
                .map_err(|why| checker.hostile(&relative, why))?;
        }
        let is_dir = matches!(item, Item::Dir);
        let is_file = matches!(item, Item::File | Item::Sparse { .. });
        if let Item::HardLink(target) = &item {
            links.targets.insert(target.clone());
        }
        if !job.selection.is_everything() {
            entries_seen.push((relative.clone(), is_dir));
        }
        if job.selection.selects(&relative, is_dir) {
            checker.check_destination(&relative, &item)?;
            if is_file {
                needed = needed.saturating_add(size);
            }
            if let Item::HardLink(target) = &item
                && let Some(size) = unchosen_sizes.remove(target)
            {
                checker.check_destination(target, &Item::File)?;
                needed = needed.saturating_add(size);
                links.outside_selection.insert(target.clone());
            }
        } else if is_file {
            unchosen_sizes.insert(relative, size);
        }
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
    check_free_space(job.destination, needed)
}

/// The entries of a local plain `.tar`, read with seeks over their data
/// through a [`PaxTap`] that follows the seeks, handed to `each` with what
/// the tap saw.
fn seeking<'a, T>(
    job: &RestoreJob<'_>,
    file: stored::Positional<'a>,
    each: impl FnOnce(
        tar::Entries<'_, PaxTap<io::BufReader<stored::Positional<'a>>>>,
        &PaxRecordsSeen,
    ) -> Result<T, RestoreError>,
) -> Result<T, RestoreError> {
    let reader = PaxTap::new(io::BufReader::new(file));
    let seen = reader.seen();
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries_with_seek()
        .map_err(|e| read_error(job.archive, e))?;
    each(entries, &seen)
}

/// The SHA-256 and size of `file`, read with `pread` from its start (the
/// caller's reads of the same descriptor are not disturbed); ends early
/// once `stop` is set. Each read is hashed where it lands, in a buffer
/// that stays in the core's cache.
fn hash_positionally(file: &File, stop: &AtomicBool) -> io::Result<(String, u64)> {
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 256 << 10];
    let mut reader = stored::Positional::new(file)?;
    let mut size = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(io::Error::other("restore refused"));
        }
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buffer[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((crate::primitives::hex(&hasher.finalize()), size))
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
    match fs::symlink_metadata(destination) {
        Ok(m) if m.is_dir() => Ok(true),
        Ok(m) if m.file_type().is_symlink() => Err(RestoreError::UnsafeDestination {
            path: destination.to_path_buf(),
            why: super::beneath::SYMLINK,
        }),
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

/// What an entry, or a parent of one, makes at its path (see [`Checker`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Made {
    Dir,
    File,
    Symlink,
    /// A hard link, FIFO or device: nothing can lie under it either.
    Other,
}

/// A checked entry: where it goes, relative to the destination.
struct Checked {
    relative: PathBuf,
    item: Item,
}

/// The checks of both passes. Paths are relative to the destination.
struct Checker<'a> {
    job: &'a RestoreJob<'a>,
    /// Every path the entries so far make, with what they make there
    /// (directories for their parents too): one kind per path, and a
    /// directory's parents are directories.
    made: HashMap<PathBuf, Made>,
    /// Directories of the destination (relative) seen to be real
    /// directories by validation's `lstat`: each is looked at once, not
    /// once per entry below it (46,000 entries made 800,000 `lstat`s).
    /// Extraction does not rely on it: the kernel checks again there.
    verified: HashSet<PathBuf>,
    /// The destination did not exist: restore makes it, so nothing can be
    /// in the way of an entry and the destination needs no `lstat`s.
    fresh: bool,
}

impl<'a> Checker<'a> {
    fn new(job: &'a RestoreJob<'a>, fresh: bool) -> Self {
        Self {
            job,
            fresh,
            made: HashMap::new(),
            verified: HashSet::new(),
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
        let parents_made = self.check_archive_paths(&raw, &relative)?;
        let made = match item {
            Item::Dir => Made::Dir,
            Item::File | Item::Sparse { .. } => Made::File,
            Item::Symlink(_) => Made::Symlink,
            Item::HardLink(_) | Item::Fifo | Item::Device(_) => Made::Other,
        };
        match self.made.entry(relative.clone()) {
            Entry::Vacant(vacant) => {
                vacant.insert(made);
            }
            // A directory may repeat.
            Entry::Occupied(seen) if (*seen.get(), made) == (Made::Dir, Made::Dir) => {}
            Entry::Occupied(_) => return Err(self.hostile(&raw, "appears twice in the archive")),
        }
        // Parents are created as directories even without entries of their
        // own; the walk up ends at the first one made already.
        if !parents_made {
            for parent in relative.ancestors().skip(1) {
                if self.made.contains_key(parent) {
                    break;
                }
                self.made.insert(parent.to_path_buf(), Made::Dir);
            }
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
                if self.made.get(&target) != Some(&Made::File) {
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

    /// Against the entries before it: no path under a symlink or a file.
    /// Whether its parent is made already (as a directory, then).
    fn check_archive_paths(&self, raw: &Path, relative: &Path) -> Result<bool, RestoreError> {
        for (up, ancestor) in relative.ancestors().skip(1).enumerate() {
            match self.made.get(ancestor) {
                None => {}
                // A directory's parents are directories: none is a symlink
                // or a file.
                Some(Made::Dir) => return Ok(up == 0),
                Some(Made::Symlink) => {
                    return Err(self.hostile(
                        raw,
                        format!(
                            "goes through the symlink {} that the archive creates",
                            ancestor.display()
                        ),
                    ));
                }
                Some(Made::File | Made::Other) => {
                    return Err(self.hostile(
                        raw,
                        format!(
                            "lies under {}, which is not a directory",
                            ancestor.display()
                        ),
                    ));
                }
            }
        }
        Ok(false)
    }

    /// Against the destination as it is: parents must be real directories,
    /// and the path must be free unless `force`.
    fn check_destination(&mut self, relative: &Path, item: &Item) -> Result<(), RestoreError> {
        if self.fresh {
            return Ok(());
        }
        let mut parents: Vec<&Path> = relative.ancestors().skip(1).collect();
        parents.reverse();
        for parent in parents.into_iter().filter(|p| !p.as_os_str().is_empty()) {
            if self.verified.contains(parent) {
                continue;
            }
            let path = self.job.destination.join(parent);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_dir() => {
                    self.verified.insert(parent.to_path_buf());
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

/// Pass 2: writes the entries, each with one `*at` call in its directory,
/// opened beneath the destination (see `beneath`).
fn extract(
    job: &RestoreJob<'_>,
    format: Format,
    fresh: bool,
    links: &Links,
    on_restored: &mut dyn FnMut(&Path),
) -> Result<RestoreReport, RestoreError> {
    let seekable = match (format, job.input.pinned) {
        (Format::Tar, Some(pinned)) => job
            .input
            .positional(job.archive)
            .map_err(|e| read_error(job.archive, e))?
            .map(|file| (file, pinned)),
        _ => None,
    };
    if let Some((file, pinned)) = seekable {
        // Files are copied from the archive by the kernel; the tar crate
        // seeks over their data.
        return seeking(job, file, |entries, seen| {
            extract_each(job, fresh, links, on_restored, entries, seen, Some(pinned))
        });
    }
    let mut plaintext = sha2::Sha256::new();
    let reader: Box<dyn Read + '_> = if job.input.stream.is_none()
        && !stored::is_encrypted(job.archive)
        && format != Format::Tar
    {
        // Decompression overlaps the writing, on the second core.
        let file = job
            .input
            .open_file(job.archive)
            .map_err(|e| read_error(job.archive, e))?;
        Box::new(
            ReadAhead::spawn(move || decompressed(format, io::BufReader::new(file)))
                .map_err(|e| read_error(job.archive, e))?,
        )
    } else {
        let file = open_archive(job)?;
        job.input
            .tar_stream(job.archive, format, file, &mut plaintext)
            .map_err(|e| read_error(job.archive, e))?
    };
    let reader = PaxTap::new(reader);
    let seen = reader.seen();
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| read_error(job.archive, e))?;
    extract_each(job, fresh, links, on_restored, entries, &seen, None)
}

/// Writes each of `entries` (see [`extract`]). With `source`, the archive
/// file of a plain `.tar`, a file's content is copied from its position
/// there rather than read through the tar crate.
fn extract_each<R: Read>(
    job: &RestoreJob<'_>,
    fresh: bool,
    links: &Links,
    on_restored: &mut dyn FnMut(&Path),
    entries: tar::Entries<'_, R>,
    seen: &PaxRecordsSeen,
    source: Option<&File>,
) -> Result<RestoreReport, RestoreError> {
    let mut source = source.map(|file| Source {
        file,
        kernel_copies: true,
    });
    let root = Root::open(job.destination)?;
    let mut checker = Checker::new(job, fresh);
    let mut metadata = MetadataWriter::new(job.numeric_owner);
    let mut report = RestoreReport {
        manifest: ManifestCheck::Missing,
        restored: 0,
        skipped: Vec::new(),
        unrestored: Unrestored::default(),
    };
    let mut dirs = DirStack::new(&root);
    // Files that hard links name, by (device, inode): a link must get the
    // file this restore wrote, not one swapped in since.
    let mut link_inodes: HashMap<PathBuf, (u64, u64)> = HashMap::new();
    // Directories get their owner, mode and mtime once their content is in
    // place.
    let mut finished_dirs: Vec<(PathBuf, EntryMetadata)> = Vec::new();
    let pausing = std::env::var_os(crate::primitives::PAUSE_AT_VAR).is_some();
    let pause = |step: &str, relative: &Path| {
        if pausing {
            crate::primitives::pause_at(&format!("{step}:{}", relative.display()));
        }
    };
    let mut buffer = vec![0u8; 1 << 20];
    for entry in entries {
        let mut entry = entry.map_err(|e| read_error(job.archive, e))?;
        let records = entry_records(&mut entry, seen).map_err(|e| read_error(job.archive, e))?;
        let Some(checked) = checker.check(&mut entry, &records)? else {
            continue;
        };
        let relative = &checked.relative;
        let chosen = job
            .selection
            .selects(relative, matches!(checked.item, Item::Dir))
            || links.outside_selection.contains(relative);
        if !chosen {
            continue;
        }
        pause("restore-entry", relative);
        let path = job.destination.join(relative);
        let meta = EntryMetadata::read(entry.header(), &records);
        let (Some(parent), Some(name)) = (relative.parent(), relative.file_name()) else {
            continue; // `safe_relative` leaves only plain names
        };
        let written = Writer {
            dir: dirs.dir(parent)?,
            name,
            path: &path,
            force: job.force,
        };
        let applied = match &checked.item {
            Item::Dir => {
                written.dir()?;
                finished_dirs.push((relative.clone(), meta));
                Ok(())
            }
            Item::File | Item::Sparse { .. } => {
                let file = match &checked.item {
                    Item::Sparse { realsize } => {
                        let size = entry.size();
                        let segments = sparse_restore::read_map(&mut entry, *realsize, size)
                            .map_err(|e| read_error(job.archive, e))?
                            .map_err(|why| checker.hostile(relative, why))?;
                        written.sparse(
                            &mut entry,
                            &segments,
                            *realsize,
                            &mut buffer,
                            job.archive,
                        )?
                    }
                    // Old GNU sparse entries are expanded by the tar crate.
                    _ => match &mut source {
                        Some(source) if entry.header().entry_type() != EntryType::GNUSparse => {
                            let at = entry.raw_file_position();
                            written.file_at(source, at, entry.size(), &mut buffer, job.archive)?
                        }
                        _ => written.file(&mut entry, &mut buffer, job.archive)?,
                    },
                };
                if links.targets.contains(relative) {
                    let st = rustix::fs::fstat(&file).map_err(|e| written.error(e))?;
                    link_inodes.insert(relative.clone(), (st.st_dev, st.st_ino));
                }
                pause("restore-written", relative);
                metadata.apply_to_file(&file, &path, &meta)
            }
            Item::Symlink(target) => {
                written.symlink(target)?;
                pause("restore-written", relative);
                let node = written.node(FileType::Symlink)?;
                metadata.apply_to_node(node.as_fd(), &path, &meta, Node::Symlink)
            }
            // One inode: its metadata came with the file it links to.
            Item::HardLink(target) => {
                let (Some(target_parent), Some(target_name)) =
                    (target.parent(), target.file_name())
                else {
                    continue;
                };
                let target_dir = root.open_dir(target_parent)?;
                written.hard_link(
                    target_dir.as_fd(),
                    target_name,
                    link_inodes.get(target),
                    &root.shown(target),
                )?;
                Ok(())
            }
            Item::Fifo => {
                written.fifo()?;
                pause("restore-written", relative);
                let node = written.node(FileType::Fifo)?;
                metadata.apply_to_node(node.as_fd(), &path, &meta, Node::Special)
            }
            Item::Device(kind) => {
                if !metadata.is_root() {
                    report
                        .skipped
                        .push((path, format!("{kind}s are restored only by root")));
                    continue;
                }
                let (major, minor) = device_numbers(entry.header());
                let file_type = if *kind == CHAR_DEVICE {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                match written.device(file_type, major, minor) {
                    Ok(()) => {
                        let node = written.node(file_type)?;
                        metadata.apply_to_node(node.as_fd(), &path, &meta, Node::Special)
                    }
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
    drop(dirs);
    for (relative, meta) in finished_dirs.into_iter().rev() {
        let path = root.shown(&relative);
        let dir = File::from(root.open_dir(&relative)?);
        metadata
            .apply_to_file(&dir, &path, &meta)
            .map_err(|source| RestoreError::Write { path, source })?;
    }
    report.unrestored = metadata.unrestored;
    Ok(report)
}

const CHAR_DEVICE: &str = "character device";
const BLOCK_DEVICE: &str = "block device";

/// A device entry's major and minor numbers (0 when unreadable).
fn device_numbers(header: &tar::Header) -> (u32, u32) {
    let number = |n: io::Result<Option<u32>>| n.ok().flatten().unwrap_or(0);
    (number(header.device_major()), number(header.device_minor()))
}

/// What restore said of a node it had just made and finds changed.
const REPLACED: &str = "it was replaced by something else during the restore";

/// The archive file a plain `.tar`'s files are copied from.
struct Source<'a> {
    file: &'a File,
    /// No `copy_file_range` failed so far.
    kernel_copies: bool,
}

/// Writes one entry: `name` in the open directory `dir`; `path` names it
/// in messages.
struct Writer<'a> {
    dir: BorrowedFd<'a>,
    name: &'a OsStr,
    path: &'a Path,
    /// Replace a file or symlink in the way (never a directory).
    force: bool,
}

impl Writer<'_> {
    fn error(&self, source: impl Into<io::Error>) -> RestoreError {
        RestoreError::Write {
            path: self.path.to_path_buf(),
            source: source.into(),
        }
    }

    /// Runs `create`; when something is in the way, refuses without
    /// `force`, else removes it and runs `create` once more.
    fn create<T>(&self, create: impl Fn() -> Result<T, Errno>) -> Result<T, RestoreError> {
        match create() {
            Err(Errno::EXIST) => {
                self.clear()?;
                create().map_err(|e| self.error(e))
            }
            other => other.map_err(|e| self.error(e)),
        }
    }

    /// Removes what is at the entry's name, with `force`, unless it is a
    /// directory; without, refuses.
    fn clear(&self) -> Result<(), RestoreError> {
        if !self.force {
            return Err(RestoreError::Exists {
                path: self.path.to_path_buf(),
            });
        }
        let st = rustix::fs::statat(self.dir, self.name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.error(e))?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            return Err(RestoreError::UnsafeDestination {
                path: self.path.to_path_buf(),
                why: "a directory is there and --force only replaces files and symlinks",
            });
        }
        match rustix::fs::unlinkat(self.dir, self.name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// A directory, mode 0700 until the end; an existing one is kept.
    fn dir(&self) -> Result<(), RestoreError> {
        let make = || rustix::fs::mkdirat(self.dir, self.name, Mode::RWXU);
        match make() {
            Err(Errno::EXIST) => {
                match rustix::fs::statat(self.dir, self.name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => Ok(()),
                    _ => {
                        self.clear()?;
                        make().map_err(|e| self.error(e))
                    }
                }
            }
            other => other.map_err(|e| self.error(e)),
        }
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

    /// A file whose content is the `len` bytes of `source` at `offset`,
    /// copied by the kernel (`copy_file_range`: no read into memory and
    /// write back), or read and written where it cannot (an old kernel,
    /// another filesystem: not tried again once it failed).
    fn file_at(
        &self,
        source: &mut Source<'_>,
        offset: u64,
        len: u64,
        buffer: &mut [u8],
        archive: &Path,
    ) -> Result<File, RestoreError> {
        let mut file = self.new_file()?;
        let (mut at, mut left) = (offset, len);
        while left > 0 {
            let chunk = usize::try_from(left).unwrap_or(usize::MAX).min(1 << 30);
            let copied = if source.kernel_copies {
                rustix::fs::copy_file_range(source.file, Some(&mut at), &file, None, chunk)
            } else {
                Err(Errno::XDEV)
            };
            match copied {
                Ok(0) => return Err(read_error(archive, cut_short())),
                Ok(n) => left -= n as u64,
                Err(_) => {
                    // Read and written instead, where a failure says
                    // which side it is on.
                    source.kernel_copies = false;
                    let mut rest = stored::Positional::new(source.file)
                        .and_then(|mut rest| rest.seek(io::SeekFrom::Start(at)).map(|_| rest))
                        .map_err(|e| read_error(archive, e))?
                        .take(left);
                    if self.copy(&mut rest, &mut file, buffer, archive)? != left {
                        return Err(read_error(archive, cut_short()));
                    }
                    left = 0;
                }
            }
        }
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

    /// Creates the file exclusively and never through a symlink, mode 0600
    /// until its content is in place.
    fn new_file(&self) -> Result<File, RestoreError> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = self
            .create(|| rustix::fs::openat(self.dir, self.name, flags, Mode::RUSR | Mode::WUSR))?;
        Ok(File::from(fd))
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
        use std::io::SeekFrom;
        let mut file = self.new_file()?;
        for &(offset, length) in segments {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| self.error(e))?;
            let copied = self.copy(&mut content.take(length), &mut file, buffer, archive)?;
            if copied != length {
                return Err(read_error(archive, cut_short()));
            }
        }
        file.set_len(realsize).map_err(|e| self.error(e))?;
        Ok(file)
    }

    fn symlink(&self, target: &Path) -> Result<(), RestoreError> {
        self.create(|| rustix::fs::symlinkat(target, self.dir, self.name))
    }

    /// A FIFO, mode 0600 until its metadata is set (without opening it).
    fn fifo(&self) -> Result<(), RestoreError> {
        self.device(FileType::Fifo, 0, 0)
    }

    /// A device node (or FIFO), mode 0600 until its metadata is set.
    fn device(&self, kind: FileType, major: u32, minor: u32) -> Result<(), RestoreError> {
        let number = rustix::fs::makedev(major, minor);
        let mode = Mode::RUSR | Mode::WUSR;
        self.create(|| rustix::fs::mknodat(self.dir, self.name, kind, mode, number))
    }

    /// A hard link to `target_name` in `target_dir` (`target` in messages),
    /// which must be the file restore wrote there (`expected`): one swapped
    /// in since is unlinked again and refused.
    fn hard_link(
        &self,
        target_dir: BorrowedFd<'_>,
        target_name: &OsStr,
        expected: Option<&(u64, u64)>,
        target: &Path,
    ) -> Result<(), RestoreError> {
        self.create(|| {
            rustix::fs::linkat(
                target_dir,
                target_name,
                self.dir,
                self.name,
                AtFlags::empty(),
            )
        })?;
        let st = rustix::fs::statat(self.dir, self.name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.error(e))?;
        if expected.is_some_and(|&(dev, ino)| (st.st_dev, st.st_ino) != (dev, ino)) {
            rustix::fs::unlinkat(self.dir, self.name, AtFlags::empty())
                .map_err(|e| self.error(e))?;
            return Err(RestoreError::UnsafeDestination {
                path: target.to_path_buf(),
                why: REPLACED,
            });
        }
        Ok(())
    }

    /// The node just made at the entry's name, opened `O_PATH|O_NOFOLLOW`
    /// for its metadata: refused unless it is still of `kind` with one
    /// link, as made (not a symlink, FIFO or link put there since).
    fn node(&self, kind: FileType) -> Result<OwnedFd, RestoreError> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(self.dir, self.name, flags, Mode::empty())
            .map_err(|e| self.error(e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.error(e))?;
        if FileType::from_raw_mode(st.st_mode) != kind || st.st_nlink != 1 {
            return Err(RestoreError::UnsafeDestination {
                path: self.path.to_path_buf(),
                why: REPLACED,
            });
        }
        Ok(fd)
    }
}

impl From<BeneathError> for RestoreError {
    fn from(error: BeneathError) -> Self {
        match error {
            BeneathError::Unsafe { path, why } => RestoreError::UnsafeDestination { path, why },
            BeneathError::Io { path, source } => RestoreError::Write { path, source },
        }
    }
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
