//! The byte stream under the tar builder: compression, then a writer that
//! hashes (SHA-256, on a thread of its own) and counts what reaches the
//! file, then a buffer, then the temporary file. The checksum is thus computed while writing, never by
//! reading the archive back.
//!
//! Compression and hashing run on other threads than the tree walk, fed
//! through bounded channels of fixed-size blocks, so memory stays flat
//! whatever the tree holds: gzip on a pool of workers (see [`super::pgzip`]),
//! zstd and plain tar on one stage thread (zstd adding its own workers).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::primitives::hex;

use super::encrypt::Encrypting;
use super::pgzip::ParallelGzip;
use super::reader::AbortRequested;
use crate::model::Format;

/// Output buffer size: large enough that small writes do not each cost a
/// system call, small enough to keep memory flat.
const OUTPUT_BUFFER: usize = 1 << 20;

/// The size of the blocks handed from the walk to the stage thread.
pub const BLOCK: usize = 1 << 20;

/// Blocks waiting between two threads; bounds memory to a few blocks.
pub const QUEUE: usize = 4;

/// What the stream wrote, once finished.
pub struct Written {
    pub file: File,
    /// Lower-case hex SHA-256 of the whole file.
    pub sha256: String,
    pub size: u64,
    /// For an encrypted archive, the SHA-256 of the plaintext (what
    /// `age -d` gives back).
    pub plaintext_sha256: Option<String>,
}

/// The stream the tar builder writes into. `finish` flushes every stage and
/// returns the file; dropping it without `finish` abandons the output.
pub trait ArchiveStream: Write {
    fn finish(self: Box<Self>) -> io::Result<Written>;

    /// Writes everything `data` gives, returning how much. The stage
    /// thread reads it straight into its block, a whole block's room per
    /// `read`, instead of through `io::copy`'s 8 KiB buffer and a copy.
    fn copy_from(&mut self, data: &mut dyn Read) -> io::Result<u64> {
        io::copy(data, self)
    }
}

/// What tar entries are written into: a writer that copies a file's data
/// in by itself (see [`ArchiveStream::copy_from`]).
pub trait TarSink: Write {
    fn copy_from(&mut self, data: &mut dyn Read) -> io::Result<u64>;
}

impl TarSink for Box<dyn ArchiveStream + '_> {
    fn copy_from(&mut self, data: &mut dyn Read) -> io::Result<u64> {
        (**self).copy_from(data)
    }
}

/// A block on its way down the stack: its first `len` bytes are the
/// stream's. Once hashed (or compressed) the buffer goes back to the
/// writer's `pool`, whole, to be filled again without being zeroed again.
pub struct Block {
    bytes: Vec<u8>,
    len: usize,
    pool: Option<SyncSender<Vec<u8>>>,
}

impl Block {
    fn data(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Back to the pool it came from, if it has room; else freed.
    fn recycle(self) {
        if let Some(pool) = self.pool {
            let _ = pool.try_send(self.bytes);
        }
    }

    /// Bytes that come from no pool.
    fn of(bytes: Vec<u8>) -> Self {
        Self {
            len: bytes.len(),
            bytes,
            pool: None,
        }
    }
}

/// The writer stack for `format` at `level`, writing into `file`,
/// encrypted when `encryptor` is given. Setting `abort` makes a write that
/// waits for the compressor give up at once.
pub fn open_stream(
    format: Format,
    level: Option<i32>,
    file: File,
    abort: &AtomicBool,
    encryptor: Option<age::Encryptor>,
) -> Box<dyn ArchiveStream + '_> {
    let sink = match sink(file, encryptor) {
        Ok(sink) => sink,
        Err(e) => return Box::new(Failed(Some(e))),
    };
    match format {
        Format::Tar => Box::new(StageThread::spawn(Encoder::Plain(sink), abort)),
        Format::TarZst => {
            let level = level.unwrap_or(zstd::DEFAULT_COMPRESSION_LEVEL);
            // Building the encoder only fails on an invalid level, which the
            // options parser already refuses; report it as an I/O error anyway.
            // The frame checksum (as the zstd tool writes by default) lets a
            // plain `zstd -t` or `tar --zstd -x` catch corruption too.
            let encoder = zstd::stream::write::Encoder::new(sink, level).and_then(|mut e| {
                e.include_checksum(true)?;
                e.multithread(zstd_workers())?;
                // The default job (4 windows, 8 MiB at level 3) and its buffers
                // took 80 MiB of RSS with two workers; 2 MiB jobs keep a run
                // near 36 MiB, for archives about 1.5% larger.
                e.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB))?;
                bound_zstd_memory(&mut e, level)?;
                Ok(e)
            });
            match encoder {
                Ok(encoder) => Box::new(StageThread::spawn(Encoder::Zstd(encoder), abort)),
                Err(e) => Box::new(Failed(Some(e))),
            }
        }
        Format::TarGz => {
            let level = level.unwrap_or(6).clamp(0, 9) as u32;
            Box::new(ParallelGzip::new(sink, level))
        }
    }
}

