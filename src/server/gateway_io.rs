//! Sockets of gateway mode: RFB connections to VNC servers, viewer
//! WebSockets, and the built-in demo VNC server's listener and peers.
//! The decisions live in `gateway::Session` and `demo::DemoServer`; this
//! file only moves bytes and applies backpressure.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use super::buf::Buf;
use super::client::{App, State};
use super::stream::Stream;
use super::{Conn, Ready, Server, BLOCK, DEMO_LISTENER, READS_PER_WAKEUP};
use crate::config::{Target, TargetAddr};
use crate::demo::DemoServer;
use crate::gateway::{Attempt, Composed, ViewerId, LOW_WATER};
use crate::http;
use crate::ws::{close, Delivery, Event, Limits, WsSession};

/// Largest RFB unit we buffer (ServerCutText is capped at 1 MiB by the client).
const VNC_IN_CAP: usize = 4 << 20;
/// Input to the VNC server (key/pointer/clipboard) waiting to be written.
const VNC_OUT_CAP: usize = 2 << 20;
/// A viewer's buffered output: below LOW_WATER before each chunk, plus one
/// chunk (`gateway::CHUNK`, or one larger message of a part).
const VIEWER_OUT_CAP: usize = 8 << 20;
/// Viewer input is read only while the VNC side has this much room.
const VNC_OUT_HEADROOM: usize = 64 << 10;
/// A VNC server must accept the TCP connection and finish the RFB handshake
/// (waiting for a browser's password excluded) within this, else the
/// session fails: a server that accepts and then says nothing would
/// otherwise leave its viewers at "connecting" forever.
const VNC_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Demo peers get a new update only below this much unsent output.
const DEMO_LOW_WATER: usize = 256 << 10;

pub(crate) enum GatewayConn {
    Vnc(VncConn),
    /// Boxed: a demo peer is ~5.7 KB, and every slab entry (each relay
    /// client and upstream too) is as large as the largest variant.
    Demo(Box<DemoPeer>),
}

/// The RFB connection of one session.
pub(crate) struct VncConn {
    stream: Stream,
    session: usize,
    ready: Ready,
    connected: bool,
    inbuf: Buf,
    outbuf: Buf,
    /// The TCP connect and RFB handshake must be done by then; `None`
    /// while a browser is being asked for the password, and once Ready.
    handshake_deadline: Option<Instant>,
    /// A timer is set for the session's `poll_timeout` at this time.
    wake: Option<Instant>,
}

/// Timer generation of a session's wake-up (`Session::poll_timeout`) on its
/// VNC connection's key.
const SESSION_WAKE: u64 = u64::MAX;

/// One client of the built-in demo VNC server.
pub(crate) struct DemoPeer {
    sock: TcpStream,
    peer: SocketAddr,
    demo: DemoServer,
    ready: Ready,
    inbuf: Buf,
    out: Vec<u8>,
    sent: usize,
    gen: u64,
}

impl GatewayConn {
    pub fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            GatewayConn::Vnc(v) => r.deregister(&mut v.stream),
            GatewayConn::Demo(d) => r.deregister(&mut d.sock),
        }
    }
}

fn ms_since(epoch: Instant, now: Instant) -> u64 {
    now.duration_since(epoch).as_millis() as u64
}

impl Server {
    // ------------------------------------------------------------ viewers

