//! Normal-phase extensions, scripted byte by byte: QEMU keys and LEDs,
//! ExtendedMouseButtons, the four cursor pseudo-encodings, ContinuousUpdates
//! and Fence, the Extended Clipboard, Tight JPEG. Streams are fed whole,
//! byte by byte and at random splits (`feed_every_way`); API calls are
//! checked against literal bytes.

use super::tests::Outcome;
use super::tests::*;
use super::*;
use crate::rfb::encoding::*;

/// A client past `hello` with `encodings` advertised, and its framebuffer.
fn connected_client(encodings: &[i32], w: u16, h: u16) -> (RfbClient, Framebuffer) {
    let mut client = RfbClient::new(cfg(encodings, None));
    let mut fb = Framebuffer::new(0, 0);
    let input = hello(w, h, "");
    assert_eq!(client.handle_input(&input, &mut fb, &mut Vec::new()), Ok(input.len()));
    while client.poll_event().is_some() {}
    (client, fb)
}

/// Feed `input` whole; return what the client wrote and the events.
fn run(client: &mut RfbClient, fb: &mut Framebuffer, input: &[u8]) -> (Vec<u8>, Vec<RfbEvent>) {
    let mut out = Vec::new();
    assert_eq!(client.handle_input(input, fb, &mut out), Ok(input.len()));
    (out, std::iter::from_fn(|| client.poll_event()).collect())
}

fn ext() -> RfbConfig {
    let mut c = all_encodings();
    c.encodings.push(JPEG_QUALITY_0 + 6);
    c
}

// ------------------------------------------------ keys, LEDs and buttons

#[test]
fn qemu_keys_leds_and_mouse_buttons_confirmed_by_the_server() {
    let mut input = hello(4, 4, "");
    input.extend(update(4));
    input.extend(rect(0, 0, 0, 0, QEMU_EXTENDED_KEY_EVENT));
    input.extend(rect(0, 0, 0, 0, QEMU_LED_STATE));
    input.push(0b110); // num + caps
    input.extend(rect(0, 0, 0, 0, EXTENDED_MOUSE_BUTTONS));
    input.extend(rect(0, 0, 0, 0, QEMU_LED_STATE));
    input.push(0b1111_1001); // scroll; reserved bits ignored
    let o = feed_every_way(ext(), &input);
    assert_eq!(o.result, Ok(()));
    let led = |scroll_lock, num_lock, caps_lock| RfbEvent::LedState { scroll_lock, num_lock, caps_lock };
    assert_eq!(o.events[1..], [led(false, true, true), led(true, false, false), RfbEvent::UpdateDone]);

    // Before the confirmation: plain KeyEvent and PointerEvent.
    let (mut client, mut fb) = connected_client(&ext().encodings, 4, 4);
    let mut out = Vec::new();
    client.key_event_ext(true, 0xfc, 0x1a, &mut out); // ü on a German keyboard: the [ key
    client.key_event_ext(true, 0, 0x1a, &mut out); // no keysym, no extension: nothing
    client.pointer_event_ext(0x180 | 1, 7, 8, &mut out); // back + forward + left
    assert_eq!(out, [4, 1, 0, 0, 0, 0, 0, 0xfc, 5, 0x81, 0, 7, 0, 8]);
    assert!(!client.supports_scancodes() && !client.supports_extended_buttons());

    // After it: the QEMU message (keysym and keycode) and the extended form.
    run(&mut client, &mut fb, &input[hello(4, 4, "").len()..]);
    assert!(client.supports_scancodes() && client.supports_extended_buttons());
    out.clear();
    client.key_event_ext(true, 0xfc, 0x1a, &mut out);
    client.key_event_ext(false, 0, 0xb8, &mut out); // AltGr up, keysym unknown
    client.key_event_ext(true, 0x61, 0, &mut out); // keycode unknown: KeyEvent
    let mut want = vec![255, 0, 0, 1, 0, 0, 0, 0xfc, 0, 0, 0, 0x1a];
    want.extend_from_slice(&[255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xb8]);
    want.extend_from_slice(&[4, 1, 0, 0, 0, 0, 0, 0x61]);
    assert_eq!(out, want);
    out.clear();
    client.pointer_event_ext(0x100, 1, 2, &mut out); // forward
    client.pointer_event_ext(0x80 | 4, 1, 2, &mut out); // back + right
    client.pointer_event_ext(0x41, 1, 2, &mut out); // left + wheel right: plain
    let mut want = vec![5, 0x80, 0, 1, 0, 2, 0b10];
    want.extend_from_slice(&[5, 0x84, 0, 1, 0, 2, 0b01]);
    want.extend_from_slice(&[5, 0x41, 0, 1, 0, 2]);
    assert_eq!(out, want);
    // The browser's codes map to these keycodes.
    assert_eq!(crate::rfb::scancodes::rfb_keycode("BracketLeft"), Some(0x1a));
    assert_eq!(crate::rfb::scancodes::rfb_keycode("AltRight"), Some(0xb8));
}

