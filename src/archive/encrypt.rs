//! Encryption of archives with age (`encrypt-to`): the writer that wraps the
//! compressed stream, and the reader that unwraps it for `verify --identity`
//! and `restore --identity`.
//!
//! age (the `age` crate, the reference format's Rust implementation) is used
//! rather than anything of our own: the files it writes are read by the
//! stock `age -d -i KEY` tool, and the backup host needs only public keys.
//! Both sides stream in age's 64 KiB chunks; nothing is buffered whole.
//!
//! The hashes: the stored file's SHA-256 is taken below the age writer (what
//! is on disk, checkable without a key), the plaintext's above it (what
//! `age -d` prints: the `.tar`, `.tar.gz` or `.tar.zst` stream).

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

use super::writer::HashingWriter;
use crate::model::Recipient;

/// Why recipients or identities could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the recipients file {}", path.display())]
    RecipientsFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("recipient \"{}\" on line {line} of {} {why}", crate::primitives::quote(text), path.display())]
    BadRecipient {
        path: PathBuf,
        line: usize,
        text: String,
        why: String,
    },
    /// A line that does not even start like a public key: it is not
    /// quoted, for the file may be a private key or another secret.
    #[error("line {line} of {} {why}; its text is not shown", path.display())]
    NotARecipient {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("the recipients file {} holds no recipient", path.display())]
    NoRecipients { path: PathBuf },
    #[error("cannot read the identity file {}", path.display())]
    IdentityFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} holds no age identity (AGE-SECRET-KEY-1...) nor an unencrypted OpenSSH private key", path.display())]
    NoIdentity { path: PathBuf },
}

/// The most a recipients or identity file may hold: a key is a line; this
/// is thousands of them.
const KEY_FILE_LIMIT: u64 = 1 << 20;

/// The bytes of a key file, with its mode (see
/// [`primitives::read_regular`](crate::primitives::read_regular)).
fn read_key_file(path: &Path) -> io::Result<(Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let (bytes, meta) = crate::primitives::read_regular(path, KEY_FILE_LIMIT)?;
    Ok((bytes, meta.permissions().mode() & 0o7777))
}

/// The recipients listed in `path`: one a line, blank lines and `#`
/// comments ignored, as `age -R` reads them. A bad line is quoted only
/// when it starts like a public key (`age1`, `ssh-`).
pub fn read_recipients_file(path: &Path) -> Result<Vec<Recipient>, KeyError> {
    let read_error = |source| KeyError::RecipientsFile {
        path: path.to_path_buf(),
        source,
    };
    let (bytes, _) = read_key_file(path).map_err(read_error)?;
    let text = String::from_utf8(bytes)
        .map_err(|e| read_error(io::Error::new(io::ErrorKind::InvalidData, e.utf8_error())))?;
    let mut recipients = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let recipient = Recipient::parse(line).map_err(|why| {
            if line.starts_with("age1") || line.starts_with("ssh-") {
                KeyError::BadRecipient {
                    path: path.to_path_buf(),
                    line: index + 1,
                    text: line.to_string(),
                    why,
                }
            } else {
                KeyError::NotARecipient {
                    path: path.to_path_buf(),
                    line: index + 1,
                    why,
                }
            }
        })?;
        recipients.push(recipient);
    }
    if recipients.is_empty() {
        return Err(KeyError::NoRecipients {
            path: path.to_path_buf(),
        });
    }
    Ok(recipients)
}

/// An age encryptor for `recipients` (already validated by
/// [`Recipient::parse`]).
pub fn encryptor(recipients: &[Recipient]) -> io::Result<age::Encryptor> {
    let mut parsed: Vec<Box<dyn age::Recipient + Send>> = Vec::new();
    for recipient in recipients {
        let text = recipient.as_str();
        let boxed: Box<dyn age::Recipient + Send> = if text.starts_with("age1") {
            Box::new(
                text.parse::<age::x25519::Recipient>()
                    .map_err(io::Error::other)?,
            )
        } else {
            Box::new(
                text.parse::<age::ssh::Recipient>()
                    .map_err(|e| io::Error::other(format!("{e:?}")))?,
            )
        };
        parsed.push(boxed);
    }
    age::Encryptor::with_recipients(parsed.iter().map(|r| r.as_ref() as &dyn age::Recipient))
        .map_err(io::Error::other)
}

/// The bottom of the archive stream: the file's writer as is, or wrapped
/// in age with the stored bytes hashed below the encryption.
pub enum Encrypting<W: Write> {
    Plain(W),
    Age(age::stream::StreamWriter<HashingWriter<W>>),
}

impl<W: Write> Encrypting<W> {
    /// Writes the age header into `inner` when `encryptor` is given.
    pub fn new(inner: W, encryptor: Option<age::Encryptor>) -> io::Result<Self> {
        Ok(match encryptor {
            None => Encrypting::Plain(inner),
            Some(encryptor) => Encrypting::Age(encryptor.wrap_output(HashingWriter::new(inner))?),
        })
    }

