//! The JPEG image of a Tight JpegCompression rectangle (rfbproto §7.7.7:
//! "The jpeg-data is a JFIF stream") → RGBA, with `zune-jpeg` (called in
//! src/kernels/jpeg.rs, which compiles it at opt-level 3).
//!
//! The image must have exactly the rectangle's size; its dimensions are
//! checked from the headers before any pixel buffer is sized, and the
//! decoder's own limits are set to them too.
//!
//! Without the `vnc-jpeg` feature there is no decoder: `--vnc-jpeg` is
//! refused when the options are read, so JPEG is never advertised and a
//! server that sends it anyway is refused by the Tight decoder
//! ("JPEG not advertised") before this is reached.

/// Without a decoder: never reached (see the module doc), an error if it is.
#[cfg(not(feature = "vnc-jpeg"))]
pub fn decode_rgba(_data: &[u8], _w: u16, _h: u16, _out: &mut Vec<u8>) -> Result<(), String> {
    Err("JPEG: built without the vnc-jpeg feature".into())
}

/// Decode `data` into `out` as `w × h` RGBA (alpha 255), reusing `out`
/// (zune-jpeg, in src/kernels/jpeg.rs).
#[cfg(feature = "vnc-jpeg")]
pub use wsvnc_kernels::jpeg::decode_rgba;
