//! Test certificates, made with rcgen at test time: a CA, a server
//! certificate it signed for 127.0.0.1 and localhost (ECDSA P-256, which
//! rustls and GnuTLS both take), and an unrelated CA. Compiled into the unit
//! tests and, through `#[path]`, into tests/common/vnc_tls.rs.

#[allow(dead_code)] // the unit tests and the real-server tests read different fields
pub struct TestPki {
    pub ca_pem: String,
    pub other_ca_pem: String,
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_pem: String,
}

pub fn generate() -> TestPki {
    let ca = |name: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        (p.self_signed(&key).unwrap(), key)
    };
    let (ca_cert, ca_key) = ca("wsvnc test CA");
    let (other, _) = ca("unrelated test CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, "wsvnc test VNC server");
    let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        other_ca_pem: other.pem(),
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pem: key.serialize_pem(),
    }
}
