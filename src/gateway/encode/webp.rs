//! WebP lossless (VP8L, RFC 9649) for exact refinement of photo-like areas
//! (docs/protocol.md `Webp`): the subtract-green and predictor transforms
//! (§4.2, §4.1; a mode per 16×16 block, picked by the smallest sum of
//! absolute residuals), then the residuals as literals and colour-cache
//! references (§5.2.2) under one group of canonical prefix codes (§6.2).
//! No backward references (LZ77) and no cross-colour transform: on
//! photo-like content they add little for their encoding time.
//! Browsers decode it natively (`createImageBitmap`), exactly.
//!
//! Everything but the output is reused scratch space ([`Webp`]).

use crate::fb::{Framebuffer, Rect};

/// Predictor blocks are `1 << BLOCK_BITS` pixels square (§4.1: 2..=9).
const BLOCK_BITS: u32 = 2;
/// Colour cache size (§5.2.2: 1..=11 bits).
const CACHE_BITS: u32 = 11;
/// §5.2.2: the hash that indexes the colour cache.
const CACHE_MULTIPLIER: u32 = 0x1e35_a7bd;
/// Longest code of the five image codes (§6.2.1) and of the code-length code.
const MAX_CODE_LENGTH: u8 = 15;
const MAX_CODE_LENGTH_CODE_LENGTH: u8 = 7;
/// §6.2.1: order in which the code-length code's lengths are written.
const CODE_LENGTH_ORDER: [usize; 19] = [17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
/// Green alphabet: 256 literals, 24 length prefixes, then the cache.
const LENGTH_CODES: usize = 24;
const DISTANCE_CODES: usize = 40;

/// Reusable scratch space.
#[derive(Default)]
pub struct Webp {
    /// The area as ARGB after subtract-green, then the residuals.
    argb: Vec<u32>,
    residual: Vec<u32>,
    /// Predictor mode per block.
    modes: Vec<u32>,
    bits: Bits,
    codes: [Code; 5],
    histograms: [Vec<u32>; 5],
    tokens: Vec<Token>,
    /// The colour cache while tokenizing.
    cache: Vec<u32>,
}

impl Webp {
    /// Append a WebP file (RIFF container, one `VP8L` chunk) of `r` of `fb`
    /// (inside it, not empty, at most 16384 pixels each way) to `out`.
    pub fn encode(&mut self, fb: &Framebuffer, r: Rect, out: &mut Vec<u8>) {
        let (w, h) = (r.w as usize, r.h as usize);
        let stride = fb.width() as usize * 4;
        let data = fb.data();
        self.argb.clear();
        self.argb.reserve(w * h);
        for y in 0..h {
            let o = (r.y as usize + y) * stride + r.x as usize * 4;
            for p in data[o..o + w * 4].chunks_exact(4) {
                // §4.2 subtract green: red and blue minus green, mod 256.
                let (red, g, b) = (p[0].wrapping_sub(p[1]), p[1], p[2].wrapping_sub(p[1]));
                self.argb.push(0xff00_0000 | (red as u32) << 16 | (g as u32) << 8 | b as u32);
            }
        }
        self.bits.clear();
        // §3 header: signature, 14-bit width - 1, 14-bit height - 1, alpha
        // hint (0: opaque), 3-bit version 0.
        self.bits.put(0x2f, 8);
        self.bits.put(w as u32 - 1, 14);
        self.bits.put(h as u32 - 1, 14);
        self.bits.put(0, 1);
        self.bits.put(0, 3);
        // §4: transforms, each "1, type (2 bits), data"; the decoder undoes
        // them in reverse order.
        self.bits.put(1, 1);
        self.bits.put(2, 2); // subtract green: no data
        self.bits.put(1, 1);
        self.bits.put(0, 2); // predictor
        self.bits.put(BLOCK_BITS - 2, 3);
        wsvnc_kernels::vp8l::predict(&self.argb, w, h, BLOCK_BITS, &mut self.modes, &mut self.residual);
        let (bw, bh) = (w.div_ceil(1 << BLOCK_BITS), h.div_ceil(1 << BLOCK_BITS));
        let modes = std::mem::take(&mut self.modes);
        self.entropy_image(&modes, bw, bh, 0, false);
        self.modes = modes;
        self.bits.put(0, 1); // no more transforms
        let residual = std::mem::take(&mut self.residual);
        self.entropy_image(&residual, w, h, CACHE_BITS, true);
        self.residual = residual;
        let data = self.bits.finish();
        // §2 RIFF container.
        let padded = data.len() + (data.len() & 1);
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(4 + 8 + padded as u32).to_le_bytes());
        out.extend_from_slice(b"WEBPVP8L");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        if data.len() & 1 == 1 {
            out.push(0);
        }
    }

    /// §5: an entropy-coded image of `pixels` (`w`×`h`): colour cache
    /// info, (for the main image) "no meta prefix codes", five prefix
    /// codes, then the pixels as literals, colour-cache references and
    /// copies (§5.2.2) of runs that repeat the pixel to the left or above.
    fn entropy_image(&mut self, pixels: &[u32], w: usize, h: usize, cache_bits: u32, main: bool) {
        debug_assert_eq!(pixels.len(), w * h);
        let cache_size = if cache_bits > 0 { 1usize << cache_bits } else { 0 };
        tokenize(pixels, w, cache_bits, &mut self.cache, &mut self.tokens);
        let sizes = [256 + LENGTH_CODES + cache_size, 256, 256, 256, DISTANCE_CODES];
        for (hist, &n) in self.histograms.iter_mut().zip(&sizes) {
            hist.clear();
            hist.resize(n, 0);
        }
        for &t in &self.tokens {
            match t {
                Token::Literal(p) => {
                    self.histograms[0][(p >> 8 & 0xff) as usize] += 1;
                    self.histograms[1][(p >> 16 & 0xff) as usize] += 1;
                    self.histograms[2][(p & 0xff) as usize] += 1;
                    self.histograms[3][(p >> 24) as usize] += 1;
                }
                Token::Cache(k) => self.histograms[0][256 + LENGTH_CODES + k as usize] += 1,
                Token::Copy { len, plane } => {
                    self.histograms[0][256 + prefix(len as u32).0 as usize] += 1;
                    self.histograms[4][prefix(plane as u32).0 as usize] += 1;
                }
            }
        }
        if cache_size > 0 {
            self.bits.put(1, 1);
            self.bits.put(cache_bits, 4);
        } else {
            self.bits.put(0, 1);
        }
        if main {
            self.bits.put(0, 1); // one group of prefix codes for the whole image
        }
        for i in 0..5 {
            self.codes[i].build(&self.histograms[i], MAX_CODE_LENGTH);
            self.codes[i].write(&mut self.bits);
        }
        let [green, red, blue, alpha, distance] = &self.codes;
        for &t in &self.tokens {
            match t {
                Token::Literal(p) => {
                    green.put(&mut self.bits, (p >> 8 & 0xff) as usize);
                    red.put(&mut self.bits, (p >> 16 & 0xff) as usize);
                    blue.put(&mut self.bits, (p & 0xff) as usize);
                    alpha.put(&mut self.bits, (p >> 24) as usize);
                }
                Token::Cache(k) => green.put(&mut self.bits, 256 + LENGTH_CODES + k as usize),
                Token::Copy { len, plane } => {
                    let (code, n, extra) = prefix(len as u32);
                    green.put(&mut self.bits, 256 + code as usize);
                    self.bits.put(extra, n);
                    let (code, n, extra) = prefix(plane as u32);
                    distance.put(&mut self.bits, code as usize);
                    self.bits.put(extra, n);
                }
            }
        }
    }
}

