//! Placeholder.
use super::{DecodeError, Decoder, PixelContext, Step};
use crate::fb::{Framebuffer, Rect};

#[derive(Default)]
pub struct Zlib;

impl Decoder for Zlib {
    fn start(&mut self, _rect: Rect) {}
    fn decode(&mut self, _i: &[u8], _p: &PixelContext, _f: &mut Framebuffer) -> Result<Step, DecodeError> {
        Err(DecodeError { encoding: "Zlib", reason: "not implemented yet".into() })
    }
}
