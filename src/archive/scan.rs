//! The walk of a tree's metadata on both cores: for `if-changed`, its
//! fingerprint, the same records in the same order as the archive walk
//! feeds it (see [`super::fingerprint`]); for an incremental archive, each
//! directory with its entries' metadata, in that order too
//! ([`walk_in_order`]).
//!
//! Two threads list directories, each a whole one at a time: open it
//! relative to its parent's open descriptor (`openat`, never following a
//! symlink below the root), read it (`getdents64` into the thread's own
//! buffer), sort and filter its names (the exclusion rules), read each
//! entry's metadata (`fstatat`) and link target (`readlinkat`) relative to
//! it, and write the entries' records. No path is resolved from the root,
//! no directory is opened twice. The caller's thread hashes the listings
//! (and visits them) in the full walk's order (depth first, names sorted),
//! so what it writes comes in that order too: it lists the next
//! directory it needs itself when the other thread has not started it, and
//! lists others while it waits. Listings done ahead are bounded, so memory
//! is whatever the tree's size.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::ffi::{CStr, OsStr, OsString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use rustix::fs::{AtFlags, Mode, OFlags, RawDir};

use super::fingerprint::{EntryStat, Fingerprint, write_entry, write_unreadable};
use super::reader::AbortRequested;
use super::tree::{Candidate, Exclusions, LeftOut, base_name, keeps_entry, reason_for};
use super::xattrs::{self, Attributes};

/// Entries listed ahead of the hashing beyond which the other thread waits:
/// a few MiB of records whatever the tree's size.
const AHEAD: usize = 1 << 15;

/// Bytes of directory entries read per `getdents64`.
const DIRENTS: usize = 32 * 1024;

/// The fingerprint of several sources, as the archive walk records it for an
/// archive of them all (the first is the main source; the paths of the
/// others are under their base names).
pub fn fingerprint_sources(sources: &[(&Path, &Exclusions)]) -> String {
    let mut fingerprint = Fingerprint::new();
    for (i, (source, exclude)) in sources.iter().enumerate() {
        let mut prefix = Vec::new();
        if i > 0 {
            // As `Path::join("")` names the root of an extra source.
            prefix = base_name(source).into_os_string().into_vec();
            prefix.push(b'/');
        }
        add_tree(&mut fingerprint, source, exclude, prefix);
    }
    fingerprint.finish()
}

/// Adds the records of the tree under `source` to `fingerprint`, its root
/// named `root` in them. What cannot be read is recorded as such.
fn add_tree(fingerprint: &mut Fingerprint, source: &Path, exclude: &Exclusions, root: Vec<u8>) {
    exclude.start_walk();
    let mut records = Vec::new();
    // The root is followed if it is a symlink, as the full walk follows it.
    let stat = match rustix::fs::stat(source) {
        Ok(stat) => EntryStat::from(&stat),
        Err(_) => {
            write_unreadable(&mut records, &root);
            return fingerprint.add_records(&records);
        }
    };
    write_entry(&mut records, &root, &stat, None);
    fingerprint.add_records(&records);
    if !stat.is_dir() {
        return;
    }
    let walk = Walk::new(source, exclude, false);
    walk.start(root, stat);
    std::thread::scope(|scope| {
        let stop = StopOnDrop(&walk);
        scope.spawn(|| walk.help());
        // Never fails: nothing is visited.
        let _ = stop.0.in_order(fingerprint, |_| Ok(()));
    });
}

/// An entry of a directory, as [`walk_in_order`] gives it to its visitor.
pub(super) struct Listed {
    pub name: OsString,
    /// Its own metadata, or why it could not be read.
    pub stat: Result<EntryStat, String>,
}

/// A directory as [`walk_in_order`] gives it to its visitor.
pub(super) struct Directory<'l> {
    /// Its path relative to the source (the root is `""`).
    pub relative: &'l Path,
    /// Its own metadata.
    pub stat: &'l EntryStat,
    /// The entries the walk keeps, sorted by name, or why it cannot be
    /// read.
    pub children: Result<&'l [Listed], &'l str>,
    /// Its extended attributes, when the walk was asked for them, read
    /// through the descriptor it was listed with.
    pub attributes: Option<&'l io::Result<Attributes>>,
}

