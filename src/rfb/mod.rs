//! The RFB (VNC) client, sans-IO: bytes in, bytes and events out.
//! Spec: rfbproto (`rfbproto/rfbproto`, `rfbproto.rst`).
//!
//! OWNED BY: the rfb-client work (client.rs, auth.rs, messages) and the
//! decoders work (decode/*, pixel.rs). The types below are the contract
//! between them and the gateway; change them only together.

pub mod auth;
pub mod client;
pub mod decode;
pub mod pixel;
pub mod security;
mod transport;

pub use client::{RfbClient, RfbConfig, RfbError, RfbEvent};
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
    pub const DESKTOP_NAME: i32 = -307;
    pub const EXTENDED_DESKTOP_SIZE: i32 = -308;
}