    /// Ends the age stream (its last chunk) and returns the writer below,
    /// with the SHA-256 and size of what reached it when encrypted.
    pub fn finish(self) -> io::Result<(W, Option<(String, u64)>)> {
        match self {
            Encrypting::Plain(inner) => Ok((inner, None)),
            Encrypting::Age(stream) => {
                let (inner, sha256, size) = stream.finish()?.finish()?;
                Ok((inner, Some((sha256, size))))
            }
        }
    }
}

impl<W: Write> Write for Encrypting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encrypting::Plain(inner) => inner.write(buf),
            Encrypting::Age(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encrypting::Plain(inner) => inner.flush(),
            Encrypting::Age(stream) => stream.flush(),
        }
    }
}

/// The private keys given with `--identity`.
pub struct Identities {
    keys: Vec<Box<dyn age::Identity + Send + Sync>>,
    /// The file's mode, when users other than its owner may read it.
    exposed: Option<u32>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identities({} keys)", self.keys.len())
    }
}

impl Identities {
    /// Reads an age identity file (`age-keygen` output) or an unencrypted
    /// OpenSSH private key (ssh-ed25519 or ssh-rsa).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let read_error = |source| KeyError::IdentityFile {
            path: path.to_path_buf(),
            source,
        };
        let (bytes, mode) = read_key_file(path).map_err(read_error)?;
        let no_identity = || KeyError::NoIdentity {
            path: path.to_path_buf(),
        };
        let text = String::from_utf8_lossy(&bytes);
        let keys: Vec<Box<dyn age::Identity + Send + Sync>> = if text.contains("AGE-SECRET-KEY-") {
            age::IdentityFile::from_buffer(io::BufReader::new(&bytes[..]))
                .map_err(read_error)?
                .into_identities()
                .map_err(|_| no_identity())?
        } else {
            match age::ssh::Identity::from_buffer(io::BufReader::new(&bytes[..]), None) {
                Ok(identity @ age::ssh::Identity::Unencrypted(_)) => vec![Box::new(identity)],
                _ => return Err(no_identity()),
            }
        };
        if keys.is_empty() {
            return Err(no_identity());
        }
        Ok(Self {
            keys,
            exposed: (mode & 0o044 != 0).then_some(mode),
        })
    }

    /// The file's mode when its group or others may read it (ssh refuses
    /// such a key; it is taken here, with the caller's warning).
    pub fn exposed(&self) -> Option<u32> {
        self.exposed
    }

    /// `reader` (an age file) decrypted. A key that matches none of the
    /// file's recipients, or a file that is not age, is an `InvalidData`
    /// error saying so; a damaged chunk fails the read that meets it.
    pub fn decrypt<'a, R: BufRead + 'a>(&self, reader: R) -> io::Result<Box<dyn Read + 'a>> {
        let decryptor = age::Decryptor::new_buffered(reader).map_err(decrypt_error)?;
        let stream = decryptor
            .decrypt(self.keys.iter().map(|k| k.as_ref() as &dyn age::Identity))
            .map_err(decrypt_error)?;
        Ok(Box::new(stream))
    }
}

fn decrypt_error(error: age::DecryptError) -> io::Error {
    let why = match error {
        age::DecryptError::NoMatchingKeys => {
            "the key given does not match any recipient of this archive".to_string()
        }
        age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
            "not an age-encrypted file".to_string()
        }
        other => format!("cannot decrypt: {other}"),
    };
    io::Error::new(io::ErrorKind::InvalidData, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;
    use std::fs;

    #[test]
    fn an_encrypted_stream_decrypts_and_hashes_what_is_stored() {
        let key = age::x25519::Identity::generate();
        let recipient = Recipient::parse(&key.to_public().to_string()).unwrap();
        let mut writer =
            Encrypting::new(Vec::new(), Some(encryptor(&[recipient]).unwrap())).unwrap();
        writer.write_all(b"plain tar bytes").unwrap();
        let (stored, hashed) = writer.finish().unwrap();
        let (sha256, size) = hashed.unwrap();
        assert_eq!(size, stored.len() as u64);
        assert_eq!(
            sha256,
            crate::primitives::hex(&<sha2::Sha256 as sha2::Digest>::digest(&stored))
        );
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key.txt");
        fs::write(&key_file, key.to_string().expose_secret()).unwrap();
        let identities = Identities::load(&key_file).unwrap();
        let mut plain = Vec::new();
        identities
            .decrypt(&stored[..])
            .unwrap()
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, b"plain tar bytes");
        let other = age::x25519::Identity::generate();
        fs::write(&key_file, other.to_string().expose_secret()).unwrap();
        let wrong = Identities::load(&key_file).unwrap();
        let error = wrong.decrypt(&stored[..]).err().unwrap();
        assert!(error.to_string().contains("does not match"), "{error}");
    }

    #[test]
    fn recipients_files_skip_comments_and_name_a_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.txt");
        let key = age::x25519::Identity::generate().to_public().to_string();
        fs::write(&file, format!("# team\n\n{key}\n")).unwrap();
        assert_eq!(read_recipients_file(&file).unwrap().len(), 1);
        fs::write(&file, format!("{key}\nage1nope\n")).unwrap();
        let error = read_recipients_file(&file).unwrap_err().to_string();
        assert!(
            error.contains("line 2") && error.contains("age1nope"),
            "{error}"
        );
    }
}
