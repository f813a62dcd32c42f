//! How archives are compressed: gzip (the old scripts' format, what their restore scripts and GNU
//! tar read) compressed on every core, or zstd (opt-in, multi-threaded, several times faster at a
//! better ratio). Reading recognises either by its magic bytes, whatever the file is named.
//!
//! Parallel gzip is pigz's scheme (`ParGzip` below): blocks deflated on several threads, each primed
//! with the 32 KiB before it, joined into one standard gzip member — the same format any gzip
//! reader takes, within a fraction of a percent of single-threaded gzip's size. Written here on
//! flate2 (zlib-rs) because the crate that does it (`gzp`) primes dictionaries only over a C zlib,
//! which would replace zlib-rs for the whole process (and zlib-ng's build needs cmake). One thread
//! uses flate2's encoder directly. zstd is the reference C library through the `zstd` crate.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::thread::JoinHandle;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use serde::{Deserialize, Serialize};

const IO_BUFFER: usize = 1 << 20;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Gzip,
    Zstd,
}

impl Kind {
    /// `.tar.gz` or `.tar.zst`.
    pub fn suffix(self) -> &'static str {
        match self {
            Kind::Gzip => ".tar.gz",
            Kind::Zstd => ".tar.zst",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Gzip => "gzip",
            Kind::Zstd => "zstd",
        }
    }
}

/// A format with its level and the threads it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    pub kind: Kind,
    /// gzip 0–9, zstd 1–19.
    pub level: u32,
    /// Compression threads; 0 = every core.
    pub threads: usize,
}

impl Codec {
    /// Single-threaded gzip at `level` (what the old scripts made).
    pub fn gzip(level: u32) -> Self {
        Codec {
            kind: Kind::Gzip,
            level,
            threads: 1,
        }
    }

    fn threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }

    /// A compressing writer into `out` (a file, or the encrypting writer in front of one).
    pub fn encoder<W: Write + Send + 'static>(&self, out: W) -> std::io::Result<Encoder<W>> {
        let out = BufWriter::with_capacity(IO_BUFFER, out);
        let threads = self.threads();
        Ok(Encoder(match (self.kind, threads) {
            (Kind::Gzip, 1) => Inner::Gzip(GzEncoder::new(out, Compression::new(self.level))),
            (Kind::Gzip, n) => Inner::ParGzip(ParGzip::new(out, Compression::new(self.level), n)),
            (Kind::Zstd, n) => {
                let mut z = zstd::stream::write::Encoder::new(out, self.level as i32)?;
                // A frame checksum, so that reading to the end proves the content.
                z.include_checksum(true)?;
                if n > 1 {
                    z.multithread(n as u32)?;
                }
                Inner::Zstd(z)
            }
        }))
    }
}

/// A compressing writer; `finish` writes the end of the stream and gives the output back.
pub struct Encoder<W: Write>(Inner<W>);

enum Inner<W: Write> {
    Gzip(GzEncoder<BufWriter<W>>),
    ParGzip(ParGzip<BufWriter<W>>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<W>>),
}

impl<W: Write + Send + 'static> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.0 {
            Inner::Gzip(w) => w.write(buf),
            Inner::ParGzip(w) => w.write(buf),
            Inner::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.0 {
            Inner::Gzip(w) => w.flush(),
            Inner::ParGzip(w) => w.flush(),
            Inner::Zstd(w) => w.flush(),
        }
    }
}

impl<W: Write + Send + 'static> Encoder<W> {
    /// Ends the stream, flushes, and returns the output (to finish or fsync it).
    pub fn finish(self) -> std::io::Result<W> {
        let buffered = match self.0 {
            Inner::Gzip(w) => w.finish()?,
            Inner::ParGzip(w) => w.finish()?,
            Inner::Zstd(w) => w.finish()?,
        };
        buffered.into_inner().map_err(|e| e.into_error())
    }
}

/// Input per block: large enough that the block seams cost nothing measurable, small enough that
/// `threads` blocks in and out stay a few MiB.
const BLOCK: usize = 1 << 20;
/// Deflate's window: what each block is primed with.
const WINDOW: usize = 32 << 10;

/// A compressed block and the CRC32 of its input.
type Deflated = (Vec<u8>, Crc);

/// One gzip member deflated on several threads (pigz's scheme). Block k is compressed alone but
/// primed with the last 32 KiB of block k-1 as dictionary and ended with a sync flush (the last
/// block with the stream's end), so the compressed blocks concatenate into one deflate stream; the
/// CRC32 of the whole is the combination of the blocks'. At most `threads` blocks are in flight,
/// and their output is written in order.
pub struct ParGzip<W: Write> {
    out: W,
    level: Compression,
    threads: usize,
    block: Vec<u8>,
    window: Vec<u8>,
    in_flight: VecDeque<JoinHandle<std::io::Result<Deflated>>>,
    crc: Crc,
    started: bool,
}

