//! Entity tags for static files: FNV-1a 64 of the body, quoted (RFC 9110 §8.8.3).
//!
//! Self-contained on purpose: `build.rs` includes this file with `#[path]` so the
//! embedded table's tags are computed at build time with the same function that
//! tags files read from `--web DIR`. Not a security hash; it only has to change
//! when the content does.

/// FNV-1a, 64-bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The strong entity-tag for `body`, with its quotes: `"0123456789abcdef"`.
pub fn etag_for(body: &[u8]) -> String {
    format!("\"{:016x}\"", fnv1a64(body))
}
