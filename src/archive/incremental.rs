//! Incremental archives, as GNU tar's `--format=posix --listed-incremental`
//! writes them, so that stock `tar -x --listed-incremental=/dev/null` on the
//! full archive and then on each incremental reproduces the tree, deletions
//! included.
//!
//! Every directory is stored (type `5`) with a PAX `GNU.dumpdir` record: the
//! names it holds now, each behind a flag (`Y` stored in this archive, `N`
//! unchanged since the parent archive, `D` a directory), sorted, each ended
//! by a NUL, the list ended by one more. GNU tar's extraction deletes from a
//! directory whatever its dumpdir does not name. Then come the `Y` entries,
//! directory by directory, as GNU tar orders them: all directories first,
//! then the files. Two differences from GNU tar, both chosen: directories
//! come in walk order (depth first, names sorted) rather than sorted as
//! whole paths, which would need every directory name in memory at once;
//! and a renamed directory is stored as new (GNU tar's `R`/`T` rename
//! records need its inode table) — restores are the same either way.
//!
//! What the next run compares against is not a GNU `.snar` but the
//! *file state* written beside each archive of a chain,
//! `<archive>.files` (zstd): per directory in walk order, its entries with
//! type, size, mtime, ctime and inode. The next run walks in the same order
//! and merge-joins with it, so memory holds one directory's entries at a
//! time (and the unvisited siblings of the directories above), whatever the
//! tree's size.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering as AtomicOrdering;

use super::fingerprint::EntryStat;
use super::reader::AbortRequested;
use super::scan::{Directory, Listed, Visitor, walk_in_order};
use super::tree::{self, Entry, EntryWriter};
use super::writer::{HashingWriter, TarSink};
use super::{ArchiveError, ArchiveJob, ArchiveReport, Skipped};
use tar::Builder;

/// The first bytes of a file state.
const MAGIC: &[u8] = b"backupctl file state 1\n";

/// Ends the list of directory blocks.
const END: u32 = u32::MAX;

/// The longest name or path a file state may hold: longer means damage.
const MAX_PATH: usize = 1 << 16;

/// Paths of entries to store that a run keeps in memory for its second
/// pass (a few MiB at most); a run that stores more reads them back from
/// its file state instead, so memory stays bounded whatever the tree.
const STORED_IN_MEMORY: usize = 16 * 1024;

/// `<archive>.files`: the file state written beside an archive of a chain.
pub fn state_path(archive: &Path) -> PathBuf {
    let mut name = archive.file_name().unwrap_or_default().to_os_string();
    name.push(".files");
    archive.with_file_name(name)
}

/// What an incremental run is given: the parent's file state (checked by
/// the caller against the parent's manifest), paths to store whatever
/// their metadata says (those the parent's run skipped), and the temporary
/// file the new file state goes into (opened for writing, and its path,
/// from which the second pass reads it back).
pub struct ChainInput<'a> {
    pub parent_state: Option<&'a Path>,
    pub forced: &'a HashSet<PathBuf>,
    pub state: File,
    pub state_path: &'a Path,
}

/// The file state a run wrote.
#[derive(Debug, Clone)]
pub struct StateWritten {
    pub sha256: String,
    pub size: u64,
}

/// Writes the incremental archive of `job.source` (a directory) into
/// `file`, and the tree's new file state into `chain.state`.
pub fn write_incremental(
    job: &ArchiveJob<'_>,
    file: File,
    chain: ChainInput<'_>,
) -> Result<(ArchiveReport, StateWritten), ArchiveError> {
    write_keeping(job, file, chain, STORED_IN_MEMORY)
}

/// [`write_incremental`], keeping up to `in_memory` paths to store.
fn write_keeping(
    job: &ArchiveJob<'_>,
    file: File,
    chain: ChainInput<'_>,
    in_memory: usize,
) -> Result<(ArchiveReport, StateWritten), ArchiveError> {
    let mut written = None;
    let report = super::write_with(job, file, |builder, report| {
        written = Some(append_incremental(builder, job, chain, report, in_memory)?);
        Ok(())
    })?;
    let written = written.ok_or_else(|| ArchiveError::Write {
        path: job.destination.to_path_buf(),
        source: io::Error::other("the file state was not written"),
    })?;
    Ok((report, written))
}

/// The SHA-256 and size of a file, read as a stream: a parent's file state
/// is checked against its manifest before a run trusts it.
pub fn hash_file(path: &Path) -> io::Result<StateWritten> {
    let mut hashing = HashingWriter::new(io::sink());
    io::copy(&mut File::open(path)?, &mut hashing)?;
    let (_, sha256, size) = hashing.finish()?;
    Ok(StateWritten { sha256, size })
}