/// One coded unit of an entropy-coded image.
#[derive(Clone, Copy)]
enum Token {
    /// An ARGB pixel, channel by channel.
    Literal(u32),
    /// The colour at this colour-cache index.
    Cache(u16),
    /// `len` pixels copied from distance code `plane` (§5.2.2: 1 = the
    /// pixel above, 2 = the pixel to the left).
    Copy { len: u16, plane: u8 },
}

/// Copies shorter than this go as literals.
const MIN_COPY: usize = 8;
/// §5.2.2: the longest copy.
const MAX_COPY: usize = 4096;

/// `pixels` (`w` wide) as tokens, keeping the colour cache (`cache`,
/// scratch) as the decoder will: zeroed at the start, and every pixel,
/// literal, cached or copied, goes into it.
fn tokenize(pixels: &[u32], w: usize, cache_bits: u32, cache: &mut Vec<u32>, tokens: &mut Vec<Token>) {
    tokens.clear();
    cache.clear();
    cache.resize(if cache_bits > 0 { 1 << cache_bits } else { 0 }, 0);
    let key = |p: u32| (p.wrapping_mul(CACHE_MULTIPLIER) >> (32 - cache_bits)) as usize;
    let run = |i: usize, back: usize| {
        let max = (pixels.len() - i).min(MAX_COPY);
        (0..max).take_while(|&k| pixels[i + k] == pixels[i + k - back]).count()
    };
    let mut i = 0;
    while i < pixels.len() {
        let left = if i >= 1 { run(i, 1) } else { 0 };
        let up = if i >= w && left < MAX_COPY { run(i, w) } else { 0 };
        let (len, plane) = if up > left { (up, 1) } else { (left, 2) };
        if len >= MIN_COPY {
            tokens.push(Token::Copy { len: len as u16, plane });
            if !cache.is_empty() {
                for &p in &pixels[i..i + len] {
                    cache[key(p)] = p;
                }
            }
            i += len;
            continue;
        }
        let p = pixels[i];
        if cache.is_empty() {
            tokens.push(Token::Literal(p));
        } else {
            let k = key(p);
            if cache[k] == p {
                tokens.push(Token::Cache(k as u16));
            } else {
                cache[k] = p;
                tokens.push(Token::Literal(p));
            }
        }
        i += 1;
    }
}

