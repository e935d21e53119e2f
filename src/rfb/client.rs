//! RFB client state machine (rfbproto §7.1–7.8), sans-IO.
//!
//! Bytes from the VNC server go in through [`RfbClient::handle_input`];
//! replies are appended to a caller-owned `out` buffer; what happened comes
//! out of [`RfbClient::poll_event`]. Rectangles are decoded straight into the
//! caller's [`Framebuffer`]. No sockets, no clock.
//!
//! ```text
//!  Version ──▶ SecurityTypes (3.7, 3.8) ─┬─▶ VncChallenge ─▶ [AwaitPassword] ─▶ SecurityResult ─┐
//!     │                                   ├─▶ (None, 3.8) ───────────────────────▶ SecurityResult ─┤
//!     │                                   ├─▶ Security (VeNCrypt, ARD: security/) ┬▶ SecurityResult ─┤
//!     │                                   │                                       └▶ VncChallenge    │
//!     └──▶ SecurityType33 (3.3) ──────────┴─▶ (None, 3.3/3.7) ───────────────────────────────────┤
//!                                                                       ClientInit sent ◀──────────┘
//!  ServerInit ─▶ (SetPixelFormat + SetEncodings sent, Connected) ─▶ Idle
//!
//!  Idle ─┬─ 0 FramebufferUpdate ─▶ RectHeader ─▶ {Decoding | CursorDecoding | RectFixed | Collect | Skip} ─▶ RectHeader … ─▶ Idle
//!        ├─ 1 SetColourMapEntries ─▶ Collect ─▶ Idle
//!        ├─ 2 Bell ─▶ Idle
//!        ├─ 3 ServerCutText ─▶ Collect (Latin-1, or Extended Clipboard) | Skip ─▶ Idle
//!        ├─ 150 EndOfContinuousUpdates ─▶ Idle
//!        └─ 248 ServerFence ─▶ Collect | Skip ─▶ Idle
//!  any error ─▶ Failed (sticky: every later call returns the same error)
//! ```
//!
//! Normal-phase API, for the gateway (all methods write into a caller `out`
//! and do nothing before [`RfbEvent::Connected`]):
//!
//! | call | sends | when the server confirmed the extension |
//! |---|---|---|
//! | [`RfbClient::request_update`] | FramebufferUpdateRequest | ContinuousUpdates: the first incremental request enables continuous updates, later ones send nothing; [`RfbClient::pause_updates`] turns them off |
//! | [`RfbClient::key_event`] | KeyEvent (keysym) | — |
//! | [`RfbClient::key_event_ext`] | QEMU extended key event (keysym + XT scancode from [`crate::rfb::scancodes::rfb_keycode`] of the browser's `KeyboardEvent.code`) | else KeyEvent, or nothing without a keysym |
//! | [`RfbClient::pointer_event`] | PointerEvent, buttons 1–8 | — |
//! | [`RfbClient::pointer_event_ext`] | PointerEvent; bit 7 back, bit 8 forward | ExtendedMouseButtons: the extended form when back/forward are down |
//! | [`RfbClient::client_cut_text`] | ClientCutText, Latin-1 | Extended Clipboard: UTF-8 (notify/provide) |
//! | [`RfbClient::set_desktop_size`] | SetDesktopSize | ExtendedDesktopSize only |
//!
//! Events: see [`RfbEvent`]; `Cursor` comes from any of the four cursor
//! pseudo-encodings (rich, X, VMware, with alpha), `ServerCutText` from
//! either clipboard form, `LedState` from QEMU LED State.
//!
//! Buffering contract: `handle_input` consumes only whole units. Fixed-size
//! headers (at most 24 bytes) are consumed only when wholly present;
//! variable-length payloads (strings, colour maps, cursor images, screen
//! lists) are gathered progressively into one reusable scratch buffer whose
//! size is checked against a limit before any allocation; rectangle data is
//! consumed progressively by the decoders. So any caller buffer of at least
//! 24 bytes works, and any chunking of the same stream yields the same
//! framebuffer, events and output.
//!
//! Once a VeNCrypt X509 sub-type has started TLS, `handle_input` takes socket
//! bytes (TLS records): all that rustls accepts counts as used, and the
//! decrypted stream runs through the same state machine under the contract
//! above (`transport.rs` states the bounds). Every output — replies here, and
//! the messages of `key_event` and the other senders — reaches `out`
//! already encrypted, so the caller moves bytes the same way in both modes.
//! A method that writes to `out` must go through `Transport::emit` (`send`).

mod continuous;
mod ext_clipboard;
mod wire;

#[cfg(test)]
mod security_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ext;

use std::collections::VecDeque;

use crate::fb::{Framebuffer, Rect};
use crate::rfb::auth;
use crate::rfb::decode::{cursor, Decoders, PixelContext, Step};
use crate::rfb::encoding;
use crate::rfb::security::{self, Ctx, Negotiation, Next, Outcome, SecurityConfig};
use crate::rfb::transport::Transport;
use crate::rfb::PixelFormat;

pub use wire::latin1_lossy;

/// Longest desktop name accepted (ServerInit, DesktopName pseudo-encoding).
pub const MAX_NAME_LEN: u32 = 64 * 1024;
/// Longest failure-reason string accepted (refusal, SecurityResult).
pub const MAX_REASON_LEN: u32 = 64 * 1024;
/// Longest ServerCutText accepted, and the cap for ClientCutText we send.
pub const MAX_CUT_TEXT: u32 = 1024 * 1024;
/// Largest framebuffer accepted (width × height), from ServerInit, DesktopSize
/// or ExtendedDesktopSize: 8192 × 8192 pixels is 256 MiB of RGBA.
pub const MAX_FB_PIXELS: usize = 8192 * 8192;
/// Cursor images wider or taller than this are skipped (no event), not
/// fatal; for Cursor With Alpha in an encoding other than Raw, whose length
/// is not known in advance, they are a protocol error.
pub const MAX_CURSOR_DIM: u16 = 256;
pub use ext_clipboard::MAX_WIRE as MAX_EXT_CLIPBOARD;
/// Framebuffer pixels one `handle_input` call may write (fills, copies,
/// decoded pixels, resizes) before it returns early with
/// [`RfbClient::yielded`] set: 32 Mpx is ~128 MiB of memory traffic, tens of
/// milliseconds, so one VNC server cannot hold the event loop for long. One
/// unit of work (a rectangle, a resize) may overshoot it by its own size.
pub const WORK_PER_CALL: u64 = 32 << 20;

/// Client-side settings.
#[derive(Debug, Clone)]
pub struct RfbConfig {
    /// ClientInit shared-flag (rfbproto §7.3.1). Default true.
    pub shared: bool,
    /// Encodings to advertise, in preference order, pseudo-encodings included.
    /// [`RfbClient::new`] drops entries it cannot handle (real encodings with
    /// no decoder, pseudo-encodings it does not implement), so a server can
    /// never pick something we would choke on. Compression-level hints
    /// (-256..=-247) and JPEG-quality levels (-32..=-23, which let a Tight
    /// server send JPEG: lossy, so only on request, see `--vnc-jpeg`) are
    /// passed through.
    pub encodings: Vec<i32>,
    /// VNC password, if configured. When `None` and the server wants VNC
    /// Authentication, the client emits `RfbEvent::PasswordNeeded` and waits
    /// for `set_password`.
    pub password: Option<Vec<u8>>,
    /// User name and TLS certificate checks for the other security types.
    pub security: SecurityConfig,
}

/// Every pseudo-encoding the client implements, in the order advertised
/// after the real encodings. Cursor shapes: TigerVNC picks the first its
/// own order allows (with alpha, VMware, rich, X), whatever ours is.
pub const PSEUDO_ENCODINGS: &[i32] = &[
    encoding::EXTENDED_DESKTOP_SIZE,
    encoding::DESKTOP_SIZE,
    encoding::LAST_RECT,
    encoding::CURSOR_WITH_ALPHA,
    encoding::VMWARE_CURSOR,
    encoding::CURSOR,
    encoding::X_CURSOR,
    encoding::DESKTOP_NAME,
    encoding::CONTINUOUS_UPDATES,
    encoding::FENCE,
    encoding::EXTENDED_CLIPBOARD,
    encoding::QEMU_EXTENDED_KEY_EVENT,
    encoding::QEMU_LED_STATE,
    encoding::EXTENDED_MOUSE_BUTTONS,
];

