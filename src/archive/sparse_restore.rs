//! Reading sparse files back: GNU tar's PAX sparse format 1.0, which our
//! writer uses (`sparse.rs`) and `tar --format=posix --sparse` writes. The
//! header names `…/GNUSparseFile.0/NAME`; PAX records give the real name
//! (`GNU.sparse.name`) and size (`GNU.sparse.realsize`); the entry's data
//! starts with the map (decimal numbers, one a line: the number of data
//! segments, then each one's offset and length, padded with zeros to 512
//! bytes), followed by the segments' bytes. The tar crate does not decode
//! this format, so restore does, checking the map against what the archive
//! really holds before trusting it.

use std::io::{self, Read};
use std::path::PathBuf;

/// Most data segments accepted in one map: bounds the memory a hostile map
/// can claim (the writer stores files with more segments whole).
pub const MAX_SEGMENTS: u64 = 100_000;

/// A sparse entry's real name and size, from its PAX records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseEntry {
    pub name: PathBuf,
    pub realsize: u64,
}

/// The PAX records of an entry if it is a GNU sparse 1.0 file; `Err` with a
/// reason when it claims to be one but its records do not add up.
pub fn sparse_entry(records: &[(Vec<u8>, Vec<u8>)]) -> Option<Result<SparseEntry, String>> {
    let (mut major, mut minor, mut name, mut realsize) = (None, None, None, None);
    for (key, value) in records {
        match key.as_slice() {
            b"GNU.sparse.major" => major = Some(value.clone()),
            b"GNU.sparse.minor" => minor = Some(value.clone()),
            b"GNU.sparse.name" => name = Some(value.clone()),
            b"GNU.sparse.realsize" => realsize = Some(value.clone()),
            _ => {}
        }
    }
    if major.is_none() && name.is_none() && realsize.is_none() {
        return None;
    }
    if major.as_deref() != Some(b"1") || minor.as_deref() != Some(b"0") {
        return Some(Err(
            "is a sparse file in a format other than GNU sparse 1.0".into(),
        ));
    }
    let (Some(name), Some(realsize)) = (name, realsize) else {
        return Some(Err("is a sparse file without its name or size".into()));
    };
    let Some(realsize) = std::str::from_utf8(&realsize)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
    else {
        return Some(Err("is a sparse file with an unreadable size".into()));
    };
    use std::os::unix::ffi::OsStringExt;
    let name = PathBuf::from(std::ffi::OsString::from_vec(name));
    Some(Ok(SparseEntry { name, realsize }))
}

/// The data segments of a sparse entry, read from the start of its data:
/// `(offset, length)` in order, never overlapping, inside the real size,
/// and exactly as many bytes as the entry holds after the map. `Err` holds
/// why the map is refused.
pub fn read_map<R: Read>(
    data: &mut R,
    realsize: u64,
    entry_size: u64,
) -> io::Result<Result<Vec<(u64, u64)>, String>> {
    let mut consumed = 0u64;
    let mut number = || -> io::Result<Option<u64>> {
        let mut value: u64 = 0;
        let mut digits = 0;
        loop {
            let mut byte = [0u8];
            if data.read(&mut byte)? == 0 {
                return Ok(None);
            }
            consumed += 1;
            match byte[0] {
                b'\n' if digits > 0 => return Ok(Some(value)),
                b @ b'0'..=b'9' if digits < 20 => {
                    digits += 1;
                    value = match value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(b - b'0')))
                    {
                        Some(v) => v,
                        None => return Ok(None),
                    };
                }
                _ => return Ok(None),
            }
        }
    };
    let Some(count) = number()? else {
        return Ok(Err("has an unreadable sparse map".into()));
    };
    if count > MAX_SEGMENTS {
        return Ok(Err(format!("has a sparse map of {count} segments")));
    }
    let mut segments = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        let (Some(offset), Some(length)) = (number()?, number()?) else {
            return Ok(Err("has an unreadable sparse map".into()));
        };
        segments.push((offset, length));
    }
    let padded = consumed.div_ceil(512) * 512;
    io::copy(&mut data.take(padded - consumed), &mut io::sink())?;
    let mut end = 0u64;
    let mut stored = 0u64;
    for &(offset, length) in &segments {
        let Some(segment_end) = offset.checked_add(length) else {
            return Ok(Err("has a sparse map that overflows".into()));
        };
        if offset < end || segment_end > realsize {
            return Ok(Err(
                "has a sparse map whose segments overlap or lie past its size".into(),
            ));
        }
        end = segment_end;
        stored += length;
    }
    if padded.checked_add(stored) != Some(entry_size) {
        return Ok(Err(format!(
            "has a sparse map that claims {stored} bytes of data where the archive holds {}",
            entry_size.saturating_sub(padded)
        )));
    }
    Ok(Ok(segments))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str, data: usize) -> Vec<u8> {
        let mut bytes = text.as_bytes().to_vec();
        bytes.resize(bytes.len().div_ceil(512) * 512, 0);
        bytes.extend(std::iter::repeat_n(b'x', data));
        bytes
    }

    #[test]
    fn maps_are_read_and_checked_against_the_data() {
        let bytes = map("2\n0\n4\n100\n3\n", 7);
        let size = bytes.len() as u64;
        let segments = read_map(&mut bytes.as_slice(), 200, size).unwrap().unwrap();
        assert_eq!(segments, [(0, 4), (100, 3)]);
        // A map that lies about the data, overlaps, or passes the size.
        for (text, data, realsize) in [
            ("1\n0\n9\n", 7, 200),
            ("2\n0\n4\n2\n3\n", 7, 200),
            ("1\n0\n7\n", 7, 5),
            ("999999999\n", 0, 10),
            ("x\n", 0, 10),
        ] {
            let bytes = map(text, data);
            let size = bytes.len() as u64;
            assert!(
                read_map(&mut bytes.as_slice(), realsize, size)
                    .unwrap()
                    .is_err(),
                "{text:?}"
            );
        }
    }
}
