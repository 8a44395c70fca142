//! `GNU.dumpdir` records read back: the list of what a directory of an
//! incremental archive holds (see [`super::incremental`]), checked before
//! anything is written, and the deletions it implies applied inside the
//! destination only.
//!
//! A dumpdir is a series of `FLAG NAME NUL` items ended by one more NUL.
//! backupctl writes only `Y` (stored here), `N` (unchanged) and `D` (a
//! directory). GNU tar may also write `R`/`T` rename pairs (whole paths)
//! and `X` (a temporary name); those are refused, as is any name that is
//! empty, `.`, `..` or holds a `/`: a hostile dumpdir must not make a
//! restore delete or move anything outside the directory it describes.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::beneath::{BeneathError, Root, entries_with_kind, remove_tree_at};

/// One directory's entries, as its dumpdir lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dumpdir {
    /// (flag, name), in the record's order.
    entries: Vec<(u8, OsString)>,
}

impl Dumpdir {
    /// Parses and checks a record's value; the error says what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let body = bytes
            .strip_suffix(&[0])
            .ok_or("is not ended by a NUL byte")?;
        let mut entries = Vec::new();
        if body.is_empty() {
            return Ok(Self { entries });
        }
        let items = body
            .strip_suffix(&[0])
            .ok_or("does not end its last name with a NUL byte")?;
        for item in items.split(|&b| b == 0) {
            let (&flag, name) = item.split_first().ok_or("holds an empty item")?;
            match flag {
                b'Y' | b'N' | b'D' => {}
                b'R' | b'T' | b'X' => {
                    return Err("holds rename records, which restore does not apply".into());
                }
                _ => return Err(format!("holds an unknown flag {:?}", char::from(flag))),
            }
            if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
                return Err(format!(
                    "names {:?}, which is not a plain file name",
                    String::from_utf8_lossy(name)
                ));
            }
            entries.push((flag, OsStr::from_bytes(name).to_os_string()));
        }
        Ok(Self { entries })
    }

    /// Whether an entry `name` of the restored directory stays: the
    /// dumpdir names it, as a directory if it is one (`D`), as a
    /// non-directory if it is stored here (`Y`). What GNU tar's
    /// `purge_directory` keeps.
    fn keeps(&self, name: &OsStr, is_dir: bool) -> bool {
        self.entries.iter().any(|(flag, listed)| {
            listed == name
                && match flag {
                    b'D' => is_dir,
                    b'Y' => !is_dir,
                    _ => true,
                }
        })
    }
}

/// What is wrong with an archive's dumpdirs: the entry, and why.
pub type Refusal = (String, String);

/// Hands `each` the dumpdir of each directory entry of an archive, with
/// the entry's path, in the archive's order, one at a time (memory holds
/// one directory's list); stops with a refusal (the entry and why) at an
/// entry whose path leaves the destination or whose dumpdir is not valid.
pub fn for_each<R: Read>(
    reader: R,
    mut each: impl FnMut(PathBuf, Dumpdir) -> io::Result<()>,
) -> io::Result<Result<(), Refusal>> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let Some(extensions) = entry.pax_extensions()? else {
            continue;
        };
        let mut record = None;
        for extension in extensions {
            let extension = extension?;
            if extension.key_bytes() == b"GNU.dumpdir" {
                record = Some(extension.value_bytes().to_vec());
            }
        }
        let Some(record) = record else {
            continue;
        };
        let path = entry.path()?.into_owned();
        let shown = path.to_string_lossy().into_owned();
        if !entry.header().entry_type().is_dir() {
            return Ok(Err((shown, "has a dumpdir but is not a directory".into())));
        }
        if !path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Ok(Err((
                shown,
                "is not a relative path inside the archive".into(),
            )));
        }
        match Dumpdir::parse(&record) {
            Ok(dumpdir) => each(path, dumpdir)?,
            Err(why) => return Ok(Err((shown, format!("has a dumpdir that {why}")))),
        }
    }
    Ok(Ok(()))
}

