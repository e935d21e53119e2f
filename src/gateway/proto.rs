//! Browser protocol v2 (docs/protocol.md): encoders for gateway → browser
//! messages and a validating parser for browser → gateway messages.
//! All integers little-endian; strings are `u32` length + UTF-8.

/// Protocol version spoken.
pub const VERSION: u8 = 3;

pub mod to_browser {
    pub const SERVER_HELLO: u8 = 0x01;
    pub const RESIZE: u8 = 0x02;
    pub const FILL: u8 = 0x03;
    pub const COPY: u8 = 0x04;
    pub const PIXELS: u8 = 0x05;
    pub const END_FRAME: u8 = 0x06;
    pub const CURSOR: u8 = 0x07;
    pub const BELL: u8 = 0x08;
    pub const CLIPBOARD: u8 = 0x09;
    pub const DESKTOP_NAME: u8 = 0x0A;
    pub const PASSWORD_REQUIRED: u8 = 0x0B;
    pub const STATUS: u8 = 0x0C;
    pub const ERROR: u8 = 0x0D;
    pub const PALETTE: u8 = 0x0E;
    pub const JPEG: u8 = 0x0F;
    pub const LED_STATE: u8 = 0x10;
    pub const CREDENTIALS_REQUIRED: u8 = 0x11;
    pub const END_PART: u8 = 0x12;
    pub const IMAGE_BEGIN: u8 = 0x13;
    pub const IMAGE_DATA: u8 = 0x14;
    pub const PNG: u8 = 0x15;
    pub const WEBP: u8 = 0x16;
}

/// `ImageBegin` formats.
pub mod image_format {
    pub const JPEG: u8 = 0;
    pub const PNG: u8 = 1;
    pub const WEBP: u8 = 2;
}

/// `Accept` bits: image formats a browser decodes beyond JPEG and PNG.
pub mod accept {
    /// WebP lossless (`Webp`, `ImageBegin` format 2).
    pub const WEBP: u8 = 1 << 0;
    /// Every bit defined.
    pub const ALL: u8 = WEBP;
}

/// ServerHello flag bits.
pub mod hello_flags {
    /// This viewer is view-only.
    pub const VIEW_ONLY: u8 = 1 << 0;
    /// The VNC server accepts SetDesktopSize.
    pub const RESIZE: u8 = 1 << 1;
    /// Clipboard text reaches the VNC server as Unicode (Extended Clipboard);
    /// without it, characters outside Latin-1 become `?`.
    pub const UNICODE_CLIPBOARD: u8 = 1 << 2;
}

pub mod from_browser {
    pub const CLIENT_HELLO: u8 = 0x80;
    pub const KEY: u8 = 0x81;
    pub const POINTER: u8 = 0x82;
    pub const CLIPBOARD: u8 = 0x83;
    pub const FRAME_ACK: u8 = 0x84;
    pub const RESIZE_REQUEST: u8 = 0x85;
    pub const PASSWORD: u8 = 0x86;
    pub const KEY_CODE: u8 = 0x87;
    pub const POINTER_EXT: u8 = 0x88;
    pub const CREDENTIALS: u8 = 0x89;
    pub const RECEIVED: u8 = 0x8A;
    pub const ACCEPT: u8 = 0x8B;
}

/// Largest clipboard text accepted from a browser.
pub const MAX_CLIPBOARD: usize = 1 << 20;
/// Largest password (and user name) accepted from a browser.
pub const MAX_PASSWORD: usize = 256;
/// Longest `KeyboardEvent.code` accepted (the longest standard one,
/// `LaunchApplication1`, has 18 characters).
pub const MAX_KEY_CODE: usize = 32;
/// Pointer mask bits a browser may set: bits 0–6 as RFB's PointerEvent,
/// 7 back, 8 forward.
pub const POINTER_MASK: u16 = 0x1ff;
/// Largest desktop side a browser may ask for.
pub const MAX_RESIZE: u16 = 8192;

// ------------------------------------------------------------- encoders

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// ServerHello; `flags` from [`hello_flags`].
pub fn server_hello(out: &mut Vec<u8>, w: u16, h: u16, flags: u8, name: &str) {
    out.push(to_browser::SERVER_HELLO);
    out.push(VERSION);
    put_u16(out, w);
    put_u16(out, h);
    out.push(flags);
    put_str(out, name);
}