    /// A WebSocket upgrade on the gateway path.
    pub(crate) fn gateway_attach(&mut self, key: usize, up: http::Upgrade) {
        let view_only_param = matches!(http::query_param(&up.query, "view_only"), Some("1" | "true"));
        let (session_key, target) = self.target_for(&up);
        let deflate = crate::ws::deflate::negotiate(&up.extensions);
        let reply = deflate.as_ref().map(|(_, r)| r.clone());
        let resp = http::upgrade_response(&up, reply.as_deref());
        let limits = Limits { max_message: self.cfg.max_message.min(crate::gateway::proto::MAX_CLIPBOARD + 64) };
        {
            let Server { conns, pool, .. } = self;
            let Some(Conn::Client(c)) = conns.get_mut(key) else { return };
            let _ = c.outbuf.push(&resp, pool);
            let pending = c.outbuf.data().to_vec();
            c.outbuf.release(pool);
            c.outbuf = Buf::with_cap(VIEWER_OUT_CAP);
            let _ = c.outbuf.push(&pending, pool);
            c.state = State::Ws {
                ws: Box::new(WsSession::new(limits, Delivery::Whole, deflate.map(|(p, _)| p))),
                app: App::Detached,
            };
            c.deadline = None;
            c.last_active = Instant::now();
        }
        let target = match target {
            Ok(t) => t,
            Err(why) => {
                self.viewer_refuse(key, &why, close::POLICY_VIOLATION);
                return;
            }
        };
        let sidx = match self.gw.find(&session_key) {
            Some(s) => s,
            None => match self.gateway_open_session(&session_key, &target) {
                Ok(s) => s,
                Err(why) => {
                    self.viewer_refuse(key, &why, close::INTERNAL_ERROR);
                    return;
                }
            },
        };
        let view_only = self.cfg.view_only || target.view_only || view_only_param;
        let session = &mut self.gw.sessions[sidx];
        let vidx = session.add_viewer(key, view_only);
        let label = format!("{} → {}{}", up.path, session.label, if view_only { " (view only)" } else { "" });
        let vid = ViewerId { session: sidx, viewer: vidx };
        if let Some(c) = self.client_mut(key) {
            c.label = label;
            if let State::Ws { app, .. } = &mut c.state {
                *app = App::Gateway(vid);
            }
            info!("{}: WebSocket open {}", c.peer, c.label);
        }
        self.pump_viewer(key, vid);
    }

    /// Tell a browser why it cannot have a session, then close.
    fn viewer_refuse(&mut self, key: usize, why: &str, code: u16) {
        let Server { conns, pool, scratch, echo_tmp, .. } = self;
        let Some(Conn::Client(c)) = conns.get_mut(key) else { return };
        info!("{}: WebSocket {}: refused: {why}", c.peer, crate::gateway::PATH);
        c.label = format!("{} → (none)", crate::gateway::PATH);
        if let State::Ws { ws, .. } = &mut c.state {
            echo_tmp.clear();
            crate::gateway::proto::error(echo_tmp, why);
            scratch.clear();
            ws.send_binary(echo_tmp, scratch);
            let _ = c.outbuf.push(scratch, pool);
        }
        c.send_close(code, why, pool, scratch);
    }

    /// Create a session and start its TCP connection to the VNC server.
    fn gateway_open_session(&mut self, session_key: &str, target: &Target) -> Result<usize, String> {
        let mut stream =
            Stream::connect(&target.addr).map_err(|e| format!("cannot connect to VNC server {}: {e}", target.addr))?;
        let sidx = self.gw.create(session_key, target);
        let entry = self.conns.vacant_entry();
        let ckey = entry.key();
        if let Err(e) = self.poll.registry().register(&mut stream, Token(ckey), Interest::READABLE | Interest::WRITABLE)
        {
            self.gw.remove(sidx);
            return Err(format!("cannot register VNC connection: {e}"));
        }
        entry.insert(Conn::Gateway(GatewayConn::Vnc(VncConn {
            stream,
            session: sidx,
            ready: Ready::default(),
            connected: false,
            inbuf: Buf::with_cap(VNC_IN_CAP),
            outbuf: Buf::with_cap(VNC_OUT_CAP),
            handshake_deadline: Some(Instant::now() + VNC_HANDSHAKE_TIMEOUT),
            wake: None,
        })));
        self.gw.sessions[sidx].conn = Some(ckey);
        info!("gateway session {} → {}: connecting", sidx, target.addr);
        Ok(sidx)
    }

