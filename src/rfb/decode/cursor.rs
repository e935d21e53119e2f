//! Cursor shapes → straight (not premultiplied) RGBA, the form of
//! `RfbEvent::Cursor` and of the browser's `ImageData`.
//!
//! | pseudo-encoding | data after the rectangle header | here |
//! |---|---|---|
//! | Cursor (-239) | w·h PIXELs, then a 1-bit mask (rows padded to bytes, MSB leftmost) | [`rich_cursor`] |
//! | X Cursor (-240) | primary R,G,B, secondary R,G,B, 1-bit bitmap, 1-bit mask | [`x_cursor`] |
//! | VMware Cursor (0x574d5664), type 0 | AND mask, XOR mask: w·h PIXELs each | [`vmware_classic`] |
//! | VMware Cursor, type 1 | w·h × R,G,B,A bytes | taken as is |
//! | Cursor With Alpha (-314) | S32 encoding, then w·h pixels in that encoding, R,G,B,A with *premultiplied* alpha | [`unpremultiply`] after decoding |
//!
//! rfbproto leaves open whether VMware's alpha cursor is premultiplied; the
//! servers that send it (TigerVNC, VMware) send straight alpha, and TigerVNC's
//! and noVNC's viewers read it so: so do we. Inverting cursor pixels (XOR with
//! the screen) have no RGBA form: like TigerVNC's viewer we draw them black.

use super::PixelContext;
use crate::rfb::pixel::PixelReader;

/// Bytes per row of a 1-bit mask/bitmap of width `w`.
pub fn mask_stride(w: u16) -> usize {
    (w as usize).div_ceil(8)
}

fn bit(mask: &[u8], stride: usize, x: usize, y: usize) -> bool {
    mask.get(y * stride + x / 8).is_some_and(|m| (m >> (7 - x % 8)) & 1 == 1)
}

/// Cursor pseudo-encoding (rfbproto "Cursor Pseudo-encoding"): `data` holds
/// w·h PIXELs then the mask; alpha 255 where the mask bit is set, else 0.
pub fn rich_cursor(px: &PixelContext, w: u16, h: u16, data: &[u8]) -> Vec<u8> {
    let rd = PixelReader::new(&px.format, &px.colour_map);
    let bpp = rd.bytes();
    let stride = mask_stride(w);
    let (w, h) = (w as usize, h as usize);
    let (pixels, mask) = data.split_at((w * h * bpp).min(data.len()));
    let mut rgba = Vec::with_capacity(w * h * 4);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let mut c = pixels.get(i * bpp..(i + 1) * bpp).map_or([0; 4], |p| rd.rgba(p));
            c[3] = if bit(mask, stride, x, y) { 255 } else { 0 };
            rgba.extend_from_slice(&c);
        }
    }
    rgba
}

/// Bytes of X Cursor data for a `w × h` cursor (0 when either is 0).
pub fn x_cursor_len(w: u16, h: u16) -> usize {
    if w == 0 || h == 0 {
        0
    } else {
        6 + 2 * mask_stride(w) * h as usize
    }
}

/// X Cursor pseudo-encoding (rfbproto "X Cursor Pseudo-encoding"): a 1 in
/// the bitmap picks the primary colour, a 0 the secondary; the mask gives
/// the shape. `data` holds [`x_cursor_len`] bytes.
pub fn x_cursor(w: u16, h: u16, data: &[u8]) -> Vec<u8> {
    let stride = mask_stride(w);
    let (w, h) = (w as usize, h as usize);
    if data.len() < 6 {
        return vec![0; w * h * 4];
    }
    let (colours, rest) = data.split_at(6);
    let (bitmap, mask) = rest.split_at((stride * h).min(rest.len()));
    let mut rgba = Vec::with_capacity(w * h * 4);
    for y in 0..h {
        for x in 0..w {
            let c = if bit(bitmap, stride, x, y) { &colours[..3] } else { &colours[3..] };
            rgba.extend_from_slice(c);
            rgba.push(if bit(mask, stride, x, y) { 255 } else { 0 });
        }
    }
    rgba
}

