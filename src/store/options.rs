//! The optional fourth field of a schedule line: `opt,opt=value,…`.
//!
//! Every option is parsed and validated here, once; the code that acts on an
//! option trusts the value it gets. An unknown or malformed option refuses the
//! whole line, naming the option.
//!
//! The grammar, for values that hold the separators (`,` between options,
//! `;` between fields):
//!
//! ```text
//! options := item ("," item)*
//! item    := key | key "=" value
//! value   := bare | quoted
//! bare    := any text without "," or ";" that does not start with '"'
//! quoted  := '"' ( '\"' | '\\' | any character but '"' )* '"'
//! ```
//!
//! Only double quotes quote, and only a whole value (`before="a,b"`, not
//! `before=a"b,c"`): a `"` anywhere else is an ordinary character, so every
//! line written before quoting existed means what it meant. Inside quotes
//! `\"` stands for `"` and `\\` for `\`; any other backslash is itself
//! (`printf "a\n"` in a hook survives as typed). The closing quote ends the
//! value: it must be followed by `,` or the end of the line.

use chrono::TimeDelta;

use super::schedule::quote_field;
pub use crate::model::{ExcludePattern, ExcludeRules, Format, Recipient, RemoteTarget, Retention};
use crate::primitives::{is_layout_char, printable};

/// Every option, as `create --help` lists it: its syntax and what it does.
/// A test checks that each option [`Options::parse`] knows is here.
pub const OPTION_HELP: &[(&str, &str)] = &[
    ("format=tar|tar.gz|tar.zst", "archive format (default tar)"),
    (
        "level=N",
        "compression level of format=tar.gz (0-9, default 6) or tar.zst (1-22, default 3)",
    ),
    ("keep-last=N", "retention: keep the N newest archives"),
    (
        "keep-hourly=N",
        "keep the newest archive of each of the last N hours",
    ),
    (
        "keep-daily=N",
        "keep the newest archive of each of the last N days",
    ),
    (
        "keep-weekly=N",
        "keep the newest archive of each of the last N weeks",
    ),
    (
        "keep-monthly=N",
        "keep the newest archive of each of the last N months",
    ),
    (
        "keep-within=D",
        "keep every archive less than D (90m, 36h, 7d, 4w) older than the newest",
    ),
    ("min-keep=N", "never keep fewer than the N newest archives"),
    (
        "if-changed",
        "skip the run when the tree is unchanged since the last archive",
    ),
    (
        "incremental",
        "each run stores only what changed since the previous archive (needs a keep-* option); GNU tar restores the chain",
    ),
    (
        "full-every=N",
        "with incremental: every N-th run writes a full archive (default 7)",
    ),
    (
        "catch-up",
        "when the service starts or wakes and a run was missed while it was down, run it once",
    ),
    (
        "before=CMD",
        "run CMD (sh -c) before the backup; if it fails, the backup is skipped",
    ),
    ("after=CMD", "run CMD after a backup that wrote an archive"),
    ("on-failure=CMD", "run CMD after a failed run"),
    (
        "ping=URL",
        "healthchecks.io-style pings (http or https): URL/start when the run begins, URL on success, URL/EXIT-CODE otherwise, with the run's log lines",
    ),
    (
        "no-xattrs",
        "store no extended attributes or ACLs (kept by default)",
    ),
    (
        "also=PATH",
        "back up PATH too, under its own top-level name (repeatable; relative to the home)",
    ),
    (
        "exclude=PATTERN",
        "leave out what matches (repeatable): no '/' matches a name at any depth, a '/' anchors at the source, '**' crosses directories",
    ),
    (
        "exclude-from=FILE",
        "read exclude patterns from FILE (one a line, # comments), relative to the home",
    ),
    (
        "exclude-caches",
        "leave out the contents of directories tagged with a standard CACHEDIR.TAG",
    ),
    (
        "exclude-if-present=NAME",
        "leave out every directory that holds a file NAME",
    ),
    (
        "one-file-system",
        "do not descend into other filesystems (their mount points stay, empty)",
    ),
    (
        "exclude-larger-than=SIZE",
        "leave out files larger than SIZE (500k, 20M, 2G)",
    ),
    (
        "encrypt-to=RECIPIENT",
        "encrypt archives with age to RECIPIENT (repeatable): an age public key (age1...), or an ssh-ed25519 or ssh-rsa public key; archives are named NAME.EXT.age",
    ),
    (
        "encrypt-to-file=FILE",
        "encrypt to every recipient in FILE (one a line, # comments), relative to the home (repeatable)",
    ),
    (
        "copy-to=REMOTE:PATH",
        "after each run, copy new archives and their manifests to REMOTE:PATH with rclone (rclone's own config and environment hold the credentials); a run whose copy fails ends copy-failed (exit 4) and the next run uploads what is missing",
    ),
    (
        "remote-keep=N",
        "with copy-to: the remote keeps the N newest copies even when retention deletes them locally (default: the remote keeps what is kept locally)",
    ),
];

