//! Tight encoding (rfbproto §7.7.7 "Tight Encoding").
//!
//! ```text
//! U8 compression-control
//!   bits 0-3  reset zlib stream 0..3 before this rectangle (any method)
//!   bits 4-7  0xxx BasicCompression: bits 4-5 stream id, bit 6 filter-id follows
//!             1000 FillCompression: one TPIXEL for the whole rectangle
//!             1001 JpegCompression: compact length, then a JFIF image of the
//!                  rectangle (only when a JPEG quality level was advertised:
//!                  `--vnc-jpeg`; refused otherwise)
//!             other: invalid
//! Basic: [U8 filter-id: 0 copy, 1 palette, 2 gradient]
//!        palette: U8 n-1, n TPIXELs; indices 1 bit (n <= 2, rows padded to a
//!                 byte, MSB = leftmost) or 8 bits
//!        then the filtered rows: h * row-bytes; under 12 bytes sent as is,
//!        otherwise compact length (1-3 bytes, 7+7+8 bits, little end first)
//!        and that many bytes of zlib data on the chosen stream.
//! TPIXEL: 3 bytes R,G,B when true colour, 32 bpp, depth 24, 8-bit components;
//!         otherwise a PIXEL.
//! ```
//!
//! "The width of any Tight-encoded rectangle cannot exceed 2048 pixels": we
//! enforce that for BasicCompression, where it bounds a row (as TigerVNC
//! does); FillCompression needs no buffer, so wider fills are accepted.
//!
//! The four zlib streams live as long as the RFB connection; the reset bits
//! apply even to Fill and JPEG rectangles ([NOTE1] of the spec).
//!
//! Progress: the header is consumed a field at a time (control byte, filter
//! id, palette size, each palette entry, the compact length as a whole), and
//! pixel data a whole row at a time, from the input or from the inflater.

use super::inflate::{new_stream, pump, InflateBuf, Parsed};
use super::{DecodeError, Decoder, PixelContext, Step};
use crate::fb::{Framebuffer, Rect};
use crate::rfb::pixel::PixelReader;
use flate2::Decompress;

const ENC: &str = "Tight";
/// rfbproto §7.7.7: widest rectangle for BasicCompression.
pub const MAX_WIDTH: u16 = 2048;
/// Filtered data shorter than this is sent without zlib.
const MIN_TO_COMPRESS: usize = 12;

fn err(reason: impl Into<String>) -> DecodeError {
    DecodeError { encoding: ENC, reason: reason.into() }
}

/// Where we are in the current rectangle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Control,
    /// FillCompression: waiting for the TPIXEL.
    Fill,
    FilterId,
    PaletteSize,
    /// Palette entries read so far.
    Palette(usize),
    /// Filtered data sent as is (fewer than 12 bytes).
    Uncompressed,
    /// Waiting for the compact length.
    Length,
    /// JpegCompression: waiting for the compact length.
    JpegLength,
    /// JpegCompression: gathering this many more bytes of JFIF data.
    Jpeg(usize),
    /// This many zlib bytes still to come.
    Zlib(usize),
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    Copy,
    /// 2 colours or fewer: 1 bit per pixel.
    Palette1,
    /// 3..=256 colours: 8 bits per pixel.
    Palette8,
    Gradient,
}

/// Turns whole rows of filtered data into framebuffer pixels.
struct Rows {
    rect: Rect,
    /// Rows done, relative to the rect.
    y: u16,
    filter: Filter,
    palette: [[u8; 4]; 256],
    colours: usize,
    /// Gradient filter: the previous row's components (zero above row 0).
    prev: Vec<[u32; 3]>,
}

impl Rows {
    fn row_bytes(&self, tpx: usize) -> usize {
        let w = self.rect.w as usize;
        match self.filter {
            Filter::Copy | Filter::Gradient => w * tpx,
            Filter::Palette1 => w.div_ceil(8),
            Filter::Palette8 => w,
        }
    }

    fn done(&self) -> bool {
        self.y >= self.rect.h
    }

    /// Filtered bytes still needed.
    fn left(&self, tpx: usize) -> usize {
        (self.rect.h - self.y) as usize * self.row_bytes(tpx)
    }