/// VMware classic cursor (rfbproto "VMware Cursor Pseudo-encoding", type
/// 0): `dst = (dst & and) ^ xor` per pixel. AND 0 → opaque XOR colour; AND
/// set and XOR 0 → transparent; anything else inverts the screen, drawn
/// black. `data` holds both masks (2 · w·h PIXELs).
pub fn vmware_classic(px: &PixelContext, w: u16, h: u16, data: &[u8]) -> Vec<u8> {
    let rd = PixelReader::new(&px.format, &px.colour_map);
    let bpp = rd.bytes();
    let n = w as usize * h as usize;
    let (and, xor) = data.split_at((n * bpp).min(data.len()));
    let mut rgba = Vec::with_capacity(n * 4);
    for i in 0..n {
        let (Some(a), Some(x)) = (and.get(i * bpp..(i + 1) * bpp), xor.get(i * bpp..(i + 1) * bpp)) else {
            rgba.extend_from_slice(&[0; 4]);
            continue;
        };
        let zero = |p: &[u8]| p.iter().all(|&b| b == 0);
        let c = if zero(a) {
            let mut c = rd.rgba(x);
            c[3] = 255;
            c
        } else if zero(x) {
            [0, 0, 0, 0]
        } else {
            [0, 0, 0, 255]
        };
        rgba.extend_from_slice(&c);
    }
    rgba
}

/// Premultiplied R,G,B,A (Cursor With Alpha) → straight alpha, in place:
/// each colour is divided by alpha (rounded, clamped); alpha 0 is all zero.
pub fn unpremultiply(rgba: &mut [u8]) {
    for p in rgba.chunks_exact_mut(4) {
        let a = p[3] as u32;
        if a == 0 {
            p.copy_from_slice(&[0; 4]);
        } else if a < 255 {
            for c in &mut p[..3] {
                *c = ((*c as u32 * 255 + a / 2) / a).min(255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfb::decode::testutil::{ctx, RGB565_LE};

    #[test]
    fn x_cursor_colours_and_mask() {
        // 9×2 (stride 2): primary white, secondary red.
        let mut d = vec![255, 255, 255, 200, 0, 0];
        d.extend_from_slice(&[0b1000_0000, 0b1000_0000, 0b0000_0000, 0]); // bitmap
        d.extend_from_slice(&[0b1100_0000, 0b1000_0000, 0b0000_0001, 0]); // mask
        assert_eq!(d.len(), x_cursor_len(9, 2));
        let c = x_cursor(9, 2, &d);
        let px = |x: usize, y: usize| &c[(y * 9 + x) * 4..(y * 9 + x) * 4 + 4];
        assert_eq!(px(0, 0), [255, 255, 255, 255]);
        assert_eq!(px(1, 0), [200, 0, 0, 255]);
        assert_eq!(px(2, 0), [200, 0, 0, 0]);
        assert_eq!(px(8, 0), [255, 255, 255, 255]);
        assert_eq!(px(7, 1), [200, 0, 0, 255]);
        assert_eq!(px(8, 1), [200, 0, 0, 0]);
        assert_eq!(x_cursor_len(0, 5), 0);
    }

    #[test]
    fn vmware_classic_cases() {
        // 4 pixels in 32 bpp: opaque green, transparent, inverted, odd.
        let and = [[0u8; 4], [255, 255, 255, 0], [255, 255, 255, 0], [1, 0, 0, 0]];
        let xor = [[0u8, 200, 0, 0], [0; 4], [255, 255, 255, 0], [9, 9, 9, 0]];
        let data: Vec<u8> = and.iter().chain(xor.iter()).flatten().copied().collect();
        let c = vmware_classic(&ctx(), 4, 1, &data);
        assert_eq!(c, [0, 200, 0, 255, 0, 0, 0, 0, 0, 0, 0, 255, 0, 0, 0, 255]);
        // Through a 16 bpp format: the XOR colour is converted.
        let px = PixelContext::new(RGB565_LE);
        let c = vmware_classic(&px, 1, 1, &[0, 0, 0x00, 0xf8]);
        assert_eq!(c, [255, 0, 0, 255]);
    }

    #[test]
    fn unpremultiply_rounds_and_clamps() {
        let mut p = [128, 64, 0, 128, 10, 20, 30, 0, 1, 2, 3, 255, 200, 0, 0, 100];
        unpremultiply(&mut p);
        assert_eq!(p, [255, 128, 0, 128, 0, 0, 0, 0, 1, 2, 3, 255, 255, 0, 0, 100]);
    }
}
