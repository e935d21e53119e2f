//! A client of the built-in demo VNC server (`demo::DemoServer`, sans-IO):
//! its RFB input in, its updates out, the next animation frame as the
//! connection's timeout.

use std::time::{Duration, Instant};

use log::debug;

use super::{App, Conn, Ctx, Peer, Step, READS_PER_WAKEUP};
use crate::demo::DemoServer;
use crate::transport::{Endpoint, Read, Stream, BLOCK};

/// A peer gets a new update only below this much unsent output.
const LOW_WATER: usize = 256 << 10;
/// Output cap: an update is made whole (a raw 4096×4096 frame is 64 MiB).
const OUTPUT_CAP: usize = 80 << 20;

pub struct DemoPeer {
    demo: DemoServer,
    /// When the animation wants its next update (None: wait for the output
    /// to drain).
    next: Option<Instant>,
}

impl DemoPeer {
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }
}

fn ms_since(epoch: Instant, now: Instant) -> u64 {
    now.duration_since(epoch).as_millis() as u64
}

/// A connection accepted on the demo listener.
pub fn accept(id: u64, sock: mio::net::TcpStream, peer: std::net::SocketAddr, ctx: &mut Ctx) -> Conn {
    let mut ep = Endpoint::new(Stream::accepted(sock), BLOCK, OUTPUT_CAP, ctx.now);
    let mut demo = DemoServer::new(&ctx.demo, ms_since(ctx.epoch, ctx.now));
    demo.start(ep.output.append(64, &mut ctx.pool));
    debug!("demo VNC server: client {peer}");
    let peer = Peer { socket: peer, client: peer.ip() };
    Conn::new(id, ep, App::Demo(Box::new(DemoPeer { demo, next: None })), peer, ctx.now)
}

pub fn drive(conn: &mut Conn, _key: usize, ctx: &mut Ctx) -> Step {
    let App::Demo(d) = &mut conn.app else { return Step::Stay };
    let ep = &mut conn.ep;
    let now_ms = ms_since(ctx.epoch, ctx.now);
    for _ in 0..READS_PER_WAKEUP {
        match ep.read(&mut ctx.pool, ctx.now) {
            Read::Data(_) => {}
            Read::Nothing => break,
            Read::Eof | Read::Failed(_) => return Step::Close("VNC client gone"),
        }
        match d.demo.handle_input(ep.input.data(), now_ms, ep.output.append(0, &mut ctx.pool)) {
            Ok(used) => ep.input.consume(used),
            Err(e) => {
                debug!("demo VNC server: client {}: {e}", conn.peer);
                return Step::Close("protocol error");
            }
        }
    }
    ep.input.release_if_empty(&mut ctx.pool);
    d.next = None;
    if ep.output.len() < LOW_WATER {
        if let Some(at_ms) = d.demo.poll(now_ms, ep.output.append(0, &mut ctx.pool)) {
            d.next = Some(ctx.epoch + Duration::from_millis(at_ms.max(now_ms)));
        }
    }
    Step::Stay
}
