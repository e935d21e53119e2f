//! The event loop: one `mio::Poll` on one thread owns every socket in one
//! `Slab`. This is the only module that touches sockets or the clock.
//!
//! ```text
//!   accept ─▶ Client{Http} ──upgrade──▶ Client{Ws{Echo|Relay|Gateway}} ──▶ Closing ─▶ dropped
//!                 │ (static file, error)                 │
//!                 └──────────────▶ Closing               └─ Relay pairs with an Upstream (target TCP/Unix)
//! ```
//!
//! Discipline (mio docs, sozu): sockets are registered once for READABLE |
//! WRITABLE (edge-triggered) and each connection tracks the readiness it was
//! told about; it reads or writes until `WouldBlock`, which clears that bit.
//! Backpressure is a decision not to read: a connection whose peer's buffer is
//! full keeps its readiness bit and is resumed when the peer drains, so no
//! buffer ever grows past its cap. Work per wakeup is capped; a connection
//! that hit the cap is queued to run again before the next poll.
//! Events may be spurious: every handler tolerates readiness that turns out
//! to be `WouldBlock`.

pub mod buf;
mod client;
mod gateway_io;
mod pipe;
pub mod signal;
mod stream;
mod timers;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{error, info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::config::{Config, TokenTable};
use buf::Pool;
pub(crate) use client::Client;
use stream::Stream;
use timers::Timers;

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
const WAKER: Token = Token(usize::MAX - 3);
pub(crate) const DEMO_LISTENER: Token = Token(usize::MAX - 4);

/// Read/write chunk and pool block size.
pub(crate) const BLOCK: usize = 64 << 10;
/// Reads of one connection per wakeup before yielding to others.
pub(crate) const READS_PER_WAKEUP: usize = 16;
/// How long a closing WebSocket waits for the peer's Close and for its
/// output to drain.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(3);
/// How long shutdown waits for clients to take their 1001 close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Housekeeping period: token file, idle and heartbeat checks.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// Readiness last reported by the poll for one socket.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Ready {
    pub readable: bool,
    pub writable: bool,
    /// The peer's end of stream (or an error) was reported; sticky. Until
    /// then a short read may clear `readable` (client.rs, `drained`).
    pub read_closed: bool,
}

/// One socket the loop owns.
pub(crate) enum Conn {
    /// A browser (or any HTTP/WebSocket client).
    Client(Client),
    /// A relay's connection to its target.
    Upstream(Upstream),
    /// Gateway and demo sockets.
    Gateway(gateway_io::GatewayConn),
}

/// The target side of a relay.
pub(crate) struct Upstream {
    pub stream: Stream,
    pub client: usize,
    pub connected: bool,
    pub ready: Ready,
    /// Bytes from the browser waiting to go to the target.
    pub out: buf::Buf,
    pub eof: bool,
}

