//! Walking the source tree into a tar stream: entries in sorted order, named
//! from the source's base name (as `tar cf x.tar -C parent base` would name
//! them). Symlinks are stored, never followed; FIFOs and devices are recorded
//! but never opened; sockets are left out. The same walk yields the tree's
//! fingerprint while archiving; `if-changed` takes it from `scan`'s walk,
//! which must give the same value (its test holds it to this one's).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tar::{Builder, EntryType, Header};
use walkdir::{DirEntryExt, WalkDir};

use super::fingerprint::{self, EntryStat, Fingerprint};
use super::owners::OwnerNames;
use super::pax::{PaxRecords, set_name_lossy};
use super::reader::{AbortRequested, ExactSizeReader};
use super::writer::TarSink;
use super::{ArchiveReport, Skipped, sparse, xattrs};
use crate::model::{ExcludePattern, ExcludeRules};

/// What the walk watches while it archives.
#[derive(Clone, Copy)]
pub struct Watch<'a> {
    /// Set from a signal handler to abandon the archive at once.
    pub abort: &'a AtomicBool,
    /// Bytes of file content read so far, for a progress display.
    pub progress: Option<&'a AtomicU64>,
}

/// One step of the sorted walk: an entry with its own (not followed)
/// metadata and, for a symlink, its target; or a path that could not be read.
enum Step {
    Entry {
        path: PathBuf,
        relative: PathBuf,
        metadata: EntryStat,
        target: Option<io::Result<PathBuf>>,
    },
    Unreadable {
        path: PathBuf,
        relative: PathBuf,
        reason: String,
    },
}

/// What the exclusion rules look at in an entry of a walk: a `walkdir`
/// entry (the full walk), or an entry the listing walk read with its
/// metadata already (`listing`).
pub(super) trait Candidate {
    fn path(&self) -> &Path;
    fn file_name(&self) -> &std::ffi::OsStr;
    /// 0 for the walk's root.
    fn depth(&self) -> usize;
    fn ino(&self) -> u64;
    fn is_dir(&self) -> bool;
    fn is_file(&self) -> bool;
    /// Its own (not followed) size and device, when they can be read.
    fn size_and_device(&self) -> Option<(u64, u64)>;
}

impl Candidate for walkdir::DirEntry {
    fn path(&self) -> &Path {
        self.path()
    }
    fn file_name(&self) -> &std::ffi::OsStr {
        self.file_name()
    }
    fn depth(&self) -> usize {
        self.depth()
    }
    fn ino(&self) -> u64 {
        DirEntryExt::ino(self)
    }
    fn is_dir(&self) -> bool {
        self.file_type().is_dir()
    }
    fn is_file(&self) -> bool {
        self.file_type().is_file()
    }
    fn size_and_device(&self) -> Option<(u64, u64)> {
        self.metadata().ok().map(|m| (m.len(), m.dev()))
    }
}

/// What a walk leaves out: backupctl's own files (a source that contains the
/// home must not archive its archives, which would double at every run), and
/// the mount points of pseudo-filesystems (`/proc`, `/sys`, `/dev`, …), which
/// hold no data and never end.
#[derive(Debug, Clone, Default)]
pub struct Exclusions {
    /// Device and inode of each own file or directory.
    own: Vec<(u64, u64)>,
    /// Mount points of pseudo-filesystems, relative to the source.
    pseudo: Vec<PathBuf>,
    /// The schedule's own `exclude*` rules, compiled.
    user: Option<UserRules>,
}

/// Which of a schedule's rules left an entry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExcludedBy {
    /// `exclude=PATTERN`, or a pattern of an `exclude-from` file, as
    /// `PATTERN from exclude-from=FILE`.
    Pattern(String),
    /// Inside a directory tagged with `CACHEDIR.TAG`.
    Caches,
    /// A directory holding an entry of this name.
    IfPresent(String),
    /// Inside a mount point of another filesystem.
    OneFileSystem,
    /// A regular file over the size limit.
    LargerThan,
}

impl std::fmt::Display for ExcludedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExcludedBy::Pattern(label) => f.write_str(label),
            ExcludedBy::Caches => f.write_str("exclude-caches"),
            ExcludedBy::IfPresent(name) => write!(f, "exclude-if-present={name}"),
            ExcludedBy::OneFileSystem => f.write_str("one-file-system"),
            ExcludedBy::LargerThan => f.write_str("exclude-larger-than"),
        }
    }
}

/// Why a schedule's exclude rules could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ExcludeError {
    #[error("cannot read exclude file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "exclude file {}, line {line}: pattern \"{}\" {why}",
        path.display(),
        crate::primitives::quote_at(pattern, 60)
    )]
    Pattern {
        path: PathBuf,
        line: usize,
        pattern: String,
        why: String,
    },
}

/// What was left out of a walk.
#[derive(Debug, Default)]
pub struct LeftOut {
    /// backupctl's own files and pseudo-filesystems.
    pub builtin: Vec<PathBuf>,
    /// Entries the schedule's rules left out (an excluded directory counts
    /// once: nothing under it is looked at).
    pub excluded: u64,
    /// Those entries and the rule, when asked for (`run --dry-run`).
    pub listed: Option<Vec<(PathBuf, ExcludedBy)>>,
}

