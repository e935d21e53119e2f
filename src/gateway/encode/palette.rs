//! Indexed ("palette") encoding of few-colour regions: text and UI.
//! The table and the scan are in src/kernels/palette.rs (at opt-level 3).
//!
//! [`Palette::build`] scans a rectangle once, assigning each new colour the
//! next index (order of first appearance) and writing one index byte per
//! pixel into a reusable buffer; it gives up at the 257th colour. The
//! message then carries the colours and the indices packed at 1, 2, 4 or
//! 8 bits (docs/protocol.md `Palette`).

use crate::fb::{Framebuffer, Rect};

pub use wsvnc_kernels::palette::{bits_for, row_bytes, Palette, MAX_COLOURS};

/// [`Palette::build`] over a rectangle of the framebuffer.
pub trait BuildFrom {
    /// Index every pixel of `r` (inside `fb`). False when `r` has more than
    /// `max` (≤ 256) colours; the palette is then unusable.
    fn build_from(&mut self, fb: &Framebuffer, r: Rect, max: usize) -> bool;
}

impl BuildFrom for Palette {
    fn build_from(&mut self, fb: &Framebuffer, r: Rect, max: usize) -> bool {
        let stride = fb.width() as usize * 4;
        let start = r.y as usize * stride + r.x as usize * 4;
        self.build(fb.data(), stride, start, r.w as usize, r.h as usize, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unpack like the browser does (docs/protocol.md `Palette`).
    fn unpack(payload: &[u8], n: usize, w: usize, h: usize) -> Vec<[u8; 4]> {
        let (colours, packed) = payload.split_at(n * 3);
        let bits = bits_for(n) as usize;
        let rb = row_bytes(w, bits as u8);
        assert_eq!(packed.len(), rb * h, "packed length");
        let mut px = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let bit = x * bits;
                let byte = packed[y * rb + bit / 8];
                let i = (byte >> (8 - bits - bit % 8)) as usize & ((1 << bits) - 1);
                px.push([colours[i * 3], colours[i * 3 + 1], colours[i * 3 + 2], 255]);
            }
        }
        px
    }

    /// Every palette size and an odd width: pack → unpack gives the pixels back.
    #[test]
    fn packing_round_trips_exactly() {
        for n in [1usize, 2, 3, 4, 5, 16, 17, 200, 256] {
            let (w, h) = (13u16, 7u16);
            let mut fb = Framebuffer::new(40, 20);
            for y in 0..h {
                for x in 0..w {
                    let k = (x as usize * 31 + y as usize * 7) % n;
                    fb.fill(Rect::new(x + 3, y + 2, 1, 1), [k as u8, (k * 3) as u8, 255 - k as u8, 255]).unwrap();
                }
            }
            let r = Rect::new(3, 2, w, h);
            let mut p = Palette::default();
            assert!(p.build_from(&fb, r, 256), "{n} colours fit");
            let distinct: std::collections::HashSet<[u8; 4]> =
                (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).map(|(x, y)| fb.pixel(x + 3, y + 2)).collect();
            assert_eq!(p.len(), distinct.len());
            let mut out = Vec::new();
            p.write(w as usize, &mut out);
            let got = unpack(&out, p.len(), w as usize, h as usize);
            for y in 0..h {
                for x in 0..w {
                    assert_eq!(got[(y * w + x) as usize], fb.pixel(x + 3, y + 2), "{n} colours, pixel {x},{y}");
                }
            }
        }
    }

    #[test]
    fn too_many_colours_give_up() {
        let mut fb = Framebuffer::new(32, 32);
        for i in 0..1024u16 {
            fb.fill(Rect::new(i % 32, i / 32, 1, 1), [(i % 256) as u8, (i / 256) as u8, 0, 255]).unwrap();
        }
        let mut p = Palette::default();
        assert!(!p.build_from(&fb, fb.full_rect(), 256));
        assert!(p.build_from(&fb, Rect::new(0, 0, 32, 8), 256), "the first 256 pixels are 256 colours");
        assert!(!p.build_from(&fb, Rect::new(0, 0, 32, 8), 16));
    }

    #[test]
    fn bits_per_index() {
        assert_eq!([1, 2, 3, 4, 5, 16, 17, 256].map(bits_for), [1, 1, 2, 2, 4, 4, 8, 8]);
        assert_eq!(row_bytes(13, 1), 2);
        assert_eq!(row_bytes(13, 4), 7);
    }
}
