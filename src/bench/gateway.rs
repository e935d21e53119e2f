//! Gateway mode end to end: the built-in demo desktop in its own process
//! (`wsvnc --demo-server`), the gateway as another (`wsvnc --target`), and
//! N protocol-v2 viewers on threads here, each acking every frame as a
//! browser does (docs/protocol.md: `FrameAck` is cumulative, frame ids
//! count up from 1). No permessage-deflate is offered, so the gateway's
//! CPU here excludes compression (benches/gateway_e2e.sh measures both).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::proc::{free_addr, Server};
use super::ws::Client;
use super::Plan;

use crate::gateway::proto::{from_browser, to_browser, VERSION};

const CLIENT_HELLO: [u8; 2] = [from_browser::CLIENT_HELLO, VERSION];

/// What one viewer counted.
#[derive(Default)]
struct Counts {
    frames: AtomicU64,
    bytes: AtomicU64,
}

/// One viewer until `stop`: every message's bytes counted; a message
/// ending in `EndFrame(id)` or a picture's last `EndPart(id, 1)` with id
/// just after the last one is a frame (acked); a held part's
/// `EndPart(id, 0)` is only received. (The id check keeps pixel data that
/// happens to end like one from counting.)
fn viewer(addr: SocketAddr, counts: Arc<Counts>, stop: Arc<AtomicBool>) -> io::Result<()> {
    let mut c = Client::connect(addr, "/ws", Some(crate::gateway::SUBPROTOCOL))?;
    c.send(&CLIENT_HELLO)?;
    let mut last = 0u32;
    let mut tail = Vec::with_capacity(6);
    let mut fin = true;
    while !stop.load(Ordering::Relaxed) {
        if fin {
            tail.clear(); // a new message
        }
        let len;
        (fin, len) = c.data_frame(|b| {
            tail.extend_from_slice(&b[b.len().saturating_sub(6)..]);
            let cut = tail.len().saturating_sub(6);
            tail.drain(..cut);
        })?;
        counts.bytes.fetch_add(len, Ordering::Relaxed);
        if !fin || tail.len() < 5 {
            continue;
        }
        // The last 5 bytes an EndFrame, or the last 6 an EndPart.
        let e = tail.len() - 5;
        let (reply, at) = match (tail[e], tail.len() == 6 && tail[0] == to_browser::END_PART, tail[e + 4]) {
            (to_browser::END_FRAME, ..) => (from_browser::FRAME_ACK, e + 1),
            (_, true, 1) => (from_browser::FRAME_ACK, 1),
            (_, true, 0) => (from_browser::RECEIVED, 1),
            _ => continue,
        };
        let id = [tail[at], tail[at + 1], tail[at + 2], tail[at + 3]];
        let id = u32::from_le_bytes(id);
        if id.wrapping_sub(last).wrapping_sub(1) < 64 {
            last = id;
            if reply == from_browser::FRAME_ACK {
                counts.frames.fetch_add(1, Ordering::Relaxed);
            }
            let mut m = vec![reply];
            m.extend_from_slice(&id.to_le_bytes());
            c.send(&m)?;
        }
    }
    Ok(())
}

/// One measured configuration.
pub struct Run {
    pub viewers: usize,
    pub fps: f64,
    pub mb_per_s: f64,
    pub gw_cpu_pct: f64,
    pub gw_us_per_frame: f64,
    pub rss_mib: f64,
    pub vnc_cpu_pct: f64,
}

/// Demo desktop + gateway, `n` viewers: warm up, then measure a window.
pub fn run(plan: &Plan, n: usize) -> io::Result<Run> {
    let (vnc_addr, gw_addr) = (free_addr()?, free_addr()?);
    let (v, g) = (vnc_addr.to_string(), gw_addr.to_string());
    let vnc = Server::start(&["--demo-server", &v, "--demo-size", &plan.demo_size], vnc_addr)?;
    let gw = Server::start(&["--listen", &g, "--target", &v, "--heartbeat", "0", "--max-per-client", "0"], gw_addr)?;
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Vec<Arc<Counts>> = (0..n).map(|_| Arc::new(Counts::default())).collect();
    let threads: Vec<_> = counts
        .iter()
        .map(|c| {
            let (c, stop) = (c.clone(), stop.clone());
            std::thread::spawn(move || viewer(gw_addr, c, stop))
        })
        .collect();
    std::thread::sleep(plan.warmup);
    let total = |f: fn(&Counts) -> u64| counts.iter().map(|c| f(c)).sum::<u64>();
    let frames = |c: &Counts| c.frames.load(Ordering::Relaxed);
    let bytes = |c: &Counts| c.bytes.load(Ordering::Relaxed);
    let (f0, b0, g0, v0, t0) = (total(frames), total(bytes), gw.cpu(), vnc.cpu(), Instant::now());
    std::thread::sleep(plan.window);
    let secs = t0.elapsed().as_secs_f64();
    let (df, db) = ((total(frames) - f0) as f64, (total(bytes) - b0) as f64);
    let (gcpu, vcpu, rss) = (gw.cpu() - g0, vnc.cpu() - v0, gw.rss_kib());
    stop.store(true, Ordering::Relaxed);
    drop(gw); // ends the viewers' reads
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) if stop.load(Ordering::Relaxed) && df > 0.0 => drop(e), // the gateway went first
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::Error::other("viewer thread panicked")),
        }
    }
    if df == 0.0 {
        return Err(io::Error::other("no frame reached the viewers in the window"));
    }
    Ok(Run {
        viewers: n,
        fps: df / n as f64 / secs,
        mb_per_s: db / n as f64 / secs / 1e6,
        gw_cpu_pct: gcpu / secs * 100.0,
        gw_us_per_frame: gcpu * 1e6 / df,
        rss_mib: rss / 1024.0,
        vnc_cpu_pct: vcpu / secs * 100.0,
    })
}

/// RSS of a fresh gateway with a target and no connection, KiB.
pub fn idle_rss() -> io::Result<f64> {
    let addr = free_addr()?;
    let a = addr.to_string();
    let gw =
        Server::start(&["--listen", &a, "--target", "127.0.0.1:9", "--heartbeat", "0", "--max-per-client", "0"], addr)?;
    std::thread::sleep(Duration::from_millis(200));
    Ok(gw.rss_kib())
}
