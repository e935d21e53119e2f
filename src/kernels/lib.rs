//! wsvnc's byte-crunching inner loops, in a crate of their own.
//!
//! wsvnc is built for size (`opt-level = "z"`: the stripped binary must stay
//! under 2 MiB with TLS), which turns off loop unrolling and vectorisation
//! in every crate built at that level. The loops here run once per byte or
//! pixel of the data path — WebSocket masking, Tight filters, pixel format
//! conversion, fills, the lossless and JPEG encoders' inner loops — and were
//! 1.4–6× slower at "z" (benches/README.md "Size levers"). Cargo.toml builds
//! this crate at opt-level 3; a crate's level holds under fat LTO for code
//! that is compiled in that crate, so everything here is non-generic (a
//! generic function is compiled in the crate that instantiates it): plain
//! functions over byte slices.
//!
//! Contracts: every function is safe for any input lengths; where the
//! lengths disagree, the shorter one bounds the work (documented per
//! function). Pixels are 4 bytes, R,G,B,X/A in memory order.

pub mod jpeg;
pub mod palette;
pub mod vp8l;

/// XOR `buf` with the WebSocket masking `key` (RFC 6455 §5.3:
/// `transformed[i] = original[i] XOR key[(payload_index + i) mod 4]`),
/// where `offset` is the payload index of `buf[0]`. Masking and unmasking
/// are the same operation.
pub fn xor_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // Rotate the key so that rk[j] applies to buf[j] for j mod 4.
    let r = offset & 3;
    let rk = [key[r], key[(r + 1) & 3], key[(r + 2) & 3], key[(r + 3) & 3]];
    if buf.len() < 16 {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= rk[i & 3];
        }
        return;
    }
    let k64 = u64::from_ne_bytes([rk[0], rk[1], rk[2], rk[3], rk[0], rk[1], rk[2], rk[3]]);
    // 32-byte blocks of four words give the optimiser room to use wide registers.
    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        for w in block.chunks_exact_mut(8) {
            let v = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]) ^ k64;
            w.copy_from_slice(&v.to_ne_bytes());
        }
    }
    // Every block and word is a multiple of 4 bytes long, so the rotation still holds.
    let mut words = blocks.into_remainder().chunks_exact_mut(8);
    for w in &mut words {
        let v = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]) ^ k64;
        w.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= rk[i & 3];
    }
}

/// Fill `dst` (whole pixels; a partial last pixel is left) with `px`.
pub fn fill(dst: &mut [u8], px: [u8; 4]) {
    for d in dst.chunks_exact_mut(4) {
        d.copy_from_slice(&px);
    }
}

/// Whether every whole pixel of `src` is `px`.
pub fn all_equal(src: &[u8], px: [u8; 4]) -> bool {
    let want = u32::from_ne_bytes(px);
    let differs = |p: &[u8]| u32::from_ne_bytes([p[0], p[1], p[2], p[3]]) ^ want;
    // Blocks of 16 pixels without a branch per pixel (they vectorise), an
    // early exit per block.
    let mut blocks = src.chunks_exact(64);
    for b in &mut blocks {
        if b.chunks_exact(4).fold(0, |acc, p| acc | differs(p)) != 0 {
            return false;
        }
    }
    blocks.remainder().chunks_exact(4).all(|p| differs(p) == 0)
}

/// 3-byte R,G,B pixels to 4-byte pixels with X = 255, for
/// `min(src.len() / 3, dst.len() / 4)` pixels.
pub fn rgb_to_rgbx(src: &[u8], dst: &mut [u8]) {
    for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(3)) {
        d.copy_from_slice(&[s[0], s[1], s[2], 255]);
    }
}

/// 4-byte pixels to 3-byte R,G,B, for `min(src.len() / 4, dst.len() / 3)` pixels.
pub fn rgbx_to_rgb(src: &[u8], dst: &mut [u8]) {
    for (d, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(4)) {
        d.copy_from_slice(&s[..3]);
    }
}

/// Copy 4-byte pixels, setting X to 255, for `min(src.len(), dst.len()) / 4` pixels.
pub fn rgbx_opaque(src: &[u8], dst: &mut [u8]) {
    let alpha = u32::from_ne_bytes([0, 0, 0, 255]);
    for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
        d.copy_from_slice(&(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]) | alpha).to_ne_bytes());
    }
}

/// One bit per pixel, most significant bit first (rfbproto §7.7.7 Tight
/// palette filter with 2 colours): bit 0 → `c0`, 1 → `c1`, for
/// `min(src.len() * 8, dst.len() / 4)` pixels.
pub fn expand_bits(src: &[u8], dst: &mut [u8], c0: [u8; 4], c1: [u8; 4]) {
    let pair = [u32::from_ne_bytes(c0), u32::from_ne_bytes(c1)];
    for (&byte, px8) in src.iter().zip(dst.chunks_mut(32)) {
        for (i, d) in px8.chunks_exact_mut(4).enumerate() {
            let bit = (byte >> (7 - i)) & 1;
            d.copy_from_slice(&pair[bit as usize].to_ne_bytes());
        }
    }
}