/// Bytes of input per zstd worker job.
const ZSTD_JOB: u32 = 2 << 20;

/// The largest window, hash table and chain table (as log2) any level may
/// use. zstd's high levels size them for speed on big inputs: level 19
/// wants an 8 MiB window and 80 MiB of tables per worker, level 22 a 128 MiB
/// window and 640 MiB of tables (a run took 1.7 GiB). Bounded to a 2 MiB
/// window and 2 MiB tables, every level keeps its search strategy (what
/// makes it slower and stronger) and a run stays under the 64 MiB goal with
/// up to four workers; high levels lose a little ratio on large files.
const ZSTD_MAX_WINDOW_LOG: u32 = 21;
const ZSTD_MAX_TABLE_LOG: u32 = 19;

/// zstd's own window, chain and hash logs for levels 1 to 22 on inputs over
/// 256 KiB (`ZSTD_defaultCParameters` in zstd's `clevels.h`), so that a
/// bound is only ever applied downwards.
const ZSTD_LEVEL_LOGS: [(u32, u32, u32); 22] = [
    (19, 13, 14),
    (20, 15, 16),
    (21, 16, 17),
    (21, 18, 18),
    (21, 18, 19),
    (21, 18, 19),
    (21, 19, 20),
    (21, 19, 20),
    (22, 20, 21),
    (22, 21, 22),
    (22, 21, 22),
    (22, 22, 23),
    (22, 22, 22),
    (22, 22, 23),
    (22, 23, 23),
    (22, 22, 22),
    (23, 23, 22),
    (23, 23, 22),
    (23, 24, 22),
    (25, 25, 23),
    (26, 26, 24),
    (27, 27, 25),
];

/// Caps the encoder's window and tables (see [`ZSTD_MAX_WINDOW_LOG`]) and
/// keeps long-distance matching, which zstd turns on by itself for large
/// windows, off.
fn bound_zstd_memory<W: Write>(
    encoder: &mut zstd::stream::write::Encoder<'static, W>,
    level: i32,
) -> io::Result<()> {
    use zstd::zstd_safe::CParameter;
    let index = usize::try_from(level.clamp(1, 22) - 1).unwrap_or(0);
    let (window, chain, hash) = ZSTD_LEVEL_LOGS[index];
    encoder.set_parameter(CParameter::WindowLog(window.min(ZSTD_MAX_WINDOW_LOG)))?;
    encoder.set_parameter(CParameter::ChainLog(chain.min(ZSTD_MAX_TABLE_LOG)))?;
    encoder.set_parameter(CParameter::HashLog(hash.min(ZSTD_MAX_TABLE_LOG)))?;
    encoder.set_parameter(CParameter::EnableLongDistanceMatching(false))?;
    Ok(())
}

/// zstd's own worker threads, besides the stage thread that feeds them.
fn zstd_workers() -> u32 {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4) as u32)
}

/// Hashes and counts the bytes passing through to `inner`. The SHA-256
/// runs on a thread of its own, fed the bytes in blocks through a bounded
/// channel: on the writing thread it took as long as the write's own copy
/// into the page cache (17 % and 26 % of a plain tar run's CPU samples),
/// serially; now the two overlap. Bytes written with `write` are copied
/// into a block of its own; a whole block (`write_block`, plain tar) is
/// handed over as it is.
pub struct HashingWriter<W> {
    inner: W,
    /// Bytes written and not yet handed to the hashing thread.
    pending: Vec<u8>,
    hasher: HashThread,
    written: u64,
}

/// The thread that hashes the blocks it is sent, and returns the hasher
/// when the channel closes.
struct HashThread {
    sender: Option<SyncSender<Block>>,
    thread: Option<JoinHandle<Sha256>>,
}

