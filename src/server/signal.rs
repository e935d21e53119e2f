//! SIGINT/SIGTERM as a readable pipe (the self-pipe trick), so the poll loop
//! learns of a shutdown request like any other event and no thread is needed.
//!
//! The handler only calls write(2), which is async-signal-safe.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use mio::unix::pipe;

static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_: libc::c_int) {
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: write(2) on a valid non-blocking pipe fd with a 1-byte
        // buffer; async-signal-safe. A full pipe already means "stop".
        unsafe {
            libc::write(fd, b"x".as_ptr().cast(), 1);
        }
    }
}

/// The read end of the signal pipe. Keep it alive while the loop runs.
pub struct SignalPipe {
    pub receiver: pipe::Receiver,
    _sender: pipe::Sender,
}

impl SignalPipe {
    /// Install handlers for SIGINT and SIGTERM (once per process; a second
    /// call re-points them at the new pipe).
    pub fn install() -> io::Result<SignalPipe> {
        let (sender, receiver) = pipe::new()?;
        WRITE_FD.store(sender.as_raw_fd() as RawFd, Ordering::Relaxed);
        for sig in [libc::SIGINT, libc::SIGTERM] {
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
        // A peer that vanishes mid-write must give EPIPE, not kill us.
        // SAFETY: setting SIGPIPE to SIG_IGN has no preconditions.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        Ok(SignalPipe { receiver, _sender: sender })
    }
}
