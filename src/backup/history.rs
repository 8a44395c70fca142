//! A schedule's history: the one type that knows which archives in `backups/`
//! are a schedule's, which is the newest, what the next run's archive is
//! called, where their manifests are, and what retention deletes.
//!
//! File names: a schedule without retention keeps one archive, `<name>.<ext>`
//! (the original `backups/backup_test.tar`), replaced at each run. With
//! retention it keeps one per run, `<name>_YYYYMMDD_HHMMSS.<ext>`, stamped in
//! local time. The suffix pattern is fixed, so a schedule's archives are told
//! apart from every other schedule's even when one name is a prefix of
//! another (`a` and `a_1`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};

use super::retention::{self, Decision, PlanContext};
use crate::archive::manifest::{self, Manifest};
use crate::clock;
use crate::home::Home;
use crate::model::{Format, Retention};
use crate::primitives;
use crate::store::Schedule;

const STAMP: &str = "%Y%m%d_%H%M%S";

/// How far past its own second a history run looks for a free name.
const MAX_STAMP_SHIFT: i64 = 3600;

/// An archive of a schedule, found in `backups/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveFile {
    pub path: PathBuf,
    pub format: Format,
    /// The run's local time for history archives; `None` for `<name>.<ext>`.
    pub stamp: Option<NaiveDateTime>,
    /// When the file was last written.
    pub modified: SystemTime,
    pub size: u64,
    /// Encrypted with age (`NAME.EXT.age`).
    pub encrypted: bool,
}

impl ArchiveFile {
    /// When the archive was taken: its stamp, or else its modification time,
    /// as a local wall-clock time. The one order of "newest".
    fn taken(&self) -> NaiveDateTime {
        self.stamp
            .unwrap_or_else(|| clock::to_local(self.modified.into()).naive_local())
    }

    /// The file name, without the directory.
    pub fn name(&self) -> String {
        file_name(&self.path)
    }
}

/// The archive a run writes, and its stamp when the schedule keeps history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextArchive {
    pub path: PathBuf,
    pub stamp: Option<NaiveDateTime>,
}

/// No free archive name near the run's time (an hour of names all taken).
#[derive(Debug, thiserror::Error)]
#[error("no free archive name near {stamp} in {}", dir.display())]
pub struct NoFreeName {
    pub dir: PathBuf,
    pub stamp: NaiveDateTime,
}

/// One schedule's archives in `backups/`.
#[derive(Debug, Clone)]
pub struct History {
    dir: PathBuf,
    name: String,
    format: Format,
    retention: Retention,
    /// New archives are encrypted (`encrypt-to`): named `NAME.EXT.age`.
    encrypted: bool,
}

impl History {
    pub fn of(home: &Home, schedule: &Schedule) -> Self {
        Self {
            dir: home.backups_dir(),
            name: schedule.name.clone(),
            format: schedule.options.format,
            retention: schedule.options.retention.clone(),
            encrypted: schedule.options.encrypts(),
        }
    }

