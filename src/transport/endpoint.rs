//! One socket's byte stream with its buffers, its WebSocket session and its
//! close bookkeeping. The WebSocket read-and-dispatch loop and the Close
//! handling of every application are here, once.
//!
//! ```text
//!   Raw ──upgrade()──▶ WebSocket ──Close sent and received, output written──▶ (done)
//!    │                     └─────peer gone / error / close timeout─────────▶ (done)
//!    └──drain()──▶ Draining ──output written──▶ (done)
//! ```
//!
//! `Raw` carries bytes as they come: an HTTP request head before the
//! upgrade, a relay's target, a VNC server, a demo-server peer. Close
//! handshake (RFC 6455 §7.1.1): the server closes the TCP connection after it
//! has both sent and received a Close, or when the peer has not answered
//! within [`CLOSE_GRACE`]; a peer that vanishes without a Close is 1006.
//!
//! Buffering contract: `input` holds bytes read and not yet decoded (capped:
//! reading stops when it is full); `output` holds bytes to write (capped per
//! application). Decoding stops while `output` is over the application's
//! [`Feed::output`] mark, so a peer that sends but does not read (a ping
//! flood, pipelined requests) is not read either: its memory stays bounded.

use std::borrow::Cow;
use std::io;
use std::time::{Duration, Instant};

use log::trace;

use super::buf::{Buf, Pool};
use super::stream::Stream;
use crate::ws::frame::{OP_BINARY, OP_TEXT};
use crate::ws::session::{Body, Sender};
use crate::ws::{close, Event, WsError, WsSession};

/// Read size and pool block size.
pub const BLOCK: usize = 64 << 10;
/// How long a closing WebSocket waits for the peer's Close and for its
/// output to drain.
pub const CLOSE_GRACE: Duration = Duration::from_secs(3);
/// Room an application keeps free in a WebSocket's output for control
/// frames (pong, close).
pub const CONTROL_ROOM: usize = 256;

/// Readiness last reported by the poll for one socket (edge-triggered: a
/// bit is cleared when an operation says `WouldBlock`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
    /// The peer's end of stream (or an error) was reported; sticky. Until
    /// then a short read may clear `readable` (see [`Endpoint::read`]).
    pub read_closed: bool,
}

impl Ready {
    pub fn merge(&mut self, r: Ready) {
        self.readable |= r.readable;
        self.writable |= r.writable;
        self.read_closed |= r.read_closed;
    }
}

/// How the byte stream is being used (see the module diagram).
enum State {
    Raw,
    WebSocket(Box<Ws>),
    Draining,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Raw => "raw",
            State::WebSocket(_) => "websocket",
            State::Draining => "draining",
        }
    }
}

/// A WebSocket's session and close bookkeeping.
struct Ws {
    session: WsSession,
    /// Close code sent or received first, and its reason (for the log line).
    code: Option<u16>,
    reason: String,
    /// Set when a Close was sent or received: the connection ends by then.
    deadline: Option<Instant>,
    last_ping: Instant,
}

/// What one socket read gave.
#[derive(Debug)]
pub enum Read {
    Data(usize),
    /// Nothing now: `WouldBlock`, not readable, or no room in `input`.
    Nothing,
    /// End of stream (now `read_eof`).
    Eof,
    /// The read failed (now `read_eof`).
    Failed(io::Error),
}

/// One data message (or, for a streaming receiver, a chunk of one).
#[derive(Debug)]
pub enum Message<'a> {
    Binary(&'a [u8]),
    Text(&'a str),
}

/// An application's answer to a [`Message`].
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on decoding.
    Continue,
    /// Stop decoding for now (the app's sink is full); the app is driven
    /// again when it has room.
    Pause,
    /// Close the WebSocket with this code and reason; read nothing more.
    Close(u16, Cow<'static, str>),
}

/// Limits of one [`Endpoint::read_messages`] pass.
#[derive(Debug, Clone, Copy)]
pub struct Feed {
    /// Decode at most this many input bytes (a streaming sink's room).
    pub input: usize,
    /// Decode only while `output` holds at most this many bytes.
    pub output: usize,
}

/// Periodic WebSocket policy from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Keepalive {
    /// Send a Ping this often.
    pub heartbeat: Option<Duration>,
    /// Close (1001) after this long without traffic either way.
    pub idle: Option<Duration>,
}

