//! The walk one directory at a time, on a thread of its own: for each
//! directory, depth first with names sorted (the order of the full walk),
//! its entries the walk keeps, each with its own metadata and link target.
//! The thread lists (getdents, lstat, readlink, the exclusion rules) while
//! the caller compares, hashes and writes what it already has, so the two
//! use two cores; a bounded channel keeps it at most a few directories
//! ahead.
//!
//! The consumer descends into the directories of each listing in order,
//! as the lister did: listings arrive exactly in the order asked for.

use std::cell::RefCell;
use std::ffi::OsString;
use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use walkdir::WalkDir;

use super::fingerprint::Fingerprint;
use super::reader::AbortRequested;
use super::tree::{self, Exclusions, LeftOut};

/// Directory listings waiting for the consumer.
const AHEAD: usize = 64;

/// One entry of a directory, as the walk found it.
pub struct Child {
    pub name: OsString,
    /// Its own metadata, or why it could not be read.
    pub metadata: Result<Metadata, String>,
    pub target: Option<io::Result<PathBuf>>,
}

impl Child {
    pub fn is_dir(&self) -> bool {
        self.metadata.as_ref().is_ok_and(Metadata::is_dir)
    }
}

/// A directory's entries, or why it could not be read.
struct Listing {
    relative: PathBuf,
    children: Result<Vec<Child>, String>,
}

/// The listing thread of one walk of `source`.
struct Lister {
    receiver: Option<Receiver<Listing>>,
    thread: Option<JoinHandle<LeftOut>>,
}

impl Lister {
    /// Starts listing `source` (a directory; followed if it is a symlink)
    /// with `exclude`'s rules.
    fn spawn(source: &Path, exclude: &Exclusions) -> Self {
        let (sender, receiver) = sync_channel(AHEAD);
        let source = source.to_path_buf();
        let exclude = exclude.clone();
        let thread = std::thread::spawn(move || {
            exclude.start_walk();
            let left_out = RefCell::new(LeftOut::default());
            let mut pending = vec![PathBuf::new()];
            while let Some(relative) = pending.pop() {
                let children = list(&source, &relative, &exclude, &left_out);
                if let Ok(children) = &children {
                    let below = children.iter().rev().filter(|c| c.is_dir());
                    pending.extend(below.map(|c| relative.join(&c.name)));
                }
                if sender.send(Listing { relative, children }).is_err() {
                    break; // the consumer stopped
                }
            }
            left_out.into_inner()
        });
        Self {
            receiver: Some(receiver),
            thread: Some(thread),
        }
    }

    /// The listing of the directory at `relative`: the next one, which the
    /// consumer's own descent must have asked for.
    fn next_listing(&mut self, relative: &Path) -> io::Result<Listing> {
        let listing = self
            .receiver
            .as_ref()
            .and_then(|r| r.recv().ok())
            .ok_or_else(|| io::Error::other("the directory listing thread stopped"))?;
        if listing.relative != relative {
            return Err(io::Error::other(format!(
                "the walk is out of step: {} listed where {} was expected",
                listing.relative.display(),
                relative.display()
            )));
        }
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

/// The fingerprint of the directory `source`, listing on a second thread:
/// what `if-changed` compares, at the cost of about one `find`.
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
    let mut next = Some((
        PathBuf::new(),
        Child {
            name: OsString::new(),
            metadata: Ok(root),
            target: None,
        },
    ));
    loop {
        if abort.load(Ordering::Relaxed) {
            return Err(AbortRequested::error());
        }
        if let Some((relative, child)) = next.take() {
            visitor.entry(&relative, &child)?;
            if let Some(metadata) = child.metadata.as_ref().ok().filter(|m| m.is_dir()) {
                let listing = lister.next_listing(&relative)?;
                match listing.children {
                    Ok(children) => {
                        visitor.directory(&relative, metadata, Ok(&children))?;
                        stack.push(Frame {
                            relative,
                            children: children.into_iter(),
                        });
                    }
                    Err(why) => visitor.directory(&relative, metadata, Err(&why))?,
                }
            }
        }
        let Some(frame) = stack.last_mut() else {
            break;
        };
        match frame.children.next() {
            Some(child) => next = Some((frame.relative.join(&child.name), child)),
            None => {
                stack.pop();
            }
        }
    }
    Ok(lister.finish())
}

/// The entries of the directory `source/relative` the walk keeps, sorted
/// by name, each with its own metadata; or why it cannot be read.
fn list(
    source: &Path,
    relative: &Path,
    exclude: &Exclusions,
    left_out: &RefCell<LeftOut>,
) -> Result<Vec<Child>, String> {
    let path = source.join(relative);
    let mut children = Vec::new();
    // A directory swapped for a symlink since it was looked at is not
    // followed (the root is, as the full walk follows it).
    let entries = WalkDir::new(&path)
        .min_depth(1)
        .max_depth(1)
        .follow_links(false)
        .follow_root_links(relative.as_os_str().is_empty())
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
            metadata: metadata.map_err(|e| tree::reason_for(&e)),
            target,
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
        for d in ["d1/sub/zz", "d1-x", "d1.y", "e/empty", "cache", "skip"] {
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
        fs::write(
            root.join("cache/CACHEDIR.TAG"),
            "Signature: 8a477f597d28d172789f06886806bc55",
        )
        .unwrap();
        std::os::unix::fs::symlink("d1/f", root.join("link")).unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("d1/dangling")).unwrap();
        fs::hard_link(root.join("a"), root.join("e/a-again")).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(root.join("d1/sock")).unwrap();
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
        // What the rules left out is counted as the full walk counts it.
        let mut none = TreeFingerprint::default();
        let left_out = walk_in_order(&root, &ruled, &AtomicBool::new(false), &mut none).unwrap();
        assert_eq!(left_out.excluded, 3, "x.tmp, skip and cache/data");
        assert_eq!(left_out.builtin, [root.join("d1.y")]);
    }
}
