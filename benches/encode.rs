//! The gateway's per-region encoders (src/gateway/encode): Mpixel/s of
//! framebuffer encoded and bytes per 64×64 tile, per content class, on one
//! 1920×64 run (one row of 30 tiles, what a frame is made of):
//!
//! * `flat`: one colour per tile (Fill);
//! * `ui`: a title bar and lines of text-like strokes (few colours: Palette);
//! * `photo`: a gnome-backgrounds wallpaper (Debian package gnome-backgrounds,
//!   scaled by ImageMagick's `convert`), lossless (Pixels) and as JPEG at
//!   qualities 30, 60, 90.
//!
//! Bytes are before permessage-deflate. Run:
//! `cargo bench --bench encode -- --warm-up-time 1 --measurement-time 3`.

use std::process::Command;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use wsvnc::fb::{Framebuffer, Rect};
use wsvnc::gateway::encode::{Encoder, Lossy};

const W: u16 = 1920;
const H: u16 = 64;

fn photo() -> Framebuffer {
    let path = "/usr/share/backgrounds/gnome/wood-d.webp";
    assert!(std::path::Path::new(path).exists(), "{path} missing: apt-get install gnome-backgrounds");
    let out = Command::new("convert")
        .args([path, "-resize", "1920x", "-gravity", "center", "-crop", "1920x64+0+0", "+repage"])
        .args(["-depth", "8", "rgba:-"])
        .output()
        .expect("convert (Debian package imagemagick)");
    assert!(out.status.success() && out.stdout.len() == W as usize * H as usize * 4, "convert failed");
    let mut fb = Framebuffer::new(W, H);
    let px: Vec<u8> = out.stdout.chunks(4).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
    fb.put_rgba(fb.full_rect(), &px).unwrap();
    fb
}

fn ui() -> Framebuffer {
    // Text-like rows: a title bar, then lines of "glyphs" (strokes of 2-3
    // colours with anti-aliasing greys) on a light background.
    let mut fb = Framebuffer::new(W, H);
    fb.fill(fb.full_rect(), [245, 245, 245, 255]).unwrap();
    fb.fill(Rect::new(0, 0, W, 20), [48, 48, 48, 255]).unwrap();
    let mut seed = 0x2545_f491u32;
    for line in 0..3u16 {
        let y = 24 + line * 13;
        let mut x = 4u16;
        while x + 8 < W {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let (gw, ink) =
                (3 + (seed % 5) as u16, if seed.is_multiple_of(7) { [200, 40, 40, 255] } else { [20, 20, 20, 255] });
            fb.fill(Rect::new(x, y, 1, 9), ink).unwrap();
            fb.fill(Rect::new(x + 1, y + (seed % 3) as u16 * 4, gw, 1), ink).unwrap();
            fb.fill(Rect::new(x + gw, y, 1, 9), [128, 128, 128, 255]).unwrap();
            x += gw + 3 + seed.is_multiple_of(11) as u16 * 6;
        }
    }
    fb
}

fn flat() -> Framebuffer {
    let mut fb = Framebuffer::new(W, H);
    for i in 0..30u16 {
        fb.fill(Rect::new(i * 64, 0, 64, 64), [(i * 8) as u8, 100, 200, 255]).unwrap();
    }
    fb
}

fn bench(c: &mut Criterion) {
    let cases: Vec<(&str, Framebuffer, Option<u8>)> = {
        let p = photo();
        vec![
            ("flat", flat(), None),
            ("ui", ui(), None),
            ("photo lossless", p.clone_fb(), None),
            ("photo jpeg q30", p.clone_fb(), Some(30)),
            ("photo jpeg q60", p.clone_fb(), Some(60)),
            ("photo jpeg q90", p, Some(90)),
        ]
    };
    let mut g = c.benchmark_group("encode 1920x64");
    g.throughput(Throughput::Elements(W as u64 * H as u64));
    for (name, fb, q) in &cases {
        let q = &q.map(|quality| Lossy { quality, bpp: 0.1, optimise_tables: true });
        let mut enc = Encoder::default();
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        enc.run(fb, fb.full_rect(), *q, &mut out, &mut notes);
        let forms: std::collections::BTreeSet<String> = notes.iter().map(|n| format!("{:?}", n.form)).collect();
        eprintln!("{name}: {:.0} bytes per 64x64 tile ({forms:?})", out.len() as f64 / 30.0);
        g.bench_function(*name, |b| {
            b.iter(|| {
                out.clear();
                notes.clear();
                enc.run(black_box(fb), fb.full_rect(), *q, &mut out, &mut notes);
            })
        });
    }
    g.finish();
}

trait CloneFb {
    fn clone_fb(&self) -> Framebuffer;
}

impl CloneFb for Framebuffer {
    fn clone_fb(&self) -> Framebuffer {
        let mut fb = Framebuffer::new(self.width(), self.height());
        fb.put_rgba(fb.full_rect(), self.data()).unwrap();
        fb
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
