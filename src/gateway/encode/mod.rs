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
//! | piece                                  | form                                   |
//! |----------------------------------------|----------------------------------------|
//! | one colour                             | `Fill` (neighbours of one colour merged) |
//! | ≤ 16 colours (text, UI)                | `Palette`: 1/2/4/8-bit indices (neighbours merged while ≤ 256 colours) |
//! | 17..=256 colours, lossy allowed        | `Palette` unless JPEG at the viewer's quality is predicted 3× smaller (anti-aliased drawings on a slow link) |
//! | photo-like, lossy allowed, ≥ 1024 px    | `Jpeg`                                 |
//! | photo-like otherwise                   | `Palette` if ≤ 256 colours, else `Pixels` (RGB), or `Png` when refining |
//!
//! JPEG pieces are merged into rectangles: along a tile row, and in a
//! *picture* ([`Encoder::picture`]) also down the rows when their columns
//! match, so a photo window is one image (its headers and Huffman tables
//! once, ~600 bytes each). Palette and Pixels bytes are compressed by the
//! WebSocket's permessage-deflate; JPEG and PNG bytes are not (the caller
//! sends messages that are mostly those with RSV1 clear, see [`Form::raw`]).

pub mod classify;
pub mod jpeg;
pub mod palette;
pub mod png;
pub mod webp;

use super::proto;
use crate::fb::{Framebuffer, Rect, TILE};
use classify::Sampled;
use palette::{BuildFrom, Palette};

/// Photo-like spans smaller than this are sent lossless: a JPEG's headers
/// (~600 bytes) would outweigh what it saves.
pub const MIN_JPEG_AREA: usize = 1024;
/// Pieces with at most this many colours are always sent exactly.
const EXACT_COLOURS: usize = 16;
/// A piece with more colours goes as JPEG only when its palette is
/// predicted to cost this many times the JPEG: exact stays preferred.
const EXACT_BIAS: f64 = 3.0;

/// How a message drew its area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Fill,
    Palette,
    Pixels,
    Jpeg,
    Png,
    Webp,
}

impl Form {
    /// The canvas holds the framebuffer's exact pixels after this form.
    pub fn exact(self) -> bool {
        self != Form::Jpeg
    }

    /// Compressed already: sent without permessage-deflate.
    pub fn raw(self) -> bool {
        matches!(self, Form::Jpeg | Form::Png | Form::Webp)
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

/// Lossy encoding allowed: the JPEG quality, and the bytes per photo pixel
/// expected at it (`pacing::JpegModel`), which decides when an
/// anti-aliased piece is cheaper as JPEG; Huffman tables optimised for each
/// image (fewer bytes) or the standard ones (less CPU: `jpeg.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lossy {
    pub quality: u8,
    pub bpp: f64,
    pub optimise_tables: bool,
}

/// What one encoding call produced, for the rate model.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Some piece was photo-like: the output depends on the quality.
    pub photo: bool,
    /// Pixels and bytes sent as JPEG.
    pub jpeg_pixels: u64,
    pub jpeg_bytes: u64,
}

/// Reusable scratch space for encoding.
#[derive(Default)]
pub struct Encoder {
    palette: Palette,
    stage: Vec<u8>,
    png: png::Png,
    webp: webp::Webp,
    /// Photo-like rectangles of the picture being encoded.
    photos: Vec<Rect>,
}

/// A span of pieces being merged.
#[derive(Clone, Copy)]
struct Span {
    x: u16,
    end: u32,
}

/// What a piece is to become.
enum Piece {
    Fill([u8; 4]),
    Exact,
    Photo,
}

/// Predicted wire bytes of a `Palette` of `colours` colours over `r`
/// (indices deflate to about half).
fn palette_cost(colours: usize, r: Rect) -> f64 {
    let rows = palette::row_bytes(r.w as usize, palette::bits_for(colours)) * r.h as usize;
    colours as f64 * 3.0 + rows as f64 * 0.5
}

impl Encoder {
    /// Encode the run `run` of `fb` (inside one tile row) into `out`, one
    /// [`Note`] per message into `notes`. `lossy`: JPEG allowed for
    /// photo-like pieces (`None`: lossless only).
    pub fn run(
        &mut self,
        fb: &Framebuffer,
        run: Rect,
        lossy: Option<Lossy>,
        out: &mut Vec<u8>,
        notes: &mut Vec<Note>,
    ) -> Stats {
        let mut stats = Stats::default();
        self.run_into(fb, run, lossy, false, out, notes, &mut stats);
        stats
    }

