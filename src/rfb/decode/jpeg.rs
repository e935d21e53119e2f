//! The JPEG image of a Tight JpegCompression rectangle (rfbproto §7.7.7:
//! "The jpeg-data is a JFIF stream") → RGBA, with `zune-jpeg`.
//!
//! The image must have exactly the rectangle's size; its dimensions are
//! checked from the headers before any pixel buffer is sized, and the
//! decoder's own limits are set to them too.

//!
//! Without the `vnc-jpeg` feature there is no decoder: `--vnc-jpeg` is
//! refused when the options are read, so JPEG is never advertised and a
//! server that sends it anyway is refused by the Tight decoder
//! ("JPEG not advertised") before this is reached.

#[cfg(feature = "vnc-jpeg")]
use zune_core::bytestream::ZCursor;
#[cfg(feature = "vnc-jpeg")]
use zune_core::colorspace::ColorSpace;
#[cfg(feature = "vnc-jpeg")]
use zune_core::options::DecoderOptions;
#[cfg(feature = "vnc-jpeg")]
use zune_jpeg::JpegDecoder;

/// Without a decoder: never reached (see the module doc), an error if it is.
#[cfg(not(feature = "vnc-jpeg"))]
pub fn decode_rgba(_data: &[u8], _w: u16, _h: u16, _out: &mut Vec<u8>) -> Result<(), String> {
    Err("JPEG: built without the vnc-jpeg feature".into())
}

/// Decode `data` into `out` as `w × h` RGBA (alpha 255), reusing `out`.
#[cfg(feature = "vnc-jpeg")]
pub fn decode_rgba(data: &[u8], w: u16, h: u16, out: &mut Vec<u8>) -> Result<(), String> {
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
