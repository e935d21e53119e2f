//! Rectangle decoders, one file per encoding behind one trait (rfbproto §7.7).
//!
//! OWNED BY: the decoders work. The trait and `Step` are the contract with
//! `rfb::client`; change them only together.
//!
//! Contract:
//! * The client reads the rectangle header (x, y, w, h, encoding), checks the
//!   rectangle lies inside the framebuffer, calls [`Decoder::start`], then
//!   calls [`Decoder::decode`] with all bytes buffered so far (beyond what
//!   earlier calls consumed) until it returns `Step::Done`.
//! * A decoder consumes only whole units (a row, a tile, a chunk of
//!   compressed data it has fed to its inflater) and reports how many bytes
//!   it used; `Step::Partial(0)` with no progress means "need more bytes".
//!   It never rewinds: bytes reported consumed are gone.
//! * Every length read off the wire is checked against a limit before memory
//!   is reserved; inflated output is capped; every write to the framebuffer
//!   goes through its bounds-checked methods. Bad data → `DecodeError`,
//!   never a panic.
//! * Per-connection state (zlib streams) lives in the decoder for the whole
//!   RFB connection; per-rectangle state is reset by `start`.

use crate::fb::{Framebuffer, Rect};
use crate::rfb::PixelFormat;

/// Outcome of one `decode` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The rectangle is complete; this many input bytes were used.
    Done(usize),
    /// Not complete yet; this many input bytes were used (possibly 0).
    Partial(usize),
}

/// The server broke the encoding's rules (or exceeded a limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub encoding: &'static str,
    pub reason: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad {} data from VNC server: {}", self.encoding, self.reason)
    }
}

impl std::error::Error for DecodeError {}

/// What decoders need besides the bytes: how pixels are encoded on the wire.
pub struct PixelContext {
    pub format: PixelFormat,
    /// RGBA for each colour-map index (rfbproto §7.6.2), for servers that
    /// refuse true colour.
    pub colour_map: Box<[[u8; 4]; 256]>,
}

/// One encoding's decoder.
pub trait Decoder {
    /// Begin a new rectangle (already checked to be inside the framebuffer).
    fn start(&mut self, rect: Rect);
    /// Decode as much of the current rectangle as `input` allows.
    fn decode(&mut self, input: &[u8], px: &PixelContext, fb: &mut Framebuffer) -> Result<Step, DecodeError>;
}

pub mod cursor;
mod hextile;
mod inflate;
mod jpeg;
mod raw;
mod rre;
mod tight;
mod zlib;
mod zrle;

pub use hextile::Hextile;
pub use raw::Raw;
pub use rre::Rre;
pub use tight::Tight;
pub use zlib::Zlib;
pub use zrle::Zrle;

use crate::rfb::encoding;
use crate::rfb::pixel::PixelReader;

impl PixelContext {
    /// A context for `format` with an all-black colour map.
    pub fn new(format: PixelFormat) -> Self {
        PixelContext { format, colour_map: Box::new([[0, 0, 0, 255]; 256]) }
    }
}

/// The encodings implemented here, most preferred first, for SetEncodings
/// (rfbproto §7.5.2). CopyRect (handled by the client) is not listed.
///
/// Order, and why:
/// * Tight (7): lossless here (we never advertise JPEG quality levels), the
///   smallest on typical desktops (palette/gradient filters, solid fills,
///   four zlib streams), and cheap to decode.
/// * ZRLE (16): nearly as small, the default of TigerVNC/RealVNC; one stream.
/// * Hextile (5): no zlib, so cheap for both ends on fast links; for servers
///   without zlib support.
/// * Zlib (6): raw pixels through zlib; better than nothing on slow links.
/// * RRE (2): only good for flat areas; kept for old servers.
/// * Raw (0): always allowed by the protocol anyway.
pub fn supported() -> &'static [i32] {
    &[encoding::TIGHT, encoding::ZRLE, encoding::HEXTILE, encoding::ZLIB, encoding::RRE, encoding::RAW]
}

