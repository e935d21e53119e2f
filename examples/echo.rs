//! A WebSocket echo server on wsvnc's own event loop and ws module, for the
//! Autobahn testsuite: `cargo run --release --example echo 127.0.0.1:9001`.
//! Every path echoes; permessage-deflate is negotiated when offered.

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9001".into());
    let mut cfg = wsvnc::Config::default();
    cfg.listen = listen.parse().expect("listen address, e.g. 127.0.0.1:9001");
    cfg.echo = true;
    // Autobahn 9.* sends messages up to 16 MiB.
    cfg.max_message = 64 << 20;
    cfg.heartbeat = None;
    cfg.allowed_origins = vec!["*".into()];
    let mut server = wsvnc::Server::bind(cfg).expect("bind");
    server.handle_signals().expect("signals");
    println!("echo server on ws://{}/", server.local_addr());
    server.run().expect("run");
}