/// The options part of `create --help`.
pub fn help() -> String {
    let width = OPTION_HELP.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
    let mut text = String::from(
        "Schedule options (the optional fourth field, \"opt,opt=value,...\", each at most once):\n",
    );
    for (syntax, what) in OPTION_HELP {
        text.push_str(&format!("  {syntax:width$}  {what}\n"));
    }
    text.push_str(
        "\nAny keep-* or min-keep option keeps one archive per run, \
         NAME_YYYYMMDD_HHMMSS.EXT, and prunes after each successful run; without \
         them each run replaces backups/NAME.EXT. Hooks run only when the schedule \
         file is trusted (see the README).\n\
         \n\
         A value runs to the next ',' or ';'; one that holds ',' or ';' goes in \
         double quotes (before=\"curl -d 'a,b' URL\"), with \\\" for a quote and \\\\ \
         for a backslash inside. No value may hold a control character.\n\
         \n\
         Example: backupctl create \"/home/me/docs;02:30;docs;format=tar.zst,keep-daily=7,min-keep=3\"",
    );
    text
}

/// Why the options field was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("option \"{}\" {why}", quote_field(option))]
pub struct OptionError {
    pub option: String,
    pub why: String,
}

fn refuse(option: &str, why: impl Into<String>) -> OptionError {
    OptionError {
        option: option.to_string(),
        why: why.into(),
    }
}

/// Commands run around a backup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    pub before: Option<String>,
    pub after: Option<String>,
    pub on_failure: Option<String>,
}

/// All options of one schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub format: Format,
    /// Compression level; `None` means the format's default.
    pub level: Option<i32>,
    pub retention: Retention,
    /// Skip the run when the tree is unchanged since the last archive.
    pub if_changed: bool,
    /// Run once at start-up when a run was missed while the daemon was down.
    pub catch_up: bool,
    /// Each run stores only what changed since the previous archive.
    pub incremental: bool,
    /// With `incremental`: every N-th run is a full archive.
    pub full_every: Option<u32>,
    /// Leave extended attributes and POSIX ACLs out of the archive.
    pub no_xattrs: bool,
    pub hooks: Hooks,
    /// Where to ping when a run starts and ends (an http or https URL).
    pub ping: Option<String>,
    /// What the archive leaves out.
    pub excludes: ExcludeRules,
    /// Who the archives are encrypted to (`encrypt-to`), as typed.
    pub encrypt_to: Vec<Recipient>,
    /// Files of recipients (`encrypt-to-file`), as typed (relative to the
    /// home); read when the schedule is created and at each run.
    pub encrypt_to_files: Vec<String>,
    /// Where archives are copied (`copy-to`).
    pub copy_to: Option<RemoteTarget>,
    /// How many of the newest copies the remote keeps beyond what is kept
    /// locally (`remote-keep`).
    pub remote_keep: Option<u32>,
    /// More sources, as typed (`also=PATH`, repeatable): each is stored
    /// under its own top-level name beside the main one.
    pub also: Vec<String>,
}

/// Options that may be given more than once; each adds to a list.
const REPEATABLE: [&str; 6] = [
    "exclude",
    "exclude-from",
    "exclude-if-present",
    "encrypt-to",
    "encrypt-to-file",
    "also",
];

impl Options {
    /// Keeps one timestamped archive per run instead of replacing `<name>.tar`.
    pub fn keeps_history(&self) -> bool {
        self.retention.is_set()
    }

    /// With `incremental`, how many runs a chain holds: a full archive
    /// then `N - 1` incrementals (`full-every`, default 7).
    pub fn chain_length(&self) -> Option<u32> {
        self.incremental.then(|| self.full_every.unwrap_or(7))
    }

    /// True when archives are written encrypted (`NAME.EXT.age`).
    pub fn encrypts(&self) -> bool {
        !self.encrypt_to.is_empty() || !self.encrypt_to_files.is_empty()
    }

