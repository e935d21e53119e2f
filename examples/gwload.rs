//! gwload: end-to-end load for gateway mode. N headless browser-protocol
//! v2 viewers (docs/protocol.md) on one wsvnc gateway, each on its own
//! thread, each parsing every message into an RGBA canvas and acking every
//! frame as a browser does; optionally slow viewers reading at a fixed rate.
//!
//! The viewers speak WebSocket themselves (a minimal RFC 6455 client with
//! permessage-deflate, RFC 7692, inflated with flate2 like a browser does
//! natively), so the gateway pays the compression cost it pays for real
//! browsers. `--no-deflate` turns that off.
//!
//! What is measured, honestly:
//! * frames/s per viewer: EndFrames received per second in the window
//!   (median and minimum over the normal viewers; slow viewers apart).
//! * latency: *input-to-delivery*. Viewer 0 moves the pointer every 100 ms
//!   to a fresh spot; the demo desktop draws its crosshair there; the
//!   latency is from sending the Pointer message to the end of the first
//!   frame whose canvas shows the crosshair. It includes browser→gateway,
//!   gateway→VNC server, the demo's render (next update request), decoding,
//!   pacing (acks) and delivery — an upper bound of the gateway's own
//!   update-to-delivery time, and what a user feels. Needs the demo desktop.
//! * with `--vnc-pid`: the VNC server's CPU (when the demo runs as its own
//!   process, so that the gateway's figures are the gateway's alone).
//! * gwload's own CPU, since it shares the machine with the gateway.
//! * with `--pid`: gateway CPU (utime+stime from /proc/PID/stat) over the
//!   window, per second and per delivered viewer-frame; RSS and peak RSS.
//!
//! Usage: gwload [--addr 127.0.0.1:6080] [--path /ws] [--viewers N] [--slow K]
//!        [--slow-rate BYTES_PER_S] [--seconds S] [--warmup S] [--no-deflate]
//!        [--pid GATEWAY_PID] [--vnc-pid VNC_SERVER_PID]
//! Prints a human summary and one `RESULT key=value ...` line.

#[path = "../tests/common/v2.rs"]
mod v2;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flate2::{Decompress, FlushDecompress, Status};
use v2::{enc, Canvas, Msg};

// ------------------------------------------------------------ WebSocket client

/// A blocking RFC 6455 client, just enough for the gateway: small masked
/// binary messages out, whole (possibly deflated) binary messages in.
struct WsClient {
    sock: TcpStream,
    buf: Vec<u8>,
    start: usize,
    inflate: Option<Decompress>,
    reset_each_message: bool,
    msg: Vec<u8>,
    compressed: bool,
    /// Read at most this many bytes per second (slow viewer).
    rate: Option<f64>,
    opened: Instant,
    /// Bytes read off the socket.
    wire_bytes: u64,
}

impl WsClient {
    fn connect(addr: &str, path: &str, deflate: bool, rate: Option<f64>) -> io::Result<WsClient> {
        let mut sock = TcpStream::connect(addr)?;
        sock.set_nodelay(true)?;
        let ext = if deflate { "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" } else { "" };
        write!(
            sock,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: wsvnc.v3\r\n{ext}\r\n"
        )?;
        let mut c = WsClient {
            sock,
            buf: Vec::with_capacity(1 << 20),
            start: 0,
            inflate: None,
            reset_each_message: false,
            msg: Vec::new(),
            compressed: false,
            rate,
            opened: Instant::now(),
            wire_bytes: 0,
        };
        let head_end = loop {
            if let Some(i) = c.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if c.fill()? == 0 {
                return Err(io::Error::other("closed during the handshake"));
            }
        };
        let head = String::from_utf8_lossy(&c.buf[..head_end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 101") {
            return Err(io::Error::other(format!("no upgrade: {}", head.lines().next().unwrap_or(""))));
        }
        if !head.contains("sec-websocket-protocol: wsvnc.v3") {
            return Err(io::Error::other("subprotocol wsvnc.v3 not echoed"));
        }
        if let Some(line) = head.lines().find(|l| l.starts_with("sec-websocket-extensions:")) {
            if line.contains("permessage-deflate") {
                c.inflate = Some(Decompress::new(false));
                c.reset_each_message = line.contains("server_no_context_takeover");
            }
        }
        c.start = head_end;
        Ok(c)
    }

    /// Read more bytes into `buf` (rate-limited for a slow viewer).
    fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > (1 << 20) {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let mut chunk = 64 << 10;
        if let Some(rate) = self.rate {
            chunk = 16 << 10;
            let allowed = rate * self.opened.elapsed().as_secs_f64();
            let over = self.wire_bytes as f64 + chunk as f64 - allowed;
            if over > 0.0 {
                std::thread::sleep(Duration::from_secs_f64(over / rate));
            }
        }
        let len = self.buf.len();
        self.buf.resize(len + chunk, 0);
        let r = self.sock.read(&mut self.buf[len..]);
        let n = *r.as_ref().unwrap_or(&0);
        self.buf.truncate(len + n);
        self.wire_bytes += n as u64;
        r
    }

    /// Send one small binary message (masked, with a zero key: valid and
    /// leaves the payload as is).
    fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        self.send_frame(0x2, payload)
    }