    /// Encode every run of a picture (`runs`, in tile rows) from one
    /// snapshot: fills and exact pieces as they come, then the photo-like
    /// pieces as JPEG, merged into rectangles down the rows where their
    /// columns match (one image for a photo window).
    pub fn picture(
        &mut self,
        fb: &Framebuffer,
        runs: &[Rect],
        lossy: Option<Lossy>,
        out: &mut Vec<u8>,
        notes: &mut Vec<Note>,
    ) -> Stats {
        let mut stats = Stats::default();
        self.photos.clear();
        for &r in runs {
            self.run_into(fb, r, lossy, true, out, notes, &mut stats);
        }
        let Some(l) = lossy else { return stats };
        // Down the rows: same columns, touching.
        let photos = &mut self.photos;
        photos.sort_unstable_by_key(|r| (r.x, r.w, r.y));
        let mut merged = 0;
        for i in 0..photos.len() {
            let r = photos[i];
            if merged > 0 {
                let m = &mut photos[merged - 1];
                if (m.x, m.w) == (r.x, r.w) && m.bottom() == r.y as u32 && m.h as u32 + r.h as u32 <= u16::MAX as u32 {
                    m.h += r.h;
                    continue;
                }
            }
            photos[merged] = r;
            merged += 1;
        }
        photos.truncate(merged);
        photos.sort_unstable_by_key(|r| (r.y, r.x));
        let photos = std::mem::take(&mut self.photos);
        for &r in &photos {
            self.photo(fb, r, l, out, notes, &mut stats);
        }
        self.photos = photos;
        stats
    }