// --------------------------------------------------------------- cursors

fn cursor_of(o: &Outcome) -> Vec<&RfbEvent> {
    o.events.iter().filter(|e| matches!(e, RfbEvent::Cursor { .. })).collect()
}

fn cursor(hot_x: u16, hot_y: u16, width: u16, height: u16, rgba: Vec<u8>) -> RfbEvent {
    RfbEvent::Cursor { hot_x, hot_y, width, height, rgba }
}

#[test]
fn every_cursor_pseudo_encoding() {
    let mut input = hello(4, 4, "");
    input.extend(update(7));
    // X Cursor 2×1, hotspot (1,0): primary white, secondary black; bitmap
    // 10, mask 11.
    input.extend(rect(1, 0, 2, 1, X_CURSOR));
    input.extend_from_slice(&[255, 255, 255, 0, 0, 0, 0b1000_0000, 0b1100_0000]);
    // X Cursor 0×0: no data, "no cursor".
    input.extend(rect(0, 0, 0, 0, X_CURSOR));
    // VMware classic 2×1: opaque red; transparent.
    input.extend(rect(0, 1, 2, 1, VMWARE_CURSOR));
    input.extend_from_slice(&[0, 0]);
    input.extend_from_slice(&[0, 0, 0, 0, 255, 255, 255, 0]); // AND
    input.extend_from_slice(&px(255, 0, 0));
    input.extend_from_slice(&[0, 0, 0, 0]); // XOR
                                            // VMware alpha 1×1: straight alpha, taken as is.
    input.extend(rect(0, 0, 1, 1, VMWARE_CURSOR));
    input.extend_from_slice(&[1, 0, 200, 100, 50, 128]);
    // Cursor With Alpha, Raw, 2×1: premultiplied (100,50,0,128) and transparent.
    input.extend(rect(3, 4, 2, 1, CURSOR_WITH_ALPHA));
    input.extend_from_slice(&RAW.to_be_bytes());
    input.extend_from_slice(&[100, 50, 0, 128, 0, 0, 0, 0]);
    // Cursor With Alpha in Hextile (the data decoders keep alpha): one
    // 2×2 tile, background (64,32,16,64).
    input.extend(rect(0, 0, 2, 2, CURSOR_WITH_ALPHA));
    input.extend_from_slice(&HEXTILE.to_be_bytes());
    input.extend_from_slice(&[2, 64, 32, 16, 64]);
    // A VMware alpha cursor over the size limit: skipped.
    input.extend(rect(0, 0, 300, 1, VMWARE_CURSOR));
    input.extend_from_slice(&[1, 0]);
    input.extend(std::iter::repeat_n(9u8, 300 * 4));
    let o = feed_every_way(ext(), &input);
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.left, 0);
    assert_eq!(
        cursor_of(&o),
        [
            &cursor(1, 0, 2, 1, vec![255, 255, 255, 255, 0, 0, 0, 255]),
            &cursor(0, 0, 0, 0, vec![]),
            &cursor(0, 1, 2, 1, vec![255, 0, 0, 255, 0, 0, 0, 0]),
            &cursor(0, 0, 1, 1, vec![200, 100, 50, 128]),
            &cursor(3, 4, 2, 1, vec![199, 100, 0, 128, 0, 0, 0, 0]),
            &cursor(0, 0, 2, 2, [255, 128, 64, 64].repeat(4)),
        ]
    );
    assert_eq!(o.events.last(), Some(&RfbEvent::UpdateDone));
}

#[test]
fn bad_cursors_are_errors_not_panics() {
    let fail = |rest: &[u8]| {
        let (mut client, mut fb) = in_update(ext(), 8, 8);
        client.handle_input(rest, &mut fb, &mut Vec::new()).unwrap_err().to_string()
    };
    let mut v = rect(0, 0, 2, 2, VMWARE_CURSOR);
    v.extend_from_slice(&[7, 0]);
    assert!(fail(&v).contains("VMware cursor of unknown type 7"));
    let mut v = rect(0, 0, 2, 2, CURSOR_WITH_ALPHA);
    v.extend_from_slice(&99i32.to_be_bytes());
    assert!(fail(&v).contains("encoding 99"));
    let mut v = rect(0, 0, 300, 2, CURSOR_WITH_ALPHA);
    v.extend_from_slice(&ZRLE.to_be_bytes());
    assert!(fail(&v).contains("300x2 cursor with alpha"));
    // Raw over the limit is skipped: its length is known.
    let mut input = hello(4, 4, "");
    input.extend(update(1));
    input.extend(rect(0, 0, 300, 2, CURSOR_WITH_ALPHA));
    input.extend_from_slice(&RAW.to_be_bytes());
    input.extend(std::iter::repeat_n(1u8, 300 * 2 * 4));
    let o = feed(ext(), &input);
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.events[1..], [RfbEvent::UpdateDone]);
}

