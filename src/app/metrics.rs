//! `/metrics`: counters kept on the loop and their text exposition
//! (OpenMetrics 1.0 when the scraper asks for it, as Prometheus does, else
//! the Prometheus text format 0.0.4). What each metric means, and the
//! access rule: docs/metrics.md.
//!
//! Cheap by construction: the counters are plain integers bumped where the
//! loop already is (accept, refusal, connection end, the gateway's own
//! session state); a scrape walks the slab and writes into the response
//! buffer, nothing else is allocated. Gauges are read off the live state.
//!
//! ```text
//!   GET /metrics ─▶ access (Host allow-list, credentials; no auth: loopback
//!                   clients only on the main port) ─▶ HttpApp waits ─▶
//!   app::drive renders with the whole slab ─▶ http::file_done (the response)
//! ```

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use slab::Slab;

use super::{App, Conn, Ctx};
use crate::gateway::session::Phase;
use crate::http::{self, access::Refusal, Action, Head};

/// The path scraped.
pub const PATH: &str = "/metrics";

/// Why a connection or request was refused (`wsvnc_refused_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `--max-connections` reached (503 at accept).
    MaxConnections,
    /// `--max-per-client` reached for the peer's address (503 at accept).
    PerClient,
    /// Out of file descriptors (503 at accept).
    OutOfFds,
    /// Shutting down (503 at accept).
    ShuttingDown,
    /// Host not allowed (421).
    Host,
    /// Credentials missing or wrong (401).
    Auth,
    /// Origin not allowed, or a token that does not grant this (403).
    Forbidden,
    /// Too many failed logins from the address (429).
    Throttled,
    /// Too many logins at once (503).
    Busy,
    /// A WebSocket with no target for it, or whose target cannot be reached.
    Target,
}

const REASONS: [&str; 10] = [
    "max_connections",
    "per_client",
    "out_of_fds",
    "shutting_down",
    "host",
    "auth",
    "forbidden",
    "throttled",
    "busy",
    "target",
];

impl Refused {
    /// The reason for an HTTP refusal status, if it is one.
    pub fn of_status(status: u16) -> Option<Refused> {
        Some(match status {
            401 => Refused::Auth,
            403 => Refused::Forbidden,
            421 => Refused::Host,
            429 => Refused::Throttled,
            503 => Refused::Busy,
            _ => return None,
        })
    }
}

/// Which end of the daemon a socket is (`side` label of the byte counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Browsers: HTTP and WebSockets, all modes.
    Browser,
    /// Gateway sessions' connections to VNC servers.
    Vnc,
    /// Relay mode's connections to targets.
    RelayTarget,
    /// Clients of the built-in demo VNC server.
    Demo,
}

const SIDES: [&str; 4] = ["browser", "vnc", "relay_target", "demo"];
const KINDS: [&str; 7] = ["http", "echo", "relay", "viewer", "detached", "vnc", "demo"];
const STATES: [&str; 9] =
    ["open", "closing", "waiting", "connecting", "handshake", "need_password", "ready", "lingering", "joining"];

/// Counters for `/metrics` that no live state holds.
#[derive(Debug, Default)]
pub struct Metrics {
    pub accepted: u64,
    refused: [u64; REASONS.len()],
    closed: [u64; KINDS.len()],
    /// Bytes of connections already closed, per side (live ones are added
    /// at scrape time).
    bytes_in: [u64; SIDES.len()],
    bytes_out: [u64; SIDES.len()],
    /// Scrapes waiting for the slab (see `serve_pending`).
    pending: Vec<Scrape>,
}

impl Metrics {
    pub fn refuse(&mut self, why: Refused) {
        self.refused[why as usize] += 1;
    }

    /// Scrapes wait for [`serve_pending`].
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Every refusal so far.
    pub fn refused(&self) -> u64 {
        self.refused.iter().sum()
    }

    /// A connection left the slab: keep its bytes and count it closed.
    pub fn closed(&mut self, conn: &Conn) {
        self.closed[kind(&conn.app)] += 1;
        for (side, i, o) in sides(conn) {
            self.bytes_in[side as usize] += i;
            self.bytes_out[side as usize] += o;
        }
    }
}

