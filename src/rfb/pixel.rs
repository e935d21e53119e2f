//! PIXEL_FORMAT (rfbproto §7.4) and conversion of wire pixels to RGBA.
//!
//! OWNED BY: the decoders work. Contract used by the client and gateway:
//! `PixelFormat::wanted()`, `parse`, `write`, `bytes_per_pixel`, `to_rgba`.

/// The 16-byte PIXEL_FORMAT structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    pub bits_per_pixel: u8,
    pub depth: u8,
    pub big_endian: bool,
    pub true_colour: bool,
    pub red_max: u16,
    pub green_max: u16,
    pub blue_max: u16,
    pub red_shift: u8,
    pub green_shift: u8,
    pub blue_shift: u8,
}

impl PixelFormat {
    /// What wsvnc asks for: 32 bpp, depth 24, little-endian, shifts 0/8/16,
    /// so a pixel's bytes are already canvas R,G,B order.
    pub const fn wanted() -> Self {
        PixelFormat {
            bits_per_pixel: 32,
            depth: 24,
            big_endian: false,
            true_colour: true,
            red_max: 255,
            green_max: 255,
            blue_max: 255,
            red_shift: 0,
            green_shift: 8,
            blue_shift: 16,
        }
    }

    /// Parse the 16-byte wire form (3 padding bytes ignored).
    pub fn parse(b: &[u8; 16]) -> Self {
        PixelFormat {
            bits_per_pixel: b[0],
            depth: b[1],
            big_endian: b[2] != 0,
            true_colour: b[3] != 0,
            red_max: u16::from_be_bytes([b[4], b[5]]),
            green_max: u16::from_be_bytes([b[6], b[7]]),
            blue_max: u16::from_be_bytes([b[8], b[9]]),
            red_shift: b[10],
            green_shift: b[11],
            blue_shift: b[12],
        }
    }

    /// Append the 16-byte wire form.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.bits_per_pixel, self.depth, self.big_endian as u8, self.true_colour as u8]);
        out.extend_from_slice(&self.red_max.to_be_bytes());
        out.extend_from_slice(&self.green_max.to_be_bytes());
        out.extend_from_slice(&self.blue_max.to_be_bytes());
        out.extend_from_slice(&[self.red_shift, self.green_shift, self.blue_shift, 0, 0, 0]);
    }

    pub fn bytes_per_pixel(&self) -> usize {
        (self.bits_per_pixel as usize).div_ceil(8)
    }
}

impl PixelFormat {
    /// Convert one wire pixel (`bytes_per_pixel()` bytes, fewer → missing
    /// bytes read as 0) to RGBA. Colour-mapped formats look the value up in
    /// `colour_map` (rfbproto §7.6.2; values above 255 wrap, our map has 256
    /// entries). For batches use [`PixelReader`], which is much faster.
    pub fn to_rgba(&self, wire: &[u8], colour_map: &[[u8; 4]; 256]) -> [u8; 4] {
        PixelReader::new(self, colour_map).rgba(wire)
    }

    /// The pixel format of CursorWithAlpha data (rfbproto "Cursor With Alpha
    /// Pseudo-encoding": "always 32 bits with 8 bits for each channel in the
    /// order red, green, blue, alpha"): bytes R,G,B,A. Depth 32 is what marks
    /// the fourth byte as alpha (kept by [`PixelReader`]), not padding.
    pub const fn rgba_with_alpha() -> Self {
        PixelFormat { depth: 32, ..Self::wanted() }
    }

    /// Whether pixels are exactly canvas R,G,B,x bytes (the fast path).
    fn is_rgbx(&self) -> bool {
        self.true_colour
            && self.bits_per_pixel == 32
            && self.red_max == 255
            && self.green_max == 255
            && self.blue_max == 255
            && rgb_byte_offsets(self) == Some([0, 1, 2])
    }

    /// Component shifts as byte offsets inside the 4 wire bytes of a 32 bpp
    /// 8-bit-per-component pixel, if every component is a whole byte.
    fn byte_offsets_888(&self) -> Option<[usize; 3]> {
        if self.true_colour
            && self.bits_per_pixel == 32
            && self.red_max == 255
            && self.green_max == 255
            && self.blue_max == 255
        {
            rgb_byte_offsets(self)
        } else {
            None
        }
    }

