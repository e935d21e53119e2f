//! Apple Remote Desktop authentication, security type 30 (rfbproto
//! "Diffie-Hellman Authentication"), as macOS Screen Sharing offers it.
//!
//! ```text
//!  server → client   U16 generator, U16 key-size,
//!                    key-size bytes prime-modulus, key-size bytes public-value
//!  client → server   128 bytes encrypted-credentials, key-size bytes public-value
//!                    then SecurityResult
//! ```
//!
//! The client picks a private key x (key-size random bytes), sends g^x mod p
//! and computes the shared secret s = Y^x mod p (Y: the server's public value),
//! both as key-size big-endian bytes. The AES-128 key is MD5(s). The
//! credentials are two 64-byte fields, user name then password, each UTF-8,
//! cut to 63 bytes, NUL-terminated and padded with random bytes; the 128
//! bytes are encrypted with AES-128 in ECB mode.
//!
//! This protects the password from eavesdroppers but not from an active
//! man in the middle (nothing authenticates the server's public value), and
//! the session itself stays unencrypted.

use std::sync::Arc;

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use md5::{Digest, Md5};

use crate::rfb::RfbError;

/// Largest key-size accepted (a 4096-bit prime).
pub const MAX_KEY_LEN: usize = 512;
/// Smallest key-size accepted: 512 bits. Apple's servers send 128 (1024 bits).
pub const MIN_KEY_LEN: usize = 64;
/// Length of our private exponent at most: 512 bits, far beyond the
/// strength of any group here (a 4096-bit group is worth about 150 bits),
/// and 8× cheaper than a full-length exponent on a 4096-bit prime.
pub const MAX_PRIVATE_LEN: usize = 64;
/// Each credential field, NUL and padding included.
pub const FIELD_LEN: usize = 64;
/// Length of the encrypted credentials.
pub const CREDENTIALS_LEN: usize = 2 * FIELD_LEN;

/// An odd modulus, ready for modular exponentiation (crypto-bigint's
/// Montgomery form; the exponent's value does not show in the timing).
pub struct Modulus {
    params: Arc<BoxedMontyParams>,
    len: usize,
}

impl Modulus {
    /// `m` big-endian; `None` unless odd and at least 3. Results have
    /// `m.len()` bytes.
    pub fn new(m: &[u8]) -> Option<Modulus> {
        let bits = (m.len() * 8) as u32;
        let v = BoxedUint::from_be_slice(m, bits).ok()?;
        if v < BoxedUint::from(3u32).widen(v.bits_precision()) {
            return None;
        }
        let odd = Option::<Odd<BoxedUint>>::from(Odd::new(v))?;
        Some(Modulus { params: Arc::new(BoxedMontyParams::new(odd)), len: m.len() })
    }

    /// `base^exp mod m` as big-endian bytes of the modulus's length; `base`
    /// (below the modulus) and `exp` any lengths up to the modulus's.
    pub fn pow(&self, base: &[u8], exp: &[u8]) -> Vec<u8> {
        let bits = self.params.bits_precision();
        let b = BoxedUint::from_be_slice(base, bits).expect("base no longer than the modulus");
        let e = BoxedUint::from_be_slice(exp, (exp.len() * 8) as u32).expect("sized to fit");
        let r = BoxedMontyForm::new_with_arc(b, self.params.clone()).pow(&e).retrieve();
        let bytes = r.to_be_bytes();
        bytes[bytes.len() - self.len..].to_vec()
    }
}

/// The server's Diffie-Hellman parameters, checked.
pub struct DhParams {
    generator: u16,
    prime: Modulus,
    server_public: Vec<u8>,
}

