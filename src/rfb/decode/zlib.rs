//! Zlib encoding (rfbproto §7.7.5): `U32 length`, then `length` bytes of
//! one connection-long zlib stream which inflate to the rectangle in Raw
//! encoding (`w * h` PIXELs).
//!
//! Compressed bytes are inflated as they arrive and pixels written as soon
//! as they are whole; the inflated size is capped at exactly `w*h*bpp`.

use super::inflate::{new_stream, pump, InflateBuf, Parsed};
use super::{DecodeError, Decoder, PixelContext, ScanCursor, Step};
use crate::fb::{Framebuffer, Rect};
use crate::rfb::pixel::PixelReader;
use flate2::Decompress;

const ENC: &str = "Zlib";

/// Compressed length limit: 64 MiB, or twice the raw size for huge rects
/// (deflate never expands by more than a few bytes per 16 KiB).
pub(crate) fn length_cap(raw_bytes: usize) -> usize {
    (64 << 20).max(raw_bytes.saturating_mul(2).saturating_add(1024))
}

pub struct Zlib {
    z: Decompress,
    ib: InflateBuf,
    rect: Rect,
    /// `None` until the length is read, then compressed bytes still to come.
    left_in: Option<usize>,
    cur: ScanCursor,
}

impl Default for Zlib {
    fn default() -> Self {
        Zlib {
            z: new_stream(),
            ib: InflateBuf::default(),
            rect: Rect::default(),
            left_in: None,
            cur: ScanCursor::default(),
        }
    }
}

impl Decoder for Zlib {
    fn start(&mut self, rect: Rect) {
        self.rect = rect;
        self.left_in = None;
        self.cur = ScanCursor::new(rect);
    }

