//! The VP8L predictor transform (RFC 9649 §4.1) for wsvnc's WebP lossless
//! encoder (src/gateway/encode/webp.rs): per block, the mode whose
//! residuals have the smallest sum of magnitudes, and the residuals.
//! Pixels are ARGB words (alpha in the top byte).

/// Fills `modes` (one per `1 << block_bits` square block, row by row, the
/// mode in the green byte as §4.1's predictor image has it) and `residual`
/// (each pixel minus its prediction, per channel mod 256) for the `w`×`h`
/// image `argb`. Work is bounded by `w * h` (`argb` shorter than that:
/// nothing is done).
pub fn predict(argb: &[u32], w: usize, h: usize, block_bits: u32, modes: &mut Vec<u32>, residual: &mut Vec<u32>) {
    let size = 1usize << block_bits;
    let (bw, bh) = (w.div_ceil(size), h.div_ceil(size));
    modes.clear();
    residual.clear();
    if argb.len() < w * h {
        return;
    }
    modes.resize(bw * bh, 0);
    residual.resize(w * h, 0);
    for by in 0..bh {
        for bx in 0..bw {
            let (x0, y0) = (bx * size, by * size);
            let (x1, y1) = ((x0 + size).min(w), (y0 + size).min(h));
            let mut best = (u64::MAX, 0);
            for mode in 0..14 {
                let mut cost = 0u64;
                for y in y0..y1 {
                    for x in x0..x1 {
                        cost += magnitude(sub_channels(argb[y * w + x], prediction(argb, w, x, y, mode)));
                    }
                    if cost >= best.0 {
                        break;
                    }
                }
                if cost < best.0 {
                    best = (cost, mode);
                }
            }
            let mode = best.1;
            modes[by * bw + bx] = (mode as u32) << 8;
            for y in y0..y1 {
                for x in x0..x1 {
                    residual[y * w + x] = sub_channels(argb[y * w + x], prediction(argb, w, x, y, mode));
                }
            }
        }
    }
}

/// `a - b` per channel, mod 256 (alpha/green and red/blue in separate
/// halves, each with a borrow guard byte that the mask drops).
pub fn sub_channels(a: u32, b: u32) -> u32 {
    let ag = 0x00ff_00ff_u32.wrapping_add(a & 0xff00_ff00).wrapping_sub(b & 0xff00_ff00);
    let rb = 0xff00_ff00_u32.wrapping_add(a & 0x00ff_00ff).wrapping_sub(b & 0x00ff_00ff);
    (ag & 0xff00_ff00) | (rb & 0x00ff_00ff)
}

/// Cost estimate of a residual: the sum of its channels' magnitudes as
/// signed bytes (the smaller, the cheaper to code).
fn magnitude(r: u32) -> u64 {
    r.to_le_bytes().iter().map(|&c| (c as i8).unsigned_abs() as u64).sum()
}

fn average2(a: u32, b: u32) -> u32 {
    (((a ^ b) & 0xfefe_fefe) >> 1) + (a & b)
}

fn channel(p: u32, shift: u32) -> i32 {
    (p >> shift & 0xff) as i32
}

/// §4.1 Select: L or T, whichever is nearer (Manhattan) to L + T - TL.
fn select(l: u32, t: u32, tl: u32) -> u32 {
    let (mut pl, mut pt) = (0, 0);
    for s in [24, 16, 8, 0] {
        let est = channel(l, s) + channel(t, s) - channel(tl, s);
        pl += (est - channel(l, s)).abs();
        pt += (est - channel(t, s)).abs();
    }
    if pl < pt {
        l
    } else {
        t
    }
}

fn clamp_add_subtract_full(a: u32, b: u32, c: u32) -> u32 {
    let mut out = 0;
    for s in [24, 16, 8, 0] {
        out |= ((channel(a, s) + channel(b, s) - channel(c, s)).clamp(0, 255) as u32) << s;
    }
    out
}

fn clamp_add_subtract_half(a: u32, b: u32) -> u32 {
    let mut out = 0;
    for s in [24, 16, 8, 0] {
        let (x, y) = (channel(a, s), channel(b, s));
        out |= ((x + (x - y) / 2).clamp(0, 255) as u32) << s;
    }
    out
}

/// §4.1: the prediction of pixel (`x`, `y`) of `argb` (`w` wide) by
/// `mode`, with the border rules: the top-left pixel is predicted as opaque
/// black, the rest of the top row by L, the left column by T; TR of the
/// rightmost column is the leftmost pixel of the current row (what the
/// flat index gives).
pub fn prediction(argb: &[u32], w: usize, x: usize, y: usize, mode: usize) -> u32 {
    let i = y * w + x;
    if y == 0 {
        return if x == 0 { 0xff00_0000 } else { argb[i - 1] };
    }
    if x == 0 {
        return argb[i - w];
    }
    let (l, t, tl, tr) = (argb[i - 1], argb[i - w], argb[i - w - 1], argb[i - w + 1]);
    match mode {
        0 => 0xff00_0000,
        1 => l,
        2 => t,
        3 => tr,
        4 => tl,
        5 => average2(average2(l, tr), t),
        6 => average2(l, tl),
        7 => average2(l, t),
        8 => average2(tl, t),
        9 => average2(t, tr),
        10 => average2(average2(l, tl), average2(t, tr)),
        11 => select(l, t, tl),
        12 => clamp_add_subtract_full(l, t, tl),
        _ => clamp_add_subtract_half(average2(l, t), tl),
    }
}