    /// Input from a viewer's WebSocket, then its output.
    pub(crate) fn gateway_viewer_step(&mut self, key: usize) {
        let vid = match self.client_mut(key).map(|c| &c.state) {
            Some(State::Ws { app: App::Gateway(v), .. }) => *v,
            _ => return,
        };
        for _ in 0..READS_PER_WAKEUP {
            let now = Instant::now();
            let mut to_server = std::mem::take(&mut self.rfb_tmp);
            to_server.clear();
            let vnc_key = self.gw.sessions.get(vid.session).and_then(|s| s.conn);
            let vnc_room = match vnc_key.and_then(|k| self.conns.get(k)) {
                Some(Conn::Gateway(GatewayConn::Vnc(v))) => v.outbuf.room(),
                _ => usize::MAX,
            };
            let mut fail: Option<(u16, String)> = None;
            {
                let Server { conns, pool, scratch, gw, .. } = self;
                let Some(Conn::Client(c)) = conns.get_mut(key) else { return };
                let State::Ws { ws, .. } = &mut c.state else { return };
                while !c.inbuf.is_empty() && !ws.close_received() && vnc_room >= VNC_OUT_HEADROOM + to_server.len() {
                    scratch.clear();
                    match ws.read(c.inbuf.data_mut(), scratch) {
                        Ok((n, ev)) => {
                            match ev {
                                Some(Event::Binary(msg)) => {
                                    if let Some(s) = gw.sessions.get_mut(vid.session) {
                                        let at = &mut Attempt { guard: &mut gw.guard, peer: c.peer.ip(), now };
                                        if let Err(bad) =
                                            s.handle_viewer_message(vid.viewer, msg, now, &mut to_server, at)
                                        {
                                            fail = Some((bad.code, bad.reason.to_string()));
                                        }
                                    }
                                }
                                Some(Event::Text(_)) => {
                                    fail = Some((
                                        close::UNSUPPORTED_DATA,
                                        "text messages are not part of the protocol".into(),
                                    ))
                                }
                                Some(Event::Close { code, reason }) => {
                                    c.close_code.get_or_insert(code);
                                    c.close_reason = reason.to_string();
                                    c.deadline = Some(Instant::now() + super::CLOSE_GRACE);
                                }
                                _ => {}
                            }
                            c.inbuf.consume(n);
                            let _ = c.outbuf.push(scratch, pool);
                            if n == 0 || fail.is_some() {
                                break;
                            }
                        }
                        Err(e) => {
                            let _ = c.outbuf.push(scratch, pool);
                            fail = Some((e.code, e.reason.to_string()));
                            break;
                        }
                    }
                }
                if let Some((code, why)) = &fail {
                    c.inbuf.release(pool);
                    c.send_close(*code, why, pool, scratch);
                    c.read_eof = true;
                }
                c.inbuf.release_if_empty(pool);
            }
            if !to_server.is_empty() {
                if let Some(k) = vnc_key {
                    self.vnc_send(k, &to_server);
                }
            }
            self.rfb_tmp = to_server;
            self.pump_session(vid.session);
            if fail.is_some() || !self.client_read(key) {
                return;
            }
        }
        self.schedule(key);
    }

    /// The viewer's socket has drained: send more if there is more.
    pub(crate) fn gateway_viewer_writable(&mut self, key: usize, vid: ViewerId) {
        self.pump_viewer(key, vid);
        self.wake_session_at_poll_timeout(vid.session);
    }

    /// Compose output for one viewer while its socket has room.
    pub(crate) fn pump_viewer(&mut self, key: usize, vid: ViewerId) {
        let now = Instant::now();
        let Server { conns, pool, scratch, gw, compose_tmp, .. } = self;
        let Some(Conn::Client(c)) = conns.get_mut(key) else { return };
        let Some(session) = gw.sessions.get_mut(vid.session) else { return };
        let State::Ws { ws, .. } = &mut c.state else { return };
        let mut wrote = false;
        while c.outbuf.len() < LOW_WATER && !ws.close_sent() {
            compose_tmp.clear();
            let composed = session.compose(vid.viewer, now, compose_tmp);
            scratch.clear();
            match composed {
                Composed::Nothing => break,
                Composed::Deflate => ws.send_binary(compose_tmp, scratch),
                Composed::Raw => ws.send_binary_uncompressed(compose_tmp, scratch),
            }
            session.sent(vid.viewer, composed, compose_tmp.len(), scratch.len(), now);
            if !c.outbuf.push(scratch, pool) {
                warn!("{}: viewer output over its cap; closing", c.peer);
                c.read_eof = true;
                break;
            }
            wrote = true;
        }
        if let Some((code, why)) = session.viewer_close(vid.viewer) {
            c.send_close(code, &why, pool, scratch);
        }
        if wrote {
            self.schedule(key);
        }
    }

    /// Set a timer for the session's next wake-up (JPEG areas due for
    /// refinement), unless one is set for that time or earlier.
    fn wake_session_at_poll_timeout(&mut self, sidx: usize) {
        let Some(s) = self.gw.sessions.get(sidx) else { return };
        let (Some(at), Some(k)) = (s.poll_timeout(), s.conn) else { return };
        if let Some(Conn::Gateway(GatewayConn::Vnc(v))) = self.conns.get_mut(k) {
            if v.wake.is_none_or(|w| at < w) {
                v.wake = Some(at);
                self.timers.add(at, k, SESSION_WAKE);
            }
        }
    }