    #[allow(clippy::too_many_arguments)]
    fn run_into(
        &mut self,
        fb: &Framebuffer,
        run: Rect,
        lossy: Option<Lossy>,
        defer_photos: bool,
        out: &mut Vec<u8>,
        notes: &mut Vec<Note>,
        stats: &mut Stats,
    ) {
        if run.is_empty() || !fb.contains(run) {
            return;
        }
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
            let kind = self.decide(fb, piece, lossy, stats);
            if let Piece::Fill(c) = kind {
                self.flush_exact(fb, run, &mut exact, out, notes);
                self.flush_span(fb, run, &mut span, lossy, defer_photos, out, notes, stats);
                match &mut fill {
                    Some((_, e, fc)) if *fc == c && *e == piece.x as u32 => *e = piece.right(),
                    _ => {
                        flush_fill(run, &mut fill, out, notes);
                        fill = Some((piece.x, piece.right(), c));
                    }
                }
                continue;
            }
            flush_fill(run, &mut fill, out, notes);
            if let Piece::Photo = kind {
                self.flush_exact(fb, run, &mut exact, out, notes);
                extend(&mut span, piece);
                continue;
            }
            self.flush_span(fb, run, &mut span, lossy, defer_photos, out, notes, stats);
            extend(&mut exact, piece);
        }
        flush_fill(run, &mut fill, out, notes);
        self.flush_exact(fb, run, &mut exact, out, notes);
        self.flush_span(fb, run, &mut span, lossy, defer_photos, out, notes, stats);
    }

    /// Classify one piece (see the module docs).
    fn decide(&mut self, fb: &Framebuffer, piece: Rect, lossy: Option<Lossy>, stats: &mut Stats) -> Piece {
        let sampled = classify::sample(fb, piece);
        if let Sampled::Uniform(c) = sampled {
            if classify::is_solid(fb, piece, c) {
                return Piece::Fill(c);
            }
        }
        stats.photo |= sampled == Sampled::Many;
        let Some(l) = lossy else { return Piece::Exact };
        if sampled == Sampled::Many || !self.palette.build_from(fb, piece, palette::MAX_COLOURS) {
            stats.photo = true;
            return Piece::Photo;
        }
        let n = self.palette.len();
        if n <= EXACT_COLOURS || palette_cost(n, piece) <= EXACT_BIAS * piece.area() as f64 * l.bpp {
            return Piece::Exact;
        }
        stats.photo = true;
        Piece::Photo
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
        if r.w <= TILE || self.palette.build_from(fb, r, palette::MAX_COLOURS) {
            self.lossless(fb, r, out, notes);
            return;
        }
        self.by_tile(fb, r, out, notes);
    }

    /// `r` exactly, tile column by tile column.
    fn by_tile(&mut self, fb: &Framebuffer, r: Rect, out: &mut Vec<u8>, notes: &mut Vec<Note>) {
        let mut x = r.x as u32;
        while x < r.right() {
            let w = ((x / TILE as u32 + 1) * TILE as u32).min(r.right()) - x;
            self.lossless(fb, Rect::new(x as u16, r.y, w as u16, r.h), out, notes);
            x += w;
        }
    }

    /// Encode `r` exactly: Fill, Palette or Pixels, whichever applies.
    pub fn lossless(&mut self, fb: &Framebuffer, r: Rect, out: &mut Vec<u8>, notes: &mut Vec<Note>) {
        if !self.palette_or_fill(fb, r, out, notes) {
            let start = out.len();
            pixels_rgb(fb, r, out);
            notes.push(Note { rect: r, form: Form::Pixels, start, end: out.len() });
        }
    }

    /// Encode `r` exactly for refinement: Fill or Palette, else an image:
    /// `Webp` (lossless) when the browser decodes it (`webp`), else `Png`.
    /// On the photo-like wallpapers of examples/lossless_bytes, PNG is
    /// 1.5× smaller than deflated RGB and WebP lossless 0.77× of PNG.
    pub fn refine(&mut self, fb: &Framebuffer, r: Rect, webp: bool, out: &mut Vec<u8>, notes: &mut Vec<Note>) {
        if !self.palette_or_fill(fb, r, out, notes) {
            self.image_message(fb, r, if webp { Form::Webp } else { Form::Png }, out, notes);
        }
    }

    /// A `Png` or `Webp` message (`form`) of `r`.
    pub fn image_message(&mut self, fb: &Framebuffer, r: Rect, form: Form, out: &mut Vec<u8>, notes: &mut Vec<Note>) {
        let start = out.len();
        let ty = if form == Form::Webp { proto::to_browser::WEBP } else { proto::to_browser::PNG };
        proto::image_header(out, ty, r.x, r.y, r.w, r.h);
        let len_at = out.len() - 4;
        if form == Form::Webp {
            self.webp.encode(fb, r, out);
        } else {
            self.png.encode(fb, r, out);
        }
        let len = (out.len() - len_at - 4) as u32;
        out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        notes.push(Note { rect: r, form, start, end: out.len() });
    }

    /// `Fill` or `Palette` for `r` when it has ≤ 256 colours; false (and
    /// nothing written) otherwise.
    fn palette_or_fill(&mut self, fb: &Framebuffer, r: Rect, out: &mut Vec<u8>, notes: &mut Vec<Note>) -> bool {
        if !self.palette.build_from(fb, r, palette::MAX_COLOURS) {
            return false;
        }
        let start = out.len();
        let form = if self.palette.len() == 1 {
            proto::fill(out, r.x, r.y, r.w, r.h, fb.pixel(r.x, r.y));
            Form::Fill
        } else {
            proto::palette_header(out, r.x, r.y, r.w, r.h, self.palette.len());
            self.palette.write(r.w as usize, out);
            Form::Palette
        };
        notes.push(Note { rect: r, form, start, end: out.len() });
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn flush_span(
        &mut self,
        fb: &Framebuffer,
        run: Rect,
        span: &mut Option<Span>,
        lossy: Option<Lossy>,
        defer: bool,
        out: &mut Vec<u8>,
        notes: &mut Vec<Note>,
        stats: &mut Stats,
    ) {
        let Some(s) = span.take() else { return };
        let r = Rect::new(s.x, run.y, (s.end - s.x as u32) as u16, run.h);
        match lossy {
            Some(_) if defer => self.photos.push(r),
            Some(l) => self.photo(fb, r, l, out, notes, stats),
            // Photo-like pieces without JPEG: exact, piece by piece so that
            // a piece with ≤ 256 colours still gets a palette.
            None => self.by_tile(fb, r, out, notes),
        }
    }

    /// A photo-like rectangle: one JPEG, or exact when too small.
    fn photo(
        &mut self,
        fb: &Framebuffer,
        r: Rect,
        l: Lossy,
        out: &mut Vec<u8>,
        notes: &mut Vec<Note>,
        stats: &mut Stats,
    ) {
        if r.area() >= MIN_JPEG_AREA {
            let start = out.len();
            proto::image_header(out, proto::to_browser::JPEG, r.x, r.y, r.w, r.h);
            let len_at = out.len() - 4;
            if jpeg::encode(fb, r, l.quality, l.optimise_tables, &mut self.stage, out) {
                let len = (out.len() - len_at - 4) as u32;
                out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
                notes.push(Note { rect: r, form: Form::Jpeg, start, end: out.len() });
                stats.jpeg_pixels += r.area() as u64;
                stats.jpeg_bytes += len as u64;
                return;
            }
            out.truncate(start);
        }
        self.by_tile(fb, r, out, notes);
    }
}

