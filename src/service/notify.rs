//! The `sd_notify(3)` protocol, written out (one datagram per message, no
//! library): when `NOTIFY_SOCKET` names a Unix datagram socket (a path, or
//! `@name` for the abstract namespace), the service manager learns
//!
//! | message | when |
//! |---|---|
//! | `READY=1` + `STATUS=…` + `MAINPID=` | the listening sockets are open and the loop is about to serve |
//! | `RELOADING=1` + `MONOTONIC_USEC=` | SIGHUP received: token source and certificates are being re-read |
//! | `READY=1` | that reload pass is over (whether or not something changed) |
//! | `STOPPING=1` | graceful shutdown began (SIGTERM, SIGINT, stop handle) |
//! | `WATCHDOG=1` | every half `WATCHDOG_USEC`, from the loop's own timeout: a stuck loop stops sending and gets restarted |
//!
//! `WATCHDOG_PID`, when set, must be this process's pid, else no watchdog
//! pings are sent (systemd sets it for the main process only). Sending never
//! blocks: the socket is non-blocking and a message the manager cannot take
//! right now is dropped (logged at debug), like `sd_notify` does.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to the service manager's notification socket.
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` (None when unset or empty).
    pub fn from_env() -> io::Result<Option<Notifier>> {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET").filter(|p| !p.is_empty()) else { return Ok(None) };
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name)?
            }
            None if bytes.starts_with(b"/") => SocketAddr::from_pathname(&path)?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "NOTIFY_SOCKET must be an absolute path or @abstract-name",
                ))
            }
        };
        let sock = UnixDatagram::unbound()?;
        sock.set_nonblocking(true)?;
        Ok(Some(Notifier { sock, addr }))
    }

    /// Send one message (newline-separated `KEY=VALUE` lines); best effort.
    pub fn send(&self, msg: &str) {
        if let Err(e) = self.sock.send_to_addr(msg.as_bytes(), &self.addr) {
            log::debug!("sd_notify {:?}: {e}", msg.lines().next().unwrap_or(""));
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}\nMAINPID={}\n", one_line(status), std::process::id()));
    }

    pub fn reloading(&self) {
        self.send(&format!("RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC={}\n", monotonic_usec()));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=shutting down\n");
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1\n");
    }
}

/// A STATUS= value must not break the line protocol.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// CLOCK_MONOTONIC in microseconds (what `MONOTONIC_USEC=` wants).
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when it is set
/// (and `WATCHDOG_PID` is unset or ours).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_stays_on_one_line() {
        assert_eq!(one_line("a\nREADY=0\r"), "a READY=0 ");
    }

    #[test]
    fn messages_reach_a_datagram_socket() {
        let dir = std::env::temp_dir().join(format!("wsvnc-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier { sock: UnixDatagram::unbound().unwrap(), addr: SocketAddr::from_pathname(&path).unwrap() };
        n.ready("serving");
        n.watchdog();
        let mut b = [0u8; 256];
        let len = rx.recv(&mut b).unwrap();
        let msg = std::str::from_utf8(&b[..len]).unwrap();
        assert!(msg.starts_with("READY=1\nSTATUS=serving\nMAINPID="), "{msg}");
        let len = rx.recv(&mut b).unwrap();
        assert_eq!(&b[..len], b"WATCHDOG=1\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
