//! The small primitives every layer uses, written once so that a hardening of
//! one reaches every caller at once: atomic replacement of a file, opening a
//! lock file, making a rename durable, hex encoding, and showing untrusted
//! text and error chains on one line.
//!
//! The service runs as root in directories other users may write to, so every
//! file created here is opened with `O_NOFOLLOW` (a symlink planted at the
//! name makes the open fail, it is never followed), temporary files get fresh
//! unpredictable names and are created with `O_EXCL`, and modes are set by
//! the caller, never left to the umask.
//!
//! This is a leaf: it imports nothing from the rest of the crate.

use std::error::Error;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How many characters of untrusted input a message quotes before it is cut.
pub const QUOTE_LIMIT: usize = 120;

/// Replaces `path` with `contents` atomically: a temporary file in the same
/// directory, written, synced, renamed over `path`, and the directory synced.
/// A reader sees the old file or the new one, whole; a crash leaves at worst
/// a temporary file behind. The new file gets `mode`, whatever the umask.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    replace_atomic(path, mode, |file| file.write_all(contents))
}

/// Like [`write_atomic`], with the contents written by `fill`.
pub fn replace_atomic(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let (mut file, temp) = create_temporary(path, "tmp", mode)?;
    let result = (|| {
        fill(&mut file)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        sync_parent_dir(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Length of the random part of a temporary name.
pub const TEMP_RANDOM_LEN: usize = 16;

/// Creates a new file `.NAME.RANDOM.SUFFIX` beside `path` (hidden, so
/// listings never show it) with `O_EXCL|O_NOFOLLOW` and `mode`. The random
/// part is [`TEMP_RANDOM_LEN`] letters and digits; a name that happens to
/// exist is skipped, never opened.
pub fn create_temporary(path: &Path, suffix: &str, mode: u32) -> io::Result<(File, PathBuf)> {
    let mut last_error = None;
    for _ in 0..16 {
        let temp =
            path.with_file_name(temporary_name(path.file_name().unwrap_or_default(), suffix));
        match create_new(&temp, mode) {
            Ok(file) => return Ok((file, temp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no free temporary name")))
}

/// A fresh temporary name for `name`: `.NAME.RANDOM.SUFFIX`, the random part
/// [`TEMP_RANDOM_LEN`] letters and digits. [`create_temporary`] makes its
/// files with it; a remote upload names its temporary copy with it.
pub fn temporary_name(name: &std::ffi::OsStr, suffix: &str) -> OsString {
    let random: String = (0..TEMP_RANDOM_LEN)
        .map(|_| fastrand::alphanumeric())
        .collect();
    let mut temp = OsString::from(".");
    temp.push(name);
    temp.push(format!(".{random}.{suffix}"));
    temp
}

/// True when `file_name` is a temporary name [`create_temporary`] made for
/// `target_name` with `suffix`: `.TARGET.` + random + `.SUFFIX`, exactly.
pub fn is_temporary_of(file_name: &str, target_name: &str, suffix: &str) -> bool {
    file_name
        .strip_prefix('.')
        .and_then(|rest| rest.strip_prefix(target_name))
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(suffix))
        .and_then(|rest| rest.strip_suffix('.'))
        .is_some_and(|random| {
            random.len() == TEMP_RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// The bytes of `path`, which must be a regular file of at most `limit`
/// bytes, with its metadata: a name that leads to a pipe, a device
/// (`/dev/zero`) or a huge file is refused rather than read without end
/// (the open does not wait for a pipe's writer). For files a hostile user
/// may have placed: manifests, key files.
pub fn read_regular(path: &Path, limit: u64) -> io::Result<(Vec<u8>, std::fs::Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {}", human_bytes(limit)),
        ));
    }
    Ok((bytes, meta))
}

/// Creates `path`, which must not exist, with `mode` exactly (the umask is
/// undone), never through a symlink.
pub fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc_flags::NOFOLLOW)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok(file)
}

/// Opens `path` for appending (a log), never through a symlink. A file we
/// create gets `mode` exactly, whatever the umask; an existing one keeps its
/// own.
pub fn open_append(path: &Path, mode: u32) -> io::Result<File> {
    for _ in 0..4 {
        let existing = OpenOptions::new()
            .append(true)
            .custom_flags(libc_flags::NOFOLLOW)
            .open(path);
        match existing {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other.map_err(explain_symlink),
        }
        match create_new(path, mode) {
            // create_new opened it for writing at offset 0: it is empty, so
            // appending from there is the same.
            Ok(file) => return Ok(file),
            // Created by someone else meanwhile: open theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(explain_symlink(e)),
        }
    }
    Err(io::Error::other("the file keeps appearing and vanishing"))
}

/// `ELOOP` from an `O_NOFOLLOW` open means the name is a symlink: say so.
fn explain_symlink(error: io::Error) -> io::Error {
    if error.raw_os_error() == Some(nix::libc::ELOOP) {
        io::Error::new(error.kind(), "it is a symbolic link; refusing to follow it")
    } else {
        error
    }
}

mod libc_flags {
    pub const NOFOLLOW: i32 = nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC;
}

/// Opens (creating it if needed) a file that is only ever `flock`ed, never
/// written: `backups/.NAME.lock`, `.backup_schedules.lock`, ….
pub fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc_flags::NOFOLLOW)
        .open(path)
}

/// Makes a rename in `path`'s directory durable.
pub fn sync_parent_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if dir.as_os_str().is_empty() => File::open(".")?.sync_all(),
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Bytes an unprivileged writer may still use on the filesystem holding
/// `path` (`statvfs`: available blocks times the fragment size).
pub fn free_space(path: &Path) -> nix::Result<u64> {
    let stats = nix::sys::statvfs::statvfs(path)?;
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    let free = (stats.blocks_available() as u64).saturating_mul(stats.fragment_size() as u64);
    Ok(free)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// True for a character that changes how text is laid out rather than
/// showing as itself: a control character (newline, CR, NUL, ESC, DEL, the
/// C1 controls such as U+0085 NEXT LINE), a Unicode line or paragraph
/// separator, a bidirectional override or isolate (which reorder what a
/// terminal shows), or a byte-order mark.
pub fn is_layout_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
        )
}

/// `text` made safe to show on one line of a terminal or a log: control
/// characters (newline, ESC, NUL, …) and the other [`is_layout_char`]s
/// escaped as `\n`, `\u{1b}`, `\u{202e}`, ….
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_layout_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Untrusted input as a message quotes it: escaped like [`printable`] and cut
/// to [`QUOTE_LIMIT`] characters with the number left out, so a 100 KB line
/// gives a one-line error.
pub fn quote(text: &str) -> String {
    quote_at(text, QUOTE_LIMIT)
}

/// Like [`quote`], cut at `limit` characters: for a value quoted inside a
/// message that already quotes the line it comes from, so the two together
/// stay one short line.
pub fn quote_at(text: &str, limit: usize) -> String {
    let total = text.chars().count();
    if total <= limit {
        return printable(text);
    }
    let head: String = text.chars().take(limit).collect();
    format!("{}… ({} more characters)", printable(&head), total - limit)
}

/// An error and its causes on one line, `outer: cause: root cause`, the way
/// every message and log line shows an error. Each level's `Display` says
/// only what went wrong at that level; the causes come from `source()`.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        // Our own errors never repeat their cause; some foreign ones (io
        // errors wrapping another error) show it twice, once is enough.
        if !line.is_empty() && !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// `text` with the secrets URLs carry hidden: the user and password before
/// a host (`https://user:pass@host/` becomes `https://***@host/`) and the
/// query (`?token=…` becomes `?***`). For whatever is logged, printed or
/// sent that may hold a URL from a schedule line or from a child's error
/// (rclone's): its path still says which URL it was.
pub fn redact_urls(text: &str) -> String {
    let ends = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ';' | '<' | '>' | '`');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, url) = rest.split_at(at + 3);
        out.push_str(before);
        let len = url.find(ends).unwrap_or(url.len());
        let (url, after) = url.split_at(len);
        let host_end = url.find(['/', '?', '#']).unwrap_or(url.len());
        let (authority, path) = url.split_at(host_end);
        match authority.rsplit_once('@') {
            Some((_, host)) => {
                out.push_str("***@");
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        match path.split_once('?') {
            Some((path, query)) => {
                out.push_str(path);
                out.push_str("?***");
                if let Some((_, fragment)) = query.split_once('#') {
                    out.push('#');
                    out.push_str(fragment);
                }
            }
            None => out.push_str(path),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Environment variable naming a step at which the process stops itself
/// (SIGSTOP) until it is continued: a testing aid that lets the tests act at
/// exactly that instant (`archive-renamed` of a run, `restore-entry:PATH`
/// of a restore; see the README).
pub const PAUSE_AT_VAR: &str = "BACKUPCTL_PAUSE_AT";

/// Stops the process (SIGSTOP) when `BACKUPCTL_PAUSE_AT` names `step`.
pub fn pause_at(step: &str) {
    if std::env::var_os(PAUSE_AT_VAR).is_some_and(|v| v == step) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
    }
}

/// Bytes in a mebibyte, the unit of the speeds printed beside [`human_bytes`].
pub const MIB: f64 = 1_048_576.0;

/// Sizes as people read them: `512 B`, `3.4 KiB`, `12.0 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn urls_lose_their_credentials_and_queries() {
        assert_eq!(
            redact_urls("ping http://u:p@h:1/x?k=s#f failed; see https://h/y"),
            "ping http://***@h:1/x?***#f failed; see https://h/y"
        );
        assert_eq!(
            redact_urls("a;b;c;ping=https://x@h/p?a=1;keep-last=2"),
            "a;b;c;ping=https://***@h/p?***;keep-last=2"
        );
        assert_eq!(redact_urls("no url: a@b?c"), "no url: a@b?c");
        assert_eq!(
            redact_urls("Put \"https://h/c/f?sig=S\": EOF"),
            "Put \"https://h/c/f?***\": EOF"
        );
    }

    #[test]
    fn atomic_writes_replace_whole_files_with_a_fixed_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left");
    }

    #[test]
    fn planted_symlinks_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let lock = dir.path().join(".x.lock");
        std::os::unix::fs::symlink(&victim, &lock).unwrap();
        assert!(open_lock_file(&lock).is_err());
        let log = dir.path().join("x.log");
        std::os::unix::fs::symlink(&victim, &log).unwrap();
        assert!(open_append(&log, 0o640).is_err());
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn temporary_names_are_fresh_and_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.tar");
        let (_, one) = create_temporary(&target, "partial", 0o600).unwrap();
        let (_, two) = create_temporary(&target, "partial", 0o600).unwrap();
        assert_ne!(one, two);
        let name = one.file_name().unwrap().to_str().unwrap();
        assert!(is_temporary_of(name, "a.tar", "partial"), "{name}");
        assert!(!is_temporary_of(name, "a", "partial"), "{name}");
        assert!(!is_temporary_of(".a.tar.partial", "a.tar", "partial"));
    }

    #[test]
    fn text_is_shown_on_one_line_and_shortened() {
        assert_eq!(printable("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(
            printable("\r\u{7f}\u{85}\u{202e}é"),
            "\\r\\u{7f}\\u{85}\\u{202e}é"
        );
        let long = "x".repeat(100_000);
        let quoted = quote(&long);
        assert!(quoted.len() < 200, "{quoted}");
        assert!(quoted.ends_with("(99880 more characters)"), "{quoted}");
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 512 * 1024), "3.5 MiB");
    }

    #[test]
    fn chains_read_as_one_sentence() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read schedule file x")]
        struct Outer(#[source] io::Error);
        let error = Outer(io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(
            error_chain(&error),
            "cannot read schedule file x: permission denied"
        );
    }
}