/// Replies an application may write while it handles a message.
pub struct Reply<'a> {
    tx: &'a mut Sender,
    out: &'a mut Buf,
    pool: &'a mut Pool,
    scratch: &'a mut Vec<u8>,
}

impl Reply<'_> {
    /// The buffer pool (for an app that moves a message into a buffer of
    /// its own).
    pub fn pool(&mut self) -> &mut Pool {
        self.pool
    }

    /// Room left in the output.
    pub fn room(&self) -> usize {
        self.out.room()
    }

    /// Send one message with payload `data`: one copy into the output (or
    /// compressed straight from `data`).
    pub fn send_message(&mut self, text: bool, data: &[u8]) -> bool {
        let base = self.out.data().len();
        let v = self.out.append(data.len() + crate::ws::frame::MAX_SERVER_HEADER_LEN, self.pool);
        let before = v.len();
        match self.tx.send_message(if text { OP_TEXT } else { OP_BINARY }, data, v) {
            Some(placed) => {
                self.out.close_gap(base + (placed.at - before), placed.gap);
                true
            }
            None => false,
        }
    }

    /// Send one message whose body `body` writes (see [`Endpoint::send_with`]).
    pub fn send_with<B: Into<Body>>(
        &mut self,
        text: bool,
        want: usize,
        body: impl FnOnce(&mut Vec<u8>) -> B,
    ) -> Option<Sent> {
        send_with(self.tx, self.out, self.pool, self.scratch, text, want, body)
    }
}

/// Frame one message straight into `out` (module `ws::session`,
/// `Sender::send_with`), then drop the header room it did not need.
fn send_with<B: Into<Body>>(
    tx: &mut Sender,
    out: &mut Buf,
    pool: &mut Pool,
    scratch: &mut Vec<u8>,
    text: bool,
    want: usize,
    body: impl FnOnce(&mut Vec<u8>) -> B,
) -> Option<Sent> {
    let base = out.data().len();
    let v = out.append(want + crate::ws::frame::MAX_SERVER_HEADER_LEN, pool);
    let before = v.len();
    let op = if text { OP_TEXT } else { OP_BINARY };
    let placed = tx.send_with(op, v, scratch, body)?;
    out.close_gap(base + (placed.at - before), placed.gap);
    Some(Sent { body: placed.body, wire: placed.wire() })
}

/// The sizes of a message [`Endpoint::send_with`] sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The message as the body wrote it (before compression).
    pub body: usize,
    /// The frame as it goes on the wire (header and payload).
    pub wire: usize,
}

pub struct Endpoint {
    pub stream: Stream,
    pub ready: Ready,
    /// Bytes read and not yet decoded.
    pub input: Buf,
    /// Bytes waiting for the socket.
    pub output: Buf,
    state: State,
    /// The peer's end of stream was read, or reading stopped for good.
    pub read_eof: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Last byte moved either way (for the idle timeout).
    pub last_active: Instant,
}

impl Endpoint {
    pub fn new(stream: Stream, input_cap: usize, output_cap: usize, now: Instant) -> Endpoint {
        Endpoint {
            stream,
            ready: Ready::default(),
            input: Buf::with_cap(input_cap),
            output: Buf::with_cap(output_cap),
            state: State::Raw,
            read_eof: false,
            bytes_in: 0,
            bytes_out: 0,
            last_active: now,
        }
    }

    fn set_state(&mut self, new: State) {
        trace!("endpoint {} → {}", self.state.name(), new.name());
        self.state = new;
    }

    /// Speak WebSocket from now on (the 101 response is already in `output`).
    pub fn upgrade(&mut self, session: WsSession, now: Instant) {
        self.set_state(State::WebSocket(Box::new(Ws {
            session,
            code: None,
            reason: String::new(),
            deadline: None,
            last_ping: now,
        })));
        self.last_active = now;
    }

