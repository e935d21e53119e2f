//! Stand-ins for `tls.rs` in a build without the `tls` feature: there is no
//! TLS session (an uninhabited type), so the code that would serve one
//! compiles away.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;

/// Never made: without the `tls` feature nothing is served over TLS.
pub enum Config {}

/// Never made.
pub enum TlsSession {}

#[derive(Debug)]
pub enum TlsError {
    /// This build has no TLS.
    NotBuilt,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("this wsvnc was built without TLS (cargo feature `tls`)")
    }
}

impl std::error::Error for TlsError {}

pub fn load(_cert: &Path, _key: &Path) -> Result<Config, TlsError> {
    Err(TlsError::NotBuilt)
}

impl Clone for Config {
    fn clone(&self) -> Self {
        match *self {}
    }
}

impl TlsSession {
    pub fn new(config: &Config) -> io::Result<TlsSession> {
        match *config {}
    }
    pub fn read(&mut self, _: &mut (impl Read + Write), _: &mut [u8]) -> io::Result<usize> {
        match *self {}
    }
    pub fn write(&mut self, _: &mut (impl Read + Write), _: &[u8]) -> io::Result<usize> {
        match *self {}
    }
    pub fn flush(&mut self, _: &mut impl Write) -> io::Result<()> {
        match *self {}
    }
    pub fn wants_write(&self) -> bool {
        match *self {}
    }
    pub fn close(&mut self, _: &mut impl Write) {
        match *self {}
    }
    pub fn is_handshaking(&self) -> bool {
        match *self {}
    }
}