    /// Largest pixel value the colour bits can make (true colour only).
    fn max_pixel(&self) -> u64 {
        (self.red_max as u64).checked_shl(self.red_shift as u32).unwrap_or(0)
            | (self.green_max as u64).checked_shl(self.green_shift as u32).unwrap_or(0)
            | (self.blue_max as u64).checked_shl(self.blue_shift as u32).unwrap_or(0)
    }

    /// Where a 3-byte CPIXEL (rfbproto §7.7.6 ZRLE) goes inside the 4 wire
    /// bytes of a PIXEL, or `None` when CPIXEL == PIXEL.
    ///
    /// "CPIXEL is the same as PIXEL except where true-colour-flag is non-zero,
    /// bits-per-pixel is 32, depth is 24 or less and all of the bits making up
    /// the red, green and blue intensities fit in either the least significant
    /// 3 bytes or the most significant 3 bytes ... By convention, the three
    /// least significant bytes are used when both would cover the used bits."
    /// The least significant bytes are the first three wire bytes when
    /// little-endian and the last three when big-endian.
    pub fn cpixel_layout(&self) -> Option<Pad> {
        if !(self.true_colour && self.bits_per_pixel == 32 && self.depth <= 24) {
            return None;
        }
        let max = self.max_pixel();
        let fits_ls3 = max < (1 << 24);
        let fits_ms3 = max & 0xff == 0 && max < (1 << 32);
        match (fits_ls3, fits_ms3, self.big_endian) {
            (true, _, false) => Some(Pad::Back),
            (true, _, true) => Some(Pad::Front),
            (false, true, false) => Some(Pad::Front),
            (false, true, true) => Some(Pad::Back),
            _ => None,
        }
    }

    /// Bytes in a CPIXEL (ZRLE, rfbproto §7.7.6).
    pub fn bytes_per_cpixel(&self) -> usize {
        if self.cpixel_layout().is_some() {
            3
        } else {
            self.bytes_per_pixel()
        }
    }

    /// Whether a Tight TPIXEL is 3 bytes R,G,B (true colour, 32 bpp, depth 24,
    /// every component 8 bits in its own byte), as TigerVNC's and
    /// libvncserver's Tight coders do; otherwise TPIXEL == PIXEL.
    pub fn tpixel_is_rgb(&self) -> bool {
        self.depth == 24 && self.byte_offsets_888().is_some()
    }

    /// Bytes in a Tight TPIXEL.
    pub fn bytes_per_tpixel(&self) -> usize {
        if self.tpixel_is_rgb() {
            3
        } else {
            self.bytes_per_pixel()
        }
    }
}

/// For a 32 bpp format with 8-bit components on byte boundaries: the wire
/// byte offset of R, G and B.
fn rgb_byte_offsets(pf: &PixelFormat) -> Option<[usize; 3]> {
    let off = |shift: u8| -> Option<usize> {
        if !shift.is_multiple_of(8) || shift > 24 {
            return None;
        }
        let lsb_index = (shift / 8) as usize; // 0 = least significant byte
        Some(if pf.big_endian { 3 - lsb_index } else { lsb_index })
    };
    Some([off(pf.red_shift)?, off(pf.green_shift)?, off(pf.blue_shift)?])
}

/// Which wire byte a 3-byte compressed pixel leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pad {
    /// The CPIXEL is wire bytes 0..3 of the PIXEL (byte 3 is zero).
    Back,
    /// The CPIXEL is wire bytes 1..4 of the PIXEL (byte 0 is zero).
    Front,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// 4 bytes already R,G,B,x: copy, set alpha.
    Rgbx,
    /// 4 bytes R,G,B,A ([`PixelFormat::rgba_with_alpha`]): copied as they are.
    Rgba,
    /// 3 bytes R,G,B.
    Rgb,
    /// 4 wire bytes with 8-bit components at these offsets.
    Bytes4([usize; 3]),
    /// 3 bytes that are a 4-byte pixel with one byte dropped.
    Packed3(Pad),
    /// Any true-colour format, `bytes` wide.
    Generic,
    /// Colour map index (any width; wraps at 256).
    Map,
}

/// A precomputed wire-pixel → RGBA converter for one pixel format, in one of
/// three flavours: PIXEL, ZRLE CPIXEL, Tight TPIXEL. Cheap to build (no
/// allocation); build one per `decode` call.
#[derive(Clone, Copy)]
pub struct PixelReader<'a> {
    kind: Kind,
    bytes: usize,
    big_endian: bool,
    shift: [u32; 3],
    max: [u32; 3],
    map: &'a [[u8; 4]; 256],
}

