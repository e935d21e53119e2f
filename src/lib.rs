//! wsvnc: VNC in the browser through WebSockets, in one small single-threaded
//! mio daemon.
//!
//! Embedding:
//! ```no_run
//! let mut cfg = wsvnc::Config::default();
//! cfg.listen = "127.0.0.1:6080".parse().unwrap();
//! let mut server = wsvnc::Server::bind(cfg).expect("bind");
//! let stop = server.stop_handle();       // Send + Sync: stop from any thread
//! std::thread::spawn(move || server.run().expect("run"));
//! // ... later
//! stop.stop();
//! ```

pub mod app;
#[cfg(feature = "bench")]
pub mod bench;
pub mod config;
pub mod demo;
pub mod fb;
pub mod gateway;
pub mod http;
pub mod logsafe;
pub mod rfb;
pub mod server;
pub mod throttle;
pub mod transport;
pub mod ws;

pub use config::{Config, Target, TargetAddr, TargetSecurity};
pub use server::{Server, Stats, StopHandle};
