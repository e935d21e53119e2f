//! JPEG encoding (jpeg-encoder) and, with the `vnc-jpeg` feature, decoding
//! (zune-jpeg) behind non-generic functions, so that the codecs' generic
//! code (generic over the writer or the byte source: colour conversion,
//! DCT, Huffman coding) is compiled here at opt-level 3 rather than in
//! wsvnc at "z" (1.4× slower there: benches/README.md "Size levers").

use jpeg_encoder::{ChromaSubsamplingMethod, ColorType, Encoder};

/// Append a baseline JFIF of the `w`×`h` 4-byte pixels in `rgbx` (tightly
/// packed, X ignored) at `quality` (1..=100) to `out`: Huffman tables
/// optimised for the image when `optimise_tables` (a second pass), else the
/// standard ones (ITU T.81 Annex K.3); chroma box-averaged where the encoder
/// subsamples it (4:2:0 below quality 90). False (and `out` as it was) when
/// the encoder refuses the input (a zero or too large size, a short buffer).
pub fn encode_rgbx(rgbx: &[u8], w: u16, h: u16, quality: u8, optimise_tables: bool, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let mut enc = Encoder::new(&mut *out, quality);
    enc.set_optimized_huffman_tables(optimise_tables);
    enc.set_chroma_subsampling_method(ChromaSubsamplingMethod::Average);
    if enc.encode(rgbx, w, h, ColorType::Rgba).is_err() {
        out.truncate(start);
        return false;
    }
    true
}

/// Decode the JFIF `data` into `out` as `w × h` RGBA (alpha 255), reusing
/// `out`. The image must have exactly that size: its dimensions are checked
/// from the headers before `out` is sized, and the decoder's own limits are
/// set to them too.
#[cfg(feature = "vnc-jpeg")]
pub fn decode_rgba(data: &[u8], w: u16, h: u16, out: &mut Vec<u8>) -> Result<(), String> {
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    use zune_jpeg::JpegDecoder;

    let opts = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGBA)
        .set_max_width(w as usize)
        .set_max_height(h as usize);
    let mut d = JpegDecoder::new_with_options(ZCursor::new(data), opts);
    d.decode_headers().map_err(|e| format!("JPEG: {e:?}"))?;
    let dims = d.dimensions();
    if dims != Some((w as usize, h as usize)) {
        return Err(format!("JPEG image of {dims:?} pixels in a {w}x{h} rectangle"));
    }
    let size = w as usize * h as usize * 4;
    if d.output_buffer_size() != Some(size) {
        return Err(format!("JPEG decodes to {:?} bytes, not RGBA", d.output_buffer_size()));
    }
    out.clear();
    out.resize(size, 0);
    d.decode_into(out).map_err(|e| format!("JPEG: {e:?}"))?;
    Ok(())
}
