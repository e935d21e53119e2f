//! A WebSocket echo server on wsvnc's own event loop and ws module, for the
//! Autobahn testsuite: `cargo run --release --example echo 127.0.0.1:9001`.
//! Every path echoes; permessage-deflate is negotiated when offered.

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9001".into());
    let cfg = wsvnc::Config {
        listen: listen.parse().expect("listen address, e.g. 127.0.0.1:9001"),
        echo: true,
        // Autobahn 9.* sends messages up to 16 MiB.
        max_message: 64 << 20,
        heartbeat: None,
        allowed_origins: vec!["*".into()],
        ..Default::default()
    };
    let mut server = wsvnc::Server::bind(cfg).expect("bind");
    server.handle_signals().expect("signals");
    println!("echo server on ws://{}/", server.local_addr());
    server.run().expect("run");
}
