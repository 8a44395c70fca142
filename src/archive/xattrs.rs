//! Extended attributes and POSIX ACLs, recorded as GNU tar's `--xattrs
//! --acls` records them: every attribute as `SCHILY.xattr.NAME` (raw value),
//! and the ACLs also in their text form as `SCHILY.acl.access` and
//! `SCHILY.acl.default` (`user::rw-\nuser:alice:r--\n…`, names where the id
//! has one), which is what GNU tar restores ACLs from.
//!
//! By path, the `xattr` crate (already built as the tar crate's dependency)
//! makes the `llistxattr`/`lgetxattr` calls; on a file or directory a walk
//! has open, `rustix`'s `flistxattr`/`fgetxattr` read into one scratch
//! buffer as large as Linux allows, so the list takes one call and no size
//! query. Symlinks are never followed. Restore turns
//! the text back into the kernel's form with [`acl_value`].

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::owners::{OwnerIds, OwnerNames};
use super::pax::PaxRecords;

pub const ACL_ACCESS: &str = "system.posix_acl_access";
pub const ACL_DEFAULT: &str = "system.posix_acl_default";

/// Whose attributes to read: an entry by its path (never followed), or a
/// file already open, without resolving its path again; or attributes
/// already read (by [`read_open`]), or why they could not be.
#[derive(Clone, Copy)]
pub enum Holder<'a> {
    Path(&'a Path),
    File(&'a std::fs::File),
    Read(&'a io::Result<Attributes>),
}

/// An entry's extended attributes, names and values, sorted by name.
pub type Attributes = Vec<(OsString, Vec<u8>)>;

/// The largest attribute list and value Linux has (`XATTR_LIST_MAX`,
/// `XATTR_SIZE_MAX`): the size of [`read_open`]'s scratch buffer.
const SCRATCH: usize = 64 * 1024;

/// The attributes of an open file or directory (`flistxattr`,
/// `fgetxattr`: one call for the list, whatever its size), read into
/// `scratch` (grown to the largest list or value Linux allows, and reused
/// from entry to entry by the caller); none on a file system without them.
pub fn read_open(fd: BorrowedFd<'_>, scratch: &mut Vec<u8>) -> io::Result<Attributes> {
    if scratch.len() < SCRATCH {
        scratch.resize(SCRATCH, 0);
    }
    let listed = match rustix::fs::flistxattr(fd, &mut scratch[..]) {
        Ok(listed) => listed,
        Err(e) if is_unsupported(&e.into()) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let names: Vec<OsString> = scratch[..listed]
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| OsStr::from_bytes(name).to_os_string())
        .collect();
    let mut attributes = Vec::with_capacity(names.len());
    for name in names {
        match rustix::fs::fgetxattr(fd, name.as_os_str(), &mut scratch[..]) {
            Ok(length) => attributes.push((name, scratch[..length].to_vec())),
            Err(rustix::io::Errno::NODATA) => {} // removed since the list
            Err(e) => return Err(e.into()),
        }
    }
    attributes.sort();
    Ok(attributes)
}

impl Holder<'_> {
    /// Its attributes, sorted by name; `scratch` as [`read_open`] takes it.
    fn read(self, scratch: &mut Vec<u8>) -> io::Result<Attributes> {
        match self {
            Holder::Path(path) => read_path(path),
            Holder::File(file) => read_open(file.as_fd(), scratch),
            Holder::Read(Ok(attributes)) => Ok(attributes.clone()),
            Holder::Read(Err(e)) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// The attributes of the entry at `path`, never followed (`llistxattr`,
/// `lgetxattr`).
fn read_path(path: &Path) -> io::Result<Attributes> {
    let listed = match xattr::list(path) {
        Ok(listed) => listed,
        Err(e) if is_unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut attributes = Vec::new();
    for name in listed {
        // `None`: removed since the list.
        if let Some(value) = xattr::get(path, &name)? {
            attributes.push((name, value));
        }
    }
    attributes.sort();
    Ok(attributes)
}

/// Adds the attributes of `holder` to `records`. A file system without
/// extended attributes has none; another failure is returned, for the
/// report, and the entry is archived without them.
pub fn add_records(
    (holder, scratch): (Holder<'_>, &mut Vec<u8>),
    names: &mut OwnerNames,
    records: &mut PaxRecords,
) -> io::Result<()> {
    let mut acls = Vec::new();
    for (name, value) in holder.read(scratch)? {
        let Some(text) = name.to_str() else {
            continue; // not representable in a PAX key; GNU tar skips it too
        };
        match text {
            ACL_ACCESS => acls.push(("SCHILY.acl.access", acl_text(&value, names))),
            ACL_DEFAULT => acls.push(("SCHILY.acl.default", acl_text(&value, names))),
            _ => {}
        }
        records.add(&format!("SCHILY.xattr.{text}"), &value);
    }
    for (key, text) in acls.into_iter().filter_map(|(k, t)| Some((k, t?))) {
        records.add_str(key, &text);
    }
    Ok(())
}

fn is_unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(nix::libc::ENOTSUP | nix::libc::ENOSYS)
    )
}

/// The text form (`acl_to_text`, without comments) of a kernel ACL value:
/// a version word (2), then entries of tag (u16), permissions (u16) and id
/// (u32), little-endian. `None` for a value that is not one.
fn acl_text(value: &[u8], names: &mut OwnerNames) -> Option<String> {
    let (version, entries) = value.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != 2 || entries.len() % 8 != 0 {
        return None;
    }
    let mut text = String::new();
    for entry in entries.chunks_exact(8) {
        let tag = u16::from_le_bytes([entry[0], entry[1]]);
        let perm = u16::from_le_bytes([entry[2], entry[3]]);
        let id = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]);
        let (kind, qualifier) = match tag {
            0x01 => ("user", String::new()),
            0x02 => (
                "user",
                names.user(id).map_or(id.to_string(), str::to_string),
            ),
            0x04 => ("group", String::new()),
            0x08 => (
                "group",
                names.group(id).map_or(id.to_string(), str::to_string),
            ),
            0x10 => ("mask", String::new()),
            0x20 => ("other", String::new()),
            _ => return None,
        };
        let bit = |mask: u16, c: char| if perm & mask != 0 { c } else { '-' };
        text.push_str(&format!(
            "{kind}:{qualifier}:{}{}{}\n",
            bit(4, 'r'),
            bit(2, 'w'),
            bit(1, 'x')
        ));
    }
    Some(text)
}

/// The kernel value of an ACL in the text form [`acl_text`] and GNU tar
/// write (`user:alice:r--`, one entry a line or comma-separated, `#`
/// comments such as `#effective:r--` ignored, a name or a numeric id,
/// `u`/`g`/`m`/`o` for short). Names are looked up on this machine, as GNU
/// tar does. `Err` says why the text cannot be restored.
pub fn acl_value(text: &str, ids: &mut OwnerIds) -> Result<Vec<u8>, String> {
    let mut entries: Vec<(u16, u32, u16)> = Vec::new();
    for line in text.split(['\n', ',']) {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        let (kind, qualifier, perms) = match fields.as_slice() {
            [kind, qualifier, perms] | [kind, qualifier, perms, _] => (*kind, *qualifier, *perms),
            _ => return Err(format!("unreadable ACL entry {line:?}")),
        };
        let mut perm = 0u16;
        for (i, c) in perms.chars().enumerate() {
            perm |= match (i, c) {
                (0, 'r') => 4,
                (1, 'w') => 2,
                (2, 'x') => 1,
                (0..=2, '-') => 0,
                _ => return Err(format!("unreadable ACL permissions {perms:?}")),
            };
        }
        let id = |group: bool, ids: &mut OwnerIds| -> Result<u32, String> {
            let found = if group {
                ids.group(qualifier)
            } else {
                ids.user(qualifier)
            };
            found
                .or_else(|| qualifier.parse().ok())
                .ok_or_else(|| format!("no user or group {qualifier:?} on this machine"))
        };
        const NO_ID: u32 = u32::MAX;
        entries.push(match (kind, qualifier.is_empty()) {
            ("user" | "u", true) => (0x01, NO_ID, perm),
            ("user" | "u", false) => (0x02, id(false, ids)?, perm),
            ("group" | "g", true) => (0x04, NO_ID, perm),
            ("group" | "g", false) => (0x08, id(true, ids)?, perm),
            ("mask" | "m", _) => (0x10, NO_ID, perm),
            ("other" | "o", _) => (0x20, NO_ID, perm),
            _ => return Err(format!("unreadable ACL entry {line:?}")),
        });
    }
    // The kernel wants them by tag, then by id.
    entries.sort_unstable();
    let mut value = 2u32.to_le_bytes().to_vec();
    for (tag, id, perm) in entries {
        value.extend(tag.to_le_bytes());
        value.extend(perm.to_le_bytes());
        value.extend(id.to_le_bytes());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acls_read_as_getfacl_and_gnu_tar_write_them() {
        let mut value = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (0x01u16, 6u16, u32::MAX),
            (0x02, 6, 0),
            (0x02, 4, 3_999_999_999),
            (0x04, 4, u32::MAX),
            (0x10, 6, u32::MAX),
            (0x20, 4, u32::MAX),
        ] {
            value.extend(tag.to_le_bytes());
            value.extend(perm.to_le_bytes());
            value.extend(id.to_le_bytes());
        }
        let text = acl_text(&value, &mut OwnerNames::default()).unwrap();
        assert_eq!(
            text,
            "user::rw-\nuser:root:rw-\nuser:3999999999:r--\ngroup::r--\nmask::rw-\nother::r--\n"
        );
        assert_eq!(acl_text(&value[..7], &mut OwnerNames::default()), None);
        // And back: the same value, from our text or from GNU tar's.
        let mut ids = OwnerIds::default();
        assert_eq!(acl_value(&text, &mut ids).unwrap(), value);
        let gnu = "user::rw-\nuser:root:rw-\t#effective:rw-\ngroup::r--\nmask::rw-\nother::r--\nuser:3999999999:r--";
        assert_eq!(acl_value(gnu, &mut ids).unwrap(), value);
        assert_eq!(
            acl_value(
                "u::rw-,u:root:rw-,g::r--,m::rw-,o::r--,u:3999999999:r--",
                &mut ids
            )
            .unwrap(),
            value
        );
        assert!(acl_value("user:nobody-here-at-all:r--", &mut ids).is_err());
        assert!(acl_value("user::rwz", &mut ids).is_err());
        assert!(acl_value("bogus", &mut ids).is_err());
    }
}
