//! HTTP/1.1 request heads, static assets and the WebSocket upgrade, sans-IO.
//!
//! ```text
//!  bytes ──parse_head──▶ Head ──route(head, site)──▶ Action::Respond { bytes, close, status }
//!    │ Ok(None): need more            │                  (write bytes; close after if `close`)
//!    │ Err(status): error_response(status, true), close  └──▶ Action::Upgrade(Upgrade)
//!    ▼                                                        (ws layer negotiates extensions,
//!  buf[n..] belongs to the next request / the WebSocket        then upgrade_response(&up, ext))
//! ```
//!
//! Routing (first match wins):
//!
//! 1. HTTP/1.1 without exactly one `Host` → 400 (RFC 9112 §3.2). A request
//!    that announces a body (`Content-Length` > 0 or `Transfer-Encoding`) is
//!    answered and the connection closed: we never read bodies, so its bytes
//!    must not be taken for the next head. A bad `Content-Length` → 400.
//! 2. Bad path (see [`path::clean_path`]) → 400.
//! 3. `/healthz` → 200 `ok\n` (GET/HEAD), for load balancers: no Host or
//!    access check.
//! 4. `Host` not allowed ([`host`], DNS rebinding) → 421; credentials
//!    missing or wrong ([`access`]) → 401/403/429/503, logged once with the
//!    peer address. A JWT's claims then shape the WebSocket request
//!    ([`apply_grant`]).
//! 5. Path in `Site::ws_paths` → WebSocket handshake checks ([`upgrade`]);
//!    such a path is never served as a file. A plain GET there (no `Upgrade`
//!    field) gets 426 Upgrade Required with `Upgrade: websocket`.
//! 6. A WebSocket upgrade request on any other path: with
//!    `Site::upgrade_any_path` (relay mode, as websockify accepts the
//!    upgrade on every path) the handshake checks, else 404 with a body
//!    saying relay mode is off.
//! 7. Methods other than GET/HEAD → 405 with `Allow: GET, HEAD`.
//! 8. Static file from `Site::web_dir` or the embedded table ([`files`]);
//!    an embedded file stored gzipped is sent gzipped when `Accept-Encoding`
//!    allows it ([`accepts_gzip`]), with `Vary: Accept-Encoding` either way;
//!    `If-None-Match` matching the ETag → 304. HTML from the embedded table
//!    gets [`CSP`]; HTML from `web_dir` gets `Site::web_csp` (none by
//!    default: those are the user's pages, e.g. noVNC's with inline scripts).
//!
//! [`route_deferred`] hands step 8 for `web_dir` back as a [`FileRequest`]
//! to run off the event loop (it blocks on the disk); [`route`] runs it.
//!
//! Errors to a request we could parse keep the connection unless they are
//! 400-class protocol errors on the handshake or bad paths (always close), or
//! the client asked to close.

pub mod access;
pub mod assets;
pub mod etag;
pub mod files;
pub mod head;
pub mod host;
pub mod mime;
pub mod path;
pub mod response;
pub mod upgrade;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::logsafe::esc;
pub use access::{Access, Peer};

pub use head::{parse_head, Head, Limits, MAX_HEADER_LINE_BYTES, MAX_TARGET_BYTES};
pub use response::error_response;
pub use upgrade::{accept_key, upgrade_response};

use response::{error_detail, error_with, Builder, Conn};

/// What the server serves on its HTTP port.
#[derive(Debug)]
pub struct Site {
    /// Serve files from this directory (read on each request) instead of the
    /// embedded table.
    pub web_dir: Option<PathBuf>,
    /// Origins allowed to open a WebSocket besides the same host: exact
    /// origins like "https://example.com", or "*" for any.
    pub allowed_origins: Vec<String>,
    /// Decoded paths that are WebSocket endpoints, e.g. ["/websockify", "/ws"].
    pub ws_paths: Vec<String>,
    /// Subprotocols we speak, in our order of preference, e.g. ["binary"].
    pub protocols: Vec<&'static str>,
    /// Host check and authentication, with their state.
    pub access: Access,
    /// Accept a WebSocket upgrade on every path, not only `ws_paths` (relay
    /// mode: websockify does). Plain GETs still get files.
    pub upgrade_any_path: bool,
    /// `Content-Security-Policy` for HTML from `web_dir` (None = none sent).
    pub web_csp: Option<String>,
}

