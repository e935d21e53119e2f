//! What a viewer is sent next, encoded once and shared.
//!
//! Three kinds of encoding ([`What`]):
//!
//! * a **picture**: all of a viewer's damage (and its pending `Copy`s) from
//!   one framebuffer snapshot, photo-like areas as JPEG merged into
//!   rectangles. It goes as one frame when it fits one part of the viewer's
//!   pacer; otherwise in parts (`EndPart`), a JPEG cut into `ImageData`
//!   pieces where a part ends inside it, and the browser holds the parts
//!   until the last one and draws the picture whole: whatever the link,
//!   the canvas only ever shows pictures the VNC server's screen really
//!   had, never one torn between two of them;
//! * an **aside**: while a picture is on its way, damage that does not
//!   overlap it (a clock, a status bar, the pointer's surroundings), as
//!   much as fits one part, urgent first: it is drawn at once, ahead of the
//!   rest of the picture; and before a new picture, small changes apart
//!   from its big one ([`Islands`]: they came in the same update), so
//!   they wait neither for the picture's pacing nor for its encoding;
//! * a **refinement**: exact pixels (`Fill`/`Palette`, `Png` for
//!   photo-like pieces) for tiles the viewer last got as JPEG, as much as
//!   fits one part, few-colour pieces (cheap) first; encoded just in time
//!   from the current framebuffer, one frame at a time, only when the
//!   viewer has nothing else to send.
//!
//! Encodings live in the session's [`Parts`] cache, keyed by everything
//! that decides their bytes (framebuffer generation, damage, copies,
//! refinement set, JPEG quality when a piece was photo-like, and the room
//! of a room-limited one). Viewers of one session in the same state (the
//! usual case: they all took the previous update) find what another viewer
//! encoded and stream the same bytes; a picture's bytes do not depend on
//! the viewer's part size, which only decides where [`Encoded::next_message`]
//! cuts them. Only the WebSocket framing (and permessage-deflate) is per
//! viewer.

use super::encode::{self, classify, Encoder, Form, Lossy as Jpeg, Note, Stats};
use super::proto;
use crate::fb::{CopyOp, Framebuffer, Rect, TileSet, TILE};

/// Raw protocol bytes per WebSocket message, at most (a single message
/// larger than this, e.g. one wide `Pixels` run, is sent alone).
pub const CHUNK: usize = 256 << 10;
/// Damage within this many pixels of the pointer goes first.
const NEAR_POINTER: u32 = 96;
/// Encodings kept for reuse beyond those being streamed.
const SPARE: usize = 4;
/// A part ending inside an image carries at least this much of it.
const MIN_IMAGE_DATA: u64 = 1024;
/// Predicted bytes per pixel of photo-like content as PNG and as WebP
/// lossless, with a margin (examples/lossless_bytes: 1.19 and 0.91 on the
/// wallpapers in 64-row strips).
const PNG_BPP: f64 = 1.3;
const WEBP_BPP: f64 = 1.0;

/// What to encode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum What {
    /// All of the damage and copies, from one snapshot.
    Picture { jpeg: Option<Jpeg> },
    /// As much of the damage as fits `room` (estimated wire bytes), most
    /// urgent first.
    Aside { room: u64, jpeg: Option<Jpeg> },
    /// Exact pixels for the refinement set, as much as fits `room`;
    /// photo-like areas as WebP lossless when `webp` (the browser decodes
    /// it, `Accept`), else PNG.
    Refine { room: u64, webp: bool },
}

impl What {
    fn room(&self) -> u64 {
        match *self {
            What::Picture { .. } => u64::MAX,
            What::Aside { room, .. } | What::Refine { room, .. } => room,
        }
    }
    /// JPEG quality and table choice (`None`: lossless only).
    fn quality(&self) -> Option<(u8, bool)> {
        match self {
            What::Picture { jpeg } | What::Aside { jpeg, .. } => jpeg.map(|j| (j.quality, j.optimise_tables)),
            What::Refine { .. } => None,
        }
    }
    fn kind(&self) -> u8 {
        match self {
            What::Picture { .. } => 0,
            What::Aside { .. } => 1,
            What::Refine { webp: false, .. } => 2,
            What::Refine { webp: true, .. } => 3,
        }
    }
}

