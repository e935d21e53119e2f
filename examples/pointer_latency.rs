//! Pointer → pixel latency through wsvnc's `RfbClient` against a real
//! TigerVNC `Xvnc`: one outstanding FramebufferUpdateRequest per update (what
//! the client did before ContinuousUpdates) versus continuous updates with
//! fences, on loopback and on emulated links (an in-process delay proxy
//! between the client and Xvnc).
//!
//! The client does not advertise a cursor pseudo-encoding, so Xvnc draws the
//! pointer into the framebuffer: "pixel" is the pointer's own image. The
//! pointer sweeps along a row in steps of `STEP` pixels every 16 ms (a
//! browser's pointermove rate); a move's latency is the time from sending it
//! to the first decoded update showing the pointer at that position or
//! further along. Medians and 95th percentiles over all moves of all runs.
//!
//! Then the same through the whole gateway: a wsvnc `Server` in-process
//! (`--lossless`, so the background stays exact) between Xvnc and a browser-
//! protocol v2 viewer (tests/common/v2.rs, acking every frame as a browser
//! does); the viewer sends the Pointer messages and looks for the pointer
//! in its canvas. A proxy between the gateway and Xvnc delays that link and
//! removes the cursor pseudo-encodings from the gateway's SetEncodings (so
//! Xvnc draws the pointer), and for "one request per update" also
//! ContinuousUpdates and Fence (what the gateway did before).
//!
//! ```sh
//! cargo run --release --example pointer_latency -- [--runs N] [--moves N] [--rtt MS,MS,..]
//! ```
//! Needs `Xvnc` and `xsetroot` (Debian: tigervnc-standalone-server,
//! x11-xserver-utils). Uses a free X display from :300 and a free port.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../tests/common/v2.rs"]
mod v2;

use wsvnc::fb::Framebuffer;
use wsvnc::rfb::encoding::*;
use wsvnc::rfb::{RfbClient, RfbConfig, RfbEvent};

const W: u16 = 800;
const H: u16 = 600;
const ROW: u16 = 300;
const X0: u16 = 60;
const STEP: u16 = 5;
const MOVE_EVERY: Duration = Duration::from_millis(16);
const BG: [u8; 3] = [0x20, 0x40, 0x60];

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Requests,
    Continuous,
}

fn main() {
    let _ = env_logger::try_init();
    let mut runs = 5;
    let mut moves = 100;
    let mut rtts = vec![0u64, 20, 80];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "--runs" => runs = v.parse().expect("--runs N"),
            "--moves" => moves = v.parse().expect("--moves N"),
            "--rtt" => rtts = v.split(',').map(|s| s.parse().expect("--rtt MS,MS")).collect(),
            _ => panic!("usage: pointer_latency [--runs N] [--moves N] [--rtt MS,MS,..]"),
        }
    }
    let xvnc = Xvnc::start();
    println!("pointer -> pixel latency, TigerVNC Xvnc {W}x{H}, RfbClient, {runs} runs x {moves} moves every 16 ms");
    print_head("updates/s");
    for &rtt in &rtts {
        let proxy = (rtt > 0).then(|| DelayProxy::start(xvnc.addr, Duration::from_millis(rtt / 2)));
        let addr = proxy.as_ref().map_or(xvnc.addr, |p| p.addr);
        let mut p50 = Vec::new();
        for mode in [Mode::Requests, Mode::Continuous] {
            let mut lat = Vec::new();
            let (mut updates, mut secs, mut missed) = (0usize, 0f64, 0usize);
            for _ in 0..runs {
                let r = measure(addr, mode, moves);
                lat.extend(r.latencies);
                updates += r.updates;
                secs += r.secs;
                missed += r.missed;
            }
            p50.push(print_row(rtt, mode, lat, updates as f64 / secs, missed));
        }
        println!("{:>8} | {:>22} | {:>7.2}x |", "", "requests / continuous", p50[0] / p50[1]);
    }
    println!();
    println!(
        "through the gateway (wsvnc in-process, a v2 viewer acking every frame; the RTT is between gateway and Xvnc)"
    );
    print_head("frames/s");
    for &rtt in &rtts {
        let mut p50 = Vec::new();
        for mode in [Mode::Requests, Mode::Continuous] {
            let proxy = FilterProxy::start(xvnc.addr, Duration::from_millis(rtt / 2), mode);
            let gateway = Gateway::start(proxy.addr);
            let mut lat = Vec::new();
            let (mut frames, mut secs, mut missed) = (0usize, 0f64, 0usize);
            for _ in 0..runs {
                let r = measure_gateway(&gateway.url, moves);
                lat.extend(r.latencies);
                frames += r.updates;
                secs += r.secs;
                missed += r.missed;
            }
            p50.push(print_row(rtt, mode, lat, frames as f64 / secs, missed));
        }
        println!("{:>8} | {:>22} | {:>7.2}x |", "", "requests / continuous", p50[0] / p50[1]);
    }
}

