//! src/kernels (the data path's inner loops, built at opt-level 3) against
//! obvious reference loops, over lengths that exercise every tail and
//! offset, and inputs whose lengths disagree (the shorter bounds the work).

use wsvnc_kernels as k;

/// Deterministic bytes (xorshift).
fn bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut s = seed.max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s as u8
        })
        .collect()
}

const LENGTHS: [usize; 14] = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 33, 255, 4099];

#[test]
fn xor_mask_is_the_rfc_6455_byte_loop() {
    let key = [0xa1, 0x02, 0xf3, 0x44];
    for n in LENGTHS {
        for offset in 0..8 {
            let orig = bytes(n, n as u32 + 7);
            let mut got = orig.clone();
            k::xor_mask(&mut got, key, offset);
            let want: Vec<u8> = orig.iter().enumerate().map(|(i, b)| b ^ key[(offset + i) % 4]).collect();
            assert_eq!(got, want, "n={n} offset={offset}");
            // In pieces, as bytes arrive.
            let mut pieces = orig.clone();
            let cut = n / 3;
            k::xor_mask(&mut pieces[..cut], key, offset);
            k::xor_mask(&mut pieces[cut..], key, offset + cut);
            assert_eq!(pieces, want, "n={n} offset={offset} in two pieces");
        }
    }
}

#[test]
fn fill_and_all_equal() {
    let px = [1, 2, 3, 255];
    for n in LENGTHS {
        let mut buf = bytes(n, 3);
        let tail = buf.get(n / 4 * 4..).map(<[u8]>::to_vec).unwrap_or_default();
        k::fill(&mut buf, px);
        assert!(buf.chunks_exact(4).all(|p| p == px), "n={n}");
        assert_eq!(&buf[n / 4 * 4..], &tail[..], "a partial last pixel is left alone");
        assert!(k::all_equal(&buf, px), "n={n}");
        if n >= 4 {
            let at = (n / 4 - 1) * 4 + (n % 3);
            buf[at.min(n / 4 * 4 - 1)] ^= 0x10;
            assert!(!k::all_equal(&buf, px), "n={n}: one byte differs");
        }
    }
}

#[test]
fn pixel_conversions() {
    for n in LENGTHS {
        let rgb = bytes(n * 3, 5);
        let mut rgbx = vec![0u8; n * 4];
        k::rgb_to_rgbx(&rgb, &mut rgbx);
        for i in 0..n {
            assert_eq!(rgbx[i * 4..i * 4 + 4], [rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2], 255]);
        }
        let mut back = vec![0u8; n * 3];
        k::rgbx_to_rgb(&rgbx, &mut back);
        assert_eq!(back, rgb);
        let src = bytes(n * 4, 9);
        let mut opaque = vec![0u8; n * 4];
        k::rgbx_opaque(&src, &mut opaque);
        for i in 0..n {
            assert_eq!(opaque[i * 4..i * 4 + 4], [src[i * 4], src[i * 4 + 1], src[i * 4 + 2], 255]);
        }
    }
    // Lengths that disagree: the shorter bounds the work.
    let mut dst = vec![7u8; 12];
    k::rgb_to_rgbx(&[1, 2, 3, 4, 5, 6], &mut dst);
    assert_eq!(dst, [1, 2, 3, 255, 4, 5, 6, 255, 7, 7, 7, 7]);
}