impl Default for RfbConfig {
    /// Shared, no password, every encoding wsvnc may handle (best first),
    /// then [`PSEUDO_ENCODINGS`]; `RfbClient::new` keeps those that have a
    /// decoder.
    fn default() -> Self {
        use encoding::*;
        let mut encodings = vec![TIGHT, ZRLE, HEXTILE, ZLIB, RRE, COPY_RECT, RAW];
        encodings.extend_from_slice(PSEUDO_ENCODINGS);
        RfbConfig { shared: true, encodings, password: None, security: SecurityConfig::default() }
    }
}

/// What happened, for the gateway.
#[derive(Debug, Clone, PartialEq)]
pub enum RfbEvent {
    /// The server wants VNC Authentication and no password is configured:
    /// call [`RfbClient::set_password`], then `handle_input` again with any
    /// bytes still unconsumed.
    PasswordNeeded,
    /// The server wants a user name and a password (X509Plain, Apple Remote
    /// Desktop) and they are not both configured: call
    /// [`RfbClient::set_credentials`] (or `set_password` when `username` is
    /// false, i.e. a user name is configured).
    CredentialsNeeded {
        username: bool,
    },
    /// ServerInit received and our SetPixelFormat/SetEncodings sent; the
    /// framebuffer has been resized to `width × height`. Nothing is requested
    /// yet: the gateway calls `request_update(false, ..)`.
    Connected {
        width: u16,
        height: u16,
        name: String,
    },
    /// Framebuffer size changed (DesktopSize/ExtendedDesktopSize); fb already
    /// resized, which cleared it. Only sent on an actual size change, so
    /// answering it with a non-incremental request cannot loop (rfbproto
    /// §7.8.2 warns about that loop).
    Resized {
        width: u16,
        height: u16,
    },
    /// ExtendedDesktopSize seen (first time only): the server accepts
    /// SetDesktopSize.
    ResizeSupported,
    /// The server denied our SetDesktopSize (ExtendedDesktopSize with reason 1
    /// and a non-zero status, rfbproto §7.8.2); the size is unchanged.
    ResizeRefused(String),
    /// A CopyRect rectangle was applied (lets the gateway forward a copy).
    Copied {
        dst: Rect,
        src_x: u16,
        src_y: u16,
    },
    /// One FramebufferUpdate fully applied.
    UpdateDone,
    Bell,
    /// The server's clipboard: Latin-1 ServerCutText (rfbproto §7.6.4) or
    /// the Extended Clipboard's UTF-8 text, line ends as LF.
    ServerCutText(String),
    /// A cursor shape (Cursor, X Cursor, VMware Cursor or Cursor With Alpha
    /// pseudo-encoding) as straight-alpha RGBA, `width × height × 4` bytes.
    /// `width`/`height` 0 means "no cursor" (empty `rgba`).
    Cursor {
        hot_x: u16,
        hot_y: u16,
        width: u16,
        height: u16,
        rgba: Vec<u8>,
    },
    DesktopName(String),
    /// QEMU LED State pseudo-encoding: the server's lock keys, sent when they
    /// change (and whenever the server likes), so the browser can keep its
    /// Caps/Num Lock in step.
    LedState {
        scroll_lock: bool,
        num_lock: bool,
        caps_lock: bool,
    },
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
    /// The server closed the connection (not a protocol error by itself);
    /// the text says when ("in the middle of a message", ...).
    Closed(String),
    /// TLS with the server failed (handshake, alert, bad record).
    Tls(String),
    /// The server's certificate failed the configured check.
    Certificate(String),
    /// A local failure (random number generator, unusable CA file).
    Local(String),
}

impl std::fmt::Display for RfbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RfbError::Protocol(m) => write!(f, "VNC protocol error: {m}"),
            RfbError::AuthFailed(m) => write!(f, "VNC authentication failed: {m}"),
            RfbError::Refused(m) => write!(f, "VNC server refused the connection: {m}"),
            RfbError::Unsupported(m) => write!(f, "unsupported VNC server: {m}"),
            RfbError::Closed(m) => write!(f, "the VNC server closed the connection{m}"),
            RfbError::Tls(m) => write!(f, "TLS with the VNC server failed: {m}"),
            RfbError::Certificate(m) => write!(f, "the VNC server's certificate was rejected: {m}"),
            RfbError::Local(m) => write!(f, "cannot talk to the VNC server: {m}"),
        }
    }
}

impl std::error::Error for RfbError {}

fn proto(msg: impl Into<String>) -> RfbError {
    RfbError::Protocol(msg.into())
}

/// Credentials sent during the security handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Nothing,
    Password,
    UserAndPassword,
}

/// Negotiated protocol version (rfbproto §7.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V3_3,
    V3_7,
    V3_8,
}

/// Security type numbers (rfbproto §7.1.2); the others are in `security::types`.
const SEC_NONE: u8 = security::types::NONE as u8;
const SEC_VNC_AUTH: u8 = security::types::VNC_AUTH as u8;

/// What to do with a payload once `Collect` has gathered it.
#[derive(Debug, Clone, Copy)]
enum Then {
    /// Reason after zero security types / security type 0 → `Refused`.
    RefusedReason,
    /// 3.8 SecurityResult failure reason → `AuthFailed`.
    AuthFailedReason,
    /// ServerInit name-string.
    ServerName { width: u16, height: u16 },
    /// ServerCutText text.
    CutText,
    /// Extended Clipboard message (ServerCutText with a negative length).
    ExtClipboard,
    /// ServerFence payload.
    Fence { flags: u32 },
    /// SetColourMapEntries RGB triples.
    ColourMap { first: u16 },
    /// Cursor pseudo-rect pixels + bitmask (the rect is in `self.rect`).
    Cursor,
    /// X Cursor colours, bitmap and mask.
    XCursor,
    /// VMware cursor: AND and XOR masks (classic) or RGBA (alpha).
    VmwareCursor { alpha: bool },
    /// ExtendedDesktopSize SCREEN array (the rect is in `self.rect`).
    Screens,
    /// DesktopName pseudo-rect name.
    DesktopName,
}

/// Fixed-size rectangle payloads read whole.
#[derive(Debug, Clone, Copy)]
enum Fixed {
    /// CopyRect src-x, src-y (4 bytes).
    CopyRect,
    /// ExtendedDesktopSize number-of-screens + padding (4 bytes).
    ScreenCount,
    /// QEMU LED State (1 byte).
    LedState,
    /// VMware Cursor type + padding (2 bytes).
    VmwareCursorType,
    /// Cursor With Alpha: S32 encoding of the pixels (4 bytes).
    AlphaCursorEncoding,
}

impl Fixed {
    fn len(self) -> usize {
        match self {
            Fixed::CopyRect | Fixed::ScreenCount | Fixed::AlphaCursorEncoding => 4,
            Fixed::LedState => 1,
            Fixed::VmwareCursorType => 2,
        }
    }
}

#[derive(Debug, Clone)]
enum State {
    /// Waiting for the 12-byte ProtocolVersion.
    Version,
    /// 3.7+: number-of-security-types and the list.
    SecurityTypes,
    /// 3.3: the server-chosen U32 security type.
    SecurityType33,
    /// VNC Authentication: the 16-byte challenge.
    VncChallenge,
    /// Challenge received, no password yet (PasswordNeeded emitted).
    AwaitPassword([u8; 16]),
    /// VeNCrypt or Apple Remote Desktop, run by `RfbClient::negotiation`.
    Security,
    /// U32 SecurityResult.
    SecurityResult,
    /// ServerInit fixed part (24 bytes).
    ServerInit,
    /// A U32 length, checked against `max`, then `Collect`.
    LenPrefixed { max: u32, what: &'static str, then: Then },
    /// Gathering `need` bytes into `scratch`.
    Collect { need: usize, then: Then },
    /// Discarding `left` bytes: an oversized cursor (`in_rect`) or an
    /// oversized clipboard or fence payload (a whole message).
    Skip { left: usize, in_rect: bool },
    /// Normal phase, between server messages.
    Idle,
    /// Inside a FramebufferUpdate, before a rectangle header.
    RectHeader,
    /// A fixed-size rectangle payload.
    RectFixed(Fixed),
    /// A decoder is consuming the current rectangle.
    Decoding { enc: i32 },
    /// A decoder is consuming Cursor With Alpha pixels into `cursor_fb`.
    CursorDecoding { enc: i32 },
    /// The connection failed; sticky.
    Failed(RfbError),
}

/// One SCREEN of ExtendedDesktopSize (rfbproto §7.8.2), kept to echo its id
/// and flags back in SetDesktopSize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Screen {
    id: u32,
    flags: u32,
}

