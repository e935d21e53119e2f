//! The listen backlog (`--backlog`): how many connections the kernel
//! completes and queues before the loop accepts them. mio's
//! `TcpListener::bind` listens with 128, as std does; a burst of
//! half-open clients beyond that makes the kernel drop further SYNs, and a
//! legitimate client then waits for its SYN retransmission (1 s, 3 s, …).
//! The default is the system's maximum, `net.core.somaxconn` (the kernel
//! caps any larger value to it silently).
//!
//! Linux lets `listen(2)` be called again on a listening socket to change
//! its backlog (net/ipv4/af_inet.c `inet_listen`: only `sk_max_ack_backlog`
//! is updated), so a listener bound by mio or handed over by a service
//! manager gets its backlog without being re-created.

use std::io;
use std::os::fd::AsRawFd;

/// Used when `/proc/sys/net/core/somaxconn` cannot be read (the kernel's
/// default since Linux 5.4).
pub const FALLBACK: u32 = 4096;

/// The backlog to use: `configured`, else the system's maximum.
pub fn choose(configured: Option<u32>) -> u32 {
    configured.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or(FALLBACK)
    })
}

/// Set the backlog of a listening socket.
pub fn apply(listener: &impl AsRawFd, backlog: u32) -> io::Result<()> {
    let n = backlog.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: listen(2) on a descriptor the caller owns and keeps open.
    if unsafe { libc::listen(listener.as_raw_fd(), n) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