/// One decoder per implemented encoding, for one RFB connection: the zlib
/// streams inside live as long as this does (rfbproto §7.7.5/§7.7.6: "a
/// single zlib stream object is used for a given RFB connection").
#[derive(Default)]
pub struct Decoders {
    raw: Raw,
    rre: Rre,
    hextile: Hextile,
    zlib: Zlib,
    zrle: Zrle,
    tight: Tight,
}

impl Decoders {
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept Tight JpegCompression rectangles (only when a JPEG quality
    /// level was advertised: rfbproto §7.7.7 forbids them otherwise).
    pub fn allow_jpeg(&mut self, allowed: bool) {
        self.tight.allow_jpeg(allowed);
    }

    /// The decoder for `encoding`, or `None` if not implemented here.
    pub fn get(&mut self, encoding: i32) -> Option<&mut dyn Decoder> {
        match encoding {
            encoding::RAW => Some(&mut self.raw),
            encoding::RRE => Some(&mut self.rre),
            encoding::HEXTILE => Some(&mut self.hextile),
            encoding::ZLIB => Some(&mut self.zlib),
            encoding::ZRLE => Some(&mut self.zrle),
            encoding::TIGHT => Some(&mut self.tight),
            _ => None,
        }
    }
}

fn oob(encoding: &'static str, e: crate::fb::OutOfBounds) -> DecodeError {
    DecodeError { encoding, reason: e.to_string() }
}

/// Writes pixels of a rectangle in scanline order, whole pixels at a time,
/// wherever the input stops (Raw, Zlib).
#[derive(Debug, Default, Clone, Copy)]
struct ScanCursor {
    rect: Rect,
    x: u16,
    y: u16,
}

impl ScanCursor {
    fn new(rect: Rect) -> Self {
        ScanCursor { rect, x: 0, y: if rect.is_empty() { rect.h } else { 0 } }
    }

    fn done(&self) -> bool {
        self.y >= self.rect.h
    }

    /// Convert as many whole pixels from `data` as fit; returns bytes used.
    /// Marks what it wrote dirty.
    fn feed(
        &mut self,
        data: &[u8],
        rd: &PixelReader,
        fb: &mut Framebuffer,
        enc: &'static str,
    ) -> Result<usize, DecodeError> {
        let bpp = rd.bytes();
        let r = self.rect;
        let first_row = self.y;
        let mut used = 0;
        while !self.done() {
            let avail = (data.len() - used) / bpp;
            let n = avail.min((r.w - self.x) as usize) as u16;
            if n == 0 {
                break;
            }
            let dst = fb.row_mut(r.x + self.x, r.y + self.y, n).map_err(|e| oob(enc, e))?;
            let len = n as usize * bpp;
            rd.row(&data[used..used + len], dst);
            used += len;
            self.x += n;
            if self.x == r.w {
                self.x = 0;
                self.y += 1;
            }
        }
        if used > 0 {
            let last = if self.x > 0 { self.y + 1 } else { self.y };
            fb.mark_dirty(Rect::new(r.x, r.y + first_row, r.w, last - first_row));
        }
        Ok(used)
    }
}

/// Fill `r` (relative to nothing: framebuffer coordinates) with one colour.
fn fill(fb: &mut Framebuffer, r: Rect, rgba: [u8; 4], enc: &'static str) -> Result<(), DecodeError> {
    fb.fill(r, rgba).map_err(|e| oob(enc, e))
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Helpers shared by the decoder tests.
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    pub fn ctx() -> PixelContext {
        PixelContext::new(PixelFormat::wanted())
    }

    /// 16 bpp true colour, R5 G6 B5, little-endian.
    pub const RGB565_LE: PixelFormat = PixelFormat {
        bits_per_pixel: 16,
        depth: 16,
        big_endian: false,
        true_colour: true,
        red_max: 31,
        green_max: 63,
        blue_max: 31,
        red_shift: 11,
        green_shift: 5,
        blue_shift: 0,
    };

    /// R5 G6 B5 in either byte order.
    pub fn rgb565(big_endian: bool) -> PixelFormat {
        PixelFormat { big_endian, ..RGB565_LE }
    }

    /// A persistent compressor like a server's: each call is one rectangle's
    /// worth, ended with a sync flush.
    pub struct Server(pub Compress);
    impl Server {
        pub fn new() -> Self {
            Server(Compress::new(Compression::new(6), true))
        }
        pub fn deflate(&mut self, data: &[u8]) -> Vec<u8> {
            let mut out = Vec::with_capacity(data.len() + 64);
            let start_in = self.0.total_in();
            loop {
                let consumed = (self.0.total_in() - start_in) as usize;
                out.reserve(4096);
                self.0.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync).unwrap();
                if (self.0.total_in() - start_in) as usize == data.len() && out.len() < out.capacity() {
                    break;
                }
            }
            out
        }
    }

