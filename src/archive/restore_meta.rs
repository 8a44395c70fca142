//! What restore puts back besides an entry's type and content, as GNU tar
//! `--xattrs --acls -xpf` does: owners (by name, falling back to the id, or
//! by id with `--numeric-owner`), modes exactly (set-uid, set-gid and sticky
//! included), modification times to the nanosecond (PAX `mtime`), extended
//! attributes (`SCHILY.xattr.*`) and POSIX ACLs (`SCHILY.acl.access`,
//! `SCHILY.acl.default`).
//!
//! The order matters: the owner first (`chown` clears set-uid/set-gid bits
//! and file capabilities), then the mode, then attributes and ACLs (an
//! access ACL rewrites the group bits from its mask, consistently with the
//! stored mode), then the time (any change above would bump it).
//!
//! Only root may give files away or set set-uid bits on others' files: run
//! as another user, owners and those bits are not restored and
//! [`Unrestored::owners`] counts the entries that lost them. An attribute the
//! filesystem or the user refuses is counted, not fatal.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use std::os::fd::{AsRawFd, BorrowedFd};

use super::owners::OwnerIds;
use super::pax_tap::Records;
use super::xattrs::{ACL_ACCESS, ACL_DEFAULT, acl_value};

/// An entry's metadata, from its header and PAX records.
#[derive(Debug, Clone)]
pub struct EntryMetadata {
    /// Permission bits with set-uid, set-gid and sticky.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: Option<String>,
    pub gname: Option<String>,
    pub mtime: SystemTime,
    /// `SCHILY.xattr.NAME` records, in archive order.
    pub xattrs: Vec<(OsString, Vec<u8>)>,
    pub acl_access: Option<String>,
    pub acl_default: Option<String>,
}

impl EntryMetadata {
    /// From the entry's header and its PAX records.
    pub fn read(header: &tar::Header, records: &Records) -> Self {
        let name = |bytes: Option<&[u8]>| {
            bytes
                .filter(|b| !b.is_empty())
                .map(|b| String::from_utf8_lossy(b).into_owned())
        };
        let mut meta = EntryMetadata {
            mode: header.mode().unwrap_or(0o644) & 0o7777,
            uid: header.uid().unwrap_or(0),
            gid: header.gid().unwrap_or(0),
            uname: name(header.username_bytes()),
            gname: name(header.groupname_bytes()),
            // A hostile or pre-1970 header time must not overflow.
            mtime: SystemTime::UNIX_EPOCH
                .checked_add(Duration::from_secs(header.mtime().unwrap_or(0)))
                .unwrap_or(SystemTime::UNIX_EPOCH),
            xattrs: Vec::new(),
            acl_access: None,
            acl_default: None,
        };
        for (key, value) in records {
            let text = || String::from_utf8_lossy(value).into_owned();
            match key.as_slice() {
                b"uid" => meta.uid = text().parse().unwrap_or(meta.uid),
                b"gid" => meta.gid = text().parse().unwrap_or(meta.gid),
                b"uname" => meta.uname = Some(text()),
                b"gname" => meta.gname = Some(text()),
                b"mtime" => meta.mtime = pax_time(&text()).unwrap_or(meta.mtime),
                b"SCHILY.acl.access" => meta.acl_access = Some(text()),
                b"SCHILY.acl.default" => meta.acl_default = Some(text()),
                key => {
                    if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                        meta.xattrs
                            .push((OsString::from_vec(name.to_vec()), value.clone()));
                    }
                }
            }
        }
        meta
    }
}

/// A PAX time (`1614834367.123456789`, `-1.25`) as a `SystemTime`.
fn pax_time(text: &str) -> Option<SystemTime> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (seconds, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let seconds: u64 = seconds.parse().ok()?;
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = format!("{:0<9}", &fraction[..fraction.len().min(9)])
        .parse()
        .ok()?;
    let offset = Duration::new(seconds, nanos);
    if negative {
        SystemTime::UNIX_EPOCH.checked_sub(offset)
    } else {
        SystemTime::UNIX_EPOCH.checked_add(offset)
    }
}

