//! The gateway's per-region encoders (src/gateway/encode): Mpixel/s of
//! framebuffer encoded and bytes per 64×64 tile, per content class, on one
//! 1920×64 run (one row of 30 tiles, what a frame is made of):
//!
//! * `flat`: one colour per tile (Fill);
//! * `ui`: the demo desktop's terminal and bar (text, few colours: Palette);
//! * `photo`: a gnome-backgrounds wallpaper (Debian package gnome-backgrounds,
//!   scaled by ImageMagick's `convert`), lossless (Pixels) and as JPEG at
//!   qualities 30, 60, 90.
//!
//! Bytes are before permessage-deflate. Run:
//! `cargo bench --bench encode -- --warm-up-time 1 --measurement-time 3`.

use std::process::Command;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use wsvnc::demo::{DemoConfig, DemoServer};
use wsvnc::fb::{Framebuffer, Rect};
use wsvnc::gateway::encode::Encoder;

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
    // The demo desktop's top 64 rows: bar with text, terminal with text.
    let mut demo = DemoServer::new(&DemoConfig { width: W, height: 1080, ..DemoConfig::default() }, 0);
    demo.poll(500, &mut Vec::new());
    let (w, _, px) = demo.framebuffer();
    let mut fb = Framebuffer::new(W, H);
    let rgba: Vec<u8> =
        px[..w as usize * H as usize].iter().flat_map(|p| [(p >> 16) as u8, (p >> 8) as u8, *p as u8, 255]).collect();
    fb.put_rgba(fb.full_rect(), &rgba).unwrap();
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