/// Lets another thread stop a running server (embedding).
#[derive(Clone)]
pub struct StopHandle {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl StopHandle {
    /// Ask the server to shut down gracefully (close 1001 to every
    /// WebSocket, then `run` returns).
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

/// Connection counters (for logs and tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub accepted: u64,
    pub refused: u64,
    pub open_clients: usize,
}

/// The daemon: bind with [`Server::bind`], then [`Server::run`].
pub struct Server {
    pub(crate) poll: Poll,
    pub(crate) conns: Slab<Conn>,
    listener: TcpListener,
    local_addr: SocketAddr,
    signals: Option<signal::SignalPipe>,
    stop_flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
    pub(crate) cfg: Config,
    pub(crate) site: crate::http::Site,
    tokens: TokenTable,
    pub(crate) pool: Pool,
    /// Empty pipes for the relay's zero-copy path.
    pub(crate) pipes: pipe::PipePool,
    /// Reused output scratch for WebSocket frames built by `ws`.
    pub(crate) scratch: Vec<u8>,
    /// Reused copy of a message being echoed.
    pub(crate) echo_tmp: Vec<u8>,
    /// Reused RFB output (input events for a VNC server).
    pub(crate) rfb_tmp: Vec<u8>,
    /// Reused raw browser-protocol chunk before WebSocket framing.
    pub(crate) compose_tmp: Vec<u8>,
    /// Time origin for the demo server's clock.
    pub(crate) epoch: Instant,
    pub(crate) demo_cfg: crate::demo::DemoConfig,
    pub(crate) timers: Timers,
    /// Connections that stopped early (work cap, or a peer that drained).
    again: Vec<usize>,
    shutdown_deadline: Option<Instant>,
    /// Last time a browser connection was open (for `Config::exit_when_idle`).
    last_client: Instant,
    next_sweep: Instant,
    stats: Stats,
    pub(crate) gw: crate::gateway::Gateways,
    pub(crate) demo_listener: Option<TcpListener>,
    /// A descriptor held in reserve so that, out of descriptors, a waiting
    /// connection can still be accepted and refused (see `accept_clients`).
    spare_fd: Option<std::fs::File>,
}

impl Server {
    /// Bind the listening socket and load the token file. Name resolution and
    /// file reading happen here, before the loop starts.
    pub fn bind(cfg: Config) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(cfg.listen)?;
        let local_addr = listener.local_addr()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let tokens = match &cfg.token_file {
            Some(path) => {
                TokenTable::load(path).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?
            }
            None => TokenTable::default(),
        };
        let mut protocols = vec!["binary"];
        protocols.push(crate::gateway::SUBPROTOCOL);
        let site = crate::http::Site {
            web_dir: cfg.web_dir.clone(),
            allowed_origins: cfg.allowed_origins.clone(),
            ws_paths: if cfg.echo {
                vec!["/".to_string(), crate::relay::PATH.to_string(), crate::gateway::PATH.to_string()]
            } else if cfg.relay {
                vec![crate::relay::PATH.to_string(), crate::gateway::PATH.to_string()]
            } else {
                vec![crate::gateway::PATH.to_string()]
            },
            protocols,
            access: crate::http::Access::new(&cfg.access, cfg.listen)
                .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?,
            upgrade_any_path: cfg.relay,
            web_csp: cfg.web_csp.clone(),
        };
        let mut server = Server {
            poll,
            conns: Slab::with_capacity(64),
            listener,
            local_addr,
            signals: None,
            stop_flag: Arc::new(AtomicBool::new(false)),
            waker,
            pool: Pool::new(BLOCK, 256),
            pipes: pipe::PipePool::new(64),
            scratch: Vec::new(),
            echo_tmp: Vec::new(),
            rfb_tmp: Vec::new(),
            compose_tmp: Vec::new(),
            epoch: Instant::now(),
            demo_cfg: {
                let mut d = crate::demo::DemoConfig::default();
                if let Some((w, h)) = cfg.demo_size {
                    (d.width, d.height) = (w, h);
                }
                d
            },
            timers: Timers::default(),
            again: Vec::new(),
            shutdown_deadline: None,
            last_client: Instant::now(),
            next_sweep: Instant::now(),
            stats: Stats::default(),
            gw: crate::gateway::Gateways::new(&cfg),
            demo_listener: None,
            spare_fd: std::fs::File::open("/dev/null").ok(),
            tokens,
            site,
            cfg,
        };
        if server.cfg.demo {
            server.start_demo_listener("127.0.0.1:0".parse().unwrap())?;
        }
        Ok(server)
    }

