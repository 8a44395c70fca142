//! Which entries a restore of chosen paths or patterns writes. An entry is
//! chosen when it, or a directory above it, is one of the PATHs or matches
//! an `--include` pattern. Patterns read as the `exclude=` ones do
//! (`model::ExcludePattern`): without a `/` a pattern matches a name at any
//! depth, with one it is anchored at the archive's root (the paths
//! `contents` prints, e.g. `src/etc/*.conf`), `**` crosses directories and a
//! trailing `/` matches directories only.

use std::path::{Path, PathBuf};

use crate::model::ExcludePattern;

/// The PATHs and patterns of one restore; empty means everything.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    paths: Vec<PathBuf>,
    patterns: Vec<(ExcludePattern, globset::GlobMatcher)>,
    /// Matching nothing is no error (each archive of a chain holds only
    /// part of the tree).
    lenient: bool,
}

impl Selection {
    /// PATHs as `contents` prints them (a leading `./` or `/` and a trailing
    /// `/` are ignored), and compiled patterns.
    pub fn new(paths: &[PathBuf], patterns: Vec<ExcludePattern>) -> Self {
        let paths = paths
            .iter()
            .map(|p| {
                p.components()
                    .filter(|c| matches!(c, std::path::Component::Normal(_)))
                    .collect()
            })
            .collect();
        let patterns = patterns
            .into_iter()
            .map(|p| {
                let matcher = p.glob.compile_matcher();
                (p, matcher)
            })
            .collect();
        Self {
            paths,
            patterns,
            lenient: false,
        }
    }

    /// The same choice, for one archive of a chain: a PATH or pattern may
    /// match nothing in it.
    pub fn lenient(&self) -> Self {
        Self {
            lenient: true,
            ..self.clone()
        }
    }

    pub fn is_everything(&self) -> bool {
        self.paths.is_empty() && self.patterns.is_empty()
    }

    /// Whether the entry at `relative` (a directory when `is_dir`) is chosen.
    pub fn selects(&self, relative: &Path, is_dir: bool) -> bool {
        self.is_everything() || self.chosen_by(relative, is_dir).is_some()
    }

    /// The index of the PATH or pattern (PATHs first) that chooses `relative`.
    fn chosen_by(&self, relative: &Path, is_dir: bool) -> Option<usize> {
        if let Some(i) = self.paths.iter().position(|p| relative.starts_with(p)) {
            return Some(i);
        }
        // `relative` itself, then each directory above it.
        let mut candidate = Some(relative);
        let mut candidate_is_dir = is_dir;
        while let Some(path) = candidate.filter(|p| !p.as_os_str().is_empty()) {
            let name = path.file_name().map(Path::new);
            let found = self.patterns.iter().position(|(pattern, matcher)| {
                let subject = if pattern.anchored { Some(path) } else { name };
                (candidate_is_dir || !pattern.dirs_only)
                    && subject.is_some_and(|s| matcher.is_match(s))
            });
            if let Some(i) = found {
                return Some(self.paths.len() + i);
            }
            candidate = path.parent();
            candidate_is_dir = true;
        }
        None
    }

    /// The PATHs and patterns, as typed, that none of `chosen` (the entries
    /// of an archive, with whether each is a directory) matches.
    pub fn unmatched<'a>(&self, entries: impl Iterator<Item = (&'a Path, bool)>) -> Vec<String> {
        if self.lenient {
            return Vec::new();
        }
        let mut used = vec![false; self.paths.len() + self.patterns.len()];
        for (path, is_dir) in entries {
            if let Some(i) = self.chosen_by(path, is_dir) {
                used[i] = true;
            }
        }
        let names = self
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .chain(self.patterns.iter().map(|(p, _)| p.text.clone()));
        names
            .zip(used)
            .filter(|(_, used)| !used)
            .map(|(name, _)| name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(paths: &[&str], patterns: &[&str]) -> Selection {
        Selection::new(
            &paths.iter().map(PathBuf::from).collect::<Vec<_>>(),
            patterns
                .iter()
                .map(|p| ExcludePattern::parse(p).unwrap())
                .collect(),
        )
    }

    #[test]
    fn paths_choose_themselves_and_what_is_under_them() {
        let s = selection(&["./src/etc/", "/src/a.txt"], &[]);
        assert!(s.selects(Path::new("src/etc"), true));
        assert!(s.selects(Path::new("src/etc/passwd"), false));
        assert!(s.selects(Path::new("src/a.txt"), false));
        assert!(!s.selects(Path::new("src/etcetera"), false));
        assert!(!s.selects(Path::new("src"), true));
    }

    #[test]
    fn patterns_read_as_excludes_do() {
        let s = selection(&[], &["*.conf", "src/www/**/*.php", "cache/"]);
        assert!(s.selects(Path::new("src/etc/nginx/site.conf"), false));
        assert!(s.selects(Path::new("src/www/a/b/index.php"), false));
        assert!(!s.selects(Path::new("other/www/index.php"), false));
        assert!(
            s.selects(Path::new("src/cache/x"), false),
            "under a chosen directory"
        );
        assert!(
            !s.selects(Path::new("src/cache"), false),
            "a file named cache"
        );
        assert!(selection(&[], &[]).selects(Path::new("anything"), false));
    }

    #[test]
    fn what_matched_nothing_is_named() {
        let s = selection(&["src/a"], &["*.x", "*.y"]);
        let entries = [(Path::new("src/a"), false), (Path::new("src/b.x"), false)];
        assert_eq!(s.unmatched(entries.into_iter()), ["*.y"]);
    }
}
