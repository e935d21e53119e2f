//! One gateway session: an RFB connection, its shadow framebuffer, and the
//! viewers sharing it. Sans-IO: the server feeds bytes in and carries bytes
//! out; this module decides what each viewer is sent ("latest frame wins").
//!
//! ```text
//!   Connecting ─tcp up─▶ Handshake ─PasswordNeeded─▶ NeedPassword ─password─▶ Handshake
//!                            └──────Connected──────▶ Ready ─RFB error/EOF─▶ Failed
//! ```
//!
//! Who may join: see [`super::login`] (a session unlocked by a browser's
//! password or credentials asks every later viewer for the same).
//!
//! Linger: when the last viewer leaves a `Ready` session, the session
//! keeps its RFB connection and framebuffer for `linger` (pausing
//! continuous updates, asking for none), so a viewer that comes back — a
//! phone that dropped off Wi-Fi — gets the current picture at once without
//! a new VNC login. `poll_timeout` includes the end of the linger;
//! `handle_timeout` then marks the session over ([`Session::is_over`]),
//! and the server drops it. Without linger (0), or before `Ready`, the
//! session is over when its last viewer leaves.
//!
//! Frames (docs/protocol.md "Pacing"): every FramebufferUpdate's damage is
//! added to each viewer's own tile set (64×64 tiles, each with the bounding
//! box of its damage). When its pacer (`pacing::Pacer`) lets a viewer have
//! more, it gets, in this order of preference ([`super::frames`]):
//!
//! 1. the next part of the picture it is being sent, or first an *aside*
//!    (damage that does not overlap that picture, one part's worth, urgent
//!    first), alternating with the parts; with no picture on its way, small
//!    changes apart from a big one (`frames::Islands`) go first as an
//!    aside, past the pacer when small enough, and the server writes an
//!    aside out before it composes more (`flush_first`), so it never waits
//!    for the next picture's encoding;
//! 2. a new *picture*: all its damage and copies, encoded from the
//!    framebuffer as it is now (never while an update is half applied),
//!    photo-like areas as JPEG at a quality chosen so the picture takes
//!    about one interval of the screen's changes on the viewer's link
//!    (`pacing::choose_level`); one frame if it fits a part, else parts
//!    the browser holds and draws together;
//! 3. a *refinement* frame: exact pixels for areas it last got as JPEG.
//!
//! A slow viewer therefore skips intermediate states instead of queueing
//! them, sees only whole pictures of states the screen really had, and a
//! small change waits behind about one part, not a picture. Encodings are
//! made once per session state and shared by the viewers in that state.
//! CopyRects are forwarded as `Copy` where the viewer's canvas allows it
//! (`hand_out_update`), else they become damage.
//!
//! Memory per viewer is bounded whatever the viewer does: damage and lossy
//! areas are tile bitmaps with 4 bytes of box per tile (about 2 KiB each at
//! 1920×1080, plus 4 bytes per tile of lossy timestamps), queued copies are
//! capped, the bytes in flight are capped by the pacer's window
//! (`pacing::MAX_CWND`), encodings are shared, at most one picture and one
//! frame per viewer plus a few spares, session state (clipboard, cursor,
//! name) is sent latest-wins from the session's single copy (`News`), and
//! one-off messages are capped (`MAX_PENDING`).

use std::time::{Duration, Instant};

use slab::Slab;

use super::encode::{self, Lossy as Jpeg};
use super::frames::{self, Cursor, Islands, Lossy, Parts, Request, What};
use super::login::{Answer, Ask};
use super::pacing::{self, JpegModel, Kind, Pacer};
use super::proto::{self, BadInput, Input};
use super::Attempt;
use crate::fb::{CopyOp, Framebuffer, TileSet};
use crate::rfb::scancodes::rfb_keycode;
use crate::rfb::{RfbClient, RfbConfig, RfbError, RfbEvent};
use crate::ws::close;
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
    leds: bool,
}

/// Copies queued per viewer for its next frame; more become damage.
const MAX_VIEWER_COPIES: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// TCP connect to the VNC server in progress.
    Connecting,
    /// RFB handshake in progress.
    Handshake,
    /// The server wants a password (or credentials) and a browser must
    /// supply it.
    NeedPassword,
    Ready,
}

/// The frame or part being written to one viewer (one WebSocket message
/// per `Session::compose`).
struct Writing {
    /// Index in the session's `Parts` (for a piece of the held picture: the
    /// picture's).
    enc: usize,
    cursor: Cursor,
    id: u32,
    out: Out,
    /// Estimated wire bytes a piece of the held picture may still take.
    budget: u64,
}

/// What is being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    /// A whole encoding as one frame (a picture that fits one part, a
    /// refinement).
    Frame,
    /// An aside: a whole encoding as one frame, between parts of the held
    /// picture.
    Aside,
    /// A frame of the held picture's exact messages (drawn at once).
    Prefix,
    /// A part of the held picture's images (held by the browser until the
    /// last).
    Part,
}