    /// The compression level to use, if the format compresses.
    pub fn effective_level(&self) -> Option<i32> {
        self.format
            .levels()
            .map(|(_, default)| self.level.unwrap_or(default))
    }

    /// Parses `opt,opt=value,…`.
    pub fn parse(field: &str) -> Result<Self, OptionError> {
        let mut options = Options::default();
        let mut seen: Vec<&str> = Vec::new();
        if field.is_empty() {
            return Err(refuse(
                "",
                "list is empty (leave out the fourth field instead)",
            ));
        }
        for span in item_spans(field) {
            let item = &field[span.start..span.end];
            // A newline in a hook would split the stored line in two; an
            // escape sequence would reach the terminal of whoever lists it.
            if let Some(c) = item.chars().find(|&c| is_layout_char(c)) {
                return Err(refuse(
                    item,
                    format!(
                        "contains a control character ({})",
                        printable(&c.to_string())
                    ),
                ));
            }
            let (key, value) = match item.split_once('=') {
                Some((key, value)) => (key, Some(value)),
                None => (item, None),
            };
            let value = match value.map(unquote).transpose() {
                Ok(value) => value,
                Err(why) => return Err(refuse(if span.unterminated { key } else { item }, why)),
            };
            if seen.contains(&key) && !REPEATABLE.contains(&key) {
                return Err(refuse(item, "is given twice"));
            }
            seen.push(key);
            options.apply(item, key, value.as_deref())?;
        }
        options.check_level()?;
        options.check_incremental()?;
        if options.remote_keep.is_some() && options.copy_to.is_none() {
            return Err(refuse("remote-keep", "needs copy-to=REMOTE:PATH"));
        }
        Ok(options)
    }

    fn apply(&mut self, item: &str, key: &str, value: Option<&str>) -> Result<(), OptionError> {
        let r = &mut self.retention;
        match key {
            "format" => {
                let text = need(item, value)?;
                self.format = Format::from_extension(text)
                    .ok_or_else(|| refuse(item, "must be tar, tar.gz or tar.zst"))?;
            }
            "level" => {
                let text = need(item, value)?;
                self.level = Some(
                    text.parse()
                        .map_err(|_| refuse(item, "must be a whole number"))?,
                );
            }
            "keep-last" => r.keep_last = Some(count(item, value)?),
            "keep-hourly" => r.keep_hourly = Some(count(item, value)?),
            "keep-daily" => r.keep_daily = Some(count(item, value)?),
            "keep-weekly" => r.keep_weekly = Some(count(item, value)?),
            "keep-monthly" => r.keep_monthly = Some(count(item, value)?),
            "min-keep" => r.min_keep = Some(count(item, value)?),
            "keep-within" => {
                let text = need(item, value)?;
                // The message names the item; the duration's own would repeat it.
                let duration = parse_duration(text)
                    .map_err(|_| refuse(item, "is not a duration such as 90m, 36h, 7d or 4w"))?;
                r.keep_within = Some(duration);
            }
            "if-changed" => self.if_changed = flag(item, value)?,
            "catch-up" => self.catch_up = flag(item, value)?,
            "incremental" => self.incremental = flag(item, value)?,
            "full-every" => self.full_every = Some(count(item, value)?),
            "no-xattrs" => self.no_xattrs = flag(item, value)?,
            "exclude" => {
                let pattern = ExcludePattern::parse(need(item, value)?)
                    .map_err(|why| refuse(item, format!("is not a valid pattern: {why}")))?;
                self.excludes.patterns.push(pattern);
            }
            "exclude-from" => self
                .excludes
                .from_files
                .push(need(item, value)?.to_string()),
            "exclude-caches" => self.excludes.caches = flag(item, value)?,
            "exclude-if-present" => {
                let name = need(item, value)?;
                if name.contains('/') || name == "." || name == ".." {
                    return Err(refuse(item, "must be a plain file name"));
                }
                self.excludes.if_present.push(name.to_string());
            }
            "one-file-system" => self.excludes.one_file_system = flag(item, value)?,
            "exclude-larger-than" => {
                let size = crate::model::parse_size(need(item, value)?).ok_or_else(|| {
                    refuse(
                        item,
                        "is not a size such as 500k, 20M or 2G (powers of 1024)",
                    )
                })?;
                self.excludes.larger_than = Some(size);
            }
            "encrypt-to" => {
                let recipient =
                    Recipient::parse(need(item, value)?).map_err(|why| refuse(item, why))?;
                self.encrypt_to.push(recipient);
            }
            "encrypt-to-file" => self.encrypt_to_files.push(need(item, value)?.to_string()),
            "copy-to" => {
                let target =
                    RemoteTarget::parse(need(item, value)?).map_err(|why| refuse(item, why))?;
                self.copy_to = Some(target);
            }
            "remote-keep" => self.remote_keep = Some(count(item, value)?),
            "also" => self.also.push(need(item, value)?.to_string()),
            "before" => self.hooks.before = Some(command(item, value)?),
            "after" => self.hooks.after = Some(command(item, value)?),
            "on-failure" => self.hooks.on_failure = Some(command(item, value)?),
            "ping" => self.ping = Some(ping_url(item, value)?),
            _ => return Err(refuse(item, "is not a known option")),
        }
        Ok(())
    }