impl DhParams {
    /// The 4-byte header: U16 generator, U16 key-size. Returns the generator
    /// and how many bytes follow (2 × key-size).
    pub fn header(b: &[u8; 4]) -> Result<(u16, usize), RfbError> {
        let generator = u16::from_be_bytes([b[0], b[1]]);
        let key_len = u16::from_be_bytes([b[2], b[3]]) as usize;
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key_len) {
            return Err(RfbError::Protocol(format!(
                "Apple Remote Desktop key size of {key_len} bytes (wsvnc accepts {MIN_KEY_LEN}..={MAX_KEY_LEN})"
            )));
        }
        Ok((generator, 2 * key_len))
    }

    /// `keys`: prime-modulus then public-value, key-size bytes each.
    pub fn new(generator: u16, keys: &[u8]) -> Result<DhParams, RfbError> {
        let (p, y) = keys.split_at(keys.len() / 2);
        let bad = |why: &str| RfbError::Protocol(format!("Apple Remote Desktop: {why}"));
        let prime = Modulus::new(p).ok_or_else(|| bad("the prime is even or below 3"))?;
        // 1 < g < p and 1 < Y < p - 1: anything else makes the shared secret
        // trivial (0, 1 or ±1), i.e. known to an eavesdropper.
        let mut p_minus_1 = p.to_vec();
        // p is odd, so its last byte is at least 1: no borrow.
        *p_minus_1.last_mut().expect("key size checked") -= 1;
        if generator < 2 || !be_less(&generator.to_be_bytes(), p) {
            return Err(bad(&format!("generator {generator} is not in 2..p")));
        }
        if !be_less(&[1], y) || !be_less(y, &p_minus_1) {
            return Err(bad("the server's public value is not in 2..p-1"));
        }
        Ok(DhParams { generator, prime, server_public: y.to_vec() })
    }

    /// key-size in bytes.
    pub fn key_len(&self) -> usize {
        self.prime.len
    }

    /// The client's message (encrypted credentials then public value), with
    /// a private key and padding from the OS random generator.
    pub fn respond(&self, username: &[u8], password: &[u8]) -> Result<Vec<u8>, RfbError> {
        let mut private = vec![0u8; self.key_len().min(MAX_PRIVATE_LEN)];
        let mut padding = [0u8; CREDENTIALS_LEN];
        getrandom::getrandom(&mut private)
            .and_then(|()| getrandom::getrandom(&mut padding))
            .map_err(|e| RfbError::Local(format!("the OS random number generator failed: {e}")))?;
        let msg = self.respond_with(username, password, &private, &padding);
        private.fill(0);
        Ok(msg)
    }

    /// The client's message for a given private key (at most key-size
    /// bytes) and padding: tests compare it with vectors computed
    /// independently.
    pub fn respond_with(&self, username: &[u8], password: &[u8], private: &[u8], padding: &[u8; 128]) -> Vec<u8> {
        let public = self.prime.pow(&self.generator.to_be_bytes(), private);
        let mut secret = self.prime.pow(&self.server_public, private);
        let mut key: [u8; 16] = Md5::digest(&secret).into();
        secret.fill(0);
        let mut creds = credentials(username, password, padding);
        let cipher = aes::Aes128::new(GenericArray::from_slice(&key));
        for block in creds.chunks_exact_mut(16) {
            cipher.encrypt_block(GenericArray::from_mut_slice(block));
        }
        key.fill(0);
        let mut msg = Vec::with_capacity(CREDENTIALS_LEN + public.len());
        msg.extend_from_slice(&creds);
        msg.extend_from_slice(&public);
        msg
    }
}

/// The 128 plaintext bytes: each field cut to 63 bytes, NUL, then the
/// corresponding bytes of `padding`.
pub fn credentials(username: &[u8], password: &[u8], padding: &[u8; 128]) -> [u8; CREDENTIALS_LEN] {
    let mut out = *padding;
    for (field, value) in out.chunks_exact_mut(FIELD_LEN).zip([username, password]) {
        let v = &value[..value.len().min(FIELD_LEN - 1)];
        field[..v.len()].copy_from_slice(v);
        field[v.len()] = 0;
    }
    out
}

