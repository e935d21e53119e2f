//! Gateway mode: wsvnc is the VNC client. One RFB session per target, shared
//! by its viewers; each viewer gets frames composed from the session's shadow
//! framebuffer ("latest frame wins"). Wire protocol: docs/protocol.md.
//! Sans-IO: `server::gateway_io` moves the bytes.

pub mod encode;
pub mod frames;
pub mod login;
pub mod pacing;
pub mod proto;
pub mod session;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use slab::Slab;

use crate::config::{Config, Target, TargetAddr};
use crate::rfb::{encoding, RfbConfig};
use crate::throttle::{addr_key, Blocked, Policy, Throttle};
pub use session::{Composed, Session};

/// WebSocket path of the gateway (relay mode has `/websockify`).
pub const PATH: &str = "/ws";
/// Subprotocol of browser protocol v2.
pub const SUBPROTOCOL: &str = "wsvnc.v3";
/// A viewer gets more output only when its socket buffer is below this.
pub const LOW_WATER: usize = 128 << 10;
pub use frames::CHUNK;

/// Identifies a viewer: (session key, viewer key within the session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewerId {
    pub session: usize,
    pub viewer: usize,
}

/// Default RFB encodings: every encoding with a working decoder, in the
/// decoders' order of preference (`rfb::decode::supported`, best first),
/// CopyRect before Raw; then the pseudo-encodings. Taken from the decoder
/// registry so that an encoding is advertised exactly when it can be decoded
/// (a VNC server picks any advertised encoding: TigerVNC picks Tight).
pub fn default_encodings() -> Vec<i32> {
    use encoding::*;
    let mut v: Vec<i32> = crate::rfb::decode::supported().iter().copied().filter(|&e| e != RAW).collect();
    v.extend([COPY_RECT, RAW]);
    v.extend_from_slice(crate::rfb::PSEUDO_ENCODINGS);
    v
}

/// Default RFB encodings for a VNC server on this host (a loopback address
/// or a Unix socket): Raw, CopyRect and RRE only, then the pseudo-encodings,
/// so the server copies pixels instead of compressing them. Over loopback
/// the bytes cost less than the compression (slow-link bench, 640×480
/// slideshow at 10 images/s: Xvnc ~50 → ~5 % of a core, the gateway
/// inflates nothing; benches/README.md "Raw from a VNC server on this
/// host"). TigerVNC picks an encoder per kind of rectangle and fills every
/// kind the preferred encoding does not cover with ZRLE or Tight whenever
/// those are offered (`EncodeManager::prepareEncoders`, "Any encoders still
/// unassigned?"), so Raw *first* is not enough: Tight and ZRLE must not be
/// offered at all. RRE is offered for solid areas only: TigerVNC uses it
/// for those ("solid" falls back to Tight, RRE, ZRLE, Hextile) and for no
/// other kind (a repainted root window is a few bytes, not 3 MB of Raw:
/// LAN small change ~6 ms sooner on the bench's terminal).
pub fn local_encodings() -> Vec<i32> {
    let mut v = vec![encoding::RAW, encoding::COPY_RECT, encoding::RRE];
    v.extend_from_slice(crate::rfb::PSEUDO_ENCODINGS);
    v
}

/// Whether a VNC server at `addr` is on this host.
fn is_local(addr: &TargetAddr) -> bool {
    match addr {
        TargetAddr::Tcp(a) => a.ip().to_canonical().is_loopback(),
        TargetAddr::Unix(_) => true,
    }
}

/// The Compression Level pseudo-encoding of level 0 (rfbproto).
const COMPRESS_LEVEL_0: i32 = -256;

/// Password guessing by browsers (joiners checked against the session's
/// password, and passwords forwarded to the VNC server): throttled per
/// client address across all sessions and per session key, with
/// [`crate::throttle`]'s TigerVNC-like policy. Each lockout is logged once.
#[derive(Debug)]
pub struct PasswordGuard {
    by_addr: Throttle<IpAddr>,
    by_session: Throttle<String>,
}

impl Default for PasswordGuard {
    fn default() -> Self {
        PasswordGuard { by_addr: Throttle::new(Policy::PER_ADDRESS), by_session: Throttle::new(Policy::PER_SESSION) }
    }
}

impl PasswordGuard {
    /// May `peer` try a password for session `key` now? Err: for how long not.
    pub fn check(&self, peer: IpAddr, key: &str, now: Instant) -> Result<(), Blocked> {
        let by_addr = self.by_addr.check(&addr_key(peer), now);
        let by_session = self.by_session.check(&key.to_string(), now);
        match (by_addr, by_session) {
            (Err(a), Err(b)) => Err(if a.retry_in >= b.retry_in { a } else { b }),
            (Err(b), _) | (_, Err(b)) => Err(b),
            _ => Ok(()),
        }
    }

    pub fn failed(&mut self, peer: IpAddr, key: &str, now: Instant) {
        let a = self.by_addr.failed(&addr_key(peer), now);
        if a.locked_out {
            log::warn!("{peer}: too many wrong VNC passwords: address locked out for {} s", a.retry_secs());
        }
        let s = self.by_session.failed(&key.to_string(), now);
        if s.locked_out {
            log::warn!(
                "gateway session '{}': too many wrong passwords (last from {peer}): joining locked for {} s",
                crate::logsafe::esc(key),
                s.retry_secs()
            );
        }
    }

    pub fn succeeded(&mut self, peer: IpAddr, key: &str) {
        self.by_addr.succeeded(&addr_key(peer));
        self.by_session.succeeded(&key.to_string());
    }
}

/// Who sends a viewer message, and when: for password throttling.
pub struct Attempt<'a> {
    pub guard: &'a mut PasswordGuard,
    pub peer: IpAddr,
    pub now: Instant,
}

