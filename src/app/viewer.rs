//! Gateway mode on the transport: browser viewers, and the RFB connection
//! (`VncLink`) of the session they share. Every call into
//! `gateway::Session` is in this module; the decisions are the session's.
//!
//! ```text
//!   viewer:  Joining ──target found, session found or opened──▶ Watching(ViewerId)
//!               └──no target / cannot connect──▶ (Error message, Close) Detached
//!   session: VncLink connecting ─▶ RFB handshake ─▶ ready ──EOF / error / last viewer gone──▶ ended
//! ```
//!
//! Data flow: a viewer's messages go to `Session::handle_viewer_message`,
//! which writes RFB input straight into the link's output buffer; a viewer
//! is decoded only while that buffer has `VNC_OUT_HEADROOM` free. The
//! server's updates go to `Session::handle_server_input`; then every viewer
//! with something to send is woken, and composes its next chunk with
//! `Session::compose` straight into its own output buffer, behind the
//! WebSocket header room (`Endpoint::send_with`), while that buffer is
//! below `gateway::LOW_WATER`.

use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::{Interest, Token};
use slab::Slab;

use super::{finish_io, App, Conn, Ctx, Peer, Step, READS_PER_WAKEUP};
use crate::config::{Target, TargetAddr};
use crate::gateway::session::Phase;
use crate::gateway::{ViewerId, CHUNK, LOW_WATER};
use crate::http;
use crate::transport::{Endpoint, Feed, Flow, Message, Read, Stream};
use crate::ws::{close, Delivery, Limits, WsSession};

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

/// A browser on the gateway path.
pub enum ViewerApp {
    /// Upgraded; the session is found or opened on the next drive.
    Joining {
        token: Option<String>,
        view_only: bool,
    },
    Watching(ViewerId),
}

/// The RFB connection of one session.
pub struct VncLink {
    session: usize,
    connected: bool,
    /// The TCP connect and RFB handshake must be done by then; None while a
    /// browser is being asked for the password, and once ready.
    deadline: Option<Instant>,
    /// The session is over: the link closes at its next drive.
    ended: bool,
}

impl VncLink {
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }
}

