//! What an archive holds, one line an entry, as GNU `tar tv` prints it: mode
//! string, owner/group names (ids when there are none), size (`major,minor`
//! for devices, the real size of a sparse file), local date and time, name,
//! and `-> target` or `link to target`. The owner/size column widens as GNU
//! tar's does, so the two listings of one archive are the same text.

use std::io::{self, Read};
use std::path::Path;

use chrono::DateTime;
use tar::EntryType;

use super::pax_tap::{PaxTap, entry_records};
use super::verify::{decompressed, format_of};

/// GNU tar's starting width of the `owner/group size` column.
const OWNER_SIZE_WIDTH: usize = 19;

/// Why an archive cannot be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    #[error("{} is not an archive name (expected .tar, .tar.gz or .tar.zst)", path.display())]
    UnknownFormat { path: std::path::PathBuf },
    #[error("cannot read archive {}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Calls `line` with each entry's line, in archive order; the error of
/// `line` (a closed stdout) stops the listing and is returned.
pub fn list_archive<E>(
    archive: &Path,
    line: &mut dyn FnMut(String) -> Result<(), E>,
) -> Result<Result<(), E>, ListingError> {
    let read_error = |source| ListingError::Read {
        path: archive.to_path_buf(),
        source,
    };
    let format = format_of(archive).ok_or_else(|| ListingError::UnknownFormat {
        path: archive.to_path_buf(),
    })?;
    let file = std::fs::File::open(archive).map_err(read_error)?;
    let reader = PaxTap::new(decompressed(format, io::BufReader::new(file)).map_err(read_error)?);
    let seen = reader.seen();
    let mut tar = tar::Archive::new(reader);
    let mut width = OWNER_SIZE_WIDTH;
    for entry in tar.entries().map_err(read_error)? {
        let mut entry = entry.map_err(read_error)?;
        if entry.header().entry_type() == EntryType::XGlobalHeader {
            continue;
        }
        let records = entry_records(&mut entry, &seen).map_err(read_error)?;
        if let Err(e) = line(entry_line(&entry, &records, &mut width)) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

/// The `tar tv` line of one entry; `width` is the owner/size column's,
/// widened for this line if needed (and from then on, as GNU tar does).
fn entry_line<R: Read>(
    entry: &tar::Entry<'_, R>,
    records: &[(Vec<u8>, Vec<u8>)],
    width: &mut usize,
) -> String {
    let header = entry.header();
    let record = |key: &[u8]| {
        records
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let kind = header.entry_type();
    let named = |name: Option<String>, id: io::Result<u64>, id_key: &[u8]| {
        name.filter(|n| !n.is_empty())
            .or_else(|| record(id_key))
            .unwrap_or_else(|| id.unwrap_or(0).to_string())
    };
    let user = named(
        record(b"uname").or_else(|| {
            header
                .username_bytes()
                .map(|b| String::from_utf8_lossy(b).into())
        }),
        header.uid(),
        b"uid",
    );
    let group = named(
        record(b"gname").or_else(|| {
            header
                .groupname_bytes()
                .map(|b| String::from_utf8_lossy(b).into())
        }),
        header.gid(),
        b"gid",
    );
    let sparse_name = record(b"GNU.sparse.name");
    let size = match kind {
        EntryType::Char | EntryType::Block => format!(
            "{},{}",
            header.device_major().ok().flatten().unwrap_or(0),
            header.device_minor().ok().flatten().unwrap_or(0)
        ),
        _ => record(b"GNU.sparse.realsize")
            .filter(|_| sparse_name.is_some())
            .unwrap_or_else(|| entry.size().to_string()),
    };
    let seconds = record(b"mtime")
        .and_then(|t| t.split('.').next()?.parse::<i64>().ok())
        .or_else(|| header.mtime().ok().and_then(|t| i64::try_from(t).ok()))
        .unwrap_or(0);
    let date = DateTime::from_timestamp(seconds, 0)
        .map(|t| {
            crate::clock::to_local(t)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| seconds.to_string());
    let pad = user.len() + 1 + group.len() + 1 + size.len();
    *width = (*width).max(pad);
    let size_width = *width - pad + size.len();
    let name = match &sparse_name {
        Some(name) => escape(name.as_bytes()),
        None => escape(&entry.path_bytes()),
    };
    let link = || escape(&entry.link_name_bytes().unwrap_or_default());
    let target = match kind {
        EntryType::Symlink => format!(" -> {}", link()),
        EntryType::Link => format!(" link to {}", link()),
        _ => String::new(),
    };
    let mode = mode_string(kind, header.mode().unwrap_or(0));
    format!("{mode} {user}/{group} {size:>size_width$} {date} {name}{target}")
}

/// `drwxr-sr-t` and the like.
fn mode_string(kind: EntryType, mode: u32) -> String {
    let type_char = match kind {
        EntryType::Directory => 'd',
        EntryType::Symlink => 'l',
        EntryType::Link => 'h',
        EntryType::Char => 'c',
        EntryType::Block => 'b',
        EntryType::Fifo => 'p',
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => '-',
        _ => '?',
    };
    let mut text = String::from(type_char);
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (i, (bit, with_x, without_x)) in special.into_iter().enumerate() {
        let shift = 6 - 3 * i;
        let bits = (mode >> shift) & 7;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        text.push(match (mode & bit != 0, bits & 1 != 0) {
            (true, true) => with_x,
            (true, false) => without_x,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    text
}

/// A name as GNU tar's default `escape` quoting prints it: C escapes for
/// control characters, `\\` for a backslash, octal for bytes that are not
/// UTF-8 text.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0c' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x0b' => out.push_str("\\v"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\{b:03o}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\{b:03o}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_ls_and_tar_print_them() {
        assert_eq!(mode_string(EntryType::Directory, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(EntryType::Regular, 0o6750), "-rwsr-s---");
        assert_eq!(mode_string(EntryType::Directory, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(EntryType::Regular, 0o7644), "-rwSr-Sr-T");
        assert_eq!(mode_string(EntryType::Link, 0o644), "hrw-r--r--");
    }

    #[test]
    fn names_are_escaped_as_gnu_tar_escapes_them() {
        assert_eq!(escape(b"plain/name"), "plain/name");
        assert_eq!(escape(b"new\nline\ttab\\"), "new\\nline\\ttab\\\\");
        assert_eq!(escape(b"bad\xffbyte\x01"), "bad\\377byte\\001");
        assert_eq!(escape("é".as_bytes()), "é");
    }
}
