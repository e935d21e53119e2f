//! Browser-side connections: HTTP request heads, then a WebSocket serving
//! one application (echo, relay or gateway viewer).
//!
//! ```text
//!  Http ──static/err──▶ (respond, keep-alive) ──▶ Http
//!   │  └─error/close─▶ Draining ──▶ dropped
//!   └─upgrade─▶ Ws{app} ──close sent & received, output flushed──▶ dropped
//! ```
//! Close handshake (RFC 6455 §7.1.1): the server closes the TCP connection
//! after it has both sent and received a Close, or when the peer has not
//! answered within `CLOSE_GRACE`.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use log::{debug, info, warn};
use mio::net::TcpStream;
use mio::{Interest, Token};

use super::buf::{Buf, Pool};
use super::pipe::{PipePool, Splice, Step};
use super::stream::Stream;
use super::{Conn, Ready, Server, Upstream, BLOCK, CLOSE_GRACE, READS_PER_WAKEUP};
use crate::http::{self, Action};
use crate::relay;
use crate::ws::{close, Delivery, Event, Limits, WsSession};

/// Largest request head accepted (431 beyond).
const HEAD_LIMIT: usize = 8192;
/// Room kept free in a client's output for control frames (pong, close).
const CONTROL_ROOM: usize = 256;
/// A target read at least this large that filled its whole chunk marks a
/// bulk stream: the relay then splices instead of copying.
const BULK_READ: usize = 32 << 10;

pub(crate) enum App {
    /// Every message is sent back (examples/echo.rs, Autobahn).
    Echo,
    /// Bytes to and from a target; `None` once the target is gone.
    /// `splice` holds a pipe while a zero-copy frame is in flight
    /// (server/pipe.rs); `bulk` while the target sends faster than we read
    /// (the zero-copy path is then worth its extra syscall); `copy_only`
    /// once splicing failed for this target.
    Relay { upstream: Option<usize>, splice: Option<Splice>, bulk: bool, copy_only: bool },
    /// A viewer of a gateway session.
    Gateway(crate::gateway::ViewerId),
    /// Nothing behind the WebSocket any more: only the close handshake remains.
    Detached,
}

pub(crate) enum State {
    Http,
    Ws {
        ws: Box<WsSession>,
        app: App,
    },
    /// Send what is buffered, then close.
    Draining,
}

pub(crate) struct Client {
    pub sock: TcpStream,
    pub peer: SocketAddr,
    pub gen: u64,
    pub ready: Ready,
    pub inbuf: Buf,
    pub outbuf: Buf,
    pub state: State,
    pub opened: Instant,
    pub last_active: Instant,
    pub last_ping: Instant,
    /// Handshake deadline (Http) or close-grace deadline (closing Ws).
    pub deadline: Option<Instant>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Close code sent or received, for the log line.
    pub close_code: Option<u16>,
    pub close_reason: String,
    /// "path → target" for the log lines.
    pub label: String,
    pub read_eof: bool,
}

/// What one read attempt gave.
enum ReadOutcome {
    /// Bytes read, and whether that emptied the socket (see `drained`).
    Data(usize, bool),
    WouldBlock,
    Eof,
    Failed(io::Error),
}

/// A stream read that returned less than asked for took everything the
/// socket had (TCP and Unix stream sockets copy until the queue is empty),
/// so a second read would only say WouldBlock. With edge-triggered epoll,
/// data arriving later raises a new event, so the readiness bit can be
/// cleared now: one syscall less per message on the latency path (tokio's
/// readiness handling does the same). Not once the peer's end of stream was
/// reported (`Ready::read_closed`): a FIN already queued raises no new
/// event, so reading goes on until it returns 0.
fn drained(n: usize, asked: usize) -> bool {
    cfg!(target_os = "linux") && n < asked
}

