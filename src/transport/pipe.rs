//! Zero-copy target→browser path for the relay: splice(2) through a pipe.
//!
//! The plain path reads the target's bytes into the client's output buffer
//! and writes them out again: two copies through user memory per byte. Here
//! the payload never enters user memory:
//!
//! ```text
//!   target socket ──splice──▶ pipe ──splice──▶ browser socket
//!                    (n B)      │   ▲
//!                               │   └─ first: send(header for n, MSG_MORE)
//! ```
//!
//! One frame per splice-in: its length `n` is known once the bytes are in the
//! pipe, so the header (RFC 6455 §5.2, server frames unmasked, minimal length
//! form) goes out first with `MSG_MORE` and the payload follows from the pipe.
//! The bytes of a started frame (header rest, then pipe contents) always go
//! to the browser before anything queued in the output buffer, and a new
//! frame starts only when that buffer is empty, so the stream stays in order.
//!
//! Pipes cost two descriptors, so a connection holds one only while a frame
//! is in flight; idle connections hold none. Empty pipes are pooled. Where a
//! pipe cannot be had (descriptor limit, not Linux) the caller falls back to
//! the copying path. Benchmarks: benches/README.md (bulk rows).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::stream::Stream;

/// Pipe capacity asked for (F_SETPIPE_SZ); the default 64 KiB is kept if
/// the kernel refuses. Also the largest frame payload taken per splice.
const PIPE_SIZE: usize = 256 << 10;

/// A non-blocking pipe.
pub struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    /// Usable capacity: the most one splice-in may take.
    cap: usize,
}

impl Pipe {
    #[cfg(target_os = "linux")]
    fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both are fresh descriptors we now own.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on a descriptor we own; no pointers involved.
        let got = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE as libc::c_int) };
        let cap = if got > 0 { (got as usize).min(PIPE_SIZE) } else { 64 << 10 };
        Ok(Pipe { r, w, cap })
    }

    #[cfg(not(target_os = "linux"))]
    fn new() -> io::Result<Pipe> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Empty pipes for reuse.
pub struct PipePool {
    free: Vec<Pipe>,
    max_free: usize,
}

impl PipePool {
    pub const fn new(max_free: usize) -> Self {
        PipePool { free: Vec::new(), max_free }
    }

    pub fn take(&mut self) -> io::Result<Pipe> {
        match self.free.pop() {
            Some(p) => Ok(p),
            None => Pipe::new(),
        }
    }

    /// Keep `p` for reuse; only empty pipes may be given back.
    pub fn give(&mut self, p: Pipe) {
        if self.free.len() < self.max_free {
            self.free.push(p);
        }
    }
}

/// A frame being moved target → browser through a pipe.
pub struct Splice {
    pipe: Pipe,
    header: [u8; 10],
    header_len: u8,
    header_sent: u8,
    /// Payload bytes in the pipe, not yet spliced to the browser.
    in_pipe: usize,
}

/// What one step of the splice path achieved.
pub enum Step {
    /// Moved this many bytes to the browser (header and payload).
    Moved(usize),
    /// The browser socket is full; the frame waits in the pipe.
    Blocked(usize),
}

impl Splice {
    pub fn new(pipe: Pipe) -> Splice {
        Splice { pipe, header: [0; 10], header_len: 0, header_sent: 0, in_pipe: 0 }
    }

    /// Nothing of a started frame is left to send.
    pub fn is_idle(&self) -> bool {
        self.in_pipe == 0 && self.header_sent == self.header_len
    }

    /// The pipe back, if it is empty (else it is dropped and closed).
    pub fn into_pipe(self) -> Option<Pipe> {
        self.is_idle().then_some(self.pipe)
    }

    /// Splice what the target has (one frame's payload) into the pipe.
    /// Only when idle. Ok(0) is the target's end of stream.
    pub fn fill(&mut self, from: &Stream) -> io::Result<usize> {
        debug_assert!(self.is_idle());
        let n = splice(from.as_raw_fd(), self.pipe.w.as_raw_fd(), self.pipe.cap)?;
        if n > 0 {
            self.in_pipe = n;
            self.header_len = frame_header(&mut self.header, n) as u8;
            self.header_sent = 0;
        }
        Ok(n)
    }

