//! VNC Authentication (rfbproto §7.2.2): the client answers the server's
//! 16-byte random challenge with the challenge DES-encrypted under the
//! password.
//!
//! The VNC quirk, not in rfbproto but in every implementation since the
//! original ORL viewer: the key is the first 8 bytes of the password
//! (zero-padded when shorter, the rest ignored), and each key byte has its
//! bit order *reversed* before it is handed to DES (the original code used
//! a DES library that numbered key bits from the other end). The two
//! 8-byte halves of the challenge are encrypted independently (ECB).
//!
//! This is authentication only: the session stays unencrypted, and the
//! scheme is weak (56-bit key, 8-character passwords). Use it on trusted
//! networks or inside a tunnel.

use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockEncrypt, KeyInit};

/// Length of the challenge and of the response.
pub const CHALLENGE_LEN: usize = 16;

/// The DES key VNC derives from `password`: first 8 bytes, zero-padded,
/// each byte bit-reversed.
pub fn vnc_des_key(password: &[u8]) -> [u8; 8] {
    let mut key = [0u8; 8];
    for (k, p) in key.iter_mut().zip(password.iter()) {
        *k = p.reverse_bits();
    }
    key
}

/// The 16-byte response to a VNC Authentication `challenge`.
pub fn vnc_auth_response(password: &[u8], challenge: &[u8; CHALLENGE_LEN]) -> [u8; CHALLENGE_LEN] {
    let mut key = vnc_des_key(password);
    // DES takes any 8-byte key (parity bits are ignored), so this cannot fail.
    let cipher = des::Des::new(GenericArray::from_slice(&key));
    let mut out = *challenge;
    for block in out.chunks_exact_mut(8) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    // Do not leave the key lying around longer than needed.
    key.fill(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_truncated_padded_and_bit_reversed() {
        // 'p' = 0x70 = 0111_0000 → 0000_1110 = 0x0e; 'a' = 0x61 → 0x86.
        assert_eq!(vnc_des_key(b"pa"), [0x0e, 0x86, 0, 0, 0, 0, 0, 0]);
        assert_eq!(vnc_des_key(b""), [0; 8]);
        // Bytes past the 8th do not matter.
        assert_eq!(vnc_des_key(b"password"), vnc_des_key(b"password-and-more"));
        assert_eq!(vnc_des_key(b"password"), [0x0e, 0x86, 0xce, 0xce, 0xee, 0xf6, 0x4e, 0x26]);
    }

    #[test]
    fn des_itself_matches_the_fips_vector() {
        // The classic DES test vector (key 133457799BBCDFF1, plaintext
        // 0123456789ABCDEF → 85E813540F0AB405), to show the `des` crate is
        // plain DES and the only VNC twist is the key bit order.
        let key = [0x13, 0x34, 0x57, 0x79, 0x9B, 0xBC, 0xDF, 0xF1];
        let c = des::Des::new(GenericArray::from_slice(&key));
        let mut b = [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF];
        c.encrypt_block(GenericArray::from_mut_slice(&mut b));
        assert_eq!(b, [0x85, 0xE8, 0x13, 0x54, 0x0F, 0x0A, 0xB4, 0x05]);
    }

    #[test]
    fn halves_are_encrypted_independently() {
        let ch = *b"0123456701234567";
        let r = vnc_auth_response(b"secret", &ch);
        assert_eq!(r[..8], r[8..]);
        assert_ne!(r[..8], ch[..8]);
    }
}
