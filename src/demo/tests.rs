//! Demo server tests: the handshake driven with literal client bytes, and
//! whole sessions against the real RFB client ([`Loopback`], also used by
//! `rfb::client` tests) checking that every encoding the demo sends decodes
//! to exactly the demo's framebuffer.

use super::*;
use crate::fb::Framebuffer;
use crate::rfb::encoding as enc;
use crate::rfb::{RfbClient, RfbConfig, RfbError, RfbEvent};

/// A demo server and an `RfbClient` wired back to back in memory.
pub(crate) struct Loopback {
    pub server: DemoServer,
    pub client: RfbClient,
    pub fb: Framebuffer,
    /// Client → server bytes not yet consumed.
    pub c2s: Vec<u8>,
    /// Server → client bytes not yet consumed.
    pub s2c: Vec<u8>,
    /// Every event the client emitted, in order.
    pub events: Vec<RfbEvent>,
    /// The server's error, once it failed (it then only flushes `s2c`).
    pub server_error: Option<String>,
    /// Most bytes handed to the client per `handle_input` call.
    pub chunk: usize,
    /// Server → client bytes so far.
    pub bytes_down: usize,
    updates: usize,
}

impl Loopback {
    /// A 320×200 demo desktop named "loopback".
    pub fn new(password: Option<&[u8]>, cfg: RfbConfig) -> Self {
        Self::sized(320, 200, password, cfg)
    }

    pub fn sized(w: u16, h: u16, password: Option<&[u8]>, cfg: RfbConfig) -> Self {
        let dc = DemoConfig {
            width: w,
            height: h,
            name: "loopback".into(),
            password: password.map(<[u8]>::to_vec),
            fps: 30,
        };
        Loopback {
            server: DemoServer::new(&dc, 0),
            client: RfbClient::new(cfg),
            fb: Framebuffer::new(0, 0),
            c2s: Vec::new(),
            s2c: Vec::new(),
            events: Vec::new(),
            server_error: None,
            chunk: usize::MAX,
            bytes_down: 0,
            updates: 0,
        }
    }

    /// Move bytes both ways at time `now` until neither side makes progress.
    pub fn pump(&mut self, now: u64) -> Result<(), RfbError> {
        loop {
            let mut progress = false;
            if self.server_error.is_none() {
                match self.server.handle_input(&self.c2s, now, &mut self.s2c) {
                    Ok(n) => {
                        progress |= n > 0;
                        self.c2s.drain(..n);
                    }
                    Err(e) => self.server_error = Some(e),
                }
                let before = self.s2c.len();
                if self.server_error.is_none() {
                    self.server.poll(now, &mut self.s2c);
                }
                self.bytes_down += self.s2c.len() - before;
            }
            // Offer `chunk` more bytes each call (unused ones again, as the
            // client's contract asks) until all are offered and none used.
            let mut n = 0;
            while n < self.s2c.len() {
                n = self.s2c.len().min(n.saturating_add(self.chunk));
                let used = self.client.handle_input(&self.s2c[..n], &mut self.fb, &mut self.c2s)?;
                while let Some(e) = self.client.poll_event() {
                    self.updates += (e == RfbEvent::UpdateDone) as usize;
                    self.events.push(e);
                }
                self.s2c.drain(..used);
                n -= used;
                progress |= used > 0;
            }
            if !progress {
                return Ok(());
            }
        }
    }

    /// Handshake to the point where the client is connected.
    pub fn connect(&mut self) -> Result<(), RfbError> {
        self.server.start(&mut self.s2c);
        self.pump(0)?;
        if !self.client.is_normal() {
            return Err(self.client.closed_error());
        }
        Ok(())
    }

    /// Request an update (full the first time, incremental after) and let
    /// the demo answer it at time `now`. Returns whether an update arrived.
    pub fn frame(&mut self, now: u64) -> Result<bool, RfbError> {
        let before = self.updates;
        if !self.client.update_pending() {
            let full = before == 0;
            self.client.request_update(!full, &self.fb, &mut self.c2s);
        }
        self.pump(now)?;
        Ok(self.updates > before)
    }

