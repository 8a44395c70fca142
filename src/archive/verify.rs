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

use super::encrypt::Identities;
use super::manifest::{self, Manifest, Match};
use crate::model::{Format, is_encrypted_name};
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
    /// False for an encrypted archive checked without its key: only the
    /// stored file's size and SHA-256 were compared (entries is then the
    /// manifest's count).
    pub read_through: bool,
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
    #[error("plaintext SHA-256 is {actual}, the manifest says {expected}")]
    PlaintextChecksum { actual: String, expected: String },
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
    verify_with(archive, None)
}

/// [`verify`], decrypting an encrypted archive with `identities` when
/// given (and then checking its plaintext SHA-256 and reading it through);
/// without them an encrypted archive's stored SHA-256 and size are checked.
pub fn verify_with(archive: &Path, identities: Option<&Identities>) -> Result<Verified, Failure> {
    let format = format_of(archive).ok_or(Problem::UnknownFormat)?;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let file = File::open(archive).map_err(|source| Problem::Unreadable { source })?;
        let opened = file
            .metadata()
            .map_err(|source| Problem::Unreadable { source })?;
        let result = verify_open(archive, format, identities, file);
        let replaced = || match fs::metadata(archive) {
            Ok(now) => (now.dev(), now.ino()) != (opened.dev(), opened.ino()),
            Err(_) => true,
        };
        if result.is_ok() || attempts >= 5 || !replaced() {
            return result;
        }
    }
}

fn verify_open(
    archive: &Path,
    format: Format,
    identities: Option<&Identities>,
    file: File,
) -> Result<Verified, Failure> {
    let manifest = read_manifest(archive)?;
    let name = archive.file_name().unwrap_or_default().to_string_lossy();
    let stream = Stream {
        format,
        encrypted: is_encrypted_name(&name),
        identities,
    };
    let checked = check_stream(&manifest, &name, stream, file);
    // An incremental is only as good as its chain, which lies beside it.
    match (checked, super::chain_restore::chain_of(archive, &manifest)) {
        (checked, Ok(_)) => checked,
        (Ok(_), Err(source)) => Err(Failure {
            problems: vec![Problem::Chain { source }],
        }),
        (Err(mut failure), Err(source)) => {
            failure.problems.push(Problem::Chain { source });
            Err(failure)
        }
    }
}

/// How to read an archive's stored bytes back.
#[derive(Clone, Copy)]
pub struct Stream<'a> {
    pub format: Format,
    /// An age file (`.age`).
    pub encrypted: bool,
    /// The keys to decrypt it with, if given.
    pub identities: Option<&'a Identities>,
}

/// Checks the stored bytes `reader` of the archive `name` against its
/// `manifest`: size and SHA-256, and, unless it is encrypted and no key was
/// given, the plaintext's SHA-256 (when encrypted) and a read-through.
/// Shared by the local `verify` and `verify --remote`.
pub fn check_stream<R: Read>(
    manifest: &Manifest,
    name: &str,
    stream: Stream<'_>,
    reader: R,
) -> Result<Verified, Failure> {
    let mut hashing = HashingReader::new(io::BufReader::with_capacity(READ_BUFFER, reader));
    let mut plaintext = None;
    let walked = match (stream.encrypted, stream.identities) {
        (false, _) => Some(read_through(stream.format, &mut hashing)),
        (true, None) => None,
        (true, Some(identities)) => Some(
            identities
                .decrypt(io::BufReader::with_capacity(READ_BUFFER, &mut hashing))
                .and_then(|decrypted| {
                    let mut plain = HashingReader::new(decrypted);
                    let entries = read_through(stream.format, &mut plain)?;
                    plaintext = Some(plain.finish()?.0);
                    Ok(entries)
                }),
        ),
    };
    let (sha256, size) = hashing
        .finish()
        .map_err(|source| Problem::Unreadable { source })?;

    let mut problems = Vec::new();
    if manifest.archive != name {
        problems.push(Problem::OtherArchive {
            named: manifest.archive.clone(),
        });
    }
    problems.extend(compare(manifest, size, &sha256));
    if let (Some(actual), Some(expected)) = (&plaintext, &manifest.plaintext_sha256)
        && !actual.eq_ignore_ascii_case(expected)
    {
        problems.push(Problem::PlaintextChecksum {
            actual: actual.clone(),
            expected: expected.clone(),
        });
    }
    let read_through = walked.is_some();
    let entries = match walked {
        None => manifest.entries,
        Some(Ok(entries)) => entries,
        Some(Err(error)) => {
            problems.push(Problem::Damaged { source: error });
            0
        }
    };
    if problems.is_empty() {
        Ok(Verified {
            sha256,
            size,
            entries,
            read_through,
        })
    } else {
        Err(Failure { problems })
    }
}

/// What is wrong with a file of `size` bytes and this `sha256` for its
/// `manifest`: nothing, its size or its checksum.
pub fn compare(manifest: &Manifest, size: u64, sha256: &str) -> Option<Problem> {
    match manifest.describes(size, sha256) {
        Match::Current | Match::Previous => None,
        Match::WrongSize { expected } => Some(Problem::Size {
            actual: size,
            expected,
        }),
        Match::WrongChecksum { expected } => Some(Problem::Checksum {
            actual: sha256.to_string(),
            expected,
        }),
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