fn append_incremental<W: TarSink>(
    builder: &mut Builder<W>,
    job: &ArchiveJob<'_>,
    chain: ChainInput<'_>,
    report: &mut ArchiveReport,
    in_memory: usize,
) -> io::Result<StateWritten> {
    let base = tree::base_name(job.source);
    let mut writer = EntryWriter::new(builder, job);
    // A parent state that cannot be read is as good as none: every entry
    // is then stored again, which the chain's restore handles the same.
    let parent = chain
        .parent_state
        .and_then(|path| StateReader::open(path).ok());
    let state = StateWriter::new(chain.state)?;
    let mut walk = IncrementalWalk {
        job,
        base: &base,
        parent,
        forced: chain.forced,
        state,
        stored: Some(Vec::new()),
        in_memory,
        writer: &mut writer,
        report,
    };
    let walked = (job.watch.abort, job.xattrs);
    let (fingerprint, left_out) = walk_in_order(job.source, job.exclude, walked, &mut walk)?;
    let written = walk.state.finish()?;
    match walk.stored {
        Some(stored) => {
            for relative in stored {
                append_stored(&mut writer, job, (&base, &relative), report)?;
            }
        }
        None => {
            let state = File::open(chain.state_path)?;
            append_stored_files(&mut writer, job, &base, state, report)?;
        }
    }
    report.fingerprint = fingerprint;
    report.left_out = left_out.builtin;
    report.excluded = left_out.excluded;
    Ok(written)
}

/// The first pass: every directory, with its dumpdir, into the archive;
/// every entry, with its flag, into the new file state.
struct IncrementalWalk<'j, 'a, 'b, 'w, 'x, W: TarSink> {
    job: &'j ArchiveJob<'a>,
    base: &'j Path,
    parent: Option<StateReader>,
    forced: &'j HashSet<PathBuf>,
    state: StateWriter,
    /// The paths the second pass stores, while they are few (up to
    /// `in_memory`, [`STORED_IN_MEMORY`] but in a test); past that, `None`, and the second pass reads
    /// them back from the new file state.
    stored: Option<Vec<PathBuf>>,
    in_memory: usize,
    writer: &'j mut EntryWriter<'b, 'w, W>,
    report: &'x mut ArchiveReport,
}

impl<W: TarSink> Visitor for IncrementalWalk<'_, '_, '_, '_, '_, W> {
    /// Stores the directory's header and dumpdir and records its block of
    /// the file state; a directory that cannot be read is stored without a
    /// dumpdir, so that restoring deletes nothing from it.
    fn directory(&mut self, directory: Directory<'_>) -> io::Result<()> {
        let Directory {
            relative,
            stat: metadata,
            children,
            attributes,
        } = directory;
        let path = self.job.source.join(relative);
        let name = self.base.join(relative);
        let dumpdir = match children {
            Ok(children) => Some(self.compare(relative, &path, children)?),
            Err(reason) => {
                self.report.skipped.push(Skipped {
                    path: path.clone(),
                    reason: reason.to_string(),
                });
                None
            }
        };
        let entry = Entry {
            path: &path,
            name: &name,
            metadata,
            target: None,
            dumpdir: dumpdir.as_deref(),
            attributes,
        };
        self.writer.append_entry(entry, self.report)
    }
}

