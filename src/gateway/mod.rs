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

use slab::Slab;

use crate::config::{Config, Target};
use crate::rfb::{encoding, RfbConfig};
pub use session::{Composed, Session};

/// WebSocket path of the gateway (relay mode has `/websockify`).
pub const PATH: &str = "/ws";
/// Subprotocol of browser protocol v2.
pub const SUBPROTOCOL: &str = "wsvnc.v2";
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

/// Every gateway session, by the key viewers asked for.
pub struct Gateways {
    pub sessions: Slab<Session>,
    by_key: HashMap<String, usize>,
    demo: Option<Target>,
    encodings: Vec<i32>,
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
        Gateways {
            sessions: Slab::new(),
            by_key: HashMap::new(),
            demo: None,
            encodings,
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
            encodings: self.encodings.clone(),
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