// ----------------------------------------------- continuous updates, fence

fn fence_msg(flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![248, 0, 0, 0];
    v.extend_from_slice(&flags.to_be_bytes());
    v.push(payload.len() as u8);
    v.extend_from_slice(payload);
    v
}

fn enable_cu(on: bool, w: u16, h: u16) -> Vec<u8> {
    let mut v = vec![150, on as u8];
    v.extend(be16s(&[0, 0, w, h]));
    v
}

#[test]
fn fences_are_answered_in_order() {
    use continuous::*;
    let mut input = hello(4, 4, "");
    // A request with every flag and a payload; a response (no answer); an
    // over-long payload (skipped, as TigerVNC does); then a Bell to show the
    // stream continues.
    input.extend(fence_msg(FENCE_REQUEST | FENCE_BLOCK_BEFORE | FENCE_SYNC_NEXT | 1 << 9, b"abc"));
    input.extend(fence_msg(FENCE_BLOCK_AFTER, b""));
    let mut long = fence_msg(FENCE_REQUEST, &[7; 65]);
    long[8] = 65;
    input.extend(long);
    input.push(2);
    let o = feed_every_way(ext(), &input);
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.events[1..], [RfbEvent::Bell]);
    assert!(o.out.ends_with(&fence_msg(FENCE_BLOCK_BEFORE | FENCE_SYNC_NEXT, b"abc")), "{:?}", o.out);
    assert_eq!(o.out.iter().filter(|&&b| b == 248).count(), 1, "one answer: {:?}", o.out);
}