/// The RFB client for one server connection.
pub struct RfbClient {
    cfg: RfbConfig,
    state: State,
    version: Version,
    /// Credentials sent so far (for the AuthFailed message).
    sent: Sent,
    /// The negotiation of VeNCrypt or ARD while in `State::Security`.
    negotiation: Option<Negotiation>,
    /// Plain bytes, or TLS once VeNCrypt started it.
    transport: Transport,
    /// The TLS handshake has completed (set for each decrypted round).
    tls_up: bool,
    normal: bool,
    name: String,
    events: VecDeque<RfbEvent>,
    /// Reused buffer for variable-length payloads; bounded by the MAX_* limits.
    scratch: Vec<u8>,
    decoders: Decoders,
    px: PixelContext,
    /// The server's native format from ServerInit (informational).
    server_format: Option<PixelFormat>,
    /// Rectangles left in the current FramebufferUpdate.
    rects_left: u16,
    /// FramebufferUpdates applied in full since the connection started.
    updates: u64,
    /// Header of the rectangle being processed.
    rect: Rect,
    update_pending: bool,
    /// ExtendedDesktopSize seen: SetDesktopSize allowed.
    resize_supported: bool,
    screens: Vec<Screen>,
    /// ContinuousUpdates / Fence state.
    flow: continuous::Flow,
    clipboard: ext_clipboard::Clipboard,
    /// The server sent the QEMU Extended Key Event pseudo-rectangle.
    qemu_keys: bool,
    /// The server sent the ExtendedMouseButtons pseudo-rectangle.
    ext_buttons: bool,
    /// Cursor With Alpha pixels are decoded here (at most
    /// MAX_CURSOR_DIM² pixels), in `cursor_px`'s format.
    cursor_fb: Framebuffer,
    cursor_px: PixelContext,
    /// Size announced by DesktopSize/ExtendedDesktopSize in the current
    /// update, applied before the next pixel rectangle or at the update's
    /// end (so a run of size rectangles costs one resize).
    pending_size: Option<(u16, u16)>,
    /// A resize was applied in the current update (a second one is refused).
    resized_in_update: bool,
    /// The last `handle_input` stopped at its work budget.
    yielded: bool,
}

impl RfbClient {
    pub fn new(mut cfg: RfbConfig) -> Self {
        let mut decoders = Decoders::new();
        let mut kept = Vec::with_capacity(cfg.encodings.len());
        for &e in &cfg.encodings {
            let ok = match e {
                encoding::COPY_RECT
                | encoding::DESKTOP_SIZE
                | encoding::EXTENDED_DESKTOP_SIZE
                | encoding::LAST_RECT
                | encoding::CURSOR
                | encoding::X_CURSOR
                | encoding::CURSOR_WITH_ALPHA
                | encoding::VMWARE_CURSOR
                | encoding::DESKTOP_NAME
                | encoding::CONTINUOUS_UPDATES
                | encoding::FENCE
                | encoding::EXTENDED_CLIPBOARD
                | encoding::QEMU_EXTENDED_KEY_EVENT
                | encoding::QEMU_LED_STATE
                | encoding::EXTENDED_MOUSE_BUTTONS => true,
                // Compression level: a hint only, no rectangles of its own.
                -256..=-247 => true,
                // JPEG quality: lets a Tight server send JpegCompression
                // (rfbproto §7.7.7), which the Tight decoder then accepts.
                encoding::JPEG_QUALITY_0..=encoding::JPEG_QUALITY_9 => true,
                // `supported()`, not `Decoders::get`: a placeholder decoder
                // (present but unfinished) must not be advertised.
                e if e >= 0 => crate::rfb::decode::supported().contains(&e),
                _ => false,
            };
            if !ok {
                log::warn!("RFB: not advertising encoding {e}: not supported by wsvnc");
            } else if !kept.contains(&e) {
                kept.push(e);
            }
        }
        cfg.encodings = kept;
        let jpeg = cfg.encodings.iter().any(|e| (encoding::JPEG_QUALITY_0..=encoding::JPEG_QUALITY_9).contains(e));
        decoders.allow_jpeg(jpeg);
        RfbClient {
            cfg,
            state: State::Version,
            version: Version::V3_8,
            sent: Sent::Nothing,
            negotiation: None,
            transport: Transport::Plain,
            tls_up: false,
            normal: false,
            name: String::new(),
            events: VecDeque::new(),
            scratch: Vec::new(),
            decoders,
            px: PixelContext { format: PixelFormat::wanted(), colour_map: Box::new([[0, 0, 0, 255]; 256]) },
            server_format: None,
            rects_left: 0,
            updates: 0,
            rect: Rect::default(),
            update_pending: false,
            resize_supported: false,
            screens: Vec::new(),
            flow: continuous::Flow::default(),
            clipboard: ext_clipboard::Clipboard::default(),
            qemu_keys: false,
            ext_buttons: false,
            cursor_fb: Framebuffer::new(0, 0),
            cursor_px: PixelContext::new(PixelFormat::rgba_with_alpha()),
            pending_size: None,
            resized_in_update: false,
            yielded: false,
        }
    }

    /// The encodings actually advertised in SetEncodings (after filtering).
    pub fn encodings(&self) -> &[i32] {
        &self.cfg.encodings
    }