    /// Run a decoder over `input` in one go.
    pub fn run(
        d: &mut dyn Decoder,
        rect: Rect,
        input: &[u8],
        px: &PixelContext,
        fb: &mut Framebuffer,
    ) -> Result<usize, DecodeError> {
        d.start(rect);
        match d.decode(input, px, fb)? {
            Step::Done(n) => Ok(n),
            Step::Partial(n) => {
                Err(DecodeError { encoding: "test", reason: format!("incomplete after {n} of {} bytes", input.len()) })
            }
        }
    }

    /// Feed `input` the way the client does, with the first `split` bytes
    /// arriving first and then the rest one byte at a time after that if
    /// `bytewise`, else all at once. Returns bytes consumed when Done.
    pub fn run_split(
        d: &mut dyn Decoder,
        rect: Rect,
        input: &[u8],
        split: usize,
        bytewise: bool,
        px: &PixelContext,
        fb: &mut Framebuffer,
    ) -> Result<usize, DecodeError> {
        d.start(rect);
        let mut buf: Vec<u8> = Vec::new();
        let mut fed = 0;
        let mut total = 0;
        let mut next = split.min(input.len());
        loop {
            buf.extend_from_slice(&input[fed..next]);
            fed = next;
            match d.decode(&buf, px, fb)? {
                Step::Done(n) => return Ok(total + n),
                Step::Partial(n) => {
                    buf.drain(..n);
                    total += n;
                }
            }
            if fed == input.len() {
                return Err(DecodeError { encoding: "test", reason: "incomplete".into() });
            }
            next = if bytewise { fed + 1 } else { input.len() };
        }
    }

    /// Decode `input` whole, then at every split offset (and byte by byte),
    /// checking the framebuffer and bytes used come out identical.
    pub fn check_splits(
        mk: &dyn Fn() -> Box<dyn Decoder>,
        rect: Rect,
        input: &[u8],
        px: &PixelContext,
        fbw: u16,
        fbh: u16,
    ) -> Framebuffer {
        let mut want = Framebuffer::new(fbw, fbh);
        let n = run(&mut *mk(), rect, input, px, &mut want).expect("whole decode");
        assert_eq!(n, input.len(), "whole input consumed");
        for split in 0..=input.len() {
            let mut fb = Framebuffer::new(fbw, fbh);
            let n = run_split(&mut *mk(), rect, input, split, false, px, &mut fb)
                .unwrap_or_else(|e| panic!("split {split}: {e}"));
            assert_eq!(n, input.len(), "split {split}");
            assert!(fb.data() == want.data(), "split {split}: framebuffer differs");
        }
        let mut fb = Framebuffer::new(fbw, fbh);
        let n = run_split(&mut *mk(), rect, input, 0, true, px, &mut fb).expect("bytewise");
        assert_eq!(n, input.len());
        assert!(fb.data() == want.data(), "bytewise: framebuffer differs");
        want
    }

    /// A deterministic xorshift32 generator for randomised tests.
    pub fn xorshift(mut seed: u32) -> impl FnMut() -> u32 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        }
    }

    /// Pixel (x, y) of `fb` as RGB.
    pub fn rgb(fb: &Framebuffer, x: u16, y: u16) -> [u8; 3] {
        let p = fb.pixel(x, y);
        [p[0], p[1], p[2]]
    }
}
