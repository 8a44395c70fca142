//! The JSON manifest written next to each archive, `<archive>.json`: what the
//! archive holds and its SHA-256, so it can be verified later. It is written
//! atomically, after the archive is in place; an archive without a manifest
//! counts as not verified.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::model::{Format, RemoteCopy, RunState};
use crate::primitives;

/// A file left out of the archive, or archived inconsistently, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    pub path: String,
    pub reason: String,
}

/// The manifest. Field names are part of the documented `--json` shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Schedule name.
    pub schedule: String,
    /// Source path as written in the schedule.
    pub source: String,
    /// Archive file name (no directory).
    pub archive: String,
    /// Creation time, RFC 3339 with the local offset.
    pub created: DateTime<FixedOffset>,
    /// `tar`, `tar.gz` or `tar.zst`.
    pub format: Format,
    /// Compression level, when the format compresses.
    pub level: Option<i32>,
    pub archive_size: u64,
    /// SHA-256 of the archive file, lower-case hex, computed while writing.
    pub sha256: String,
    pub entries: u64,
    pub bytes_read: u64,
    pub skipped: Vec<SkippedFile>,
    /// `ok` or `partial` (some files skipped).
    pub state: RunState,
    pub duration_seconds: f64,
    pub backupctl_version: String,
    /// Fingerprint of the source tree's metadata (paths, sizes, mtimes,
    /// modes, link targets), for `if-changed`.
    pub fingerprint: String,
    /// Entries the schedule's `exclude*` rules left out (an excluded
    /// directory counts once). Absent from manifests older than the rules.
    #[serde(default)]
    pub excluded: u64,
    /// The schedule's other sources (`also=`), as typed, each stored under
    /// its own top-level name. Absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// Set only while an archive replaces an older one under the same name:
    /// the size and SHA-256 of the archive being replaced. The manifest is
    /// written before the rename and rewritten without this after it, so
    /// whichever of the two files a reader finds under the name, this
    /// manifest matches it (see [`Manifest::describes`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Contents>,
    /// Set on the archives of an incremental schedule: the archive's place
    /// in its chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainLink>,
    /// For an archive encrypted with age (`NAME.EXT.age`): the SHA-256 of
    /// the plaintext, the `.tar[.gz|.zst]` stream `age -d` gives back.
    /// `sha256` is the encrypted file's, checkable without the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext_sha256: Option<String>,
    /// Where the archive was copied (`copy-to`) and when the copy was last
    /// found intact there. Absent until the copy is made and checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_copy: Option<RemoteCopy>,
}

/// An archive's place in an incremental chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// 0 for a full archive; else one more than its parent's.
    pub level: u32,
    /// The archive this one holds the changes since; none at level 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Parent>,
    /// Size and SHA-256 of the tree's file state beside the archive
    /// (`<archive>.files`), which the next run of the chain compares with.
    pub files: Contents,
}

/// The parent of an incremental archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    /// Its file name, in the same directory.
    pub archive: String,
    pub sha256: String,
}

/// Size and SHA-256 of an archive file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contents {
    pub archive_size: u64,
    pub sha256: String,
}

/// How a file compares with its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// The archive the manifest describes.
    Current,
    /// The archive it replaces, still in place (a run is publishing, or was
    /// killed while it did).
    Previous,
    /// Neither: the size differs from what the manifest says.
    WrongSize { expected: u64 },
    /// Neither: the SHA-256 differs.
    WrongChecksum { expected: String },
}

impl Manifest {
    /// Compares a file's size and SHA-256 with this manifest.
    pub fn describes(&self, size: u64, sha256: &str) -> Match {
        let same = |c: &Contents| c.archive_size == size && c.sha256.eq_ignore_ascii_case(sha256);
        if same(&self.contents()) {
            Match::Current
        } else if self.previous.as_ref().is_some_and(same) {
            Match::Previous
        } else if size != self.archive_size {
            Match::WrongSize {
                expected: self.archive_size,
            }
        } else {
            Match::WrongChecksum {
                expected: self.sha256.clone(),
            }
        }
    }

