//! Reading a file into the archive so that the archive stays valid whatever the
//! file does meanwhile. A tar header states the size before the content, so a
//! file that shrinks, grows or fails to read must still yield exactly that many
//! bytes.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The error a read returns once an abort was requested; it travels up through
/// the tar writer and is recognised by [`AbortRequested::is`].
#[derive(Debug, thiserror::Error)]
#[error("backup aborted")]
pub struct AbortRequested;

impl AbortRequested {
    pub fn error() -> io::Error {
        io::Error::other(AbortRequested)
    }

    pub fn is(error: &io::Error) -> bool {
        error
            .get_ref()
            .is_some_and(|inner| inner.is::<AbortRequested>())
    }
}

/// Yields exactly `size` bytes of `inner`: zeros stand in for content that is
/// missing (the file shrank, or a read failed) and content past `size` is left
/// out (the file grew). What happened is kept in [`ExactSizeReader::problem`].
pub struct ExactSizeReader<'a, R> {
    inner: R,
    remaining: u64,
    size: u64,
    failed: bool,
    problem: Option<String>,
    abort: &'a AtomicBool,
    progress: Option<&'a AtomicU64>,
}

impl<'a, R: Read> ExactSizeReader<'a, R> {
    pub fn new(inner: R, size: u64, abort: &'a AtomicBool) -> Self {
        Self {
            inner,
            remaining: size,
            size,
            failed: false,
            problem: None,
            abort,
            progress: None,
        }
    }

    /// Adds the bytes read to `progress` as they are read.
    pub fn counting_into(mut self, progress: &'a AtomicU64) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The reader given to [`ExactSizeReader::new`], and why the archived
    /// content differs from the file, if it does.
    pub fn into_parts(self) -> (R, Option<String>) {
        (self.inner, self.problem)
    }

    fn note(&mut self, problem: String) {
        self.problem.get_or_insert(problem);
    }

    /// At the stated size: a further byte means the file grew.
    fn check_for_growth(&mut self) {
        if self.failed || self.problem.is_some() {
            return;
        }
        let mut probe = [0u8; 1];
        if let Ok(1..) = self.inner.read(&mut probe) {
            let size = self.size;
            self.note(format!(
                "grew while being read; archived its first {size} bytes"
            ));
        }
    }
}

impl<R: Read> Read for ExactSizeReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.abort.load(Ordering::Relaxed) {
            return Err(AbortRequested::error());
        }
        if self.remaining == 0 {
            self.check_for_growth();
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let got = if self.failed {
            0
        } else {
            loop {
                match self.inner.read(&mut buf[..want]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.failed = true;
                        let done = self.size - self.remaining;
                        self.note(format!(
                            "read failed after {done} bytes ({e}); the rest is zero-filled"
                        ));
                        break 0;
                    }
                }
            }
        };
        let n = if got == 0 {
            // Shrunk or failed: pad with zeros so the archive stays valid.
            if !self.failed {
                self.failed = true;
                let done = self.size - self.remaining;
                self.note(format!(
                    "shrank while being read ({done} of {} bytes); the rest is zero-filled",
                    self.size
                ));
            }
            buf[..want].fill(0);
            want
        } else {
            got
        };
        self.remaining -= n as u64;
        if let Some(progress) = self.progress {
            progress.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(data: &[u8], size: u64) -> (Vec<u8>, Option<String>) {
        let abort = AtomicBool::new(false);
        let mut reader = ExactSizeReader::new(data, size, &abort);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        (out, reader.into_parts().1)
    }

    #[test]
    fn exact_content_passes_through() {
        assert_eq!(read_all(b"hello", 5), (b"hello".to_vec(), None));
    }

    #[test]
    fn a_shrunk_file_is_zero_padded() {
        let (out, problem) = read_all(b"hel", 5);
        assert_eq!(out, b"hel\0\0");
        assert!(problem.unwrap().starts_with("shrank"));
    }

    #[test]
    fn a_grown_file_is_cut_at_its_stated_size() {
        let (out, problem) = read_all(b"hello world", 5);
        assert_eq!(out, b"hello");
        assert!(problem.unwrap().starts_with("grew"));
    }

    #[test]
    fn abort_stops_the_read() {
        let abort = AtomicBool::new(true);
        let mut reader = ExactSizeReader::new(&b"data"[..], 4, &abort);
        let err = reader.read(&mut [0u8; 4]).unwrap_err();
        assert!(AbortRequested::is(&err));
    }
}
