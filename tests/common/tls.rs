//! TLS helpers for the integration tests: a throwaway CA made by
//! scripts/test-ca.sh (openssl), rustls clients that trust it, and wss://
//! WebSockets through tungstenite.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::Ws;

/// A CA and leaf certificates in a directory of their own (removed on drop).
pub struct TestCa {
    pub dir: PathBuf,
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestCa {
    /// A fresh CA with leaves `names` (each valid for localhost/127.0.0.1).
    pub fn new(names: &[&str]) -> TestCa {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wsvnc-tls-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-ca.sh");
        let out = std::process::Command::new(script)
            .arg(&dir)
            .args(names)
            .output()
            .expect("run scripts/test-ca.sh (needs openssl: Debian package openssl)");
        assert!(out.status.success(), "test-ca.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        TestCa { dir }
    }

    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }

    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }

    /// The DER of leaf `name` (to recognise which certificate a server presented).
    pub fn der(&self, name: &str) -> Vec<u8> {
        CertificateDer::from_pem_file(self.cert(name)).unwrap().to_vec()
    }

    /// A rustls client that trusts this CA, offering ALPN http/1.1.
    pub fn client(&self) -> Arc<ClientConfig> {
        self.client_with(&[&rustls::version::TLS13, &rustls::version::TLS12])
    }

    pub fn client_with(&self, versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(self.dir.join("ca.pem")).unwrap()).unwrap();
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}

pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to `addr` for "localhost", handshake done.
pub fn tls_connect(addr: SocketAddr, cfg: &Arc<ClientConfig>) -> std::io::Result<Tls> {
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = ClientConnection::new(cfg.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// The leaf certificate the server presented.
pub fn presented(tls: &Tls) -> Vec<u8> {
    tls.conn.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default()
}

/// An HTTPS GET; returns the whole response (the server closes after it).
pub fn https_get(addr: SocketAddr, cfg: &Arc<ClientConfig>, path: &str) -> String {
    let mut tls = tls_connect(addr, cfg).expect("TLS handshake");
    write!(tls, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A wss:// WebSocket to `path` through `addr`.
pub fn wss_connect(addr: SocketAddr, path: &str, cfg: &Arc<ClientConfig>) -> Ws {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let url = format!("wss://localhost:{}{}", addr.port(), path);
    let connector = tungstenite::Connector::Rustls(cfg.clone());
    let (ws, _) = tungstenite::client_tls_with_config(url, sock, None, Some(connector)).expect("wss connect");
    ws
}