    /// Write what is buffered, then close; nothing more is read.
    pub fn drain(&mut self, pool: &mut Pool) {
        self.input.release(pool);
        self.read_eof = true;
        self.set_state(State::Draining);
    }

    pub fn is_websocket(&self) -> bool {
        matches!(self.state, State::WebSocket(_))
    }

    /// Everything buffered has been written (including what TLS holds).
    pub fn is_flushed(&self) -> bool {
        self.output.is_empty() && !self.stream.has_pending()
    }

    /// Nothing more will happen on this connection: it can be dropped.
    pub fn is_done(&self) -> bool {
        if !self.is_flushed() {
            return false;
        }
        match &self.state {
            State::Raw => self.read_eof,
            State::Draining => true,
            State::WebSocket(ws) => self.read_eof || (ws.session.close_sent() && ws.session.close_received()),
        }
    }

    /// Our Close was sent (no data may follow).
    pub fn close_sent(&self) -> bool {
        match &self.state {
            State::WebSocket(ws) => ws.session.close_sent(),
            _ => self.read_eof,
        }
    }

    pub fn close_received(&self) -> bool {
        matches!(&self.state, State::WebSocket(ws) if ws.session.close_received())
    }

    /// The close code and reason for the log line (code None: no Close).
    pub fn close_info(&self) -> (Option<u16>, &str) {
        match &self.state {
            State::WebSocket(ws) => (ws.code, &ws.reason),
            _ => (None, ""),
        }
    }

    /// Record 1006 (abnormal closure) unless a close code is known.
    pub fn mark_abnormal(&mut self) {
        if let State::WebSocket(ws) = &mut self.state {
            ws.code.get_or_insert(close::ABNORMAL);
        }
    }

    pub fn deflate_allocated(&self) -> bool {
        matches!(&self.state, State::WebSocket(ws) if ws.session.deflate_allocated())
    }

    // ------------------------------------------------------------ socket

    /// Read once into `input` if readable and there is room. A read that
    /// returns less than asked took everything the socket had (TCP and
    /// Unix stream sockets copy until the queue is empty), so a second read
    /// would only say WouldBlock; with edge-triggered epoll, later data
    /// raises a new event, so readiness is cleared now (one syscall less per
    /// message, as tokio does). Not once the peer's end of stream was
    /// reported (`read_closed`): a FIN already queued raises no new event.
    pub fn read(&mut self, pool: &mut Pool, now: Instant) -> Read {
        if self.input.room() == 0 {
            return Read::Nothing;
        }
        let r =
            read_once(&mut self.stream, &mut self.ready, &mut self.read_eof, &mut self.input, BLOCK, 0, pool, |_, n| n);
        self.count_in(&r, now);
        r
    }

    /// Read once from this endpoint's socket straight into `dst` (another
    /// endpoint's output): at most `max` bytes after `header` bytes of room,
    /// then `frame(spare, n)` turns the `n` bytes read into what is kept
    /// (returns its length, e.g. a WebSocket frame around them). Readiness
    /// as for [`Endpoint::read`]; `Read::Data` counts the bytes read. Also
    /// returns the room that was offered (a read that filled it suggests
    /// more is waiting).
    pub fn read_framed(
        &mut self,
        dst: &mut Buf,
        header: usize,
        max: usize,
        pool: &mut Pool,
        now: Instant,
        frame: impl FnOnce(&mut [u8], usize) -> usize,
    ) -> (Read, usize) {
        let mut offered = 0;
        let r = read_once(&mut self.stream, &mut self.ready, &mut self.read_eof, dst, max, header, pool, |b, n| {
            offered = b.len() - header;
            frame(b, n)
        });
        self.count_in(&r, now);
        (r, offered)
    }

    fn count_in(&mut self, r: &Read, now: Instant) {
        if let Read::Data(n) = r {
            self.bytes_in += *n as u64;
            self.last_active = now;
        }
    }

