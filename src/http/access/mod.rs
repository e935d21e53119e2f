//! Access control in front of the viewer page and both WebSocket endpoints,
//! sans-IO: the request head, the peer's address and the time in; a grant
//! or a refusal out. `/healthz` is exempt.
//!
//! ```text
//!  request ─▶ Host allowed? ──no──▶ 421           (host.rs: DNS rebinding)
//!               │ yes
//!               ▼
//!             auth configured? ──no──▶ grant (loopback binds, or --no-auth)
//!               │ yes
//!               ▼
//!             JWT presented? ──yes──▶ valid (jwt.rs)? ──no──▶ 401 (reason)
//!               │ no                    │ yes ─▶ target/token allowed? ──no──▶ 403
//!               ▼                       ▼                  │ yes ─▶ grant (+ cookie)
//!             Basic presented? ──no──▶ 401 + WWW-Authenticate (when Basic is on)
//!               │ yes
//!               ▼
//!             address throttled? ──yes──▶ 429 + Retry-After
//!               │ no
//!               ▼
//!             verified before (cache)? ──yes──▶ grant
//!               │ no
//!               ▼
//!             hash budget left this second? ──no──▶ 503 + Retry-After: 1
//!               │ yes
//!               ▼
//!             bcrypt verify ──ok──▶ grant (cached) / ──fail──▶ 401 (+ throttle)
//! ```
//!
//! How a browser carries a JWT: `?jwt=TOKEN` (or websockify's `?token=TOKEN`,
//! recognised by its shape) on the page URL or the WebSocket URL, an
//! `Authorization: Bearer TOKEN` field (scripts), or the `wsvnc_jwt` cookie.
//! When the page is loaded with a JWT in the URL, the response sets that
//! cookie (`HttpOnly; SameSite=Strict; Path=/`, expiring with the token), so
//! the page's scripts, styles and its WebSocket are admitted with no change
//! to the viewer. A page embedded in another site's frame does not get
//! `SameSite=Strict` cookies: put `?jwt=` on the WebSocket URL there.
//!
//! Default (see [`Access::new`]): no authentication on a loopback bind; on
//! any other bind wsvnc refuses to start unless `--jwt-secret-file`,
//! `--basic-auth-file` or an explicit `--no-auth` is given.

pub mod basic;
pub mod json;
pub mod jwt;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::head::Head;
use super::host::HostPolicy;
use crate::logsafe::esc;
use crate::throttle::{addr_key, Policy, Throttle};

/// Name of the cookie that carries a JWT.
pub const COOKIE: &str = "wsvnc_jwt";
/// How long a verified Basic credential is remembered.
pub const BASIC_CACHE_TTL: Duration = Duration::from_secs(600);
/// Verified Basic credentials remembered at most.
pub const BASIC_CACHE_MAX: usize = 1024;
/// bcrypt checks allowed per second in all: each blocks the event loop for
/// tens of milliseconds, so this bounds the loop time guessing can take.
pub const HASHES_PER_SECOND: u32 = 4;

/// Access-control settings from the command line (one block in config.rs).
#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
    /// `--allowed-host` values.
    pub allowed_hosts: Vec<String>,
    /// `--jwt-secret-file` contents: the HS256 key.
    pub jwt_secret: Option<Vec<u8>>,
    /// `--jwt-target` rules (checked when parsed).
    pub jwt_targets: Vec<TargetRule>,
    /// `--basic-auth-file` contents.
    pub basic_users: Option<basic::Users>,
    /// `--no-auth`: serve a non-loopback bind without access control.
    pub no_auth: bool,
}

/// Which `host`/`port` a JWT may name: `ADDR[/PREFIX]:PORTS` where PORTS is
/// `N`, `N-M` or `*`; IPv6 in brackets (`[fd00::/8]:5900-5999`); or `*` for
/// any address and port (the signer is trusted with the whole network).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetRule {
    /// None: `*`, any address of either family.
    net: Option<IpAddr>,
    prefix: u8,
    ports: (u16, u16),
}