/// What a viewer asks for.
pub struct Request<'a> {
    pub gen: u64,
    pub what: What,
    /// Estimated wire bytes per protocol byte of deflated messages.
    pub ratio: f64,
    pub damage: &'a TileSet,
    pub copies: &'a [CopyOp],
    pub refine: &'a TileSet,
    pub pointer: Option<(u16, u16)>,
}

/// An encoding.
pub struct Encoded {
    // What it was made from.
    gen: u64,
    what: What,
    copies: Vec<CopyOp>,
    damage: TileSet,
    refine: TileSet,
    // What it is.
    pub stats: Stats,
    /// Everything asked for fit (nothing left over).
    pub complete: bool,
    pub bytes: Vec<u8>,
    /// `bytes[..copies_end]` are the `Copy` messages.
    copies_end: usize,
    /// A picture's messages `[..prefix_end)` are `Fill`s outside the
    /// bounding box of its other messages, drawn at once when it goes in
    /// parts; the rest is held by the browser and drawn together.
    prefix_end: usize,
    /// Bounding box of a picture's messages other than `Fill`s.
    content_box: Option<Rect>,
    /// Scratch for reordering.
    spare: Vec<u8>,
    /// One note per drawing message (copies excluded), in order.
    pub notes: Vec<Note>,
    /// The damage not included, for the viewer's next frame.
    pub left: TileSet,
    /// Bytes of JPEG/PNG messages (sent as they are) and of the others
    /// (deflated by the WebSocket).
    raw: u64,
    other: u64,
    /// Encoded from pixels of a framebuffer update half applied.
    pub mid_update: bool,
    /// Viewers streaming it.
    users: u32,
    /// When it was last handed out (`Parts::served`): the idle encoding
    /// used longest ago is the one overwritten.
    stamp: u64,
}

/// Where a viewer is in an [`Encoded`]: the next byte to send and the note
/// it belongs to (`note == notes.len()` in the copies or at the end). A
/// position strictly inside an image message past its header means the
/// image is being sent in `ImageData` pieces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    at: usize,
    note: usize,
}

impl Cursor {
    /// Index of the next message (or the one being sent in pieces).
    pub fn note(&self) -> usize {
        self.note
    }
}

impl Encoded {
    fn new() -> Encoded {
        Encoded {
            gen: u64::MAX,
            what: What::Refine { room: 0, webp: false },
            copies: Vec::new(),
            damage: TileSet::new(0, 0),
            refine: TileSet::new(0, 0),
            stats: Stats::default(),
            complete: false,
            bytes: Vec::new(),
            copies_end: 0,
            prefix_end: 0,
            content_box: None,
            spare: Vec::new(),
            notes: Vec::new(),
            left: TileSet::new(0, 0),
            raw: 0,
            other: 0,
            mid_update: false,
            users: 0,
            stamp: 0,
        }
    }

    /// Whether this encoding is what `req` would produce (or close enough:
    /// one cut short for a room within 1.5× of the viewer's).
    fn serves(&self, req: &Request) -> bool {
        let quality_ok = self.what.quality() == req.what.quality()
            || (!self.stats.photo && self.what.quality().is_some() == req.what.quality().is_some());
        let (mine, theirs) = (self.what.room(), req.what.room());
        // Made for the same room: what `req` would produce (an encoding
        // may end past its room by its last message).
        let room_ok =
            mine == theirs || self.cost(req.ratio) <= theirs.max(1) && (self.complete || theirs <= mine + mine / 2);
        self.gen == req.gen
            && self.what.kind() == req.what.kind()
            && quality_ok
            && room_ok
            && self.copies == req.copies
            && self.damage.same_damage(req.damage)
            && self.refine.same_damage(req.refine)
    }

    /// Estimated wire bytes: JPEG and PNG as they are, the rest deflated at
    /// `ratio`.
    pub fn cost(&self, ratio: f64) -> u64 {
        self.raw + (self.other as f64 * ratio) as u64
    }

    /// Index of the first message that is held when the picture goes in
    /// parts (see `prefix_end`).
    pub fn prefix_end(&self) -> usize {
        self.prefix_end
    }

    /// The bounding box of a picture's messages other than `Fill`s
    /// (`None`: it has none).
    pub fn content_box(&self) -> Option<Rect> {
        self.content_box
    }

    /// The area a picture covers (its damage).
    pub fn area(&self) -> &TileSet {
        &self.damage
    }

    /// Nothing left to send after `c`.
    pub fn done(&self, c: &Cursor) -> bool {
        c.at >= self.bytes.len()
    }