/// a < b for big-endian numbers of any lengths.
fn be_less(a: &[u8], b: &[u8]) -> bool {
    let strip = |x: &[u8]| -> Vec<u8> { x.iter().copied().skip_while(|&c| c == 0).collect() };
    let (a, b) = (strip(a), strip(b));
    a.len() < b.len() || (a.len() == b.len() && a < b)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 3526 group 16 (4096-bit MODP prime, generator 2).
    pub(crate) fn modp_4096() -> Vec<u8> {
        unhex(
            &[
                "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404dd",
                "ef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7ed",
                "ee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf0598da48361c55d39a69163fa8fd24cf5f",
                "83655d23dca3ad961c62f356208552bb9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3b",
                "e39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf6955817183995497cea956ae515d2261898fa0510",
                "15728e5a8aaac42dad33170d04507a33a85521abdf1cba64ecfb850458dbef0a8aea71575d060c7db3970f85a6e1e4c7",
                "abf5ae8cdb0933d71e8c94e04a25619dcee3d2261ad2ee6bf12ffa06d98a0864d87602733ec86a64521f2b18177b200c",
                "bbe117577a615d6c770988c0bad946e208e24fa074e5ab3143db5bfce0fd108e4b82d120a92108011a723c12a787e6d7",
                "88719a10bdba5b2699c327186af4e23c1a946834b6150bda2583e9ca2ad44ce8dbbbc2db04de8ef92e8efc141fbecaa6",
                "287c59474e6bc05d99b2964fa090c3a2233ba186515be7ed1f612970cee2d7afb81bdd762170481cd0069127d5b05aa9",
                "93b4ea988d8fddc186ffb7dc90a6c08f4df435c934063199ffffffffffffffff",
            ]
            .concat(),
        )
    }

    /// RFC 7919 ffdhe2048 (generator 2).
    pub(crate) fn ffdhe_2048() -> Vec<u8> {
        unhex(
            &[
                "ffffffffffffffffadf85458a2bb4a9aafdc5620273d3cf1d8b9c583ce2d3695a9e13641146433fbcc939dce249b3ef9",
                "7d2fe363630c75d8f681b202aec4617ad3df1ed5d5fd65612433f51f5f066ed0856365553ded1af3b557135e7f57c935",
                "984f0c70e0e68b77e2a689daf3efe8721df158a136ade73530acca4f483a797abc0ab182b324fb61d108a94bb2c8e3fb",
                "b96adab760d7f4681d4f42a3de394df4ae56ede76372bb190b07a7c8ee0a6d709e02fce1cdf7e2ecc03404cd28342f61",
                "9172fe9ce98583ff8e4f1232eef28183c3fe3b1b4c6fad733bb5fcbc2ec22005c58ef1837d1683b2c6f34a26c1b2effa",
                "886b423861285c97ffffffffffffffff",
            ]
            .concat(),
        )
    }

    /// Computed by scripts/ard_vectors.py (Python's pow, hashlib.md5 and the
    /// `cryptography` package's AES) for the inputs built below.
    const PYTHON_VECTOR: &str = concat!(
        "4f03131db28bde6be963944c302b2cdeb9acb1f033429aee752398efc69e3756fd7a5f86e1b6ef41d0f75bc12d182e",
        "d7a96edeb8002f7831c21a5fcd441e6d53077267158e1f8b78ac86e4edfa72c8a131c950af8215fc00926037c406f5",
        "77053393af5c7142662c1cb51935dbeb34b6d394e3b1f54c51e45b83987018f80564be8675fd073891ace30f0ae9c2",
        "f40b2cb6d5b6643937f845734a444b7c6e66286aa5edef78e8cff8eecd231897e416f0aeaf61001d80032c133aaf3a",
        "dd9f7d10",
    );

    #[test]
    fn matches_the_python_vector() {
        let pattern = |n: usize, mul: usize, add: usize| -> Vec<u8> { (0..n).map(|i| (i * mul + add) as u8).collect() };
        let mut p = pattern(64, 151, 77);
        p[0] |= 0x80;
        p[63] |= 1;
        let mut y = pattern(64, 37, 11);
        y[0] = 0x10;
        let x = pattern(64, 91, 5);
        let pad: [u8; 128] = pattern(128, 13, 7).try_into().unwrap();
        let params = DhParams::new(5, &[p, y].concat()).unwrap();
        let got = params.respond_with(b"alice", "pässwörd".as_bytes(), &x, &pad);
        assert_eq!(got, unhex(PYTHON_VECTOR));
    }

    #[test]
    fn prime_tables_are_the_published_ones() {
        // Both primes begin and end with 64 one-bits by construction.
        for p in [modp_4096(), ffdhe_2048()] {
            assert!(p[..8].iter().chain(&p[p.len() - 8..]).all(|&b| b == 0xff));
        }
        assert_eq!(modp_4096().len(), 512);
        assert_eq!(ffdhe_2048().len(), 256);
    }

    /// Reference: textbook square-and-multiply on u128.
    fn small_pow(b: u64, e: u64, m: u64) -> u64 {
        let (mut r, mut b, mut e, m) = (1u128, b as u128 % m as u128, e, m as u128);
        while e > 0 {
            if e & 1 == 1 {
                r = r * b % m;
            }
            b = b * b % m;
            e >>= 1;
        }
        r as u64
    }

    #[test]
    fn modpow_matches_the_textbook_on_small_values() {
        let mut rnd = crate::rfb::decode::testutil::xorshift(7);
        let mut r64 = || (rnd() as u64) << 32 | rnd() as u64;
        for i in 0..2000 {
            let m = (r64() >> (i % 60)) | 1;
            if m < 3 {
                continue;
            }
            let (b, e) = (r64() % m, r64() >> (i % 64));
            // Leading zero bytes in the modulus set the output length.
            let md = Modulus::new(&[&[0u8][..], &m.to_be_bytes()].concat()).unwrap();
            let got = md.pow(&b.to_be_bytes(), &e.to_be_bytes());
            let mut want = vec![0u8];
            want.extend_from_slice(&small_pow(b, e, m).to_be_bytes());
            assert_eq!(got, want, "{b}^{e} mod {m}");
        }
        let md = Modulus::new(&[7]).unwrap();
        assert_eq!(md.pow(&[3], &[]), [1], "x^0 = 1");
        assert_eq!(md.pow(&[0], &[5]), [0]);
        assert!(Modulus::new(&[8]).is_none() && Modulus::new(&[0, 1]).is_none() && Modulus::new(&[]).is_none());
    }

    #[test]
    fn fermat_on_the_4096_bit_modp_prime() {
        // RFC 3526 group 16 is prime: a^(p-1) = 1 and a^p = a.
        let p = modp_4096();
        let md = Modulus::new(&p).unwrap();
        let mut pm1 = p.clone();
        *pm1.last_mut().unwrap() -= 1;
        let a = [0x5a; 300];
        let one = md.pow(&a, &pm1);
        assert_eq!(one[..511], [0; 511]);
        assert_eq!(one[511], 1);
        let mut want = vec![0u8; 512 - 300];
        want.extend_from_slice(&a);
        assert_eq!(md.pow(&a, &p), want);
    }

    #[test]
    fn credentials_are_cut_terminated_and_padded() {
        let pad = [0xAA; 128];
        let c = credentials(b"bob", b"pw", &pad);
        assert_eq!(&c[..4], b"bob\0");
        assert!(c[4..64].iter().all(|&b| b == 0xAA));
        assert_eq!(&c[64..67], b"pw\0");
        assert!(c[67..].iter().all(|&b| b == 0xAA));
        let long = [b'x'; 100];
        let c = credentials(&long, &long, &pad);
        assert_eq!(c[..63], [b'x'; 63]);
        assert_eq!(c[63], 0);
        assert_eq!(c[64..127], [b'x'; 63]);
        assert_eq!(c[127], 0);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(DhParams::header(&[0, 2, 0, 63]).is_err(), "key size below the minimum");
        assert!(DhParams::header(&[0, 2, 2, 1]).is_err(), "key size above 4096 bits");
        assert_eq!(DhParams::header(&[0, 2, 0, 128]).unwrap(), (2, 256));
        let p = ffdhe_2048();
        let with = |g: u16, y: &[u8]| {
            let mut k = p.clone();
            let mut yy = vec![0u8; p.len() - y.len()];
            yy.extend_from_slice(y);
            k.extend_from_slice(&yy);
            DhParams::new(g, &k)
        };
        assert!(with(2, &[5]).is_ok());
        for (g, y) in [(0u16, &[5u8][..]), (1, &[5]), (2, &[0]), (2, &[1])] {
            assert!(with(g, y).is_err(), "g={g} y={y:?} accepted");
        }
        let mut pm1 = p.clone();
        *pm1.last_mut().unwrap() -= 1;
        assert!(with(2, &pm1).is_err(), "Y = p-1 accepted");
        assert!(with(2, &p).is_err(), "Y = p accepted");
        let mut even = p.clone();
        *even.last_mut().unwrap() = 0xfe;
        even.extend_from_slice(&[0; 255]);
        even.push(5);
        assert!(DhParams::new(2, &even).is_err(), "even modulus accepted");
    }
}
