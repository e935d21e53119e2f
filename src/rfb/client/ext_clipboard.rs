//! Extended Clipboard (rfbproto "Extended Clipboard Pseudo-Encoding"):
//! Unicode clipboard text both ways, instead of Latin-1 cut text.
//!
//! ServerCutText/ClientCutText with a *negative* S32 length carry
//! `abs(length)` bytes starting with U32 flags:
//!
//! ```text
//! bits 0-15  formats: 0 text (UTF-8, CR LF line ends, NUL-terminated), 1 rtf, 2 html, 3 dib, 4 files
//! bit 24 caps     + one U32 "largest unsolicited size" per format bit set
//! bit 25 request  the formats in the flags are wanted: answer with provide
//! bit 26 peek     answer with notify
//! bit 27 notify   these formats are available now
//! bit 28 provide  + one zlib stream: (U32 size, data) per format bit set
//! ```
//!
//! The exchange with a server (TigerVNC advertises text with a 0-byte
//! unsolicited limit, so everything goes through notify → request):
//!
//! ```text
//! server caps ──▶ our caps (text, request/peek/notify/provide, text ≤ MAX_CUT_TEXT)
//! server notify(text) ──▶ request(text) ──▶ server provide ──▶ RfbEvent::ServerCutText
//! client_cut_text ──▶ provide (if the server takes it unsolicited) or notify(text);
//!                     server request(text) ──▶ provide (the text kept until replaced)
//! server peek ──▶ notify(text if we hold any)
//! ```
//!
//! Limits: a message over [`MAX_WIRE`] bytes is skipped unread (not fatal:
//! big clipboards are legitimate); the inflated text is capped at
//! `MAX_CUT_TEXT` (+ its NUL): a larger one is dropped with a warning, and
//! inflating stops at the cap, so a zip bomb costs at most that much memory.
//! Only text is asked for and read; other formats in a provide are ignored.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::MAX_CUT_TEXT;

pub const TEXT: u32 = 1 << 0;
const FORMATS: u32 = 0xffff;
pub const CAPS: u32 = 1 << 24;
pub const REQUEST: u32 = 1 << 25;
pub const PEEK: u32 = 1 << 26;
pub const NOTIFY: u32 = 1 << 27;
pub const PROVIDE: u32 = 1 << 28;
const ACTIONS: u32 = 0xff00_0000;

/// Largest extended clipboard message read (the compressed form); larger
/// ones are skipped. Compressed text is never much larger than the text.
pub const MAX_WIRE: u32 = MAX_CUT_TEXT + 64 * 1024;

/// What a server message asks of the client, after [`Clipboard::handle`].
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// Nothing for the caller (caps, or a message we ignore).
    Nothing,
    /// Clipboard text from the server (line ends LF, no NUL).
    Text(String),
}

/// Why a message was refused (rfbproto violations).
#[derive(Debug, PartialEq)]
pub struct Malformed(pub String);

/// Extended clipboard state of one connection.
#[derive(Debug, Default)]
pub struct Clipboard {
    /// Flags of the server's caps (formats and actions it accepts); `None`
    /// until they arrive, and so until then the Latin-1 messages are used.
    server_caps: Option<u32>,
    /// The server's largest unsolicited text (0: notify first).
    server_text_max: u32,
    /// Our clipboard as wire text (UTF-8, CR LF, NUL), kept for a request.
    ours: Option<Vec<u8>>,
}

impl Clipboard {
    /// The server sent its caps: extended messages are in use.
    pub fn active(&self) -> bool {
        self.server_caps.is_some()
    }