impl Default for Site {
    /// Embedded files, same-origin only, `/websockify` and `/ws`, subprotocol "binary".
    fn default() -> Self {
        Site {
            web_dir: None,
            allowed_origins: Vec::new(),
            ws_paths: vec!["/websockify".to_string(), "/ws".to_string()],
            protocols: vec!["binary"],
            access: Access::default(),
            upgrade_any_path: false,
            web_csp: None,
        }
    }
}

/// What to do with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write `bytes`; if `close`, close the connection after they are written.
    Respond { bytes: Vec<u8>, close: bool, status: u16 },
    /// A valid WebSocket handshake: negotiate extensions, then write
    /// [`upgrade_response`] and switch the connection to the ws layer.
    Upgrade(Upgrade),
    /// Only from [`route_deferred`]: a file from `--web DIR`; run
    /// [`FileRequest::run`] where blocking on the disk is allowed.
    File(FileRequest),
}

/// A validated WebSocket handshake (RFC 6455 §4.2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgrade {
    /// Decoded request path: one of `Site::ws_paths`, or any path with
    /// `Site::upgrade_any_path`.
    pub path: String,
    /// Query pairs, percent-decoded ('+' is a space), in order.
    pub query: Vec<(String, String)>,
    /// The `Sec-WebSocket-Accept` value.
    pub accept: String,
    /// The chosen subprotocol, or None (then no `Sec-WebSocket-Protocol` is sent).
    pub protocol: Option<String>,
    /// All `Sec-WebSocket-Extensions` values joined by ", " ("" when none).
    pub extensions: String,
    pub origin: Option<String>,
    pub host: Option<String>,
    /// The VNC server chosen by the access token (JWT `host`/`port`, allowed
    /// by `--jwt-target`); None: the token file or `--target` decide.
    pub target: Option<SocketAddr>,
}

/// The value of the first query pair named `name`.
pub fn query_param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// `Content-Security-Policy` for HTML: only our own scripts, styles and
/// sockets; images also from data:/blob: (cursor and clipboard images); no
/// plugins, no `<base>` rewriting, no framing by other sites.
pub const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; \
object-src 'none'; base-uri 'none'; frame-ancestors 'self'";

/// Body of the 404 to a WebSocket upgrade on a path nothing serves.
pub const RELAY_OFF: &str = "No WebSocket endpoint here: relay mode (noVNC, websockify clients) is off on this \
port (start wsvnc with --relay); the built-in viewer's WebSocket is /ws.\n";

/// Routes one request from `peer` (see the module documentation for the
/// order). A file from `--web DIR` is read here (blocking); the server uses
/// [`route_deferred`].
pub fn route(head: &Head, site: &mut Site, peer: &Peer) -> Action {
    match route_deferred(head, site, peer) {
        Action::File(req) => req.run(),
        a => a,
    }
}