/// A scrape answered once the HTTP app has given the loop the slab.
#[derive(Debug)]
struct Scrape {
    key: usize,
    openmetrics: bool,
    head_only: bool,
    close: bool,
    version_minor: u8,
}

fn kind(app: &App) -> usize {
    match app {
        App::Http(_) => 0,
        App::Echo => 1,
        App::Relay(_) => 2,
        App::Viewer(_) => 3,
        App::Detached => 4,
        App::Vnc(_) => 5,
        App::Demo(_) => 6,
    }
}

/// The socket(s) of a connection with their (in, out) byte counts.
fn sides(conn: &Conn) -> impl Iterator<Item = (Side, u64, u64)> {
    let own = match conn.app {
        App::Vnc(_) => Side::Vnc,
        App::Demo(_) => Side::Demo,
        _ => Side::Browser,
    };
    let target = match &conn.app {
        App::Relay(r) => Some(r.target_bytes()),
        _ => None,
    };
    std::iter::once((own, conn.ep.bytes_in, conn.ep.bytes_out)).chain(target.map(|(i, o)| (Side::RelayTarget, i, o)))
}

/// Index into `STATES` of what the connection is doing.
fn state(conn: &Conn, ctx: &Ctx) -> usize {
    if conn.ep.close_sent() {
        return 1;
    }
    match &conn.app {
        App::Http(h) if h.waiting() => 2,
        App::Relay(r) if !r.connected() => 3,
        App::Viewer(super::viewer::ViewerApp::Joining(_)) => 8,
        App::Vnc(link) => match ctx.gw.sessions.get(link.session()) {
            Some(s) if s.lingering_until().is_some() => 7,
            Some(s) => match s.phase {
                Phase::Connecting => 3,
                Phase::Handshake => 4,
                Phase::NeedPassword => 5,
                Phase::Ready => 6,
            },
            None => 1,
        },
        _ => 0,
    }
}

/// What [`route`] decided for a request it took.
pub enum Route {
    /// Admitted: the caller waits for [`serve_pending`].
    Scrape,
    /// A refusal or error to send.
    Respond { bytes: Vec<u8>, close: bool, status: u16 },
}

/// A request on the main port (`metrics_port` false, served with
/// `--metrics`) or on `--metrics-listen`: None when it is not for us.
///
/// Access: the Host allow-list and the configured credentials as for the
/// viewer (a JWT limited to one token or to viewing grants no metrics);
/// without credentials configured, the main port answers only loopback
/// clients (after `--trusted-proxy`), the metrics port everyone who
/// reaches the address the operator chose for it.
pub fn route(
    head: &Head,
    key: usize,
    metrics_port: bool,
    client: IpAddr,
    peer: &http::Peer,
    ctx: &mut Ctx,
) -> Option<Route> {
    let (path, query) = http::path::split_target(&head.target);
    if path != PATH {
        return metrics_port.then(|| plain(head, 404, "only /metrics is served on this port"));
    }
    if !metrics_port && !ctx.cfg.metrics {
        return None;
    }
    if !matches!(head.method.as_str(), "GET" | "HEAD") {
        return Some(plain(head, 405, "GET or HEAD"));
    }
    let access = &mut ctx.site.access;
    let refusal = if !access.host_allowed(head) {
        Some(Refusal {
            status: 421,
            reason: "this server does not answer to that Host name (see --allowed-host)".into(),
            basic_challenge: false,
            retry_after: None,
        })
    } else if access.requires_auth() {
        let q = query.and_then(|q| http::path::parse_query(q).ok()).unwrap_or_default();
        match access.check(head, &q, peer) {
            Ok(g) if g.claims.as_ref().is_some_and(|c| c.token.is_some() || c.target.is_some() || c.view_only) => {
                Some(Refusal {
                    status: 403,
                    reason: "this access token is limited to a session; it grants no metrics".into(),
                    basic_challenge: false,
                    retry_after: None,
                })
            }
            Ok(_) => None,
            Err(r) => Some(r),
        }
    } else if !metrics_port && !client.is_loopback() {
        Some(Refusal {
            status: 403,
            reason: "metrics are served to loopback clients only without --jwt-secret-file/--basic-auth-file \
                     (or use --metrics-listen)"
                .into(),
            basic_challenge: false,
            retry_after: None,
        })
    } else {
        None
    };
    let close = !head.keep_alive();
    if let Some(r) = refusal {
        log::info!("{}: GET {PATH}: refused {}: {}", peer.addr, r.status, crate::logsafe::esc(&r.reason));
        let conn = http::response::Conn::new(close, head.version_minor);
        let head_only = head.method == "HEAD";
        let bytes =
            http::response::refusal_response(r.status, &r.reason, r.basic_challenge, r.retry_after, conn, head_only);
        return Some(Route::Respond { bytes, close, status: r.status });
    }
    let openmetrics = head.header_all("accept").any(|a| a.contains("application/openmetrics-text"));
    ctx.metrics.pending.push(Scrape {
        key,
        openmetrics,
        head_only: head.method == "HEAD",
        close,
        version_minor: head.version_minor,
    });
    Some(Route::Scrape)
}