    /// Send the rest of the started frame to `to` until done or it blocks.
    pub fn drain(&mut self, to: &impl AsRawFd) -> io::Result<Step> {
        let fd = to.as_raw_fd();
        let mut moved = 0;
        while self.header_sent < self.header_len {
            let h = &self.header[self.header_sent as usize..self.header_len as usize];
            match send_more(fd, h) {
                Ok(n) => {
                    self.header_sent += n as u8;
                    moved += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Blocked(moved)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        while self.in_pipe > 0 {
            match splice(self.pipe.r.as_raw_fd(), fd, self.in_pipe) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.in_pipe -= n;
                    moved += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Blocked(moved)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Step::Moved(moved))
    }
}

/// An unmasked FIN binary frame header for `n` payload bytes (RFC 6455
/// §5.2, minimal length encoding). Returns its length.
fn frame_header(h: &mut [u8; 10], n: usize) -> usize {
    crate::ws::frame::put_header(h, true, false, crate::ws::frame::OP_BINARY, n)
}

#[cfg(target_os = "linux")]
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain descriptors and null offsets (both ends are a pipe or a
    // socket, which have no file position); no memory is passed.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(not(target_os = "linux"))]
fn splice(_: RawFd, _: RawFd, _: usize) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

/// send(2) with MSG_MORE: the header waits for its payload instead of
/// leaving as a tiny segment (TCP_NODELAY is on).
fn send_more(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    let flags = libc::MSG_MORE | libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
    #[cfg(not(target_os = "linux"))]
    let flags = 0;
    // SAFETY: `bytes` is a valid readable slice for its length.
    let n = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_use_the_minimal_length_form() {
        let mut h = [0u8; 10];
        assert_eq!(frame_header(&mut h, 5), 2);
        assert_eq!(&h[..2], &[0x82, 5]);
        assert_eq!(frame_header(&mut h, 126), 4);
        assert_eq!(&h[..4], &[0x82, 126, 0, 126]);
        assert_eq!(frame_header(&mut h, 65535), 4);
        assert_eq!(frame_header(&mut h, 65536), 10);
        assert_eq!(&h[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn frames_go_through_the_pipe_in_order() {
        use std::io::{Read, Write};
        // target ⇄ (t_peer = relay's target side) and (b_relay = relay's browser side) ⇄ browser
        let (mut target, t_relay) = mio::net::UnixStream::pair().unwrap();
        let (b_relay, mut browser) = std::os::unix::net::UnixStream::pair().unwrap();
        let from = Stream::unix(t_relay);
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
        target.write_all(&data[..200]).unwrap();
        let mut pool = PipePool::new(4);
        let mut s = Splice::new(pool.take().unwrap());
        let mut got = Vec::new();
        let n = s.fill(&from).unwrap();
        assert_eq!(n, 200);
        assert!(matches!(s.drain(&b_relay).unwrap(), Step::Moved(204)));
        assert!(s.is_idle());
        let mut buf = vec![0u8; 300];
        browser.read_exact(&mut buf[..204]).unwrap();
        assert_eq!(&buf[..4], &[0x82, 126, 0, 200]);
        got.extend_from_slice(&buf[4..204]);
        assert_eq!(got, &data[..200]);
        // Nothing more from the target: WouldBlock, not end of stream.
        let e = s.fill(&from).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(target);
        assert_eq!(s.fill(&from).unwrap(), 0);
        pool.give(s.into_pipe().unwrap());
    }

    /// Parse unmasked server frames; returns the concatenated payload.
    fn payload_of(mut wire: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !wire.is_empty() {
            assert_eq!(wire[0], 0x82, "FIN binary frames only");
            let (h, n) = match wire[1] {
                126 => (4, u16::from_be_bytes([wire[2], wire[3]]) as usize),
                127 => (10, u64::from_be_bytes(wire[2..10].try_into().unwrap()) as usize),
                n => (2, n as usize),
            };
            out.extend_from_slice(&wire[h..h + n]);
            wire = &wire[h + n..];
        }
        out
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_slow_browser_gets_every_byte_in_order() {
        use std::io::{Read, Write};
        use std::os::unix::net::UnixStream as StdUnix;
        let (t_write, t_relay) = StdUnix::pair().unwrap();
        let (b_relay, mut browser) = StdUnix::pair().unwrap();
        t_relay.set_nonblocking(true).unwrap();
        b_relay.set_nonblocking(true).unwrap();
        let from = Stream::unix(mio::net::UnixStream::from_std(t_relay));
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i ^ (i >> 9)) as u8).collect();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            let mut t = t_write;
            t.write_all(&sent).unwrap();
        });
        let reader = std::thread::spawn(move || {
            let mut wire = Vec::new();
            let mut b = [0u8; 4096];
            loop {
                // Read slowly in small pieces so the relay side blocks often.
                match browser.read(&mut b) {
                    Ok(0) => return wire,
                    Ok(n) => wire.extend_from_slice(&b[..n]),
                    Err(e) => panic!("{e}"),
                }
                if wire.len() % 7 == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let mut pool = PipePool::new(1);
        let mut s = Splice::new(pool.take().unwrap());
        let (mut blocked, mut frames) = (0, 0);
        loop {
            if s.is_idle() {
                match s.fill(&from) {
                    Ok(0) => break,
                    Ok(_) => frames += 1,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::yield_now();
                        continue;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            if let Step::Blocked(_) = s.drain(&b_relay).unwrap() {
                blocked += 1;
                std::thread::yield_now();
            }
        }
        drop(b_relay);
        writer.join().unwrap();
        let wire = reader.join().unwrap();
        assert!(frames > 1);
        assert!(blocked > 0, "the test should exercise a full browser socket");
        assert_eq!(payload_of(&wire), data);
    }
}