    /// Write `output` until empty or `WouldBlock`; storage of an emptied
    /// buffer goes back to the pool. Returns bytes written.
    pub fn flush(&mut self, pool: &mut Pool, now: Instant) -> io::Result<usize> {
        let n = self.output.write_to(&mut self.stream, &mut self.ready.writable)?;
        self.stream.flush_pending(&mut self.ready.writable)?;
        self.output.release_if_empty(pool);
        if n > 0 {
            self.bytes_out += n as u64;
            self.last_active = now;
        }
        Ok(n)
    }

    // --------------------------------------------------------- WebSocket

    /// Decode buffered input and hand each data message to `on_message`
    /// until the input runs out, `feed` says stop, the app pauses, or the
    /// connection is closing. Pings are answered and Close frames echoed
    /// here (RFC 6455 §5.5); a protocol error or the app's `Flow::Close`
    /// sends our Close and stops reading. Returns whether input was used.
    pub fn read_messages(
        &mut self,
        pool: &mut Pool,
        scratch: &mut Vec<u8>,
        now: Instant,
        feed: Feed,
        mut on_message: impl FnMut(Message<'_>, &mut Reply<'_>) -> Flow,
    ) -> bool {
        let State::WebSocket(ws) = &mut self.state else { return false };
        let mut progress = false;
        let mut fail: Option<(u16, Cow<'static, str>)> = None;
        while !self.input.is_empty() && !ws.session.close_received() && self.output.len() <= feed.output {
            let lim = feed.input.min(self.input.len());
            if lim == 0 {
                break;
            }
            let WsSession { rx, tx } = &mut ws.session;
            let out = self.output.append(0, pool);
            let (used, flow) = match rx.read(&mut self.input.data_mut()[..lim], tx, out) {
                Ok((used, ev)) => {
                    let flow = match ev {
                        Some(Event::Binary(b)) => {
                            let mut reply = Reply { tx, out: &mut self.output, pool, scratch };
                            on_message(Message::Binary(b), &mut reply)
                        }
                        Some(Event::Text(t)) => {
                            let mut reply = Reply { tx, out: &mut self.output, pool, scratch };
                            on_message(Message::Text(t), &mut reply)
                        }
                        Some(Event::Close { code, reason }) => {
                            ws.code.get_or_insert(code);
                            if ws.reason.is_empty() {
                                ws.reason = printable(reason);
                            }
                            ws.deadline.get_or_insert(now + CLOSE_GRACE);
                            Flow::Continue
                        }
                        Some(Event::Ping | Event::Pong(_)) | None => Flow::Continue,
                    };
                    (used, flow)
                }
                Err(WsError { code, reason }) => (0, Flow::Close(code, Cow::Borrowed(reason))),
            };
            self.input.consume(used);
            progress |= used > 0;
            match flow {
                Flow::Continue if used > 0 => {}
                Flow::Continue | Flow::Pause => break,
                Flow::Close(code, why) => {
                    fail = Some((code, why));
                    break;
                }
            }
        }
        if let Some((code, why)) = fail {
            self.input.release(pool);
            self.read_eof = true;
            self.send_close(code, &why, pool, now);
        }
        self.input.release_if_empty(pool);
        progress
    }

    /// Send one message whose body `body` appends to the Vec it is given
    /// and answers what it wrote ([`Body`]; `false` for "nothing to send").
    /// The body goes straight into `output` behind reserved header room,
    /// or, with permessage-deflate, through `scratch` and the deflater (or
    /// copied from there as it is, for [`Body::Raw`]). `want` is a size
    /// hint. Nothing is sent after our Close. Returns the message's sizes.
    pub fn send_with<B: Into<Body>>(
        &mut self,
        pool: &mut Pool,
        scratch: &mut Vec<u8>,
        text: bool,
        want: usize,
        body: impl FnOnce(&mut Vec<u8>) -> B,
    ) -> Option<Sent> {
        let State::WebSocket(ws) = &mut self.state else { return None };
        send_with(&mut ws.session.tx, &mut self.output, pool, scratch, text, want, body)
    }

    /// Send a whole binary message.
    pub fn send_binary(&mut self, data: &[u8], pool: &mut Pool, scratch: &mut Vec<u8>) {
        self.send_with(pool, scratch, false, data.len(), |v| {
            v.extend_from_slice(data);
            true
        });
    }

    /// Queue our Close (once) and start the close grace period. Control
    /// frames always fit: apps keep [`CONTROL_ROOM`] free, and if a
    /// misbehaving peer filled it anyway the TCP close still ends it.
    pub fn send_close(&mut self, code: u16, reason: &str, pool: &mut Pool, now: Instant) {
        let State::WebSocket(ws) = &mut self.state else { return };
        if ws.session.close_sent() {
            return;
        }
        ws.session.tx.send_close(code, reason, self.output.append(128, pool));
        if ws.code.is_none() {
            ws.code = Some(code);
            ws.reason = printable(reason);
        }
        ws.deadline.get_or_insert(now + CLOSE_GRACE);
    }

    /// The next moment [`Endpoint::handle_timeout`] has work: the close
    /// deadline, else the next heartbeat or idle timeout.
    pub fn poll_timeout(&self, keepalive: &Keepalive) -> Option<Instant> {
        let State::WebSocket(ws) = &self.state else { return None };
        if let Some(d) = ws.deadline {
            return Some(d);
        }
        let ping = keepalive.heartbeat.map(|hb| ws.last_ping + hb);
        let idle = keepalive.idle.map(|idle| self.last_active + idle);
        match (ping, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Apply the WebSocket's time policy at `now`. Returns a reason when the
    /// connection must end now (its close grace is over).
    pub fn handle_timeout(&mut self, now: Instant, keepalive: &Keepalive, pool: &mut Pool) -> Option<&'static str> {
        let State::WebSocket(ws) = &mut self.state else { return None };
        if ws.deadline.is_some_and(|d| now >= d) {
            ws.code.get_or_insert(close::ABNORMAL);
            return Some("close timeout");
        }
        if ws.session.close_sent() {
            return None;
        }
        if keepalive.idle.is_some_and(|idle| now >= self.last_active + idle) {
            self.send_close(close::GOING_AWAY, "idle timeout", pool, now);
            return None;
        }
        if let Some(hb) = keepalive.heartbeat {
            if now >= ws.last_ping + hb {
                ws.last_ping = now;
                if self.output.room() >= CONTROL_ROOM {
                    ws.session.tx.send_ping(b"wsvnc", self.output.append(16, pool));
                }
            }
        }
        None
    }
}

/// One read from `stream` into `dst`'s spare room (see
/// [`Endpoint::read`] for the readiness rules and [`Endpoint::read_framed`]
/// for `header` and `frame`).
#[allow(clippy::too_many_arguments)]
fn read_once(
    stream: &mut Stream,
    ready: &mut Ready,
    read_eof: &mut bool,
    dst: &mut Buf,
    max: usize,
    header: usize,
    pool: &mut Pool,
    frame: impl FnOnce(&mut [u8], usize) -> usize,
) -> Read {
    if !ready.readable || *read_eof || dst.room() <= header {
        return Read::Nothing;
    }
    let mut asked = 0;
    let mut got = 0;
    let result = dst.fill_with(header + max, pool, |spare| {
        asked = spare.len() - header;
        loop {
            match io::Read::read(stream, &mut spare[header..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(0) => return Ok(0),
                Ok(n) => {
                    got = n;
                    return Ok(frame(spare, n));
                }
                Err(e) => return Err(e),
            }
        }
    });
    match result {
        Ok(_) if got > 0 => {
            if got < asked && stream.short_read_drains() && !ready.read_closed {
                ready.readable = false;
            }
            Read::Data(got)
        }
        Ok(_) if asked == 0 => Read::Nothing,
        Ok(_) => {
            *read_eof = true;
            Read::Eof
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            ready.readable = false;
            Read::Nothing
        }
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            *read_eof = true;
            Read::Eof
        }
        Err(e) => {
            *read_eof = true;
            Read::Failed(e)
        }
    }
}

/// A peer-supplied text for a log line: control characters escaped, so a
/// Close reason cannot forge log lines.
pub fn printable(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.escape_debug().to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_strings_are_escaped_for_logs() {
        assert_eq!(printable("bye"), "bye");
        assert_eq!(printable("a\nINFO forged"), "a\\nINFO forged");
    }
}
