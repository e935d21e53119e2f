//! Hextile encoding (rfbproto §7.7.4): 16×16 tiles, left to right, top to
//! bottom, the last column/row narrower when the rect is not a multiple of 16.
//!
//! ```text
//! U8 subencoding-mask: 1 Raw | 2 BackgroundSpecified | 4 ForegroundSpecified
//!                      | 8 AnySubrects | 16 SubrectsColoured
//! Raw:  tw*th PIXELs (other bits ignored)
//! else: [PIXEL bg] [PIXEL fg] [U8 n, n × ([PIXEL] U8 x<<4|y, U8 (w-1)<<4|(h-1))]
//! ```
//! Each tile is decoded only when all its bytes are present (at most
//! 1 + 2·4 + 1 + 255·6 bytes), so a tile is the unit of consumption.
//!
//! Background and foreground carry over from tile to tile. As in the
//! original VNC viewer and TigerVNC, a coloured subrectangle's colour also
//! becomes the foreground carried to the next tile (the spec is silent).

use super::{fill, DecodeError, Decoder, PixelContext, Step};
use crate::fb::{Framebuffer, Rect};
use crate::rfb::pixel::PixelReader;

const ENC: &str = "Hextile";

const RAW: u8 = 1;
const BG: u8 = 2;
const FG: u8 = 4;
const ANY: u8 = 8;
const COLOURED: u8 = 16;

#[derive(Debug, Default)]
pub struct Hextile {
    rect: Rect,
    /// Next tile's top-left, relative to the rect.
    tx: u16,
    ty: u16,
    bg: [u8; 4],
    fg: [u8; 4],
}

impl Hextile {
    fn tile(&self) -> Rect {
        let r = self.rect;
        Rect::new(r.x + self.tx, r.y + self.ty, (r.w - self.tx).min(16), (r.h - self.ty).min(16))
    }

    fn done(&self) -> bool {
        self.ty >= self.rect.h || self.rect.w == 0
    }

    fn advance(&mut self) {
        self.tx += 16.min(self.rect.w - self.tx);
        if self.tx >= self.rect.w {
            self.tx = 0;
            self.ty += 16.min(self.rect.h - self.ty);
        }
    }
}

/// Bytes the tile starting at `b[0]` needs in total, or `None` if the bytes
/// that say so have not arrived yet.
fn tile_len(b: &[u8], t: Rect, bpp: usize) -> Option<usize> {
    let mask = *b.first()?;
    if mask & RAW != 0 {
        return Some(1 + t.area() * bpp);
    }
    let mut n = 1;
    if mask & BG != 0 {
        n += bpp;
    }
    if mask & FG != 0 {
        n += bpp;
    }
    if mask & ANY != 0 {
        let count = *b.get(n)? as usize;
        let each = if mask & COLOURED != 0 { bpp + 2 } else { 2 };
        n += 1 + count * each;
    }
    Some(n)
}

impl Decoder for Hextile {
    fn start(&mut self, rect: Rect) {
        *self = Hextile { rect, ..Hextile::default() };
        self.bg = [0, 0, 0, 255];
        self.fg = [0, 0, 0, 255];
    }

    fn decode(&mut self, input: &[u8], px: &PixelContext, fb: &mut Framebuffer) -> Result<Step, DecodeError> {
        let rd = PixelReader::new(&px.format, &px.colour_map);
        let bpp = rd.bytes();
        let mut used = 0;
        while !self.done() {
            let t = self.tile();
            let b = &input[used..];
            let len = match tile_len(b, t, bpp) {
                Some(n) if n <= b.len() => n,
                _ => break,
            };
            self.tile_body(&b[..len], t, &rd, fb)?;
            used += len;
            self.advance();
        }
        Ok(if self.done() { Step::Done(used) } else { Step::Partial(used) })
    }
}

