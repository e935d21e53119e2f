//! Placeholder until the owning work lands.
fn main() {}