    /// The archives named for `name`, a schedule that may no longer exist
    /// (`verify` of a deleted schedule's archives): listing only.
    pub fn named(home: &Home, name: &str) -> Self {
        Self {
            dir: home.backups_dir(),
            name: name.to_string(),
            format: Format::default(),
            retention: Retention::default(),
            encrypted: false,
        }
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True when each run keeps its own stamped archive.
    pub fn keeps_history(&self) -> bool {
        self.retention.is_set()
    }

    /// The name the run's temporary files are made from: a run writes
    /// `.NAME.RANDOM.partial` ([`primitives::create_temporary`]), so two
    /// schedules, or two attempts, never share one.
    pub fn temp_base(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Removes what a killed run of this schedule left behind: its partial
    /// archives, temporary manifests, and manifests whose archive never got
    /// published. Call only under the schedule's lock. Returns what went.
    pub fn clear_leftovers(&self) -> io::Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.file_type()?.is_file() || !self.is_leftover(&name) {
                continue;
            }
            let path = entry.path();
            match fs::remove_file(&path) {
                Ok(()) => removed.push(path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// Removes the temporary progress files a killed run left (see
    /// `progress.rs`). Separate from [`History::clear_leftovers`] because the
    /// running job publishes progress from another thread while the archive
    /// is written: call it under the lock, before that publishing starts.
    pub fn clear_progress_leftovers(&self) {
        let progress = format!(".{}.progress", self.name);
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if primitives::is_temporary_of(&name, &progress, "tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    fn is_leftover(&self, name: &str) -> bool {
        if primitives::is_temporary_of(name, &self.name, "partial") {
            return true;
        }
        // `.ARCHIVE.json.RANDOM.tmp`: a manifest being written.
        let manifest_of_ours = |manifest_name: &str| {
            manifest_name
                .strip_suffix(".json")
                .is_some_and(|archive| parse_for_schedule(archive, &self.name).is_some())
        };
        if let Some(target) = temporary_target(name, "tmp")
            && manifest_of_ours(target)
        {
            return true;
        }
        // A file state of ours whose archive is missing (see
        // `chain`): moved in place before the archive, which never came.
        if let Some(archive) = name.strip_suffix(".files")
            && parse_for_schedule(archive, &self.name).is_some()
        {
            return self.dir.join(archive).symlink_metadata().is_err();
        }
        // A manifest of ours whose archive is missing: written before the
        // archive's rename, which never came.
        manifest_of_ours(name) && {
            let archive = self.dir.join(name.trim_end_matches(".json"));
            archive.symlink_metadata().is_err()
                && manifest::read_manifest(&archive).is_ok_and(|m| m.schedule == self.name)
        }
    }

    /// The progress a run of the schedule publishes (`progress.rs`).
    pub fn progress_path(&self) -> PathBuf {
        self.dir.join(format!(".{}.progress", self.name))
    }

    /// The lock every run, hook and prune of the schedule holds.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(format!(".{}.lock", self.name))
    }

    /// The archives named like this schedule's, any format and naming mode,
    /// oldest first, whoever wrote them (`verify NAME` checks them all).
    pub fn list(&self) -> io::Result<Vec<ArchiveFile>> {
        let mut found = Vec::new();
        for name in archive_names(&self.dir)? {
            let Some((format, stamp)) = parse_for_schedule(&name, &self.name) else {
                continue;
            };
            let path = self.dir.join(&name);
            let metadata = match fs::metadata(&path) {
                Ok(metadata) => metadata,
                // Pruned or replaced since the directory was read.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            found.push(ArchiveFile {
                path,
                format,
                stamp,
                modified: metadata.modified()?,
                size: metadata.len(),
                encrypted: crate::model::is_encrypted_name(&name),
            });
        }
        found.sort_by(|a, b| a.taken().cmp(&b.taken()).then_with(|| a.path.cmp(&b.path)));
        Ok(found)
    }

    /// The schedule's own archives: named like its archives AND with a
    /// manifest that records this schedule and this file name. A file that
    /// only looks like one (another schedule's, copied in, or without a
    /// manifest) is never counted, never the newest and never pruned.
    pub fn owned(&self) -> io::Result<Vec<ArchiveFile>> {
        let mut owned = self.list()?;
        owned.retain(|archive| {
            manifest::read_manifest(&archive.path)
                .is_ok_and(|m| m.schedule == self.name && m.archive == archive.name())
        });
        Ok(owned)
    }

    /// The newest of the schedule's own archives, whatever its format or
    /// naming.
    pub fn newest(&self) -> io::Result<Option<ArchiveFile>> {
        Ok(self.owned()?.pop())
    }

    /// The newest of the schedule's own archives taken at or before `at`
    /// (local time): what `restore NAME --at` restores.
    pub fn newest_not_after(&self, at: NaiveDateTime) -> io::Result<Option<ArchiveFile>> {
        let mut owned = self.owned()?;
        owned.retain(|archive| archive.taken() <= at);
        Ok(owned.pop())
    }

    /// The schedule's own archives stamped after `now` (beyond the
    /// tolerance of `retention::FUTURE_TOLERANCE`): written while the clock
    /// was wrong. Retention keeps them and
    /// `check` reports them.
    pub fn future(&self, now: DateTime<Utc>) -> io::Result<Vec<ArchiveFile>> {
        let now = clock::to_local(now).naive_local() + retention::FUTURE_TOLERANCE;
        let mut owned = self.owned()?;
        owned.retain(|a| a.stamp.is_some_and(|stamp| stamp > now));
        Ok(owned)
    }

    /// The newest archive if it is in the schedule's current format and
    /// naming mode, with its manifest: what the next run follows (the
    /// `if-changed` comparison, the progress estimate).
    pub fn newest_current(&self) -> Option<(ArchiveFile, Manifest)> {
        let newest = self.newest().ok()??;
        if newest.format != self.format
            || newest.stamp.is_some() != self.keeps_history()
            || newest.encrypted != self.encrypted
        {
            return None;
        }
        let manifest = self.read_manifest(&newest.path).ok()?;
        Some((newest, manifest))
    }

    /// The archive a run at `now` writes: `<name>.<ext>` (replaced) without
    /// retention, else `<name>_YYYYMMDD_HHMMSS.<ext>` in local time. When
    /// that stamp is taken (two runs within one second, or the hour that
    /// repeats when clocks go back) the next free second is used: a run never
    /// replaces another run's archive, and is never refused for it.
    pub fn next_archive(&self, now: DateTime<Utc>) -> Result<NextArchive, NoFreeName> {
        if !self.keeps_history() {
            return Ok(NextArchive {
                path: self.dir.join(self.file_name(None)),
                stamp: None,
            });
        }
        let now_local = clock::to_local(now).naive_local();
        // Names only ever move forward: a run never takes a second that is
        // before (or the same as) an archive already there, even if that
        // name was freed by pruning, so that newer archives always sort
        // after older ones. Archives dated in the future (a wrong clock) do
        // not drag new names along with them.
        let latest = self
            .list()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|a| a.stamp)
            .filter(|stamp| *stamp <= now_local + retention::FUTURE_TOLERANCE)
            .max();
        let wanted = match latest {
            Some(latest) if latest >= now_local => latest + TimeDelta::seconds(1),
            _ => now_local,
        };
        let stamp = (0..MAX_STAMP_SHIFT)
            .map(|shift| wanted + TimeDelta::seconds(shift))
            .find(|stamp| !self.stamp_taken(*stamp))
            .ok_or_else(|| NoFreeName {
                dir: self.dir.clone(),
                stamp: wanted,
            })?;
        Ok(NextArchive {
            path: self.dir.join(self.file_name(Some(stamp))),
            stamp: Some(stamp),
        })
    }

    /// The name of a new archive: [`archive_file_name`], with `.age` when
    /// the schedule encrypts.
    fn file_name(&self, stamp: Option<NaiveDateTime>) -> String {
        let name = archive_file_name(&self.name, self.format, stamp);
        if self.encrypted {
            name + crate::model::AGE_SUFFIX
        } else {
            name
        }
    }

    /// Any archive or manifest of this schedule with this stamp, any format,
    /// encrypted or not.
    fn stamp_taken(&self, stamp: NaiveDateTime) -> bool {
        Format::ALL
            .into_iter()
            .flat_map(|format| {
                let name = archive_file_name(&self.name, format, Some(stamp));
                [name.clone() + crate::model::AGE_SUFFIX, name]
            })
            .map(|name| self.dir.join(name))
            .any(|path| {
                path.symlink_metadata().is_ok()
                    || manifest::manifest_path(&path).symlink_metadata().is_ok()
            })
    }

    pub fn read_manifest(&self, archive: &Path) -> io::Result<Manifest> {
        manifest::read_manifest(archive)
    }

    /// Publishes the finished archive `temp` as `archive` with `manifest`,
    /// so that at every instant the file under the archive's name has a
    /// manifest that matches it: the manifest goes first (naming also the
    /// archive it replaces, if any), then the rename, then the manifest is
    /// rewritten without the replaced archive. A kill at any point leaves
    /// what `verify` accepts: the old archive, or the new one, each with a
    /// matching manifest; at worst a manifest without archive, which
    /// [`History::clear_leftovers`] removes.
    pub fn publish(
        &self,
        temp: &Path,
        archive: &Path,
        mut manifest: Manifest,
    ) -> Result<(), PublishError> {
        manifest.previous = match manifest::read_manifest(archive) {
            Ok(old) if archive.symlink_metadata().is_ok() => Some(old.contents()),
            _ => None,
        };
        let replacing = manifest.previous.is_some();
        manifest::write_manifest(archive, &manifest).map_err(|source| PublishError::Manifest {
            path: manifest::manifest_path(archive),
            source,
        })?;
        crash_point("manifest-written");
        fs::rename(temp, archive)
            .and_then(|()| primitives::sync_parent_dir(archive))
            .map_err(|source| PublishError::Rename {
                path: archive.to_path_buf(),
                source,
            })?;
        crash_point("archive-renamed");
        if replacing {
            manifest.previous = None;
            // The archive is in place and verifiable already; a failure
            // here only leaves the replaced archive named in the manifest.
            if let Err(error) = manifest::write_manifest(archive, &manifest) {
                log::warn!(
                    "cannot drop the replaced archive from {}: {error}",
                    manifest::manifest_path(archive).display()
                );
            }
        }
        Ok(())
    }

    /// Retention's verdict on the schedule's own stamped archives, judged at
    /// `now` (the planning run's clock), with `upcoming` (the archive a run
    /// is about to write) counted as if it were there and `just_written`
    /// kept whatever the rules say.
    pub fn prune_plan(
        &self,
        now: DateTime<Utc>,
        upcoming: Option<&NextArchive>,
        just_written: Option<&Path>,
    ) -> io::Result<Vec<Decision>> {
        let mut stamped: Vec<(PathBuf, NaiveDateTime)> = self
            .owned()?
            .into_iter()
            .filter_map(|a| a.stamp.map(|stamp| (a.path, stamp)))
            .collect();
        if let Some(NextArchive {
            path,
            stamp: Some(stamp),
        }) = upcoming
        {
            stamped.push((path.clone(), *stamp));
        }
        let context = PlanContext {
            now: clock::to_local(now).naive_local(),
            just_written,
        };
        let mut decisions = retention::plan(&stamped, &self.retention, context);
        let parents = super::chain::parents_of(&decisions);
        super::chain::keep_parents(&mut decisions, &parents);
        Ok(decisions)
    }

    /// Deletes what `decisions` do not keep (archive, then manifest) and
    /// returns the archives deleted.
    pub fn prune(&self, decisions: &[Decision]) -> io::Result<Vec<PathBuf>> {
        retention::apply(decisions)
    }
}

/// Why an archive could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot write the manifest {}", path.display())]
    Manifest {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot move the archive into place as {}", path.display())]
    Rename {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Environment variable naming a step of [`History::publish`] at which the
/// process aborts, as if killed there: a testing aid, like
/// `BACKUPCTL_FAKE_NOW`, that lets the tests check what a kill at each
/// instant leaves behind.
pub const CRASH_AT_VAR: &str = "BACKUPCTL_CRASH_AT";

/// A step of [`History::publish`] where `BACKUPCTL_CRASH_AT` aborts and
/// `BACKUPCTL_PAUSE_AT` ([`primitives::pause_at`]) stops the process.
fn crash_point(step: &str) {
    if std::env::var_os(CRASH_AT_VAR).is_some_and(|v| v == step) {
        std::process::abort();
    }
    primitives::pause_at(step);
}

/// `TARGET` for a name `.TARGET.RANDOM.SUFFIX` made by
/// [`primitives::create_temporary`].
pub(crate) fn temporary_target<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    let rest = name
        .strip_prefix('.')?
        .strip_suffix(suffix)?
        .strip_suffix('.')?;
    let (target, _) = rest.rsplit_once('.')?;
    primitives::is_temporary_of(name, target, suffix).then_some(target)
}

/// The file name of an archive.
pub fn archive_file_name(schedule: &str, format: Format, stamp: Option<NaiveDateTime>) -> String {
    match stamp {
        Some(stamp) => format!("{schedule}_{}.{}", stamp.format(STAMP), format.extension()),
        None => format!("{schedule}.{}", format.extension()),
    }
}

/// Reads `file_name` as an archive of `schedule`, if it is one (encrypted
/// or not: a `.age` after the extension is allowed).
pub fn parse_for_schedule(
    file_name: &str,
    schedule: &str,
) -> Option<(Format, Option<NaiveDateTime>)> {
    let file_name = file_name
        .strip_suffix(crate::model::AGE_SUFFIX)
        .unwrap_or(file_name);
    let rest = file_name.strip_prefix(schedule)?;
    if let Some(ext) = rest.strip_prefix('.') {
        return Format::from_extension(ext).map(|f| (f, None));
    }
    let rest = rest.strip_prefix('_')?;
    // YYYYMMDD_HHMMSS is 15 bytes, then `.ext`.
    let (stamp, ext) = (rest.get(..15)?, rest.get(15..)?.strip_prefix('.')?);
    if !stamp.bytes().enumerate().all(|(i, b)| {
        if i == 8 {
            b == b'_'
        } else {
            b.is_ascii_digit()
        }
    }) {
        return None;
    }
    let stamp = NaiveDateTime::parse_from_str(stamp, STAMP).ok()?;
    Format::from_extension(ext).map(|f| (f, Some(stamp)))
}

/// The archive files in `dir`, sorted by name: regular files named `*.tar`,
/// `*.tar.gz` or `*.tar.zst`, each maybe followed by `.age`, never hidden (temporary, lock) files nor
/// manifests. A missing directory has none.
pub fn archive_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.')
            || Format::of_file_name(&name).is_none()
            || !entry.file_type()?.is_file()
        {
            continue;
        }
        names.push(name);
    }
    names.sort();
    Ok(names)
}

/// A path's last component as text, lossily (archive names are ASCII).
pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> NaiveDateTime {
        NaiveDateTime::parse_from_str("20250102_030405", STAMP).unwrap()
    }