fn plain(head: &Head, status: u16, text: &str) -> Route {
    let close = !head.keep_alive();
    let conn = http::response::Conn::new(close, head.version_minor);
    let bytes = http::response::error_detail(status, conn, head.method == "HEAD", text);
    Route::Respond { bytes, close, status }
}

/// Answer the scrapes admitted by [`route`] (called by `app::drive`, which
/// holds the slab).
pub fn serve_pending(conns: &mut Slab<Conn>, ctx: &mut Ctx) {
    let mut pending = std::mem::take(&mut ctx.metrics.pending);
    for s in pending.drain(..) {
        let mut body = Vec::with_capacity(16 << 10);
        render(conns, ctx, s.openmetrics, &mut body);
        let ctype = if s.openmetrics {
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        } else {
            "text/plain; version=0.0.4; charset=utf-8"
        };
        let bytes = http::response::Builder::new(200)
            .header("Content-Type", ctype)
            .header("Content-Length", &body.len().to_string())
            .header("Cache-Control", "no-store")
            .connection(http::response::Conn::new(s.close, s.version_minor))
            .finish(&body, s.head_only);
        if let Some(conn) = conns.get_mut(s.key) {
            super::http::file_done(conn, Action::Respond { bytes, close: s.close, status: 200 }, ctx);
            ctx.wake.push(s.key);
        }
    }
    if ctx.metrics.pending.is_empty() {
        ctx.metrics.pending = pending; // keep the allocation
    }
}

// ------------------------------------------------------------ exposition

/// Writes label values escaped (`\\`, `\"`, `\n`: both formats).
struct Escaped<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            match b {
                b'\\' => self.0.extend_from_slice(b"\\\\"),
                b'"' => self.0.extend_from_slice(b"\\\""),
                b'\n' => self.0.extend_from_slice(b"\\n"),
                _ => self.0.push(b),
            }
        }
        Ok(())
    }
}

/// Writes raw text into the body.
struct Raw<'a>(&'a mut Vec<u8>);

impl fmt::Write for Raw<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

struct Out<'a> {
    body: &'a mut Vec<u8>,
    openmetrics: bool,
    /// Name of the current family's samples (with `_total` for counters).
    name: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Type {
    Counter,
    Gauge,
    Summary,
}

impl Out<'_> {
    /// Start a family: `name` is the sample name (counters end in `_total`).
    fn family(&mut self, name: &'static str, ty: Type, help: &str) {
        self.name = name;
        let meta = if ty == Type::Counter && self.openmetrics { name.trim_end_matches("_total") } else { name };
        let t = match ty {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Summary => "summary",
        };
        let _ = write!(Raw(self.body), "# HELP {meta} {help}\n# TYPE {meta} {t}\n");
    }

    /// One sample of the current family; `suffix` for summaries (`_sum`).
    fn sample(&mut self, suffix: &str, labels: &[(&str, &dyn fmt::Display)], value: &dyn fmt::Display) {
        let _ = write!(Raw(self.body), "{}{suffix}", self.name);
        for (i, (k, v)) in labels.iter().enumerate() {
            let _ = write!(Raw(self.body), "{}{k}=\"", if i == 0 { '{' } else { ',' });
            let _ = write!(Escaped(self.body), "{v}");
            self.body.push(b'"');
        }
        if !labels.is_empty() {
            self.body.push(b'}');
        }
        let _ = writeln!(Raw(self.body), " {value}");
    }
}

