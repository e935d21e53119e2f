//! RRE encoding (rfbproto §7.7.3).
//!
//! ```text
//! header:   U32 number-of-subrectangles, PIXEL background
//! subrect:  PIXEL value, U16 x, U16 y, U16 w, U16 h   (relative to the rect)
//! ```
//! The header is taken whole, then each whole subrectangle as it arrives.
//! The count is capped at `w * h` (more subrectangles than pixels is not a
//! sane encoding, and would let a server stall us with an endless stream),
//! and so is the area they cover, at [`MAX_COVER`] times the rectangle's:
//! encoders emit disjoint subrectangles, while 12 bytes of a hostile one
//! could otherwise repaint a whole 8192×8192 rectangle each.

/// Subrectangles may cover at most this many times the rectangle's area.
pub const MAX_COVER: u64 = 4;

use super::{fill, DecodeError, Decoder, PixelContext, Step};
use crate::fb::{Framebuffer, Rect};
use crate::rfb::pixel::PixelReader;

const ENC: &str = "RRE";

#[derive(Debug, Default)]
pub struct Rre {
    rect: Rect,
    /// `None` until the header is read, then the subrectangles still to come.
    left: Option<u32>,
    /// Pixels the remaining subrectangles may still cover.
    cover_left: u64,
}

impl Decoder for Rre {
    fn start(&mut self, rect: Rect) {
        self.rect = rect;
        self.left = None;
    }

    fn decode(&mut self, input: &[u8], px: &PixelContext, fb: &mut Framebuffer) -> Result<Step, DecodeError> {
        let rd = PixelReader::new(&px.format, &px.colour_map);
        let bpp = rd.bytes();
        let r = self.rect;
        let mut used = 0;
        let mut left = match self.left {
            Some(n) => n,
            None => {
                if input.len() < 4 + bpp {
                    return Ok(Step::Partial(0));
                }
                let n = u32::from_be_bytes([input[0], input[1], input[2], input[3]]);
                if n as u64 > r.area() as u64 {
                    return Err(err(format!("{n} subrectangles in a {}x{} rectangle", r.w, r.h)));
                }
                fill(fb, r, rd.rgba(&input[4..]), ENC)?;
                used = 4 + bpp;
                self.cover_left = r.area() as u64 * MAX_COVER;
                n
            }
        };
        let unit = bpp + 8;
        while left > 0 && input.len() - used >= unit {
            let s = &input[used..used + unit];
            let f = |i: usize| u16::from_be_bytes([s[bpp + i], s[bpp + i + 1]]);
            let (x, y, w, h) = (f(0), f(2), f(4), f(6));
            if x as u32 + w as u32 > r.w as u32 || y as u32 + h as u32 > r.h as u32 {
                return Err(err(format!("subrectangle {w}x{h}+{x}+{y} outside the {}x{} rectangle", r.w, r.h)));
            }
            let area = w as u64 * h as u64;
            if area > self.cover_left {
                return Err(err(format!(
                    "subrectangles cover more than {MAX_COVER} times the {}x{} rectangle",
                    r.w, r.h
                )));
            }
            self.cover_left -= area;
            fill(fb, Rect::new(r.x + x, r.y + y, w, h), rd.rgba(s), ENC)?;
            used += unit;
            left -= 1;
        }
        self.left = Some(left);
        Ok(if left == 0 { Step::Done(used) } else { Step::Partial(used) })
    }
}

fn err(reason: String) -> DecodeError {
    DecodeError { encoding: ENC, reason }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn mk() -> Box<dyn Decoder> {
        Box::new(Rre::default())
    }

    #[test]
    fn background_and_two_subrects_at_every_split() {
        let px = ctx();
        #[rustfmt::skip]
        let input = [
            0, 0, 0, 2,   10, 10, 10, 0,              // 2 subrects, bg
            200, 0, 0, 0,   0, 1, 0, 1, 0, 2, 0, 1,   // red 2x1 at (1,1)
            0, 200, 0, 0,   0, 3, 0, 2, 0, 1, 0, 2,   // green 1x2 at (3,2)
        ];
        let fb = check_splits(&mk, Rect::new(2, 1, 4, 4), &input, &px, 8, 8);
        assert_eq!(rgb(&fb, 2, 1), [10, 10, 10]);
        assert_eq!(rgb(&fb, 3, 2), [200, 0, 0]);
        assert_eq!(rgb(&fb, 4, 2), [200, 0, 0]);
        assert_eq!(rgb(&fb, 5, 2), [10, 10, 10]);
        assert_eq!(rgb(&fb, 5, 3), [0, 200, 0]);
        assert_eq!(rgb(&fb, 5, 4), [0, 200, 0]);
        assert_eq!(rgb(&fb, 1, 1), [0, 0, 0]);
        assert_eq!(rgb(&fb, 6, 4), [0, 0, 0]);
    }

    #[test]
    fn zero_size_rect_needs_only_the_header() {
        let px = ctx();
        let mut fb = Framebuffer::new(4, 4);
        let mut d = Rre::default();
        d.start(Rect::new(1, 1, 0, 0));
        assert_eq!(d.decode(&[0, 0, 0, 0, 1, 2, 3], &px, &mut fb).unwrap(), Step::Partial(0));
        assert_eq!(d.decode(&[0, 0, 0, 0, 1, 2, 3, 0, 9], &px, &mut fb).unwrap(), Step::Done(8));
        d.start(Rect::new(1, 1, 0, 0));
        let e = d.decode(&[0, 0, 0, 1, 1, 2, 3, 0], &px, &mut fb).unwrap_err();
        assert_eq!(e.reason, "1 subrectangles in a 0x0 rectangle");
    }

    #[test]
    fn bad_subrects_are_errors() {
        let px = ctx();
        let mut fb = Framebuffer::new(8, 8);
        let mut d = Rre::default();
        // Subrect 3 wide at x=2 in a 4-wide rect.
        let input = [0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 2, 0, 0, 0, 3, 0, 1];
        d.start(Rect::new(0, 0, 4, 4));
        let e = d.decode(&input, &px, &mut fb).unwrap_err();
        assert_eq!(e.reason, "subrectangle 3x1+2+0 outside the 4x4 rectangle");
        // Overlapping full-size subrectangles: the 5th passes 4x the area.
        let mut input = vec![0, 0, 0, 5, 0, 0, 0, 0];
        for _ in 0..5 {
            input.extend_from_slice(&[1, 1, 1, 0, 0, 0, 0, 0, 0, 4, 0, 4]);
        }
        d.start(Rect::new(0, 0, 4, 4));
        let e = d.decode(&input, &px, &mut fb).unwrap_err();
        assert_eq!(e.reason, "subrectangles cover more than 4 times the 4x4 rectangle");
        d.start(Rect::new(0, 0, 4, 4));
        assert!(d.decode(&input[..input.len() - 12], &px, &mut fb).is_ok(), "4 times is still fine");
        // Absurd count.
        d.start(Rect::new(0, 0, 4, 4));
        let e = d.decode(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], &px, &mut fb).unwrap_err();
        assert_eq!(e.reason, "4294967295 subrectangles in a 4x4 rectangle");
    }
}
