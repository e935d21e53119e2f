//! Per-region encoding of framebuffer areas into browser protocol v2 drawing
//! messages (docs/protocol.md): pure functions over a [`Framebuffer`] and a
//! [`Rect`], appending to a caller-owned buffer, with scratch space reused
//! from call to call ([`Encoder`]), so nothing is allocated per tile once
//! the buffers have grown.
//!
//! An area (a damaged run within one row of 64×64 tiles) is cut at tile
//! columns; each piece is classified from a grid of samples
//! ([`classify::sample`]) and sent in the cheapest faithful form:
//!
//! | piece                                 | form                                   |
//! |---------------------------------------|----------------------------------------|
//! | one colour                            | `Fill` (neighbours of one colour merged) |
//! | ≤ 256 colours (text, UI)              | `Palette`: 1/2/4/8-bit indices (neighbours merged while ≤ 256 colours) |
//! | photo-like, lossy allowed, ≥ 1024 px   | `Jpeg` (neighbouring pieces merged)     |
//! | photo-like otherwise                  | `Palette` if ≤ 256 colours, else `Pixels` (RGB) |
//!
//! Palette and Pixels bytes are compressed by the WebSocket's
//! permessage-deflate; JPEG bytes are not (the caller sends messages that
//! are mostly JPEG with RSV1 clear, see [`Note`]).

pub mod classify;
pub mod jpeg;
pub mod palette;

use super::proto;
use crate::fb::{Framebuffer, Rect, TILE};
use classify::Sampled;
use palette::Palette;

/// Photo-like spans smaller than this are sent lossless: a JPEG's headers
/// (~600 bytes) would outweigh what it saves.
pub const MIN_JPEG_AREA: usize = 1024;

/// How a message drew its area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Fill,
    Palette,
    Pixels,
    Jpeg,
}

impl Form {
    /// The canvas holds the framebuffer's exact pixels after this form.
    pub fn exact(self) -> bool {
        self != Form::Jpeg
    }
}

/// One message written by the encoder: the area it covers, its form, and
/// where its bytes are in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note {
    pub rect: Rect,
    pub form: Form,
    pub start: usize,
    pub end: usize,
}

/// Reusable scratch space for encoding.
#[derive(Default)]
pub struct Encoder {
    palette: Palette,
    stage: Vec<u8>,
}

/// A span of photo-like pieces being merged.
#[derive(Clone, Copy)]
struct Span {
    x: u16,
    end: u32,
}

impl Encoder {
    /// Encode the run `run` of `fb` (inside one tile row) into `out`, one
    /// [`Note`] per message into `notes`. `quality`: JPEG quality for
    /// photo-like pieces, `None` for lossless only. Returns whether any piece
    /// was photo-like (the output then depends on `quality`).
    pub fn run(
        &mut self,
        fb: &Framebuffer,
        run: Rect,
        quality: Option<u8>,
        out: &mut Vec<u8>,
        notes: &mut Vec<Note>,
    ) -> bool {
        if run.is_empty() || !fb.contains(run) {
            return false;
        }
        let mut photo = false;
        let mut span: Option<Span> = None;
        let mut exact: Option<Span> = None;
        let mut fill: Option<(u16, u32, [u8; 4])> = None;
        let end = run.right();
        let mut x = run.x as u32;
        while x < end {
            let next_col = (x / TILE as u32 + 1) * TILE as u32;
            let w = (next_col.min(end) - x) as u16;
            let piece = Rect::new(x as u16, run.y, w, run.h);
            x += w as u32;
            let sampled = classify::sample(fb, piece);
            if let Sampled::Uniform(c) = sampled {
                if classify::is_solid(fb, piece, c) {
                    self.flush_exact(fb, run, &mut exact, out, notes);
                    self.flush_span(fb, run, &mut span, quality, out, notes);
                    match &mut fill {
                        Some((_, e, fc)) if *fc == c && *e == piece.x as u32 => *e = piece.right(),
                        _ => {
                            flush_fill(run, &mut fill, out, notes);
                            fill = Some((piece.x, piece.right(), c));
                        }
                    }
                    continue;
                }
            }
            flush_fill(run, &mut fill, out, notes);
            let many = sampled == Sampled::Many;
            photo |= many;
            if many && quality.is_some() {
                self.flush_exact(fb, run, &mut exact, out, notes);
                extend(&mut span, piece);
                continue;
            }
            self.flush_span(fb, run, &mut span, quality, out, notes);
            extend(&mut exact, piece);
        }
        flush_fill(run, &mut fill, out, notes);
        self.flush_exact(fb, run, &mut exact, out, notes);
        self.flush_span(fb, run, &mut span, quality, out, notes);
        photo
    }

