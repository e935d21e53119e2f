//! Rectangle decoder throughput (src/rfb/decode), in pixels per second, on
//! generated content shaped like what servers send: a 1024×768 frame cut
//! into 512×128 rectangles (65536 pixels, libvncserver's Tight maximum).
//!
//! Tight cases: solid fills, 2-colour text (1-bit palette), a 12-colour UI
//! (8-bit palette), and a photo-like image with the copy filter and with the
//! gradient filter. Raw is the no-work baseline; Zlib (raw RGBX through
//! zlib) on the photo shows what Tight's 3-byte pixels and filters save.
//! Every Tight rectangle sets its stream's reset bit, so each iteration can
//! replay the same bytes (Zlib has no reset: each iteration uses a new
//! decoder, whose cost is included).
//!
//! Run: `cargo bench --bench decode -- --warm-up-time 1 --measurement-time 3`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flate2::{Compress, Compression, FlushCompress};
use wsvnc::fb::{Framebuffer, Rect};
use wsvnc::rfb::decode::{Decoder, PixelContext, Raw, Step, Tight, Zlib};
use wsvnc::rfb::PixelFormat;

const W: u16 = 1024;
const H: u16 = 768;
const RW: u16 = 512;
const RH: u16 = 128;

/// A small deterministic generator (xorshift).
struct Rng(u32);
impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
}

fn rects() -> Vec<Rect> {
    let mut v = Vec::new();
    for y in (0..H).step_by(RH as usize) {
        for x in (0..W).step_by(RW as usize) {
            v.push(Rect::new(x, y, RW, RH));
        }
    }
    v
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut z = Compress::new(Compression::new(6), true);
    let mut out = Vec::with_capacity(data.len() + 1024);
    z.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert_eq!(z.total_in() as usize, data.len(), "output buffer too small");
    out
}

fn compact(n: usize) -> Vec<u8> {
    assert!(n < 1 << 22);
    if n < 128 {
        vec![n as u8]
    } else if n < 16384 {
        vec![0x80 | (n & 0x7f) as u8, (n >> 7) as u8]
    } else {
        vec![0x80 | (n & 0x7f) as u8, 0x80 | ((n >> 7) & 0x7f) as u8, (n >> 14) as u8]
    }
}

/// A BasicCompression rect on stream 0 (reset first): `head` after the
/// control byte, then `data` compressed.
fn basic(explicit: bool, head: &[u8], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0x01 | if explicit { 0x40 } else { 0 }];
    v.extend_from_slice(head);
    let z = zlib(data);
    v.extend(compact(z.len()));
    v.extend(z);
    v
}

/// Photo-like RGB: smooth gradients plus a little noise.
fn photo(r: Rect, rng: &mut Rng) -> Vec<u8> {
    let mut v = Vec::with_capacity(r.area() * 3);
    for y in r.y..r.y + r.h {
        for x in r.x..r.x + r.w {
            let n = (rng.next() % 7) as u16;
            v.push(((x / 4 + n) & 0xff) as u8);
            v.push(((y / 3 + x / 8 + n) & 0xff) as u8);
            v.push(((200 + y / 5 + n) & 0xff) as u8);
        }
    }
    v
}

/// The gradient filter (rfbproto §7.7.7) applied to RGB rows of width `w`.
fn gradient_filter(rgb: &[u8], w: usize) -> Vec<u8> {
    let at = |x: isize, y: isize, c: usize| -> i32 {
        if x < 0 || y < 0 {
            0
        } else {
            rgb[(y as usize * w + x as usize) * 3 + c] as i32
        }
    };
    let h = rgb.len() / 3 / w;
    let mut out = Vec::with_capacity(rgb.len());
    for y in 0..h as isize {
        for x in 0..w as isize {
            for c in 0..3 {
                let p = (at(x, y - 1, c) + at(x - 1, y, c) - at(x - 1, y - 1, c)).clamp(0, 255);
                out.push((at(x, y, c) - p) as u8);
            }
        }
    }
    out
}