    /// The client's framebuffer shows exactly the demo's current frame.
    pub fn assert_same_picture(&self) {
        let (w, h, px) = self.server.framebuffer();
        assert_eq!((self.fb.width(), self.fb.height()), (w, h), "framebuffer size");
        for (i, (&want, got)) in px.iter().zip(self.fb.data().chunks_exact(4)).enumerate() {
            let want = [(want >> 16) as u8, (want >> 8) as u8, want as u8, 255];
            assert_eq!(got, want, "pixel ({}, {}) of {w}x{h}", i % w as usize, i / w as usize);
        }
    }
}

fn cfg(encodings: &[i32]) -> RfbConfig {
    RfbConfig { shared: true, encodings: encodings.to_vec(), password: None, ..Default::default() }
}

/// Run `frames` frames 70 ms apart (the band scrolls, the box moves, the
/// counter ticks), checking the picture after each.
fn session(lb: &mut Loopback, frames: u64) {
    lb.connect().unwrap();
    for i in 0..frames {
        lb.frame(i * 70).unwrap();
        lb.assert_same_picture();
    }
}

#[test]
fn every_encoding_decodes_to_the_demo_picture() {
    use enc::*;
    let mut sizes = Vec::new();
    for list in [
        &[RAW][..],
        &[RRE],
        &[HEXTILE],
        &[ZRLE],
        &[TIGHT],
        &[COPY_RECT, HEXTILE],
        &[COPY_RECT, ZRLE, HEXTILE, RRE, DESKTOP_SIZE],
    ] {
        let mut lb = Loopback::new(None, cfg(list));
        session(&mut lb, 8);
        assert_eq!(lb.server.client_encodings(), list, "SetEncodings as configured");
        assert!(lb.events.iter().filter(|e| **e == RfbEvent::UpdateDone).count() >= 8, "{list:?}");
        sizes.push(lb.bytes_down);
    }
    // Each encoding really did its job (Raw is 4 bytes a pixel per update).
    let raw = sizes[0];
    assert!(sizes[1] < raw / 3, "RRE {} vs Raw {raw}", sizes[1]);
    assert!(sizes[2] < raw / 3, "Hextile {} vs Raw {raw}", sizes[2]);
    assert!(sizes[3] < raw / 10, "ZRLE {} vs Raw {raw}", sizes[3]);
    assert!(sizes[4] < raw / 10, "Tight {} vs Raw {raw}", sizes[4]);
    assert!(sizes[5] < sizes[2], "CopyRect saves on the band: {} vs {}", sizes[5], sizes[2]);
}

#[test]
fn byte_at_a_time_gives_the_same_session() {
    use enc::*;
    for list in [&[COPY_RECT, ZRLE, HEXTILE, RRE][..], &[COPY_RECT, TIGHT]] {
        same_session_at_any_chunking(list);
    }
}

fn same_session_at_any_chunking(list: &[i32]) {
    let mut whole = Loopback::sized(96, 64, None, cfg(list));
    session(&mut whole, 4);
    let mut bytewise = Loopback::sized(96, 64, None, cfg(list));
    bytewise.chunk = 1;
    session(&mut bytewise, 4);
    assert_eq!(bytewise.events, whole.events);
    assert_eq!(bytewise.bytes_down, whole.bytes_down);
    assert!(bytewise.fb.data() == whole.fb.data());
    let mut odd = Loopback::sized(96, 64, None, cfg(list));
    odd.chunk = 13;
    session(&mut odd, 4);
    assert!(odd.fb.data() == whole.fb.data());
}

