//! A headless browser-protocol v3 client (docs/protocol.md) on tungstenite,
//! for integration tests and `examples/gwload.rs`. Self-contained (only
//! tungstenite, jpeg-decoder, image-webp and flate2), so an example can include it with
//! `#[path]`.
//!
//! It checks what the gateway sends as strictly as a viewer must: every
//! message is parsed, an unknown type, a truncated field or a rectangle
//! outside the canvas is an `Err` (a gateway bug), never ignored. It keeps
//! an RGBA canvas up to date from Resize/Fill/Copy/Pixels/Palette/Jpeg/Png/Webp
//! and images sent in pieces (JPEG decoded with jpeg-decoder, like a
//! browser's decoder; PNG by a small decoder here; WebP lossless with
//! image-webp), staging drawing exactly
//! like the viewer: a frame's messages apply in order at its `EndFrame`, the
//! parts of a picture (`EndPart`) are held and applied with its last part.
//! When `auto_ack`, every end is answered with `Received` at once and every
//! frame (and picture) with `FrameAck` once applied.
#![allow(dead_code)]

use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

pub mod t {
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

/// One gateway → browser message, pixel payloads left out.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    ServerHello {
        version: u8,
        width: u16,
        height: u16,
        flags: u8,
        name: String,
    },
    Resize {
        width: u16,
        height: u16,
    },
    Fill {
        x: u16,
        y: u16,
        w: u16,
        h: u16,
        rgba: [u8; 4],
    },
    Copy {
        x: u16,
        y: u16,
        w: u16,
        h: u16,
        sx: u16,
        sy: u16,
    },
    Pixels {
        x: u16,
        y: u16,
        w: u16,
        h: u16,
    },
    Palette {
        x: u16,
        y: u16,
        w: u16,
        h: u16,
        colours: usize,
    },
    Jpeg {
        x: u16,
        y: u16,
        w: u16,
        h: u16,
        len: usize,
    },
    Png {
        x: u16,
        y: u16,
        w: u16,
        h: u16,
        len: usize,
    },
    Webp {
        x: u16,
        y: u16,
        w: u16,
        h: u16,
        len: usize,
    },
    /// An image in pieces: format 0 JPEG, 1 PNG, 2 WebP lossless.
    ImageBegin {
        x: u16,
        y: u16,
        w: u16,
        h: u16,
        format: u8,
        total: usize,
    },
    ImageData(usize),
    EndFrame(u32),
    /// A part of a picture; `true`: its last (the picture is drawn).
    EndPart(u32, bool),
    Cursor {
        hot_x: u16,
        hot_y: u16,
        w: u16,
        h: u16,
    },
    Bell,
    Clipboard(String),
    DesktopName(String),
    PasswordRequired,
    Status(u8, String),
    Error(String),
    LedState(u8),
    CredentialsRequired,
}

/// What ended a wait.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// WebSocket Close frame (code, reason).
    Closed(u16, String),
    /// The TCP connection ended or failed without a Close.
    Gone(String),
    /// The read timed out.
    Timeout,
}

/// The viewer's model of the session: canvas and everything received.
/// Transport-free: feed it whole WebSocket messages with [`Canvas::apply`].
#[derive(Default)]
pub struct Canvas {
    pub width: u16,
    pub height: u16,
    /// RGBA, stride width*4.
    pub fb: Vec<u8>,
    pub hello: Option<Msg>,
    /// Frames applied (`EndFrame`s and pictures' last `EndPart`s).
    pub frames: u64,
    pub last_frame: Option<u32>,
    /// Parts held (not last).
    pub parts: u64,
    /// Id of the last frame or part ended.
    pub last_end: Option<u32>,
    /// Copy messages applied.
    pub copies: u64,
    pub bells: u64,
    pub clipboard: Vec<String>,
    pub statuses: Vec<String>,
    pub error: Option<String>,
    pub password_required: bool,
    pub credentials_required: bool,
    /// The last LedState (bit 0 Scroll, 1 Num, 2 Caps Lock).
    pub leds: Option<u8>,
    pub cursor: Option<(u16, u16, u16, u16)>,
    /// The last cursor image, RGBA.
    pub cursor_rgba: Vec<u8>,
    pub name: String,
    /// Bytes of WebSocket payload received.
    pub bytes: u64,
    /// Drawing messages and their bytes (header included) by kind:
    /// Fill, Copy, Pixels, Palette, Jpeg (whole or in pieces), Png.
    pub kinds: [(u64, u64); 7],
    /// Pixels drawn from JPEG (all messages so far).
    pub jpeg_pixels: u64,
    /// Drawing of the frame being received, and the held parts of a picture.
    pending: Vec<Op>,
    held: Vec<Op>,
    /// An image being received in pieces.
    image: Option<Image>,
    next_image: u64,
}

