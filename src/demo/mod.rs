//! The built-in demo VNC server: a sans-IO RFB *server* (rfbproto §7)
//! serving an animated test desktop, so `wsvnc --demo` shows a live
//! desktop with nothing else installed. One `DemoServer` per client
//! connection; the host (the daemon's mio loop or `--demo-server`) owns
//! the socket and the clock.
//!
//! ```text
//!  new() ─ start(): "RFB 003.008\n"
//!    │
//!  Version ──3.3──────────────────────────────┐ server picks: U32 1 (None) / 2 (VncAuth)
//!    │ 3.7/3.8: [1, type]                       │
//!  SecurityType ──None (3.8: result 0)──┐       │
//!    │ VncAuth: 16-byte challenge        │       │
//!  VncAuth ──ok: result 0───────────────┤       │
//!    │ bad: result 1 (+reason on 3.8)    │       │
//!  Failed                             ClientInit ◀┘
//!                                        │ ServerInit
//!                                      Normal: client messages in,
//!                                      FramebufferUpdate out of poll()
//! ```
//!
//! Driving it (the contract with the host loop):
//! * `start` once, then `handle_input` with whatever bytes arrived; it
//!   consumes only whole messages and returns how many bytes it used —
//!   keep the rest and present it again with more. The host's input
//!   buffer must hold at least [`MAX_CLIENT_MESSAGE`] bytes.
//! * Call `poll` after every `handle_input` and whenever the deadline it
//!   returned has passed. It writes at most one FramebufferUpdate per
//!   outstanding FramebufferUpdateRequest.
//! * On `Err`, `out` may end with a final failure message (SecurityResult
//!   with reason): flush it best-effort, then close.
//!
//! What each part of the desktop exercises (encodings are chosen per
//! rectangle among those the client listed in SetEncodings; Raw is the
//! fallback and is always allowed, §7.5.2):
//! * four flat-coloured quadrants + bouncing box: RRE (Hextile, ZRLE next);
//! * scrolling band: CopyRect of the band, then Hextile for the new rows;
//! * title bar (name, ticking counter) and terminal (gradient + typed text
//!   + blinking cursor): ZRLE (Hextile, RRE next);
//! * pointer crosshair and click marks: whatever zone they are in;
//! * Tight (fill / palette / gradient) only for a client that lists none
//!   of RRE, Hextile and ZRLE.
//!
//! A DesktopSize pseudo-rectangle is sent after [`DemoServer::resize`] if
//! the client listed -223.

mod encode;
mod pixfmt;
mod scene;
#[cfg(test)]
pub(crate) mod tests;

use std::hash::{BuildHasher, Hasher};

use des::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};

use encode::{Encoder, COPY_RECT, DESKTOP_SIZE, HEXTILE, RRE, TIGHT, ZRLE};
pub use pixfmt::PixelFormat;
use pixfmt::WireFormat;
use scene::{Kind, Layout, Overlay, UNKNOWN};
pub use scene::{Rect, CLICK_COLOUR, POINTER_COLOUR, POINTER_PRESSED_COLOUR};

/// Largest client message the server accepts whole (a ClientCutText of
/// [`MAX_CUT_TEXT`] bytes); the host's input buffer must hold this much.
pub const MAX_CLIENT_MESSAGE: usize = 8 + MAX_CUT_TEXT;
/// Longest ClientCutText accepted; longer is a protocol error.
pub const MAX_CUT_TEXT: usize = 64 * 1024;
/// Most encodings accepted in one SetEncodings (the u16 allows 65535).
pub const MAX_ENCODINGS: usize = 1024;
/// Soft cap on one FramebufferUpdate: no further rectangle is started
/// once this many bytes are written; the rest follows in the next update.
pub const MAX_UPDATE_BYTES: usize = 1 << 20;
/// Framebuffer dimensions are clamped to 1..=MAX_DIMENSION.
pub const MAX_DIMENSION: u16 = 4096;
/// How much typed text is kept (oldest characters are dropped).
const MAX_TEXT: usize = 2048;
/// How many click marks are kept.
const MAX_CLICKS: usize = 16;
/// Damage is found in tiles of this size, then merged into rectangles.
const DAMAGE_TILE: usize = 16;
/// Rectangles per update (the count field is a U16).
const MAX_RECTS: usize = 60_000;