    fn decode(&mut self, input: &[u8], px: &PixelContext, fb: &mut Framebuffer) -> Result<Step, DecodeError> {
        let rd = PixelReader::new(&px.format, &px.colour_map);
        let bpp = rd.bytes();
        let mut used = 0;
        let mut left_in = match self.left_in {
            Some(n) => n,
            None => {
                let Some(b) = input.get(..4) else { return Ok(Step::Partial(0)) };
                let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let cap = length_cap(self.rect.area() * bpp);
                if n > cap {
                    return Err(DecodeError {
                        encoding: ENC,
                        reason: format!("compressed length {n} over the {cap} limit"),
                    });
                }
                used = 4;
                n
            }
        };
        let (cur, w) = (&mut self.cur, self.rect.w as usize);
        let (u, done) = pump(&mut self.z, &mut self.ib, &mut left_in, &input[used..], ENC, |data| {
            let n = cur.feed(data, &rd, fb, ENC)?;
            let left_px = (cur.rect.h - cur.y) as usize * w - cur.x as usize;
            Ok(Parsed { used: n, done: cur.done(), want: left_px * bpp })
        })?;
        self.left_in = Some(left_in);
        used += u;
        Ok(if done { Step::Done(used) } else { Step::Partial(used) })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn rect_bytes(s: &mut Server, raw: &[u8]) -> Vec<u8> {
        let z = s.deflate(raw);
        let mut v = (z.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&z);
        v
    }

    #[test]
    fn two_rects_share_one_stream() {
        let px = ctx();
        let mut s = Server::new();
        let raw1: Vec<u8> = (0..6 * 5).flat_map(|i| [i as u8, 7, 9, 0]).collect();
        let r1 = rect_bytes(&mut s, &raw1);
        // The second rect repeats the first's pixels: with the dictionary
        // carried over it compresses to a back-reference.
        let r2 = rect_bytes(&mut s, &raw1);
        assert!(r2.len() < r1.len() / 2, "{} vs {}", r2.len(), r1.len());

        // Decode both with one decoder, splitting the second at every offset.
        let rect1 = Rect::new(0, 0, 6, 5);
        let rect2 = Rect::new(2, 3, 6, 5);
        let mut first = Zlib::default();
        let mut fb0 = Framebuffer::new(10, 10);
        assert_eq!(run(&mut first, rect1, &r1, &px, &mut fb0).unwrap(), r1.len());
        for split in 0..=r2.len() {
            let mut d = Zlib::default();
            let mut fb = Framebuffer::new(10, 10);
            run(&mut d, rect1, &r1, &px, &mut fb).unwrap();
            let n = run_split(&mut d, rect2, &r2, split, false, &px, &mut fb).unwrap();
            assert_eq!(n, r2.len());
            assert_eq!(rgb(&fb, 0, 0), [0, 7, 9]);
            assert_eq!(rgb(&fb, 2, 3), [0, 7, 9]);
            assert_eq!(rgb(&fb, 7, 7), [29, 7, 9]);
        }
        // And the whole thing byte by byte.
        let mut d = Zlib::default();
        let mut fb = Framebuffer::new(10, 10);
        run_split(&mut d, rect1, &r1, 0, true, &px, &mut fb).unwrap();
        run_split(&mut d, rect2, &r2, 0, true, &px, &mut fb).unwrap();
        assert_eq!(rgb(&fb, 7, 7), [29, 7, 9]);
    }

    #[test]
    fn every_split_and_zero_size() {
        let px = ctx();
        let mut s = Server::new();
        let raw: Vec<u8> = (0..17 * 3).flat_map(|i| [i as u8, 1, 2, 3]).collect();
        let input = rect_bytes(&mut s, &raw);
        let fb = check_splits(&|| Box::new(Zlib::default()), Rect::new(0, 0, 17, 3), &input, &px, 17, 3);
        assert_eq!(rgb(&fb, 16, 2), [50, 1, 2]);

        // Zero-size rect with a zero length: just the length.
        let mut d = Zlib::default();
        let mut fb = Framebuffer::new(4, 4);
        d.start(Rect::new(1, 1, 0, 5));
        assert_eq!(d.decode(&[0, 0, 0], &px, &mut fb).unwrap(), Step::Partial(0));
        assert_eq!(d.decode(&[0, 0, 0, 0, 9], &px, &mut fb).unwrap(), Step::Done(4));
        // Zero-size rect with only a sync flush (no output) is fine too.
        let mut s = Server::new();
        let z = s.deflate(&[]);
        let mut input = (z.len() as u32).to_be_bytes().to_vec();
        input.extend_from_slice(&z);
        check_splits(&|| Box::new(Zlib::default()), Rect::new(1, 1, 0, 0), &input, &px, 4, 4);
    }

    fn fails(input: &[u8], rect: Rect) -> String {
        let px = ctx();
        let mut fb = Framebuffer::new(8, 8);
        let mut d = Zlib::default();
        d.start(rect);
        match d.decode(input, &px, &mut fb) {
            Err(e) => e.reason,
            Ok(s) => panic!("no error: {s:?}"),
        }
    }

    #[test]
    fn bad_data() {
        let mut s = Server::new();
        let raw = [5u8; 16];
        let good = rect_bytes(&mut s, &raw);
        // Too little output: rect of 2x2 needs 16 bytes, give it 12.
        let mut s = Server::new();
        let short = rect_bytes(&mut s, &raw[..12]);
        assert_eq!(fails(&short, Rect::new(0, 0, 2, 2)), "zlib data ended before the rectangle was complete");
        // Too much output: 1x2 needs 8.
        assert_eq!(fails(&good, Rect::new(0, 0, 1, 2)), "more zlib output than the rectangle needs");
        // Corrupt stream.
        let mut bad = good.clone();
        bad[4] = 0x00; // not a zlib header
        assert!(fails(&bad, Rect::new(0, 0, 2, 2)).starts_with("corrupt zlib data"));
        // Oversize length.
        assert_eq!(
            fails(&[0xff, 0xff, 0xff, 0xff], Rect::new(0, 0, 2, 2)),
            "compressed length 4294967295 over the 67108864 limit"
        );
        // Truncated stream: the length says more than the data gives, and
        // the rect is incomplete: waits for more rather than failing.
        let px = ctx();
        let mut fb = Framebuffer::new(8, 8);
        let mut d = Zlib::default();
        d.start(Rect::new(0, 0, 2, 2));
        assert!(matches!(d.decode(&good[..good.len() - 3], &px, &mut fb), Ok(Step::Partial(_))));
    }
}
