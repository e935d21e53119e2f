//! Indexed ("palette") encoding of few-colour regions: the colour table
//! and the index scan (wsvnc's gateway/encode/palette.rs documents the
//! format and its use).

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

    /// Index every pixel of the `w`×`h` rectangle of 4-byte pixels whose
    /// top-left pixel is at byte `start` of `data`, rows `stride` bytes
    /// apart (all of it inside `data`, else this panics). False when it has
    /// more than `max` (≤ 256) colours; the palette is then unusable.
    pub fn build(&mut self, data: &[u8], stride: usize, start: usize, w: usize, h: usize, max: usize) -> bool {
        let max = max.min(MAX_COLOURS);
        self.colours.clear();
        self.keys.fill(0);
        self.indices.clear();
        self.indices.reserve(w * h);
        // The last colour seen and its index: runs are the common case.
        let (mut last, mut last_idx) = (u32::MAX, 0u8);
        let mut have_last = false;
        for y in 0..h {
            let o = start + y * stride;
            for px in data[o..o + w * 4].chunks_exact(4) {
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