    /// One extended ServerCutText payload (`abs(length)` bytes, flags first).
    /// Replies go to `out`.
    pub fn handle(&mut self, msg: &[u8], out: &mut Vec<u8>) -> Result<Incoming, Malformed> {
        let Some(flags) = msg.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])) else {
            return Err(Malformed(format!("extended clipboard message of {} bytes", msg.len())));
        };
        let body = &msg[4..];
        let action = flags & ACTIONS;
        if action & CAPS != 0 {
            let n = (flags & FORMATS).count_ones() as usize;
            if body.len() < 4 * n {
                return Err(Malformed(format!("extended clipboard caps for {n} formats in {} bytes", msg.len())));
            }
            // Sizes come in format-bit order; text (bit 0) is first.
            self.server_text_max =
                if flags & TEXT != 0 { u32::from_be_bytes([body[0], body[1], body[2], body[3]]) } else { 0 };
            if self.server_caps.is_none() {
                log::debug!("RFB: extended clipboard: server caps {flags:#010x}, text up to {}", self.server_text_max);
                // "The client may send a ClientCutText message with caps set
                // back to indicate its capabilities."
                message(out, CAPS | TEXT | REQUEST | PEEK | NOTIFY | PROVIDE, &MAX_CUT_TEXT.to_be_bytes());
            }
            self.server_caps = Some(flags);
            return Ok(Incoming::Nothing);
        }
        match action {
            PROVIDE if flags & TEXT != 0 => Ok(read_text(body).map_or(Incoming::Nothing, Incoming::Text)),
            PROVIDE => Ok(Incoming::Nothing),
            NOTIFY => {
                if flags & TEXT != 0 && self.server_accepts(REQUEST) {
                    message(out, REQUEST | TEXT, &[]);
                }
                Ok(Incoming::Nothing)
            }
            REQUEST => {
                if flags & TEXT != 0 {
                    if let Some(text) = &self.ours {
                        provide(out, text);
                    }
                }
                Ok(Incoming::Nothing)
            }
            PEEK => {
                if self.server_accepts(NOTIFY) {
                    message(out, NOTIFY | if self.ours.is_some() { TEXT } else { 0 }, &[]);
                }
                Ok(Incoming::Nothing)
            }
            _ => {
                // "If caps is not set then only one of the other actions may be set."
                log::warn!("RFB: ignoring extended clipboard message with flags {flags:#010x}");
                Ok(Incoming::Nothing)
            }
        }
    }

    /// Offer our clipboard `text` (at most `MAX_CUT_TEXT` bytes of UTF-8 are
    /// kept): provided at once when the server takes that much unsolicited,
    /// else announced with notify and provided on request. Returns false
    /// (nothing sent) when the extension is not in use.
    pub fn send_text(&mut self, text: &str, out: &mut Vec<u8>) -> bool {
        if !self.active() {
            return false;
        }
        let wire = to_wire(text);
        if self.server_accepts(PROVIDE) && wire.len() <= self.server_text_max as usize {
            provide(out, &wire);
        } else if self.server_accepts(NOTIFY) {
            message(out, NOTIFY | TEXT, &[]);
        } else {
            provide(out, &wire);
        }
        self.ours = Some(wire);
        true
    }

    fn server_accepts(&self, action: u32) -> bool {
        self.server_caps.is_some_and(|f| f & action != 0)
    }
}

/// Text → wire text: LF (and lone CR) line ends as CR LF, NUL-terminated,
/// at most `MAX_CUT_TEXT` bytes before the NUL (cut at a character boundary).
fn to_wire(text: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(text.len().min(MAX_CUT_TEXT as usize) + 16);
    let mut chars = text.chars().peekable();
    let mut buf = [0u8; 4];
    while let Some(c) = chars.next() {
        let piece: &[u8] = match c {
            '\r' if chars.peek() == Some(&'\n') => continue,
            '\r' | '\n' => b"\r\n",
            '\0' => continue,
            c => c.encode_utf8(&mut buf).as_bytes(),
        };
        if v.len() + piece.len() > MAX_CUT_TEXT as usize {
            break;
        }
        v.extend_from_slice(piece);
    }
    v.push(0);
    v
}

/// The text of a provide message's zlib stream (its first format, text),
/// or `None` (with a warning) when it is too large or not valid zlib.
fn read_text(zdata: &[u8]) -> Option<String> {
    // U32 size + the text with its NUL, and nothing more: inflating stops
    // when the buffer is full, whatever the stream claims.
    let cap = 4 + MAX_CUT_TEXT as usize + 1;
    let mut out = Vec::with_capacity(4 + zdata.len().saturating_mul(4).clamp(64, cap));
    let mut z = Decompress::new(true);
    loop {
        let before = (z.total_in(), z.total_out());
        let done = match z.decompress_vec(&zdata[z.total_in() as usize..], &mut out, FlushDecompress::Sync) {
            Ok(Status::StreamEnd) => true,
            Ok(_) => false,
            Err(e) => {
                log::warn!("RFB: extended clipboard: bad zlib data: {e}");
                return None;
            }
        };
        let size = out.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
        if size.is_some_and(|s| s > MAX_CUT_TEXT as usize + 1) {
            log::warn!("RFB: extended clipboard: dropping {} bytes of text (limit {MAX_CUT_TEXT})", size.unwrap_or(0));
            return None;
        }
        let whole = size.is_some_and(|s| out.len() >= 4 + s);
        if whole || done || (z.total_in(), z.total_out()) == before {
            break;
        }
        if out.len() == out.capacity() {
            out.reserve_exact((out.capacity() * 2).min(cap) - out.len());
        }
    }
    let size = out.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)?;
    let Some(text) = out.get(4..4 + size) else {
        log::warn!("RFB: extended clipboard: text of {size} bytes announced, {} present", out.len() - 4);
        return None;
    };
    Some(from_wire(text))
}

