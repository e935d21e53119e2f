//! Applications on top of the transport: one [`Conn`] per socket pairs an
//! [`Endpoint`] with the [`App`] that decides what its bytes mean.
//!
//! ```text
//!   accept ─▶ Http ──upgrade──▶ Echo | Relay | Viewer ──target / session gone──▶ Detached
//!              │                   (Detached: only the close handshake remains)
//!              └──error, or a response that closes──▶ endpoint draining ──▶ dropped
//!   connect ─▶ Vnc     (a gateway session's RFB connection; viewers share it)
//!   accept on the demo listener ─▶ Demo   (a client of the built-in VNC server)
//! ```
//!
//! Apps are sans-IO: they read and write their endpoint's buffers and ask
//! the transport to read, write or connect; they see neither the poll nor
//! the clock (`Ctx::now` is set by the loop). Each app has `drive` (do what
//! readiness and buffers allow), and the connection as a whole answers
//! [`Conn::poll_timeout`] / [`Conn::handle_timeout`] (quinn-proto's shape),
//! so every deadline lives with the state it belongs to.

pub mod demo;
pub mod echo;
pub mod http;
pub mod metrics;
pub mod relay;
pub mod viewer;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use log::{debug, info, trace};
use mio::Registry;
use slab::Slab;

use crate::config::{Config, Target, TokenTable};
use crate::transport::pipe::PipePool;
use crate::transport::{tls, Endpoint, Keepalive, Pool, Ready};

/// Reads of one connection per wakeup before yielding to others.
pub const READS_PER_WAKEUP: usize = 16;
/// Token bit marking a relay's target socket (the rest is the slab key).
pub const UPSTREAM: usize = 1 << (usize::BITS - 2);

/// Everything apps share: configuration, pools, the gateway sessions, and
/// the requests they leave for the loop.
pub struct Ctx {
    /// The time of the current loop iteration.
    pub now: Instant,
    /// The same moment in seconds since the Unix epoch (JWT `exp`/`nbf`).
    pub unix_time: u64,
    pub cfg: Config,
    pub keepalive: Keepalive,
    pub site: crate::http::Site,
    pub tokens: TokenTable,
    /// TLS configuration for new browser connections (swapped on reload).
    pub tls: Option<tls::Config>,
    pub pool: Pool,
    pub pipes: PipePool,
    /// Reused scratch (deflate input, small messages).
    pub scratch: Vec<u8>,
    pub gw: crate::gateway::Gateways,
    pub demo: crate::demo::DemoConfig,
    /// Time origin of the demo server's clock.
    pub epoch: Instant,
    /// For sockets apps open (relay targets, VNC servers).
    pub registry: Registry,
    /// Connections to drive again before the next poll.
    pub wake: Vec<usize>,
    /// Connections whose `poll_timeout` may have moved earlier although
    /// they were not driven (a session's wake-up moved by its viewers).
    pub rearm: Vec<usize>,
    /// Blocking work for the loop to hand to its helper thread.
    pub jobs: Vec<Job>,
    /// Counters for `/metrics`.
    pub metrics: metrics::Metrics,
    next_id: u64,
}

/// Blocking work an app needs done off the loop.
pub enum Job {
    /// Read a file of `--web DIR` for connection (`key`, `id`).
    File { key: usize, id: u64, req: Box<crate::http::FileRequest> },
}

impl Ctx {
    pub fn new(
        cfg: Config,
        site: crate::http::Site,
        tokens: TokenTable,
        tls: Option<tls::Config>,
        registry: Registry,
    ) -> Ctx {
        let mut demo = crate::demo::DemoConfig::default();
        if let Some((w, h)) = cfg.demo_size {
            (demo.width, demo.height) = (w, h);
        }
        let now = Instant::now();
        Ctx {
            now,
            unix_time: 0,
            keepalive: Keepalive { heartbeat: cfg.heartbeat, idle: cfg.idle_timeout },
            gw: crate::gateway::Gateways::new(&cfg),
            cfg,
            site,
            tokens,
            tls,
            pool: Pool::new(crate::transport::BLOCK, 256),
            pipes: PipePool::new(64),
            scratch: Vec::new(),
            demo,
            epoch: now,
            registry,
            wake: Vec::new(),
            rearm: Vec::new(),
            jobs: Vec::new(),
            metrics: metrics::Metrics::default(),
            next_id: 1,
        }
    }