impl Out {
    fn of_picture(self) -> bool {
        matches!(self, Out::Prefix | Out::Part)
    }
}

/// A picture being sent in parts: where its next part starts.
struct Held {
    enc: usize,
    cursor: Cursor,
}

/// What `Session::compose` appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Composed {
    /// Nothing to send now.
    Nothing,
    /// One WebSocket message; compress it (permessage-deflate) if negotiated.
    Deflate,
    /// One WebSocket message of mostly JPEG: send it uncompressed (RSV1 clear).
    Raw,
}

pub struct Viewer {
    /// Server key of the viewer's WebSocket client.
    pub client: usize,
    pub view_only: bool,
    /// ClientHello received.
    hello: bool,
    /// The browser decodes WebP lossless (`Accept`): refinements use it.
    webp: bool,
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
    writing: Option<Writing>,
    picture: Option<Held>,
    /// The last frame written was an aside (the next goes to the picture).
    last_aside: bool,
    /// An aside just ended: the server should write it out before it asks
    /// for more (the next compose may encode a picture).
    flush: bool,
    /// Id of the last frame or part whose end was sent (0: none yet). Ids
    /// count up from 1, wrapping, frames and parts alike.
    last_sent: u32,
    /// Id of the last frame acknowledged (`FrameAck`).
    acked: u32,
    /// Small one-off messages (hello, status, resize, password request,
    /// error) to send first; capped by `MAX_PENDING`.
    pending: Vec<u8>,
    /// State the viewer must be told about, latest wins (so a viewer that
    /// does not read costs no more memory however often it changes).
    news: News,
    /// Set when this viewer must be closed after its pending output.
    pub close: Option<(u16, String)>,
    pacer: Pacer,
    /// JPEG level of the last picture (`pacing::LEVELS`), and whether its
    /// Huffman tables were optimised (`pacing::optimise_tables`).
    level: usize,
    optimise_tables: bool,
    /// Canvas areas holding JPEG approximations.
    lossy: Lossy,
    /// Wire bytes per protocol byte of compressed messages (EWMA).
    ratio: f64,
    /// Updates handed out while earlier damage was still unsent: states
    /// this viewer never sees ("latest frame wins").
    dropped: u64,
}

impl Viewer {
    fn new(client: usize, view_only: bool) -> Viewer {
        Viewer {
            client,
            view_only,
            hello: false,
            webp: false,
            authorized: false,
            joined: false,
            damage: TileSet::new(0, 0),
            copies: Vec::new(),
            mid_update_pixels: false,
            writing: None,
            picture: None,
            last_aside: false,
            flush: false,
            last_sent: 0,
            acked: 0,
            pending: Vec::new(),
            news: News::default(),
            close: None,
            pacer: Pacer::default(),
            level: 0,
            optimise_tables: true,
            lossy: Lossy::new(0, 0),
            ratio: 0.3,
            dropped: 0,
        }
    }

    fn has_changes(&self) -> bool {
        !self.damage.is_empty() || !self.copies.is_empty()
    }

    /// Frames sent (EndFrame written) and not yet acknowledged.
    fn unacked(&self) -> u32 {
        self.last_sent.wrapping_sub(self.acked)
    }

    /// Stop sending the current frame, part and picture (the desktop was
    /// resized: a `Resize` is in `pending`, and the browser drops held
    /// parts and an image it was receiving when it reads it). The frame or
    /// part being written ends as an empty frame after the `Resize`.
    fn cut(&mut self, parts: &mut Parts) {
        if let Some(w) = self.writing.take() {
            proto::end_frame(&mut self.pending, w.id);
            self.last_sent = w.id;
            self.pacer.end(Kind::Frame);
            if !w.out.of_picture() {
                parts.release(w.enc);
            }
        }
        if let Some(h) = self.picture.take() {
            parts.release(h.enc);
        }
    }

    /// Release what this viewer holds in `parts`.
    fn release(&mut self, parts: &mut Parts) {
        if let Some(w) = self.writing.take().filter(|w| !w.out.of_picture()) {
            parts.release(w.enc);
        }
        if let Some(h) = self.picture.take() {
            parts.release(h.enc);
        }
    }

    fn fail(&mut self, code: u16, text: &str) {
        proto::error(&mut self.pending, text);
        if self.close.is_none() {
            self.close = Some((code, text.chars().take(100).collect()));
        }
    }
}