#[test]
fn continuous_updates_replace_requests_once_confirmed() {
    let (mut client, mut fb) = connected_client(&ext().encodings, 64, 32);
    let mut out = Vec::new();
    // Not confirmed yet: ordinary requests.
    client.request_update(true, &fb, &mut out);
    assert_eq!(out, [3, 1, 0, 0, 0, 0, 0, 64, 0, 32]);
    // The server confirms (EndOfContinuousUpdates after SetEncodings) and
    // answers the request.
    let mut input = vec![150];
    input.extend(update(0));
    let (o, ev) = run(&mut client, &mut fb, &input);
    assert!(o.is_empty());
    assert_eq!(ev, [RfbEvent::UpdateDone]);
    assert!(!client.update_pending());
    // The next incremental request turns continuous updates on; later ones
    // send nothing; non-incremental ones still go out.
    out.clear();
    client.request_update(true, &fb, &mut out);
    assert_eq!(out, enable_cu(true, 64, 32));
    assert!(client.continuous_updates());
    out.clear();
    client.request_update(true, &fb, &mut out);
    assert!(out.is_empty());
    client.request_update(false, &fb, &mut out);
    assert_eq!(out, [3, 0, 0, 0, 0, 0, 0, 64, 0, 32]);
    // Unasked updates are applied; a resize moves the area.
    let mut input = update(2);
    input.extend(rect(0, 0, 1, 1, RAW));
    input.extend_from_slice(&px(1, 2, 3));
    input.extend(rect(0, 0, 80, 40, DESKTOP_SIZE));
    let (o, ev) = run(&mut client, &mut fb, &input);
    assert_eq!(o, enable_cu(true, 80, 40));
    assert_eq!(ev, [RfbEvent::Resized { width: 80, height: 40 }, RfbEvent::UpdateDone]);
    // Pausing sends EnableContinuousUpdates(0); the server's
    // EndOfContinuousUpdates follows; the next request turns them on again.
    out.clear();
    client.pause_updates(&mut out);
    client.pause_updates(&mut out);
    assert_eq!(out, [150, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert!(!client.continuous_updates());
    run(&mut client, &mut fb, &[150]);
    out.clear();
    client.request_update(true, &fb, &mut out);
    assert_eq!(out, enable_cu(true, 80, 40));
}

#[test]
fn end_of_continuous_updates_at_every_split() {
    let mut input = hello(4, 4, "");
    input.push(150);
    input.extend(update(1));
    input.extend(rect(0, 0, 1, 1, RAW));
    input.extend_from_slice(&px(9, 9, 9));
    input.push(150);
    let o = feed_every_way(ext(), &input);
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.events[1..], [RfbEvent::UpdateDone]);
    assert_eq!(at(&o, 0, 0), [9, 9, 9]);
}

// --------------------------------------------------- extended clipboard

fn ext_cut(payload: &[u8]) -> Vec<u8> {
    let mut v = vec![3, 0, 0, 0];
    v.extend_from_slice(&(-(payload.len() as i32)).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn zlib(data: &[u8]) -> Vec<u8> {
    crate::rfb::decode::testutil::Server::new().deflate(data)
}

fn provide_text(text: &str) -> Vec<u8> {
    let mut wire = text.replace('\n', "\r\n").into_bytes();
    wire.push(0);
    let mut plain = (wire.len() as u32).to_be_bytes().to_vec();
    plain.extend(wire);
    let mut p = (ext_clipboard::PROVIDE | ext_clipboard::TEXT).to_be_bytes().to_vec();
    p.extend(zlib(&plain));
    ext_cut(&p)
}

/// TigerVNC's caps: text, rtf, html; request, peek, notify, provide; 0 bytes
/// unsolicited for each.
fn tiger_caps() -> Vec<u8> {
    use ext_clipboard::*;
    let mut p = (CAPS | TEXT | 2 | 4 | REQUEST | PEEK | NOTIFY | PROVIDE).to_be_bytes().to_vec();
    p.extend_from_slice(&[0; 12]);
    ext_cut(&p)
}

#[test]
fn extended_clipboard_both_ways_at_every_split() {
    use ext_clipboard::*;
    let text = "Ελληνικά\n中文 😀 ß";
    let mut input = hello(4, 4, "");
    input.extend(tiger_caps());
    input.extend(ext_cut(&(NOTIFY | TEXT).to_be_bytes()));
    input.extend(provide_text(text));
    // Over the wire limit: skipped, not fatal; the Bell after it arrives.
    let mut big = vec![3, 0, 0, 0];
    big.extend_from_slice(&(-((MAX_EXT_CLIPBOARD + 1) as i32)).to_be_bytes());
    big.extend(std::iter::repeat_n(0u8, MAX_EXT_CLIPBOARD as usize + 1));
    input.extend(big);
    input.push(2);
    let c = ext();
    let o = feed_every_way(c.clone(), &input);
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.events[1..], [RfbEvent::ServerCutText(text.into()), RfbEvent::Bell]);
    // We answered the caps with ours, and the notify with a request.
    let mut want = after_init(RfbClient::new(c.clone()).encodings());
    want.splice(0..0, b"RFB 003.008\n\x01\x01".iter().copied());
    want.extend_from_slice(&[6, 0, 0, 0, 0xff, 0xff, 0xff, 0xf8]);
    want.extend_from_slice(&(CAPS | TEXT | REQUEST | PEEK | NOTIFY | PROVIDE).to_be_bytes());
    want.extend_from_slice(&MAX_CUT_TEXT.to_be_bytes());
    want.extend_from_slice(&[6, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc]);
    want.extend_from_slice(&(REQUEST | TEXT).to_be_bytes());
    assert_eq!(o.out, want);

    // Our text: notify, then provide on the server's request.
    let (mut client, mut fb) = connected_client(&c.encodings, 4, 4);
    let mut out = Vec::new();
    client.client_cut_text("é", &mut out);
    assert_eq!(out, [6, 0, 0, 0, 0, 0, 0, 1, 0xe9], "Latin-1 before the caps");
    assert!(!client.unicode_clipboard());
    run(&mut client, &mut fb, &tiger_caps());
    assert!(client.unicode_clipboard());
    out.clear();
    client.client_cut_text("日本語\n", &mut out);
    assert_eq!(out, [6, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc, 0x08, 0, 0, 1]);
    let (o, _) = run(&mut client, &mut fb, &ext_cut(&(REQUEST | TEXT).to_be_bytes()));
    assert_eq!(u32::from_be_bytes(o[8..12].try_into().unwrap()), PROVIDE | TEXT);
    let mut z = flate2::Decompress::new(true);
    let mut plain = Vec::with_capacity(256);
    z.decompress_vec(&o[12..], &mut plain, flate2::FlushDecompress::Finish).unwrap();
    assert_eq!(&plain[4..], "日本語\r\n\0".as_bytes());
}

#[test]
fn negative_cut_text_length_without_the_extension_is_an_error() {
    let mut input = hello(4, 4, "");
    input.extend(provide_text("x"));
    let o = feed(cfg(&[RAW], None), &input);
    assert!(matches!(o.result, Err(RfbError::Protocol(ref m)) if m.contains("ServerCutText of 4294967")), "{o:?}");
}

// ------------------------------------------------------------ Tight JPEG

#[cfg(feature = "vnc-jpeg")]
const JPEG_16X8: &[u8] = include_bytes!("../decode/testdata/red-blue-16x8.jpg");

#[cfg(feature = "vnc-jpeg")]
fn tight_jpeg(x: u16, y: u16, w: u16, h: u16, jpeg: &[u8]) -> Vec<u8> {
    let mut v = rect(x, y, w, h, TIGHT);
    v.push(0x90);
    let n = jpeg.len();
    assert!(n < 16384);
    if n < 128 {
        v.push(n as u8);
    } else {
        v.extend_from_slice(&[0x80 | (n & 0x7f) as u8, (n >> 7) as u8]);
    }
    v.extend_from_slice(jpeg);
    v
}

#[test]
#[cfg(feature = "vnc-jpeg")]
fn tight_jpeg_rectangles_when_a_quality_was_advertised() {
    // A 16×8 JPEG (ImageMagick, quality 95, 4:4:4) of red | blue halves.
    let mut input = hello(20, 10, "");
    input.extend(update(1));
    input.extend(tight_jpeg(2, 1, 16, 8, JPEG_16X8));
    let o = feed_every_way(ext(), &input);
    assert_eq!(o.result, Ok(()));
    let near = |got: [u8; 3], want: [u8; 3]| got.iter().zip(want).all(|(&g, w)| g.abs_diff(w) <= 12);
    for (x, y, want) in [(2, 1, [255, 0, 0]), (9, 8, [255, 0, 0]), (10, 1, [0, 0, 255]), (17, 8, [0, 0, 255])] {
        assert!(near(at(&o, x, y), want), "({x},{y}): {:?}", at(&o, x, y));
    }
    assert_eq!(at(&o, 0, 0), [0, 0, 0], "outside the rectangle");
    assert_eq!(at(&o, 18, 1), [0, 0, 0], "outside the rectangle");
    // Without a quality level JPEG is refused (rfbproto §7.7.7).
    let o = feed(all_encodings(), &input);
    assert!(matches!(o.result, Err(RfbError::Protocol(ref m)) if m.contains("JPEG not advertised")));
}

#[test]
#[cfg(feature = "vnc-jpeg")]
fn bad_tight_jpeg_is_an_error() {
    let fail = |rest: &[u8]| {
        let (mut client, mut fb) = in_update(ext(), 32, 32);
        client.handle_input(rest, &mut fb, &mut Vec::new()).unwrap_err().to_string()
    };
    // The image is 16×8, the rectangles 8×8 and 16×9.
    assert!(fail(&tight_jpeg(0, 0, 8, 8, JPEG_16X8)).contains("width 16 greater than width limit 8"));
    assert!(fail(&tight_jpeg(0, 0, 16, 9, JPEG_16X8)).contains("JPEG image of Some((16, 8)) pixels in a 16x9"));
    // Not a JPEG at all, and a truncated one.
    assert!(fail(&tight_jpeg(0, 0, 16, 8, &[0x55; 100])).contains("JPEG"));
    assert!(fail(&tight_jpeg(0, 0, 16, 8, &JPEG_16X8[..150])).contains("JPEG"));
    // A length beyond what the rectangle could need.
    let mut v = rect(0, 0, 1, 1, TIGHT);
    v.extend_from_slice(&[0x90, 0xff, 0xff, 0x7f]);
    assert!(fail(&v).contains("JPEG of 2097151 bytes"));
}

#[test]
#[cfg(feature = "vnc-jpeg")]
fn corrupted_jpegs_never_panic() {
    let mut rnd = crate::rfb::decode::testutil::xorshift(0x1234_5678);
    for _ in 0..3000 {
        // Flip a few bytes of the real image, or cut it short.
        let mut jpeg = JPEG_16X8.to_vec();
        for _ in 0..1 + rnd() % 4 {
            let i = rnd() as usize % jpeg.len();
            jpeg[i] = rnd() as u8;
        }
        jpeg.truncate(jpeg.len() - rnd() as usize % 40);
        let (mut client, mut fb) = in_update(ext(), 32, 32);
        let input = tight_jpeg(0, 0, 16, 8, &jpeg);
        if let Ok(n) = client.handle_input(&input, &mut fb, &mut Vec::new()) {
            assert_eq!(n, input.len());
        }
    }
}