    /// Decode as many whole rows from `data` as it holds; returns bytes used.
    fn feed(&mut self, data: &[u8], rd: &PixelReader, fb: &mut Framebuffer) -> Result<usize, DecodeError> {
        let rb = self.row_bytes(rd.bytes());
        let r = self.rect;
        let first = self.y;
        let mut used = 0;
        while !self.done() && rb > 0 && data.len() - used >= rb {
            let src = &data[used..used + rb];
            let dst = fb.row_mut(r.x, r.y + self.y, r.w).map_err(|e| super::oob(ENC, e))?;
            match self.filter {
                Filter::Copy => rd.row(src, dst),
                Filter::Palette1 => {
                    // Eight pixels per source byte, MSB first; bits past
                    // the row's width are padding.
                    if self.colours < 2 && wsvnc_kernels::any_bit(src, r.w as usize) {
                        return Err(err("palette index 1 with 1 colours"));
                    }
                    wsvnc_kernels::expand_bits(src, dst, self.palette[0], self.palette[1]);
                }
                Filter::Palette8 => {
                    let top = wsvnc_kernels::max_byte(src) as usize;
                    if top >= self.colours {
                        return Err(err(format!("palette index {top} with {} colours", self.colours)));
                    }
                    wsvnc_kernels::expand_bytes(src, dst, &self.palette);
                }
                Filter::Gradient => gradient_row(src, dst, rd, &mut self.prev),
            }
            used += rb;
            self.y += 1;
        }
        if self.y > first {
            fb.mark_dirty(Rect::new(r.x, r.y + first, r.w, self.y - first));
        }
        Ok(used)
    }
}

/// Undo the gradient filter for one row (rfbproto §7.7.7 GradientFilter):
/// each component is the wire value plus the prediction
/// `clamp(V[x, y-1] + V[x-1, y] - V[x-1, y-1], 0, MAX)`, modulo MAX+1, with
/// V = 0 outside the rectangle. `prev` holds row y-1 and becomes row y.
fn gradient_row(src: &[u8], dst: &mut [u8], rd: &PixelReader, prev: &mut [[u32; 3]]) {
    if rd.is_rgb() {
        return wsvnc_kernels::gradient_rgb_row(src, dst, prev);
    }
    let max = rd.maxima();
    let bpp = rd.bytes();
    let mut left = [0u32; 3];
    let mut up_left = [0u32; 3];
    for ((d, s), above) in dst.chunks_exact_mut(4).zip(src.chunks_exact(bpp)).zip(prev.iter_mut()) {
        let diff = rd.components(s);
        let mut v = [0u32; 3];
        for c in 0..3 {
            let p = (above[c] + left[c]).saturating_sub(up_left[c]).min(max[c]);
            v[c] = diff[c].wrapping_add(p) & max[c];
        }
        up_left = *above;
        *above = v;
        left = v;
        d.copy_from_slice(&rd.scale(v));
    }
}

pub struct Tight {
    z: [Decompress; 4],
    ib: InflateBuf,
    stage: Stage,
    stream: usize,
    /// TurboVNC's rfbTightNoZlib (control nibble | 0xA): the compact length
    /// is followed by the filtered bytes as they are, not by zlib data.
    no_zlib: bool,
    rows: Rows,
    /// JpegCompression allowed (a quality level was advertised).
    jpeg_allowed: bool,
    /// The JFIF data of the current JPEG rectangle, and its decoded RGBA;
    /// both reused, bounded by [`jpeg_cap`] and the rectangle's size.
    jpeg: Vec<u8>,
    jpeg_rgba: Vec<u8>,
}

impl Default for Tight {
    fn default() -> Self {
        Tight {
            z: [new_stream(), new_stream(), new_stream(), new_stream()],
            ib: InflateBuf::default(),
            stage: Stage::Done,
            stream: 0,
            no_zlib: false,
            rows: Rows {
                rect: Rect::default(),
                y: 0,
                filter: Filter::Copy,
                palette: [[0, 0, 0, 255]; 256],
                colours: 0,
                prev: Vec::new(),
            },
            jpeg_allowed: false,
            jpeg: Vec::new(),
            jpeg_rgba: Vec::new(),
        }
    }
}

/// Compact length (1–3 bytes): `None` if incomplete, else (value, bytes used).
fn compact_len(b: &[u8]) -> Option<(usize, usize)> {
    let b0 = *b.first()? as usize;
    if b0 & 0x80 == 0 {
        return Some((b0, 1));
    }
    let b1 = *b.get(1)? as usize;
    if b1 & 0x80 == 0 {
        return Some(((b0 & 0x7f) | (b1 << 7), 2));
    }
    let b2 = *b.get(2)? as usize;
    Some(((b0 & 0x7f) | ((b1 & 0x7f) << 7) | (b2 << 14), 3))
}

/// Most JFIF bytes accepted for a `w × h` JPEG rectangle: 6 bytes a pixel
/// (twice uncompressed RGB, beyond any real quality setting) plus 16 KiB of
/// headers and tables. The compact length itself stops at 4 MiB.
fn jpeg_cap(r: Rect) -> usize {
    r.area() * 6 + 16 * 1024
}

impl Tight {
    /// Accept JpegCompression rectangles or not (see `Decoders::allow_jpeg`).
    pub fn allow_jpeg(&mut self, allowed: bool) {
        self.jpeg_allowed = allowed;
    }