impl TargetRule {
    pub fn parse(s: &str) -> Result<TargetRule, String> {
        let bad = || format!("--jwt-target wants ADDR[/PREFIX]:PORT[-PORT] (or '*'), not '{}'", esc(s));
        if s == "*" {
            return Ok(TargetRule { net: None, prefix: 0, ports: (1, 65535) });
        }
        let (net, ports) = if let Some(rest) = s.strip_prefix('[') {
            let (net, ports) = rest.split_once("]:").ok_or_else(bad)?;
            (net, ports)
        } else {
            match s.rsplit_once(':') {
                Some((net, _)) if net.contains(':') => return Err(bad()), // IPv6 needs brackets
                Some(pair) => pair,
                None => return Err(bad()),
            }
        };
        let (addr, prefix) = match net.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().map_err(|_| bad())?, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (net.parse::<IpAddr>().map_err(|_| bad())?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        let ports = match ports {
            "*" => (1, 65535),
            p => match p.split_once('-') {
                Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
                None => {
                    let n = p.parse().map_err(|_| bad())?;
                    (n, n)
                }
            },
        };
        if ports.0 == 0 || ports.0 > ports.1 {
            return Err(bad());
        }
        Ok(TargetRule { net: Some(addr), prefix, ports })
    }

    pub fn allows(&self, a: SocketAddr) -> bool {
        let port_ok = (self.ports.0..=self.ports.1).contains(&a.port());
        let bits = |ip: IpAddr| -> u128 {
            match ip {
                IpAddr::V4(v) => u32::from(v) as u128,
                IpAddr::V6(v) => u128::from(v),
            }
        };
        let net_ok = match (self.net, a.ip()) {
            (None, _) => true,
            (Some(net @ IpAddr::V4(_)), IpAddr::V4(_)) | (Some(net @ IpAddr::V6(_)), IpAddr::V6(_)) => {
                let width = if net.is_ipv4() { 32 } else { 128 };
                let shift = width - self.prefix as u32;
                shift >= width || bits(net) >> shift == bits(a.ip()) >> shift
            }
            _ => false,
        };
        port_ok && net_ok
    }
}

/// Who is asking, and when. The server's clock, passed in.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    pub now: Instant,
    /// Seconds since the Unix epoch (JWT `exp`/`nbf`).
    pub unix_time: u64,
}

impl Peer {
    /// A loopback peer at `now` (tests, fuzzing).
    pub fn local(now: Instant, unix_time: u64) -> Peer {
        Peer { addr: SocketAddr::from(([127, 0, 0, 1], 40000)), now, unix_time }
    }
}

/// What an admitted request may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// The JWT that admitted it, if any.
    pub claims: Option<jwt::Claims>,
    /// A JWT-chosen VNC server (allowed by a `--jwt-target` rule).
    pub target: Option<SocketAddr>,
    /// `Set-Cookie` value to send with a page: the JWT came in the URL.
    pub set_cookie: Option<String>,
}

/// Why a request is refused: the status, a reason for the client and the
/// log, and what the response must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
    /// Send `WWW-Authenticate: Basic …` (401 with Basic configured).
    pub basic_challenge: bool,
    /// `Retry-After` seconds (429, 503).
    pub retry_after: Option<u64>,
}

impl Refusal {
    fn new(status: u16, reason: impl Into<String>) -> Refusal {
        Refusal { status, reason: reason.into(), basic_challenge: false, retry_after: None }
    }
}

struct JwtAuth {
    key: Vec<u8>,
    targets: Vec<TargetRule>,
}

struct BasicAuth {
    users: basic::Users,
    /// Keyed hash of `user:password` → when it stops being trusted.
    verified: HashMap<[u8; 32], Instant>,
    cache_key: [u8; 32],
    throttle: Throttle<IpAddr>,
    /// Start of the current one-second window and bcrypt checks made in it.
    hash_window: (Instant, u32),
}

