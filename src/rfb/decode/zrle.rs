//! ZRLE encoding (rfbproto §7.7.6): `U32 length`, then `length` bytes of one
//! connection-long zlib stream which inflate to 64×64 tiles (left to right,
//! top to bottom; the last column/row narrower), each:
//!
//! ```text
//! U8 subencoding
//!   0        raw: tw*th CPIXELs
//!   1        solid: one CPIXEL
//!   2..=16   packed palette: n CPIXELs, then rows of 1/2/4-bit indices
//!            (n = 2 / 3..=4 / 5..=16), MSB = leftmost, rows padded to a byte
//!   128      plain RLE: (CPIXEL, run length) until the tile is full
//!   130..255 palette RLE: n-128 CPIXELs, then runs: U8 index (run of 1) or
//!            U8 index|128 + run length
//!   17..=127, 129: unused → error
//! run length: bytes of 255 then one byte < 255; length = 1 + sum
//! ```
//! Runs may continue from one row into the next (not into the next tile).
//! A tile is parsed once its bytes have all been inflated; one that is cut
//! short is retried from its start when more arrives (drawing the same
//! pixels again), so nothing is half-consumed.

use super::inflate::{new_stream, pump, InflateBuf, Parsed};
use super::zlib::length_cap;
use super::{DecodeError, Decoder, PixelContext, Step};
use crate::fb::{Framebuffer, Rect};
use crate::rfb::pixel::PixelReader;
use flate2::Decompress;

const ENC: &str = "ZRLE";
const TILE: u16 = 64;

pub struct Zrle {
    z: Decompress,
    ib: InflateBuf,
    rect: Rect,
    left_in: Option<usize>,
    /// Next tile's top-left, relative to the rect.
    tx: u16,
    ty: u16,
}

impl Default for Zrle {
    fn default() -> Self {
        Zrle { z: new_stream(), ib: InflateBuf::default(), rect: Rect::default(), left_in: None, tx: 0, ty: 0 }
    }
}

fn err(reason: String) -> DecodeError {
    DecodeError { encoding: ENC, reason }
}

impl Decoder for Zrle {
    fn start(&mut self, rect: Rect) {
        self.rect = rect;
        self.left_in = None;
        self.tx = 0;
        self.ty = if rect.is_empty() { rect.h.max(1) } else { 0 };
    }

    fn decode(&mut self, input: &[u8], px: &PixelContext, fb: &mut Framebuffer) -> Result<Step, DecodeError> {
        let rd = PixelReader::cpixel(&px.format, &px.colour_map);
        let mut used = 0;
        let mut left_in = match self.left_in {
            Some(n) => n,
            None => {
                let Some(b) = input.get(..4) else { return Ok(Step::Partial(0)) };
                let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let tiles = (self.rect.w as usize).div_ceil(64) * (self.rect.h as usize).div_ceil(64);
                let cap = length_cap(self.rect.area() * 4 + tiles);
                if n > cap {
                    return Err(err(format!("compressed length {n} over the {cap} limit")));
                }
                used = 4;
                n
            }
        };
        let r = self.rect;
        let (tx, ty) = (&mut self.tx, &mut self.ty);
        let (u, done) = pump(&mut self.z, &mut self.ib, &mut left_in, &input[used..], ENC, |data| {
            let mut n = 0;
            while *ty < r.h {
                let t = Rect::new(r.x + *tx, r.y + *ty, (r.w - *tx).min(TILE), (r.h - *ty).min(TILE));
                match tile(&data[n..], t, &rd, fb)? {
                    None => break,
                    Some(len) => n += len,
                }
                fb.mark_dirty(t);
                *tx += t.w;
                if *tx >= r.w {
                    *tx = 0;
                    *ty += t.h;
                }
            }
            Ok(Parsed { used: n, done: *ty >= r.h, want: usize::MAX })
        })?;
        self.left_in = Some(left_in);
        used += u;
        Ok(if done { Step::Done(used) } else { Step::Partial(used) })
    }
}

/// Write `n` pixels of colour `c` into `dst`.
#[inline]
pub(crate) fn splat(dst: &mut [u8], c: [u8; 4]) {
    for p in dst.chunks_exact_mut(4) {
        p.copy_from_slice(&c);
    }
}

/// Read a run length at `b[*p..]`; `None` if incomplete. Runs longer than
/// `max` are an error.
#[inline]
fn run_length(b: &[u8], p: &mut usize, max: usize) -> Result<Option<usize>, DecodeError> {
    let mut len = 1usize;
    loop {
        let Some(&v) = b.get(*p) else { return Ok(None) };
        *p += 1;
        len += v as usize;
        if len > max {
            return Err(err(format!("run of {len}+ pixels with {max} left in the tile")));
        }
        if v != 255 {
            return Ok(Some(len));
        }
    }
}

