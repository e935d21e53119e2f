//! One gateway session: an RFB connection, its shadow framebuffer, and the
//! viewers sharing it. Sans-IO: the server feeds bytes in and carries bytes
//! out; this module decides what each viewer is sent ("latest frame wins").
//!
//! ```text
//!   Connecting ─tcp up─▶ Handshake ─PasswordNeeded─▶ NeedPassword ─password─▶ Handshake
//!                            └──────Connected──────▶ Ready ─RFB error/EOF─▶ Failed
//! ```
//!
//! Pacing (docs/protocol.md): every FramebufferUpdate's damage is added to
//! each viewer's own tile set (64×64 tiles, each with the bounding box of
//! its damage, so a frame carries only the changed sub-rectangles). A
//! viewer is composed a frame only when it has damage, fewer than
//! `MAX_UNACKED` unacknowledged frames and room in its socket; the frame
//! reads the framebuffer's *current* pixels, so a slow viewer skips
//! intermediate states instead of queueing them. A frame is composed in
//! chunks (`compose` is called again while the socket has room) so a
//! viewer's buffered output stays bounded by a chunk, not a frame.
//! CopyRects are forwarded as `Copy` where the viewer's canvas allows it
//! (`hand_out_update`), else they become damage.
//!
//! Memory per viewer is bounded whatever the viewer does: damage is a tile
//! bitmap with 4 bytes of box per tile (about 2 KiB at 1920×1080), queued
//! copies are capped, session state (clipboard, cursor, name) is sent
//! latest-wins from the session's single copy (`News`), and one-off
//! messages are capped (`MAX_PENDING`).

use slab::Slab;

use super::proto::{self, BadInput, Input};
use super::Attempt;
use crate::fb::{CopyOp, Framebuffer, Rect, TileSet, TILE};
use crate::rfb::{RfbClient, RfbConfig, RfbError, RfbEvent};
use crate::ws::close;

/// Frames a viewer may have unacknowledged.
pub const MAX_UNACKED: u32 = 2;
/// A viewer whose one-off messages pile up past this is not reading: it is
/// closed rather than buffered for.
const MAX_PENDING: usize = 256 << 10;
/// Bells remembered for a viewer that has not been sent them yet.
const MAX_BELLS: u8 = 4;

/// Changes of session state not yet sent to one viewer.
#[derive(Debug, Default, Clone, Copy)]
struct News {
    bells: u8,
    clipboard: bool,
    cursor: bool,
    name: bool,
}

impl News {
    fn any(&self) -> bool {
        self.bells > 0 || self.clipboard || self.cursor || self.name
    }
}

/// Copies queued per viewer for its next frame; more become damage.
const MAX_VIEWER_COPIES: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// TCP connect to the VNC server in progress.
    Connecting,
    /// RFB handshake in progress.
    Handshake,
    /// The server wants a password and a browser must supply it.
    NeedPassword,
    Ready,
}

/// A frame being sent to one viewer.
struct FrameInProgress {
    id: u32,
    /// Damaged areas still to send (`TileSet::for_each_run`), in order.
    rects: Vec<Rect>,
    next: usize,
}

