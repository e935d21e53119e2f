//! WebSocket (RFC 6455) server side, sans-IO, plus permessage-deflate (RFC 7692).
//! OWNED BY: the ws work. The public items below are the contract with
//! `server`, `relay`, `gateway` and `examples/echo.rs`.
//!
//! Layout: [`frame`] header codec, [`mask`] payload masking, [`utf8`]
//! incremental validation, [`deflate`] permessage-deflate, [`session`] the
//! per-connection state machine ([`WsSession`]) that ties them together.

pub mod deflate;
pub mod frame;
pub mod mask;
pub mod session;
pub mod utf8;

pub use session::{Body, WsSession};

/// Close status codes (RFC 6455 §7.4.1).
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    pub const INTERNAL_ERROR: u16 = 1011;
    /// Reported (never sent) when a Close frame carried no status (§7.1.5).
    pub const NO_STATUS_RECEIVED: u16 = 1005;
    /// Reported (never sent) when the connection dropped without Close.
    pub const ABNORMAL: u16 = 1006;

    /// May this code appear in a received Close frame? (§7.4.1, §7.4.2):
    /// the defined codes 1000-1003 and 1007-1011, and the registered /
    /// private ranges 3000-4999. 1004, 1005, 1006, 1015, the rest of
    /// 0-2999 and everything ≥ 5000 are protocol errors.
    pub fn is_valid_received(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
    }

    /// Codes that must never be put in a Close frame (§7.4.1).
    pub fn is_reserved_local(code: u16) -> bool {
        matches!(code, 1004 | 1005 | 1006 | 1015)
    }
}

/// The peer broke a rule; the connection must be closed with `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsError {
    pub code: u16,
    pub reason: &'static str,
}

impl std::fmt::Display for WsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "websocket peer error {}: {}", self.code, self.reason)
    }
}

impl std::error::Error for WsError {}

/// Limits enforced while reading.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest message (after inflating) accepted; beyond → 1009.
    pub max_message: usize,
}

/// How data messages are handed to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Whole messages (assembled from fragments, inflated, UTF-8 checked).
    Whole,
    /// Binary payload handed over in chunks as it arrives (relay mode);
    /// text messages are still delivered whole.
    StreamBinary,
}

/// One thing read from the peer.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
    /// A ping arrived; its pong is already in `out`.
    Ping,
    Pong(&'a [u8]),
    /// The peer sent Close; our reply Close is already in `out` (unless we
    /// had sent one first). `code` is 1005 when the frame had no status.
    Close {
        code: u16,
        reason: &'a str,
    },
}
