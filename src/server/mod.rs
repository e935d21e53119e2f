//! The event loop: one `mio::Poll` on one thread owns every socket in one
//! `Slab` of connections ([`crate::app::Conn`]).
//!
//! May: accept (on the listeners of `listen`: TCP, Unix, or inherited by
//! socket activation), register and deregister sockets, map readiness to the
//! connection that owns the socket, keep the timers of every connection's
//! `poll_timeout`, read the clock, catch signals, tell the service manager
//! (`service::notify`: ready, reloading, stopping, watchdog), and hand
//! blocking work to its helper thread (`worker`). May not: read or write a connection's
//! bytes (that is `transport`), or know what they mean (that is `app`).
//!
//! ```text
//!   poll ─▶ readiness ─▶ app::drive(key) ─▶ Stay: re-arm its timer │ Close: remove, log
//!     ▲        timers ─▶ app::handle_timeout(key)
//!     └── wake list (work left over, or woken by another connection) runs before the next poll
//! ```
//!
//! Discipline (mio docs, sozu): sockets are registered once for READABLE |
//! WRITABLE (edge-triggered) and each endpoint tracks the readiness it was
//! told about; it reads or writes until `WouldBlock`, which clears that bit.
//! Backpressure is a decision not to read: a connection whose sink is full
//! keeps its readiness bit and is resumed when the sink drains, so no buffer
//! grows past its cap. Work per wakeup is capped; a connection that hit the
//! cap is woken again before the next poll. Events may be spurious.

pub mod backlog;
pub mod listen;
mod per_client;
pub mod signal;
mod timers;
mod worker;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{error, info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::app::{self, http::Start, metrics::Refused, App, Conn, Ctx, Peer, Step, UNIX_PEER, UPSTREAM};
use crate::config::{Config, Target, TargetAddr, TokenTable};
use crate::service::notify::{self, Notifier};
use crate::transport::{tls, Endpoint, Ready, Stream};
use listen::{Accepted, Listener};
use timers::Timers;
use worker::{Done, Request, Worker};

/// Listening socket `i` has token `LISTENERS - i` (at most 16: `listen`).
const LISTENERS: usize = usize::MAX - 32;
const SIGNALS: Token = Token(usize::MAX - 2);
const WAKER: Token = Token(usize::MAX - 3);
const DEMO_LISTENER: Token = Token(usize::MAX - 4);
const METRICS_LISTENER: Token = Token(usize::MAX - 5);

/// How long shutdown waits for clients to take their 1001 close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

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

/// Connection counters (for logs and tests; all of them: `/metrics`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub accepted: u64,
    /// Connections and requests refused, for any reason.
    pub refused: u64,
    pub open_clients: usize,
}