#[test]
fn vnc_auth_and_input_round_trip() {
    let mut lb =
        Loopback::new(Some(b"12345678"), RfbConfig { password: Some(b"123456789".to_vec()), ..cfg(&[enc::ZRLE]) });
    session(&mut lb, 2);
    assert_eq!(lb.events[0], RfbEvent::Connected { width: 320, height: 200, name: "loopback".into() });
    let mut out = Vec::new();
    for k in ['o', 'k'] {
        lb.client.key_event(true, k as u32, &mut out);
        lb.client.key_event(false, k as u32, &mut out);
    }
    lb.client.key_event(true, 0xff0d, &mut out);
    lb.client.pointer_event(4, 300, 190, &mut out);
    lb.client.client_cut_text("x\u{e9}y", &mut out);
    lb.c2s.extend(out);
    lb.frame(500).unwrap();
    assert_eq!(lb.server.typed_text(), "ok\n");
    assert_eq!(lb.server.pointer(), (300, 190, 4));
    assert_eq!(lb.server.cut_text(), b"x\xe9y");
    assert!(lb.events.contains(&RfbEvent::ServerCutText("x\u{e9}y".into())));
    lb.assert_same_picture();
}

#[test]
fn wrong_password_is_refused_with_a_reason() {
    let mut lb = Loopback::new(Some(b"right"), RfbConfig { password: Some(b"wrong".to_vec()), ..cfg(&[enc::RAW]) });
    assert_eq!(lb.connect(), Err(RfbError::AuthFailed("authentication failed".into())));
    assert_eq!(lb.server_error.as_deref(), Some("VncAuth: wrong password"));
    assert!(!lb.server.is_running());
}

#[test]
fn resize_reaches_the_client() {
    use enc::*;
    let mut lb = Loopback::new(None, cfg(&[ZRLE, COPY_RECT, DESKTOP_SIZE]));
    session(&mut lb, 2);
    assert!(lb.server.resize(200, 120));
    lb.frame(300).unwrap();
    assert!(lb.events.contains(&RfbEvent::Resized { width: 200, height: 120 }));
    // The client answers a resize with a full request, as the gateway does.
    lb.client.request_update(false, &lb.fb, &mut lb.c2s);
    lb.frame(400).unwrap();
    lb.assert_same_picture();
    // Without DesktopSize in SetEncodings the demo does not resize.
    let mut lb = Loopback::new(None, cfg(&[RAW]));
    lb.connect().unwrap();
    assert!(!lb.server.resize(200, 120));
}

// --------------------------------------------- handshake with literal bytes

/// Drive a demo server with `input`; returns what it wrote and its result.
fn drive(password: Option<&[u8]>, input: &[u8]) -> (Vec<u8>, Result<usize, String>) {
    let dc = DemoConfig { width: 8, height: 4, name: "n".into(), password: password.map(<[u8]>::to_vec), fps: 30 };
    let mut s = DemoServer::new(&dc, 0);
    let mut out = Vec::new();
    s.start(&mut out);
    let r = s.handle_input(input, 0, &mut out);
    (out, r)
}

fn server_init_bytes() -> Vec<u8> {
    let mut v = vec![0, 8, 0, 4];
    PixelFormat::server_native().write(&mut v);
    v.extend_from_slice(&[0, 0, 0, 1, b'n']);
    v
}

#[test]
fn handshake_for_each_client_version() {
    // (client version, bytes after it, what the server answers after its own version).
    let mut v33 = vec![0, 0, 0, 1];
    v33.extend(server_init_bytes());
    let mut v37 = vec![1, 1];
    v37.extend(server_init_bytes());
    let mut v38 = vec![1, 1, 0, 0, 0, 0];
    v38.extend(server_init_bytes());
    for (version, rest, want) in [
        (b"RFB 003.003\n", &[1u8][..], &v33),
        (b"RFB 003.005\n", &[1], &v33), // §7.1.1: 3.5 is 3.3
        (b"RFB 003.007\n", &[1, 1], &v37),
        (b"RFB 003.008\n", &[1, 1], &v38),
    ] {
        let mut input = version.to_vec();
        input.extend_from_slice(rest);
        let (out, r) = drive(None, &input);
        assert_eq!(r, Ok(input.len()), "{version:?}");
        assert_eq!(&out[..12], b"RFB 003.008\n");
        assert_eq!(&out[12..], &want[..], "{version:?}");
    }
    for bad in [&b"RFB 003.009\n"[..], b"RFB 004.000\n", b"GET / HTTP/1"] {
        assert!(drive(None, bad).1.is_err(), "{bad:?}");
    }
    // Partial input is not consumed.
    assert_eq!(drive(None, b"RFB 003.0").1, Ok(0));
}

