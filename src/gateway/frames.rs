//! Frame parts: what a viewer is sent next, encoded once and shared.
//!
//! A *part* is one frame of protocol v2 (applied atomically by the browser,
//! ended by `EndFrame`): the viewer's pending `Copy`s, then as much of its
//! damage as fits the room its pacer gives ([`super::pacing`]), small and
//! pointer-near damage first, then lossless refinement of areas it last got
//! as JPEG. A frame larger than the room is sent as several parts; damage
//! left over stays in the viewer's set, so fresher damage joins it and
//! the next part takes whatever is most urgent then.
//!
//! Encoded parts live in the session's [`Parts`] cache, keyed by everything
//! that decides their bytes: the framebuffer generation, the damage, the
//! copies, the refinement set, the JPEG quality (only when a piece was
//! photo-like) and the room. Viewers of one session that are in the same
//! state (the usual case: they all took the previous update) find the part
//! another viewer encoded and stream the same bytes; only the WebSocket
//! framing (and permessage-deflate) is per viewer.

use super::encode::{Encoder, Form, Note};
use super::proto;
use crate::fb::{CopyOp, Framebuffer, Rect, TileSet, TILE};

/// Raw protocol bytes per WebSocket message, at most (a single message
/// larger than this, e.g. one wide `Pixels` run, is sent alone).
pub const CHUNK: usize = 256 << 10;
/// Messages this small join a neighbouring chunk whatever their kind.
const SMALL: usize = 256;
/// Damage within this many pixels of the pointer goes first.
const NEAR_POINTER: u32 = 96;
/// Parts kept for reuse beyond those being streamed.
const SPARE_PARTS: usize = 4;

/// One WebSocket message's worth of a part: bytes `[.., end)` since the
/// previous segment; `raw`: mostly JPEG, send without permessage-deflate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seg {
    pub end: usize,
    pub raw: bool,
}

/// What a viewer asks for.
pub struct Request<'a> {
    pub gen: u64,
    /// JPEG quality, `None` for lossless only.
    pub quality: Option<u8>,
    /// Room in estimated wire bytes.
    pub room: u64,
    /// Estimated wire bytes per protocol byte of deflated messages.
    pub ratio: f64,
    pub damage: &'a TileSet,
    pub copies: &'a [CopyOp],
    pub refine: &'a TileSet,
    pub pointer: Option<(u16, u16)>,
}

/// An encoded part.
pub struct Part {
    // What it was made from.
    gen: u64,
    quality: Option<u8>,
    room: u64,
    copies: Vec<CopyOp>,
    damage: TileSet,
    refine: TileSet,
    // What it is.
    /// Some piece was photo-like: the bytes depend on `quality`.
    pub photo: bool,
    /// Everything asked for fit (nothing left over).
    pub complete: bool,
    pub bytes: Vec<u8>,
    pub segs: Vec<Seg>,
    /// One note per drawing message (copies excluded), in order.
    pub notes: Vec<Note>,
    /// The damage not included, for the viewer's next part.
    pub left: TileSet,
    /// Estimated wire bytes.
    pub cost: u64,
    /// Encoded while a framebuffer update was half applied.
    pub mid_update: bool,
    /// Viewers streaming it.
    users: u32,
}

impl Part {
    fn new() -> Part {
        Part {
            gen: u64::MAX,
            quality: None,
            room: 0,
            copies: Vec::new(),
            damage: TileSet::new(0, 0),
            refine: TileSet::new(0, 0),
            photo: false,
            complete: false,
            bytes: Vec::new(),
            segs: Vec::new(),
            notes: Vec::new(),
            left: TileSet::new(0, 0),
            cost: 0,
            mid_update: false,
            users: 0,
        }
    }

    /// Whether this part is what `req` would encode (or close enough: a
    /// part cut short for a room within 1.5× of the viewer's).
    fn serves(&self, req: &Request) -> bool {
        let quality_ok =
            self.quality == req.quality || (!self.photo && self.quality.is_some() == req.quality.is_some());
        let room_ok = self.cost <= req.room.max(1) && (self.complete || req.room <= self.room + self.room / 2);
        self.gen == req.gen
            && quality_ok
            && room_ok
            && self.copies == req.copies
            && self.damage.same_damage(req.damage)
            && self.refine.same_damage(req.refine)
    }
}

/// The session's encoded parts and the encoder's scratch space.
#[derive(Default)]
pub struct Parts {
    parts: Vec<Part>,
    encoder: Encoder,
    runs: Vec<(u32, Rect)>,
    /// Parts encoded / parts served to a viewer (for the benches).
    pub encoded: u64,
    pub served: u64,
    /// Messages encoded per form, indexed by `Form as usize` (/metrics).
    pub forms: [u64; 4],
}

impl Parts {
    pub fn part(&self, i: usize) -> &Part {
        &self.parts[i]
    }

    /// A viewer stopped streaming part `i`.
    pub fn release(&mut self, i: usize) {
        if let Some(p) = self.parts.get_mut(i) {
            p.users = p.users.saturating_sub(1);
        }
    }