fn read_some(src: &mut impl Read, buf: &mut Buf, pool: &mut Pool) -> ReadOutcome {
    let spare = buf.spare(pool);
    if spare.is_empty() {
        return ReadOutcome::WouldBlock;
    }
    loop {
        return match src.read(spare) {
            Ok(0) => ReadOutcome::Eof,
            Ok(n) => {
                let drained = drained(n, spare.len());
                buf.commit(n);
                ReadOutcome::Data(n, drained)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ReadOutcome::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => ReadOutcome::Failed(e),
        };
    }
}

/// Write from `buf` until empty or `WouldBlock`, then give an emptied
/// buffer's storage back to the pool. Returns bytes written, or the error
/// that ended the connection.
fn flush(dst: &mut impl Write, buf: &mut Buf, writable: &mut bool, pool: &mut Pool) -> io::Result<usize> {
    let total = buf.write_to(dst, writable)?;
    buf.release_if_empty(pool);
    Ok(total)
}

/// Send the rest of a relay frame waiting in its pipe (server/pipe.rs) while
/// the browser takes it; an emptied pipe goes back to the pool.
fn drain_splice(c: &mut Client, pipes: &mut PipePool) -> io::Result<()> {
    let State::Ws { app: App::Relay { splice, .. }, .. } = &mut c.state else { return Ok(()) };
    let Some(s) = splice.as_mut() else { return Ok(()) };
    if c.ready.writable && !s.is_idle() {
        let n = match s.drain(&c.sock)? {
            Step::Moved(n) => n,
            Step::Blocked(n) => {
                c.ready.writable = false;
                n
            }
        };
        c.bytes_out += n as u64;
        c.last_active = Instant::now();
    }
    if s.is_idle() {
        if let Some(p) = splice.take().and_then(Splice::into_pipe) {
            pipes.give(p);
        }
    }
    Ok(())
}

impl Client {
    pub fn new(sock: TcpStream, peer: SocketAddr, now: Instant, _max_message: usize) -> Client {
        Client {
            sock,
            peer,
            gen: 0,
            ready: Ready::default(),
            inbuf: Buf::with_cap(BLOCK),
            outbuf: Buf::with_cap(16 << 20),
            state: State::Http,
            opened: now,
            last_active: now,
            last_ping: now,
            deadline: None,
            bytes_in: 0,
            bytes_out: 0,
            close_code: None,
            close_reason: String::new(),
            label: String::new(),
            read_eof: false,
        }
    }

    /// Queue a Close frame (once) and start the close grace period.
    pub fn send_close(&mut self, code: u16, reason: &str, pool: &mut Pool, scratch: &mut Vec<u8>) {
        if let State::Ws { ws, .. } = &mut self.state {
            if ws.close_sent() {
                return;
            }
            scratch.clear();
            ws.send_close(code, reason, scratch);
            // Control frames always fit: CONTROL_ROOM is kept free, and if a
            // misbehaving peer filled it anyway the TCP close still ends it.
            let _ = self.outbuf.push(scratch, pool);
            if self.close_code.is_none() {
                self.close_code = Some(code);
                self.close_reason = reason.to_string();
            }
            self.deadline = Some(Instant::now() + CLOSE_GRACE);
        }
    }

    /// A relay frame is partly sent through its pipe: its rest must reach
    /// the browser before anything in `outbuf`.
    fn frame_in_flight(&self) -> bool {
        matches!(&self.state, State::Ws { app: App::Relay { splice: Some(s), .. }, .. } if !s.is_idle())
    }

    fn ws_done(&self) -> bool {
        match &self.state {
            State::Ws { ws, .. } => ws.close_sent() && ws.close_received() && self.outbuf.is_empty(),
            _ => false,
        }
    }
}

impl Server {
    pub(crate) fn client_mut(&mut self, key: usize) -> Option<&mut Client> {
        match self.conns.get_mut(key) {
            Some(Conn::Client(c)) => Some(c),
            _ => None,
        }
    }

    /// Do all the work a client's readiness allows.
    pub(crate) fn drive_client(&mut self, key: usize) {
        if matches!(self.client_mut(key).map(|c| &c.state), Some(State::Http)) {
            self.client_http(key);
        }
        if matches!(self.client_mut(key).map(|c| &c.state), Some(State::Ws { .. })) {
            self.client_ws(key);
        }
        self.client_flush_and_reap(key);
    }

    /// Flush output; drop the client if it is finished.
    fn client_flush_and_reap(&mut self, key: usize) {
        let Server { conns, pool, pipes, .. } = self;
        let Some(Conn::Client(c)) = conns.get_mut(key) else { return };
        // A relay frame half-way through its pipe goes out before the buffer.
        let flushed = match drain_splice(c, pipes) {
            Ok(()) if c.frame_in_flight() => Ok(0),
            Ok(()) => flush(&mut c.sock, &mut c.outbuf, &mut c.ready.writable, pool),
            Err(e) => Err(e),
        };
        match flushed {
            Ok(n) => {
                c.bytes_out += n as u64;
                if n > 0 {
                    c.last_active = Instant::now();
                }
            }
            Err(e) => {
                debug!("{}: write failed: {e}", c.peer);
                c.close_code.get_or_insert(1006);
                self.finish_client(key, "write failed");
                return;
            }
        }
        let done = match &c.state {
            State::Draining => c.outbuf.is_empty(),
            State::Ws { .. } => c.ws_done() || (c.read_eof && c.outbuf.is_empty()),
            State::Http => c.read_eof && c.outbuf.is_empty(),
        };
        if done {
            self.finish_client(key, "closed");
            return;
        }
        if let Some(Conn::Client(c)) = self.conns.get(key) {
            if let State::Ws { app: App::Gateway(v), .. } = &c.state {
                let v = *v;
                if c.outbuf.len() < crate::gateway::LOW_WATER {
                    self.gateway_viewer_writable(key, v);
                }
            }
        }
    }

    // ---------------------------------------------------------------- HTTP

    fn client_http(&mut self, key: usize) {
        let limits = http::Limits { max_head_bytes: HEAD_LIMIT, ..http::Limits::default() };
        for _ in 0..READS_PER_WAKEUP {
            let Server { conns, pool, .. } = self;
            let Some(Conn::Client(c)) = conns.get_mut(key) else { return };
            if !matches!(c.state, State::Http) {
                return;
            }
            // Parse everything already buffered (pipelined requests) first.
            match http::parse_head(c.inbuf.data(), &limits) {
                Ok(Some((head, n))) => {
                    c.inbuf.consume(n);
                    self.client_request(key, head);
                    continue;
                }
                Ok(None) if c.inbuf.len() >= HEAD_LIMIT => {
                    self.client_http_error(key, 431);
                    return;
                }
                Ok(None) => {}
                Err(status) => {
                    self.client_http_error(key, status);
                    return;
                }
            }
            if !c.ready.readable || c.read_eof {
                return;
            }
            match read_some(&mut c.sock, &mut c.inbuf, pool) {
                ReadOutcome::Data(n, _) => c.bytes_in += n as u64,
                ReadOutcome::WouldBlock => {
                    c.ready.readable = false;
                    return;
                }
                ReadOutcome::Eof => {
                    c.read_eof = true;
                    return;
                }
                ReadOutcome::Failed(e) => {
                    debug!("{}: read failed: {e}", c.peer);
                    self.finish_client(key, "read failed");
                    return;
                }
            }
        }
        self.schedule(key);
    }

    fn client_http_error(&mut self, key: usize, status: u16) {
        let Server { conns, pool, .. } = self;
        let Some(Conn::Client(c)) = conns.get_mut(key) else { return };
        debug!("{}: HTTP error {status}", c.peer);
        let _ = c.outbuf.push(&http::error_response(status, true), pool);
        c.inbuf.release(pool);
        c.state = State::Draining;
    }

    fn client_request(&mut self, key: usize, head: http::Head) {
        let Some(peer) = self.client_mut(key).map(|c| c.peer) else { return };
        let unix_time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let action = http::route(&head, &mut self.site, &http::Peer { addr: peer, now: Instant::now(), unix_time });
        let Server { conns, pool, cfg, .. } = self;
        let Some(Conn::Client(c)) = conns.get_mut(key) else { return };
        match action {
            Action::Respond { bytes, close, status } => {
                debug!("{} {} {} → {status}", c.peer, head.method, head.target);
                if !c.outbuf.push(&bytes, pool) {
                    let _ = c.outbuf.push(&http::error_response(500, true), pool);
                    c.state = State::Draining;
                    return;
                }
                if close {
                    c.inbuf.release(pool);
                    c.state = State::Draining;
                } else {
                    c.deadline = Some(Instant::now() + cfg.handshake_timeout);
                }
            }
            Action::Upgrade(up) => self.client_upgrade(key, up),
        }
    }

    fn client_upgrade(&mut self, key: usize, up: http::Upgrade) {
        let echo = self.cfg.echo;
        let limits = Limits { max_message: self.cfg.max_message };
        let now = Instant::now();
        if echo {
            let deflate = crate::ws::deflate::negotiate(&up.extensions);
            let reply = deflate.as_ref().map(|(_, r)| r.as_str());
            let resp = http::upgrade_response(&up, reply);
            let Server { conns, pool, cfg, .. } = self;
            let Some(Conn::Client(c)) = conns.get_mut(key) else { return };
            let _ = c.outbuf.push(&resp, pool);
            c.outbuf = replace_cap(&mut c.outbuf, 2 * cfg.max_message + BLOCK, pool);
            c.state = State::Ws {
                ws: Box::new(WsSession::new(limits, Delivery::Whole, deflate.map(|(p, _)| p))),
                app: App::Echo,
            };
            c.deadline = None;
            c.last_active = now;
            c.label = format!("{} (echo)", up.path);
            debug!("{}: WebSocket open {}", c.peer, c.label);
            return;
        }
        if up.path == crate::gateway::PATH {
            self.gateway_attach(key, up);
            return;
        }
        // Relay: the target comes from configuration only, never the URL.
        let (_, target) = self.target_for(&up);
        let target = target.and_then(|t| crate::relay::relayable(t, self.cfg.view_only));
        let resp = http::upgrade_response(&up, None);
        let relay_cap = self.cfg.relay_buffer;
        let relay_splice = self.cfg.relay_splice;
        let Server { conns, pool, poll, scratch, .. } = self;
        let Some(Conn::Client(c)) = conns.get_mut(key) else { return };
        let _ = c.outbuf.push(&resp, pool);
        c.outbuf = replace_cap(&mut c.outbuf, relay_cap, pool);
        c.state = State::Ws {
            ws: Box::new(WsSession::new(limits, Delivery::StreamBinary, None)),
            app: App::Relay { upstream: None, splice: None, bulk: false, copy_only: !relay_splice },
        };
        c.deadline = None;
        c.last_active = now;
        let target = match target {
            Ok(t) => t,
            Err(why) => {
                c.label = format!("{} → (none)", up.path);
                info!("{}: WebSocket {}: refused: {why}", c.peer, up.path);
                c.send_close(close::POLICY_VIOLATION, &why, pool, scratch);
                return;
            }
        };
        c.label = format!("{} → {}", up.path, target.addr);
        let mut stream = match Stream::connect(&target.addr) {
            Ok(s) => s,
            Err(e) => {
                let why = format!("cannot connect to {}: {e}", target.addr);
                info!("{}: WebSocket {}: {why}", c.peer, c.label);
                c.send_close(close::INTERNAL_ERROR, &why, pool, scratch);
                return;
            }
        };
        let entry = conns.vacant_entry();
        let ukey = entry.key();
        if let Err(e) = poll.registry().register(&mut stream, Token(ukey), Interest::READABLE | Interest::WRITABLE) {
            warn!("register failed: {e}");
            return;
        }
        entry.insert(Conn::Upstream(Upstream {
            stream,
            client: key,
            connected: false,
            ready: Ready::default(),
            out: Buf::with_cap(relay_cap),
            eof: false,
        }));
        if let Some(Conn::Client(c)) = conns.get_mut(key) {
            if let State::Ws { app: App::Relay { upstream, .. }, .. } = &mut c.state {
                *upstream = Some(ukey);
            }
            info!("{}: WebSocket open {}", c.peer, c.label);
        }
    }

    // ----------------------------------------------------------- WebSocket

    fn client_ws(&mut self, key: usize) {
        let app_kind = match self.client_mut(key).map(|c| &c.state) {
            Some(State::Ws { app: App::Echo, .. }) => 0,
            Some(State::Ws { app: App::Relay { .. }, .. }) => 1,
            Some(State::Ws { app: App::Gateway(_), .. }) => 2,
            Some(State::Ws { app: App::Detached, .. }) => 3,
            _ => return,
        };
        match app_kind {
            0 => self.echo_step(key),
            1 => self.relay_step(key),
            2 => self.gateway_viewer_step(key),
            _ => self.ws_control_only(key),
        }
    }

    /// Read from the client socket into `inbuf` if there is room. Returns
    /// false when nothing more can be read now.
    pub(crate) fn client_read(&mut self, key: usize) -> bool {
        let Server { conns, pool, .. } = self;
        let Some(Conn::Client(c)) = conns.get_mut(key) else { return false };
        if !c.ready.readable || c.read_eof || c.inbuf.room() == 0 {
            return false;
        }
        match read_some(&mut c.sock, &mut c.inbuf, pool) {
            ReadOutcome::Data(n, drained) => {
                c.bytes_in += n as u64;
                c.last_active = Instant::now();
                if drained && !c.ready.read_closed {
                    c.ready.readable = false;
                }
                true
            }
            ReadOutcome::WouldBlock => {
                c.ready.readable = false;
                false
            }
            ReadOutcome::Eof => {
                c.read_eof = true;
                false
            }
            ReadOutcome::Failed(e) => {
                debug!("{}: read failed: {e}", c.peer);
                c.read_eof = true;
                false
            }
        }
    }

    fn echo_step(&mut self, key: usize) {
        for _ in 0..READS_PER_WAKEUP {
            let Server { conns, pool, scratch, echo_tmp, cfg, .. } = self;
            let Some(Conn::Client(c)) = conns.get_mut(key) else { return };
            let State::Ws { ws, .. } = &mut c.state else { return };
            // Process buffered input while the reply is sure to fit.
            let mut progressed = false;
            let mut fail = None;
            while !c.inbuf.is_empty() && c.outbuf.room() >= cfg.max_message + BLOCK && !ws.close_received() {
                scratch.clear();
                let result = ws.read(c.inbuf.data_mut(), scratch);
                match result {
                    Ok((n, ev)) => {
                        let mut reply: Option<bool> = None; // Some(is_text)
                        let mut closed = None;
                        match ev {
                            Some(Event::Text(t)) => {
                                echo_tmp.clear();
                                echo_tmp.extend_from_slice(t.as_bytes());
                                reply = Some(true);
                            }
                            Some(Event::Binary(b)) => {
                                echo_tmp.clear();
                                echo_tmp.extend_from_slice(b);
                                reply = Some(false);
                            }
                            Some(Event::Close { code, reason }) => closed = Some((code, reason.to_string())),
                            _ => {}
                        }
                        match reply {
                            Some(true) => ws.send_text(std::str::from_utf8(echo_tmp).unwrap_or(""), scratch),
                            Some(false) => ws.send_binary(echo_tmp, scratch),
                            None => {}
                        }
                        c.inbuf.consume(n);
                        let _ = c.outbuf.push(scratch, pool);
                        let had_event = progressed_event(&reply, &closed);
                        if let Some((code, reason)) = closed {
                            c.close_code.get_or_insert(code);
                            c.close_reason = reason;
                            c.deadline = Some(Instant::now() + CLOSE_GRACE);
                        }
                        if n == 0 && !had_event {
                            break;
                        }
                        progressed = true;
                    }
                    Err(e) => {
                        fail = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = fail {
                c.inbuf.release(pool);
                let _ = c.outbuf.push(scratch, pool);
                c.send_close(e.code, e.reason, pool, scratch);
                c.read_eof = true; // read nothing more
                return;
            }
            c.inbuf.release_if_empty(pool);
            // Write before reading more, so output drains as we go.
            let wrote = match flush(&mut c.sock, &mut c.outbuf, &mut c.ready.writable, pool) {
                Ok(n) => {
                    c.bytes_out += n as u64;
                    n
                }
                Err(e) => {
                    debug!("{}: write failed: {e}", c.peer);
                    c.read_eof = true;
                    return;
                }
            };
            // Stop only when nothing moved: no input consumed, no output
            // written, nothing new read (else no event would wake us).
            let got = self.client_read(key);
            if !(got || wrote > 0 || progressed) {
                return;
            }
        }
        self.schedule(key);
    }

    // --------------------------------------------------------------- relay

    fn relay_step(&mut self, key: usize) {
        let upstream = match self.client_mut(key).map(|c| &c.state) {
            Some(State::Ws { app: App::Relay { upstream, .. }, .. }) => *upstream,
            _ => return,
        };
        let Some(ukey) = upstream else {
            // No target (refused or gone): only the close handshake remains.
            self.ws_control_only(key);
            return;
        };
        let mut budget = READS_PER_WAKEUP;
        loop {
            let Server { conns, pool, scratch, pipes, .. } = self;
            let Some((Conn::Client(c), Conn::Upstream(u))) = conns.get2_mut(key, ukey) else {
                return;
            };
            let State::Ws { ws, .. } = &mut c.state else { return };
            let mut progress = false;

            // Connection to the target completing.
            if !u.connected && u.ready.writable {
                match u.stream.finish_connect() {
                    Ok(true) => {
                        u.connected = true;
                        u.stream.set_nodelay();
                        debug!("{}: connected to target", c.peer);
                    }
                    Ok(false) => u.ready.writable = false,
                    Err(e) => {
                        let why = format!("cannot connect to target: {e}");
                        info!("{}: WebSocket {}: {why}", c.peer, c.label);
                        c.send_close(close::INTERNAL_ERROR, &why, pool, scratch);
                        self.drop_upstream(key);
                        return;
                    }
                }
            }

            // Browser → target: WebSocket frames out of inbuf into u.out.
            let mut fail: Option<(u16, &'static str)> = None;
            while !c.inbuf.is_empty() && !ws.close_received() && c.outbuf.room() >= CONTROL_ROOM {
                let lim = u.out.room().min(c.inbuf.len());
                if lim == 0 {
                    break;
                }
                scratch.clear();
                match ws.read(&mut c.inbuf.data_mut()[..lim], scratch) {
                    Ok((n, ev)) => {
                        match ev {
                            Some(Event::Binary(d)) => {
                                let _ = u.out.push(d, pool);
                            }
                            Some(Event::Text(_)) => {
                                fail = Some((close::UNSUPPORTED_DATA, "the relay carries binary messages only"))
                            }
                            Some(Event::Close { code, reason }) => {
                                c.close_code.get_or_insert(code);
                                c.close_reason = reason.to_string();
                                c.deadline = Some(Instant::now() + CLOSE_GRACE);
                            }
                            _ => {}
                        }
                        c.inbuf.consume(n);
                        let _ = c.outbuf.push(scratch, pool);
                        if fail.is_some() || n == 0 {
                            break;
                        }
                        progress = true;
                    }
                    Err(e) => {
                        let _ = c.outbuf.push(scratch, pool);
                        fail = Some((e.code, e.reason));
                        break;
                    }
                }
            }
            if let Some((code, why)) = fail {
                c.inbuf.release(pool);
                c.send_close(code, why, pool, scratch);
                c.read_eof = true;
            }
            c.inbuf.release_if_empty(pool);
            // Target → browser. First the rest of a frame already in a pipe.
            let mut write_failed = drain_splice(c, pipes).err();
            let State::Ws { ws, app } = &mut c.state else { return };
            let App::Relay { splice, copy_only, bulk, .. } = app else { return };
            // Then new frames, by one of two paths:
            // * copying: read into the client's output buffer behind room
            //   for the header (relay.rs), as many small messages want;
            // * zero copy (server/pipe.rs): target → pipe → browser, one frame
            //   per splice, taken once a read filled its whole chunk (a bulk
            //   stream) and only while nothing else is queued for the browser.
            // Splicing costs one syscall more per frame, so small messages
            // (echo, input, small updates) stay on the copying path.
            while write_failed.is_none() && u.connected && u.ready.readable && !u.eof && !ws.close_sent() {
                let idle_pipe = splice.as_ref().is_none_or(Splice::is_idle);
                if *bulk && !*copy_only && idle_pipe && c.outbuf.is_empty() {
                    if !c.ready.writable {
                        break;
                    }
                    let s = match splice {
                        Some(s) => s,
                        None => match pipes.take() {
                            Ok(p) => splice.insert(Splice::new(p)),
                            Err(e) => {
                                debug!("{}: no pipe ({e}): copying", c.peer);
                                *copy_only = true;
                                continue;
                            }
                        },
                    };
                    match s.fill(&u.stream) {
                        Ok(0) => u.eof = true,
                        Ok(n) => {
                            progress = true;
                            *bulk = n >= BULK_READ;
                            c.last_active = Instant::now();
                            match s.drain(&c.sock) {
                                Ok(Step::Moved(n)) => c.bytes_out += n as u64,
                                Ok(Step::Blocked(n)) => {
                                    c.bytes_out += n as u64;
                                    c.ready.writable = false;
                                }
                                Err(e) => write_failed = Some(e),
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            u.ready.readable = false;
                            *bulk = false;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            // EINVAL and friends (a target splice does not
                            // support): the copying path reads it from now on,
                            // and reports a real read error itself.
                            debug!("{}: splice from target failed ({e}): copying", c.peer);
                            *copy_only = true;
                        }
                    }
                    continue;
                }
                // Copying path; never while a frame waits in a pipe.
                if !idle_pipe || c.outbuf.room() < relay::HEADER_ROOM + 1024 + CONTROL_ROOM {
                    break;
                }
                let room = c.outbuf.room().saturating_sub(CONTROL_ROOM);
                let spare = c.outbuf.spare(pool);
                let usable = spare.len().min(room);
                if usable < relay::HEADER_ROOM + 1 {
                    break;
                }
                let max = (usable - relay::HEADER_ROOM).min(relay::MAX_CHUNK);
                match u.stream.read(&mut spare[relay::HEADER_ROOM..relay::HEADER_ROOM + max]) {
                    Ok(0) => u.eof = true,
                    Ok(n) => {
                        let total = relay::frame_in_place(spare, n);
                        c.outbuf.commit(total);
                        progress = true;
                        *bulk = n == max && n >= BULK_READ;
                        if drained(n, max) && !u.ready.read_closed {
                            u.ready.readable = false;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => u.ready.readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        debug!("{}: target read failed: {e}", c.peer);
                        u.eof = true;
                    }
                }
            }
            // An idle pipe goes back to the pool: idle relays hold none.
            if splice.as_ref().is_some_and(Splice::is_idle) {
                if let Some(p) = splice.take().and_then(Splice::into_pipe) {
                    pipes.give(p);
                }
            }
            if let Some(e) = write_failed {
                debug!("{}: write failed: {e}", c.peer);
                c.close_code.get_or_insert(1006);
                self.finish_client(key, "write failed");
                return;
            }
            let in_flight = splice.is_some();

            // Flush both directions (a frame still in its pipe goes first).
            let flushed =
                if in_flight { Ok(0) } else { flush(&mut c.sock, &mut c.outbuf, &mut c.ready.writable, pool) };
            match flushed {
                Ok(n) => {
                    c.bytes_out += n as u64;
                    if n > 0 {
                        // Room was made: reading the target may continue.
                        c.last_active = Instant::now();
                        progress = true;
                    }
                }
                Err(e) => {
                    debug!("{}: write failed: {e}", c.peer);
                    c.close_code.get_or_insert(1006);
                    self.finish_client(key, "write failed");
                    return;
                }
            }
            if u.connected {
                match flush(&mut u.stream, &mut u.out, &mut u.ready.writable, pool) {
                    Ok(n) => progress |= n > 0,
                    Err(e) => {
                        let why = format!("target write failed: {e}");
                        c.send_close(close::INTERNAL_ERROR, &why, pool, scratch);
                        self.drop_upstream(key);
                        return;
                    }
                }
            }

            // Endings.
            let (close_sent, close_received) = (ws.close_sent(), ws.close_received());
            if u.eof && !close_sent {
                c.send_close(close::NORMAL, "target closed the connection", pool, scratch);
                self.drop_upstream(key);
                return;
            }
            if close_received && u.out.is_empty() {
                u.stream.shutdown_write();
                self.drop_upstream(key);
                return;
            }
            if c.read_eof && !close_received {
                // The browser vanished without a Close (1006): drop both ends.
                c.close_code.get_or_insert(1006);
                self.drop_upstream(key);
                return;
            }

            // More input from the browser, if its data has somewhere to go.
            let Server { conns, .. } = self;
            let Some(Conn::Client(c)) = conns.get(key) else { return };
            let want_read = c.ready.readable && !c.read_eof && c.inbuf.room() > 0;
            if want_read && self.client_read(key) {
                progress = true;
            }
            if !progress {
                return;
            }
            budget -= 1;
            if budget == 0 {
                self.schedule(key);
                return;
            }
        }
    }

    /// Remove a relay's target connection (the client stays for its close).
    fn drop_upstream(&mut self, key: usize) {
        let ukey = match self.client_mut(key).map(|c| &mut c.state) {
            Some(State::Ws { app: App::Relay { upstream, .. }, .. }) => upstream.take(),
            _ => None,
        };
        if let Some(u) = ukey {
            if let Some(Conn::Upstream(mut up)) = self.remove_conn(u) {
                up.out.release(&mut self.pool);
            }
        }
        self.schedule(key);
    }

    /// A WebSocket with nothing behind it: read frames only to complete the
    /// close handshake.
    pub(crate) fn ws_control_only(&mut self, key: usize) {
        for _ in 0..READS_PER_WAKEUP {
            let Server { conns, pool, scratch, .. } = self;
            let Some(Conn::Client(c)) = conns.get_mut(key) else { return };
            let State::Ws { ws, .. } = &mut c.state else { return };
            while !c.inbuf.is_empty() && !ws.close_received() {
                scratch.clear();
                match ws.read(c.inbuf.data_mut(), scratch) {
                    Ok((n, ev)) => {
                        if let Some(Event::Close { code, .. }) = ev {
                            c.close_code.get_or_insert(code);
                        }
                        c.inbuf.consume(n);
                        let _ = c.outbuf.push(scratch, pool);
                        if n == 0 {
                            break;
                        }
                    }
                    Err(_) => {
                        c.inbuf.release(pool);
                        c.read_eof = true;
                        break;
                    }
                }
            }
            if ws.close_received() {
                c.inbuf.release(pool);
                return;
            }
            if !self.client_read(key) {
                return;
            }
        }
        self.schedule(key);
    }

    // ------------------------------------------------------ timers, ending

    /// Deadlines, idle timeout and heartbeat for one client.
    pub(crate) fn client_sweep(&mut self, key: usize, now: Instant) {
        let heartbeat = self.cfg.heartbeat;
        let idle = self.cfg.idle_timeout;
        let handshake = self.cfg.handshake_timeout;
        let Server { conns, pool, scratch, .. } = self;
        let Some(Conn::Client(c)) = conns.get_mut(key) else { return };
        match &mut c.state {
            State::Http | State::Draining => {
                let deadline = c.deadline.unwrap_or(c.opened + handshake);
                if now >= deadline {
                    debug!("{}: handshake timeout", c.peer);
                    if matches!(c.state, State::Http) && !c.inbuf.is_empty() {
                        let _ = c.outbuf.push(&http::error_response(408, true), pool);
                        let _ = c.sock.write(c.outbuf.data());
                    }
                    self.finish_client(key, "handshake timeout");
                }
            }
            State::Ws { ws, .. } => {
                if let Some(d) = c.deadline {
                    if now >= d {
                        c.close_code.get_or_insert(1006);
                        self.finish_client(key, "close timeout");
                        return;
                    }
                }
                if ws.close_sent() {
                    return;
                }
                if let Some(idle) = idle {
                    if now.duration_since(c.last_active) >= idle {
                        c.send_close(close::GOING_AWAY, "idle timeout", pool, scratch);
                        self.schedule(key);
                        return;
                    }
                }
                if let Some(hb) = heartbeat {
                    if now.duration_since(c.last_ping) >= hb {
                        c.last_ping = now;
                        scratch.clear();
                        ws.send_ping(b"wsvnc", scratch);
                        if c.outbuf.room() >= scratch.len() {
                            let _ = c.outbuf.push(scratch, pool);
                            self.schedule(key);
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn client_timer(&mut self, key: usize, now: Instant) {
        self.client_sweep(key, now);
    }

    /// Shutdown: tell a WebSocket client we are going away (1001).
    pub(crate) fn client_going_away(&mut self, key: usize) {
        let Server { conns, pool, scratch, .. } = self;
        let Some(Conn::Client(c)) = conns.get_mut(key) else { return };
        match c.state {
            State::Ws { .. } => {
                c.send_close(close::GOING_AWAY, "server shutting down", pool, scratch);
                self.schedule(key);
            }
            _ => self.finish_client(key, "server shutting down"),
        }
    }

    /// Drop a client and whatever hangs off it; log its closing line.
    pub(crate) fn finish_client(&mut self, key: usize, why: &str) {
        let Some(Conn::Client(mut c)) = self.remove_conn(key) else { return };
        c.inbuf.release(&mut self.pool);
        c.outbuf.release(&mut self.pool);
        let secs = c.opened.elapsed().as_secs_f64();
        match c.state {
            State::Ws { app, .. } => {
                match app {
                    App::Relay { upstream: Some(u), .. } => {
                        if let Some(Conn::Upstream(mut up)) = self.remove_conn(u) {
                            up.out.release(&mut self.pool);
                        }
                    }
                    App::Gateway(v) => self.gateway_detach(v),
                    _ => {}
                }
                let code = c.close_code.map_or("none".to_string(), |c| c.to_string());
                info!(
                    "{}: WebSocket closed {}: {} bytes in, {} bytes out, {:.1}s, close code {} {}({why})",
                    c.peer,
                    c.label,
                    c.bytes_in,
                    c.bytes_out,
                    secs,
                    code,
                    if c.close_reason.is_empty() { String::new() } else { format!("\"{}\" ", c.close_reason) },
                );
            }
            _ => debug!("{}: HTTP connection closed after {secs:.1}s ({why})", c.peer),
        }
    }
}

fn progressed_event(reply: &Option<bool>, closed: &Option<(u16, String)>) -> bool {
    reply.is_some() || closed.is_some()
}

/// The same pending bytes in a buffer with a different cap.
fn replace_cap(old: &mut Buf, cap: usize, pool: &mut Pool) -> Buf {
    let mut b = Buf::with_cap(cap.max(old.len()));
    let _ = b.push(old.data(), pool);
    old.release(pool);
    b
}