    /// `full-every` only with `incremental`; `incremental` only with a
    /// history to chain (without retention each run replaces the last).
    fn check_incremental(&self) -> Result<(), OptionError> {
        if let Some(n) = self.full_every
            && !self.incremental
        {
            return Err(refuse(&format!("full-every={n}"), "needs incremental"));
        }
        if self.incremental && !self.keeps_history() {
            return Err(refuse(
                "incremental",
                "needs a keep-* or min-keep option: a chain needs the archives it builds on",
            ));
        }
        if self.incremental && !self.also.is_empty() {
            // The incremental walk follows one source; an also= source
            // would silently be left out of every incremental.
            return Err(refuse(
                "incremental",
                "cannot be combined with also=PATH yet: give each source its own schedule",
            ));
        }
        Ok(())
    }

    fn check_level(&self) -> Result<(), OptionError> {
        let Some(level) = self.level else {
            return Ok(());
        };
        let item = format!("level={level}");
        match self.format.levels() {
            None => Err(refuse(&item, "needs format=tar.gz or format=tar.zst")),
            Some((range, _)) if !range.contains(&level) => Err(refuse(
                &item,
                format!(
                    "is out of range for {}: {} to {}",
                    self.format.extension(),
                    range.start(),
                    range.end()
                ),
            )),
            Some(_) => Ok(()),
        }
    }
}

/// Where one item of an options field lies, and whether it holds a quote
/// that never closes (it then runs to the end of the field).
struct Span {
    start: usize,
    end: usize,
    /// The separator after the item, if any.
    separator: Option<u8>,
    unterminated: bool,
}

/// The items of an options field, split at each `,` and `;` outside a
/// quoted value. [`unquote`] reads a value the same way.
fn item_spans(field: &str) -> Vec<Span> {
    let bytes = field.as_bytes();
    let is_separator = |b: u8| b == b',' || b == b';';
    let mut spans = Vec::new();
    let (mut start, mut i) = (0, 0);
    loop {
        while i < bytes.len() && bytes[i] != b'=' && !is_separator(bytes[i]) {
            i += 1;
        }
        if bytes.get(i) == Some(&b'=') && bytes.get(i + 1) == Some(&b'"') {
            i += 2;
            let mut closed = false;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' if matches!(bytes.get(i + 1), Some(b'"' | b'\\')) => i += 2,
                    b'"' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
            if !closed {
                spans.push(Span {
                    start,
                    end: bytes.len(),
                    separator: None,
                    unterminated: true,
                });
                return spans;
            }
        }
        while i < bytes.len() && !is_separator(bytes[i]) {
            i += 1;
        }
        spans.push(Span {
            start,
            end: i,
            separator: bytes.get(i).copied(),
            unterminated: false,
        });
        if i >= bytes.len() {
            return spans;
        }
        i += 1;
        start = i;
    }
}

/// Positions of the `separator`s (`,` or `;`) of `field` that lie outside
/// quoted values: where the schedule line splits into fields.
pub(super) fn unquoted_positions(field: &str, separator: u8) -> Vec<usize> {
    item_spans(field)
        .into_iter()
        .filter(|span| span.separator == Some(separator))
        .map(|span| span.end)
        .collect()
}

/// A value as typed: a bare value is itself; a quoted one loses its quotes
/// and its two escapes.
fn unquote(value: &str) -> Result<std::borrow::Cow<'_, str>, &'static str> {
    let Some(inner) = value.strip_prefix('"') else {
        return Ok(value.into());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.clone().next() {
                Some(escaped @ ('"' | '\\')) => {
                    out.push(escaped);
                    chars.next();
                }
                _ => out.push('\\'),
            },
            '"' if chars.as_str().is_empty() => return Ok(out.into()),
            '"' => {
                return Err(
                    "has text after its closing quote (a quoted value ends at a comma or the end of the line)",
                );
            }
            c => out.push(c),
        }
    }
    Err("has an unterminated quote (a value that starts with \" must end with \")")
}