pub struct Viewer {
    /// Server key of the viewer's WebSocket client.
    pub client: usize,
    pub view_only: bool,
    /// ClientHello received.
    hello: bool,
    /// Allowed in: no browser password involved, or it presented it.
    authorized: bool,
    /// ServerHello sent (the viewer is receiving frames).
    joined: bool,
    damage: TileSet,
    /// CopyRects to send at the start of the next frame, before the damaged
    /// tiles. Invariant: applying them to the viewer's canvas makes it equal
    /// to the framebuffer outside `damage` (see `Session::hand_out_update`).
    copies: Vec<CopyOp>,
    /// Pixels were sent while an update was half applied (the framebuffer
    /// held changes not yet handed out): the canvas may hold a state the
    /// update's copies did not start from, so that update's copies are
    /// sent as pixels to this viewer.
    mid_update_pixels: bool,
    frame: Option<FrameInProgress>,
    /// The last frame's rectangle list, kept for the next frame's (no
    /// allocation per frame once it has grown).
    spare_rects: Vec<Rect>,
    /// Id of the last frame whose EndFrame was sent (0: none yet). Frame
    /// ids count up from 1, wrapping.
    last_sent: u32,
    /// Id of the last frame acknowledged.
    acked: u32,
    /// Small one-off messages (hello, status, resize, password request,
    /// error) to send first; capped by `MAX_PENDING`.
    pending: Vec<u8>,
    /// State the viewer must be told about, latest wins (so a viewer that
    /// does not read costs no more memory however often it changes).
    news: News,
    /// Set when this viewer must be closed after its pending output.
    pub close: Option<(u16, String)>,
}

impl Viewer {
    fn new(client: usize, view_only: bool) -> Viewer {
        Viewer {
            client,
            view_only,
            hello: false,
            authorized: false,
            joined: false,
            damage: TileSet::new(0, 0),
            copies: Vec::new(),
            mid_update_pixels: false,
            frame: None,
            spare_rects: Vec::new(),
            last_sent: 0,
            acked: 0,
            pending: Vec::new(),
            news: News::default(),
            close: None,
        }
    }

    fn has_changes(&self) -> bool {
        !self.damage.is_empty() || !self.copies.is_empty()
    }

    /// Frames sent (EndFrame written) and not yet acknowledged.
    fn unacked(&self) -> u32 {
        self.last_sent.wrapping_sub(self.acked)
    }

    fn fail(&mut self, code: u16, text: &str) {
        proto::error(&mut self.pending, text);
        if self.close.is_none() {
            self.close = Some((code, text.chars().take(100).collect()));
        }
    }
}

pub struct Session {
    /// What viewers of this session asked for (token or "" for the default).
    pub key: String,
    pub label: String,
    pub phase: Phase,
    pub rfb: RfbClient,
    pub fb: Framebuffer,
    pub viewers: Slab<Viewer>,
    name: String,
    resize_supported: bool,
    /// The last Cursor message (also for late joiners).
    cursor_msg: Vec<u8>,
    /// The last Clipboard message.
    clipboard_msg: Vec<u8>,
    /// Password typed by the browser that unlocked this session, if any.
    browser_password: Option<Vec<u8>>,
    /// Address whose password was forwarded to the VNC server (counted as a
    /// failure until the server accepts it), then, once accepted, whose
    /// failure record to clear at the next viewer message.
    vnc_attempt: Option<(std::net::IpAddr, bool)>,
    /// Damage of the update being received, handed to viewers at its end.
    update_damage: TileSet,
    /// Copies logged by the framebuffer during the update being received.
    update_copies: Vec<CopyOp>,
    /// Ask for a non-incremental update next (see `maybe_request`).
    want_full: bool,
    /// The first FramebufferUpdate after ServerInit has been applied
    /// (viewers join then, see `join`).
    synced: bool,
    /// The session has failed: every viewer is told, then it is dropped.
    pub failed: Option<String>,
    /// Server key of the RFB connection.
    pub conn: Option<usize>,
}

impl Session {
    pub fn new(key: String, label: String, cfg: RfbConfig) -> Session {
        Session {
            key,
            label,
            phase: Phase::Connecting,
            rfb: RfbClient::new(cfg),
            fb: Framebuffer::new(0, 0),
            viewers: Slab::new(),
            name: String::new(),
            resize_supported: false,
            cursor_msg: Vec::new(),
            clipboard_msg: Vec::new(),
            browser_password: None,
            vnc_attempt: None,
            update_damage: TileSet::new(0, 0),
            update_copies: Vec::new(),
            want_full: false,
            synced: false,
            failed: None,
            conn: None,
        }
    }

