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

/// What a schedule leaves out of its archive besides backupctl's own files
/// (the `exclude*` and `one-file-system` options). Validated when the
/// schedule is parsed; `exclude-from` files are read when the walk starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExcludeRules {
    /// `exclude=PATTERN`, in the order given.
    pub patterns: Vec<ExcludePattern>,
    /// `exclude-from=FILE`, as typed (relative to the home).
    pub from_files: Vec<String>,
    /// `exclude-caches`: the contents of a directory holding a valid
    /// `CACHEDIR.TAG`, except the tag itself.
    pub caches: bool,
    /// `exclude-if-present=NAME`: a directory holding an entry so named.
    pub if_present: Vec<String>,
    /// `one-file-system`: the contents of mount points below the source.
    pub one_file_system: bool,
    /// `exclude-larger-than=SIZE`: regular files over this many bytes.
    pub larger_than: Option<u64>,
}

impl ExcludeRules {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One exclude pattern, tar/restic style: without a `/` it matches an
/// entry's name at any depth; with one it is matched against the path from
/// the source root (a leading `/` is dropped). `*` and `?` never match a
/// `/`, `**` crosses directories. A trailing `/` matches directories only
/// and does not anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcludePattern {
    /// As typed, for messages and listings.
    pub text: String,
    pub glob: globset::Glob,
    pub anchored: bool,
    pub dirs_only: bool,
}

impl ExcludePattern {
    /// Compiles `text`; the error is the reason, for a message.
    pub fn parse(text: &str) -> Result<Self, String> {
        let dirs_only = text.ends_with('/') && text.len() > 1;
        let body = if dirs_only {
            &text[..text.len() - 1]
        } else {
            text
        };
        let anchored = body.contains('/');
        let body = body.trim_start_matches('/');
        if body.is_empty() {
            return Err("is an empty pattern".into());
        }
        let glob = globset::GlobBuilder::new(body)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| e.kind().to_string())?;
        Ok(Self {
            text: text.to_string(),
            glob,
            anchored,
            dirs_only,
        })
    }
}

/// `SIZE` of `exclude-larger-than`: bytes, or a number with `k`, `m`, `g`
/// or `t` (either case, powers of 1024, as restic reads it).
pub fn parse_size(text: &str) -> Option<u64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let shift = match unit {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

#[cfg(test)]
mod exclude_tests {
    use super::*;

    #[test]
    fn exclude_patterns_anchor_on_an_inner_slash_only() {
        let p = |text| ExcludePattern::parse(text).unwrap();
        assert!(!p("*.o").anchored && !p("tmp/").anchored && p("tmp/").dirs_only);
        assert!(p("/build").anchored && p("a/b").anchored && p("**/x").anchored);
        assert!(ExcludePattern::parse("/").is_err());
        assert!(ExcludePattern::parse("a[").is_err());
    }

    #[test]
    fn sizes_are_powers_of_1024() {
        assert_eq!(parse_size("500"), Some(500));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("20M"), Some(20 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        for bad in ["", "k", "1.5M", "1KB", "-1", "99999999999999999999T"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