/// One byte per pixel, an index into `palette`, for
/// `min(src.len(), dst.len() / 4)` pixels. The caller checks the indices
/// against the number of colours first ([`max_byte`]); entries past them
/// are whatever the caller left in the table.
pub fn expand_bytes(src: &[u8], dst: &mut [u8], palette: &[[u8; 4]; 256]) {
    for (d, &i) in dst.chunks_exact_mut(4).zip(src) {
        d.copy_from_slice(&palette[i as usize]);
    }
}

/// The largest byte of `src` (0 when empty).
pub fn max_byte(src: &[u8]) -> u8 {
    src.iter().fold(0, |m, &b| m.max(b))
}

/// Whether any of the first `bits` bits of `src` (most significant first)
/// is set.
pub fn any_bit(src: &[u8], bits: usize) -> bool {
    let whole = (bits / 8).min(src.len());
    if src[..whole].iter().any(|&b| b != 0) {
        return true;
    }
    let rest = bits % 8;
    rest > 0 && src.get(whole).is_some_and(|&b| b & !(0xffu8 >> rest) != 0)
}

/// Undo the Tight gradient filter (rfbproto §7.7.7 GradientFilter) for one
/// row of 3-byte R,G,B TPIXELs: each component is the wire value plus
/// `clamp(V[x, y-1] + V[x-1, y] - V[x-1, y-1], 0, 255)`, modulo 256, with
/// V = 0 outside the rectangle. `prev` holds row y-1 and becomes row y.
/// Writes `min(src.len() / 3, dst.len() / 4, prev.len())` pixels (X = 255).
pub fn gradient_rgb_row(src: &[u8], dst: &mut [u8], prev: &mut [[u32; 3]]) {
    let mut left = [0u32; 3];
    let mut up_left = [0u32; 3];
    for ((d, s), above) in dst.chunks_exact_mut(4).zip(src.chunks_exact(3)).zip(prev.iter_mut()) {
        let mut v = [0u32; 3];
        for c in 0..3 {
            let p = (above[c] + left[c]).saturating_sub(up_left[c]).min(255);
            v[c] = (s[c] as u32 + p) & 255;
        }
        up_left = *above;
        *above = v;
        left = v;
        d.copy_from_slice(&[v[0] as u8, v[1] as u8, v[2] as u8, 255]);
    }
}

/// ISO 15948 §9.4: the Paeth predictor.
#[inline]
fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = a as i16 + b as i16 - c as i16;
    let (pa, pb, pc) = ((p - a as i16).abs(), (p - b as i16).abs(), (p - c as i16).abs());
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

/// PNG filtering of one row of 3-byte pixels (ISO 15948 §9.2): the five
/// filterings of `cur` given the row above, `up` (zeros for the first
/// row), and the one with the smallest sum of absolute residuals (§12.8's
/// heuristic; the lowest filter type on a tie) appended to `out` after its
/// type byte. `cand` is scratch space. `cur` and `up` are equally long.
pub fn png_filter_row(cur: &[u8], up: &[u8], cand: &mut [Vec<u8>; 5], out: &mut Vec<u8>) {
    let row = cur.len().min(up.len());
    for c in cand.iter_mut() {
        c.clear();
        c.resize(row, 0);
    }
    let [c0, c1, c2, c3, c4] = cand;
    let (c0, c1, c2, c3, c4) = (&mut c0[..row], &mut c1[..row], &mut c2[..row], &mut c3[..row], &mut c4[..row]);
    for i in 0..row.min(3) {
        let (x, b) = (cur[i], up[i]);
        c0[i] = x;
        c1[i] = x;
        c2[i] = x.wrapping_sub(b);
        c3[i] = x.wrapping_sub(b / 2);
        c4[i] = x.wrapping_sub(paeth(0, b, 0));
    }
    for i in 3..row {
        let (x, a, b, c) = (cur[i], cur[i - 3], up[i], up[i - 3]);
        c0[i] = x;
        c1[i] = x.wrapping_sub(a);
        c2[i] = x.wrapping_sub(b);
        c3[i] = x.wrapping_sub(((a as u16 + b as u16) / 2) as u8);
        c4[i] = x.wrapping_sub(paeth(a, b, c));
    }
    let cost = |c: &[u8]| c.iter().map(|&v| (v as i8).unsigned_abs() as u32).sum::<u32>();
    let costs = [cost(c0), cost(c1), cost(c2), cost(c3), cost(c4)];
    let best = (0..5).min_by_key(|&f| costs[f]).unwrap_or(0);
    out.push(best as u8);
    out.extend_from_slice(&[&*c0, &*c1, &*c2, &*c3, &*c4][best][..]);
}