    pub fn add_viewer(&mut self, client: usize, view_only: bool) -> usize {
        let idx = self.viewers.insert(Viewer::new(client, view_only));
        let v = &mut self.viewers[idx];
        let status = match self.phase {
            Phase::Connecting | Phase::Handshake => "connecting to the VNC server",
            _ => "joining the session",
        };
        proto::status(&mut v.pending, 0, status);
        idx
    }

    pub fn remove_viewer(&mut self, idx: usize) {
        self.viewers.try_remove(idx);
    }

    /// The TCP connection to the VNC server is up.
    pub fn connected(&mut self) {
        if self.phase == Phase::Connecting {
            self.phase = Phase::Handshake;
        }
    }

    /// End the session: every viewer gets `Error(text)` and a close.
    pub fn fail(&mut self, text: &str, code: u16) {
        if self.failed.is_some() {
            return;
        }
        self.failed = Some(text.to_string());
        for (_, v) in self.viewers.iter_mut() {
            v.fail(code, text);
        }
    }

    pub fn fail_rfb(&mut self, e: &RfbError) {
        let code = match e {
            RfbError::AuthFailed(_) => close::POLICY_VIOLATION,
            _ => close::INTERNAL_ERROR,
        };
        self.fail(&e.to_string(), code);
    }

    /// Feed bytes from the VNC server. Returns bytes used; replies for the
    /// server go to `to_server`.
    pub fn handle_server_input(&mut self, input: &[u8], to_server: &mut Vec<u8>) -> Result<usize, RfbError> {
        let used = self.rfb.handle_input(input, &mut self.fb, to_server)?;
        while let Some(ev) = self.rfb.poll_event() {
            self.on_event(ev, to_server);
        }
        self.maybe_request(to_server);
        Ok(used)
    }

    /// Keep one incremental update request outstanding while anyone watches.
    /// The next request is non-incremental when `want_full` says so.
    fn maybe_request(&mut self, to_server: &mut Vec<u8>) {
        if self.phase == Phase::Ready && !self.rfb.update_pending() && !self.viewers.is_empty() {
            let incremental = !std::mem::take(&mut self.want_full);
            self.rfb.request_update(incremental, &self.fb, to_server);
        }
    }

