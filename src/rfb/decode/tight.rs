//! Placeholder.
use super::{DecodeError, Decoder, PixelContext, Step};
use crate::fb::{Framebuffer, Rect};

#[derive(Default)]
pub struct Tight;

impl Decoder for Tight {
    fn start(&mut self, _rect: Rect) {}
    fn decode(&mut self, _i: &[u8], _p: &PixelContext, _f: &mut Framebuffer) -> Result<Step, DecodeError> {
        Err(DecodeError { encoding: "Tight", reason: "not implemented yet".into() })
    }
}
