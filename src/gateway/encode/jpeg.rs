//! Baseline JFIF for photo-like regions (docs/protocol.md `Jpeg`), written by
//! the pure-Rust `jpeg-encoder` crate straight into the caller's buffer
//! (through `wsvnc_kernels::jpeg`, which compiles its generic code at
//! opt-level 3).
//!
//! Chroma is subsampled 4:2:0 below quality 90 (box-averaged, as libjpeg
//! does) and kept whole above (what libjpeg-turbo's `cjpeg` does by
//! default, and what the crate defaults to). Huffman tables are optimised
//! for each image unless the link has bytes to spare (`pacing::optimise_tables`):
//! a second pass over the coefficients. On the 14 wallpapers of
//! examples/photo_bytes at 640×480 it saves 17 % of the bytes at quality 20
//! and 7.8 % at 80, for 1.29× the encode time at 80 (4.05 vs 3.13 ms an
//! image on this VM); most on smooth gradients, where the standard tables
//! fit worst.
//! The crate allocates its per-image planes inside `encode`; everything on
//! our side (the RGBA staging copy) is a reused buffer.

use crate::fb::{Framebuffer, Rect};

/// Lowest and highest quality the gateway uses.
pub const MIN_QUALITY: u8 = 10;
pub const MAX_QUALITY: u8 = 95;

/// Encode `r` of `fb` at `quality` (clamped to MIN..=MAX), with Huffman
/// tables optimised for it when `optimise_tables`, and append the JFIF bytes
/// to `out`, using `stage` for the pixels. On an encoder error (only for
/// dimensions it cannot take) `out` is left as it was and false is returned.
pub fn encode(
    fb: &Framebuffer,
    r: Rect,
    quality: u8,
    optimise_tables: bool,
    stage: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> bool {
    if r.is_empty() || !fb.contains(r) {
        return false;
    }
    stage.clear();
    let stride = fb.width() as usize * 4;
    let row = r.w as usize * 4;
    let data = fb.data();
    for y in r.y as usize..r.bottom() as usize {
        let o = y * stride + r.x as usize * 4;
        stage.extend_from_slice(&data[o..o + row]);
    }
    wsvnc_kernels::jpeg::encode_rgbx(stage, r.w, r.h, quality.clamp(MIN_QUALITY, MAX_QUALITY), optimise_tables, out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Peak signal-to-noise ratio of RGB against the framebuffer area, dB.
    pub fn psnr(fb: &Framebuffer, r: Rect, rgb: &[u8]) -> f64 {
        let mut se = 0f64;
        for y in 0..r.h {
            for x in 0..r.w {
                let p = fb.pixel(r.x + x, r.y + y);
                let o = (y as usize * r.w as usize + x as usize) * 3;
                for c in 0..3 {
                    let d = p[c] as f64 - rgb[o + c] as f64;
                    se += d * d;
                }
            }
        }
        let mse = se / (r.area() as f64 * 3.0);
        10.0 * (255.0 * 255.0 / mse.max(1e-9)).log10()
    }

    /// A photo-like test image: smooth shading plus fine texture.
    pub fn photo(fb: &mut Framebuffer) {
        let (w, h) = (fb.width(), fb.height());
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f64 / 23.0, y as f64 / 17.0);
                let t = ((x as u32).wrapping_mul(2_654_435_761) ^ (y as u32).wrapping_mul(40_503)) >> 28;
                let r = 128.0 + 90.0 * fx.sin() * fy.cos() + t as f64;
                let g = 110.0 + 70.0 * (fx * 0.7 + fy * 0.3).cos();
                let b = 90.0 + 60.0 * (fy * 0.5).sin() + (t as f64) * 0.5;
                fb.fill(Rect::new(x, y, 1, 1), [r as u8, g as u8, b as u8, 255]).unwrap();
            }
        }
    }

    #[test]
    fn decodes_to_the_size_with_bounded_error() {
        let mut fb = Framebuffer::new(200, 150);
        photo(&mut fb);
        let r = Rect::new(13, 7, 150, 100);
        let (mut stage, mut out) = (Vec::new(), vec![0xAA]);
        for (q, min_db) in [(30u8, 28.0), (60, 31.0), (90, 36.0)] {
            out.truncate(1);
            assert!(encode(&fb, r, q, true, &mut stage, &mut out));
            assert_eq!(out[0], 0xAA, "appended after what was there");
            let mut d = jpeg_decoder::Decoder::new(&out[1..]);
            let rgb = d.decode().expect("valid JPEG");
            let info = d.info().unwrap();
            assert_eq!((info.width, info.height), (150, 100));
            let db = psnr(&fb, r, &rgb);
            assert!(db > min_db, "quality {q}: PSNR {db:.1} dB ≤ {min_db}");
        }
    }

    /// The Huffman tables change only how the coefficients are coded: the
    /// same pixels come out, and tables optimised for the image are smaller.
    #[test]
    fn standard_tables_decode_to_the_same_pixels_in_more_bytes() {
        let mut fb = Framebuffer::new(200, 150);
        photo(&mut fb);
        let r = fb.full_rect();
        let mut stage = Vec::new();
        for q in [20u8, 80] {
            let (mut optimised, mut standard) = (Vec::new(), Vec::new());
            assert!(encode(&fb, r, q, true, &mut stage, &mut optimised));
            assert!(encode(&fb, r, q, false, &mut stage, &mut standard));
            assert!(optimised.len() < standard.len(), "q{q}: {} vs {} bytes", optimised.len(), standard.len());
            let a = jpeg_decoder::Decoder::new(&optimised[..]).decode().unwrap();
            let b = jpeg_decoder::Decoder::new(&standard[..]).decode().unwrap();
            assert!(a == b, "q{q}: the two decode differently");
        }
    }
}
