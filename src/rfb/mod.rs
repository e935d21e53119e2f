//! The RFB (VNC) client, sans-IO: bytes in, bytes and events out.
//! Spec: rfbproto (`rfbproto/rfbproto`, `rfbproto.rst`).
//!
//! `client` is the protocol state machine (handshake, then the normal
//! phase's messages and pseudo-encodings), `decode` one decoder per
//! encoding, `pixel` pixel-format conversion, `scancodes` the browser's
//! `KeyboardEvent.code` → XT scancode table for QEMU extended key events.
//! The types re-exported below are the contract with the gateway.

pub mod auth;
pub mod client;
pub mod decode;
pub mod pixel;
pub mod scancodes;
pub mod security;
mod transport;

pub use client::{RfbClient, RfbConfig, RfbError, RfbEvent, PSEUDO_ENCODINGS};
pub use pixel::PixelFormat;

/// Encoding numbers (rfbproto §7.7, §7.8). Open set: unknown values are kept as-is.
pub mod encoding {
    pub const RAW: i32 = 0;
    pub const COPY_RECT: i32 = 1;
    pub const RRE: i32 = 2;
    pub const HEXTILE: i32 = 5;
    pub const ZLIB: i32 = 6;
    pub const TIGHT: i32 = 7;
    pub const ZRLE: i32 = 16;
    pub const DESKTOP_SIZE: i32 = -223;
    pub const LAST_RECT: i32 = -224;
    pub const CURSOR: i32 = -239;
    pub const X_CURSOR: i32 = -240;
    pub const QEMU_EXTENDED_KEY_EVENT: i32 = -258;
    pub const QEMU_LED_STATE: i32 = -261;
    pub const DESKTOP_NAME: i32 = -307;
    pub const EXTENDED_DESKTOP_SIZE: i32 = -308;
    pub const FENCE: i32 = -312;
    pub const CONTINUOUS_UPDATES: i32 = -313;
    pub const CURSOR_WITH_ALPHA: i32 = -314;
    pub const EXTENDED_MOUSE_BUTTONS: i32 = -316;
    /// JPEG quality levels 0 (-32, smallest) ..= 9 (-23, best) (rfbproto
    /// "JPEG Quality Level Pseudo-encoding"): advertising one lets a Tight
    /// server send JpegCompression rectangles.
    pub const JPEG_QUALITY_0: i32 = -32;
    pub const JPEG_QUALITY_9: i32 = -23;
    pub const VMWARE_CURSOR: i32 = 0x574d_5664;
    pub const EXTENDED_CLIPBOARD: i32 = 0xc0a1_e5ce_u32 as i32;
}
