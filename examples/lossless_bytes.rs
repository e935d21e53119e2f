//! lossless_bytes: the refinement's lossless codecs side by side on
//! photo-like content: PNG (`gateway::encode::png`) against WebP lossless
//! (`gateway::encode::webp`), bytes and encode time per image.
//!
//! Each wallpaper of Debian's gnome-backgrounds is scaled to 640×480 by
//! ImageMagick (`convert`) and encoded whole and as the 64-row strips a
//! refinement sends. Times are the median of 5 encodes. Each WebP is decoded
//! (image-webp) and checked to be the exact pixels.
//!
//! Usage: cargo run --release --example lossless_bytes

use std::time::Instant;

use wsvnc::fb::{Framebuffer, Rect};
use wsvnc::gateway::encode::{png::Png, webp::Webp};

#[path = "common/wallpapers.rs"]
mod wallpapers;
use wallpapers::{load, H, W};

/// Bytes and median ms of encoding `rects` of `fb` with `enc`.
fn measure(fb: &Framebuffer, rects: &[Rect], mut enc: impl FnMut(&Framebuffer, Rect, &mut Vec<u8>)) -> (usize, f64) {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..5 {
        let mut out = Vec::new();
        let t = Instant::now();
        for &r in rects {
            enc(fb, r, &mut out);
        }
        times.push(t.elapsed().as_secs_f64() * 1e3);
        bytes = out.len();
    }
    times.sort_by(f64::total_cmp);
    (bytes, times[2])
}

/// The whole image through the WebP encoder and back is the framebuffer's RGB.
fn assert_exact(fb: &Framebuffer, webp: &mut Webp, name: &str) {
    let mut out = Vec::new();
    webp.encode(fb, fb.full_rect(), &mut out);
    let mut d = image_webp::WebPDecoder::new(std::io::Cursor::new(&out)).expect("a WebP header");
    let mut rgb = vec![0u8; d.output_buffer_size().expect("a size")];
    d.read_image(&mut rgb).expect("a decodable WebP");
    let want: Vec<u8> = fb.data().chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    assert!(rgb == want, "{name}: WebP not exact");
}

fn main() {
    let names = wallpapers::names();
    let whole = [Rect::new(0, 0, W, H)];
    let strips: Vec<Rect> = (0..H).step_by(64).map(|y| Rect::new(0, y, W, (H - y).min(64))).collect();
    println!(
        "{:<22} {:>9} {:>9} {:>6}  {:>9} {:>9} {:>6}  {:>7} {:>7}",
        "image (640x480)", "png", "webp", "ratio", "png strp", "webp strp", "ratio", "png ms", "webp ms"
    );
    let mut sum = [0f64; 6];
    let (mut png, mut webp) = (Png::default(), Webp::default());
    for name in &names {
        let fb = load(name);
        let (p, pt) = measure(&fb, &whole, |fb, r, o| png.encode(fb, r, o));
        let (w, wt) = measure(&fb, &whole, |fb, r, o| webp.encode(fb, r, o));
        assert_exact(&fb, &mut webp, name);
        let (ps, _) = measure(&fb, &strips, |fb, r, o| png.encode(fb, r, o));
        let (ws, _) = measure(&fb, &strips, |fb, r, o| webp.encode(fb, r, o));
        println!(
            "{:<22} {:>9} {:>9} {:>6.3}  {:>9} {:>9} {:>6.3}  {:>7.1} {:>7.1}",
            name,
            p,
            w,
            w as f64 / p as f64,
            ps,
            ws,
            ws as f64 / ps as f64,
            pt,
            wt
        );
        for (s, v) in sum.iter_mut().zip([p as f64, w as f64, ps as f64, ws as f64, pt, wt]) {
            *s += v;
        }
    }
    let n = names.len() as f64;
    println!(
        "{:<22} {:>9} {:>9} {:>6.3}  {:>9} {:>9} {:>6.3}  {:>7.1} {:>7.1}",
        format!("total ({} images)", names.len()),
        sum[0],
        sum[1],
        sum[1] / sum[0],
        sum[2],
        sum[3],
        sum[3] / sum[2],
        sum[4] / n,
        sum[5] / n
    );
}
