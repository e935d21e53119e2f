//! RFB client state machine (rfbproto §7.1–7.6). OWNED BY: the rfb-client work.
//! The public items below are the contract with the gateway.

use crate::fb::{Framebuffer, Rect};

/// Client-side settings.
#[derive(Debug, Clone)]
pub struct RfbConfig {
    /// ClientInit shared-flag (rfbproto §7.3.1). Default true.
    pub shared: bool,
    /// Encodings to advertise, in preference order, pseudo-encodings included.
    pub encodings: Vec<i32>,
    /// VNC password, if configured. When `None` and the server wants VNC
    /// Authentication, the client emits `RfbEvent::PasswordNeeded` and waits
    /// for `set_password`.
    pub password: Option<Vec<u8>>,
}

/// What happened, for the gateway.
#[derive(Debug, Clone, PartialEq)]
pub enum RfbEvent {
    PasswordNeeded,
    /// ServerInit received and our SetPixelFormat/SetEncodings sent.
    Connected { width: u16, height: u16, name: String },
    /// Framebuffer size changed (DesktopSize/ExtendedDesktopSize); fb already resized.
    Resized { width: u16, height: u16 },
    /// ExtendedDesktopSize seen: the server accepts SetDesktopSize.
    ResizeSupported,
    /// A CopyRect rectangle was applied (lets the gateway forward a copy).
    Copied { dst: Rect, src_x: u16, src_y: u16 },
    /// One FramebufferUpdate fully applied.
    UpdateDone,
    Bell,
    /// ServerCutText, Latin-1 per rfbproto §7.6.4, converted to a String.
    ServerCutText(String),
    /// Cursor pseudo-encoding: RGBA image (alpha from the bitmask).
    Cursor { hot_x: u16, hot_y: u16, width: u16, height: u16, rgba: Vec<u8> },
    DesktopName(String),
}

/// Why the RFB connection ended. `Display` is the message shown to viewers.
#[derive(Debug, Clone, PartialEq)]
pub enum RfbError {
    /// The server misbehaved (bad version, bad rect, bad encoding data...).
    Protocol(String),
    /// Authentication failed; the server's reason when it gave one.
    AuthFailed(String),
    /// The server refused the connection with a reason (security types = 0).
    Refused(String),
    /// We support none of the server's security types.
    Unsupported(String),
}

impl std::fmt::Display for RfbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RfbError::Protocol(m) => write!(f, "VNC protocol error: {m}"),
            RfbError::AuthFailed(m) => write!(f, "VNC authentication failed: {m}"),
            RfbError::Refused(m) => write!(f, "VNC server refused the connection: {m}"),
            RfbError::Unsupported(m) => write!(f, "unsupported VNC server: {m}"),
        }
    }
}

impl std::error::Error for RfbError {}

/// The client. Placeholder body until the rfb-client work lands.
pub struct RfbClient {
    _cfg: RfbConfig,
}

impl RfbClient {
    pub fn new(cfg: RfbConfig) -> Self {
        RfbClient { _cfg: cfg }
    }
    /// Consume bytes from the server. Returns how many were used (the caller
    /// drains them); replies go to `out`; events are queued for `poll_event`.
    pub fn handle_input(
        &mut self,
        _input: &[u8],
        _fb: &mut Framebuffer,
        _out: &mut Vec<u8>,
    ) -> Result<usize, RfbError> {
        Err(RfbError::Unsupported("RFB client not built yet".into()))
    }
    pub fn poll_event(&mut self) -> Option<RfbEvent> {
        None
    }
}