/// §5.2.2 prefix coding of a length or distance code `v` (≥ 1): (prefix
/// symbol, number of extra bits, extra bits).
fn prefix(v: u32) -> (u32, u32, u32) {
    let d = v - 1;
    if d < 4 {
        return (d, 0, 0);
    }
    let high = 31 - d.leading_zeros();
    let n = high - 1;
    (2 * high + (d >> n & 1), n, d & ((1 << n) - 1))
}

/// An LSB-first bit writer (§3: "bits are read ... least significant
/// bit first").
#[derive(Default)]
struct Bits {
    bytes: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn clear(&mut self) {
        self.bytes.clear();
        self.acc = 0;
        self.n = 0;
    }
    /// The low `n` (≤ 32) bits of `v`.
    fn put(&mut self, v: u32, n: u32) {
        debug_assert!(n <= 32 && (n == 32 || v >> n == 0));
        self.acc |= (v as u64) << self.n;
        self.n += n;
        while self.n >= 8 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    fn finish(&mut self) -> &[u8] {
        if self.n > 0 {
            self.bytes.push(self.acc as u8);
            self.acc = 0;
            self.n = 0;
        }
        &self.bytes
    }
}

/// A canonical prefix code (§6.2.2: as in DEFLATE, codes of one length
/// numbered in symbol order, shorter lengths first), written bit-reversed
/// for the LSB-first stream.
#[derive(Default)]
struct Code {
    lengths: Vec<u8>,
    codes: Vec<u16>,
    /// Symbols in use: with one, the decoder reads no bits for it.
    used: usize,
}

impl Code {
    /// Lengths from `hist` (limited to `limit`) and the codes.
    fn build(&mut self, hist: &[u32], limit: u8) {
        code_lengths(hist, limit, &mut self.lengths);
        self.used = hist.iter().filter(|&&c| c > 0).count();
        canonical_codes(&self.lengths, &mut self.codes);
    }

