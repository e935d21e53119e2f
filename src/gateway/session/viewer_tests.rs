//! The session's dealings with viewers beyond frames, sans-IO, against a
//! scripted RFB server fed as bytes: logging in with a browser's user name
//! and password (Apple Remote Desktop, which asks for both, in memory) and
//! holding joiners to it; linger; keys by scancode, extended buttons and
//! LED state; the ServerHello flags.

use std::time::{Duration, Instant};

use super::tests::v2;
use super::*;
use crate::gateway::{Attempt, PasswordGuard};
use crate::rfb::encoding;
use crate::rfb::security::ard;

/// A loopback browser at `now` with a password guard of its own.
fn at(now: Instant) -> Attempt<'static> {
    Attempt { guard: Box::leak(Box::default()), peer: std::net::Ipv4Addr::LOCALHOST.into(), now }
}

fn be16(v: u16) -> [u8; 2] {
    v.to_be_bytes()
}

fn server_init(w: u16, h: u16) -> Vec<u8> {
    let mut v = [be16(w), be16(h)].concat();
    v.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    v.extend_from_slice(&[0, 0, 0, 1, b'd']);
    v
}

/// A FramebufferUpdate of pseudo-rectangles `(encoding, payload)`.
fn update(rects: &[(i32, &[u8])]) -> Vec<u8> {
    let mut v = vec![0, 0];
    v.extend_from_slice(&be16(rects.len() as u16));
    for (enc, payload) in rects {
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&enc.to_be_bytes());
        v.extend_from_slice(payload);
    }
    v
}

/// A session with `n` viewers that sent ClientHello, none joined yet.
fn session(n: usize) -> (Session, Vec<usize>) {
    let mut s = Session::new("k".into(), "test".into(), RfbConfig::default());
    s.connected();
    let t0 = Instant::now();
    let ids = (0..n)
        .map(|k| {
            let i = s.add_viewer(k, false);
            s.handle_viewer_message(i, &[0x80, proto::VERSION], t0, &mut Vec::new(), &mut at(t0)).unwrap();
            i
        })
        .collect();
    (s, ids)
}

/// Feed server bytes; all of them must be used. Returns what went back.
fn server(s: &mut Session, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    assert_eq!(s.handle_server_input(bytes, &mut out), Ok(bytes.len()));
    out
}

/// What viewer `i` is sent now, parsed (frames included).
fn messages(s: &mut Session, i: usize, c: &mut v2::Canvas, now: Instant) -> Vec<v2::Msg> {
    let mut all = Vec::new();
    loop {
        let mut out = Vec::new();
        if s.compose(i, now, &mut out) == Composed::Nothing {
            return all;
        }
        all.extend(c.apply(&out).expect("well-formed v2"));
    }
}

fn viewer_says(s: &mut Session, i: usize, msg: &[u8]) -> (Result<(), BadInput>, Vec<u8>) {
    viewer_says_to(s, i, msg, &mut PasswordGuard::default())
}

/// As `viewer_says`, the attempt counted by `guard`.
fn viewer_says_to(s: &mut Session, i: usize, msg: &[u8], guard: &mut PasswordGuard) -> (Result<(), BadInput>, Vec<u8>) {
    let mut out = Vec::new();
    let now = Instant::now();
    let mut at = Attempt { guard, peer: std::net::Ipv4Addr::LOCALHOST.into(), now };
    let r = s.handle_viewer_message(i, msg, now, &mut out, &mut at);
    (r, out)
}

/// None security, ServerInit, EndOfContinuousUpdates, and the first
/// update with `pseudo` rectangles: the session is Ready and its viewers
/// joined. Returns what the session sent the server after the handshake.
fn connect_none(s: &mut Session, pseudo: &[(i32, &[u8])]) -> Vec<u8> {
    server(s, b"RFB 003.008\n\x01\x01");
    server(s, &[0, 0, 0, 0]);
    server(s, &server_init(64, 32));
    server(s, &[150]);
    let out = server(s, &update(pseudo));
    assert_eq!(s.phase, Phase::Ready);
    out
}

/// Apple Remote Desktop's security type and DH parameters (2048-bit
/// group, server key 4), with no user name configured: the session asks
/// for a user name and a password.
fn ard_hello(s: &mut Session) {
    let mut hello = b"RFB 003.008\n\x01\x1e".to_vec();
    let prime = ard::tests::ffdhe_2048();
    hello.extend_from_slice(&[0, 2, 1, 0]);
    hello.extend_from_slice(&prime);
    hello.extend_from_slice(&[vec![0; 255], vec![4]].concat());
    assert_eq!(server(s, &hello), b"RFB 003.008\n\x1e");
}

