//! Load generator for relays (benches/relay_vs_websockify.sh): a target
//! ("sink") and clients that measure bulk throughput, echo round trips and
//! idle connections through any relay — plain TCP for TCP relays (direct,
//! socat), WebSocket with masked client frames for WebSocket relays
//! (websockify, wsvnc). The client is neutral: it shares no code with wsvnc
//! (a minimal hand-written RFC 6455 client), uses blocking std::net, one
//! thread per connection for bulk, and never copies received payload.
//!
//! ```text
//! wsload sink  --listen ADDR                     target: streams / echoes / holds
//! wsload bulk  --addr ADDR [--ws PATH] --bytes N [--conns C] [--pid P]
//! wsload rtt   --addr ADDR [--ws PATH] --size S [--count N] [--warmup W]
//! wsload rtt   --targets name=[tls://]ADDR[/path],... --size S ...   (interleaved)
//! wsload idle  --addr ADDR [--ws PATH] --conns N [--mark M] [--hold S] [--pid P]
//!              [--deadline S] [--max-mem-mib M]
//! wsload handshakes --addr ADDR --tls CA --count N [--conns C] [--pid P]
//! ```
//!
//! `--tls CA.pem` (bulk, rtt, idle, handshakes): connect with TLS (rustls,
//! server name `localhost`, trusting only that CA), so the same client drives
//! wsvnc --cert, websockify --cert and socat OPENSSL-LISTEN. Session
//! resumption is off: every connection is a full handshake.
//!
//! Sink protocol (the relay only moves bytes, so it works through any relay):
//! the client's first byte picks the mode.
//!
//! | first bytes            | sink does                                        |
//! |------------------------|--------------------------------------------------|
//! | `S` + u64 big-endian N | streams N bytes, then holds until the client goes |
//! | `E`                    | echoes every later byte                           |
//! | `I`                    | answers one byte `i`, then holds (idle)           |
//!
//! Every client prints one line of `key=value` fields for the script to parse.
//! CPU and memory of the relay (`--pid`) include its descendants, because
//! websockify and `socat fork` serve each connection in a child process:
//! CPU = utime+stime of the live tree + cutime+cstime of the root (children
//! already reaped); memory = sums of VmRSS and of Pss over the tree.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { usage() };
    let opts = Opts::parse(&args[1..]);
    let result = match cmd.as_str() {
        "sink" => sink::run(opts.addr("listen")),
        "bulk" => bulk(&opts),
        "rtt" => rtt(&opts),
        "idle" => idle(&opts),
        "handshakes" => handshakes(&opts),
        _ => usage(),
    };
    if let Err(e) = result {
        eprintln!("wsload {cmd}: {e}");
        std::process::exit(1);
    }
}

fn usage() -> ! {
    eprintln!("usage: wsload sink|bulk|rtt|idle|handshakes [--option value]... (see the module doc)");
    std::process::exit(2);
}

/// `--name value` pairs.
struct Opts(HashMap<String, String>);

impl Opts {
    fn parse(args: &[String]) -> Opts {
        let mut m = HashMap::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            let Some(name) = k.strip_prefix("--") else { usage() };
            let Some(v) = it.next() else { usage() };
            m.insert(name.to_string(), v.clone());
        }
        Opts(m)
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    fn num(&self, k: &str, default: u64) -> u64 {
        match self.get(k) {
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("--{k}: not a number: {v}");
                std::process::exit(2)
            }),
            None => default,
        }
    }
    fn addr(&self, k: &str) -> SocketAddr {
        let Some(v) = self.get(k) else {
            eprintln!("--{k} ADDR is required");
            std::process::exit(2)
        };
        v.parse().unwrap_or_else(|_| {
            eprintln!("--{k}: not an address: {v}");
            std::process::exit(2)
        })
    }
    fn target(&self) -> Target {
        Target { addr: self.addr("addr"), ws_path: self.get("ws").map(str::to_string), tls: self.tls() }
    }
    fn tls(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.get("tls").map(tls_client)
    }
}