    /// Append the protocol bytes of the next WebSocket message from `c` to
    /// `out` and advance `c`: the copies and then messages of one kind —
    /// deflatable ones, or JPEG/PNG ones (`raw`, the return value) — up to
    /// about `budget` estimated wire bytes and [`CHUNK`] bytes (at least one
    /// message). With `split`, an image that does not fit the budget is
    /// sent in pieces: `ImageBegin`, then `ImageData` of what fits (at least
    /// [`MIN_IMAGE_DATA`]), the rest in later calls. Returns (raw, estimated
    /// wire bytes appended). Messages from note `stop` on are left for
    /// later calls.
    pub fn next_message(
        &self,
        c: &mut Cursor,
        budget: u64,
        ratio: f64,
        split: bool,
        stop: usize,
        out: &mut Vec<u8>,
    ) -> (bool, u64) {
        let notes = &self.notes[..stop.min(self.notes.len())];
        let start = out.len();
        if c.at < self.copies_end {
            out.extend_from_slice(&self.bytes[c.at..self.copies_end]);
            c.at = self.copies_end;
        }
        let Some(n) = notes.get(c.note) else {
            return (false, ((out.len() - start) as f64 * ratio) as u64);
        };
        if n.form.raw() && out.len() == start {
            let header = proto::IMAGE_HEADER;
            let len = (n.end - n.start) as u64;
            if c.at == n.start && (!split || len <= budget) {
                // Whole images, while they fit.
                let mut sent = 0;
                while let Some(n) = notes.get(c.note).filter(|n| n.form.raw()) {
                    let len = (n.end - n.start) as u64;
                    if sent > 0 && (sent + len > budget || out.len() - start + (len as usize) > CHUNK) {
                        break;
                    }
                    out.extend_from_slice(&self.bytes[n.start..n.end]);
                    sent += len;
                    c.at = n.end;
                    c.note += 1;
                }
                return (true, sent);
            }
            if c.at == n.start {
                let r = n.rect;
                let format = match n.form {
                    Form::Jpeg => proto::image_format::JPEG,
                    Form::Webp => proto::image_format::WEBP,
                    _ => proto::image_format::PNG,
                };
                proto::image_begin(out, r.x, r.y, r.w, r.h, format, (len - header as u64) as u32);
                c.at = n.start + header;
            }
            let left = (n.end - c.at) as u64;
            let take = budget.max(MIN_IMAGE_DATA).min(left).min(CHUNK as u64) as usize;
            proto::image_data(out, &self.bytes[c.at..c.at + take]);
            c.at += take;
            if c.at == n.end {
                c.note += 1;
            }
            return (true, (out.len() - start) as u64);
        }
        // Deflatable messages.
        let mut cost = ((out.len() - start) as f64 * ratio) as u64;
        while let Some(n) = notes.get(c.note).filter(|n| !n.form.raw()) {
            let len = n.end - n.start;
            let more = (len as f64 * ratio) as u64;
            if out.len() > start && (cost + more > budget || out.len() - start + len > CHUNK) {
                break;
            }
            out.extend_from_slice(&self.bytes[n.start..n.end]);
            cost += more;
            c.at = n.end;
            c.note += 1;
        }
        (false, cost)
    }
}

/// The session's encodings and the encoder's scratch space.
#[derive(Default)]
pub struct Parts {
    parts: Vec<Encoded>,
    encoder: Encoder,
    runs: Vec<(u32, Rect)>,
    /// Encodings made / handed to a viewer (for the benches).
    pub encoded: u64,
    pub served: u64,
    /// Messages encoded per form, indexed by `Form as usize` (/metrics).
    pub forms: [u64; 6],
}

impl Parts {
    pub fn part(&self, i: usize) -> &Encoded {
        &self.parts[i]
    }

    /// A viewer stopped streaming encoding `i`.
    pub fn release(&mut self, i: usize) {
        if let Some(p) = self.parts.get_mut(i) {
            p.users = p.users.saturating_sub(1);
        }
    }

