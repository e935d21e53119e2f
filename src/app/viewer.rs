//! Gateway mode on the transport: browser viewers, and the RFB connection
//! (`VncLink`) of the session they share. Every call into
//! `gateway::Session` is in this module; the decisions are the session's.
//!
//! ```text
//!   viewer:  Joining ──ClientHello; session found or opened──▶ Watching(ViewerId)
//!               ├──no target / cannot connect──▶ (Error message, Close) Detached
//!               └──no ClientHello within --handshake-timeout──▶ (Error, Close 1008) Detached
//!   session: VncLink connecting ─▶ RFB handshake ─▶ ready ──EOF / error / last viewer gone──▶ ended
//! ```
//!
//! Data flow: a viewer's messages go to `Session::handle_viewer_message`,
//! which writes RFB input straight into the link's output buffer; a viewer
//! is decoded only while that buffer has `VNC_OUT_HEADROOM` free. The
//! server's updates go to `Session::handle_server_input`; then every viewer
//! with room is woken, and composes its next message with
//! `Session::compose` straight into its own output buffer, behind the
//! WebSocket header room (`Endpoint::send_with`; through the deflater when
//! permessage-deflate is on, except for mostly-JPEG messages), while that
//! buffer is below `gateway::LOW_WATER`, and reports what went on the wire
//! with `Session::sent` (its pacing).
//!
//! Time: the link's `poll_timeout` is the handshake deadline and the
//! session's own (`Session::poll_timeout`: JPEG areas due for refinement, the
//! end of a linger); at it, `Session::handle_timeout` runs and the viewers
//! with room are woken. A session whose last viewer left lingers
//! (`Session::remove_viewer` pauses the server's updates) or ends.

use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::{Interest, Token};
use slab::Slab;

use super::metrics::Refused;
use super::{finish_io, App, Conn, Ctx, Peer, Step, READS_PER_WAKEUP};
use crate::config::{Target, TargetAddr};
use crate::gateway::session::Phase;
use crate::gateway::{Attempt, Composed, Gateways, ViewerId, CHUNK, LOW_WATER};
use crate::http;
use crate::transport::{Endpoint, Feed, Flow, Message, Read, Stream};
use crate::ws::{close, Body, Delivery, Limits, WsSession};

/// Largest RFB unit we buffer (ServerCutText is capped at 1 MiB by the client).
const VNC_IN_CAP: usize = 4 << 20;
/// Input to the VNC server (key/pointer/clipboard) waiting to be written.
const VNC_OUT_CAP: usize = 2 << 20;
/// A viewer's buffered output: below LOW_WATER before each chunk, plus one chunk.
const VIEWER_OUT_CAP: usize = 8 << 20;
/// Viewer input is decoded only while the VNC side has this much room.
const VNC_OUT_HEADROOM: usize = 64 << 10;
/// Viewer input is decoded only while its own output holds at most this
/// (a viewer that floods pings and never reads stops being read).
const VIEWER_OUT_PAUSE: usize = LOW_WATER + CHUNK + (64 << 10);
/// A VNC server must accept the TCP connection and finish the RFB handshake
/// (waiting for a browser's password excluded) within this, else the
/// session fails: a server that accepts and then says nothing would
/// otherwise leave its viewers at "connecting" forever.
const VNC_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Session wake-ups (`Session::poll_timeout`) at least this far apart: a
/// refinement due for a viewer that cannot take it yet (its socket is full)
/// must not spin the loop.
const MIN_WAKE_GAP: Duration = Duration::from_millis(5);

/// A browser on the gateway path.
pub enum ViewerApp {
    /// Upgraded; the session is found or opened once its ClientHello came
    /// (a bare upgrade opens no connection to a VNC server).
    Joining(Box<Joining>),
    Watching(ViewerId),
}

/// What an upgraded viewer asked for (`Ctx::target_for`).
pub struct Joining {
    session_key: String,
    /// The token-file token that chose the target (None: `--target`, or a
    /// JWT's own target).
    token: Option<String>,
    target: Result<Target, String>,
    view_only: bool,
    /// The ClientHello must have come by then (`--handshake-timeout`).
    deadline: Instant,
}

impl ViewerApp {
    /// A joining viewer's ClientHello deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            ViewerApp::Joining(j) => Some(j.deadline),
            ViewerApp::Watching(_) => None,
        }
    }
}