    /// Neighbouring pieces to be sent exactly: one `Palette` for all of
    /// them when ≤ 256 colours (fewer messages, fewer canvas calls in the
    /// browser), else piece by piece.
    fn flush_exact(
        &mut self,
        fb: &Framebuffer,
        run: Rect,
        span: &mut Option<Span>,
        out: &mut Vec<u8>,
        notes: &mut Vec<Note>,
    ) {
        let Some(s) = span.take() else { return };
        let r = Rect::new(s.x, run.y, (s.end - s.x as u32) as u16, run.h);
        if r.w <= TILE || self.palette.build(fb, r, palette::MAX_COLOURS) {
            self.lossless(fb, r, out, notes);
            return;
        }
        let mut x = r.x as u32;
        while x < r.right() {
            let w = ((x / TILE as u32 + 1) * TILE as u32).min(r.right()) - x;
            self.lossless(fb, Rect::new(x as u16, r.y, w as u16, r.h), out, notes);
            x += w;
        }
    }

    /// Encode `r` exactly: Fill, Palette or Pixels, whichever applies.
    pub fn lossless(&mut self, fb: &Framebuffer, r: Rect, out: &mut Vec<u8>, notes: &mut Vec<Note>) {
        let start = out.len();
        let form = if self.palette.build(fb, r, palette::MAX_COLOURS) {
            if self.palette.len() == 1 {
                proto::fill(out, r.x, r.y, r.w, r.h, fb.pixel(r.x, r.y));
                Form::Fill
            } else {
                proto::palette_header(out, r.x, r.y, r.w, r.h, self.palette.len());
                self.palette.write(r.w as usize, out);
                Form::Palette
            }
        } else {
            pixels_rgb(fb, r, out);
            Form::Pixels
        };
        notes.push(Note { rect: r, form, start, end: out.len() });
    }

    fn flush_span(
        &mut self,
        fb: &Framebuffer,
        run: Rect,
        span: &mut Option<Span>,
        quality: Option<u8>,
        out: &mut Vec<u8>,
        notes: &mut Vec<Note>,
    ) {
        let Some(s) = span.take() else { return };
        let r = Rect::new(s.x, run.y, (s.end - s.x as u32) as u16, run.h);
        if let Some(q) = quality.filter(|_| r.area() >= MIN_JPEG_AREA) {
            let start = out.len();
            proto::jpeg_header(out, r.x, r.y, r.w, r.h);
            let len_at = out.len() - 4;
            if jpeg::encode(fb, r, q, &mut self.stage, out) {
                let len = (out.len() - len_at - 4) as u32;
                out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
                notes.push(Note { rect: r, form: Form::Jpeg, start, end: out.len() });
                return;
            }
            out.truncate(start);
        }
        // Too small for JPEG (or no JPEG): exact, piece by piece so that a
        // piece with ≤ 256 colours still gets a palette.
        let mut x = r.x as u32;
        while x < r.right() {
            let w = ((x / TILE as u32 + 1) * TILE as u32).min(r.right()) - x;
            self.lossless(fb, Rect::new(x as u16, r.y, w as u16, r.h), out, notes);
            x += w;
        }
    }
}

fn extend(span: &mut Option<Span>, piece: Rect) {
    match span {
        Some(s) => s.end = piece.right(),
        None => *span = Some(Span { x: piece.x, end: piece.right() }),
    }
}

fn flush_fill(run: Rect, fill: &mut Option<(u16, u32, [u8; 4])>, out: &mut Vec<u8>, notes: &mut Vec<Note>) {
    if let Some((x, end, c)) = fill.take() {
        let start = out.len();
        let r = Rect::new(x, run.y, (end - x as u32) as u16, run.h);
        proto::fill(out, r.x, r.y, r.w, r.h, c);
        notes.push(Note { rect: r, form: Form::Fill, start, end: out.len() });
    }
}