    /// Consume bytes from the server. Returns how many were used (the caller
    /// drains them; unused bytes must be offered again, with more appended,
    /// on the next call). Replies go to `out`; events are queued for
    /// `poll_event` (drain them after every call). Resumable at any split.
    /// After an error every later call returns the same error.
    pub fn handle_input(&mut self, input: &[u8], fb: &mut Framebuffer, out: &mut Vec<u8>) -> Result<usize, RfbError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        self.yielded = false;
        fb.take_work();
        let r = self.drive(input, fb, out);
        if let Err(e) = &r {
            self.fail(e.clone());
        }
        r
    }

    fn fail(&mut self, e: RfbError) {
        log::debug!("RFB: connection failed: {}", crate::logsafe::esc(&e.to_string()));
        self.normal = false;
        self.state = State::Failed(e);
    }

    /// Plain bytes through the state machine until TLS starts (if it does),
    /// the rest through TLS.
    fn drive(&mut self, input: &[u8], fb: &mut Framebuffer, out: &mut Vec<u8>) -> Result<usize, RfbError> {
        let mut used = 0;
        if !self.transport.is_tls() {
            used = self.run(input, fb, out, true)?;
            if !self.transport.is_tls() {
                return Ok(used);
            }
        }
        #[cfg(feature = "tls")]
        {
            // The stream is taken out for the call so the closure may borrow
            // the rest of `self`.
            let Transport::Tls(mut t) = std::mem::replace(&mut self.transport, Transport::Plain) else {
                unreachable!("checked is_tls")
            };
            let r = t.pump(&input[used..], out, |plain, tx, up| {
                self.tls_up = up;
                // Not budgeted: the TLS layer expects its plaintext used whole.
                self.run(plain, fb, tx, false)
            });
            self.transport = Transport::Tls(t);
            used += r?;
        }
        Ok(used)
    }

    /// Steps over `input` until one needs more bytes, or TLS has just
    /// started (the bytes after that point are TLS records), or (when
    /// `budgeted`) [`WORK_PER_CALL`] pixels have been written (`yielded`).
    /// Bytes used.
    fn run(
        &mut self,
        input: &[u8],
        fb: &mut Framebuffer,
        out: &mut Vec<u8>,
        budgeted: bool,
    ) -> Result<usize, RfbError> {
        let mut used = 0;
        loop {
            if budgeted && fb.work() >= WORK_PER_CALL && used < input.len() {
                self.yielded = true;
                break;
            }
            let Some(n) = self.step(&input[used..], fb, out)? else { break };
            used += n;
            if self.transport.is_tls() {
                break;
            }
        }
        Ok(used)
    }

    /// Append a message to `out` (encrypted when TLS is on). A failure to
    /// encrypt fails the connection; the next `handle_input` reports it.
    /// The transport is taken out for the call, so `write` may use the rest
    /// of the client (`c`).
    fn send(&mut self, out: &mut Vec<u8>, write: impl FnOnce(&mut Self, &mut Vec<u8>)) {
        let mut transport = std::mem::replace(&mut self.transport, Transport::Plain);
        let r = transport.emit(out, |o| write(self, o));
        self.transport = transport;
        if let Err(e) = r {
            self.fail(e);
        }
    }

    /// The last [`RfbClient::handle_input`] returned early because it had
    /// done [`WORK_PER_CALL`] pixels of work: call it again with the bytes
    /// it left, after other connections have had their turn.
    pub fn yielded(&self) -> bool {
        self.yielded
    }

    pub fn poll_event(&mut self) -> Option<RfbEvent> {
        self.events.pop_front()
    }

    /// Supply the VNC password. If a challenge is waiting (after
    /// `PasswordNeeded`) it is answered now into `out`; the caller then calls
    /// `handle_input` again with any unconsumed bytes. Otherwise the password
    /// is kept for a later challenge. Errors only if the client already failed.
    pub fn set_password(&mut self, pw: &[u8], out: &mut Vec<u8>) -> Result<(), RfbError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        self.cfg.password = Some(pw.to_vec());
        if let State::AwaitPassword(challenge) = self.state {
            self.sent = Sent::Password;
            self.send(out, |_, o| o.extend_from_slice(&auth::vnc_auth_response(pw, &challenge)));
            self.set_state(State::SecurityResult);
        } else if let (State::Security, Some(user)) = (&self.state, self.cfg.security.username.clone()) {
            self.supply(&user, pw, out);
        }
        match &self.state {
            State::Failed(e) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    /// Supply a user name and password (after `CredentialsNeeded`, or ahead
    /// of time). An awaited answer goes into `out` now; for VNC
    /// Authentication only the password counts. Errors only if the client
    /// has failed.
    pub fn set_credentials(&mut self, username: &[u8], pw: &[u8], out: &mut Vec<u8>) -> Result<(), RfbError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        self.cfg.security.username = Some(username.to_vec());
        self.set_password(pw, out)
    }

    /// Credentials for the running negotiation, if it awaits them.
    fn supply(&mut self, user: &[u8], pw: &[u8], out: &mut Vec<u8>) {
        let Some(n) = self.negotiation.as_mut() else { return };
        let mut answer = Vec::new();
        match n.supply(user, pw, &mut answer) {
            Ok(Some(next)) => {
                self.send(out, |_, o| o.extend_from_slice(&answer));
                self.security_next(next);
            }
            Ok(None) => {}
            Err(e) => self.fail(e),
        }
        answer.fill(0);
    }

    /// Everything to and from the server is encrypted (VeNCrypt X509: the TLS
    /// handshake has completed).
    pub fn encrypted(&self) -> bool {
        self.tls_up && self.transport.is_tls()
    }

    /// Handshake done (ServerInit processed) and not failed.
    pub fn is_normal(&self) -> bool {
        self.normal
    }

    /// Ask for an update of the whole `fb`: a FramebufferUpdateRequest
    /// (rfbproto §7.5.3). Once the server has shown ContinuousUpdates support,
    /// an incremental request instead enables continuous updates (the first
    /// time) or sends nothing (they are on: updates come as the screen
    /// changes); non-incremental requests are always sent. Ignored before the
    /// handshake is done. See `continuous.rs`.
    pub fn request_update(&mut self, incremental: bool, fb: &Framebuffer, out: &mut Vec<u8>) {
        if !self.normal {
            return;
        }
        if incremental && self.flow.supported {
            if !self.flow.active {
                log::debug!("RFB: enabling continuous updates");
                let area = fb.full_rect();
                self.send(out, |c, o| c.flow.enable(area, o));
            }
            return;
        }
        self.send(out, |_, o| wire::update_request(o, incremental, fb.full_rect()));
        self.update_pending = true;
    }

    /// Continuous updates are on (the server sends updates unasked).
    pub fn continuous_updates(&self) -> bool {
        self.flow.active
    }

    /// Stop continuous updates (e.g. nobody is watching); the next
    /// incremental `request_update` turns them on again. No-op when off.
    pub fn pause_updates(&mut self, out: &mut Vec<u8>) {
        if self.normal {
            self.send(out, |c, o| c.flow.disable(o));
        }
    }

    /// FramebufferUpdates applied in full so far (for /metrics).
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// A FramebufferUpdate has begun and not all its rectangles are in.
    pub fn in_update(&self) -> bool {
        self.rects_left > 0
    }

    /// A FramebufferUpdateRequest is outstanding (set by `request_update`,
    /// cleared when a whole FramebufferUpdate has been applied).
    pub fn update_pending(&self) -> bool {
        self.update_pending
    }

    /// KeyEvent (rfbproto §7.5.4). Ignored before the handshake is done.
    pub fn key_event(&mut self, down: bool, keysym: u32, out: &mut Vec<u8>) {
        if self.normal {
            self.send(out, |_, o| wire::key_event(o, down, keysym));
        }
    }

    /// A key by scancode and keysym: the QEMU Extended Key Event message
    /// when the server asked for it and `keycode` is known (non-zero, from
    /// [`crate::rfb::scancodes::rfb_keycode`]), so the server applies its own
    /// keyboard layout; else a KeyEvent with `keysym` (nothing if `keysym` is
    /// 0 too). Ignored before the handshake is done.
    pub fn key_event_ext(&mut self, down: bool, keysym: u32, keycode: u32, out: &mut Vec<u8>) {
        if !self.normal {
            return;
        }
        if self.qemu_keys && keycode != 0 {
            self.send(out, |_, o| wire::qemu_key_event(o, down, keysym, keycode));
        } else if keysym != 0 {
            self.send(out, |_, o| wire::key_event(o, down, keysym));
        }
    }

    /// The server takes scancodes (QEMU Extended Key Event confirmed).
    pub fn supports_scancodes(&self) -> bool {
        self.qemu_keys
    }

    /// PointerEvent (rfbproto §7.5.5). Ignored before the handshake is done.
    pub fn pointer_event(&mut self, mask: u8, x: u16, y: u16, out: &mut Vec<u8>) {
        if self.normal {
            self.send(out, |_, o| wire::pointer_event(o, mask, x, y));
        }
    }

    /// PointerEvent with up to 9 buttons: bits 0–6 as in `pointer_event`
    /// (left, middle, right, wheel up/down/left/right), bit 7 back, bit 8
    /// forward. When the server confirmed ExtendedMouseButtons and back or
    /// forward is down, the extended form carries both; otherwise the plain
    /// form, where bit 7 is back (rfbproto "PointerEvent") and forward is
    /// not expressible (dropped).
    pub fn pointer_event_ext(&mut self, mask: u16, x: u16, y: u16, out: &mut Vec<u8>) {
        if !self.normal {
            return;
        }
        if self.ext_buttons && mask & 0x180 != 0 {
            self.send(out, |_, o| wire::pointer_event_ext(o, mask as u8, (mask >> 7) as u8 & 3, x, y));
        } else {
            self.send(out, |_, o| wire::pointer_event(o, mask as u8, x, y));
        }
    }

    /// The server takes back/forward buttons (ExtendedMouseButtons confirmed).
    pub fn supports_extended_buttons(&self) -> bool {
        self.ext_buttons
    }

    /// The clipboard text `text`. With the Extended Clipboard (the server
    /// sent its caps) as UTF-8, up to [`MAX_CUT_TEXT`] bytes (`ext_clipboard.rs`);
    /// else ClientCutText (rfbproto §7.5.6): Latin-1, characters outside it
    /// become '?', `\r\n` is sent as `\n`, at most [`MAX_CUT_TEXT`] bytes.
    /// Ignored before the handshake is done.
    pub fn client_cut_text(&mut self, text: &str, out: &mut Vec<u8>) {
        if self.normal {
            self.send(out, |c, o| {
                if !c.clipboard.send_text(text, o) {
                    wire::client_cut_text(o, text, MAX_CUT_TEXT as usize);
                }
            });
        }
    }

    /// The Extended Clipboard is in use (Unicode both ways).
    pub fn unicode_clipboard(&self) -> bool {
        self.clipboard.active()
    }

    /// SetDesktopSize (rfbproto §7.5.8): ask for a `w × h` framebuffer with one
    /// screen covering it (keeping the id/flags of the server's first screen).
    /// Returns false, sending nothing, unless the server showed support with
    /// ExtendedDesktopSize, or if `w`/`h` is 0 or over the size limit.
    pub fn set_desktop_size(&mut self, w: u16, h: u16, out: &mut Vec<u8>) -> bool {
        if !self.normal || !self.resize_supported || w == 0 || h == 0 || w as usize * h as usize > MAX_FB_PIXELS {
            return false;
        }
        let s = self.screens.first().copied().unwrap_or(Screen { id: 0, flags: 0 });
        self.send(out, |_, o| wire::set_desktop_size(o, w, h, s.id, s.flags));
        true
    }

    /// Desktop name (ServerInit, updated by DesktopName); empty before.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's native pixel format from ServerInit, once received.
    pub fn server_format(&self) -> Option<PixelFormat> {
        self.server_format
    }

    /// The server closed the connection: the error that explains it at the
    /// current point (e.g. a 3.8 server that closes instead of sending the
    /// SecurityResult reason means the password was wrong).
    pub fn closed_error(&self) -> RfbError {
        match &self.state {
            State::Failed(e) => e.clone(),
            State::Version => RfbError::Closed(" before sending its version".into()),
            State::SecurityResult | State::LenPrefixed { then: Then::AuthFailedReason, .. } => {
                RfbError::AuthFailed(self.default_auth_failure(1))
            }
            State::Collect { then: Then::AuthFailedReason, .. } => RfbError::AuthFailed(self.default_auth_failure(1)),
            State::Security => match &self.negotiation {
                Some(n) => n.closed_error(),
                None => RfbError::Closed(" during the handshake".into()),
            },
            State::Idle => RfbError::Closed(String::new()),
            _ if self.normal => RfbError::Closed(" in the middle of a message".into()),
            _ => RfbError::Closed(" during the handshake".into()),
        }
    }

    fn set_state(&mut self, s: State) {
        log::trace!("RFB: {:?} -> {:?}", self.state, s);
        self.state = s;
    }

    fn default_auth_failure(&self, status: u32) -> String {
        match (status, self.sent) {
            (2, _) => "too many attempts".into(),
            (_, Sent::Password) => "wrong password".into(),
            (_, Sent::UserAndPassword) => "wrong user name or password".into(),
            (_, Sent::Nothing) => "authentication failed".into(),
        }
    }

    /// One unit of work. `Ok(Some(n))`: progress, `n` bytes used (0 only
    /// together with a state change); `Ok(None)`: need more bytes.
    fn step(&mut self, input: &[u8], fb: &mut Framebuffer, out: &mut Vec<u8>) -> Result<Option<usize>, RfbError> {
        match self.state.clone() {
            State::Version => {
                let Some(b) = input.get(..12) else { return Ok(None) };
                let v = parse_version(b)?;
                self.version = v;
                out.extend_from_slice(match v {
                    Version::V3_3 => b"RFB 003.003\n",
                    Version::V3_7 => b"RFB 003.007\n",
                    Version::V3_8 => b"RFB 003.008\n",
                });
                self.set_state(if v == Version::V3_3 { State::SecurityType33 } else { State::SecurityTypes });
                Ok(Some(12))
            }
            State::SecurityTypes => {
                // rfbproto §7.1.2 (3.7 onwards): U8 count, count × U8 types.
                let Some(&count) = input.first() else { return Ok(None) };
                if count == 0 {
                    // "for some reason the connection failed": a reason string follows.
                    self.set_state(State::LenPrefixed {
                        max: MAX_REASON_LEN,
                        what: "refusal reason",
                        then: Then::RefusedReason,
                    });
                    return Ok(Some(1));
                }
                let Some(types) = input.get(1..1 + count as usize) else { return Ok(None) };
                let pick = security::choose(types, &self.cfg.security)?;
                log::debug!("RFB: security type {} of {types:?}", security::types::name(pick as u32));
                out.push(pick);
                self.begin_security(pick, out);
                Ok(Some(1 + count as usize))
            }
            State::SecurityType33 => {
                // rfbproto §7.1.2 (3.3): U32 chosen by the server, only 0, 1 or 2.
                let Some(b) = input.get(..4) else { return Ok(None) };
                match be32(b) {
                    0 => self.set_state(State::LenPrefixed {
                        max: MAX_REASON_LEN,
                        what: "refusal reason",
                        then: Then::RefusedReason,
                    }),
                    t @ (1 | 2) => self.begin_security(t as u8, out),
                    t => return Err(proto(format!("RFB 3.3 server chose invalid security type {t}"))),
                }
                Ok(Some(4))
            }
            State::VncChallenge => {
                // rfbproto §7.2.2: 16-byte challenge, 16-byte DES response.
                let Some(b) = input.get(..16) else { return Ok(None) };
                let mut challenge = [0u8; 16];
                challenge.copy_from_slice(b);
                match &self.cfg.password {
                    Some(pw) => {
                        out.extend_from_slice(&auth::vnc_auth_response(pw, &challenge));
                        self.sent = Sent::Password;
                        self.set_state(State::SecurityResult);
                    }
                    None => {
                        self.events.push_back(RfbEvent::PasswordNeeded);
                        self.set_state(State::AwaitPassword(challenge));
                    }
                }
                Ok(Some(16))
            }
            // Nothing more is expected from the server until we answer.
            State::AwaitPassword(_) => Ok(None),
            State::Security => self.security_step(input, out),
            State::SecurityResult => {
                // rfbproto §7.1.3: U32 status; 3.8 adds a reason on failure.
                let Some(b) = input.get(..4) else { return Ok(None) };
                let status = be32(b);
                if status == 0 {
                    self.client_init(out);
                } else if self.version == Version::V3_8 {
                    self.set_state(State::LenPrefixed {
                        max: MAX_REASON_LEN,
                        what: "authentication failure reason",
                        then: Then::AuthFailedReason,
                    });
                } else {
                    return Err(RfbError::AuthFailed(self.default_auth_failure(status)));
                }
                Ok(Some(4))
            }
            State::ServerInit => {
                // rfbproto §7.3.2: U16 w, U16 h, PIXEL_FORMAT, U32 name-length, name.
                let Some(b) = input.get(..24) else { return Ok(None) };
                let (w, h) = (be16(&b[0..2]), be16(&b[2..4]));
                let mut pf = [0u8; 16];
                pf.copy_from_slice(&b[4..20]);
                let name_len = be32(&b[20..24]);
                check_size(w, h, "ServerInit")?;
                if name_len > MAX_NAME_LEN {
                    return Err(proto(format!(
                        "desktop name of {name_len} bytes in ServerInit (limit {MAX_NAME_LEN})"
                    )));
                }
                self.server_format = Some(PixelFormat::parse(&pf));
                self.begin_collect(name_len as usize, Then::ServerName { width: w, height: h });
                Ok(Some(24))
            }
            State::LenPrefixed { max, what, then } => {
                let Some(b) = input.get(..4) else { return Ok(None) };
                let len = be32(b);
                if len > max {
                    return Err(proto(format!("{what} of {len} bytes (limit {max})")));
                }
                self.begin_collect(len as usize, then);
                Ok(Some(4))
            }
            State::Collect { need, then } => {
                let missing = need - self.scratch.len();
                let n = missing.min(input.len());
                self.scratch.extend_from_slice(&input[..n]);
                if n < missing {
                    return Ok(if n == 0 { None } else { Some(n) });
                }
                let data = std::mem::take(&mut self.scratch);
                let r = self.finish_collect(then, &data, fb, out);
                self.scratch = data;
                self.scratch.clear();
                r?;
                Ok(Some(n))
            }
            State::Skip { left, in_rect } => {
                let n = left.min(input.len());
                if n < left {
                    self.set_state(State::Skip { left: left - n, in_rect });
                    return Ok(if n == 0 { None } else { Some(n) });
                }
                if in_rect {
                    self.end_rect(fb, out)?;
                } else {
                    self.set_state(State::Idle);
                }
                Ok(Some(n))
            }
            State::Idle => self.message_start(input),
            State::RectHeader => self.rect_header(input, fb, out),
            State::RectFixed(kind) => {
                let Some(b) = input.get(..kind.len()) else { return Ok(None) };
                match kind {
                    Fixed::CopyRect => {
                        // rfbproto §7.7.2: U16 src-x, U16 src-y.
                        let (sx, sy) = (be16(&b[0..2]), be16(&b[2..4]));
                        let dst = self.rect;
                        fb.copy(dst, sx, sy).map_err(|e| {
                            proto(format!("CopyRect {}x{}+{}+{} from {sx},{sy}: {e}", dst.w, dst.h, dst.x, dst.y))
                        })?;
                        self.events.push_back(RfbEvent::Copied { dst, src_x: sx, src_y: sy });
                        self.end_rect(fb, out)?;
                    }
                    Fixed::ScreenCount => {
                        // rfbproto §7.8.2: U8 number-of-screens, 3 padding, screens.
                        let n = b[0] as usize;
                        self.begin_collect(n * 16, Then::Screens);
                    }
                    Fixed::LedState => {
                        // rfbproto "QEMU LED State": bit 0 scroll, 1 num, 2 caps.
                        let s = b[0];
                        self.events.push_back(RfbEvent::LedState {
                            scroll_lock: s & 1 != 0,
                            num_lock: s & 2 != 0,
                            caps_lock: s & 4 != 0,
                        });
                        self.end_rect(fb, out)?;
                    }
                    Fixed::VmwareCursorType => self.vmware_cursor(b[0])?,
                    Fixed::AlphaCursorEncoding => self.alpha_cursor(be32(b) as i32)?,
                }
                Ok(Some(kind.len()))
            }
            State::Decoding { enc } | State::CursorDecoding { enc } => {
                let Some(dec) = self.decoders.get(enc) else {
                    return Err(proto(format!("no decoder for encoding {enc}")));
                };
                let step = if let State::CursorDecoding { .. } = self.state {
                    dec.decode(input, &self.cursor_px, &mut self.cursor_fb)
                } else {
                    dec.decode(input, &self.px, fb)
                };
                let step = step.map_err(|e| proto(e.to_string()))?;
                let (n, done) = match step {
                    Step::Done(n) => (n, true),
                    Step::Partial(n) => (n, false),
                };
                if n > input.len() {
                    // A decoder bug, not the server's fault; never index past the input.
                    return Err(proto(format!("decoder for encoding {enc} claimed {n} of {} bytes", input.len())));
                }
                if done {
                    if let State::CursorDecoding { .. } = self.state {
                        self.finish_alpha_cursor();
                    }
                    self.end_rect(fb, out)?;
                    Ok(Some(n))
                } else if n == 0 {
                    Ok(None)
                } else {
                    Ok(Some(n))
                }
            }
            State::Failed(e) => Err(e),
        }
    }

    /// After the security type is chosen (3.3: told; 3.7+: we replied).
    fn begin_security(&mut self, t: u8, out: &mut Vec<u8>) {
        if t == SEC_VNC_AUTH {
            self.set_state(State::VncChallenge);
        } else if t != SEC_NONE {
            self.negotiation = Some(Negotiation::new(t as u32));
            self.set_state(State::Security);
        } else if self.version == Version::V3_8 {
            // rfbproto §7.2.1: None has a SecurityResult from 3.8 on only.
            self.set_state(State::SecurityResult);
        } else {
            self.client_init(out);
        }
    }

    /// `State::Security`: one step of the VeNCrypt/ARD negotiation.
    fn security_step(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Option<usize>, RfbError> {
        let ctx = Ctx { cfg: &self.cfg.security, password: self.cfg.password.as_deref(), tls_up: self.tls_up };
        let Some(n) = self.negotiation.as_mut() else { return Err(proto("security negotiation missing")) };
        let Some((used, outcome)) = n.step(input, &ctx, out)? else { return Ok(None) };
        match outcome {
            Outcome::Continue => {}
            Outcome::StartTls => self.start_tls(out)?,
            Outcome::Ask(ev) => self.events.push_back(ev),
            Outcome::Done(next) => self.security_next(next),
        }
        Ok(Some(used))
    }

    #[cfg(feature = "tls")]
    fn start_tls(&mut self, out: &mut Vec<u8>) -> Result<(), RfbError> {
        let Some(trust) = &self.cfg.security.tls else {
            return Err(RfbError::Local("TLS without a certificate check configured".into()));
        };
        log::debug!("RFB: starting TLS with {}", trust.server_name);
        self.transport.start_tls(trust, out)
    }

    #[cfg(not(feature = "tls"))]
    fn start_tls(&mut self, _out: &mut Vec<u8>) -> Result<(), RfbError> {
        Err(RfbError::Unsupported("this wsvnc was built without the `tls` feature".into()))
    }

    /// The negotiation is done: continue with the standard states.
    fn security_next(&mut self, next: Next) {
        self.negotiation = None;
        match next {
            Next::VncAuth => self.set_state(State::VncChallenge),
            Next::SecurityResult => self.set_state(State::SecurityResult),
            Next::CredentialsSent => {
                self.sent = Sent::UserAndPassword;
                self.set_state(State::SecurityResult);
            }
        }
    }

    /// rfbproto §7.3.1 ClientInit: U8 shared-flag.
    fn client_init(&mut self, out: &mut Vec<u8>) {
        out.push(self.cfg.shared as u8);
        self.set_state(State::ServerInit);
    }

    fn begin_collect(&mut self, need: usize, then: Then) {
        // `need` was checked against a MAX_* limit by every caller.
        self.scratch.clear();
        self.scratch.reserve(need);
        self.set_state(State::Collect { need, then });
    }

    fn finish_collect(
        &mut self,
        then: Then,
        data: &[u8],
        fb: &mut Framebuffer,
        out: &mut Vec<u8>,
    ) -> Result<(), RfbError> {
        match then {
            Then::RefusedReason => Err(RfbError::Refused(text(data))),
            Then::AuthFailedReason => {
                let reason = text(data);
                Err(RfbError::AuthFailed(if reason.is_empty() { self.default_auth_failure(1) } else { reason }))
            }
            Then::ServerName { width, height } => {
                self.name = text(data);
                // rfbproto §7.5.1/§7.5.2: ask for our format and encodings
                // before any FramebufferUpdateRequest.
                let wanted = PixelFormat::wanted();
                wire::set_pixel_format(out, &wanted);
                wire::set_encodings(out, &self.cfg.encodings);
                self.px.format = wanted;
                fb.resize(width, height);
                self.normal = true;
                self.events.push_back(RfbEvent::Connected { width, height, name: self.name.clone() });
                self.set_state(State::Idle);
                Ok(())
            }
            Then::CutText => {
                self.events.push_back(RfbEvent::ServerCutText(latin1_lossy(data)));
                self.set_state(State::Idle);
                Ok(())
            }
            Then::ExtClipboard => {
                match self.clipboard.handle(data, out).map_err(|e| proto(e.0))? {
                    ext_clipboard::Incoming::Text(t) => self.events.push_back(RfbEvent::ServerCutText(t)),
                    ext_clipboard::Incoming::Nothing => {}
                }
                self.set_state(State::Idle);
                Ok(())
            }
            Then::Fence { flags } => {
                self.flow.server_fence(flags, data, out);
                self.set_state(State::Idle);
                Ok(())
            }
            Then::ColourMap { first } => {
                // rfbproto §7.6.2: U16 red, green, blue per entry; keep the top 8 bits.
                for (i, rgb) in data.chunks_exact(6).enumerate() {
                    let idx = first as usize + i;
                    if let Some(slot) = self.px.colour_map.get_mut(idx) {
                        *slot = [rgb[0], rgb[2], rgb[4], 255];
                    }
                }
                self.set_state(State::Idle);
                Ok(())
            }
            Then::Cursor | Then::XCursor | Then::VmwareCursor { .. } => {
                let r = self.rect;
                let rgba = match then {
                    Then::Cursor => cursor::rich_cursor(&self.px, r.w, r.h, data),
                    Then::XCursor => cursor::x_cursor(r.w, r.h, data),
                    Then::VmwareCursor { alpha: false } => cursor::vmware_classic(&self.px, r.w, r.h, data),
                    _ => data.to_vec(),
                };
                self.cursor_event(rgba);
                self.end_rect(fb, out)?;
                Ok(())
            }
            Then::Screens => {
                let r = self.rect;
                let (reason, status) = (r.x, r.y);
                if !(reason == 1 && status != 0) {
                    // A refusal's fields are undefined: keep the last layout.
                    self.screens.clear();
                    for s in data.chunks_exact(16) {
                        self.screens.push(Screen { id: be32(&s[0..4]), flags: be32(&s[12..16]) });
                    }
                }
                if !self.resize_supported {
                    self.resize_supported = true;
                    self.events.push_back(RfbEvent::ResizeSupported);
                }
                if reason == 1 && status != 0 {
                    // rfbproto §7.8.2: our SetDesktopSize was denied; "all
                    // remaining fields are undefined".
                    let why = match status {
                        1 => "resize is administratively prohibited".to_string(),
                        2 => "out of resources".to_string(),
                        3 => "invalid screen layout".to_string(),
                        s => format!("unknown error {s}"),
                    };
                    self.events.push_back(RfbEvent::ResizeRefused(why));
                } else {
                    self.resize(r.w, r.h, "ExtendedDesktopSize")?;
                }
                self.end_rect(fb, out)?;
                Ok(())
            }
            Then::DesktopName => {
                self.name = text(data);
                self.events.push_back(RfbEvent::DesktopName(self.name.clone()));
                self.end_rect(fb, out)?;
                Ok(())
            }
        }
    }

    /// Idle: the first bytes of a server message (rfbproto §7.6).
    fn message_start(&mut self, input: &[u8]) -> Result<Option<usize>, RfbError> {
        let Some(&t) = input.first() else { return Ok(None) };
        match t {
            0 => {
                // FramebufferUpdate: U8 type, padding, U16 number-of-rectangles.
                let Some(b) = input.get(..4) else { return Ok(None) };
                self.rects_left = be16(&b[2..4]);
                self.resized_in_update = false;
                if self.rects_left == 0 {
                    self.end_update();
                } else {
                    self.set_state(State::RectHeader);
                }
                Ok(Some(4))
            }
            1 => {
                // SetColourMapEntries: type, padding, U16 first, U16 count, count × 6.
                let Some(b) = input.get(..6) else { return Ok(None) };
                let (first, count) = (be16(&b[2..4]), be16(&b[4..6]));
                // At most 65535 × 6 bytes: bounded by the u16.
                self.begin_collect(count as usize * 6, Then::ColourMap { first });
                Ok(Some(6))
            }
            2 => {
                self.events.push_back(RfbEvent::Bell);
                Ok(Some(1))
            }
            3 => {
                // ServerCutText: type, 3 padding, U32 length, text. With the
                // Extended Clipboard the length is an S32: negative means
                // abs(length) bytes of the extended form follow.
                let Some(b) = input.get(..8) else { return Ok(None) };
                let len = be32(&b[4..8]);
                if (len as i32) < 0 && self.cfg.encodings.contains(&encoding::EXTENDED_CLIPBOARD) {
                    let n = (len as i32).unsigned_abs();
                    if n > MAX_EXT_CLIPBOARD {
                        log::warn!("RFB: skipping extended clipboard message of {n} bytes (limit {MAX_EXT_CLIPBOARD})");
                        self.set_state(State::Skip { left: n as usize, in_rect: false });
                    } else {
                        self.begin_collect(n as usize, Then::ExtClipboard);
                    }
                    return Ok(Some(8));
                }
                if len > MAX_CUT_TEXT {
                    return Err(proto(format!("ServerCutText of {len} bytes (limit {MAX_CUT_TEXT})")));
                }
                self.begin_collect(len as usize, Then::CutText);
                Ok(Some(8))
            }
            150 => {
                // EndOfContinuousUpdates: the type byte alone.
                self.flow.end_of_continuous_updates();
                Ok(Some(1))
            }
            248 => {
                // ServerFence: type, 3 padding, U32 flags, U8 length, payload.
                let Some(b) = input.get(..9) else { return Ok(None) };
                let (flags, len) = (be32(&b[4..8]), b[8] as usize);
                if len > continuous::MAX_FENCE_PAYLOAD {
                    // TigerVNC's viewer ignores such a fence; so do we.
                    log::warn!("RFB: ignoring a ServerFence with a {len}-byte payload (limit 64)");
                    self.set_state(State::Skip { left: len, in_rect: false });
                } else {
                    self.begin_collect(len, Then::Fence { flags });
                }
                Ok(Some(9))
            }
            // Messages have no length field: an unknown one cannot be skipped.
            t => Err(proto(format!("unknown server message type {t}"))),
        }
    }

    /// rfbproto §7.6.1 rectangle header: U16 x, y, w, h, S32 encoding.
    fn rect_header(
        &mut self,
        input: &[u8],
        fb: &mut Framebuffer,
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, RfbError> {
        let Some(b) = input.get(..12) else { return Ok(None) };
        let r = Rect::new(be16(&b[0..2]), be16(&b[2..4]), be16(&b[4..6]), be16(&b[6..8]));
        let enc = be32(&b[8..12]) as i32;
        self.rect = r;
        if enc != encoding::RAW && !self.cfg.encodings.contains(&enc) {
            return Err(proto(format!(
                "server sent encoding {enc} we did not ask for (rectangle {}x{}+{}+{})",
                r.w, r.h, r.x, r.y
            )));
        }
        match enc {
            encoding::DESKTOP_SIZE => {
                // rfbproto §7.8.2 (DesktopSize): x, y ignored; no data.
                self.resize(r.w, r.h, "DesktopSize")?;
                self.end_rect(fb, out)?;
            }
            encoding::LAST_RECT => {
                self.rects_left = 1;
                self.end_rect(fb, out)?;
            }
            encoding::EXTENDED_DESKTOP_SIZE => self.set_state(State::RectFixed(Fixed::ScreenCount)),
            encoding::DESKTOP_NAME => {
                self.set_state(State::LenPrefixed { max: MAX_NAME_LEN, what: "DesktopName", then: Then::DesktopName })
            }
            encoding::CURSOR => {
                // rfbproto §7.8.1: w*h pixels, then ((w+7)/8)*h bitmask bytes.
                let size = r.area() * self.px.format.bytes_per_pixel() + cursor::mask_stride(r.w) * r.h as usize;
                self.collect_cursor(size, Then::Cursor);
            }
            encoding::X_CURSOR => self.collect_cursor(cursor::x_cursor_len(r.w, r.h), Then::XCursor),
            encoding::VMWARE_CURSOR => self.set_state(State::RectFixed(Fixed::VmwareCursorType)),
            encoding::CURSOR_WITH_ALPHA => self.set_state(State::RectFixed(Fixed::AlphaCursorEncoding)),
            encoding::QEMU_LED_STATE => self.set_state(State::RectFixed(Fixed::LedState)),
            encoding::QEMU_EXTENDED_KEY_EVENT | encoding::EXTENDED_MOUSE_BUTTONS => {
                // Empty pseudo-rectangles: the server confirms the extension.
                if enc == encoding::QEMU_EXTENDED_KEY_EVENT {
                    self.qemu_keys = true;
                } else {
                    self.ext_buttons = true;
                }
                log::debug!("RFB: server confirmed pseudo-encoding {enc}");
                self.end_rect(fb, out)?;
            }
            _ => {
                // A real encoding: its pixels go into the framebuffer, at
                // the size announced so far in this update.
                self.apply_pending_size(fb, out)?;
                if !fb.contains(r) {
                    return Err(proto(format!(
                        "rectangle {}x{}+{}+{} (encoding {enc}) outside the {}x{} framebuffer",
                        r.w,
                        r.h,
                        r.x,
                        r.y,
                        fb.width(),
                        fb.height()
                    )));
                }
                if enc == encoding::COPY_RECT {
                    self.set_state(State::RectFixed(Fixed::CopyRect));
                } else {
                    let Some(dec) = self.decoders.get(enc) else {
                        return Err(proto(format!("server sent encoding {enc}, which wsvnc cannot decode")));
                    };
                    dec.start(r);
                    self.set_state(State::Decoding { enc });
                }
            }
        }
        Ok(Some(12))
    }

    /// A size rectangle: checked now, applied by [`Self::apply_pending_size`]
    /// (the last of a run of size rectangles wins: a hostile server's
    /// 200 alternating sizes cost one resize, not 200).
    fn resize(&mut self, w: u16, h: u16, what: &str) -> Result<(), RfbError> {
        check_size(w, h, what)?;
        self.pending_size = Some((w, h));
        Ok(())
    }

    /// Resize `fb` to the pending size, if it differs: at most once per
    /// FramebufferUpdate (no sane server changes the size twice in one
    /// update with pixels in between; allowing it would let one update
    /// reallocate and clear up to 256 MiB per rectangle).
    fn apply_pending_size(&mut self, fb: &mut Framebuffer, out: &mut Vec<u8>) -> Result<(), RfbError> {
        let Some((w, h)) = self.pending_size.take() else { return Ok(()) };
        if (w, h) == (fb.width(), fb.height()) {
            return Ok(());
        }
        if self.resized_in_update {
            return Err(proto(format!(
                "second framebuffer size ({w}x{h}) in one update, after pixels at {}x{}",
                fb.width(),
                fb.height()
            )));
        }
        self.resized_in_update = true;
        fb.resize(w, h);
        self.events.push_back(RfbEvent::Resized { width: w, height: h });
        if self.flow.active {
            // Continuous updates cover an area: make it the new screen
            // (as TigerVNC's CConnection::setExtendedDesktopSize does).
            self.flow.enable(fb.full_rect(), out);
        }
        Ok(())
    }

    /// A cursor shape of `size` bytes follows: gather it, or skip it if the
    /// cursor is over the size limit.
    fn collect_cursor(&mut self, size: usize, then: Then) {
        let r = self.rect;
        if r.w > MAX_CURSOR_DIM || r.h > MAX_CURSOR_DIM {
            log::warn!("RFB: skipping {}x{} cursor (limit {MAX_CURSOR_DIM})", r.w, r.h);
            self.set_state(State::Skip { left: size, in_rect: true });
        } else {
            self.begin_collect(size, then);
        }
    }

    /// rfbproto "VMware Cursor Pseudo-encoding": after U8 cursor-type and a
    /// padding byte, type 0 has AND and XOR masks (w·h PIXELs each), type 1
    /// w·h R,G,B,A.
    fn vmware_cursor(&mut self, kind: u8) -> Result<(), RfbError> {
        let area = self.rect.area();
        match kind {
            0 => self.collect_cursor(2 * area * self.px.format.bytes_per_pixel(), Then::VmwareCursor { alpha: false }),
            1 => self.collect_cursor(4 * area, Then::VmwareCursor { alpha: true }),
            t => return Err(proto(format!("VMware cursor of unknown type {t}"))),
        }
        Ok(())
    }

    /// rfbproto "Cursor With Alpha Pseudo-encoding": w·h R,G,B,A pixels
    /// (premultiplied) in encoding `enc`, decoded by the data decoders (their
    /// zlib streams are shared with data rectangles, as the spec says) into
    /// `cursor_fb`.
    fn alpha_cursor(&mut self, enc: i32) -> Result<(), RfbError> {
        let r = self.rect;
        let too_big = r.w > MAX_CURSOR_DIM || r.h > MAX_CURSOR_DIM;
        if enc == encoding::RAW && too_big {
            log::warn!("RFB: skipping {}x{} cursor (limit {MAX_CURSOR_DIM})", r.w, r.h);
            self.set_state(State::Skip { left: r.area() * 4, in_rect: true });
            return Ok(());
        }
        if too_big {
            return Err(proto(format!("{}x{} cursor with alpha (limit {MAX_CURSOR_DIM})", r.w, r.h)));
        }
        if enc != encoding::RAW && !self.cfg.encodings.contains(&enc) {
            return Err(proto(format!("cursor with alpha in encoding {enc}, which we did not ask for")));
        }
        let Some(dec) = self.decoders.get(enc) else {
            return Err(proto(format!("cursor with alpha in encoding {enc}, which wsvnc cannot decode")));
        };
        if (self.cursor_fb.width(), self.cursor_fb.height()) != (r.w, r.h) {
            self.cursor_fb.resize(r.w, r.h);
        }
        dec.start(Rect::new(0, 0, r.w, r.h));
        self.set_state(State::CursorDecoding { enc });
        Ok(())
    }

    fn finish_alpha_cursor(&mut self) {
        let mut rgba = self.cursor_fb.data().to_vec();
        cursor::unpremultiply(&mut rgba);
        self.cursor_event(rgba);
    }

    fn cursor_event(&mut self, rgba: Vec<u8>) {
        let r = self.rect;
        let (width, height) = if r.is_empty() { (0, 0) } else { (r.w, r.h) };
        let rgba = if r.is_empty() { Vec::new() } else { rgba };
        self.events.push_back(RfbEvent::Cursor { hot_x: r.x, hot_y: r.y, width, height, rgba });
    }

    /// The current rectangle is complete.
    fn end_rect(&mut self, fb: &mut Framebuffer, out: &mut Vec<u8>) -> Result<(), RfbError> {
        self.rects_left = self.rects_left.saturating_sub(1);
        if self.rects_left == 0 {
            self.apply_pending_size(fb, out)?;
            self.end_update();
        } else {
            self.set_state(State::RectHeader);
        }
        Ok(())
    }

    fn end_update(&mut self) {
        self.updates += 1;
        self.update_pending = false;
        self.events.push_back(RfbEvent::UpdateDone);
        self.set_state(State::Idle);
    }
}

/// rfbproto §7.1.1: "RFB xxx.yyy\n"; reply with the highest version we
/// support that is not above the server's (3.5 and other odd minors → 3.3,
/// Apple's 3.889 → 3.8; a major above 3 → 3.8).
fn parse_version(b: &[u8]) -> Result<Version, RfbError> {
    let bad = || proto(format!("not an RFB server: expected \"RFB xxx.yyy\\n\", got {:?}", String::from_utf8_lossy(b)));
    if &b[..4] != b"RFB " || b[7] != b'.' || b[11] != b'\n' {
        return Err(bad());
    }
    let num = |d: &[u8]| -> Option<u32> {
        d.iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32))
    };
    let (Some(major), Some(minor)) = (num(&b[4..7]), num(&b[8..11])) else { return Err(bad()) };
    match (major, minor) {
        (3, 8..) | (4.., _) => Ok(Version::V3_8),
        (3, 7) => Ok(Version::V3_7),
        (3, 3..=6) => Ok(Version::V3_3),
        _ => Err(RfbError::Unsupported(format!("RFB protocol version {major}.{minor}"))),
    }
}

fn check_size(w: u16, h: u16, what: &str) -> Result<(), RfbError> {
    if w as usize * h as usize > MAX_FB_PIXELS {
        return Err(proto(format!("{what} framebuffer size {w}x{h} exceeds the limit of {MAX_FB_PIXELS} pixels")));
    }
    Ok(())
}

/// Server strings whose charset rfbproto leaves open (names, reasons):
/// UTF-8 when valid (TigerVNC sends UTF-8), else Latin-1.
fn text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => latin1_lossy(b),
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