/// A TLS client trusting only the CA in `ca_file`, without resumption.
fn tls_client(ca_file: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::CertificateDer::from_pem_file(ca_file).unwrap_or_else(|e| {
        eprintln!("--tls {ca_file}: {e}");
        std::process::exit(2)
    });
    roots.add(ca).expect("CA certificate");
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.resumption = rustls::client::Resumption::disabled();
    Arc::new(cfg)
}

// ------------------------------------------------------------------ client

/// Where the client connects, and whether it speaks WebSocket (and TLS) there.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    ws_path: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// The client's byte stream: TCP, or TLS over TCP.
enum Sock {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Sock {
    fn connect(t: &Target, timeout: Duration) -> io::Result<Sock> {
        let tcp = TcpStream::connect_timeout(&t.addr, timeout)?;
        tcp.set_nodelay(true)?;
        let Some(cfg) = &t.tls else { return Ok(Sock::Tcp(tcp)) };
        tcp.set_read_timeout(Some(timeout))?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(cfg.clone(), name).map_err(io::Error::other)?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        s.sock.set_read_timeout(None)?;
        Ok(Sock::Tls(Box::new(s)))
    }
    fn tcp(&self) -> &TcpStream {
        match self {
            Sock::Tcp(t) => t,
            Sock::Tls(s) => &s.sock,
        }
    }
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.tcp().set_read_timeout(d)
    }
    fn set_nonblocking(&self, b: bool) -> io::Result<()> {
        self.tcp().set_nonblocking(b)
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(t) => t.read(buf),
            Sock::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(t) => t.write(buf),
            Sock::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sock::Tcp(t) => t.flush(),
            Sock::Tls(s) => s.flush(),
        }
    }
}

/// One client connection: plain TCP, or a WebSocket whose received frames
/// are parsed from `rbuf` (payload bytes are handed out as slices, not copied).
struct Conn {
    sock: Sock,
    ws: bool,
    rbuf: Vec<u8>,
    /// `rbuf[rpos..rend]` is unparsed input.
    rpos: usize,
    rend: usize,
    /// Payload bytes of the current server data frame still to come.
    payload_left: u64,
    /// Masked output frame, reused.
    wbuf: Vec<u8>,
    rng: u32,
}

const RBUF: usize = 256 << 10;

impl Conn {
    fn open(t: &Target, timeout: Duration) -> io::Result<Conn> {
        let sock = Sock::connect(t, timeout)?;
        let mut c = Conn {
            sock,
            ws: t.ws_path.is_some(),
            rbuf: Vec::new(),
            rpos: 0,
            rend: 0,
            payload_left: 0,
            wbuf: Vec::new(),
            rng: 0x9e37_79b9 ^ std::process::id(),
        };
        if let Some(path) = &t.ws_path {
            c.sock.set_read_timeout(Some(timeout))?;
            c.handshake(path, t.addr)?;
            c.sock.set_read_timeout(None)?;
        }
        Ok(c)
    }

