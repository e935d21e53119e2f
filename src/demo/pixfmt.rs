//! PIXEL_FORMAT as the demo *server* sees it (rfbproto §7.3.2 ServerInit,
//! §7.5.1 SetPixelFormat), and conversion of the scene's 0x00RRGGBB colours
//! into the client's wire pixels and ZRLE CPIXELs (§7.7.6).
//!
//! Kept separate from `rfb::pixel` (the client side) on purpose: the demo
//! server is the independent peer the client decoders are tested against,
//! so it must not share their conversion code.

/// The 16-byte PIXEL_FORMAT structure (rfbproto §7.3.2).
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
    /// The demo server's natural format, sent in ServerInit: 32 bpp, depth
    /// 24, little-endian, true colour, shifts 16/8/0 (bytes B,G,R,X on the
    /// wire), i.e. deliberately *not* what wsvnc asks for.
    pub const fn server_native() -> Self {
        PixelFormat {
            bits_per_pixel: 32,
            depth: 24,
            big_endian: false,
            true_colour: true,
            red_max: 255,
            green_max: 255,
            blue_max: 255,
            red_shift: 16,
            green_shift: 8,
            blue_shift: 0,
        }
    }

    /// Parse the 16-byte wire form (the 3 padding bytes are ignored).
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

    /// Check a client's SetPixelFormat (rfbproto §7.5.1). The demo server
    /// serves true colour at 8/16/32 bpp with any shifts, maxima of the
    /// form 2^n-1 and either byte order; colour maps are refused.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.bits_per_pixel, 8 | 16 | 32) {
            return Err(format!("SetPixelFormat: bits-per-pixel {} is not 8, 16 or 32", self.bits_per_pixel));
        }
        if !self.true_colour {
            return Err("SetPixelFormat: colour-map (true-colour-flag 0) formats are not supported".into());
        }
        let bpp = u32::from(self.bits_per_pixel);
        for (name, max, shift) in [
            ("red", self.red_max, self.red_shift),
            ("green", self.green_max, self.green_shift),
            ("blue", self.blue_max, self.blue_shift),
        ] {
            let m = u32::from(max);
            // §7.3.2: "Red-max is the maximum red value (= 2^n - 1 ...)".
            if m == 0 || m & (m + 1) != 0 {
                return Err(format!("SetPixelFormat: {name}-max {max} is not 2^n-1"));
            }
            if u32::from(shift) + (32 - m.leading_zeros()) > bpp {
                return Err(format!("SetPixelFormat: {name} field (max {max}, shift {shift}) exceeds {bpp} bits"));
            }
        }
        Ok(())
    }
}

/// A validated pixel format with lookup tables: colour → wire pixel value,
/// and the byte layout of PIXEL and CPIXEL.
#[derive(Clone)]
pub struct WireFormat {
    pub pf: PixelFormat,
    r: [u32; 256],
    g: [u32; 256],
    b: [u32; 256],
    /// Bytes per PIXEL (1, 2 or 4).
    pub bpp: usize,
    /// Bytes per CPIXEL (rfbproto §7.7.6) and where they start inside the
    /// PIXEL's wire bytes.
    pub cpp: usize,
    cp_off: usize,
}

/// Scale an 8-bit intensity to 0..=max, rounding to nearest.
pub fn scale(v: u8, max: u16) -> u32 {
    (u32::from(v) * u32::from(max) + 127) / 255
}

impl WireFormat {
    /// `pf` must have passed `validate`.
    pub fn new(pf: PixelFormat) -> Self {
        let mut r = [0u32; 256];
        let mut g = [0u32; 256];
        let mut b = [0u32; 256];
        for i in 0..256 {
            r[i] = scale(i as u8, pf.red_max) << pf.red_shift;
            g[i] = scale(i as u8, pf.green_max) << pf.green_shift;
            b[i] = scale(i as u8, pf.blue_max) << pf.blue_shift;
        }
        let bpp = usize::from(pf.bits_per_pixel / 8);
        // §7.7.6: CPIXEL is 3 bytes when true colour, 32 bpp, depth <= 24 and
        // all colour bits fit in the least (preferred) or most significant 3 bytes.
        let (cpp, cp_off) = if pf.true_colour && pf.bits_per_pixel == 32 && pf.depth <= 24 {
            let mask = (u64::from(pf.red_max) << pf.red_shift)
                | (u64::from(pf.green_max) << pf.green_shift)
                | (u64::from(pf.blue_max) << pf.blue_shift);
            let ls = mask < (1 << 24);
            let ms = mask & 0xff == 0;
            match (ls, ms) {
                // Least significant 3 bytes: first 3 bytes if little-endian.
                (true, _) => (3, if pf.big_endian { 1 } else { 0 }),
                (false, true) => (3, if pf.big_endian { 0 } else { 1 }),
                _ => (4, 0),
            }
        } else {
            (bpp, 0)
        };
        WireFormat { pf, r, g, b, bpp, cpp, cp_off }
    }

    /// Wire pixel value of scene colour 0x00RRGGBB.
    #[inline]
    pub fn pixel(&self, rgb: u32) -> u32 {
        self.r[((rgb >> 16) & 0xff) as usize] | self.g[((rgb >> 8) & 0xff) as usize] | self.b[(rgb & 0xff) as usize]
    }

    /// Append a PIXEL (bytes per pixel, client byte order).
    #[inline]
    pub fn put(&self, v: u32, out: &mut Vec<u8>) {
        match self.bpp {
            1 => out.push(v as u8),
            2 => {
                let b = if self.pf.big_endian { (v as u16).to_be_bytes() } else { (v as u16).to_le_bytes() };
                out.extend_from_slice(&b)
            }
            _ => out.extend_from_slice(&self.bytes4(v)),
        }
    }

    #[inline]
    fn bytes4(&self, v: u32) -> [u8; 4] {
        if self.pf.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    /// Append a CPIXEL (ZRLE, rfbproto §7.7.6).
    #[inline]
    pub fn put_c(&self, v: u32, out: &mut Vec<u8>) {
        if self.cpp == 3 {
            let b = self.bytes4(v);
            out.extend_from_slice(&b[self.cp_off..self.cp_off + 3]);
        } else {
            self.put(v, out)
        }
    }
}