/// Each case: one encoded byte string per rectangle.
/// Zlib encoding (rfbproto §7.7.5) of the photo as RGBX, one stream for
/// the whole frame.
fn zlib_photo(photos: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut z = Compress::new(Compression::new(6), true);
    photos
        .iter()
        .map(|p| {
            let rgbx: Vec<u8> = p.chunks_exact(3).flat_map(|c| [c[0], c[1], c[2], 0]).collect();
            let mut out = Vec::with_capacity(rgbx.len() + 1024);
            z.compress_vec(&rgbx, &mut out, FlushCompress::Sync).unwrap();
            let mut v = (out.len() as u32).to_be_bytes().to_vec();
            v.extend(out);
            v
        })
        .collect()
}

fn photos() -> Vec<Vec<u8>> {
    let mut rng = Rng(0x1234_5678);
    rects().iter().map(|r| photo(*r, &mut rng)).collect()
}

fn tight_cases() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let rs = rects();
    let mut rng = Rng(0x9e37_79b9);
    let fill = rs.iter().enumerate().map(|(i, _)| vec![0x80, i as u8, 100, 200]).collect();
    let text = rs
        .iter()
        .map(|r| {
            // 8×16 "glyphs": each glyph row a random bit pattern, blank gaps.
            let rb = (r.w as usize).div_ceil(8);
            let mut bits = vec![0u8; rb * r.h as usize];
            for y in 0..r.h as usize {
                if y % 16 < 12 {
                    for b in &mut bits[y * rb..(y + 1) * rb] {
                        *b = (rng.next() & 0x7e) as u8;
                    }
                }
            }
            basic(true, &[1, 1, 255, 255, 255, 0, 0, 0], &bits)
        })
        .collect();
    let ui = rs
        .iter()
        .map(|r| {
            let mut head = vec![1, 11];
            for i in 0..12u8 {
                head.extend_from_slice(&[i * 20, 255 - i * 20, 128]);
            }
            let mut idx = Vec::with_capacity(r.area());
            for y in 0..r.h {
                for x in 0..r.w {
                    // Buttons, borders and panels: blocks with frames.
                    let cell = ((x / 48) + (y / 24) * 3) % 10;
                    let edge = x % 48 == 0 || y % 24 == 0;
                    idx.push(if edge { 11 } else { cell as u8 });
                }
            }
            basic(true, &head, &idx)
        })
        .collect();
    let photos = photos();
    let copy = photos.iter().map(|p| basic(false, &[], p)).collect();
    let grad = photos.iter().map(|p| basic(true, &[2], &gradient_filter(p, RW as usize))).collect();
    vec![("fill", fill), ("text-palette2", text), ("ui-palette12", ui), ("photo-copy", copy), ("photo-gradient", grad)]
}

fn decode_frame(d: &mut dyn Decoder, rects: &[Rect], data: &[Vec<u8>], px: &PixelContext, fb: &mut Framebuffer) {
    for (r, bytes) in rects.iter().zip(data) {
        d.start(*r);
        match d.decode(black_box(bytes), px, fb).unwrap() {
            Step::Done(n) => assert_eq!(n, bytes.len()),
            Step::Partial(_) => panic!("incomplete"),
        }
    }
}

fn bench(c: &mut Criterion) {
    let px = PixelContext::new(PixelFormat::wanted());
    let rs = rects();
    let mut fb = Framebuffer::new(W, H);
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(W as u64 * H as u64));

    for (name, data) in tight_cases() {
        let bytes: usize = data.iter().map(Vec::len).sum();
        eprintln!("tight/{name}: {bytes} bytes for {W}x{H}");
        let mut d = Tight::default();
        g.bench_function(BenchmarkId::new("tight", name), |b| {
            b.iter(|| decode_frame(&mut d, &rs, &data, &px, &mut fb))
        });
    }

    let zl = zlib_photo(&photos());
    eprintln!("zlib/photo: {} bytes for {W}x{H}", zl.iter().map(Vec::len).sum::<usize>());
    g.bench_function(BenchmarkId::new("zlib", "photo"), |b| {
        b.iter(|| decode_frame(&mut Zlib::default(), &rs, &zl, &px, &mut fb))
    });

    let raw: Vec<Vec<u8>> = rs.iter().map(|r| (0..r.area() * 4).map(|i| i as u8).collect()).collect();
    let mut d = Raw::default();
    g.bench_function(BenchmarkId::new("raw", "rgbx"), |b| b.iter(|| decode_frame(&mut d, &rs, &raw, &px, &mut fb)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