fn print_head(rate: &str) {
    println!("{:>8} | {:>22} | {:>7} | {:>7} | {rate:>9} | {:>7}", "link RTT", "mode", "p50 ms", "p95 ms", "missed");
}

/// One table row from the latencies (ms) of all runs; returns the median.
fn print_row(rtt: u64, mode: Mode, mut lat: Vec<f64>, rate: f64, missed: usize) -> f64 {
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    let name = match mode {
        Mode::Requests => "one request per update",
        Mode::Continuous => "continuous updates",
    };
    println!(
        "{:>8} | {name:>22} | {:>7.1} | {:>7.1} | {rate:>9.1} | {missed:>7}",
        format!("{rtt} ms"),
        pct(0.5),
        pct(0.95)
    );
    pct(0.5)
}

struct Run {
    latencies: Vec<f64>,
    updates: usize,
    secs: f64,
    missed: usize,
}

/// The RfbClient over a socket with a 1 ms read timeout.
struct Client {
    sock: TcpStream,
    rfb: RfbClient,
    fb: Framebuffer,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    updates: usize,
}

impl Client {
    fn connect(addr: SocketAddr, mode: Mode) -> Client {
        let sock = TcpStream::connect(addr).expect("connect to Xvnc");
        sock.set_nodelay(true).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let mut encodings = vec![TIGHT, COPY_RECT, RAW];
        if mode == Mode::Continuous {
            encodings.extend([CONTINUOUS_UPDATES, FENCE]);
        }
        let rfb = RfbClient::new(RfbConfig { shared: true, encodings, password: None, ..Default::default() });
        let mut c = Client { sock, rfb, fb: Framebuffer::new(0, 0), inbuf: Vec::new(), out: Vec::new(), updates: 0 };
        let until = Instant::now() + Duration::from_secs(10);
        while !c.rfb.is_normal() {
            assert!(Instant::now() < until, "no ServerInit");
            c.pump();
        }
        c.rfb.request_update(false, &c.fb, &mut c.out);
        c
    }

    /// Read what is there (≤ 1 ms wait), decode, keep the flow going: one
    /// incremental request outstanding, or continuous updates once offered.
    fn pump(&mut self) {
        let mut buf = [0u8; 1 << 16];
        match self.sock.read(&mut buf) {
            Ok(0) => panic!("Xvnc closed the connection"),
            Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
        let used = self.rfb.handle_input(&self.inbuf, &mut self.fb, &mut self.out).expect("RFB error");
        self.inbuf.drain(..used);
        while let Some(ev) = self.rfb.poll_event() {
            if ev == RfbEvent::UpdateDone {
                self.updates += 1;
            }
        }
        if self.rfb.is_normal() && !self.rfb.update_pending() {
            self.rfb.request_update(true, &self.fb, &mut self.out);
        }
        self.flush();
    }

    fn flush(&mut self) {
        if !self.out.is_empty() {
            self.sock.write_all(&self.out).expect("write");
            self.out.clear();
        }
    }
}

/// What the sweep needs of a client: move the pointer, take in what
/// arrived (≤ ~1 ms wait), find the pointer image, count updates shown.
trait Probe {
    fn point(&mut self, x: u16);
    fn pump(&mut self);
    /// RGB of pixel (x, y), `None` before the desktop is there.
    fn rgb(&self, x: u16, y: u16) -> Option<[u8; 3]>;
    fn updates(&self) -> usize;