/// What could not be put back, for the one line each that restore prints.
#[derive(Debug, Default)]
pub struct Unrestored {
    /// Entries owned by someone else, or with set-uid/set-gid/sticky bits,
    /// restored by a user other than root: restored as theirs, without
    /// those bits.
    pub owners: u64,
    /// Entries with an extended attribute or ACL that could not be set.
    pub attributes: u64,
    /// The first of those, and why.
    pub first_attribute: Option<(PathBuf, String)>,
}

/// How metadata is applied in this restore: who we are, how owners are
/// matched, and what failed so far.
pub struct MetadataWriter {
    root: bool,
    numeric_owner: bool,
    euid: u32,
    egid: u32,
    ids: OwnerIds,
    pub unrestored: Unrestored,
}

/// What kind of node [`MetadataWriter::apply_to_node`] sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    Symlink,
    /// A FIFO or a device.
    Special,
}

impl MetadataWriter {
    pub fn new(numeric_owner: bool) -> Self {
        Self {
            root: nix::unistd::geteuid().is_root(),
            numeric_owner,
            euid: nix::unistd::geteuid().as_raw(),
            egid: nix::unistd::getegid().as_raw(),
            ids: OwnerIds::default(),
            unrestored: Unrestored::default(),
        }
    }

    /// Whether devices can be made (`mknod` needs root).
    pub fn is_root(&self) -> bool {
        self.root
    }

    /// The owner to give, as root; `None` otherwise (and counted when it
    /// differs from ours).
    fn owner(&mut self, meta: &EntryMetadata) -> Option<(u32, u32)> {
        if !self.root {
            let ours = meta.uid == u64::from(self.euid) && meta.gid == u64::from(self.egid);
            if !ours || meta.mode & 0o7000 != 0 {
                self.unrestored.owners += 1;
            }
            return None;
        }
        let by_name = |name: &Option<String>, lookup: &mut dyn FnMut(&str) -> Option<u32>| {
            name.as_deref().and_then(lookup)
        };
        let (mut uid, mut gid) = (u32::try_from(meta.uid).ok(), u32::try_from(meta.gid).ok());
        if !self.numeric_owner {
            let ids = &mut self.ids;
            uid = by_name(&meta.uname, &mut |n| ids.user(n)).or(uid);
            gid = by_name(&meta.gname, &mut |n| ids.group(n)).or(gid);
        }
        Some((uid?, gid?))
    }

    /// The mode to set: exact as root, without set-uid/set-gid/sticky
    /// otherwise.
    fn mode(&self, meta: &EntryMetadata) -> u32 {
        if self.root {
            meta.mode
        } else {
            meta.mode & 0o777
        }
    }

    /// Applies everything to an open file or directory (`path` names it in
    /// messages), through its descriptor.
    pub fn apply_to_file(
        &mut self,
        file: &File,
        path: &Path,
        meta: &EntryMetadata,
    ) -> io::Result<()> {
        use xattr::FileExt;
        if let Some((uid, gid)) = self.owner(meta) {
            std::os::unix::fs::fchown(file, Some(uid), Some(gid))?;
        }
        file.set_permissions(fs::Permissions::from_mode(self.mode(meta)))?;
        self.attributes(path, meta, &mut |name, value| file.set_xattr(name, value));
        file.set_modified(meta.mtime)
    }