    fn pump_session(&mut self, sidx: usize) {
        let viewers: Vec<(usize, usize)> = match self.gw.sessions.get(sidx) {
            Some(s) => s.viewers.iter().map(|(i, v)| (v.client, i)).collect(),
            None => return,
        };
        for (client, vidx) in viewers {
            self.pump_viewer(client, ViewerId { session: sidx, viewer: vidx });
        }
        self.wake_session_at_poll_timeout(sidx);
    }

    /// A viewer's WebSocket is gone. The session decides whether it ends
    /// now or lingers (`Session::remove_viewer`).
    pub(crate) fn gateway_detach(&mut self, vid: ViewerId) {
        let now = Instant::now();
        let Some(s) = self.gw.sessions.get_mut(vid.session) else { return };
        let mut to_server = std::mem::take(&mut self.rfb_tmp);
        to_server.clear();
        s.remove_viewer(vid.viewer, now, &mut to_server);
        let (over, linger, label, conn) = (s.is_over(), s.lingering_until(), s.label.clone(), s.conn);
        if over {
            info!("gateway session {} → {label}: last viewer left; disconnecting", vid.session);
            self.end_session(vid.session);
        } else if let Some(until) = linger {
            let secs = until.saturating_duration_since(now).as_secs_f32();
            info!("gateway session {} → {label}: last viewer left; kept for {secs:.0} s", vid.session);
            if let (Some(k), false) = (conn, to_server.is_empty()) {
                self.vnc_send(k, &to_server);
            }
            self.wake_session_at_poll_timeout(vid.session);
        }
        self.rfb_tmp = to_server;
    }

    /// Drop a session and its VNC connection. Viewers still attached get
    /// their last messages (the `Error` from `Session::fail`) and a close,
    /// even when their socket backlog is over `LOW_WATER` (their pending
    /// output would otherwise be dropped with the session), then are detached.
    fn end_session(&mut self, sidx: usize) {
        let Some(mut s) = self.gw.remove(sidx) else { return };
        if let Some(k) = s.conn {
            self.remove_conn(k);
        }
        let viewers: Vec<(usize, usize)> = s.viewers.iter().map(|(i, v)| (i, v.client)).collect();
        for (vidx, client) in viewers {
            let (last, (code, why)) = s.farewell(vidx);
            let Server { conns, pool, scratch, .. } = self;
            if let Some(Conn::Client(c)) = conns.get_mut(client) {
                if let State::Ws { app, ws } = &mut c.state {
                    *app = App::Detached;
                    if !last.is_empty() && !ws.close_sent() {
                        scratch.clear();
                        ws.send_binary(&last, scratch);
                        let _ = c.outbuf.push(scratch, pool);
                    }
                }
                c.send_close(code, &why, pool, scratch);
            }
            self.schedule(client);
        }
    }

    // ------------------------------------------------------- VNC sockets

    fn vnc_send(&mut self, key: usize, bytes: &[u8]) {
        let Server { conns, pool, .. } = self;
        if let Some(Conn::Gateway(GatewayConn::Vnc(v))) = conns.get_mut(key) {
            if !v.outbuf.push(bytes, pool) {
                warn!("VNC server not reading its input; dropping {} bytes of input events", bytes.len());
            }
        }
        self.schedule(key);
    }

    pub(crate) fn drive_gateway_conn(&mut self, key: usize, ready: Ready) {
        match self.conns.get_mut(key) {
            Some(Conn::Gateway(GatewayConn::Vnc(v))) => {
                v.ready.readable |= ready.readable;
                v.ready.writable |= ready.writable;
                self.drive_vnc(key);
            }
            Some(Conn::Gateway(GatewayConn::Demo(d))) => {
                d.ready.readable |= ready.readable;
                d.ready.writable |= ready.writable;
                self.drive_demo(key);
            }
            _ => {}
        }
    }

