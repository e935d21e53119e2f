//! The echo application (examples/echo.rs, the Autobahn testsuite): every
//! message goes back as it came, written straight into the output buffer
//! (compressed straight from the received message with permessage-deflate).
//! Also the detached state: a WebSocket with nothing behind it that only
//! completes its close handshake.

use log::debug;

use super::{App, Conn, Ctx, Step, READS_PER_WAKEUP};
use crate::http;
use crate::transport::{Feed, Flow, Message, Read, BLOCK, CONTROL_ROOM};
use crate::ws::{Delivery, Limits, WsSession};

pub fn attach(conn: &mut Conn, up: http::Upgrade, ctx: &mut Ctx) {
    let deflate = crate::ws::deflate::negotiate(&up.extensions);
    let reply = deflate.as_ref().map(|(_, r)| r.as_str());
    let _ = conn.ep.output.push(&http::upgrade_response(&up, reply), &mut ctx.pool);
    // A reply always fits: input is decoded only while the output has room
    // for one more whole message (see `feed`).
    conn.ep.output.set_cap(2 * ctx.cfg.max_message + BLOCK);
    let limits = Limits { max_message: ctx.cfg.max_message };
    conn.ep.upgrade(WsSession::new(limits, Delivery::Whole, deflate.map(|(p, _)| p)), ctx.now);
    conn.label = format!("{} (echo)", up.path);
    debug!("{}: WebSocket open {}", conn.peer, conn.label);
    conn.set_app(App::Echo);
}

fn feed(conn: &Conn, ctx: &Ctx) -> Feed {
    let reply_room = ctx.cfg.max_message + crate::ws::frame::MAX_SERVER_HEADER_LEN + CONTROL_ROOM;
    Feed { input: usize::MAX, output: conn.ep.output.cap().saturating_sub(reply_room) }
}

pub fn drive(conn: &mut Conn, key: usize, ctx: &mut Ctx) -> Step {
    serve(conn, key, ctx, feed(conn, ctx), |msg, reply| {
        match msg {
            Message::Binary(b) => reply.send_message(false, b),
            Message::Text(t) => reply.send_message(true, t.as_bytes()),
        };
        Flow::Continue
    })
}

/// Only the close handshake: data is read and dropped.
pub fn drive_detached(conn: &mut Conn, key: usize, ctx: &mut Ctx) -> Step {
    let feed = Feed { input: usize::MAX, output: conn.ep.output.cap().saturating_sub(CONTROL_ROOM) };
    serve(conn, key, ctx, feed, |_, _| Flow::Continue)
}

/// Decode, write, read, until nothing moves or the wakeup's budget is
/// spent (then the connection is driven again before the next poll).
pub fn serve(
    conn: &mut Conn,
    key: usize,
    ctx: &mut Ctx,
    feed: Feed,
    mut on_message: impl FnMut(Message<'_>, &mut crate::transport::Reply<'_>) -> Flow,
) -> Step {
    for _ in 0..READS_PER_WAKEUP {
        let used = conn.ep.read_messages(&mut ctx.pool, &mut ctx.scratch, ctx.now, feed, &mut on_message);
        // Write before reading more, so output drains as we go.
        let wrote = match conn.ep.flush(&mut ctx.pool, ctx.now) {
            Ok(n) => n,
            Err(e) => {
                debug!("{}: write failed: {e}", conn.peer);
                conn.ep.mark_abnormal();
                return Step::Close("write failed");
            }
        };
        let got = match conn.ep.read(&mut ctx.pool, ctx.now) {
            Read::Data(_) => true,
            Read::Failed(e) => {
                debug!("{}: read failed: {e}", conn.peer);
                false
            }
            Read::Nothing | Read::Eof => false,
        };
        if conn.ep.read_eof && !conn.ep.close_received() {
            conn.ep.mark_abnormal();
        }
        // Stop only when nothing moved (else no event would wake us).
        if !(got || wrote > 0 || used) {
            return Step::Stay;
        }
    }
    ctx.wake.push(key);
    Step::Stay
}
