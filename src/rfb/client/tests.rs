//! RfbClient tests: scripted server byte streams (literal vectors for every
//! handshake branch and server message), fed whole, byte by byte and at
//! random split points; and whole sessions against the demo server.

use super::*;
use crate::rfb::decode::testutil::{xorshift, Server as Zlib};
use crate::rfb::encoding::*;

const NONE: u8 = SEC_NONE;
const VNC: u8 = SEC_VNC_AUTH;

/// The pixel format the demo's ServerInit advertises; the client must
/// replace it with its own in SetPixelFormat anyway.
const SERVER_PF: [u8; 16] = [32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0];

/// Everything the client produced for one input stream.
#[derive(Debug, PartialEq)]
pub(super) struct Outcome {
    pub result: Result<(), RfbError>,
    pub events: Vec<RfbEvent>,
    pub out: Vec<u8>,
    pub fb: Vec<u8>,
    pub size: (u16, u16),
    /// Input bytes the client never consumed.
    pub left: usize,
}

pub(super) fn cfg(encodings: &[i32], password: Option<&[u8]>) -> RfbConfig {
    RfbConfig {
        shared: true,
        encodings: encodings.to_vec(),
        password: password.map(|p| p.to_vec()),
        ..Default::default()
    }
}

pub(super) fn all_encodings() -> RfbConfig {
    let mut c = RfbConfig::default();
    c.encodings.push(ZLIB);
    c.password = Some(b"password".to_vec());
    c
}