/// An image being received in pieces (ImageBegin, ImageData...).
#[derive(Debug, Clone)]
struct Image {
    id: u64,
    rect: (u16, u16, u16, u16),
    format: u8,
    total: usize,
    data: Vec<u8>,
}

/// One drawing operation, decoded, waiting for its frame's end.
#[derive(Debug, Clone)]
enum Op {
    Fill(u16, u16, u16, u16, [u8; 4]),
    Copy(u16, u16, u16, u16, u16, u16),
    /// RGB pixels of a rectangle (Pixels, Palette, images).
    Rgb(u16, u16, u16, u16, Vec<u8>),
    /// An image whose pieces are still coming (its id).
    Incomplete(u64),
    Resize,
}

/// Index into `Canvas::kinds`.
pub mod kind {
    pub const FILL: usize = 0;
    pub const COPY: usize = 1;
    pub const PIXELS: usize = 2;
    pub const PALETTE: usize = 3;
    pub const JPEG: usize = 4;
    pub const PNG: usize = 5;
    pub const WEBP: usize = 6;
}

/// The `Canvas::kinds` index of an image format (`ImageBegin`).
fn image_kind(format: u8) -> usize {
    [kind::JPEG, kind::PNG, kind::WEBP][format as usize]
}

/// A v3 viewer over tungstenite (no permessage-deflate: tungstenite has none).
pub struct V2 {
    pub ws: Ws,
    pub c: Canvas,
    /// Send FrameAck for each EndFrame as soon as its message is applied.
    pub auto_ack: bool,
    pub closed: Option<End>,
}

impl std::ops::Deref for V2 {
    type Target = Canvas;
    fn deref(&self) -> &Canvas {
        &self.c
    }
}

impl std::ops::DerefMut for V2 {
    fn deref_mut(&mut self) -> &mut Canvas {
        &mut self.c
    }
}

fn rd_u16(b: &[u8], p: &mut usize) -> Result<u16, String> {
    let s = b.get(*p..*p + 2).ok_or("truncated u16")?;
    *p += 2;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}
fn rd_u32(b: &[u8], p: &mut usize) -> Result<u32, String> {
    let s = b.get(*p..*p + 4).ok_or("truncated u32")?;
    *p += 4;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn rd_u8(b: &[u8], p: &mut usize) -> Result<u8, String> {
    let v = *b.get(*p).ok_or("truncated u8")?;
    *p += 1;
    Ok(v)
}
fn rd_bytes<'a>(b: &'a [u8], p: &mut usize, n: usize) -> Result<&'a [u8], String> {
    let s = b.get(*p..(*p).checked_add(n).ok_or("length overflow")?).ok_or("truncated payload")?;
    *p += n;
    Ok(s)
}
fn rd_str(b: &[u8], p: &mut usize) -> Result<String, String> {
    let n = rd_u32(b, p)? as usize;
    let s = rd_bytes(b, p, n)?;
    String::from_utf8(s.to_vec()).map_err(|_| "string not UTF-8".to_string())
}