    fn send_frame(&mut self, op: u8, payload: &[u8]) -> io::Result<()> {
        assert!(payload.len() < 126, "only small client messages");
        let mut f = vec![0x80 | op, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        f.extend_from_slice(payload);
        self.sock.write_all(&f)
    }

    /// The next whole binary message; `Ok(None)` when the server closed.
    fn read_message(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            let b = &self.buf[self.start..];
            let hdr = if b.len() < 2 {
                None
            } else {
                let (len7, mut need) = ((b[1] & 0x7f) as usize, 2);
                need += match len7 {
                    126 => 2,
                    127 => 8,
                    _ => 0,
                };
                if b.len() < need {
                    None
                } else {
                    let len = match len7 {
                        126 => u16::from_be_bytes([b[2], b[3]]) as usize,
                        127 => u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                        n => n,
                    };
                    Some((b[0], need, len))
                }
            };
            let Some((b0, hlen, len)) = hdr.filter(|&(_, h, l)| b.len() >= h + l) else {
                if self.fill()? == 0 {
                    return Ok(None);
                }
                continue;
            };
            let payload = self.start + hlen..self.start + hlen + len;
            self.start = payload.end;
            let (fin, rsv1, op) = (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x0f);
            match op {
                0x8 => return Ok(None),
                0x9 => {
                    let p = self.buf[payload].to_vec();
                    self.send_frame(0xA, &p)?;
                }
                0xA => {}
                0x1 => return Err(io::Error::other("text message from the gateway")),
                0x0 | 0x2 => {
                    if op == 0x2 {
                        self.msg.clear();
                        self.compressed = rsv1;
                    }
                    self.msg.extend_from_slice(&self.buf[payload]);
                    if fin {
                        return self.finish_message().map(Some);
                    }
                }
                _ => return Err(io::Error::other(format!("opcode {op}"))),
            }
        }
    }

    fn finish_message(&mut self) -> io::Result<Vec<u8>> {
        if !self.compressed {
            return Ok(std::mem::take(&mut self.msg));
        }
        let z = self.inflate.as_mut().ok_or_else(|| io::Error::other("RSV1 without deflate"))?;
        self.msg.extend_from_slice(&[0, 0, 0xff, 0xff]); // RFC 7692 §7.2.2
        let mut out = Vec::with_capacity(self.msg.len() * 4);
        let mut input = &self.msg[..];
        loop {
            if out.capacity() - out.len() < 64 << 10 {
                out.reserve(out.len().max(256 << 10));
            }
            let (i0, o0) = (z.total_in(), z.total_out());
            let st = z.decompress_vec(input, &mut out, FlushDecompress::Sync).map_err(io::Error::other)?;
            input = &input[(z.total_in() - i0) as usize..];
            let (consumed, produced) = (z.total_in() - i0, z.total_out() - o0);
            if consumed == 0 && produced == 0 && !input.is_empty() {
                return Err(io::Error::other("inflate made no progress"));
            }
            // Done when the input is used up and the inflater left room
            // (it has nothing more to give).
            if input.is_empty() && (out.len() < out.capacity() || produced == 0) || st == Status::StreamEnd {
                break;
            }
        }
        if self.reset_each_message {
            z.reset(false);
        }
        Ok(out)
    }
}

// ------------------------------------------------------------ viewers

#[derive(Default)]
struct Counters {
    frames: AtomicU64,
    wire_bytes: AtomicU64,
    failed: AtomicBool,
}

struct Probe {
    /// Latency samples (ms) taken while `recording`.
    samples: Mutex<Vec<f64>>,
    recording: AtomicBool,
}

/// Is the demo's pointer crosshair (white arms, scene.rs) drawn at (x, y)?
fn crosshair_at(c: &Canvas, x: u16, y: u16) -> bool {
    let white = [255, 255, 255, 255];
    x >= 8 && y >= 8 && x + 8 < c.width && y + 8 < c.height && {
        [(x + 5, y), (x - 5, y), (x, y + 5), (x, y - 5), (x + 8, y), (x, y - 8)]
            .iter()
            .all(|&(px, py)| c.pixel(px, py) == white)
    }
}