/// Feed `input` to a new client in chunks of the sizes `chunk` yields,
/// the way the gateway does: keep unconsumed bytes, append, call again.
pub(super) fn feed_with(c: RfbConfig, input: &[u8], mut chunk: impl FnMut() -> usize) -> Outcome {
    let mut client = RfbClient::new(c);
    let mut fb = Framebuffer::new(0, 0);
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut result = Ok(());
    while fed < input.len() {
        let n = chunk().max(1).min(input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        match client.handle_input(&buf, &mut fb, &mut out) {
            Ok(used) => {
                buf.drain(..used);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        while let Some(e) = client.poll_event() {
            events.push(e);
        }
    }
    while let Some(e) = client.poll_event() {
        events.push(e);
    }
    Outcome {
        events,
        out,
        fb: fb.data().to_vec(),
        size: (fb.width(), fb.height()),
        // After an error, where the input stopped depends on the chunking.
        left: if result.is_ok() { buf.len() + input.len() - fed } else { 0 },
        result,
    }
}

pub(super) fn feed(c: RfbConfig, input: &[u8]) -> Outcome {
    feed_with(c, input, || usize::MAX)
}

/// Feed whole, byte by byte and at pseudo-random splits: all must agree.
pub(super) fn feed_every_way(c: RfbConfig, input: &[u8]) -> Outcome {
    let whole = feed(c.clone(), input);
    let bytewise = feed_with(c.clone(), input, || 1);
    assert_eq!(bytewise, whole, "byte-at-a-time differs from all-at-once");
    for seed in 1..=8u32 {
        let mut rnd = xorshift(seed.wrapping_mul(2654435761));
        let random = feed_with(c.clone(), input, || (rnd() % 97) as usize + 1);
        assert_eq!(random, whole, "random splits (seed {seed}) differ from all-at-once");
    }
    whole
}

pub(super) fn be16s(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// `RFB 003.008` + None + SecurityResult ok + ServerInit (w, h, name).
pub(super) fn hello(w: u16, h: u16, name: &str) -> Vec<u8> {
    let mut v = b"RFB 003.008\n".to_vec();
    v.extend_from_slice(&[1, NONE]);
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend(server_init(w, h, name));
    v
}

pub(super) fn server_init(w: u16, h: u16, name: &str) -> Vec<u8> {
    let mut v = be16s(&[w, h]);
    v.extend_from_slice(&SERVER_PF);
    v.extend_from_slice(&(name.len() as u32).to_be_bytes());
    v.extend_from_slice(name.as_bytes());
    v
}

/// What the client sends after ServerInit: SetPixelFormat + SetEncodings.
pub(super) fn after_init(encodings: &[i32]) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 0];
    PixelFormat::wanted().write(&mut v);
    v.extend_from_slice(&[2, 0]);
    v.extend_from_slice(&(encodings.len() as u16).to_be_bytes());
    for e in encodings {
        v.extend_from_slice(&e.to_be_bytes());
    }
    v
}

pub(super) fn rect(x: u16, y: u16, w: u16, h: u16, enc: i32) -> Vec<u8> {
    let mut v = be16s(&[x, y, w, h]);
    v.extend_from_slice(&enc.to_be_bytes());
    v
}

pub(super) fn update(n: u16) -> Vec<u8> {
    let mut v = vec![0, 0];
    v.extend_from_slice(&n.to_be_bytes());
    v
}

/// RGBX wire pixel in the format the client asks for (shifts 0/8/16 LE).
pub(super) fn px(r: u8, g: u8, b: u8) -> [u8; 4] {
    [r, g, b, 0]
}

pub(super) fn at(o: &Outcome, x: u16, y: u16) -> [u8; 3] {
    let i = (y as usize * o.size.0 as usize + x as usize) * 4;
    [o.fb[i], o.fb[i + 1], o.fb[i + 2]]
}

pub(super) fn connected(w: u16, h: u16, name: &str) -> RfbEvent {
    RfbEvent::Connected { width: w, height: h, name: name.into() }
}

// ---------------------------------------------------------------- handshake

#[test]
fn version_negotiation() {
    // (server version, our reply, None-path bytes the server sends next,
    //  what we send after our version).
    let v38_tail: &[u8] = &[1, NONE, 0, 0, 0, 0];
    let v37_tail: &[u8] = &[1, NONE];
    let v33_tail: &[u8] = &[0, 0, 0, NONE];
    let rows: [(&[u8; 12], &[u8; 12], &[u8]); 8] = [
        (b"RFB 003.003\n", b"RFB 003.003\n", v33_tail),
        (b"RFB 003.005\n", b"RFB 003.003\n", v33_tail), // §7.1.1: 3.5 is 3.3
        (b"RFB 003.006\n", b"RFB 003.003\n", v33_tail),
        (b"RFB 003.007\n", b"RFB 003.007\n", v37_tail),
        (b"RFB 003.008\n", b"RFB 003.008\n", v38_tail),
        (b"RFB 003.889\n", b"RFB 003.008\n", v38_tail), // Apple Remote Desktop
        (b"RFB 004.001\n", b"RFB 003.008\n", v38_tail),
        (b"RFB 003.010\n", b"RFB 003.008\n", v38_tail),
    ];
    for (server, reply, tail) in rows {
        let mut input = server.to_vec();
        input.extend_from_slice(tail);
        input.extend(server_init(4, 2, "d"));
        let o = feed_every_way(cfg(&[RAW], None), &input);
        assert_eq!(o.result, Ok(()), "{:?}", String::from_utf8_lossy(server));
        let mut want = reply.to_vec();
        if tail.len() != 4 {
            want.push(NONE); // 3.7+: we choose the type; 3.3: the server did
        }
        want.push(1); // ClientInit, shared
        want.extend(after_init(&[RAW]));
        assert_eq!(o.out, want, "{:?}", String::from_utf8_lossy(server));
        assert_eq!(o.events, [connected(4, 2, "d")]);
        assert_eq!(o.size, (4, 2));
        assert_eq!(o.left, 0);
    }
    for bad in [&b"RFB 002.000\n"[..], b"RFB 003.00x\n", b"HTTP/1.1 200", b"RFB 003.008\r"] {
        let o = feed(cfg(&[RAW], None), bad);
        assert!(o.result.is_err(), "{bad:?}");
        assert!(o.out.is_empty(), "{bad:?}: replied {:?}", o.out);
    }
    assert!(matches!(feed(cfg(&[RAW], None), b"RFB 002.000\n").result, Err(RfbError::Unsupported(_))));
}

#[test]
fn security_type_choice() {
    // 3.8 offering VNC auth and None: None is taken.
    let mut input = b"RFB 003.008\n".to_vec();
    input.extend_from_slice(&[3, 16, VNC, NONE]);
    let o = feed(cfg(&[RAW], None), &input);
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.out, b"RFB 003.008\n\x01");
    // Only unsupported types.
    let mut input = b"RFB 003.008\n".to_vec();
    input.extend_from_slice(&[2, 16, 113]);
    let o = feed(cfg(&[RAW], None), &input);
    let names = "Tight (16), MSLogonII (113)";
    assert!(matches!(o.result, Err(RfbError::Unsupported(ref m)) if m.contains(names)), "{:?}", o.result);
    // 3.3 server choosing an invalid type.
    let mut input = b"RFB 003.003\n".to_vec();
    input.extend_from_slice(&5u32.to_be_bytes());
    assert!(matches!(feed(cfg(&[RAW], None), &input).result, Err(RfbError::Protocol(_))));
}

#[test]
fn refusals_carry_the_reason() {
    // 3.7+: zero security types, then a reason string.
    for v in [&b"RFB 003.007\n"[..], b"RFB 003.008\n"] {
        let mut input = v.to_vec();
        input.push(0);
        input.extend_from_slice(&10u32.to_be_bytes());
        input.extend_from_slice(b"go away!\xe9\n");
        let o = feed_every_way(cfg(&[RAW], None), &input);
        assert_eq!(o.result, Err(RfbError::Refused("go away!é\n".into())));
    }
    // 3.3: security type 0, then a reason string.
    let mut input = b"RFB 003.003\n".to_vec();
    input.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 4]);
    input.extend_from_slice(b"busy");
    assert_eq!(feed_every_way(cfg(&[RAW], None), &input).result, Err(RfbError::Refused("busy".into())));
    // A reason longer than the limit fails before anything is allocated.
    let mut input = b"RFB 003.008\n\x00".to_vec();
    input.extend_from_slice(&(MAX_REASON_LEN + 1).to_be_bytes());
    let mut client = RfbClient::new(cfg(&[RAW], None));
    let mut fb = Framebuffer::new(0, 0);
    let e = client.handle_input(&input, &mut fb, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("refusal reason of 65537 bytes"), "{e}");
    assert!(client.scratch.capacity() < 1024);
    // Sticky: the same error again.
    assert_eq!(client.handle_input(b"anything", &mut fb, &mut Vec::new()), Err(e));
}

