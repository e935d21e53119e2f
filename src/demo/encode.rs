//! Rectangle encoders for the demo server (rfbproto §7.7): Raw, CopyRect,
//! RRE, Hextile, ZRLE and Tight (lossless). Each takes the rectangle's *wire* pixel values
//! (already converted to the client's pixel format) and appends the
//! rectangle header and payload to `out`.
//!
//! Scratch buffers and the zlib streams (ZRLE's one, Tight's three) live in
//! `Encoder`, one per connection (§7.7.6: "A single zlib stream object is
//! used for a given RFB protocol connection"; §7.7.7 likewise per stream).

use flate2::{Compress, Compression, FlushCompress};

use super::pixfmt::WireFormat;
use super::scene::Rect;

/// Encoding numbers (rfbproto §7.7, §7.8).
pub const RAW: i32 = 0;
pub const COPY_RECT: i32 = 1;
pub const RRE: i32 = 2;
pub const HEXTILE: i32 = 5;
pub const TIGHT: i32 = 7;
pub const ZRLE: i32 = 16;
pub const DESKTOP_SIZE: i32 = -223;

/// Append a rectangle header (rfbproto §7.6.1).
pub fn rect_header(r: &Rect, enc: i32, out: &mut Vec<u8>) {
    for v in [r.x, r.y, r.w, r.h] {
        out.extend_from_slice(&(v as u16).to_be_bytes());
    }
    out.extend_from_slice(&enc.to_be_bytes());
}

/// Small open-addressing colour → index table (≤ 127 colours).
struct Palette {
    keys: [u32; 256],
    idx: [u8; 256],
    used: [bool; 256],
    colours: Vec<u32>,
}

impl Palette {
    fn new() -> Self {
        Palette { keys: [0; 256], idx: [0; 256], used: [false; 256], colours: Vec::with_capacity(128) }
    }
    fn clear(&mut self) {
        self.used = [false; 256];
        self.colours.clear();
    }
    #[inline]
    fn slot(&self, v: u32) -> usize {
        let mut s = (v.wrapping_mul(0x9e37_79b1) >> 24) as usize;
        while self.used[s] && self.keys[s] != v {
            s = (s + 1) & 255;
        }
        s
    }
    /// Insert `v`; false when the palette would exceed `limit` colours.
    #[inline]
    fn insert(&mut self, v: u32, limit: usize) -> bool {
        let s = self.slot(v);
        if self.used[s] {
            return true;
        }
        if self.colours.len() >= limit {
            return false;
        }
        self.used[s] = true;
        self.keys[s] = v;
        self.idx[s] = self.colours.len() as u8;
        self.colours.push(v);
        true
    }
    #[inline]
    fn index(&self, v: u32) -> u8 {
        self.idx[self.slot(v)]
    }
}

