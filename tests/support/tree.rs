//! Trees on disk: one comparison of a copy (extracted, restored) with its
//! source, entry by entry: names, types, modes, sizes, contents, symlink
//! targets and, when asked, modification times.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Compares the entries below two roots (the roots themselves are not
/// compared). Build it, narrow it, then `assert_same()`.
pub struct SameTree {
    source: PathBuf,
    copy: PathBuf,
    left_out: Vec<PathBuf>,
    mtimes: bool,
}

/// `same_tree(source, copy).assert_same()`: the copy holds exactly the source.
pub fn same_tree(source: impl Into<PathBuf>, copy: impl Into<PathBuf>) -> SameTree {
    SameTree {
        source: source.into(),
        copy: copy.into(),
        left_out: Vec::new(),
        mtimes: false,
    }
}

impl SameTree {
    /// This source entry (relative to the source root) is expected to be absent
    /// from the copy, e.g. a socket an archive cannot hold.
    pub fn left_out(mut self, rel: &str) -> Self {
        self.left_out.push(PathBuf::from(rel));
        self
    }

    /// Also compare modification times (whole seconds, as tar stores them).
    pub fn with_mtimes(mut self) -> Self {
        self.mtimes = true;
        self
    }

    #[track_caller]
    pub fn assert_same(&self) {
        let mut expected = snapshot(&self.source, self.mtimes);
        for rel in &self.left_out {
            let before = expected.len();
            expected.retain(|(path, _)| path != rel);
            assert_ne!(
                before,
                expected.len(),
                "{} is not in the source",
                rel.display()
            );
        }
        let actual = snapshot(&self.copy, self.mtimes);
        if expected != actual {
            let only = |a: &[(PathBuf, String)], b: &[(PathBuf, String)]| -> Vec<String> {
                a.iter()
                    .filter(|entry| !b.contains(entry))
                    .map(|(p, what)| format!("{}: {}", p.display(), shorten(what)))
                    .collect()
            };
            panic!(
                "{} is not a copy of {}\n--- source only:\n{:#?}\n--- copy only:\n{:#?}",
                self.copy.display(),
                self.source.display(),
                only(&expected, &actual),
                only(&actual, &expected)
            );
        }
    }
}

fn shorten(what: &str) -> String {
    if what.chars().count() > 200 {
        format!("{}…", what.chars().take(200).collect::<String>())
    } else {
        what.to_string()
    }
}

/// Every entry below `root`, sorted, with what must survive a round trip.
fn snapshot(root: &Path, mtimes: bool) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let ft = meta.file_type();
            let mut what = if ft.is_symlink() {
                format!("link -> {:?}", fs::read_link(&path).unwrap())
            } else if ft.is_dir() {
                stack.push(path.clone());
                format!("dir {:o}", meta.mode() & 0o7777)
            } else if ft.is_file() {
                format!(
                    "file {:o} {} bytes {:?}",
                    meta.mode() & 0o7777,
                    meta.len(),
                    fs::read(&path).unwrap()
                )
            } else {
                // The type bits tell a FIFO from a device.
                format!("special {:o}", meta.mode())
            };
            if mtimes {
                what = format!("mtime {} {what}", meta.mtime());
            }
            out.push((rel, what));
        }
    }
    out.sort();
    out
}