/// Configuration of the demo desktop.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub width: u16,
    pub height: u16,
    pub name: String,
    /// VNC Authentication (rfbproto §7.2.2) with this password if `Some`
    /// (only the first 8 bytes count); security type None otherwise.
    pub password: Option<Vec<u8>>,
    /// Animation rate, frames per second (clamped to 1..=240).
    pub fps: u32,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig { width: 1024, height: 768, name: "wsvnc demo".into(), password: None, fps: 30 }
    }
}

/// Handshake and session state (rfbproto §7.1–§7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the client's 12-byte ProtocolVersion.
    Version,
    /// 3.7/3.8: waiting for the client's choice of security type.
    SecurityType {
        minor: u8,
    },
    /// Challenge sent; waiting for the 16-byte response.
    VncAuth {
        minor: u8,
        challenge: [u8; 16],
    },
    /// Waiting for ClientInit (1 byte).
    ClientInit,
    Normal,
    /// A failure was reported; nothing more is accepted.
    Failed,
}

#[derive(Debug, Clone, Copy)]
struct Request {
    region: Rect,
    incremental: bool,
}

/// Encodings the client listed (SetEncodings, §7.5.2) that we can produce.
#[derive(Debug, Clone, Copy, Default)]
struct Accepts {
    copy_rect: bool,
    rre: bool,
    hextile: bool,
    zrle: bool,
    tight: bool,
    desktop_size: bool,
}

/// One client connection of the demo server.
pub struct DemoServer {
    state: State,
    w: usize,
    h: usize,
    password: Option<Vec<u8>>,
    fps: u64,
    seed: u64,
    wf: WireFormat,
    encodings: Vec<i32>,
    accepts: Accepts,
    zrle_broken: bool,
    tight_broken: bool,
    request: Option<Request>,
    /// The client's view may differ from `next` in a way not yet looked for.
    need_diff: bool,
    layout: Layout,
    /// The current frame, 0x00RRGGBB.
    next: Vec<u32>,
    /// What the client has (as far as we told it); `UNKNOWN` where lost.
    sent: Vec<u32>,
    /// Frame time `next` was rendered for.
    rendered: Option<u64>,
    overlay: Overlay,
    overlay_dirty: bool,
    pointer: (u16, u16, u8),
    /// Band scroll offset the client's copy of the band shows, if whole.
    band_scroll_sent: Option<u64>,
    encoder: Encoder,
    cut_text: Vec<u8>,
    pending_resize: Option<(usize, usize)>,
    damage: Vec<Rect>,
    runs: Vec<(usize, usize, Rect)>,
}