    /// Leftmost column of the pointer image near the row, if drawn.
    fn pointer_left(&self) -> Option<u16> {
        self.rgb(0, 0)?;
        let mut left = None::<u16>;
        for y in ROW.saturating_sub(16)..(ROW + 16).min(H) {
            for x in 0..left.unwrap_or(W) {
                if self.rgb(x, y) != Some(BG) {
                    left = Some(x);
                    break;
                }
            }
        }
        left
    }
}

impl Probe for Client {
    fn point(&mut self, x: u16) {
        self.rfb.pointer_event(0, x, ROW, &mut self.out);
        self.flush();
    }
    fn pump(&mut self) {
        Client::pump(self)
    }
    fn rgb(&self, x: u16, y: u16) -> Option<[u8; 3]> {
        let p = (self.fb.width() == W).then(|| self.fb.pixel(x, y))?;
        Some([p[0], p[1], p[2]])
    }
    fn updates(&self) -> usize {
        self.updates
    }
}

fn measure(addr: SocketAddr, mode: Mode, moves: usize) -> Run {
    let mut c = Client::connect(addr, mode);
    let offset = calibrate(&mut c);
    if mode == Mode::Continuous {
        let until = Instant::now() + Duration::from_secs(5);
        while !c.rfb.continuous_updates() {
            assert!(Instant::now() < until, "Xvnc did not offer continuous updates");
            c.pump();
        }
    }
    sweep(&mut c, offset, moves)
}

/// Where the image's left edge is relative to the hotspot: point at X0 and
/// wait for two identical readings 50 ms apart.
fn calibrate(c: &mut impl Probe) -> i32 {
    c.point(X0);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        c.pump();
        if let Some(l) = c.pointer_left().filter(|&l| l.abs_diff(X0) < 40) {
            std::thread::sleep(Duration::from_millis(50));
            c.pump();
            if c.pointer_left() == Some(l) {
                return X0 as i32 - l as i32;
            }
        }
        assert!(Instant::now() < until, "pointer never drawn at x={X0}");
    }
}