    fn drive_vnc(&mut self, key: usize) {
        let mut to_server = std::mem::take(&mut self.rfb_tmp);
        let mut failure: Option<String> = None;
        let sidx;
        let mut more = false;
        let mut drained = false;
        {
            let Server { conns, pool, gw, .. } = self;
            let Some(Conn::Gateway(GatewayConn::Vnc(v))) = conns.get_mut(key) else { return };
            sidx = v.session;
            let Some(session) = gw.sessions.get_mut(sidx) else { return };
            if !v.connected && v.ready.writable {
                match v.stream.finish_connect() {
                    Ok(true) => {
                        v.connected = true;
                        v.stream.set_nodelay();
                        session.connected();
                        debug!("gateway session {sidx}: connected");
                    }
                    Ok(false) => v.ready.writable = false,
                    Err(e) => failure = Some(format!("cannot connect to VNC server {}: {e}", session.label)),
                }
            }
            let mut reads = 0;
            // Bytes a budgeted RFB client left last time are handled first.
            let mut backlog = session.rfb.yielded() && !v.inbuf.is_empty();
            while failure.is_none() && v.connected && (backlog || v.ready.readable) {
                if !std::mem::take(&mut backlog) {
                    if reads == READS_PER_WAKEUP {
                        more = true;
                        break;
                    }
                    reads += 1;
                    let spare = v.inbuf.spare(pool);
                    if spare.is_empty() {
                        failure = Some("VNC server sent a message larger than the gateway accepts".into());
                        break;
                    }
                    match v.stream.read(spare) {
                        Ok(0) => {
                            failure = Some(session.rfb.closed_error().to_string());
                            break;
                        }
                        Ok(n) => v.inbuf.commit(n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => v.ready.readable = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            failure = Some(format!("VNC connection failed: {e}"));
                            break;
                        }
                    }
                }
                to_server.clear();
                match session.handle_server_input(v.inbuf.data(), &mut to_server) {
                    Ok(used) => v.inbuf.consume(used),
                    Err(e) => {
                        session.fail_rfb(&e);
                        failure = Some(e.to_string());
                    }
                }
                if !v.outbuf.push(&to_server, pool) {
                    failure = Some("VNC server is not reading".into());
                }
                if session.rfb.yielded() {
                    // Its work budget is spent: other connections first.
                    more = true;
                    break;
                }
            }
            v.inbuf.release_if_empty(pool);
            if failure.is_none() && v.connected {
                match v.outbuf.write_to(&mut v.stream, &mut v.ready.writable) {
                    // Room made for viewer input that may be waiting.
                    Ok(n) => drained = n > 0,
                    Err(e) => failure = Some(format!("VNC connection failed: {e}")),
                }
                v.outbuf.release_if_empty(pool);
            }
            if let Some(why) = &failure {
                session.fail(why, close::INTERNAL_ERROR);
            }
        }
        self.rfb_tmp = to_server;
        if drained {
            if let Some(s) = self.gw.sessions.get(sidx) {
                let clients: Vec<usize> = s.viewers.iter().map(|(_, v)| v.client).collect();
                clients.into_iter().for_each(|c| self.schedule(c));
            }
        }
        self.pump_session(sidx);
        if let Some(why) = failure {
            info!("gateway session {sidx}: ended: {why}");
            self.end_session(sidx);
            return;
        }
        if more {
            self.schedule(key);
        }
    }

    // -------------------------------------------------------- demo server

    pub(crate) fn start_demo_listener(&mut self, addr: SocketAddr) -> io::Result<()> {
        let mut l = TcpListener::bind(addr)?;
        self.poll.registry().register(&mut l, DEMO_LISTENER, Interest::READABLE)?;
        let local = l.local_addr()?;
        info!("demo VNC server on {local}");
        self.gw.set_demo_target(Target::new(TargetAddr::Tcp(local)));
        self.demo_listener = Some(l);
        Ok(())
    }