#[test]
fn palette_expansion() {
    let (c0, c1) = ([10, 20, 30, 255], [40, 50, 60, 255]);
    for w in [1usize, 7, 8, 9, 17, 64, 100] {
        let src = bytes(w.div_ceil(8), w as u32);
        let mut dst = vec![0u8; w * 4];
        k::expand_bits(&src, &mut dst, c0, c1);
        for x in 0..w {
            let bit = src[x / 8] >> (7 - x % 8) & 1;
            assert_eq!(dst[x * 4..x * 4 + 4], if bit == 1 { c1 } else { c0 }, "w={w} x={x}");
        }
        let ones = (0..w).filter(|&x| src[x / 8] >> (7 - x % 8) & 1 == 1).count();
        assert_eq!(k::any_bit(&src, w), ones > 0, "w={w}");
    }
    assert!(!k::any_bit(&[0b0000_0111], 5), "padding bits past the width do not count");
    assert!(k::any_bit(&[0b0000_0100], 6));
    assert!(!k::any_bit(&[], 0));

    let mut palette = [[0u8; 4]; 256];
    for (i, p) in palette.iter_mut().enumerate() {
        *p = [i as u8, !(i as u8), (i * 7) as u8, 255];
    }
    for n in LENGTHS {
        let src = bytes(n, 11);
        let mut dst = vec![0u8; n * 4];
        k::expand_bytes(&src, &mut dst, &palette);
        for (i, &idx) in src.iter().enumerate() {
            assert_eq!(dst[i * 4..i * 4 + 4], palette[idx as usize]);
        }
        assert_eq!(k::max_byte(&src), src.iter().copied().max().unwrap_or(0));
    }
}

#[test]
fn gradient_row_is_rfbproto_7_7_7() {
    let (w, h) = (37usize, 5usize);
    let wire = bytes(w * h * 3, 13);
    let mut prev = vec![[0u32; 3]; w];
    let mut img = vec![[0u8; 3]; w * h]; // the reference's decoded pixels
    for y in 0..h {
        let mut dst = vec![0u8; w * 4];
        k::gradient_rgb_row(&wire[y * w * 3..(y + 1) * w * 3], &mut dst, &mut prev);
        for x in 0..w {
            for c in 0..3 {
                let v = |xx: usize, yy: usize| img[yy * w + xx][c] as i32;
                let above = if y > 0 { v(x, y - 1) } else { 0 };
                let left = if x > 0 { v(x - 1, y) } else { 0 };
                let corner = if x > 0 && y > 0 { v(x - 1, y - 1) } else { 0 };
                let p = (above + left - corner).clamp(0, 255);
                img[y * w + x][c] = (wire[(y * w + x) * 3 + c] as i32 + p) as u8;
            }
            let want = img[y * w + x];
            assert_eq!(dst[x * 4..x * 4 + 4], [want[0], want[1], want[2], 255], "x={x} y={y}");
        }
    }
}

#[test]
fn png_filter_row_picks_the_cheapest_filter_and_inverts() {
    let row = 3 * 41;
    let mut cand: [Vec<u8>; 5] = Default::default();
    let mut up = vec![0u8; row];
    // A smooth ramp (Sub wins), a copy of the row above (Up wins), noise.
    let ramp: Vec<u8> = (0..row).map(|i| (i / 3 * 2) as u8).collect();
    for (cur, want) in [(ramp.clone(), Some(1u8)), (ramp.clone(), Some(2)), (bytes(row, 17), None)] {
        let mut out = Vec::new();
        k::png_filter_row(&cur, &up, &mut cand, &mut out);
        assert_eq!(out.len(), row + 1);
        if let Some(f) = want {
            assert_eq!(out[0], f);
        }
        // Undo it (ISO 15948 §9.2) and get the row back.
        let mut back = vec![0u8; row];
        for i in 0..row {
            let (a, b, c) = if i >= 3 { (back[i - 3], up[i], up[i - 3]) } else { (0, up[i], 0) };
            let p = match out[0] {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((a as u16 + b as u16) / 2) as u8,
                _ => {
                    let p = a as i16 + b as i16 - c as i16;
                    let (pa, pb, pc) = ((p - a as i16).abs(), (p - b as i16).abs(), (p - c as i16).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
            };
            back[i] = out[1 + i].wrapping_add(p);
        }
        assert_eq!(back, cur);
        up = cur;
    }
}

#[test]
fn jpeg_refuses_what_it_cannot_encode_and_keeps_the_buffer() {
    let mut out = vec![0xAA];
    assert!(!k::jpeg::encode_rgbx(&[0; 16], 0, 4, 50, true, &mut out), "zero width");
    assert_eq!(out, [0xAA]);
    let rgbx = bytes(16 * 8 * 4, 21);
    assert!(k::jpeg::encode_rgbx(&rgbx, 16, 8, 50, true, &mut out));
    assert_eq!(&out[..3], &[0xAA, 0xFF, 0xD8], "a JFIF appended after what was there");
}
