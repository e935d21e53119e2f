//! The HTTP phase of a browser connection: TLS detection, request heads,
//! static files and errors, and the upgrade to a WebSocket application.
//!
//! ```text
//!   (TLS configured) peek: 0x16 ClientHello → TLS │ other → plain (refused with --ssl-only)
//!   Head ──route──▶ respond (keep-alive: next head) │ respond + close ─▶ draining
//!    │      └─ file from --web DIR ─▶ Waiting (helper thread reads it) ─▶ respond
//!    └─ upgrade ─▶ Echo | Relay | Viewer
//! ```
//!
//! One request at a time: the next head is parsed only once the previous
//! response has been written, so a client pipelining requests and never
//! reading holds at most one response (issue: pipelined amplification).
//! A head must arrive within `--handshake-timeout` of the connection's
//! start or of the previous response (slowloris guard; 408).

use std::time::Instant;

use log::{debug, info};

use super::{Conn, Ctx, Job, Step, READS_PER_WAKEUP};
use crate::http::{self, Action};
use crate::transport::{proxy, tls, Read, BLOCK};

/// Largest request head accepted (431 beyond).
const HEAD_LIMIT: usize = 8192;
/// First byte of a TLS record carrying a handshake message (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

/// How the connection's first bytes are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Plain HTTP only (no certificate configured).
    Plain,
    /// Look at the first byte: a ClientHello starts TLS, anything else is plain.
    Sniff,
    /// TLS was started at accept (--ssl-only).
    Tls,
}

pub struct HttpApp {
    start: Start,
    /// Accepted on `--metrics-listen`: only `/metrics` is served.
    pub metrics_port: bool,
    /// A file from `--web DIR` is being read for the current request.
    waiting: bool,
    /// The next head must be complete by then.
    deadline: Instant,
}

impl HttpApp {
    pub fn new(start: Start, now: Instant, ctx: &Ctx) -> HttpApp {
        HttpApp { start, metrics_port: false, waiting: false, deadline: now + ctx.cfg.handshake_timeout }
    }

    /// A file is being read, or a scrape rendered, for the current request.
    pub fn waiting(&self) -> bool {
        self.waiting
    }

    /// The head deadline; none while the helper thread reads a file for
    /// the current request (the deadline restarts with its response).
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.waiting).then_some(self.deadline)
    }
}

pub fn drive(conn: &mut Conn, key: usize, ctx: &mut Ctx) -> Step {
    for _ in 0..READS_PER_WAKEUP {
        let super::App::Http(app) = &mut conn.app else { return Step::Stay };
        if app.waiting {
            return Step::Stay;
        }
        if app.start == Start::Sniff {
            match sniff(conn, ctx) {
                Ok(true) => {}
                Ok(false) => return Step::Stay,
                Err(why) => return Step::Close(why),
            }
            continue;
        }
        // One response at a time (module docs).
        if !conn.ep.output.is_empty() {
            if let Err(e) = conn.ep.flush(&mut ctx.pool, ctx.now) {
                debug!("{}: write failed: {e}", conn.peer);
                return Step::Close("write failed");
            }
            if !conn.ep.output.is_empty() {
                return Step::Stay;
            }
        }
        let limits = http::Limits { max_head_bytes: HEAD_LIMIT, ..http::Limits::default() };
        match http::parse_head(conn.ep.input.data(), &limits) {
            Ok(Some((head, n))) => {
                conn.ep.input.consume(n);
                request(conn, key, head, ctx);
                if !matches!(conn.app, super::App::Http(_)) {
                    // Upgraded: frames may already be buffered for the new app.
                    ctx.wake.push(key);
                    return Step::Stay;
                }
                continue;
            }
            Ok(None) if conn.ep.input.len() >= HEAD_LIMIT => {
                error(conn, 431, ctx);
                return Step::Stay;
            }
            Ok(None) => {}
            Err(status) => {
                error(conn, status, ctx);
                return Step::Stay;
            }
        }
        if conn.ep.read_eof {
            return Step::Stay;
        }
        match conn.ep.read(&mut ctx.pool, ctx.now) {
            Read::Data(_) => {}
            Read::Nothing | Read::Eof => return Step::Stay,
            Read::Failed(e) => {
                debug!("{}: read failed: {e}", conn.peer);
                return Step::Close("read failed");
            }
        }
    }
    ctx.wake.push(key);
    Step::Stay
}

/// Decide between TLS and plain from the first byte. Ok(true): decided;
/// Ok(false): nothing has arrived yet.
fn sniff(conn: &mut Conn, ctx: &mut Ctx) -> Result<bool, &'static str> {
    if !conn.ep.ready.readable {
        return Ok(false);
    }
    let first = match conn.ep.stream.peek_first() {
        Ok(Some(b)) => b,
        Ok(None) => return Err("closed before a request"),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            conn.ep.ready.readable = false;
            return Ok(false);
        }
        Err(_) => return Err("read failed"),
    };
    let super::App::Http(app) = &mut conn.app else { return Err("not http") };
    app.start = Start::Plain;
    if first == TLS_HANDSHAKE {
        if let Some(cfg) = &ctx.tls {
            start_tls(conn, cfg)?;
        }
    }
    Ok(true)
}

