//! Shared helpers for integration tests: a real server on an ephemeral port,
//! real TCP targets, a real WebSocket client (tungstenite).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tungstenite::stream::MaybeTlsStream;
use tungstenite::WebSocket;

pub type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

pub struct Running {
    pub addr: SocketAddr,
    pub stop: wsvnc::StopHandle,
    pub thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }
    pub fn shutdown(mut self) -> std::io::Result<()> {
        self.stop.stop();
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.stop.stop();
            let _ = t.join();
        }
    }
}

pub fn config() -> wsvnc::Config {
    wsvnc::Config { listen: "127.0.0.1:0".parse().unwrap(), heartbeat: None, ..Default::default() }
}

pub fn start(cfg: wsvnc::Config) -> Running {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut server = wsvnc::Server::bind(cfg).expect("bind");
    let addr = server.local_addr();
    let stop = server.stop_handle();
    let thread = std::thread::spawn(move || server.run());
    Running { addr, stop, thread: Some(thread) }
}

/// A TCP echo server on an ephemeral port (thread per connection).
pub fn tcp_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            std::thread::spawn(move || echo_until_eof(s));
        }
    });
    addr
}

/// `Read::read`, retried when a signal interrupts it (EINTR): a blocking
/// read with a timeout is not restarted after a signal or a stop/continue
/// (signal(7)), and a test must not fail for that.
pub fn read_some(s: &mut impl Read, b: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match s.read(b) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Writes back everything read from `s` until end of stream or an error.
pub fn echo_until_eof(mut s: impl Read + Write) {
    let mut b = [0u8; 65536];
    while let Ok(n) = read_some(&mut s, &mut b) {
        if n == 0 || s.write_all(&b[..n]).is_err() {
            break;
        }
    }
}

/// A TCP server that writes `bytes` to each connection, then closes.
pub fn tcp_source(bytes: usize) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let chunk = vec![0xA5u8; 65536];
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if s.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        }
    });
    addr
}

/// A port nothing listens on.
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

pub fn connect(url: &str) -> Ws {
    let (ws, _resp) = tungstenite::connect(url).expect("websocket connect");
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    ws
}

/// Read until a Close frame; returns its code and reason.
pub fn expect_close(ws: &mut Ws) -> (u16, String) {
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(Some(f))) => return (f.code.into(), f.reason.to_string()),
            Ok(tungstenite::Message::Close(None)) => return (1005, String::new()),
            Ok(_) => continue,
            Err(e) => panic!("expected a close frame, got error {e}"),
        }
    }
}

/// Send a raw HTTP request, return the whole response (until close or timeout).
pub fn http_raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut b = [0u8; 65536];
    loop {
        match read_some(&mut s, &mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&b[..n]),
        }
        if request.starts_with(b"GET") || request.starts_with(b"HEAD") {
            // keep-alive responses: stop once a full response is in
            if let Some(i) = find(&out, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&out[..i]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)));
                let body_needed = if request.starts_with(b"HEAD") { 0 } else { len.unwrap_or(0) };
                if len.is_some() && out.len() >= i + 4 + body_needed {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn status_of(resp: &str) -> u16 {
    resp.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Resident set size of this process in KiB.
pub fn rss_kib() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A WebSocket upgrade written by hand (`extra`: more header lines, each
/// ending in CRLF). Returns the socket, positioned after the response head,
/// and the head lowercased.
pub fn raw_upgrade_with(addr: SocketAddr, path: &str, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    (s, String::from_utf8_lossy(&head).to_ascii_lowercase())
}

/// The wsvnc binary as a child process (killed on drop), for tests that
/// measure the server's own memory: an in-process server shares its RSS
/// with every other test thread of the test binary.
pub struct Spawned {
    pub addr: SocketAddr,
    child: std::process::Child,
}

impl Spawned {
    /// Start `wsvnc --listen 127.0.0.1:PORT ARGS...` and wait until it listens.
    pub fn start(args: &[&str]) -> Spawned {
        Spawned::start_with(|addr| {
            let head = ["--listen".to_string(), addr.to_string(), "--heartbeat".into(), "0".into()];
            head.into_iter().chain(args.iter().map(|a| a.to_string())).collect()
        })
    }

    /// Start wsvnc with the command line `args(free address)` (e.g. websockify's
    /// positional form) and wait until it listens there.
    pub fn start_with(args: impl FnOnce(SocketAddr) -> Vec<String>) -> Spawned {
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_wsvnc"))
            .args(args(addr))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start wsvnc");
        let s = Spawned { addr, child };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(std::time::Instant::now() < deadline, "wsvnc did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }
    /// The exit status once the process has exited, or None while it runs.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }
    /// The server process's resident set size in KiB.
    pub fn rss_kib(&self) -> usize {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(feature = "tls")]
pub mod vnc_tls;
pub mod x11;

/// The daemon binary as a child process, killed on drop.
pub struct Daemon {
    pub child: std::process::Child,
}

impl Daemon {
    pub fn start(args: &[&str], addr: SocketAddr) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_wsvnc"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wsvnc");
        let d = Daemon { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "wsvnc did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0);
    }

    /// Wait for exit (bounded); returns the exit status and what it logged.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let mut log = String::new();
                self.child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
                return (st, log);
            }
            assert!(Instant::now() < deadline, "wsvnc did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free 127.0.0.1 port (bound and released; a tiny race is accepted).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}