/// A WebSocket upgrade on the gateway path: switch protocols now, find the
/// session at the next drive (which may open a connection).
pub fn attach_pending(conn: &mut Conn, _key: usize, up: http::Upgrade, ctx: &mut Ctx) {
    let token = http::query_param(&up.query, "token").map(str::to_string);
    let view_only = matches!(http::query_param(&up.query, "view_only"), Some("1" | "true"));
    let deflate = crate::ws::deflate::negotiate(&up.extensions);
    let reply = deflate.as_ref().map(|(_, r)| r.as_str());
    let _ = conn.ep.output.push(&http::upgrade_response(&up, reply), &mut ctx.pool);
    conn.ep.output.set_cap(VIEWER_OUT_CAP);
    let limits = Limits { max_message: ctx.cfg.max_message.min(crate::gateway::proto::MAX_CLIPBOARD + 64) };
    conn.ep.upgrade(WsSession::new(limits, Delivery::Whole, deflate.map(|(p, _)| p)), ctx.now);
    conn.label = format!("{} → (joining)", up.path);
    conn.set_app(App::Viewer(ViewerApp::Joining { token, view_only }));
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

fn join(conns: &mut Slab<Conn>, key: usize, ctx: &mut Ctx) -> Step {
    let Some(App::Viewer(ViewerApp::Joining { token, view_only })) = conns.get_mut(key).map(|c| &mut c.app) else {
        return Step::Stay;
    };
    let (token, view_only_param) = (token.take(), *view_only);
    let target = match ctx.lookup_target(token.as_deref()) {
        Ok(t) => t,
        Err(why) => return refuse(&mut conns[key], &why, close::POLICY_VIOLATION, ctx),
    };
    let session_key = token.unwrap_or_default();
    let sidx = match ctx.gw.find(&session_key) {
        Some(s) => s,
        None => match open_session(conns, &session_key, &target, ctx) {
            Ok(s) => s,
            Err(why) => return refuse(&mut conns[key], &why, close::INTERNAL_ERROR, ctx),
        },
    };
    let view_only = ctx.cfg.view_only || target.view_only || view_only_param;
    let session = &mut ctx.gw.sessions[sidx];
    let vid = ViewerId { session: sidx, viewer: session.add_viewer(key, view_only) };
    let conn = &mut conns[key];
    conn.label = format!("{} → {}{}", crate::gateway::PATH, session.label, if view_only { " (view only)" } else { "" });
    info!("{}: WebSocket open {}", conn.peer, conn.label);
    conn.set_app(App::Viewer(ViewerApp::Watching(vid)));
    drive_viewer(conns, key, vid, ctx)
}

/// Tell a browser why it cannot have a session, then close.
fn refuse(conn: &mut Conn, why: &str, code: u16, ctx: &mut Ctx) -> Step {
    info!("{}: WebSocket {}: refused: {why}", conn.peer, crate::gateway::PATH);
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
fn open_session(conns: &mut Slab<Conn>, session_key: &str, target: &Target, ctx: &mut Ctx) -> Result<usize, String> {
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
    let link =
        VncLink { session: sidx, connected: false, deadline: Some(ctx.now + VNC_HANDSHAKE_TIMEOUT), ended: false };
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
        let Some(session) = ctx.gw.sessions.get_mut(vid.session) else { return Step::Stay };
        // Input: while the VNC server's buffer has room for what it causes.
        let mut used = false;
        let link_room = link.as_ref().map_or(0, |l| l.ep.output.room());
        if link_room >= VNC_OUT_HEADROOM {
            let to_server = link.as_mut().map(|l| &mut l.ep.output);
            let feed = Feed { input: usize::MAX, output: VIEWER_OUT_PAUSE };
            let mut to_server = to_server;
            used = conn.ep.read_messages(&mut ctx.pool, &mut ctx.scratch, ctx.now, feed, |msg, reply| match msg {
                Message::Binary(m) => {
                    let Some(out) = to_server.as_deref_mut() else { return Flow::Pause };
                    let before = out.len();
                    let result = session.handle_viewer_message(vid.viewer, m, out.append(64, reply.pool()));
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
            let composed = conn
                .ep
                .send_with(&mut ctx.pool, &mut ctx.scratch, false, CHUNK, |v| session.compose(vid.viewer, CHUNK, v));
            if !composed {
                break;
            }
            wrote = true;
        }
        if conn.ep.output.len() > VIEWER_OUT_CAP {
            warn!("{}: viewer output over its cap; closing", conn.peer);
            conn.ep.read_eof = true;
        }
        if let Some((code, why)) = session.viewer_close(vid.viewer) {
            conn.ep.send_close(code, &why, &mut ctx.pool, ctx.now);
        }
        // Write; bytes that left make room to compose more (next round).
        let flushed = match conn.ep.flush(&mut ctx.pool, ctx.now) {
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
    if to_vnc {
        if let Some(k) = vnc_key {
            ctx.wake.push(k);
        }
    }
    if any_input {
        // The input may have given others something to send (a join, news).
        wake_viewers_with_output(conns, vid.session, Some(key), ctx);
    }
    step
}

/// Wake every viewer of session `sidx` (but `except`) that has something
/// to send and room to compose it (a viewer with a full buffer is driven by
/// its socket's writability instead).
fn wake_viewers_with_output(conns: &Slab<Conn>, sidx: usize, except: Option<usize>, ctx: &mut Ctx) {
    let Some(s) = ctx.gw.sessions.get(sidx) else { return };
    for (vidx, v) in s.viewers.iter() {
        let has_room = conns.get(v.client).is_some_and(|c| c.ep.output.len() < LOW_WATER);
        if Some(v.client) != except && has_room && s.viewer_has_output(vidx) {
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
    let stale: Vec<usize> = ctx
        .gw
        .sessions
        .iter()
        .filter(|(_, s)| !s.key.is_empty())
        .filter(|(_, s)| ctx.tokens.entries.get(&s.key).is_none_or(|t| t.addr.to_string() != s.label))
        .map(|(i, _)| i)
        .collect();
    for &sidx in &stale {
        let s = &mut ctx.gw.sessions[sidx];
        let why = format!("token '{}' was removed or re-pointed", s.key.escape_debug());
        s.fail(&why, close::GOING_AWAY);
        info!("gateway session {sidx}: ended: {why}");
        end_session(conns, sidx, ctx);
    }
    stale.len()
}

/// A viewer's connection is gone.
pub fn detach(conns: &mut Slab<Conn>, app: ViewerApp, ctx: &mut Ctx) {
    let ViewerApp::Watching(vid) = app else { return };
    let Some(s) = ctx.gw.sessions.get_mut(vid.session) else { return };
    s.remove_viewer(vid.viewer);
    if s.viewers.is_empty() {
        info!("gateway session {} → {}: last viewer left; disconnecting", vid.session, s.label);
        end_session(conns, vid.session, ctx);
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
    while failure.is_none() && link.connected {
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
        match session.handle_server_input(ep.input.data(), ep.output.append(0, &mut ctx.pool)) {
            Ok(used) => ep.input.consume(used),
            Err(e) => {
                session.fail_rfb(&e);
                failure = Some(e.to_string());
            }
        }
        if ep.output.len() > VNC_OUT_CAP {
            failure = Some("VNC server is not reading".into());
        }
    }
    ep.input.release_if_empty(&mut ctx.pool);
    let mut drained = false;
    if failure.is_none() && link.connected {
        match ep.flush(&mut ctx.pool, ctx.now) {
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
        info!("gateway session {sidx}: ended: {}", crate::transport::endpoint::printable(&why));
        end_session(conns, sidx, ctx);
        return Step::Close("session ended");
    }
    if more {
        ctx.wake.push(key);
    }
    if drained {
        wake_all_viewers(sidx, ctx);
    }
    wake_viewers_with_output(conns, sidx, None, ctx);
    Step::Stay
}

/// The handshake deadline of a session's RFB connection.
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