    /// A connection id never used before (slab keys are reused; ids tell a
    /// late timer or worker answer for a previous occupant apart).
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The session key and target for a WebSocket request: the access
    /// token's own target (`Upgrade::target`), else [`Ctx::lookup_target`]
    /// for its `?token=`. The token is returned too (None for a target a
    /// JWT chose), for noticing token-file changes.
    pub fn target_for(&self, up: &crate::http::Upgrade) -> (String, Option<String>, Result<Target, String>) {
        let token = crate::http::query_param(&up.query, "token");
        match up.target {
            Some(a) => (format!("jwt {a}"), None, Ok(Target::new(crate::config::TargetAddr::Tcp(a)))),
            None => (token.unwrap_or_default().to_string(), token.map(str::to_string), self.lookup_target(token)),
        }
    }

    /// The target for a request: `?token=` from the token file, else `--target`.
    pub fn lookup_target(&self, token: Option<&str>) -> Result<Target, String> {
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
}

/// What a connection is for (see the module diagram).
pub enum App {
    /// HTTP requests until an upgrade.
    Http(http::HttpApp),
    /// Every message is sent back (examples/echo.rs, Autobahn).
    Echo,
    /// Bytes to and from a target (websockify-compatible).
    Relay(Box<relay::Relay>),
    /// A browser watching a gateway session.
    Viewer(viewer::ViewerApp),
    /// Nothing behind the WebSocket any more: only the close handshake remains.
    Detached,
    /// The RFB connection of a gateway session.
    Vnc(viewer::VncLink),
    /// A client of the built-in demo VNC server.
    Demo(Box<demo::DemoPeer>),
}

impl App {
    fn name(&self) -> &'static str {
        match self {
            App::Http(_) => "http",
            App::Echo => "echo",
            App::Relay(_) => "relay",
            App::Viewer(_) => "viewer",
            App::Detached => "detached",
            App::Vnc(_) => "vnc",
            App::Demo(_) => "demo",
        }
    }
}

/// A browser-side peer: the socket's address and, behind a trusted proxy,
/// the client's (`transport::proxy`).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub socket: SocketAddr,
    pub client: IpAddr,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.client == self.socket.ip() {
            write!(f, "{}", self.socket)
        } else {
            write!(f, "{} (via {})", self.client, self.socket)
        }
    }
}

/// One socket in the loop's slab.
pub struct Conn {
    /// Unique for the process's life (see [`Ctx::next_id`]).
    pub id: u64,
    pub ep: Endpoint,
    pub app: App,
    pub peer: Peer,
    pub opened: Instant,
    /// "path → target" for the log lines.
    pub label: String,
    /// The deadline the loop has a timer for (see `server`).
    pub armed: Option<Instant>,
}

/// What `drive` asks of the loop.
pub enum Step {
    Stay,
    /// Drop the connection now, for this reason.
    Close(&'static str),
}

impl Conn {
    pub fn new(id: u64, ep: Endpoint, app: App, peer: Peer, now: Instant) -> Conn {
        Conn { id, ep, app, peer, opened: now, label: String::new(), armed: None }
    }

    /// The client's address, as far as it can be trusted: the TCP peer, or
    /// what a trusted proxy reported (for logs and per-address accounting).
    pub fn client_addr(&self) -> IpAddr {
        self.peer.client
    }

    /// Is this a browser connection (counted against --max-connections)?
    pub fn is_browser(&self) -> bool {
        !matches!(self.app, App::Vnc(_) | App::Demo(_))
    }

    pub fn set_app(&mut self, app: App) {
        trace!("{}: {} → {}", self.peer, self.app.name(), app.name());
        self.app = app;
    }

    /// Readiness for the socket behind `token` (the endpoint, or a relay's target).
    pub fn on_ready(&mut self, upstream: bool, ready: Ready) {
        if upstream {
            if let App::Relay(r) = &mut self.app {
                r.on_ready(ready);
            }
        } else {
            self.ep.ready.merge(ready);
        }
    }

