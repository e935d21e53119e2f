//! A connected byte stream: TCP or a Unix socket, optionally under TLS.
//!
//! Reads and writes follow `std::io` with non-blocking sockets: `WouldBlock`
//! means "wait for readiness". Under TLS ([`super::tls`]) `read` returns
//! plaintext and may send handshake records; `write` takes plaintext into
//! rustls' bounded buffer; [`Stream::flush_pending`] writes what rustls
//! still holds. Plain sockets have nothing pending.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};

use super::tls::TlsSession;
use crate::config::TargetAddr;

/// The socket itself.
pub enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

pub struct Stream {
    sock: Sock,
    /// TLS on top of `sock`, from the first ClientHello on.
    tls: Option<Box<TlsSession>>,
}

impl Stream {
    /// An accepted browser connection (plain until [`Stream::start_tls`]).
    pub fn accepted(sock: TcpStream) -> Stream {
        Stream { sock: Sock::Tcp(sock), tls: None }
    }

    /// A connected Unix socket (tests).
    #[cfg(test)]
    pub fn unix(sock: UnixStream) -> Stream {
        Stream { sock: Sock::Unix(sock), tls: None }
    }

    /// Start a non-blocking connect; completion is signalled by writability.
    pub fn connect(addr: &TargetAddr) -> io::Result<Stream> {
        let sock = match addr {
            TargetAddr::Tcp(a) => Sock::Tcp(TcpStream::connect(*a)?),
            TargetAddr::Unix(p) => Sock::Unix(UnixStream::connect(p)?),
        };
        Ok(Stream { sock, tls: None })
    }

    /// Serve TLS on this stream from now on (the next bytes are a ClientHello).
    pub fn start_tls(&mut self, session: TlsSession) {
        self.tls = Some(Box::new(session));
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Plain TCP (the only kind the relay can splice to).
    pub fn is_plain_tcp(&self) -> bool {
        self.tls.is_none() && matches!(self.sock, Sock::Tcp(_))
    }

    /// A short read from this stream means the socket was emptied (see
    /// `Endpoint::read`); not so under TLS, where rustls reads records.
    pub fn short_read_drains(&self) -> bool {
        cfg!(target_os = "linux") && self.tls.is_none()
    }

    /// Look at the next byte without consuming it: Ok(None) at the end of
    /// the stream, `WouldBlock` when nothing has arrived yet.
    pub fn peek_first(&self) -> io::Result<Option<u8>> {
        let mut b = [0u8; 1];
        let n = match &self.sock {
            Sock::Tcp(s) => s.peek(&mut b)?,
            Sock::Unix(_) => return Err(io::ErrorKind::Unsupported.into()),
        };
        Ok((n == 1).then_some(b[0]))
    }

    /// After a writable event: Ok(true) connected, Ok(false) still
    /// connecting, Err the connect failed.
    pub fn finish_connect(&self) -> io::Result<bool> {
        let err = match &self.sock {
            Sock::Tcp(s) => s.take_error()?,
            Sock::Unix(s) => s.take_error()?,
        };
        if let Some(e) = err {
            return Err(e);
        }
        let peer = match &self.sock {
            Sock::Tcp(s) => s.peer_addr().map(|_| ()),
            Sock::Unix(s) => s.peer_addr().map(|_| ()),
        };
        match peer {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn set_nodelay(&self) {
        if let Sock::Tcp(s) = &self.sock {
            let _ = s.set_nodelay(true);
        }
    }

    pub fn shutdown_write(&self) {
        let _ = match &self.sock {
            Sock::Tcp(s) => s.shutdown(Shutdown::Write),
            Sock::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }

    /// Bytes rustls holds for the socket (always false for plain streams).
    pub fn has_pending(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Write what rustls holds until done or `WouldBlock` (which clears
    /// `*writable`).
    pub fn flush_pending(&mut self, writable: &mut bool) -> io::Result<()> {
        let Some(tls) = self.tls.as_mut() else { return Ok(()) };
        if !*writable {
            return Ok(());
        }
        match tls.flush(&mut self.sock) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                *writable = false;
                Ok(())
            }
            other => other,
        }
    }

    /// Say goodbye at the TLS level (close_notify), best effort.
    pub fn close_tls(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.close(&mut self.sock);
        }
    }

    /// The TLS session, if this stream has one.
    pub fn tls_session(&self) -> Option<&TlsSession> {
        self.tls.as_deref()
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match &self.sock {
            Sock::Tcp(s) => s.as_raw_fd(),
            Sock::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
        }
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write_vectored(bufs),
            Sock::Unix(s) => s.write_vectored(bufs),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.tls.as_mut() {
            Some(tls) => tls.read(&mut self.sock, buf),
            None => self.sock.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.tls.as_mut() {
            Some(tls) => tls.write(&mut self.sock, buf),
            None => self.sock.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match &mut self.sock {
            Sock::Tcp(s) => s.register(r, t, i),
            Sock::Unix(s) => s.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match &mut self.sock {
            Sock::Tcp(s) => s.reregister(r, t, i),
            Sock::Unix(s) => s.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match &mut self.sock {
            Sock::Tcp(s) => s.deregister(r),
            Sock::Unix(s) => s.deregister(r),
        }
    }
}