impl<W: Write> ParGzip<W> {
    pub fn new(out: W, level: Compression, threads: usize) -> Self {
        ParGzip {
            out,
            level,
            threads: threads.max(1),
            block: Vec::with_capacity(BLOCK),
            window: Vec::new(),
            in_flight: VecDeque::new(),
            crc: Crc::new(),
            started: false,
        }
    }

    /// Hands the gathered block to a worker (waiting for the oldest when all are busy).
    fn submit(&mut self, last: bool) -> std::io::Result<()> {
        if !self.started {
            // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=unknown.
            self.out
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255])?;
            self.started = true;
        }
        let input = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let dictionary = std::mem::take(&mut self.window);
        self.window = input[input.len().saturating_sub(WINDOW)..].to_vec();
        let level = self.level;
        self.in_flight.push_back(std::thread::spawn(move || {
            deflate_block(&input, &dictionary, level, last)
        }));
        while self.in_flight.len() >= self.threads || (last && !self.in_flight.is_empty()) {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> std::io::Result<()> {
        let Some(handle) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let (compressed, crc) = handle
            .join()
            .map_err(|_| std::io::Error::other("a compression thread panicked"))??;
        self.crc.combine(&crc);
        self.out.write_all(&compressed)
    }

    /// Ends the stream (last block, CRC32 and length) and returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.submit(true)?;
        let (crc, len) = (self.crc.sum(), self.crc.amount());
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParGzip<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK {
            self.submit(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Blocks are written as they complete; cutting one short would cost ratio for nothing.
        self.out.flush()
    }
}

/// Raw deflate of one block, primed with `dictionary`, ended by a sync flush (or the stream's end).
fn deflate_block(
    input: &[u8],
    dictionary: &[u8],
    level: Compression,
    last: bool,
) -> std::io::Result<Deflated> {
    let mut z = Compress::new(level, false);
    if !dictionary.is_empty() {
        z.set_dictionary(dictionary)
            .map_err(std::io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 64 << 10 {
            out.reserve(out.capacity().max(64 << 10));
        }
        let done = z.total_in() as usize;
        let status = z
            .compress_vec(&input[done..], &mut out, flush)
            .map_err(std::io::Error::other)?;
        let consumed = z.total_in() as usize == input.len();
        let room_left = out.len() < out.capacity();
        match (last, status) {
            (true, Status::StreamEnd) => break,
            (false, _) if consumed && room_left => break,
            _ => {}
        }
    }
    let mut crc = Crc::new();
    crc.update(input);
    Ok((out, crc))
}

/// A decompressing reader of an archive, chosen by its magic bytes. Read to its end, it has
/// checked the format's own checksums (gzip's CRC32 and length; zstd's frame checks).
pub fn decoder<R: Read + Send + 'static>(
    input: R,
) -> std::io::Result<(Kind, Box<dyn Read + Send>)> {
    let mut reader = BufReader::with_capacity(IO_BUFFER, input);
    let head = reader.fill_buf()?;
    if head.starts_with(&ZSTD_MAGIC) {
        let z = zstd::stream::read::Decoder::with_buffer(reader)?;
        return Ok((Kind::Zstd, Box::new(z)));
    }
    if head.starts_with(&GZIP_MAGIC) || head.is_empty() {
        return Ok((Kind::Gzip, Box::new(MultiGzDecoder::new(reader))));
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "neither gzip nor zstd",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn round_trip(codec: Codec, data: &[u8]) -> (Kind, usize) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x");
        let mut e = codec.encoder(File::create(&path).unwrap()).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap();
        let size = std::fs::metadata(&path).unwrap().len() as usize;
        let (kind, mut d) = decoder(File::open(&path).unwrap()).unwrap();
        let mut back = Vec::new();
        d.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        (kind, size)
    }

    #[test]
    fn every_codec_reads_back_and_is_recognised() {
        let data: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| format!("{{\"n\":{i},\"s\":\"user-{}\"}}", i % 977).into_bytes())
            .take(6 << 20)
            .collect();
        let (k, single) = round_trip(Codec::gzip(6), &data);
        assert_eq!(k, Kind::Gzip);
        let (k, parallel) = round_trip(
            Codec {
                threads: 3,
                ..Codec::gzip(6)
            },
            &data,
        );
        assert_eq!(k, Kind::Gzip);
        // The pigz scheme keeps the ratio: within 2% of single-threaded gzip.
        assert!(
            (parallel as f64) < single as f64 * 1.02,
            "{parallel} vs {single}"
        );
        let (k, _) = round_trip(
            Codec {
                kind: Kind::Zstd,
                level: 3,
                threads: 2,
            },
            &data,
        );
        assert_eq!(k, Kind::Zstd);
    }
}