    pub(crate) fn accept_demo_clients(&mut self) {
        loop {
            let Some(l) = &self.demo_listener else { return };
            match l.accept() {
                Ok((mut sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if self
                        .poll
                        .registry()
                        .register(&mut sock, Token(key), Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        continue;
                    }
                    let now_ms = ms_since(self.epoch, Instant::now());
                    let mut demo = DemoServer::new(&self.demo_cfg, now_ms);
                    let mut out = Vec::new();
                    demo.start(&mut out);
                    debug!("demo VNC server: client {peer}");
                    entry.insert(Conn::Gateway(GatewayConn::Demo(Box::new(DemoPeer {
                        sock,
                        peer,
                        demo,
                        ready: Ready::default(),
                        inbuf: Buf::with_cap(BLOCK),
                        out,
                        sent: 0,
                        gen: 0,
                    }))));
                    self.schedule(key);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!("demo accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn drive_demo(&mut self, key: usize) {
        let now = Instant::now();
        let now_ms = ms_since(self.epoch, now);
        let mut drop_it = false;
        let mut next = None;
        {
            let Server { conns, pool, timers, .. } = self;
            let Some(Conn::Gateway(GatewayConn::Demo(d))) = conns.get_mut(key) else { return };
            for _ in 0..READS_PER_WAKEUP {
                if !d.ready.readable {
                    break;
                }
                let spare = d.inbuf.spare(pool);
                match d.sock.read(spare) {
                    Ok(0) => {
                        drop_it = true;
                        break;
                    }
                    Ok(n) => d.inbuf.commit(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => d.ready.readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        drop_it = true;
                        break;
                    }
                }
                match d.demo.handle_input(d.inbuf.data(), now_ms, &mut d.out) {
                    Ok(used) => d.inbuf.consume(used),
                    Err(e) => {
                        debug!("demo VNC server: client {}: {e}", d.peer);
                        drop_it = true;
                        break;
                    }
                }
            }
            d.inbuf.release_if_empty(pool);
            if !drop_it {
                if d.out.len() - d.sent < DEMO_LOW_WATER {
                    next = d.demo.poll(now_ms, &mut d.out);
                }
                while d.sent < d.out.len() && d.ready.writable {
                    match d.sock.write(&d.out[d.sent..]) {
                        Ok(n) => d.sent += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => d.ready.writable = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            drop_it = true;
                            break;
                        }
                    }
                }
                if d.sent == d.out.len() {
                    d.out.clear();
                    d.sent = 0;
                } else if d.sent > d.out.len() / 2 {
                    d.out.drain(..d.sent);
                    d.sent = 0;
                }
                if let Some(at_ms) = next {
                    d.gen += 1;
                    let at = self.epoch + std::time::Duration::from_millis(at_ms.max(now_ms));
                    timers.add(at, key, d.gen);
                }
            }
        }
        if drop_it {
            self.remove_conn(key);
        }
    }

    pub(crate) fn gateway_timer(&mut self, key: usize, gen: u64, now: Instant) {
        match self.conns.get_mut(key) {
            Some(Conn::Gateway(GatewayConn::Demo(d))) if d.gen == gen => self.drive_demo(key),
            Some(Conn::Gateway(GatewayConn::Vnc(v))) if gen == SESSION_WAKE => {
                v.wake = None;
                let sidx = v.session;
                let Some(s) = self.gw.sessions.get_mut(sidx) else { return };
                s.handle_timeout(now);
                if s.is_over() {
                    info!("gateway session {sidx} → {}: nobody came back; disconnecting", s.label);
                    self.end_session(sidx);
                    return;
                }
                self.pump_session(sidx);
            }
            _ => {}
        }
    }

    /// Handshake deadlines of RFB connections (see `VNC_HANDSHAKE_TIMEOUT`).
    pub(crate) fn gateway_sweep(&mut self, now: Instant) {
        use crate::gateway::session::Phase;
        let mut expired = Vec::new();
        for (_, conn) in self.conns.iter_mut() {
            let Conn::Gateway(GatewayConn::Vnc(v)) = conn else { continue };
            let Some(session) = self.gw.sessions.get(v.session) else { continue };
            match session.phase {
                Phase::Ready | Phase::NeedPassword => v.handshake_deadline = None,
                Phase::Connecting | Phase::Handshake => {
                    if session.phase == Phase::Handshake && v.handshake_deadline.is_none() {
                        // Back from NeedPassword: a fresh allowance for the rest.
                        v.handshake_deadline = Some(now + VNC_HANDSHAKE_TIMEOUT);
                    }
                    if v.handshake_deadline.is_some_and(|d| now >= d) {
                        expired.push(v.session);
                    }
                }
            }
        }
        for sidx in expired {
            let Some(s) = self.gw.sessions.get_mut(sidx) else { continue };
            let why = format!(
                "VNC server {} did not complete the connection within {} s",
                s.label,
                VNC_HANDSHAKE_TIMEOUT.as_secs()
            );
            s.fail(&why, close::INTERNAL_ERROR);
            info!("gateway session {sidx}: ended: {why}");
            self.end_session(sidx);
        }
    }
}