    /// The encoding for `req`: an existing one that serves it, or a new one
    /// made from `fb`. The caller streams it and then calls `release`.
    pub fn get(&mut self, fb: &Framebuffer, req: &Request) -> usize {
        self.served += 1;
        if let Some(i) = self.parts.iter().position(|p| p.serves(req)) {
            self.parts[i].users += 1;
            self.parts[i].stamp = self.served;
            return i;
        }
        self.encoded += 1;
        // Keep a few idle encodings (their buffers are reused), drop the
        // rest. Only idle ones move, so indices held by viewers stay.
        while self.parts.iter().filter(|p| p.users == 0).count() > SPARE
            && self.parts.last().is_some_and(|p| p.users == 0)
        {
            self.parts.pop();
        }
        // Reuse the idle encoding used longest ago once there are enough
        // (viewers that come later for the same state find the others).
        let idle = self.parts.iter().enumerate().filter(|(_, p)| p.users == 0);
        let i = match idle.clone().count() >= SPARE {
            true => idle.min_by_key(|(_, p)| p.stamp).map_or(0, |(i, _)| i),
            false => {
                self.parts.push(Encoded::new());
                self.parts.len() - 1
            }
        };
        let mut p = std::mem::replace(&mut self.parts[i], Encoded::new());
        self.encode(fb, req, &mut p);
        p.users = 1;
        p.stamp = self.served;
        self.parts[i] = p;
        i
    }

    fn encode(&mut self, fb: &Framebuffer, req: &Request, p: &mut Encoded) {
        p.gen = req.gen;
        p.what = req.what;
        p.copies.clear();
        p.copies.extend_from_slice(req.copies);
        p.damage.copy_from(req.damage);
        p.refine.copy_from(req.refine);
        p.left.copy_from(req.damage);
        p.bytes.clear();
        p.notes.clear();
        p.stats = Stats::default();
        p.complete = true;
        // Pixels an update half applied has touched: the canvas may get a
        // state that update's copies do not start from.
        p.mid_update = fb.has_changes() && (req.damage.overlaps(fb.dirty()) || req.refine.overlaps(fb.dirty()));
        for op in req.copies {
            let (d, sx, sy) = (op.dst, op.src_x, op.src_y);
            proto::copy(&mut p.bytes, d.x, d.y, d.w, d.h, sx, sy);
        }
        p.copies_end = p.bytes.len();
        let room = req.what.room();
        let full = |p: &Encoded| !p.notes.is_empty() && cost_so_far(p, req.ratio) >= room;
        match req.what {
            What::Picture { jpeg } => {
                let mut runs = std::mem::take(&mut self.runs);
                runs.clear();
                req.damage.for_each_run(|r| runs.push((0, r)));
                let rects: Vec<Rect> = runs.iter().map(|&(_, r)| r).collect();
                p.stats = self.encoder.picture(fb, &rects, jpeg, &mut p.bytes, &mut p.notes);
                p.left.clear();
                self.runs = runs;
                hold_with_content(p);
            }
            What::Aside { jpeg, .. } => {
                // Damage, most urgent first.
                self.runs.clear();
                let runs = &mut self.runs;
                req.damage.for_each_run(|r| runs.push((urgency(r, req.pointer), r)));
                self.runs.sort_unstable_by_key(|&(u, r)| (u, r.y, r.x));
                for k in 0..self.runs.len() {
                    if full(p) {
                        p.complete = false;
                        break;
                    }
                    let r = self.runs[k].1;
                    let s = self.encoder.run(fb, r, jpeg, &mut p.bytes, &mut p.notes);
                    p.stats.photo |= s.photo;
                    p.stats.jpeg_pixels += s.jpeg_pixels;
                    p.stats.jpeg_bytes += s.jpeg_bytes;
                    p.left.clear_tiles_of(r);
                }
            }
            What::Refine { webp, .. } => {
                let bpp = if webp { WEBP_BPP } else { PNG_BPP };
                p.left.clear();
                let mut runs = std::mem::take(&mut self.runs);
                runs.clear();
                req.refine.for_each_run(|r| runs.push((0, r)));
                // Few-colour pieces (cheap) first, then photo-like ones as
                // images, neighbours merged while the room lasts.
                'passes: for photos in [false, true] {
                    for &(_, r) in &runs {
                        let mut span: Option<Rect> = None;
                        let mut x = r.x as u32;
                        while x < r.right() {
                            let w = ((x / TILE as u32 + 1) * TILE as u32).min(r.right()) - x;
                            let piece = Rect::new(x as u16, r.y, w as u16, r.h);
                            x += w;
                            if (classify::sample(fb, piece) == classify::Sampled::Many) != photos {
                                self.flush_image(fb, &mut span, webp, p);
                                continue;
                            }
                            let used = cost_so_far(p, req.ratio);
                            if !p.notes.is_empty() && used >= room {
                                self.flush_image(fb, &mut span, webp, p);
                                p.complete = false;
                                break 'passes;
                            }
                            if !photos {
                                self.encoder.refine(fb, piece, webp, &mut p.bytes, &mut p.notes);
                                continue;
                            }
                            let pending = span.map_or(0.0, |s| s.area() as f64 * bpp) as u64;
                            match &mut span {
                                Some(s) if used + pending + (piece.area() as f64 * bpp) as u64 <= room => {
                                    s.w += piece.w
                                }
                                Some(_) => {
                                    self.flush_image(fb, &mut span, webp, p);
                                    if cost_so_far(p, req.ratio) >= room {
                                        p.complete = false;
                                        break 'passes;
                                    }
                                    span = Some(piece);
                                }
                                None => span = Some(piece),
                            }
                        }
                        self.flush_image(fb, &mut span, webp, p);
                    }
                }
                self.runs = runs;
            }
        }
        if !matches!(req.what, What::Picture { .. }) {
            p.prefix_end = p.notes.len();
            p.content_box = None;
        }
        p.raw = p.notes.iter().filter(|n| n.form.raw()).map(|n| (n.end - n.start) as u64).sum();
        p.other = p.bytes.len() as u64 - p.raw;
        for n in &p.notes {
            self.forms[n.form as usize] += 1;
        }
    }

    fn flush_image(&mut self, fb: &Framebuffer, span: &mut Option<Rect>, webp: bool, p: &mut Encoded) {
        if let Some(s) = span.take() {
            self.encoder.refine(fb, s, webp, &mut p.bytes, &mut p.notes);
        }
    }
}