impl<W: TarSink> IncrementalWalk<'_, '_, '_, '_, '_, W> {
    /// Flags each entry of the directory against the parent's file state,
    /// records them, and returns the dumpdir.
    fn compare(
        &mut self,
        relative: &Path,
        path: &Path,
        children: &[Listed],
    ) -> io::Result<Vec<u8>> {
        let before = self
            .parent
            .as_mut()
            .and_then(|parent| parent.block(relative));
        let mut dumpdir = Vec::new();
        let mut records = Vec::with_capacity(children.len());
        let mut before = before.unwrap_or_default().into_iter().peekable();
        for child in children {
            while before
                .peek()
                .is_some_and(|old| old.name.as_bytes() < child.name.as_bytes())
            {
                before.next();
            }
            let old = before.next_if(|old| old.name == child.name);
            let metadata = match &child.stat {
                Ok(metadata) => Some(metadata),
                Err(reason) => {
                    self.report.skipped.push(Skipped {
                        path: path.join(&child.name),
                        reason: reason.clone(),
                    });
                    None
                }
            };
            let Some(metadata) = metadata else {
                // Unreadable now (and reported skipped): what an earlier
                // archive holds of it stays, named unchanged, so a restore
                // keeps it; the run's skipped list stores it next time.
                if let Some(mut old) = old {
                    old.flag = if old.kind == b'd' { b'D' } else { b'N' };
                    add_to_dumpdir(&mut dumpdir, &old);
                    records.push(old);
                }
                continue;
            };
            let Some(mut record) = Record::of(&child.name, metadata) else {
                continue; // a socket: never archived
            };
            record.flag = if record.kind == b'd' {
                b'D'
            } else if old.is_some_and(|old| old.same_as(&record))
                && (self.forced.is_empty() || !self.forced.contains(&path.join(&child.name)))
            {
                b'N'
            } else {
                if let Some(stored) = &mut self.stored {
                    if stored.len() < self.in_memory {
                        stored.push(relative.join(&record.name));
                    } else {
                        self.stored = None;
                    }
                }
                b'Y'
            };
            add_to_dumpdir(&mut dumpdir, &record);
            records.push(record);
        }
        dumpdir.push(0);
        self.state.block(relative, &records)?;
        Ok(dumpdir)
    }
}

/// `FLAG NAME NUL`, one item of a dumpdir.
fn add_to_dumpdir(dumpdir: &mut Vec<u8>, record: &Record) {
    dumpdir.push(record.flag);
    dumpdir.extend_from_slice(record.name.as_bytes());
    dumpdir.push(0);
}

/// The second pass: each entry the file state flags `Y`, directory by
/// directory, read from the source again.
fn append_stored_files<W: TarSink>(
    writer: &mut EntryWriter<'_, '_, W>,
    job: &ArchiveJob<'_>,
    base: &Path,
    state: File,
    report: &mut ArchiveReport,
) -> io::Result<()> {
    let mut reader = StateReader::from_file(state)?;
    while let Some((relative, records)) = reader.next_block()? {
        for record in records.iter().filter(|r| r.flag == b'Y') {
            append_stored(writer, job, (base, &relative.join(&record.name)), report)?;
        }
    }
    Ok(())
}

/// Stores the entry at `relative` (a path the first pass flagged `Y`),
/// read from the source again, under `base`.
fn append_stored<W: TarSink>(
    writer: &mut EntryWriter<'_, '_, W>,
    job: &ArchiveJob<'_>,
    (base, relative): (&Path, &Path),
    report: &mut ArchiveReport,
) -> io::Result<()> {
    if job.watch.abort.load(AtomicOrdering::Relaxed) {
        return Err(AbortRequested::error());
    }
    let path = job.source.join(relative);
    let metadata = match path.symlink_metadata() {
        Ok(metadata) if !metadata.is_dir() => metadata,
        Ok(_) => {
            report.skipped.push(Skipped {
                path,
                reason: "changed type while the backup ran".to_string(),
            });
            return Ok(());
        }
        Err(e) => {
            report.skipped.push(tree::skipped(&path, &e));
            return Ok(());
        }
    };
    let name = base.join(relative);
    let metadata = EntryStat::from(&metadata);
    let entry = Entry {
        path: &path,
        name: &name,
        target: tree::link_target(&path, &metadata),
        metadata: &metadata,
        dumpdir: None,
        attributes: None,
    };
    writer.append_entry(entry, report)
}

/// One entry of a directory in a file state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    name: OsString,
    /// `d`, `f`, `l`, `p`, `c` or `b`.
    kind: u8,
    /// `Y`, `N` or `D`, as in the dumpdir.
    flag: u8,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    inode: u64,
}

impl Record {
    /// `None` for a socket, which no archive holds.
    fn of(name: &OsStr, metadata: &EntryStat) -> Option<Self> {
        let kind = match super::fingerprint::kind_letter(metadata.mode) {
            None | Some(b's') => return None,
            Some(kind) => kind,
        };
        Some(Record {
            name: name.to_os_string(),
            kind,
            flag: 0,
            size: metadata.size,
            mtime: (metadata.mtime, metadata.mtime_nsec),
            ctime: (metadata.ctime, metadata.ctime_nsec),
            inode: metadata.ino,
        })
    }

    /// Unchanged since `self` was recorded: GNU tar's test (size, mtime,
    /// ctime) and the inode, so a file renamed over another counts as new.
    fn same_as(&self, now: &Record) -> bool {
        self.kind == now.kind
            && self.size == now.size
            && self.mtime == now.mtime
            && self.ctime == now.ctime
            && self.inode == now.inode
    }
}