    /// Applies everything to a symlink, FIFO or device through `node`, an
    /// `O_PATH|O_NOFOLLOW` descriptor of it (`path` names it in messages):
    /// the owner with `fchownat(AT_EMPTY_PATH)`, the rest through
    /// `/proc/self/fd/N`, which names the inode itself (a symlink is not
    /// followed from there), never a path someone could swap: this needs
    /// /proc mounted. A symlink has no mode of its own.
    pub fn apply_to_node(
        &mut self,
        node: BorrowedFd<'_>,
        path: &Path,
        meta: &EntryMetadata,
        kind: Node,
    ) -> io::Result<()> {
        if let Some((uid, gid)) = self.owner(meta) {
            rustix::fs::chownat(
                node,
                "",
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
                rustix::fs::AtFlags::EMPTY_PATH,
            )?;
        }
        let inode = PathBuf::from(format!("/proc/self/fd/{}", node.as_raw_fd()));
        if kind == Node::Special {
            fs::set_permissions(&inode, fs::Permissions::from_mode(self.mode(meta)))?;
        }
        // `set_deref`: through the magic link to the node itself (a symlink
        // is not followed from there); `set` would name the link in /proc.
        self.attributes(path, meta, &mut |name, value| {
            xattr::set_deref(&inode, name, value)
        });
        let since_epoch = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH);
        let (tv_sec, tv_nsec) = match since_epoch(meta.mtime) {
            Ok(d) => (d.as_secs() as i64, i64::from(d.subsec_nanos())),
            Err(before) => {
                let d = before.duration();
                match d.subsec_nanos() {
                    0 => (-(d.as_secs() as i64), 0),
                    n => (-(d.as_secs() as i64) - 1, 1_000_000_000 - i64::from(n)),
                }
            }
        };
        let times = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
            last_modification: rustix::fs::Timespec { tv_sec, tv_nsec },
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &inode,
            &times,
            rustix::fs::AtFlags::empty(),
        )
        .map_err(io::Error::from)
    }

    /// Sets the extended attributes and ACLs with `set`, counting failures.
    /// An ACL is set from its text (names resolved on this machine) when the
    /// archive has it, else from its raw attribute.
    fn attributes(
        &mut self,
        path: &Path,
        meta: &EntryMetadata,
        set: &mut dyn FnMut(&std::ffi::OsStr, &[u8]) -> io::Result<()>,
    ) {
        let mut failure: Option<String> = None;
        for (name, value) in &meta.xattrs {
            let from_text = (name == ACL_ACCESS && meta.acl_access.is_some())
                || (name == ACL_DEFAULT && meta.acl_default.is_some());
            if from_text {
                continue;
            }
            if let Err(e) = set(name, value) {
                failure.get_or_insert(format!("{}: {e}", name.to_string_lossy()));
            }
        }
        for (name, text) in [
            (ACL_ACCESS, &meta.acl_access),
            (ACL_DEFAULT, &meta.acl_default),
        ] {
            let Some(text) = text else { continue };
            let result = acl_value(text, &mut self.ids)
                .and_then(|value| set(name.as_ref(), &value).map_err(|e| e.to_string()));
            if let Err(why) = result {
                let kind = if name == ACL_ACCESS {
                    "ACL"
                } else {
                    "default ACL"
                };
                failure.get_or_insert(format!("{kind}: {why}"));
            }
        }
        if let Some(why) = failure {
            self.unrestored.attributes += 1;
            self.unrestored
                .first_attribute
                .get_or_insert((path.to_path_buf(), why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_keep_nanoseconds_on_both_sides_of_the_epoch() {
        let at = |s: u64, n: u32| SystemTime::UNIX_EPOCH + Duration::new(s, n);
        assert_eq!(pax_time("5"), Some(at(5, 0)));
        assert_eq!(
            pax_time("1614834367.123456789"),
            Some(at(1614834367, 123456789))
        );
        assert_eq!(pax_time("7.5"), Some(at(7, 500_000_000)));
        assert_eq!(pax_time("7.1234567891"), Some(at(7, 123456789)));
        assert_eq!(
            pax_time("-1.25"),
            SystemTime::UNIX_EPOCH.checked_sub(Duration::new(1, 250_000_000))
        );
        assert_eq!(pax_time("x"), None);
        assert_eq!(pax_time("1.x"), None);
    }
}