#[test]
fn browser_credentials_log_in_and_joiners_must_give_the_same() {
    let (mut s, ids) = session(2);
    let (a, b) = (ids[0], ids[1]);
    let (mut ca, mut cb) = (v2::Canvas::default(), v2::Canvas::default());
    let t = Instant::now();
    // Both viewers are asked for a user name and a password.
    ard_hello(&mut s);
    assert_eq!(s.phase, Phase::NeedPassword);
    assert!(messages(&mut s, a, &mut ca, t).contains(&v2::Msg::CredentialsRequired));
    assert!(messages(&mut s, b, &mut cb, t).contains(&v2::Msg::CredentialsRequired));
    // A password alone is the wrong kind of answer.
    let (r, _) = viewer_says(&mut s, b, &v2::enc::password(b"pw"));
    assert_eq!(r.unwrap_err().reason, Ask::Credentials.mismatch());
    // A's answer goes to the server (the ARD answer: 128 + 256 bytes).
    let (r, out) = viewer_says(&mut s, a, &v2::enc::credentials("ünï".as_bytes(), b"s3cret"));
    r.unwrap();
    assert_eq!(out.len(), 128 + 256);
    assert_eq!(s.phase, Phase::Handshake);
    server(&mut s, &[0, 0, 0, 0]);
    server(&mut s, &server_init(64, 32));
    server(&mut s, &update(&[]));
    let got = messages(&mut s, a, &mut ca, t);
    assert!(matches!(got.first(), Some(v2::Msg::ServerHello { .. })), "{got:?}");
    // A joiner is asked the same, and a wrong user name is refused.
    let (mut cc, mut cd) = (v2::Canvas::default(), v2::Canvas::default());
    let (c, d) = (s.add_viewer(2, false), s.add_viewer(3, false));
    for (i, canvas) in [(c, &mut cc), (d, &mut cd)] {
        viewer_says(&mut s, i, &[0x80, proto::VERSION]).0.unwrap();
        assert_eq!(messages(&mut s, i, canvas, t).last(), Some(&v2::Msg::CredentialsRequired));
    }
    let (r, out) = viewer_says(&mut s, c, &v2::enc::credentials(b"uni", b"s3cret"));
    assert!(r.is_ok() && out.is_empty(), "a joiner's answer never reaches the VNC server");
    assert_eq!(s.viewer_close(c), None, "the Error goes first");
    messages(&mut s, c, &mut cc, t);
    assert_eq!(cc.error.as_deref(), Some("wrong user name or password"));
    assert_eq!(s.viewer_close(c), Some((close::POLICY_VIOLATION, "wrong user name or password".into())));
    viewer_says(&mut s, d, &v2::enc::credentials("ünï".as_bytes(), b"s3cret")).0.unwrap();
    let got = messages(&mut s, d, &mut cd, t);
    assert!(matches!(got.first(), Some(v2::Msg::ServerHello { .. })), "{got:?}");
    assert_eq!(cd.error, None);
    // B, asked before the session was unlocked, is held to it too.
    viewer_says(&mut s, b, &v2::enc::credentials("ünï".as_bytes(), b"wrong")).0.unwrap();
    messages(&mut s, b, &mut cb, t);
    assert_eq!(cb.error.as_deref(), Some("wrong user name or password"));
}

/// Wrong credentials of joiners count as guesses (`PasswordGuard`): the
/// second is refused, a third at once is blocked before it is compared,
/// even when right.
#[test]
fn credential_guesses_are_throttled() {
    let (mut s, ids) = session(1);
    ard_hello(&mut s);
    viewer_says(&mut s, ids[0], &v2::enc::credentials(b"u", b"p")).0.unwrap();
    server(&mut s, &[0, 0, 0, 0]);
    server(&mut s, &server_init(8, 8));
    server(&mut s, &update(&[]));
    let mut guard = PasswordGuard::default();
    let t = Instant::now();
    let mut errors = Vec::new();
    for (k, pw) in [b"x", b"y", b"p"].into_iter().enumerate() {
        let j = s.add_viewer(10 + k, false);
        viewer_says_to(&mut s, j, &[0x80, proto::VERSION], &mut guard).0.unwrap();
        viewer_says_to(&mut s, j, &v2::enc::credentials(b"u", pw), &mut guard).0.unwrap();
        let mut c = v2::Canvas::default();
        messages(&mut s, j, &mut c, t);
        errors.push(c.error);
    }
    assert_eq!(errors[0].as_deref(), Some("wrong user name or password"));
    assert_eq!(errors[1].as_deref(), Some("wrong user name or password"));
    assert!(errors[2].as_deref().is_some_and(|e| e.starts_with("too many attempts, retry in")), "{errors:?}");
}