/// What [`walk_in_order`] does with each directory.
pub(super) trait Visitor {
    /// Each directory, the root first, in the full walk's order (depth
    /// first, names sorted).
    fn directory(&mut self, directory: Directory<'_>) -> io::Result<()>;
}

/// Walks the directory `source` (followed if it is a symlink) in the full
/// walk's order on both cores, as the `if-changed` walk does, handing each
/// directory to `visitor`, with its extended attributes if `attributes`.
/// Returns the tree's fingerprint, record for record the full walk's, and
/// what the rules left out. Stops with [`AbortRequested`] once `abort` is
/// set.
pub(super) fn walk_in_order(
    source: &Path,
    exclude: &Exclusions,
    (abort, attributes): (&AtomicBool, bool),
    visitor: &mut impl Visitor,
) -> io::Result<(String, LeftOut)> {
    exclude.start_walk();
    let stat = EntryStat::from(&rustix::fs::stat(source)?);
    if !stat.is_dir() {
        return Err(io::Error::from(rustix::io::Errno::NOTDIR));
    }
    let mut fingerprint = Fingerprint::new();
    let mut record = Vec::new();
    write_entry(&mut record, b"", &stat, None);
    fingerprint.add_records(&record);
    let mut walk = Walk::new(source, exclude, true);
    walk.attributes = attributes;
    walk.start(Vec::new(), stat);
    std::thread::scope(|scope| {
        let stop = StopOnDrop(&walk);
        scope.spawn(|| walk.help());
        stop.0.in_order(&mut fingerprint, |listing| {
            if abort.load(Ordering::Relaxed) {
                return Err(AbortRequested::error());
            }
            if listing.gone {
                return Err(io::Error::other("the directory listing thread stopped"));
            }
            visitor.directory(Directory {
                relative: Path::new(OsStr::from_bytes(&listing.record)),
                stat: &listing.stat,
                children: listing.children.as_deref().map_err(String::as_str),
                attributes: listing.attributes.as_ref(),
            })
        })
    })?;
    let left_out = walk
        .left_out
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    Ok((fingerprint.finish(), left_out))
}

/// A directory to list.
struct Job {
    id: usize,
    /// Its parent's open descriptor and its name there (with the final
    /// NUL); `None` for the root, opened by its path.
    parent: Option<(Arc<OwnedFd>, Vec<u8>)>,
    /// Its path, for the exclusion rules.
    path: PathBuf,
    /// Its path in the fingerprint's records.
    record: Vec<u8>,
    /// Its own metadata, as its parent's listing read it.
    stat: EntryStat,
}

/// A listed directory: its entries' records, cut after each subdirectory's
/// record, where that subdirectory's own listing goes.
struct Listing {
    records: Vec<u8>,
    /// The end of a run of records, and the directory listed after it.
    cuts: Vec<(usize, usize)>,
    /// Its weight against [`AHEAD`]: its entries, and one for itself.
    weight: usize,
    /// Its path in the records, and its own metadata.
    record: Vec<u8>,
    stat: EntryStat,
    /// Its entries for a visitor (none when only fingerprinting), or why
    /// it cannot be read.
    children: Result<Vec<Listed>, String>,
    /// Its extended attributes, when asked for.
    attributes: Option<io::Result<Attributes>>,
    /// It never came: the other thread ended while listing it.
    gone: bool,
}

impl Listing {
    /// Empty, for a directory of this metadata; its path in the records is
    /// set once it is listed.
    fn new(stat: EntryStat) -> Self {
        Self {
            records: Vec::new(),
            cuts: Vec::new(),
            weight: 1,
            record: Vec::new(),
            stat,
            children: Ok(Vec::new()),
            attributes: None,
            gone: false,
        }
    }
}

#[derive(Default)]
struct State {
    /// Directories to list, the one the walk needs soonest last.
    pending: Vec<Job>,
    /// Listings done ahead by either thread, by job id.
    listed: HashMap<usize, Listing>,
    /// Their weight.
    ahead: usize,
    /// Which threads wait on `changed`: the caller's, the other.
    waiting: [bool; 2],
    done: bool,
    /// The other thread ended before the walk did (it panicked): what it
    /// was listing never comes, and the caller must not wait for it.
    helper_gone: bool,
}

/// One walk of one source, shared by its two threads.
struct Walk<'a> {
    source: &'a Path,
    exclude: &'a Exclusions,
    /// List entries for a visitor, not only their records.
    entries: bool,
    /// Read each directory's extended attributes for the visitor.
    attributes: bool,
    state: Mutex<State>,
    changed: Condvar,
    next_id: AtomicUsize,
    /// What the rules left out, from both threads once they are done.
    left_out: Mutex<LeftOut>,
}

