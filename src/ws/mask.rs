//! Payload masking (RFC 6455 §5.3).
//!
//! `transformed[i] = original[i] XOR key[(payload_index + i) mod 4]`. Masking
//! and unmasking are the same operation. The work is done a word at a time
//! by `wsvnc_kernels::xor_mask` (built at opt-level 3, where it vectorises;
//! src/kernels/lib.rs). The benchmark in `benches/ws_frames.rs` compares it
//! to the naive byte loop.

/// XOR `buf` with the masking `key`, where `offset` is the index of `buf[0]`
/// within the frame payload (so a payload may be unmasked in pieces as bytes
/// arrive). Correct for any length, alignment and offset.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    wsvnc_kernels::xor_mask(buf, key, offset)
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