/// Serve TLS on the connection from now on.
pub fn start_tls(conn: &mut Conn, cfg: &tls::Config) -> Result<(), &'static str> {
    match tls::TlsSession::new(cfg) {
        Ok(s) => {
            conn.ep.stream.start_tls(s);
            Ok(())
        }
        Err(e) => {
            info!("{}: TLS session refused: {e}", conn.peer);
            Err("TLS unavailable")
        }
    }
}

/// An unparsable or oversized head: answer and close.
fn error(conn: &mut Conn, status: u16, ctx: &mut Ctx) {
    debug!("{}: HTTP error {status}", conn.peer);
    let _ = conn.ep.output.push(&http::error_response(status, true), &mut ctx.pool);
    conn.ep.drain(&mut ctx.pool);
}

fn request(conn: &mut Conn, key: usize, mut head: http::Head, ctx: &mut Ctx) {
    let fwd = proxy::forwarded(&head, conn.peer.socket, &ctx.cfg.trusted_proxies);
    conn.peer.client = fwd.client;
    let via_proxy_without_host = fwd.via_proxy && fwd.host.is_none();
    if let Some(host) = fwd.host {
        // The Host the browser used, as the trusted proxy reports it: the
        // Origin check and the Host checks compare against that.
        if let Some(h) = head.headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case("host")) {
            h.1 = host;
        }
    }
    let peer = http::Peer { addr: conn.peer.socket, now: ctx.now, unix_time: ctx.unix_time };
    let super::App::Http(app) = &mut conn.app else { return };
    let action = match super::metrics::route(&head, key, app.metrics_port, conn.peer.client, &peer, ctx) {
        Some(super::metrics::Route::Scrape) => {
            app.waiting = true; // answered by metrics::serve_pending
            return;
        }
        Some(super::metrics::Route::Respond { bytes, close, status }) => Action::Respond { bytes, close, status },
        None => http::route_deferred(&head, &mut ctx.site, &peer),
    };
    match action {
        Action::Respond { bytes, close, status } => {
            debug!("{} {} {} → {status}", conn.peer, head.method, head.target);
            if let Some(why) = super::metrics::Refused::of_status(status) {
                ctx.metrics.refuse(why);
            }
            if status == 403 && via_proxy_without_host && head.header("origin").is_some() {
                // nginx's default Host is the proxy_pass host: the page's
                // Origin cannot be compared with it (docs/reverse-proxy.md).
                info!(
                    "{}: WebSocket refused: the proxy sent Host {:?}, not the host the browser used; \
                     add `proxy_set_header Host $http_host;` (or X-Forwarded-Host), or --allow-origin",
                    conn.peer,
                    head.header("host").unwrap_or("")
                );
            }
            respond(conn, bytes, close, ctx);
        }
        Action::File(req) => {
            if let super::App::Http(app) = &mut conn.app {
                app.waiting = true;
            }
            ctx.jobs.push(Job::File { key, id: conn.id, req: Box::new(req) });
        }
        Action::Upgrade(up) => {
            if ctx.cfg.echo {
                super::echo::attach(conn, up, ctx);
            } else if up.path == crate::gateway::PATH {
                super::viewer::attach_pending(conn, key, up, ctx);
            } else {
                super::relay::attach(conn, key, up, ctx);
            }
        }
    }
}

/// Queue a response; the connection closes after it when `close`.
fn respond(conn: &mut Conn, bytes: Vec<u8>, close: bool, ctx: &mut Ctx) {
    if !conn.ep.output.push(&bytes, &mut ctx.pool) {
        let _ = conn.ep.output.push(&http::error_response(500, true), &mut ctx.pool);
        conn.ep.drain(&mut ctx.pool);
        return;
    }
    if close {
        conn.ep.drain(&mut ctx.pool);
    } else if let super::App::Http(app) = &mut conn.app {
        app.deadline = ctx.now + ctx.cfg.handshake_timeout;
    }
}

/// The helper thread has read a file for this connection's request.
pub fn file_done(conn: &mut Conn, action: Action, ctx: &mut Ctx) {
    let super::App::Http(app) = &mut conn.app else { return };
    app.waiting = false;
    match action {
        Action::Respond { bytes, close, status } => {
            debug!("{} file → {status}", conn.peer);
            respond(conn, bytes, close, ctx);
        }
        _ => respond(conn, http::error_response(500, true), true, ctx),
    }
}

/// The head did not arrive in time: 408 if part of one came, then close.
pub fn handle_timeout(conn: &mut Conn, ctx: &mut Ctx) -> Option<&'static str> {
    let super::App::Http(app) = &mut conn.app else { return None };
    if app.poll_timeout().is_none_or(|d| ctx.now < d) {
        return None;
    }
    debug!("{}: handshake timeout", conn.peer);
    if !conn.ep.input.is_empty() && conn.ep.output.is_empty() && !conn.ep.read_eof {
        let _ = conn.ep.output.push(&http::error_response(408, true), &mut ctx.pool);
        let _ = conn.ep.flush(&mut ctx.pool, ctx.now);
    }
    Some("handshake timeout")
}

/// Input and output capacities of a browser connection in the HTTP phase:
/// a request head; a response (up to a `--web DIR` file).
pub const INPUT_CAP: usize = BLOCK;
pub const OUTPUT_CAP: usize = crate::http::files::MAX_FILE_BYTES as usize + BLOCK;