/// Order a picture's messages as: `Fill`s outside the bounding box of its
/// other messages (drawn at once: e.g. a small change far from a photo or a
/// text area), then the exact messages inside it, then the images (held
/// together: flat pieces inside a photo belong to it). Sets `prefix_end`
/// and the box.
fn hold_with_content(p: &mut Encoded) {
    let mut bbox: Option<(u32, u32, u32, u32)> = None;
    for n in p.notes.iter().filter(|n| n.form != Form::Fill) {
        let r = n.rect;
        let b = (r.x as u32, r.y as u32, r.right(), r.bottom());
        bbox = Some(bbox.map_or(b, |(x0, y0, x1, y1)| (x0.min(b.0), y0.min(b.1), x1.max(b.2), y1.max(b.3))));
    }
    p.content_box = bbox.map(|(x0, y0, x1, y1)| Rect::new(x0 as u16, y0 as u16, (x1 - x0) as u16, (y1 - y0) as u16));
    let inside = |r: Rect| {
        bbox.is_some_and(|(x0, y0, x1, y1)| (r.x as u32) < x1 && r.right() > x0 && (r.y as u32) < y1 && r.bottom() > y0)
    };
    let rank = |n: &Note| match (n.form, inside(n.rect)) {
        (Form::Fill, false) => 0,
        (f, _) if f.raw() => 2,
        _ => 1,
    };
    p.notes.sort_by_key(rank); // stable
    p.prefix_end = p.notes.iter().position(|n| rank(n) > 0).unwrap_or(p.notes.len());
    p.spare.clear();
    p.spare.extend_from_slice(&p.bytes[..p.copies_end]);
    for n in &mut p.notes {
        let start = p.spare.len();
        p.spare.extend_from_slice(&p.bytes[n.start..n.end]);
        (n.start, n.end) = (start, p.spare.len());
    }
    std::mem::swap(&mut p.bytes, &mut p.spare);
}

/// Estimated wire bytes of `p` so far.
fn cost_so_far(p: &Encoded, ratio: f64) -> u64 {
    let raw: usize = p.notes.iter().filter(|n| n.form.raw()).map(|n| n.end - n.start).sum();
    raw as u64 + ((p.bytes.len() - raw) as f64 * ratio) as u64
}

/// Lower is sent first: near the pointer, then small before large.
fn urgency(r: Rect, pointer: Option<(u16, u16)>) -> u32 {
    let near = pointer.is_some_and(|(px, py)| {
        let dx = (r.x as u32).saturating_sub(px as u32).max((px as u32).saturating_sub(r.right()));
        let dy = (r.y as u32).saturating_sub(py as u32).max((py as u32).saturating_sub(r.bottom()));
        dx.max(dy) <= NEAR_POINTER
    });
    if near {
        0
    } else {
        1 + (r.area() as u32).min(u32::MAX - 1)
    }
}

