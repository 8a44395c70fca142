//! An I/O failure on a named path, shared by every module's error enum: what
//! was being done, to which file, and the system's reason, read as one
//! sentence once the printer adds the cause from `source()`: `cannot read
//! schedule file backup_schedules.txt: permission denied`.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}", path.display())]
pub struct FileError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl FileError {
    pub fn new(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self {
            action,
            path: path.into(),
            source,
        }
    }

    /// For `map_err`: `.map_err(FileError::on("read", &path))`.
    pub fn on(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self + use<> {
        let path = path.to_path_buf();
        move |source| Self::new(action, path, source)
    }
}