pub fn resize(out: &mut Vec<u8>, w: u16, h: u16) {
    out.push(to_browser::RESIZE);
    put_u16(out, w);
    put_u16(out, h);
}

pub fn fill(out: &mut Vec<u8>, x: u16, y: u16, w: u16, h: u16, rgba: [u8; 4]) {
    out.push(to_browser::FILL);
    for v in [x, y, w, h] {
        put_u16(out, v);
    }
    out.extend_from_slice(&rgba);
}

pub fn copy(out: &mut Vec<u8>, x: u16, y: u16, w: u16, h: u16, sx: u16, sy: u16) {
    out.push(to_browser::COPY);
    for v in [x, y, w, h, sx, sy] {
        put_u16(out, v);
    }
}

/// The Pixels header; the caller appends `w * h * 3` RGB bytes.
pub fn pixels_header(out: &mut Vec<u8>, x: u16, y: u16, w: u16, h: u16) {
    out.push(to_browser::PIXELS);
    for v in [x, y, w, h] {
        put_u16(out, v);
    }
}

/// The Palette header for `colours` (1..=256) colours; the caller appends
/// the colours (RGB) and the packed indices (`encode::palette`).
pub fn palette_header(out: &mut Vec<u8>, x: u16, y: u16, w: u16, h: u16, colours: usize) {
    out.push(to_browser::PALETTE);
    for v in [x, y, w, h] {
        put_u16(out, v);
    }
    out.push((colours - 1) as u8);
}

/// The header of a `Jpeg` or `Png` message (`ty`) with a zero length; the
/// caller appends the image bytes and patches the `u32` length (the last 4
/// bytes written here).
pub fn image_header(out: &mut Vec<u8>, ty: u8, x: u16, y: u16, w: u16, h: u16) {
    out.push(ty);
    for v in [x, y, w, h] {
        put_u16(out, v);
    }
    out.extend_from_slice(&[0; 4]);
}

/// Bytes of a `Jpeg`/`Png` message before the image bytes.
pub const IMAGE_HEADER: usize = 13;

/// `ImageBegin`: an image of `total` bytes follows in `ImageData` messages.
pub fn image_begin(out: &mut Vec<u8>, x: u16, y: u16, w: u16, h: u16, format: u8, total: u32) {
    out.push(to_browser::IMAGE_BEGIN);
    for v in [x, y, w, h] {
        put_u16(out, v);
    }
    out.push(format);
    out.extend_from_slice(&total.to_le_bytes());
}

/// `ImageData` with `data`.
pub fn image_data(out: &mut Vec<u8>, data: &[u8]) {
    out.push(to_browser::IMAGE_DATA);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
}

/// Bytes of `ImageBegin` and of `ImageData`'s header.
pub const IMAGE_BEGIN_LEN: usize = 14;
pub const IMAGE_DATA_HEADER: usize = 5;

/// `EndPart`: the messages since the previous end form a part of a picture;
/// `last`: the picture is complete.
pub fn end_part(out: &mut Vec<u8>, id: u32, last: bool) {
    out.push(to_browser::END_PART);
    out.extend_from_slice(&id.to_le_bytes());
    out.push(last as u8);
}

pub fn end_frame(out: &mut Vec<u8>, id: u32) {
    out.push(to_browser::END_FRAME);
    out.extend_from_slice(&id.to_le_bytes());
}

pub fn cursor(out: &mut Vec<u8>, hot_x: u16, hot_y: u16, w: u16, h: u16, rgba: &[u8]) {
    out.push(to_browser::CURSOR);
    for v in [hot_x, hot_y, w, h] {
        put_u16(out, v);
    }
    out.extend_from_slice(rgba);
}

pub fn bell(out: &mut Vec<u8>) {
    out.push(to_browser::BELL);
}

pub fn clipboard(out: &mut Vec<u8>, text: &str) {
    out.push(to_browser::CLIPBOARD);
    put_str(out, text);
}

pub fn desktop_name(out: &mut Vec<u8>, name: &str) {
    out.push(to_browser::DESKTOP_NAME);
    put_str(out, name);
}

pub fn password_required(out: &mut Vec<u8>) {
    out.push(to_browser::PASSWORD_REQUIRED);
}