    fn on_event(&mut self, ev: RfbEvent, to_server: &mut Vec<u8>) {
        match ev {
            RfbEvent::PasswordNeeded => {
                self.phase = Phase::NeedPassword;
                for (_, v) in self.viewers.iter_mut() {
                    if v.hello {
                        proto::password_required(&mut v.pending);
                    }
                }
            }
            RfbEvent::Connected { width, height, name } => {
                self.phase = Phase::Ready;
                if let Some((_, accepted)) = &mut self.vnc_attempt {
                    *accepted = true;
                }
                self.name = name;
                self.update_damage = TileSet::new(width, height);
                let mut discard = TileSet::new(width, height);
                self.fb.take_dirty(&mut discard);
                self.fb.take_copies(&mut self.update_copies);
                self.update_copies.clear();
                self.rfb.request_update(false, &self.fb, to_server);
                self.synced = false;
                for (_, v) in self.viewers.iter_mut() {
                    if v.hello && (self.browser_password.is_none() || v.authorized) {
                        v.authorized = true; // joined after the first update
                    } else if v.hello {
                        proto::password_required(&mut v.pending);
                    }
                }
            }
            RfbEvent::Resized { width, height } => {
                // rfbproto §7.8.2: the new framebuffer's contents follow a
                // non-incremental request (only on an actual size change).
                self.want_full = true;
                self.update_damage = TileSet::new(width, height);
                for (_, v) in self.viewers.iter_mut() {
                    if v.joined {
                        if let Some(f) = v.frame.take() {
                            proto::end_frame(&mut v.pending, f.id);
                            v.last_sent = f.id;
                        }
                        proto::resize(&mut v.pending, width, height);
                        v.damage.reset(width, height);
                        v.copies.clear();
                    }
                }
            }
            RfbEvent::ResizeSupported => {
                self.resize_supported = true;
                // TigerVNC answers the first request after SetEncodings with
                // the ExtendedDesktopSize rectangle alone and then sends only
                // changes: ask for the whole screen once more. (Once per
                // connection, so it cannot loop.)
                self.want_full = true;
            }
            RfbEvent::ResizeRefused(why) => {
                for (_, v) in self.viewers.iter_mut() {
                    if v.joined {
                        proto::status(&mut v.pending, 1, &format!("resize refused: {why}"));
                    }
                }
            }
            RfbEvent::Copied { .. } => {}
            RfbEvent::UpdateDone => {
                self.hand_out_update();
                if !self.synced {
                    self.synced = true;
                    let ready: Vec<usize> =
                        self.viewers.iter().filter(|(_, v)| v.hello && v.authorized).map(|(k, _)| k).collect();
                    for idx in ready {
                        self.join(idx);
                    }
                }
            }
            RfbEvent::Bell => self.broadcast(|n| n.bells = (n.bells + 1).min(MAX_BELLS)),
            RfbEvent::ServerCutText(text) => {
                self.clipboard_msg.clear();
                proto::clipboard(&mut self.clipboard_msg, &text);
                self.broadcast(|n| n.clipboard = true);
            }
            RfbEvent::Cursor { hot_x, hot_y, width, height, rgba } => {
                self.cursor_msg.clear();
                proto::cursor(&mut self.cursor_msg, hot_x, hot_y, width, height, &rgba);
                self.broadcast(|n| n.cursor = true);
            }
            RfbEvent::DesktopName(name) => {
                self.name = name;
                self.broadcast(|n| n.name = true);
            }
        }
        for (_, v) in self.viewers.iter_mut() {
            if v.pending.len() > MAX_PENDING && v.close.is_none() {
                v.pending.clear();
                v.fail(close::POLICY_VIOLATION, "viewer is not reading its messages");
            }
        }
    }

    /// A whole FramebufferUpdate has been applied: give every joined viewer
    /// its changes. Each logged copy is forwarded as a `Copy` only to a
    /// viewer whose canvas holds the copy's source as the framebuffer had it:
    /// no frame half sent and no pixels sent while this update was half
    /// applied (either puts pixels newer than the copy's source on the
    /// canvas), and no pending damage over the source. Otherwise the destination becomes
    /// damage. Copies are checked in order, so one whose source is an
    /// earlier refused copy's destination is refused too.
    fn hand_out_update(&mut self) {
        self.fb.take_dirty(&mut self.update_damage);
        self.fb.take_copies(&mut self.update_copies);
        for (_, v) in self.viewers.iter_mut() {
            if !v.joined {
                continue;
            }
            let can_copy = v.frame.is_none() && !v.mid_update_pixels;
            v.mid_update_pixels = false;
            for op in &self.update_copies {
                if can_copy && v.copies.len() < MAX_VIEWER_COPIES && !v.damage.intersects(op.src()) {
                    v.copies.push(*op);
                } else {
                    v.damage.mark(op.dst);
                }
            }
            v.damage.union_from(&self.update_damage);
        }
        self.update_damage.clear();
        self.update_copies.clear();
    }

    /// Record news for every joined viewer.
    fn broadcast(&mut self, f: impl Fn(&mut News)) {
        for (_, v) in self.viewers.iter_mut() {
            if v.joined {
                f(&mut v.news);
            }
        }
    }

    /// Send ServerHello and schedule a full frame.
    /// Not before the first update after ServerInit is in: it tells whether
    /// the server does ExtendedDesktopSize (ServerHello's resize flag; servers
    /// send it in their first update) and holds the first pixels. Viewers
    /// authorized earlier are joined then.
    fn join(&mut self, idx: usize) {
        let (w, h) = (self.fb.width(), self.fb.height());
        let v = &mut self.viewers[idx];
        if v.joined || !self.synced {
            return;
        }
        v.joined = true;
        proto::server_hello(&mut v.pending, w, h, v.view_only, self.resize_supported, &self.name);
        v.news = News { cursor: !self.cursor_msg.is_empty(), ..News::default() };
        v.damage.reset(w, h);
        v.copies.clear();
    }

