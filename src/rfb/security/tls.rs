//! rustls client configuration for the VeNCrypt X509 sub-types, and the
//! check of the VNC server's certificate (rfbproto "VeNCrypt": "client side
//! can decide if it wants to accept invalid server certificate" — wsvnc
//! never does).
//!
//! A certificate is accepted when every configured check passes:
//! * CA (`--vnc-ca`, `vnc-ca=`): the chain leads to one of the CA
//!   certificates, is valid now, and names the target host (DNS name, or an
//!   IP address SAN when the target is an address) — webpki's checks, as
//!   for any HTTPS client;
//! * pin (`vnc-fingerprint=sha256:HEX`): the SHA-256 of the server's own
//!   (end-entity) certificate equals the pin. A pin alone checks neither name
//!   nor dates, like an SSH host key: it suits the self-signed certificates
//!   VNC servers usually have.
//!
//! The handshake itself (TLS 1.2 or 1.3, rustls's safe defaults, the `ring`
//! provider) proves the server holds the certificate's key. rustls reads the
//! wall clock for the validity check; nothing else here does I/O.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, OtherError, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::TlsTrust;
use crate::rfb::RfbError;

/// The CA certificates in a PEM file's contents; an error unless there is
/// at least one and every one parses.
pub fn parse_ca_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().map_err(|e| format!("not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE section in it".into());
    }
    let mut roots = RootCertStore::empty();
    for c in &certs {
        roots.add(c.clone()).map_err(|e| format!("unusable CA certificate: {e}"))?;
    }
    Ok(certs)
}

/// SHA-256 of a certificate (DER), the form pins take.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A client connection to the VNC server, ClientHello queued.
pub fn connect(trust: &TlsTrust) -> Result<ClientConnection, RfbError> {
    let local = |m: String| RfbError::Local(m);
    // ring is the provider chosen for size (aws-lc-rs is several times larger
    // and needs cmake); rustls 0.23.48 deprecates ring's for lacking
    // post-quantum key exchange, and VNC servers' TLS stacks (GnuTLS in
    // TigerVNC) offer classic groups anyway.
    let provider = crate::transport::crypto::client_provider();
    let webpki = match &trust.ca_pem {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for c in parse_ca_pem(pem).map_err(|e| local(format!("the VNC CA file: {e}")))? {
                roots.add(c).map_err(|e| local(format!("the VNC CA file: {e}")))?;
            }
            let v = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| local(format!("the VNC CA file: {e}")))?;
            Some(v)
        }
        None => None,
    };
    let verifier =
        Arc::new(Verifier { webpki, pin: trust.fingerprint, algs: provider.signature_verification_algorithms });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| local(format!("TLS configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let name = ServerName::try_from(trust.server_name.clone()).map_err(|_| {
        local(format!("'{}' is not a host name or address to check a certificate for", trust.server_name))
    })?;
    ClientConnection::new(Arc::new(config), name).map_err(|e| RfbError::Tls(e.to_string()))
}

/// rustls's error → ours: certificate problems apart, with our verifier's
/// own message (which names the certificate's fingerprint).
pub fn error(e: rustls::Error) -> RfbError {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(o)) => match o.0.downcast_ref::<Rejected>() {
            Some(r) => RfbError::Certificate(r.to_string()),
            None => RfbError::Certificate(o.to_string()),
        },
        rustls::Error::InvalidCertificate(c) => RfbError::Certificate(c.to_string()),
        rustls::Error::NoCertificatesPresented => RfbError::Certificate("the server presented none".into()),
        e => RfbError::Tls(e.to_string()),
    }
}

/// Why the server's certificate was not accepted, with its fingerprint (an
/// operator who has checked it some other way can pin it).
#[derive(Debug)]
struct Rejected {
    why: String,
    fingerprint: [u8; 32],
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; its SHA-256 fingerprint is sha256:", self.why)?;
        for b in self.fingerprint {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejected {}

#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pin: Option<[u8; 32]>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity);
        let reject = |why: String| {
            let e = OtherError(Arc::new(Rejected { why, fingerprint: got }));
            rustls::Error::InvalidCertificate(CertificateError::Other(e))
        };
        if self.pin.is_some_and(|pin| pin != got) {
            return Err(reject("it is not the certificate pinned with vnc-fingerprint=".into()));
        }
        if let Some(w) = &self.webpki {
            match w.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                Ok(_) => {}
                Err(rustls::Error::InvalidCertificate(c)) => {
                    return Err(reject(format!("{c} (checked against the CA of --vnc-ca / vnc-ca=)")))
                }
                Err(e) => return Err(reject(e.to_string())),
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algs.supported_schemes()
    }
}
