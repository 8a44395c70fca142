//! Value types shared by the schedule store, the archive code and the backup
//! pipeline: an archive's format and compression levels, retention rules and
//! how a run ended. Living here, below all three, lets `store` and `archive`
//! both use them without importing each other.
//!
//! This is a leaf: it imports nothing from the rest of the crate.

use chrono::{DateTime, TimeDelta, Utc};
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
    /// after a non-empty stem, optionally followed by `.age` (encrypted; see
    /// [`is_encrypted_name`]).
    pub fn of_file_name(name: &str) -> Option<Self> {
        let name = name.strip_suffix(AGE_SUFFIX).unwrap_or(name);
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

/// The suffix of an archive encrypted with age (`docs.tar.zst.age`).
pub const AGE_SUFFIX: &str = ".age";

/// True for an archive name of an encrypted archive: `<archive name>.age`.
pub fn is_encrypted_name(name: &str) -> bool {
    name.ends_with(AGE_SUFFIX) && Format::of_file_name(name).is_some()
}

/// An age recipient of `encrypt-to`: an age X25519 public key (`age1…`) or
/// an OpenSSH `ssh-ed25519` / `ssh-rsa` public key (a trailing comment is
/// allowed), checked with the `age` crate's own parsers when the schedule is
/// read. Kept as typed, so the schedule line reads back as itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient(String);

impl Recipient {
    /// Checks `text`; the error is the reason, for a message.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with("age1") {
            text.parse::<age::x25519::Recipient>()
                .map_err(|why| format!("is not an age public key ({why})"))?;
        } else if text.starts_with("ssh-") {
            use age::ssh::ParseRecipientKeyError as Why;
            text.parse::<age::ssh::Recipient>()
                .map_err(|why| match why {
                    Why::RsaModulusTooSmall => {
                        "is an ssh-rsa key shorter than 2048 bits".to_string()
                    }
                    Why::RsaModulusTooLarge => {
                        "is an ssh-rsa key longer than age supports".to_string()
                    }
                    Why::Unsupported(kind) => {
                        format!("is a {kind} key; age takes ssh-ed25519 or ssh-rsa keys")
                    }
                    _ => "is not a valid ssh-ed25519 or ssh-rsa public key".to_string(),
                })?;
        } else {
            return Err(
                "is not an age public key (age1...) nor an ssh-ed25519 or ssh-rsa public key"
                    .into(),
            );
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a schedule's archives are copied (`copy-to=REMOTE:PATH`): an rclone
/// remote, named in rclone's own configuration or environment, and a
/// directory on it. backupctl holds no credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RemoteTarget(String);

impl RemoteTarget {
    /// Checks `REMOTE:PATH`; the error is the reason, for a message.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some((remote, _)) = text.split_once(':') else {
            return Err("must be REMOTE:PATH, an rclone remote and a directory on it".into());
        };
        if remote.is_empty() || remote.starts_with('-') || text.contains(['\n', '\0']) {
            return Err("must be REMOTE:PATH, an rclone remote and a directory on it".into());
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `REMOTE:PATH/name` (no doubled `/`, nothing added after `REMOTE:`).
    pub fn join(&self, name: &str) -> String {
        if self.0.ends_with(':') || self.0.ends_with('/') {
            format!("{}{name}", self.0)
        } else {
            format!("{}/{name}", self.0)
        }
    }
}

impl std::fmt::Display for RemoteTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an archive's copy is and when it was last found intact there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteCopy {
    /// `REMOTE:PATH/ARCHIVE`.
    pub location: String,
    /// When its size and hash were last checked on the remote.
    pub verified: DateTime<Utc>,
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
    /// The archive was written and kept locally, but its copy to the remote
    /// (`copy-to`) failed; the next run uploads what is missing.
    #[serde(rename = "copy-failed")]
    CopyFailed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Ok => "ok",
            RunState::Partial => "partial",
            RunState::Failed => "failed",
            RunState::CopyFailed => "copy-failed",
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