/// Move the pointer every 16 ms; a move's latency runs until the pointer is
/// shown at its position or further along.
fn sweep(c: &mut impl Probe, offset: i32, moves: usize) -> Run {
    let start_updates = c.updates();
    let t0 = Instant::now();
    let mut sent: Vec<Instant> = Vec::with_capacity(moves);
    let mut seen = vec![None::<f64>; moves];
    let mut shown = 0usize; // moves 0..shown have been seen
    let deadline = t0 + MOVE_EVERY * moves as u32 + Duration::from_secs(3);
    while shown < moves && Instant::now() < deadline {
        let i = sent.len();
        if i < moves && Instant::now() >= t0 + MOVE_EVERY * i as u32 {
            sent.push(Instant::now());
            c.point(X0 + STEP * (i as u16 + 1));
        }
        c.pump();
        if let Some(l) = c.pointer_left() {
            let x = l as i32 + offset;
            let j = ((x - X0 as i32) as f64 / STEP as f64).round() as i64 - 1;
            let j = j.clamp(-1, sent.len() as i64 - 1);
            let now = Instant::now();
            while (shown as i64) <= j {
                seen[shown] = Some((now - sent[shown]).as_secs_f64() * 1e3);
                shown += 1;
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    Run {
        missed: seen.iter().filter(|s| s.is_none()).count(),
        latencies: seen.into_iter().flatten().collect(),
        updates: c.updates() - start_updates,
        secs,
    }
}

// ------------------------------------------------------- through the gateway

/// A wsvnc server on its own thread, gateway target `vnc`.
struct Gateway {
    url: String,
    stop: wsvnc::StopHandle,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Gateway {
    fn start(vnc: SocketAddr) -> Gateway {
        let cfg = wsvnc::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            target: Some(wsvnc::Target::new(wsvnc::TargetAddr::Tcp(vnc))),
            lossless: true,
            heartbeat: None,
            ..Default::default()
        };
        let mut server = wsvnc::Server::bind(cfg).expect("bind the gateway");
        let url = format!("ws://{}/ws", server.local_addr());
        let stop = server.stop_handle();
        let thread = Some(std::thread::spawn(move || server.run()));
        Gateway { url, stop, thread }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A v2 viewer of the gateway; frames are acked as they end.
struct Viewer {
    v: v2::V2,
    frames: usize,
}

impl Probe for Viewer {
    fn point(&mut self, x: u16) {
        self.v.pointer(x, ROW, 0).expect("send a pointer move to the gateway");
    }
    fn pump(&mut self) {
        match self.v.read() {
            Ok(msgs) => {
                self.frames +=
                    msgs.iter().filter(|m| matches!(m, v2::Msg::EndFrame(_) | v2::Msg::EndPart(_, true))).count()
            }
            Err(v2::End::Timeout) => {}
            Err(e) => panic!("the gateway ended the viewer: {e:?} ({:?})", self.v.error),
        }
    }
    fn rgb(&self, x: u16, y: u16) -> Option<[u8; 3]> {
        let p = (self.v.width == W).then(|| self.v.pixel(x, y))?;
        Some([p[0], p[1], p[2]])
    }
    fn updates(&self) -> usize {
        self.frames
    }
}

fn measure_gateway(url: &str, moves: usize) -> Run {
    let v = v2::V2::connect(url).expect("a viewer connects to the gateway");
    v.set_read_timeout(Duration::from_millis(1));
    let mut c = Viewer { v, frames: 0 };
    let until = Instant::now() + Duration::from_secs(10);
    while c.v.hello.is_none() {
        assert!(Instant::now() < until, "no ServerHello from the gateway");
        c.pump();
    }
    let offset = calibrate(&mut c);
    let run = sweep(&mut c, offset, moves);
    c.v.close();
    run
}

/// `DelayProxy` that also rewrites the gateway's SetEncodings: no cursor
/// pseudo-encodings (Xvnc then draws the pointer into the framebuffer),
/// and in `Mode::Requests` no ContinuousUpdates or Fence.
struct FilterProxy {
    addr: SocketAddr,
}

impl FilterProxy {
    fn start(target: SocketAddr, one_way: Duration, mode: Mode) -> FilterProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut unwanted = vec![CURSOR, X_CURSOR, CURSOR_WITH_ALPHA, VMWARE_CURSOR];
        if mode == Mode::Requests {
            unwanted.extend([CONTINUOUS_UPDATES, FENCE]);
        }
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(target) else { return };
                for s in [&client, &server] {
                    s.set_nodelay(true).unwrap();
                }
                pipe(server.try_clone().unwrap(), client.try_clone().unwrap(), one_way);
                let unwanted = unwanted.clone();
                std::thread::spawn(move || {
                    if let Ok(()) = filter_set_encodings(&client, &server, &unwanted) {
                        pipe(client, server, one_way);
                    }
                });
            }
        });
        FilterProxy { addr }
    }
}

/// Forward the gateway's first bytes (SecurityTypes None, RFB 3.8) one
/// handshake step at a time — version (12), security type (1), ClientInit
/// (1) — then SetPixelFormat (20) and SetEncodings without `unwanted`.
fn filter_set_encodings(mut client: &TcpStream, mut server: &TcpStream, unwanted: &[i32]) -> std::io::Result<()> {
    for n in [12, 1, 1] {
        let mut b = vec![0u8; n];
        client.read_exact(&mut b)?;
        server.write_all(&b)?;
    }
    let mut head = [0u8; 24];
    client.read_exact(&mut head)?;
    assert!(head[0] == 0 && head[20] == 2, "not SetPixelFormat + SetEncodings: {head:?}");
    let mut list = vec![0u8; 4 * u16::from_be_bytes([head[22], head[23]]) as usize];
    client.read_exact(&mut list)?;
    let kept: Vec<u8> = list
        .chunks_exact(4)
        .filter(|e| !unwanted.contains(&i32::from_be_bytes([e[0], e[1], e[2], e[3]])))
        .flatten()
        .copied()
        .collect();
    head[22..24].copy_from_slice(&((kept.len() / 4) as u16).to_be_bytes());
    server.write_all(&head)?;
    server.write_all(&kept)
}

// ------------------------------------------------------------------- Xvnc

struct Xvnc {
    child: Child,
    addr: SocketAddr,
}

impl Xvnc {
    fn start() -> Xvnc {
        let display = (300..400)
            .find(|n| {
                !std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists()
                    && !std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            })
            .expect("no free X display in :300-:399");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("Xvnc")
            .arg(format!(":{display}"))
            .args(["-rfbport", &port.to_string(), "-geometry", &format!("{W}x{H}"), "-depth", "24"])
            .args(["-localhost", "-interface", "127.0.0.1", "-nolisten", "tcp", "-SecurityTypes", "None"])
            .arg("-AlwaysShared")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start Xvnc: install tigervnc-standalone-server");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let until = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() || !std::path::Path::new(&format!("/tmp/.X11-unix/X{display}")).exists()
        {
            assert!(Instant::now() < until, "Xvnc :{display} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let bg = format!("#{:02x}{:02x}{:02x}", BG[0], BG[1], BG[2]);
        let ok = Command::new("xsetroot")
            .env("DISPLAY", format!(":{display}"))
            .args(["-solid", &bg, "-cursor_name", "left_ptr"])
            .status()
            .expect("cannot run xsetroot: install x11-xserver-utils");
        assert!(ok.success(), "xsetroot failed");
        Xvnc { child, addr }
    }
}

impl Drop for Xvnc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------ delay proxy

/// Forwards one TCP connection at a time to `target`, holding every chunk
/// for `one_way` in each direction (a fixed-latency link, unlimited rate).
struct DelayProxy {
    addr: SocketAddr,
}

impl DelayProxy {
    fn start(target: SocketAddr, one_way: Duration) -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(target) else { return };
                for s in [&client, &server] {
                    s.set_nodelay(true).unwrap();
                }
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap(), one_way);
                pipe(server, client, one_way);
            }
        });
        DelayProxy { addr }
    }
}

/// Copy `from` → `to`, each chunk delivered `delay` after it was read.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for (due, bytes) in rx {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}
