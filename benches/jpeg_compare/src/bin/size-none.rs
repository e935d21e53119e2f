//! Baseline for the size comparison: reads a file, writes its length.
fn main() {
    let data = std::fs::read(std::env::args().nth(1).unwrap_or_default()).unwrap_or_default();
    println!("{}", data.len());
}