#[test]
fn an_answer_nobody_asked_for_is_a_policy_violation() {
    let (mut s, ids) = session(1);
    connect_none(&mut s, &[]);
    for msg in [v2::enc::password(b"x"), v2::enc::credentials(b"u", b"x")] {
        let (r, _) = viewer_says(&mut s, ids[0], &msg);
        assert_eq!(r.unwrap_err().code, close::POLICY_VIOLATION);
    }
}

#[test]
fn linger_keeps_the_rfb_connection_then_ends() {
    let (mut s, ids) = session(1);
    s.linger = Duration::from_secs(5);
    let enable = connect_none(&mut s, &[]);
    assert_eq!(enable, [&[150, 1][..], &[0; 4], &be16(64), &be16(32)].concat(), "continuous updates on");
    let mut c = v2::Canvas::default();
    let t0 = Instant::now();
    messages(&mut s, ids[0], &mut c, t0);
    // The last viewer leaves: updates are paused, the session stays.
    let mut out = Vec::new();
    s.remove_viewer(ids[0], t0, &mut out);
    assert_eq!(out, [&[150, 0][..], &[0; 8]].concat(), "continuous updates off");
    assert!(!s.is_over());
    assert_eq!(s.lingering_until(), Some(t0 + Duration::from_secs(5)));
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    // The server keeps talking meanwhile (a change arrives).
    let mut px = update(&[]);
    px[3] = 1;
    px.extend_from_slice(&[0, 2, 0, 3, 0, 1, 0, 1, 0, 0, 0, 0, 9, 8, 7, 0]);
    server(&mut s, &px);
    s.handle_timeout(t0 + Duration::from_secs(4));
    assert!(!s.is_over(), "not yet");
    // A viewer comes back: the whole current picture at once, updates on.
    let back = s.add_viewer(7, false);
    assert_eq!(s.lingering_until(), None);
    let (r, out) = viewer_says(&mut s, back, &[0x80, proto::VERSION]);
    r.unwrap();
    assert_eq!(out, enable, "continuous updates on again, no new login");
    let mut c = v2::Canvas::default();
    let got = messages(&mut s, back, &mut c, t0 + Duration::from_secs(4));
    assert!(matches!(got.get(1), Some(v2::Msg::ServerHello { width: 64, height: 32, .. })), "{got:?}");
    assert!(got.iter().any(|m| matches!(m, v2::Msg::EndFrame(_))));
    assert_eq!(c.pixel(2, 3), [9, 8, 7, 255], "the change made while nobody watched (our format: R, G, B, pad)");
    assert_eq!(c.fb, s.fb.data(), "the whole picture");
    // It leaves too; nobody comes: over when the linger runs out.
    let t1 = t0 + Duration::from_secs(10);
    s.remove_viewer(back, t1, &mut Vec::new());
    s.handle_timeout(t1 + Duration::from_millis(4999));
    assert!(!s.is_over());
    s.handle_timeout(t1 + Duration::from_secs(5));
    assert!(s.is_over());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn no_linger_when_off_or_not_ready() {
    let (mut s, ids) = session(1);
    connect_none(&mut s, &[]);
    s.remove_viewer(ids[0], Instant::now(), &mut Vec::new());
    assert!(s.is_over(), "linger 0: over at once");
    let (mut s, ids) = session(1);
    s.linger = Duration::from_secs(5);
    server(&mut s, b"RFB 003.008\n");
    s.remove_viewer(ids[0], Instant::now(), &mut Vec::new());
    assert!(s.is_over(), "still in the handshake: over at once");
}

#[test]
fn keys_by_scancode_buttons_and_leds() {
    let (mut s, ids) = session(1);
    connect_none(
        &mut s,
        &[
            (encoding::QEMU_EXTENDED_KEY_EVENT, &[]),
            (encoding::EXTENDED_MOUSE_BUTTONS, &[]),
            (encoding::QEMU_LED_STATE, &[4]),
        ],
    );
    let i = ids[0];
    let mut c = v2::Canvas::default();
    let t = Instant::now();
    let got = messages(&mut s, i, &mut c, t);
    assert!(got.contains(&v2::Msg::LedState(4)), "Caps Lock on: {got:?}");
    // A known code goes as a QEMU extended key event (XT scancode of KeyA
    // is 0x1e); an unknown one as a KeyEvent; keysym 0 and no code: nothing.
    let (r, out) = viewer_says(&mut s, i, &v2::enc::key_code(true, 0x61, "KeyA"));
    r.unwrap();
    assert_eq!(out, [255, 0, 0, 1, 0, 0, 0, 0x61, 0, 0, 0, 0x1e]);
    let (_, out) = viewer_says(&mut s, i, &v2::enc::key_code(false, 0x61, "NoSuchKey"));
    assert_eq!(out, [4, 0, 0, 0, 0, 0, 0, 0x61]);
    let (_, out) = viewer_says(&mut s, i, &v2::enc::key_code(true, 0, "Equal"));
    assert_eq!(out, [255, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x0d], "a dead key: scancode, no keysym");
    let (_, out) = viewer_says(&mut s, i, &v2::enc::key_code(true, 0, "Bogus"));
    assert!(out.is_empty());
    // Forward (bit 8) with left: the extended form; plain masks as before.
    let (_, out) = viewer_says(&mut s, i, &v2::enc::pointer_ext(5, 6, 0x101));
    assert_eq!(out, [5, 0x81, 0, 5, 0, 6, 2]);
    let (_, out) = viewer_says(&mut s, i, &v2::enc::pointer_ext(500, 6, 0x004));
    assert_eq!(out, [5, 0x04, 0, 63, 0, 6], "x clamped to the desktop");
    // LED changes are state: a viewer that missed two gets the latest.
    server(&mut s, &update(&[(encoding::QEMU_LED_STATE, &[2])]));
    server(&mut s, &update(&[(encoding::QEMU_LED_STATE, &[3])]));
    let leds: Vec<_> =
        messages(&mut s, i, &mut c, t).into_iter().filter(|m| matches!(m, v2::Msg::LedState(_))).collect();
    assert_eq!(leds, [v2::Msg::LedState(3)]);
    // A joiner gets the current state after its ServerHello.
    let j = s.add_viewer(1, false);
    viewer_says(&mut s, j, &[0x80, proto::VERSION]).0.unwrap();
    let mut cj = v2::Canvas::default();
    let got = messages(&mut s, j, &mut cj, t);
    assert!(got.contains(&v2::Msg::LedState(3)), "{got:?}");
    // A view-only viewer's keys go nowhere.
    let v = s.add_viewer(2, true);
    viewer_says(&mut s, v, &[0x80, proto::VERSION]).0.unwrap();
    let (_, out) = viewer_says(&mut s, v, &v2::enc::key_code(true, 0x61, "KeyA"));
    assert!(out.is_empty());
}

#[test]
fn server_hello_says_whether_the_clipboard_is_unicode() {
    let flags = |caps: bool| {
        let (mut s, ids) = session(1);
        server(&mut s, b"RFB 003.008\n\x01\x01");
        server(&mut s, &[0, 0, 0, 0]);
        server(&mut s, &server_init(8, 8));
        if caps {
            // Extended Clipboard caps: text, with its size limit.
            let mut m = vec![3, 0, 0, 0];
            m.extend_from_slice(&(-8i32).to_be_bytes());
            m.extend_from_slice(&(1u32 << 24 | 1).to_be_bytes());
            m.extend_from_slice(&0u32.to_be_bytes());
            let mut to_server = Vec::new();
            assert_eq!(s.handle_server_input(&m, &mut to_server), Ok(m.len()));
        }
        server(&mut s, &update(&[]));
        let mut c = v2::Canvas::default();
        let got = messages(&mut s, ids[0], &mut c, Instant::now());
        match got.iter().find(|m| matches!(m, v2::Msg::ServerHello { .. })) {
            Some(v2::Msg::ServerHello { flags, .. }) => *flags,
            _ => panic!("{got:?}"),
        }
    };
    assert_eq!(flags(false) & proto::hello_flags::UNICODE_CLIPBOARD, 0);
    assert_ne!(flags(true) & proto::hello_flags::UNICODE_CLIPBOARD, 0);
}
