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
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::primitives::hex;

/// Accumulates entry records into the fingerprint.
pub struct Fingerprint {
    hasher: Sha256,
    /// One record at a time, hashed in one call.
    record: Vec<u8>,
}

impl Default for Fingerprint {
    fn default() -> Self {
        Self::new()
    }
}

/// An entry's own (not followed) metadata, as the fingerprint keeps it and
/// the archive's headers need it: from `std`'s `Metadata` (the full walk)
/// or a `stat` read relative to the open directory (`scan`'s walk).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct EntryStat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub rdev: u64,
    pub ctime: i64,
    pub ctime_nsec: i64,
    pub nlink: u64,
    pub ino: u64,
    pub dev: u64,
    /// 512-byte blocks allocated (not in the fingerprint).
    pub blocks: u64,
}

impl From<&Metadata> for EntryStat {
    fn from(metadata: &Metadata) -> Self {
        Self {
            mode: metadata.mode(),
            uid: metadata.uid(),
            gid: metadata.gid(),
            size: metadata.size(),
            mtime: metadata.mtime(),
            mtime_nsec: metadata.mtime_nsec(),
            rdev: metadata.rdev(),
            ctime: metadata.ctime(),
            ctime_nsec: metadata.ctime_nsec(),
            nlink: metadata.nlink(),
            ino: metadata.ino(),
            dev: metadata.dev(),
            blocks: metadata.blocks(),
        }
    }
}

impl From<&rustix::fs::Stat> for EntryStat {
    /// The field types differ from one architecture to another, the
    /// values do not.
    #[allow(clippy::unnecessary_cast)]
    fn from(stat: &rustix::fs::Stat) -> Self {
        Self {
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
            dev: stat.st_dev as u64,
            blocks: stat.st_blocks as u64,
        }
    }
}

impl EntryStat {
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }

    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }

    pub fn is_symlink(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }

    pub fn is_socket(&self) -> bool {
        self.mode & S_IFMT == S_IFSOCK
    }

    pub fn is_device(&self) -> bool {
        matches!(self.mode & S_IFMT, S_IFCHR | S_IFBLK)
    }
}

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFSOCK: u32 = 0o140_000;

impl Fingerprint {
    pub fn new() -> Self {
        Self {
            hasher: Sha256::new(),
            record: Vec::with_capacity(256),
        }
    }

    /// One entry: `relative` to the source root (empty for the root itself).
    pub fn add_entry(&mut self, relative: &Path, stat: &EntryStat, link_target: Option<&Path>) {
        self.record.clear();
        write_entry(
            &mut self.record,
            relative.as_os_str().as_bytes(),
            stat,
            link_target.map(|t| t.as_os_str().as_bytes()),
        );
        self.hasher.update(&self.record);
    }

    /// A path the walk could not read: its presence is part of the state.
    pub fn add_unreadable(&mut self, relative: &Path) {
        self.record.clear();
        write_unreadable(&mut self.record, relative.as_os_str().as_bytes());
        self.hasher.update(&self.record);
    }

    /// Records already written by [`write_entry`] and [`write_unreadable`].
    pub(super) fn add_records(&mut self, records: &[u8]) {
        self.hasher.update(records);
    }

    pub fn finish(self) -> String {
        hex(&self.hasher.finalize())
    }
}

/// Appends to `out` the record of one entry, as [`Fingerprint`] hashes it:
/// its path relative to the source root, kind, mode, owner, size, times,
/// device number, shared inode and link target.
pub(super) fn write_entry(
    out: &mut Vec<u8>,
    relative: &[u8],
    stat: &EntryStat,
    link_target: Option<&[u8]>,
) {
    let is_dir = stat.is_dir();
    write_field(out, relative);
    out.push(kind_letter(stat.mode).unwrap_or(b'?'));
    out.extend_from_slice(&stat.mode.to_le_bytes());
    out.extend_from_slice(&stat.uid.to_le_bytes());
    out.extend_from_slice(&stat.gid.to_le_bytes());
    // Directories too: the archive stores their mtimes.
    out.extend_from_slice(&stat.size.to_le_bytes());
    out.extend_from_slice(&stat.mtime.to_le_bytes());
    out.extend_from_slice(&stat.mtime_nsec.to_le_bytes());
    out.extend_from_slice(&stat.rdev.to_le_bytes());
    // What the archive stores beyond these: xattrs, ACLs and owners'
    // changes all move the ctime, and so does linking a file again;
    // the inode of a file with several links says which names share it.
    out.extend_from_slice(&stat.ctime.to_le_bytes());
    out.extend_from_slice(&stat.ctime_nsec.to_le_bytes());
    let shared = !is_dir && stat.nlink > 1;
    out.extend_from_slice(&(if shared { stat.ino } else { 0 }).to_le_bytes());
    write_field(out, link_target.unwrap_or_default());
}

/// Appends to `out` the record of a path the walk could not read.
pub(super) fn write_unreadable(out: &mut Vec<u8>, relative: &[u8]) {
    write_field(out, relative);
    out.push(b'!');
}

/// Length-prefixed, so no two different record sequences hash alike.
fn write_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// One letter for a file's kind, from the file type bits of its `st_mode`,
/// as `find -printf %y` prints it (`d`, `f`, `l`, `p`, `c`, `b`, `s`);
/// `None` for a kind Linux does not have.
pub(super) fn kind_letter(mode: u32) -> Option<u8> {
    Some(match mode & S_IFMT {
        S_IFDIR => b'd',
        S_IFREG => b'f',
        S_IFLNK => b'l',
        0o010_000 => b'p',
        S_IFCHR => b'c',
        S_IFBLK => b'b',
        S_IFSOCK => b's',
        _ => return None,
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