    /// A binary message from viewer `idx`. Server-bound RFB goes to
    /// `to_server`. An error means: close this viewer with that code.
    /// `at` says who sent it and when (password throttling).
    pub fn handle_viewer_message(
        &mut self,
        idx: usize,
        msg: &[u8],
        to_server: &mut Vec<u8>,
        at: &mut Attempt<'_>,
    ) -> Result<(), BadInput> {
        if let Some((peer, true)) = self.vnc_attempt {
            self.vnc_attempt = None;
            at.guard.succeeded(peer, &self.key);
        }
        proto::parse_all(msg, |input| self.viewer_input(idx, input, to_server, at))?;
        self.maybe_request(to_server);
        Ok(())
    }

    fn viewer_input(
        &mut self,
        idx: usize,
        input: Input<'_>,
        to_server: &mut Vec<u8>,
        at: &mut Attempt<'_>,
    ) -> Result<(), BadInput> {
        let policy = |reason| BadInput { code: close::POLICY_VIOLATION, reason };
        let Some(v) = self.viewers.get_mut(idx) else { return Ok(()) };
        if !v.hello {
            return match input {
                Input::ClientHello { version: proto::VERSION } => {
                    v.hello = true;
                    self.after_hello(idx);
                    Ok(())
                }
                Input::ClientHello { .. } => {
                    Err(BadInput { code: close::PROTOCOL_ERROR, reason: "unsupported protocol version" })
                }
                _ => Err(BadInput { code: close::PROTOCOL_ERROR, reason: "ClientHello must come first" }),
            };
        }
        match input {
            Input::ClientHello { .. } => return Err(policy("second ClientHello")),
            Input::Password(pw) => return self.password(idx, pw, to_server, at),
            _ if !v.joined => return Err(policy("input before the session is ready")),
            Input::FrameAck(id) => {
                // Cumulative (docs/protocol.md): acknowledges `id` and every
                // frame before it. How far `id` lies behind the last frame
                // sent, in wrapping frame-id arithmetic:
                let behind = v.last_sent.wrapping_sub(id);
                if behind >= 1 << 31 {
                    return Err(policy("ack for a frame never sent"));
                }
                if behind < v.unacked() {
                    v.acked = id;
                } // else: a repeated or older ack; nothing new acknowledged
            }
            Input::Key { down, keysym } => {
                if !v.view_only {
                    self.rfb.key_event(down, keysym, to_server);
                }
            }
            Input::Pointer { x, y, mask } => {
                if !v.view_only {
                    let x = x.min(self.fb.width().saturating_sub(1));
                    let y = y.min(self.fb.height().saturating_sub(1));
                    self.rfb.pointer_event(mask, x, y, to_server);
                }
            }
            Input::Clipboard(text) => {
                if !v.view_only {
                    self.rfb.client_cut_text(text, to_server);
                }
            }
            Input::ResizeRequest { w, h } => {
                if !v.view_only && self.resize_supported {
                    self.rfb.set_desktop_size(w, h, to_server);
                }
            }
        }
        Ok(())
    }

    fn after_hello(&mut self, idx: usize) {
        let needs_browser_pw = self.browser_password.is_some();
        let ready = self.phase == Phase::Ready;
        let v = &mut self.viewers[idx];
        if self.phase == Phase::NeedPassword || (ready && needs_browser_pw) {
            proto::password_required(&mut v.pending);
        } else if ready {
            v.authorized = true;
            self.join(idx);
        }
    }