    fn put(&self, bits: &mut Bits, symbol: usize) {
        if self.used > 1 {
            bits.put(self.codes[symbol] as u32, self.lengths[symbol] as u32);
        }
    }

    /// §6.2.1: the code's description: a simple code for one or two
    /// symbols below 256, else the lengths coded with the code-length code.
    fn write(&self, bits: &mut Bits) {
        let symbols: Vec<usize> = (0..self.lengths.len()).filter(|&s| self.lengths[s] > 0).take(3).collect();
        match symbols[..] {
            [] => {
                // Nothing of this alphabet is used: one symbol, 0.
                bits.put(1, 1);
                bits.put(0, 1);
                bits.put(0, 1);
                bits.put(0, 1);
                return;
            }
            [s] if s < 256 => {
                bits.put(1, 1);
                bits.put(0, 1);
                if s < 2 {
                    bits.put(0, 1);
                    bits.put(s as u32, 1);
                } else {
                    bits.put(1, 1);
                    bits.put(s as u32, 8);
                }
                return;
            }
            _ => {}
        }
        bits.put(0, 1);
        // Run-length tokens (symbol, extra bits, extra count): 0..=15 a
        // length; 16 repeats the previous non-zero length 3..=6 times; 17
        // and 18 are runs of 3..=10 and 11..=138 zeros.
        let mut tokens: Vec<(u8, u8, u8)> = Vec::new();
        let lengths = &self.lengths;
        let mut i = 0;
        while i < lengths.len() {
            let len = lengths[i];
            let mut run = 1;
            while i + run < lengths.len() && lengths[i + run] == len {
                run += 1;
            }
            i += run;
            if len == 0 {
                while run >= 11 {
                    let n = run.min(138);
                    tokens.push((18, (n - 11) as u8, 7));
                    run -= n;
                }
                if run >= 3 {
                    tokens.push((17, (run - 3) as u8, 3));
                    run = 0;
                }
                tokens.extend(std::iter::repeat_n((0, 0, 0), run));
            } else {
                tokens.push((len, 0, 0));
                run -= 1;
                while run >= 3 {
                    let n = run.min(6);
                    tokens.push((16, (n - 3) as u8, 2));
                    run -= n;
                }
                tokens.extend(std::iter::repeat_n((len, 0, 0), run));
            }
        }
        let mut hist = [0u32; 19];
        for &(t, _, _) in &tokens {
            hist[t as usize] += 1;
        }
        let mut code = Code::default();
        code.build(&hist, MAX_CODE_LENGTH_CODE_LENGTH);
        let count = (4..=19).rev().find(|&n| code.lengths[CODE_LENGTH_ORDER[n - 1]] > 0).unwrap_or(4);
        bits.put(count as u32 - 4, 4);
        for &s in &CODE_LENGTH_ORDER[..count] {
            bits.put(code.lengths[s] as u32, 3);
        }
        bits.put(0, 1); // max_symbol: every length is written
        for &(t, extra, n) in &tokens {
            code.put(bits, t as usize);
            if n > 0 {
                bits.put(extra as u32, n as u32);
            }
        }
    }
}

/// Huffman code lengths for `hist`, none longer than `limit`: the tree of
/// the counts, rebuilt with small counts raised until it is shallow enough.
/// A single used symbol gets length 1.
fn code_lengths(hist: &[u32], limit: u8, lengths: &mut Vec<u8>) {
    lengths.clear();
    lengths.resize(hist.len(), 0);
    let used: Vec<usize> = (0..hist.len()).filter(|&s| hist[s] > 0).collect();
    if used.len() == 1 {
        lengths[used[0]] = 1;
        return;
    }
    if used.is_empty() {
        return;
    }
    let mut floor = 1u32;
    loop {
        // Two-queue Huffman on counts sorted ascending: leaves, then merged
        // nodes in creation order (which is ascending too).
        let mut leaves: Vec<(u64, usize)> = used.iter().map(|&s| (hist[s].max(floor) as u64, s)).collect();
        leaves.sort_unstable();
        let n = leaves.len();
        // Nodes: 0..n leaves, n.. internal; parent links.
        let mut parent = vec![usize::MAX; 2 * n - 1];
        let mut weight: Vec<u64> = leaves.iter().map(|l| l.0).collect();
        let (mut li, mut qi) = (0, n);
        let take = |li: &mut usize, qi: &mut usize, weight: &Vec<u64>| {
            if *li < n && (*qi >= weight.len() || weight[*li] <= weight[*qi]) {
                *li += 1;
                *li - 1
            } else {
                *qi += 1;
                *qi - 1
            }
        };
        for _ in 0..n - 1 {
            let a = take(&mut li, &mut qi, &weight);
            let b = take(&mut li, &mut qi, &weight);
            let node = weight.len();
            weight.push(weight[a] + weight[b]);
            parent[a] = node;
            parent[b] = node;
        }
        let mut depth = vec![0u8; 2 * n - 1];
        for node in (0..2 * n - 2).rev() {
            depth[node] = depth[parent[node]] + 1;
        }
        if depth[..n].iter().all(|&d| d <= limit) {
            for (k, &(_, s)) in leaves.iter().enumerate() {
                lengths[s] = depth[k];
            }
            return;
        }
        floor = floor.saturating_mul(2);
    }
}

/// §6.2.2 canonical codes from lengths, bit-reversed for LSB-first writing.
fn canonical_codes(lengths: &[u8], codes: &mut Vec<u16>) {
    let mut count = [0u16; 16];
    for &l in lengths {
        count[l as usize] += 1;
    }
    count[0] = 0;
    let mut next = [0u16; 16];
    let mut code = 0u16;
    for bits in 1..16 {
        code = (code + count[bits - 1]) << 1;
        next[bits] = code;
    }
    codes.clear();
    codes.resize(lengths.len(), 0);
    for (s, &l) in lengths.iter().enumerate() {
        if l > 0 {
            let c = next[l as usize];
            next[l as usize] += 1;
            codes[s] = c.reverse_bits() >> (16 - l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(webp: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut d = image_webp::WebPDecoder::new(std::io::Cursor::new(webp)).expect("a WebP header");
        let (w, h) = d.dimensions();
        let mut buf = vec![0u8; d.output_buffer_size().expect("a size")];
        d.read_image(&mut buf).expect("a decodable WebP");
        let rgb = if d.has_alpha() { buf.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect() } else { buf };
        (w, h, rgb)
    }

    fn rgb_of(fb: &Framebuffer, r: Rect) -> Vec<u8> {
        let mut v = Vec::new();
        for y in r.y..r.y + r.h {
            for x in r.x..r.x + r.w {
                let p = fb.pixel(x, y);
                v.extend_from_slice(&p[..3]);
            }
        }
        v
    }

    fn check(fb: &Framebuffer, r: Rect) -> usize {
        let mut out = Vec::new();
        Webp::default().encode(fb, r, &mut out);
        let (w, h, rgb) = decode(&out);
        assert_eq!((w, h), (r.w as u32, r.h as u32));
        assert!(rgb == rgb_of(fb, r), "{r:?}: not exact");
        out.len()
    }

    fn noisy(w: u16, h: u16, seed: u32) -> Framebuffer {
        let mut fb = Framebuffer::new(w, h);
        let mut s = seed;
        let mut px = Vec::with_capacity(w as usize * h as usize * 4);
        for y in 0..h as u32 {
            for x in 0..w as u32 {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let n = (s >> 24) % 9;
                px.extend_from_slice(&[
                    ((x * 3 + y) / 4 + n) as u8,
                    ((x + y * 2) / 3 + n / 2) as u8,
                    (128 + (x as i32 - y as i32) / 5 + n as i32) as u8,
                    255,
                ]);
            }
        }
        fb.put_rgba(Rect::new(0, 0, w, h), &px).unwrap();
        fb
    }

    #[test]
    fn prefix_codes_decode_back() {
        // §5.2.2's decoder: prefix symbol and extra bits back to the value.
        for v in 1..=4096u32 {
            let (code, n, extra) = prefix(v);
            let back = if code < 4 {
                code + 1
            } else {
                let bits = (code - 2) >> 1;
                assert_eq!(bits, n, "extra bits of {v}");
                ((2 + (code & 1)) << bits) + extra + 1
            };
            assert_eq!(back, v);
            assert!(code < LENGTH_CODES as u32 && extra < 1 << n.max(1) || n == 0);
        }
    }

    #[test]
    fn code_lengths_are_limited_and_complete() {
        // Fibonacci counts: an unlimited Huffman tree would be 39 deep.
        let mut hist = vec![1u32, 1];
        while hist.len() < 40 {
            let n = hist.len();
            hist.push(hist[n - 1].saturating_add(hist[n - 2]));
        }
        hist.push(0);
        for limit in [MAX_CODE_LENGTH, MAX_CODE_LENGTH_CODE_LENGTH] {
            let mut lengths = Vec::new();
            code_lengths(&hist[..if limit == 7 { 19 } else { 41 }], limit, &mut lengths);
            assert!(lengths.iter().all(|&l| l <= limit), "{lengths:?}");
            let kraft: f64 = lengths.iter().filter(|&&l| l > 0).map(|&l| 0.5f64.powi(l as i32)).sum();
            assert_eq!(kraft, 1.0, "a complete code: {lengths:?}");
        }
        assert_eq!(lengths_of(&[0, 5, 0]), [0, 1, 0], "one symbol");
        assert_eq!(lengths_of(&[0, 0]), [0, 0], "none");
    }

    fn lengths_of(hist: &[u32]) -> Vec<u8> {
        let mut l = Vec::new();
        code_lengths(hist, MAX_CODE_LENGTH, &mut l);
        l
    }

    #[test]
    fn flat_and_noisy_areas_round_trip() {
        let mut fb = Framebuffer::new(120, 80);
        fb.fill(Rect::new(0, 0, 120, 80), [10, 200, 30, 255]).unwrap();
        // One colour: every code has one symbol (no bits per pixel).
        let flat = check(&fb, Rect::new(0, 0, 120, 80));
        assert!(flat < 120, "a flat area is {flat} bytes");
        // Two colours, then full-range noise (every literal in use).
        fb.fill(Rect::new(0, 40, 120, 40), [255, 255, 255, 255]).unwrap();
        check(&fb, Rect::new(0, 0, 120, 80));
        let mut s = 1u32;
        let px: Vec<u8> = (0..120 * 80 * 4)
            .map(|i| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i % 4 == 3 {
                    255
                } else {
                    (s >> 16) as u8
                }
            })
            .collect();
        fb.put_rgba(Rect::new(0, 0, 120, 80), &px).unwrap();
        check(&fb, Rect::new(0, 0, 120, 80));
        check(&fb, Rect::new(7, 3, 33, 61));
    }

    #[test]
    fn round_trips_exactly() {
        let fb = noisy(200, 150, 7);
        check(&fb, Rect::new(0, 0, 200, 150));
        // Odd sizes, partial blocks, one row, one column, one pixel.
        for r in [Rect::new(3, 5, 17, 33), Rect::new(0, 7, 200, 1), Rect::new(9, 0, 1, 150), Rect::new(5, 5, 1, 1)] {
            check(&fb, r);
        }
    }
}