/// Draw a run of `len` pixels starting at pixel index `pos` of tile `t`.
#[inline]
fn draw_run(fb: &mut Framebuffer, t: Rect, pos: usize, len: usize, c: [u8; 4]) -> Result<(), DecodeError> {
    let tw = t.w as usize;
    let (mut x, mut y) = (pos % tw, pos / tw);
    let mut left = len;
    while left > 0 {
        let seg = left.min(tw - x);
        let dst = fb.row_mut(t.x + x as u16, t.y + y as u16, seg as u16).map_err(|e| super::oob(ENC, e))?;
        splat(dst, c);
        left -= seg;
        x = 0;
        y += 1;
    }
    Ok(())
}

/// Decode one tile from `b`; `Ok(None)` if `b` does not hold all of it yet.
/// Returns the tile's length in bytes.
fn tile(b: &[u8], t: Rect, rd: &PixelReader, fb: &mut Framebuffer) -> Result<Option<usize>, DecodeError> {
    let Some(&sub) = b.first() else { return Ok(None) };
    let cb = rd.bytes();
    let (tw, th) = (t.w as usize, t.h as usize);
    let area = tw * th;
    match sub {
        0 => {
            let len = 1 + area * cb;
            if b.len() < len {
                return Ok(None);
            }
            for (i, src) in b[1..len].chunks_exact(tw * cb).enumerate() {
                let dst = fb.row_mut(t.x, t.y + i as u16, t.w).map_err(|e| super::oob(ENC, e))?;
                rd.row(src, dst);
            }
            Ok(Some(len))
        }
        1 => {
            if b.len() < 1 + cb {
                return Ok(None);
            }
            super::fill(fb, t, rd.rgba(&b[1..]), ENC)?;
            Ok(Some(1 + cb))
        }
        2..=16 => {
            let n = sub as usize;
            let bits = match n {
                2 => 1,
                3..=4 => 2,
                _ => 4,
            };
            let row_bytes = (tw * bits).div_ceil(8);
            let len = 1 + n * cb + row_bytes * th;
            if b.len() < len {
                return Ok(None);
            }
            let mut pal = [[0u8; 4]; 16];
            for (i, c) in pal[..n].iter_mut().enumerate() {
                *c = rd.rgba(&b[1 + i * cb..]);
            }
            let packed = &b[1 + n * cb..len];
            let mask = (1u8 << bits) - 1;
            for (y, src) in packed.chunks_exact(row_bytes).enumerate() {
                let dst = fb.row_mut(t.x, t.y + y as u16, t.w).map_err(|e| super::oob(ENC, e))?;
                for (x, d) in dst.chunks_exact_mut(4).enumerate() {
                    let bit = x * bits;
                    let idx = (src[bit / 8] >> (8 - bits - bit % 8)) & mask;
                    let Some(c) = pal[..n].get(idx as usize) else {
                        return Err(err(format!("palette index {idx} with {n} colours")));
                    };
                    d.copy_from_slice(c);
                }
            }
            Ok(Some(len))
        }
        128 => {
            let mut p = 1;
            let mut pos = 0;
            while pos < area {
                if b.len() < p + cb {
                    return Ok(None);
                }
                let c = rd.rgba(&b[p..]);
                p += cb;
                let Some(len) = run_length(b, &mut p, area - pos)? else { return Ok(None) };
                draw_run(fb, t, pos, len, c)?;
                pos += len;
            }
            Ok(Some(p))
        }
        130..=255 => {
            let n = (sub - 128) as usize;
            let mut p = 1 + n * cb;
            if b.len() < p {
                return Ok(None);
            }
            let mut pal = [[0u8; 4]; 127];
            for (i, c) in pal[..n].iter_mut().enumerate() {
                *c = rd.rgba(&b[1 + i * cb..]);
            }
            let mut pos = 0;
            while pos < area {
                let Some(&v) = b.get(p) else { return Ok(None) };
                p += 1;
                let idx = (v & 127) as usize;
                let Some(&c) = pal[..n].get(idx) else {
                    return Err(err(format!("palette index {idx} with {n} colours")));
                };
                let len = if v & 128 == 0 {
                    1
                } else {
                    let Some(len) = run_length(b, &mut p, area - pos)? else { return Ok(None) };
                    len
                };
                draw_run(fb, t, pos, len, c)?;
                pos += len;
            }
            Ok(Some(p))
        }
        _ => Err(err(format!("unused subencoding {sub}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    /// Compress `tiles` (the inflated form) as one rect.
    fn rect_bytes(s: &mut Server, tiles: &[u8]) -> Vec<u8> {
        let z = s.deflate(tiles);
        let mut v = (z.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&z);
        v
    }

    fn mk() -> Box<dyn Decoder> {
        Box::new(Zrle::default())
    }

    fn decode(tiles: &[u8], rect: Rect, fbw: u16, fbh: u16) -> Framebuffer {
        let input = rect_bytes(&mut Server::new(), tiles);
        check_splits(&mk, rect, &input, &ctx(), fbw, fbh)
    }

    fn fails(tiles: &[u8], rect: Rect) -> String {
        let input = rect_bytes(&mut Server::new(), tiles);
        let mut fb = Framebuffer::new(200, 200);
        run(&mut Zrle::default(), rect, &input, &ctx(), &mut fb).unwrap_err().reason
    }

    const P: [[u8; 3]; 16] = [
        [0, 0, 0],
        [1, 1, 1],
        [2, 2, 2],
        [3, 3, 3],
        [4, 4, 4],
        [5, 5, 5],
        [6, 6, 6],
        [7, 7, 7],
        [8, 8, 8],
        [9, 9, 9],
        [10, 10, 10],
        [11, 11, 11],
        [12, 12, 12],
        [13, 13, 13],
        [14, 14, 14],
        [15, 15, 15],
    ];

    /// Packed palette tile of `w`×`h` where pixel (x, y) has index (x + y) % n.
    fn packed_tile(n: usize, w: usize, h: usize) -> Vec<u8> {
        let bits = match n {
            2 => 1,
            3 | 4 => 2,
            _ => 4,
        };
        let mut v = vec![n as u8];
        for c in &P[..n] {
            v.extend_from_slice(c);
        }
        for y in 0..h {
            let mut row = vec![0u8; (w * bits).div_ceil(8)];
            for x in 0..w {
                let idx = ((x + y) % n) as u8;
                let bit = x * bits;
                row[bit / 8] |= idx << (8 - bits - bit % 8);
            }
            v.extend_from_slice(&row);
        }
        v
    }

    #[test]
    fn packed_palettes_with_row_padding() {
        for n in [2, 3, 4, 5, 16] {
            // 11 wide: padding in every row for all three bit widths.
            let fb = decode(&packed_tile(n, 11, 3), Rect::new(1, 2, 11, 3), 13, 6);
            for y in 0..3u16 {
                for x in 0..11u16 {
                    let i = (x + y) as usize % n;
                    assert_eq!(rgb(&fb, 1 + x, 2 + y), P[i], "n={n} ({x},{y})");
                }
            }
            assert_eq!(rgb(&fb, 12, 2), [0, 0, 0]);
        }
    }

    #[test]
    fn raw_solid_and_edge_tiles() {
        // 70x66 rect: tiles 64x64 (solid), 6x64 (raw), 64x2 (solid), 6x2 (raw).
        let mut t = vec![1, 9, 8, 7];
        t.push(0);
        for i in 0..6 * 64 {
            t.extend_from_slice(&[i as u8, (i >> 8) as u8, 0]);
        }
        t.extend_from_slice(&[1, 1, 2, 3]);
        t.push(0);
        for i in 0..12 {
            t.extend_from_slice(&[100 + i, 0, 0]);
        }
        let input = rect_bytes(&mut Server::new(), &t);
        let mut fb = Framebuffer::new(72, 68);
        // (split testing on a big input is slow; a handful of splits here)
        let n = run(&mut Zrle::default(), Rect::new(1, 1, 70, 66), &input, &ctx(), &mut fb).unwrap();
        assert_eq!(n, input.len());
        assert_eq!(rgb(&fb, 1, 1), [9, 8, 7]);
        assert_eq!(rgb(&fb, 64, 64), [9, 8, 7]);
        assert_eq!(rgb(&fb, 65, 1), [0, 0, 0]);
        assert_eq!(rgb(&fb, 70, 1), [5, 0, 0]);
        assert_eq!(rgb(&fb, 70, 64), [(6 * 64 - 1) as u8, 1, 0]);
        assert_eq!(rgb(&fb, 1, 65), [1, 2, 3]);
        assert_eq!(rgb(&fb, 64, 66), [1, 2, 3]);
        assert_eq!(rgb(&fb, 65, 65), [100, 0, 0]);
        assert_eq!(rgb(&fb, 70, 66), [111, 0, 0]);
        assert_eq!(rgb(&fb, 71, 66), [0, 0, 0]);
        assert_eq!(rgb(&fb, 1, 67), [0, 0, 0]);
        for split in [1, 4, 5, 100, input.len() / 2, input.len() - 1] {
            let mut fb2 = Framebuffer::new(72, 68);
            run_split(&mut Zrle::default(), Rect::new(1, 1, 70, 66), &input, split, false, &ctx(), &mut fb2).unwrap();
            assert!(fb2.data() == fb.data());
        }
    }

    #[test]
    fn plain_rle_runs_span_rows() {
        // 5x3 tile: run of 7 (red) spans rows 0-1, run of 8 (green) the rest.
        let tiles = [128, 255, 0, 0, 6, 0, 255, 0, 7];
        let fb = decode(&tiles, Rect::new(0, 0, 5, 3), 5, 3);
        assert_eq!(rgb(&fb, 4, 0), [255, 0, 0]);
        assert_eq!(rgb(&fb, 1, 1), [255, 0, 0]);
        assert_eq!(rgb(&fb, 2, 1), [0, 255, 0]);
        assert_eq!(rgb(&fb, 4, 2), [0, 255, 0]);
    }

    #[test]
    fn long_run_lengths() {
        // 64x5 = 320 pixels: one run of 256 ([255, 0]) and one of 64 ([63]).
        let tiles = [128, 1, 1, 1, 255, 0, 2, 2, 2, 63];
        let fb = decode(&tiles, Rect::new(0, 0, 64, 5), 64, 5);
        assert_eq!(rgb(&fb, 63, 3), [1, 1, 1]);
        assert_eq!(rgb(&fb, 0, 4), [2, 2, 2]);
        assert_eq!(rgb(&fb, 63, 4), [2, 2, 2]);
    }

    #[test]
    fn palette_rle() {
        // 4x2 tile, palette 3: idx2 single, idx0 run 3, idx1 run 4 (spans rows).
        let tiles = [131, 10, 0, 0, 20, 0, 0, 30, 0, 0, 2, 128, 2, 129, 3];
        let fb = decode(&tiles, Rect::new(0, 0, 4, 2), 4, 2);
        assert_eq!(rgb(&fb, 0, 0), [30, 0, 0]);
        assert_eq!(rgb(&fb, 1, 0), [10, 0, 0]);
        assert_eq!(rgb(&fb, 3, 0), [10, 0, 0]);
        assert_eq!(rgb(&fb, 0, 1), [20, 0, 0]);
        assert_eq!(rgb(&fb, 3, 1), [20, 0, 0]);
    }

    #[test]
    fn two_rects_and_zero_size() {
        // One stream across rects; the second rect zero-size (sync flush only).
        let mut s = Server::new();
        let a = rect_bytes(&mut s, &[1, 5, 6, 7]);
        let b = rect_bytes(&mut s, &[]);
        let c = rect_bytes(&mut s, &[1, 5, 6, 7]);
        let px = ctx();
        let mut d = Zrle::default();
        let mut fb = Framebuffer::new(8, 8);
        run(&mut d, Rect::new(0, 0, 2, 2), &a, &px, &mut fb).unwrap();
        run_split(&mut d, Rect::new(3, 3, 0, 0), &b, 1, true, &px, &mut fb).unwrap();
        run_split(&mut d, Rect::new(4, 4, 2, 2), &c, 2, true, &px, &mut fb).unwrap();
        assert_eq!(rgb(&fb, 5, 5), [5, 6, 7]);
    }

    #[test]
    fn bad_tiles() {
        let r = Rect::new(0, 0, 4, 2);
        assert_eq!(fails(&[17], r), "unused subencoding 17");
        assert_eq!(fails(&[127], r), "unused subencoding 127");
        assert_eq!(fails(&[129], r), "unused subencoding 129");
        // Run longer than the tile.
        assert_eq!(fails(&[128, 1, 2, 3, 8], r), "run of 9+ pixels with 8 left in the tile");
        // Palette index out of range (3 colours, 2-bit index 3).
        assert_eq!(fails(&[3, 0, 0, 0, 1, 1, 1, 2, 2, 2, 0xC0, 0], r), "palette index 3 with 3 colours");
        assert_eq!(fails(&[130, 0, 0, 0, 1, 1, 1, 5], r), "palette index 5 with 2 colours");
        // Too little and too much.
        assert_eq!(fails(&[128, 1, 2, 3, 3], r), "zlib data ended before the rectangle was complete");
        assert_eq!(fails(&[1, 1, 2, 3, 0], r), "more zlib output than the rectangle needs");
        // Corrupt.
        let mut input = rect_bytes(&mut Server::new(), &[1, 1, 2, 3]);
        input[6] ^= 0xff;
        let mut fb = Framebuffer::new(8, 8);
        let e = run(&mut Zrle::default(), r, &input, &ctx(), &mut fb).unwrap_err();
        assert!(e.reason.starts_with("corrupt zlib data"), "{}", e.reason);
    }
}
