//! wsvnc: VNC in the browser through WebSockets, in one small single-threaded
//! mio daemon.

pub mod demo;
pub mod fb;
pub mod gateway;
pub mod http;
pub mod rfb;
pub mod ws;