/// Predicted wire bytes of sending `damage` as an aside with JPEG at `bpp`
/// bytes per photo pixel (from samples only).
pub fn estimate(fb: &Framebuffer, damage: &TileSet, bpp: f64) -> u64 {
    let mut n = 0;
    damage.for_each_run(|r| n += encode::estimate(fb, r, bpp));
    n
}

/// A group of touching damaged tiles (diagonals included) this many
/// pixels large at most (by the boxes of its tiles) is a *small change*.
pub const SMALL_AREA: usize = 2 * TILE as usize * TILE as usize;

/// Splits damage into what goes with a big change and what may go apart
/// from it, ahead of it: a clock, a status bar, a desktop background
/// repainted around a slideshow, that came in the same update. Scratch
/// reused across calls.
#[derive(Default)]
pub struct Islands {
    /// Per tile: the group it belongs to, plus one (0: clean, flat, or not
    /// yet visited).
    group: Vec<u32>,
    stack: Vec<usize>,
    /// Per group: area (pixels) and bounding box `(x0, y0, x1, y1)`.
    groups: Vec<(usize, (u32, u32, u32, u32))>,
    /// Per tile: its samples are all one colour (a `Fill`, cheap).
    flat: Vec<bool>,
}

impl Islands {
    /// Into `into`: the damage of `damage` apart from its big changes.
    /// Damaged tiles whose samples are not all one colour form groups of
    /// touching tiles; a group larger than [`SMALL_AREA`] is big. Apart
    /// are the flat tiles and the small groups outside the bounding box of
    /// the big groups (inside it they are of the same content: a photo's
    /// flat or unchanged parts belong to its picture). Empty when nothing
    /// is big (everything goes as one small picture anyway).
    pub fn apart(&mut self, fb: &Framebuffer, damage: &TileSet, into: &mut TileSet) {
        into.copy_from(damage);
        into.clear();
        let (cols, rows) = (damage.cols(), damage.rows());
        self.group.clear();
        self.group.resize(cols * rows, 0);
        self.flat.clear();
        self.flat.resize(cols * rows, false);
        self.groups.clear();
        damage.for_each_tile(|i, r| {
            self.flat[i] = fb.contains(r) && matches!(classify::sample(fb, r), classify::Sampled::Uniform(_));
        });
        damage.for_each_tile(|start, _| {
            if self.group[start] != 0 || self.flat[start] {
                return;
            }
            self.groups.push((0, (u32::MAX, u32::MAX, 0, 0)));
            let g = self.groups.len() as u32;
            self.group[start] = g;
            self.stack.push(start);
            while let Some(i) = self.stack.pop() {
                let Some(r) = damage.box_of(i) else { continue };
                let (area, b) = &mut self.groups[g as usize - 1];
                *area += r.area();
                *b = (b.0.min(r.x as u32), b.1.min(r.y as u32), b.2.max(r.right()), b.3.max(r.bottom()));
                let (col, row) = (i % cols, i / cols);
                for nrow in row.saturating_sub(1)..(row + 2).min(rows) {
                    for ncol in col.saturating_sub(1)..(col + 2).min(cols) {
                        let n = nrow * cols + ncol;
                        if self.group[n] == 0 && !self.flat[n] && damage.contains_tile(ncol, nrow) {
                            self.group[n] = g;
                            self.stack.push(n);
                        }
                    }
                }
            }
        });
        let big = self.groups.iter().filter(|g| g.0 > SMALL_AREA).map(|g| g.1);
        let Some(bbox) = big.reduce(|a, b| (a.0.min(b.0), a.1.min(b.1), a.2.max(b.2), a.3.max(b.3))) else { return };
        let outside = |b: (u32, u32, u32, u32)| b.2 <= bbox.0 || b.0 >= bbox.2 || b.3 <= bbox.1 || b.1 >= bbox.3;
        damage.for_each_tile(|i, r| {
            let small = match self.group[i] {
                0 => outside((r.x as u32, r.y as u32, r.right(), r.bottom())),
                g => {
                    let (area, b) = self.groups[g as usize - 1];
                    area <= SMALL_AREA && outside(b)
                }
            };
            if small {
                into.mark_in_tile(i, r);
            }
        });
    }
}

