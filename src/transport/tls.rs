//! TLS for browsers: rustls' sans-IO `ServerConnection` under a non-blocking
//! socket, and the server configuration built from PEM files.
//!
//! Policy (fixed, not configurable): TLS 1.3 and 1.2 only, rustls' default
//! cipher suites (AEAD with forward secrecy), ALPN `http/1.1`, no client
//! certificates. rustls buffers are bounded: at most `SEND_LIMIT` bytes of
//! records waiting for the socket (plaintext beyond that stays in the
//! endpoint's own capped buffer), received plaintext at rustls' default
//! 16 KiB, and its record reader grows only for the record being read
//! (4 KiB while idle).
//!
//! Configuration: [`load`] reads the certificate chain and the private key
//! (PEM; the key may be in the certificate file, websockify's `--cert`
//! convention). A new configuration is used by new connections; live ones
//! keep the one they started with (an `Arc`), so a certificate reload never
//! drops a session.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};

/// TLS records waiting for the socket, at most.
const SEND_LIMIT: usize = 64 << 10;

/// A configuration shared by connections (swapped on reload).
pub type Config = Arc<ServerConfig>;

/// Why certificates could not be loaded.
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read or has no PEM object of the kind wanted.
    File { path: PathBuf, what: &'static str, detail: String },
    /// rustls refused the pair (key does not match, unsupported algorithm).
    Refused(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::File { path, what, detail } => write!(f, "{what} {}: {detail}", path.display()),
            TlsError::Refused(e) => write!(f, "certificate and key refused: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// Read the certificate chain (leaf first) from `cert` and the private key
/// from `key` (PEM: PKCS#8, PKCS#1 or SEC1), and build the server
/// configuration. Blocking file I/O: call at start-up or off the loop.
pub fn load(cert: &Path, key: &Path) -> Result<Config, TlsError> {
    let file_err = |path: &Path, what, detail: String| TlsError::File { path: path.to_path_buf(), what, detail };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, "certificate file", e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert, "certificate file", e.to_string()))?;
    if chain.is_empty() {
        return Err(file_err(cert, "certificate file", "no CERTIFICATE in it".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, "key file", e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(super::crypto::server_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Refused)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(TlsError::Refused)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS state of one browser connection.
pub struct TlsSession {
    conn: ServerConnection,
}

impl TlsSession {
    pub fn new(config: &Config) -> io::Result<TlsSession> {
        let mut conn = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        conn.set_buffer_limit(Some(SEND_LIMIT));
        Ok(TlsSession { conn })
    }

    /// Plaintext into `buf`, reading records from `sock` as needed. Ok(0):
    /// the peer closed the session (close_notify); an unclean TCP close is
    /// `UnexpectedEof`; bad TLS input is `InvalidData` after the alert was
    /// sent (best effort). Handshake records are answered as they arrive.
    pub fn read(&mut self, sock: &mut (impl Read + Write), buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
            self.conn.read_tls(sock)?;
            if let Err(e) = self.conn.process_new_packets() {
                let _ = self.flush(sock);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            match self.flush(sock) {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                _ => {}
            }
        }
    }

    /// Take plaintext for the peer (up to rustls' send limit) and write
    /// records while the socket takes them. `WouldBlock` only when rustls
    /// could take nothing.
    pub fn write(&mut self, sock: &mut (impl Read + Write), buf: &[u8]) -> io::Result<usize> {
        let mut n = self.conn.writer().write(buf)?;
        match self.flush(sock) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
        if n == 0 {
            n = self.conn.writer().write(buf)?;
        }
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Write held records until done or `WouldBlock`.
    pub fn flush(&mut self, sock: &mut impl Write) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(sock)?;
        }
        Ok(())
    }

    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Queue close_notify and write what the socket takes now.
    pub fn close(&mut self, sock: &mut impl Write) {
        self.conn.send_close_notify();
        let _ = self.flush(sock);
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }
}