impl<'a> PixelReader<'a> {
    /// Reader for PIXEL values.
    pub fn new(pf: &PixelFormat, map: &'a [[u8; 4]; 256]) -> Self {
        let kind = if !pf.true_colour {
            Kind::Map
        } else if pf.is_rgbx() && pf.depth == 32 {
            Kind::Rgba
        } else if pf.is_rgbx() {
            Kind::Rgbx
        } else if let Some(o) = pf.byte_offsets_888() {
            Kind::Bytes4(o)
        } else {
            Kind::Generic
        };
        Self::with_kind(pf, map, kind, pf.bytes_per_pixel().max(1))
    }

    /// Reader for ZRLE CPIXEL values (rfbproto §7.7.6).
    pub fn cpixel(pf: &PixelFormat, map: &'a [[u8; 4]; 256]) -> Self {
        match pf.cpixel_layout() {
            None => Self::new(pf, map),
            Some(pad) => {
                // Fast path: the 3 bytes are already R,G,B.
                let kind = match (pad, pf.byte_offsets_888()) {
                    (Pad::Back, Some([0, 1, 2])) => Kind::Rgb,
                    (Pad::Front, Some([1, 2, 3])) => Kind::Rgb,
                    _ => Kind::Packed3(pad),
                };
                Self::with_kind(pf, map, kind, 3)
            }
        }
    }

    /// Reader for Tight TPIXEL values.
    pub fn tpixel(pf: &PixelFormat, map: &'a [[u8; 4]; 256]) -> Self {
        if pf.tpixel_is_rgb() {
            Self::with_kind(pf, map, Kind::Rgb, 3)
        } else {
            Self::new(pf, map)
        }
    }

    fn with_kind(pf: &PixelFormat, map: &'a [[u8; 4]; 256], kind: Kind, bytes: usize) -> Self {
        PixelReader {
            kind,
            bytes: bytes.min(4),
            big_endian: pf.big_endian,
            shift: [pf.red_shift as u32, pf.green_shift as u32, pf.blue_shift as u32],
            max: [pf.red_max as u32, pf.green_max as u32, pf.blue_max as u32],
            map,
        }
    }

    /// Bytes per wire pixel for this reader.
    #[inline]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether wire pixels are 3 bytes R, G, B (Tight TPIXEL, ZRLE CPIXEL
    /// fast path): `components` are then the bytes themselves.
    #[inline]
    pub fn is_rgb(&self) -> bool {
        matches!(self.kind, Kind::Rgb)
    }

    /// The wire value as an integer (for `Generic`, `Map` and `Packed3`).
    #[inline]
    fn value(&self, b: &[u8]) -> u32 {
        let mut w = [0u8; 4];
        match self.kind {
            Kind::Packed3(Pad::Back) => w[..3].copy_from_slice(&b[..3]),
            Kind::Packed3(Pad::Front) => w[1..].copy_from_slice(&b[..3]),
            _ => {
                let n = self.bytes.min(b.len());
                // Right-align big-endian values, left-align little-endian ones.
                if self.big_endian {
                    w[4 - n..].copy_from_slice(&b[..n]);
                } else {
                    w[..n].copy_from_slice(&b[..n]);
                }
                return if self.big_endian { u32::from_be_bytes(w) } else { u32::from_le_bytes(w) };
            }
        }
        if self.big_endian {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        }
    }

    /// Raw component values (0..=max) of a true-colour pixel.
    #[inline]
    pub fn components(&self, b: &[u8]) -> [u32; 3] {
        match self.kind {
            Kind::Rgbx | Kind::Rgba | Kind::Rgb => [b[0] as u32, b[1] as u32, b[2] as u32],
            Kind::Bytes4(o) => [b[o[0]] as u32, b[o[1]] as u32, b[o[2]] as u32],
            _ => {
                let v = self.value(b);
                let c = |i: usize| v.checked_shr(self.shift[i]).unwrap_or(0) & self.max[i];
                [c(0), c(1), c(2)]
            }
        }
    }

    /// Component maxima (255 for the byte-oriented kinds).
    #[inline]
    pub fn maxima(&self) -> [u32; 3] {
        match self.kind {
            Kind::Rgbx | Kind::Rgba | Kind::Rgb | Kind::Bytes4(_) => [255; 3],
            _ => self.max,
        }
    }