    /// A browser's password: checked here against the one that unlocked the
    /// session, or forwarded to the VNC server. Either way throttled per
    /// address and per session ([`super::PasswordGuard`]); a blocked viewer
    /// is closed with "too many attempts, retry in N s".
    fn password(
        &mut self,
        idx: usize,
        pw: &[u8],
        to_server: &mut Vec<u8>,
        at: &mut Attempt<'_>,
    ) -> Result<(), BadInput> {
        let policy = |reason| BadInput { code: close::POLICY_VIOLATION, reason };
        let checked =
            matches!((&self.phase, &self.browser_password), (Phase::NeedPassword, _) | (Phase::Ready, Some(_)));
        if checked {
            if let Err(b) = at.guard.check(at.peer, &self.key, at.now) {
                let why = format!("too many attempts, retry in {} s", b.retry_secs());
                self.viewers[idx].fail(close::POLICY_VIOLATION, &why);
                return Ok(());
            }
        }
        match (&self.phase, &self.browser_password) {
            (Phase::NeedPassword, _) => {
                // A failure until the VNC server accepts it (a refusal ends
                // the session, and with it any chance to count it later).
                at.guard.failed(at.peer, &self.key, at.now);
                self.vnc_attempt = Some((at.peer, false));
                self.browser_password = Some(pw.to_vec());
                self.viewers[idx].authorized = true;
                self.phase = Phase::Handshake;
                if let Err(e) = self.rfb.set_password(pw, to_server) {
                    self.fail_rfb(&e);
                }
                Ok(())
            }
            (Phase::Ready, Some(known)) => {
                if constant_time_eq(known, pw) {
                    at.guard.succeeded(at.peer, &self.key);
                    self.viewers[idx].authorized = true;
                    self.join(idx);
                } else {
                    at.guard.failed(at.peer, &self.key, at.now);
                    self.viewers[idx].fail(close::POLICY_VIOLATION, "wrong password");
                }
                Ok(())
            }
            (Phase::Handshake, Some(_)) => Ok(()), // verdict pending; joined on Connected if right
            _ => Err(policy("no password was asked for")),
        }
    }

    /// Compose the next chunk of output for viewer `idx` into `out` (about
    /// `budget` bytes at most, plus one tile row). Returns false when there
    /// is nothing to send now.
    pub fn compose(&mut self, idx: usize, budget: usize, out: &mut Vec<u8>) -> bool {
        let Session { fb, viewers, cursor_msg, clipboard_msg, name, .. } = self;
        let Some(v) = viewers.get_mut(idx) else { return false };
        let start_len = out.len();
        out.extend_from_slice(&v.pending);
        v.pending.clear();
        if v.close.is_some() || !v.joined {
            return out.len() > start_len;
        }
        let news = std::mem::take(&mut v.news);
        for _ in 0..news.bells {
            proto::bell(out);
        }
        if news.clipboard {
            out.extend_from_slice(clipboard_msg);
        }
        if news.cursor {
            out.extend_from_slice(cursor_msg);
        }
        if news.name {
            proto::desktop_name(out, name);
        }
        if v.frame.is_none() && v.unacked() < MAX_UNACKED && v.has_changes() {
            for op in v.copies.drain(..) {
                let (d, sx, sy) = (op.dst, op.src_x, op.src_y);
                proto::copy(out, d.x, d.y, d.w, d.h, sx, sy);
            }
            let mut rects = std::mem::take(&mut v.spare_rects);
            rects.clear();
            v.damage.for_each_run(|r| rects.push(r));
            v.damage.clear();
            let id = v.last_sent.wrapping_add(1);
            v.frame = Some(FrameInProgress { id, rects, next: 0 });
        }
        if let Some(f) = &mut v.frame {
            if f.next < f.rects.len() && fb.has_changes() {
                v.mid_update_pixels = true;
            }
            while f.next < f.rects.len() && out.len() - start_len < budget {
                encode_run(fb, f.rects[f.next], out);
                f.next += 1;
            }
            if f.next == f.rects.len() {
                proto::end_frame(out, f.id);
                v.last_sent = f.id;
                v.spare_rects = v.frame.take().map(|f| f.rects).unwrap_or_default();
            }
        }
        out.len() > start_len
    }