/// What [`Session::viewer_stats`] reports: frames sent (EndFrames, as
/// the wrapping frame id), updates dropped, frames unacknowledged, the
/// pacer's bytes in flight, link rate (bytes/s), round trips, JPEG quality.
#[derive(Debug, Clone, Copy)]
pub struct ViewerStats {
    pub frames: u64,
    pub dropped: u64,
    pub unacked: u32,
    pub in_flight: u64,
    pub rate: f64,
    pub min_rtt: Duration,
    pub last_rtt: Option<Duration>,
    pub jpeg: u8,
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
    /// What the session asks browsers for, once the VNC server wanted it.
    ask: Option<Ask>,
    /// The browser's answer that unlocked this session, if any.
    browser_login: Option<Answer>,
    /// The server's lock keys (QEMU LED State), once it sent them.
    leds: Option<u8>,
    /// How long the session outlives its last viewer (0: not at all).
    pub linger: Duration,
    /// Nobody watches: the session ends at this time unless a viewer comes.
    linger_until: Option<Instant>,
    /// The session has no viewers and no reason to stay: drop it.
    over: bool,
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
    /// Encoded frame parts, shared by the viewers.
    pub parts: Parts,
    /// Bumped whenever the framebuffer may have changed (parts encoded at
    /// another generation are stale).
    gen: u64,
    /// Origin of the session clock (ms stamps of lossy tiles).
    epoch: Option<Instant>,
    now_ms: u32,
    /// The last pointer position a viewer sent.
    pointer: Option<(u16, u16)>,
    /// Scratch: the refinement set / aside damage of the viewer being composed.
    refine: TileSet,
    aside: TileSet,
    islands: Islands,
    /// Never send JPEG (`--lossless`).
    pub lossless: bool,
    /// Bytes per JPEG pixel of this session's content.
    model: JpegModel,
    /// Since when the framebuffer holds a half-applied update.
    mid_since: Option<Instant>,
    /// The `now` of the last `compose`.
    last_now: Option<Instant>,
    /// When the last update with damage was handed out (session ms), and
    /// the smoothed interval between such updates (ms).
    last_change_ms: Option<u32>,
    change_interval_ms: f64,
}

