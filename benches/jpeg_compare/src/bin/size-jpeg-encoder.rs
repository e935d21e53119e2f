//! The same as size-none plus one jpeg-encoder encode.
fn main() {
    let data = std::fs::read(std::env::args().nth(1).unwrap_or_default()).unwrap_or_default();
    let mut out = Vec::new();
    let n = (data.len() / 4).min(64 * 64);
    let e = jpeg_encoder::Encoder::new(&mut out, 60);
    let _ = e.encode(&data[..n * 4], 64, (n / 64) as u16, jpeg_encoder::ColorType::Rgba);
    println!("{}", out.len());
}
