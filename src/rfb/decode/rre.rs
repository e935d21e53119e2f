//! Placeholder.
use super::{DecodeError, Decoder, PixelContext, Step};
use crate::fb::{Framebuffer, Rect};

#[derive(Default)]
pub struct Rre;

impl Decoder for Rre {
    fn start(&mut self, _rect: Rect) {}
    fn decode(&mut self, _i: &[u8], _p: &PixelContext, _f: &mut Framebuffer) -> Result<Step, DecodeError> {
        Err(DecodeError { encoding: "Rre", reason: "not implemented yet".into() })
    }
}
