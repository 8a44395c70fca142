//! An incremental schedule's chain: what the next run builds on. A run is
//! level 0 (a full archive) when it starts a chain, every `full-every`
//! runs, or when the newest archive cannot serve as a parent (no chain
//! record, another source, its file state missing or not matching its
//! manifest); else it stores what changed since the newest archive.
//!
//! Retention is chain-aware through [`keep_parents`]: the keep rules
//! (`retention`) judge archives one by one; an archive they delete is kept
//! after all when a kept archive depends on it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::history::History;
use super::retention::Decision;
use crate::archive::incremental;
use crate::archive::manifest::{self, ChainLink, Contents, Parent};
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

/// The parent of each of `decisions`' archives that has one, read from
/// their manifests (an archive without a readable manifest has none).
pub fn parents_of(decisions: &[Decision]) -> HashMap<PathBuf, PathBuf> {
    decisions
        .iter()
        .filter_map(|d| {
            let manifest = manifest::read_manifest(&d.path).ok()?;
            let parent = manifest.chain?.parent?;
            Some((d.path.clone(), d.path.with_file_name(parent.archive)))
        })
        .collect()
}

/// Keeps every archive that a kept archive depends on, up its chain, with
/// the reason `parent of NAME`: a kept incremental is useless without
/// them. Only ever turns a deletion into a keep.
pub fn keep_parents(decisions: &mut [Decision], parents: &HashMap<PathBuf, PathBuf>) {
    let index: HashMap<PathBuf, usize> = decisions
        .iter()
        .enumerate()
        .map(|(i, d)| (d.path.clone(), i))
        .collect();
    let mut kept: Vec<usize> = (0..decisions.len())
        .filter(|&i| decisions[i].keep)
        .collect();
    while let Some(child) = kept.pop() {
        let Some(&parent) = parents
            .get(&decisions[child].path)
            .and_then(|p| index.get(p))
        else {
            continue;
        };
        if decisions[parent].keep {
            continue;
        }
        let name = decisions[child]
            .path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        decisions[parent].keep = true;
        decisions[parent].reasons.push(format!("parent of {name}"));
        kept.push(parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDateTime;
    use proptest::prelude::*;

    fn decision(i: usize, keep: bool) -> Decision {
        Decision {
            path: PathBuf::from(format!("/b/s_{i:03}.tar")),
            stamp: NaiveDateTime::default(),
            keep,
            reasons: if keep {
                vec!["keep-last".into()]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn a_kept_incremental_keeps_its_whole_chain_and_says_why() {
        let mut decisions: Vec<Decision> = (0..4).map(|i| decision(i, i == 2)).collect();
        let parents: HashMap<PathBuf, PathBuf> = (1..4)
            .map(|i| (decision(i, false).path, decision(i - 1, false).path))
            .collect();
        keep_parents(&mut decisions, &parents);
        let kept: Vec<bool> = decisions.iter().map(|d| d.keep).collect();
        assert_eq!(kept, [true, true, true, false]);
        assert_eq!(decisions[0].reasons, ["parent of s_001.tar"]);
        assert_eq!(decisions[1].reasons, ["parent of s_002.tar"]);
        assert_eq!(decisions[2].reasons, ["keep-last"]);
    }

    proptest! {
        /// Over generated chains (each archive a full one or the child of
        /// the one before) and any verdict of the rules: no kept archive
        /// loses a parent, nothing the rules kept is deleted, and what is
        /// added is kept only as a parent.
        #[test]
        fn no_kept_archive_ever_loses_a_parent(
            archives in proptest::collection::vec((any::<bool>(), any::<bool>()), 1..40),
        ) {
            let mut decisions: Vec<Decision> = archives
                .iter()
                .enumerate()
                .map(|(i, &(_, keep))| decision(i, keep))
                .collect();
            let before = decisions.clone();
            let parents: HashMap<PathBuf, PathBuf> = archives
                .iter()
                .enumerate()
                .filter(|&(i, &(full, _))| i > 0 && !full)
                .map(|(i, _)| (decisions[i].path.clone(), decisions[i - 1].path.clone()))
                .collect();
            keep_parents(&mut decisions, &parents);
            for d in &decisions {
                if d.keep && let Some(parent) = parents.get(&d.path) {
                    let parent = decisions.iter().find(|p| &p.path == parent).unwrap();
                    prop_assert!(parent.keep, "{} lost its parent", d.path.display());
                }
            }
            for (old, new) in before.iter().zip(&decisions) {
                if old.keep {
                    prop_assert_eq!(old, new);
                } else if new.keep {
                    prop_assert_eq!(new.reasons.len(), 1);
                    prop_assert!(new.reasons[0].starts_with("parent of "));
                }
            }
        }
    }
}
