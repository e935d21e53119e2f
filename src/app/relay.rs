//! Relay mode (websockify-compatible): binary WebSocket messages ↔ the
//! bytes of a TCP or Unix-socket target.
//!
//! ```text
//!   browser ══ws══▶ Endpoint.input ─decode─▶ target.output ──▶ target
//!   browser ◀══ws══ Endpoint.output ◀─frame in place── read ◀── target     (copying path)
//!   browser ◀══════ splice(pipe) ◀────────────────────────── target        (zero copy, plain TCP)
//! ```
//!
//! Target → browser has two paths:
//! * copying: the target's bytes are read into the browser's output buffer
//!   just after room for a 4-byte header, and the header is filled in once
//!   the length is known (RFC 6455 §5.2: minimal length encoding, so payloads
//!   of ≤ 125 bytes use the 2-byte form and are moved down 2 bytes);
//! * zero copy (`transport::pipe`): target → pipe → browser, one frame per
//!   splice, taken once a read filled its whole chunk of >= 32 KiB (a bulk stream) and
//!   only while nothing else is queued for the browser. Splicing costs one
//!   syscall more per frame, so small messages (echo, input, small updates)
//!   stay on the copying path, and TLS browsers always use it (the bytes must
//!   be encrypted in user space).
//!
//! Browser → target: binary payload is streamed (`Delivery::StreamBinary`)
//! into the target's output buffer, at most its room at a time.
//! Endings: the target's EOF sends Close 1000; the browser's Close shuts the
//! target's write side once its buffer is written; a browser gone without a
//! Close is 1006. The relay then detaches and only the close handshake is left.

use log::{debug, info, warn};
use mio::{Interest, Token};

use super::{App, Conn, Ctx, Step, READS_PER_WAKEUP, UPSTREAM};
use crate::http;
use crate::transport::pipe::{Splice, Step as PipeStep};
use crate::transport::{Endpoint, Feed, Flow, Message, Read, Ready, Stream, CONTROL_ROOM};
use crate::ws::{close, Delivery, Limits, WsSession};

/// The WebSocket path noVNC uses by default. With relay mode on, every
/// other path but the gateway's upgrades to the relay too (as websockify).
pub const PATH: &str = "/websockify";
/// Close reason (1008) for a view-only target: the relay passes the
/// browser's bytes to the VNC server unfiltered, so it cannot keep a viewer
/// from sending input. Such targets are served by the gateway only.
pub const VIEW_ONLY_REFUSED: &str =
    "view-only target: relay mode is not offered (it would pass input); use the viewer at /";
/// Largest payload framed per read: fits the 16-bit length form.
pub const MAX_CHUNK: usize = 65535;
/// Header room reserved before each chunk.
pub const HEADER_ROOM: usize = 4;
/// A target read at least this large that filled all the room it was
/// offered marks a bulk stream (the target sends faster than we read): the
/// relay then splices instead of copying, until a splice finds less.
const BULK_READ: usize = 32 << 10;

pub struct Relay {
    /// `?token=` this relay was opened with, and where it led (token file
    /// reloads close relays whose token now leads elsewhere).
    token: Option<String>,
    addr: crate::config::TargetAddr,
    target: Endpoint,
    connected: bool,
    /// A pipe while a zero-copy frame is in flight.
    splice: Option<Splice>,
    /// The target sends faster than we read (splicing is worth it).
    bulk: bool,
    /// Never splice (TLS browser, `--relay-copy`, or splicing failed).
    copy_only: bool,
}

impl Relay {
    /// Bytes (in, out) of the target connection.
    pub fn target_bytes(&self) -> (u64, u64) {
        (self.target.bytes_in, self.target.bytes_out)
    }

    /// The connection to the target is up.
    pub fn connected(&self) -> bool {
        self.connected
    }

    pub fn on_ready(&mut self, ready: Ready) {
        self.target.ready.merge(ready);
    }

    /// Drop the target connection and give its buffers and pipe back.
    pub fn release(&mut self, ctx: &mut Ctx) {
        let _ = ctx.registry.deregister(&mut self.target.stream);
        self.target.output.release(&mut ctx.pool);
        if let Some(p) = self.splice.take().and_then(Splice::into_pipe) {
            ctx.pipes.give(p);
        }
    }
}

