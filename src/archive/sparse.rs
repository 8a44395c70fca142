//! Sparse files, stored as GNU tar stores them with `--sparse` in a PAX
//! archive (format 1.0): the holes are found with `SEEK_DATA`/`SEEK_HOLE`,
//! the entry's data starts with the map (decimal numbers, one per line: the
//! count of segments, then offset and length of each, padded to a 512-byte
//! block) followed by the data segments only. The PAX records
//! `GNU.sparse.major=1`, `GNU.sparse.minor=0`, `GNU.sparse.name` and
//! `GNU.sparse.realsize` say so; GNU tar and bsdtar restore the holes.
//!
//! The data is streamed segment by segment, never buffered whole.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::unistd::{Whence, lseek};

/// One run of data: `offset` and `length` in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub offset: u64,
    pub length: u64,
}

/// More segments than this and the file is stored whole: the map would be
/// larger than the holes are worth, and it is held in memory.
const MAX_SEGMENTS: usize = 100_000;

/// The data segments of `file` (of `size` bytes) when it has holes worth
/// keeping, as GNU tar's map writes them (a last, empty segment at the end
/// of the file when it ends in a hole); `None` for a file to store whole.
pub fn data_segments(file: &File, size: u64, blocks: u64) -> Option<Vec<Segment>> {
    // Cheap test first, as GNU tar does: fewer blocks than bytes.
    if size == 0 || blocks.saturating_mul(512) >= size {
        return None;
    }
    let at = |offset: u64, whence| {
        let offset = i64::try_from(offset).ok()?;
        match lseek(file.as_fd(), offset, whence) {
            Ok(found) => u64::try_from(found).ok(),
            Err(Errno::ENXIO) => Some(size), // no more data
            Err(_) => None,
        }
    };
    let mut segments = Vec::new();
    let mut offset = 0;
    while offset < size {
        let start = at(offset, Whence::SeekData)?.min(size);
        if start >= size {
            break;
        }
        let end = at(start, Whence::SeekHole)?.min(size);
        if end <= start {
            return None;
        }
        segments.push(Segment {
            offset: start,
            length: end - start,
        });
        if segments.len() > MAX_SEGMENTS {
            return None;
        }
        offset = end;
    }
    if segments.len() == 1 && segments[0].length == size {
        return None; // no hole after all
    }
    if segments.last().is_none_or(|s| s.offset + s.length < size) {
        segments.push(Segment {
            offset: size,
            length: 0,
        });
    }
    Some(segments)
}

/// The map block that starts the entry's data, padded to 512 bytes.
pub fn map_block(segments: &[Segment]) -> Vec<u8> {
    let mut map = format!("{}\n", segments.len());
    for segment in segments {
        map.push_str(&format!("{}\n{}\n", segment.offset, segment.length));
    }
    let mut bytes = map.into_bytes();
    bytes.resize(bytes.len().div_ceil(512) * 512, 0);
    bytes
}

/// The entry's data size: the map and the data segments.
pub fn stored_size(segments: &[Segment]) -> u64 {
    map_block(segments).len() as u64 + segments.iter().map(|s| s.length).sum::<u64>()
}

/// Reads the map, then each segment from the file. A segment that comes
/// up short (the file shrank) is zero-filled, so the entry keeps the size
/// its header states; what happened is kept for the report.
pub struct SparseReader {
    map: io::Cursor<Vec<u8>>,
    file: File,
    segments: std::vec::IntoIter<Segment>,
    /// Bytes left in the current segment.
    left: u64,
    short: bool,
}

impl SparseReader {
    pub fn new(file: File, segments: Vec<Segment>) -> Self {
        Self {
            map: io::Cursor::new(map_block(&segments)),
            file,
            segments: segments.into_iter(),
            left: 0,
            short: false,
        }
    }

    /// Whether some segment had to be zero-filled.
    pub fn came_up_short(&self) -> bool {
        self.short
    }
}

impl Read for SparseReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.map.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        while self.left == 0 {
            match self.segments.next() {
                Some(segment) => {
                    self.file.seek(SeekFrom::Start(segment.offset))?;
                    self.left = segment.length;
                }
                None => return Ok(0),
            }
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let got = loop {
            match self.file.read(&mut buf[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        let got = if got == 0 {
            self.short = true;
            buf[..want].fill(0);
            want
        } else {
            got
        };
        self.left -= got as u64;
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn holes_are_found_and_only_data_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let mut file = File::create(&path).unwrap();
        file.seek(SeekFrom::Start(1 << 20)).unwrap();
        file.write_all(b"middle").unwrap();
        file.set_len(4 << 20).unwrap();
        file.sync_all().unwrap();
        let file = File::open(&path).unwrap();
        let meta = file.metadata().unwrap();
        use std::os::unix::fs::MetadataExt;
        let segments = data_segments(&file, meta.len(), meta.blocks()).expect("sparse");
        // The file system allocates whole blocks around the data.
        assert_eq!(segments.len(), 2, "{segments:?}");
        let data = segments[0];
        assert!(data.offset <= 1 << 20 && data.offset + data.length >= (1 << 20) + 6);
        assert_eq!(
            segments[1],
            Segment {
                offset: 4 << 20,
                length: 0
            }
        );
        let mut stored = Vec::new();
        SparseReader::new(file, segments.clone())
            .read_to_end(&mut stored)
            .unwrap();
        assert_eq!(stored.len() as u64, stored_size(&segments));
        let map = String::from_utf8_lossy(&stored[..512]);
        assert!(map.starts_with(&format!("2\n{}\n{}\n", data.offset, data.length)));
    }

    #[test]
    fn a_file_without_holes_is_stored_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full");
        std::fs::write(&path, vec![1u8; 100_000]).unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(data_segments(&file, 100_000, 1_000), None);
    }
}
