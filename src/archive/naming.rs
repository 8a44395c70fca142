//! Archive file names. A schedule without retention keeps one archive,
//! `<name>.<ext>` (the spec's `backups/backup_test.tar`), replaced at each run.
//! With retention it keeps one per run, `<name>_YYYYMMDD_HHMMSS.<ext>`, stamped
//! in local time. The suffix pattern is fixed, so a schedule's archives are
//! told apart from every other schedule's even when one name is a prefix of
//! another (`a` and `a_1`).

use std::io;
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;

use crate::store::Format;

const STAMP: &str = "%Y%m%d_%H%M%S";

/// The file name of an archive.
pub fn archive_file_name(schedule: &str, format: Format, stamp: Option<NaiveDateTime>) -> String {
    match stamp {
        Some(stamp) => format!("{schedule}_{}.{}", stamp.format(STAMP), format.extension()),
        None => format!("{schedule}.{}", format.extension()),
    }
}

/// An archive of a given schedule, found in `backups/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveFile {
    pub path: PathBuf,
    pub format: Format,
    /// The run's local time for history archives; `None` for `<name>.<ext>`.
    pub stamp: Option<NaiveDateTime>,
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

/// The archives of `schedule` in `dir`, oldest first (the single
/// `<name>.<ext>` archive, if any, sorts before the stamped ones).
pub fn schedule_archives(dir: &Path, schedule: &str) -> io::Result<Vec<ArchiveFile>> {
    let mut found = Vec::new();
    for name in super::list_archives(dir)? {
        if let Some((format, stamp)) = parse_for_schedule(&name, schedule) {
            found.push(ArchiveFile {
                path: dir.join(&name),
                format,
                stamp,
            });
        }
    }
    found.sort_by(|a, b| a.stamp.cmp(&b.stamp).then_with(|| a.path.cmp(&b.path)));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> NaiveDateTime {
        NaiveDateTime::parse_from_str("20250102_030405", STAMP).unwrap()
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
}