impl DemoServer {
    /// A new connection. Nothing is written until [`start`](Self::start).
    pub fn new(cfg: &DemoConfig, now_ms: u64) -> Self {
        let w = usize::from(cfg.width.clamp(1, MAX_DIMENSION));
        let h = usize::from(cfg.height.clamp(1, MAX_DIMENSION));
        let seed = {
            let mut hs = std::collections::hash_map::RandomState::new().build_hasher();
            hs.write_u64(now_ms);
            hs.write_usize(cfg as *const DemoConfig as usize);
            hs.finish()
        };
        DemoServer {
            state: State::Version,
            w,
            h,
            password: cfg.password.clone(),
            fps: u64::from(cfg.fps.clamp(1, 240)),
            seed,
            wf: WireFormat::new(PixelFormat::server_native()),
            encodings: Vec::new(),
            accepts: Accepts::default(),
            zrle_broken: false,
            tight_broken: false,
            request: None,
            need_diff: false,
            layout: Layout::new(w, h),
            next: vec![0; w * h],
            sent: vec![UNKNOWN; w * h],
            rendered: None,
            overlay: Overlay { name: cfg.name.clone(), ..Overlay::default() },
            overlay_dirty: true,
            pointer: (0, 0, 0),
            band_scroll_sent: None,
            encoder: Encoder::new(),
            cut_text: Vec::new(),
            pending_resize: None,
            damage: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// Write the server's first bytes: ProtocolVersion "RFB 003.008\n" (§7.1.1).
    pub fn start(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"RFB 003.008\n");
    }

    /// Consume client bytes. Returns how many were used: only whole
    /// messages are consumed, the rest must be presented again with more.
    /// Replies (handshake, ServerCutText echo) go to `out`; framebuffer
    /// updates come only from [`poll`](Self::poll). `Err` = the client
    /// broke the protocol or failed authentication (text for the log).
    pub fn handle_input(&mut self, input: &[u8], now_ms: u64, out: &mut Vec<u8>) -> Result<usize, String> {
        let mut used = 0;
        while used < input.len() {
            match self.step(&input[used..], now_ms, out)? {
                Some(n) => used += n,
                None => break,
            }
        }
        Ok(used)
    }

    /// Keys received so far: printable keysyms as characters, Return as
    /// '\n', BackSpace removing the last one.
    pub fn typed_text(&self) -> &str {
        &self.overlay.text
    }

    /// Last pointer position and button mask (rfbproto §7.5.5).
    pub fn pointer(&self) -> (u16, u16, u8) {
        self.pointer
    }

    /// The last ClientCutText received (Latin-1 bytes).
    pub fn cut_text(&self) -> &[u8] {
        &self.cut_text
    }

    /// The client's SetEncodings list, in its order (at most MAX_ENCODINGS).
    pub fn client_encodings(&self) -> &[i32] {
        &self.encodings
    }

    /// The client's current pixel format.
    pub fn pixel_format(&self) -> PixelFormat {
        self.wf.pf
    }

    /// True once ServerInit has been sent.
    pub fn is_running(&self) -> bool {
        self.state == State::Normal
    }

    /// Framebuffer size and the most recently rendered frame (0x00RRGGBB,
    /// row-major); what an exact decoder of all updates so far shows
    /// where the client asked for the whole screen.
    pub fn framebuffer(&self) -> (u16, u16, &[u32]) {
        (self.w as u16, self.h as u16, &self.next)
    }

    /// Change the desktop size. Sent as a DesktopSize pseudo-rectangle
    /// (rfbproto §7.8.2) in the next update, after which the whole screen
    /// is resent. Returns false (and changes nothing) if the client did
    /// not list DesktopSize, is not past ServerInit, or the size is the same.
    pub fn resize(&mut self, width: u16, height: u16) -> bool {
        let w = usize::from(width.clamp(1, MAX_DIMENSION));
        let h = usize::from(height.clamp(1, MAX_DIMENSION));
        if self.state != State::Normal || !self.accepts.desktop_size || (w, h) == (self.w, self.h) {
            return false;
        }
        self.pending_resize = Some((w, h));
        true
    }

    /// Frame time (ms) of the frame showing at `now_ms`.
    fn frame_time(&self, now_ms: u64) -> u64 {
        let frame = now_ms.saturating_mul(self.fps) / 1000;
        frame * 1000 / self.fps
    }

    /// Time of the next frame after the one showing at `now_ms`.
    fn next_deadline(&self, now_ms: u64) -> u64 {
        let frame = now_ms.saturating_mul(self.fps) / 1000;
        ((frame + 1) * 1000).div_ceil(self.fps)
    }

    /// If the client has an outstanding FramebufferUpdateRequest and
    /// something in its region changed (or it was non-incremental), write
    /// one FramebufferUpdate (§7.6.1) into `out`. Returns when to call
    /// again (the next animation frame) while a request is still waiting;
    /// `None` when nothing will happen until more client input.
    pub fn poll(&mut self, now_ms: u64, out: &mut Vec<u8>) -> Option<u64> {
        if self.state != State::Normal {
            return None;
        }
        let req = self.request?;
        if let Some((w, h)) = self.pending_resize.take() {
            // §7.8.2: the DesktopSize rectangle goes alone in its update,
            // and the server then considers the whole framebuffer changed.
            out.extend_from_slice(&[0, 0, 0, 1]);
            encode::rect_header(&Rect::new(0, 0, w, h), DESKTOP_SIZE, out);
            self.w = w;
            self.h = h;
            self.layout = Layout::new(w, h);
            self.next = vec![0; w * h];
            self.sent = vec![UNKNOWN; w * h];
            self.rendered = None;
            self.band_scroll_sent = None;
            self.request = None;
            let (px, py, m) = self.pointer;
            self.pointer = (px.min(w as u16 - 1), py.min(h as u16 - 1), m);
            self.overlay.pointer = self.overlay.pointer.map(|_| self.pointer);
            self.overlay.clicks.retain(|&(x, y)| usize::from(x) < w && usize::from(y) < h);
            return None;
        }
        let t = self.frame_time(now_ms);
        if self.rendered != Some(t) || self.overlay_dirty {
            self.layout.render(t, &self.overlay, &mut self.next);
            self.rendered = Some(t);
            self.overlay_dirty = false;
            self.need_diff = true;
        }
        if !self.need_diff {
            return Some(self.next_deadline(now_ms));
        }
        self.need_diff = false;
        let start = out.len();
        out.extend_from_slice(&[0, 0, 0, 0]); // message-type 0, padding, number-of-rectangles
        let mut count = 0usize;
        let mut capped = false;
        let band = self.layout.band;
        let scroll = Layout::band_scroll(t);
        // CopyRect for the band: never in answer to a non-incremental
        // request (§7.5.3), and only from pixels the client surely has.
        if req.incremental && self.accepts.copy_rect && !band.is_empty() && req.region.contains(&band) {
            if let Some(old) = self.band_scroll_sent {
                let d = scroll.saturating_sub(old) as usize;
                if d > 0 && d < band.h && !self.unknown_in(&Rect::new(band.x, band.y + d, band.w, band.h - d)) {
                    let dst = Rect::new(band.x, band.y, band.w, band.h - d);
                    encode::copy_rect(&dst, band.x, band.y + d, out);
                    self.copy_sent(&dst, band.x, band.y + d);
                    count += 1;
                }
            }
        }
        'zones: for (zone, kind) in self.layout.zones() {
            let z = zone.intersect(&req.region);
            if z.is_empty() {
                continue;
            }
            self.find_damage(&z);
            for i in 0..self.damage.len() {
                if out.len() - start >= MAX_UPDATE_BYTES || count >= MAX_RECTS {
                    capped = true;
                    break 'zones;
                }
                let r = self.damage[i];
                self.encode_rect(&r, kind, out);
                count += 1;
            }
        }
        if capped {
            self.need_diff = true;
        }
        if req.region.contains(&band) && !capped {
            self.band_scroll_sent = Some(scroll);
        } else if !req.region.intersect(&band).is_empty() {
            self.band_scroll_sent = None;
        }
        if count == 0 && req.incremental {
            // Nothing changed where the client is looking: keep waiting.
            out.truncate(start);
            return Some(self.next_deadline(now_ms));
        }
        out[start + 2..start + 4].copy_from_slice(&(count as u16).to_be_bytes());
        self.request = None;
        None
    }