    /// The size and SHA-256 this manifest records.
    pub fn contents(&self) -> Contents {
        Contents {
            archive_size: self.archive_size,
            sha256: self.sha256.clone(),
        }
    }
}

impl Manifest {
    /// A manifest of `archive` for `schedule` with made-up contents, for
    /// tests of the code that reads manifests.
    #[cfg(test)]
    pub fn sample(schedule: &str, archive: &str) -> Self {
        Manifest {
            schedule: schedule.into(),
            source: "src".into(),
            archive: archive.into(),
            created: DateTime::parse_from_rfc3339("2025-01-01T02:00:00+01:00").unwrap(),
            format: Format::of_file_name(archive).unwrap_or_default(),
            level: None,
            archive_size: 0,
            sha256: "00".repeat(32),
            entries: 0,
            bytes_read: 0,
            skipped: vec![],
            state: RunState::Ok,
            duration_seconds: 0.0,
            backupctl_version: "0.1.0".into(),
            fingerprint: String::new(),
            excluded: 0,
            also: Vec::new(),
            previous: None,
            chain: None,
            plaintext_sha256: None,
            remote_copy: None,
        }
    }
}

/// `<archive>.json`.
pub fn manifest_path(archive: &Path) -> PathBuf {
    let mut name = archive.file_name().unwrap_or_default().to_os_string();
    name.push(".json");
    archive.with_file_name(name)
}

/// Writes the manifest for `archive` atomically (temp file, fsync, rename).
pub fn write_manifest(archive: &Path, manifest: &Manifest) -> io::Result<()> {
    let mut text = serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?;
    text.push(b'\n');
    primitives::write_atomic(&manifest_path(archive), &text, 0o600)
}

/// Reads the manifest of `archive`; `NotFound` when there is none.
pub fn read_manifest(archive: &Path) -> io::Result<Manifest> {
    let (bytes, _) = primitives::read_regular(&manifest_path(archive), MANIFEST_LIMIT)?;
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The largest manifest read: one lists the files a run skipped, so it may
/// be large, but a pipe, a device or a huge file planted under a
/// manifest's name (by the home's user, for the root service to read) must
/// neither hang a run nor exhaust memory.
pub const MANIFEST_LIMIT: u64 = 256 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_next_to_their_archive() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("docs_20250101_020000.tar.gz");
        let manifest = Manifest {
            schedule: "docs".into(),
            source: "/home/me/docs".into(),
            archive: "docs_20250101_020000.tar.gz".into(),
            created: DateTime::parse_from_rfc3339("2025-01-01T02:00:00+01:00").unwrap(),
            format: Format::TarGz,
            level: Some(6),
            archive_size: 10,
            sha256: "00".repeat(32),
            entries: 3,
            bytes_read: 100,
            skipped: vec![],
            state: RunState::Ok,
            duration_seconds: 0.5,
            backupctl_version: "0.1.0".into(),
            fingerprint: "ab".into(),
            excluded: 2,
            also: vec!["/etc".into()],
            previous: None,
            chain: None,
            plaintext_sha256: None,
            remote_copy: None,
        };
        write_manifest(&archive, &manifest).unwrap();
        assert!(dir.path().join("docs_20250101_020000.tar.gz.json").exists());
        assert_eq!(read_manifest(&archive).unwrap(), manifest);
        // The documented JSON shape: plain strings for the typed fields.
        let text = std::fs::read_to_string(manifest_path(&archive)).unwrap();
        assert!(
            text.contains(r#""created": "2025-01-01T02:00:00+01:00""#),
            "{text}"
        );
        assert!(text.contains(r#""format": "tar.gz""#), "{text}");
        assert!(text.contains(r#""state": "ok""#), "{text}");
    }
}