    /// The header is complete: set up the rows and pick how data arrives.
    fn begin_data(&mut self, filter: Filter, px: &PixelContext, tpx: usize) -> Result<(), DecodeError> {
        if filter == Filter::Gradient && (!px.format.true_colour || px.format.bits_per_pixel == 8) {
            return Err(err("gradient filter needs a 16 or 32 bpp true-colour format"));
        }
        self.rows.filter = filter;
        if filter == Filter::Gradient {
            self.rows.prev.clear();
            self.rows.prev.resize(self.rows.rect.w as usize, [0; 3]);
        }
        let size = self.rows.left(tpx);
        self.stage = if size == 0 {
            Stage::Done
        } else if size < MIN_TO_COMPRESS {
            Stage::Uncompressed
        } else {
            Stage::Length
        };
        Ok(())
    }
}

impl Decoder for Tight {
    fn start(&mut self, rect: Rect) {
        self.rows.rect = rect;
        self.rows.y = 0;
        self.rows.colours = 0;
        self.stage = Stage::Control;
        self.no_zlib = false;
        self.ib.clear();
    }

    fn decode(&mut self, input: &[u8], px: &PixelContext, fb: &mut Framebuffer) -> Result<Step, DecodeError> {
        let rd = PixelReader::tpixel(&px.format, &px.colour_map);
        let tpx = rd.bytes();
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.stage {
                Stage::Control => {
                    let Some(&ctl) = rest.first() else { break };
                    used += 1;
                    for (i, z) in self.z.iter_mut().enumerate() {
                        if ctl & (1 << i) != 0 {
                            z.reset(true);
                        }
                    }
                    let mut kind = ctl >> 4;
                    // TurboVNC (and libvncserver at compression level 0) marks
                    // basic rectangles whose data is not deflated by setting
                    // 0xA in the type nibble (rfbTightNoZlib), as libvncclient
                    // and TigerVNC's decoder accept.
                    if kind & 0xA == 0xA {
                        kind &= !0xA;
                        self.no_zlib = true;
                    }
                    match kind {
                        0x8 => self.stage = Stage::Fill,
                        0x9 if self.jpeg_allowed => self.stage = Stage::JpegLength,
                        0x9 => return Err(err("JPEG not advertised")),
                        m @ 0..=7 => {
                            if self.rows.rect.w > MAX_WIDTH {
                                return Err(err(format!(
                                    "BasicCompression rectangle {} pixels wide (limit {MAX_WIDTH})",
                                    self.rows.rect.w
                                )));
                            }
                            self.stream = (m & 3) as usize;
                            if m & 4 != 0 {
                                self.stage = Stage::FilterId;
                            } else {
                                self.begin_data(Filter::Copy, px, tpx)?;
                            }
                        }
                        m => return Err(err(format!("invalid compression type {m:#x}"))),
                    }
                }
                Stage::Fill => {
                    let Some(p) = rest.get(..tpx) else { break };
                    used += tpx;
                    super::fill(fb, self.rows.rect, rd.rgba(p), ENC)?;
                    self.stage = Stage::Done;
                }
                Stage::FilterId => {
                    let Some(&id) = rest.first() else { break };
                    used += 1;
                    match id {
                        0 => self.begin_data(Filter::Copy, px, tpx)?,
                        1 => self.stage = Stage::PaletteSize,
                        2 => self.begin_data(Filter::Gradient, px, tpx)?,
                        id => return Err(err(format!("unknown filter id {id}"))),
                    }
                }
                Stage::PaletteSize => {
                    let Some(&n) = rest.first() else { break };
                    used += 1;
                    self.rows.colours = n as usize + 1;
                    self.stage = Stage::Palette(0);
                }
                Stage::Palette(k) => {
                    let n = self.rows.colours;
                    let take = (rest.len() / tpx).min(n - k);
                    for (i, p) in rest[..take * tpx].chunks_exact(tpx).enumerate() {
                        self.rows.palette[k + i] = rd.rgba(p);
                    }
                    used += take * tpx;
                    if k + take < n {
                        self.stage = Stage::Palette(k + take);
                        break;
                    }
                    self.begin_data(if n <= 2 { Filter::Palette1 } else { Filter::Palette8 }, px, tpx)?;
                }
                Stage::Uncompressed => {
                    let left = self.rows.left(tpx);
                    used += self.rows.feed(&rest[..rest.len().min(left)], &rd, fb)?;
                    if !self.rows.done() {
                        break;
                    }
                    self.stage = Stage::Done;
                }
                Stage::Length => {
                    let Some((len, n)) = compact_len(rest) else { break };
                    if self.no_zlib {
                        let want = self.rows.left(tpx);
                        if len != want {
                            return Err(err(format!("uncompressed length {len}, the rows need {want}")));
                        }
                        used += n;
                        self.stage = Stage::Uncompressed;
                        continue;
                    }
                    let cap = length_cap_tight(self.rows.left(tpx));
                    if len > cap {
                        return Err(err(format!("compressed length {len} over the {cap} limit")));
                    }
                    used += n;
                    self.stage = Stage::Zlib(len);
                }
                Stage::JpegLength => {
                    let Some((len, n)) = compact_len(rest) else { break };
                    let cap = jpeg_cap(self.rows.rect);
                    if len > cap {
                        return Err(err(format!(
                            "JPEG of {len} bytes for a {} pixel rectangle",
                            self.rows.rect.area()
                        )));
                    }
                    used += n;
                    self.jpeg.clear();
                    self.jpeg.reserve(len);
                    self.stage = Stage::Jpeg(len);
                }
                Stage::Jpeg(left) => {
                    let n = left.min(rest.len());
                    self.jpeg.extend_from_slice(&rest[..n]);
                    used += n;
                    if n < left {
                        self.stage = Stage::Jpeg(left - n);
                        break;
                    }
                    let r = self.rows.rect;
                    if !r.is_empty() {
                        super::jpeg::decode_rgba(&self.jpeg, r.w, r.h, &mut self.jpeg_rgba).map_err(err)?;
                        fb.put_rgba(r, &self.jpeg_rgba).map_err(|e| super::oob(ENC, e))?;
                    }
                    log::trace!("Tight: JPEG {}x{} from {} bytes", r.w, r.h, self.jpeg.len());
                    self.stage = Stage::Done;
                }
                Stage::Zlib(mut left_in) => {
                    let rows = &mut self.rows;
                    let (u, done) = pump(&mut self.z[self.stream], &mut self.ib, &mut left_in, rest, ENC, |data| {
                        let n = rows.feed(data, &rd, fb)?;
                        Ok(Parsed { used: n, done: rows.done(), want: rows.left(tpx) })
                    })?;
                    used += u;
                    self.stage = if done { Stage::Done } else { Stage::Zlib(left_in) };
                    if !done {
                        break;
                    }
                }
                Stage::Done => return Ok(Step::Done(used)),
            }
        }
        Ok(Step::Partial(used))
    }
}

