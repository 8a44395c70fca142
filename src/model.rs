//! Value types shared by the schedule store, the archive code and the backup
//! pipeline: an archive's format and compression levels, retention rules and
//! how a run ended. Living here, below all three, lets `store` and `archive`
//! both use them without importing each other.
//!
//! This is a leaf: it imports nothing from the rest of the crate.

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

/// Archive format. Serialized as its extension (`"tar.gz"`), the manifest's
/// documented shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Format {
    #[default]
    #[serde(rename = "tar")]
    Tar,
    #[serde(rename = "tar.gz")]
    TarGz,
    #[serde(rename = "tar.zst")]
    TarZst,
}

impl Format {
    /// Every format, in the order names are tried.
    pub const ALL: [Format; 3] = [Format::Tar, Format::TarGz, Format::TarZst];

    /// The file-name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Tar => "tar",
            Format::TarGz => "tar.gz",
            Format::TarZst => "tar.zst",
        }
    }

    pub fn from_extension(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.extension() == text)
    }

    /// The format of a file name ending in `.tar`, `.tar.gz` or `.tar.zst`
    /// after a non-empty stem.
    pub fn of_file_name(name: &str) -> Option<Self> {
        [Format::TarGz, Format::TarZst, Format::Tar]
            .into_iter()
            .find(|format| {
                name.strip_suffix(format.extension())
                    .is_some_and(|stem| stem.len() > 1 && stem.ends_with('.'))
            })
    }

    /// The compression levels this format accepts, and its default.
    pub fn levels(self) -> Option<(std::ops::RangeInclusive<i32>, i32)> {
        match self {
            Format::Tar => None,
            Format::TarGz => Some((0..=9, 6)),
            Format::TarZst => Some((1..=22, 3)),
        }
    }
}

/// Retention rules. Setting any of them keeps a timestamped archive per run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_within: Option<TimeDelta>,
    pub min_keep: Option<u32>,
}

impl Retention {
    /// True when any rule is set, which switches the schedule to history mode.
    pub fn is_set(&self) -> bool {
        *self != Retention::default()
    }
}

/// How a run ended: the one state type of the manifest, the state file,
/// `status`, hooks and `run`'s exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// The archive holds the whole tree.
    Ok,
    /// An archive was written, but some files could not be read.
    Partial,
    /// No archive was written (or a `before` hook failed).
    Failed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Ok => "ok",
            RunState::Partial => "partial",
            RunState::Failed => "failed",
        }
    }

    /// True when the run left an archive behind.
    pub fn produced_archive(self) -> bool {
        self != RunState::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_serialize_as_their_extension() {
        for format in Format::ALL {
            let json = serde_json::to_string(&format).unwrap();
            assert_eq!(json, format!("\"{}\"", format.extension()));
            assert_eq!(serde_json::from_str::<Format>(&json).unwrap(), format);
            let name = format!("a.{}", format.extension());
            assert_eq!(Format::of_file_name(&name), Some(format));
        }
        assert_eq!(Format::of_file_name(".tar"), None);
        assert_eq!(Format::of_file_name("a.tar.json"), None);
        assert_eq!(
            serde_json::to_string(&RunState::Partial).unwrap(),
            "\"partial\""
        );
    }
}
