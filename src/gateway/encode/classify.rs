//! Cheap content classification of one piece of the framebuffer (at most a
//! 64×64 tile): a fixed grid of samples, never a histogram of every pixel.
//!
//! The samples only decide what to *try*: a piece whose samples show few
//! colours is handed to the exact palette builder (which bails out at 257
//! colours); a piece whose samples are mostly distinct is photo-like and goes
//! to JPEG (or lossless RGB) without a full scan.

use crate::fb::{Framebuffer, Rect};

/// Samples per side of the grid (so at most 8 × 8 = 64 samples).
const GRID: usize = 8;
/// More distinct colours than this among the samples: photo-like.
pub const PHOTO_SAMPLES: usize = 24;

/// What the samples say about a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampled {
    /// Every sample has this colour (the piece may still not be solid).
    Uniform([u8; 4]),
    /// Few distinct colours: text, UI, flat areas.
    Few,
    /// Many distinct colours: photographs, rendered images, smooth gradients.
    Many,
}

/// Sample `r` (inside `fb`, not empty) on an up to 8×8 grid.
pub fn sample(fb: &Framebuffer, r: Rect) -> Sampled {
    let mut seen = [0u32; GRID * GRID];
    let mut n = 0;
    let (nx, ny) = ((r.w as usize).min(GRID), (r.h as usize).min(GRID));
    for j in 0..ny {
        // Centres of `ny` equal bands.
        let y = r.y as usize + (2 * j + 1) * r.h as usize / (2 * ny);
        for i in 0..nx {
            let x = r.x as usize + (2 * i + 1) * r.w as usize / (2 * nx);
            let c = u32::from_ne_bytes(fb.pixel(x as u16, y as u16));
            if !seen[..n].contains(&c) {
                seen[n] = c;
                n += 1;
            }
        }
    }
    match n {
        1 => Sampled::Uniform(seen[0].to_ne_bytes()),
        _ if n > PHOTO_SAMPLES => Sampled::Many,
        _ => Sampled::Few,
    }
}

/// Whether every pixel of `r` is `rgba` (stops at the first row that is not).
pub fn is_solid(fb: &Framebuffer, r: Rect, rgba: [u8; 4]) -> bool {
    let stride = fb.width() as usize * 4;
    let row = r.w as usize * 4;
    let data = fb.data();
    (r.y as usize..r.y as usize + r.h as usize).all(|y| {
        let o = y * stride + r.x as usize * 4;
        wsvnc_kernels::all_equal(&data[o..o + row], rgba)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_tell_flat_text_and_photo_apart() {
        let mut fb = Framebuffer::new(128, 64);
        fb.fill(Rect::new(0, 0, 64, 64), [10, 20, 30, 255]).unwrap();
        assert_eq!(sample(&fb, Rect::new(0, 0, 64, 64)), Sampled::Uniform([10, 20, 30, 255]));
        assert!(is_solid(&fb, Rect::new(0, 0, 64, 64), [10, 20, 30, 255]));
        // Two-colour "text": stripes.
        for y in (0..64).step_by(3) {
            fb.fill(Rect::new(0, y, 64, 1), [250, 250, 250, 255]).unwrap();
        }
        assert_eq!(sample(&fb, Rect::new(0, 0, 64, 64)), Sampled::Few);
        // A photo-like gradient with noise: every sample distinct.
        for y in 0..64u16 {
            for x in 64..128u16 {
                let n = (x as u32 * 7919 + y as u32 * 104_729) % 13;
                fb.fill(Rect::new(x, y, 1, 1), [x as u8 * 2, y as u8 * 3, n as u8 * 9, 255]).unwrap();
            }
        }
        assert_eq!(sample(&fb, Rect::new(64, 0, 64, 64)), Sampled::Many);
        // A 1×1 piece: one sample.
        assert!(matches!(sample(&fb, Rect::new(70, 5, 1, 1)), Sampled::Uniform(_)));
    }
}
