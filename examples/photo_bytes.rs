//! photo_bytes: bytes per update of a photo slideshow, protocol v1 (deflated
//! RGBA, what the gateway sent before) against v2 (the gateway's encoders:
//! JPEG at each quality level, and the lossless refinement that follows).
//!
//! Each wallpaper of Debian's gnome-backgrounds is scaled to 640×480 by
//! ImageMagick (`convert`) and encoded as one update of that whole area, the
//! way the gateway encodes a window whose content changed: v1 as 64×64
//! Pixels blocks of RGBA, v2 as one picture through
//! `gateway::encode::Encoder::picture` (photo-like areas one JPEG, optimised
//! Huffman tables), and the refinement that follows as `Encoder::refine`
//! (exact: Palette, or PNG for photo-like pieces) row by row. Deflatable
//! messages go through one permessage-deflate stream (zlib level 1, raw,
//! sync flush, context kept: what the gateway does), JPEG and PNG messages
//! uncompressed as the gateway sends them.
//!
//! Usage: cargo run --release --example photo_bytes

use flate2::{Compress, Compression, FlushCompress};
use wsvnc::fb::Rect;
use wsvnc::gateway::encode::{Encoder, Lossy};
use wsvnc::gateway::pacing::{JpegModel, LEVELS};

#[path = "common/wallpapers.rs"]
mod wallpapers;
use wallpapers::{load, H, W};

/// Bytes on the wire of `msg` through a deflate stream kept across messages.
fn deflated(z: &mut Compress, msg: &[u8]) -> usize {
    let mut out = Vec::with_capacity(msg.len() + 1024);
    let before = z.total_out();
    z.compress_vec(msg, &mut out, FlushCompress::Sync).unwrap();
    while out.len() == out.capacity() {
        out.reserve(64 << 10);
        z.compress_vec(&[], &mut out, FlushCompress::Sync).unwrap();
    }
    (z.total_out() - before) as usize - 4
}

fn main() {
    let names = wallpapers::names();
    let qualities = [20u8, 40, 60, 80, 90];
    println!(
        "{:<18} {:>10} {}  {:>11}",
        "image (640x480)",
        "v1 RGBA",
        qualities.map(|q| format!("{:>9}", format!("v2 q{q}"))).join(""),
        "refine"
    );
    let mut sums = vec![0usize; qualities.len() + 2];
    for name in &names {
        let fb = load(name);
        // v1: Pixels (RGBA) per tile, deflated.
        let mut z = Compress::new(Compression::new(1), false);
        let mut v1 = 0;
        for ty in (0..H).step_by(64) {
            let mut msg = vec![0x05];
            for v in [0u16, ty, W, (H - ty).min(64)] {
                msg.extend_from_slice(&v.to_le_bytes());
            }
            for y in ty..(ty + 64).min(H) {
                let o = y as usize * W as usize * 4;
                msg.extend_from_slice(&fb.data()[o..o + W as usize * 4]);
            }
            v1 += deflated(&mut z, &msg) + 10;
        }
        let mut row = vec![v1];
        let mut enc = Encoder::default();
        let model = JpegModel::default();
        let runs: Vec<Rect> = (0..H).step_by(64).map(|ty| Rect::new(0, ty, W, (H - ty).min(64))).collect();
        for q in qualities.iter().map(|&q| Some(q)).chain([None]) {
            let mut z = Compress::new(Compression::new(1), false);
            let (mut out, mut notes) = (Vec::new(), Vec::new());
            match q {
                // A picture: the whole update at once, as the gateway sends it.
                Some(q) => {
                    let level = LEVELS.iter().position(|&l| l >= q).unwrap_or(0);
                    let lossy = Lossy { quality: q, bpp: model.bpp(level), optimise_tables: true };
                    enc.picture(&fb, &runs, Some(lossy), &mut out, &mut notes);
                }
                // The refinement: exact, PNG for photo-like pieces.
                None => runs.iter().for_each(|&r| enc.refine(&fb, r, true, &mut out, &mut notes)),
            }
            let wire: usize = notes
                .iter()
                .map(|n| {
                    let m = &out[n.start..n.end];
                    (if n.form.raw() { m.len() } else { deflated(&mut z, m) }) + 10
                })
                .sum();
            row.push(wire);
        }
        println!(
            "{:<18} {:>10} {}  {:>11}",
            name,
            row[0],
            row[1..=qualities.len()].iter().map(|b| format!("{b:>9}")).collect::<String>(),
            row[qualities.len() + 1]
        );
        for (s, b) in sums.iter_mut().zip(&row) {
            *s += b;
        }
    }
    let n = names.len().max(1);
    println!(
        "{:<18} {:>10} {}  {:>11}",
        "mean",
        sums[0] / n,
        sums[1..=qualities.len()].iter().map(|b| format!("{:>9}", b / n)).collect::<String>(),
        sums[qualities.len() + 1] / n
    );
    println!(
        "v1 / v2 ratio:     {}",
        sums[1..=qualities.len()]
            .iter()
            .zip(qualities)
            .map(|(b, q)| format!("q{q} {:.1}x", sums[0] as f64 / *b as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