/// Tiles of one viewer's canvas that hold JPEG approximations, with when
/// each was last drawn lossy (ms on the session clock).
pub struct Lossy {
    pub set: TileSet,
    at: Vec<u32>,
}

/// A lossy tile is refined once it has not changed for this long...
pub const REFINE_AFTER_MS: u32 = 200;
/// ... or once the whole screen has not changed for this long (motion
/// stopped: the sooner the canvas is exact, the better).
pub const QUIET_MS: u32 = 100;
/// Both grow with the interval at which the screen changes (`interval_ms`,
/// smoothed): a slideshow that changes every 100 ms is not "quiet" 100 ms
/// after a change, and refining a picture the next update replaces costs
/// the link a picture's worth of PNG ahead of that update (measured on the
/// slow-link bench: ~40 KB refinements before every 20 Mbit/s picture).
/// Bounded so the canvas is still exact soon after motion stops.
pub fn refine_after_ms(interval_ms: f64) -> u32 {
    (3.0 * interval_ms).clamp(REFINE_AFTER_MS as f64, 2.0 * MAX_WAIT_MS as f64) as u32
}
pub fn quiet_ms(interval_ms: f64) -> u32 {
    (2.0 * interval_ms).clamp(QUIET_MS as f64, MAX_WAIT_MS as f64) as u32
}
const MAX_WAIT_MS: u32 = 250;

impl Lossy {
    pub fn new(w: u16, h: u16) -> Lossy {
        let set = TileSet::new(w, h);
        let at = vec![0; set.tiles()];
        Lossy { set, at }
    }

    /// Forget everything (a full frame follows).
    pub fn reset(&mut self, w: u16, h: u16) {
        *self = Lossy::new(w, h);
    }

    /// A part was applied to the canvas at `now_ms`.
    pub fn apply(&mut self, notes: &[Note], now_ms: u32) {
        let cols = self.set.cols();
        for n in notes {
            for_tiles(cols, n.rect, |i, piece| {
                if n.form == Form::Jpeg {
                    self.set.mark_in_tile(i, piece);
                    self.at[i] = now_ms;
                } else if self.set.box_of(i).is_some_and(|b| contains(piece, b)) {
                    self.set.clear_tile(i);
                }
            });
        }
    }

    /// A copy to `dst` from a source that may be lossy on this canvas:
    /// the destination is lossy then too.
    pub fn copied(&mut self, op: &CopyOp, now_ms: u32) {
        if self.set.intersects(op.src()) {
            for_tiles(self.set.cols(), op.dst, |i, piece| {
                self.set.mark_in_tile(i, piece);
                self.at[i] = now_ms;
            });
        }
    }

    /// Tiles due for refinement at `now_ms` that are not in `damage`
    /// (damage is re-sent anyway), into `into`. `quiet`: the screen has
    /// stopped changing (see `QUIET_MS`): every lossy tile is due.
    pub fn due(&self, now_ms: u32, after_ms: u32, quiet: bool, damage: &TileSet, into: &mut TileSet) {
        into.copy_from(&self.set);
        into.clear();
        self.set.for_each_tile(|i, b| {
            if (quiet || now_ms.wrapping_sub(self.at[i]) >= after_ms) && damage.box_of(i).is_none() {
                into.mark_in_tile(i, b);
            }
        });
    }

    /// When the next refinement falls due (ms), if any tile is lossy.
    pub fn next_due(&self, after_ms: u32) -> Option<u32> {
        let mut first: Option<u32> = None;
        self.set.for_each_tile(|i, _| {
            let t = self.at[i].wrapping_add(after_ms);
            first = Some(first.map_or(t, |f| f.min(t)));
        });
        first
    }
}

/// Calls `f(tile index, part of r in that tile)` for every 64×64 tile `r`
/// touches, in a grid `cols` tiles wide.
fn for_tiles(cols: usize, r: Rect, mut f: impl FnMut(usize, Rect)) {
    if r.is_empty() {
        return;
    }
    let t = TILE as u32;
    for row in r.y as u32 / t..=(r.bottom() - 1) / t {
        for col in r.x as u32 / t..=(r.right() - 1) / t {
            let x0 = (col * t).max(r.x as u32);
            let y0 = (row * t).max(r.y as u32);
            let x1 = ((col + 1) * t).min(r.right());
            let y1 = ((row + 1) * t).min(r.bottom());
            let piece = Rect::new(x0 as u16, y0 as u16, (x1 - x0) as u16, (y1 - y0) as u16);
            f(row as usize * cols + col as usize, piece);
        }
    }
}

