//! Relay mode against direct TCP (the floor), over real sockets: a TCP
//! sink (threads in this process) as the target, `wsvnc --relay` as a
//! child process, blocking load clients. The sink's first byte picks the
//! mode, as examples/wsload.rs's does: `S`+u64 streams that many bytes,
//! `E` echoes, `I` answers `i` and idles.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Instant;

use super::proc::{free_addr, Server};
use super::ws::Client;
use super::{median, percentile, Plan, Row, Table};

/// Start the sink; it serves until the process ends.
fn sink() -> io::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let _ = std::thread::Builder::new().stack_size(64 << 10).spawn(move || serve(s));
        }
    });
    Ok(addr)
}

fn serve(mut s: TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    let mut mode = [0u8; 1];
    s.read_exact(&mut mode)?;
    let mut buf = vec![0u8; 64 << 10];
    match mode[0] {
        b'S' => {
            let mut n = [0u8; 8];
            s.read_exact(&mut n)?;
            let mut left = u64::from_le_bytes(n);
            while left > 0 {
                let k = left.min(buf.len() as u64) as usize;
                s.write_all(&buf[..k])?;
                left -= k as u64;
            }
        }
        b'E' => loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            s.write_all(&buf[..n])?;
        },
        _ => s.write_all(b"i")?,
    }
    while s.read(&mut buf)? > 0 {} // hold until the client goes
    Ok(())
}

/// One connection through the relay (`ws`) or straight to the sink.
enum Conn {
    Ws(Client),
    Tcp(TcpStream),
}

impl Conn {
    fn open(relay: Option<SocketAddr>, sink: SocketAddr) -> io::Result<Conn> {
        Ok(match relay {
            Some(a) => Conn::Ws(Client::connect(a, "/websockify", Some("binary"))?),
            None => {
                let s = TcpStream::connect(sink)?;
                s.set_nodelay(true)?;
                Conn::Tcp(s)
            }
        })
    }

    fn send(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Conn::Ws(c) => c.send(b),
            Conn::Tcp(s) => s.write_all(b),
        }
    }

    /// Read exactly `n` bytes of payload (discarded).
    fn recv(&mut self, n: u64, buf: &mut [u8]) -> io::Result<()> {
        match self {
            Conn::Ws(c) => c.read_bytes(n, |_| {}),
            Conn::Tcp(s) => {
                let mut left = n;
                while left > 0 {
                    let cap = buf.len().min(left as usize);
                    let k = s.read(&mut buf[..cap])?;
                    if k == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    left -= k as u64;
                }
                Ok(())
            }
        }
    }
}

/// `conns` connections each streaming `bytes`: MiB/s from the requests to
/// the last byte.
fn bulk(relay: Option<SocketAddr>, sink: SocketAddr, conns: usize, bytes: u64) -> io::Result<f64> {
    let mut cs = Vec::with_capacity(conns);
    for _ in 0..conns {
        cs.push(Conn::open(relay, sink)?);
    }
    let mut req = vec![b'S'];
    req.extend_from_slice(&bytes.to_le_bytes());
    let start = Instant::now();
    let handles: Vec<_> = cs
        .drain(..)
        .map(|mut c| {
            let req = req.clone();
            std::thread::spawn(move || {
                c.send(&req)?;
                c.recv(bytes, &mut vec![0u8; 256 << 10])
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| io::Error::other("load thread panicked"))??;
    }
    Ok((conns as u64 * bytes) as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64())
}

/// Round trips of `size`-byte messages: (p50, p99) in µs.
fn echo(relay: Option<SocketAddr>, sink: SocketAddr, size: usize, n: usize) -> io::Result<(f64, f64)> {
    let mut c = Conn::open(relay, sink)?;
    c.send(b"E")?;
    let msg = vec![7u8; size];
    let mut buf = vec![0u8; size.max(1024)];
    let mut rtts = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let t = Instant::now();
        c.send(&msg)?;
        c.recv(size as u64, &mut buf)?;
        if i >= n / 10 {
            rtts.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok((percentile(&mut rtts, 0.5), percentile(&mut rtts, 0.99)))
}

/// The relay table; also returns the KiB per idle relayed WebSocket.
pub fn run(plan: &Plan, t: &mut Table) -> io::Result<f64> {
    let sink = sink()?;
    let addr = free_addr()?;
    let sink_s = sink.to_string();
    let listen = addr.to_string();
    // Every connection comes from 127.0.0.1: no per-address cap.
    let args = [
        "--listen",
        &listen,
        "--target",
        &sink_s,
        "--relay",
        "--heartbeat",
        "0",
        "--max-connections",
        "30000",
        "--max-per-client",
        "0",
    ];
    let relay = Server::start(&args, addr)?;
    for (conns, mib) in [(1, plan.bulk_mib), (8, plan.bulk_mib / 8)] {
        let bytes = mib << 20;
        let (mut direct, mut via) = (Vec::new(), Vec::new());
        let cpu0 = relay.cpu();
        for _ in 0..plan.reps {
            direct.push(bulk(None, sink, conns, bytes)?);
            via.push(bulk(Some(addr), sink, conns, bytes)?);
        }
        let gb = (plan.reps as u64 * conns as u64 * bytes) as f64 / 1e9;
        let label = format!("bulk {conns}x{mib} MiB");
        t.row(Row::new(format!("{label}  MiB/s"), Some(median(&mut direct)), median(&mut via), 0));
        t.row(Row::new(format!("{label}  CPU-s/GB"), None, (relay.cpu() - cpu0) / gb, 2));
    }
    for (size, name) in [(64, "64 B"), (16 << 10, "16 KiB")] {
        let (mut d50, mut d99, mut w50, mut w99) = (vec![], vec![], vec![], vec![]);
        for _ in 0..plan.reps {
            let (a, b) = echo(None, sink, size, plan.echoes)?;
            d50.push(a);
            d99.push(b);
            let (a, b) = echo(Some(addr), sink, size, plan.echoes)?;
            w50.push(a);
            w99.push(b);
        }
        t.row(Row::new(format!("echo {name} p50 us"), Some(median(&mut d50)), median(&mut w50), 1));
        t.row(Row::new(format!("echo {name} p99 us"), Some(median(&mut d99)), median(&mut w99), 1));
    }
    // Idle: each connection confirmed end to end (the sink's `i` came back).
    let before = relay.rss_kib();
    let mut idle = Vec::with_capacity(plan.idle);
    for _ in 0..plan.idle {
        let mut c = Conn::open(Some(addr), sink)?;
        c.send(b"I")?;
        c.recv(1, &mut [0u8; 16])?;
        idle.push(c);
    }
    let per_conn = (relay.rss_kib() - before) / plan.idle as f64;
    t.row(Row::new(format!("idle RSS KiB/conn ({})", plan.idle), None, per_conn, 1));
    Ok(per_conn)
}