/// A compiled glob set and, for each of its globs, the rule's label and
/// whether it matches directories only.
#[derive(Debug, Clone, Default)]
struct PatternSet {
    set: globset::GlobSet,
    rules: Vec<(String, bool)>,
}

impl PatternSet {
    fn build(patterns: Vec<(ExcludePattern, String)>) -> Self {
        let mut builder = globset::GlobSetBuilder::new();
        let mut rules = Vec::with_capacity(patterns.len());
        for (pattern, label) in patterns {
            builder.add(pattern.glob);
            rules.push((label, pattern.dirs_only));
        }
        // Each glob compiled alone when parsed; a set of them always builds.
        let set = builder.build().unwrap_or_default();
        Self { set, rules }
    }

    fn matching(&self, candidate: &Path, is_dir: bool) -> Option<ExcludedBy> {
        if self.rules.is_empty() || !self.set.is_match(candidate) {
            return None;
        }
        self.set
            .matches(candidate)
            .into_iter()
            .find(|&i| is_dir || !self.rules[i].1)
            .map(|i| ExcludedBy::Pattern(self.rules[i].0.clone()))
    }
}

/// A schedule's rules, ready for the walk.
#[derive(Debug, Clone, Default)]
struct UserRules {
    /// Patterns without `/`: matched against an entry's name.
    names: PatternSet,
    /// Patterns with `/`: matched against the path from the source root.
    paths: PatternSet,
    caches: bool,
    if_present: Vec<String>,
    /// The source's device, with `one-file-system`.
    root_device: Option<u64>,
    larger_than: Option<u64>,
    /// Directories met in this walk whose contents are left out: cache
    /// directories (all but their tag) and mount points.
    emptied: Emptied,
}

/// The directories a walk noted as emptied. Behind a lock, as the
/// `if-changed` walk lists directories on two threads (`scan`); a copy of
/// the rules starts with the notes of the original.
#[derive(Debug, Default)]
struct Emptied(std::sync::Mutex<HashMap<PathBuf, ExcludedBy>>);

impl Emptied {
    fn notes(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, ExcludedBy>> {
        // The map is whole whenever the lock is released: a panic elsewhere
        // cannot leave it half changed.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clone for Emptied {
    fn clone(&self) -> Self {
        Self(std::sync::Mutex::new(self.notes().clone()))
    }
}

/// The first bytes of a valid `CACHEDIR.TAG` (bford.info/cachedir).
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

impl UserRules {
    fn compile(
        rules: &ExcludeRules,
        source: &Path,
        from_files: &[(String, PathBuf)],
    ) -> Result<Self, ExcludeError> {
        let mut patterns: Vec<(ExcludePattern, String)> = rules
            .patterns
            .iter()
            .map(|p| (p.clone(), format!("exclude={}", p.text)))
            .collect();
        for (typed, path) in from_files {
            patterns.extend(read_exclude_file(typed, path)?);
        }
        let (paths, names) = patterns.into_iter().partition(|(p, _)| p.anchored);
        let root_device = rules
            .one_file_system
            .then(|| std::fs::metadata(source).map(|m| m.dev()).ok())
            .flatten();
        Ok(Self {
            names: PatternSet::build(names),
            paths: PatternSet::build(paths),
            caches: rules.caches,
            if_present: rules.if_present.clone(),
            root_device,
            larger_than: rules.larger_than,
            emptied: Default::default(),
        })
    }

    fn leaves_out(&self, entry: &impl Candidate, relative: &Path) -> Option<ExcludedBy> {
        let emptied = self.emptied.notes();
        if !emptied.is_empty()
            && let Some(by) = entry.path().parent().and_then(|p| emptied.get(p))
            && !(*by == ExcludedBy::Caches && entry.file_name() == "CACHEDIR.TAG")
        {
            return Some(by.clone());
        }
        drop(emptied);
        let is_dir = entry.is_dir();
        let by = self
            .names
            .matching(Path::new(entry.file_name()), is_dir)
            .or_else(|| self.paths.matching(relative, is_dir));
        if by.is_some() {
            return by;
        }
        if is_dir
            && let Some(name) = self
                .if_present
                .iter()
                .find(|name| entry.path().join(name).symlink_metadata().is_ok())
        {
            return Some(ExcludedBy::IfPresent(name.clone()));
        }
        if let Some(limit) = self.larger_than
            && entry.is_file()
            && entry
                .size_and_device()
                .is_some_and(|(size, _)| size > limit)
        {
            return Some(ExcludedBy::LargerThan);
        }
        None
    }

    /// Notes a directory the walk keeps whose contents are left out: a
    /// mount point of another filesystem (kept empty, as GNU tar's
    /// `--one-file-system` keeps it) or a tagged cache directory (kept with
    /// its tag, as GNU tar's `--exclude-caches` keeps it).
    fn note_directory(&self, entry: &impl Candidate) {
        if !entry.is_dir() {
            return;
        }
        let by = if let Some(root) = self.root_device
            && entry.depth() > 0
            && entry
                .size_and_device()
                .is_some_and(|(_, device)| device != root)
        {
            ExcludedBy::OneFileSystem
        } else if self.caches && is_tagged_cache(entry.path()) {
            ExcludedBy::Caches
        } else {
            return;
        };
        self.emptied.notes().insert(entry.path().to_path_buf(), by);
    }
}

/// True when `dir/CACHEDIR.TAG` is a regular file starting with the
/// signature. Opened without following a link or blocking on a FIFO.
fn is_tagged_cache(dir: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(dir.join("CACHEDIR.TAG"))
        .and_then(|mut file| {
            if file.metadata()?.is_file() {
                file.read_exact(&mut head)
            } else {
                Err(io::ErrorKind::InvalidData.into())
            }
        })
        .is_ok_and(|()| head == CACHEDIR_SIGNATURE)
}

/// The patterns of an `exclude-from` file: one a line; blank lines and
/// lines starting with `#` are skipped. Read as a stream.
fn read_exclude_file(
    typed: &str,
    path: &Path,
) -> Result<Vec<(ExcludePattern, String)>, ExcludeError> {
    use std::io::BufRead;
    let read_error = |source| ExcludeError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut patterns = Vec::new();
    let mut reader = io::BufReader::new(file);
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(read_error)? == 0 {
            return Ok(patterns);
        }
        number += 1;
        let bytes = line.strip_suffix(b"\n").unwrap_or(&line);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let bad = |why: String| ExcludeError::Pattern {
            path: path.to_path_buf(),
            line: number,
            pattern: String::from_utf8_lossy(bytes).into_owned(),
            why,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad("is not valid UTF-8".into()))?;
        if text.trim().is_empty() || text.starts_with('#') {
            continue;
        }
        let pattern =
            ExcludePattern::parse(text).map_err(|why| bad(format!("is not valid: {why}")))?;
        patterns.push((pattern, format!("{text} from exclude-from={typed}")));
    }
}

/// Filesystem types that hold no data worth a backup.
const PSEUDO_FILESYSTEMS: [&str; 22] = [
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "mqueue",
    "hugetlbfs",
    "binfmt_misc",
    "autofs",
    "efivarfs",
    "selinuxfs",
    "nsfs",
    "rpc_pipefs",
    "ramfs",
];

impl Exclusions {
    /// The exclusions for a walk of `source`: `own` are paths of backupctl's
    /// files (missing ones are ignored); pseudo-filesystems come from
    /// `/proc/self/mountinfo`.
    pub fn for_source(source: &Path, own: &[PathBuf]) -> Self {
        let own = own
            .iter()
            .filter_map(|path| path.symlink_metadata().ok())
            .map(|m| (m.dev(), m.ino()))
            .collect();
        let pseudo = match source.canonicalize() {
            Ok(root) => pseudo_mounts_under(&root),
            Err(_) => Vec::new(),
        };
        Self {
            own,
            pseudo,
            user: None,
        }
    }

