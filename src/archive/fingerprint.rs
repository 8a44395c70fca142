//! The fingerprint of a source tree: a SHA-256 over the metadata of every
//! entry, in the walk's sorted order (relative path as raw bytes, file type,
//! mode, owner, size, mtime and ctime to the nanosecond, device number, the
//! inode of a file with several links, link target).
//! Contents are not read: two trees with the same fingerprint would be
//! archived identically unless a file changed without its size or mtime
//! changing, the same bet `rsync`, `make` and the time-machine seed make.
//!
//! The archive walk feeds the same records while it writes, so recording the
//! fingerprint costs no second walk; `if-changed` runs only the metadata walk.

use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::primitives::hex;

/// Accumulates entry records into the fingerprint.
pub struct Fingerprint {
    hasher: Sha256,
}

impl Default for Fingerprint {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprint {
    pub fn new() -> Self {
        Self {
            hasher: Sha256::new(),
        }
    }

    /// One entry: `relative` to the source root (empty for the root itself).
    pub fn add_entry(&mut self, relative: &Path, metadata: &Metadata, link_target: Option<&Path>) {
        let kind = metadata.file_type();
        let tag = kind_letter(kind).unwrap_or(b'?');
        self.field(relative.as_os_str().as_bytes());
        self.hasher.update([tag]);
        self.hasher.update(metadata.mode().to_le_bytes());
        self.hasher.update(metadata.uid().to_le_bytes());
        self.hasher.update(metadata.gid().to_le_bytes());
        // Directories too: the archive stores their mtimes.
        self.hasher.update(metadata.size().to_le_bytes());
        self.hasher.update(metadata.mtime().to_le_bytes());
        self.hasher.update(metadata.mtime_nsec().to_le_bytes());
        self.hasher.update(metadata.rdev().to_le_bytes());
        // What the archive stores beyond these: xattrs, ACLs and owners'
        // changes all move the ctime, and so does linking a file again;
        // the inode of a file with several links says which names share it.
        self.hasher.update(metadata.ctime().to_le_bytes());
        self.hasher.update(metadata.ctime_nsec().to_le_bytes());
        let shared = !kind.is_dir() && metadata.nlink() > 1;
        self.hasher
            .update((if shared { metadata.ino() } else { 0 }).to_le_bytes());
        self.field(link_target.map_or(&[][..], |t| t.as_os_str().as_bytes()));
    }

    /// A path the walk could not read: its presence is part of the state.
    pub fn add_unreadable(&mut self, relative: &Path) {
        self.field(relative.as_os_str().as_bytes());
        self.hasher.update([b'!']);
    }

    /// Length-prefixed, so no two different record sequences hash alike.
    fn field(&mut self, bytes: &[u8]) {
        self.hasher.update((bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
    }

    pub fn finish(self) -> String {
        hex(&self.hasher.finalize())
    }
}

/// One letter for a file's kind, as `find -printf %y` prints it (`d`, `f`,
/// `l`, `p`, `c`, `b`, `s`); `None` for a kind Linux does not have.
pub(super) fn kind_letter(kind: std::fs::FileType) -> Option<u8> {
    Some(if kind.is_dir() {
        b'd'
    } else if kind.is_file() {
        b'f'
    } else if kind.is_symlink() {
        b'l'
    } else if kind.is_fifo() {
        b'p'
    } else if kind.is_char_device() {
        b'c'
    } else if kind.is_block_device() {
        b'b'
    } else if kind.is_socket() {
        b's'
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn fingerprint_of(dir: &Path) -> String {
        super::super::tree::fingerprint_tree(dir, &Default::default())
    }

    #[test]
    fn changes_in_metadata_change_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a"), b"one").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink("a", root.join("sub/link")).unwrap();
        std::fs::write(root.join(OsStr::from_bytes(b"bad\xffname")), b"x").unwrap();
        let first = fingerprint_of(root);
        assert_eq!(fingerprint_of(root), first, "stable when nothing changed");

        std::fs::write(root.join("a"), b"two!").unwrap();
        let resized = fingerprint_of(root);
        assert_ne!(resized, first);

        std::fs::remove_file(root.join("sub/link")).unwrap();
        std::os::unix::fs::symlink("b", root.join("sub/link")).unwrap();
        let relinked = fingerprint_of(root);
        assert_ne!(relinked, resized);

        let file = std::fs::File::options()
            .write(true)
            .open(root.join("a"))
            .unwrap();
        file.set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_ne!(fingerprint_of(root), relinked);
    }
}