/// Browser → gateway encoders (docs/protocol.md "Browser → server").
pub mod enc {
    fn s(out: &mut Vec<u8>, t: &[u8]) {
        out.extend_from_slice(&(t.len() as u32).to_le_bytes());
        out.extend_from_slice(t);
    }
    pub fn hello(v: u8) -> Vec<u8> {
        vec![0x80, v]
    }
    /// `Accept`: image formats decoded beyond JPEG and PNG (bit 0 WebP).
    pub fn accept(formats: u8) -> Vec<u8> {
        vec![0x8B, formats]
    }
    pub const ACCEPT_WEBP: u8 = 1;
    pub fn key(down: bool, keysym: u32) -> Vec<u8> {
        let mut m = vec![0x81, down as u8];
        m.extend_from_slice(&keysym.to_le_bytes());
        m
    }
    pub fn pointer(x: u16, y: u16, mask: u8) -> Vec<u8> {
        let mut m = vec![0x82];
        m.extend_from_slice(&x.to_le_bytes());
        m.extend_from_slice(&y.to_le_bytes());
        m.push(mask);
        m
    }
    pub fn clipboard(text: &str) -> Vec<u8> {
        let mut m = vec![0x83];
        s(&mut m, text.as_bytes());
        m
    }
    pub fn ack(id: u32) -> Vec<u8> {
        let mut m = vec![0x84];
        m.extend_from_slice(&id.to_le_bytes());
        m
    }
    pub fn received(id: u32) -> Vec<u8> {
        let mut m = vec![0x8A];
        m.extend_from_slice(&id.to_le_bytes());
        m
    }
    pub fn resize(w: u16, h: u16) -> Vec<u8> {
        let mut m = vec![0x85];
        m.extend_from_slice(&w.to_le_bytes());
        m.extend_from_slice(&h.to_le_bytes());
        m
    }
    pub fn password(pw: &[u8]) -> Vec<u8> {
        let mut m = vec![0x86];
        s(&mut m, pw);
        m
    }
    pub fn key_code(down: bool, keysym: u32, code: &str) -> Vec<u8> {
        let mut m = vec![0x87, down as u8];
        m.extend_from_slice(&keysym.to_le_bytes());
        s(&mut m, code.as_bytes());
        m
    }
    pub fn pointer_ext(x: u16, y: u16, mask: u16) -> Vec<u8> {
        let mut m = vec![0x88];
        for v in [x, y, mask] {
            m.extend_from_slice(&v.to_le_bytes());
        }
        m
    }
    pub fn credentials(user: &[u8], pw: &[u8]) -> Vec<u8> {
        let mut m = vec![0x89];
        s(&mut m, user);
        s(&mut m, pw);
        m
    }
}

/// Protocol version spoken.
pub const VERSION: u8 = 3;
/// Subprotocol offered.
pub const SUBPROTOCOL: &str = "wsvnc.v3";

/// Open `url` offering subprotocol `wsvnc.v3` (no ClientHello yet).
pub fn open(url: &str) -> Result<Ws, String> {
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut().insert("Sec-WebSocket-Protocol", SUBPROTOCOL.parse().unwrap());
    let (ws, resp) = tungstenite::connect(req).map_err(|e| format!("websocket connect {url}: {e}"))?;
    let proto = resp.headers().get("Sec-WebSocket-Protocol").and_then(|v| v.to_str().ok());
    if proto != Some(SUBPROTOCOL) {
        return Err(format!("gateway did not echo subprotocol {SUBPROTOCOL} (got {proto:?})"));
    }
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    Ok(ws)
}

impl V2 {
    /// Connect and send ClientHello and `Accept` WebP, as the viewer does
    /// in a browser that decodes it.
    pub fn connect(url: &str) -> Result<V2, String> {
        V2::connect_accepting(url, enc::ACCEPT_WEBP)
    }

    /// Connect and send ClientHello, then `Accept` with `formats` unless 0
    /// (a browser without WebP sends none).
    pub fn connect_accepting(url: &str, formats: u8) -> Result<V2, String> {
        let ws = open(url)?;
        let mut v = V2::from_ws(ws);
        let mut hello = enc::hello(VERSION);
        if formats != 0 {
            hello.extend_from_slice(&enc::accept(formats));
        }
        v.send(&hello)?;
        Ok(v)
    }

    pub fn from_ws(ws: Ws) -> V2 {
        V2 { ws, c: Canvas::default(), auto_ack: true, closed: None }
    }

    pub fn tcp(&self) -> &TcpStream {
        match self.ws.get_ref() {
            MaybeTlsStream::Plain(s) => s,
            _ => unreachable!("plain ws only"),
        }
    }

    pub fn set_read_timeout(&self, d: Duration) {
        self.tcp().set_read_timeout(Some(d)).unwrap();
    }