pub struct Encoder {
    zlib: Compress,
    /// Tight streams: 0 full colour (copy/gradient), 1 two-colour, 2 indexed.
    tight_z: [Compress; 3],
    /// Tight gradient filter: the previous row's R,G,B.
    prev_row: Vec<[u8; 3]>,
    /// Wire pixels of the rectangle being encoded.
    px: Vec<u32>,
    covered: Vec<bool>,
    tile: Vec<u32>,
    zbuf: Vec<u8>,
    pal: Palette,
    /// Hextile subrects of the current tile: (colour, x, y, w, h).
    subs: Vec<(u32, usize, usize, usize, usize)>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        Encoder {
            zlib: Compress::new(Compression::new(1), true),
            tight_z: std::array::from_fn(|_| Compress::new(Compression::new(1), true)),
            prev_row: Vec::new(),
            px: Vec::new(),
            covered: Vec::new(),
            tile: Vec::new(),
            zbuf: Vec::new(),
            pal: Palette::new(),
            subs: Vec::with_capacity(256),
        }
    }

    /// Load rectangle `r` of the 0x00RRGGBB framebuffer `fb` (row stride
    /// `stride`) as wire pixel values.
    pub fn load(&mut self, fb: &[u32], stride: usize, r: &Rect, wf: &WireFormat) {
        self.px.clear();
        for y in r.y..r.y + r.h {
            self.px.extend(fb[y * stride + r.x..y * stride + r.x + r.w].iter().map(|&c| wf.pixel(c)));
        }
    }

    /// Load wire pixel values directly (tests).
    #[cfg(test)]
    pub fn load_wire(&mut self, px: &[u32]) {
        self.px.clear();
        self.px.extend_from_slice(px);
    }

    /// Raw (§7.7.1): w*h PIXELs.
    pub fn raw(&self, r: &Rect, wf: &WireFormat, out: &mut Vec<u8>) {
        rect_header(r, RAW, out);
        out.reserve(self.px.len() * wf.bpp);
        for &v in &self.px {
            wf.put(v, out);
        }
    }

    /// RRE (§7.7.3): background + subrectangles. Writes nothing and returns
    /// false if it would not be smaller than Raw.
    pub fn rre(&mut self, r: &Rect, wf: &WireFormat, out: &mut Vec<u8>) -> bool {
        let (w, h) = (r.w, r.h);
        let bg = most_common(&self.px, &mut self.pal);
        let raw_size = w * h * wf.bpp;
        let per = wf.bpp + 8;
        let limit = raw_size.saturating_sub(4 + wf.bpp) / per;
        let start = out.len();
        rect_header(r, RRE, out);
        let count_at = out.len();
        out.extend_from_slice(&[0; 4]);
        wf.put(bg, out);
        self.covered.clear();
        self.covered.resize(w * h, false);
        let mut n = 0usize;
        let ok = subrects(&self.px, w, h, bg, &mut self.covered, |c, x, y, sw, sh| {
            if n >= limit {
                return false;
            }
            n += 1;
            wf.put(c, out);
            for v in [x, y, sw, sh] {
                out.extend_from_slice(&(v as u16).to_be_bytes());
            }
            true
        });
        if !ok {
            out.truncate(start);
            return false;
        }
        out[count_at..count_at + 4].copy_from_slice(&(n as u32).to_be_bytes());
        true
    }

    /// Hextile (§7.7.4): 16×16 tiles, each solid, one foreground colour
    /// with subrects, coloured subrects, or raw — whichever is smallest.
    /// Background/foreground are omitted when unchanged from the previous
    /// tile; after a Raw or coloured tile they are always re-sent, since
    /// decoders differ on what those tiles leave behind.
    pub fn hextile(&mut self, r: &Rect, wf: &WireFormat, out: &mut Vec<u8>) {
        rect_header(r, HEXTILE, out);
        let mut last_bg: Option<u32> = None;
        let mut last_fg: Option<u32> = None;
        let bpp = wf.bpp;
        for ty in (0..r.h).step_by(16) {
            for tx in (0..r.w).step_by(16) {
                let tw = 16.min(r.w - tx);
                let th = 16.min(r.h - ty);
                self.tile.clear();
                for y in ty..ty + th {
                    self.tile.extend_from_slice(&self.px[y * r.w + tx..y * r.w + tx + tw]);
                }
                let raw_size = 1 + tw * th * bpp;
                let bg = most_common(&self.tile, &mut self.pal);
                let ncol = self.pal.colours.len(); // capped at 17 by most_common
                                                   // Collect subrects (colour, x, y, w, h) into a small list.
                self.covered.clear();
                self.covered.resize(tw * th, false);
                self.subs.clear();
                let subs = &mut self.subs;
                let fits = ncol <= 16
                    && subrects(&self.tile, tw, th, bg, &mut self.covered, |c, x, y, sw, sh| {
                        subs.push((c, x, y, sw, sh));
                        subs.len() <= 255
                    });
                let subs = &self.subs;
                let bg_cost = if last_bg == Some(bg) { 0 } else { bpp };
                let enc_size = if !fits {
                    usize::MAX
                } else if subs.is_empty() {
                    1 + bg_cost
                } else if ncol == 2 {
                    let fg_cost = if last_fg == Some(subs[0].0) { 0 } else { bpp };
                    1 + bg_cost + fg_cost + 1 + 2 * subs.len()
                } else {
                    1 + bg_cost + 1 + (bpp + 2) * subs.len()
                };
                if enc_size >= raw_size {
                    out.push(1); // Raw
                    for &v in &self.tile {
                        wf.put(v, out);
                    }
                    last_bg = None;
                    last_fg = None;
                    continue;
                }
                let mut mask = 0u8;
                if last_bg != Some(bg) {
                    mask |= 2; // BackgroundSpecified
                }
                if subs.is_empty() {
                    out.push(mask);
                    if mask & 2 != 0 {
                        wf.put(bg, out);
                    }
                } else if ncol == 2 {
                    let fg = subs[0].0;
                    mask |= 8; // AnySubrects
                    if last_fg != Some(fg) {
                        mask |= 4; // ForegroundSpecified
                    }
                    out.push(mask);
                    if mask & 2 != 0 {
                        wf.put(bg, out);
                    }
                    if mask & 4 != 0 {
                        wf.put(fg, out);
                    }
                    out.push(subs.len() as u8);
                    for &(_, x, y, sw, sh) in subs {
                        out.push(((x as u8) << 4) | y as u8);
                        out.push((((sw - 1) as u8) << 4) | (sh - 1) as u8);
                    }
                    last_fg = Some(fg);
                } else {
                    mask |= 8 | 16; // AnySubrects | SubrectsColoured
                    out.push(mask);
                    if mask & 2 != 0 {
                        wf.put(bg, out);
                    }
                    out.push(subs.len() as u8);
                    for &(c, x, y, sw, sh) in subs {
                        wf.put(c, out);
                        out.push(((x as u8) << 4) | y as u8);
                        out.push((((sw - 1) as u8) << 4) | (sh - 1) as u8);
                    }
                    last_fg = None;
                }
                last_bg = Some(bg);
            }
        }
    }

    /// ZRLE (§7.7.6): 64×64 tiles, each solid, packed palette, palette
    /// RLE, plain RLE or raw (smallest wins), zlib-compressed with the
    /// connection's stream and a sync flush.
    pub fn zrle(&mut self, r: &Rect, wf: &WireFormat, out: &mut Vec<u8>) -> Result<(), String> {
        rect_header(r, ZRLE, out);
        self.zbuf.clear();
        let cpp = wf.cpp;
        for ty in (0..r.h).step_by(64) {
            for tx in (0..r.w).step_by(64) {
                let tw = 64.min(r.w - tx);
                let th = 64.min(r.h - ty);
                self.tile.clear();
                for y in ty..ty + th {
                    self.tile.extend_from_slice(&self.px[y * r.w + tx..y * r.w + tx + tw]);
                }
                self.zrle_tile(tw, th, wf, cpp);
            }
        }
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let before = out.len();
        deflate_sync(&mut self.zlib, &self.zbuf, out)?;
        let n = (out.len() - before) as u32;
        out[len_at..len_at + 4].copy_from_slice(&n.to_be_bytes());
        Ok(())
    }

    /// Tight (§7.7.7), lossless: FillCompression for one colour, the
    /// palette filter for up to 127 colours (1-bit rows for two), else the
    /// gradient filter (TPIXEL = R,G,B formats) or the copy filter; data of
    /// 12 bytes or more zlib-compressed behind a compact length. Writes
    /// nothing and returns `Ok(false)` for rectangles Tight cannot carry:
    /// wider than 2048 pixels, or too big for a 22-bit compact length.
    pub fn tight(&mut self, r: &Rect, wf: &WireFormat, out: &mut Vec<u8>) -> Result<bool, String> {
        if r.w > 2048 || r.w * r.h * 4 > 4_000_000 {
            return Ok(false);
        }
        let tpx = tpixel(wf);
        self.pal.clear();
        let few = self.px.iter().all(|&v| self.pal.insert(v, 127));
        rect_header(r, TIGHT, out);
        let n = self.pal.colours.len();
        self.zbuf.clear();
        let stream = if few && n == 1 {
            out.push(0x80); // FillCompression
            put_tpixel(wf, tpx, self.pal.colours[0], out);
            return Ok(true);
        } else if few {
            // BasicCompression, explicit filter, palette.
            let stream = if n == 2 { 1 } else { 2 };
            out.extend_from_slice(&[0x40 | (stream as u8) << 4, 1, (n - 1) as u8]);
            for &c in &self.pal.colours {
                put_tpixel(wf, tpx, c, out);
            }
            for row in self.px.chunks_exact(r.w) {
                if n == 2 {
                    // MSB = leftmost; each row padded to a whole byte.
                    for bits in row.chunks(8) {
                        let b = bits.iter().enumerate().fold(0u8, |b, (i, &v)| b | self.pal.index(v) << (7 - i));
                        self.zbuf.push(b);
                    }
                } else {
                    self.zbuf.extend(row.iter().map(|&v| self.pal.index(v)));
                }
            }
            stream
        } else if tpx == 3 {
            // Gradient filter: each component minus clamp(above + left - upleft).
            out.extend_from_slice(&[0x40, 2]);
            self.prev_row.clear();
            self.prev_row.resize(r.w, [0; 3]);
            for row in self.px.chunks_exact(r.w) {
                let (mut left, mut up_left) = ([0u8; 3], [0u8; 3]);
                for (&v, above) in row.iter().zip(self.prev_row.iter_mut()) {
                    let cur = rgb_of(wf, v);
                    for c in 0..3 {
                        let p = (i32::from(above[c]) + i32::from(left[c]) - i32::from(up_left[c])).clamp(0, 255);
                        self.zbuf.push(cur[c].wrapping_sub(p as u8));
                    }
                    up_left = *above;
                    *above = cur;
                    left = cur;
                }
            }
            0
        } else {
            out.push(0x00); // copy filter, stream 0
            for &v in &self.px {
                wf.put(v, &mut self.zbuf);
            }
            0
        };
        if self.zbuf.len() < 12 {
            out.extend_from_slice(&self.zbuf);
            return Ok(true);
        }
        let mut z = Vec::with_capacity(self.zbuf.len() / 2 + 64);
        deflate_sync(&mut self.tight_z[stream], &self.zbuf, &mut z)?;
        if z.len() >= 1 << 22 {
            // Cannot happen below the 4 MB raw limit; the stream is lost if it does.
            return Err(format!("Tight: {} compressed bytes exceed the compact length", z.len()));
        }
        let n = z.len();
        if n < 128 {
            out.push(n as u8);
        } else if n < 16384 {
            out.extend_from_slice(&[0x80 | (n & 0x7f) as u8, (n >> 7) as u8]);
        } else {
            out.extend_from_slice(&[0x80 | (n & 0x7f) as u8, 0x80 | ((n >> 7) & 0x7f) as u8, (n >> 14) as u8]);
        }
        out.extend_from_slice(&z);
        Ok(true)
    }

    fn zrle_tile(&mut self, tw: usize, th: usize, wf: &WireFormat, cpp: usize) {
        let t = &self.tile;
        self.pal.clear();
        let mut palette_ok = true;
        let mut runs = 0usize; // number of runs
        let mut plain_len = 0usize; // bytes of run lengths, plain RLE
        let mut pal_len = 0usize; // bytes of indices + lengths, palette RLE
        let mut i = 0;
        while i < t.len() {
            let c = t[i];
            let mut j = i + 1;
            while j < t.len() && t[j] == c {
                j += 1;
            }
            let run = j - i;
            runs += 1;
            let len_bytes = (run - 1) / 255 + 1;
            plain_len += len_bytes;
            pal_len += if run == 1 { 1 } else { 1 + len_bytes };
            if palette_ok && !self.pal.insert(c, 127) {
                palette_ok = false;
            }
            i = j;
        }
        let n = self.pal.colours.len();
        let zb = &mut self.zbuf;
        if palette_ok && n == 1 {
            zb.push(1);
            wf.put_c(t[0], zb);
            return;
        }
        let raw = tw * th * cpp;
        let plain = runs * cpp + plain_len;
        let packed_bits = match n {
            2 => 1,
            3..=4 => 2,
            5..=16 => 4,
            _ => 0,
        };
        let packed =
            if palette_ok && packed_bits > 0 { n * cpp + (tw * packed_bits).div_ceil(8) * th } else { usize::MAX };
        let prle = if palette_ok { n * cpp + pal_len } else { usize::MAX };
        let best = raw.min(plain).min(packed).min(prle);
        if best == raw {
            zb.push(0);
            for &v in t {
                wf.put_c(v, zb);
            }
        } else if best == packed {
            zb.push(n as u8);
            for &v in &self.pal.colours {
                wf.put_c(v, zb);
            }
            for row in t.chunks(tw) {
                let mut acc = 0u8;
                let mut nbits = 0;
                for &v in row {
                    acc = (acc << packed_bits) | self.pal.index(v);
                    nbits += packed_bits;
                    if nbits == 8 {
                        zb.push(acc);
                        acc = 0;
                        nbits = 0;
                    }
                }
                if nbits > 0 {
                    zb.push(acc << (8 - nbits));
                }
            }
        } else if best == prle {
            zb.push(128 + n as u8);
            for &v in &self.pal.colours {
                wf.put_c(v, zb);
            }
            for_runs(t, |c, run| {
                let idx = self.pal.index(c);
                if run == 1 {
                    zb.push(idx);
                } else {
                    zb.push(idx | 128);
                    push_run_length(zb, run);
                }
            });
        } else {
            zb.push(128);
            for_runs(t, |c, run| {
                wf.put_c(c, zb);
                push_run_length(zb, run);
            });
        }
    }
}