/// [`route`], except that a file from `--web DIR` is not read but returned
/// as [`Action::File`]; nothing else (the embedded files included) blocks.
pub fn route_deferred(head: &Head, site: &mut Site, peer: &Peer) -> Action {
    let head_only = head.method == "HEAD";
    let mut close = !head.keep_alive();
    let fail = |status: u16, close: bool| Action::Respond {
        bytes: error_with(status, Conn::new(close, head.version_minor), head_only),
        close,
        status,
    };

    if head.header("transfer-encoding").is_some() {
        close = true;
    }
    match content_length(head) {
        Err(()) => return fail(400, true),
        Ok(n) if n > 0 => close = true,
        Ok(_) => {}
    }
    if head.version_minor >= 1 && head.header_count("host") != 1 {
        return fail(400, true);
    }

    let (raw_path, query) = path::split_target(&head.target);
    let clean = match path::clean_path(raw_path) {
        Ok(c) => c,
        Err(status) => return fail(status, true),
    };

    let wants_ws = head.has_token("upgrade", "websocket");
    if clean.decoded == "/healthz" && !wants_ws {
        if !matches!(head.method.as_str(), "GET" | "HEAD") {
            return fail(405, close);
        }
        let bytes = Builder::new(200)
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Content-Length", "3")
            .header("Cache-Control", "no-store")
            .header("X-Content-Type-Options", "nosniff")
            .connection(Conn::new(close, head.version_minor))
            .finish(b"ok\n", head_only);
        return Action::Respond { bytes, close, status: 200 };
    }

    let refuse = |r: access::Refusal| {
        log::info!(
            "{}: {} {}: refused {}: {}",
            peer.addr,
            esc(&head.method),
            esc(&clean.raw),
            r.status,
            esc(&r.reason)
        );
        let conn = Conn::new(close, head.version_minor);
        let bytes = response::refusal_response(r.status, &r.reason, r.basic_challenge, r.retry_after, conn, head_only);
        Action::Respond { bytes, close, status: r.status }
    };
    if !site.access.host_allowed(head) {
        return refuse(access::Refusal {
            status: 421,
            reason: "this server does not answer to that Host name (see --allowed-host)".into(),
            basic_challenge: false,
            retry_after: None,
        });
    }
    let grant = if site.access.requires_auth() {
        let q = query.and_then(|q| path::parse_query(q).ok()).unwrap_or_default();
        match site.access.check(head, &q, peer) {
            Ok(g) => g,
            Err(r) => return refuse(r),
        }
    } else {
        access::Grant::default()
    };

    if site.ws_paths.contains(&clean.decoded) || (wants_ws && site.upgrade_any_path) {
        return match upgrade::validate(head, &clean.decoded, query, site) {
            Ok(mut up) => match apply_grant(&mut up, &grant) {
                Ok(()) => Action::Upgrade(up),
                Err(r) => refuse(r),
            },
            Err(403) => {
                let origin = head.header("origin").unwrap_or("");
                log::info!(
                    "{}: WebSocket {}: refused 403: origin '{}' not allowed",
                    peer.addr,
                    esc(&clean.raw),
                    esc(origin)
                );
                fail(403, true)
            }
            Err(status) => fail(status, true),
        };
    }
    if wants_ws {
        let bytes = error_detail(404, Conn::Close, head_only, RELAY_OFF);
        return Action::Respond { bytes, close: true, status: 404 };
    }

    if !matches!(head.method.as_str(), "GET" | "HEAD") {
        return fail(405, close);
    }
    let req = FileRequest {
        web_dir: site.web_dir.clone(),
        clean,
        query: query.map(str::to_string),
        head_only,
        close,
        version_minor: head.version_minor,
        if_none_match: head.tokens("if-none-match").map(str::to_string).collect(),
        accept_gzip: accepts_gzip(head.tokens("accept-encoding")),
        web_csp: site.web_csp.clone(),
        set_cookie: grant.set_cookie,
    };
    if req.web_dir.is_some() {
        return Action::File(req);
    }
    req.run()
}

/// The static-file step of [`route`] with what it needs of the request, so
/// that it can run away from the event loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRequest {
    web_dir: Option<PathBuf>,
    clean: path::CleanPath,
    query: Option<String>,
    head_only: bool,
    close: bool,
    version_minor: u8,
    /// `If-None-Match` entity-tags, as sent.
    if_none_match: Vec<String>,
    /// `Accept-Encoding` allows gzip.
    accept_gzip: bool,
    /// `Content-Security-Policy` for HTML from `web_dir` (`Site::web_csp`).
    web_csp: Option<String>,
    /// A `Set-Cookie` value from the access grant (a JWT given on the page URL).
    set_cookie: Option<String>,
}