/// A WebSocket upgrade on a relay path: connect to the target that the
/// configuration names for `?token=`, or the access token's own (never one
/// the URL names); a view-only target is refused (1008).
pub fn attach(conn: &mut Conn, key: usize, up: http::Upgrade, ctx: &mut Ctx) {
    let (_, token, target) = ctx.target_for(&up);
    let target = target.and_then(|t| relayable(t, ctx.cfg.view_only));
    let _ = conn.ep.output.push(&http::upgrade_response(&up, None), &mut ctx.pool);
    conn.ep.output.set_cap(ctx.cfg.relay_buffer);
    let limits = Limits { max_message: ctx.cfg.max_message };
    conn.ep.upgrade(WsSession::new(limits, Delivery::StreamBinary, None), ctx.now);
    conn.set_app(App::Detached);
    let target = match target {
        Ok(t) => t,
        Err(why) => {
            conn.label = format!("{} → (none)", up.path);
            info!("{}: WebSocket {}: refused: {why}", conn.peer, up.path);
            ctx.metrics.refuse(super::metrics::Refused::Target);
            conn.ep.send_close(close::POLICY_VIOLATION, &why, &mut ctx.pool, ctx.now);
            return;
        }
    };
    conn.label = format!("{} → {}", up.path, target.addr);
    let mut stream = match Stream::connect(&target.addr) {
        Ok(s) => s,
        Err(e) => {
            let why = format!("cannot connect to {}: {e}", target.addr);
            ctx.metrics.refuse(super::metrics::Refused::Target);
            info!("{}: WebSocket {}: {why}", conn.peer, conn.label);
            conn.ep.send_close(close::INTERNAL_ERROR, &why, &mut ctx.pool, ctx.now);
            return;
        }
    };
    if let Err(e) = ctx.registry.register(&mut stream, Token(key | UPSTREAM), Interest::READABLE | Interest::WRITABLE) {
        warn!("register failed: {e}");
        conn.ep.send_close(close::INTERNAL_ERROR, "cannot register the target connection", &mut ctx.pool, ctx.now);
        return;
    }
    let copy_only = !ctx.cfg.relay_splice || !conn.ep.stream.is_plain_tcp();
    let endpoint = Endpoint::new(stream, 0, ctx.cfg.relay_buffer, ctx.now);
    info!("{}: WebSocket open {}", conn.peer, conn.label);
    conn.set_app(App::Relay(Box::new(Relay {
        token,
        addr: target.addr,
        target: endpoint,
        connected: false,
        splice: None,
        bulk: false,
        copy_only,
    })));
}

/// After a token-file reload: close the relays whose token was removed or
/// now names another target (1001). Returns how many.
pub fn close_repointed(conns: &mut slab::Slab<Conn>, ctx: &mut Ctx) -> usize {
    let mut n = 0;
    for (key, conn) in conns.iter_mut() {
        let App::Relay(r) = &mut conn.app else { continue };
        let Some(token) = &r.token else { continue };
        if ctx.tokens.entries.get(token).is_some_and(|t| t.addr == r.addr) {
            continue;
        }
        let why = format!("token '{}' was removed or re-pointed", token.escape_debug());
        info!("{}: WebSocket {}: {why}", conn.peer, conn.label);
        conn.ep.send_close(close::GOING_AWAY, &why, &mut ctx.pool, ctx.now);
        r.release(ctx);
        conn.set_app(App::Detached);
        ctx.wake.push(key);
        n += 1;
    }
    n
}

/// How one pass of the relay ended.
enum Pass {
    /// Something moved (go round again) or not.
    Moved(bool),
    /// The target side is over: only the close handshake is left.
    Detach,
    /// Writing to the browser failed.
    WriteFailed,
}

pub fn drive(conn: &mut Conn, key: usize, ctx: &mut Ctx) -> Step {
    for _ in 0..READS_PER_WAKEUP {
        match pass(conn, ctx) {
            Pass::Moved(true) => {}
            Pass::Moved(false) => return Step::Stay,
            Pass::WriteFailed => {
                conn.ep.mark_abnormal();
                return Step::Close("write failed");
            }
            Pass::Detach => {
                if let App::Relay(r) = &mut conn.app {
                    r.release(ctx);
                }
                conn.set_app(App::Detached);
                ctx.wake.push(key);
                return Step::Stay;
            }
        }
    }
    ctx.wake.push(key);
    Step::Stay
}

