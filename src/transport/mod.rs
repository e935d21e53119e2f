//! The transport layer: one [`Endpoint`] per socket, owning its byte stream
//! (TCP or a Unix socket, TLS on top for browsers), its capped pooled
//! buffers, its WebSocket session and the close bookkeeping.
//!
//! ```text
//!   server (mio loop) ── readiness ──▶ Endpoint ── bytes / messages ──▶ app (sans-IO)
//!                                        │ stream: Sock (TCP|Unix) + TlsSession?
//!                                        │ input, output: Buf (one type, pooled)
//!                                        └ WebSocket: WsSession + Close bookkeeping
//! ```
//!
//! May: read and write its own socket (and splice between two, `pipe`),
//! frame and decode WebSocket messages, apply the WebSocket's time policy
//! when told the time. May not: register with the poll, read the clock,
//! decide anything about HTTP routes, RFB or the gateway (that is `app`).

pub mod buf;
#[cfg(feature = "tls")]
pub mod crypto;
pub mod endpoint;
pub mod pipe;
pub mod proxy;
pub mod stream;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(not(feature = "tls"))]
#[path = "no_tls.rs"]
pub mod tls;

pub use buf::{Buf, Pool};
pub use endpoint::{
    Endpoint, Feed, Flow, Keepalive, Message, Read, Ready, Reply, Sent, BLOCK, CLOSE_GRACE, CONTROL_ROOM,
};
pub use stream::Stream;
