//! Payload masking (RFC 6455 §5.3).
//!
//! `transformed[i] = original[i] XOR key[(payload_index + i) mod 4]`. Masking
//! and unmasking are the same operation. The work is done eight bytes at a
//! time on a `u64` holding the key twice (rotated to the starting offset), in
//! safe code: `chunks_exact_mut` plus `from_ne_bytes`/`to_ne_bytes`, which the
//! compiler lowers to unaligned word loads/stores (and vectorises). The
//! benchmark in `benches/ws_frames.rs` compares it to the naive byte loop.

/// XOR `buf` with the masking `key`, where `offset` is the index of `buf[0]`
/// within the frame payload (so a payload may be unmasked in pieces as bytes
/// arrive). Correct for any length, alignment and offset.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // Rotate the key so that rk[j] applies to buf[j] for j mod 4.
    let r = offset & 3;
    let rk = [key[r], key[(r + 1) & 3], key[(r + 2) & 3], key[(r + 3) & 3]];
    if buf.len() < 16 {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= rk[i & 3];
        }
        return;
    }
    let k64 = u64::from_ne_bytes([rk[0], rk[1], rk[2], rk[3], rk[0], rk[1], rk[2], rk[3]]);
    // 32-byte blocks of four words give the optimiser room to use wide registers.
    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        for w in block.chunks_exact_mut(8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            let v = u64::from_ne_bytes(word) ^ k64;
            w.copy_from_slice(&v.to_ne_bytes());
        }
    }
    // Every block is a multiple of 4 bytes long, so the rotation still holds.
    let rest = blocks.into_remainder();
    let mut words = rest.chunks_exact_mut(8);
    for w in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        let v = u64::from_ne_bytes(word) ^ k64;
        w.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= rk[i & 3];
    }
}

/// The obvious byte loop; the reference for tests and the benchmark baseline.
pub fn apply_mask_naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(offset + i) & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 131 + 7) as u8).collect()
    }

    #[test]
    fn matches_naive_at_every_alignment_offset_and_length() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let base = pattern(200);
        for start in 0..8 {
            for len in 0..100 {
                for offset in 0..8 {
                    let mut a = base.clone();
                    let mut b = base.clone();
                    apply_mask(&mut a[start..start + len], key, offset);
                    apply_mask_naive(&mut b[start..start + len], key, offset);
                    assert_eq!(a, b, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn piecewise_equals_whole() {
        let key = [1, 2, 3, 4];
        let orig = pattern(1000);
        let mut whole = orig.clone();
        apply_mask(&mut whole, key, 0);
        for cut in [1usize, 3, 5, 17, 33, 999] {
            let mut parts = orig.clone();
            let (a, b) = parts.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            assert_eq!(parts, whole, "cut {cut}");
        }
    }

    #[test]
    fn rfc6455_hello_vector() {
        // RFC 6455 §5.7: masked "Hello", key 37 fa 21 3d.
        let mut p = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut p, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&p, b"Hello");
    }

    #[test]
    fn involution() {
        let orig = pattern(77);
        let mut v = orig.clone();
        apply_mask(&mut v, [9, 8, 7, 6], 3);
        assert_ne!(v, orig);
        apply_mask(&mut v, [9, 8, 7, 6], 3);
        assert_eq!(v, orig);
    }
}