/// `value` as an option value that reads back as itself: bare when it
/// needs no quotes, else quoted with `"` and `\\` escaped.
pub fn quote_value(value: &str) -> String {
    let needs_quotes = value.is_empty() || value.starts_with('"') || value.contains([',', ';']);
    if !needs_quotes {
        return value.to_string();
    }
    let mut quoted = String::from('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

fn need<'a>(item: &str, value: Option<&'a str>) -> Result<&'a str, OptionError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(refuse(item, "needs a value")),
    }
}

fn count(item: &str, value: Option<&str>) -> Result<u32, OptionError> {
    let text = need(item, value)?;
    match text.parse::<u32>() {
        Ok(n) if n > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(refuse(item, "must be a whole number of at least 1")),
    }
}

fn flag(item: &str, value: Option<&str>) -> Result<bool, OptionError> {
    match value {
        None => Ok(true),
        Some(_) => Err(refuse(item, "takes no value")),
    }
}

fn command(item: &str, value: Option<&str>) -> Result<String, OptionError> {
    Ok(need(item, value)?.to_string())
}

/// An `http://` or `https://` URL with a host, and no whitespace: where
/// `ping=` sends its requests (the HTTP client checks the rest).
fn ping_url(item: &str, value: Option<&str>) -> Result<String, OptionError> {
    let url = need(item, value)?;
    let scheme_end = url.find("://").unwrap_or(0);
    let scheme = url[..scheme_end].to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(refuse(item, "must be an http:// or https:// URL"));
    }
    let rest = &url[scheme_end + 3..];
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') || host.starts_with('@') {
        return Err(refuse(item, "has no host"));
    }
    if url.chars().any(char::is_whitespace) {
        return Err(refuse(item, "must not contain spaces"));
    }
    Ok(url.to_string())
}

