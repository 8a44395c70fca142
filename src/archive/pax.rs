//! PAX extended headers (POSIX.1-2001, what `tar --format=posix` writes): the
//! `key=value` records that carry what a ustar header cannot hold (long
//! names, sub-second times, large ids and sizes, owner names, xattrs, ACLs,
//! the sparse map's real size), written as a type `x` entry just before the
//! entry they describe.
//!
//! The tar crate reads these but (in 0.4.46) writes only GNU long-name
//! entries, so the few lines that write them live here. Its reader also
//! splits records at every newline, so a value holding one (GNU tar's ACL
//! text, an xattr) comes back broken: [`parse_records`] reads them by their
//! lengths, as the standard says.

use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tar::{Builder, EntryType, Header};

/// The records for one entry, in the order they were added.
#[derive(Debug, Default)]
pub struct PaxRecords {
    bytes: Vec<u8>,
}

impl PaxRecords {
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Adds `LEN KEY=VALUE\n`, where LEN counts the whole record, its own
    /// digits included.
    pub fn add(&mut self, key: &str, value: &[u8]) {
        let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        self.bytes.extend_from_slice(len.to_string().as_bytes());
        self.bytes.push(b' ');
        self.bytes.extend_from_slice(key.as_bytes());
        self.bytes.push(b'=');
        self.bytes.extend_from_slice(value);
        self.bytes.push(b'\n');
    }

    /// Adds every record of `other` after these.
    pub fn append(&mut self, other: PaxRecords) {
        self.bytes.extend(other.bytes);
    }

    pub fn add_str(&mut self, key: &str, value: &str) {
        self.add(key, value.as_bytes());
    }

    /// A time as GNU tar writes it: seconds, and nanoseconds when there are.
    pub fn add_time(&mut self, key: &str, seconds: i64, nanoseconds: i64) {
        let value = match (seconds, nanoseconds) {
            (s, 0) => s.to_string(),
            // Before 1970 with a fraction: -1.25 s is `-1.250000000`, i.e. the
            // seconds round towards zero and the fraction extends them.
            (s, n) if s < 0 => format!("-{}.{:09}", -(s + 1), 1_000_000_000 - n),
            (s, n) => format!("{s}.{n:09}"),
        };
        self.add_str(key, &value);
    }

    /// Writes the records as an `x` entry named as GNU tar names it
    /// (`DIR/PaxHeaders/NAME`), unless there are none.
    pub fn append_to<W: Write>(
        &self,
        builder: &mut Builder<W>,
        entry_name: &Path,
        mtime: u64,
    ) -> io::Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let mut header = Header::new_ustar();
        header.set_entry_type(EntryType::XHeader);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_size(self.bytes.len() as u64);
        set_name_lossy(&mut header, &pax_header_name(entry_name));
        header.set_cksum();
        builder.append(&header, self.bytes.as_slice())
    }
}

/// The `(key, value)` records of a PAX header's data, read by their
/// length prefixes; `None` when the data is not a sequence of records.
pub fn parse_records(mut data: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut records = Vec::new();
    while !data.is_empty() {
        let space = data.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&data[..space]).ok()?.parse().ok()?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return None;
        }
        let record = &data[space + 1..len - 1];
        let equals = record.iter().position(|&b| b == b'=')?;
        records.push((&record[..equals], &record[equals + 1..]));
        data = &data[len..];
    }
    Some(records)
}

/// `DIR/PaxHeaders/NAME`, as GNU tar's default `%d/PaxHeaders/%f`.
fn pax_header_name(entry_name: &Path) -> Vec<u8> {
    let mut name = Vec::new();
    if let Some(dir) = entry_name.parent().filter(|d| !d.as_os_str().is_empty()) {
        name.extend_from_slice(dir.as_os_str().as_bytes());
        name.push(b'/');
    }
    name.extend_from_slice(b"PaxHeaders/");
    let base = entry_name.file_name().map_or(&b""[..], |n| n.as_bytes());
    name.extend_from_slice(base);
    name
}

/// Puts as much of `name` as fits into the header's 100-byte name field.
/// Used where a PAX record carries the real name, so the field only has to
/// be harmless: readers that know PAX ignore it.
pub fn set_name_lossy(header: &mut Header, name: &[u8]) {
    let field = &mut header.as_old_mut().name;
    field.fill(0);
    let kept = &name[..name.len().min(field.len())];
    field[..kept.len()].copy_from_slice(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lengths_count_their_own_digits() {
        let mut records = PaxRecords::default();
        records.add_str("mtime", "1577836800.123456789");
        records.add_str("k", "");
        // 7 + 90 bytes: the length grows from one to two digits.
        records.add_str("x", &"v".repeat(92));
        let text = String::from_utf8(records.bytes).unwrap();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let (len, _) = rest.split_once(' ').unwrap();
            let len: usize = len.parse().unwrap();
            assert!(rest[..len].ends_with('\n'), "{rest:?}");
            rest = &rest[len..];
        }
        assert!(text.starts_with("30 mtime=1577836800.123456789\n5 k=\n"));
    }

    #[test]
    fn times_keep_their_nanoseconds() {
        let mut records = PaxRecords::default();
        records.add_time("a", 5, 0);
        records.add_time("b", 5, 7);
        records.add_time("c", -2, 750_000_000);
        assert_eq!(
            String::from_utf8(records.bytes).unwrap(),
            "6 a=5\n17 b=5.000000007\n18 c=-1.250000000\n"
        );
    }

    #[test]
    fn records_are_read_back_by_length_newlines_included() {
        let mut records = PaxRecords::default();
        records.add_str("SCHILY.acl.access", "user::rw-\ngroup::r--\n");
        records.add("SCHILY.xattr.user.bin", b"a=\n\0b");
        records.add_str("path", "");
        assert_eq!(
            parse_records(&records.bytes).unwrap(),
            [
                (&b"SCHILY.acl.access"[..], &b"user::rw-\ngroup::r--\n"[..]),
                (b"SCHILY.xattr.user.bin", b"a=\n\0b"),
                (b"path", b""),
            ]
        );
        for bad in [&b"9 a=b\n"[..], b"x a=b\n", b"6 ab\n", b"5 a=b"] {
            assert_eq!(parse_records(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn header_names_follow_gnu_tar() {
        assert_eq!(pax_header_name(Path::new("t/hl")), b"t/PaxHeaders/hl");
        assert_eq!(pax_header_name(Path::new("t")), b"PaxHeaders/t");
    }
}