/// A picture is not started while an update that touches it is half
/// applied (it would show half of each), unless the update has been
/// arriving this long.
const MID_UPDATE_WAIT: Duration = Duration::from_millis(50);

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
            ask: None,
            browser_login: None,
            leds: None,
            linger: Duration::ZERO,
            linger_until: None,
            over: false,
            vnc_attempt: None,
            update_damage: TileSet::new(0, 0),
            update_copies: Vec::new(),
            want_full: false,
            synced: false,
            failed: None,
            conn: None,
            parts: Parts::default(),
            gen: 0,
            epoch: None,
            now_ms: 0,
            pointer: None,
            refine: TileSet::new(0, 0),
            aside: TileSet::new(0, 0),
            islands: Islands::default(),
            lossless: false,
            model: JpegModel::default(),
            mid_since: None,
            last_now: None,
            last_change_ms: None,
            change_interval_ms: pacing::MAX_PICTURE_TIME.as_millis() as f64,
        }
    }

    /// Advance the session clock; ms since its first use.
    fn tick(&mut self, now: Instant) -> u32 {
        let epoch = *self.epoch.get_or_insert(now);
        self.now_ms = now.saturating_duration_since(epoch).as_millis().min(u32::MAX as u128) as u32;
        self.now_ms
    }

    pub fn add_viewer(&mut self, client: usize, view_only: bool) -> usize {
        self.linger_until = None;
        let idx = self.viewers.insert(Viewer::new(client, view_only));
        let v = &mut self.viewers[idx];
        let status = match self.phase {
            Phase::Connecting | Phase::Handshake => "connecting to the VNC server",
            _ => "joining the session",
        };
        proto::status(&mut v.pending, 0, status);
        idx
    }

    /// Viewer `idx` is gone (at `now`). When it was the last one, a
    /// `Ready` session lingers (continuous updates paused through
    /// `to_server`); any other is over.
    pub fn remove_viewer(&mut self, idx: usize, now: Instant, to_server: &mut Vec<u8>) {
        if let Some(mut v) = self.viewers.try_remove(idx) {
            v.release(&mut self.parts);
        }
        if !self.viewers.is_empty() {
            return;
        }
        if self.phase == Phase::Ready && self.failed.is_none() && !self.linger.is_zero() {
            self.linger_until = Some(now + self.linger);
            self.rfb.pause_updates(to_server);
        } else {
            self.over = true;
        }
    }

    /// Time has passed (the server calls this at `poll_timeout`): a
    /// linger that ran out ends the session.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.viewers.is_empty() && self.linger_until.is_some_and(|t| now >= t) {
            self.linger_until = None;
            self.over = true;
        }
    }

    /// Nobody watches and the linger (if any) is over: the server drops
    /// the session and its RFB connection.
    pub fn is_over(&self) -> bool {
        self.over
    }

    /// Nobody watches, and the session waits for a viewer until this time.
    pub fn lingering_until(&self) -> Option<Instant> {
        self.linger_until
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
        if used > 0 {
            self.gen += 1;
        }
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
            // With the user name configured, the browser's password completes
            // the credentials (`RfbClient::set_password`).
            RfbEvent::PasswordNeeded | RfbEvent::CredentialsNeeded { .. } => {
                let ask = match ev {
                    RfbEvent::CredentialsNeeded { username: true } => Ask::Credentials,
                    _ => Ask::Password,
                };
                self.ask = Some(ask);
                self.phase = Phase::NeedPassword;
                for (_, v) in self.viewers.iter_mut() {
                    if v.hello {
                        ask.write(&mut v.pending);
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
                    match (&self.browser_login, self.ask) {
                        _ if !v.hello => {}
                        (None, _) => v.authorized = true, // joined after the first update
                        _ if v.authorized => {}
                        (Some(_), Some(ask)) => ask.write(&mut v.pending),
                        (Some(_), None) => {} // not reached: an answer follows a question
                    }
                }
            }
            RfbEvent::Resized { width, height } => {
                // rfbproto §7.8.2: the new framebuffer's contents follow a
                // non-incremental request (only on an actual size change).
                self.want_full = true;
                self.gen += 1;
                self.update_damage = TileSet::new(width, height);
                for (_, v) in self.viewers.iter_mut() {
                    if v.joined {
                        proto::resize(&mut v.pending, width, height);
                        v.cut(&mut self.parts);
                        v.damage.reset(width, height);
                        v.lossy.reset(width, height);
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
            RfbEvent::LedState { scroll_lock, num_lock, caps_lock } => {
                self.leds = Some(scroll_lock as u8 | (num_lock as u8) << 1 | (caps_lock as u8) << 2);
                self.broadcast(|n| n.leds = true);
            }
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
    /// no part encoded while this update was half applied (it put pixels
    /// newer than the copy's source on the canvas), and no pending damage
    /// over the source. (A part being streamed is a snapshot taken before
    /// this update: it leaves the canvas equal to the framebuffer as it was
    /// outside the viewer's damage.) Otherwise the destination becomes
    /// damage. Copies are checked in order, so one whose source is an
    /// earlier refused copy's destination is refused too. A copy of a lossy
    /// area makes its destination lossy.
    fn hand_out_update(&mut self) {
        self.fb.take_dirty(&mut self.update_damage);
        self.fb.take_copies(&mut self.update_copies);
        self.gen += 1;
        if !self.update_damage.is_empty() {
            log::debug!(
                "t={} update: {} tiles, {} copies, mid-update now {}",
                self.now_ms,
                self.update_damage.count(),
                self.update_copies.len(),
                self.fb.has_changes()
            );
            if let Some(last) = self.last_change_ms {
                let dt = self.now_ms.wrapping_sub(last).min(1000) as f64;
                self.change_interval_ms = 0.8 * self.change_interval_ms + 0.2 * dt;
            }
            self.last_change_ms = Some(self.now_ms);
        }
        for (_, v) in self.viewers.iter_mut() {
            if !v.joined {
                continue;
            }
            v.dropped += v.has_changes() as u64;
            let can_copy = !v.mid_update_pixels;
            v.mid_update_pixels = false;
            for op in &self.update_copies {
                if can_copy && v.copies.len() < MAX_VIEWER_COPIES && !v.damage.intersects(op.src()) {
                    v.copies.push(*op);
                    v.lossy.copied(op, self.now_ms);
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
        let flags = if v.view_only { proto::hello_flags::VIEW_ONLY } else { 0 }
            | if self.resize_supported { proto::hello_flags::RESIZE } else { 0 }
            | if self.rfb.unicode_clipboard() { proto::hello_flags::UNICODE_CLIPBOARD } else { 0 };
        proto::server_hello(&mut v.pending, w, h, flags, &self.name);
        v.news = News { cursor: !self.cursor_msg.is_empty(), leds: self.leds.is_some(), ..News::default() };
        v.damage.reset(w, h);
        v.lossy.reset(w, h);
        v.copies.clear();
    }

    /// A binary message from viewer `idx`, received at `now`. Server-bound
    /// RFB goes to `to_server`. An error means: close this viewer with that
    /// code. `at` says who sent it (password throttling).
    pub fn handle_viewer_message(
        &mut self,
        idx: usize,
        msg: &[u8],
        now: Instant,
        to_server: &mut Vec<u8>,
        at: &mut Attempt<'_>,
    ) -> Result<(), BadInput> {
        self.tick(now);
        if let Some((peer, true)) = self.vnc_attempt {
            self.vnc_attempt = None;
            at.guard.succeeded(peer, &self.key);
        }
        proto::parse_all(msg, |input| self.viewer_input(idx, input, now, to_server, at))?;
        self.maybe_request(to_server);
        Ok(())
    }

    fn viewer_input(
        &mut self,
        idx: usize,
        input: Input<'_>,
        now: Instant,
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
            Input::Accept { formats } => {
                v.webp = formats & proto::accept::WEBP != 0;
                return Ok(());
            }
            Input::Password(_) | Input::Credentials { .. } => return self.login(idx, &input, to_server, at),
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
                    v.pacer.on_painted(id, now);
                } // else: a repeated or older ack; nothing new acknowledged
            }
            Input::Received(id) => {
                if v.last_sent.wrapping_sub(id) >= 1 << 31 {
                    return Err(policy("receipt for a frame never sent"));
                }
                if v.pacer.on_received(id, now) {
                    log_ack(self.now_ms, idx, id, &v.pacer);
                }
            }
            Input::Key { down, keysym, code } => {
                // By scancode when the server takes them and the code is
                // known (the server applies its own layout), else by keysym.
                if !v.view_only {
                    let keycode = rfb_keycode(code).unwrap_or(0);
                    self.rfb.key_event_ext(down, keysym, keycode, to_server);
                }
            }
            Input::Pointer { x, y, mask } => {
                if !v.view_only {
                    let x = x.min(self.fb.width().saturating_sub(1));
                    let y = y.min(self.fb.height().saturating_sub(1));
                    self.pointer = Some((x, y));
                    self.rfb.pointer_event_ext(mask, x, y, to_server);
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
        let ready = self.phase == Phase::Ready;
        let v = &mut self.viewers[idx];
        match self.ask {
            Some(ask) if self.phase == Phase::NeedPassword || (ready && self.browser_login.is_some()) => {
                ask.write(&mut v.pending)
            }
            _ if ready => {
                v.authorized = true;
                self.join(idx);
            }
            _ => {}
        }
    }

    /// A `Password` or `Credentials` message from viewer `idx`: the answer
    /// for the VNC server, or a joiner's proof that it knows it. Either way
    /// throttled per address and per session ([`super::PasswordGuard`]); a
    /// blocked viewer is closed with "too many attempts, retry in N s".
    fn login(
        &mut self,
        idx: usize,
        input: &Input<'_>,
        to_server: &mut Vec<u8>,
        at: &mut Attempt<'_>,
    ) -> Result<(), BadInput> {
        let policy = |reason| BadInput { code: close::POLICY_VIOLATION, reason };
        let Some(ask) = self.ask else { return Err(policy("no password was asked for")) };
        let answer = match Answer::of(ask, input) {
            Some(Ok(a)) => a,
            Some(Err(why)) => return Err(policy(why)),
            None => return Ok(()),
        };
        let checked = matches!((&self.phase, &self.browser_login), (Phase::NeedPassword, _) | (Phase::Ready, Some(_)));
        if checked {
            if let Err(b) = at.guard.check(at.peer, &self.key, at.now) {
                let why = format!("too many attempts, retry in {} s", b.retry_secs());
                self.viewers[idx].fail(close::POLICY_VIOLATION, &why);
                return Ok(());
            }
        }
        match (&self.phase, &self.browser_login) {
            (Phase::NeedPassword, _) => {
                // A failure until the VNC server accepts it (a refusal ends
                // the session, and with it any chance to count it later).
                at.guard.failed(at.peer, &self.key, at.now);
                self.vnc_attempt = Some((at.peer, false));
                self.viewers[idx].authorized = true;
                self.phase = Phase::Handshake;
                let sent = match &answer.username {
                    Some(user) => self.rfb.set_credentials(user, &answer.password, to_server),
                    None => self.rfb.set_password(&answer.password, to_server),
                };
                self.browser_login = Some(answer);
                if let Err(e) = sent {
                    self.fail_rfb(&e);
                }
                Ok(())
            }
            (Phase::Ready, Some(known)) => {
                if known.matches(&answer) {
                    at.guard.succeeded(at.peer, &self.key);
                    self.viewers[idx].authorized = true;
                    self.join(idx);
                } else {
                    at.guard.failed(at.peer, &self.key, at.now);
                    self.wrong_login(idx);
                }
                Ok(())
            }
            (Phase::Handshake, Some(_)) => Ok(()), // verdict pending; joined on Connected if right
            _ => Err(policy("no password was asked for")),
        }
    }

    /// A joiner gave another answer than the one that unlocked the session:
    /// it is refused (1008; the guess is counted by the caller).
    fn wrong_login(&mut self, idx: usize) {
        let what = match self.ask {
            Some(Ask::Credentials) => "wrong user name or password",
            _ => "wrong password",
        };
        self.viewers[idx].fail(close::POLICY_VIOLATION, what);
    }

    /// Compose the next WebSocket message for viewer `idx` at `now`,
    /// appended to `out`: its pending messages and state news, or the next
    /// message of its current frame or part (starting one when it has
    /// something to send and its pacer lets it, see the module docs).
    /// After sending it the caller reports the bytes that went on the wire
    /// with [`Session::sent`].
    pub fn compose(&mut self, idx: usize, now: Instant, out: &mut Vec<u8>) -> Composed {
        let now_ms = self.tick(now);
        self.last_now = Some(now);
        // An update half applied: damage it does not touch may go (its
        // pixels are final), the rest waits for the update's end.
        let waited = if self.fb.has_changes() {
            now.saturating_duration_since(*self.mid_since.get_or_insert(now)) >= MID_UPDATE_WAIT
        } else {
            self.mid_since = None;
            true
        };

        let interval = Duration::from_millis(self.change_interval_ms as u64);
        let quiet_ms = frames::quiet_ms(self.change_interval_ms);
        let refine_after_ms = frames::refine_after_ms(self.change_interval_ms);
        let quiet = self.last_change_ms.is_none_or(|t| now_ms.wrapping_sub(t) >= quiet_ms);
        let Session {
            fb,
            viewers,
            cursor_msg,
            clipboard_msg,
            name,
            parts,
            gen,
            pointer,
            refine,
            aside,
            islands,
            lossless,
            model,
            leds,
            ..
        } = self;
        let fb: &Framebuffer = fb;
        let partial = fb.dirty();
        let settled = |d: &TileSet| waited || !d.overlaps(partial);
        let Some(v) = viewers.get_mut(idx) else { return Composed::Nothing };
        v.flush = false;
        let start_len = out.len();
        out.extend_from_slice(&v.pending);
        v.pending.clear();
        if v.close.is_some() || !v.joined {
            return if out.len() > start_len { Composed::Deflate } else { Composed::Nothing };
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
        if let (true, Some(leds)) = (news.leds, *leds) {
            proto::led_state(out, leds);
        }
        if out.len() > start_len {
            return Composed::Deflate;
        }
        if v.writing.is_none() {
            v.pacer.tick(now);
            let jpeg_at = |level: usize, optimise_tables: bool| {
                (!*lossless).then(|| Jpeg { quality: pacing::LEVELS[level], bpp: model.bpp(level), optimise_tables })
            };
            // Held back by the pacer: only a small change may go (an aside,
            // or a picture that is small), not the next part.
            let urgent_only = !v.pacer.can_send(now);
            let part = v.pacer.part_size();
            let jpeg = jpeg_at(v.level, v.optimise_tables);
            let bpp = jpeg.map_or(3.0, |j| j.bpp);
            let fits = if urgent_only { pacing::SMALL_FRAME } else { 2 * part };
            // Damage apart from the picture being sent, or (before a new
            // picture) small changes apart from its big one, go as an aside:
            // ahead of the picture's next part, or of its pacing and encoding.
            let want_aside = match &v.picture {
                Some(_) if v.last_aside && !urgent_only => false,
                Some(held) => {
                    // Not near its content either: changes there are of the
                    // same content and wait to be a coherent picture.
                    let picture = parts.part(held.enc);
                    aside.copy_disjoint(&v.damage, picture.area());
                    if let Some(b) = picture.content_box() {
                        aside.clear_tiles_of(b);
                    }
                    true
                }
                None if v.damage.is_empty() || urgent_only && !v.pacer.can_send_small() => false,
                None => {
                    islands.apart(fb, &v.damage, aside);
                    true
                }
            };
            let aside_ready = want_aside
                && v.copies.is_empty()
                && !aside.is_empty()
                && settled(aside)
                && frames::estimate(fb, aside, bpp) <= fits;
            if urgent_only
                && !(v.pacer.can_send_small()
                    && (v.picture.is_some() || aside_ready || small_damage(fb, &v.damage, &v.copies, jpeg)))
            {
                return Composed::Nothing;
            }
            let id = v.last_sent.wrapping_add(1);
            let mut writing = None;
            if aside_ready {
                let req = Request {
                    gen: *gen,
                    what: What::Aside { room: part, jpeg },
                    ratio: v.ratio,
                    damage: aside,
                    copies: &[],
                    refine: &TileSet::new(0, 0),
                    pointer: *pointer,
                };
                let enc = parts.get(fb, &req);
                let e = parts.part(enc);
                v.damage.clear_tiles_in(aside);
                v.damage.union_from(&e.left);
                v.mid_update_pixels |= e.mid_update;
                v.lossy.apply(&e.notes, now_ms);
                log::debug!("t={now_ms} viewer {idx}: aside {id}: {} B", e.cost(v.ratio));
                writing = Some(Writing { enc, cursor: Cursor::default(), id, out: Out::Aside, budget: u64::MAX });
            } else if let Some(held) = &v.picture {
                if !urgent_only {
                    let out =
                        if held.cursor.note() < parts.part(held.enc).prefix_end() { Out::Prefix } else { Out::Part };
                    writing = Some(Writing { enc: held.enc, cursor: held.cursor, id, out, budget: part });
                }
            } else if v.has_changes() && settled(&v.damage) {
                let jpeg = if *lossless {
                    None
                } else {
                    let mut pixels = 0;
                    v.damage.for_each_run(|r| pixels += encode::photo_pixels(fb, r));
                    v.level = pacing::choose_level(model, v.pacer.bw(), pixels, interval);
                    v.optimise_tables = pacing::optimise_tables(model, v.pacer.bw(), pixels, interval, v.level);
                    jpeg_at(v.level, v.optimise_tables)
                };
                let req = Request {
                    gen: *gen,
                    what: What::Picture { jpeg },
                    ratio: v.ratio,
                    damage: &v.damage,
                    copies: &v.copies,
                    refine: &TileSet::new(0, 0),
                    pointer: *pointer,
                };
                let made = parts.encoded;
                let enc = parts.get(fb, &req);
                let e = parts.part(enc);
                if parts.encoded != made {
                    // The model predicts optimised tables' bytes.
                    let tables = if v.optimise_tables { 1.0 } else { pacing::STANDARD_TABLES_BYTES };
                    model.observe(v.level, e.stats.jpeg_pixels, (e.stats.jpeg_bytes as f64 / tables) as u64);
                }
                v.damage.clear();
                v.copies.clear();
                v.mid_update_pixels |= e.mid_update;
                v.lossy.apply(&e.notes, now_ms);
                let cost = e.cost(v.ratio);
                log::debug!(
                    "t={now_ms} viewer {idx}: picture {id}: {cost} B ({} messages, JPEG {} px {} B at {:?}), part {part} B, \
                     {} in flight of {}, bw {:?} B/s, min_rtt {:?}, {}",
                    e.notes.len(),
                    e.stats.jpeg_pixels,
                    e.stats.jpeg_bytes,
                    jpeg.map(|j| (j.quality, if j.optimise_tables { "optimised" } else { "standard" })),
                    v.pacer.in_flight(),
                    v.pacer.cwnd(),
                    v.pacer.bw().map(|b| b as u64),
                    v.pacer.min_rtt(),
                    v.pacer.mode()
                );
                // One frame when it fits a part, unless exact messages can go
                // ahead of its images (a small change away from a photo).
                let mixed = e.prefix_end() > 0 && e.prefix_end() < e.notes.len();
                v.pacer.burst(cost);
                writing = Some(if cost <= part && !mixed {
                    Writing { enc, cursor: Cursor::default(), id, out: Out::Frame, budget: u64::MAX }
                } else {
                    v.picture = Some(Held { enc, cursor: Cursor::default() });
                    let out = if e.prefix_end() > 0 { Out::Prefix } else { Out::Part };
                    Writing { enc, cursor: Cursor::default(), id, out, budget: part }
                });
            } else if !v.has_changes() {
                v.lossy.due(now_ms, refine_after_ms, quiet, &v.damage, refine);
                if !refine.is_empty() {
                    let req = Request {
                        gen: *gen,
                        what: What::Refine { room: part, webp: v.webp },
                        ratio: v.ratio,
                        damage: &TileSet::new(0, 0),
                        copies: &[],
                        refine,
                        pointer: *pointer,
                    };
                    let enc = parts.get(fb, &req);
                    let e = parts.part(enc);
                    v.mid_update_pixels |= e.mid_update;
                    v.lossy.apply(&e.notes, now_ms);
                    log::debug!("t={now_ms} viewer {idx}: refinement {id}: {} B", e.cost(v.ratio));
                    writing = Some(Writing { enc, cursor: Cursor::default(), id, out: Out::Frame, budget: u64::MAX });
                } else {
                    v.pacer.app_limited();
                }
            }
            let Some(w) = writing else { return Composed::Nothing };
            v.pacer.start(id, now);
            v.writing = Some(w);
        }
        let Some(w) = v.writing.as_mut() else { return Composed::Nothing };
        let e = parts.part(w.enc);
        let stop = if w.out == Out::Prefix { e.prefix_end() } else { e.notes.len() };
        let (raw, cost) = e.next_message(&mut w.cursor, w.budget, v.ratio, w.out == Out::Part, stop, out);
        w.budget = w.budget.saturating_sub(cost);
        let done = e.done(&w.cursor);
        let prefix_done = w.out == Out::Prefix && w.cursor.note() >= e.prefix_end();
        if done || prefix_done || (w.out.of_picture() && w.budget == 0) {
            let kind = if w.out == Out::Part && !done {
                proto::end_part(out, w.id, false);
                Kind::Part
            } else {
                if w.out == Out::Part {
                    proto::end_part(out, w.id, true);
                } else {
                    proto::end_frame(out, w.id);
                }
                Kind::Frame
            };
            match (w.out.of_picture(), done) {
                (true, true) => {
                    if let Some(h) = v.picture.take() {
                        parts.release(h.enc);
                    }
                }
                (true, false) => {
                    if let Some(h) = &mut v.picture {
                        h.cursor = w.cursor;
                    }
                }
                (false, _) => parts.release(w.enc),
            }
            log::trace!("t={now_ms} viewer {idx}: {:?} {} ends ({kind:?})", w.out, w.id);
            v.pacer.end(kind);
            v.last_sent = w.id;
            v.last_aside = w.out == Out::Aside;
            v.flush = v.last_aside;
            v.writing = None;
        }
        if raw {
            Composed::Raw
        } else {
            Composed::Deflate
        }
    }

    /// The message `compose` produced for viewer `idx` (`protocol` bytes)
    /// went to its socket as `wire` bytes (after compression and framing).
    pub fn sent(&mut self, idx: usize, composed: Composed, protocol: usize, wire: usize, now: Instant) {
        let Some(v) = self.viewers.get_mut(idx) else { return };
        v.pacer.on_wire(wire, now);
        if composed == Composed::Deflate && protocol >= 1024 {
            let r = (wire as f64 / protocol as f64).clamp(0.001, 1.1);
            v.ratio = 0.8 * v.ratio + 0.2 * r;
        }
    }

    /// When the session wants to be called although nothing else happens:
    /// `compose` when a viewer with something to send is held back by its
    /// pacer for a while, or its JPEG areas fall due for refinement;
    /// `handle_timeout` when a linger runs out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let compose = self.epoch.zip(self.last_now).and_then(|(epoch, last)| self.compose_timeout(epoch, last));
        compose.into_iter().chain(self.linger_until).min()
    }

    fn compose_timeout(&self, epoch: Instant, last: Instant) -> Option<Instant> {
        self.viewers
            .iter()
            .filter(|(_, v)| v.joined && v.close.is_none() && v.writing.is_none())
            .filter_map(|(_, v)| {
                let paced = v.pacer.next_send_at();
                if v.picture.is_some() || v.has_changes() {
                    return paced;
                }
                let due = v.lossy.next_due(frames::refine_after_ms(self.change_interval_ms))?;
                let quiet_ms = frames::quiet_ms(self.change_interval_ms);
                let quiet = self.last_change_ms.map_or(due, |t| t.wrapping_add(quiet_ms));
                let due = epoch + Duration::from_millis(due.min(quiet) as u64);
                Some(paced.map_or(due, |p| p.max(due)))
            })
            .filter(|&t| t > last)
            .min()
    }

    /// Whether what `compose` gave viewer `idx` last should be written to
    /// its socket before `compose` is called again: an aside ended, and the
    /// next call may take a picture's encoding time.
    pub fn flush_first(&self, idx: usize) -> bool {
        self.viewers.get(idx).is_some_and(|v| v.flush)
    }

    /// Pacing counters and estimates of viewer `idx` (for /metrics).
    pub fn viewer_stats(&self, idx: usize) -> Option<ViewerStats> {
        self.viewers.get(idx).map(|v| ViewerStats {
            frames: v.last_sent as u64,
            dropped: v.dropped,
            unacked: v.unacked(),
            in_flight: v.pacer.in_flight(),
            rate: v.pacer.bw().unwrap_or(0.0),
            min_rtt: v.pacer.min_rtt().unwrap_or_default(),
            last_rtt: v.pacer.last_rtt(),
            jpeg: pacing::LEVELS[v.level],
        })
    }

    /// Link estimate of viewer `idx`: (bandwidth bytes/s, path delay, JPEG
    /// quality of its last picture).
    pub fn viewer_link(&self, idx: usize) -> Option<(Option<f64>, Option<Duration>, u8)> {
        self.viewers.get(idx).map(|v| (v.pacer.bw(), v.pacer.min_rtt(), pacing::LEVELS[v.level]))
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
}

/// Whether `damage` (and no copies) is small enough to go past the pacer
/// (`pacing::SMALL_FRAME`), judged from its area first and then from
/// samples.
fn small_damage(fb: &Framebuffer, damage: &TileSet, copies: &[CopyOp], jpeg: Option<Jpeg>) -> bool {
    if !copies.is_empty() || damage.is_empty() {
        return false;
    }
    let mut area = 0;
    damage.for_each_run(|r| area += r.area());
    area <= frames::SMALL_AREA && frames::estimate(fb, damage, jpeg.map_or(3.0, |j| j.bpp)) <= pacing::SMALL_FRAME
}

fn log_ack(now_ms: u32, idx: usize, id: u32, p: &Pacer) {
    log::debug!(
        "t={now_ms} viewer {idx}: received {id}: rtt {:?}, bw {:?} B/s, min_rtt {:?}, {} in flight of {}, {} \
         unpainted, part {}, {}",
        p.last_rtt(),
        p.bw().map(|b| b as u64),
        p.min_rtt(),
        p.in_flight(),
        p.cwnd(),
        p.unpainted(),
        p.part_size(),
        p.mode()
    );
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod viewer_tests;