/// Writes a file state: the magic, then per directory its path and its
/// records, then [`END`]; zstd-compressed, hashed as it is written.
struct StateWriter {
    out: zstd::stream::write::Encoder<'static, HashingWriter<BufWriter<File>>>,
}

impl StateWriter {
    fn new(file: File) -> io::Result<Self> {
        let mut out =
            zstd::stream::write::Encoder::new(HashingWriter::new(BufWriter::new(file)), 1)?;
        out.write_all(MAGIC)?;
        Ok(Self { out })
    }

    fn block(&mut self, relative: &Path, records: &[Record]) -> io::Result<()> {
        write_bytes(&mut self.out, relative.as_os_str().as_bytes())?;
        self.out.write_all(&len32(records.len())?.to_le_bytes())?;
        for r in records {
            write_bytes(&mut self.out, r.name.as_bytes())?;
            self.out.write_all(&[r.kind, r.flag])?;
            self.out.write_all(&r.size.to_le_bytes())?;
            for n in [r.mtime.0, r.mtime.1, r.ctime.0, r.ctime.1] {
                self.out.write_all(&n.to_le_bytes())?;
            }
            self.out.write_all(&r.inode.to_le_bytes())?;
        }
        Ok(())
    }

    /// Ends the state and syncs it.
    fn finish(mut self) -> io::Result<StateWritten> {
        self.out.write_all(&END.to_le_bytes())?;
        let (buffered, sha256, size) = self.out.finish()?.finish()?;
        let file = buffered.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(StateWritten { sha256, size })
    }
}

fn len32(n: usize) -> io::Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|&n| n != END)
        .ok_or_else(|| io::Error::other("too many entries for a file state"))
}

fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    out.write_all(&len32(bytes.len())?.to_le_bytes())?;
    out.write_all(bytes)
}

/// Reads a file state block by block, in the walk's order.
struct StateReader {
    input: zstd::stream::read::Decoder<'static, BufReader<File>>,
    /// A block read ahead: the walk has not reached its directory yet.
    ahead: Option<(PathBuf, Vec<Record>)>,
    done: bool,
}

fn damaged(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("damaged file state: {what}"),
    )
}

impl StateReader {
    fn open(path: &Path) -> io::Result<Self> {
        Self::from_file(File::open(path)?)
    }

    fn from_file(file: File) -> io::Result<Self> {
        let mut input = zstd::stream::read::Decoder::new(file)?;
        let mut magic = [0u8; MAGIC.len()];
        input.read_exact(&mut magic)?;
        if magic != MAGIC {
            return Err(damaged("not a backupctl file state"));
        }
        Ok(Self {
            input,
            ahead: None,
            done: false,
        })
    }

    /// The records of the directory at `relative`, if the state has them.
    /// Walks forward only: blocks before it are passed over. A damaged
    /// state ends here, as if it held no more directories: everything
    /// after is then stored again, which is safe.
    fn block(&mut self, relative: &Path) -> Option<Vec<Record>> {
        loop {
            if self.ahead.is_none() {
                self.ahead = self.next_block().ok().flatten();
                if self.ahead.is_none() {
                    self.done = true;
                    return None;
                }
            }
            let (path, _) = self.ahead.as_ref()?;
            match path.as_path().cmp(relative) {
                Ordering::Less => self.ahead = None,
                Ordering::Equal => return self.ahead.take().map(|(_, records)| records),
                Ordering::Greater => return None,
            }
        }
    }