/// What one thread reuses from directory to directory.
struct Buffers {
    dirents: Vec<MaybeUninit<u8>>,
    /// The names of the directory being listed, each with its final NUL.
    names: Vec<u8>,
    /// Where each name is in `names`, and its inode in the directory.
    found: Vec<(usize, usize, u64)>,
    record: Vec<u8>,
    left_out: RefCell<LeftOut>,
    /// For extended attributes (see [`xattrs::read_open`]); empty until
    /// they are asked for.
    scratch: Vec<u8>,
}

impl Default for Buffers {
    fn default() -> Self {
        Self {
            dirents: vec![MaybeUninit::uninit(); DIRENTS],
            names: Vec::new(),
            found: Vec::new(),
            record: Vec::new(),
            left_out: RefCell::default(),
            scratch: Vec::new(),
        }
    }
}

/// Tells the caller when the other thread ends, however it ends.
struct HelperGone<'w, 'a>(&'w Walk<'a>);

impl Drop for HelperGone<'_, '_> {
    fn drop(&mut self) {
        self.0.state().helper_gone = true;
        self.0.changed.notify_all();
    }
}

/// Ends the other thread's loop however the caller's ends.
struct StopOnDrop<'w, 'a>(&'w Walk<'a>);

impl Drop for StopOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.state().done = true;
        self.0.changed.notify_all();
    }
}

const CALLER: usize = 0;
const HELPER: usize = 1;

impl<'a> Walk<'a> {
    fn new(source: &'a Path, exclude: &'a Exclusions, entries: bool) -> Self {
        Walk {
            source,
            exclude,
            entries,
            attributes: false,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            next_id: AtomicUsize::new(1),
            left_out: Mutex::default(),
        }
    }

    /// Queues the root, a directory, named `record` in the records.
    fn start(&self, record: Vec<u8>, stat: EntryStat) {
        let candidate = Found {
            dir: self.source,
            name: OsStr::new(""),
            path: OnceCell::from(self.source.to_path_buf()),
            stat: Some(&stat),
            is_dir: true,
            ino: stat.ino,
            depth: 0,
        };
        // Only for what it notes: a tagged cache as the root is kept
        // emptied, as the full walk keeps it.
        keeps_entry(self.exclude, &candidate, self.source, &RefCell::default());
        self.state().pending.push(Job {
            id: 0,
            parent: None,
            path: self.source.to_path_buf(),
            record,
            stat,
        });
    }
}