    /// Any UNKNOWN pixel of the client's copy inside `r`?
    fn unknown_in(&self, r: &Rect) -> bool {
        (r.y..r.y + r.h).any(|y| self.sent[y * self.w + r.x..y * self.w + r.x + r.w].contains(&UNKNOWN))
    }

    /// Mirror a CopyRect on our copy of the client's framebuffer.
    fn copy_sent(&mut self, dst: &Rect, sx: usize, sy: usize) {
        let w = self.w;
        let row = |sent: &mut Vec<u32>, i: usize| {
            let s = (sy + i) * w + sx;
            sent.copy_within(s..s + dst.w, (dst.y + i) * w + dst.x);
        };
        // Copy in the order that never reads a row already overwritten.
        if sy >= dst.y {
            (0..dst.h).for_each(|i| row(&mut self.sent, i));
        } else {
            (0..dst.h).rev().for_each(|i| row(&mut self.sent, i));
        }
    }

    /// Rectangles in `z` where `next` differs from `sent`: dirty 16×16
    /// tiles, runs merged across rows, each shrunk to its exact bounds.
    fn find_damage(&mut self, z: &Rect) {
        let w = self.w;
        self.damage.clear();
        self.runs.clear();
        let mut ty = z.y;
        while ty < z.y + z.h {
            let th = DAMAGE_TILE.min(z.y + z.h - ty);
            let mut tx = z.x;
            let mut cur: Option<(usize, usize)> = None;
            let mut row_runs: Vec<(usize, usize)> = Vec::new();
            while tx < z.x + z.w {
                let tw = DAMAGE_TILE.min(z.x + z.w - tx);
                let dirty = (ty..ty + th).any(|y| {
                    let a = y * w + tx;
                    self.next[a..a + tw] != self.sent[a..a + tw]
                });
                if dirty {
                    cur = Some(match cur {
                        Some((x0, _)) => (x0, tx + tw),
                        None => (tx, tx + tw),
                    });
                } else if let Some(run) = cur.take() {
                    row_runs.push(run);
                }
                tx += tw;
            }
            if let Some(run) = cur.take() {
                row_runs.push(run);
            }
            // Extend runs of the previous tile row with the same span; close the others.
            let mut still = Vec::with_capacity(row_runs.len());
            for (x0, x1) in row_runs {
                if let Some(pos) = self.runs.iter().position(|&(a, b, _)| a == x0 && b == x1) {
                    let (_, _, mut r) = self.runs.swap_remove(pos);
                    r.h += th;
                    still.push((x0, x1, r));
                } else {
                    still.push((x0, x1, Rect::new(x0, ty, x1 - x0, th)));
                }
            }
            for (_, _, r) in self.runs.drain(..) {
                self.damage.push(r);
            }
            self.runs = still;
            ty += th;
        }
        for (_, _, r) in self.runs.drain(..) {
            self.damage.push(r);
        }
        for i in 0..self.damage.len() {
            self.damage[i] = self.tight(&self.damage[i]);
        }
        self.damage.retain(|r| !r.is_empty());
    }

