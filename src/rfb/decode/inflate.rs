//! Shared plumbing for the zlib-based encodings (Zlib §7.7.5, ZRLE §7.7.6,
//! Tight): compressed bytes are fed to the connection's inflater as they
//! arrive and inflated into a reusable buffer, from which the encoding parses
//! whole units (pixels, tiles, rows).
//!
//! Output is capped: the parser says how many more inflated bytes the
//! rectangle can use, the inflater is never given more room than that, and
//! once the rectangle is complete any further output (pending in the
//! inflater, or from the rest of the rectangle's compressed bytes) is an
//! error. Likewise compressed data that ends before the rectangle is complete.

use super::DecodeError;
use flate2::{Decompress, FlushDecompress, Status};

/// Smallest inflate buffer; larger than any ZRLE tile (≤ 1 + 64·64·5 bytes).
const MIN_BUF: usize = 64 * 1024;

/// Inflated bytes not yet parsed. Allocated on first use, grown only when
/// a unit needs more room (a wide Tight row), never shrunk.
#[derive(Default)]
pub(crate) struct InflateBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// A new zlib stream (with the zlib header, as RFB servers send).
pub(crate) fn new_stream() -> Decompress {
    Decompress::new(true)
}

impl InflateBuf {
    /// Inflated bytes not parsed yet.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Forget buffered output (a stream reset).
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Make sure a unit of `n` bytes fits.
    pub fn reserve_unit(&mut self, n: usize) {
        let want = n.max(MIN_BUF);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
    }

    /// Inflate `input` through `z` into at most `limit` more bytes of
    /// buffer. Returns (input bytes used, bytes produced).
    fn fill(&mut self, z: &mut Decompress, input: &[u8], limit: usize) -> Result<(usize, usize), String> {
        self.reserve_unit(0);
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let stop = self.end + limit.min(self.buf.len() - self.end);
        let (mut used, mut made) = (0, 0);
        loop {
            let (in0, out0) = (z.total_in(), z.total_out());
            let st = z
                .decompress(&input[used..], &mut self.buf[self.end..stop], FlushDecompress::None)
                .map_err(|e| format!("corrupt zlib data ({e})"))?;
            let u = (z.total_in() - in0) as usize;
            let p = (z.total_out() - out0) as usize;
            used += u;
            made += p;
            self.end += p;
            if st == Status::StreamEnd {
                // A server that finished its stream starts a fresh one next.
                z.reset(true);
            }
            if u == 0 && p == 0 {
                return Ok((used, made));
            }
        }
    }
}

/// What a parser reports after looking at the inflated bytes.
pub(crate) struct Parsed {
    /// Inflated bytes it used (whole units only).
    pub used: usize,
    /// The rectangle is complete.
    pub done: bool,
    /// At most how many more inflated bytes the rectangle can use, counting
    /// those still buffered (`usize::MAX` if unknown, as for ZRLE).
    pub want: usize,
}

/// Feed up to `*left_in` bytes of `input` (the rest of the rectangle's
/// compressed data that has arrived) through `z`, calling `parse` on the
/// inflated bytes until it is done or the input runs out. Returns input bytes
/// used and whether the rectangle is complete.
pub(crate) fn pump(
    z: &mut Decompress,
    ib: &mut InflateBuf,
    left_in: &mut usize,
    input: &[u8],
    enc: &'static str,
    mut parse: impl FnMut(&[u8]) -> Result<Parsed, DecodeError>,
) -> Result<(usize, bool), DecodeError> {
    let err = |reason: String| DecodeError { encoding: enc, reason };
    let mut used = 0;
    loop {
        let p = parse(ib.data())?;
        ib.consume(p.used);
        if p.done && !ib.data().is_empty() {
            return Err(err("more zlib output than the rectangle needs".into()));
        }
        // Once done, one byte of room detects any excess output.
        let limit = if p.done { 1 } else { p.want.saturating_sub(ib.data().len()) };
        let avail = (input.len() - used).min(*left_in);
        let (u, made) = ib.fill(z, &input[used..used + avail], limit).map_err(err)?;
        used += u;
        *left_in -= u;
        if p.done && made > 0 {
            return Err(err("more zlib output than the rectangle needs".into()));
        }
        if u == 0 && made == 0 {
            return if p.done && *left_in == 0 {
                Ok((used, true))
            } else if *left_in == 0 {
                Err(err("zlib data ended before the rectangle was complete".into()))
            } else if avail == 0 {
                Ok((used, false)) // need more input
            } else if limit == 0 {
                Err(err("a unit does not fit the inflate buffer".into()))
            } else {
                Err(err("zlib stream stalled".into()))
            };
        }
    }
}