    /// RFC 6455 §4.1 opening handshake; bytes after the response head are
    /// kept as the start of the frame stream.
    fn handshake(&mut self, path: &str, addr: SocketAddr) -> io::Result<()> {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: binary\r\nOrigin: http://{addr}\r\n\r\n"
        );
        self.sock.write_all(req.as_bytes())?;
        let mut head = Vec::with_capacity(512);
        let mut b = [0u8; 1024];
        loop {
            let n = self.sock.read(&mut b)?;
            if n == 0 {
                return Err(io::Error::new(ErrorKind::UnexpectedEof, "closed during handshake"));
            }
            head.extend_from_slice(&b[..n]);
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                if !head.starts_with(b"HTTP/1.1 101") {
                    let line = String::from_utf8_lossy(&head[..head.len().min(60)]).into_owned();
                    return Err(io::Error::other(format!("handshake refused: {line}")));
                }
                let rest = &head[end + 4..];
                self.ensure_rbuf();
                self.rbuf[..rest.len()].copy_from_slice(rest);
                self.rend = rest.len();
                return Ok(());
            }
            if head.len() > 8192 {
                return Err(io::Error::other("handshake response too long"));
            }
        }
    }

    fn ensure_rbuf(&mut self) {
        if self.rbuf.is_empty() {
            self.rbuf = vec![0; RBUF];
        }
    }

    /// Send `data` as one message (one masked binary frame, or raw bytes).
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        if !self.ws {
            return self.sock.write_all(data);
        }
        self.wbuf.clear();
        self.wbuf.push(0x82);
        let n = data.len();
        if n <= 125 {
            self.wbuf.push(0x80 | n as u8);
        } else if n <= 0xffff {
            self.wbuf.push(0x80 | 126);
            self.wbuf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.wbuf.push(0x80 | 127);
            self.wbuf.extend_from_slice(&(n as u64).to_be_bytes());
        }
        // xorshift32: a fresh key per frame, as a browser would.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        let key = self.rng.to_ne_bytes();
        self.wbuf.extend_from_slice(&key);
        let start = self.wbuf.len();
        self.wbuf.extend_from_slice(data);
        mask(&mut self.wbuf[start..], key);
        self.sock.write_all(&self.wbuf)
    }

    /// Next received payload bytes (at most `max`), as a range of `rbuf` for
    /// WebSocket or of the caller's scratch for TCP. `Ok(0)` is end of stream.
    /// Control frames from the server are skipped (a ping's pong is not
    /// needed within a benchmark's lifetime; a Close ends the stream).
    fn recv_with<F: FnMut(&[u8])>(&mut self, max: usize, mut f: F) -> io::Result<usize> {
        self.ensure_rbuf();
        if !self.ws {
            let n = self.sock.read(&mut self.rbuf[..max.min(RBUF)])?;
            f(&self.rbuf[..n]);
            return Ok(n);
        }
        loop {
            if self.payload_left > 0 && self.rpos < self.rend {
                let n = (self.rend - self.rpos).min(max).min(self.payload_left as usize);
                f(&self.rbuf[self.rpos..self.rpos + n]);
                self.rpos += n;
                self.payload_left -= n as u64;
                return Ok(n);
            }
            if self.payload_left == 0 {
                if let Some((hlen, len, op)) = parse_server_header(&self.rbuf[self.rpos..self.rend]) {
                    self.rpos += hlen;
                    match op {
                        0x0..=0x2 => self.payload_left = len,
                        0x8 => return Ok(0),
                        _ => {
                            // Ping/pong: skip its payload (≤125 bytes, §5.5).
                            let need = self.rpos + len as usize;
                            while self.rend < need {
                                self.fill()?;
                            }
                            self.rpos = need;
                        }
                    }
                    continue;
                }
            }
            if self.fill()? == 0 {
                return Ok(0);
            }
        }
    }

    /// Read more into `rbuf`, compacting first.
    fn fill(&mut self) -> io::Result<usize> {
        if self.rpos == self.rend {
            self.rpos = 0;
            self.rend = 0;
        } else if self.rend == RBUF || self.rpos > RBUF / 2 {
            self.rbuf.copy_within(self.rpos..self.rend, 0);
            self.rend -= self.rpos;
            self.rpos = 0;
        }
        let n = self.sock.read(&mut self.rbuf[self.rend..])?;
        self.rend += n;
        Ok(n)
    }

    /// Read exactly `want` payload bytes, checking them against `expect`
    /// when given.
    fn recv_exact(&mut self, want: usize, expect: Option<&[u8]>) -> io::Result<()> {
        let mut got = 0;
        while got < want {
            let mut ok = true;
            let n = self.recv_with(want - got, |b| {
                if let Some(e) = expect {
                    ok = b == &e[got..got + b.len()];
                }
            })?;
            if n == 0 {
                return Err(io::Error::new(ErrorKind::UnexpectedEof, format!("closed after {got} of {want} bytes")));
            }
            if !ok {
                return Err(io::Error::new(ErrorKind::InvalidData, "echo differs from what was sent"));
            }
            got += n;
        }
        Ok(())
    }
}