/// DES response for password "password" and challenge "0123456789abcdef",
/// computed independently with OpenSSL:
/// `openssl enc -des-ecb -provider legacy -provider default
///  -K 0e86ceceeef64e26 -nopad` (the key is "password" with each byte's
/// bits reversed).
pub(super) const VECTOR_RESPONSE: [u8; 16] =
    [0x56, 0x45, 0xab, 0xeb, 0x5f, 0x1e, 0x64, 0x75, 0xe8, 0xfe, 0xb1, 0x1b, 0xeb, 0x66, 0xea, 0x19];

#[test]
fn vnc_auth_known_vector_all_versions() {
    for (v, sec, reply) in [
        (&b"RFB 003.003\n"[..], &[0, 0, 0, 2][..], &b"RFB 003.003\n"[..]),
        (b"RFB 003.007\n", &[1, VNC], b"RFB 003.007\n\x02"),
        (b"RFB 003.008\n", &[1, VNC], b"RFB 003.008\n\x02"),
    ] {
        let mut input = v.to_vec();
        input.extend_from_slice(sec);
        input.extend_from_slice(b"0123456789abcdef");
        input.extend_from_slice(&0u32.to_be_bytes());
        input.extend(server_init(2, 2, "auth"));
        let o = feed_every_way(cfg(&[RAW], Some(b"password-and-ignored")), &input);
        assert_eq!(o.result, Ok(()));
        let mut want = reply.to_vec();
        want.extend_from_slice(&VECTOR_RESPONSE);
        want.push(1);
        want.extend(after_init(&[RAW]));
        assert_eq!(o.out, want);
        assert_eq!(o.events, [connected(2, 2, "auth")]);
    }
    assert_eq!(auth::vnc_auth_response(b"password", b"0123456789abcdef"), VECTOR_RESPONSE);
}

#[test]
fn password_asked_for_when_not_configured() {
    let mut input = b"RFB 003.008\n".to_vec();
    input.extend_from_slice(&[1, VNC]);
    input.extend_from_slice(b"0123456789abcdef");
    input.extend_from_slice(&0u32.to_be_bytes()); // arrives before we answer
    let mut client = RfbClient::new(cfg(&[RAW], None));
    let mut fb = Framebuffer::new(0, 0);
    let mut out = Vec::new();
    let used = client.handle_input(&input, &mut fb, &mut out).unwrap();
    assert_eq!(used, 12 + 2 + 16, "SecurityResult must wait for the answer");
    assert_eq!(client.poll_event(), Some(RfbEvent::PasswordNeeded));
    assert_eq!(out, b"RFB 003.008\n\x02");
    out.clear();
    client.set_password(b"password", &mut out).unwrap();
    assert_eq!(out, VECTOR_RESPONSE);
    out.clear();
    assert_eq!(client.handle_input(&input[used..], &mut fb, &mut out), Ok(4));
    assert_eq!(out, [1]); // ClientInit
}

#[test]
fn security_result_failures() {
    let challenge = b"0123456789abcdef";
    let run = |v: &[u8], tail: &[u8]| {
        let mut input = v.to_vec();
        input.extend_from_slice(if v == &b"RFB 003.003\n"[..] { &[0, 0, 0, 2] } else { &[1, VNC] });
        input.extend_from_slice(challenge);
        input.extend_from_slice(tail);
        feed_every_way(cfg(&[RAW], Some(b"pw")), &input)
    };
    // 3.8: a reason follows.
    let mut tail = 1u32.to_be_bytes().to_vec();
    tail.extend_from_slice(&[0, 0, 0, 13]);
    tail.extend_from_slice(b"Bad password!");
    assert_eq!(run(b"RFB 003.008\n", &tail).result, Err(RfbError::AuthFailed("Bad password!".into())));
    // 3.8 with an empty reason: our own words.
    let tail = [0, 0, 0, 1, 0, 0, 0, 0];
    assert_eq!(run(b"RFB 003.008\n", &tail).result, Err(RfbError::AuthFailed("wrong password".into())));
    // 3.7 and 3.3: no reason; anything after the status is not read.
    for v in [&b"RFB 003.007\n"[..], b"RFB 003.003\n"] {
        let o = run(v, &[0, 0, 0, 1, 0, 0, 0, 5, b'x']);
        assert_eq!(o.result, Err(RfbError::AuthFailed("wrong password".into())));
        // Status 2 is TigerVNC's "too many attempts".
        let o = run(v, &[0, 0, 0, 2]);
        assert_eq!(o.result, Err(RfbError::AuthFailed("too many attempts".into())));
    }
    // None security on 3.8 has a SecurityResult too.
    let mut input = b"RFB 003.008\n".to_vec();
    input.extend_from_slice(&[1, NONE, 0, 0, 0, 1, 0, 0, 0, 2]);
    input.extend_from_slice(b"no");
    assert_eq!(feed_every_way(cfg(&[RAW], None), &input).result, Err(RfbError::AuthFailed("no".into())));
    // A 3.8 server that closes instead of sending the reason.
    let mut client = RfbClient::new(cfg(&[RAW], Some(b"pw")));
    let mut input = b"RFB 003.008\n".to_vec();
    input.extend_from_slice(&[1, VNC]);
    input.extend_from_slice(challenge);
    client.handle_input(&input, &mut Framebuffer::new(0, 0), &mut Vec::new()).unwrap();
    assert_eq!(client.closed_error(), RfbError::AuthFailed("wrong password".into()));
}