/// The access policy and its state (failure records, verified credentials).
pub struct Access {
    hosts: HostPolicy,
    jwt: Option<JwtAuth>,
    basic: Option<BasicAuth>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("hosts", &self.hosts)
            .field("jwt", &self.jwt.is_some())
            .field("basic", &self.basic.as_ref().map(|b| b.users.len()))
            .finish()
    }
}

impl Default for Access {
    /// The default Host check, no authentication (a loopback bind).
    fn default() -> Self {
        Access { hosts: HostPolicy::default(), jwt: None, basic: None }
    }
}

impl Access {
    /// The policy for a server listening on `listen`. Refuses (Err, for the
    /// user) a non-loopback bind without authentication unless `no_auth`.
    pub fn new(cfg: &AccessConfig, listen: SocketAddr) -> Result<Access, String> {
        let hosts = HostPolicy::from_names(&cfg.allowed_hosts)?;
        let jwt = cfg.jwt_secret.as_ref().map(|key| JwtAuth { key: key.clone(), targets: cfg.jwt_targets.clone() });
        if jwt.is_none() && !cfg.jwt_targets.is_empty() {
            return Err("--jwt-target needs --jwt-secret-file".into());
        }
        let basic = cfg.basic_users.as_ref().map(|users| BasicAuth {
            users: users.clone(),
            verified: HashMap::new(),
            cache_key: random_key(),
            throttle: Throttle::new(Policy::PER_ADDRESS),
            hash_window: (Instant::now(), 0),
        });
        if jwt.is_none() && basic.is_none() && !cfg.no_auth && !listen.ip().is_loopback() {
            return Err(format!(
                "refusing to listen on {listen} without access control: anyone who reaches it would get the \
                 desktop. Give --jwt-secret-file FILE and/or --basic-auth-file FILE, or --no-auth to serve it \
                 open (e.g. behind a proxy that authenticates)"
            ));
        }
        Ok(Access { hosts, jwt, basic })
    }

    /// With any authentication configured.
    pub fn requires_auth(&self) -> bool {
        self.jwt.is_some() || self.basic.is_some()
    }

    /// The Host check alone (421 when it fails).
    pub fn host_allowed(&self, head: &Head) -> bool {
        head.header("host").is_none_or(|h| self.hosts.allows(h))
    }

    /// Checks a request's credentials. `query` is the decoded query.
    pub fn check(&mut self, head: &Head, query: &[(String, String)], peer: &Peer) -> Result<Grant, Refusal> {
        if !self.requires_auth() {
            return Ok(Grant::default());
        }
        if let Some(auth) = &self.jwt {
            if let Some((token, from_url)) = find_jwt(head, query) {
                let claims =
                    jwt::verify(token, &auth.key, peer.unix_time).map_err(|e| Refusal::new(401, e.to_string()))?;
                let target = match &claims.target {
                    None => None,
                    Some((host, port)) => Some(jwt_target(host, *port, &auth.targets)?),
                };
                let set_cookie = from_url.then(|| {
                    let max_age = claims.exp.saturating_sub(peer.unix_time);
                    format!("{COOKIE}={token}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict")
                });
                return Ok(Grant { claims: Some(claims), target, set_cookie });
            }
        }
        let Some(auth) = &mut self.basic else {
            return Err(Refusal::new(401, "an access token is required (?jwt=TOKEN)"));
        };
        let challenge = |status: u16, why: &str| Refusal {
            status,
            reason: why.to_string(),
            basic_challenge: status == 401,
            retry_after: None,
        };
        let Some((user, password)) = head.header_all("authorization").find_map(basic::credentials) else {
            return Err(challenge(401, "a user name and password are required"));
        };
        let key = addr_key(peer.addr.ip());
        if let Err(b) = auth.throttle.check(&key, peer.now) {
            return Err(Refusal {
                retry_after: Some(b.retry_secs()),
                ..Refusal::new(429, format!("too many failed logins, retry in {} s", b.retry_secs()))
            });
        }
        let fingerprint = auth.fingerprint(&user, &password);
        if auth.verified.get(&fingerprint).is_some_and(|until| *until > peer.now) {
            auth.throttle.succeeded(&key);
            return Ok(Grant::default());
        }
        let (start, used) = &mut auth.hash_window;
        if peer.now.duration_since(*start) >= Duration::from_secs(1) {
            (*start, *used) = (peer.now, 0);
        }
        if *used >= HASHES_PER_SECOND {
            return Err(Refusal { retry_after: Some(1), ..Refusal::new(503, "too many logins at once, retry") });
        }
        *used += 1;
        if auth.users.verify(&user, &password) {
            auth.throttle.succeeded(&key);
            if auth.verified.len() >= BASIC_CACHE_MAX {
                let now = peer.now;
                auth.verified.retain(|_, until| *until > now);
                if auth.verified.len() >= BASIC_CACHE_MAX {
                    auth.verified.clear();
                }
            }
            auth.verified.insert(fingerprint, peer.now + BASIC_CACHE_TTL);
            return Ok(Grant::default());
        }
        let b = auth.throttle.failed(&key, peer.now);
        if b.locked_out {
            log::warn!(
                "{}: HTTP Basic: too many failed logins (last user '{}'): locked out for {} s",
                peer.addr.ip(),
                esc(&user),
                b.retry_secs()
            );
        }
        Err(challenge(401, "wrong user name or password"))
    }
}

