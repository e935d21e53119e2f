//! Indexed ("palette") encoding of few-colour regions: text and UI.
//!
//! [`Palette::build`] scans a rectangle once, assigning each new colour the
//! next index (order of first appearance) and writing one index byte per
//! pixel into a reusable buffer; it gives up at the 257th colour. The
//! message then carries the colours and the indices packed at 1, 2, 4 or
//! 8 bits (docs/protocol.md `Palette`).

use crate::fb::{Framebuffer, Rect};

/// Most colours a palette holds.
pub const MAX_COLOURS: usize = 256;
/// Open-addressing table: a power of two, at most half full.
const SLOTS: usize = 512;

/// Colour → index table and the indices of the last [`Palette::build`].
/// Allocated once and reused: building a palette allocates nothing once
/// `indices` has grown to the largest rectangle seen.
pub struct Palette {
    /// Colours in index order, RGBA as a native-endian u32.
    colours: Vec<u32>,
    /// Slot → colour + 1 (0 = empty), and slot → index.
    keys: Box<[u32; SLOTS]>,
    vals: Box<[u8; SLOTS]>,
    /// One index per pixel of the rectangle, row-major.
    indices: Vec<u8>,
}

impl Default for Palette {
    fn default() -> Self {
        Palette {
            colours: Vec::with_capacity(MAX_COLOURS),
            keys: Box::new([0; SLOTS]),
            vals: Box::new([0; SLOTS]),
            indices: Vec::new(),
        }
    }
}

fn slot(c: u32) -> usize {
    (c.wrapping_mul(0x9e37_79b1) >> 23) as usize & (SLOTS - 1)
}

/// Bits per packed index for a palette of `n` colours.
pub fn bits_for(n: usize) -> u8 {
    match n {
        0..=2 => 1,
        3..=4 => 2,
        5..=16 => 4,
        _ => 8,
    }
}

/// Bytes of one packed row of `w` indices at `bits` each (rows start on a byte).
pub fn row_bytes(w: usize, bits: u8) -> usize {
    (w * bits as usize).div_ceil(8)
}

impl Palette {
    /// Colours found by the last successful build.
    pub fn len(&self) -> usize {
        self.colours.len()
    }

    pub fn is_empty(&self) -> bool {
        self.colours.is_empty()
    }

    /// Index every pixel of `r` (inside `fb`). False when `r` has more than
    /// `max` (≤ 256) colours; the palette is then unusable.
    pub fn build(&mut self, fb: &Framebuffer, r: Rect, max: usize) -> bool {
        let max = max.min(MAX_COLOURS);
        self.colours.clear();
        self.keys.fill(0);
        self.indices.clear();
        self.indices.reserve(r.area());
        let stride = fb.width() as usize * 4;
        let data = fb.data();
        // The last colour seen and its index: runs are the common case.
        let (mut last, mut last_idx) = (u32::MAX, 0u8);
        let mut have_last = false;
        for y in r.y as usize..r.y as usize + r.h as usize {
            let o = y * stride + r.x as usize * 4;
            for px in data[o..o + r.w as usize * 4].chunks_exact(4) {
                let c = u32::from_ne_bytes([px[0], px[1], px[2], px[3]]);
                if !(have_last && c == last) {
                    let Some(i) = self.lookup_or_add(c, max) else { return false };
                    (last, last_idx, have_last) = (c, i, true);
                }
                self.indices.push(last_idx);
            }
        }
        true
    }

    fn lookup_or_add(&mut self, c: u32, max: usize) -> Option<u8> {
        let key = c.wrapping_add(1).max(1); // never 0 (0 marks an empty slot)
        let mut s = slot(c);
        loop {
            match self.keys[s] {
                0 => {
                    if self.colours.len() == max {
                        return None;
                    }
                    let i = self.colours.len() as u8;
                    self.keys[s] = key;
                    self.vals[s] = i;
                    self.colours.push(c);
                    return Some(i);
                }
                k if k == key && self.colours[self.vals[s] as usize] == c => return Some(self.vals[s]),
                _ => s = (s + 1) & (SLOTS - 1),
            }
        }
    }

    /// Append the colours (3 bytes each, RGB) then the packed indices of the
    /// last build of a `w`-wide rectangle: MSB first, each row starting on a
    /// byte boundary.
    pub fn write(&self, w: usize, out: &mut Vec<u8>) {
        for c in &self.colours {
            out.extend_from_slice(&c.to_ne_bytes()[..3]);
        }
        let bits = bits_for(self.colours.len());
        if bits == 8 {
            out.extend_from_slice(&self.indices);
            return;
        }
        let per_byte = 8 / bits as usize;
        out.reserve(row_bytes(w, bits) * (self.indices.len() / w.max(1)));
        for row in self.indices.chunks_exact(w.max(1)) {
            for group in row.chunks(per_byte) {
                let mut b = 0u8;
                for (k, &i) in group.iter().enumerate() {
                    b |= i << (8 - bits as usize * (k + 1));
                }
                out.push(b);
            }
        }
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
            assert!(p.build(&fb, r, 256), "{n} colours fit");
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
        assert!(!p.build(&fb, fb.full_rect(), 256));
        assert!(p.build(&fb, Rect::new(0, 0, 32, 8), 256), "the first 256 pixels are 256 colours");
        assert!(!p.build(&fb, Rect::new(0, 0, 32, 8), 16));
    }

    #[test]
    fn bits_per_index() {
        assert_eq!([1, 2, 3, 4, 5, 16, 17, 256].map(bits_for), [1, 1, 2, 2, 4, 4, 8, 8]);
        assert_eq!(row_bytes(13, 1), 2);
        assert_eq!(row_bytes(13, 4), 7);
    }
}