/// A `Pixels` message: `r` as RGB, 3 bytes per pixel.
pub fn pixels_rgb(fb: &Framebuffer, r: Rect, out: &mut Vec<u8>) {
    proto::pixels_header(out, r.x, r.y, r.w, r.h);
    let stride = fb.width() as usize * 4;
    let data = fb.data();
    out.reserve(r.area() * 3);
    for y in r.y as usize..r.bottom() as usize {
        let o = y * stride + r.x as usize * 4;
        for px in data[o..o + r.w as usize * 4].chunks_exact(4) {
            out.extend_from_slice(&px[..3]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(fb: &Framebuffer, r: Rect, q: Option<u8>) -> (Vec<u8>, Vec<Note>, bool) {
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        let photo = Encoder::default().run(fb, r, q, &mut out, &mut notes);
        (out, notes, photo)
    }

    fn forms(notes: &[Note]) -> Vec<Form> {
        notes.iter().map(|n| n.form).collect()
    }

    /// A desktop row: flat background, a text-like tile, a photo spanning
    /// two tiles, flat again.
    fn scene() -> Framebuffer {
        let mut fb = Framebuffer::new(320, 64);
        fb.fill(fb.full_rect(), [40, 40, 40, 255]).unwrap();
        for y in (0..64).step_by(4) {
            fb.fill(Rect::new(70, y, 50, 2), [230, 230, 230, 255]).unwrap();
            fb.fill(Rect::new(80, y + 1, 5, 1), [200, 30, 30, 255]).unwrap();
        }
        let mut photo = Framebuffer::new(128, 64);
        jpeg::tests::photo(&mut photo);
        fb.put_rgba(Rect::new(128, 0, 128, 64), photo.data()).unwrap();
        fb
    }

    #[test]
    fn each_content_class_gets_its_form() {
        let fb = scene();
        let (out, notes, photo) = encode(&fb, fb.full_rect(), Some(60));
        assert!(photo);
        assert_eq!(forms(&notes), [Form::Fill, Form::Palette, Form::Jpeg, Form::Fill]);
        assert_eq!(notes[0].rect, Rect::new(0, 0, 64, 64));
        assert_eq!(notes[1].rect, Rect::new(64, 0, 64, 64));
        assert_eq!(notes[2].rect, Rect::new(128, 0, 128, 64), "two photo tiles, one JPEG");
        assert_eq!(notes[3].rect, Rect::new(256, 0, 64, 64));
        assert_eq!(notes.last().unwrap().end, out.len());
        assert_eq!(out[notes[1].start], proto::to_browser::PALETTE);
        assert_eq!(out[notes[1].start + 9], 2, "3 colours: count - 1");
        assert_eq!(out[notes[2].start], proto::to_browser::JPEG);
        // Lossless only: the photo becomes RGB pixels (it has > 256 colours).
        let (_, notes, _) = encode(&fb, fb.full_rect(), None);
        assert_eq!(forms(&notes), [Form::Fill, Form::Palette, Form::Pixels, Form::Pixels, Form::Fill]);
        // A small photo-like span is not worth a JPEG.
        let (_, notes, _) = encode(&fb, Rect::new(130, 10, 20, 20), Some(60));
        assert_eq!(forms(&notes), [Form::Pixels]);
    }

    #[test]
    fn neighbouring_fills_of_one_colour_merge() {
        let mut fb = Framebuffer::new(300, 10);
        fb.fill(fb.full_rect(), [1, 2, 3, 255]).unwrap();
        fb.fill(Rect::new(200, 0, 100, 10), [9, 9, 9, 255]).unwrap();
        let (out, notes, _) = encode(&fb, fb.full_rect(), Some(50));
        assert_eq!(forms(&notes), [Form::Fill, Form::Palette, Form::Fill]);
        assert_eq!(notes[0].rect, Rect::new(0, 0, 192, 10));
        assert_eq!(notes[2].rect, Rect::new(256, 0, 44, 10));
        assert_eq!(&out[..13], &[0x03, 0, 0, 0, 0, 192, 0, 10, 0, 1, 2, 3, 255]);
    }
}