/// Connect, move bytes both ways once, and check for the endings.
fn pass(conn: &mut Conn, ctx: &mut Ctx) -> Pass {
    let Conn { ep, app, peer, label, .. } = conn;
    let App::Relay(r) = app else { return Pass::Moved(false) };
    let mut progress = false;

    // The connection to the target completing.
    if !r.connected && r.target.ready.writable {
        match r.target.stream.finish_connect() {
            Ok(true) => {
                r.connected = true;
                r.target.stream.set_nodelay();
                debug!("{peer}: connected to target");
            }
            Ok(false) => r.target.ready.writable = false,
            Err(e) => {
                let why = format!("cannot connect to target: {e}");
                info!("{peer}: WebSocket {label}: {why}");
                ep.send_close(close::INTERNAL_ERROR, &why, &mut ctx.pool, ctx.now);
                return Pass::Detach;
            }
        }
    }

    // Browser → target: streamed binary payload into the target's buffer.
    let to_target = &mut r.target.output;
    let feed = Feed { input: to_target.room(), output: ep.output.cap().saturating_sub(CONTROL_ROOM) };
    progress |= ep.read_messages(&mut ctx.pool, &mut ctx.scratch, ctx.now, feed, |msg, reply| match msg {
        Message::Binary(d) => {
            let _ = to_target.push(d, reply.pool()); // fits: at most its room was decoded
            Flow::Continue
        }
        Message::Text(_) => Flow::Close(close::UNSUPPORTED_DATA, "the relay carries binary messages only".into()),
    });

    // Target → browser: first the rest of a frame already in a pipe.
    if drain_splice(ep, r, ctx).is_err() {
        return Pass::WriteFailed;
    }
    while r.connected && r.target.ready.readable && !r.target.read_eof && !ep.close_sent() {
        let idle_pipe = r.splice.as_ref().is_none_or(Splice::is_idle);
        if r.bulk && !r.copy_only && idle_pipe && ep.output.is_empty() {
            if !ep.ready.writable {
                break;
            }
            match splice_frame(ep, r, ctx) {
                Ok(moved) => progress |= moved,
                Err(_) => return Pass::WriteFailed,
            }
            continue;
        }
        // Copying path; never while a frame waits in a pipe.
        if !idle_pipe || ep.output.room() < HEADER_ROOM + 1024 + CONTROL_ROOM {
            break;
        }
        let max = (ep.output.room() - CONTROL_ROOM - HEADER_ROOM).min(MAX_CHUNK);
        match r.target.read_framed(&mut ep.output, HEADER_ROOM, max, &mut ctx.pool, ctx.now, frame_in_place) {
            (Read::Data(n), offered) => {
                progress = true;
                r.bulk = n == offered && n >= BULK_READ;
            }
            (Read::Nothing | Read::Eof, _) => {}
            (Read::Failed(e), _) => debug!("{peer}: target read failed: {e}"),
        }
    }
    // An idle pipe goes back to the pool: idle relays hold none.
    if r.splice.as_ref().is_some_and(Splice::is_idle) {
        if let Some(p) = r.splice.take().and_then(Splice::into_pipe) {
            ctx.pipes.give(p);
        }
    }

    // Write both ways (a frame still in its pipe goes first).
    if r.splice.is_none() {
        match ep.flush(&mut ctx.pool, ctx.now) {
            Ok(n) => progress |= n > 0, // room was made: reading the target may go on
            Err(e) => {
                debug!("{peer}: write failed: {e}");
                return Pass::WriteFailed;
            }
        }
    }
    if r.connected {
        match r.target.flush(&mut ctx.pool, ctx.now) {
            Ok(n) => progress |= n > 0,
            Err(e) => {
                let why = format!("target write failed: {e}");
                ep.send_close(close::INTERNAL_ERROR, &why, &mut ctx.pool, ctx.now);
                return Pass::Detach;
            }
        }
    }

    // Endings.
    if r.target.read_eof && !ep.close_sent() {
        ep.send_close(close::NORMAL, "target closed the connection", &mut ctx.pool, ctx.now);
        return Pass::Detach;
    }
    if ep.close_received() && r.target.output.is_empty() {
        r.target.stream.shutdown_write();
        return Pass::Detach;
    }
    if ep.read_eof && !ep.close_received() {
        // The browser vanished without a Close (1006): drop both ends.
        ep.mark_abnormal();
        return Pass::Detach;
    }

    // More input from the browser, if its data has somewhere to go.
    if !r.target.output.is_empty() && r.target.output.room() == 0 {
        return Pass::Moved(progress);
    }
    match ep.read(&mut ctx.pool, ctx.now) {
        Read::Data(_) => progress = true,
        Read::Failed(e) => debug!("{peer}: read failed: {e}"),
        Read::Nothing | Read::Eof => {}
    }
    Pass::Moved(progress)
}