/// CopyRect (§7.7.2): copy `r`'s size from (sx, sy).
pub fn copy_rect(r: &Rect, sx: usize, sy: usize, out: &mut Vec<u8>) {
    rect_header(r, COPY_RECT, out);
    out.extend_from_slice(&(sx as u16).to_be_bytes());
    out.extend_from_slice(&(sy as u16).to_be_bytes());
}

fn for_runs(t: &[u32], mut f: impl FnMut(u32, usize)) {
    let mut i = 0;
    while i < t.len() {
        let c = t[i];
        let mut j = i + 1;
        while j < t.len() && t[j] == c {
            j += 1;
        }
        f(c, j - i);
        i = j;
    }
}

/// ZRLE run length: 255s then (len-1)%255 (§7.7.6, "Plain RLE").
fn push_run_length(out: &mut Vec<u8>, run: usize) {
    let mut l = run - 1;
    while l >= 255 {
        out.push(255);
        l -= 255;
    }
    out.push(l as u8);
}

/// Most common value of `px`; leaves the distinct colours seen (at most
/// 17, then counting stops) in `pal.colours`.
fn most_common(px: &[u32], pal: &mut Palette) -> u32 {
    pal.clear();
    let mut counts = [0u32; 17];
    for &v in px {
        if !pal.insert(v, 17) {
            // More than 17 colours: fall back to the first pixel.
            return px[0];
        }
        counts[pal.index(v) as usize] += 1;
    }
    let mut best = 0;
    for i in 1..pal.colours.len() {
        if counts[i] > counts[best] {
            best = i;
        }
    }
    pal.colours.get(best).copied().unwrap_or(0)
}