impl BasicAuth {
    /// HMAC-SHA256 of `user:password` under a per-process random key: the
    /// cache never holds a password, and an entry says nothing outside this process.
    fn fingerprint(&self, user: &str, password: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.cache_key).expect("HMAC takes any key length");
        mac.update(user.as_bytes());
        mac.update(b":");
        mac.update(password);
        mac.finalize().into_bytes().into()
    }
}

/// A JWT from the query (`jwt`, or a JWT-shaped `token`), a Bearer
/// `Authorization`, or the cookie; and whether it came in the URL.
fn find_jwt<'a>(head: &'a Head, query: &'a [(String, String)]) -> Option<(&'a str, bool)> {
    if let Some(t) = super::query_param(query, "jwt") {
        return Some((t, true));
    }
    if let Some(t) = query.iter().find(|(n, v)| n == "token" && jwt::looks_like_jwt(v)) {
        return Some((&t.1, true));
    }
    for v in head.header_all("authorization") {
        if let Some((scheme, t)) = v.split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                return Some((t.trim_matches(' '), false));
            }
        }
    }
    head.header_all("cookie")
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim_matches(' ').strip_prefix(COOKIE)?.strip_prefix('='))
        .map(|t| (t, false))
}

/// The VNC server a JWT names, if a `--jwt-target` rule allows it. Names are
/// refused: resolving them would block the event loop.
fn jwt_target(host: &str, port: u16, rules: &[TargetRule]) -> Result<SocketAddr, Refusal> {
    let h = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let Ok(ip) = h.parse::<IpAddr>() else {
        return Err(Refusal::new(403, "the access token's host must be an IP address"));
    };
    let addr = SocketAddr::new(ip, port);
    if !rules.iter().any(|r| r.allows(addr)) {
        return Err(Refusal::new(403, format!("the access token's target {addr} is not allowed here (--jwt-target)")));
    }
    Ok(addr)
}

/// 32 random bytes from the kernel (once, at start-up).
fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    if getrandom::getrandom(&mut k).is_err() {
        // No kernel randomness: a key from the clock and the address of a
        // stack variable still differs per process; only the cache uses it.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        k[..16].copy_from_slice(&t.as_nanos().to_le_bytes());
        let here = &t as *const _ as usize as u64;
        k[16..24].copy_from_slice(&here.to_le_bytes());
    }
    k
}

#[cfg(test)]
mod tests;
