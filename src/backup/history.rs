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

use super::retention::{self, Decision};
use crate::archive::manifest::{self, Manifest};
use crate::clock;
use crate::home::Home;
use crate::model::{Format, Retention};
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
}

impl History {
    pub fn of(home: &Home, schedule: &Schedule) -> Self {
        Self {
            dir: home.backups_dir(),
            name: schedule.name.clone(),
            format: schedule.options.format,
            retention: schedule.options.retention.clone(),
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
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True when each run keeps its own stamped archive.
    pub fn keeps_history(&self) -> bool {
        self.retention.is_set()
    }

    /// The temporary file a run writes before renaming it into place.
    pub fn temp_path(&self) -> PathBuf {
        self.dir.join(format!(".{}.partial", self.name))
    }

    /// The lock every run, hook and prune of the schedule holds.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(format!(".{}.lock", self.name))
    }

    /// The schedule's archives, any format and naming mode, oldest first.
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
            });
        }
        found.sort_by(|a, b| a.taken().cmp(&b.taken()).then_with(|| a.path.cmp(&b.path)));
        Ok(found)
    }

    /// The newest archive, whatever its format or naming.
    pub fn newest(&self) -> io::Result<Option<ArchiveFile>> {
        Ok(self.list()?.pop())
    }

    /// The newest archive if it is in the schedule's current format and
    /// naming mode, with its manifest: what the next run follows (the
    /// `if-changed` comparison, the progress estimate).
    pub fn newest_current(&self) -> Option<(ArchiveFile, Manifest)> {
        let newest = self.newest().ok()??;
        if newest.format != self.format || newest.stamp.is_some() != self.keeps_history() {
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
            let name = archive_file_name(&self.name, self.format, None);
            return Ok(NextArchive {
                path: self.dir.join(name),
                stamp: None,
            });
        }
        let wanted = clock::to_local(now).naive_local();
        let stamp = (0..MAX_STAMP_SHIFT)
            .map(|shift| wanted + TimeDelta::seconds(shift))
            .find(|stamp| !self.stamp_taken(*stamp))
            .ok_or_else(|| NoFreeName {
                dir: self.dir.clone(),
                stamp: wanted,
            })?;
        let name = archive_file_name(&self.name, self.format, Some(stamp));
        Ok(NextArchive {
            path: self.dir.join(name),
            stamp: Some(stamp),
        })
    }

    /// Any archive or manifest of this schedule with this stamp, any format.
    fn stamp_taken(&self, stamp: NaiveDateTime) -> bool {
        Format::ALL
            .into_iter()
            .map(|format| {
                self.dir
                    .join(archive_file_name(&self.name, format, Some(stamp)))
            })
            .any(|path| {
                path.symlink_metadata().is_ok()
                    || manifest::manifest_path(&path).symlink_metadata().is_ok()
            })
    }

    pub fn read_manifest(&self, archive: &Path) -> io::Result<Manifest> {
        manifest::read_manifest(archive)
    }

    pub fn write_manifest(&self, archive: &Path, manifest: &Manifest) -> io::Result<()> {
        manifest::write_manifest(archive, manifest)
    }

    /// Retention's verdict on the stamped archives, with `upcoming` (the
    /// archive a run is about to write) counted as if it were there.
    pub fn prune_plan(&self, upcoming: Option<&NextArchive>) -> io::Result<Vec<Decision>> {
        let mut stamped: Vec<(PathBuf, NaiveDateTime)> = self
            .list()?
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
        Ok(retention::plan(&stamped, &self.retention))
    }

    /// Deletes what `decisions` do not keep (archive, then manifest) and
    /// returns the archives deleted.
    pub fn prune(&self, decisions: &[Decision]) -> io::Result<Vec<PathBuf>> {
        retention::apply(decisions)
    }
}

/// The file name of an archive.
pub fn archive_file_name(schedule: &str, format: Format, stamp: Option<NaiveDateTime>) -> String {
    match stamp {
        Some(stamp) => format!("{schedule}_{}.{}", stamp.format(STAMP), format.extension()),
        None => format!("{schedule}.{}", format.extension()),
    }
}

/// Reads `file_name` as an archive of `schedule`, if it is one.
pub fn parse_for_schedule(
    file_name: &str,
    schedule: &str,
) -> Option<(Format, Option<NaiveDateTime>)> {
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
/// `*.tar.gz` or `*.tar.zst`, never hidden (temporary, lock) files nor
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

fn file_name(path: &Path) -> String {
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
        fs::write(&second.path, b"").unwrap();
        // An older stamp written later is still older.
        let older = dir.path().join(archive_file_name(
            "n",
            Format::Tar,
            Some(stamp() - TimeDelta::days(1)),
        ));
        fs::write(&older, b"").unwrap();
        let newest = history.newest().unwrap().unwrap();
        assert_eq!(newest.path, second.path);
        assert_eq!(history.list().unwrap()[0].path, older);
    }
}
