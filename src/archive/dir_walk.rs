//! The walk one directory at a time, over two threads: for each
//! directory, depth first with names sorted (the order of the full walk),
//! its entries the walk keeps, each with its own metadata and link target.
//! The listing thread opens, reads, sorts and filters directories (the
//! exclusion rules); the caller's thread reads each entry's metadata
//! relative to its open directory (`fstatat`), then compares, hashes and
//! writes. A bounded channel of batches keeps the lister a few batches
//! ahead, and bounds the directories held open; when the channel is full
//! the lister reads the metadata of the batch it holds itself rather than
//! wait, so the `fstatat`s go to whichever thread has time for them.
//!
//! The consumer descends into the directories of each listing in order,
//! as the lister did: listings arrive exactly in the order asked for.

use std::cell::RefCell;
use std::ffi::OsString;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use walkdir::WalkDir;

use super::fingerprint::Fingerprint;
use super::reader::AbortRequested;
use super::tree::{self, Exclusions, LeftOut};

/// Batches of listings waiting for the consumer.
const AHEAD: usize = 8;

/// Entries, and directories, per batch: listings travel in batches, so
/// that the two threads do not wake each other for every directory (one
/// wake-up per directory cost more than the second core saved); each
/// directory of a batch stays open until its entries' metadata is read.
const BATCH: usize = 2048;
const BATCH_DIRS: usize = 64;

/// One entry of a directory, as the walk found it.
pub struct Child {
    pub name: OsString,
    /// Its own metadata, or why it could not be read.
    pub metadata: Result<Metadata, String>,
    pub target: Option<io::Result<PathBuf>>,
    /// The lister lists it as a directory: the walk descends into it.
    listed_dir: bool,
    /// The entry whose metadata the caller's thread is still to read.
    unread: Option<std::fs::DirEntry>,
}

impl Child {
    /// Reads the metadata (relative to the entry's open directory) and, for
    /// a symlink, the target, of an entry of the directory `dir`.
    fn read(&mut self, dir: &Path) {
        if let Some(entry) = self.unread.take() {
            self.metadata = entry.metadata().map_err(|e| tree::reason_for(&e));
            // The path is made for a symlink only: one allocation less for
            // every other entry.
            self.target = self
                .metadata
                .as_ref()
                .ok()
                .filter(|m| m.file_type().is_symlink())
                .and_then(|m| tree::link_target(&dir.join(&self.name), m));
        }
    }
}

/// A directory's entries, or why it could not be read.
struct Listing {
    relative: PathBuf,
    children: Result<Vec<Child>, String>,
}

impl Listing {
    /// Reads the metadata of the entries not read yet.
    fn read_children(&mut self, source: &Path) {
        if let Ok(children) = &mut self.children {
            let dir = source.join(&self.relative);
            for child in children {
                child.read(&dir);
            }
        }
    }
}

/// Sends a batch of listings to the consumer. When the consumer is behind
/// (the queue is full), the lister reads the batch's metadata first rather
/// than wait idle: the two threads share the `fstatat`s as their speeds
/// allow. `Err` when the consumer has stopped.
fn send_batch(
    sender: &SyncSender<Vec<Listing>>,
    batch: Vec<Listing>,
    source: &Path,
) -> Result<(), ()> {
    match sender.try_send(batch) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(mut batch)) => {
            for listing in &mut batch {
                listing.read_children(source);
            }
            sender.send(batch).map_err(drop)
        }
        Err(TrySendError::Disconnected(_)) => Err(()),
    }
}

/// The listing thread of one walk of `source`.
struct Lister {
    source: PathBuf,
    receiver: Option<Receiver<Vec<Listing>>>,
    /// The rest of the batch last received.
    received: std::vec::IntoIter<Listing>,
    thread: Option<JoinHandle<LeftOut>>,
}

impl Lister {
    /// Starts listing `source` (a directory; followed if it is a symlink)
    /// with `exclude`'s rules.
    fn spawn(source: &Path, exclude: &Exclusions) -> Self {
        let (sender, receiver) = sync_channel(AHEAD);
        let source_path = source.to_path_buf();
        let source = source.to_path_buf();
        let exclude = exclude.clone();
        let thread = std::thread::spawn(move || {
            exclude.start_walk();
            let left_out = RefCell::new(LeftOut::default());
            let mut pending = vec![PathBuf::new()];
            let (mut batch, mut entries) = (Vec::new(), 0);
            while let Some(relative) = pending.pop() {
                let children = list(&source, &relative, &exclude, &left_out);
                if let Ok(children) = &children {
                    let below = children.iter().rev().filter(|c| c.listed_dir);
                    pending.extend(below.map(|c| relative.join(&c.name)));
                    entries += children.len();
                }
                batch.push(Listing { relative, children });
                if entries >= BATCH || batch.len() >= BATCH_DIRS || pending.is_empty() {
                    let ready = std::mem::take(&mut batch);
                    if send_batch(&sender, ready, &source).is_err() {
                        break; // the consumer stopped
                    }
                    entries = 0;
                }
            }
            left_out.into_inner()
        });
        Self {
            source: source_path,
            receiver: Some(receiver),
            received: Vec::new().into_iter(),
            thread: Some(thread),
        }
    }

