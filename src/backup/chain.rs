//! An incremental schedule's chain: what the next run builds on. A run is
//! level 0 (a full archive) when it starts a chain, every `full-every`
//! runs, or when the newest archive cannot serve as a parent (no chain
//! record, another source, its file state missing or not matching its
//! manifest); else it stores what changed since the newest archive.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::history::History;
use crate::archive::incremental;
use crate::archive::manifest::{ChainLink, Contents, Parent};
use crate::store::Schedule;

/// What the next run of an incremental schedule writes.
#[derive(Debug)]
pub struct NextLink {
    pub level: u32,
    pub parent: Option<Parent>,
    /// The parent's file state, checked against its manifest.
    pub parent_state: Option<PathBuf>,
    /// Paths the parent's run skipped: stored whatever their metadata says.
    pub forced: HashSet<PathBuf>,
}

impl NextLink {
    fn full() -> Self {
        Self {
            level: 0,
            parent: None,
            parent_state: None,
            forced: HashSet::new(),
        }
    }

    /// The manifest's record of the archive written from this link.
    pub fn record(&self, files: Contents) -> ChainLink {
        ChainLink {
            level: self.level,
            parent: self.parent.clone(),
            files,
        }
    }
}

/// The next link of `schedule`'s chain; `None` when the schedule is not
/// incremental or its source is not a directory (a single file has nothing
/// to leave out: it is archived whole).
pub fn next_link(history: &History, schedule: &Schedule, source: &Path) -> Option<NextLink> {
    let length = schedule.options.chain_length()?;
    if !std::fs::metadata(source).is_ok_and(|m| m.is_dir()) {
        return None;
    }
    let Some((newest, manifest)) = history.newest_current() else {
        return Some(NextLink::full());
    };
    let Some(link) = &manifest.chain else {
        return Some(NextLink::full());
    };
    if manifest.source != schedule.source || link.level + 1 >= length {
        return Some(NextLink::full());
    }
    let state = incremental::state_path(&newest.path);
    let matches = incremental::hash_file(&state)
        .is_ok_and(|s| s.size == link.files.archive_size && s.sha256 == link.files.sha256);
    if !matches || newest.size != manifest.archive_size {
        log::warn!(
            "{}: the file state of {} is missing or does not match its manifest; this run writes a full archive",
            schedule.name,
            newest.name()
        );
        return Some(NextLink::full());
    }
    Some(NextLink {
        level: link.level + 1,
        parent: Some(Parent {
            archive: manifest.archive.clone(),
            sha256: manifest.sha256.clone(),
        }),
        parent_state: Some(state),
        forced: manifest
            .skipped
            .iter()
            .map(|s| PathBuf::from(&s.path))
            .collect(),
    })
}