/// A duration such as `90m`, `36h`, `7d` or `4w` (also `s` for seconds).
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let bad = || {
        format!(
            "\"{}\" is not a duration such as 90m, 36h, 7d or 4w",
            quote_field(text)
        )
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = text.split_at(split);
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(seconds)
        .filter(|&s| s > 0)
        .and_then(TimeDelta::try_seconds)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_options_parse() {
        let o = Options::parse(
            "format=tar.zst,level=19,keep-last=3,keep-daily=7,keep-within=36h,min-keep=2,if-changed,catch-up,before=echo hi,after=true,on-failure=logger x",
        )
        .unwrap();
        assert_eq!(o.format, Format::TarZst);
        assert_eq!(o.effective_level(), Some(19));
        assert_eq!(o.retention.keep_last, Some(3));
        assert_eq!(o.retention.keep_within, Some(TimeDelta::hours(36)));
        assert!(o.keeps_history() && o.if_changed && o.catch_up);
        assert_eq!(o.hooks.before.as_deref(), Some("echo hi"));
    }

    #[test]
    fn defaults_are_the_spec_behaviour() {
        let o = Options::default();
        assert_eq!(o.format, Format::Tar);
        assert!(!o.keeps_history());
        assert_eq!(
            Options::parse("format=tar.gz").unwrap().effective_level(),
            Some(6)
        );
    }

    #[test]
    fn bad_options_name_the_option() {
        let cases = [
            ("colour=blue", "colour=blue"),
            ("format=zip", "format=zip"),
            ("level=3", "level=3"),
            ("format=tar.gz,level=12", "level=12"),
            ("keep-last=0", "keep-last=0"),
            ("keep-last=-1", "keep-last=-1"),
            ("keep-last", "keep-last"),
            ("keep-within=7y", "keep-within=7y"),
            ("if-changed=yes", "if-changed=yes"),
            ("before=", "before="),
            ("keep-last=1,keep-last=2", "keep-last=2"),
            ("", ""),
            ("catch-up,before=a\nb", "before=a\nb"),
            ("after=x\r", "after=x\r"),
            ("on-failure=\u{1b}[31m", "on-failure=\u{1b}[31m"),
        ];
        for (field, option) in cases {
            let err = Options::parse(field).unwrap_err();
            assert_eq!(err.option, option, "{field}");
        }
    }

    /// `create --help` lists every option `apply` knows, and each listed
    /// syntax is one `parse` accepts.
    #[test]
    fn the_help_lists_every_option() {
        let source = include_str!("options.rs");
        let apply =
            &source[source.find("fn apply(").unwrap()..source.find("fn check_level(").unwrap()];
        let mut keys: Vec<&str> = apply
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"')?.split_once("\" =>"))
            .map(|(key, _)| key)
            .collect();
        assert_eq!(keys.len(), 29, "{keys:?}");
        let mut listed: Vec<&str> = OPTION_HELP
            .iter()
            .map(|(syntax, _)| syntax.split('=').next().unwrap())
            .collect();
        keys.sort_unstable();
        listed.sort_unstable();
        assert_eq!(listed, keys);
        let help = help();
        for (syntax, what) in OPTION_HELP {
            assert!(help.contains(&format!("  {syntax}")) && help.contains(what));
        }
        // Each syntax, with a sample value, parses.
        for (syntax, _) in OPTION_HELP {
            let sample = syntax
                .replace("tar|tar.gz|tar.zst", "tar.gz")
                .replace("=N", "=3")
                .replace("=D", "=7d")
                .replace("=CMD", "=true")
                .replace("=PATTERN", "=*.tmp")
                .replace("=FILE", "=excludes.txt")
                .replace("=NAME", "=.nobackup")
                .replace("=SIZE", "=20M")
                .replace("=URL", "=https://hc-ping.com/0f1e")
                .replace(
                    "=RECIPIENT",
                    "=age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
                )
                .replace("=REMOTE:PATH", "=offsite:backups");
            let sample = if sample.starts_with("level") {
                format!("format=tar.gz,{sample}")
            } else if sample == "incremental" {
                "incremental,keep-last=3".to_string()
            } else if sample.starts_with("full-every") {
                format!("incremental,keep-last=3,{sample}")
            } else if sample.starts_with("remote-keep") {
                format!("copy-to=r:p,{sample}")
            } else {
                sample
            };
            assert!(Options::parse(&sample).is_ok(), "{sample}");
        }
    }

    #[test]
    fn quoted_values_hold_separators_and_escapes() {
        let o = Options::parse(
            r#"before="curl -fsS -d 'a,b' https://x/;y",after="say \"hi\" \\ c:\d",on-failure=echo "x"#,
        )
        .unwrap();
        assert_eq!(
            o.hooks.before.as_deref(),
            Some("curl -fsS -d 'a,b' https://x/;y")
        );
        assert_eq!(o.hooks.after.as_deref(), Some(r#"say "hi" \ c:\d"#));
        // A quote that does not start the value is an ordinary character.
        assert_eq!(o.hooks.on_failure.as_deref(), Some(r#"echo "x"#));
        let o = Options::parse(r#"catch-up,before="a""#).unwrap();
        assert_eq!(o.hooks.before.as_deref(), Some("a"));
        assert!(o.catch_up);
    }

    #[test]
    fn bad_quotes_name_the_option() {
        let message = |field: &str| Options::parse(field).unwrap_err().to_string();
        assert_eq!(
            message(r#"catch-up,before="echo a,b"#),
            r#"option "before" has an unterminated quote (a value that starts with " must end with ")"#
        );
        assert_eq!(
            message(r#"before="a\",after=b"#),
            r#"option "before" has an unterminated quote (a value that starts with " must end with ")"#
        );
        assert_eq!(
            message(r#"before="a"b"#),
            r#"option "before="a"b" has text after its closing quote (a quoted value ends at a comma or the end of the line)"#
        );
        assert_eq!(
            message(r#"before="""#),
            r#"option "before=""" needs a value"#
        );
    }

    #[test]
    fn quote_value_reads_back_as_itself() {
        for value in [
            "plain",
            "a,b",
            "a;b",
            r#""start"#,
            r#"mid"dle"#,
            r"back\slash",
            r#"\""#,
            "é,日本",
            r"end\",
        ] {
            let quoted = quote_value(value);
            let o = Options::parse(&format!("before={quoted},catch-up")).unwrap();
            assert_eq!(o.hooks.before.as_deref(), Some(value), "{quoted}");
        }
        assert_eq!(quote_value("plain"), "plain");
        assert_eq!(quote_value(r#"a,"b"\"#), r#""a,\"b\"\\""#);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90m").unwrap(), TimeDelta::minutes(90));
        assert_eq!(parse_duration("4w").unwrap(), TimeDelta::weeks(4));
        for bad in ["", "7", "d", "0d", "1.5h", "-3d", "99999999999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