pub fn credentials_required(out: &mut Vec<u8>) {
    out.push(to_browser::CREDENTIALS_REQUIRED);
}

/// LedState: bit 0 Scroll Lock, 1 Num Lock, 2 Caps Lock (QEMU LED State's bits).
pub fn led_state(out: &mut Vec<u8>, leds: u8) {
    out.push(to_browser::LED_STATE);
    out.push(leds);
}

pub fn status(out: &mut Vec<u8>, level: u8, text: &str) {
    out.push(to_browser::STATUS);
    out.push(level);
    put_str(out, text);
}

pub fn error(out: &mut Vec<u8>, text: &str) {
    out.push(to_browser::ERROR);
    put_str(out, text);
}

// --------------------------------------------------------------- parser

/// One message from the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    ClientHello {
        version: u8,
    },
    /// The image formats the browser decodes beyond JPEG and PNG
    /// ([`accept`] bits; an undefined bit is a protocol error).
    Accept {
        formats: u8,
    },
    /// Key (no `code`: "") or KeyCode: an X11 keysym (0: none) and the
    /// browser's `KeyboardEvent.code` (ASCII letters and digits).
    Key {
        down: bool,
        keysym: u32,
        code: &'a str,
    },
    /// Pointer (bits 0–7) or PointerExt (bits 0–8, see [`POINTER_MASK`]).
    Pointer {
        x: u16,
        y: u16,
        mask: u16,
    },
    Clipboard(&'a str),
    FrameAck(u32),
    Received(u32),
    ResizeRequest {
        w: u16,
        h: u16,
    },
    Password(&'a [u8]),
    Credentials {
        username: &'a [u8],
        password: &'a [u8],
    },
}

/// Why a browser message was refused, with the close code to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadInput {
    pub code: u16,
    pub reason: &'static str,
}

const PROTOCOL: u16 = crate::ws::close::PROTOCOL_ERROR;
const INVALID: u16 = crate::ws::close::INVALID_PAYLOAD;
const POLICY: u16 = crate::ws::close::POLICY_VIOLATION;

fn bad(code: u16, reason: &'static str) -> BadInput {
    BadInput { code, reason }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BadInput> {
        if self.b.len() - self.pos < n {
            return Err(bad(PROTOCOL, "truncated message"));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, BadInput> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, BadInput> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, BadInput> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    /// A key's down flag: 0 or 1.
    fn down(&mut self) -> Result<bool, BadInput> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(bad(PROTOCOL, "key down flag must be 0 or 1")),
        }
    }
    /// A password or user name: UTF-8, at most [`MAX_PASSWORD`] bytes.
    fn secret(&mut self, not_utf8: &'static str) -> Result<&'a [u8], BadInput> {
        let b = self.bytes(MAX_PASSWORD)?;
        std::str::from_utf8(b).map_err(|_| bad(INVALID, not_utf8))?;
        Ok(b)
    }
    /// A length-prefixed byte string, the length checked against `max`
    /// before anything else.
    fn bytes(&mut self, max: usize) -> Result<&'a [u8], BadInput> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(bad(POLICY, "string too long"));
        }
        self.take(len)
    }
}

