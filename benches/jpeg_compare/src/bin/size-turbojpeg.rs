//! The same as size-none plus one libjpeg-turbo encode.
fn main() {
    let data = std::fs::read(std::env::args().nth(1).unwrap_or_default()).unwrap_or_default();
    let n = (data.len() / 4).min(64 * 64);
    let img =
        turbojpeg::Image { pixels: &data[..n * 4], width: 64, pitch: 256, height: n / 64, format: turbojpeg::PixelFormat::RGBA };
    let out = turbojpeg::Compressor::new().and_then(|mut c| c.compress_to_vec(img)).map(|v| v.len()).unwrap_or(0);
    println!("{out}");
}