    /// Components (as from [`PixelReader::components`]) scaled to RGBA.
    #[inline]
    pub fn scale(&self, c: [u32; 3]) -> [u8; 4] {
        let m = self.maxima();
        [scale8(c[0], m[0]), scale8(c[1], m[1]), scale8(c[2], m[2]), 255]
    }

    /// One wire pixel (at least `bytes()` bytes) → RGBA.
    #[inline]
    pub fn rgba(&self, b: &[u8]) -> [u8; 4] {
        match self.kind {
            Kind::Rgbx | Kind::Rgb => [b[0], b[1], b[2], 255],
            Kind::Rgba => [b[0], b[1], b[2], b[3]],
            Kind::Bytes4(o) => [b[o[0]], b[o[1]], b[o[2]], 255],
            Kind::Map => {
                let v = self.value(b);
                let mut c = self.map[(v & 0xff) as usize];
                c[3] = 255;
                c
            }
            Kind::Generic | Kind::Packed3(_) => self.scale(self.components(b)),
        }
    }

    /// Convert `dst.len() / 4` pixels from `src` (which must hold that many
    /// wire pixels) into RGBA `dst`.
    pub fn row(&self, src: &[u8], dst: &mut [u8]) {
        let n = dst.len() / 4;
        debug_assert!(src.len() >= n * self.bytes);
        match self.kind {
            Kind::Rgbx => wsvnc_kernels::rgbx_opaque(&src[..n * 4], &mut dst[..n * 4]),
            Kind::Rgba => dst[..n * 4].copy_from_slice(&src[..n * 4]),
            Kind::Rgb => wsvnc_kernels::rgb_to_rgbx(&src[..n * 3], &mut dst[..n * 4]),
            _ => {
                for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(self.bytes)) {
                    d.copy_from_slice(&self.rgba(s));
                }
            }
        }
    }
}

