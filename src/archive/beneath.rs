//! Directories opened beneath a root directory by the kernel's resolution,
//! never by a path string a second process could redirect: what restore
//! and a chain restore's deletions write through.
//!
//! The root is opened once (`O_DIRECTORY|O_NOFOLLOW`). A directory below it
//! is opened with `openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)` from the
//! root, or one component at a time with `openat(O_DIRECTORY|O_NOFOLLOW)`
//! from the nearest directory already open ([`DirStack`], which also makes
//! missing ones): either way a symlink or a file anywhere on the way is
//! refused by the kernel at the moment of the open, and the descriptor
//! keeps naming the directory it opened whatever is renamed afterwards.
//! Callers then make or change each entry with one `*at` call on (its
//! directory's descriptor, its name).
//!
//! A kernel without `openat2` (before Linux 5.6) gets the component walk,
//! which is as safe: each step is a single name without `/` or `..`.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Why a directory could not be opened beneath the root.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    /// Something other than a real directory is on the way.
    #[error("{}: {why}", path.display())]
    Unsafe { path: PathBuf, why: &'static str },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What stands where a directory was expected, in words.
pub const SYMLINK: &str = "it is a symlink, and restore never writes through one";
pub const NOT_A_DIRECTORY: &str = "it is not a directory";

/// Set once `openat2` answered ENOSYS: the walk is used from then on.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// An open root directory and the path it was opened by (for messages).
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Opens `path`, which must be a directory and not a symlink.
    pub fn open(path: &Path) -> Result<Self, BeneathError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => Ok(Self {
                fd,
                path: path.to_path_buf(),
            }),
            Err(e) => Err(refusal(
                e,
                path.to_path_buf(),
                rustix::fs::CWD,
                path.as_os_str(),
            )),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `relative` under the root, for messages.
    pub fn shown(&self, relative: &Path) -> PathBuf {
        self.path.join(relative)
    }

    /// Opens the existing directory `relative` (plain components only)
    /// beneath the root.
    pub fn open_dir(&self, relative: &Path) -> Result<OwnedFd, BeneathError> {
        if relative.as_os_str().is_empty() {
            return self.fd.try_clone().map_err(|source| BeneathError::Io {
                path: self.path.clone(),
                source,
            });
        }
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            let resolve =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(&self.fd, relative, dir_flags(), Mode::empty(), resolve) {
                Ok(fd) => return Ok(fd),
                Err(Errno::NOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
                // The walk says which component is wrong, and how.
                Err(_) => {}
            }
        }
        let mut stack = DirStack::new(self);
        stack.descend(relative, false)?;
        stack
            .open
            .pop()
            .map(|(_, fd)| fd)
            .ok_or_else(|| BeneathError::Io {
                path: self.path.clone(),
                source: io::Error::from(io::ErrorKind::NotFound),
            })
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// The open directories from the root down to the last one asked for:
/// entries arrive grouped by directory, so the next is most often the same
/// one, a child, or a sibling, and costs no syscall or one per new name.
pub struct DirStack<'r> {
    root: &'r Root,
    /// (name, descriptor) of each directory below the root, outermost first.
    open: Vec<(OsString, OwnedFd)>,
}

impl<'r> DirStack<'r> {
    pub fn new(root: &'r Root) -> Self {
        Self {
            root,
            open: Vec::new(),
        }
    }

    /// The directory `relative` (plain components only), made where
    /// missing as `mkdir` makes it (0777 less the umask): a parent the
    /// archive has no entry for, as GNU tar makes one.
    pub fn dir(&mut self, relative: &Path) -> Result<BorrowedFd<'_>, BeneathError> {
        self.descend(relative, true)?;
        Ok(match self.open.last() {
            Some((_, fd)) => fd.as_fd(),
            None => self.root.fd(),
        })
    }

    fn descend(&mut self, relative: &Path, create: bool) -> Result<(), BeneathError> {
        let names: Vec<&OsStr> = relative
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name),
                _ => None,
            })
            .collect();
        let kept = self
            .open
            .iter()
            .zip(&names)
            .take_while(|((open, _), name)| open.as_os_str() == **name)
            .count();
        self.open.truncate(kept);
        for (depth, name) in names.iter().enumerate().skip(kept) {
            let parent = match self.open.last() {
                Some((_, fd)) => fd.as_fd(),
                None => self.root.fd(),
            };
            let fd = open_child(parent, name, create).map_err(|e| {
                let shown: PathBuf = names[..=depth].iter().collect();
                refusal(e, self.root.shown(&shown), parent, name)
            })?;
            self.open.push((name.to_os_string(), fd));
        }
        Ok(())
    }
}

/// Opens the directory `name` in `parent`, making it first when `create`.
fn open_child(parent: BorrowedFd<'_>, name: &OsStr, create: bool) -> Result<OwnedFd, Errno> {
    match rustix::fs::openat(parent, name, dir_flags(), Mode::empty()) {
        Err(Errno::NOENT) if create => {
            match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o777)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
            rustix::fs::openat(parent, name, dir_flags(), Mode::empty())
        }
        other => other,
    }
}