#[test]
fn vnc_auth_handshake_bytes() {
    // 3.3: the server picks VncAuth (U32 2) and sends a challenge.
    let (out, r) = drive(Some(b"pw"), b"RFB 003.003\n");
    assert_eq!(r, Ok(12));
    assert_eq!(&out[12..16], [0, 0, 0, 2]);
    assert_eq!(out.len(), 16 + 16);
    // 3.8: offers only VncAuth; choosing None fails with a reason.
    let (out, r) = drive(Some(b"pw"), b"RFB 003.008\n\x01");
    assert_eq!(&out[12..14], [1, 2]);
    assert_eq!(r, Err("security type 1 was not offered".into()));
    let mut fail = vec![0, 0, 0, 1, 0, 0, 0, 31];
    fail.extend_from_slice(b"security type 1 was not offered");
    assert_eq!(&out[14..], &fail[..]);
    // 3.7: a failure has no reason string.
    let mut input = b"RFB 003.007\n\x02".to_vec();
    input.extend_from_slice(&[0; 16]);
    let (out, r) = drive(Some(b"pw"), &input);
    assert_eq!(r, Err("VncAuth: wrong password".into()));
    assert_eq!(&out[14 + 16..], [0, 0, 0, 1]);
    // The right response (computed by the client's independent DES code).
    let dc = DemoConfig { width: 8, height: 4, name: "n".into(), password: Some(b"pw".to_vec()), fps: 30 };
    let mut s = DemoServer::new(&dc, 0);
    let mut out = Vec::new();
    s.start(&mut out);
    s.handle_input(b"RFB 003.008\n\x02", 0, &mut out).unwrap();
    let challenge: [u8; 16] = out[14..30].try_into().unwrap();
    out.clear();
    let resp = crate::rfb::auth::vnc_auth_response(b"pw", &challenge);
    assert_eq!(s.handle_input(&resp, 0, &mut out), Ok(16));
    assert_eq!(out, [0, 0, 0, 0]);
    assert_eq!(s.handle_input(&[0], 0, &mut out), Ok(1));
    assert!(s.is_running());
}

#[test]
fn client_message_limits() {
    let mut lb = Loopback::sized(16, 16, None, cfg(&[enc::RAW]));
    lb.connect().unwrap();
    // SetEncodings with too many entries.
    let mut m = vec![2, 0];
    m.extend_from_slice(&((MAX_ENCODINGS + 1) as u16).to_be_bytes());
    assert!(lb.server.handle_input(&m, 0, &mut Vec::new()).unwrap_err().contains("limit"));
    let mut lb = Loopback::sized(16, 16, None, cfg(&[enc::RAW]));
    lb.connect().unwrap();
    let mut m = vec![6, 0, 0, 0];
    m.extend_from_slice(&((MAX_CUT_TEXT + 1) as u32).to_be_bytes());
    assert!(lb.server.handle_input(&m, 0, &mut Vec::new()).unwrap_err().contains("limit"));
    let mut lb = Loopback::sized(16, 16, None, cfg(&[enc::RAW]));
    lb.connect().unwrap();
    assert!(lb.server.handle_input(&[99], 0, &mut Vec::new()).is_err());
}

// ------------------------------ encoders × pixel formats × client decoders