    /// The earliest moment [`Conn::handle_timeout`] has work.
    pub fn poll_timeout(&self, ctx: &Ctx) -> Option<Instant> {
        let app = match &self.app {
            App::Http(h) => h.poll_timeout(),
            App::Vnc(v) => v.poll_timeout(&ctx.gw),
            App::Demo(d) => d.poll_timeout(),
            _ => None,
        };
        match (app, self.ep.poll_timeout(&ctx.keepalive)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Do all the work readiness and buffers allow for connection `key`.
pub fn drive(conns: &mut Slab<Conn>, key: usize, ctx: &mut Ctx) -> Step {
    let Some(conn) = conns.get_mut(key) else { return Step::Stay };
    let step = match &mut conn.app {
        App::Http(_) => http::drive(conn, key, ctx),
        App::Echo => echo::drive(conn, key, ctx),
        App::Relay(_) => relay::drive(conn, key, ctx),
        App::Detached => echo::drive_detached(conn, key, ctx),
        App::Viewer(_) | App::Vnc(_) => return viewer::drive(conns, key, ctx),
        App::Demo(_) => demo::drive(conn, key, ctx),
    };
    if let Step::Close(_) = step {
        return step;
    }
    if ctx.metrics.has_pending() {
        // A scrape was admitted: answered here, where the slab is at hand.
        metrics::serve_pending(conns, ctx);
    }
    let Some(conn) = conns.get_mut(key) else { return Step::Stay };
    finish_io(conn, ctx)
}

/// Write what the app left in the output; the connection is over when
/// its endpoint is done or the write failed.
pub fn finish_io(conn: &mut Conn, ctx: &mut Ctx) -> Step {
    if let Err(e) = conn.ep.flush(&mut ctx.pool, ctx.now) {
        debug!("{}: write failed: {e}", conn.peer);
        conn.ep.mark_abnormal();
        return Step::Close("write failed");
    }
    if conn.ep.is_done() {
        return Step::Close("closed");
    }
    Step::Stay
}

/// Apply the connection's time policy at `ctx.now`.
pub fn handle_timeout(conns: &mut Slab<Conn>, key: usize, ctx: &mut Ctx) -> Step {
    let Some(conn) = conns.get_mut(key) else { return Step::Stay };
    if let Some(why) = conn.ep.handle_timeout(ctx.now, &ctx.keepalive, &mut ctx.pool) {
        return Step::Close(why);
    }
    match &mut conn.app {
        App::Http(_) => {
            if let Some(why) = http::handle_timeout(conn, ctx) {
                return Step::Close(why);
            }
        }
        App::Vnc(_) => return viewer::handle_vnc_timeout(conns, key, ctx),
        App::Demo(_) => {}
        _ => {}
    }
    drive(conns, key, ctx)
}

/// Ask every WebSocket to close (1001, shutdown); plain HTTP connections end now.
pub fn going_away(conn: &mut Conn, ctx: &mut Ctx) -> Step {
    match conn.app {
        App::Http(_) => Step::Close("server shutting down"),
        App::Vnc(_) | App::Demo(_) => Step::Stay,
        _ => {
            conn.ep.send_close(crate::ws::close::GOING_AWAY, "server shutting down", &mut ctx.pool, ctx.now);
            Step::Stay
        }
    }
}

/// A connection has been taken out of the slab: release what hangs off it
/// and write its closing log line.
pub fn finished(conns: &mut Slab<Conn>, mut conn: Conn, why: &str, ctx: &mut Ctx) {
    conn.ep.stream.close_tls();
    let _ = conn.ep.flush(&mut ctx.pool, ctx.now);
    conn.ep.input.release(&mut ctx.pool);
    conn.ep.output.release(&mut ctx.pool);
    ctx.metrics.closed(&conn);
    let secs = conn.opened.elapsed().as_secs_f64();
    match conn.app {
        App::Relay(mut r) => r.release(ctx),
        App::Viewer(v) => viewer::detach(conns, v, ctx),
        App::Vnc(link) => viewer::vnc_gone(conns, link, ctx),
        App::Demo(_) => debug!("demo VNC server: client {} gone ({why})", conn.peer),
        _ => {}
    }
    if !conn.ep.is_websocket() {
        debug!("{}: HTTP connection closed after {secs:.1}s ({why})", conn.peer);
        return;
    }
    let (code, reason) = conn.ep.close_info();
    let code = code.map_or("none".to_string(), |c| c.to_string());
    info!(
        "{}: WebSocket closed {}: {} bytes in, {} bytes out, {:.1}s, close code {} {}({why})",
        conn.peer,
        conn.label,
        conn.ep.bytes_in,
        conn.ep.bytes_out,
        secs,
        code,
        if reason.is_empty() { String::new() } else { format!("\"{reason}\" ") },
    );
}