/// Send the rest of a frame waiting in its pipe while the browser takes it;
/// an emptied pipe goes back to the pool.
fn drain_splice(ep: &mut Endpoint, r: &mut Relay, ctx: &mut Ctx) -> std::io::Result<()> {
    let Some(s) = r.splice.as_mut() else { return Ok(()) };
    if ep.ready.writable && !s.is_idle() {
        let n = match s.drain(&ep.stream)? {
            PipeStep::Moved(n) => n,
            PipeStep::Blocked(n) => {
                ep.ready.writable = false;
                n
            }
        };
        ep.bytes_out += n as u64;
        ep.last_active = ctx.now;
    }
    if s.is_idle() {
        if let Some(p) = r.splice.take().and_then(Splice::into_pipe) {
            ctx.pipes.give(p);
        }
    }
    Ok(())
}

/// One zero-copy frame: target → pipe, then header and payload → browser.
/// Ok(true) when bytes moved; an `Err` is a failed write to the browser.
fn splice_frame(ep: &mut Endpoint, r: &mut Relay, ctx: &mut Ctx) -> std::io::Result<bool> {
    let s = match &mut r.splice {
        Some(s) => s,
        None => match ctx.pipes.take() {
            Ok(p) => r.splice.insert(Splice::new(p)),
            Err(e) => {
                debug!("no pipe ({e}): copying");
                r.copy_only = true;
                return Ok(false);
            }
        },
    };
    match s.fill(&r.target.stream) {
        Ok(0) => {
            r.target.read_eof = true;
            Ok(false)
        }
        Ok(n) => {
            r.bulk = n >= BULK_READ;
            r.target.bytes_in += n as u64;
            ep.last_active = ctx.now;
            let moved = match s.drain(&ep.stream)? {
                PipeStep::Moved(n) => n,
                PipeStep::Blocked(n) => {
                    ep.ready.writable = false;
                    n
                }
            };
            ep.bytes_out += moved as u64;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            r.target.ready.readable = false;
            r.bulk = false;
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(false),
        Err(e) => {
            // EINVAL and friends (a target splice does not support): the
            // copying path reads it from now on, and reports a real read
            // error itself.
            debug!("splice from target failed ({e}): copying");
            r.copy_only = true;
            Ok(false)
        }
    }
}

/// The target if the relay may serve it: not view-only, neither by its
/// token's `view_only` word nor by `--view-only` (`all_view_only`).
pub fn relayable(target: crate::config::Target, all_view_only: bool) -> Result<crate::config::Target, String> {
    if target.view_only || all_view_only {
        return Err(VIEW_ONLY_REFUSED.to_string());
    }
    Ok(target)
}

/// `buf[..HEADER_ROOM]` is free and `buf[HEADER_ROOM..HEADER_ROOM + n]` holds
/// `n` payload bytes (1 ≤ n ≤ MAX_CHUNK). Writes an unmasked FIN binary frame
/// header and returns the frame's total length, the frame starting at `buf[0]`.
pub fn frame_in_place(buf: &mut [u8], n: usize) -> usize {
    debug_assert!((1..=MAX_CHUNK).contains(&n));
    if n <= 125 {
        buf.copy_within(HEADER_ROOM..HEADER_ROOM + n, 2);
        buf[0] = 0x82;
        buf[1] = n as u8;
        2 + n
    } else {
        buf[0] = 0x82;
        buf[1] = 126;
        buf[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        HEADER_ROOM + n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_only_targets_are_not_relayed() {
        use crate::config::{Target, TargetAddr};
        let t = |view_only| Target { view_only, ..Target::new(TargetAddr::Unix("/s".into())) };
        assert!(relayable(t(false), false).is_ok());
        assert_eq!(relayable(t(true), false).unwrap_err(), VIEW_ONLY_REFUSED);
        assert_eq!(relayable(t(false), true).unwrap_err(), VIEW_ONLY_REFUSED);
        assert!(VIEW_ONLY_REFUSED.len() <= 123, "a Close reason has 123 bytes at most (RFC 6455 §5.5)");
    }

    #[test]
    fn short_payload_uses_the_two_byte_form() {
        let mut b = [0u8; 4 + 3];
        b[4..].copy_from_slice(b"abc");
        assert_eq!(frame_in_place(&mut b, 3), 5);
        assert_eq!(&b[..5], &[0x82, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn boundary_lengths() {
        for n in [125usize, 126, 65535] {
            let mut b = vec![7u8; 4 + n];
            let total = frame_in_place(&mut b, n);
            if n <= 125 {
                assert_eq!(&b[..2], &[0x82, n as u8]);
                assert_eq!(total, 2 + n);
            } else {
                assert_eq!(&b[..4], &[0x82, 126, (n >> 8) as u8, n as u8]);
                assert_eq!(total, 4 + n);
            }
        }
    }
}