/// XOR with the masking key (RFC 6455 §5.3), eight bytes at a time so the
/// client's own masking cost stays small next to a relay's work.
fn mask(buf: &mut [u8], key: [u8; 4]) {
    let k = u64::from_ne_bytes([key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]);
    let mut words = buf.chunks_exact_mut(8);
    for w in &mut words {
        let v = u64::from_ne_bytes((&*w).try_into().unwrap()) ^ k;
        w.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

impl Conn {
    /// Read `want` payload bytes and check that byte k is `(k * 13) as u8`
    /// (the sink's stream pattern).
    fn recv_pattern(&mut self, want: usize) -> io::Result<()> {
        let mut got = 0usize;
        while got < want {
            let mut bad = None;
            let n = self.recv_with(want - got, |b| {
                bad = b.iter().enumerate().position(|(i, &x)| x != ((got + i) * 13) as u8);
            })?;
            if n == 0 {
                return Err(io::Error::new(ErrorKind::UnexpectedEof, format!("closed after {got} of {want} bytes")));
            }
            if let Some(i) = bad {
                return Err(io::Error::new(ErrorKind::InvalidData, format!("wrong byte at stream offset {}", got + i)));
            }
            got += n;
        }
        Ok(())
    }
}

/// An unmasked server frame header: (header length, payload length, opcode),
/// or None if incomplete.
fn parse_server_header(b: &[u8]) -> Option<(usize, u64, u8)> {
    if b.len() < 2 {
        return None;
    }
    let op = b[0] & 0x0f;
    let (hlen, len) = match b[1] & 0x7f {
        126 if b.len() >= 4 => (4, u16::from_be_bytes([b[2], b[3]]) as u64),
        127 if b.len() >= 10 => (10, u64::from_be_bytes(b[2..10].try_into().unwrap())),
        126 | 127 => return None,
        n => (2, n as u64),
    };
    Some((hlen, len, op))
}

// ------------------------------------------------------------------ bulk

/// Server→client throughput: each of C connections asks the sink for N/C
/// bytes; the clock runs from the moment all requests go out until the last
/// byte arrives.
fn bulk(o: &Opts) -> io::Result<()> {
    let t = o.target();
    let total = o.num("bytes", 64 << 20);
    let conns = o.num("conns", 1).max(1) as usize;
    let per = total / conns as u64;
    let pid = o.get("pid").map(|p| p.parse::<i32>().expect("--pid"));
    let verify = o.num("verify", 0) != 0;
    let barrier = Arc::new(Barrier::new(conns + 1));
    let mut handles = Vec::new();
    for _ in 0..conns {
        let (t, barrier) = (t.clone(), barrier.clone());
        handles.push(std::thread::spawn(move || -> io::Result<(Instant, Conn)> {
            let opened = Conn::open(&t, Duration::from_secs(10));
            barrier.wait(); // all connected
            let mut c = opened?;
            barrier.wait(); // go
            let mut req = [0u8; 9];
            req[0] = b'S';
            req[1..].copy_from_slice(&per.to_be_bytes());
            c.send(&req)?;
            if verify {
                c.recv_pattern(per as usize)?;
            } else {
                c.recv_exact(per as usize, None)?;
            }
            // The connection stays open until the relay's CPU is sampled
            // (a forking relay's child takes its CPU time with it on exit).
            Ok((Instant::now(), c))
        }));
    }
    barrier.wait();
    if let Some(p) = pid {
        proc_tree::wait_settled(p);
    }
    let cpu0 = pid.map(proc_tree::cpu_ticks);
    let start = Instant::now();
    barrier.wait();
    let mut end = start;
    let mut done = Vec::new();
    for h in handles {
        let (t, c) = h.join().expect("bulk thread")?;
        end = end.max(t);
        done.push(c);
    }
    let cpu1 = pid.map(proc_tree::cpu_ticks);
    drop(done);
    let secs = end.duration_since(start).as_secs_f64();
    let bytes = per * conns as u64;
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => format!("{:.3}", (b - a) as f64 / proc_tree::ticks_per_sec()),
        _ => "-".into(),
    };
    println!(
        "bulk conns={conns} bytes={bytes} secs={secs:.4} mib_s={:.1} cpu_s={cpu}",
        bytes as f64 / secs / (1 << 20) as f64
    );
    Ok(())
}

// ------------------------------------------------------------------ rtt

/// Echo round trips of one message size on one connection.
fn rtt(o: &Opts) -> io::Result<()> {
    // `--targets name=ADDR[/ws-path],...` measures several relays in one
    // loop, one message to each in turn, so all see the same machine load;
    // else the single `--addr [--ws]` target.
    let targets: Vec<(String, Target)> = match o.get("targets") {
        Some(list) => list.split(',').map(|spec| parse_named_target(spec, o)).collect(),
        None => vec![("-".into(), o.target())],
    };
    let size = o.num("size", 64) as usize;
    let count = o.num("count", 1000) as usize;
    let warmup = o.num("warmup", 100) as usize;
    let mut conns = Vec::new();
    for (_, t) in &targets {
        let mut c = Conn::open(t, Duration::from_secs(10))?;
        c.send(b"E")?;
        conns.push(c);
    }
    let msg: Vec<u8> = (0..size).map(|i| (i * 7 + 1) as u8).collect();
    let mut samples = vec![Vec::with_capacity(count); conns.len()];
    for i in 0..warmup + count {
        for (c, s) in conns.iter_mut().zip(&mut samples) {
            let t0 = Instant::now();
            c.send(&msg)?;
            c.recv_exact(size, Some(&msg))?;
            if i >= warmup {
                s.push(t0.elapsed().as_nanos() as u64);
            }
        }
    }
    for ((name, _), s) in targets.iter().zip(&mut samples) {
        s.sort_unstable();
        let pct = |p: f64| s[((s.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
        println!("rtt target={name} size={size} count={count} p50_us={:.1} p99_us={:.1}", pct(0.50), pct(0.99));
    }
    Ok(())
}

/// `name=127.0.0.1:PORT` (TCP) or `name=127.0.0.1:PORT/path` (WebSocket);
/// a `tls://` prefix connects with TLS (trusting `--tls CA.pem`).
fn parse_named_target(spec: &str, o: &Opts) -> (String, Target) {
    let bad = || -> ! {
        eprintln!("--targets: expected name=[tls://]ADDR[/path], got {spec}");
        std::process::exit(2)
    };
    let Some((name, rest)) = spec.split_once('=') else { bad() };
    let (rest, tls) = match rest.strip_prefix("tls://") {
        Some(r) => (r, Some(o.tls().unwrap_or_else(|| bad()))),
        None => (rest, None),
    };
    let (addr, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_string())),
        None => (rest, None),
    };
    let Ok(addr) = addr.parse() else { bad() };
    (name.to_string(), Target { addr, ws_path: path, tls })
}

// ------------------------------------------------------------------ idle

/// Open idle connections one after another (each confirmed end to end by
/// the sink's `i`), report the relay's memory per connection at `--mark`,
/// then hold them and count how many are still open.
fn idle(o: &Opts) -> io::Result<()> {
    let t = o.target();
    let want = o.num("conns", 1000) as usize;
    let mark = o.num("mark", 1000) as usize;
    let hold = Duration::from_secs(o.num("hold", 5));
    let deadline = Instant::now() + Duration::from_secs(o.num("deadline", 60));
    let max_mem = o.num("max-mem-mib", 4096) * 1024;
    let pid = o.get("pid").map(|p| p.parse::<i32>().expect("--pid"));
    let avail0 = mem_available_kib();
    let mem0 = pid.map(|p| {
        proc_tree::wait_settled(p);
        proc_tree::memory_kib(p)
    });
    let mut open: Vec<Conn> = Vec::with_capacity(want);
    let mut failed = 0usize;
    let mut failed_in_a_row = 0usize;
    let mut first_error = String::new();
    let mut stop = "done";
    let mut mem_line = String::from("mem_conns=- rss_kib_per_conn=- pss_kib_per_conn=-");
    while open.len() < want {
        if Instant::now() >= deadline {
            stop = "time-cap";
            break;
        }
        if open.len().is_multiple_of(100) && avail0.saturating_sub(mem_available_kib()) > max_mem {
            stop = "memory-cap";
            break;
        }
        match open_idle(&t) {
            Ok(c) => {
                open.push(c);
                failed_in_a_row = 0;
            }
            Err(e) => {
                failed += 1;
                failed_in_a_row += 1;
                if first_error.is_empty() {
                    first_error = e.to_string().replace(' ', "_");
                }
                if failed_in_a_row >= 3 {
                    stop = "errors";
                    break;
                }
            }
        }
        if open.len() == mark {
            mem_line = mem_per_conn(pid, mem0, mark);
        }
    }
    let opened = open.len();
    if opened < mark && opened > 0 {
        // The relay could not hold `mark`: measure what it did hold.
        mem_line = mem_per_conn(pid, mem0, opened);
    }
    std::thread::sleep(hold);
    let still = open.iter_mut().map(still_open).filter(|&o| o).count();
    println!(
        "idle attempted={} opened={opened} open_after_hold={still} failed={failed} stop={stop} mark={mark} {mem_line} first_error={}",
        opened + failed,
        if first_error.is_empty() { "-" } else { &first_error }
    );
    Ok(())
}

/// Memory growth of the relay's process tree per connection, as fields.
fn mem_per_conn(pid: Option<i32>, before: Option<(u64, u64)>, conns: usize) -> String {
    let (Some(p), Some((r0, s0))) = (pid, before) else {
        return "mem_conns=- rss_kib_per_conn=- pss_kib_per_conn=-".into();
    };
    std::thread::sleep(Duration::from_millis(500));
    let (r1, s1) = proc_tree::memory_kib(p);
    format!(
        "mem_conns={conns} rss_kib_per_conn={:.2} pss_kib_per_conn={:.2}",
        r1.saturating_sub(r0) as f64 / conns as f64,
        s1.saturating_sub(s0) as f64 / conns as f64
    )
}

fn open_idle(t: &Target) -> io::Result<Conn> {
    let mut c = Conn::open(t, Duration::from_secs(2))?;
    c.sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    c.send(b"I")?;
    c.recv_exact(1, Some(b"i"))?;
    c.sock.set_read_timeout(None)?;
    // Let the relay release its per-connection read buffers (kept only
    // while bytes are pending), as a browser idling on a still screen would.
    c.rbuf = Vec::new();
    c.wbuf = Vec::new();
    Ok(c)
}

/// True unless the peer closed or reset the connection (a ping counts as open).
fn still_open(c: &mut Conn) -> bool {
    if c.sock.set_nonblocking(true).is_err() {
        return false;
    }
    let mut b = [0u8; 256];
    match c.sock.read(&mut b) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == ErrorKind::WouldBlock,
    }
}

fn mem_available_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

// ------------------------------------------------------------------ handshakes

/// Full TLS handshakes per second: `--conns` threads each connect, finish
/// the handshake (no resumption) and close, `--count` times in all; the
/// relay's CPU (`--pid`) per handshake beside it.
fn handshakes(o: &Opts) -> io::Result<()> {
    let t = o.target();
    if t.tls.is_none() {
        eprintln!("handshakes needs --tls CA.pem");
        std::process::exit(2);
    }
    let count = o.num("count", 1000) as usize;
    let threads = o.num("conns", 4).max(1) as usize;
    let pid = o.get("pid").map(|p| p.parse::<i32>().expect("--pid"));
    if let Some(p) = pid {
        proc_tree::wait_settled(p);
    }
    let cpu0 = pid.map(proc_tree::cpu_ticks);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let t = t.clone();
            let n = count / threads + usize::from(i < count % threads);
            std::thread::spawn(move || -> io::Result<()> {
                for _ in 0..n {
                    let s = Sock::connect(&t, Duration::from_secs(10))?;
                    drop(s);
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().expect("handshake thread")?;
    }
    let secs = start.elapsed().as_secs_f64();
    if let Some(p) = pid {
        proc_tree::wait_settled(p);
    }
    let cpu = match (cpu0, pid.map(proc_tree::cpu_ticks)) {
        (Some(a), Some(b)) => format!("{:.3}", (b - a) as f64 / proc_tree::ticks_per_sec() * 1000.0 / count as f64),
        _ => "-".into(),
    };
    println!(
        "handshakes count={count} threads={threads} secs={secs:.3} per_s={:.1} cpu_ms_each={cpu}",
        count as f64 / secs
    );
    Ok(())
}

// ------------------------------------------------------------------ /proc

/// CPU time and memory of a process and all its descendants.
mod proc_tree {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    pub fn ticks_per_sec() -> f64 {
        // SAFETY: sysconf has no preconditions.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            t as f64
        } else {
            100.0
        }
    }

    /// Fields of /proc/PID/stat after the command name: index 0 is field 3 (state).
    fn stat_fields(pid: i32) -> Option<Vec<u64>> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &s[s.rfind(')')? + 2..];
        Some(rest.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect())
    }

    /// `pid` and its descendants.
    fn tree(root: i32) -> Vec<i32> {
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
                if let Some(f) = stat_fields(pid) {
                    // f[0] is field 4, ppid.
                    children.entry(f[0] as i32).or_default().push(pid);
                }
            }
        }
        let mut out = vec![root];
        let mut i = 0;
        while i < out.len() {
            if let Some(c) = children.get(&out[i]) {
                out.extend(c);
            }
            i += 1;
        }
        out
    }

    /// utime+stime of the live tree, plus cutime+cstime of the root.
    pub fn cpu_ticks(root: i32) -> u64 {
        let mut sum = 0;
        for pid in tree(root) {
            if let Some(f) = stat_fields(pid) {
                // utime, stime, cutime, cstime are fields 14..17 → f[11..15].
                sum += f[11] + f[12];
                if pid == root {
                    sum += f[13] + f[14];
                }
            }
        }
        sum
    }

    /// Wait (≤ 3 s) until the tree stops shrinking: children of earlier
    /// connections have exited and been reaped into the root's cutime.
    pub fn wait_settled(root: i32) {
        let end = Instant::now() + Duration::from_secs(3);
        let mut n = tree(root).len();
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
            let m = tree(root).len();
            if m == n && m == 1 {
                return;
            }
            if m == n {
                std::thread::sleep(Duration::from_millis(200));
                if tree(root).len() == m {
                    return;
                }
            }
            n = m;
        }
    }

    /// (Σ VmRSS, Σ Pss) in KiB over the tree.
    pub fn memory_kib(root: i32) -> (u64, u64) {
        let (mut rss, mut pss) = (0, 0);
        for pid in tree(root) {
            rss += field_kib(&format!("/proc/{pid}/status"), "VmRSS:");
            pss += field_kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:");
        }
        (rss, pss)
    }

    fn field_kib(path: &str, key: &str) -> u64 {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

// ------------------------------------------------------------------ sink

/// The target: one mio loop, so ten thousand idle connections cost it no
/// threads, and bulk streams are written from one shared buffer.
mod sink {
    use std::io::{self, ErrorKind, Read, Write};
    use std::net::SocketAddr;

    use mio::net::{TcpListener, TcpStream};
    use mio::{Events, Interest, Poll, Token};
    use slab::Slab;

    const LISTENER: Token = Token(usize::MAX);
    const CHUNK: usize = 256 << 10;

    enum Mode {
        /// Waiting for the first byte (or the 9 bytes of `S`).
        Cmd(Vec<u8>),
        /// Bytes left to send, bytes sent.
        Stream(u64, u64),
        Echo {
            pending: Vec<u8>,
            pos: usize,
        },
        Hold,
    }

    struct Peer {
        sock: TcpStream,
        mode: Mode,
        readable: bool,
        writable: bool,
    }

    pub fn run(listen: SocketAddr) -> io::Result<()> {
        let mut poll = Poll::new()?;
        let mut listener = TcpListener::bind(listen)?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        println!("sink listening on {}", listener.local_addr()?);
        let _ = io::stdout().flush();
        let data: Vec<u8> = (0..CHUNK).map(|i| (i * 13) as u8).collect();
        let mut scratch = vec![0u8; CHUNK];
        let mut peers: Slab<Peer> = Slab::new();
        let mut events = Events::with_capacity(1024);
        loop {
            if let Err(e) = poll.poll(&mut events, None) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in events.iter() {
                if ev.token() == LISTENER {
                    loop {
                        match listener.accept() {
                            Ok((mut sock, _)) => {
                                let _ = sock.set_nodelay(true);
                                let e = peers.vacant_entry();
                                let tok = Token(e.key());
                                if poll
                                    .registry()
                                    .register(&mut sock, tok, Interest::READABLE | Interest::WRITABLE)
                                    .is_ok()
                                {
                                    e.insert(Peer {
                                        sock,
                                        mode: Mode::Cmd(Vec::new()),
                                        readable: false,
                                        writable: false,
                                    });
                                }
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(e) => {
                                eprintln!("sink: accept: {e}");
                                break;
                            }
                        }
                    }
                    continue;
                }
                let key = ev.token().0;
                let Some(p) = peers.get_mut(key) else { continue };
                p.readable |= ev.is_readable() || ev.is_read_closed() || ev.is_error();
                p.writable |= ev.is_writable() || ev.is_write_closed() || ev.is_error();
                if !drive(p, &data, &mut scratch) {
                    let mut p = peers.remove(key);
                    let _ = poll.registry().deregister(&mut p.sock);
                }
            }
        }
    }

    /// Do what readiness allows; false when the connection is finished.
    fn drive(p: &mut Peer, data: &[u8], scratch: &mut [u8]) -> bool {
        loop {
            match &mut p.mode {
                Mode::Cmd(got) => {
                    if !p.readable {
                        return true;
                    }
                    let need = if got.first() == Some(&b'S') { 9 } else { 1 };
                    let mut b = [0u8; 9];
                    match p.sock.read(&mut b[..need - got.len()]) {
                        Ok(0) => return false,
                        Ok(n) => got.extend_from_slice(&b[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            p.readable = false;
                            return true;
                        }
                        Err(_) => return false,
                    }
                    match got[0] {
                        b'S' if got.len() == 9 => {
                            p.mode = Mode::Stream(u64::from_be_bytes(got[1..9].try_into().unwrap()), 0)
                        }
                        b'S' => {}
                        b'E' => p.mode = Mode::Echo { pending: Vec::new(), pos: 0 },
                        b'I' => {
                            if p.sock.write(b"i").ok() != Some(1) {
                                return false;
                            }
                            p.mode = Mode::Hold;
                        }
                        _ => return false,
                    }
                }
                Mode::Stream(left, sent) => {
                    while *left > 0 && p.writable {
                        // Stream byte k is (k * 13) as u8 (`bulk --verify`
                        // checks it): `data` has that pattern, with a period
                        // that divides its length.
                        let pos = (*sent % data.len() as u64) as usize;
                        let n = (*left).min((data.len() - pos) as u64) as usize;
                        match p.sock.write(&data[pos..pos + n]) {
                            Ok(w) => {
                                *left -= w as u64;
                                *sent += w as u64;
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => p.writable = false,
                            Err(_) => return false,
                        }
                    }
                    p.mode = if *left == 0 { Mode::Hold } else { return true };
                }
                Mode::Echo { pending, pos } => {
                    while *pos < pending.len() && p.writable {
                        match p.sock.write(&pending[*pos..]) {
                            Ok(w) => *pos += w,
                            Err(e) if e.kind() == ErrorKind::WouldBlock => p.writable = false,
                            Err(_) => return false,
                        }
                    }
                    if *pos < pending.len() || !p.readable {
                        return true;
                    }
                    match p.sock.read(scratch) {
                        Ok(0) => return false,
                        Ok(n) => {
                            pending.clear();
                            pending.extend_from_slice(&scratch[..n]);
                            *pos = 0;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            p.readable = false;
                            return true;
                        }
                        Err(_) => return false,
                    }
                }
                Mode::Hold => {
                    // Discard anything else; notice the close.
                    if !p.readable {
                        return true;
                    }
                    match p.sock.read(scratch) {
                        Ok(0) => return false,
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            p.readable = false;
                            return true;
                        }
                        Err(_) => return false,
                    }
                }
            }
        }
    }
}