/// Deletes from `destination/relative` what `dumpdir` does not keep, and
/// returns what it deleted. Nothing happens outside the destination: the
/// directory is opened beneath it by the kernel (`beneath`), refusing a
/// symlink or a file on the way (then there is nothing to delete, as when
/// it is missing); entries are removed through that descriptor, a
/// directory with all it holds, never following a symlink.
pub fn prune_extra(
    destination: &Path,
    relative: &Path,
    dumpdir: &Dumpdir,
) -> io::Result<Vec<PathBuf>> {
    let root = Root::open(destination).map_err(io::Error::other)?;
    let dir = match root.open_dir(relative) {
        Ok(dir) => dir,
        Err(BeneathError::Unsafe { .. }) => return Ok(Vec::new()),
        Err(BeneathError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(Vec::new());
        }
        Err(BeneathError::Io { source, .. }) => return Err(source),
    };
    let mut removed = Vec::new();
    for (name, is_dir) in entries_with_kind(dir.as_fd())? {
        if dumpdir.keeps(&name, is_dir) {
            continue;
        }
        remove_tree_at(dir.as_fd(), &name)?;
        removed.push(root.shown(relative).join(name));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn dumpdirs_parse_as_gnu_tar_writes_them() {
        assert_eq!(Dumpdir::parse(b"\0").unwrap().entries, []);
        let d = Dumpdir::parse(b"Ya\0Dd1\0Nl\0\0").unwrap();
        assert!(d.keeps(OsStr::new("a"), false));
        assert!(!d.keeps(OsStr::new("a"), true));
        assert!(d.keeps(OsStr::new("d1"), true));
        assert!(!d.keeps(OsStr::new("d1"), false));
        assert!(d.keeps(OsStr::new("l"), true) && d.keeps(OsStr::new("l"), false));
        assert!(!d.keeps(OsStr::new("gone"), false));
    }

    #[test]
    fn hostile_dumpdirs_are_refused() {
        for (bytes, why) in [
            (&b"Y../x\0\0"[..], "not a plain file name"),
            (b"Y..\0\0", "not a plain file name"),
            (b"Y/etc/passwd\0\0", "not a plain file name"),
            (b"Ya/b\0\0", "not a plain file name"),
            (b"Rsrc/a\0T../../x\0\0", "rename records"),
            (b"Qa\0\0", "unknown flag"),
            (b"Ya\0", "last name"),
            (b"", "not ended"),
            (b"\0\0", "empty item"),
        ] {
            let error = Dumpdir::parse(bytes).unwrap_err();
            assert!(error.contains(why), "{bytes:?}: {error}");
        }
    }

    #[test]
    fn pruning_stays_inside_the_destination() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("dest");
        let outside = root.path().join("outside");
        fs::create_dir_all(dest.join("src/d")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("precious"), b"keep").unwrap();
        fs::write(dest.join("src/old"), b"").unwrap();
        fs::write(dest.join("src/kept"), b"").unwrap();
        fs::write(dest.join("src/d/x"), b"").unwrap();
        std::os::unix::fs::symlink(&outside, dest.join("src/link")).unwrap();
        let dumpdir = Dumpdir::parse(b"Ykept\0Dlink\0\0").unwrap();
        let mut removed = prune_extra(&dest, Path::new("src"), &dumpdir).unwrap();
        removed.sort();
        // `link` is listed as a directory but is a symlink: removed, as a
        // link, never followed.
        assert_eq!(
            removed,
            [
                dest.join("src/d"),
                dest.join("src/link"),
                dest.join("src/old")
            ]
        );
        assert!(outside.join("precious").exists());
        // A path through a symlink prunes nothing.
        std::os::unix::fs::symlink(&outside, dest.join("src/via")).unwrap();
        let none = Dumpdir::parse(b"\0").unwrap();
        assert!(
            prune_extra(&dest, Path::new("src/via"), &none)
                .unwrap()
                .is_empty()
        );
        assert!(outside.join("precious").exists());
    }
}