impl Walk<'_> {
    fn state(&self) -> MutexGuard<'_, State> {
        // Each change to the state is whole when the lock is released.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds what one thread's rules left out to the walk's.
    fn keep_left_out(&self, buffers: Buffers) {
        let mine = buffers.left_out.into_inner();
        let mut all = self.left_out.lock().unwrap_or_else(PoisonError::into_inner);
        all.builtin.extend(mine.builtin);
        all.builtin.sort();
        all.excluded += mine.excluded;
    }

    /// Waits for a change to the state; `me` is the calling thread.
    fn wait<'s>(&'s self, mut state: MutexGuard<'s, State>, me: usize) -> MutexGuard<'s, State> {
        state.waiting[me] = true;
        let mut state = self
            .changed
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner);
        state.waiting[me] = false;
        state
    }

    /// Wakes the other thread if it waits.
    fn wake(&self, state: &State, me: usize) {
        if state.waiting[1 - me] {
            self.changed.notify_all();
        }
    }

    /// The caller's thread: hashes every listing in the full walk's order,
    /// and hands each to `visit` before its subdirectories' (its entries
    /// are dropped after).
    fn in_order(
        &self,
        fingerprint: &mut Fingerprint,
        mut visit: impl FnMut(&Listing) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut buffers = Buffers::default();
        let mut taken = |id, buffers: &mut Buffers| {
            let mut listing = self.take(id, buffers);
            visit(&listing)?;
            listing.children = Ok(Vec::new());
            Ok::<_, io::Error>(listing)
        };
        // The listings being hashed, the deepest last: each with its next
        // cut and where its unhashed records start.
        let mut stack = vec![(taken(0, &mut buffers)?, 0, 0)];
        while let Some((listing, cut, start)) = stack.last_mut() {
            match listing.cuts.get(*cut) {
                Some(&(end, child)) => {
                    fingerprint.add_records(&listing.records[*start..end]);
                    (*cut, *start) = (*cut + 1, end);
                    let below = taken(child, &mut buffers)?;
                    stack.push((below, 0, 0));
                }
                None => {
                    fingerprint.add_records(&listing.records[*start..]);
                    stack.pop();
                }
            }
        }
        self.keep_left_out(buffers);
        Ok(())
    }

    /// The listing of directory `id`: done ahead, or listed now by the
    /// caller's thread if no thread has started it. While the other thread
    /// lists it, the caller's lists what comes next.
    fn take(&self, id: usize, buffers: &mut Buffers) -> Listing {
        let mut state = self.state();
        loop {
            if let Some(listing) = state.listed.remove(&id) {
                state.ahead -= listing.weight;
                self.wake(&state, CALLER);
                return listing;
            }
            if let Some(i) = state.pending.iter().rposition(|job| job.id == id) {
                let job = state.pending.remove(i);
                drop(state);
                return self.list(job, buffers, CALLER);
            }
            let next = (state.ahead < AHEAD).then(|| state.pending.pop()).flatten();
            match next {
                Some(job) => {
                    drop(state);
                    let job_id = job.id;
                    let listing = self.list(job, buffers, CALLER);
                    state = self.state();
                    state.ahead += listing.weight;
                    state.listed.insert(job_id, listing);
                }
                // Never to come (see `helper_gone`): a record no tree has,
                // so the fingerprint cannot match by mistake.
                None if state.helper_gone => {
                    let mut gone = Listing::new(EntryStat::default());
                    write_unreadable(&mut gone.records, b"\0");
                    gone.gone = true;
                    return gone;
                }
                None => state = self.wait(state, CALLER),
            }
        }
    }

    /// The other thread: lists the directory the walk needs soonest, while
    /// the listings ahead are within bounds, until the walk is done.
    fn help(&self) {
        let _gone = HelperGone(self);
        let mut buffers = Buffers::default();
        loop {
            let mut state = self.state();
            let job = loop {
                if state.done {
                    drop(state);
                    return self.keep_left_out(buffers);
                }
                match (state.ahead < AHEAD).then(|| state.pending.pop()).flatten() {
                    Some(job) => break job,
                    None => state = self.wait(state, HELPER),
                }
            };
            drop(state);
            let id = job.id;
            let listing = self.list(job, &mut buffers, HELPER);
            let mut state = self.state();
            state.ahead += listing.weight;
            state.listed.insert(id, listing);
            self.wake(&state, HELPER);
        }
    }

    /// Lists the directory of `job` and queues its subdirectories; `me` is
    /// the calling thread.
    fn list(&self, job: Job, buffers: &mut Buffers, me: usize) -> Listing {
        let mut listing = Listing::new(job.stat);
        let mut below = Vec::new();
        match self.read(&job, buffers, &mut listing, &mut below) {
            Ok(()) => {}
            Err(e) => {
                // As the full walk records a directory it cannot read,
                // whatever it read of it.
                listing = Listing::new(job.stat);
                listing.children = Err(reason_for(&e.into()));
                below.clear();
                write_unreadable(&mut listing.records, &job.record);
            }
        }
        listing.record = job.record;
        if !below.is_empty() {
            let mut state = self.state();
            state.pending.extend(below.into_iter().rev());
            self.wake(&state, me);
        }
        listing
    }

    /// Reads the directory of `job` into `listing`, its subdirectories into
    /// `below` in order.
    fn read(
        &self,
        job: &Job,
        buffers: &mut Buffers,
        listing: &mut Listing,
        below: &mut Vec<Job>,
    ) -> rustix::io::Result<()> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let dir = Arc::new(match &job.parent {
            None => rustix::fs::open(self.source, flags, Mode::empty())?,
            Some((parent, name)) => rustix::fs::openat(
                parent,
                c_name(name),
                flags | OFlags::NOFOLLOW,
                Mode::empty(),
            )?,
        });
        let Buffers {
            dirents,
            names,
            found,
            record,
            left_out,
            scratch,
        } = buffers;
        if self.attributes {
            listing.attributes = Some(xattrs::read_open(dir.as_fd(), scratch));
        }
        names.clear();
        found.clear();
        let mut entries = RawDir::new(&*dir, dirents);
        while let Some(entry) = entries.next() {
            let entry = entry?;
            let name = entry.file_name().to_bytes_with_nul();
            if name != b".\0" && name != b"..\0" {
                found.push((names.len(), names.len() + name.len(), entry.ino()));
                names.extend_from_slice(name);
            }
        }
        found.sort_unstable_by(|a, b| names[a.0..a.1].cmp(&names[b.0..b.1]));
        for &(start, end, ino) in found.iter() {
            let with_nul = &names[start..end];
            let name = &with_nul[..with_nul.len() - 1];
            let stat = rustix::fs::statat(&*dir, c_name(with_nul), AtFlags::SYMLINK_NOFOLLOW)
                .map(|stat| EntryStat::from(&stat));
            let candidate = Found {
                dir: &job.path,
                name: OsStr::from_bytes(name),
                path: OnceCell::new(),
                stat: stat.as_ref().ok(),
                is_dir: stat.as_ref().is_ok_and(EntryStat::is_dir),
                ino,
                depth: 1,
            };
            if !keeps_entry(self.exclude, &candidate, self.source, left_out) {
                continue;
            }
            join(record, &job.record, name);
            listing.weight += 1;
            if self.entries
                && let Ok(children) = &mut listing.children
            {
                children.push(Listed {
                    name: OsStr::from_bytes(name).to_os_string(),
                    stat: stat.map_err(|e| reason_for(&e.into())),
                });
            }
            let Ok(entry) = stat else {
                write_unreadable(&mut listing.records, record);
                continue;
            };
            let target = entry
                .is_symlink()
                .then(|| rustix::fs::readlinkat(&*dir, c_name(with_nul), Vec::new()).ok())
                .flatten();
            let target = target.as_ref().map(|t| t.as_bytes());
            write_entry(&mut listing.records, record, &entry, target);
            if entry.is_dir() {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                listing.cuts.push((listing.records.len(), id));
                below.push(Job {
                    id,
                    parent: Some((Arc::clone(&dir), with_nul.to_vec())),
                    path: candidate.path().to_path_buf(),
                    record: record.clone(),
                    stat: entry,
                });
            }
        }
        Ok(())
    }
}