/// The daemon: bind with [`Server::bind`], then [`Server::run`].
pub struct Server {
    poll: Poll,
    conns: Slab<Conn>,
    ctx: Ctx,
    /// Bound here, or inherited (socket activation): `listen`.
    listeners: Vec<Listener>,
    local_addr: SocketAddr,
    demo_listener: Option<TcpListener>,
    /// `--metrics-listen`: plain HTTP, `/metrics` only.
    metrics_listener: Option<TcpListener>,
    signals: Option<signal::SignalPipe>,
    stop_flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
    worker: Option<Worker>,
    timers: Timers,
    /// How browser connections start (plain, sniffed, or TLS only).
    start: Start,
    shutdown_deadline: Option<Instant>,
    /// When the last browser connection closed, or the server started (for
    /// `Config::exit_when_idle`).
    last_client: Instant,
    stats: Stats,
    /// A descriptor held in reserve so that, out of descriptors, a waiting
    /// connection can still be accepted and refused (see `accept_clients`).
    spare_fd: Option<std::fs::File>,
    /// The service manager's notification socket (`NOTIFY_SOCKET`).
    notify: Option<Notifier>,
    /// Watchdog ping interval and the next ping (`WATCHDOG_USEC`).
    watchdog: Option<(Duration, Instant)>,
    /// Reload passes still running after a SIGHUP (READY=1 when none is left).
    reloads_pending: usize,
    /// Open browser connections per client address (`--max-per-client`).
    per_client: per_client::PerClient,
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

impl Server {
    /// Bind the listening socket, load the token file and the certificates.
    /// Name resolution and file reading happen here, before the loop
    /// starts; later reloads happen on the helper thread.
    pub fn bind(cfg: Config) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listeners = match listen::inherited()? {
            Some(inherited) => inherited,
            None => match &cfg.service.listen_unix {
                Some(path) => vec![Listener::bind_unix(path, cfg.service.socket_mode, cfg.service.socket_owner())?],
                None => vec![Listener::bind_tcp(cfg.listen, backlog::choose(cfg.backlog))?],
            },
        };
        for (i, l) in listeners.iter_mut().enumerate() {
            poll.registry().register(l, Token(LISTENERS - i), Interest::READABLE)?;
        }
        let local_addr = listeners.iter().find_map(Listener::tcp_addr).unwrap_or(UNIX_PEER);
        // The access policy is that of the most exposed listener.
        let access_addr = listeners
            .iter()
            .map(Listener::access_addr)
            .find(|a| !a.ip().is_loopback())
            .unwrap_or_else(|| listeners[0].access_addr());
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut redis_error = None;
        let tokens = match (&cfg.token_file, &cfg.token_redis) {
            (Some(path), _) => TokenTable::load(path).map_err(invalid)?,
            (None, Some(src)) => crate::tokens::redis::load(src)
                .inspect(|t| info!("tokens from {src} loaded: {} target(s)", t.entries.len()))
                .unwrap_or_else(|e| {
                    redis_error = Some(e.to_string());
                    error!(
                        "cannot read tokens from {src}: {e}; starting with none, retrying every {:?}",
                        crate::tokens::redis::POLL_EVERY
                    );
                    TokenTable::default()
                }),
            (None, None) => TokenTable::default(),
        };
        let tls = match &cfg.tls {
            Some(files) => Some(tls::load(&files.cert, &files.key).map_err(invalid)?),
            None => None,
        };
        let start = match &cfg.tls {
            Some(files) if files.only => Start::Tls,
            Some(_) => Start::Sniff,
            None => Start::Plain,
        };
        let ws_paths = if cfg.echo {
            vec!["/".to_string(), app::relay::PATH.to_string(), crate::gateway::PATH.to_string()]
        } else if cfg.relay {
            vec![app::relay::PATH.to_string(), crate::gateway::PATH.to_string()]
        } else {
            vec![crate::gateway::PATH.to_string()]
        };
        let site = crate::http::Site {
            web_dir: cfg.web_dir.clone(),
            allowed_origins: cfg.allowed_origins.clone(),
            ws_paths,
            protocols: vec!["binary", crate::gateway::SUBPROTOCOL],
            access: crate::http::Access::new(&cfg.access, access_addr)
                .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?,
            upgrade_any_path: cfg.relay,
            web_csp: cfg.web_csp.clone(),
        };
        let needs_worker = cfg.token_file.is_some() || cfg.token_redis.is_some();
        let worker = if needs_worker || cfg.tls.is_some() || cfg.web_dir.is_some() {
            let watch = worker::Watch {
                token_file: cfg.token_file.clone(),
                token_mtime: tokens.mtime,
                token_redis: cfg.token_redis.clone().map(|src| worker::RedisWatch {
                    src,
                    seen: tokens.entries.clone(),
                    error: redis_error,
                }),
                tls: cfg.tls.as_ref().map(|t| (t.cert.clone(), t.key.clone())),
            };
            Some(Worker::spawn(watch, waker.clone())?)
        } else {
            None
        };
        let demo = cfg.demo;
        let metrics_listener = match cfg.metrics_listen {
            Some(addr) => {
                // The same rule as the main port: no open non-loopback
                // address without credentials or --no-auth.
                crate::http::Access::new(&cfg.access, addr)
                    .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, format!("--metrics-listen: {e}")))?;
                let mut l = TcpListener::bind(addr)?;
                poll.registry().register(&mut l, METRICS_LISTENER, Interest::READABLE)?;
                info!("metrics on http://{}{}", l.local_addr()?, app::metrics::PATH);
                Some(l)
            }
            None => None,
        };
        let per_client = per_client::PerClient::new(cfg.max_per_client, cfg.trusted_proxies.clone());
        let ctx = Ctx::new(cfg, site, tokens, tls, poll.registry().try_clone()?);
        let mut server = Server {
            poll,
            conns: Slab::with_capacity(64),
            ctx,
            listeners,
            local_addr,
            demo_listener: None,
            metrics_listener,
            signals: None,
            stop_flag: Arc::new(AtomicBool::new(false)),
            waker,
            worker,
            timers: Timers::default(),
            start,
            shutdown_deadline: None,
            last_client: Instant::now(),
            stats: Stats::default(),
            spare_fd: std::fs::File::open("/dev/null").ok(),
            notify: Notifier::from_env()?,
            watchdog: None,
            reloads_pending: 0,
            per_client,
        };
        if demo {
            server.start_demo_listener("127.0.0.1:0".parse().unwrap())?;
        }
        Ok(server)
    }

    /// The address actually listened on (useful with port 0): the first TCP
    /// listener's, or `0.0.0.0:0` when only Unix sockets are served.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops the server from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle { flag: self.stop_flag.clone(), waker: self.waker.clone() }
    }

    /// Shut down gracefully on SIGINT/SIGTERM and reload on SIGHUP (for the
    /// binary; a library embedding wsvnc usually has its own signal policy
    /// and uses [`StopHandle`]).
    pub fn handle_signals(&mut self) -> io::Result<()> {
        let mut pipe = signal::SignalPipe::install()?;
        self.poll.registry().register(&mut pipe.receiver, SIGNALS, Interest::READABLE)?;
        self.signals = Some(pipe);
        Ok(())
    }

    pub fn stats(&self) -> Stats {
        Stats { accepted: self.ctx.metrics.accepted, refused: self.ctx.metrics.refused(), ..self.stats }
    }

    /// The address of the `--metrics-listen` listener, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Run until stopped. Returns Ok after a graceful shutdown.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let scheme = if self.ctx.tls.is_some() { "https" } else { "http" };
        let relay = if self.ctx.cfg.relay { "; relay mode on every other WebSocket path" } else { "; relay mode off" };
        let places: Vec<String> = self.listeners.iter().map(|l| l.describe(scheme)).collect();
        let status = format!("listening on {} (gateway mode at /ws{relay})", places.join(", "));
        info!("wsvnc {status}");
        if let Some(n) = &self.notify {
            n.ready(&status);
            self.watchdog = notify::watchdog_interval().map(|every| (every, Instant::now() + every));
            if let Some((every, _)) = self.watchdog {
                info!("watchdog: WATCHDOG=1 every {every:?}");
            }
        }
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            tick(&mut self.ctx);
            for event in events.iter() {
                match event.token() {
                    Token(t) if (LISTENERS - 16..=LISTENERS).contains(&t) => self.accept_clients(LISTENERS - t),
                    METRICS_LISTENER => self.accept_metrics_clients(),
                    DEMO_LISTENER => self.accept_demo_clients(),
                    SIGNALS => self.on_signal(),
                    WAKER => self.on_wake(),
                    Token(t) => {
                        let ready = Ready {
                            readable: event.is_readable() || event.is_read_closed() || event.is_error(),
                            writable: event.is_writable() || event.is_write_closed() || event.is_error(),
                            read_closed: event.is_read_closed() || event.is_error(),
                        };
                        let key = t & !UPSTREAM;
                        if let Some(conn) = self.conns.get_mut(key) {
                            conn.on_ready(t & UPSTREAM != 0, ready);
                            self.drive(key);
                        }
                    }
                }
            }
            self.run_woken();
            tick(&mut self.ctx);
            for (key, id) in self.timers.expired(self.ctx.now) {
                self.on_timer(key, id);
            }
            self.run_woken();
            self.ping_watchdog();
            if self.idle_exit_at().is_some_and(|t| self.ctx.now >= t) {
                let limit = self.ctx.cfg.exit_when_idle.unwrap_or_default();
                info!("no connection for {limit:?} (--idle-timeout): exiting");
                if let Some(n) = &self.notify {
                    n.stopping();
                }
                self.close_everything();
                return Ok(());
            }
            if let Some(deadline) = self.shutdown_deadline {
                if self.stats.open_clients == 0 || self.ctx.now >= deadline {
                    self.close_everything();
                    info!("shutdown complete");
                    return Ok(());
                }
            }
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.ctx.wake.is_empty() {
            return Some(Duration::ZERO);
        }
        let watchdog = self.watchdog.map(|(_, at)| at);
        let next = [self.timers.next_deadline(), self.shutdown_deadline, self.idle_exit_at(), watchdog]
            .into_iter()
            .flatten()
            .min();
        next.map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// Tell the service manager the loop is alive, when due (the loop's
    /// timeout includes the next ping).
    fn ping_watchdog(&mut self) {
        let (Some(n), Some((every, at))) = (&self.notify, self.watchdog) else { return };
        if self.ctx.now >= at {
            n.watchdog();
            self.watchdog = Some((every, self.ctx.now + every));
        }
    }

    /// websockify's `--idle-timeout`: when the process exits for having had
    /// no browser connection that long (None: a connection is open, or the
    /// option is off).
    fn idle_exit_at(&self) -> Option<Instant> {
        let limit = self.ctx.cfg.exit_when_idle?;
        (self.stats.open_clients == 0).then(|| self.last_client + limit)
    }

    /// Let the connection's app work, then act on its verdict.
    fn drive(&mut self, key: usize) {
        let step = app::drive(&mut self.conns, key, &mut self.ctx);
        self.after(key, step);
    }

    fn after(&mut self, key: usize, step: Step) {
        match step {
            Step::Close(why) => self.remove(key, why),
            Step::Stay => self.arm(key),
        }
        if !self.ctx.jobs.is_empty() {
            for job in self.ctx.jobs.drain(..) {
                match &self.worker {
                    Some(w) => w.send(Request::Job(job)),
                    None => error!("no helper thread for a file request"),
                }
            }
        }
    }

    /// Keep a timer for the connection's next deadline (at most one armed
    /// per deadline; a timer that fires early is re-armed).
    fn arm(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        if let Some(t) = conn.poll_timeout(&self.ctx) {
            if conn.armed.is_none_or(|a| t < a) {
                self.timers.add(t, key, conn.id);
                conn.armed = Some(t);
            }
        }
    }

    fn on_timer(&mut self, key: usize, id: u64) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        if conn.id != id {
            return; // a timer of the slot's previous occupant
        }
        conn.armed = None;
        let due = conn.poll_timeout(&self.ctx).is_some_and(|t| t <= self.ctx.now);
        if due {
            let step = app::handle_timeout(&mut self.conns, key, &mut self.ctx);
            self.after(key, step);
        } else {
            self.arm(key);
        }
    }

    /// Drive the connections woken during this iteration (each once per
    /// round; a connection woken again is driven in the next round, after
    /// the next poll).
    fn run_woken(&mut self) {
        let mut list = std::mem::take(&mut self.ctx.wake);
        list.sort_unstable();
        list.dedup();
        for key in list.drain(..) {
            if self.conns.contains(key) {
                self.drive(key);
            }
        }
        if self.ctx.wake.is_empty() {
            self.ctx.wake = list; // keep the allocation
        }
        let mut list = std::mem::take(&mut self.ctx.rearm);
        list.sort_unstable();
        list.dedup();
        for key in list.drain(..) {
            self.arm(key);
        }
        if self.ctx.rearm.is_empty() {
            self.ctx.rearm = list;
        }
    }

    /// Take a connection out of the slab and let its app clean up.
    fn remove(&mut self, key: usize, why: &'static str) {
        let Some(mut conn) = self.conns.try_remove(key) else { return };
        let _ = self.poll.registry().deregister(&mut conn.ep.stream);
        if conn.is_browser() {
            self.per_client.release(conn.peer.socket.ip());
            self.stats.open_clients -= 1;
            self.last_client = self.ctx.now;
        }
        app::finished(&mut self.conns, conn, why, &mut self.ctx);
    }

    // ------------------------------------------------------------ accept

    fn accept_clients(&mut self, i: usize) {
        loop {
            let Some(listener) = self.listeners.get(i) else { return };
            match listener.accept() {
                Ok(accepted) => self.admit(accepted, false),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_fd_exhaustion(&e) => {
                    // Out of file descriptors: the connection would sit in the
                    // backlog until the client gives up. Free the spare
                    // descriptor, accept it, answer 503, close, re-take the
                    // spare (the classic libev/nginx trick). Linux reports
                    // EMFILE before looking at the backlog, so go on only
                    // when a connection was waiting.
                    self.spare_fd = None;
                    let refused_one = match self.listeners[i].accept() {
                        Ok(accepted) => {
                            let (mut stream, peer) = stream_of(accepted);
                            self.refuse(
                                &mut stream,
                                peer,
                                &format!("out of file descriptors ({e})"),
                                Refused::OutOfFds,
                            );
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

    /// A clean refusal: a complete 503 written best-effort to the fresh
    /// socket (its send buffer is empty, so it fits), then close. Not on a
    /// TLS-only port, where plain bytes would only confuse the client.
    fn refuse(&mut self, sock: &mut Stream, peer: SocketAddr, why: &str, reason: Refused) {
        self.refuse_quietly(sock, reason);
        let peer = Peer { socket: peer, client: peer.ip() };
        warn!("{peer}: refused: {why}");
    }

    /// [`Server::refuse`] without the log line (the caller logs).
    fn refuse_quietly(&mut self, sock: &mut Stream, reason: Refused) {
        use std::io::Write;
        self.ctx.metrics.refuse(reason);
        if self.start != Start::Tls {
            let _ = sock.write(&crate::http::error_response(503, true));
        }
    }

    /// The `--metrics-listen` listener: no spare-descriptor trick (a
    /// scraper retries).
    fn accept_metrics_clients(&mut self) {
        while let Some(Ok((sock, peer))) = self.metrics_listener.as_ref().map(|l| l.accept()) {
            self.admit(Accepted::Tcp(sock, peer), true);
        }
    }

    fn admit(&mut self, accepted: Accepted, metrics_port: bool) {
        self.ctx.metrics.accepted += 1;
        let (mut stream, peer) = stream_of(accepted);
        stream.set_nodelay();
        if self.shutdown_deadline.is_some() || self.stats.open_clients >= self.ctx.cfg.max_connections {
            let why = format!("{} connections open (--max-connections)", self.stats.open_clients);
            let reason = if self.shutdown_deadline.is_some() { Refused::ShuttingDown } else { Refused::MaxConnections };
            self.refuse(&mut stream, peer, &why, reason);
            return;
        }
        if !self.per_client.admit(peer.ip()) {
            self.refuse_quietly(&mut stream, Refused::PerClient); // logged once per burst by `per_client`
            return;
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(&mut stream, Token(key), Interest::READABLE | Interest::WRITABLE)
        {
            warn!("{peer}: register failed: {e}");
            self.per_client.release(peer.ip());
            return;
        }
        let now = self.ctx.now;
        let ep = Endpoint::new(stream, app::http::INPUT_CAP, app::http::OUTPUT_CAP, now);
        let start = if metrics_port { Start::Plain } else { self.start };
        let mut http = app::http::HttpApp::new(start, now, &self.ctx);
        http.metrics_port = metrics_port;
        let id = self.ctx.next_id();
        let mut conn = Conn::new(id, ep, App::Http(http), Peer { socket: peer, client: peer.ip() }, now);
        if start == Start::Tls {
            if let Some(cfg) = &self.ctx.tls {
                if app::http::start_tls(&mut conn, cfg).is_err() {
                    let _ = self.poll.registry().deregister(&mut conn.ep.stream);
                    self.per_client.release(peer.ip());
                    return;
                }
            }
        }
        entry.insert(conn);
        self.stats.open_clients += 1;
        self.arm(key);
    }

    // -------------------------------------------------------- demo server

    fn start_demo_listener(&mut self, addr: SocketAddr) -> io::Result<()> {
        let mut l = TcpListener::bind(addr)?;
        self.poll.registry().register(&mut l, DEMO_LISTENER, Interest::READABLE)?;
        let local = l.local_addr()?;
        info!("demo VNC server on {local}");
        self.ctx.gw.set_demo_target(Target::new(TargetAddr::Tcp(local)));
        self.demo_listener = Some(l);
        Ok(())
    }

    fn accept_demo_clients(&mut self) {
        loop {
            let Some(l) = &self.demo_listener else { return };
            match l.accept() {
                Ok((mut sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if self.poll.registry().register(&mut sock, Token(key), interest).is_err() {
                        continue;
                    }
                    let id = self.ctx.next_id();
                    entry.insert(app::demo::accept(id, sock, peer, &mut self.ctx));
                    self.ctx.wake.push(key);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!("demo accept failed: {e}");
                    return;
                }
            }
        }
    }

    // ------------------------------------------- signals, reload, shutdown

    fn on_signal(&mut self) {
        match self.signals.as_mut().and_then(|s| s.take()) {
            Some(signal::Signal::Shutdown) => {
                info!("signal received: shutting down");
                self.begin_shutdown();
            }
            Some(signal::Signal::Reload) => {
                if let Some(n) = &self.notify {
                    n.reloading();
                }
                match &self.worker {
                    Some(w) => {
                        info!("SIGHUP: reloading the token source and certificates");
                        self.reloads_pending += w.send_reload();
                    }
                    None => info!("SIGHUP: nothing to reload (no token source, no certificate)"),
                }
                self.reload_done(0);
            }
            None => {}
        }
    }

    /// The waker: a stop request, or answers from the helper thread.
    fn on_wake(&mut self) {
        if self.stop_flag.load(Ordering::SeqCst) {
            info!("stop requested: shutting down");
            self.begin_shutdown();
        }
        let Some(w) = &self.worker else { return };
        let done: Vec<Done> = w.done.try_iter().collect();
        for d in done {
            match d {
                Done::File { key, id, action } => {
                    let Some(conn) = self.conns.get_mut(key) else { continue };
                    if conn.id == id {
                        app::http::file_done(conn, action, &mut self.ctx);
                        self.drive(key);
                    }
                }
                Done::Tokens(Ok(table)) => {
                    self.ctx.tokens = table;
                    let ended = app::viewer::end_repointed_sessions(&mut self.conns, &mut self.ctx);
                    let closed = app::relay::close_repointed(&mut self.conns, &mut self.ctx);
                    if ended + closed > 0 {
                        info!("token file: ended {ended} gateway session(s) and {closed} relay(s) whose token changed");
                    }
                }
                Done::Tokens(Err(_)) => {} // logged by the helper; the previous table stays
                Done::Tls(Ok(cfg)) => self.ctx.tls = Some(cfg),
                Done::Tls(Err(_)) => {} // logged by the helper; the previous certificate stays
                Done::Reloaded => self.reload_done(1),
            }
        }
    }

    /// `finished` reload passes are over: READY=1 when none is left.
    fn reload_done(&mut self, finished: usize) {
        self.reloads_pending = self.reloads_pending.saturating_sub(finished);
        if self.reloads_pending == 0 {
            if let Some(n) = &self.notify {
                n.ready("reloaded");
            }
        }
    }

    fn begin_shutdown(&mut self) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        self.shutdown_deadline = Some(Instant::now() + SHUTDOWN_GRACE);
        if let Some(n) = &self.notify {
            n.stopping();
        }
        for l in &mut self.listeners {
            let _ = self.poll.registry().deregister(l);
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let Some(conn) = self.conns.get_mut(key) else { continue };
            let step = app::going_away(conn, &mut self.ctx);
            self.ctx.wake.push(key);
            if let Step::Close(why) = step {
                self.remove(key, why);
            }
        }
    }

    fn close_everything(&mut self) {
        let keys: Vec<usize> = self.conns.iter().filter(|(_, c)| c.is_browser()).map(|(k, _)| k).collect();
        for key in keys {
            self.remove(key, "server shut down");
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.remove(key, "server shut down");
        }
    }
}

/// An accepted connection as a stream and the peer address it is known by
/// (`UNIX_PEER` on a Unix socket).
fn stream_of(accepted: Accepted) -> (Stream, SocketAddr) {
    match accepted {
        Accepted::Tcp(sock, peer) => (Stream::accepted(sock), peer),
        Accepted::Unix(sock) => (Stream::unix(sock), UNIX_PEER),
    }
}

/// Read the clock for the apps: once per loop iteration and after the poll.
fn tick(ctx: &mut Ctx) {
    ctx.now = Instant::now();
    ctx.unix_time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
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
