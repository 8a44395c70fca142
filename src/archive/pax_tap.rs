//! The PAX records of each entry, read correctly. The tar crate (0.4.46)
//! splits a PAX header's data at every newline, so GNU tar's ACL text
//! (`SCHILY.acl.access=user::rw-\nuser:alice:r--\n…`) and any xattr value
//! holding a newline come back as errors; it also drops the `size` record
//! that follows one. Rather than parse the archive twice, [`PaxTap`] sits
//! between the decompressed stream and the tar crate and follows the same
//! blocks as they go by: it keeps the data of each `x` header and hands it
//! out, keyed by the position of the header it belongs to. Restore and
//! `contents` take the records from here when the positions agree and from
//! the tar crate otherwise (an archive whose layout the tap does not follow,
//! such as old GNU sparse headers), so the tap can only add information.

use std::cell::RefCell;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::rc::Rc;

use super::pax::parse_records;

/// What the tap has seen: the PAX data of the latest entry and where that
/// entry's header starts in the stream.
#[derive(Debug, Default)]
struct Seen {
    entry: Option<(u64, Vec<u8>)>,
}

/// A handle on what a [`PaxTap`] saw, kept after the tap moves into the
/// tar crate's `Archive`.
#[derive(Debug, Clone, Default)]
pub struct PaxRecordsSeen(Rc<RefCell<Seen>>);

/// Owned `(key, value)` records of one entry.
pub type Records = Vec<(Vec<u8>, Vec<u8>)>;

impl PaxRecordsSeen {
    /// The records of the entry whose header starts at `header_position`
    /// (`tar::Entry::raw_header_position`), if the tap followed the stream
    /// to it; `Some(vec![])` for an entry without a PAX header.
    pub fn for_entry(&self, header_position: u64) -> Option<Records> {
        let seen = self.0.borrow();
        let (position, data) = seen.entry.as_ref()?;
        if *position != header_position {
            return None;
        }
        let records = parse_records(data)?;
        Some(
            records
                .into_iter()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect(),
        )
    }
}

/// Where the tap is in the tar stream.
#[derive(Debug)]
enum State {
    /// Filling a 512-byte header block.
    Header {
        block: Box<[u8; 512]>,
        filled: usize,
    },
    /// Keeping an `x` header's data, then skipping its padding.
    Pax { left: u64, padding: u64 },
    /// Skipping an entry's data and padding.
    Skip { left: u64 },
    /// The layout was not understood: nothing more is recorded.
    Lost,
}

/// A reader that passes the stream through unchanged, noting PAX headers.
pub struct PaxTap<R> {
    inner: R,
    position: u64,
    state: State,
    /// The data of the `x` header waiting for its entry.
    pending: Option<Vec<u8>>,
    seen: PaxRecordsSeen,
}

/// Bounds the memory one PAX header may take (the tar crate reads it whole
/// as well).
const MAX_PAX_DATA: u64 = 64 << 20;

impl<R: Read> PaxTap<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            position: 0,
            state: Self::new_header(),
            pending: None,
            seen: PaxRecordsSeen::default(),
        }
    }

    pub fn seen(&self) -> PaxRecordsSeen {
        self.seen.clone()
    }

    fn new_header() -> State {
        State::Header {
            block: Box::new([0; 512]),
            filled: 0,
        }
    }

    /// Follows `chunk`, which starts at `self.position` in the stream.
    fn follow(&mut self, chunk: &[u8]) {
        let mut bytes = chunk;
        while !bytes.is_empty() {
            match &mut self.state {
                State::Lost => return,
                State::Skip { left } => {
                    let n = (*left).min(bytes.len() as u64) as usize;
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.state = Self::new_header();
                    }
                }
                State::Pax { left, padding } => {
                    let n = (*left).min(bytes.len() as u64) as usize;
                    self.pending
                        .get_or_insert_with(Vec::new)
                        .extend_from_slice(&bytes[..n]);
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.state = skip(*padding);
                    }
                }
                State::Header { block, filled } => {
                    let n = (512 - *filled).min(bytes.len());
                    block[*filled..*filled + n].copy_from_slice(&bytes[..n]);
                    *filled += n;
                    bytes = &bytes[n..];
                    if *filled == 512 {
                        let end = self.position + (chunk.len() - bytes.len()) as u64;
                        let block = **block;
                        self.state = self.after_header(&block, end - 512);
                    }
                }
            }
        }
    }

    /// The state after a complete header block starting at `start`.
    fn after_header(&mut self, block: &[u8; 512], start: u64) -> State {
        if block.iter().all(|&b| b == 0) {
            return Self::new_header(); // end-of-archive blocks
        }
        let Some(size) = header_size(block) else {
            return State::Lost;
        };
        let padded = |size: u64| size.div_ceil(512) * 512;
        match block[156] {
            b'x' if self.pending.is_none() && size <= MAX_PAX_DATA => {
                self.pending = Some(Vec::new());
                if size == 0 {
                    return Self::new_header();
                }
                State::Pax {
                    left: size,
                    padding: padded(size) - size,
                }
            }
            b'x' => State::Lost,
            b'g' | b'L' | b'K' => skip(padded(size)),
            b'S' => State::Lost, // old GNU sparse: extension blocks follow
            _ => {
                let data = self.pending.take().unwrap_or_default();
                let size = parse_records(&data)
                    .and_then(|records| {
                        records
                            .iter()
                            .find(|(k, _)| *k == b"size")
                            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
                    })
                    .unwrap_or(size);
                self.seen.0.borrow_mut().entry = Some((start, data));
                skip(padded(size))
            }
        }
    }
}