impl HashThread {
    fn spawn() -> Self {
        let (sender, receiver) = sync_channel::<Block>(QUEUE);
        let thread = std::thread::spawn(move || {
            let mut hasher = Sha256::new();
            for block in receiver {
                hasher.update(block.data());
                block.recycle();
            }
            hasher
        });
        Self {
            sender: Some(sender),
            thread: Some(thread),
        }
    }

    fn send(&mut self, block: Block) -> io::Result<()> {
        match self.sender.as_ref().map(|s| s.send(block)) {
            Some(Ok(())) => Ok(()),
            _ => Err(hash_thread_gone()),
        }
    }

    fn finish(&mut self) -> io::Result<String> {
        self.sender = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(hasher)) => Ok(hex(&hasher.finalize())),
            _ => Err(hash_thread_gone()),
        }
    }
}

impl Drop for HashThread {
    fn drop(&mut self) {
        // Abandoned: close the channel and wait, so no thread outlives it.
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn hash_thread_gone() -> io::Error {
    io::Error::other("the archive's hashing thread stopped unexpectedly")
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            pending: Vec::with_capacity(BLOCK),
            hasher: HashThread::spawn(),
            written: 0,
        }
    }

    /// Flushes `inner` and returns it with the hex digest and the byte count.
    pub fn finish(mut self) -> io::Result<(W, String, u64)> {
        self.inner.flush()?;
        let last = std::mem::take(&mut self.pending);
        self.hasher.send(Block::of(last))?;
        let digest = self.hasher.finish()?;
        Ok((self.inner, digest, self.written))
    }

    /// Writes a whole block and hands it to the hashing thread as it is.
    pub fn write_block(&mut self, block: Block) -> io::Result<()> {
        self.inner.write_all(block.data())?;
        self.written += block.len as u64;
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.hasher.send(Block::of(pending))?;
        }
        self.hasher.send(block)
    }
}

impl Sink {
    /// The end of every stack: end the encryption, unbuffer and report.
    pub fn into_written(self) -> io::Result<Written> {
        let (output, sha256, size) = self.finish()?;
        let (buffered, stored) = output.finish()?;
        let file = buffered.into_inner().map_err(|e| e.into_error())?.file;
        Ok(match stored {
            None => Written {
                file,
                sha256,
                size,
                plaintext_sha256: None,
            },
            Some((stored_sha256, stored_size)) => Written {
                file,
                sha256: stored_sha256,
                size: stored_size,
                plaintext_sha256: Some(sha256),
            },
        })
    }
}

/// How much is written before the kernel is asked to start writing it out.
const WRITEBACK_CHUNK: u64 = 8 << 20;

/// The archive file, asking the kernel to start writing each finished chunk
/// to disk while the next one is produced (`sync_file_range` with
/// `SYNC_FILE_RANGE_WRITE`, which does not wait). The archive must be synced
/// before it is renamed into place; this way that final `fsync` finds most of
/// the data already on its way, instead of all of it at the end.
pub struct EarlyWriteback {
    file: File,
    written: u64,
    started: u64,
}

impl EarlyWriteback {
    fn new(file: File) -> Self {
        Self {
            file,
            written: 0,
            started: 0,
        }
    }