/// Parse every message in one WebSocket message, calling `f` for each.
/// Stops at the first bad one (nothing after it is delivered).
pub fn parse_all<'a>(msg: &'a [u8], mut f: impl FnMut(Input<'a>) -> Result<(), BadInput>) -> Result<(), BadInput> {
    if msg.is_empty() {
        return Err(bad(PROTOCOL, "empty message"));
    }
    let mut r = Reader { b: msg, pos: 0 };
    while r.pos < msg.len() {
        let input = match r.u8()? {
            from_browser::CLIENT_HELLO => Input::ClientHello { version: r.u8()? },
            from_browser::ACCEPT => match r.u8()? {
                formats if formats & !accept::ALL == 0 => Input::Accept { formats },
                _ => return Err(bad(PROTOCOL, "undefined Accept bit")),
            },
            from_browser::KEY => Input::Key { down: r.down()?, keysym: r.u32()?, code: "" },
            from_browser::KEY_CODE => {
                let (down, keysym) = (r.down()?, r.u32()?);
                let code = r.bytes(MAX_KEY_CODE)?;
                if !code.iter().all(u8::is_ascii_alphanumeric) {
                    return Err(bad(POLICY, "key code must be ASCII letters and digits"));
                }
                // Checked ASCII above.
                Input::Key { down, keysym, code: std::str::from_utf8(code).unwrap_or_default() }
            }
            from_browser::POINTER => Input::Pointer { x: r.u16()?, y: r.u16()?, mask: r.u8()? as u16 },
            from_browser::POINTER_EXT => {
                let (x, y, mask) = (r.u16()?, r.u16()?, r.u16()?);
                if mask & !POINTER_MASK != 0 {
                    return Err(bad(POLICY, "pointer mask bits 9-15 must be 0"));
                }
                Input::Pointer { x, y, mask }
            }
            from_browser::CLIPBOARD => {
                let b = r.bytes(MAX_CLIPBOARD)?;
                Input::Clipboard(std::str::from_utf8(b).map_err(|_| bad(INVALID, "clipboard is not UTF-8"))?)
            }
            from_browser::FRAME_ACK => Input::FrameAck(r.u32()?),
            from_browser::RECEIVED => Input::Received(r.u32()?),
            from_browser::RESIZE_REQUEST => {
                let (w, h) = (r.u16()?, r.u16()?);
                if w == 0 || h == 0 || w > MAX_RESIZE || h > MAX_RESIZE {
                    return Err(bad(POLICY, "resize request out of range"));
                }
                Input::ResizeRequest { w, h }
            }
            from_browser::PASSWORD => Input::Password(r.secret("password is not UTF-8")?),
            from_browser::CREDENTIALS => {
                let username = r.secret("user name is not UTF-8")?;
                Input::Credentials { username, password: r.secret("password is not UTF-8")? }
            }
            _ => return Err(bad(PROTOCOL, "unknown message type")),
        };
        f(input)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(msg: &[u8]) -> Result<Vec<Input<'_>>, BadInput> {
        let mut v = Vec::new();
        parse_all(msg, |i| {
            v.push(i);
            Ok(())
        })?;
        Ok(v)
    }

    #[test]
    fn several_messages_in_one() {
        let msg = [
            0x80, 2, // hello
            0x8B, 1, // accept WebP
            0x81, 1, 0x61, 0, 0, 0, // key down 'a'
            0x82, 10, 0, 20, 0, 0x09, // pointer 10,20 left+wheel-up
            0x84, 7, 0, 0, 0, // ack 7
            0x8A, 9, 0, 0, 0, // received 9
        ];
        assert_eq!(
            parse(&msg).unwrap(),
            vec![
                Input::ClientHello { version: 2 },
                Input::Accept { formats: accept::WEBP },
                Input::Key { down: true, keysym: 0x61, code: "" },
                Input::Pointer { x: 10, y: 20, mask: 9 },
                Input::FrameAck(7),
                Input::Received(9),
            ]
        );
    }

    #[test]
    fn strings() {
        let mut m = vec![0x83];
        m.extend_from_slice(&2u32.to_le_bytes());
        m.extend_from_slice(&"héé".as_bytes()[..2]);
        assert_eq!(parse(&m).unwrap_err().code, INVALID, "split UTF-8 sequence");
        let mut m = vec![0x83];
        m.extend_from_slice(&5u32.to_le_bytes());
        m.extend_from_slice("héé".as_bytes());
        assert_eq!(parse(&m).unwrap(), vec![Input::Clipboard("héé")]);
    }

    #[test]
    fn bad_inputs_have_exact_codes() {
        let rows: &[(&[u8], u16)] = &[
            (&[], PROTOCOL),
            (&[0x99], PROTOCOL),
            (&[0x8B, 2], PROTOCOL),
            (&[0x8B], PROTOCOL),
            (&[0x81, 1, 0, 0], PROTOCOL),
            (&[0x81, 2, 0, 0, 0, 0], PROTOCOL),
            (&[0x82, 1, 0, 2, 0], PROTOCOL),
            (&[0x83, 0xff, 0xff, 0xff, 0xff], POLICY),
            (&[0x83, 4, 0, 0, 0, b'a'], PROTOCOL),
            (&[0x85, 0, 0, 10, 0], POLICY),
            (&[0x85, 0x01, 0x21, 10, 0], POLICY),
            (&[0x86, 1, 0, 0, 0, 0xff], INVALID),
            (&[0x87, 1, 0x61, 0, 0, 0, 1, 0, 0, 0, b'-'], POLICY),
            (&[0x87, 1, 0x61, 0, 0, 0, 33, 0, 0, 0], POLICY),
            (&[0x87, 3, 0x61, 0, 0, 0, 0, 0, 0, 0], PROTOCOL),
            (&[0x87, 1, 0x61, 0, 0, 0, 4, 0, 0, 0, b'K'], PROTOCOL),
            (&[0x88, 1, 0, 2, 0, 0, 2], POLICY),
            (&[0x88, 1, 0, 2, 0, 0], PROTOCOL),
            (&[0x89, 1, 0, 0, 0, b'u', 1, 0, 0, 0, 0xff], INVALID),
            (&[0x89, 1, 0, 0, 0, 0xff, 0, 0, 0, 0], INVALID),
            (&[0x89, 1, 0, 0, 0, b'u'], PROTOCOL),
            (&[0x89, 1, 1, 0, 0], POLICY),
        ];
        for (msg, code) in rows {
            assert_eq!(parse(msg).unwrap_err().code, *code, "{msg:?}");
        }
    }

    #[test]
    fn encoders_match_the_documented_layouts() {
        let mut out = Vec::new();
        server_hello(&mut out, 800, 600, hello_flags::VIEW_ONLY | hello_flags::RESIZE, "d");
        assert_eq!(out, [0x01, VERSION, 0x20, 0x03, 0x58, 0x02, 0b11, 1, 0, 0, 0, b'd']);
        out.clear();
        fill(&mut out, 1, 2, 3, 4, [5, 6, 7, 255]);
        assert_eq!(out, [0x03, 1, 0, 2, 0, 3, 0, 4, 0, 5, 6, 7, 255]);
        out.clear();
        end_frame(&mut out, 0x01020304);
        assert_eq!(out, [0x06, 4, 3, 2, 1]);
        out.clear();
        end_part(&mut out, 9, true);
        assert_eq!(out, [0x12, 9, 0, 0, 0, 1]);
        out.clear();
        image_begin(&mut out, 1, 2, 3, 4, image_format::PNG, 300);
        assert_eq!(out, [0x13, 1, 0, 2, 0, 3, 0, 4, 0, 1, 44, 1, 0, 0]);
        assert_eq!(out.len(), IMAGE_BEGIN_LEN);
        out.clear();
        image_data(&mut out, &[7, 8]);
        assert_eq!(out, [0x14, 2, 0, 0, 0, 7, 8]);
        out.clear();
        image_header(&mut out, to_browser::PNG, 1, 2, 3, 4);
        assert_eq!(out, [0x15, 1, 0, 2, 0, 3, 0, 4, 0, 0, 0, 0, 0]);
        assert_eq!(out.len(), IMAGE_HEADER);
        out.clear();
        led_state(&mut out, 0b100);
        credentials_required(&mut out);
        assert_eq!(out, [0x10, 4, 0x11]);
    }

    #[test]
    fn key_codes_extended_pointer_and_credentials() {
        let mut m = vec![0x87, 1, 0xe4, 0, 0, 0, 9, 0, 0, 0];
        m.extend_from_slice(b"Semicolon");
        m.extend_from_slice(&[0x87, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // keysym 0, no code
        m.extend_from_slice(&[0x88, 5, 0, 6, 0, 0x81, 0x01]); // left + forward
        m.extend_from_slice(&[0x89, 2, 0, 0, 0, b'm', b'e', 3, 0, 0, 0, b'p', b'w', b'!']);
        m.extend_from_slice(&[0x89, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse(&m).unwrap(),
            vec![
                Input::Key { down: true, keysym: 0xe4, code: "Semicolon" },
                Input::Key { down: false, keysym: 0, code: "" },
                Input::Pointer { x: 5, y: 6, mask: 0x181 },
                Input::Credentials { username: b"me", password: b"pw!" },
                Input::Credentials { username: b"", password: b"" },
            ]
        );
        let mut long = vec![0x89, 0, 1, 0, 0];
        long.extend_from_slice(&[b'a'; 256]);
        long.extend_from_slice(&[0; 4]);
        assert!(parse(&long).is_ok(), "256-byte user name");
    }
}