    /// The listing of the directory at `relative`: the next one, which the
    /// consumer's own descent must have asked for.
    fn next_listing(&mut self, relative: &Path) -> io::Result<Listing> {
        if self.received.len() == 0 {
            let batch = self.receiver.as_ref().and_then(|r| r.recv().ok());
            self.received = batch.unwrap_or_default().into_iter();
        }
        let listing = self
            .received
            .next()
            .ok_or_else(|| io::Error::other("the directory listing thread stopped"))?;
        if listing.relative != relative {
            return Err(io::Error::other(format!(
                "the walk is out of step: {} listed where {} was expected",
                listing.relative.display(),
                relative.display()
            )));
        }
        let mut listing = listing;
        listing.read_children(&self.source);
        Ok(listing)
    }

    /// What the rules left out; waits for the thread.
    fn finish(mut self) -> LeftOut {
        self.receiver = None;
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Lister {
    fn drop(&mut self) {
        // Abandoned: the thread's next send fails and it ends.
        self.receiver = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a walk in order does with what it meets.
pub trait Visitor {
    /// Each entry, the root first (as `""`), in the full walk's order:
    /// depth first, names sorted.
    fn entry(&mut self, relative: &Path, child: &Child) -> io::Result<()>;
    /// Each directory's entries (or why they cannot be read), right after
    /// the directory's own entry.
    fn directory(
        &mut self,
        relative: &Path,
        metadata: &Metadata,
        children: Result<&[Child], &str>,
    ) -> io::Result<()>;
}

/// The fingerprint of a tree walked in order: the same records, in the
/// same order, as the full walk feeds it (see [`super::fingerprint`]).
#[derive(Default)]
pub struct TreeFingerprint(Fingerprint);

impl TreeFingerprint {
    pub fn finish(self) -> String {
        self.0.finish()
    }
}

impl Visitor for TreeFingerprint {
    fn entry(&mut self, relative: &Path, child: &Child) -> io::Result<()> {
        match &child.metadata {
            Ok(metadata) => {
                let target = child.target.as_ref().and_then(|t| t.as_ref().ok());
                self.0
                    .add_entry(relative, metadata, target.map(PathBuf::as_path));
            }
            Err(_) => self.0.add_unreadable(relative),
        }
        Ok(())
    }

    fn directory(
        &mut self,
        relative: &Path,
        _: &Metadata,
        children: Result<&[Child], &str>,
    ) -> io::Result<()> {
        if children.is_err() {
            self.0.add_unreadable(relative);
        }
        Ok(())
    }
}

/// The fingerprint of the directory `source` walked in order: the full
/// walk's (see the test).
#[cfg(test)]
pub fn fingerprint(source: &Path, exclude: &Exclusions) -> io::Result<String> {
    let mut fingerprint = TreeFingerprint::default();
    walk_in_order(source, exclude, &AtomicBool::new(false), &mut fingerprint)?;
    Ok(fingerprint.finish())
}

/// Walks the directory `source` (followed if it is a symlink) in the full
/// walk's order, listing on another thread; returns what the rules left
/// out. Stops with [`AbortRequested`] once `abort` is set.
pub fn walk_in_order(
    source: &Path,
    exclude: &Exclusions,
    abort: &AtomicBool,
    visitor: &mut impl Visitor,
) -> io::Result<LeftOut> {
    /// A directory being walked: its path, and the entries not yet visited.
    struct Frame {
        relative: PathBuf,
        children: std::vec::IntoIter<Child>,
    }
    let root = std::fs::metadata(source)?;
    let mut lister = Lister::spawn(source, exclude);
    let mut stack = Vec::new();
    // The path of the entry being visited, made in the same buffer each
    // time; a directory's is copied into its frame.
    let mut relative = PathBuf::new();
    let mut next = Some(Child {
        name: OsString::new(),
        listed_dir: root.is_dir(),
        metadata: Ok(root),
        target: None,
        unread: None,
    });
    loop {
        if abort.load(Ordering::Relaxed) {
            return Err(AbortRequested::error());
        }
        if let Some(child) = next.take() {
            visitor.entry(&relative, &child)?;
            // The lister's verdict decides the descent, so the two stay in
            // step; an entry that stopped being a directory since it was
            // listed is not visited as one.
            if child.listed_dir {
                let listing = lister.next_listing(&relative)?;
                let metadata = child.metadata.as_ref().ok().filter(|m| m.is_dir());
                match (metadata, listing.children) {
                    (None, _) => {}
                    (Some(metadata), Ok(children)) => {
                        visitor.directory(&relative, metadata, Ok(&children))?;
                        stack.push(Frame {
                            relative: relative.clone(),
                            children: children.into_iter(),
                        });
                    }
                    (Some(metadata), Err(why)) => {
                        visitor.directory(&relative, metadata, Err(&why))?;
                    }
                }
            }
        }
        let Some(frame) = stack.last_mut() else {
            break;
        };
        match frame.children.next() {
            Some(child) => {
                relative.as_mut_os_string().clear();
                relative.push(&frame.relative);
                relative.push(&child.name);
                next = Some(child);
            }
            None => {
                stack.pop();
            }
        }
    }
    Ok(lister.finish())
}

/// The entries of the directory `source/relative` the walk keeps, sorted
/// by name, each with its own metadata; or why it cannot be read.
///
/// The directory is opened without following a symlink (but for the root,
/// which the full walk follows too), so one swapped in since its parent was
/// listed is never entered, and read through `/proc/self/fd`, which names
/// exactly the directory opened; each entry's metadata is then read
/// relative to it (`fstatat`), without resolving the whole path again,
/// which cost the walk more than anything else. Without `/proc`, `walkdir`
/// lists it.
fn list(
    source: &Path,
    relative: &Path,
    exclude: &Exclusions,
    left_out: &RefCell<LeftOut>,
) -> Result<Vec<Child>, String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let path = source.join(relative);
    let is_root = relative.as_os_str().is_empty();
    let mut flags = nix::libc::O_DIRECTORY | nix::libc::O_NONBLOCK;
    if !is_root {
        flags |= nix::libc::O_NOFOLLOW;
    }
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(&path)
        .map_err(|e| tree::reason_for(&e))?;
    let entries = match std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd())) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return list_with_walkdir(source, &path, is_root, exclude, left_out);
        }
        Err(e) => return Err(tree::reason_for(&e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| tree::reason_for(&e))?;
        found.push((entry.file_name(), entry));
    }
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut children = Vec::with_capacity(found.len());
    for (name, entry) in found {
        let kind = entry.file_type().ok();
        let candidate = Listed {
            dir: &path,
            path: std::cell::OnceCell::new(),
            name: &name,
            is_dir: kind.is_some_and(|t| t.is_dir()),
            is_file: kind.is_some_and(|t| t.is_file()),
            entry: &entry,
        };
        if !tree::keeps_entry(exclude, &candidate, source, left_out) {
            continue;
        }
        children.push(Child {
            listed_dir: candidate.is_dir,
            metadata: Err(String::new()),
            target: None,
            unread: Some(entry),
            name,
        });
    }
    Ok(children)
}

