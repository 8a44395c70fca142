//! Checking an archive against its manifest: the SHA-256 of the file is
//! recomputed and the whole archive is read through (decompressed, every tar
//! entry walked to its end) in one streaming pass, so a flipped byte, a
//! truncated file and a damaged compressed stream are all caught with flat
//! memory. Also holds what reading archives back shares: the format of a file
//! name and the decompressing reader.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::manifest::{self, Manifest, Match};
use crate::model::Format;
use crate::primitives::error_chain;

/// Read buffer for the archive file.
const READ_BUFFER: usize = 1 << 16;

/// The format of an archive, from its file name: `.tar`, `.tar.gz` or `.tar.zst`.
pub fn format_of(path: &Path) -> Option<Format> {
    Format::of_file_name(path.file_name()?.to_str()?)
}

/// `reader` decompressed according to `format`: the tar stream.
pub fn decompressed<'a, R: Read + 'a>(format: Format, reader: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match format {
        Format::Tar => Box::new(reader),
        // Several gzip members end to end are one valid stream (parallel gzip).
        Format::TarGz => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Format::TarZst => Box::new(zstd::Decoder::new(reader)?),
    })
}

/// Passes reads through and hashes every byte that goes by.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Reads what is left, then returns the SHA-256 (lower-case hex) and the
    /// number of bytes of everything read.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        let digest = self.hasher.finalize();
        Ok((crate::primitives::hex(&digest), self.bytes))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Walks every entry of the tar stream in `reader` to its end, then reads the
/// stream to its end (the padding after the last entry, the gzip trailer and
/// its CRC). Returns the number of entries.
pub fn read_through<R: Read>(format: Format, reader: R) -> io::Result<u64> {
    let mut archive = tar::Archive::new(decompressed(format, reader)?);
    let mut entries = 0;
    for entry in archive.entries()? {
        let mut entry = entry?;
        io::copy(&mut entry, &mut io::sink())?;
        entries += 1;
    }
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    Ok(entries)
}

/// An archive that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub sha256: String,
    pub size: u64,
    pub entries: u64,
}

/// One thing wrong with an archive.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("no manifest, not verified")]
    NoManifest,
    #[error("manifest {} cannot be read", path.display())]
    BadManifest {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("not an archive name (expected .tar, .tar.gz or .tar.zst)")]
    UnknownFormat,
    #[error("the manifest is for {named}")]
    OtherArchive { named: String },
    #[error("cannot read it")]
    Unreadable {
        #[source]
        source: io::Error,
    },
    #[error("size is {actual} bytes, the manifest says {expected}")]
    Size { actual: u64, expected: u64 },
    #[error("SHA-256 is {actual}, the manifest says {expected}")]
    Checksum { actual: String, expected: String },
    #[error("its chain is not whole")]
    Chain {
        #[source]
        source: super::chain_restore::BrokenChain,
    },
    #[error("does not read through")]
    Damaged {
        #[source]
        source: io::Error,
    },
}

/// Why an archive failed: every problem found, in the order checked.
#[derive(Debug)]
pub struct Failure {
    pub problems: Vec<Problem>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reasons: Vec<String> = self.problems.iter().map(|p| error_chain(p)).collect();
        f.write_str(&reasons.join("; "))
    }
}

impl From<Problem> for Failure {
    fn from(problem: Problem) -> Self {
        Self {
            problems: vec![problem],
        }
    }
}

/// Verifies `archive` against its manifest `<archive>.json`.
///
/// The file is opened before its manifest is read. A run that replaces an
/// archive writes a manifest matching both the old and the new file, renames,
/// then drops the old one from the manifest; so a file opened before the
/// rename may meet a manifest read after it. When the check fails and the
/// name no longer leads to the file that was read, the archive was replaced
/// meanwhile: it is checked again, never reported as failed for that.
pub fn verify(archive: &Path) -> Result<Verified, Failure> {
    let format = format_of(archive).ok_or(Problem::UnknownFormat)?;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let file = File::open(archive).map_err(|source| Problem::Unreadable { source })?;
        let opened = file
            .metadata()
            .map_err(|source| Problem::Unreadable { source })?;
        let result = verify_open(archive, format, file);
        let replaced = || match fs::metadata(archive) {
            Ok(now) => (now.dev(), now.ino()) != (opened.dev(), opened.ino()),
            Err(_) => true,
        };
        if result.is_ok() || attempts >= 5 || !replaced() {
            return result;
        }
    }
}

fn verify_open(archive: &Path, format: Format, file: File) -> Result<Verified, Failure> {
    let manifest = read_manifest(archive)?;
    let mut hashing = HashingReader::new(io::BufReader::with_capacity(READ_BUFFER, file));
    let walked = read_through(format, &mut hashing);
    let (sha256, size) = hashing
        .finish()
        .map_err(|source| Problem::Unreadable { source })?;

    let mut problems = Vec::new();
    let name = archive.file_name().unwrap_or_default().to_string_lossy();
    if manifest.archive != name {
        problems.push(Problem::OtherArchive {
            named: manifest.archive.clone(),
        });
    }
    match manifest.describes(size, &sha256) {
        Match::Current | Match::Previous => {}
        Match::WrongSize { expected } => problems.push(Problem::Size {
            actual: size,
            expected,
        }),
        Match::WrongChecksum { expected } => problems.push(Problem::Checksum {
            actual: sha256.clone(),
            expected,
        }),
    }
    if let Err(source) = super::chain_restore::chain_of(archive, &manifest) {
        problems.push(Problem::Chain { source });
    }
    let entries = match walked {
        Ok(entries) => entries,
        Err(error) => {
            problems.push(Problem::Damaged { source: error });
            0
        }
    };
    if problems.is_empty() {
        Ok(Verified {
            sha256,
            size,
            entries,
        })
    } else {
        Err(Failure { problems })
    }
}

fn read_manifest(archive: &Path) -> Result<Manifest, Problem> {
    manifest::read_manifest(archive).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            Problem::NoManifest
        } else {
            Problem::BadManifest {
                path: manifest::manifest_path(archive),
                source,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_file_name() {
        assert_eq!(format_of(Path::new("b/a_1.tar.gz")), Some(Format::TarGz));
        assert_eq!(format_of(Path::new("a.tar.zst")), Some(Format::TarZst));
        assert_eq!(format_of(Path::new("a.tar")), Some(Format::Tar));
        assert_eq!(format_of(Path::new(".tar")), None);
        assert_eq!(format_of(Path::new("a.tar.json")), None);
        assert_eq!(format_of(Path::new("a.zip")), None);
    }

    #[test]
    fn hashing_reader_hashes_everything_read() {
        let reader = HashingReader::new(&b"abc"[..]);
        let (hex, size) = reader.finish().unwrap();
        assert_eq!(size, 3);
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