fn contains(outer: Rect, inner: Rect) -> bool {
    inner.x >= outer.x && inner.y >= outer.y && inner.right() <= outer.right() && inner.bottom() <= outer.bottom()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small groups away from a big one are apart; a small group inside
    /// the big one's bounding box (a hole in a photo's damage) and a group
    /// touching it are not; without a big group nothing is.
    #[test]
    fn islands_apart_from_a_big_change() {
        let mut fb = Framebuffer::new(1024, 768);
        let mut damage = TileSet::new(1024, 768);
        damage.mark(Rect::new(0, 0, 640, 200));
        damage.mark(Rect::new(0, 300, 640, 180));
        damage.mark(Rect::new(300, 230, 10, 10)); // inside the big box
        damage.mark(Rect::new(650, 100, 10, 10)); // touches the photo's tiles
        damage.mark(Rect::new(900, 700, 60, 16)); // apart
        let (mut islands, mut into) = (Islands::default(), TileSet::new(0, 0));
        for y in 0..768 {
            for x in (0..1024).step_by(2) {
                fb.fill(Rect::new(x, y, 1, 1), [x as u8, y as u8, (x ^ y) as u8, 255]).unwrap();
            }
        }
        islands.apart(&fb, &damage, &mut into);
        let mut area = 0;
        into.for_each_run(|r| {
            assert!(r.x >= 900 && r.y >= 700 && r.right() <= 960 && r.bottom() <= 716, "{r:?}");
            area += r.area();
        });
        assert_eq!(area, 60 * 16);
        let mut small = TileSet::new(1024, 768);
        small.mark(Rect::new(10, 10, 20, 20));
        small.mark(Rect::new(900, 700, 60, 16));
        islands.apart(&fb, &small, &mut into);
        assert!(into.is_empty());
        // A flat background repainted around the big change: apart where
        // it is outside the big change's box, the rest goes with it.
        fb.fill(Rect::new(640, 0, 384, 768), [1, 2, 3, 255]).unwrap();
        fb.fill(Rect::new(0, 512, 1024, 256), [1, 2, 3, 255]).unwrap();
        let mut both = TileSet::new(1024, 768);
        both.mark(Rect::new(0, 0, 1024, 768));
        islands.apart(&fb, &both, &mut into);
        let mut area = 0;
        into.for_each_run(|r| {
            assert!(r.x >= 640 || r.y >= 512, "{r:?}");
            area += r.area();
        });
        assert_eq!(area, 1024 * 768 - 640 * 512);
    }

    /// Viewers share a photo's encoding only when they asked for the same
    /// JPEG: quality and Huffman tables (a LAN viewer gets the standard
    /// ones, a viewer on a slow link optimised ones, `pacing::optimise_tables`).
    #[test]
    fn a_photo_is_shared_only_at_the_same_quality_and_tables() {
        let mut fb = Framebuffer::new(256, 192);
        crate::gateway::encode::jpeg::tests::photo(&mut fb);
        let mut damage = TileSet::new(256, 192);
        damage.mark(fb.full_rect());
        let refine = TileSet::new(0, 0);
        let jpeg = |optimise_tables| Some(Jpeg { quality: 80, bpp: 0.14, optimise_tables });
        let req = |jpeg| Request {
            gen: 1,
            what: What::Picture { jpeg },
            ratio: 1.0,
            damage: &damage,
            copies: &[],
            refine: &refine,
            pointer: None,
        };
        let mut parts = Parts::default();
        let optimised = parts.get(&fb, &req(jpeg(true)));
        assert!(parts.part(optimised).stats.jpeg_pixels > 0, "the photo went as JPEG");
        let standard = parts.get(&fb, &req(jpeg(false)));
        assert_eq!(parts.encoded, 2, "different tables: encoded again");
        let (a, b) = (parts.part(optimised).stats.jpeg_bytes, parts.part(standard).stats.jpeg_bytes);
        assert!(a < b, "optimised {a} B, standard {b} B");
        assert_eq!(parts.get(&fb, &req(jpeg(true))), optimised);
        assert_eq!(parts.get(&fb, &req(jpeg(false))), standard);
        assert_eq!(parts.encoded, 2, "the same request again: shared");
    }
}