/// The RFB connection of one session.
pub struct VncLink {
    session: usize,
    /// The token and address it was opened for: a token-file reload that
    /// removes or re-points the token ends the session.
    token: Option<String>,
    addr: TargetAddr,
    connected: bool,
    /// The TCP connect and RFB handshake must be done by then; None while a
    /// browser is being asked for the password, and once ready.
    deadline: Option<Instant>,
    /// The last session wake-up (see `MIN_WAKE_GAP`).
    woke: Option<Instant>,
    /// The session is over: the link closes at its next drive.
    ended: bool,
    /// How long the server's updates take to arrive (/metrics).
    updates: super::metrics::UpdateTimer,
}

impl VncLink {
    /// Key of the session in `Gateways::sessions`.
    pub fn session(&self) -> usize {
        self.session
    }

    pub fn update_timer(&self) -> super::metrics::UpdateTimer {
        self.updates
    }

    /// The handshake deadline, or the session's next wake-up.
    pub fn poll_timeout(&self, gw: &Gateways) -> Option<Instant> {
        let session = gw.sessions.get(self.session).and_then(|s| s.poll_timeout());
        let session = match (session, self.woke) {
            (Some(t), Some(w)) => Some(t.max(w + MIN_WAKE_GAP)),
            (t, _) => t,
        };
        match (self.deadline, session) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A WebSocket upgrade on the gateway path: switch protocols now, find the
/// session at the next drive (which may open a connection).
pub fn attach_pending(conn: &mut Conn, _key: usize, up: http::Upgrade, ctx: &mut Ctx) {
    let (session_key, token, target) = ctx.target_for(&up);
    let view_only = matches!(http::query_param(&up.query, "view_only"), Some("1" | "true"));
    let deflate = crate::ws::deflate::negotiate(&up.extensions);
    let reply = deflate.as_ref().map(|(_, r)| r.as_str());
    let _ = conn.ep.output.push(&http::upgrade_response(&up, reply), &mut ctx.pool);
    conn.ep.output.set_cap(VIEWER_OUT_CAP);
    let limits = Limits { max_message: ctx.cfg.max_message.min(crate::gateway::proto::MAX_CLIPBOARD + 64) };
    conn.ep.upgrade(WsSession::new(limits, Delivery::Whole, deflate.map(|(p, _)| p)), ctx.now);
    conn.label = format!("{} → (joining)", up.path);
    let deadline = ctx.now + ctx.cfg.handshake_timeout;
    let joining = Joining { session_key, token, target, view_only, deadline };
    conn.set_app(App::Viewer(ViewerApp::Joining(Box::new(joining))));
}

/// A joining viewer that has not said ClientHello in time: refused (1008).
pub fn handle_timeout(conn: &mut Conn, ctx: &mut Ctx) -> Option<Step> {
    let App::Viewer(v @ ViewerApp::Joining(_)) = &conn.app else { return None };
    if v.poll_timeout().is_none_or(|d| ctx.now < d) {
        return None;
    }
    let why = format!("no ClientHello within {} s", ctx.cfg.handshake_timeout.as_secs());
    Some(refuse(conn, &why, close::POLICY_VIOLATION, Some(Refused::Target), ctx))
}

pub fn drive(conns: &mut Slab<Conn>, key: usize, ctx: &mut Ctx) -> Step {
    let step = match conns.get(key).map(|c| &c.app) {
        Some(App::Viewer(ViewerApp::Joining { .. })) => join(conns, key, ctx),
        Some(App::Viewer(ViewerApp::Watching(vid))) => {
            let vid = *vid;
            drive_viewer(conns, key, vid, ctx)
        }
        Some(App::Vnc(_)) => return drive_vnc(conns, key, ctx),
        _ => Step::Stay,
    };
    match step {
        // A viewer's peer may have gone during the last read.
        Step::Stay => conns.get_mut(key).map_or(Step::Stay, |c| finish_io(c, ctx)),
        close => close,
    }
}

// ------------------------------------------------------------- viewers

/// Wait for the viewer's ClientHello, then find or open its session and
/// hand the hello to it.
fn join(conns: &mut Slab<Conn>, key: usize, ctx: &mut Ctx) -> Step {
    let Some(conn) = conns.get_mut(key) else { return Step::Stay };
    let App::Viewer(ViewerApp::Joining(joining)) = std::mem::replace(&mut conn.app, App::Detached) else {
        return Step::Stay;
    };
    if let Err(why) = &joining.target {
        return refuse(conn, why, close::POLICY_VIOLATION, Some(Refused::Target), ctx);
    }
    let Some(hello) = read_hello(conn, ctx) else {
        conn.app = App::Viewer(ViewerApp::Joining(joining));
        return Step::Stay; // `drive` writes what was answered (pongs, a Close)
    };
    // The version is checked here, before a VNC connection is opened for a
    // viewer that could never use it (docs/protocol.md "Handshake").
    if hello.get(1) != Some(&crate::gateway::proto::VERSION) {
        return refuse(conn, "unsupported protocol version", close::PROTOCOL_ERROR, None, ctx);
    }
    let Joining { session_key, token, target, view_only: view_only_param, .. } = *joining;
    let Ok(target) = target else { return Step::Stay };
    let sidx = match ctx.gw.find(&session_key) {
        Some(s) => s,
        None => match open_session(conns, &session_key, token, &target, ctx) {
            Ok(s) => s,
            Err(why) => return refuse(&mut conns[key], &why, close::INTERNAL_ERROR, Some(Refused::Target), ctx),
        },
    };
    let view_only = ctx.cfg.view_only || target.view_only || view_only_param;
    let session = &mut ctx.gw.sessions[sidx];
    let vid = ViewerId { session: sidx, viewer: session.add_viewer(key, view_only) };
    let conn = &mut conns[key];
    conn.label = format!("{} → {}{}", crate::gateway::PATH, session.label, if view_only { " (view only)" } else { "" });
    info!("{}: WebSocket open {}", conn.peer, conn.label);
    conn.set_app(App::Viewer(ViewerApp::Watching(vid)));
    deliver_hello(conns, key, vid, &hello, ctx);
    drive_viewer(conns, key, vid, ctx)
}

/// Read until the first data message. Some(it) when it is a ClientHello
/// (`join` checks its version); any other first message closes the
/// WebSocket (1002), as the session would.
fn read_hello(conn: &mut Conn, ctx: &mut Ctx) -> Option<Vec<u8>> {
    let mut hello = None;
    for _ in 0..READS_PER_WAKEUP {
        let feed = Feed { input: usize::MAX, output: VIEWER_OUT_PAUSE };
        conn.ep.read_messages(&mut ctx.pool, &mut ctx.scratch, ctx.now, feed, |msg, _| match msg {
            Message::Binary(m) if m.first() == Some(&crate::gateway::proto::from_browser::CLIENT_HELLO) => {
                hello = Some(m.to_vec());
                Flow::Pause
            }
            Message::Binary(_) => Flow::Close(close::PROTOCOL_ERROR, "ClientHello must come first".into()),
            Message::Text(_) => {
                Flow::Close(close::UNSUPPORTED_DATA, "text messages are not part of the protocol".into())
            }
        });
        if hello.is_some() || conn.ep.close_sent() || !matches!(conn.ep.read(&mut ctx.pool, ctx.now), Read::Data(_)) {
            break;
        }
    }
    if conn.ep.read_eof && !conn.ep.close_received() {
        conn.ep.mark_abnormal();
    }
    hello
}

/// Give a new viewer's ClientHello message to its session (RFB it causes
/// goes to the session's VNC connection).
fn deliver_hello(conns: &mut Slab<Conn>, key: usize, vid: ViewerId, hello: &[u8], ctx: &mut Ctx) {
    let vnc_key = ctx.gw.sessions.get(vid.session).and_then(|s| s.conn);
    let peer = conns[key].client_addr();
    let Gateways { sessions, guard, .. } = &mut ctx.gw;
    let Some(session) = sessions.get_mut(vid.session) else { return };
    let mut spare = Vec::new();
    let to_server = match vnc_key.filter(|&k| k != key).and_then(|k| conns.get_mut(k)) {
        Some(link) => link.ep.output.append(64, &mut ctx.pool),
        None => &mut spare,
    };
    let at = &mut Attempt { guard, peer, now: ctx.now };
    let result = session.handle_viewer_message(vid.viewer, hello, ctx.now, to_server, at);
    if let Some(k) = vnc_key {
        ctx.wake.push(k);
    }
    if let Err(bad) = result {
        let conn = &mut conns[key];
        conn.ep.input.release(&mut ctx.pool);
        conn.ep.read_eof = true;
        conn.ep.send_close(bad.code, bad.reason, &mut ctx.pool, ctx.now);
    }
}

/// Tell a browser why it cannot have a session, then close; `counted` is
/// the /metrics refusal reason, if it is one.
fn refuse(conn: &mut Conn, why: &str, code: u16, counted: Option<Refused>, ctx: &mut Ctx) -> Step {
    // `why` is ours; a token in it is escaped where it is made.
    info!("{}: WebSocket {}: refused: {why}", conn.peer, crate::gateway::PATH);
    if let Some(reason) = counted {
        ctx.metrics.refuse(reason);
    }
    conn.label = format!("{} → (none)", crate::gateway::PATH);
    conn.ep.send_with(&mut ctx.pool, &mut ctx.scratch, false, why.len() + 8, |v| {
        crate::gateway::proto::error(v, why);
        true
    });
    conn.ep.send_close(code, why, &mut ctx.pool, ctx.now);
    conn.set_app(App::Detached);
    finish_io(conn, ctx)
}

/// Create a session and start its TCP connection to the VNC server.
fn open_session(
    conns: &mut Slab<Conn>,
    session_key: &str,
    token: Option<String>,
    target: &Target,
    ctx: &mut Ctx,
) -> Result<usize, String> {
    let mut stream =
        Stream::connect(&target.addr).map_err(|e| format!("cannot connect to VNC server {}: {e}", target.addr))?;
    let sidx = ctx.gw.create(session_key, target);
    let entry = conns.vacant_entry();
    let vkey = entry.key();
    if let Err(e) = ctx.registry.register(&mut stream, Token(vkey), Interest::READABLE | Interest::WRITABLE) {
        ctx.gw.remove(sidx);
        return Err(format!("cannot register VNC connection: {e}"));
    }
    let socket = match &target.addr {
        TargetAddr::Tcp(a) => *a,
        TargetAddr::Unix(_) => ([0, 0, 0, 0], 0).into(),
    };
    let ep = Endpoint::new(stream, VNC_IN_CAP, VNC_OUT_CAP, ctx.now);
    let link = VncLink {
        session: sidx,
        token,
        addr: target.addr.clone(),
        connected: false,
        deadline: Some(ctx.now + VNC_HANDSHAKE_TIMEOUT),
        woke: None,
        ended: false,
        updates: Default::default(),
    };
    let id = ctx.next_id();
    entry.insert(Conn::new(id, ep, App::Vnc(link), Peer { socket, client: socket.ip() }, ctx.now));
    ctx.gw.sessions[sidx].conn = Some(vkey);
    ctx.wake.push(vkey); // arms its handshake deadline
    info!("gateway session {} → {}: connecting", sidx, target.addr);
    Ok(sidx)
}

/// Viewer input to the session, then output composed for the viewer.
fn drive_viewer(conns: &mut Slab<Conn>, key: usize, vid: ViewerId, ctx: &mut Ctx) -> Step {
    let vnc_key = ctx.gw.sessions.get(vid.session).and_then(|s| s.conn);
    let now = ctx.now;
    let mut to_vnc = false;
    let mut any_input = false;
    let mut step = Step::Stay;
    let mut again = true;
    for _ in 0..READS_PER_WAKEUP {
        let (conn, mut link) = match vnc_key {
            Some(k) if k != key => match conns.get2_mut(key, k) {
                Some((c, l)) => (c, Some(l)),
                None => return Step::Stay,
            },
            _ => match conns.get_mut(key) {
                Some(c) => (c, None),
                None => return Step::Stay,
            },
        };
        let Gateways { sessions, guard, .. } = &mut ctx.gw;
        let Some(session) = sessions.get_mut(vid.session) else { return Step::Stay };
        // Input: while the VNC server's buffer has room for what it causes.
        let mut used = false;
        let link_room = link.as_ref().map_or(0, |l| l.ep.output.room());
        if link_room >= VNC_OUT_HEADROOM {
            let mut to_server = link.as_mut().map(|l| &mut l.ep.output);
            let feed = Feed { input: usize::MAX, output: VIEWER_OUT_PAUSE };
            // Password guesses count against the client, behind a trusted proxy too.
            let at = &mut Attempt { guard, peer: conn.client_addr(), now };
            used = conn.ep.read_messages(&mut ctx.pool, &mut ctx.scratch, now, feed, |msg, reply| match msg {
                Message::Binary(m) => {
                    let Some(out) = to_server.as_deref_mut() else { return Flow::Pause };
                    let before = out.len();
                    let result = session.handle_viewer_message(vid.viewer, m, now, out.append(64, reply.pool()), at);
                    to_vnc |= out.len() > before;
                    match result {
                        Err(bad) => Flow::Close(bad.code, bad.reason.into()),
                        Ok(()) if out.room() < VNC_OUT_HEADROOM => Flow::Pause,
                        Ok(()) => Flow::Continue,
                    }
                }
                Message::Text(_) => {
                    Flow::Close(close::UNSUPPORTED_DATA, "text messages are not part of the protocol".into())
                }
            });
        }
        any_input |= used;
        // Output: compose while the socket buffer is low.
        let mut wrote = false;
        while conn.ep.output.len() < LOW_WATER && !conn.ep.close_sent() {
            let mut composed = Composed::Nothing;
            let sent = conn.ep.send_with(&mut ctx.pool, &mut ctx.scratch, false, CHUNK, |v| {
                composed = session.compose(vid.viewer, now, v);
                match composed {
                    Composed::Nothing => Body::Empty,
                    Composed::Deflate => Body::Deflate,
                    Composed::Raw => Body::Raw,
                }
            });
            let Some(sent) = sent else { break };
            session.sent(vid.viewer, composed, sent.body, sent.wire, now);
            wrote = true;
            if session.flush_first(vid.viewer) {
                break; // an aside leaves before the next picture is encoded
            }
        }
        if conn.ep.output.len() > VIEWER_OUT_CAP {
            warn!("{}: viewer output over its cap; closing", conn.peer);
            conn.ep.read_eof = true;
        }
        if let Some((code, why)) = session.viewer_close(vid.viewer) {
            conn.ep.send_close(code, &why, &mut ctx.pool, ctx.now);
        }
        // Write; bytes that left make room to compose more (next round).
        let flushed = match conn.ep.flush(&mut ctx.pool) {
            Ok(n) => n > 0,
            Err(e) => {
                debug!("{}: write failed: {e}", conn.peer);
                conn.ep.mark_abnormal();
                step = Step::Close("write failed");
                again = false;
                break;
            }
        };
        let got = matches!(conn.ep.read(&mut ctx.pool, ctx.now), Read::Data(_));
        if conn.ep.read_eof && !conn.ep.close_received() {
            conn.ep.mark_abnormal();
        }
        if !(used || wrote || flushed || got) {
            again = false;
            break;
        }
    }
    if again {
        ctx.wake.push(key);
    }
    if let Some(k) = vnc_key {
        if to_vnc {
            ctx.wake.push(k);
        }
        // Composing may have moved the session's next wake-up.
        ctx.rearm.push(k);
    }
    if any_input {
        // The input may have given others something to send (a join, news).
        wake_viewers_with_room(conns, vid.session, Some(key), ctx);
    }
    step
}

/// Wake every viewer of session `sidx` (but `except`) with room to compose
/// (a viewer with a full buffer is driven by its socket's writability
/// instead); one with nothing to send composes nothing.
fn wake_viewers_with_room(conns: &Slab<Conn>, sidx: usize, except: Option<usize>, ctx: &mut Ctx) {
    let Some(s) = ctx.gw.sessions.get(sidx) else { return };
    for (_, v) in s.viewers.iter() {
        let has_room = conns.get(v.client).is_some_and(|c| c.ep.output.len() < LOW_WATER);
        if Some(v.client) != except && has_room {
            ctx.wake.push(v.client);
        }
    }
}

/// Wake every viewer of session `sidx` (the VNC side made room for input).
fn wake_all_viewers(sidx: usize, ctx: &mut Ctx) {
    let Some(s) = ctx.gw.sessions.get(sidx) else { return };
    let clients: Vec<usize> = s.viewers.iter().map(|(_, v)| v.client).collect();
    ctx.wake.extend(clients);
}

/// After a token-file reload: end the sessions whose token was removed or
/// now names another server. Returns how many.
pub fn end_repointed_sessions(conns: &mut Slab<Conn>, ctx: &mut Ctx) -> usize {
    let stale: Vec<usize> = conns
        .iter()
        .filter_map(|(_, c)| match &c.app {
            App::Vnc(l) if !l.ended => Some(l),
            _ => None,
        })
        .filter(|l| l.token.as_ref().is_some_and(|t| ctx.tokens.entries.get(t).is_none_or(|t| t.addr != l.addr)))
        .map(|l| l.session)
        .collect();
    for &sidx in &stale {
        let Some(s) = ctx.gw.sessions.get_mut(sidx) else { continue };
        let why = format!("token '{}' was removed or re-pointed", crate::logsafe::esc(&s.key));
        s.fail(&why, close::GOING_AWAY);
        info!("gateway session {sidx}: ended: {why}");
        end_session(conns, sidx, ctx);
    }
    stale.len()
}

/// A viewer's connection is gone. The session decides whether it ends now
/// or lingers (`Session::remove_viewer`: then the pause of the server's
/// updates goes to the link, and the link's timer to the linger's end).
pub fn detach(conns: &mut Slab<Conn>, app: ViewerApp, ctx: &mut Ctx) {
    let ViewerApp::Watching(vid) = app else { return };
    let Some(s) = ctx.gw.sessions.get_mut(vid.session) else { return };
    let link = s.conn.and_then(|k| conns.get_mut(k)).map(|c| &mut c.ep.output);
    let mut spare = Vec::new();
    let to_server = match link {
        Some(out) => out.append(0, &mut ctx.pool),
        None => &mut spare,
    };
    s.remove_viewer(vid.viewer, ctx.now, to_server);
    if s.is_over() {
        info!("gateway session {} → {}: last viewer left; disconnecting", vid.session, s.label);
        end_session(conns, vid.session, ctx);
    } else if let Some(until) = s.lingering_until() {
        let secs = until.saturating_duration_since(ctx.now).as_secs_f32();
        info!("gateway session {} → {}: last viewer left; kept for {secs:.0} s", vid.session, s.label);
        if let Some(k) = s.conn {
            ctx.wake.push(k); // writes the pause, re-arms its timer
        }
    }
}

/// Drop a session and its VNC connection. Viewers still attached get their
/// last messages (the `Error` from `Session::fail`) and a close, even when
/// their socket backlog is over `LOW_WATER` (their pending output would
/// otherwise be dropped with the session), then are detached.
fn end_session(conns: &mut Slab<Conn>, sidx: usize, ctx: &mut Ctx) {
    let Some(mut s) = ctx.gw.remove(sidx) else { return };
    if let Some(k) = s.conn {
        if let Some(Conn { app: App::Vnc(link), .. }) = conns.get_mut(k) {
            link.ended = true;
            ctx.wake.push(k);
        }
    }
    let viewers: Vec<(usize, usize)> = s.viewers.iter().map(|(i, v)| (i, v.client)).collect();
    for (vidx, client) in viewers {
        let (last, (code, why)) = s.farewell(vidx);
        let Some(c) = conns.get_mut(client) else { continue };
        if !matches!(&c.app, App::Viewer(ViewerApp::Watching(v)) if v.session == sidx) {
            continue;
        }
        c.set_app(App::Detached);
        if !last.is_empty() {
            c.ep.send_binary(&last, &mut ctx.pool, &mut ctx.scratch);
        }
        c.ep.send_close(code, &why, &mut ctx.pool, ctx.now);
        ctx.wake.push(client);
    }
}

// --------------------------------------------------------- VNC sockets

fn drive_vnc(conns: &mut Slab<Conn>, key: usize, ctx: &mut Ctx) -> Step {
    let Some(conn) = conns.get_mut(key) else { return Step::Stay };
    let App::Vnc(link) = &mut conn.app else { return Step::Stay };
    if link.ended {
        return Step::Close("session ended");
    }
    let sidx = link.session;
    let Some(session) = ctx.gw.sessions.get_mut(sidx) else { return Step::Close("session gone") };
    let ep = &mut conn.ep;
    let mut failure: Option<String> = None;
    let mut more = false;
    if !link.connected && ep.ready.writable {
        match ep.stream.finish_connect() {
            Ok(true) => {
                link.connected = true;
                ep.stream.set_nodelay();
                session.connected();
                debug!("gateway session {sidx}: connected");
            }
            Ok(false) => ep.ready.writable = false,
            Err(e) => failure = Some(format!("cannot connect to VNC server {}: {e}", session.label)),
        }
    }
    let mut reads = 0;
    // Bytes a budgeted RFB client left last time are handled first.
    let mut backlog = session.rfb.yielded() && !ep.input.is_empty();
    while failure.is_none() && link.connected {
        if !std::mem::take(&mut backlog) {
            if reads == READS_PER_WAKEUP {
                more = true;
                break;
            }
            reads += 1;
            match ep.read(&mut ctx.pool, ctx.now) {
                Read::Data(_) => {}
                Read::Nothing if ep.input.room() == 0 => {
                    failure = Some("VNC server sent a message larger than the gateway accepts".into());
                    break;
                }
                Read::Nothing => break,
                Read::Eof => {
                    failure = Some(session.rfb.closed_error().to_string());
                    break;
                }
                Read::Failed(e) => {
                    failure = Some(format!("VNC connection failed: {e}"));
                    break;
                }
            }
        }
        let done = session.rfb.updates();
        match session.handle_server_input(ep.input.data(), ep.output.append(0, &mut ctx.pool)) {
            Ok(used) => ep.input.consume(used),
            Err(e) => {
                session.fail_rfb(&e);
                failure = Some(e.to_string());
            }
        }
        link.updates.after_input(session.rfb.updates() - done, session.rfb.in_update(), ctx.now);
        if ep.output.len() > VNC_OUT_CAP {
            failure = Some("VNC server is not reading".into());
        }
        if session.rfb.yielded() {
            // Its work budget is spent (a resize storm): other connections first.
            more = true;
            break;
        }
    }
    ep.input.release_if_empty(&mut ctx.pool);
    let mut drained = false;
    if failure.is_none() && link.connected {
        match ep.flush(&mut ctx.pool) {
            Ok(n) => drained = n > 0, // room made for viewer input that may be waiting
            Err(e) => failure = Some(format!("VNC connection failed: {e}")),
        }
    }
    // The handshake allowance: suspended while a browser is asked for the
    // password, a fresh one for the rest after it, none once ready.
    link.deadline = match session.phase {
        Phase::Ready | Phase::NeedPassword => None,
        Phase::Connecting | Phase::Handshake => Some(link.deadline.unwrap_or(ctx.now + VNC_HANDSHAKE_TIMEOUT)),
    };
    if let Some(why) = failure {
        session.fail(&why, close::INTERNAL_ERROR);
        // The text may be the VNC server's own: escaped for the log.
        info!("gateway session {sidx}: ended: {}", crate::logsafe::esc(&why));
        end_session(conns, sidx, ctx);
        return Step::Close("session ended");
    }
    if more {
        ctx.wake.push(key);
    }
    if drained {
        wake_all_viewers(sidx, ctx);
    }
    wake_viewers_with_room(conns, sidx, None, ctx);
    Step::Stay
}

/// The handshake deadline of a session's RFB connection, and the session's
/// own wake-up (`Session::handle_timeout`): a linger that ran out ends it;
/// otherwise its viewers with room compose (refinements fall due).
pub fn handle_vnc_timeout(conns: &mut Slab<Conn>, key: usize, ctx: &mut Ctx) -> Step {
    let Some(Conn { app: App::Vnc(link), .. }) = conns.get_mut(key) else { return Step::Stay };
    let sidx = link.session;
    let Some(session) = ctx.gw.sessions.get_mut(sidx) else { return Step::Close("session gone") };
    let waiting = matches!(session.phase, Phase::Connecting | Phase::Handshake);
    if waiting && link.deadline.is_some_and(|d| ctx.now >= d) {
        let why = format!(
            "VNC server {} did not complete the connection within {} s",
            session.label,
            VNC_HANDSHAKE_TIMEOUT.as_secs()
        );
        session.fail(&why, close::INTERNAL_ERROR);
        info!("gateway session {sidx}: ended: {why}");
        end_session(conns, sidx, ctx);
        return Step::Close("handshake timeout");
    }
    if session.poll_timeout().is_some_and(|t| t <= ctx.now) {
        link.woke = Some(ctx.now);
        session.handle_timeout(ctx.now);
        if session.is_over() {
            info!("gateway session {sidx} → {}: nobody came back; disconnecting", session.label);
            end_session(conns, sidx, ctx);
            return Step::Close("session ended");
        }
        wake_viewers_with_room(conns, sidx, None, ctx);
    }
    drive_vnc(conns, key, ctx)
}

/// A session's RFB connection was dropped by the loop (shutdown, or its
/// socket failed on write): end the session if that has not happened.
pub fn vnc_gone(conns: &mut Slab<Conn>, link: VncLink, ctx: &mut Ctx) {
    if !link.ended {
        if let Some(s) = ctx.gw.sessions.get_mut(link.session) {
            s.fail("the VNC connection was closed", close::INTERNAL_ERROR);
        }
        end_session(conns, link.session, ctx);
    }
}