#[test]
fn server_init_limits() {
    // Name too long: refused before allocation.
    let mut input = b"RFB 003.008\n".to_vec();
    input.extend_from_slice(&[1, NONE, 0, 0, 0, 0]);
    let mut si = be16s(&[4, 4]);
    si.extend_from_slice(&SERVER_PF);
    si.extend_from_slice(&u32::MAX.to_be_bytes());
    input.extend_from_slice(&si);
    let mut client = RfbClient::new(cfg(&[RAW], None));
    let e = client.handle_input(&input, &mut Framebuffer::new(0, 0), &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("desktop name of 4294967295 bytes"), "{e}");
    assert!(client.scratch.capacity() < 1024);
    // Framebuffer too large.
    let mut input = b"RFB 003.008\n".to_vec();
    input.extend_from_slice(&[1, NONE, 0, 0, 0, 0]);
    input.extend(server_init(65535, 65535, ""));
    let o = feed(cfg(&[RAW], None), &input);
    assert!(matches!(o.result, Err(RfbError::Protocol(ref m)) if m.contains("65535x65535")), "{:?}", o.result);
    assert_eq!(o.size, (0, 0));
}

#[test]
fn set_encodings_keeps_order_drops_the_unsupported() {
    // Order as configured (--encodings), duplicates and unknowns dropped,
    // compression and JPEG quality hints kept.
    let c = cfg(&[HEXTILE, 99, ZRLE, HEXTILE, -239, -300, -250, -27, TIGHT, RAW, -259], None);
    let client = RfbClient::new(c.clone());
    let want = [HEXTILE, ZRLE, CURSOR, -250, -27, TIGHT, RAW];
    assert_eq!(client.encodings(), want);
    let o = feed(c, &hello(1, 1, ""));
    assert_eq!(&o.out[o.out.len() - after_init(&want).len()..], &after_init(&want)[..]);
    // `--encodings` names, in the operator's order, reach SetEncodings as is.
    let list = crate::config::parse_encodings("zrle, tight,hextile,raw").unwrap();
    let o = feed(cfg(&list, None), &hello(1, 1, ""));
    assert!(o.out.ends_with(&after_init(&[ZRLE, TIGHT, HEXTILE, RAW])));
    // The default list: Tight first, every pseudo-encoding we handle.
    let client = RfbClient::new(RfbConfig::default());
    assert_eq!(client.encodings()[0], TIGHT);
    assert_eq!(client.encodings(), crate::gateway::default_encodings());
}

// ------------------------------------------------------- normal-phase stream

/// One FramebufferUpdate with a rectangle of every encoding and
/// pseudo-encoding, then Bell, ServerCutText, SetColourMapEntries, a second
/// update ended by LastRect, and a resize.
fn kitchen_sink() -> Vec<u8> {
    let mut v = hello(32, 24, "sink");
    v.extend(update(12));
    // Raw 2×2 at (0,0).
    v.extend(rect(0, 0, 2, 2, RAW));
    for p in [px(1, 2, 3), px(4, 5, 6), px(7, 8, 9), px(10, 11, 12)] {
        v.extend_from_slice(&p);
    }
    // RRE 4×4 at (4,0): bg, one 2×1 subrect at (1,2).
    v.extend(rect(4, 0, 4, 4, RRE));
    v.extend_from_slice(&1u32.to_be_bytes());
    v.extend_from_slice(&px(20, 20, 20));
    v.extend_from_slice(&px(200, 0, 0));
    v.extend(be16s(&[1, 2, 2, 1]));
    // Hextile 16×16 at (16,0): one tile, background only.
    v.extend(rect(16, 0, 16, 16, HEXTILE));
    v.push(2);
    v.extend_from_slice(&px(0, 99, 0));
    // Zlib 2×1 at (0,4).
    v.extend(rect(0, 4, 2, 1, ZLIB));
    let mut z = Zlib::new();
    let data = z.deflate(&[30, 31, 32, 0, 33, 34, 35, 0]);
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend(data);
    // ZRLE 3×3 at (0,8): one solid tile.
    v.extend(rect(0, 8, 3, 3, ZRLE));
    let mut z = Zlib::new();
    let data = z.deflate(&[1, 40, 41, 42]);
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend(data);
    // Tight fill 2×2 at (4,8), and Tight basic copy 2×1 at (4,12).
    v.extend(rect(4, 8, 2, 2, TIGHT));
    v.extend_from_slice(&[0x80, 50, 51, 52]);
    v.extend(rect(4, 12, 2, 1, TIGHT));
    v.extend_from_slice(&[0x00, 60, 61, 62, 63, 64, 65]);
    // CopyRect 2×2 at (8,8) from (0,0).
    v.extend(rect(8, 8, 2, 2, COPY_RECT));
    v.extend(be16s(&[0, 0]));
    // Cursor 2×1, hotspot (1,0): one pixel shown.
    v.extend(rect(1, 0, 2, 1, CURSOR));
    v.extend_from_slice(&px(255, 0, 0));
    v.extend_from_slice(&px(0, 0, 255));
    v.push(0b1000_0000);
    // DesktopName.
    v.extend(rect(0, 0, 0, 0, DESKTOP_NAME));
    v.extend_from_slice(&5u32.to_be_bytes());
    v.extend_from_slice(b"renam");
    // ExtendedDesktopSize (reason 0): one screen, same size.
    v.extend(rect(0, 0, 32, 24, EXTENDED_DESKTOP_SIZE));
    v.extend_from_slice(&[1, 0, 0, 0]);
    v.extend_from_slice(&7u32.to_be_bytes());
    v.extend(be16s(&[0, 0, 32, 24]));
    v.extend_from_slice(&0u32.to_be_bytes());
    // A zero-size Raw rectangle at the far corner.
    v.extend(rect(32, 24, 0, 0, RAW));
    // Bell, ServerCutText (Latin-1), SetColourMapEntries (2 entries from 254:
    // the second is past the 256-entry map and ignored).
    v.push(2);
    v.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 4]);
    v.extend_from_slice(b"a\xe9\nb");
    v.extend_from_slice(&[1, 0]);
    v.extend(be16s(&[255, 2, 0x1200, 0x3400, 0x5600, 1, 2, 3]));
    // An update that announces 100 rectangles but ends with LastRect.
    v.extend(update(100));
    v.extend(rect(31, 23, 1, 1, RAW));
    v.extend_from_slice(&px(70, 71, 72));
    v.extend(rect(0, 0, 0, 0, LAST_RECT));
    // DesktopSize: resize to 8×6 (alone in its update).
    v.extend(update(1));
    v.extend(rect(0, 0, 8, 6, DESKTOP_SIZE));
    v
}