    /// Adds a schedule's rules; `from_files` are its `exclude-from` files,
    /// as typed and resolved. Reads those files now.
    pub fn with_rules(
        mut self,
        rules: &ExcludeRules,
        source: &Path,
        from_files: &[(String, PathBuf)],
    ) -> Result<Self, ExcludeError> {
        if !rules.is_empty() {
            self.user = Some(UserRules::compile(rules, source, from_files)?);
        }
        Ok(self)
    }

    /// True when the schedule has rules of its own.
    pub fn has_rules(&self) -> bool {
        self.user.is_some()
    }

    /// `None` to keep the entry; else whether a built-in exclusion (`None`
    /// inside) or one of the schedule's rules leaves it out.
    fn leaves_out(&self, entry: &impl Candidate, source: &Path) -> Option<Option<ExcludedBy>> {
        if entry.depth() == 0 {
            return None;
        }
        if self.own.iter().any(|&(_, ino)| ino == entry.ino())
            && let Ok(m) = entry.path().symlink_metadata()
            && self.own.contains(&(m.dev(), m.ino()))
        {
            return Some(None);
        }
        // Cheap tests first: this runs for every entry of the walk, and
        // most walks have neither rules nor mounts below their source.
        if self.pseudo.is_empty() && self.user.is_none() {
            return None;
        }
        let relative = entry.path().strip_prefix(source).unwrap_or(entry.path());
        if !self.pseudo.is_empty() && entry.is_dir() && self.pseudo.iter().any(|p| p == relative) {
            return Some(None);
        }
        let user = self.user.as_ref()?;
        user.leaves_out(entry, relative).map(Some)
    }