    /// The session is being dropped: viewer `idx`'s last output (its pending
    /// messages, normally the `Error`) and the close to send after it.
    /// Handed over whatever the viewer's socket backlog, so a viewer busy
    /// receiving a frame still learns why its session ended.
    pub fn farewell(&mut self, idx: usize) -> (Vec<u8>, (u16, String)) {
        let why = self.failed.clone().unwrap_or_else(|| "session ended".to_string());
        let Some(v) = self.viewers.get_mut(idx) else { return (Vec::new(), (close::INTERNAL_ERROR, why)) };
        if v.close.is_none() {
            v.fail(close::INTERNAL_ERROR, &why);
        }
        (std::mem::take(&mut v.pending), v.close.clone().unwrap_or((close::INTERNAL_ERROR, why)))
    }

    /// Whether viewer `idx` must be closed now (after its pending output),
    /// with the code and reason.
    pub fn viewer_close(&self, idx: usize) -> Option<(u16, String)> {
        self.viewers.get(idx).and_then(|v| if v.pending.is_empty() { v.close.clone() } else { None })
    }

    pub fn viewer_has_output(&self, idx: usize) -> bool {
        self.viewers.get(idx).is_some_and(|v| {
            !v.pending.is_empty()
                || (v.joined && v.close.is_none() && v.news.any())
                || v.frame.is_some()
                || (v.joined && v.unacked() < MAX_UNACKED && v.has_changes())
        })
    }
}

/// Send one damaged run (a rectangle within one row of tiles, see
/// `TileSet::for_each_run`), cut at tile columns: a solid piece as Fill,
/// consecutive other pieces as one Pixels block.
fn encode_run(fb: &Framebuffer, run: Rect, out: &mut Vec<u8>) {
    if !fb.contains(run) || run.is_empty() {
        return;
    }
    let mut x = run.x;
    let end = run.x as u32 + run.w as u32;
    let mut block_start: Option<u16> = None;
    while (x as u32) < end {
        let next_col = (x as u32 / TILE as u32 + 1) * TILE as u32;
        let w = (next_col.min(end) - x as u32) as u16;
        let piece = Rect::new(x, run.y, w, run.h);
        match solid_colour(fb, piece) {
            Some(rgba) => {
                if let Some(bx) = block_start.take() {
                    pixels(fb, Rect::new(bx, run.y, x - bx, run.h), out);
                }
                proto::fill(out, piece.x, piece.y, piece.w, piece.h, rgba);
            }
            None => {
                block_start.get_or_insert(x);
            }
        }
        x += w;
    }
    if let Some(bx) = block_start {
        pixels(fb, Rect::new(bx, run.y, (end - bx as u32) as u16, run.h), out);
    }
}

fn pixels(fb: &Framebuffer, r: Rect, out: &mut Vec<u8>) {
    proto::pixels_header(out, r.x, r.y, r.w, r.h);
    let stride = fb.width() as usize * 4;
    let data = fb.data();
    let row = r.w as usize * 4;
    out.reserve(row * r.h as usize);
    for y in r.y as usize..r.y as usize + r.h as usize {
        let o = y * stride + r.x as usize * 4;
        out.extend_from_slice(&data[o..o + row]);
    }
}

fn solid_colour(fb: &Framebuffer, r: Rect) -> Option<[u8; 4]> {
    let stride = fb.width() as usize * 4;
    let data = fb.data();
    let first = fb.pixel(r.x, r.y);
    let row = r.w as usize * 4;
    for y in r.y as usize..r.y as usize + r.h as usize {
        let o = y * stride + r.x as usize * 4;
        if !data[o..o + row].chunks_exact(4).all(|p| p == first) {
            return None;
        }
    }
    Some(first)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