    /// Bounding box of the differing pixels inside `r`.
    fn tight(&self, r: &Rect) -> Rect {
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for y in r.y..r.y + r.h {
            let a = y * self.w + r.x;
            let n = &self.next[a..a + r.w];
            let s = &self.sent[a..a + r.w];
            if let Some(first) = n.iter().zip(s).position(|(p, q)| p != q) {
                let last = n.iter().zip(s).rposition(|(p, q)| p != q).unwrap_or(first);
                x0 = x0.min(r.x + first);
                x1 = x1.max(r.x + last + 1);
                y0 = y0.min(y);
                y1 = y + 1;
            }
        }
        if x0 == usize::MAX {
            Rect::default()
        } else {
            Rect::new(x0, y0, x1 - x0, y1 - y0)
        }
    }

    /// Encode `r` of `next` with the zone's preferred encoding among those
    /// the client accepts, Raw as the fallback; then record it as sent.
    fn encode_rect(&mut self, r: &Rect, kind: Kind, out: &mut Vec<u8>) {
        self.encoder.load(&self.next, self.w, r, &self.wf);
        // Tight last: used only by clients that list none of the others
        // (so the default demo traffic stays as it was).
        let order: [i32; 4] = match kind {
            Kind::Flat => [RRE, HEXTILE, ZRLE, TIGHT],
            Kind::Band => [HEXTILE, ZRLE, RRE, TIGHT],
            Kind::Panel => [ZRLE, HEXTILE, RRE, TIGHT],
        };
        let a = self.accepts;
        let mut done = false;
        for e in order {
            match e {
                RRE if a.rre => done = self.encoder.rre(r, &self.wf, out),
                HEXTILE if a.hextile => {
                    self.encoder.hextile(r, &self.wf, out);
                    done = true;
                }
                ZRLE if a.zrle && !self.zrle_broken => {
                    let at = out.len();
                    match self.encoder.zrle(r, &self.wf, out) {
                        Ok(()) => done = true,
                        Err(e) => {
                            // The zlib stream is unusable from here on.
                            log::error!("demo: ZRLE disabled for this client: {e}");
                            out.truncate(at);
                            self.zrle_broken = true;
                        }
                    }
                }
                TIGHT if a.tight && !self.tight_broken => {
                    let at = out.len();
                    match self.encoder.tight(r, &self.wf, out) {
                        Ok(ok) => done = ok,
                        Err(e) => {
                            log::error!("demo: Tight disabled for this client: {e}");
                            out.truncate(at);
                            self.tight_broken = true;
                        }
                    }
                }
                _ => {}
            }
            if done {
                break;
            }
        }
        if !done {
            self.encoder.raw(r, &self.wf, out);
        }
        for y in r.y..r.y + r.h {
            let a = y * self.w + r.x;
            self.sent[a..a + r.w].copy_from_slice(&self.next[a..a + r.w]);
        }
    }