    /// A walk starts with no directories noted from an earlier one.
    pub(super) fn start_walk(&self) {
        if let Some(user) = &self.user {
            user.emptied.notes().clear();
        }
    }
}

/// Mount points of pseudo-filesystems strictly under `root`, relative to it.
fn pseudo_mounts_under(root: &Path) -> Vec<PathBuf> {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    table
        .lines()
        .filter_map(|line| {
            // ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [OPTIONAL…] - TYPE SOURCE …
            let (left, right) = line.split_once(" - ")?;
            let mount_point = unescape_mount_path(left.split(' ').nth(4)?);
            let fs_type = right.split(' ').next()?;
            PSEUDO_FILESYSTEMS
                .contains(&fs_type)
                .then(|| {
                    Path::new(&mount_point)
                        .strip_prefix(root)
                        .ok()
                        .map(Path::to_path_buf)
                })
                .flatten()
                .filter(|relative| !relative.as_os_str().is_empty())
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\040`-style octal.
fn unescape_mount_path(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = field
                .get(i + 1..i + 4)
                .and_then(|octal| u8::from_str_radix(octal, 8).ok())
        {
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The walk both the archive and the fingerprint are made from, so the two
/// always see the tree the same way. The root itself is followed if it is a
/// symlink; nothing below it is. What `exclude` names is left out, with
/// everything under it; `left_out` collects those paths.
fn walk<'a>(
    source: &'a Path,
    exclude: &'a Exclusions,
    left_out: &'a std::cell::RefCell<LeftOut>,
) -> impl Iterator<Item = Step> + 'a {
    exclude.start_walk();
    let relative_of = move |path: &Path| {
        path.strip_prefix(source)
            .map(Path::to_path_buf)
            .unwrap_or_default()
    };
    WalkDir::new(source)
        .follow_links(false)
        .follow_root_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(move |entry| keeps_entry(exclude, entry, source, left_out))
        .map(move |item| match item {
            Ok(entry) => {
                let metadata = if entry.depth() == 0 {
                    std::fs::metadata(entry.path())
                } else {
                    entry.path().symlink_metadata()
                };
                match metadata.map(|metadata| EntryStat::from(&metadata)) {
                    Ok(metadata) => Step::Entry {
                        relative: relative_of(entry.path()),
                        target: link_target(entry.path(), &metadata),
                        path: entry.into_path(),
                        metadata,
                    },
                    Err(e) => Step::Unreadable {
                        relative: relative_of(entry.path()),
                        reason: reason_for(&e),
                        path: entry.into_path(),
                    },
                }
            }
            Err(error) => {
                let path = error.path().unwrap_or(source).to_path_buf();
                let reason = error
                    .io_error()
                    .map_or_else(|| error.to_string(), reason_for);
                Step::Unreadable {
                    relative: relative_of(&path),
                    path,
                    reason,
                }
            }
        })
}

/// True when the walk keeps `entry`; else notes in `left_out` what left
/// it out. The one filter of every walk, whole-tree or one directory at a
/// time (the incremental walk).
pub(super) fn keeps_entry(
    exclude: &Exclusions,
    entry: &impl Candidate,
    source: &Path,
    left_out: &std::cell::RefCell<LeftOut>,
) -> bool {
    let mut left_out = left_out.borrow_mut();
    match exclude.leaves_out(entry, source) {
        None => {
            if let Some(user) = &exclude.user {
                user.note_directory(entry);
            }
            true
        }
        Some(None) => {
            left_out.builtin.push(entry.path().to_path_buf());
            false
        }
        Some(Some(by)) => {
            left_out.excluded += 1;
            if let Some(listed) = &mut left_out.listed {
                listed.push((entry.path().to_path_buf(), by));
            }
            false
        }
    }
}

/// A symlink's target, read once for both the fingerprint and the archive.
pub(super) fn link_target(path: &Path, metadata: &EntryStat) -> Option<io::Result<PathBuf>> {
    metadata.is_symlink().then(|| std::fs::read_link(path))
}

/// Adds what the fingerprint keeps of one step; the archive and the
/// `if-changed` check both go through here, so they always agree. Paths of
/// an extra source (`also=`) are counted under its top-level name `under`,
/// so that the main source's fingerprint is what it was without them.
fn add_to_fingerprint(fingerprint: &mut Fingerprint, step: &Step, under: Option<&Path>) {
    fn named<'a>(relative: &'a Path, under: Option<&Path>) -> std::borrow::Cow<'a, Path> {
        match under {
            Some(base) => std::borrow::Cow::Owned(base.join(relative)),
            None => std::borrow::Cow::Borrowed(relative),
        }
    }
    match step {
        Step::Entry {
            relative,
            metadata,
            target,
            ..
        } => {
            let target = target.as_ref().and_then(|t| t.as_ref().ok());
            fingerprint.add_entry(
                &named(relative, under),
                metadata,
                target.map(PathBuf::as_path),
            );
        }
        Step::Unreadable { relative, .. } => fingerprint.add_unreadable(&named(relative, under)),
    }
}

/// The fingerprint of several sources, as [`append_tree`] records it for an
/// archive of them all (the first is the main source): what `scan`'s
/// walk must give.
#[cfg(test)]
pub(super) fn fingerprint_sources_walked(sources: &[(&Path, &Exclusions)]) -> String {
    let mut fingerprint = Fingerprint::new();
    let left_out = std::cell::RefCell::new(LeftOut::default());
    for (i, (source, exclude)) in sources.iter().enumerate() {
        let base = base_name(source);
        for step in walk(source, exclude, &left_out) {
            add_to_fingerprint(&mut fingerprint, &step, (i > 0).then_some(base.as_path()));
        }
    }
    fingerprint.finish()
}

/// Every path the full walk meets under `source`, relative to it, in its
/// order, with its metadata (`None`: unreadable): what `scan`'s walk in
/// order must visit.
#[cfg(test)]
pub(super) fn walked_paths(
    source: &Path,
    exclude: &Exclusions,
) -> Vec<(PathBuf, Option<EntryStat>)> {
    let left_out = std::cell::RefCell::new(LeftOut::default());
    walk(source, exclude, &left_out)
        .map(|step| match step {
            Step::Entry {
                relative, metadata, ..
            } => (relative, Some(metadata)),
            Step::Unreadable { relative, .. } => (relative, None),
        })
        .collect()
}

/// The fingerprint of the tree under `source`, from metadata alone. What
/// cannot be read is part of it, so this never fails. `if-changed` takes
/// the same value from the two-thread walk of `scan`.
pub fn fingerprint_tree(source: &Path, exclude: &Exclusions) -> String {
    fingerprint_walk(source, exclude, LeftOut::default()).0
}

/// What the schedule's rules leave out of the tree under `source`, and
/// why: `run --dry-run` lists it.
pub fn list_excluded(source: &Path, exclude: &Exclusions) -> Vec<(PathBuf, ExcludedBy)> {
    let asked = LeftOut {
        listed: Some(Vec::new()),
        ..LeftOut::default()
    };
    fingerprint_walk(source, exclude, asked)
        .1
        .listed
        .unwrap_or_default()
}

/// About how many bytes of file content an archive of `source` reads: the
/// regular files' sizes, a sparse file counting its allocated blocks only.
/// Metadata alone, for a progress bar's total.
pub fn tree_bytes(source: &Path, exclude: &Exclusions) -> u64 {
    let left_out = std::cell::RefCell::new(LeftOut::default());
    walk(source, exclude, &left_out)
        .map(|step| match step {
            Step::Entry { metadata, .. } if metadata.is_file() => {
                metadata.size.min(metadata.blocks.saturating_mul(512))
            }
            _ => 0,
        })
        .sum()
}

pub(super) fn fingerprint_walk(
    source: &Path,
    exclude: &Exclusions,
    left_out: LeftOut,
) -> (String, LeftOut) {
    let mut fingerprint = Fingerprint::new();
    let left_out = std::cell::RefCell::new(left_out);
    for step in walk(source, exclude, &left_out) {
        add_to_fingerprint(&mut fingerprint, &step, None);
    }
    (fingerprint.finish(), left_out.into_inner())
}

/// Appends every entry under `source`, finishes the tar stream and records
/// the tree's fingerprint in `report`.
pub fn append_tree<W: TarSink>(
    builder: &mut Builder<W>,
    job: &super::ArchiveJob<'_>,
    report: &mut ArchiveReport,
) -> io::Result<()> {
    let watch = job.watch;
    let mut fingerprint = Fingerprint::new();
    let left_out = Default::default();
    let mut writer = EntryWriter::new(builder, job);
    let extra = job
        .also
        .iter()
        .map(|(path, exclude)| (path.as_path(), exclude));
    for (i, (source, exclude)) in std::iter::once((job.source, job.exclude))
        .chain(extra)
        .enumerate()
    {
        let base = base_name(source);
        for step in walk(source, exclude, &left_out) {
            if watch.abort.load(Ordering::Relaxed) {
                return Err(AbortRequested::error());
            }
            add_to_fingerprint(&mut fingerprint, &step, (i > 0).then_some(base.as_path()));
            match step {
                Step::Entry {
                    path,
                    relative,
                    metadata,
                    target,
                } => {
                    let name = if relative.as_os_str().is_empty() {
                        base.clone()
                    } else {
                        base.join(&relative)
                    };
                    let entry = Entry {
                        path: &path,
                        name: &name,
                        metadata: &metadata,
                        target,
                        dumpdir: None,
                        attributes: None,
                    };
                    writer.append_entry(entry, report)?;
                }
                Step::Unreadable { path, reason, .. } => {
                    report.skipped.push(Skipped { path, reason });
                }
            }
        }
    }
    report.fingerprint = fingerprint.finish();
    let left_out: LeftOut = left_out.into_inner();
    report.left_out = left_out.builtin;
    report.excluded = left_out.excluded;
    writer.builder.finish()
}

/// An entry on its way into the archive.
pub(super) struct Entry<'a> {
    pub path: &'a Path,
    pub name: &'a Path,
    pub metadata: &'a EntryStat,
    pub target: Option<io::Result<PathBuf>>,
    /// A directory's `GNU.dumpdir` record, in an incremental archive.
    pub dumpdir: Option<&'a [u8]>,
    /// Its extended attributes, if a walk read them already (through its
    /// open descriptor); else they are read by its path.
    pub attributes: Option<&'a io::Result<xattrs::Attributes>>,
}

/// Writes entries as `tar --format=posix --xattrs --acls --sparse` would:
/// ustar headers with owner names, and PAX records for what they cannot
/// hold. Keeps what must be remembered from one entry to the next.
pub(super) struct EntryWriter<'b, 'w, W: TarSink> {
    builder: &'b mut Builder<W>,
    watch: Watch<'w>,
    /// Record extended attributes and ACLs.
    xattrs: bool,
    names: OwnerNames,
    /// For reading extended attributes (see `xattrs::read_open`).
    scratch: Vec<u8>,
    /// The archive name of each file with several links already stored, by
    /// device and inode: later links become hard-link entries naming it.
    links: HashMap<(u64, u64), PathBuf>,
}

impl<'b, 'w, W: TarSink> EntryWriter<'b, 'w, W> {
    pub(super) fn new(builder: &'b mut Builder<W>, job: &super::ArchiveJob<'w>) -> Self {
        EntryWriter {
            builder,
            watch: job.watch,
            xattrs: job.xattrs,
            names: OwnerNames::default(),
            scratch: Vec::new(),
            links: HashMap::new(),
        }
    }

    pub(super) fn append_entry(
        &mut self,
        entry: Entry<'_>,
        report: &mut ArchiveReport,
    ) -> io::Result<()> {
        let kind = entry.metadata;
        if kind.is_socket() {
            report.sockets_ignored += 1;
            return Ok(());
        }
        if self.append_hard_link(&entry)? {
            report.entries += 1;
            return Ok(());
        }
        if kind.is_file() {
            return self.append_file(entry.path, entry.name, report);
        }
        let mut header = header_for(entry.metadata);
        if let Err(reason) = set_device_numbers(&mut header, entry.metadata) {
            report.skipped.push(Skipped {
                path: entry.path.to_path_buf(),
                reason,
            });
            return Ok(());
        }
        let holder = match entry.attributes {
            Some(read) => xattrs::Holder::Read(read),
            None => xattrs::Holder::Path(entry.path),
        };
        let mut records =
            self.records_for(&mut header, (entry.path, holder), entry.metadata, report);
        if let Some(dumpdir) = entry.dumpdir {
            // Last, where GNU tar puts it.
            records.add("GNU.dumpdir", dumpdir);
        }
        let link = match entry.target {
            Some(Ok(target)) => Some(target),
            Some(Err(e)) => {
                report.skipped.push(skipped(entry.path, &e));
                return Ok(());
            }
            None => None,
        };
        if let Some(target) = &link {
            set_link_name(&mut header, target, &mut records);
        }
        let name = if kind.is_dir() {
            // Directories are named `dir/`, as GNU tar names them.
            let mut name = entry.name.as_os_str().to_os_string();
            name.push("/");
            PathBuf::from(name)
        } else {
            entry.name.to_path_buf()
        };
        set_path(&mut header, &name, &mut records);
        self.write(&mut header, &name, &records, io::empty())?;
        self.remember_links(entry.metadata, entry.name);
        report.entries += 1;
        Ok(())
    }

    /// A later name of a file already stored: a hard-link entry naming the
    /// first. Returns whether it wrote one.
    fn append_hard_link(&mut self, entry: &Entry<'_>) -> io::Result<bool> {
        let m = entry.metadata;
        if m.is_dir() || m.nlink < 2 {
            return Ok(false);
        }
        let Some(first) = self.links.get(&(m.dev, m.ino)).cloned() else {
            return Ok(false);
        };
        let mut header = header_for(m);
        header.set_entry_type(EntryType::Link);
        header.set_size(0);
        let mut records = PaxRecords::default();
        self.add_owner_and_time(&mut header, m, &mut records);
        set_link_name(&mut header, &first, &mut records);
        set_path(&mut header, entry.name, &mut records);
        self.write(&mut header, entry.name, &records, io::empty())?;
        Ok(true)
    }

    fn remember_links(&mut self, m: &EntryStat, name: &Path) {
        if !m.is_dir() && m.nlink > 1 {
            self.links.insert((m.dev, m.ino), name.to_path_buf());
        }
    }

    /// Opens without following a symlink and without blocking (a FIFO
    /// swapped in after the walk looked must not hang the backup), then
    /// archives what the opened descriptor says it is; sparse files with
    /// their holes left out.
    fn append_file(
        &mut self,
        path: &Path,
        name: &Path,
        report: &mut ArchiveReport,
    ) -> io::Result<()> {
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
            .open(path)
            .and_then(|file| file.metadata().map(|m| (file, m)));
        let (file, metadata) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                report.skipped.push(skipped(path, &e));
                return Ok(());
            }
        };
        if !metadata.is_file() {
            report.skipped.push(Skipped {
                path: path.to_path_buf(),
                reason: "changed type while the backup ran".to_string(),
            });
            return Ok(());
        }
        let stat = EntryStat::from(&metadata);
        let mut header = header_for(&stat);
        let holder = xattrs::Holder::File(&file);
        let segments = sparse::data_segments(&file, metadata.len(), metadata.blocks());
        // GNU tar's order: the sparse records first, then the others.
        let mut records = PaxRecords::default();
        let problem = match segments {
            Some(segments) => {
                records.add_str("GNU.sparse.major", "1");
                records.add_str("GNU.sparse.minor", "0");
                records.add("GNU.sparse.name", name.as_os_str().as_bytes());
                records.add_str("GNU.sparse.realsize", &metadata.len().to_string());
                records.append(self.records_for(&mut header, (path, holder), &stat, report));
                let stored = sparse::stored_size(&segments);
                set_size(&mut header, stored, &mut records);
                // The name GNU tar gives the entry itself; readers that do not
                // know the format extract the map and data under it.
                let header_name = sparse_header_name(name);
                if header.set_path(&header_name).is_err() {
                    set_name_lossy(&mut header, header_name.as_os_str().as_bytes());
                }
                let data: u64 = segments.iter().map(|s| s.length).sum();
                let reader = sparse::SparseReader::new(file, segments);
                let (reader, problem) =
                    self.write_counted(&mut header, name, &records, reader, stored)?;
                report.bytes_read += data;
                problem.or_else(|| {
                    reader.came_up_short().then(|| {
                        "shrank while being read; the missing data is zero-filled".to_string()
                    })
                })
            }
            None => {
                records.append(self.records_for(&mut header, (path, holder), &stat, report));
                set_size(&mut header, metadata.len(), &mut records);
                set_path(&mut header, name, &mut records);
                report.bytes_read += metadata.len();
                self.write_counted(&mut header, name, &records, file, metadata.len())?
                    .1
            }
        };
        self.remember_links(&stat, name);
        report.entries += 1;
        report.files += 1;
        if let Some(reason) = problem {
            report.skipped.push(Skipped {
                path: path.to_path_buf(),
                reason,
            });
        }
        Ok(())
    }

    /// Writes exactly `size` bytes of `data` (see [`ExactSizeReader`]),
    /// counting progress; returns the reader and what went wrong reading.
    fn write_counted<R: io::Read>(
        &mut self,
        header: &mut Header,
        name: &Path,
        records: &PaxRecords,
        data: R,
        size: u64,
    ) -> io::Result<(R, Option<String>)> {
        let mut reader = ExactSizeReader::new(data, size, self.watch.abort);
        if let Some(progress) = self.watch.progress {
            reader = reader.counting_into(progress);
        }
        self.write(header, name, records, &mut reader)?;
        Ok(reader.into_parts())
    }

    /// The PAX header (when there are records), then the entry.
    fn write(
        &mut self,
        header: &mut Header,
        name: &Path,
        records: &PaxRecords,
        mut data: impl io::Read,
    ) -> io::Result<()> {
        records.append_to(self.builder, name, header.mtime().unwrap_or(0))?;
        header.set_cksum();
        // As `Builder::append` writes an entry, but with the data read
        // straight into the stream's block.
        let out = self.builder.get_mut();
        out.write_all(header.as_bytes())?;
        let len = out.copy_from(&mut data)?;
        let padding = (512 - len % 512) % 512;
        out.write_all(&[0; 512][..padding as usize])
    }

    /// Owner names, sub-second time, and (when kept) xattrs and ACLs.
    fn records_for(
        &mut self,
        header: &mut Header,
        (path, holder): (&Path, xattrs::Holder<'_>),
        metadata: &EntryStat,
        report: &mut ArchiveReport,
    ) -> PaxRecords {
        let mut records = PaxRecords::default();
        self.add_owner_and_time(header, metadata, &mut records);
        if self.xattrs
            && let Err(e) =
                xattrs::add_records((holder, &mut self.scratch), &mut self.names, &mut records)
        {
            report.skipped.push(Skipped {
                path: path.to_path_buf(),
                reason: format!("extended attributes not read: {e}"),
            });
        }
        records
    }

    /// Owner names into `header`, and PAX records for what it cannot hold:
    /// long names, large ids, sub-second or out-of-range times.
    fn add_owner_and_time(
        &mut self,
        header: &mut Header,
        metadata: &EntryStat,
        records: &mut PaxRecords,
    ) {
        set_owner_names(header, metadata, &mut self.names, records);
        const OCTAL_ID_MAX: u32 = 0o7777777;
        if metadata.uid > OCTAL_ID_MAX {
            records.add_str("uid", &metadata.uid.to_string());
        }
        if metadata.gid > OCTAL_ID_MAX {
            records.add_str("gid", &metadata.gid.to_string());
        }
        let (seconds, nanoseconds) = (metadata.mtime, metadata.mtime_nsec);
        if nanoseconds != 0 || !(0..=0o77777777777).contains(&seconds) {
            records.add_time("mtime", seconds, nanoseconds);
        }
    }
}

fn set_owner_names(
    header: &mut Header,
    metadata: &EntryStat,
    names: &mut OwnerNames,
    records: &mut PaxRecords,
) {
    if let Some(user) = names.user(metadata.uid)
        && header.set_username(user).is_err()
    {
        records.add_str("uname", user);
    }
    if let Some(group) = names.group(metadata.gid)
        && header.set_groupname(group).is_err()
    {
        records.add_str("gname", group);
    }
}

/// The header's name, or a `path` record when it does not fit ustar's
/// 100 + 155 bytes.
fn set_path(header: &mut Header, name: &Path, records: &mut PaxRecords) {
    if header.set_path(name).is_err() {
        let bytes = name.as_os_str().as_bytes();
        records.add("path", bytes);
        set_name_lossy(header, bytes);
    }
}

/// The link target, or a `linkpath` record when it is over 100 bytes.
fn set_link_name(header: &mut Header, target: &Path, records: &mut PaxRecords) {
    if header.set_link_name(target).is_err() {
        records.add("linkpath", target.as_os_str().as_bytes());
    }
}

/// The size, with a `size` record past the 8 GiB an octal field holds.
fn set_size(header: &mut Header, size: u64, records: &mut PaxRecords) {
    header.set_size(size);
    if size > 0o77777777777 {
        records.add_str("size", &size.to_string());
    }
}

/// `DIR/GNUSparseFile.0/NAME`, GNU tar's `%d/GNUSparseFile.%p/%f` with a
/// fixed number where it puts its process id, so archives stay reproducible.
fn sparse_header_name(name: &Path) -> PathBuf {
    let base = name.file_name().unwrap_or_default();
    match name.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir.join("GNUSparseFile.0").join(base),
        None => Path::new("GNUSparseFile.0").join(base),
    }
}

/// A ustar header (the POSIX format GNU tar writes with `--format=posix`)
/// with the entry's type, mode, ids, size and whole-second mtime; owner
/// names and PAX records are the writer's.
/// A ustar header as the tar crate's `HeaderMode::Complete` fills one from
/// `std`'s metadata, byte for byte (whole mode, owner ids, mtime in
/// seconds, the entry type, device numbers 0), with no size but a regular
/// file's.
fn header_for(metadata: &EntryStat) -> Header {
    let mut header = Header::new_ustar();
    header.set_mtime(metadata.mtime as u64);
    header.set_uid(u64::from(metadata.uid));
    header.set_gid(u64::from(metadata.gid));
    header.set_mode(metadata.mode);
    header.set_size(if metadata.is_file() { metadata.size } else { 0 });
    header.set_entry_type(match fingerprint::kind_letter(metadata.mode) {
        Some(b'f') => EntryType::Regular,
        Some(b'l') => EntryType::Symlink,
        Some(b'c') => EntryType::Char,
        Some(b'b') => EntryType::Block,
        Some(b'd') => EntryType::Directory,
        Some(b'p') => EntryType::Fifo,
        _ => EntryType::new(b' '),
    });
    // Written as zeros, not left empty: a ustar header always has them.
    let zeroed = header.set_device_major(0).and(header.set_device_minor(0));
    debug_assert!(zeroed.is_ok(), "a ustar header has device fields");
    header
}

/// A character or block device's numbers, which the tar crate leaves at
/// 0,0: without them a restored `/dev`-like tree holds the wrong devices.
fn set_device_numbers(header: &mut Header, metadata: &EntryStat) -> Result<(), String> {
    if !metadata.is_device() {
        return Ok(());
    }
    let rdev = metadata.rdev;
    let too_large = || format!("device number {rdev:#x} does not fit a tar header");
    // The header's fields hold seven octal digits.
    let field = |n: u64| u32::try_from(n).ok().filter(|&n| n <= 0o7777777);
    let major = field(nix::sys::stat::major(rdev)).ok_or_else(too_large)?;
    let minor = field(nix::sys::stat::minor(rdev)).ok_or_else(too_large)?;
    let set = header
        .set_device_major(major)
        .and_then(|()| header.set_device_minor(minor));
    set.map_err(|e| e.to_string())
}

pub(super) fn skipped(path: &Path, error: &io::Error) -> Skipped {
    Skipped {
        path: path.to_path_buf(),
        reason: reason_for(error),
    }
}

pub(super) fn reason_for(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "vanished while the backup ran".to_string(),
        _ => error.to_string(),
    }
}

/// The name the tree is stored under: the source's own last component, or the
/// real directory's name for paths such as `.` that have none.
pub fn base_name(source: &Path) -> PathBuf {
    let named = source
        .file_name()
        .filter(|n| *n != "." && *n != "..")
        .map(PathBuf::from);
    named
        .or_else(|| {
            std::fs::canonicalize(source)
                .ok()
                .and_then(|p| p.file_name().map(PathBuf::from))
        })
        .unwrap_or_else(|| PathBuf::from("root"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names_come_from_the_path_as_given() {
        assert_eq!(base_name(Path::new("/srv/data")), PathBuf::from("data"));
        assert_eq!(base_name(Path::new("test/")), PathBuf::from("test"));
        assert_eq!(base_name(Path::new("/")), PathBuf::from("root"));
    }

    #[test]
    fn a_walk_from_the_root_leaves_pseudo_filesystems_out() {
        // This machine's own mount table: /proc is procfs wherever tests run.
        let pseudo = pseudo_mounts_under(Path::new("/"));
        assert!(pseudo.contains(&PathBuf::from("proc")), "{pseudo:?}");
        assert!(!pseudo.iter().any(|p| p.as_os_str().is_empty()));
        // Nothing of it lies under an ordinary directory.
        let dir = tempfile::tempdir().unwrap();
        assert!(pseudo_mounts_under(dir.path()).is_empty());
        assert_eq!(unescape_mount_path(r"/mnt/a\040b"), "/mnt/a b");
    }
}
