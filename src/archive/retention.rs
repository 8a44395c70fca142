//! Retention: which of a schedule's timestamped archives to keep. The rules
//! combine like restic's `forget` (an archive kept by any rule is kept), with
//! safety rules on top: the newest archive is never deleted, `min-keep` always
//! holds, and age is counted from the newest archive, not from now.
//!
//! (Interface fixed; the selection is filled in by the retention work.)

use std::io;
use std::path::PathBuf;

use chrono::NaiveDateTime;

use crate::store::options::Retention;

/// The verdict on one archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub path: PathBuf,
    pub stamp: NaiveDateTime,
    pub keep: bool,
    /// The rules that keep it (`keep-last`, `keep-daily`, `newest`, …); empty
    /// when it is to be deleted.
    pub reasons: Vec<String>,
}

/// Decides for each archive (any order) whether `rules` keep it.
pub fn plan(archives: &[(PathBuf, NaiveDateTime)], rules: &Retention) -> Vec<Decision> {
    let _ = rules;
    archives
        .iter()
        .map(|(path, stamp)| Decision {
            path: path.clone(),
            stamp: *stamp,
            keep: true,
            reasons: vec!["not yet implemented".to_string()],
        })
        .collect()
}

/// Deletes the archives `plan` did not keep, with their manifests.
pub fn apply(decisions: &[Decision]) -> io::Result<Vec<PathBuf>> {
    let _ = decisions;
    Ok(Vec::new())
}