    /// The part for `req`: an existing one that serves it, or a new one
    /// encoded from `fb`. The caller streams it and then calls `release`.
    pub fn get(&mut self, fb: &Framebuffer, req: &Request) -> usize {
        self.served += 1;
        if let Some(i) = self.parts.iter().position(|p| p.serves(req)) {
            self.parts[i].users += 1;
            return i;
        }
        self.encoded += 1;
        // Keep a few idle parts (their buffers are reused), drop the rest.
        // Only idle parts move, so indices held by streaming viewers stay.
        while self.parts.iter().filter(|p| p.users == 0).count() > SPARE_PARTS
            && self.parts.last().is_some_and(|p| p.users == 0)
        {
            self.parts.pop();
        }
        let i = match self.parts.iter().position(|p| p.users == 0) {
            Some(i) => i,
            None => {
                self.parts.push(Part::new());
                self.parts.len() - 1
            }
        };
        let mut p = std::mem::replace(&mut self.parts[i], Part::new());
        self.encode(fb, req, &mut p);
        p.users = 1;
        self.parts[i] = p;
        i
    }

    fn encode(&mut self, fb: &Framebuffer, req: &Request, p: &mut Part) {
        p.gen = req.gen;
        p.quality = req.quality;
        p.room = req.room;
        p.copies.clear();
        p.copies.extend_from_slice(req.copies);
        p.damage.copy_from(req.damage);
        p.refine.copy_from(req.refine);
        p.left.copy_from(req.damage);
        p.bytes.clear();
        p.segs.clear();
        p.notes.clear();
        p.photo = false;
        p.complete = true;
        p.mid_update = fb.has_changes();
        for op in req.copies {
            let (d, sx, sy) = (op.dst, op.src_x, op.src_y);
            proto::copy(&mut p.bytes, d.x, d.y, d.w, d.h, sx, sy);
        }
        let copies_end = p.bytes.len();
        // Damage, most urgent first.
        self.runs.clear();
        let runs = &mut self.runs;
        req.damage.for_each_run(|r| runs.push((urgency(r, req.pointer), r)));
        self.runs.sort_unstable_by_key(|&(u, r)| (u, r.y, r.x));
        let cost = |p: &Part| estimate(p, req.ratio);
        for k in 0..self.runs.len() {
            let r = self.runs[k].1;
            if !p.notes.is_empty() && cost(p) >= req.room {
                p.complete = false;
                break;
            }
            p.photo |= self.encoder.run(fb, r, req.quality, &mut p.bytes, &mut p.notes);
            p.left.clear_tiles_of(r);
        }
        // Then refinement, lossless, while there is room.
        if p.complete {
            let mut refine_runs = std::mem::take(&mut self.runs);
            refine_runs.clear();
            req.refine.for_each_run(|r| refine_runs.push((0, r)));
            for &(_, r) in &refine_runs {
                if !p.notes.is_empty() && cost(p) >= req.room {
                    p.complete = false;
                    break;
                }
                let mut x = r.x as u32;
                while x < r.right() {
                    let w = ((x / TILE as u32 + 1) * TILE as u32).min(r.right()) - x;
                    self.encoder.lossless(fb, Rect::new(x as u16, r.y, w as u16, r.h), &mut p.bytes, &mut p.notes);
                    x += w;
                }
            }
            self.runs = refine_runs;
        }
        p.cost = estimate(p, req.ratio);
        for n in &p.notes {
            self.forms[n.form as usize] += 1;
        }
        segment(p, copies_end);
    }
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

/// Estimated wire bytes of `p` so far: JPEG bytes as they are, the rest
/// deflated at `ratio`.
fn estimate(p: &Part, ratio: f64) -> u64 {
    let jpeg: usize = p.notes.iter().filter(|n| n.form == Form::Jpeg).map(|n| n.end - n.start).sum();
    let other = p.bytes.len() - jpeg;
    jpeg as u64 + (other as f64 * ratio) as u64
}

/// Cut the part's bytes into WebSocket messages: runs of JPEG messages are
/// `raw` (sent without permessage-deflate), everything else deflated; small
/// messages go with their neighbours; a message is never split.
fn segment(p: &mut Part, copies_end: usize) {
    let mut start = 0;
    let mut cur: Option<bool> = if copies_end > 0 { Some(false) } else { None };
    let mut end = copies_end;
    for n in &p.notes {
        let raw = n.form == Form::Jpeg;
        let len = n.end - n.start;
        match cur {
            None => cur = Some(raw),
            Some(k) if (k == raw || len < SMALL) && end - start + len <= CHUNK => {}
            Some(k) if k != raw && end - start < SMALL && end - start + len <= CHUNK => cur = Some(raw),
            Some(k) => {
                p.segs.push(Seg { end, raw: k });
                start = end;
                cur = Some(raw);
            }
        }
        end = n.end;
    }
    p.segs.push(Seg { end: p.bytes.len(), raw: cur.unwrap_or(false) });
}

/// Tiles of one viewer's canvas that hold JPEG approximations, with when
/// each was last drawn lossy (ms on the session clock).
pub struct Lossy {
    pub set: TileSet,
    at: Vec<u32>,
}

/// A lossy tile is refined once it has not changed for this long.
pub const REFINE_AFTER_MS: u32 = 200;

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
    /// (damage is re-sent anyway), into `into`.
    pub fn due(&self, now_ms: u32, damage: &TileSet, into: &mut TileSet) {
        into.copy_from(&self.set);
        into.clear();
        self.set.for_each_tile(|i, b| {
            if now_ms.wrapping_sub(self.at[i]) >= REFINE_AFTER_MS && damage.box_of(i).is_none() {
                into.mark_in_tile(i, b);
            }
        });
    }

    /// When the next refinement falls due (ms), if any tile is lossy.
    pub fn next_due(&self) -> Option<u32> {
        let mut first: Option<u32> = None;
        self.set.for_each_tile(|i, _| {
            let t = self.at[i].wrapping_add(REFINE_AFTER_MS);
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
