//! See Cargo.toml. Each image is encoded at several qualities by both encoders from the same
//! RGBA buffer (what the gateway hands the encoder); time is the median of 9 runs.
use std::process::Command;
use std::time::Instant;

fn load(path: &str, w: u32, h: u32) -> Vec<u8> {
    let out = Command::new("convert")
        .args([path, "-resize", &format!("{w}x{h}^"), "-gravity", "center", "-extent", &format!("{w}x{h}")])
        .args(["-depth", "8", "rgba:-"])
        .output()
        .unwrap_or_else(|e| panic!("convert (Debian package imagemagick): {e}"));
    assert!(out.status.success() && out.stdout.len() == (w * h * 4) as usize, "convert {path}");
    out.stdout
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn psnr(a: &[u8], rgb: &[u8]) -> f64 {
    let mut se = 0f64;
    for (p, q) in a.chunks(4).zip(rgb.chunks(3)) {
        for c in 0..3 {
            let d = p[c] as f64 - q[c] as f64;
            se += d * d;
        }
    }
    let mse = se / (a.len() / 4 * 3) as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

fn main() {
    let dir = "/usr/share/backgrounds/gnome";
    let images = ["adwaita-l.webp", "wood-d.webp", "pixels-l.webp", "licorice-d.webp"];
    let (w, h) = (640u32, 480u32);
    println!("image | encoder | quality | Mpixel/s | bytes | bytes/pixel | PSNR dB");
    for name in images {
        let path = format!("{dir}/{name}");
        assert!(std::path::Path::new(&path).exists(), "{path} missing: apt-get install gnome-backgrounds");
        let rgba = load(&path, w, h);
        for q in [30u8, 60, 90] {
            for enc in ["jpeg-encoder", "turbojpeg"] {
                let mut out = Vec::new();
                let mut times = Vec::new();
                for _ in 0..9 {
                    out.clear();
                    let t = Instant::now();
                    match enc {
                        "jpeg-encoder" => {
                            let e = jpeg_encoder::Encoder::new(&mut out, q);
                            e.encode(&rgba, w as u16, h as u16, jpeg_encoder::ColorType::Rgba).unwrap();
                        }
                        _ => {
                            let img = turbojpeg::Image {
                                pixels: &rgba[..],
                                width: w as usize,
                                pitch: w as usize * 4,
                                height: h as usize,
                                format: turbojpeg::PixelFormat::RGBA,
                            };
                            let mut c = turbojpeg::Compressor::new().unwrap();
                            c.set_quality(q as i32).unwrap();
                            c.set_subsamp(if q < 90 { turbojpeg::Subsamp::Sub2x2 } else { turbojpeg::Subsamp::None })
                                .unwrap();
                            out = c.compress_to_vec(img).unwrap();
                        }
                    }
                    times.push(t.elapsed().as_secs_f64());
                }
                let rgb = jpeg_decoder::Decoder::new(&out[..]).decode().unwrap();
                let mp = (w * h) as f64 / median(times) / 1e6;
                println!(
                    "{name} | {enc} | {q} | {mp:.1} | {} | {:.3} | {:.1}",
                    out.len(),
                    out.len() as f64 / (w * h) as f64,
                    psnr(&rgba, &rgb)
                );
            }
        }
    }
}