    pub fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.ws.send(Message::Binary(msg.to_vec())).map_err(|e| format!("send: {e}"))
    }
    pub fn key(&mut self, down: bool, keysym: u32) -> Result<(), String> {
        self.send(&enc::key(down, keysym))
    }
    pub fn pointer(&mut self, x: u16, y: u16, mask: u8) -> Result<(), String> {
        self.send(&enc::pointer(x, y, mask))
    }
    pub fn clipboard_send(&mut self, text: &str) -> Result<(), String> {
        self.send(&enc::clipboard(text))
    }
    pub fn password(&mut self, pw: &[u8]) -> Result<(), String> {
        self.send(&enc::password(pw))
    }
    pub fn credentials(&mut self, user: &[u8], pw: &[u8]) -> Result<(), String> {
        self.send(&enc::credentials(user, pw))
    }
    pub fn resize_request(&mut self, w: u16, h: u16) -> Result<(), String> {
        self.send(&enc::resize(w, h))
    }

    /// Read one WebSocket message and apply every protocol message in it.
    /// `Ok(msgs)`; `Err(End)` when the connection ended or timed out.
    /// A malformed message from the gateway panics (it is a gateway bug).
    pub fn read(&mut self) -> Result<Vec<Msg>, End> {
        if let Some(e) = &self.closed {
            return Err(e.clone());
        }
        loop {
            let m = match self.ws.read() {
                Ok(m) => m,
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    return Err(End::Timeout)
                }
                Err(e) => {
                    let end = End::Gone(e.to_string());
                    self.closed = Some(end.clone());
                    return Err(end);
                }
            };
            match m {
                Message::Binary(b) => {
                    let msgs = self.c.apply(&b).unwrap_or_else(|e| panic!("gateway sent a malformed message: {e}"));
                    if self.auto_ack {
                        for m in &msgs {
                            match *m {
                                Msg::EndFrame(id) | Msg::EndPart(id, true) => {
                                    let _ = self.ws.send(Message::Binary(enc::received(id)));
                                    let _ = self.ws.send(Message::Binary(enc::ack(id)));
                                }
                                Msg::EndPart(id, false) => {
                                    let _ = self.ws.send(Message::Binary(enc::received(id)));
                                }
                                _ => {}
                            }
                        }
                    }
                    return Ok(msgs);
                }
                Message::Close(f) => {
                    let end = match f {
                        Some(f) => End::Closed(f.code.into(), f.reason.to_string()),
                        None => End::Closed(1005, String::new()),
                    };
                    self.closed = Some(end.clone());
                    return Err(end);
                }
                Message::Text(t) => panic!("gateway sent a text message: {t:?}"),
                _ => continue,
            }
        }
    }

    /// Read until `pred(self)` holds or the connection ends / `timeout` passes.
    pub fn wait(&mut self, timeout: Duration, mut pred: impl FnMut(&V2) -> bool) -> Result<(), End> {
        let deadline = Instant::now() + timeout;
        while !pred(self) {
            if Instant::now() >= deadline {
                return Err(End::Timeout);
            }
            match self.read() {
                Ok(_) | Err(End::Timeout) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Read until the connection ends (Close or TCP end) or `timeout` passes.
    pub fn wait_end(&mut self, timeout: Duration) -> End {
        let deadline = Instant::now() + timeout;
        loop {
            if Instant::now() >= deadline {
                return End::Timeout;
            }
            match self.read() {
                Ok(_) | Err(End::Timeout) => {}
                Err(e) => return e,
            }
        }
    }

    /// Close politely (best effort).
    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}

impl Canvas {
    /// Parse and apply one WebSocket message's protocol messages.
    pub fn apply(&mut self, b: &[u8]) -> Result<Vec<Msg>, String> {
        if b.is_empty() {
            return Err("empty message".into());
        }
        self.bytes += b.len() as u64;
        let mut out = Vec::new();
        let mut p = 0;
        while p < b.len() {
            let ty = rd_u8(b, &mut p)?;
            let msg = match ty {
                t::SERVER_HELLO => {
                    let version = rd_u8(b, &mut p)?;
                    let (width, height) = (rd_u16(b, &mut p)?, rd_u16(b, &mut p)?);
                    let flags = rd_u8(b, &mut p)?;
                    let name = rd_str(b, &mut p)?;
                    if version != VERSION {
                        return Err(format!("ServerHello version {version}"));
                    }
                    if self.hello.is_some() {
                        return Err("second ServerHello".into());
                    }
                    self.set_size(width, height);
                    self.name = name.clone();
                    let m = Msg::ServerHello { version, width, height, flags, name };
                    self.hello = Some(m.clone());
                    m
                }
                t::RESIZE => {
                    let (width, height) = (rd_u16(b, &mut p)?, rd_u16(b, &mut p)?);
                    self.need_hello("Resize")?;
                    // The canvas is cleared; a picture in parts and an image
                    // in pieces are void (docs/protocol.md).
                    self.set_size(width, height);
                    self.held.clear();
                    self.image = None;
                    self.pending.push(Op::Resize);
                    Msg::Resize { width, height }
                }
                t::FILL => {
                    let at = p - 1;
                    let (x, y, w, h) = (rd_u16(b, &mut p)?, rd_u16(b, &mut p)?, rd_u16(b, &mut p)?, rd_u16(b, &mut p)?);
                    let c = rd_bytes(b, &mut p, 4)?;
                    let rgba = [c[0], c[1], c[2], c[3]];
                    self.need_hello("Fill")?;
                    self.check(x, y, w, h)?;
                    self.pending.push(Op::Fill(x, y, w, h, rgba));
                    self.count(kind::FILL, p - at);
                    Msg::Fill { x, y, w, h, rgba }
                }
                t::COPY => {
                    let at = p - 1;
                    let v: Vec<u16> = (0..6).map(|_| rd_u16(b, &mut p)).collect::<Result<_, _>>()?;
                    let (x, y, w, h, sx, sy) = (v[0], v[1], v[2], v[3], v[4], v[5]);
                    self.need_hello("Copy")?;
                    self.check(x, y, w, h)?;
                    self.check(sx, sy, w, h)?;
                    self.pending.push(Op::Copy(x, y, w, h, sx, sy));
                    self.copies += 1;
                    self.count(kind::COPY, p - at);
                    Msg::Copy { x, y, w, h, sx, sy }
                }
                t::PIXELS => {
                    let at = p - 1;
                    let (x, y, w, h) = (rd_u16(b, &mut p)?, rd_u16(b, &mut p)?, rd_u16(b, &mut p)?, rd_u16(b, &mut p)?);
                    let data = rd_bytes(b, &mut p, w as usize * h as usize * 3)?;
                    self.need_hello("Pixels")?;
                    self.check(x, y, w, h)?;
                    self.pending.push(Op::Rgb(x, y, w, h, data.to_vec()));
                    self.count(kind::PIXELS, p - at);
                    Msg::Pixels { x, y, w, h }
                }
                t::PALETTE => {
                    let at = p - 1;
                    let (x, y, w, h) = (rd_u16(b, &mut p)?, rd_u16(b, &mut p)?, rd_u16(b, &mut p)?, rd_u16(b, &mut p)?);
                    let n = rd_u8(b, &mut p)? as usize + 1;
                    let colours = rd_bytes(b, &mut p, n * 3)?.to_vec();
                    let bits = match n {
                        0..=2 => 1,
                        3..=4 => 2,
                        5..=16 => 4,
                        _ => 8,
                    };
                    let row_bytes = (w as usize * bits).div_ceil(8);
                    let packed = rd_bytes(b, &mut p, row_bytes * h as usize)?;
                    self.need_hello("Palette")?;
                    self.check(x, y, w, h)?;
                    let mut rgb = Vec::with_capacity(w as usize * h as usize * 3);
                    for row in packed.chunks_exact(row_bytes.max(1)).take(h as usize) {
                        for i in 0..w as usize {
                            let bit = i * bits;
                            let idx = (row[bit / 8] >> (8 - bits - bit % 8)) as usize & ((1 << bits) - 1);
                            if idx >= n {
                                return Err(format!("Palette index {idx} of {n} colours"));
                            }
                            rgb.extend_from_slice(&colours[idx * 3..idx * 3 + 3]);
                        }
                    }
                    self.pending.push(Op::Rgb(x, y, w, h, rgb));
                    self.count(kind::PALETTE, p - at);
                    Msg::Palette { x, y, w, h, colours: n }
                }
                t::JPEG | t::PNG | t::WEBP => {
                    let at = p - 1;
                    let (x, y, w, h) = (rd_u16(b, &mut p)?, rd_u16(b, &mut p)?, rd_u16(b, &mut p)?, rd_u16(b, &mut p)?);
                    let len = rd_u32(b, &mut p)? as usize;
                    let data = rd_bytes(b, &mut p, len)?;
                    let format = match ty {
                        t::JPEG => 0,
                        t::PNG => 1,
                        _ => 2,
                    };
                    self.need_hello("image")?;
                    self.check(x, y, w, h)?;
                    let rgb = decode_image(format, data, w, h)?;
                    self.pending.push(Op::Rgb(x, y, w, h, rgb));
                    self.count(image_kind(format), p - at);
                    match format {
                        0 => {
                            self.jpeg_pixels += w as u64 * h as u64;
                            Msg::Jpeg { x, y, w, h, len }
                        }
                        1 => Msg::Png { x, y, w, h, len },
                        _ => Msg::Webp { x, y, w, h, len },
                    }
                }
                t::IMAGE_BEGIN => {
                    let at = p - 1;
                    let (x, y, w, h) = (rd_u16(b, &mut p)?, rd_u16(b, &mut p)?, rd_u16(b, &mut p)?, rd_u16(b, &mut p)?);
                    let format = rd_u8(b, &mut p)?;
                    let total = rd_u32(b, &mut p)? as usize;
                    self.need_hello("ImageBegin")?;
                    self.check(x, y, w, h)?;
                    if format > 2 {
                        return Err(format!("ImageBegin format {format}"));
                    }
                    if self.image.is_some() {
                        return Err("ImageBegin while an image is incomplete".into());
                    }
                    self.next_image += 1;
                    self.pending.push(Op::Incomplete(self.next_image));
                    self.image =
                        Some(Image { id: self.next_image, rect: (x, y, w, h), format, total, data: Vec::new() });
                    self.count(image_kind(format), p - at);
                    Msg::ImageBegin { x, y, w, h, format, total }
                }
                t::IMAGE_DATA => {
                    let len = rd_u32(b, &mut p)? as usize;
                    let data = rd_bytes(b, &mut p, len)?;
                    let Some(img) = self.image.as_mut() else {
                        return Err("ImageData without ImageBegin".into());
                    };
                    img.data.extend_from_slice(data);
                    if img.data.len() > img.total {
                        return Err(format!("ImageData past the image's {} bytes", img.total));
                    }
                    let k = image_kind(img.format);
                    self.kinds[k].1 += 5 + len as u64;
                    if img.data.len() == img.total {
                        let img = self.image.take().unwrap();
                        let (x, y, w, h) = img.rect;
                        let rgb = decode_image(img.format, &img.data, w, h)?;
                        if img.format == 0 {
                            self.jpeg_pixels += w as u64 * h as u64;
                        }
                        let slot = self.pending.iter_mut().chain(self.held.iter_mut());
                        let op = slot
                            .into_iter()
                            .find(|o| matches!(o, Op::Incomplete(id) if *id == img.id))
                            .ok_or("the image's frame is gone")?;
                        *op = Op::Rgb(x, y, w, h, rgb);
                    }
                    Msg::ImageData(len)
                }
                t::END_FRAME => {
                    let id = rd_u32(b, &mut p)?;
                    self.need_hello("EndFrame")?;
                    let ops = std::mem::take(&mut self.pending);
                    self.draw(&ops)?;
                    self.frames += 1;
                    self.last_frame = Some(id);
                    self.last_end = Some(id);
                    Msg::EndFrame(id)
                }
                t::END_PART => {
                    let id = rd_u32(b, &mut p)?;
                    let last = match rd_u8(b, &mut p)? {
                        0 => false,
                        1 => true,
                        f => return Err(format!("EndPart flag {f}")),
                    };
                    self.need_hello("EndPart")?;
                    self.held.append(&mut self.pending);
                    if last {
                        if self.image.is_some() {
                            return Err("picture ended inside an image".into());
                        }
                        let ops = std::mem::take(&mut self.held);
                        self.draw(&ops)?;
                        self.frames += 1;
                        self.last_frame = Some(id);
                    } else {
                        self.parts += 1;
                    }
                    self.last_end = Some(id);
                    Msg::EndPart(id, last)
                }
                t::CURSOR => {
                    let (hx, hy, w, h) =
                        (rd_u16(b, &mut p)?, rd_u16(b, &mut p)?, rd_u16(b, &mut p)?, rd_u16(b, &mut p)?);
                    self.cursor_rgba = rd_bytes(b, &mut p, w as usize * h as usize * 4)?.to_vec();
                    self.cursor = Some((hx, hy, w, h));
                    Msg::Cursor { hot_x: hx, hot_y: hy, w, h }
                }
                t::BELL => {
                    self.bells += 1;
                    Msg::Bell
                }
                t::CLIPBOARD => {
                    let s = rd_str(b, &mut p)?;
                    self.clipboard.push(s.clone());
                    Msg::Clipboard(s)
                }
                t::DESKTOP_NAME => {
                    let s = rd_str(b, &mut p)?;
                    self.name = s.clone();
                    Msg::DesktopName(s)
                }
                t::PASSWORD_REQUIRED => {
                    self.password_required = true;
                    Msg::PasswordRequired
                }
                t::CREDENTIALS_REQUIRED => {
                    self.credentials_required = true;
                    Msg::CredentialsRequired
                }
                t::LED_STATE => {
                    let leds = rd_u8(b, &mut p)?;
                    if leds > 7 {
                        return Err(format!("LedState {leds:#04x}: bits 3-7 set"));
                    }
                    self.leds = Some(leds);
                    Msg::LedState(leds)
                }
                t::STATUS => {
                    let level = rd_u8(b, &mut p)?;
                    if level > 1 {
                        return Err(format!("Status level {level}"));
                    }
                    let s = rd_str(b, &mut p)?;
                    self.statuses.push(s.clone());
                    Msg::Status(level, s)
                }
                t::ERROR => {
                    let s = rd_str(b, &mut p)?;
                    self.error = Some(s.clone());
                    Msg::Error(s)
                }
                other => return Err(format!("unknown message type {other:#04x}")),
            };
            out.push(msg);
        }
        Ok(out)
    }

    /// Apply decoded ops to the canvas, in order.
    fn draw(&mut self, ops: &[Op]) -> Result<(), String> {
        for op in ops {
            match op {
                Op::Fill(x, y, w, h, rgba) => {
                    for row in *y as usize..(*y + *h) as usize {
                        let o = (row * self.width as usize + *x as usize) * 4;
                        for px in self.fb[o..o + *w as usize * 4].chunks_exact_mut(4) {
                            px.copy_from_slice(rgba);
                        }
                    }
                }
                Op::Copy(x, y, w, h, sx, sy) => {
                    let stride = self.width as usize * 4;
                    let rows: Vec<usize> =
                        if y > sy { (0..*h as usize).rev().collect() } else { (0..*h as usize).collect() };
                    for i in rows {
                        let s = (*sy as usize + i) * stride + *sx as usize * 4;
                        let d = (*y as usize + i) * stride + *x as usize * 4;
                        self.fb.copy_within(s..s + *w as usize * 4, d);
                    }
                }
                Op::Rgb(x, y, w, h, rgb) => self.put_rgb(*x, *y, *w, *h, rgb),
                Op::Incomplete(_) => return Err("a frame ended inside an image".into()),
                Op::Resize => {}
            }
        }
        Ok(())
    }

    fn count(&mut self, k: usize, bytes: usize) {
        self.kinds[k].0 += 1;
        self.kinds[k].1 += bytes as u64;
    }

    /// Tightly packed RGB into the canvas (alpha 255).
    fn put_rgb(&mut self, x: u16, y: u16, w: u16, h: u16, rgb: &[u8]) {
        let row = w as usize * 3;
        for (i, r) in rgb.chunks_exact(row.max(1)).enumerate().take(h as usize) {
            let o = ((y as usize + i) * self.width as usize + x as usize) * 4;
            for (d, s) in self.fb[o..o + w as usize * 4].chunks_exact_mut(4).zip(r.chunks_exact(3)) {
                d.copy_from_slice(&[s[0], s[1], s[2], 255]);
            }
        }
    }

    fn need_hello(&self, what: &str) -> Result<(), String> {
        if self.hello.is_none() {
            return Err(format!("{what} before ServerHello"));
        }
        Ok(())
    }

    fn set_size(&mut self, w: u16, h: u16) {
        self.width = w;
        self.height = h;
        self.fb = [0, 0, 0, 255].repeat(w as usize * h as usize);
    }

    fn check(&self, x: u16, y: u16, w: u16, h: u16) -> Result<(), String> {
        if x as u32 + w as u32 > self.width as u32 || y as u32 + h as u32 > self.height as u32 {
            return Err(format!("rectangle {w}x{h}+{x}+{y} outside the {}x{} canvas", self.width, self.height));
        }
        Ok(())
    }

    /// RGBA of (x, y); [0, 0, 0, 0] outside the canvas (or before ServerHello).
    pub fn pixel(&self, x: u16, y: u16) -> [u8; 4] {
        if x >= self.width || y >= self.height {
            return [0; 4];
        }
        let o = (y as usize * self.width as usize + x as usize) * 4;
        [self.fb[o], self.fb[o + 1], self.fb[o + 2], self.fb[o + 3]]
    }
}

/// Decode a JPEG (`format` 0), PNG (1) or WebP lossless (2) that must be
/// exactly `w`×`h`, to RGB.
fn decode_image(format: u8, data: &[u8], w: u16, h: u16) -> Result<Vec<u8>, String> {
    let (dw, dh, rgb) = if format == 0 {
        let mut d = jpeg_decoder::Decoder::new(data);
        let rgb = d.decode().map_err(|e| format!("Jpeg {w}x{h}: {e}"))?;
        let info = d.info().ok_or("Jpeg without a frame header")?;
        if info.pixel_format != jpeg_decoder::PixelFormat::RGB24 {
            return Err(format!("Jpeg {w}x{h} is {:?}", info.pixel_format));
        }
        (info.width, info.height, rgb)
    } else if format == 1 {
        decode_png(data)?
    } else {
        decode_webp_lossless(data)?
    };
    if (dw, dh) != (w, h) {
        return Err(format!("image {w}x{h} decodes to {dw}x{dh}"));
    }
    Ok(rgb)
}

/// WebP as the gateway sends it (docs/protocol.md `Webp`): a RIFF file with
/// one `VP8L` (lossless) chunk and no alpha, decoded by image-webp.
fn decode_webp_lossless(data: &[u8]) -> Result<(u16, u16, Vec<u8>), String> {
    if data.get(..4) != Some(b"RIFF".as_slice()) || data.get(8..16) != Some(b"WEBPVP8L".as_slice()) {
        return Err("not a WebP lossless file (RIFF, WEBP, one VP8L chunk)".into());
    }
    let chunk = data.get(16..20).ok_or("truncated WebP")?;
    let len = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize;
    if data.len() != 20 + len + (len & 1) {
        return Err(format!("WebP of {} bytes with a {len}-byte VP8L chunk", data.len()));
    }
    let mut d = image_webp::WebPDecoder::new(std::io::Cursor::new(data)).map_err(|e| format!("WebP: {e}"))?;
    let (w, h) = d.dimensions();
    if d.has_alpha() {
        return Err("WebP with alpha".into());
    }
    let mut rgb = vec![0u8; d.output_buffer_size().ok_or("WebP too large")?];
    d.read_image(&mut rgb).map_err(|e| format!("WebP data: {e}"))?;
    Ok((w as u16, h as u16, rgb))
}

/// A PNG decoder for what the gateway sends (docs/protocol.md `Png`): 8-bit
/// RGB, no interlace; chunks and CRCs checked, filters undone.
fn decode_png(png: &[u8]) -> Result<(u16, u16, Vec<u8>), String> {
    if png.get(..8) != Some(b"\x89PNG\r\n\x1a\n".as_slice()) {
        return Err("not a PNG".into());
    }
    let (mut p, mut size, mut idat) = (8, None, Vec::new());
    loop {
        let len = rd_be32(png, p)? as usize;
        let body = png.get(p + 8..p + 8 + len).ok_or("truncated PNG chunk")?;
        let mut crc = flate2::Crc::new();
        crc.update(&png[p + 4..p + 8 + len]);
        if rd_be32(png, p + 8 + len)? != crc.sum() {
            return Err("PNG chunk CRC".into());
        }
        match &png[p + 4..p + 8] {
            b"IHDR" => {
                if body.len() != 13 || body[8..] != [8, 2, 0, 0, 0] {
                    return Err(format!("PNG header {body:?}: not 8-bit RGB"));
                }
                size = Some((rd_be32(body, 0)?, rd_be32(body, 4)?));
            }
            b"IDAT" => idat.extend_from_slice(body),
            b"IEND" => break,
            other => return Err(format!("PNG chunk {other:?}")),
        }
        p += 12 + len;
    }
    let (w, h) = size.ok_or("PNG without IHDR")?;
    let row = w as usize * 3;
    let mut raw = Vec::with_capacity((row + 1) * h as usize);
    flate2::Decompress::new(true)
        .decompress_vec(&idat, &mut raw, flate2::FlushDecompress::Finish)
        .map_err(|e| format!("PNG data: {e}"))?;
    if raw.len() != (row + 1) * h as usize {
        return Err(format!("PNG data: {} bytes for {w}x{h}", raw.len()));
    }
    let mut img = vec![0u8; row * h as usize];
    for y in 0..h as usize {
        let f = raw[y * (row + 1)];
        for i in 0..row {
            let v = raw[y * (row + 1) + 1 + i];
            let a = if i >= 3 { img[y * row + i - 3] } else { 0 } as i16;
            let b = if y > 0 { img[(y - 1) * row + i] } else { 0 } as i16;
            let c = if y > 0 && i >= 3 { img[(y - 1) * row + i - 3] } else { 0 } as i16;
            let pred = match f {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let q = a + b - c;
                    let (pa, pb, pc) = ((q - a).abs(), (q - b).abs(), (q - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                _ => return Err(format!("PNG filter {f}")),
            };
            img[y * row + i] = v.wrapping_add(pred as u8);
        }
    }
    Ok((w as u16, h as u16, img))
}

fn rd_be32(b: &[u8], p: usize) -> Result<u32, String> {
    let s = b.get(p..p + 4).ok_or("truncated PNG")?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}
