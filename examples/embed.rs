//! Embedding wsvnc in another program (an appliance's management daemon, say).
//!
//! The library API is small: fill a [`wsvnc::Config`], [`wsvnc::Server::bind`]
//! it (this binds the listening socket and resolves targets, so errors show up
//! here, before any thread starts), run it on a thread of your own, and stop it
//! with the [`wsvnc::StopHandle`] from anywhere. `Server::run` returns after
//! every WebSocket got a close frame (1001 "going away").
//!
//! ```sh
//! cargo run --release --example embed -- 127.0.0.1:6080 127.0.0.1:5900
//! ```
//! serves the viewer on http://127.0.0.1:6080/ for the VNC server on
//! 127.0.0.1:5900 for 60 seconds, printing connection counts, then stops.

use std::time::Duration;

use wsvnc::{Config, Server, Target, TargetAddr};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:6080".into());
    let vnc = args.next().unwrap_or_else(|| "127.0.0.1:5900".into());

    let cfg = Config {
        listen: listen.parse().expect("listen address, e.g. 127.0.0.1:6080"),
        // No password: the browser is asked if the VNC server wants one.
        target: Some(Target::new(TargetAddr::Tcp(vnc.parse().expect("VNC server address, e.g. 127.0.0.1:5900")))),
        max_connections: 64, // a small appliance
        ..Config::default()
    };

    let mut server = Server::bind(cfg)?;
    println!("viewer on http://{}/", server.local_addr());
    let stop = server.stop_handle();
    let worker = std::thread::spawn(move || {
        let result = server.run();
        (result, server.stats())
    });

    for _ in 0..12 {
        std::thread::sleep(Duration::from_secs(5));
        if worker.is_finished() {
            break;
        }
    }
    stop.stop();
    let (result, stats) = worker.join().expect("server thread");
    println!("stopped: {stats:?}");
    result
}