/// Scale a component in 0..=max to 0..=255 (rounded).
#[inline]
fn scale8(c: u32, max: u32) -> u8 {
    match max {
        0 => 0,
        255 => c as u8,
        _ => ((c.min(max) * 255 + max / 2) / max) as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> Box<[[u8; 4]; 256]> {
        let mut m = Box::new([[0u8, 0, 0, 255]; 256]);
        m[7] = [10, 20, 30, 255];
        m
    }

    const RGB565_BE: PixelFormat = PixelFormat { big_endian: true, ..crate::rfb::decode::testutil::RGB565_LE };

    #[test]
    fn cursor_alpha_format_keeps_the_fourth_byte() {
        let pf = PixelFormat::rgba_with_alpha();
        let m = map();
        for r in [PixelReader::new(&pf, &m), PixelReader::cpixel(&pf, &m), PixelReader::tpixel(&pf, &m)] {
            assert!(matches!(r.kind, Kind::Rgba));
            assert_eq!(r.bytes(), 4);
            assert_eq!(r.rgba(&[1, 2, 3, 77]), [1, 2, 3, 77]);
            let mut out = [0u8; 8];
            r.row(&[1, 2, 3, 0, 4, 5, 6, 99], &mut out);
            assert_eq!(out, [1, 2, 3, 0, 4, 5, 6, 99]);
        }
    }

    #[test]
    fn wanted_round_trips_and_is_fast_path() {
        let pf = PixelFormat::wanted();
        let mut v = Vec::new();
        pf.write(&mut v);
        assert_eq!(v, [32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16, 0, 0, 0]);
        assert_eq!(PixelFormat::parse(&v.try_into().unwrap()), pf);
        let m = map();
        let r = PixelReader::new(&pf, &m);
        assert!(matches!(r.kind, Kind::Rgbx));
        let mut out = [0u8; 8];
        r.row(&[1, 2, 3, 0, 4, 5, 6, 99], &mut out);
        assert_eq!(out, [1, 2, 3, 255, 4, 5, 6, 255]);
        assert_eq!(pf.bytes_per_cpixel(), 3);
        assert_eq!(pf.bytes_per_tpixel(), 3);
        assert!(matches!(PixelReader::cpixel(&pf, &m).kind, Kind::Rgb));
    }

    #[test]
    fn rgb565_big_endian() {
        let m = map();
        // red=31, green=0, blue=0 → 0xF800
        assert_eq!(RGB565_BE.to_rgba(&[0xF8, 0x00], &m), [255, 0, 0, 255]);
        // green=63 → 0x07E0
        assert_eq!(RGB565_BE.to_rgba(&[0x07, 0xE0], &m), [0, 255, 0, 255]);
        // blue=16 → 16*255/31 = 131.6 → 132
        assert_eq!(RGB565_BE.to_rgba(&[0x00, 0x10], &m), [0, 0, 132, 255]);
        assert_eq!(RGB565_BE.bytes_per_cpixel(), 2);
        assert_eq!(RGB565_BE.bytes_per_tpixel(), 2);
        let mut le = RGB565_BE;
        le.big_endian = false;
        assert_eq!(le.to_rgba(&[0x00, 0xF8], &m), [255, 0, 0, 255]);
    }

    #[test]
    fn colour_map_8bpp() {
        let pf = PixelFormat { true_colour: false, bits_per_pixel: 8, depth: 8, ..PixelFormat::wanted() };
        assert_eq!(pf.to_rgba(&[7], &map()), [10, 20, 30, 255]);
        assert_eq!(pf.to_rgba(&[8], &map()), [0, 0, 0, 255]);
        assert_eq!(pf.bytes_per_cpixel(), 1);
    }

    #[test]
    fn bgr_and_big_endian_32bpp() {
        let m = map();
        // X server default: shifts 16/8/0 little-endian → wire B,G,R,x.
        let bgrx = PixelFormat { red_shift: 16, blue_shift: 0, ..PixelFormat::wanted() };
        assert_eq!(bgrx.to_rgba(&[3, 2, 1, 0], &m), [1, 2, 3, 255]);
        assert_eq!(bgrx.cpixel_layout(), Some(Pad::Back));
        assert!(bgrx.tpixel_is_rgb());
        // Big-endian 16/8/0: wire x,R,G,B; CPIXEL is the last three bytes.
        let be = PixelFormat { big_endian: true, ..bgrx };
        assert_eq!(be.to_rgba(&[0, 1, 2, 3], &m), [1, 2, 3, 255]);
        assert_eq!(be.cpixel_layout(), Some(Pad::Front));
        let cr = PixelReader::cpixel(&be, &m);
        assert!(matches!(cr.kind, Kind::Rgb));
        assert_eq!(cr.rgba(&[1, 2, 3]), [1, 2, 3, 255]);
        // Colours in the top three bytes, little-endian: shifts 8/16/24.
        let hi = PixelFormat { red_shift: 8, green_shift: 16, blue_shift: 24, ..PixelFormat::wanted() };
        assert_eq!(hi.cpixel_layout(), Some(Pad::Front));
        assert_eq!(hi.to_rgba(&[0, 1, 2, 3], &m), [1, 2, 3, 255]);
        assert_eq!(PixelReader::cpixel(&hi, &m).rgba(&[1, 2, 3]), [1, 2, 3, 255]);
        // Top three bytes, big-endian: CPIXEL is the first three wire bytes.
        let hibe = PixelFormat { big_endian: true, ..hi };
        assert_eq!(hibe.cpixel_layout(), Some(Pad::Back));
        assert_eq!(hibe.to_rgba(&[3, 2, 1, 0], &m), [1, 2, 3, 255]);
        assert_eq!(PixelReader::cpixel(&hibe, &m).rgba(&[3, 2, 1]), [1, 2, 3, 255]);
        // 10-bit components (depth 30) → no CPIXEL packing.
        let deep = PixelFormat {
            depth: 30,
            red_max: 1023,
            green_max: 1023,
            blue_max: 1023,
            red_shift: 20,
            green_shift: 10,
            blue_shift: 0,
            ..PixelFormat::wanted()
        };
        assert_eq!(deep.cpixel_layout(), None);
        assert_eq!(deep.bytes_per_cpixel(), 4);
        assert_eq!(deep.to_rgba(&(1023u32 << 20).to_le_bytes(), &m), [255, 0, 0, 255]);
    }

    #[test]
    fn packed3_generic_cpixel() {
        let m = map();
        // depth 16 in 32 bpp, RGB565 in the low bytes, little-endian.
        let pf = PixelFormat { bits_per_pixel: 32, big_endian: false, ..RGB565_BE };
        assert_eq!(pf.cpixel_layout(), Some(Pad::Back));
        let r = PixelReader::cpixel(&pf, &m);
        assert_eq!(r.bytes(), 3);
        assert_eq!(r.rgba(&[0x00, 0xF8, 0x00]), [255, 0, 0, 255]);
    }
}