    fn start_writeback(&mut self) {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (
            i64::try_from(self.started),
            i64::try_from(self.written - self.started),
        ) else {
            return;
        };
        // SAFETY: the descriptor belongs to `self.file`, open for the whole
        // call; the call only reads its arguments. A failure (a file system
        // without support) only loses the head start: `fsync` still runs.
        unsafe {
            nix::libc::sync_file_range(
                self.file.as_raw_fd(),
                offset,
                len,
                nix::libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        self.started = self.written;
    }
}

impl Write for EarlyWriteback {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= WRITEBACK_CHUNK {
            self.start_writeback();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() >= BLOCK {
            let block = std::mem::replace(&mut self.pending, Vec::with_capacity(BLOCK));
            self.hasher.send(Block::of(block))?;
        }
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The sink stack reached by the stage thread.
pub type Sink = HashingWriter<Encrypting<BufWriter<EarlyWriteback>>>;

/// The bottom of every stack: hash and count, encrypt (when asked), buffer,
/// write back early.
pub fn sink(file: File, encryptor: Option<age::Encryptor>) -> io::Result<Sink> {
    let buffered = BufWriter::with_capacity(OUTPUT_BUFFER, EarlyWriteback::new(file));
    Ok(HashingWriter::new(Encrypting::new(buffered, encryptor)?))
}

/// What the stage thread runs the bytes through.
enum Encoder {
    Plain(Sink),
    Zstd(zstd::stream::write::Encoder<'static, Sink>),
}

impl Encoder {
    fn write_block(&mut self, block: Block) -> io::Result<()> {
        match self {
            Encoder::Plain(sink) => sink.write_block(block),
            Encoder::Zstd(encoder) => {
                encoder.write_all(block.data())?;
                block.recycle();
                Ok(())
            }
        }
    }

    fn finish(self) -> io::Result<Written> {
        match self {
            Encoder::Plain(sink) => sink.into_written(),
            Encoder::Zstd(encoder) => encoder.finish()?.into_written(),
        }
    }
}

/// Runs an [`Encoder`] on its own thread, fed blocks through a bounded
/// channel: the walk and the compression overlap, as in `tar | zstd`.
struct StageThread<'a> {
    /// The block being filled: always [`BLOCK`] bytes long, `filled` of
    /// them the stream's.
    block: Vec<u8>,
    filled: usize,
    /// Blocks back from the stage and the hashing thread, and the way back.
    pool: Receiver<Vec<u8>>,
    to_pool: SyncSender<Vec<u8>>,
    sender: Option<SyncSender<Block>>,
    thread: Option<JoinHandle<io::Result<Written>>>,
    /// Set when the archive is dropped unfinished (an abort, an error): the
    /// stage then drops its encoder rather than compress what it still
    /// holds, and nobody waits for it, so Ctrl-C on a zstd -19 run stops at
    /// once.
    abandoned: Arc<AtomicBool>,
    /// The run's abort flag: a block waiting for room gives up when it is set.
    abort: &'a AtomicBool,
}

/// How often a block waiting for room in the queue looks at the abort flag.
/// The queue holds [`QUEUE`] blocks, longer to drain than this, so the wait
/// never starves the stage.
const FULL_QUEUE_POLL: Duration = Duration::from_millis(1);

impl<'a> StageThread<'a> {
    fn spawn(encoder: Encoder, abort: &'a AtomicBool) -> Self {
        let (sender, receiver) = sync_channel(QUEUE);
        let abandoned = Arc::new(AtomicBool::new(false));
        let stage_abandoned = abandoned.clone();
        let thread = std::thread::spawn(move || drain(encoder, receiver, &stage_abandoned));
        // Room for every block in flight: in both queues and both threads.
        let (to_pool, pool) = sync_channel(2 * QUEUE + 2);
        Self {
            block: vec![0; BLOCK],
            filled: 0,
            pool,
            to_pool,
            sender: Some(sender),
            thread: Some(thread),
            abandoned,
            abort,
        }
    }

    /// Queues the current block, waiting for room (the compressor is
    /// slower than the walk) unless the run is aborted meanwhile: a zstd -19
    /// block can take seconds, and Ctrl-C must not wait for it.
    fn send_block(&mut self) -> io::Result<()> {
        let fresh = self.pool.try_recv().unwrap_or_else(|_| vec![0; BLOCK]);
        let mut block = Block {
            bytes: std::mem::replace(&mut self.block, fresh),
            len: std::mem::take(&mut self.filled),
            pool: Some(self.to_pool.clone()),
        };
        loop {
            let sent = self.sender.as_ref().map(|s| s.try_send(block));
            match sent {
                Some(Ok(())) => return Ok(()),
                Some(Err(TrySendError::Full(back))) => {
                    if self.abort.load(Ordering::SeqCst) {
                        return Err(AbortRequested::error());
                    }
                    block = back;
                    std::thread::sleep(FULL_QUEUE_POLL);
                }
                // The stage stopped: its own error says why.
                _ => return Err(self.join().err().unwrap_or_else(stage_gone)),
            }
        }
    }

    fn join(&mut self) -> io::Result<Written> {
        self.sender = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(stage_gone()),
        }
    }
}

/// The stage thread's loop. When the channel closes it finishes the encoder,
/// unless the archive was abandoned: then what is queued is never
/// compressed (the caller removes the file).
fn drain(
    mut encoder: Encoder,
    receiver: Receiver<Block>,
    abandoned: &AtomicBool,
) -> io::Result<Written> {
    for block in receiver {
        if abandoned.load(Ordering::SeqCst) {
            return Err(stage_gone());
        }
        encoder.write_block(block)?;
    }
    if abandoned.load(Ordering::SeqCst) {
        return Err(stage_gone());
    }
    encoder.finish()
}

pub fn stage_gone() -> io::Error {
    io::Error::other("the archive writer thread stopped unexpectedly")
}

impl Write for StageThread<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.filled);
        self.block[self.filled..self.filled + n].copy_from_slice(&buf[..n]);
        self.filled += n;
        if self.filled == BLOCK {
            self.send_block()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ArchiveStream for StageThread<'_> {
    fn finish(mut self: Box<Self>) -> io::Result<Written> {
        if self.filled > 0 {
            self.send_block()?;
        }
        self.join()
    }

    fn copy_from(&mut self, data: &mut dyn Read) -> io::Result<u64> {
        let mut copied = 0;
        loop {
            let n = match data.read(&mut self.block[self.filled..]) {
                Ok(0) => return Ok(copied),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.filled += n;
            copied += n as u64;
            if self.filled == BLOCK {
                self.send_block()?;
            }
        }
    }
}

impl Drop for StageThread<'_> {
    fn drop(&mut self) {
        // Abandoned (an abort, an error): close the channel and let the
        // stage end by itself, without waiting. It compresses nothing more,
        // but a zstd block in progress and the encoder's worker jobs can take
        // a second or two at high levels; waiting for them would hold Ctrl-C
        // that long. What it still writes goes to the temporary file, which
        // the caller removes by name.
        self.abandoned.store(true, Ordering::SeqCst);
        self.sender = None;
        drop(self.thread.take());
    }
}

/// A stack that could not be built; every write reports why.
struct Failed(Option<io::Error>);

impl Failed {
    fn error(&mut self) -> io::Error {
        self.0.take().unwrap_or_else(stage_gone)
    }
}

impl Write for Failed {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(self.error())
    }

    fn flush(&mut self) -> io::Result<()> {
        Err(self.error())
    }
}

impl ArchiveStream for Failed {
    fn finish(mut self: Box<Self>) -> io::Result<Written> {
        Err(self.error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_writer_matches_a_one_shot_digest_across_blocks() {
        let mut writer = HashingWriter::new(Vec::new());
        let data: Vec<u8> = (0..3 * BLOCK + 17).map(|i| (i % 251) as u8).collect();
        for chunk in data.chunks(100_000) {
            writer.write_all(chunk).unwrap();
        }
        let (inner, digest, size) = writer.finish().unwrap();
        assert_eq!(inner, data);
        assert_eq!(size, data.len() as u64);
        assert_eq!(digest, hex(&Sha256::digest(&data)));
    }

    /// A reader that gives at most `step` bytes a call.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Data copied in by the stage thread's blocks (reused from its pool
    /// once hashed) and data written through it reach the file in order,
    /// and the digest is the file's.
    #[test]
    fn plain_stream_copies_and_writes_across_reused_blocks() {
        let file = tempfile::tempfile().unwrap();
        let abort = AtomicBool::new(false);
        let mut stream = open_stream(Format::Tar, None, file, &abort, None);
        let data: Vec<u8> = (0..14 * BLOCK + 1234).map(|i| (i % 253) as u8).collect();
        let mut expected = Vec::new();
        for (i, chunk) in data.chunks(BLOCK + 4099).enumerate() {
            stream.write_all(&chunk[..100]).unwrap();
            expected.extend_from_slice(&chunk[..100]);
            let step = if i % 2 == 0 { usize::MAX } else { 65_536 + i };
            let copied = stream.copy_from(&mut Trickle(&chunk[100..], step)).unwrap();
            assert_eq!(copied, chunk.len() as u64 - 100);
            expected.extend_from_slice(&chunk[100..]);
        }
        let mut written = stream.finish().unwrap();
        let mut back = Vec::new();
        io::Seek::rewind(&mut written.file).unwrap();
        written.file.read_to_end(&mut back).unwrap();
        assert!(back == expected, "the file holds the stream in order");
        assert_eq!(written.size, expected.len() as u64);
        assert_eq!(written.sha256, hex(&Sha256::digest(&expected)));
    }

    #[test]
    fn hashing_writer_matches_a_one_shot_digest() {
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(b"hello ").unwrap();
        writer.write_all(b"world").unwrap();
        let (inner, digest, size) = writer.finish().unwrap();
        assert_eq!(inner, b"hello world");
        assert_eq!(size, 11);
        assert_eq!(
            digest,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }
}