impl Hextile {
    /// Draw one tile from its complete bytes `b`.
    fn tile_body(&mut self, b: &[u8], t: Rect, rd: &PixelReader, fb: &mut Framebuffer) -> Result<(), DecodeError> {
        let bpp = rd.bytes();
        let mask = b[0];
        if mask & RAW != 0 {
            let row = t.w as usize * bpp;
            for (i, src) in b[1..].chunks_exact(row).enumerate() {
                let dst = fb.row_mut(t.x, t.y + i as u16, t.w).map_err(|e| super::oob(ENC, e))?;
                rd.row(src, dst);
            }
            fb.mark_dirty(t);
            return Ok(());
        }
        let mut p = 1;
        if mask & BG != 0 {
            self.bg = rd.rgba(&b[p..]);
            p += bpp;
        }
        if mask & FG != 0 {
            self.fg = rd.rgba(&b[p..]);
            p += bpp;
        }
        fill(fb, t, self.bg, ENC)?;
        if mask & ANY == 0 {
            return Ok(());
        }
        let count = b[p];
        p += 1;
        for _ in 0..count {
            if mask & COLOURED != 0 {
                self.fg = rd.rgba(&b[p..]);
                p += bpp;
            }
            let (xy, wh) = (b[p], b[p + 1]);
            p += 2;
            let (x, y) = ((xy >> 4) as u16, (xy & 15) as u16);
            let (w, h) = ((wh >> 4) as u16 + 1, (wh & 15) as u16 + 1);
            if x + w > t.w || y + h > t.h {
                return Err(DecodeError {
                    encoding: ENC,
                    reason: format!("subrectangle {w}x{h}+{x}+{y} outside the {}x{} tile", t.w, t.h),
                });
            }
            fill(fb, Rect::new(t.x + x, t.y + y, w, h), self.fg, ENC)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn mk() -> Box<dyn Decoder> {
        Box::new(Hextile::default())
    }

    const A: [u8; 4] = [10, 20, 30, 0];
    const B: [u8; 4] = [40, 50, 60, 0];
    const C: [u8; 4] = [70, 80, 90, 0];

    /// A 20×18 rect: tiles 16×16, 4×16, 16×2, 4×2.
    #[test]
    fn flag_combinations_and_edge_tiles() {
        let px = ctx();
        let mut input = Vec::new();
        // Tile 0 (16x16): bg A, fg B, 2 subrects in fg: 2x1 at (0,0), 1x3 at (15,13).
        input.push(BG | FG | ANY);
        input.extend_from_slice(&A);
        input.extend_from_slice(&B);
        input.extend_from_slice(&[2, 0x00, 0x10, 0xFD, 0x02]);
        // Tile 1 (4x16): background carried over (A), coloured subrects:
        // C 1x1 at (3,15); B 4x1 at (0,0).
        input.push(ANY | COLOURED);
        input.push(2);
        input.extend_from_slice(&C);
        input.extend_from_slice(&[0x3F, 0x00]);
        input.extend_from_slice(&B);
        input.extend_from_slice(&[0x00, 0x30]);
        // Tile 2 (16x2): raw, pixel i has red = i.
        input.push(RAW | BG); // other bits irrelevant when Raw is set
        for i in 0..32u8 {
            input.extend_from_slice(&[i, 1, 2, 0]);
        }
        // Tile 3 (4x2): no new bg (A survives the raw tile), fg carried from
        // the last coloured subrect (B): 1 subrect 1x1 at (1,1).
        input.push(ANY);
        input.extend_from_slice(&[1, 0x11, 0x00]);
        let fb = check_splits(&mk, Rect::new(1, 1, 20, 18), &input, &px, 24, 20);
        let (a, b, c) = ([10, 20, 30], [40, 50, 60], [70, 80, 90]);
        // tile 0 at (1,1)
        assert_eq!(rgb(&fb, 1, 1), b);
        assert_eq!(rgb(&fb, 2, 1), b);
        assert_eq!(rgb(&fb, 3, 1), a);
        assert_eq!(rgb(&fb, 16, 14), b);
        assert_eq!(rgb(&fb, 16, 16), b);
        assert_eq!(rgb(&fb, 16, 13), a);
        // tile 1 at (17,1), 4 wide
        assert_eq!(rgb(&fb, 17, 1), b);
        assert_eq!(rgb(&fb, 20, 1), b);
        assert_eq!(rgb(&fb, 20, 16), c);
        assert_eq!(rgb(&fb, 19, 16), a);
        assert_eq!(rgb(&fb, 21, 1), [0, 0, 0]); // outside the rect
                                                // tile 2 at (1,17), raw
        assert_eq!(rgb(&fb, 1, 17), [0, 1, 2]);
        assert_eq!(rgb(&fb, 16, 17), [15, 1, 2]);
        assert_eq!(rgb(&fb, 1, 18), [16, 1, 2]);
        assert_eq!(rgb(&fb, 16, 18), [31, 1, 2]);
        // tile 3 at (17,17)
        assert_eq!(rgb(&fb, 17, 17), a);
        assert_eq!(rgb(&fb, 18, 18), b);
        assert_eq!(rgb(&fb, 20, 18), a);
        assert_eq!(rgb(&fb, 1, 19), [0, 0, 0]);
    }

    #[test]
    fn zero_size_rect_consumes_nothing() {
        let px = ctx();
        let mut fb = Framebuffer::new(4, 4);
        let mut d = Hextile::default();
        for r in [Rect::new(0, 0, 0, 4), Rect::new(0, 0, 4, 0)] {
            d.start(r);
            assert_eq!(d.decode(&[RAW], &px, &mut fb).unwrap(), Step::Done(0));
        }
    }

    #[test]
    fn subrect_outside_tile_is_an_error() {
        let px = ctx();
        let mut fb = Framebuffer::new(20, 20);
        let mut d = Hextile::default();
        // 5x5 rect: subrect 2x1 at (4,0) sticks out.
        d.start(Rect::new(0, 0, 5, 5));
        let mut input = vec![BG | ANY];
        input.extend_from_slice(&A);
        input.extend_from_slice(&[1, 0x40, 0x10]);
        let e = d.decode(&input, &px, &mut fb).unwrap_err();
        assert_eq!(e.reason, "subrectangle 2x1+4+0 outside the 5x5 tile");
    }

    #[test]
    fn waits_for_whole_tiles() {
        let px = ctx();
        let mut fb = Framebuffer::new(32, 16);
        let mut d = Hextile::default();
        d.start(Rect::new(0, 0, 32, 1));
        let mut t = vec![BG | ANY | COLOURED];
        t.extend_from_slice(&A);
        t.extend_from_slice(&[1]);
        t.extend_from_slice(&B);
        t.extend_from_slice(&[0x00, 0x00]);
        assert_eq!(d.decode(&t[..t.len() - 1], &px, &mut fb).unwrap(), Step::Partial(0));
        assert_eq!(d.decode(&t, &px, &mut fb).unwrap(), Step::Partial(t.len()));
        assert_eq!(d.decode(&[0], &px, &mut fb).unwrap(), Step::Done(1));
        assert_eq!(rgb(&fb, 16, 0), [10, 20, 30]);
    }
}