fn run_viewer(
    addr: String,
    path: String,
    deflate: bool,
    rate: Option<f64>,
    ctr: Arc<Counters>,
    probe: Option<Arc<Probe>>,
    stop: Arc<AtomicBool>,
) {
    let result = (|| -> io::Result<()> {
        let mut ws = WsClient::connect(&addr, &path, deflate, rate)?;
        ws.sock.set_read_timeout(Some(Duration::from_secs(1)))?;
        ws.send(&enc::hello(v2::VERSION))?;
        let mut canvas = Canvas::default();
        // Probe state: the spot the pointer was sent to and when.
        let mut pending: Option<(u16, u16, Instant)> = None;
        let mut next_probe = Instant::now() + Duration::from_millis(500);
        let mut k = 0u16;
        while !stop.load(Ordering::Relaxed) {
            let msg = match ws.read_message() {
                Ok(Some(m)) => m,
                Ok(None) => return Err(io::Error::other("gateway closed the connection")),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
                Err(e) => return Err(e),
            };
            let msgs = canvas.apply(&msg).map_err(io::Error::other)?;
            for m in msgs {
                match m {
                    // A picture's held parts are only received; its last
                    // part ends a frame (docs/protocol.md, EndPart).
                    Msg::EndPart(id, false) => ws.send(&enc::received(id))?,
                    Msg::EndFrame(id) | Msg::EndPart(id, true) => {
                        ws.send(&enc::ack(id))?;
                        ctr.frames.fetch_add(1, Ordering::Relaxed);
                        if let (Some(p), Some((x, y, t))) = (&probe, pending) {
                            if crosshair_at(&canvas, x, y) {
                                if p.recording.load(Ordering::Relaxed) {
                                    p.samples.lock().unwrap().push(t.elapsed().as_secs_f64() * 1000.0);
                                }
                                pending = None;
                                next_probe = Instant::now() + Duration::from_millis(100);
                            }
                        }
                    }
                    Msg::Error(e) => return Err(io::Error::other(format!("gateway Error: {e}"))),
                    _ => {}
                }
            }
            ctr.wire_bytes.store(ws.wire_bytes, Ordering::Relaxed);
            if probe.is_some() && canvas.width > 100 && pending.is_none() && Instant::now() >= next_probe {
                // Alternate between the two lower quadrants, a new spot each time.
                k = k.wrapping_add(1);
                let (w, h) = (canvas.width, canvas.height);
                let x = if k.is_multiple_of(2) { w / 4 } else { 3 * w / 4 } + (k / 2 % 16) * 3;
                let y = h * 11 / 20 + (k / 2 % 8) * 3;
                ws.send(&enc::pointer(x, y, 0))?;
                pending = Some((x, y, Instant::now()));
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        if !stop.load(Ordering::Relaxed) {
            eprintln!("viewer failed: {e}");
            ctr.failed.store(true, Ordering::Relaxed);
        }
    }
}

// ------------------------------------------------------------ /proc

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the ")" that ends comm: state is field 3; utime 14, stime 15.
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

/// (VmRSS, VmHWM) of `pid` in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let get = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (get("VmRSS:"), get("VmHWM:"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    percentile(v, 0.5)
}

fn main() {
    let mut addr = "127.0.0.1:6080".to_string();
    let mut path = "/ws".to_string();
    let (mut viewers, mut slow, mut seconds, mut warmup) = (1usize, 0usize, 10.0f64, 3.0f64);
    let mut slow_rate = 1_000_000.0f64;
    let mut deflate = true;
    let mut pid: Option<u32> = None;
    let mut vnc_pid: Option<u32> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--addr" => addr = val(),
            "--path" => path = val(),
            "--viewers" => viewers = val().parse().expect("--viewers N"),
            "--slow" => slow = val().parse().expect("--slow K"),
            "--slow-rate" => slow_rate = val().parse().expect("--slow-rate BYTES"),
            "--seconds" => seconds = val().parse().expect("--seconds S"),
            "--warmup" => warmup = val().parse().expect("--warmup S"),
            "--no-deflate" => deflate = false,
            "--pid" => pid = Some(val().parse().expect("--pid PID")),
            "--vnc-pid" => vnc_pid = Some(val().parse().expect("--vnc-pid PID")),
            _ => panic!("unknown argument {a} (see the module docs)"),
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let probe = Arc::new(Probe { samples: Mutex::default(), recording: AtomicBool::new(false) });
    let mut ctrs = Vec::new();
    let mut threads = Vec::new();
    for i in 0..viewers + slow {
        let ctr = Arc::new(Counters::default());
        ctrs.push(ctr.clone());
        let rate = (i >= viewers).then_some(slow_rate);
        let p = (i == 0 && viewers > 0).then(|| probe.clone());
        let (a, pa, s) = (addr.clone(), path.clone(), stop.clone());
        threads.push(std::thread::spawn(move || run_viewer(a, pa, deflate, rate, ctr, p, s)));
    }
    std::thread::sleep(Duration::from_secs_f64(warmup));
    let snap = |ctrs: &[Arc<Counters>]| -> Vec<(u64, u64)> {
        ctrs.iter().map(|c| (c.frames.load(Ordering::Relaxed), c.wire_bytes.load(Ordering::Relaxed))).collect()
    };
    let t0 = Instant::now();
    let before = snap(&ctrs);
    let cpu0 = pid.map(cpu_seconds);
    let vnc0 = vnc_pid.map(cpu_seconds);
    let me = std::process::id();
    let load0 = cpu_seconds(me);
    probe.recording.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs_f64(seconds));
    probe.recording.store(false, Ordering::Relaxed);
    let after = snap(&ctrs);
    let cpu1 = pid.map(cpu_seconds);
    let vnc_cpu_pct = match (vnc0, vnc_pid.map(cpu_seconds)) {
        (Some(a), Some(b)) => (b - a) / t0.elapsed().as_secs_f64() * 100.0,
        _ => f64::NAN,
    };
    let load_cpu_pct = (cpu_seconds(me) - load0) / t0.elapsed().as_secs_f64() * 100.0;
    let mem = pid.map(rss_mib);
    let dt = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let failed = ctrs.iter().filter(|c| c.failed.load(Ordering::Relaxed)).count();

    let rates: Vec<(f64, f64)> =
        before.iter().zip(&after).map(|(b, a)| ((a.0 - b.0) as f64 / dt, (a.1 - b.1) as f64 / dt / 1e6)).collect();
    let mut fps: Vec<f64> = rates[..viewers].iter().map(|r| r.0).collect();
    let mut mbs: Vec<f64> = rates[..viewers].iter().map(|r| r.1).collect();
    let mut slow_fps: Vec<f64> = rates[viewers..].iter().map(|r| r.0).collect();
    let fps_min = fps.iter().cloned().fold(f64::INFINITY, f64::min);
    let total_frames: u64 = before.iter().zip(&after).map(|(b, a)| a.0 - b.0).sum();
    let mut lat = probe.samples.lock().unwrap().clone();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());

    let fps_med = median(&mut fps);
    let mbs_med = median(&mut mbs);
    let slow_med = median(&mut slow_fps);
    println!("gwload: {viewers} viewer(s) + {slow} slow at {slow_rate} B/s, deflate {deflate}, {dt:.1} s window");
    println!("  frames/s per viewer: median {fps_med:.1}, min {fps_min:.1}; slow viewers median {slow_med:.1}");
    println!("  wire MB/s per viewer: median {mbs_med:.2}");
    println!(
        "  input-to-delivery latency: p50 {:.1} ms, p99 {:.1} ms ({} samples)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.len()
    );
    let (mut cpu_pct, mut cpu_us_frame, mut rss, mut hwm) = (f64::NAN, f64::NAN, f64::NAN, f64::NAN);
    if let (Some(c0), Some(c1), Some((r, h))) = (cpu0, cpu1, mem) {
        cpu_pct = (c1 - c0) / dt * 100.0;
        cpu_us_frame = (c1 - c0) * 1e6 / total_frames.max(1) as f64;
        (rss, hwm) = (r, h);
        println!(
            "  gateway: CPU {cpu_pct:.1}% of one core, {cpu_us_frame:.0} µs per delivered viewer-frame; RSS {rss:.1} MiB (peak {hwm:.1})"
        );
    }
    if vnc_pid.is_some() {
        println!("  VNC server process: CPU {vnc_cpu_pct:.0}%");
    }
    println!("  gwload itself: CPU {load_cpu_pct:.0}% (same machine: it competes with the gateway)");
    if failed > 0 {
        println!("  {failed} viewer(s) FAILED");
    }
    println!(
        "RESULT viewers={viewers} slow={slow} deflate={} fps_med={fps_med:.1} fps_min={fps_min:.1} slow_fps={slow_med:.1} \
         mbs_med={mbs_med:.2} lat_p50={:.1} lat_p99={:.1} lat_n={} cpu_pct={cpu_pct:.1} cpu_us_frame={cpu_us_frame:.0} \
         rss_mib={rss:.1} hwm_mib={hwm:.1} load_cpu_pct={load_cpu_pct:.0} vnc_cpu_pct={vnc_cpu_pct:.0} failed={failed}",
        deflate as u8,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.len()
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
