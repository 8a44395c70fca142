//! Decompressing on a second thread: a restore spends its time in system
//! calls creating files while gzip or zstd decompression waits, so the
//! decompressed stream is produced by a thread of its own, a few blocks
//! ahead, as `tar --zstd -x` gets from its `zstd` child process.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

/// Bytes per block handed over, and blocks in flight.
const BLOCK: usize = 256 << 10;
const BLOCKS_AHEAD: usize = 8;

/// The reading end: what the thread read, in order, then its error or end.
pub struct ReadAhead {
    blocks: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
    finished: bool,
    thread: Option<JoinHandle<()>>,
}

impl ReadAhead {
    /// Runs `open` on a new thread and reads what it returns there; `open`
    /// builds the whole stream (file, decompressor) so that none of it has
    /// to cross threads.
    pub fn spawn<F>(open: F) -> io::Result<Self>
    where
        F: FnOnce() -> io::Result<Box<dyn Read>> + Send + 'static,
    {
        let (sender, blocks) = sync_channel(BLOCKS_AHEAD);
        let thread = std::thread::Builder::new()
            .name("restore-read".into())
            .spawn(move || {
                let mut reader = match open() {
                    Ok(reader) => reader,
                    Err(e) => {
                        let _ = sender.send(Err(e));
                        return;
                    }
                };
                loop {
                    let mut block = vec![0u8; BLOCK];
                    let result = loop {
                        match reader.read(&mut block) {
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            other => break other,
                        }
                    };
                    let last = !matches!(result, Ok(1..));
                    let message = result.map(|n| {
                        block.truncate(n);
                        block
                    });
                    // The reader gone (restore refused an entry): stop.
                    if sender.send(message).is_err() || last {
                        return;
                    }
                }
            })?;
        Ok(Self {
            blocks,
            current: Vec::new(),
            at: 0,
            finished: false,
            thread: Some(thread),
        })
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.finished {
                return Ok(0);
            }
            match self.blocks.recv() {
                Ok(Ok(block)) if block.is_empty() => self.finished = true,
                Ok(Ok(block)) => (self.current, self.at) = (block, 0),
                Ok(Err(e)) => {
                    self.finished = true;
                    return Err(e);
                }
                // The thread ended without a last message: it panicked.
                Err(_) => {
                    self.finished = true;
                    return Err(io::Error::other("the reading thread stopped"));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Unblock a thread waiting to send, then wait for it.
        let (_, dead) = sync_channel(0);
        drop(std::mem::replace(&mut self.blocks, dead));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_arrives_whole_and_in_order_then_its_error() {
        let data: Vec<u8> = (0..3 * BLOCK + 17).map(|i| (i % 251) as u8).collect();
        let copy = data.clone();
        let mut reader = ReadAhead::spawn(move || Ok(Box::new(io::Cursor::new(copy)))).unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);

        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("broken"))
            }
        }
        let mut reader = ReadAhead::spawn(|| Ok(Box::new(Failing))).unwrap();
        assert_eq!(reader.read(&mut [0; 4]).unwrap_err().to_string(), "broken");
        // Dropped early, before the end: the thread stops.
        let big = vec![0u8; 64 * BLOCK];
        let mut reader = ReadAhead::spawn(move || Ok(Box::new(io::Cursor::new(big)))).unwrap();
        reader.read_exact(&mut [0; 10]).unwrap();
        drop(reader);
    }
}