    /// Handle one message (or handshake step) at the start of `b`.
    /// `Ok(None)`: not all of it is there yet, nothing consumed.
    fn step(&mut self, b: &[u8], now_ms: u64, out: &mut Vec<u8>) -> Result<Option<usize>, String> {
        match self.state {
            State::Version => {
                // §7.1.1: "RFB xxx.yyy\n".
                let Some(v) = b.get(..12) else { return Ok(None) };
                let minor = parse_version(v)?;
                if minor == 3 {
                    // §7.1.2, version 3.3: the server decides, as a U32.
                    if self.password.is_some() {
                        out.extend_from_slice(&2u32.to_be_bytes());
                        self.send_challenge(3, now_ms, out);
                    } else {
                        out.extend_from_slice(&1u32.to_be_bytes());
                        self.state = State::ClientInit;
                    }
                } else {
                    let t = if self.password.is_some() { 2 } else { 1 };
                    out.extend_from_slice(&[1, t]);
                    self.state = State::SecurityType { minor };
                }
                Ok(Some(12))
            }
            State::SecurityType { minor } => {
                let Some(&t) = b.first() else { return Ok(None) };
                let offered = if self.password.is_some() { 2 } else { 1 };
                if t != offered {
                    let why = format!("security type {t} was not offered");
                    self.fail(minor, &why, out);
                    return Err(why);
                }
                if t == 1 {
                    // §7.2.1: None. 3.8 sends SecurityResult, 3.7 does not.
                    if minor >= 8 {
                        out.extend_from_slice(&0u32.to_be_bytes());
                    }
                    self.state = State::ClientInit;
                } else {
                    self.send_challenge(minor, now_ms, out);
                }
                Ok(Some(1))
            }
            State::VncAuth { minor, challenge } => {
                let Some(resp) = b.get(..16) else { return Ok(None) };
                let expected = vnc_auth_response(self.password.as_deref().unwrap_or(&[]), &challenge);
                // Compare without an early exit.
                let diff = resp.iter().zip(expected.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y));
                if diff != 0 {
                    self.fail(minor, "authentication failed", out);
                    return Err("VncAuth: wrong password".into());
                }
                out.extend_from_slice(&0u32.to_be_bytes());
                self.state = State::ClientInit;
                Ok(Some(16))
            }
            State::ClientInit => {
                if b.is_empty() {
                    return Ok(None);
                }
                // §7.3.1 shared-flag: every connection has its own view; ignored.
                // §7.3.2 ServerInit.
                out.extend_from_slice(&(self.w as u16).to_be_bytes());
                out.extend_from_slice(&(self.h as u16).to_be_bytes());
                PixelFormat::server_native().write(out);
                out.extend_from_slice(&(self.overlay.name.len() as u32).to_be_bytes());
                out.extend_from_slice(self.overlay.name.as_bytes());
                self.state = State::Normal;
                Ok(Some(1))
            }
            State::Normal => self.client_message(b, out),
            State::Failed => Err("input after a reported failure".into()),
        }
    }

    fn send_challenge(&mut self, minor: u8, now_ms: u64, out: &mut Vec<u8>) {
        let mut challenge = [0u8; 16];
        for (i, chunk) in challenge.chunks_mut(8).enumerate() {
            let mut hs = std::collections::hash_map::RandomState::new().build_hasher();
            hs.write_u64(self.seed);
            hs.write_u64(now_ms);
            hs.write_usize(i);
            chunk.copy_from_slice(&hs.finish().to_le_bytes());
        }
        out.extend_from_slice(&challenge);
        self.state = State::VncAuth { minor, challenge };
    }

    /// SecurityResult "failed" (§7.1.3); with a reason from 3.8 on.
    fn fail(&mut self, minor: u8, reason: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(&1u32.to_be_bytes());
        if minor >= 8 {
            out.extend_from_slice(&(reason.len() as u32).to_be_bytes());
            out.extend_from_slice(reason.as_bytes());
        }
        self.state = State::Failed;
    }

    /// Client-to-server messages (rfbproto §7.5).
    fn client_message(&mut self, b: &[u8], out: &mut Vec<u8>) -> Result<Option<usize>, String> {
        let Some(&t) = b.first() else { return Ok(None) };
        match t {
            // SetPixelFormat: U8 0, 3 padding, PIXEL_FORMAT (16).
            0 => {
                let Some(m) = b.get(..20) else { return Ok(None) };
                let mut raw = [0u8; 16];
                raw.copy_from_slice(&m[4..20]);
                let pf = PixelFormat::parse(&raw);
                pf.validate()?;
                self.wf = WireFormat::new(pf);
                Ok(Some(20))
            }
            // SetEncodings: U8 2, padding, U16 n, n × S32.
            2 => {
                let Some(h) = b.get(..4) else { return Ok(None) };
                let n = usize::from(u16::from_be_bytes([h[2], h[3]]));
                if n > MAX_ENCODINGS {
                    return Err(format!("SetEncodings: {n} encodings (limit {MAX_ENCODINGS})"));
                }
                let Some(m) = b.get(..4 + 4 * n) else { return Ok(None) };
                self.encodings.clear();
                self.encodings.extend(m[4..].chunks_exact(4).map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]])));
                let has = |e: i32| self.encodings.contains(&e);
                self.accepts = Accepts {
                    copy_rect: has(COPY_RECT),
                    rre: has(RRE),
                    hextile: has(HEXTILE),
                    zrle: has(ZRLE),
                    tight: has(TIGHT),
                    desktop_size: has(DESKTOP_SIZE),
                };
                Ok(Some(4 + 4 * n))
            }
            // FramebufferUpdateRequest: U8 3, incremental, x, y, w, h (U16).
            3 => {
                let Some(m) = b.get(..10) else { return Ok(None) };
                let u = |i: usize| usize::from(u16::from_be_bytes([m[i], m[i + 1]]));
                let incremental = m[1] != 0;
                // §7.5.3: "must be cropped so that it fits within the framebuffer".
                let region = Rect::new(u(2), u(4), u(6), u(8)).intersect(&Rect::new(0, 0, self.w, self.h));
                if !incremental {
                    for y in region.y..region.y + region.h {
                        self.sent[y * self.w + region.x..y * self.w + region.x + region.w].fill(UNKNOWN);
                    }
                }
                self.request = Some(match self.request {
                    Some(r) => Request { region: r.region.union(&region), incremental: r.incremental && incremental },
                    None => Request { region, incremental },
                });
                self.need_diff = true;
                Ok(Some(10))
            }
            // KeyEvent: U8 4, down-flag, 2 padding, U32 keysym.
            4 => {
                let Some(m) = b.get(..8) else { return Ok(None) };
                if m[1] != 0 {
                    self.key_down(u32::from_be_bytes([m[4], m[5], m[6], m[7]]));
                }
                Ok(Some(8))
            }
            // PointerEvent: U8 5, button-mask, U16 x, U16 y.
            5 => {
                let Some(m) = b.get(..6) else { return Ok(None) };
                let mask = m[1];
                let x = u16::from_be_bytes([m[2], m[3]]).min(self.w as u16 - 1);
                let y = u16::from_be_bytes([m[4], m[5]]).min(self.h as u16 - 1);
                let pressed = mask & !self.pointer.2;
                if pressed != 0 {
                    if self.overlay.clicks.len() >= MAX_CLICKS {
                        self.overlay.clicks.remove(0);
                    }
                    self.overlay.clicks.push((x, y));
                }
                self.pointer = (x, y, mask);
                self.overlay.pointer = Some(self.pointer);
                self.overlay_dirty = true;
                Ok(Some(6))
            }
            // ClientCutText: U8 6, 3 padding, U32 length, text.
            6 => {
                let Some(h) = b.get(..8) else { return Ok(None) };
                let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
                if len > MAX_CUT_TEXT {
                    return Err(format!("ClientCutText: {len} bytes (limit {MAX_CUT_TEXT})"));
                }
                let Some(m) = b.get(..8 + len) else { return Ok(None) };
                self.cut_text.clear();
                self.cut_text.extend_from_slice(&m[8..]);
                // Echo as ServerCutText (§7.6.4): U8 3, 3 padding, U32 length, text.
                out.extend_from_slice(&[3, 0, 0, 0]);
                out.extend_from_slice(&(len as u32).to_be_bytes());
                out.extend_from_slice(&self.cut_text);
                Ok(Some(8 + len))
            }
            _ => Err(format!("unknown client message type {t}")),
        }
    }

    fn key_down(&mut self, keysym: u32) {
        let ch = match keysym {
            0x20..=0x7e | 0xa0..=0xff => char::from_u32(keysym),
            0xff0d | 0xff8d => Some('\n'), // Return, KP_Enter
            0xffb0..=0xffb9 => char::from_u32(keysym - 0xffb0 + u32::from(b'0')), // KP_0..KP_9
            0x0100_0000..=0x0110_ffff => char::from_u32(keysym - 0x0100_0000), // Unicode keysyms
            0xff08 => {
                // BackSpace
                self.overlay.text.pop();
                self.overlay_dirty = true;
                None
            }
            _ => None,
        };
        if let Some(c) = ch {
            if self.overlay.text.len() >= MAX_TEXT {
                self.overlay.text.remove(0);
            }
            self.overlay.text.push(c);
            self.overlay_dirty = true;
        }
    }
}