#[test]
fn every_message_and_rectangle_kind_at_every_chunking() {
    let o = feed_every_way(all_encodings(), &kitchen_sink());
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.left, 0);
    assert_eq!(
        o.events,
        [
            connected(32, 24, "sink"),
            RfbEvent::Copied { dst: Rect::new(8, 8, 2, 2), src_x: 0, src_y: 0 },
            RfbEvent::Cursor { hot_x: 1, hot_y: 0, width: 2, height: 1, rgba: vec![255, 0, 0, 255, 0, 0, 255, 0] },
            RfbEvent::DesktopName("renam".into()),
            RfbEvent::ResizeSupported,
            RfbEvent::UpdateDone,
            RfbEvent::Bell,
            RfbEvent::ServerCutText("aé\nb".into()),
            RfbEvent::UpdateDone,
            RfbEvent::Resized { width: 8, height: 6 },
            RfbEvent::UpdateDone,
        ]
    );
    // After the resize the framebuffer is cleared; check pixels on a copy
    // of the stream without the final resize.
    let mut s = kitchen_sink();
    s.truncate(s.len() - 4 - 12);
    let o = feed_every_way(all_encodings(), &s);
    assert_eq!(o.size, (32, 24));
    assert_eq!(at(&o, 0, 0), [1, 2, 3]);
    assert_eq!(at(&o, 1, 1), [10, 11, 12]);
    assert_eq!(at(&o, 4, 0), [20, 20, 20]);
    assert_eq!(at(&o, 5, 2), [200, 0, 0]);
    assert_eq!(at(&o, 6, 2), [200, 0, 0]);
    assert_eq!(at(&o, 7, 2), [20, 20, 20]);
    assert_eq!(at(&o, 31, 15), [0, 99, 0]);
    assert_eq!(at(&o, 1, 4), [33, 34, 35]);
    assert_eq!(at(&o, 2, 10), [40, 41, 42]);
    assert_eq!(at(&o, 5, 9), [50, 51, 52]);
    assert_eq!(at(&o, 5, 12), [63, 64, 65]);
    assert_eq!(at(&o, 9, 9), [10, 11, 12]);
    assert_eq!(at(&o, 31, 23), [70, 71, 72]);
    assert_eq!(at(&o, 3, 3), [0, 0, 0]);
}

/// A client that has taken `hello` and one FramebufferUpdate header.
pub(super) fn in_update(c: RfbConfig, w: u16, h: u16) -> (RfbClient, Framebuffer) {
    let mut client = RfbClient::new(c);
    let mut fb = Framebuffer::new(0, 0);
    let mut input = hello(w, h, "");
    input.extend(update(1));
    let n = client.handle_input(&input, &mut fb, &mut Vec::new()).unwrap();
    assert_eq!(n, input.len());
    (client, fb)
}

fn fails_in_update(rest: &[u8]) -> RfbError {
    let (mut client, mut fb) = in_update(all_encodings(), 8, 8);
    let e = client.handle_input(rest, &mut fb, &mut Vec::new()).unwrap_err();
    assert!(client.scratch.capacity() < 4096, "allocated {} bytes", client.scratch.capacity());
    e
}