/// Greedy cover of the non-`bg` pixels of a w×h block by single-colour
/// rectangles: each starts at the first uncovered pixel in scan order,
/// grows right, then down. Calls `emit(colour, x, y, w, h)`; stops and
/// returns false as soon as `emit` does.
fn subrects(
    px: &[u32],
    w: usize,
    h: usize,
    bg: u32,
    covered: &mut [bool],
    mut emit: impl FnMut(u32, usize, usize, usize, usize) -> bool,
) -> bool {
    for y in 0..h {
        let mut x = 0;
        while x < w {
            let i = y * w + x;
            let c = px[i];
            if c == bg || covered[i] {
                x += 1;
                continue;
            }
            let mut sw = 1;
            while x + sw < w && px[i + sw] == c && !covered[i + sw] {
                sw += 1;
            }
            let mut sh = 1;
            'grow: while y + sh < h {
                let row = (y + sh) * w + x;
                for k in 0..sw {
                    if px[row + k] != c || covered[row + k] {
                        break 'grow;
                    }
                }
                sh += 1;
            }
            for yy in y..y + sh {
                covered[yy * w + x..yy * w + x + sw].fill(true);
            }
            if !emit(c, x, y, sw, sh) {
                return false;
            }
            x += sw;
        }
    }
    true
}

