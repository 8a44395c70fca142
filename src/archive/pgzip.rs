//! Gzip on every core, the way pigz does it: the input is cut into blocks,
//! each block is deflated on a worker with the previous 32 KiB as its
//! dictionary and ended with a sync flush, and the pieces are written in order
//! as one ordinary deflate stream. The output is a single gzip member that any
//! gunzip reads, within a few bytes per block of what one thread would write.
//!
//! Memory is bounded by the two queues: at most a handful of blocks are in
//! flight whatever the size of the archive.
//!
//! Why not the `gzp` crate, which does the same: its `finish()` does not hand
//! back the inner writer, and the archive writer needs that writer back (the
//! hashing sink that holds the archive's SHA-256, size and file to sync); and
//! its `Drop` unwraps the result of the final flush, so a full disk while an
//! aborted archive is dropped would panic instead of being reported. About 200
//! lines over flate2 keep both under our control.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

use super::writer::{ArchiveStream, BLOCK, QUEUE, Sink, Written, stage_gone};

/// Deflate's window: what a block may refer back to in the previous one.
const WINDOW: usize = 32 * 1024;

/// gzip header: magic, deflate, no flags, no mtime, no extra flags, Unix.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

struct Job {
    seq: u64,
    data: Vec<u8>,
    dictionary: Vec<u8>,
    last: bool,
}

struct Deflated {
    seq: u64,
    bytes: io::Result<Vec<u8>>,
    crc: Crc,
    last: bool,
}

/// A gzip writer that compresses blocks on worker threads.
pub struct ParallelGzip {
    block: Vec<u8>,
    dictionary: Vec<u8>,
    seq: u64,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<io::Result<Written>>>,
}

impl ParallelGzip {
    pub fn new(sink: Sink, level: u32) -> Self {
        let (jobs, job_queue) = sync_channel::<Job>(QUEUE);
        let (results, result_queue) = sync_channel::<Deflated>(QUEUE);
        let job_queue = Arc::new(Mutex::new(job_queue));
        let workers = (0..worker_count())
            .map(|_| {
                let job_queue = Arc::clone(&job_queue);
                let results = results.clone();
                std::thread::spawn(move || deflate_jobs(&job_queue, &results, level))
            })
            .collect();
        let writer = std::thread::spawn(move || write_in_order(sink, result_queue));
        Self {
            block: Vec::with_capacity(BLOCK),
            dictionary: Vec::new(),
            seq: 0,
            jobs: Some(jobs),
            workers,
            writer: Some(writer),
        }
    }

    fn send_block(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let tail = data.len().saturating_sub(WINDOW);
        let next_dictionary = data[tail..].to_vec();
        let job = Job {
            seq: self.seq,
            data,
            dictionary: std::mem::replace(&mut self.dictionary, next_dictionary),
            last,
        };
        self.seq += 1;
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job));
        match sent {
            Some(Ok(())) => Ok(()),
            // The writer stopped: its own error says why.
            _ => Err(self.join().err().unwrap_or_else(stage_gone)),
        }
    }

    fn join(&mut self) -> io::Result<Written> {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(stage_gone()),
        }
    }
}

/// One worker per core: the walk itself costs little next to deflate.
fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8))
}

fn deflate_jobs(job_queue: &Mutex<Receiver<Job>>, results: &SyncSender<Deflated>, level: u32) {
    let mut compress = Compress::new(Compression::new(level), false);
    loop {
        // The lock is held only while waiting for the next job.
        let job = match job_queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let mut crc = Crc::new();
        crc.update(&job.data);
        let bytes = deflate_block(&mut compress, &job);
        let done = Deflated {
            seq: job.seq,
            bytes,
            crc,
            last: job.last,
        };
        if results.send(done).is_err() {
            return;
        }
    }
}

/// Raw deflate of one block, primed with the previous block's tail, ended
/// with a sync flush (byte-aligned, so blocks concatenate) or, for the last
/// block, with the final deflate block.
fn deflate_block(compress: &mut Compress, job: &Job) -> io::Result<Vec<u8>> {
    compress.reset();
    if !job.dictionary.is_empty() {
        compress
            .set_dictionary(&job.dictionary)
            .map_err(io::Error::other)?;
    }
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(job.data.len() / 2 + 1024);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(4096));
        }
        let consumed = usize::try_from(compress.total_in()).unwrap_or(usize::MAX);
        let input = job.data.get(consumed..).unwrap_or_default();
        let status = compress
            .compress_vec(input, &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = compress.total_in() == job.data.len() as u64;
        match status {
            Status::StreamEnd => return Ok(out),
            // A sync flush is complete once output space was left over.
            _ if !job.last && all_in && out.len() < out.capacity() => return Ok(out),
            _ => {}
        }
    }
}

/// The writer thread: header, blocks in sequence order, trailer.
fn write_in_order(mut sink: Sink, result_queue: Receiver<Deflated>) -> io::Result<Written> {
    sink.write_all(&GZIP_HEADER)?;
    let mut waiting = BTreeMap::new();
    let mut next = 0;
    let mut crc = Crc::new();
    for deflated in result_queue {
        waiting.insert(deflated.seq, deflated);
        while let Some(deflated) = waiting.remove(&next) {
            sink.write_all(&deflated.bytes?)?;
            crc.combine(&deflated.crc);
            next += 1;
            if deflated.last {
                sink.write_all(&crc.sum().to_le_bytes())?;
                sink.write_all(&crc.amount().to_le_bytes())?;
                return sink.into_written();
            }
        }
    }
    Err(io::Error::other("the archive was abandoned before its end"))
}

impl Write for ParallelGzip {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK - self.block.len();
        let n = buf.len().min(room);
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK {
            self.send_block(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ArchiveStream for ParallelGzip {
    fn finish(mut self: Box<Self>) -> io::Result<Written> {
        self.send_block(true)?;
        self.join()
    }
}

impl Drop for ParallelGzip {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = self.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gzip_of(data: &[u8], level: u32) -> (Vec<u8>, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.gz");
        let file = std::fs::File::create(&path).unwrap();
        let sink = super::super::writer::sink(file, None).unwrap();
        let mut gz = Box::new(ParallelGzip::new(sink, level));
        // Odd-sized writes cross block boundaries at odd places.
        for chunk in data.chunks(77_777) {
            gz.write_all(chunk).unwrap();
        }
        let written = gz.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(written.size, bytes.len() as u64);
        (bytes, written.sha256)
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn blocks_join_into_one_valid_stream() {
        // Repetitive across block boundaries, so dictionaries matter.
        let data: Vec<u8> = (0..3 * BLOCK + 12_345)
            .map(|i| b"backupctl parallel gzip "[i % 24] ^ ((i / 4096) as u8 & 1))
            .collect();
        for level in [0, 1, 6, 9] {
            let (bytes, _) = gzip_of(&data, level);
            assert_eq!(gunzip(&bytes), data, "level {level}");
        }
    }

    #[test]
    fn empty_input_is_a_valid_empty_gzip() {
        let (bytes, _) = gzip_of(b"", 6);
        assert!(gunzip(&bytes).is_empty());
    }
}