impl FileRequest {
    /// Find the file (reading it from `--web DIR`: blocking) and build the
    /// response: 200 with the file, 304 when `If-None-Match` matches its
    /// ETag, 301 to a directory's slash form, or the error status.
    pub fn run(self) -> Action {
        let FileRequest {
            web_dir,
            clean,
            query,
            head_only,
            close,
            version_minor,
            if_none_match,
            accept_gzip,
            web_csp,
            set_cookie,
        } = self;
        let conn = Conn::new(close, version_minor);
        match files::find(web_dir.as_deref(), &clean, accept_gzip) {
            Err(status) => {
                let close = close || status >= 500;
                let bytes = error_with(status, Conn::new(close, version_minor), head_only);
                Action::Respond { bytes, close, status }
            }
            Ok(files::Found::Redirect) => {
                let mut location = format!("{}/", clean.raw);
                if let Some(q) = query {
                    location.push('?');
                    location.push_str(&q);
                }
                let bytes = Builder::new(301)
                    .header("Location", &location)
                    .header("Content-Length", "0")
                    .connection(conn)
                    .finish(&[], head_only);
                Action::Respond { bytes, close, status: 301 }
            }
            Ok(files::Found::File(f)) => {
                let html = mime::is_html(f.mime);
                // Files from --web DIR are being edited: always revalidate them.
                let cache = if html || web_dir.is_some() { "no-cache" } else { "public, max-age=3600" };
                let not_modified =
                    if_none_match.iter().any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == f.etag);
                let status = if not_modified { 304 } else { 200 };
                let mut b = Builder::new(status);
                if !not_modified {
                    b = b.header("Content-Type", f.mime).header("Content-Length", &f.body.len().to_string());
                    if f.gzip {
                        b = b.header("Content-Encoding", "gzip");
                    }
                }
                if f.vary {
                    b = b.header("Vary", "Accept-Encoding");
                }
                b = b
                    .header("Cache-Control", cache)
                    .header("ETag", &f.etag)
                    .header("X-Content-Type-Options", "nosniff");
                if html {
                    let csp = if web_dir.is_some() { web_csp.as_deref() } else { Some(CSP) };
                    if let Some(csp) = csp {
                        b = b.header("Content-Security-Policy", csp);
                    }
                    b = b.header("Referrer-Policy", "no-referrer");
                }
                if let Some(cookie) = &set_cookie {
                    b = b.header("Set-Cookie", cookie);
                }
                let b = b.connection(conn);
                let bytes = if not_modified { b.finish(&[], true) } else { b.finish(&f.body, head_only) };
                Action::Respond { bytes, close, status }
            }
        }
    }
}

/// Whether `Accept-Encoding` elements (RFC 9110 §12.5.3) allow gzip: `gzip`
/// or `x-gzip`, else `*`, with a q-value other than 0. Absent field: no.
pub fn accepts_gzip<'a>(elements: impl Iterator<Item = &'a str>) -> bool {
    let mut gzip = None;
    let mut any = None;
    for e in elements {
        let mut parts = e.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q_zero = parts.any(|p| {
            let p = p.trim();
            let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) else { return false };
            v.trim().bytes().all(|b| b == b'0' || b == b'.')
        });
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(!q_zero);
        } else if coding == "*" {
            any = Some(!q_zero);
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// Shapes a WebSocket request by the JWT that admitted it: the token leaves
/// the query (the server looks `token` up in the token file); a `token`
/// claim becomes the query's `token` (a different one is refused); a
/// `view_only` claim adds `view_only=1` on the gateway path and refuses the
/// relay, which cannot filter input; a `host`/`port` claim becomes
/// [`Upgrade::target`] and excludes a `token`.
pub fn apply_grant(up: &mut Upgrade, grant: &access::Grant) -> Result<(), access::Refusal> {
    let Some(claims) = &grant.claims else { return Ok(()) };
    let refuse =
        |why: &str| Err(access::Refusal { status: 403, reason: why.into(), basic_challenge: false, retry_after: None });
    up.query.retain(|(n, v)| n != "jwt" && !(n == "token" && access::jwt::looks_like_jwt(v)));
    let asked = query_param(&up.query, "token").map(str::to_string);
    if let Some(t) = &claims.token {
        match asked {
            Some(a) if a != *t => return refuse("the access token does not grant this token"),
            Some(_) => {}
            None => up.query.push(("token".into(), t.clone())),
        }
    }
    if let Some(target) = grant.target {
        if query_param(&up.query, "token").is_some() {
            return refuse("the access token names its target: connect without ?token=");
        }
        up.target = Some(target);
    }
    if claims.view_only {
        if up.path != crate::gateway::PATH {
            return refuse("a view-only access token cannot use the relay (it cannot filter input)");
        }
        up.query.retain(|(n, _)| n != "view_only");
        up.query.push(("view_only".into(), "1".into()));
    }
    Ok(())
}

/// The request's Content-Length (0 when absent). Several fields must agree and
/// each must be all digits (RFC 9112 §6.3 item 5); otherwise Err (400).
fn content_length(head: &Head) -> Result<u64, ()> {
    let mut len = None;
    for v in head.tokens("content-length") {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        let n: u64 = v.parse().map_err(|_| ())?;
        if len.is_some_and(|l| l != n) {
            return Err(());
        }
        len = Some(n);
    }
    Ok(len.unwrap_or(0))
}