    fn history_in(dir: &Path, line: &str) -> History {
        let schedule = Schedule::parse(line).unwrap();
        History {
            dir: dir.to_path_buf(),
            name: schedule.name.clone(),
            format: schedule.options.format,
            encrypted: schedule.options.encrypts(),
            retention: schedule.options.retention,
        }
    }

    #[test]
    fn names_round_trip() {
        let name = archive_file_name("docs", Format::TarGz, Some(stamp()));
        assert_eq!(name, "docs_20250102_030405.tar.gz");
        assert_eq!(
            parse_for_schedule(&name, "docs"),
            Some((Format::TarGz, Some(stamp())))
        );
        assert_eq!(archive_file_name("docs", Format::Tar, None), "docs.tar");
        assert_eq!(
            parse_for_schedule("docs.tar", "docs"),
            Some((Format::Tar, None))
        );
    }

    #[test]
    fn a_schedule_never_claims_another_ones_archives() {
        let other = archive_file_name("a_1", Format::Tar, Some(stamp()));
        assert_eq!(parse_for_schedule(&other, "a"), None);
        assert_eq!(parse_for_schedule("a.tar.json", "a"), None);
        assert_eq!(parse_for_schedule("a_2025010X_030405.tar", "a"), None);
        assert_eq!(parse_for_schedule("ab.tar", "a"), None);
        assert_eq!(parse_for_schedule("a.age", "a"), None);
        assert_eq!(
            parse_for_schedule("a_20250102_030405.tar.zst.age", "a"),
            Some((Format::TarZst, Some(stamp())))
        );
    }