    fn next_block(&mut self) -> io::Result<Option<(PathBuf, Vec<Record>)>> {
        if self.done {
            return Ok(None);
        }
        let Some(path) = self.read_bytes()? else {
            self.done = true;
            return Ok(None);
        };
        let count = self.read_u32()?;
        let mut records = Vec::new();
        for _ in 0..count {
            let name = self.read_bytes()?.ok_or_else(|| damaged("entry name"))?;
            let mut fixed = [0u8; 2 + 8 * 6];
            self.input.read_exact(&mut fixed)?;
            let word = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&fixed[2 + 8 * i..10 + 8 * i]);
                b
            };
            records.push(Record {
                name: OsString::from_vec(name),
                kind: fixed[0],
                flag: fixed[1],
                size: u64::from_le_bytes(word(0)),
                mtime: (i64::from_le_bytes(word(1)), i64::from_le_bytes(word(2))),
                ctime: (i64::from_le_bytes(word(3)), i64::from_le_bytes(word(4))),
                inode: u64::from_le_bytes(word(5)),
            });
        }
        Ok(Some((PathBuf::from(OsString::from_vec(path)), records)))
    }

    fn read_u32(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.input.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// A length-prefixed byte string; `None` at [`END`].
    fn read_bytes(&mut self) -> io::Result<Option<Vec<u8>>> {
        let len = self.read_u32()?;
        if len == END {
            return Ok(None);
        }
        let len = len as usize;
        if len > MAX_PATH {
            return Err(damaged("name too long"));
        }
        let mut bytes = vec![0u8; len];
        self.input.read_exact(&mut bytes)?;
        Ok(Some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_state_reads_back_in_walk_order_and_skips_what_the_walk_passed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.files");
        let meta = std::fs::metadata(dir.path()).unwrap();
        let mut a = Record::of(OsStr::new("a"), &EntryStat::from(&meta)).unwrap();
        a.flag = b'D';
        let mut writer = StateWriter::new(File::create(&path).unwrap()).unwrap();
        for relative in ["", "a", "a/b", "c"] {
            writer
                .block(Path::new(relative), std::slice::from_ref(&a))
                .unwrap();
        }
        let written = writer.finish().unwrap();
        let hashed = hash_file(&path).unwrap();
        assert_eq!((hashed.sha256, hashed.size), (written.sha256, written.size));
        let mut reader = StateReader::open(&path).unwrap();
        assert_eq!(reader.block(Path::new("")), Some(vec![a.clone()]));
        // "a" and "a/b" were deleted from the tree; "b" is new.
        assert_eq!(reader.block(Path::new("b")), None);
        assert_eq!(reader.block(Path::new("c")), Some(vec![a]));
        assert_eq!(reader.block(Path::new("d")), None);
    }

    /// The second pass stores the same entries, in the same order, from
    /// the paths it kept in memory and from the file state read back.
    #[test]
    fn stored_paths_kept_in_memory_or_read_back_give_the_same_archive() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("src");
        for d in ["a/b", "a/c", "d"] {
            std::fs::create_dir_all(source.join(d)).unwrap();
            for f in ["1", "2", "3"] {
                std::fs::write(source.join(d).join(f), d).unwrap();
            }
        }
        let exclude = tree::Exclusions::for_source(&source, &[]);
        let abort = std::sync::atomic::AtomicBool::new(false);
        let write = |name: &str, parent: Option<&Path>, in_memory: usize| {
            let destination = dir.path().join(name);
            let state_path = dir.path().join(format!("{name}.files"));
            let job = ArchiveJob {
                source: &source,
                destination: &destination,
                format: crate::model::Format::Tar,
                level: None,
                exclude: &exclude,
                also: &[],
                xattrs: true,
                watch: tree::Watch {
                    abort: &abort,
                    progress: None,
                },
                encrypt_to: &[],
            };
            let chain = ChainInput {
                parent_state: parent,
                forced: &HashSet::new(),
                state: File::create(&state_path).unwrap(),
                state_path: &state_path,
            };
            let file = File::create(&destination).unwrap();
            let (report, _) = write_keeping(&job, file, chain, in_memory).unwrap();
            (std::fs::read(&destination).unwrap(), report.files)
        };
        let full = dir.path().join("full.files");
        let (kept, files) = write("full", None, usize::MAX);
        assert_eq!(files, 9);
        // A level 0 stores every file: read back, from the first.
        let (read_back, files) = write("full-read-back", None, 3);
        assert!(read_back == kept, "level 0: the archives differ");
        assert_eq!(files, 9);
        for f in ["a/b/2", "a/c/1", "a/c/3", "d/3"] {
            std::fs::write(source.join(f), "changed").unwrap();
        }
        std::fs::write(source.join("a/new"), "new").unwrap();
        for (in_memory, name) in [(usize::MAX, "kept"), (2, "partly"), (0, "read-back")] {
            let (archive, files) = write(name, Some(&full), in_memory);
            assert_eq!(files, 5, "{name}");
            let (expected, _) = write("expected", Some(&full), usize::MAX);
            assert!(archive == expected, "{name}: the archives differ");
        }
    }

    #[test]
    fn a_damaged_file_state_ends_early_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.files");
        let mut bytes = zstd::encode_all(MAGIC, 1).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let mut reader = StateReader::open(&path).unwrap();
        assert_eq!(reader.block(Path::new("")), None);
        bytes.truncate(3);
        std::fs::write(&path, &bytes).unwrap();
        assert!(StateReader::open(&path).is_err());
    }
}
