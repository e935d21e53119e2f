//! The server side of the WebSocket opening handshake (RFC 6455 §4.2).
//!
//! Checks, in this order, on a request whose path is one of `Site::ws_paths`:
//!
//! | check (RFC 6455 §4.2.1)                                   | failure |
//! |-----------------------------------------------------------|---------|
//! | method GET, HTTP/1.1 or later (item 1)                    | 400 |
//! | no `Upgrade` field at all: a plain GET on a ws path       | 426 + `Upgrade: websocket` |
//! | `Upgrade` has the token `websocket` (item 3)              | 400 |
//! | `Connection` has the token `upgrade` (item 4)             | 400 |
//! | exactly one `Sec-WebSocket-Version`, equal to 13 (item 6) | 426 + `Sec-WebSocket-Version: 13` (§4.2.2) |
//! | one `Sec-WebSocket-Key`, base64 of 16 bytes (item 5)      | 400 |
//! | `Origin` absent, same host, or allowed (item 7, §10.2)    | 403 |
//! | query decodes                                             | 400 |
//!
//! The version is checked before the key because a client speaking another
//! version may format its key differently; it should learn that we speak 13.
//! Token-list fields are matched by token (`Connection: keep-alive, Upgrade`),
//! never by whole-value string comparison.

use super::head::Head;
use super::path::parse_query;
use super::{Site, Upgrade};
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// RFC 6455 §1.3: the GUID appended to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client key: base64(SHA-1(key ++ GUID)) (§4.2.2
/// item 5.4). `key` is used as given; callers pass the trimmed field value.
pub fn accept_key(client_key: &str) -> String {
    let mut h = Sha1::new();
    h.update(client_key.as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Validates the handshake for `path` (decoded) with raw query `query`.
pub fn validate(head: &Head, path: &str, query: Option<&str>, site: &Site) -> Result<Upgrade, u16> {
    if head.method != "GET" || head.version_minor < 1 {
        return Err(400);
    }
    if head.header("upgrade").is_none() {
        return Err(426);
    }
    if !head.has_token("upgrade", "websocket") || !head.has_token("connection", "upgrade") {
        return Err(400);
    }
    let mut versions = head.tokens("sec-websocket-version");
    if versions.next() != Some("13") || versions.next().is_some() {
        return Err(426);
    }
    if head.header_count("sec-websocket-key") != 1 {
        return Err(400);
    }
    let key = head.header("sec-websocket-key").unwrap_or("");
    if !key_is_valid(key) {
        return Err(400);
    }
    let host = head.header("host");
    let origin = head.header("origin");
    if let Some(o) = origin {
        if !origin_allowed(o, host, &site.allowed_origins) {
            return Err(403); // logged by `route`, with the peer
        }
    }
    let query = match query {
        Some(q) => parse_query(q)?,
        None => Vec::new(),
    };
    // §4.2.2 item 5.4 (subprotocol): the first of *our* protocols, in our
    // preference order, that the client offered. If it offered only others we
    // still accept, without the field (as websockify does); the client decides.
    let protocol = site
        .protocols
        .iter()
        .find(|ours| head.tokens("sec-websocket-protocol").any(|t| t == **ours))
        .map(|p| p.to_string());
    let extensions = head
        .header_all("sec-websocket-extensions")
        .map(|v| v.trim_matches([' ', '\t']))
        .filter(|v| !v.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Upgrade {
        path: path.to_string(),
        query,
        accept: accept_key(key),
        protocol,
        extensions,
        origin: origin.map(str::to_string),
        host: host.map(str::to_string),
        target: None,
    })
}

/// §4.2.1 item 5: "a base64-encoded value that, when decoded, is 16 bytes in
/// length". 16 bytes encode to exactly 24 characters ending in "==".
fn key_is_valid(key: &str) -> bool {
    key.len() == 24 && base64::engine::general_purpose::STANDARD.decode(key).is_ok_and(|k| k.len() == 16)
}

/// RFC 6455 §10.2 / RFC 6454: a browser always sends `Origin`; a page from
/// another site must not be able to open our socket. Allowed when an entry of
/// `allowed` is "*" or equals the origin (ASCII case-insensitive), or when the
/// origin's host and port equal the `Host` field's (host case-insensitive;
/// a missing port is the origin scheme's default, 80 for http/ws, 443 for
/// https/wss, on both sides).
pub fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    if allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Some(host) = host else { return false };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        80
    } else if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        443
    } else {
        return false;
    };
    let (Some((oh, op)), Some((hh, hp))) = (split_authority(authority), split_authority(host)) else {
        return false;
    };
    oh.eq_ignore_ascii_case(hh) && op.unwrap_or(default_port) == hp.unwrap_or(default_port)
}

/// `host[:port]` or `[v6]:port` → (host, port). None for anything with a path,
/// userinfo, whitespace, an empty host or a bad port. An empty port ("h:") is
/// the default (RFC 3986 §3.2.3).
fn split_authority(a: &str) -> Option<(&str, Option<u16>)> {
    if a.is_empty() || a.contains(['/', '?', '#', '@', ' ', '\t', ',']) {
        return None;
    }
    let (host, port) = if a.starts_with('[') {
        let close = a.find(']')?;
        let (h, rest) = a.split_at(close + 1);
        match rest {
            "" => (h, None),
            r => (h, Some(r.strip_prefix(':')?)),
        }
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        }
    };
    if host.is_empty() || host.contains(':') && !host.starts_with('[') {
        return None;
    }
    let port = match port {
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse::<u16>().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

/// The 101 response (§4.2.2 item 5). `extensions_reply` is the negotiated
/// `Sec-WebSocket-Extensions` value from the ws layer (RFC 7692), if any.
pub fn upgrade_response(up: &Upgrade, extensions_reply: Option<&str>) -> Vec<u8> {
    let mut b = super::response::Builder::new(101)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Accept", &up.accept);
    if let Some(p) = &up.protocol {
        b = b.header("Sec-WebSocket-Protocol", p);
    }
    if let Some(e) = extensions_reply.filter(|e| !e.is_empty()) {
        b = b.header("Sec-WebSocket-Extensions", e);
    }
    b.finish(&[], true)
}