#[test]
fn bad_rectangles_and_oversized_lengths() {
    let msg = |e: RfbError| e.to_string();
    // Outside the framebuffer (8×8), for decoders and CopyRect alike.
    assert!(msg(fails_in_update(&rect(7, 0, 2, 1, RAW))).contains("outside the 8x8 framebuffer"));
    assert!(msg(fails_in_update(&rect(0, 65535, 1, 2, TIGHT))).contains("outside"));
    let mut copy = rect(0, 0, 2, 2, COPY_RECT);
    copy.extend(be16s(&[7, 7]));
    assert!(msg(fails_in_update(&copy)).contains("CopyRect"));
    // An encoding we did not ask for.
    let (mut client, mut fb) = in_update(cfg(&[ZRLE], None), 8, 8);
    let e = client.handle_input(&rect(0, 0, 1, 1, HEXTILE), &mut fb, &mut Vec::new()).unwrap_err();
    assert!(msg(e).contains("encoding 5 we did not ask for"));
    // Lengths over their limits fail on the length itself.
    let mut name = rect(0, 0, 0, 0, DESKTOP_NAME);
    name.extend_from_slice(&(MAX_NAME_LEN + 1).to_be_bytes());
    assert!(msg(fails_in_update(&name)).contains("DesktopName of 65537 bytes"));
    let mut zlib = rect(0, 0, 1, 1, ZLIB);
    zlib.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(msg(fails_in_update(&zlib)).contains("over the"));
    let mut tight = rect(0, 0, 4, 4, TIGHT);
    tight.extend_from_slice(&[0x00, 0xff, 0xff, 0x7f]);
    assert!(msg(fails_in_update(&tight)).contains("compressed length"));
    let size = rect(0, 0, 65535, 65535, DESKTOP_SIZE);
    assert!(msg(fails_in_update(&size)).contains("exceeds the limit"));
    // Corrupt decoder data is a protocol error, not a panic.
    let mut tight = rect(0, 0, 1, 1, TIGHT);
    tight.extend_from_slice(&[0x90]);
    assert!(msg(fails_in_update(&tight)).contains("JPEG not advertised"));

    // ServerCutText over the limit, in the Idle state.
    let mut client = RfbClient::new(cfg(&[RAW], None));
    let mut fb = Framebuffer::new(0, 0);
    client.handle_input(&hello(2, 2, ""), &mut fb, &mut Vec::new()).unwrap();
    let mut cut = vec![3, 0, 0, 0];
    cut.extend_from_slice(&(MAX_CUT_TEXT + 1).to_be_bytes());
    let e = client.handle_input(&cut, &mut fb, &mut Vec::new()).unwrap_err();
    assert!(msg(e).contains("ServerCutText of 1048577 bytes"));
    assert!(client.scratch.capacity() < 1024);
    // Unknown message type.
    let mut client = RfbClient::new(cfg(&[RAW], None));
    client.handle_input(&hello(2, 2, ""), &mut fb, &mut Vec::new()).unwrap();
    assert!(msg(client.handle_input(&[77], &mut fb, &mut Vec::new()).unwrap_err()).contains("77"));
}

#[test]
fn cut_text_at_the_limit_is_accepted() {
    let mut input = hello(1, 1, "");
    input.extend_from_slice(&[3, 0, 0, 0]);
    input.extend_from_slice(&MAX_CUT_TEXT.to_be_bytes());
    input.extend(std::iter::repeat_n(b'z', MAX_CUT_TEXT as usize));
    let o = feed(cfg(&[RAW], None), &input);
    assert_eq!(o.result, Ok(()));
    assert!(matches!(&o.events[1], RfbEvent::ServerCutText(t) if t.len() == MAX_CUT_TEXT as usize));
}

#[test]
fn extended_desktop_size_resize_and_refusal() {
    let mut input = hello(4, 4, "");
    // reason 0: resize to 6×3 with two screens.
    input.extend(update(1));
    input.extend(rect(0, 0, 6, 3, EXTENDED_DESKTOP_SIZE));
    input.extend_from_slice(&[2, 0, 0, 0]);
    for id in [9u32, 10] {
        input.extend_from_slice(&id.to_be_bytes());
        input.extend(be16s(&[0, 0, 3, 3]));
        input.extend_from_slice(&0x55u32.to_be_bytes());
    }
    // reason 1 (our request), status 3: refused, size unchanged.
    input.extend(update(1));
    input.extend(rect(1, 3, 100, 100, EXTENDED_DESKTOP_SIZE));
    input.extend_from_slice(&[0, 0, 0, 0]);
    let o = feed_every_way(all_encodings(), &input);
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.size, (6, 3));
    assert_eq!(
        o.events[1..],
        [
            RfbEvent::ResizeSupported,
            RfbEvent::Resized { width: 6, height: 3 },
            RfbEvent::UpdateDone,
            RfbEvent::ResizeRefused("invalid screen layout".into()),
            RfbEvent::UpdateDone,
        ]
    );
    // SetDesktopSize echoes the first screen's id and flags.
    let mut client = RfbClient::new(all_encodings());
    let mut fb = Framebuffer::new(0, 0);
    client.handle_input(&input, &mut fb, &mut Vec::new()).unwrap();
    let mut out = Vec::new();
    assert!(client.set_desktop_size(640, 480, &mut out));
    let mut want = vec![251, 0, 2, 128, 1, 224, 1, 0, 0, 0, 0, 9];
    want.extend(be16s(&[0, 0, 640, 480]));
    want.extend_from_slice(&0x55u32.to_be_bytes());
    assert_eq!(out, want);
}

#[test]
fn oversized_cursor_is_skipped_not_fatal() {
    let mut input = hello(4, 4, "");
    input.extend(update(2));
    input.extend(rect(0, 0, 300, 1, CURSOR));
    input.extend(std::iter::repeat_n(7u8, 300 * 4 + 38));
    input.extend(rect(0, 0, 1, 1, RAW));
    input.extend_from_slice(&px(9, 8, 7));
    let o = feed_every_way(all_encodings(), &input);
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.events[1..], [RfbEvent::UpdateDone]);
    assert_eq!(at(&o, 0, 0), [9, 8, 7]);
}