/// The demo's encoders, in every pixel format they support, decode with the
/// client's decoders to exactly what the demo's Raw decodes to; and Tight
/// picks the sub-encoding the content calls for.
#[test]
fn encoders_round_trip_in_every_pixel_format() {
    use crate::rfb::decode::{self as dec, Decoder, PixelContext, Step};
    let pf = |bpp, depth, be, max: [u16; 3], shift: [u8; 3]| PixelFormat {
        bits_per_pixel: bpp,
        depth,
        big_endian: be,
        true_colour: true,
        red_max: max[0],
        green_max: max[1],
        blue_max: max[2],
        red_shift: shift[0],
        green_shift: shift[1],
        blue_shift: shift[2],
    };
    let formats = [
        pf(32, 24, false, [255; 3], [0, 8, 16]),     // what wsvnc asks for
        pf(32, 24, false, [255; 3], [16, 8, 0]),     // X servers' native
        pf(32, 24, true, [255; 3], [16, 8, 0]),      // big-endian
        pf(16, 16, true, [31, 63, 31], [11, 5, 0]),  // RGB565 BE
        pf(16, 15, false, [31, 31, 31], [10, 5, 0]), // RGB555 LE
        pf(8, 8, false, [7, 7, 3], [0, 3, 6]),       // BGR233
    ];
    // Content: solid, two colours, five colours, smooth many colours.
    let (w, h) = (37usize, 21usize);
    type Content = (&'static str, Box<dyn Fn(usize, usize) -> u32>, u8);
    let contents: [Content; 4] = [
        ("solid", Box::new(|_, _| 0x336699), 0x80),
        ("two", Box::new(|x, y| if (x * 7 + y * 3) % 5 < 2 { 0xffffff } else { 0x000080 }), 0x50),
        ("five", Box::new(|x, y| [0x112233, 0xff0000, 0x00ff00, 0x0000ff, 0xfedcba][(x / 3 + y) % 5]), 0x60),
        ("smooth", Box::new(|x, y| (((x * 6) << 16) | ((y * 12) << 8) | ((x + y) * 4)) as u32), 0x40),
    ];
    for f in formats {
        f.validate().unwrap();
        let wf = WireFormat::new(f);
        let cf = crate::rfb::PixelFormat {
            bits_per_pixel: f.bits_per_pixel,
            depth: f.depth,
            big_endian: f.big_endian,
            true_colour: true,
            red_max: f.red_max,
            green_max: f.green_max,
            blue_max: f.blue_max,
            red_shift: f.red_shift,
            green_shift: f.green_shift,
            blue_shift: f.blue_shift,
        };
        let ctx = PixelContext::new(cf);
        for (name, colour, tight_ctl) in &contents {
            let px: Vec<u32> = (0..w * h).map(|i| wf.pixel(colour(i % w, i / w))).collect();
            let r = Rect::new(0, 0, w, h);
            let fr = crate::fb::Rect::new(0, 0, w as u16, h as u16);
            let mut e = encode::Encoder::new();
            e.load_wire(&px);
            let decode = |d: &mut dyn Decoder, bytes: &[u8]| {
                let mut fb = Framebuffer::new(w as u16, h as u16);
                d.start(fr);
                assert_eq!(d.decode(&bytes[12..], &ctx, &mut fb), Ok(Step::Done(bytes.len() - 12)), "{f:?} {name}");
                fb
            };
            let mut raw = Vec::new();
            e.raw(&r, &wf, &mut raw);
            let want = decode(&mut dec::Raw::default(), &raw);
            let mut out = Vec::new();
            e.hextile(&r, &wf, &mut out);
            assert!(decode(&mut dec::Hextile::default(), &out).data() == want.data(), "Hextile {f:?} {name}");
            let mut out = Vec::new();
            e.zrle(&r, &wf, &mut out).unwrap();
            assert!(decode(&mut dec::Zrle::default(), &out).data() == want.data(), "ZRLE {f:?} {name}");
            let mut out = Vec::new();
            if e.rre(&r, &wf, &mut out) {
                assert!(decode(&mut dec::Rre::default(), &out).data() == want.data(), "RRE {f:?} {name}");
            }
            let mut out = Vec::new();
            assert_eq!(e.tight(&r, &wf, &mut out), Ok(true));
            // Smooth content: gradient filter where TPIXEL is R,G,B, else
            // copy; unless the format leaves few enough colours for a palette.
            let distinct = px.iter().collect::<std::collections::HashSet<_>>().len();
            let rgb_tpixel = f.bits_per_pixel == 32 && f.red_max == 255;
            let ctl = match *tight_ctl {
                0x40 if distinct <= 127 => 0x60,
                0x40 if !rgb_tpixel => 0x00,
                c => c,
            };
            assert_eq!(out[12], ctl, "Tight control byte {f:?} {name}");
            assert!(decode(&mut dec::Tight::default(), &out).data() == want.data(), "Tight {f:?} {name}");
        }
    }
}