/// Most zlib bytes accepted for `raw` filtered bytes: deflate output never
/// exceeds the input by more than a few bytes per block plus the flush
/// markers, so twice the raw size plus 1 KiB is generous; far below the
/// 4 MiB a compact length can say for small rectangles. (Zlib/ZRLE's
/// `length_cap` has a 64 MiB floor, useless against a 22-bit length.)
fn length_cap_tight(raw: usize) -> usize {
    raw.saturating_mul(2).saturating_add(1024)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::rfb::PixelFormat;

    fn mk() -> Box<dyn Decoder> {
        Box::new(Tight::default())
    }

    /// Compact length representation (rfbproto §7.7.7).
    fn compact(n: usize) -> Vec<u8> {
        if n < 128 {
            vec![n as u8]
        } else if n < 16384 {
            vec![0x80 | (n & 0x7f) as u8, (n >> 7) as u8]
        } else {
            vec![0x80 | (n & 0x7f) as u8, 0x80 | ((n >> 7) & 0x7f) as u8, (n >> 14) as u8]
        }
    }

    /// A BasicCompression rectangle: `head` (control byte and any filter
    /// header), then `data` as is if under 12 bytes, else compressed by `s`.
    fn basic(head: &[u8], data: &[u8], s: &mut Server) -> Vec<u8> {
        let mut v = head.to_vec();
        if data.len() < 12 {
            v.extend_from_slice(data);
        } else {
            let z = s.deflate(data);
            v.extend(compact(z.len()));
            v.extend(z);
        }
        v
    }

    #[test]
    fn compact_length_matches_spec_example() {
        // "decimal value 10000 should be represented as two bytes: ... 90 4E".
        assert_eq!(compact(10000), [0x90, 0x4e]);
        assert_eq!(compact_len(&[0x90, 0x4e]), Some((10000, 2)));
        assert_eq!(compact_len(&[0x7f]), Some((127, 1)));
        assert_eq!(compact_len(&[0xff, 0xff, 0xff]), Some((4194303, 3)));
        assert_eq!(compact_len(&[0x80, 0x80]), None);
        assert_eq!(compact_len(&[]), None);
        for n in [0, 1, 127, 128, 16383, 16384, 4194303] {
            assert_eq!(compact_len(&compact(n)), Some((n, compact(n).len())));
        }
    }

    #[test]
    fn fill_at_the_framebuffer_edge() {
        let px = ctx();
        // Reset bits on a fill are allowed (and honoured).
        let input = [0x8f, 10, 20, 30];
        let fb = check_splits(&mk, Rect::new(3, 2, 2, 2), &input, &px, 5, 4);
        assert_eq!(rgb(&fb, 3, 2), [10, 20, 30]);
        assert_eq!(rgb(&fb, 4, 3), [10, 20, 30]);
        assert_eq!(rgb(&fb, 2, 3), [0, 0, 0]);
        assert_eq!(rgb(&fb, 4, 1), [0, 0, 0]);
    }

    #[test]
    fn no_zlib_basic_rectangles() {
        let px = ctx();
        // 0xA0: copy filter, stream 0, data not deflated: compact length 36
        // then the 36 filtered bytes (4×3 RGB).
        let data: Vec<u8> = (0..36).map(|i| (i * 5) as u8).collect();
        let mut input = vec![0xa0, 36];
        input.extend_from_slice(&data);
        let fb = check_splits(&mk, Rect::new(0, 0, 4, 3), &input, &px, 4, 3);
        assert_eq!(rgb(&fb, 0, 0), [0, 5, 10]);
        assert_eq!(rgb(&fb, 3, 2), [165, 170, 175]);
        // 0xE0: explicit filter (palette of 2, 1 bit per pixel), 16×1 = 2 bytes
        // < 12: sent as is, without a length, as for zlib rectangles.
        let input = [0xe0, 0x01, 0x01, 9, 9, 9, 200, 200, 200, 0b1000_0000, 0b0000_0001];
        let fb = check_splits(&mk, Rect::new(0, 0, 16, 1), &input, &px, 16, 1);
        assert_eq!(rgb(&fb, 0, 0), [200, 200, 200]);
        assert_eq!(rgb(&fb, 1, 0), [9, 9, 9]);
        assert_eq!(rgb(&fb, 15, 0), [200, 200, 200]);
    }

    #[test]
    fn copy_filter_uncompressed_and_compressed() {
        let px = ctx();
        // 3×1 RGB = 9 bytes < 12: sent as is.
        let input = [0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        let fb = check_splits(&mk, Rect::new(1, 1, 3, 1), &input, &px, 4, 3);
        assert_eq!(rgb(&fb, 1, 1), [1, 2, 3]);
        assert_eq!(rgb(&fb, 3, 1), [7, 8, 9]);
        assert_eq!(rgb(&fb, 0, 1), [0, 0, 0]);

        // 4×3 RGB = 36 bytes, compressed on stream 1, bottom-right corner.
        let data: Vec<u8> = (0..36).map(|i| (i * 7) as u8).collect();
        let input = basic(&[0x10], &data, &mut Server::new());
        let fb = check_splits(&mk, Rect::new(2, 1, 4, 3), &input, &px, 6, 4);
        assert_eq!(rgb(&fb, 2, 1), [0, 7, 14]);
        assert_eq!(rgb(&fb, 5, 3), [(33 * 7) as u8, (34 * 7) as u8, (35 * 7) as u8]);
        assert_eq!(rgb(&fb, 1, 1), [0, 0, 0]);

        // Explicit filter id 0 is the same as none.
        let input = [0x40, 0x00, 1, 2, 3, 4, 5, 6];
        let fb = check_splits(&mk, Rect::new(0, 0, 1, 2), &input, &px, 1, 2);
        assert_eq!(rgb(&fb, 0, 1), [4, 5, 6]);
    }

    #[test]
    fn palette_two_colours_rows_padded() {
        let px = ctx();
        // 9×2, 1 bit per pixel: each row is 2 bytes (7 padding bits).
        // Row 0: 1 0 1 0 1 0 1 0 | 1; row 1: 0 1 1 1 1 1 1 1 | 0.
        let rows = [0b1010_1010, 0b1000_0000, 0b0111_1111, 0b0000_0000];
        let mut input = vec![0x40, 0x01, 0x01, 200, 0, 0, 0, 0, 200];
        input.extend_from_slice(&rows); // 4 bytes < 12: as is
        let fb = check_splits(&mk, Rect::new(0, 1, 9, 2), &input, &px, 10, 3);
        let (a, b) = ([200, 0, 0], [0, 0, 200]);
        assert_eq!(rgb(&fb, 0, 1), b);
        assert_eq!(rgb(&fb, 1, 1), a);
        assert_eq!(rgb(&fb, 8, 1), b);
        assert_eq!(rgb(&fb, 0, 2), a);
        assert_eq!(rgb(&fb, 7, 2), b);
        assert_eq!(rgb(&fb, 8, 2), a);
        assert_eq!(rgb(&fb, 9, 2), [0, 0, 0]);

        // 11×10 with 1-bit rows of 2 bytes = 20 bytes: compressed (stream 3).
        let mut data = Vec::new();
        for y in 0..10u8 {
            data.extend_from_slice(&[0xf0 ^ y, 0xe0]);
        }
        let input = basic(&[0x70, 0x01, 0x01, 1, 1, 1, 9, 9, 9], &data, &mut Server::new());
        let fb = check_splits(&mk, Rect::new(0, 0, 11, 10), &input, &px, 11, 10);
        assert_eq!(rgb(&fb, 0, 0), [9, 9, 9]);
        assert_eq!(rgb(&fb, 4, 0), [1, 1, 1]);
        assert_eq!(rgb(&fb, 10, 0), [9, 9, 9]);
        // Row 3 is 0xf3 = 1111_0011: x 5 is 0, x 6 and 7 are 1.
        assert_eq!(rgb(&fb, 5, 3), [1, 1, 1]);
        assert_eq!(rgb(&fb, 6, 3), [9, 9, 9]);
        assert_eq!(rgb(&fb, 7, 3), [9, 9, 9]);
    }

    #[test]
    fn palette_many_colours() {
        let px = ctx();
        // 3 colours, 8-bit indices, 2×2 = 4 bytes as is.
        let input = [0x40, 0x01, 0x02, 1, 1, 1, 2, 2, 2, 3, 3, 3, 0, 1, 2, 1];
        let fb = check_splits(&mk, Rect::new(0, 0, 2, 2), &input, &px, 2, 2);
        assert_eq!(rgb(&fb, 0, 0), [1, 1, 1]);
        assert_eq!(rgb(&fb, 1, 0), [2, 2, 2]);
        assert_eq!(rgb(&fb, 0, 1), [3, 3, 3]);
        assert_eq!(rgb(&fb, 1, 1), [2, 2, 2]);

        // 256 colours (the largest palette), 16×16 compressed on stream 2.
        let mut head = vec![0x60, 0x01, 0xff];
        for i in 0..=255u8 {
            head.extend_from_slice(&[i, 255 - i, i / 2]);
        }
        let data: Vec<u8> = (0..=255u8).rev().collect();
        let input = basic(&head, &data, &mut Server::new());
        let fb = check_splits(&mk, Rect::new(0, 0, 16, 16), &input, &px, 16, 16);
        assert_eq!(rgb(&fb, 0, 0), [255, 0, 127]);
        assert_eq!(rgb(&fb, 15, 15), [0, 255, 0]);
        assert_eq!(rgb(&fb, 1, 2), [255 - 33, 33, (255 - 33) / 2]);
    }

    #[test]
    fn gradient_matches_hand_computation() {
        let px = ctx();
        // Wanted pixels V:
        //   row 0: (10,20,30) (15,25,35) (100,20,20)
        //   row 1: (12,22,32) (200,0,255) (5,5,5)
        // Differences D = V - clamp(above + left - upleft, 0, 255) mod 256:
        //   (0,0): pred 0                          → (10,20,30)
        //   (1,0): pred left (10,20,30)            → (5,5,5)
        //   (2,0): pred left (15,25,35)            → (85,251,241)
        //   (0,1): pred above (10,20,30)           → (2,2,2)
        //   (1,1): pred (15+12-10, 25+22-20, 35+32-30) = (17,27,37) → (183,229,218)
        //   (2,1): pred (100+200-15→255, 20+0-25→0, 20+255-35=240) → (6,5,21)
        let d = [
            10, 20, 30, 5, 5, 5, 85, 251, 241, //
            2, 2, 2, 183, 229, 218, 6, 5, 21,
        ];
        let input = basic(&[0x40, 0x02], &d, &mut Server::new());
        let fb = check_splits(&mk, Rect::new(1, 0, 3, 2), &input, &px, 4, 2);
        let want = [[10, 20, 30], [15, 25, 35], [100, 20, 20], [12, 22, 32], [200, 0, 255], [5, 5, 5]];
        for (i, w) in want.iter().enumerate() {
            assert_eq!(rgb(&fb, 1 + (i % 3) as u16, (i / 3) as u16), *w, "pixel {i}");
        }
        assert_eq!(rgb(&fb, 0, 0), [0, 0, 0]);
    }

    #[test]
    fn gradient_and_copy_in_rgb565() {
        let mut px = PixelContext::new(rgb565(false));
        // TPIXEL == PIXEL here. V = (31,0,0), (0,63,31):
        // D0 = (31,0,0) = 0xF800; D1 = V1 - V0 mod (max+1) = (1,63,31) = 0x0FFF.
        let input = [0x40, 0x02, 0x00, 0xf8, 0xff, 0x0f];
        let fb = check_splits(&mk, Rect::new(0, 0, 2, 1), &input, &px, 2, 1);
        assert_eq!(rgb(&fb, 0, 0), [255, 0, 0]);
        assert_eq!(rgb(&fb, 1, 0), [0, 255, 255]);
        // Fill with a 2-byte TPIXEL.
        let fb = check_splits(&mk, Rect::new(0, 0, 2, 1), &[0x80, 0xe0, 0x07], &px, 2, 1);
        assert_eq!(rgb(&fb, 1, 0), [0, 255, 0]);
        // 8 bpp colour map: palette entries are map indices; no gradient.
        px.format = PixelFormat { bits_per_pixel: 8, depth: 8, true_colour: false, ..px.format };
        px.colour_map[5] = [50, 60, 70, 255];
        px.colour_map[6] = [1, 2, 3, 255];
        let fb = check_splits(&mk, Rect::new(0, 0, 3, 1), &[0x40, 0x01, 0x01, 5, 6, 0b0100_0000], &px, 3, 1);
        assert_eq!(rgb(&fb, 0, 0), [50, 60, 70]);
        assert_eq!(rgb(&fb, 1, 0), [1, 2, 3]);
        let fb = check_splits(&mk, Rect::new(0, 0, 2, 1), &[0x00, 6, 5], &px, 2, 1);
        assert_eq!(rgb(&fb, 0, 0), [1, 2, 3]);
        assert!(fails_with(&px, &[0x40, 0x02, 0, 0], Rect::new(0, 0, 2, 1)).contains("gradient"));
    }

    #[test]
    fn streams_persist_and_reset_bits_reset_them() {
        let px = ctx();
        let data: Vec<u8> = (0..48).map(|i| (i * 5) as u8).collect(); // 4×4
        let r = Rect::new(0, 0, 4, 4);
        // Server stream 1 carries two rects: the second is a back-reference.
        let mut s1 = Server::new();
        let a = basic(&[0x10], &data, &mut s1);
        let b = basic(&[0x10], &data, &mut s1);
        assert!(b.len() < a.len() / 2, "{} vs {}", b.len(), a.len());
        // Stream 0 used in between does not disturb stream 1.
        let other: Vec<u8> = (0..48).map(|i| 255 - i as u8).collect();
        let mid = basic(&[0x00], &other, &mut Server::new());

        let mut d = Tight::default();
        let mut fb = Framebuffer::new(4, 4);
        assert_eq!(run(&mut d, r, &a, &px, &mut fb).unwrap(), a.len());
        assert_eq!(run(&mut d, r, &mid, &px, &mut fb).unwrap(), mid.len());
        assert_eq!(rgb(&fb, 0, 0), [255, 254, 253]);
        for split in 0..=b.len() {
            let mut d2 = Tight::default();
            run(&mut d2, r, &a, &px, &mut fb).unwrap();
            run(&mut d2, r, &mid, &px, &mut fb).unwrap();
            assert_eq!(run_split(&mut d2, r, &b, split, false, &px, &mut fb).unwrap(), b.len());
            assert_eq!(rgb(&fb, 3, 3), [(45 * 5) as u8, (46 * 5) as u8, (47 * 5) as u8]);
        }

        // The server restarts stream 1 and says so with bit 1 — on a fill
        // rect, which must still reset it ([NOTE1]).
        let fresh = basic(&[0x10], &data, &mut Server::new());
        let mut d = Tight::default();
        run(&mut d, r, &a, &px, &mut fb).unwrap();
        run(&mut d, r, &[0x82, 1, 2, 3], &px, &mut fb).unwrap();
        assert_eq!(rgb(&fb, 0, 0), [1, 2, 3]);
        assert_eq!(run(&mut d, r, &fresh, &px, &mut fb).unwrap(), fresh.len());
        assert_eq!(rgb(&fb, 1, 0), [15, 20, 25]);
        // The same on a basic rect (control 0x12: stream 1, reset 1).
        let mut d = Tight::default();
        run(&mut d, r, &a, &px, &mut fb).unwrap();
        let mut reset = fresh.clone();
        reset[0] = 0x12;
        assert_eq!(run(&mut d, r, &reset, &px, &mut fb).unwrap(), reset.len());
        // Without the reset the fresh stream's header is garbage mid-stream.
        let mut d = Tight::default();
        run(&mut d, r, &a, &px, &mut fb).unwrap();
        let e = run(&mut d, r, &fresh, &px, &mut fb).unwrap_err();
        assert!(e.reason.starts_with("corrupt zlib data"), "{e}");
    }

    #[test]
    fn zero_size_rects() {
        let px = ctx();
        let mut fb = Framebuffer::new(4, 4);
        let mut d = Tight::default();
        for r in [Rect::new(0, 0, 0, 3), Rect::new(4, 4, 0, 0), Rect::new(1, 1, 3, 0)] {
            d.start(r);
            assert_eq!(d.decode(&[0x00, 9, 9], &px, &mut fb).unwrap(), Step::Done(1));
            d.start(r);
            assert_eq!(d.decode(&[0x40, 0x01, 0x00, 1, 2, 3, 9], &px, &mut fb).unwrap(), Step::Done(6));
            d.start(r);
            assert_eq!(d.decode(&[0x80, 1, 2, 3, 9], &px, &mut fb).unwrap(), Step::Done(4));
        }
        assert_eq!(rgb(&fb, 0, 0), [0, 0, 0]);
    }

    #[test]
    fn waits_for_whole_units() {
        let px = ctx();
        let mut fb = Framebuffer::new(4, 4);
        let mut d = Tight::default();
        d.start(Rect::new(0, 0, 2, 1));
        assert_eq!(d.decode(&[], &px, &mut fb).unwrap(), Step::Partial(0));
        assert_eq!(d.decode(&[0x40], &px, &mut fb).unwrap(), Step::Partial(1));
        assert_eq!(d.decode(&[0x01, 0x01, 1, 2], &px, &mut fb).unwrap(), Step::Partial(2));
        assert_eq!(d.decode(&[1, 2, 3, 4], &px, &mut fb).unwrap(), Step::Partial(3));
        // Second entry, then the one data byte; bytes after it are not ours.
        assert_eq!(d.decode(&[4, 5, 6, 0x40, 0xee], &px, &mut fb).unwrap(), Step::Done(4));
        assert_eq!(rgb(&fb, 0, 0), [1, 2, 3]);
        assert_eq!(rgb(&fb, 1, 0), [4, 5, 6]);
    }

    fn fails_with(px: &PixelContext, input: &[u8], rect: Rect) -> String {
        let mut fb = Framebuffer::new(4096, 4);
        let mut d = Tight::default();
        d.start(rect);
        match d.decode(input, px, &mut fb) {
            Err(e) => e.reason,
            Ok(s) => panic!("no error: {s:?}"),
        }
    }

    fn fails(input: &[u8], rect: Rect) -> String {
        fails_with(&ctx(), input, rect)
    }

    #[test]
    fn bad_data() {
        let r = Rect::new(0, 0, 4, 4);
        // 4×4 RGB = 48 bytes: at most 2·48 + 1024 compressed bytes.
        assert_eq!(fails(&[0x00, 0xff, 0xff, 0xff], r), "compressed length 4194303 over the 1120 limit");
        assert_eq!(fails(&[0x40, 0x03], r), "unknown filter id 3");
        assert_eq!(fails(&[0x90, 0x05], r), "JPEG not advertised");
        assert_eq!(fails(&[0xc0], r), "invalid compression type 0xc");
        assert_eq!(fails(&[0xd0], r), "invalid compression type 0xd");
        assert_eq!(fails(&[0xa0, 47], r), "uncompressed length 47, the rows need 48");
        assert_eq!(
            fails(&[0x00], Rect::new(0, 0, 2049, 1)),
            "BasicCompression rectangle 2049 pixels wide (limit 2048)"
        );
        // A wide fill is fine.
        let px = ctx();
        let mut fb = Framebuffer::new(4096, 4);
        assert_eq!(run(&mut Tight::default(), Rect::new(0, 0, 4096, 4), &[0x80, 1, 2, 3], &px, &mut fb), Ok(4));
        assert_eq!(rgb(&fb, 4095, 3), [1, 2, 3]);
        // Palette index out of range: 3 colours, index 3; 1 colour, bit 1.
        assert_eq!(
            fails(&[0x40, 0x01, 0x02, 0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 3], Rect::new(0, 0, 2, 1)),
            "palette index 3 with 3 colours"
        );
        assert_eq!(
            fails(&[0x40, 0x01, 0x00, 7, 7, 7, 0b0100_0000], Rect::new(0, 0, 2, 1)),
            "palette index 1 with 1 colours"
        );
        // Corrupt zlib: not a zlib header.
        let mut input = basic(&[0x00], &[7u8; 48], &mut Server::new());
        input[2] = 0x00;
        assert!(fails(&input, r).starts_with("corrupt zlib data"));
        // Compressed data that ends early, and data that inflates to too much.
        let short = basic(&[0x00], &[7u8; 45], &mut Server::new());
        assert_eq!(fails(&short, r), "zlib data ended before the rectangle was complete");
        let long = basic(&[0x00], &[7u8; 51], &mut Server::new());
        assert_eq!(fails(&long, r), "more zlib output than the rectangle needs");
        // A zero compact length for data that needs zlib.
        assert_eq!(fails(&[0x00, 0x00], r), "zlib data ended before the rectangle was complete");
    }

    /// Random and mutated input: errors or progress, never a panic, and
    /// never more bytes claimed than given.
    #[test]
    fn garbage_never_panics() {
        let px = ctx();
        let mut rnd = xorshift(0x2545_f491u32);
        let mut s = Server::new();
        let valid = [
            basic(&[0x40, 0x02], &[9u8; 30], &mut s),
            basic(&[0x60, 0x01, 0x02, 1, 1, 1, 2, 2, 2, 3, 3, 3], &[2u8; 20], &mut s),
            vec![0x40, 0x01, 0x01, 1, 2, 3, 4, 5, 6, 0xff],
            vec![0x8f, 1, 2, 3],
        ];
        for i in 0..4000 {
            let mut input: Vec<u8> = if i % 2 == 0 {
                (0..rnd() % 48).map(|_| rnd() as u8).collect()
            } else {
                let mut v = valid[i / 2 % valid.len()].clone();
                let at = rnd() as usize % v.len();
                v[at] ^= 1 << (rnd() % 8);
                v
            };
            if i % 7 == 0 && !input.is_empty() {
                input[0] &= 0x7f; // more BasicCompression
            }
            let rect = Rect::new(0, 0, (rnd() % 24) as u16, (rnd() % 12) as u16);
            let mut fb = Framebuffer::new(24, 12);
            let mut d = Tight::default();
            d.start(rect);
            if let Ok(Step::Done(n) | Step::Partial(n)) = d.decode(&input, &px, &mut fb) {
                assert!(n <= input.len());
            }
        }
    }
}