    #[test]
    fn only_archives_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "a.tar",
            "a.tar.json",
            "b_20250101_000000.tar.gz",
            "b_20250101_000000.tar.gz.json",
            "c.tar.zst",
            ".a.partial",
            "notes.txt",
            "x.tar.bz2",
        ] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        fs::create_dir(dir.path().join("d.tar")).unwrap();
        assert_eq!(
            archive_names(dir.path()).unwrap(),
            ["a.tar", "b_20250101_000000.tar.gz", "c.tar.zst"]
        );
    }

    /// Writes `name` in `dir` with a manifest saying it is `schedule`'s.
    fn archive_of(dir: &Path, schedule: &str, name: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, b"").unwrap();
        manifest::write_manifest(&path, &Manifest::sample(schedule, name)).unwrap();
        path
    }

    #[test]
    fn the_newest_is_by_stamp_and_a_taken_second_moves_on() {
        let dir = tempfile::tempdir().unwrap();
        let history = history_in(dir.path(), "s;10:00;n;keep-last=3");
        let now = clock::parse_local("2025-01-02T03:04:05").unwrap();
        let first = history.next_archive(now).unwrap();
        fs::write(&first.path, b"").unwrap();
        let second = history.next_archive(now).unwrap();
        assert_ne!(first.path, second.path);
        assert_eq!(
            second.stamp.unwrap() - first.stamp.unwrap(),
            TimeDelta::seconds(1)
        );
        let second = archive_of(dir.path(), "n", &file_name(&second.path));
        // An older stamp written later is still older.
        let older_name = archive_file_name("n", Format::Tar, Some(stamp() - TimeDelta::days(1)));
        let older = archive_of(dir.path(), "n", &older_name);
        assert_eq!(history.newest().unwrap().unwrap().path, second);
        assert_eq!(history.list().unwrap()[0].path, older);
        // The first has no manifest: listed by name, but not owned.
        assert_eq!(history.list().unwrap().len(), 3);
        assert_eq!(history.owned().unwrap().len(), 2);
    }

    #[test]
    fn only_archives_whose_manifest_names_the_schedule_are_its_own() {
        let dir = tempfile::tempdir().unwrap();
        // `docs_20200101_000000.tar` is both the single archive of a schedule
        // of that name and a history name of `docs`: its manifest decides.
        archive_of(
            dir.path(),
            "docs_20200101_000000",
            "docs_20200101_000000.tar",
        );
        archive_of(dir.path(), "docs", "docs_20250101_000000.tar");
        let docs = history_in(dir.path(), "s;10:00;docs;keep-last=1");
        let owned: Vec<String> = docs
            .owned()
            .unwrap()
            .iter()
            .map(ArchiveFile::name)
            .collect();
        assert_eq!(owned, ["docs_20250101_000000.tar"]);
        let now = clock::parse_local("2030-01-01T00:00").unwrap();
        let plan = docs.prune_plan(now, None, None).unwrap();
        assert_eq!(
            plan.len(),
            1,
            "the other schedule's archive is not in the plan"
        );
    }

    #[test]
    fn leftovers_of_a_killed_run_are_recognised_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let history = history_in(dir.path(), "s;10:00;a;keep-last=1");
        let (_, partial) =
            primitives::create_temporary(&history.temp_base(), "partial", 0o600).unwrap();
        let other = history_in(dir.path(), "s;10:00;a.x;keep-last=1");
        let (_, others) =
            primitives::create_temporary(&other.temp_base(), "partial", 0o600).unwrap();
        let (_, progress_temp) =
            primitives::create_temporary(&history.progress_path(), "tmp", 0o600).unwrap();
        let manifest_temp = dir.path().join("a_20250101_000000.tar.json");
        let (_, manifest_temp) =
            primitives::create_temporary(&manifest_temp, "tmp", 0o600).unwrap();
        // A manifest whose archive never arrived, and one whose archive did.
        let orphan = dir.path().join("a_20250102_000000.tar");
        manifest::write_manifest(&orphan, &Manifest::sample("a", "a_20250102_000000.tar")).unwrap();
        let kept = archive_of(dir.path(), "a", "a_20250103_000000.tar");
        let mut removed = history.clear_leftovers().unwrap();
        removed.sort();
        let mut expected = vec![partial, manifest_temp, manifest::manifest_path(&orphan)];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(others.exists() && kept.exists() && manifest::manifest_path(&kept).exists());
        // A live run's progress may be mid-rewrite: only its own cleanup,
        // before it starts publishing, takes a temporary progress file.
        assert!(progress_temp.exists());
        history.clear_progress_leftovers();
        assert!(!progress_temp.exists());
    }
}