/// Pixels of `r` that would go as JPEG (photo-like samples), from samples
/// only: what a picture's quality is chosen for.
pub fn photo_pixels(fb: &Framebuffer, r: Rect) -> u64 {
    let mut n = 0;
    for_pieces(r, |p| {
        if fb.contains(p) && classify::sample(fb, p) == Sampled::Many {
            n += p.area() as u64;
        }
    });
    n
}

/// Predicted wire bytes of encoding `r` with JPEG at `bpp` bytes per photo
/// pixel, from samples only (a few bytes per flat piece, a quarter byte
/// per pixel of few-colour pieces).
pub fn estimate(fb: &Framebuffer, r: Rect, bpp: f64) -> u64 {
    let mut n = 0.0;
    // A row of pieces of one colour is one `Fill`.
    let mut fill: Option<(u16, [u8; 4])> = None;
    for_pieces(r, |p| {
        if !fb.contains(p) {
            return;
        }
        let sampled = classify::sample(fb, p);
        let same_fill = matches!((sampled, fill), (Sampled::Uniform(c), Some((y, f))) if c == f && y == p.y);
        fill = match sampled {
            Sampled::Uniform(c) => Some((p.y, c)),
            _ => None,
        };
        n += match sampled {
            Sampled::Uniform(_) if same_fill => 0.0,
            Sampled::Uniform(_) => 16.0,
            Sampled::Few => p.area() as f64 * 0.25,
            Sampled::Many => p.area() as f64 * bpp + 100.0,
        };
    });
    n as u64
}

/// Calls `f` for every piece of `r` cut at tile columns and rows.
fn for_pieces(r: Rect, mut f: impl FnMut(Rect)) {
    let t = TILE as u32;
    let mut y = r.y as u32;
    while y < r.bottom() {
        let h = ((y / t + 1) * t).min(r.bottom()) - y;
        let mut x = r.x as u32;
        while x < r.right() {
            let w = ((x / t + 1) * t).min(r.right()) - x;
            f(Rect::new(x as u16, y as u16, w as u16, h as u16));
            x += w;
        }
        y += h;
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
    let row = r.w as usize * 3;
    for y in r.y as usize..r.bottom() as usize {
        let o = y * stride + r.x as usize * 4;
        let at = out.len();
        out.resize(at + row, 0);
        wsvnc_kernels::rgbx_to_rgb(&data[o..o + r.w as usize * 4], &mut out[at..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lossy(q: u8) -> Option<Lossy> {
        Some(Lossy { quality: q, bpp: 0.1, optimise_tables: true })
    }

    fn encode(fb: &Framebuffer, r: Rect, l: Option<Lossy>) -> (Vec<u8>, Vec<Note>, bool) {
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        let stats = Encoder::default().run(fb, r, l, &mut out, &mut notes);
        (out, notes, stats.photo)
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
        let (out, notes, photo) = encode(&fb, fb.full_rect(), lossy(60));
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
        let (_, notes, _) = encode(&fb, Rect::new(130, 10, 20, 20), lossy(60));
        assert_eq!(forms(&notes), [Form::Pixels]);
    }

    #[test]
    fn neighbouring_fills_of_one_colour_merge() {
        let mut fb = Framebuffer::new(300, 10);
        fb.fill(fb.full_rect(), [1, 2, 3, 255]).unwrap();
        fb.fill(Rect::new(200, 0, 100, 10), [9, 9, 9, 255]).unwrap();
        let (out, notes, _) = encode(&fb, fb.full_rect(), lossy(50));
        assert_eq!(forms(&notes), [Form::Fill, Form::Palette, Form::Fill]);
        assert_eq!(notes[0].rect, Rect::new(0, 0, 192, 10));
        assert_eq!(notes[2].rect, Rect::new(256, 0, 44, 10));
        assert_eq!(&out[..13], &[0x03, 0, 0, 0, 0, 192, 0, 10, 0, 1, 2, 3, 255]);
    }
}
