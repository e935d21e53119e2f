//! Raw encoding (rfbproto §7.7.1): `w * h` PIXELs in scanline order.
//!
//! Consumed a whole pixel at a time as bytes arrive, so neither this decoder
//! nor the client ever buffers the whole rectangle (a 1920×1080 raw rect is
//! 8 MB).

use super::{DecodeError, Decoder, PixelContext, ScanCursor, Step};
use crate::fb::{Framebuffer, Rect};
use crate::rfb::pixel::PixelReader;

const ENC: &str = "Raw";

#[derive(Debug, Default)]
pub struct Raw {
    cur: ScanCursor,
}

impl Decoder for Raw {
    fn start(&mut self, rect: Rect) {
        self.cur = ScanCursor::new(rect);
    }

    fn decode(&mut self, input: &[u8], px: &PixelContext, fb: &mut Framebuffer) -> Result<Step, DecodeError> {
        let rd = PixelReader::new(&px.format, &px.colour_map);
        let used = self.cur.feed(input, &rd, fb, ENC)?;
        Ok(if self.cur.done() { Step::Done(used) } else { Step::Partial(used) })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::rfb::PixelFormat;

    fn mk() -> Box<dyn Decoder> {
        Box::new(Raw::default())
    }

    #[test]
    fn rgbx_pixels_at_every_split() {
        let px = ctx();
        #[rustfmt::skip]
        let input = [
            1, 2, 3, 0,  4, 5, 6, 0,  7, 8, 9, 0,
            10, 11, 12, 0,  13, 14, 15, 0,  16, 17, 18, 0,
        ];
        let fb = check_splits(&mk, Rect::new(1, 2, 3, 2), &input, &px, 5, 5);
        assert_eq!(fb.pixel(1, 2), [1, 2, 3, 255]);
        assert_eq!(fb.pixel(3, 2), [7, 8, 9, 255]);
        assert_eq!(fb.pixel(3, 3), [16, 17, 18, 255]);
        assert_eq!(fb.pixel(0, 2), [0, 0, 0, 255]);
        assert_eq!(fb.pixel(4, 3), [0, 0, 0, 255]);
    }

    #[test]
    fn zero_size_rect_consumes_nothing() {
        let px = ctx();
        let mut fb = crate::fb::Framebuffer::new(4, 4);
        let mut d = Raw::default();
        for r in [Rect::new(0, 0, 0, 3), Rect::new(2, 2, 2, 0), Rect::new(4, 4, 0, 0)] {
            d.start(r);
            assert_eq!(d.decode(&[9, 9, 9, 9], &px, &mut fb).unwrap(), Step::Done(0));
        }
    }

    #[test]
    fn stops_at_rect_end_and_waits_for_whole_pixels() {
        let px = ctx();
        let mut fb = crate::fb::Framebuffer::new(4, 4);
        let mut d = Raw::default();
        d.start(Rect::new(0, 0, 2, 1));
        assert_eq!(d.decode(&[1, 2, 3], &px, &mut fb).unwrap(), Step::Partial(0));
        assert_eq!(d.decode(&[1, 2, 3, 4, 5, 6], &px, &mut fb).unwrap(), Step::Partial(4));
        // Bytes past the rectangle belong to the next message.
        assert_eq!(d.decode(&[5, 6, 7, 8, 0xAA, 0xBB], &px, &mut fb).unwrap(), Step::Done(4));
        assert_eq!(fb.pixel(1, 0), [5, 6, 7, 255]);
    }

    #[test]
    fn rgb565_big_endian() {
        let px = PixelContext::new(rgb565(true));
        let input = [0xF8, 0x00, 0x07, 0xE0, 0x00, 0x1F, 0xFF, 0xFF];
        let fb = check_splits(&mk, Rect::new(0, 0, 2, 2), &input, &px, 2, 2);
        assert_eq!(fb.pixel(0, 0), [255, 0, 0, 255]);
        assert_eq!(fb.pixel(1, 0), [0, 255, 0, 255]);
        assert_eq!(fb.pixel(0, 1), [0, 0, 255, 255]);
        assert_eq!(fb.pixel(1, 1), [255, 255, 255, 255]);
    }

    #[test]
    fn colour_map_8bpp() {
        let mut px =
            PixelContext::new(PixelFormat { bits_per_pixel: 8, depth: 8, true_colour: false, ..PixelFormat::wanted() });
        px.colour_map[1] = [200, 100, 50, 255];
        px.colour_map[255] = [1, 2, 3, 255];
        let fb = check_splits(&mk, Rect::new(0, 0, 3, 1), &[1, 255, 0], &px, 3, 1);
        assert_eq!(fb.pixel(0, 0), [200, 100, 50, 255]);
        assert_eq!(fb.pixel(1, 0), [1, 2, 3, 255]);
        assert_eq!(fb.pixel(2, 0), [0, 0, 0, 255]);
    }
}
