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
    ready_accepting(w, h, &vec![true; n])
}

/// `ready` with one viewer per entry, which says it decodes WebP (`Accept`)
/// when the entry is true, as the viewer does in such a browser.
fn ready_accepting(w: u16, h: u16, webp: &[bool]) -> (Session, Vec<usize>, Vec<v2::Canvas>) {
    let n = webp.len();
    let cfg = RfbConfig { shared: true, encodings: vec![], password: None, ..Default::default() };
    let mut s = Session::new("k".into(), "test".into(), cfg);
    s.phase = Phase::Ready;
    s.synced = true;
    s.fb = Framebuffer::new(w, h);
    s.update_damage = TileSet::new(w, h);
    s.fb.take_dirty(&mut TileSet::new(w, h));
    let mut ids = Vec::new();
    let t0 = Instant::now();
    for &webp in webp {
        let i = s.add_viewer(ids.len(), false);
        let mut hello = vec![0x80, proto::VERSION];
        if webp {
            hello.extend_from_slice(&[0x8B, proto::accept::WEBP]);
        }
        s.handle_viewer_message(i, &hello, t0, &mut Vec::new(), &mut at(t0)).unwrap();
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
    assert!(cs[0].kinds[v2::kind::WEBP].0 > 0, "the photo refined as WebP lossless");
    assert_eq!(cs[0].kinds[v2::kind::PNG].0, 0, "and not as PNG");
    assert!(s.poll_timeout().is_none(), "nothing lossy left");
}

/// A browser that does not say it decodes WebP (no `Accept`) gets PNG
/// refinements, exact all the same, and a viewer beside it that does gets
/// WebP: the two do not share refinement encodings.
#[test]
fn refinement_is_png_for_a_browser_without_webp() {
    let (mut s, ids, mut cs) = ready_accepting(400, 300, &[false, true]);
    let t0 = Instant::now();
    draw_desktop(&mut s.fb);
    s.hand_out_update();
    let mut t = t0;
    for _ in 0..80 {
        let mut any = false;
        for k in 0..2 {
            let (_, ends) = drain(&mut s, ids[k], &mut cs[k], t);
            for id in ends {
                any = true;
                ack(&mut s, ids[k], id, t + Duration::from_millis(5));
            }
        }
        t += Duration::from_millis(20);
        if !any && s.poll_timeout().is_none() {
            break;
        }
    }
    for (k, c) in cs.iter().enumerate() {
        assert!(c.kinds[v2::kind::JPEG].0 > 0, "viewer {k}: the photo went as JPEG first");
        assert!(c.fb == s.fb.data(), "viewer {k}: refined to the exact pixels");
    }
    assert!(cs[0].kinds[v2::kind::PNG].0 > 0 && cs[0].kinds[v2::kind::WEBP].0 == 0, "PNG only without Accept");
    assert!(cs[1].kinds[v2::kind::WEBP].0 > 0 && cs[1].kinds[v2::kind::PNG].0 == 0, "WebP only with Accept");
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

/// A browser on a simulated link: what the session composes arrives at
/// once; `Received` goes back after `rtt`, `FrameAck` after a frame is
/// drawn (`rtt` plus 2 ms). Time advances in 1 ms steps.
struct Browser {
    i: usize,
    c: v2::Canvas,
    t: Instant,
    rtt: Duration,
    /// (due, message) answers on their way back.
    answers: Vec<(Instant, Vec<u8>)>,
    /// Wire bytes composed so far.
    sent: u64,
}

impl Browser {
    fn new(i: usize, t: Instant, rtt_ms: u64) -> Browser {
        Browser { i, c: v2::Canvas::default(), t, rtt: Duration::from_millis(rtt_ms), answers: Vec::new(), sent: 0 }
    }

    /// One millisecond: answers that are due, then everything the session
    /// sends now (`each` sees the canvas after every WebSocket message).
    fn step(&mut self, s: &mut Session, mut each: impl FnMut(&v2::Canvas, &[v2::Msg])) {
        self.t += Duration::from_millis(1);
        let now = self.t;
        self.answers.sort_by_key(|a| a.0);
        while self.answers.first().is_some_and(|a| a.0 <= now) {
            let (_, m) = self.answers.remove(0);
            s.handle_viewer_message(self.i, &m, now, &mut Vec::new(), &mut at(now)).unwrap();
        }
        loop {
            let mut out = Vec::new();
            let k = s.compose(self.i, now, &mut out);
            if k == Composed::Nothing {
                return;
            }
            s.sent(self.i, k, out.len(), out.len(), now);
            self.sent += out.len() as u64;
            let msgs = self.c.apply(&out).expect("well-formed v2");
            for m in &msgs {
                match *m {
                    v2::Msg::EndFrame(id) | v2::Msg::EndPart(id, true) => {
                        self.answers.push((now + self.rtt, v2::enc::received(id)));
                        self.answers.push((now + self.rtt + Duration::from_millis(2), v2::enc::ack(id)));
                    }
                    v2::Msg::EndPart(id, false) => self.answers.push((now + self.rtt, v2::enc::received(id))),
                    _ => {}
                }
            }
            each(&self.c, &msgs);
        }
    }

    fn run(&mut self, s: &mut Session, ms: u64) {
        for _ in 0..ms {
            self.step(s, |_, _| {});
        }
    }
}

/// `w × h` of the photo test image, shifted by `dx` (a different picture).
fn photo_at(w: u16, h: u16, dx: u16) -> Framebuffer {
    let mut p = Framebuffer::new(w + dx, h);
    photo(&mut p);
    let mut out = Framebuffer::new(w, h);
    for y in 0..h {
        let o = (y as usize * (w + dx) as usize + dx as usize) * 4;
        out.put_rgba(Rect::new(0, y, w, 1), &p.data()[o..o + w as usize * 4]).unwrap();
    }
    out
}

/// PSNR of the canvas's `r` against `fb`'s same area (RGB).
fn canvas_psnr(c: &v2::Canvas, fb: &Framebuffer, r: Rect) -> f64 {
    let rgb: Vec<u8> = (r.y..r.bottom() as u16)
        .flat_map(|y| (r.x..r.right() as u16).flat_map(move |x| c.pixel(x, y)[..3].to_vec()))
        .collect();
    psnr(fb, r, &rgb)
}

/// A picture larger than a part goes in parts the browser holds: the
/// canvas never shows some of it, and it shows the screen as it was when
/// the picture was taken even though the screen changed meanwhile; the
/// change follows as the next picture.
#[test]
fn a_picture_in_parts_is_drawn_whole_from_one_snapshot() {
    let (mut s, ids, _) = ready(640, 480, 1);
    let area = Rect::new(0, 0, 640, 480);
    let (one, two) = (photo_at(640, 480, 0), photo_at(640, 480, 37));
    s.fb.put_rgba(area, one.data()).unwrap();
    s.hand_out_update();
    let mut b = Browser::new(ids[0], Instant::now(), 40);
    let (mut changed, mut drawn) = (false, 0);
    for _ in 0..3000 {
        let mut torn = None;
        b.step(&mut s, |c, msgs| {
            // After each message: the area is all black (nothing drawn yet)
            // or nowhere black.
            let black = (0..480).step_by(8).flat_map(|y| (0..640).step_by(8).map(move |x| (x, y)));
            let n = black.filter(|&(x, y)| c.pixel(x, y) == [0, 0, 0, 255]).count();
            if n != 0 && n != 80 * 60 {
                torn = Some(n);
            }
            if msgs.iter().any(|m| matches!(m, v2::Msg::EndPart(_, true))) {
                drawn += 1;
            }
        });
        assert_eq!(torn, None, "part of the picture drawn");
        if !changed && b.c.parts > 0 {
            // The screen changes while the first picture is on its way.
            s.fb.put_rgba(area, two.data()).unwrap();
            s.hand_out_update();
            changed = true;
        }
        if drawn == 1 {
            let (a, b2) = (canvas_psnr(&b.c, &one, area), canvas_psnr(&b.c, &two, area));
            assert!(a > 28.0 && b2 < a - 6.0, "the first screen ({a:.1} dB), not the second ({b2:.1} dB)");
            drawn += 1;
        }
    }
    assert!(changed && drawn >= 2, "a picture in parts ({} parts)", b.c.parts);
    assert!(canvas_psnr(&b.c, &two, area) > 28.0, "then the second screen");
}

/// A small change far from a big picture being sent is drawn before the
/// rest of the picture: it waits behind about one part of bytes, not the
/// picture.
#[test]
fn small_change_overtakes_a_big_picture() {
    let (mut s, ids, _) = ready(1024, 768, 1);
    s.lossless = true; // a big picture: the photo as exact pixels
    let area = Rect::new(0, 0, 640, 480);
    s.fb.put_rgba(area, photo_at(640, 480, 0).data()).unwrap();
    s.hand_out_update();
    let mut b = Browser::new(ids[0], Instant::now(), 40);
    // Warm up the pacer with the first picture.
    b.run(&mut s, 3000);
    s.fb.put_rgba(area, photo_at(640, 480, 11).data()).unwrap();
    s.hand_out_update();
    let parts = b.c.parts;
    while b.c.parts < parts + 2 {
        b.run(&mut s, 1);
    }
    // The change, far away from the photo, while its picture is going out.
    s.fb.fill(Rect::new(1000, 740, 8, 8), [250, 10, 10, 255]).unwrap();
    s.hand_out_update();
    let (sent, frames) = (b.sent, b.c.frames);
    let mut ahead = None;
    for _ in 0..2000 {
        b.run(&mut s, 1);
        if b.c.pixel(1003, 743) == [250, 10, 10, 255] {
            ahead = Some(b.sent - sent);
            break;
        }
    }
    let ahead = ahead.expect("the small change was drawn");
    let part = s.viewers[ids[0]].pacer.part_size();
    assert!(ahead <= 2 * part + 512, "{ahead} bytes went ahead of the small change (part {part})");
    assert!(b.c.frames > frames, "drawn as its own frame");
    assert!(s.viewers[ids[0]].picture.is_some(), "while the picture is still on its way");
}

/// A picture that brings a small change far from a photo together with the
/// photo: the small change is its own frame, drawn before the photo's
/// parts arrive.
#[test]
fn small_change_beside_a_photo_goes_first() {
    let (mut s, ids, _) = ready(1024, 768, 1);
    let mut b = Browser::new(ids[0], Instant::now(), 80);
    b.run(&mut s, 100);
    s.fb.put_rgba(Rect::new(0, 0, 640, 480), photo_at(640, 480, 0).data()).unwrap();
    s.fb.fill(Rect::new(900, 700, 100, 60), [9, 200, 9, 255]).unwrap();
    s.hand_out_update();
    let mut first: Option<Vec<v2::Msg>> = None;
    for _ in 0..3000 {
        b.step(&mut s, |_, msgs| {
            if first.is_none() && msgs.iter().any(|m| matches!(m, v2::Msg::EndFrame(_) | v2::Msg::EndPart(..))) {
                first = Some(msgs.to_vec());
            }
        });
    }
    let first = first.expect("something sent");
    assert!(first.iter().any(|m| matches!(m, v2::Msg::Fill { x: 900, y: 700, .. })), "{first:?}");
    assert!(first.iter().any(|m| matches!(m, v2::Msg::EndFrame(_))), "a frame of its own: {first:?}");
    assert!(!first.iter().any(|m| matches!(m, v2::Msg::Jpeg { .. } | v2::Msg::ImageBegin { .. })));
    assert!(b.c.parts > 0, "the photo went in parts");
}

/// Once the screen stops changing, refinement makes the canvas exact while
/// the link is otherwise idle, and a change made meanwhile is not held up
/// by it (refinement goes one part at a time, fresh damage first).
#[test]
fn refinement_completes_when_idle_and_never_blocks_damage() {
    let (mut s, ids, _) = ready(640, 480, 1);
    s.fb.put_rgba(Rect::new(0, 0, 640, 480), photo_at(640, 480, 0).data()).unwrap();
    s.hand_out_update();
    let mut b = Browser::new(ids[0], Instant::now(), 40);
    let t0 = b.t;
    while b.c.jpeg_pixels == 0 {
        b.run(&mut s, 1);
        assert!(b.t - t0 < Duration::from_secs(5), "no JPEG in 5 s");
    }
    assert!(b.c.fb != s.fb.data(), "lossy first");
    // Refinement is under way: a change now goes at the next part.
    while b.c.kinds[v2::kind::WEBP].0 == 0 {
        b.run(&mut s, 1);
    }
    s.fb.fill(Rect::new(10, 10, 4, 4), [1, 2, 3, 255]).unwrap();
    s.hand_out_update();
    let sent = b.sent;
    while b.c.pixel(11, 11) != [1, 2, 3, 255] {
        b.run(&mut s, 1);
        assert!(b.sent - sent <= 2 * s.viewers[ids[0]].pacer.part_size() + 512, "the change waited");
    }
    // And the canvas ends exact.
    let t0 = b.t;
    while b.c.fb != s.fb.data() {
        b.run(&mut s, 1);
        assert!(b.t - t0 < Duration::from_secs(20), "not exact after 20 s");
    }
}

/// A few-colour change (text) at `(x, y)`, 60×16.
fn draw_text(fb: &mut Framebuffer, x: u16, y: u16) {
    fb.fill(Rect::new(x, y, 60, 16), [250, 250, 250, 255]).unwrap();
    for gx in (x + 2..x + 58).step_by(6) {
        fb.fill(Rect::new(gx, y + 3, 3, 10), [20, 20, 20, 255]).unwrap();
    }
}

/// A small change that comes in the same update as a big photo, away from
/// it, goes as an aside of its own before the photo's picture is even
/// encoded, and the server is asked to write it out first; the photo
/// follows. (Not only a `Fill`: few-colour text too.)
#[test]
fn small_change_in_the_same_update_as_a_photo_goes_before_the_picture_is_encoded() {
    let (mut s, ids, _) = ready(1024, 768, 1);
    let i = ids[0];
    let mut b = Browser::new(i, Instant::now(), 40);
    b.run(&mut s, 100);
    s.fb.put_rgba(Rect::new(0, 0, 640, 480), photo_at(640, 480, 0).data()).unwrap();
    draw_text(&mut s.fb, 900, 700);
    s.hand_out_update();
    let mut out = Vec::new();
    let k = s.compose(i, b.t, &mut out);
    assert_ne!(k, Composed::Nothing);
    let msgs = b.c.apply(&out).expect("well-formed v2");
    assert!(msgs.iter().any(|m| matches!(m, v2::Msg::EndFrame(_))), "a frame of its own: {msgs:?}");
    assert!(!msgs.iter().any(|m| matches!(m, v2::Msg::Jpeg { .. } | v2::Msg::ImageBegin { .. })), "{msgs:?}");
    assert_eq!(b.c.pixel(903, 706), [20, 20, 20, 255], "the text is drawn");
    let v = &s.viewers[i];
    assert!(v.picture.is_none() && v.writing.is_none(), "no picture encoded yet");
    assert!(v.damage.intersects(Rect::new(0, 0, 640, 480)), "the photo is still to come");
    assert!(s.flush_first(i), "written out before the picture is encoded");
    s.sent(i, k, out.len(), out.len(), b.t);
    b.run(&mut s, 3000);
    assert!(canvas_psnr(&b.c, &s.fb, Rect::new(0, 0, 640, 480)) > 28.0, "then the photo");
}

/// While the pacer holds a viewer back (a picture just went), an update
/// bringing a new photo and a small change away from it: the small change
/// goes at once, past the pacer; the photo waits for its turn.
#[test]
fn small_change_in_the_same_update_as_a_photo_does_not_wait_for_the_pacer() {
    let (mut s, ids, _) = ready(1024, 768, 1);
    let i = ids[0];
    let area = Rect::new(0, 0, 640, 480);
    s.fb.put_rgba(area, photo_at(640, 480, 0).data()).unwrap();
    s.hand_out_update();
    let mut b = Browser::new(i, Instant::now(), 40);
    b.run(&mut s, 3000);
    s.fb.put_rgba(area, photo_at(640, 480, 11).data()).unwrap();
    s.hand_out_update();
    // Until the picture has gone and the pacer holds the viewer back.
    let mut held = false;
    for _ in 0..3000 {
        b.run(&mut s, 1);
        let v = &s.viewers[i];
        if v.picture.is_none() && v.writing.is_none() && !v.has_changes() && !v.pacer.can_send(b.t + ms(1)) {
            held = true;
            break;
        }
    }
    assert!(held, "the pacer held the viewer back after a picture");
    s.fb.put_rgba(area, photo_at(640, 480, 23).data()).unwrap();
    s.fb.fill(Rect::new(1000, 740, 8, 8), [250, 10, 10, 255]).unwrap();
    s.hand_out_update();
    b.run(&mut s, 1);
    assert_eq!(b.c.pixel(1003, 743), [250, 10, 10, 255], "the small change went past the pacer");
    assert!(s.viewers[i].damage.intersects(area), "the photo waits for the pacer");
    b.run(&mut s, 3000);
    assert!(canvas_psnr(&b.c, &s.fb, area) > 28.0, "then the photo");
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
