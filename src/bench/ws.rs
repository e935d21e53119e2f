//! The load clients' side of RFC 6455: a blocking client that shares no
//! code with the server (so a framing bug cannot hide on both sides). Client
//! frames are masked (§5.3) with a zero key: valid, and costs nothing.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct Client {
    pub rd: BufReader<TcpStream>,
    pub wr: TcpStream,
}

impl Client {
    /// Open `ws://addr{path}` offering `protocol` (no extensions).
    pub fn connect(addr: SocketAddr, path: &str, protocol: Option<&str>) -> io::Result<Client> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        let proto = protocol.map_or(String::new(), |p| format!("Sec-WebSocket-Protocol: {p}\r\n"));
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{proto}\r\n"
        );
        let mut wr = s.try_clone()?;
        wr.write_all(req.as_bytes())?;
        let mut rd = BufReader::with_capacity(256 << 10, s);
        let mut line = String::new();
        rd.read_line(&mut line)?;
        if !line.starts_with("HTTP/1.1 101") {
            return Err(io::Error::other(format!("upgrade refused: {}", line.trim())));
        }
        while line != "\r\n" {
            line.clear();
            if rd.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(Client { rd, wr })
    }

    /// One binary message, one frame.
    pub fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut f = Vec::with_capacity(payload.len() + 14);
        f.push(0x82);
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[0; 4]);
        f.extend_from_slice(payload);
        self.wr.write_all(&f)
    }

    /// The next frame's header: (opcode, FIN, payload length). Its payload
    /// is then read with `payload`.
    fn header(&mut self) -> io::Result<(u8, bool, u64)> {
        let mut h = [0u8; 2];
        self.rd.read_exact(&mut h)?;
        if h[1] & 0x80 != 0 || h[0] & 0x70 != 0 {
            return Err(io::Error::other("masked or compressed frame from the server"));
        }
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.rd.read_exact(&mut b)?;
                u16::from_be_bytes(b) as u64
            }
            127 => {
                let mut b = [0u8; 8];
                self.rd.read_exact(&mut b)?;
                u64::from_be_bytes(b)
            }
            n => n as u64,
        };
        Ok((h[0] & 0x0f, h[0] & 0x80 != 0, len))
    }

    /// Read `len` payload bytes, handing them to `f` in pieces.
    fn payload(&mut self, mut len: u64, mut f: impl FnMut(&[u8])) -> io::Result<()> {
        while len > 0 {
            let buf = self.rd.fill_buf()?;
            if buf.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let n = buf.len().min(len as usize);
            f(&buf[..n]);
            self.rd.consume(n);
            len -= n as u64;
        }
        Ok(())
    }

    /// The next data frame (control frames skipped, a Close is an error):
    /// its payload handed to `f`, then its FIN bit and length.
    pub fn data_frame(&mut self, mut f: impl FnMut(&[u8])) -> io::Result<(bool, u64)> {
        loop {
            let (op, fin, len) = self.header()?;
            if op == 8 {
                return Err(io::Error::other("closed by the server"));
            }
            if op >= 8 {
                self.payload(len, |_| {})?;
                continue;
            }
            self.payload(len, &mut f)?;
            return Ok((fin, len));
        }
    }

    /// Read data frames until `want` payload bytes have arrived, handing
    /// them to `f`.
    pub fn read_bytes(&mut self, mut want: u64, mut f: impl FnMut(&[u8])) -> io::Result<()> {
        while want > 0 {
            let (_, len) = self.data_frame(&mut f)?;
            want = want.saturating_sub(len);
        }
        Ok(())
    }
}