/// Every gateway session, by the key viewers asked for.
pub struct Gateways {
    pub sessions: Slab<Session>,
    /// Password attempts of all sessions' browsers.
    pub guard: PasswordGuard,
    by_key: HashMap<String, usize>,
    demo: Option<Target>,
    encodings: Vec<i32>,
    /// For a VNC server on this host, when the encodings are the defaults
    /// (no `--encodings`, no `--vnc-jpeg`): [`local_encodings`].
    local_encodings: Option<Vec<i32>>,
    shared: bool,
    lossless: bool,
    linger: std::time::Duration,
}

impl Gateways {
    pub fn new(cfg: &Config) -> Self {
        let mut encodings = cfg.encodings.clone().unwrap_or_else(default_encodings);
        // An operator's --encodings lists real encodings; the pseudo-encodings
        // are always wanted.
        if cfg.encodings.is_some() {
            encodings.extend_from_slice(crate::rfb::PSEUDO_ENCODINGS);
        }
        encodings.extend(cfg.vnc_jpeg.map(|q| encoding::JPEG_QUALITY_0 + q as i32));
        // rfbproto "Compression Level Pseudo-encoding" (-256 + level), only
        // when configured: a TigerVNC server compressing a changing photo
        // at its default level 2 takes tens of milliseconds per update (a
        // small change made meanwhile waits for the next one: LAN slideshow
        // of the slow-link bench, small change p50 ~40 ms at 2, ~21 ms at
        // 0), but below 2 it also stops comparing the screen with what it
        // sent (the bench's window drag: 7× the updates).
        encodings.extend(cfg.vnc_compress.map(|l| COMPRESS_LEVEL_0 + l.min(9) as i32));
        let local_encodings = (cfg.encodings.is_none() && cfg.vnc_jpeg.is_none()).then(|| {
            let mut v = local_encodings();
            v.extend(cfg.vnc_compress.map(|l| COMPRESS_LEVEL_0 + l.min(9) as i32));
            v
        });
        Gateways {
            sessions: Slab::new(),
            guard: PasswordGuard::default(),
            by_key: HashMap::new(),
            demo: None,
            encodings,
            local_encodings,
            shared: cfg.shared,
            lossless: cfg.lossless,
            linger: cfg.linger,
        }
    }

    pub fn demo_target(&self) -> Option<Target> {
        self.demo.clone()
    }

    pub fn set_demo_target(&mut self, t: Target) {
        self.demo = Some(t);
    }

    /// The live session for `key`, if any (failed and finished sessions
    /// don't count; a lingering one does).
    pub fn find(&self, key: &str) -> Option<usize> {
        let live = |s: &Session| s.failed.is_none() && !s.is_over();
        self.by_key.get(key).copied().filter(|s| self.sessions.get(*s).is_some_and(live))
    }

    /// Create a session for `key` connecting to `target`.
    pub fn create(&mut self, key: &str, target: &Target) -> usize {
        let cfg = RfbConfig {
            shared: self.shared,
            encodings: match &self.local_encodings {
                Some(local) if is_local(&target.addr) => local.clone(),
                _ => self.encodings.clone(),
            },
            password: target.password.clone(),
            security: target.security.rfb(&target.addr),
        };
        let mut session = Session::new(key.to_string(), target.addr.to_string(), cfg);
        session.lossless = self.lossless;
        session.linger = target.linger.unwrap_or(self.linger);
        let idx = self.sessions.insert(session);
        self.by_key.insert(key.to_string(), idx);
        idx
    }

    pub fn remove(&mut self, idx: usize) -> Option<Session> {
        let s = self.sessions.try_remove(idx)?;
        if self.by_key.get(&s.key) == Some(&idx) {
            self.by_key.remove(&s.key);
        }
        Some(s)
    }
}

#[cfg(test)]
mod encodings_tests {
    use super::*;

    /// The encodings a new session to `addr` advertises.
    fn advertised(cfg: &Config, addr: TargetAddr) -> Vec<i32> {
        let mut g = Gateways::new(cfg);
        let idx = g.create("k", &Target::new(addr));
        g.sessions[idx].rfb.encodings().to_vec()
    }

    #[test]
    fn raw_for_a_vnc_server_on_this_host_only() {
        let tcp = |s: &str| TargetAddr::Tcp(s.parse().unwrap());
        let cfg = Config::default();
        for local in [
            tcp("127.0.0.1:5900"),
            tcp("[::1]:5900"),
            tcp("[::ffff:127.0.0.1]:5900"),
            TargetAddr::Unix("/run/vnc".into()),
        ] {
            let e = advertised(&cfg, local);
            assert_eq!(e[..3], [encoding::RAW, encoding::COPY_RECT, encoding::RRE], "{e:?}");
            // Any other real encoding offered is one TigerVNC would use.
            assert!(e[3..].iter().all(|x| crate::rfb::PSEUDO_ENCODINGS.contains(x)), "{e:?}");
            assert_eq!(e.len(), 3 + crate::rfb::PSEUDO_ENCODINGS.len(), "{e:?}");
        }
        assert_eq!(advertised(&cfg, tcp("192.0.2.7:5900")), default_encodings(), "a server elsewhere: Tight first");
        // An operator's choice wins everywhere, and Tight JPEG from the server needs Tight first.
        let mut chosen = Config { encodings: Some(vec![encoding::ZRLE]), ..Config::default() };
        assert_eq!(advertised(&chosen, tcp("127.0.0.1:5900"))[0], encoding::ZRLE);
        chosen = Config { vnc_jpeg: Some(6), ..Config::default() };
        assert_eq!(advertised(&chosen, tcp("127.0.0.1:5900"))[0], encoding::TIGHT);
    }
}