    /// The address actually listened on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops the server from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle { flag: self.stop_flag.clone(), waker: self.waker.clone() }
    }

    /// Shut down gracefully on SIGINT/SIGTERM (for the binary; a library
    /// embedding wsvnc usually has its own signal policy and uses
    /// [`StopHandle`]).
    pub fn handle_signals(&mut self) -> io::Result<()> {
        let mut pipe = signal::SignalPipe::install()?;
        self.poll.registry().register(&mut pipe.receiver, SIGNALS, Interest::READABLE)?;
        self.signals = Some(pipe);
        Ok(())
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Open browser-side connections (kept by `admit`/`remove_conn`, so a
    /// check per accept costs O(1), not a walk of the slab).
    fn client_count(&self) -> usize {
        self.stats.open_clients
    }

    /// Run until stopped. Returns Ok after a graceful shutdown.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let relay = if self.cfg.relay { "; relay mode on every other WebSocket path" } else { "; relay mode off" };
        info!("wsvnc listening on http://{}/ (gateway mode at /ws{relay})", self.local_addr);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_clients(),
                    DEMO_LISTENER => self.accept_demo_clients(),
                    SIGNALS => {
                        self.drain_signal_pipe();
                        info!("signal received: shutting down");
                        self.begin_shutdown();
                    }
                    WAKER => {
                        if self.stop_flag.load(Ordering::SeqCst) {
                            info!("stop requested: shutting down");
                            self.begin_shutdown();
                        }
                    }
                    Token(key) => {
                        let ready = Ready {
                            readable: event.is_readable() || event.is_read_closed() || event.is_error(),
                            writable: event.is_writable() || event.is_write_closed() || event.is_error(),
                            read_closed: event.is_read_closed() || event.is_error(),
                        };
                        self.on_ready(key, ready);
                    }
                }
            }
            self.run_again_list();
            let now = Instant::now();
            for (key, gen) in self.timers.expired(now) {
                self.on_timer(key, gen, now);
            }
            self.run_again_list();
            if now >= self.next_sweep {
                self.next_sweep = now + SWEEP_EVERY;
                self.sweep(now);
            }
            if self.idle_exit_due(now) {
                info!("no connection for {:?} (--idle-timeout): exiting", self.cfg.exit_when_idle.unwrap_or_default());
                self.close_everything();
                return Ok(());
            }
            if let Some(deadline) = self.shutdown_deadline {
                if self.client_count() == 0 || now >= deadline {
                    self.close_everything();
                    info!("shutdown complete");
                    return Ok(());
                }
            }
        }
    }

    /// websockify's `--idle-timeout`: no browser connection open for that long.
    fn idle_exit_due(&mut self, now: Instant) -> bool {
        let Some(limit) = self.cfg.exit_when_idle else { return false };
        if self.client_count() > 0 {
            self.last_client = now;
        }
        now.saturating_duration_since(self.last_client) >= limit
    }

    fn poll_timeout(&self) -> Duration {
        if !self.again.is_empty() {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let mut until = self.next_sweep.saturating_duration_since(now);
        if let Some(t) = self.timers.next_deadline() {
            until = until.min(t.saturating_duration_since(now));
        }
        until
    }

    fn drain_signal_pipe(&mut self) {
        use std::io::Read;
        if let Some(pipe) = &mut self.signals {
            let mut b = [0u8; 64];
            while matches!(pipe.receiver.read(&mut b), Ok(n) if n > 0) {}
        }
    }

    fn accept_clients(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((sock, peer)) => self.admit(sock, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_fd_exhaustion(&e) => {
                    // Out of file descriptors: the connection would sit in the
                    // backlog until the client gives up. Free the spare
                    // descriptor, accept it, answer 503, close, re-take the
                    // spare (the classic libev/nginx trick).
                    // Linux reports EMFILE before looking at the backlog, so
                    // it says nothing about whether a connection is waiting:
                    // go on only when one was.
                    self.spare_fd = None;
                    let refused_one = match self.listener.accept() {
                        Ok((mut sock, peer)) => {
                            use std::io::Write;
                            self.stats.refused += 1;
                            let _ = sock.write(&crate::http::error_response(503, true));
                            warn!("{peer}: refused: out of file descriptors ({e})");
                            true
                        }
                        Err(_) => false,
                    };
                    self.spare_fd = std::fs::File::open("/dev/null").ok();
                    if !refused_one || self.spare_fd.is_none() {
                        return; // nothing waiting, or still exhausted: the next event retries
                    }
                }
                Err(e) => {
                    warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut sock: mio::net::TcpStream, peer: SocketAddr) {
        self.stats.accepted += 1;
        let _ = sock.set_nodelay(true);
        if self.shutdown_deadline.is_some() || self.client_count() >= self.cfg.max_connections {
            // A clean refusal: a complete 503 written best-effort to the
            // fresh socket (its send buffer is empty, so it fits), then close.
            use std::io::Write;
            self.stats.refused += 1;
            let _ = sock.write(&crate::http::error_response(503, true));
            warn!("{peer}: refused: {} connections open (--max-connections)", self.client_count());
            return;
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(&mut sock, Token(key), Interest::READABLE | Interest::WRITABLE) {
            warn!("{peer}: register failed: {e}");
            return;
        }
        let now = Instant::now();
        self.last_client = now;
        entry.insert(Conn::Client(Client::new(sock, peer, now, self.cfg.max_message)));
        self.stats.open_clients += 1;
        self.timers.add(now + self.cfg.handshake_timeout, key, 0);
    }

    fn on_ready(&mut self, key: usize, ready: Ready) {
        match self.conns.get_mut(key) {
            Some(Conn::Client(c)) => {
                c.ready.readable |= ready.readable;
                c.ready.writable |= ready.writable;
                c.ready.read_closed |= ready.read_closed;
                self.drive_client(key);
            }
            Some(Conn::Upstream(u)) => {
                u.ready.readable |= ready.readable;
                u.ready.writable |= ready.writable;
                u.ready.read_closed |= ready.read_closed;
                let client = u.client;
                self.drive_client(client);
            }
            Some(Conn::Gateway(_)) => self.drive_gateway_conn(key, ready),
            None => {} // spurious: already closed
        }
    }

    fn run_again_list(&mut self) {
        let mut list = std::mem::take(&mut self.again);
        list.sort_unstable();
        list.dedup();
        for key in list.drain(..) {
            match self.conns.get(key) {
                Some(Conn::Client(_)) => self.drive_client(key),
                Some(Conn::Gateway(_)) => self.drive_gateway_conn(key, Ready::default()),
                _ => {}
            }
        }
        if self.again.is_empty() {
            self.again = list;
        }
    }

    pub(crate) fn schedule(&mut self, key: usize) {
        self.again.push(key);
    }

    fn on_timer(&mut self, key: usize, gen: u64, now: Instant) {
        match self.conns.get(key) {
            Some(Conn::Client(c)) if c.gen == gen => self.client_timer(key, now),
            Some(Conn::Gateway(_)) => self.gateway_timer(key, gen, now),
            _ => {}
        }
    }

    /// Periodic housekeeping: token file reload, idle timeouts, heartbeats.
    fn sweep(&mut self, now: Instant) {
        self.reload_tokens_if_changed();
        let keys: Vec<usize> =
            self.conns.iter().filter(|(_, c)| matches!(c, Conn::Client(_))).map(|(k, _)| k).collect();
        for key in keys {
            self.client_sweep(key, now);
        }
        self.gateway_sweep(now);
    }

    fn reload_tokens_if_changed(&mut self) {
        let Some(path) = self.cfg.token_file.clone() else { return };
        let mtime = crate::config::token_source_mtime(&path);
        if mtime.is_some() && mtime == self.tokens.mtime {
            return;
        }
        match TokenTable::load(&path) {
            Ok(t) => {
                info!("token file {} loaded: {} target(s)", path.display(), t.entries.len());
                self.tokens = t;
            }
            Err(e) => {
                // Keep serving with the previous table; say so once per change.
                error!("{e}; keeping the previous token table");
                self.tokens.mtime = mtime;
            }
        }
    }

    /// The session key and target for a WebSocket request: the access
    /// token's own target (`Upgrade::target`), else [`Server::lookup_target`].
    pub(crate) fn target_for(&self, up: &crate::http::Upgrade) -> (String, Result<crate::config::Target, String>) {
        let token = crate::http::query_param(&up.query, "token");
        match up.target {
            Some(a) => (format!("jwt {a}"), Ok(crate::config::Target::new(crate::config::TargetAddr::Tcp(a)))),
            None => (token.unwrap_or_default().to_string(), self.lookup_target(token)),
        }
    }

    /// The target for a request: `?token=` from the token file, else `--target`.
    pub(crate) fn lookup_target(&self, token: Option<&str>) -> Result<crate::config::Target, String> {
        match token {
            Some(t) => match self.tokens.entries.get(t) {
                Some(target) => Ok(target.clone()),
                None if self.cfg.token_file.is_none() => {
                    Err("this server has no token file; connect without ?token=".into())
                }
                None => Err(format!("unknown token '{}'", t.escape_debug())),
            },
            None => match (&self.cfg.target, self.gw.demo_target()) {
                (Some(t), _) => Ok(t.clone()),
                (None, Some(t)) => Ok(t),
                (None, None) => {
                    Err("no target configured: use ?token= (token file) or start wsvnc with --target".into())
                }
            },
        }
    }

    fn begin_shutdown(&mut self) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        self.shutdown_deadline = Some(Instant::now() + SHUTDOWN_GRACE);
        let _ = self.poll.registry().deregister(&mut self.listener);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if matches!(self.conns.get(key), Some(Conn::Client(_))) {
                self.client_going_away(key);
            }
        }
    }

    fn close_everything(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if matches!(self.conns.get(key), Some(Conn::Client(_))) {
                self.finish_client(key, "server shut down");
            }
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.remove_conn(key);
        }
    }

    /// Deregister and drop a socket (deregister before removal, as mio requires).
    pub(crate) fn remove_conn(&mut self, key: usize) -> Option<Conn> {
        let mut conn = self.conns.try_remove(key)?;
        let reg = self.poll.registry();
        let _ = match &mut conn {
            Conn::Client(c) => {
                self.stats.open_clients -= 1;
                reg.deregister(&mut c.sock)
            }
            Conn::Upstream(u) => reg.deregister(&mut u.stream),
            Conn::Gateway(g) => g.deregister(reg),
        };
        Some(conn)
    }
}

/// EMFILE/ENFILE: the process or system is out of file descriptors.
fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Serve only the built-in demo VNC server on `addr` (no HTTP), until SIGINT/SIGTERM.
/// `demo_size` as `--demo-size`.
pub fn run_demo_server(addr: SocketAddr, demo_size: Option<(u16, u16)>) -> io::Result<()> {
    let cfg = Config { listen: "127.0.0.1:0".parse().unwrap(), demo_size, ..Config::default() };
    let mut server = Server::bind(cfg)?;
    server.start_demo_listener(addr)?;
    server.handle_signals()?;
    server.run()
}
