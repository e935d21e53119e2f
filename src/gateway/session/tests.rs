//! The session's frame composition, sans-IO: the framebuffer is drawn
//! directly and handed out as an update; viewers are the test client of
//! tests/common/v2.rs (its transport-free `Canvas`), acking as a browser
//! does; the clock is simulated.

use std::time::{Duration, Instant};

use super::*;
use crate::fb::Rect;
use crate::gateway::encode::jpeg::tests::{photo, psnr};
use crate::gateway::Attempt;

/// A loopback browser at `now` with a guard of its own (no password here).
fn at(now: Instant) -> Attempt<'static> {
    Attempt { guard: Box::leak(Box::default()), peer: std::net::Ipv4Addr::LOCALHOST.into(), now }
}

#[path = "../../../tests/common/v2.rs"]
pub(super) mod v2;

/// A session in `Ready` state with a `w × h` framebuffer and `n` viewers
/// that have joined.
fn ready(w: u16, h: u16, n: usize) -> (Session, Vec<usize>, Vec<v2::Canvas>) {
    let cfg = RfbConfig { shared: true, encodings: vec![], password: None, ..Default::default() };
    let mut s = Session::new("k".into(), "test".into(), cfg);
    s.phase = Phase::Ready;
    s.synced = true;
    s.fb = Framebuffer::new(w, h);
    s.update_damage = TileSet::new(w, h);
    s.fb.take_dirty(&mut TileSet::new(w, h));
    let mut ids = Vec::new();
    let t0 = Instant::now();
    for _ in 0..n {
        let i = s.add_viewer(ids.len(), false);
        s.handle_viewer_message(i, &[0x80, proto::VERSION], t0, &mut Vec::new(), &mut at(t0)).unwrap();
        ids.push(i);
    }
    (s, ids, (0..n).map(|_| v2::Canvas::default()).collect())
}

/// Compose everything viewer `i` may be sent at `now` into its canvas;
/// returns the bytes and the frame ids that ended.
fn drain(s: &mut Session, i: usize, c: &mut v2::Canvas, now: Instant) -> (Vec<u8>, Vec<u32>) {
    let (mut all, mut ends) = (Vec::new(), Vec::new());
    loop {
        let mut out = Vec::new();
        let k = s.compose(i, now, &mut out);
        if k == Composed::Nothing {
            return (all, ends);
        }
        s.sent(i, k, out.len(), out.len(), now);
        for m in c.apply(&out).expect("well-formed v2") {
            if let v2::Msg::EndFrame(id) = m {
                ends.push(id);
            }
        }
        all.extend_from_slice(&out);
    }
}

fn ack(s: &mut Session, i: usize, id: u32, now: Instant) {
    let mut m = vec![0x84];
    m.extend_from_slice(&id.to_le_bytes());
    s.handle_viewer_message(i, &m, now, &mut Vec::new(), &mut at(now)).unwrap();
}

/// A desktop: UI bar, text, and a photo in a window.
fn draw_desktop(fb: &mut Framebuffer) {
    fb.fill(fb.full_rect(), [30, 60, 90, 255]).unwrap();
    fb.fill(Rect::new(0, 0, fb.width(), 24), [40, 40, 40, 255]).unwrap();
    for x in (10..200).step_by(7) {
        fb.fill(Rect::new(x, 8, 4, 9), [230, 230, 230, 255]).unwrap();
    }
    let mut p = Framebuffer::new(256, 192);
    photo(&mut p);
    fb.put_rgba(Rect::new(40, 40, 256, 192), p.data()).unwrap();
}

