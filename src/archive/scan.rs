//! The `if-changed` walk: a tree's fingerprint from metadata alone, the
//! same records in the same order as the archive walk feeds it (see
//! [`super::fingerprint`]), on both cores.
//!
//! Two threads list directories, each a whole one at a time: open it
//! relative to its parent's open descriptor (`openat`, never following a
//! symlink below the root), read it (`getdents64` into the thread's own
//! buffer), sort and filter its names (the exclusion rules), read each
//! entry's metadata (`fstatat`) and link target (`readlinkat`) relative to
//! it, and write the entries' records. No path is resolved from the root,
//! no directory is opened twice. The caller's thread hashes the listings in
//! the full walk's order (depth first, names sorted): it lists the next
//! directory it needs itself when the other thread has not started it, and
//! lists others while it waits. Listings done ahead are bounded, so memory
//! is whatever the tree's size.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::ffi::{CStr, OsStr};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use rustix::fs::{AtFlags, Mode, OFlags, RawDir, Stat};

use super::fingerprint::{EntryStat, Fingerprint, write_entry, write_unreadable};
use super::tree::{Candidate, Exclusions, LeftOut, base_name, keeps_entry};

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
        Ok(stat) => stat,
        Err(_) => {
            write_unreadable(&mut records, &root);
            return fingerprint.add_records(&records);
        }
    };
    write_entry(&mut records, &root, &entry_stat(&stat), None);
    fingerprint.add_records(&records);
    if !entry_stat(&stat).is_dir() {
        return;
    }
    let candidate = Found {
        dir: source,
        name: OsStr::new(""),
        path: OnceCell::from(source.to_path_buf()),
        stat: Some(&stat),
        is_dir: true,
        ino: entry_stat(&stat).ino,
        depth: 0,
    };
    // Only for what it notes: a tagged cache as the root is kept emptied.
    keeps_entry(exclude, &candidate, source, &RefCell::default());
    let walk = Walk {
        source,
        exclude,
        state: Mutex::new(State::default()),
        changed: Condvar::new(),
        next_id: AtomicUsize::new(1),
    };
    walk.state().pending.push(Job {
        id: 0,
        parent: None,
        path: source.to_path_buf(),
        record: root,
    });
    std::thread::scope(|scope| {
        let stop = StopOnDrop(&walk);
        scope.spawn(|| walk.help());
        stop.0.hash_in_order(fingerprint);
    });
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
}

/// A listed directory: its entries' records, cut after each subdirectory's
/// record, where that subdirectory's own listing goes.
#[derive(Default)]
struct Listing {
    records: Vec<u8>,
    /// The end of a run of records, and the directory listed after it.
    cuts: Vec<(usize, usize)>,
    /// Its weight against [`AHEAD`]: its entries, and one for itself.
    weight: usize,
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
    state: Mutex<State>,
    changed: Condvar,
    next_id: AtomicUsize,
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
}

impl Default for Buffers {
    fn default() -> Self {
        Self {
            dirents: vec![MaybeUninit::uninit(); DIRENTS],
            names: Vec::new(),
            found: Vec::new(),
            record: Vec::new(),
            left_out: RefCell::default(),
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

impl Walk<'_> {
    fn state(&self) -> MutexGuard<'_, State> {
        // Each change to the state is whole when the lock is released.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// The caller's thread: hashes every listing in the full walk's order.
    fn hash_in_order(&self, fingerprint: &mut Fingerprint) {
        let mut buffers = Buffers::default();
        // The listings being hashed, the deepest last: each with its next
        // cut and where its unhashed records start.
        let mut stack = vec![(self.take(0, &mut buffers), 0, 0)];
        while let Some((listing, cut, start)) = stack.last_mut() {
            match listing.cuts.get(*cut) {
                Some(&(end, child)) => {
                    fingerprint.add_records(&listing.records[*start..end]);
                    (*cut, *start) = (*cut + 1, end);
                    let below = self.take(child, &mut buffers);
                    stack.push((below, 0, 0));
                }
                None => {
                    fingerprint.add_records(&listing.records[*start..]);
                    stack.pop();
                }
            }
        }
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
                    let mut gone = Listing::default();
                    write_unreadable(&mut gone.records, b"\0");
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
                    return;
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
        let mut listing = Listing {
            weight: 1,
            ..Listing::default()
        };
        let mut below = Vec::new();
        match self.read(&job, buffers, &mut listing, &mut below) {
            Ok(()) => {}
            Err(_) => {
                // As the full walk records a directory it cannot read,
                // whatever it read of it.
                listing = Listing {
                    weight: 1,
                    ..Listing::default()
                };
                below.clear();
                write_unreadable(&mut listing.records, &job.record);
            }
        }
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
        } = buffers;
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
            let stat = rustix::fs::statat(&*dir, c_name(with_nul), AtFlags::SYMLINK_NOFOLLOW).ok();
            let entry = stat.as_ref().map(entry_stat);
            let candidate = Found {
                dir: &job.path,
                name: OsStr::from_bytes(name),
                path: OnceCell::new(),
                stat: stat.as_ref(),
                is_dir: entry.as_ref().is_some_and(EntryStat::is_dir),
                ino,
                depth: 1,
            };
            if !keeps_entry(self.exclude, &candidate, self.source, left_out) {
                continue;
            }
            join(record, &job.record, name);
            listing.weight += 1;
            let Some(entry) = entry else {
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

/// What the fingerprint keeps of a `stat`; the field types differ from one
/// architecture to another, the values do not.
#[allow(clippy::unnecessary_cast)]
fn entry_stat(stat: &Stat) -> EntryStat {
    EntryStat {
        mode: stat.st_mode as u32,
        uid: stat.st_uid as u32,
        gid: stat.st_gid as u32,
        size: stat.st_size as u64,
        mtime: stat.st_mtime as i64,
        mtime_nsec: stat.st_mtime_nsec as i64,
        rdev: stat.st_rdev as u64,
        ctime: stat.st_ctime as i64,
        ctime_nsec: stat.st_ctime_nsec as i64,
        nlink: stat.st_nlink as u64,
        ino: stat.st_ino as u64,
    }
}

/// An entry of a listed directory, for the exclusion rules; its path is
/// made only if a rule asks for it.
struct Found<'a> {
    dir: &'a Path,
    name: &'a OsStr,
    path: OnceCell<PathBuf>,
    stat: Option<&'a Stat>,
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
        self.stat.is_some_and(|s| entry_stat(s).is_file())
    }
    #[allow(clippy::unnecessary_cast)]
    fn size_and_device(&self) -> Option<(u64, u64)> {
        self.stat.map(|s| (s.st_size as u64, s.st_dev as u64))
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

    /// The `if-changed` walk gives, record for record, the fingerprint the
    /// archive walk records: `if-changed` compares one with the other.
    #[test]
    fn the_scan_fingerprints_as_the_archive_walk_does() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("src");
        let also = dir.path().join("more");
        every_kind(&root);
        every_kind(&also);
        let plain = Exclusions::for_source(&root, &[]);
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
        let ruled = Exclusions::for_source(&root, &[root.join("d1.y"), root.join("e/a-again")])
            .with_rules(&rules, &root, &[])
            .unwrap();
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

    #[test]
    fn names_join_as_paths_do() {
        let mut out = Vec::new();
        for (dir, name) in [("", "a"), ("d", "a"), ("base/", "a"), ("base/d", "a")] {
            join(&mut out, dir.as_bytes(), name.as_bytes());
            assert_eq!(out, Path::new(dir).join(name).as_os_str().as_bytes());
        }
    }
}