/// An entry of a listed directory, for the exclusion rules: its type from
/// the directory itself; its metadata read only for a rule that needs it.
struct Listed<'a> {
    dir: &'a Path,
    /// Made only if a rule asks for it.
    path: std::cell::OnceCell<PathBuf>,
    name: &'a std::ffi::OsStr,
    is_dir: bool,
    is_file: bool,
    entry: &'a std::fs::DirEntry,
}

impl tree::Candidate for Listed<'_> {
    fn path(&self) -> &Path {
        self.path.get_or_init(|| self.dir.join(self.name))
    }
    fn file_name(&self) -> &std::ffi::OsStr {
        self.name
    }
    fn depth(&self) -> usize {
        1
    }
    fn ino(&self) -> u64 {
        std::os::unix::fs::DirEntryExt::ino(self.entry)
    }
    fn is_dir(&self) -> bool {
        self.is_dir
    }
    fn is_file(&self) -> bool {
        self.is_file
    }
    fn size_and_device(&self) -> Option<(u64, u64)> {
        self.entry.metadata().ok().map(|m| (m.len(), m.dev()))
    }
}

/// [`list`] without `/proc`: the directory read by path through `walkdir`.
fn list_with_walkdir(
    source: &Path,
    path: &Path,
    is_root: bool,
    exclude: &Exclusions,
    left_out: &RefCell<LeftOut>,
) -> Result<Vec<Child>, String> {
    let mut children = Vec::new();
    let entries = WalkDir::new(path)
        .min_depth(1)
        .max_depth(1)
        .follow_links(false)
        .follow_root_links(is_root)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| tree::keeps_entry(exclude, entry, source, left_out));
    for entry in entries {
        let entry =
            entry.map_err(|e| e.io_error().map_or_else(|| e.to_string(), tree::reason_for))?;
        let metadata = entry.path().symlink_metadata();
        let target = metadata
            .as_ref()
            .ok()
            .and_then(|m| tree::link_target(entry.path(), m));
        children.push(Child {
            name: entry.file_name().to_os_string(),
            listed_dir: metadata.as_ref().is_ok_and(Metadata::is_dir),
            metadata: metadata.map_err(|e| tree::reason_for(&e)),
            target,
            unread: None,
        });
    }
    Ok(children)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ExcludePattern, ExcludeRules};
    use std::fs;

    /// The listing walk's fingerprint is the full walk's, record for
    /// record: `if-changed` compares one with the other.
    #[test]
    fn the_listing_walk_fingerprints_as_the_full_walk_does() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("src");
        crate::archive::scan::tests::every_kind(&root);
        let plain = Exclusions::for_source(&root, &[]);
        let rules = ExcludeRules {
            patterns: vec![
                ExcludePattern::parse("*.tmp").unwrap(),
                ExcludePattern::parse("/skip").unwrap(),
            ],
            caches: true,
            ..ExcludeRules::default()
        };
        let ruled = Exclusions::for_source(&root, &[root.join("d1.y")])
            .with_rules(&rules, &root, &[])
            .unwrap();
        for exclude in [&plain, &ruled] {
            let (expected, _) = tree::fingerprint_walk(&root, exclude, LeftOut::default());
            assert_eq!(fingerprint(&root, exclude).unwrap(), expected);
        }
        assert_ne!(
            fingerprint(&root, &plain).unwrap(),
            fingerprint(&root, &ruled).unwrap()
        );
        // A directory swapped for a symlink since its parent was listed is
        // not entered.
        let none = RefCell::new(LeftOut::default());
        std::os::unix::fs::symlink("/etc", root.join("swapped")).unwrap();
        assert!(list(&root, Path::new("swapped"), &plain, &none).is_err());
        let listed = list(&root, Path::new("d1"), &plain, &none).unwrap();
        let names: Vec<_> = listed.iter().map(|c| c.name.to_str().unwrap()).collect();
        assert_eq!(names, ["dangling", "f", "sock", "sub"]);
        // What the rules left out is counted as the full walk counts it.
        let mut none = TreeFingerprint::default();
        let left_out = walk_in_order(&root, &ruled, &AtomicBool::new(false), &mut none).unwrap();
        assert_eq!(left_out.excluded, 3, "x.tmp, skip and cache/data");
        assert_eq!(left_out.builtin, [root.join("d1.y")]);
    }

    /// Holds the walk at its first entry, so that the lister fills its
    /// queue and reads the metadata of the batches it holds itself.
    struct Slow(TreeFingerprint, bool);

    impl Visitor for Slow {
        fn entry(&mut self, relative: &Path, child: &Child) -> io::Result<()> {
            if !std::mem::replace(&mut self.1, true) {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            self.0.entry(relative, child)
        }
        fn directory(
            &mut self,
            relative: &Path,
            metadata: &Metadata,
            children: Result<&[Child], &str>,
        ) -> io::Result<()> {
            self.0.directory(relative, metadata, children)
        }
    }

    /// Metadata read by the lister while the walk is behind is the same
    /// as the walk's own: the fingerprint is the full walk's.
    #[test]
    fn a_lister_ahead_reads_what_the_walk_would() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("src");
        // More directories than the queue holds in batches.
        for i in 0..(AHEAD + 3) * BATCH_DIRS {
            let sub = root.join(format!("{:02}/{i}", i % 7));
            fs::create_dir_all(&sub).unwrap();
            fs::write(sub.join("f"), i.to_string()).unwrap();
            std::os::unix::fs::symlink(format!("to-{i}"), sub.join("l")).unwrap();
        }
        let plain = Exclusions::for_source(&root, &[]);
        let mut slow = Slow(TreeFingerprint::default(), false);
        walk_in_order(&root, &plain, &AtomicBool::new(false), &mut slow).unwrap();
        let (expected, _) = tree::fingerprint_walk(&root, &plain, LeftOut::default());
        assert_eq!(slow.0.finish(), expected);
    }
}
