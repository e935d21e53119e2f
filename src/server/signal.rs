//! Signals as a readable pipe (the self-pipe trick), so the poll loop learns
//! of them like any other event and no thread is needed: SIGINT and SIGTERM
//! ask for a graceful shutdown, SIGHUP for a reload (token file,
//! certificates). SIGPIPE is ignored (a peer that vanishes mid-write gives
//! EPIPE).
//!
//! The handler only calls write(2), which is async-signal-safe, and keeps
//! `errno` as it found it: the interrupted code may be about to read it.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use mio::unix::pipe;

static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

/// What the loop is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Shutdown,
    Reload,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
unsafe fn errno_location() -> *mut libc::c_int {
    libc::__errno_location()
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
unsafe fn errno_location() -> *mut libc::c_int {
    libc::__error()
}

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = [sig as u8];
        // SAFETY: errno_location returns this thread's errno; write(2) on a
        // valid non-blocking pipe fd with a 1-byte buffer is
        // async-signal-safe. A full pipe loses the byte, which is harmless:
        // the bytes already queued wake the loop.
        unsafe {
            let errno = errno_location();
            let saved = *errno;
            libc::write(fd, b.as_ptr().cast(), 1);
            *errno = saved;
        }
    }
}

/// The read end of the signal pipe. Keep it alive while the loop runs.
pub struct SignalPipe {
    pub receiver: pipe::Receiver,
    _sender: pipe::Sender,
}

impl SignalPipe {
    /// Install handlers for SIGINT, SIGTERM and SIGHUP (once per process; a
    /// second call re-points them at the new pipe).
    pub fn install() -> io::Result<SignalPipe> {
        let (sender, receiver) = pipe::new()?;
        WRITE_FD.store(sender.as_raw_fd() as RawFd, Ordering::Relaxed);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: a zeroed sigaction with a valid extern "C" handler and
            // an empty mask is a valid argument to sigaction(2).
            let rc = unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut())
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: setting SIGPIPE to SIG_IGN has no preconditions.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        Ok(SignalPipe { receiver, _sender: sender })
    }

    /// The signals received since the last call (shutdown wins over reload).
    pub fn take(&mut self) -> Option<Signal> {
        let mut b = [0u8; 64];
        let mut got = None;
        while let Ok(n @ 1..) = self.receiver.read(&mut b) {
            for &s in &b[..n] {
                let s = if s as libc::c_int == libc::SIGHUP { Signal::Reload } else { Signal::Shutdown };
                got = match (got, s) {
                    (Some(Signal::Shutdown), _) | (_, Signal::Shutdown) => Some(Signal::Shutdown),
                    _ => Some(Signal::Reload),
                };
            }
        }
        got
    }
}