/// Wire text → String: up to the first NUL, CR LF as LF, invalid UTF-8
/// replaced.
fn from_wire(b: &[u8]) -> String {
    let b = &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())];
    String::from_utf8_lossy(b).replace("\r\n", "\n")
}

/// ClientCutText in the extended form: U8 6, 3 padding, S32 -(4 + n), U32
/// flags, `body` (n bytes).
fn message(out: &mut Vec<u8>, flags: u32, body: &[u8]) {
    out.extend_from_slice(&[6, 0, 0, 0]);
    out.extend_from_slice(&(-(4 + body.len() as i32)).to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(body);
}

/// provide(text): one zlib stream holding U32 size and the wire text.
fn provide(out: &mut Vec<u8>, wire: &[u8]) {
    let mut plain = Vec::with_capacity(4 + wire.len());
    plain.extend_from_slice(&(wire.len() as u32).to_be_bytes());
    plain.extend_from_slice(wire);
    message(out, PROVIDE | TEXT, &deflate(&plain));
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut z = Compress::new(Compression::fast(), true);
    let mut v = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        if v.len() == v.capacity() {
            v.reserve(v.capacity().max(64));
        }
        let input = &data[z.total_in() as usize..];
        match z.compress_vec(input, &mut v, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => return v,
            Ok(_) => {}
            Err(e) => unreachable!("deflate into a growing buffer cannot fail: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(z: &[u8]) -> Vec<u8> {
        let mut d = Decompress::new(true);
        let mut v = Vec::with_capacity(1 << 22);
        d.decompress_vec(z, &mut v, FlushDecompress::Finish).unwrap();
        v
    }

    fn caps(text_max: u32) -> Vec<u8> {
        let mut m = (CAPS | TEXT | 0b110 | REQUEST | PEEK | NOTIFY | PROVIDE).to_be_bytes().to_vec();
        for size in [text_max, 0, 0] {
            m.extend_from_slice(&size.to_be_bytes());
        }
        m
    }

    fn provide_msg(plain: &[u8]) -> Vec<u8> {
        let mut m = (PROVIDE | TEXT).to_be_bytes().to_vec();
        m.extend(deflate(plain));
        m
    }

    #[test]
    fn wire_text_round_trip() {
        assert_eq!(to_wire("a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd\0");
        assert_eq!(from_wire(b"a\r\nb\0junk"), "a\nb");
        let s = "Ελληνικά 中文 😀\n";
        assert_eq!(from_wire(&to_wire(s)), s);
        // Cut at a character boundary at the limit.
        let big = "€".repeat(MAX_CUT_TEXT as usize);
        let w = to_wire(&big);
        assert!(w.len() <= MAX_CUT_TEXT as usize + 1 && std::str::from_utf8(&w[..w.len() - 1]).is_ok());
    }

    #[test]
    fn caps_answered_once_and_text_sent_by_notify() {
        let mut c = Clipboard::default();
        let mut out = Vec::new();
        assert!(!c.send_text("x", &mut out));
        assert_eq!(c.handle(&caps(0), &mut out), Ok(Incoming::Nothing));
        let mut want = vec![6, 0, 0, 0, 0xff, 0xff, 0xff, 0xf8];
        want.extend_from_slice(&(CAPS | TEXT | REQUEST | PEEK | NOTIFY | PROVIDE).to_be_bytes());
        want.extend_from_slice(&MAX_CUT_TEXT.to_be_bytes());
        assert_eq!(out, want);
        out.clear();
        c.handle(&caps(0), &mut out).unwrap();
        assert!(out.is_empty(), "caps again: no second answer");
        // Text max 0: notify first, provide on request.
        assert!(c.send_text("Grüße 😀", &mut out));
        let mut want = vec![6, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc];
        want.extend_from_slice(&(NOTIFY | TEXT).to_be_bytes());
        assert_eq!(out, want);
        out.clear();
        c.handle(&(REQUEST | TEXT).to_be_bytes(), &mut out).unwrap();
        assert_eq!(&out[..4], [6, 0, 0, 0]);
        let len = -i32::from_be_bytes(out[4..8].try_into().unwrap()) as usize;
        assert_eq!(out.len(), 8 + len);
        assert_eq!(u32::from_be_bytes(out[8..12].try_into().unwrap()), PROVIDE | TEXT);
        let plain = inflate_all(&out[12..]);
        let text = "Grüße 😀\0".as_bytes();
        assert_eq!(&plain[..4], (text.len() as u32).to_be_bytes());
        assert_eq!(&plain[4..], text);
        // Peek: notify with text.
        out.clear();
        c.handle(&PEEK.to_be_bytes(), &mut out).unwrap();
        assert_eq!(&out[8..], (NOTIFY | TEXT).to_be_bytes());
    }

    #[test]
    fn unsolicited_provide_when_the_server_takes_it() {
        let mut c = Clipboard::default();
        let mut out = Vec::new();
        c.handle(&caps(100), &mut out).unwrap();
        out.clear();
        c.send_text("short", &mut out);
        assert_eq!(u32::from_be_bytes(out[8..12].try_into().unwrap()), PROVIDE | TEXT);
        out.clear();
        c.send_text(&"long ".repeat(100), &mut out);
        assert_eq!(u32::from_be_bytes(out[8..12].try_into().unwrap()), NOTIFY | TEXT);
    }

    #[test]
    fn server_notify_requests_text_and_provide_delivers_it() {
        let mut c = Clipboard::default();
        let mut out = Vec::new();
        c.handle(&caps(0), &mut out).unwrap();
        out.clear();
        c.handle(&(NOTIFY | TEXT).to_be_bytes(), &mut out).unwrap();
        assert_eq!(&out[8..], (REQUEST | TEXT).to_be_bytes());
        let text = "日本\r\nx\0".as_bytes();
        let mut plain = (text.len() as u32).to_be_bytes().to_vec();
        plain.extend_from_slice(text);
        assert_eq!(c.handle(&provide_msg(&plain), &mut out), Ok(Incoming::Text("日本\nx".into())));
        // Notify without text (e.g. an image): nothing requested.
        out.clear();
        c.handle(&(NOTIFY | 0b1000).to_be_bytes(), &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn bounded_inflation_and_bad_data() {
        let mut c = Clipboard::default();
        let mut out = Vec::new();
        // A zip bomb: 64 MiB of zeros announced and sent as text.
        let mut plain = (64u32 << 20).to_be_bytes().to_vec();
        plain.resize(4 + (64 << 20), b'a');
        let msg = provide_msg(&plain);
        assert!(msg.len() < MAX_WIRE as usize, "{} bytes", msg.len());
        assert_eq!(c.handle(&msg, &mut out), Ok(Incoming::Nothing));
        // Exactly at the limit is accepted.
        let mut plain = (MAX_CUT_TEXT + 1).to_be_bytes().to_vec();
        plain.resize(4 + MAX_CUT_TEXT as usize, b'z');
        plain.push(0);
        let Ok(Incoming::Text(t)) = c.handle(&provide_msg(&plain), &mut out) else { panic!() };
        assert_eq!(t.len(), MAX_CUT_TEXT as usize);
        // Size larger than the data, corrupt zlib, truncated header.
        let short = provide_msg(&[0, 0, 0, 9, b'a']);
        assert_eq!(c.handle(&short, &mut out), Ok(Incoming::Nothing));
        let mut bad = (PROVIDE | TEXT).to_be_bytes().to_vec();
        bad.extend_from_slice(&[0x78, 0x9c, 0xff, 0xff, 0xff]);
        assert_eq!(c.handle(&bad, &mut out), Ok(Incoming::Nothing));
        assert!(c.handle(&[0, 0], &mut out).is_err());
        let mut caps_short = (CAPS | TEXT | 0b10).to_be_bytes().to_vec();
        caps_short.extend_from_slice(&[0, 0, 0, 1]);
        assert!(c.handle(&caps_short, &mut out).is_err());
    }
}