#[test]
fn client_messages_only_after_the_handshake() {
    let mut client = RfbClient::new(cfg(&[RAW], None));
    let mut fb = Framebuffer::new(0, 0);
    let mut out = Vec::new();
    client.key_event(true, 0x61, &mut out);
    client.pointer_event(1, 2, 3, &mut out);
    client.request_update(false, &fb, &mut out);
    assert!(out.is_empty());
    client.handle_input(&hello(3, 2, ""), &mut fb, &mut out).unwrap();
    out.clear();
    client.request_update(false, &fb, &mut out);
    client.key_event(true, 0x61, &mut out);
    client.pointer_event(1, 2, 3, &mut out);
    client.client_cut_text("é\r\n€", &mut out);
    let mut want = vec![3, 0, 0, 0, 0, 0, 0, 3, 0, 2];
    want.extend_from_slice(&[4, 1, 0, 0, 0, 0, 0, 0x61]);
    want.extend_from_slice(&[5, 1, 0, 2, 0, 3]);
    want.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 3, 0xe9, b'\n', b'?']);
    assert_eq!(out, want);
    assert!(client.update_pending());
}

// ----------------------------------------------------------- colour maps

#[test]
fn colour_map_format_converts_through_the_map() {
    // A server cannot refuse our SetPixelFormat (the client's format is
    // binding, rfbproto §7.5.1), but the decoders must still handle an 8 bpp
    // colour-map format (§7.6.2): set it directly.
    let mut client = RfbClient::new(all_encodings());
    let mut fb = Framebuffer::new(0, 0);
    client.handle_input(&hello(4, 1, ""), &mut fb, &mut Vec::new()).unwrap();
    client.px.format = PixelFormat { bits_per_pixel: 8, depth: 8, true_colour: false, ..PixelFormat::wanted() };
    // Entries 0 and 1 (U16 intensities; the top byte counts).
    let mut input = vec![1, 0];
    input.extend(be16s(&[0, 2, 0xff00, 0x0000, 0x0000, 0x0000, 0x80ff, 0xffff]));
    input.extend(update(2));
    input.extend(rect(0, 0, 4, 1, RAW));
    input.extend_from_slice(&[0, 1, 255, 1]);
    // Tight palette entries are map indices too (TPIXEL == PIXEL here).
    input.extend(rect(2, 0, 2, 1, TIGHT));
    input.extend_from_slice(&[0x40, 0x01, 0x01, 1, 0, 0b0100_0000]);
    assert_eq!(client.handle_input(&input, &mut fb, &mut Vec::new()), Ok(input.len()));
    assert_eq!(fb.pixel(0, 0), [255, 0, 0, 255]);
    assert_eq!(fb.pixel(1, 0), [0, 128, 255, 255]);
    assert_eq!(fb.pixel(2, 0), [0, 128, 255, 255]);
    assert_eq!(fb.pixel(3, 0), [255, 0, 0, 255]);
    // An index never set stays black.
    let mut input = update(1);
    input.extend(rect(0, 0, 1, 1, RAW));
    input.push(255);
    assert_eq!(client.handle_input(&input, &mut fb, &mut Vec::new()), Ok(input.len()));
    assert_eq!(fb.pixel(0, 0), [0, 0, 0, 255]);
    // Cursor pixels go through the map as well (1 byte each, then the mask).
    let mut input = update(1);
    input.extend(rect(0, 0, 2, 1, CURSOR));
    input.extend_from_slice(&[1, 0, 0b0100_0000]);
    assert_eq!(client.handle_input(&input, &mut fb, &mut Vec::new()), Ok(input.len()));
    let cursor = std::iter::from_fn(|| client.poll_event()).find(|e| matches!(e, RfbEvent::Cursor { .. }));
    assert_eq!(
        cursor,
        Some(RfbEvent::Cursor { hot_x: 0, hot_y: 0, width: 2, height: 1, rgba: vec![0, 128, 255, 0, 255, 0, 0, 255] })
    );
}

// ------------------------------------------------- sessions with the demo

#[test]
fn whole_session_with_the_demo_server() {
    use crate::demo::tests::Loopback;
    // VNC auth with the demo's password, every encoding both sides know.
    let mut lb =
        Loopback::new(Some(b"sesame"), RfbConfig { password: Some(b"sesame".to_vec()), ..RfbConfig::default() });
    lb.connect().unwrap();
    assert_eq!(lb.events[0], connected(320, 200, "loopback"));
    for frame in 0..6 {
        lb.frame(frame * 170).unwrap();
        lb.assert_same_picture();
    }
    // Input reaches the demo, cut text comes back.
    let mut out = Vec::new();
    lb.client.key_event(true, 'h' as u32, &mut out);
    lb.client.key_event(false, 'h' as u32, &mut out);
    lb.client.pointer_event(1, 30, 40, &mut out);
    lb.client.client_cut_text("clip", &mut out);
    lb.c2s.extend(out);
    lb.frame(2000).unwrap();
    assert_eq!(lb.server.typed_text(), "h");
    assert_eq!(lb.server.pointer(), (30, 40, 1));
    assert!(lb.events.contains(&RfbEvent::ServerCutText("clip".into())));
    lb.assert_same_picture();
}