/// Seconds as a float sample value.
fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The exposition of everything, into `body`.
pub fn render(conns: &Slab<Conn>, ctx: &Ctx, openmetrics: bool, body: &mut Vec<u8>) {
    let m = &ctx.metrics;
    let mut o = Out { body, openmetrics, name: "" };

    o.family("wsvnc_connections", Type::Gauge, "Open connections by kind (application) and state.");
    let mut counts = [[0u32; STATES.len()]; KINDS.len()];
    for (_, c) in conns.iter() {
        counts[kind(&c.app)][state(c, ctx)] += 1;
    }
    for (k, row) in counts.iter().enumerate() {
        for (s, n) in row.iter().enumerate().filter(|(_, n)| **n > 0) {
            o.sample("", &[("kind", &KINDS[k]), ("state", &STATES[s])], &n);
        }
    }
    o.family("wsvnc_connections_accepted_total", Type::Counter, "Connections accepted on the listening ports.");
    o.sample("", &[], &m.accepted);
    o.family("wsvnc_connections_closed_total", Type::Counter, "Connections closed, by kind at the end.");
    for (k, n) in m.closed.iter().enumerate() {
        o.sample("", &[("kind", &KINDS[k])], &n);
    }
    o.family("wsvnc_refused_total", Type::Counter, "Connections and requests refused, by reason.");
    for (r, n) in m.refused.iter().enumerate() {
        o.sample("", &[("reason", &REASONS[r])], &n);
    }
    let mut bytes = [m.bytes_in, m.bytes_out];
    for (_, c) in conns.iter() {
        for (side, i, out) in sides(c) {
            bytes[0][side as usize] += i;
            bytes[1][side as usize] += out;
        }
    }
    for (dir, name, help) in [
        (0, "wsvnc_received_bytes_total", "Bytes read from sockets, by side."),
        (1, "wsvnc_sent_bytes_total", "Bytes written to sockets, by side."),
    ] {
        o.family(name, Type::Counter, help);
        for (s, n) in bytes[dir].iter().enumerate() {
            o.sample("", &[("side", &SIDES[s])], &n);
        }
    }

    // Gateway sessions, labelled by the id of their VNC connection.
    let sessions = || {
        conns.iter().filter_map(|(_, c)| match &c.app {
            App::Vnc(link) => ctx.gw.sessions.get(link.session()).map(|s| (c.id, link, s)),
            _ => None,
        })
    };
    o.family("wsvnc_session_phase", Type::Gauge, "One per gateway session: its target and phase.");
    for (id, _, s) in sessions() {
        let phase = STATES[match s.phase {
            Phase::Connecting => 3,
            Phase::Handshake => 4,
            Phase::NeedPassword => 5,
            Phase::Ready if s.lingering_until().is_some() => 7,
            Phase::Ready => 6,
        }];
        o.sample("", &[("session", &id), ("target", &s.label), ("phase", &phase)], &1);
    }
    o.family("wsvnc_session_viewers", Type::Gauge, "Viewers attached to the session.");
    for (id, _, s) in sessions() {
        o.sample("", &[("session", &id)], &s.viewers.len());
    }
    o.family("wsvnc_session_parts_encoded_total", Type::Counter, "Frame parts encoded (once, shared by viewers).");
    for (id, _, s) in sessions() {
        o.sample("", &[("session", &id)], &s.parts.encoded);
    }
    o.family(
        "wsvnc_session_parts_served_total",
        Type::Counter,
        "Frame parts handed to viewers (shared ones count once per viewer).",
    );
    for (id, _, s) in sessions() {
        o.sample("", &[("session", &id)], &s.parts.served);
    }
    o.family("wsvnc_session_encoded_rects_total", Type::Counter, "Rectangles encoded, by the form the encoder chose.");
    for (id, _, s) in sessions() {
        for (form, n) in ["fill", "palette", "pixels", "jpeg", "png", "webp"].iter().zip(s.parts.forms) {
            o.sample("", &[("session", &id), ("form", form)], &n);
        }
    }
    o.family(
        "wsvnc_session_vnc_update_seconds",
        Type::Summary,
        "FramebufferUpdates from the VNC server: time from their first bytes to the last rectangle applied.",
    );
    for (id, link, _) in sessions() {
        let t = link.update_timer();
        o.sample("_sum", &[("session", &id)], &t.sum);
        o.sample("_count", &[("session", &id)], &t.count);
    }

    // Viewers, labelled by session and their own connection id.
    let viewers = || {
        conns.iter().filter_map(|(_, c)| match &c.app {
            App::Viewer(super::viewer::ViewerApp::Watching(vid)) => {
                let s = ctx.gw.sessions.get(vid.session)?;
                let sid = s.conn.and_then(|k| conns.get(k)).map_or(0, |l| l.id);
                Some((sid, c.id, s.viewer_stats(vid.viewer)?, c.ep.bytes_out))
            }
            _ => None,
        })
    };
    type Pick = fn(&crate::gateway::session::ViewerStats, u64) -> f64;
    let rows: [(&'static str, Type, &str, Pick); 9] = [
        ("wsvnc_viewer_frames_total", Type::Counter, "Frames sent to the viewer (EndFrames).", |v, _| v.frames as f64),
        (
            "wsvnc_viewer_frames_dropped_total",
            Type::Counter,
            "VNC updates merged into damage not yet sent: states the viewer skipped (latest frame wins).",
            |v, _| v.dropped as f64,
        ),
        ("wsvnc_viewer_unacked_frames", Type::Gauge, "Frames sent and not yet acknowledged.", |v, _| v.unacked as f64),
        ("wsvnc_viewer_in_flight_bytes", Type::Gauge, "Bytes sent and not yet acknowledged (pacer).", |v, _| {
            v.in_flight as f64
        }),
        ("wsvnc_viewer_ack_rtt_seconds", Type::Gauge, "Latest frame round trip: frame sent to its ack.", |v, _| {
            v.last_rtt.map_or(f64::NAN, secs)
        }),
        (
            "wsvnc_viewer_min_rtt_seconds",
            Type::Gauge,
            "Smallest recent round trip (the pacer's base delay).",
            |v, _| secs(v.min_rtt),
        ),
        ("wsvnc_viewer_rate_bytes_per_second", Type::Gauge, "The pacer's delivery-rate estimate.", |v, _| v.rate),
        ("wsvnc_viewer_jpeg_quality", Type::Gauge, "JPEG quality used for photo-like areas now.", |v, _| v.jpeg as f64),
        (
            "wsvnc_viewer_bytes_per_frame",
            Type::Gauge,
            "Wire bytes sent to the viewer per frame, since it joined.",
            |v, b| {
                if v.frames == 0 {
                    0.0
                } else {
                    b as f64 / v.frames as f64
                }
            },
        ),
    ];
    for (name, ty, help, pick) in rows {
        o.family(name, ty, help);
        for (sid, vid, v, b) in viewers() {
            o.sample("", &[("session", &sid), ("viewer", &vid)], &Float(pick(&v, b)));
        }
    }
    if openmetrics {
        o.body.extend_from_slice(b"# EOF\n");
    }
}

/// A float sample value: integers without a fraction, NaN as `NaN`.
struct Float(f64);

impl fmt::Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            v if v.is_nan() => f.write_str("NaN"),
            v if v.fract() == 0.0 && v.abs() < 1e15 => write!(f, "{}", v as i64),
            v => write!(f, "{v}"),
        }
    }
}

/// How long FramebufferUpdates took to arrive in full (see the family's
/// help): kept by the session's RFB link around each batch of input.
#[derive(Debug, Default, Clone, Copy)]
pub struct UpdateTimer {
    /// When the update being received began.
    since: Option<Instant>,
    pub sum: f64,
    pub count: u64,
}

impl UpdateTimer {
    /// `finished` updates completed in the input just handled at `now`;
    /// `in_update`: one is still partly received.
    pub fn after_input(&mut self, finished: u64, in_update: bool, now: Instant) {
        if finished > 0 {
            let start = self.since.take().unwrap_or(now);
            self.sum += secs(now.saturating_duration_since(start));
            self.count += finished;
        }
        if in_update && self.since.is_none() {
            self.since = Some(now);
        }
    }
}