fn skip(left: u64) -> State {
    if left == 0 {
        PaxTap::<io::Empty>::new_header()
    } else {
        State::Skip { left }
    }
}

/// The size field of a header: octal, or base-256 when its top bit is set.
fn header_size(block: &[u8; 512]) -> Option<u64> {
    let field = &block[124..136];
    if field[0] & 0x80 != 0 {
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(value);
    }
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

impl<R: Read> Read for PaxTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.follow(&buf[..n]);
        self.position += n as u64;
        Ok(n)
    }
}

/// Seeking over entry data, as `tar::Archive::entries_with_seek` does to
/// skip what it was not asked to read: the tap follows a forward seek
/// within the data (and padding) of the entry it is in, the only seek the
/// tar crate makes. Any other seek means the tar crate and the tap read the
/// blocks differently, and is refused rather than leave a PAX record behind
/// unseen.
impl<R: Read + Seek> Seek for PaxTap<BufReader<R>> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let (by, offset) = match pos {
            SeekFrom::Current(offset) => (u64::try_from(offset).ok(), offset),
            _ => (None, 0),
        };
        let follows = match (&self.state, by) {
            (State::Lost, Some(_)) | (_, Some(0)) => true,
            (State::Skip { left }, Some(by)) => by <= *left,
            _ => false,
        };
        let Some(by) = by.filter(|_| follows) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the archive's blocks do not follow one another as its headers say",
            ));
        };
        // Within what is buffered, no system call is made.
        self.inner.seek_relative(offset)?;
        self.position += by;
        if let State::Skip { left } = &mut self.state {
            *left -= by;
            if *left == 0 {
                self.state = Self::new_header();
            }
        }
        Ok(self.position)
    }
}