#[test]
fn photo_goes_as_jpeg_and_is_refined_to_exact() {
    let (mut s, ids, mut cs) = ready(400, 300, 1);
    let t0 = Instant::now();
    draw_desktop(&mut s.fb);
    s.hand_out_update();
    let (_, ends) = drain(&mut s, ids[0], &mut cs[0], t0);
    let c = &cs[0];
    assert!(c.kinds[v2::kind::JPEG].0 > 0, "the photo went as JPEG");
    assert!(c.kinds[v2::kind::PALETTE].0 + c.kinds[v2::kind::FILL].0 > 0, "the UI did not");
    assert!(c.fb != s.fb.data(), "lossy so far");
    let rgb: Vec<u8> = c.fb.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    let db = psnr(&s.fb, s.fb.full_rect(), &rgb);
    assert!(db > 30.0, "PSNR {db:.1} dB");
    // The session asks to be woken when the JPEG areas fall due.
    let due = s.poll_timeout().expect("a refinement is due later");
    assert!(due > t0 && due <= t0 + Duration::from_millis(crate::gateway::frames::REFINE_AFTER_MS as u64 + 5));
    let t1 = t0 + Duration::from_millis(50);
    for id in ends {
        ack(&mut s, ids[0], id, t1);
    }
    assert!(drain(&mut s, ids[0], &mut cs[0], t1).0.is_empty(), "not due yet");
    // Refinement parts, acked as they come (the pacer's room is finite).
    let mut t = t0 + Duration::from_millis(300);
    for _ in 0..50 {
        let (_, ends) = drain(&mut s, ids[0], &mut cs[0], t);
        t += Duration::from_millis(10);
        match ends.last() {
            Some(&id) => ack(&mut s, ids[0], id, t),
            None => break,
        }
    }
    assert!(cs[0].fb == s.fb.data(), "refined to the exact pixels");
    assert!(s.poll_timeout().is_none(), "nothing lossy left");
}

#[test]
fn viewers_in_the_same_state_share_encoded_parts() {
    let (mut s, ids, mut cs) = ready(400, 300, 5);
    let t0 = Instant::now();
    draw_desktop(&mut s.fb);
    s.hand_out_update();
    let mut first: Vec<Vec<u8>> = Vec::new();
    for (k, &i) in ids.iter().enumerate() {
        first.push(drain(&mut s, i, &mut cs[k], t0).0);
    }
    assert!(first.iter().all(|b| b == &first[0] && !b.is_empty()), "same bytes for all");
    let encoded = s.parts.encoded;
    assert_eq!(s.parts.served, encoded * 5, "each part encoded once, served five times");
    // Ack, change a little, again: one more encode, shared.
    let t1 = t0 + Duration::from_millis(20);
    for (k, &i) in ids.iter().enumerate() {
        let last = cs[k].last_frame.unwrap();
        ack(&mut s, i, last, t1);
    }
    s.fb.fill(Rect::new(300, 250, 20, 10), [255, 0, 0, 255]).unwrap();
    s.hand_out_update();
    for (k, &i) in ids.iter().enumerate() {
        drain(&mut s, i, &mut cs[k], t1);
    }
    assert_eq!(s.parts.encoded, encoded + 1);
    for c in &cs {
        assert_eq!(c.pixel(305, 255), [255, 0, 0, 255]);
    }
}

/// A huge frame goes out in parts; a small change made meanwhile goes in
/// the next part, ahead of the rest of the huge frame.
#[test]
fn small_change_overtakes_the_rest_of_a_huge_frame() {
    let (mut s, ids, mut cs) = ready(1024, 768, 1);
    s.lossless = true; // big parts: the noise below is incompressible
    let t0 = Instant::now();
    let mut noise = Framebuffer::new(1024, 768);
    let mut x = 0x2545_f491u32;
    let px: Vec<u8> = (0..1024 * 768 * 4)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i % 4 == 3 {
                255
            } else {
                x as u8
            }
        })
        .collect();
    noise.put_rgba(noise.full_rect(), &px).unwrap();
    s.fb.put_rgba(s.fb.full_rect(), noise.data()).unwrap();
    s.hand_out_update();
    let (sent, ends) = drain(&mut s, ids[0], &mut cs[0], t0);
    assert!(!s.viewers[ids[0]].damage.is_empty(), "the 2.3 MB frame did not go at once");
    assert!((sent.len() as u64) < 2 * Pacer::default().budget() + 1024 * 64 * 3, "{} bytes", sent.len());
    // A small change, in the top tile row (sent already), while most of
    // the frame waits.
    s.fb.fill(Rect::new(1000, 10, 4, 4), [1, 2, 3, 255]).unwrap();
    s.hand_out_update();
    let t1 = t0 + Duration::from_millis(30);
    ack(&mut s, ids[0], *ends.last().unwrap(), t1);
    let mut out = Vec::new();
    let k = s.compose(ids[0], t1, &mut out);
    assert_ne!(k, Composed::Nothing);
    let msgs = cs[0].apply(&out).unwrap();
    assert_eq!(
        msgs.first(),
        Some(&v2::Msg::Fill { x: 1000, y: 10, w: 4, h: 4, rgba: [1, 2, 3, 255] }),
        "the small change leads the next part"
    );
}