/// Bytes in a Tight TPIXEL (§7.7.7): 3 (R,G,B) for true colour, 32 bpp,
/// depth 24 with 8-bit components on byte boundaries; else a PIXEL.
fn tpixel(wf: &WireFormat) -> usize {
    let pf = &wf.pf;
    let bytes = [pf.red_shift, pf.green_shift, pf.blue_shift].iter().all(|s| s % 8 == 0);
    let max8 = pf.red_max == 255 && pf.green_max == 255 && pf.blue_max == 255;
    if pf.true_colour && pf.bits_per_pixel == 32 && pf.depth == 24 && max8 && bytes {
        3
    } else {
        wf.bpp
    }
}

/// R, G, B of a wire pixel in an 8-bit-per-component format.
fn rgb_of(wf: &WireFormat, v: u32) -> [u8; 3] {
    let pf = &wf.pf;
    [(v >> pf.red_shift) as u8, (v >> pf.green_shift) as u8, (v >> pf.blue_shift) as u8]
}

fn put_tpixel(wf: &WireFormat, tpx: usize, v: u32, out: &mut Vec<u8>) {
    if tpx == 3 {
        out.extend_from_slice(&rgb_of(wf, v));
    } else {
        wf.put(v, out);
    }
}

/// Compress all of `input` into `out` with a sync flush, so the peer can
/// inflate everything sent so far (the stream itself continues).
fn deflate_sync(z: &mut Compress, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(input.len() / 2 + 1024);
        }
        let before = z.total_in();
        z.compress_vec(input, out, FlushCompress::Sync).map_err(|e| format!("zlib: {e}"))?;
        let used = (z.total_in() - before) as usize;
        input = &input[used..];
        // Done when all input is in and the flush did not run out of room.
        if input.is_empty() && out.len() < out.capacity() {
            return Ok(());
        }
    }
}