/// A name read from a directory, with its final NUL, as a C string.
fn c_name(with_nul: &[u8]) -> &CStr {
    // A name from `getdents64` has no NUL before its last byte.
    CStr::from_bytes_with_nul(with_nul).unwrap_or_default()
}

/// `dir` joined with `name` into `out`, as `Path::join` joins them.
fn join(out: &mut Vec<u8>, dir: &[u8], name: &[u8]) {
    out.clear();
    out.extend_from_slice(dir);
    if !dir.is_empty() && !dir.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(name);
}

/// An entry of a listed directory, for the exclusion rules; its path is
/// made only if a rule asks for it.
struct Found<'a> {
    dir: &'a Path,
    name: &'a OsStr,
    path: OnceCell<PathBuf>,
    stat: Option<&'a EntryStat>,
    is_dir: bool,
    ino: u64,
    depth: usize,
}

impl Candidate for Found<'_> {
    fn path(&self) -> &Path {
        self.path.get_or_init(|| self.dir.join(self.name))
    }
    fn file_name(&self) -> &OsStr {
        self.name
    }
    fn depth(&self) -> usize {
        self.depth
    }
    fn ino(&self) -> u64 {
        self.ino
    }
    fn is_dir(&self) -> bool {
        self.is_dir
    }
    fn is_file(&self) -> bool {
        self.stat.is_some_and(EntryStat::is_file)
    }
    fn size_and_device(&self) -> Option<(u64, u64)> {
        self.stat.map(|s| (s.size, s.dev))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::archive::tree;
    use crate::model::{ExcludePattern, ExcludeRules};
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    /// A tree with an entry of every kind the walks meet (the listing walk's
    /// tests use it too).
    pub(in crate::archive) fn every_kind(root: &Path) {
        for d in [
            "d1/sub/zz",
            "d1-x",
            "d1.y",
            "e/empty",
            "cache",
            "skip",
            "shut",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in [
            "a",
            "d1/f",
            "d1-x/g",
            "d1/sub/zz/h",
            "skip/s",
            "x.tmp",
            "cache/data",
        ] {
            fs::write(root.join(f), f).unwrap();
        }
        fs::write(root.join("big"), vec![7u8; 5000]).unwrap();
        fs::write(root.join("shut/hidden"), "h").unwrap();
        fs::write(root.join(OsStr::from_bytes(b"bad\xffname")), "x").unwrap();
        fs::write(root.join("d1/sub/.nobackup"), "").unwrap();
        fs::write(
            root.join("cache/CACHEDIR.TAG"),
            "Signature: 8a477f597d28d172789f06886806bc55",
        )
        .unwrap();
        std::os::unix::fs::symlink("d1/f", root.join("link")).unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("d1/dangling")).unwrap();
        std::os::unix::fs::symlink("d1", root.join("dirlink")).unwrap();
        fs::hard_link(root.join("a"), root.join("e/a-again")).unwrap();
        nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        std::os::unix::net::UnixListener::bind(root.join("d1/sock")).unwrap();
        // Unreadable unless the tests run as root; either way both walks
        // see it alike.
        fs::set_permissions(root.join("shut"), fs::Permissions::from_mode(0o311)).unwrap();
        // Wide and deep enough for both threads to list ahead.
        for i in 0..60 {
            let dir = root.join(format!("w/{i:02}/x/y"));
            fs::create_dir_all(&dir).unwrap();
            for j in 0..30 {
                fs::write(dir.join(format!("f{j}")), [i as u8, j as u8]).unwrap();
            }
        }
    }

    /// No rules, and rules of every kind, for a tree of [`every_kind`].
    fn exclusions(root: &Path) -> (Exclusions, Exclusions) {
        let rules = ExcludeRules {
            patterns: vec![
                ExcludePattern::parse("*.tmp").unwrap(),
                ExcludePattern::parse("/skip").unwrap(),
                ExcludePattern::parse("w/1*/x").unwrap(),
            ],
            caches: true,
            if_present: vec![".nobackup".into()],
            larger_than: Some(4096),
            ..ExcludeRules::default()
        };
        let builtin = [root.join("d1.y"), root.join("e/a-again")];
        let ruled = Exclusions::for_source(root, &builtin)
            .with_rules(&rules, root, &[])
            .unwrap();
        (Exclusions::for_source(root, &[]), ruled)
    }

    /// The `if-changed` walk gives, record for record, the fingerprint the
    /// archive walk records: `if-changed` compares one with the other.
    #[test]
    fn the_scan_fingerprints_as_the_archive_walk_does() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("src");
        let also = dir.path().join("more");
        every_kind(&root);
        every_kind(&also);
        let (plain, ruled) = exclusions(&root);
        let also_plain = Exclusions::for_source(&also, &[]);
        let cases: [&[(&Path, &Exclusions)]; 4] = [
            &[(&root, &plain)],
            &[(&root, &ruled)],
            &[(&root, &plain), (&also, &also_plain)],
            &[(&root.join("link"), &plain)],
        ];
        let mut seen = Vec::new();
        for sources in cases {
            let expected = tree::fingerprint_sources_walked(sources);
            for _ in 0..3 {
                assert_eq!(fingerprint_sources(sources), expected);
            }
            seen.push(expected);
        }
        seen.dedup();
        assert_eq!(seen.len(), 4, "rules and extra sources change it");
        // A symlinked root is followed, as the archive walk follows it.
        let linked = dir.path().join("linked");
        std::os::unix::fs::symlink(&root, &linked).unwrap();
        assert_eq!(
            fingerprint_sources(&[(&linked, &plain)]),
            tree::fingerprint_sources_walked(&[(&linked, &plain)])
        );
        // And a missing one is recorded as unreadable by both.
        let gone = dir.path().join("gone");
        assert_eq!(
            fingerprint_sources(&[(&gone, &plain)]),
            tree::fingerprint_sources_walked(&[(&gone, &plain)])
        );
        fs::set_permissions(root.join("shut"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(also.join("shut"), fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A directory's entries as a visitor saw them, or why it could not.
    type Entries = Result<Vec<(OsString, Option<EntryStat>)>, String>;

    /// What a visitor saw: each directory's path and entries, in order.
    #[derive(Default)]
    struct Seen {
        directories: Vec<(PathBuf, Entries)>,
        /// Sleep at the first directory, so that the other thread lists
        /// as far ahead as it may.
        slow: bool,
        /// The directories with extended attributes, and theirs.
        attributes: Vec<(PathBuf, Attributes)>,
    }

    impl Visitor for Seen {
        fn directory(&mut self, directory: Directory<'_>) -> io::Result<()> {
            if std::mem::take(&mut self.slow) {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            let relative = directory.relative;
            if let Some(Ok(attributes)) = directory.attributes
                && !attributes.is_empty()
            {
                self.attributes
                    .push((relative.to_path_buf(), attributes.clone()));
            }
            let children = directory
                .children
                .map(|c| {
                    c.iter()
                        .map(|c| (c.name.clone(), c.stat.clone().ok()))
                        .collect()
                })
                .map_err(str::to_string);
            self.directories.push((relative.to_path_buf(), children));
            Ok(())
        }
    }

    impl Seen {
        /// Every path the visits name, in the full walk's order: each
        /// directory's entries, each followed by its own entries if it
        /// was visited as a directory.
        fn paths(&self) -> Vec<(PathBuf, Option<EntryStat>)> {
            let by_path: HashMap<_, _> = self
                .directories
                .iter()
                .map(|(path, children)| (path.clone(), children))
                .collect();
            fn add(
                dir: &Path,
                by_path: &HashMap<PathBuf, &Entries>,
                out: &mut Vec<(PathBuf, Option<EntryStat>)>,
            ) {
                match by_path.get(dir) {
                    Some(Ok(children)) => {
                        for (name, stat) in children.iter() {
                            let path = dir.join(name);
                            out.push((path.clone(), *stat));
                            add(&path, by_path, out);
                        }
                    }
                    // As the full walk names a directory it cannot read.
                    Some(Err(_)) => out.push((dir.to_path_buf(), None)),
                    None => {}
                }
            }
            let mut out = Vec::new();
            add(Path::new(""), &by_path, &mut out);
            out
        }
    }

    /// The walk in order visits every directory the full walk meets, in
    /// its order, with the same entries and metadata, and gives its
    /// fingerprint and what its rules left out; also when the other
    /// thread lists far ahead of a slow visitor.
    #[test]
    fn the_walk_in_order_visits_what_the_full_walk_meets() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("src");
        every_kind(&root);
        let (plain, ruled) = exclusions(&root);
        let never = AtomicBool::new(false);
        for exclude in [&plain, &ruled] {
            for slow in [false, true] {
                let mut seen = Seen {
                    slow,
                    ..Seen::default()
                };
                let (fingerprint, left_out) =
                    walk_in_order(&root, exclude, (&never, false), &mut seen).unwrap();
                let (expected, expected_left_out) =
                    tree::fingerprint_walk(&root, exclude, LeftOut::default());
                assert_eq!(fingerprint, expected);
                let mut walked = tree::walked_paths(&root, exclude);
                assert_eq!(walked.remove(0).0, Path::new(""), "the root comes first");
                assert_eq!(seen.paths(), walked);
                assert_eq!(seen.directories[0].0, Path::new(""));
                assert_eq!(left_out.excluded, expected_left_out.excluded);
                let mut builtin = expected_left_out.builtin;
                builtin.sort();
                assert_eq!(left_out.builtin, builtin);
            }
            if std::ptr::eq(exclude, &ruled) {
                let mut seen = Seen::default();
                let (_, left_out) =
                    walk_in_order(&root, exclude, (&never, false), &mut seen).unwrap();
                assert!(left_out.excluded > 10, "{}", left_out.excluded);
                // The home's own files go by inode: `a` is `e/a-again`.
                let builtin = ["a", "d1.y", "e/a-again"].map(|p| root.join(p));
                assert_eq!(left_out.builtin, builtin);
            }
        }
        // Extended attributes, when asked for, are read with the listing.
        xattr::set(root.join("d1"), "user.k", b"v").unwrap();
        let mut seen = Seen::default();
        walk_in_order(&root, &plain, (&never, true), &mut seen).unwrap();
        let value = (OsString::from("user.k"), b"v".to_vec());
        assert_eq!(seen.attributes, [(PathBuf::from("d1"), vec![value])]);
        let mut seen = Seen::default();
        walk_in_order(&root, &plain, (&never, false), &mut seen).unwrap();
        assert!(seen.attributes.is_empty());
        // An abort stops it.
        let abort = AtomicBool::new(true);
        let error =
            walk_in_order(&root, &plain, (&abort, false), &mut Seen::default()).unwrap_err();
        assert!(AbortRequested::is(&error), "{error}");
        // A file is not a tree to walk.
        assert!(
            walk_in_order(
                &root.join("a"),
                &plain,
                (&never, false),
                &mut Seen::default()
            )
            .is_err()
        );
        fs::set_permissions(root.join("shut"), fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A directory swapped for a symlink after its parent was listed is
    /// not entered: it is opened relative to its parent, without
    /// following a symlink.
    #[test]
    fn a_directory_swapped_for_a_symlink_is_not_entered() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("src");
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("d/f"), "f").unwrap();
        let plain = Exclusions::for_source(&root, &[]);
        let walk = Walk::new(&root, &plain, true);
        let parent = Arc::new(
            rustix::fs::open(&root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap(),
        );
        let job = |name: &str| Job {
            id: 1,
            parent: Some((Arc::clone(&parent), format!("{name}\0").into_bytes())),
            path: root.join(name),
            record: name.as_bytes().to_vec(),
            stat: EntryStat::default(),
        };
        let mut buffers = Buffers::default();
        let listing = walk.list(job("d"), &mut buffers, CALLER);
        let names: Vec<_> = listing
            .children
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["f"]);
        fs::rename(root.join("d"), dir.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), root.join("d")).unwrap();
        let listing = walk.list(job("d"), &mut buffers, CALLER);
        assert!(listing.children.is_err(), "a symlink is not listed");
        assert!(
            listing.records.ends_with(b"!"),
            "and is recorded unreadable"
        );
    }

    #[test]
    fn names_join_as_paths_do() {
        let mut out = Vec::new();
        for (dir, name) in [("", "a"), ("d", "a"), ("base/", "a"), ("base/d", "a")] {
            join(&mut out, dir.as_bytes(), name.as_bytes());
            assert_eq!(out, Path::new(dir).join(name).as_os_str().as_bytes());
        }
    }
}