#[test]
fn wrong_password_against_the_demo() {
    use crate::demo::tests::Loopback;
    let mut lb =
        Loopback::new(Some(b"sesame"), RfbConfig { password: Some(b"sesame!".to_vec()), ..RfbConfig::default() });
    // "sesame!" differs from "sesame" within the first 8 bytes.
    assert_eq!(lb.connect(), Err(RfbError::AuthFailed("authentication failed".into())));
}

#[test]
fn random_server_messages_never_panic() {
    let mut rnd = xorshift(0x9e37_79b9u32);
    let kinds: [&[u8]; 6] = [&[0, 0, 0, 1], &[0, 0, 0, 3], &[1, 0], &[2], &[3, 0, 0, 0], &[0, 0, 1, 0]];
    for _ in 0..2000 {
        let mut client = RfbClient::new(all_encodings());
        let mut fb = Framebuffer::new(0, 0);
        client.handle_input(&hello(40, 30, ""), &mut fb, &mut Vec::new()).unwrap();
        // A plausible message start, then a rectangle header with a real
        // encoding and random bytes.
        let mut input = kinds[rnd() as usize % kinds.len()].to_vec();
        let encs = all_encodings().encodings;
        let e = encs[rnd() as usize % encs.len()];
        input.extend(rect((rnd() % 48) as u16, (rnd() % 36) as u16, (rnd() % 20) as u16, (rnd() % 20) as u16, e));
        input.extend((0..rnd() % 200).map(|_| rnd() as u8));
        let mut out = Vec::new();
        if let Ok(n) = client.handle_input(&input, &mut fb, &mut out) {
            assert!(n <= input.len());
        }
        assert!(client.scratch.capacity() <= MAX_CUT_TEXT as usize + 64);
        while client.poll_event().is_some() {}
    }
}

// ------------------------------------------------- bounded work per call

/// 200 alternating DesktopSize rectangles in one update (a hostile server's
/// resize storm) cost one resize, to the last size, at every chunking.
#[test]
fn size_rectangles_in_one_update_collapse_to_one_resize() {
    let mut input = hello(8, 8, "");
    input.extend(update(201));
    for i in 0..200u16 {
        input.extend(rect(0, 0, 16, 16 - i % 2, DESKTOP_SIZE));
    }
    input.extend(rect(0, 14, 1, 1, RAW));
    input.extend_from_slice(&px(1, 2, 3));
    let o = feed_every_way(cfg(&[RAW, DESKTOP_SIZE], None), &input);
    assert_eq!(o.result, Ok(()));
    let resizes: Vec<_> = o.events.iter().filter(|e| matches!(e, RfbEvent::Resized { .. })).collect();
    assert_eq!(resizes, [&RfbEvent::Resized { width: 16, height: 15 }]);
    assert_eq!(o.size, (16, 15));
    assert_eq!(at(&o, 0, 14), [1, 2, 3]);
    assert_eq!(o.events.last(), Some(&RfbEvent::UpdateDone));
}

#[test]
fn a_second_size_after_pixels_in_one_update_is_refused() {
    let mut input = hello(8, 8, "");
    input.extend(update(3));
    input.extend(rect(0, 0, 16, 16, DESKTOP_SIZE));
    input.extend(rect(15, 15, 1, 1, RAW));
    input.extend_from_slice(&px(1, 2, 3));
    let mut same = input.clone();
    input.extend(rect(0, 0, 8, 8, DESKTOP_SIZE));
    let o = feed(cfg(&[RAW, DESKTOP_SIZE], None), &input);
    let e = o.result.unwrap_err().to_string();
    assert!(e.contains("second framebuffer size (8x8) in one update"), "{e}");
    // Announcing the size it already has is no second resize.
    same.extend(rect(0, 0, 16, 16, DESKTOP_SIZE));
    same.extend(update(1));
    same.extend(rect(0, 0, 4, 4, DESKTOP_SIZE));
    let o = feed_every_way(cfg(&[RAW, DESKTOP_SIZE], None), &same);
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.size, (4, 4), "a new update may resize again");
}

/// A call stops once it has written `WORK_PER_CALL` pixels and says so; the
/// next calls resume where it stopped and end in the same state.
#[test]
fn work_budget_yields_and_resumes() {
    const W: u16 = 2048;
    let mut input = hello(W, W, "");
    let updates = 3;
    for _ in 0..updates {
        input.extend(update(10));
        for _ in 0..10 {
            input.extend(rect(0, 0, W, W, COPY_RECT));
            input.extend_from_slice(&[0, 0, 0, 0]);
        }
    }
    let mut client = RfbClient::new(cfg(&[RAW, COPY_RECT], None));
    let mut fb = Framebuffer::new(0, 0);
    let (mut used, mut calls, mut yields) = (0, 0, 0);
    while used < input.len() {
        calls += 1;
        assert!(calls < 100, "no progress");
        used += client.handle_input(&input[used..], &mut fb, &mut Vec::new()).unwrap();
        yields += client.yielded() as u32;
        assert!(fb.take_work() <= WORK_PER_CALL + W as u64 * W as u64, "one unit past the budget at most");
    }
    let total = (1 + updates * 10) as u64 * W as u64 * W as u64;
    assert!(yields as u64 >= total / (WORK_PER_CALL + (W as u64).pow(2)), "{yields} yields for {total} px");
    assert!(!client.yielded(), "the last call finished the input");
    let done = std::iter::from_fn(|| client.poll_event()).filter(|e| *e == RfbEvent::UpdateDone).count();
    assert_eq!(done, updates);
}
