//! The rustls crypto providers of both TLS legs, built from ring's parts.
//!
//! Not `rustls::crypto::ring::default_provider()`: that function names every
//! cipher suite ring has, so calling it links them all. Ours name only:
//!
//! * the AES-GCM suites of TLS 1.3 and the ECDHE ones of TLS 1.2, which every
//!   browser and TLS library offers. ChaCha20-Poly1305 is left out (ring's
//!   ChaCha20 and Poly1305 code is ~50 KiB): a client without AES instructions
//!   (some low-end ARM phones) then runs AES-GCM in software, which costs it
//!   CPU, not interoperability. On our side ring uses AES-NI / ARMv8 AES and
//!   carry-less multiplication where the CPU has them, constant-time software
//!   (vpaes) elsewhere;
//! * X25519 and P-256 key exchange for browsers (every browser offers one of
//!   them), also P-384 to VNC servers;
//! * the signature algorithms webpki verifies with ring (ECDSA P-256/P-384,
//!   Ed25519, RSA PKCS#1 and PSS with 2048..8192-bit keys), for VNC servers'
//!   certificates; none for browsers (no client certificates);
//! * the OS random source and ring's key loader (ECDSA, Ed25519, RSA keys).

use std::sync::Arc;

use rustls::crypto::ring::{cipher_suite as cs, kx_group, sign};
use rustls::crypto::{CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::SigningKey;
use rustls::{SignatureScheme, SupportedCipherSuite};
use webpki::ring as alg;

/// The cipher suites of both legs, in preference order.
fn cipher_suites() -> Vec<SupportedCipherSuite> {
    vec![
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ]
}

/// The browser leg (`--cert`/`--key`): no signature verification.
pub fn server_provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: cipher_suites(),
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1],
        signature_verification_algorithms: WebPkiSupportedAlgorithms { all: &[], mapping: &[] },
        secure_random: &Ring,
        key_provider: &Ring,
    })
}

/// The VNC server leg (VeNCrypt X509 sub-types).
pub fn client_provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: cipher_suites(),
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        signature_verification_algorithms: SIGNATURE_ALGORITHMS,
        secure_random: &Ring,
        key_provider: &Ring,
    })
}

/// What webpki verifies with ring; for TLS 1.2 a scheme does not fix the curve
/// (RFC 5246 §7.4.1.4.1), for TLS 1.3 it does (RFC 8446 §4.2.3).
const SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        alg::ECDSA_P256_SHA256,
        alg::ECDSA_P256_SHA384,
        alg::ECDSA_P384_SHA256,
        alg::ECDSA_P384_SHA384,
        alg::ED25519,
        alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        alg::RSA_PKCS1_2048_8192_SHA256,
        alg::RSA_PKCS1_2048_8192_SHA384,
        alg::RSA_PKCS1_2048_8192_SHA512,
        alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    ],
    mapping: &[
        (SignatureScheme::ECDSA_NISTP384_SHA384, &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384]),
        (SignatureScheme::ECDSA_NISTP256_SHA256, &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256]),
        (SignatureScheme::ED25519, &[alg::ED25519]),
        (SignatureScheme::RSA_PSS_SHA512, &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY]),
        (SignatureScheme::RSA_PSS_SHA384, &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY]),
        (SignatureScheme::RSA_PSS_SHA256, &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY]),
        (SignatureScheme::RSA_PKCS1_SHA512, &[alg::RSA_PKCS1_2048_8192_SHA512]),
        (SignatureScheme::RSA_PKCS1_SHA384, &[alg::RSA_PKCS1_2048_8192_SHA384]),
        (SignatureScheme::RSA_PKCS1_SHA256, &[alg::RSA_PKCS1_2048_8192_SHA256]),
    ],
};

/// ring's random source and key loader.
#[derive(Debug)]
struct Ring;

impl SecureRandom for Ring {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        use ring::rand::SecureRandom as _;
        ring::rand::SystemRandom::new().fill(buf).map_err(|_| GetRandomFailed)
    }
}

impl KeyProvider for Ring {
    fn load_private_key(&self, key_der: PrivateKeyDer<'static>) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        sign::any_supported_type(&key_der)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_consistent_and_have_no_chacha() {
        for p in [server_provider(), client_provider()] {
            assert!(p.cipher_suites.iter().all(|s| !format!("{:?}", s.suite()).contains("CHACHA")));
            assert!(p.cipher_suites.iter().any(|s| s.version() == &rustls::version::TLS12));
            assert!(p.cipher_suites.iter().any(|s| s.version() == &rustls::version::TLS13));
        }
        // The client table is the one rustls builds for ring, entry for entry.
        #[allow(deprecated)]
        let reference = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        assert_eq!(format!("{:?}", client_provider().signature_verification_algorithms), format!("{reference:?}"));
        let mut buf = [0u8; 32];
        Ring.fill(&mut buf).unwrap();
        assert_ne!(buf, [0u8; 32]);
    }
}