/// The error for a failed open of directory `name` in `parent` (shown as
/// `path`): a symlink or non-directory is named as such.
fn refusal(error: Errno, path: PathBuf, parent: BorrowedFd<'_>, name: &OsStr) -> BeneathError {
    if matches!(error, Errno::LOOP | Errno::NOTDIR) {
        let kind = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| FileType::from_raw_mode(st.st_mode));
        match kind {
            Ok(FileType::Symlink) => {
                return BeneathError::Unsafe { path, why: SYMLINK };
            }
            Ok(FileType::Directory) => {}
            _ => {
                return BeneathError::Unsafe {
                    path,
                    why: NOT_A_DIRECTORY,
                };
            }
        }
    }
    BeneathError::Io {
        path,
        source: error.into(),
    }
}

/// Removes `name` from `parent` without following symlinks: a directory
/// with everything in it, through descriptors, anything else unlinked.
pub fn remove_tree_at(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        other => return other.map_err(io::Error::from),
    }
    let dir = match rustix::fs::openat(parent, name, dir_flags(), Mode::empty()) {
        Ok(dir) => dir,
        // Not a directory after all: unlinking it failed for its own reason.
        Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
            return rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(io::Error::from);
        }
        Err(e) => return Err(e.into()),
    };
    for child in entries(dir.as_fd())? {
        remove_tree_at(dir.as_fd(), &child)?;
    }
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR).map_err(io::Error::from)
}

/// The names in directory `dir` (without `.` and `..`), with whether each
/// is a directory (not following symlinks).
pub fn entries_with_kind(dir: BorrowedFd<'_>) -> io::Result<Vec<(OsString, bool)>> {
    let mut found = Vec::new();
    for name in entries(dir)? {
        let is_dir = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)?;
        found.push((name, is_dir));
    }
    Ok(found)
}

fn entries(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let mut reader = rustix::fs::Dir::read_from(dir)?;
    let mut names = Vec::new();
    while let Some(entry) = reader.read() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(&name).to_os_string());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn directories_are_opened_and_made_beneath_the_root_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root_path = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(root_path.join("a/b")).unwrap();
        fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root_path.join("a/link")).unwrap();
        fs::write(root_path.join("a/file"), b"").unwrap();
        let root = Root::open(&root_path).unwrap();
        assert!(root.open_dir(Path::new("a/b")).is_ok());
        let why = |e: BeneathError| match e {
            BeneathError::Unsafe { path, why } => (path, why),
            other => panic!("{other}"),
        };
        assert_eq!(
            why(root.open_dir(Path::new("a/link")).unwrap_err()),
            (root_path.join("a/link"), SYMLINK)
        );
        let mut stack = DirStack::new(&root);
        stack.dir(Path::new("a/b/c/d")).unwrap();
        assert!(root_path.join("a/b/c/d").is_dir());
        assert_eq!(
            why(stack.dir(Path::new("a/link/x")).err().unwrap()),
            (root_path.join("a/link"), SYMLINK)
        );
        assert_eq!(
            why(stack.dir(Path::new("a/file/x")).err().unwrap()),
            (root_path.join("a/file"), NOT_A_DIRECTORY)
        );
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        // A directory swapped for a symlink after it was opened: the held
        // descriptor still names the directory, never the link's target.
        let held = stack
            .dir(Path::new("a/b"))
            .unwrap()
            .try_clone_to_owned()
            .unwrap();
        fs::rename(root_path.join("a/b"), root_path.join("a/moved")).unwrap();
        std::os::unix::fs::symlink(&outside, root_path.join("a/b")).unwrap();
        rustix::fs::mkdirat(&held, "new", Mode::RWXU).unwrap();
        assert!(root_path.join("a/moved/new").is_dir());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        assert!(Root::open(&root_path.join("a/b")).is_err());
    }

    #[test]
    fn without_openat2_the_walk_opens_and_refuses_the_same() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        std::os::unix::fs::symlink("/", tmp.path().join("a/up")).unwrap();
        let root = Root::open(tmp.path()).unwrap();
        // As after an ENOSYS (other tests then walk too, which is as safe).
        NO_OPENAT2.store(true, Ordering::Relaxed);
        assert!(root.open_dir(Path::new("a/b")).is_ok());
        assert!(matches!(
            root.open_dir(Path::new("a/up/etc")),
            Err(BeneathError::Unsafe { why: SYMLINK, .. })
        ));
        NO_OPENAT2.store(false, Ordering::Relaxed);
    }

    #[test]
    fn trees_are_removed_without_following_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir_all(tmp.path().join("root/d/e")).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("precious"), b"keep").unwrap();
        fs::write(tmp.path().join("root/d/e/f"), b"").unwrap();
        std::os::unix::fs::symlink(&outside, tmp.path().join("root/d/link")).unwrap();
        let root = Root::open(&tmp.path().join("root")).unwrap();
        remove_tree_at(root.fd(), OsStr::new("d")).unwrap();
        assert!(!tmp.path().join("root/d").exists());
        assert!(outside.join("precious").exists());
    }
}
