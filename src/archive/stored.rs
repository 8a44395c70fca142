//! Where `restore` reads an archive's stored bytes from, and how it turns
//! them back into the tar stream: the local file or a caller's stream (the
//! remote copy, `rclone cat`), decrypted with age when the archive is
//! encrypted, with the plaintext hashed on the way for the manifest's
//! `plaintext_sha256`.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::encrypt::Identities;
use super::manifest::{self, Manifest};
use super::verify::decompressed;
use crate::model::{Format, is_encrypted_name};

/// A stream of the stored bytes opened by the caller, with the manifest that
/// describes them (a remote copy).
pub struct StreamSource<'a> {
    /// Opens the stored bytes from their start; called once per pass.
    pub open: &'a dyn Fn() -> io::Result<Box<dyn Read + Send>>,
    pub manifest: Manifest,
}

/// What `restore` reads, besides the archive's name.
#[derive(Default, Clone, Copy)]
pub struct Input<'a> {
    /// Read from here instead of the archive's file.
    pub stream: Option<&'a StreamSource<'a>>,
    /// The keys that decrypt an encrypted archive.
    pub identities: Option<&'a Identities>,
    /// The archive's file, opened once: every pass reads this inode from
    /// its start, so the bytes restored are the bytes checked, even if the
    /// name is given to another file in between.
    pub pinned: Option<&'a File>,
}

impl<'a> Input<'a> {
    /// The stored bytes of `archive`, from the start.
    pub fn open(&self, archive: &Path) -> io::Result<Box<dyn Read + Send + 'a>> {
        match self.stream {
            Some(stream) => Ok(Box::new(BufReader::new((stream.open)()?))),
            None => Ok(Box::new(BufReader::new(self.open_file(archive)?))),
        }
    }

    /// The archive's file from its start: the pinned one, or `archive`.
    pub fn open_file(&self, archive: &Path) -> io::Result<File> {
        match self.pinned {
            Some(pinned) => {
                let mut file = pinned.try_clone()?;
                file.seek(SeekFrom::Start(0))?;
                Ok(file)
            }
            None => File::open(archive),
        }
    }

    /// The pinned file of an unencrypted local archive, to be read with
    /// seeks (`None` for a stream, an encrypted archive or a file not
    /// pinned: those are read through).
    pub fn positional(&self, archive: &Path) -> io::Result<Option<Positional<'a>>> {
        match self.pinned {
            Some(file) if self.stream.is_none() && !is_encrypted(archive) => {
                Positional::new(file).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The archive's manifest: the stream's, or the one beside the file.
    pub fn manifest(&self, archive: &Path) -> io::Result<Manifest> {
        match self.stream {
            Some(stream) => Ok(stream.manifest.clone()),
            None => manifest::read_manifest(archive),
        }
    }

    /// The tar stream of `stored` (the bytes of `archive`): decrypted when the
    /// archive is encrypted, the plaintext hashed into `plaintext`, then
    /// decompressed as `format`.
    pub fn tar_stream<'r, R: Read + 'r>(
        &self,
        archive: &Path,
        format: Format,
        stored: R,
        plaintext: &'r mut Sha256,
    ) -> io::Result<Box<dyn Read + 'r>> {
        if !is_encrypted(archive) {
            return decompressed(format, stored);
        }
        let Some(identities) = self.identities else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the archive is encrypted; give the key with --identity KEY",
            ));
        };
        let decrypted = identities.decrypt(BufReader::new(stored))?;
        decompressed(
            format,
            HashInto {
                inner: decrypted,
                hasher: plaintext,
            },
        )
    }
}

/// True when `archive` is named as an encrypted archive (`.age`).
pub fn is_encrypted(archive: &Path) -> bool {
    archive
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(is_encrypted_name)
}

/// A pinned archive file read with `pread` from a position of its own, so
/// that several readers of the one descriptor do not disturb each other. It
/// seeks within the file only: a seek past its end means the archive ends
/// inside an entry, and is refused as an archive cut short.
pub struct Positional<'a> {
    file: &'a File,
    at: u64,
    /// The file's size when it was opened.
    len: u64,
}

impl<'a> Positional<'a> {
    /// `file` from its start.
    pub fn new(file: &'a File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(Self { file, at: 0, len })
    }
}

impl Read for Positional<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

impl Seek for Positional<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::Current(by) => self.at.checked_add_signed(by),
            SeekFrom::End(by) => self.len.checked_add_signed(by),
        };
        match target {
            Some(at) if at <= self.len => {
                self.at = at;
                Ok(at)
            }
            _ => Err(cut_short()),
        }
    }
}

/// The archive ends before an entry's data does.
pub fn cut_short() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the archive is cut short: it ends inside an entry",
    )
}

/// Hashes what is read through into a hasher the caller keeps.
struct HashInto<'h, R> {
    inner: R,
    hasher: &'h mut Sha256,
}

impl<R: Read> Read for HashInto<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
