//! WebSocket (RFC 6455) server side, sans-IO, plus permessage-deflate (RFC 7692).
//! OWNED BY: the ws work. The public items below are the contract with
//! `server`, `relay`, `gateway` and `examples/echo.rs`.

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
}

/// The peer broke a rule; the connection must be closed with `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsError {
    pub code: u16,
    pub reason: &'static str,
}

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
    Close { code: u16, reason: &'a str },
}

pub struct WsSession {}

impl WsSession {
    pub fn new(_limits: Limits, _delivery: Delivery, _deflate: Option<()>) -> Self {
        unimplemented!("ws work not landed")
    }
}