/// Parse a client ProtocolVersion; returns the minor version to speak
/// (3, 7 or 8; 3.5 is read as 3.3 per §7.1.1).
fn parse_version(v: &[u8]) -> Result<u8, String> {
    let ok = v.len() == 12
        && &v[..4] == b"RFB "
        && v[7] == b'.'
        && v[11] == b'\n'
        && v[4..7].iter().chain(&v[8..11]).all(u8::is_ascii_digit);
    if !ok {
        return Err(format!("bad ProtocolVersion {:?}", String::from_utf8_lossy(v)));
    }
    match (&v[4..7], &v[8..11]) {
        (b"003", b"003") | (b"003", b"005") => Ok(3),
        (b"003", b"007") => Ok(7),
        (b"003", b"008") => Ok(8),
        _ => Err(format!("unsupported RFB version {:?}", String::from_utf8_lossy(&v[..11]))),
    }
}

/// VNC Authentication response (§7.2.2): DES-ECB of the two challenge
/// halves, keyed by the password's first 8 bytes (zero-padded) with each
/// byte's bits reversed — the historical VNC quirk.
pub fn vnc_auth_response(password: &[u8], challenge: &[u8; 16]) -> [u8; 16] {
    let mut key = [0u8; 8];
    for (k, &p) in key.iter_mut().zip(password.iter()) {
        let mut r = 0u8;
        for bit in 0..8 {
            if p & (1 << bit) != 0 {
                r |= 0x80 >> bit;
            }
        }
        *k = r;
    }
    let cipher = des::Des::new(GenericArray::from_slice(&key));
    let mut resp = *challenge;
    for half in resp.chunks_mut(8) {
        cipher.encrypt_block(GenericArray::from_mut_slice(half));
    }
    resp
}
