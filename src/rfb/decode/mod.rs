//! Rectangle decoders, one file per encoding behind one trait (rfbproto §7.7).
//!
//! OWNED BY: the decoders work. The trait and `Step` are the contract with
//! `rfb::client`; change them only together.
//!
//! Contract:
//! * The client reads the rectangle header (x, y, w, h, encoding), checks the
//!   rectangle lies inside the framebuffer, calls [`Decoder::start`], then
//!   calls [`Decoder::decode`] with all bytes buffered so far (beyond what
//!   earlier calls consumed) until it returns `Step::Done`.
//! * A decoder consumes only whole units (a row, a tile, a chunk of
//!   compressed data it has fed to its inflater) and reports how many bytes
//!   it used; `Step::Partial(0)` with no progress means "need more bytes".
//!   It never rewinds: bytes reported consumed are gone.
//! * Every length read off the wire is checked against a limit before memory
//!   is reserved; inflated output is capped; every write to the framebuffer
//!   goes through its bounds-checked methods. Bad data → `DecodeError`,
//!   never a panic.
//! * Per-connection state (zlib streams) lives in the decoder for the whole
//!   RFB connection; per-rectangle state is reset by `start`.

use crate::fb::{Framebuffer, Rect};
use crate::rfb::PixelFormat;

/// Outcome of one `decode` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The rectangle is complete; this many input bytes were used.
    Done(usize),
    /// Not complete yet; this many input bytes were used (possibly 0).
    Partial(usize),
}

/// The server broke the encoding's rules (or exceeded a limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub encoding: &'static str,
    pub reason: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad {} data from VNC server: {}", self.encoding, self.reason)
    }
}

impl std::error::Error for DecodeError {}

/// What decoders need besides the bytes: how pixels are encoded on the wire.
pub struct PixelContext {
    pub format: PixelFormat,
    /// RGBA for each colour-map index (rfbproto §7.6.2), for servers that
    /// refuse true colour.
    pub colour_map: Box<[[u8; 4]; 256]>,
}

/// One encoding's decoder.
pub trait Decoder {
    /// Begin a new rectangle (already checked to be inside the framebuffer).
    fn start(&mut self, rect: Rect);
    /// Decode as much of the current rectangle as `input` allows.
    fn decode(
        &mut self,
        input: &[u8],
        px: &PixelContext,
        fb: &mut Framebuffer,
    ) -> Result<Step, DecodeError>;
}