/// The PAX records of `entry`: from the tap when it followed the stream to
/// it, else from the tar crate (records it cannot read are left out).
pub fn entry_records<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    seen: &PaxRecordsSeen,
) -> io::Result<Records> {
    if let Some(records) = seen.for_entry(entry.raw_header_position()) {
        return Ok(records);
    }
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok(Vec::new());
    };
    Ok(extensions
        .filter_map(Result::ok)
        .map(|r| (r.key_bytes().to_vec(), r.value_bytes().to_vec()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::pax::PaxRecords;

    /// An archive of three entries: a file whose PAX header holds an ACL
    /// text with newlines, a plain file, and a large-data file.
    fn archive() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut records = PaxRecords::default();
        records.add_str("SCHILY.acl.access", "user::rw-\ngroup::r--\nother::r--\n");
        records.add("SCHILY.xattr.user.x", b"1\n2");
        records.append_to(&mut builder, "a".as_ref(), 0).unwrap();
        for (name, size) in [("a", 3usize), ("b", 0), ("c", 700)] {
            let mut header = tar::Header::new_ustar();
            header.set_size(size as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, name, vec![b'z'; size].as_slice())
                .unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn records_with_newlines_reach_their_entry_whatever_the_read_sizes() {
        for chunk in [1usize, 7, 512, 100_000] {
            struct Chunked<'a>(&'a [u8], usize);
            impl Read for Chunked<'_> {
                fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                    let n = self.0.len().min(self.1).min(buf.len());
                    buf[..n].copy_from_slice(&self.0[..n]);
                    self.0 = &self.0[n..];
                    Ok(n)
                }
            }
            let bytes = archive();
            let tap = PaxTap::new(Chunked(&bytes, chunk));
            let seen = tap.seen();
            let mut archive = tar::Archive::new(tap);
            let mut found = Vec::new();
            for entry in archive.entries().unwrap() {
                let mut entry = entry.unwrap();
                let records = entry_records(&mut entry, &seen).unwrap();
                found.push((entry.path().unwrap().display().to_string(), records));
            }
            let acl = (
                b"SCHILY.acl.access".to_vec(),
                b"user::rw-\ngroup::r--\nother::r--\n".to_vec(),
            );
            let xattr = (b"SCHILY.xattr.user.x".to_vec(), b"1\n2".to_vec());
            assert_eq!(
                found,
                [
                    ("a".to_string(), vec![acl, xattr]),
                    ("b".to_string(), vec![]),
                    ("c".to_string(), vec![])
                ],
                "reads of {chunk} bytes"
            );
        }
    }

    #[test]
    fn records_reach_the_entries_after_data_sought_over() {
        let bytes = archive();
        let tap = PaxTap::new(io::BufReader::with_capacity(512, io::Cursor::new(&bytes)));
        let seen = tap.seen();
        let mut archive = tar::Archive::new(tap);
        let mut found = Vec::new();
        for entry in archive.entries_with_seek().unwrap() {
            let mut entry = entry.unwrap();
            let records = entry_records(&mut entry, &seen).unwrap();
            found.push((entry.path().unwrap().display().to_string(), records.len()));
        }
        let found: Vec<_> = found.iter().map(|(n, r)| (n.as_str(), *r)).collect();
        assert_eq!(found, [("a", 2), ("b", 0), ("c", 0)]);

        // Records after a 700-byte entry sought over, in a reader whose
        // buffer holds less than the data.
        let mut builder = tar::Builder::new(Vec::new());
        for name in ["big", "marked"] {
            if name == "marked" {
                let mut records = PaxRecords::default();
                records.add("SCHILY.xattr.user.x", b"1\n2");
                records.append_to(&mut builder, name.as_ref(), 0).unwrap();
            }
            let mut header = tar::Header::new_ustar();
            header.set_size(700);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, name, vec![b'z'; 700].as_slice())
                .unwrap();
        }
        let bytes = builder.into_inner().unwrap();
        let tap = PaxTap::new(io::BufReader::with_capacity(512, io::Cursor::new(&bytes)));
        let seen = tap.seen();
        let mut archive = tar::Archive::new(tap);
        let mut entries = archive.entries_with_seek().unwrap();
        let first = entries.next().unwrap().unwrap();
        assert_eq!(first.path().unwrap().to_str(), Some("big"));
        drop(first);
        let mut marked = entries.next().unwrap().unwrap();
        assert_eq!(
            entry_records(&mut marked, &seen).unwrap(),
            [(b"SCHILY.xattr.user.x".to_vec(), b"1\n2".to_vec())]
        );
    }

    #[test]
    fn a_seek_the_tap_cannot_follow_is_refused() {
        let bytes = archive();
        let mut tap = PaxTap::new(io::BufReader::new(io::Cursor::new(&bytes)));
        // In a header: nothing to seek over.
        assert_eq!(
            tap.seek(SeekFrom::Current(1)).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert!(tap.seek(SeekFrom::Start(0)).is_err());
        // Into an entry's data, then past its end into the next header.
        let mut header = [0u8; 512];
        tap.read_exact(&mut header).unwrap(); // the `x` header of "a"
        let mut pax = vec![0u8; 512];
        tap.read_exact(&mut pax).unwrap();
        tap.read_exact(&mut header).unwrap(); // "a", 3 bytes padded to 512
        assert_eq!(tap.stream_position().unwrap(), 1536);
        assert!(tap.seek(SeekFrom::Current(513)).is_err());
        assert_eq!(tap.seek(SeekFrom::Current(512)).unwrap(), 2048);
    }
}
