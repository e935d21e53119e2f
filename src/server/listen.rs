//! Listening sockets: bound here (TCP, or a Unix stream socket for
//! `--listen unix:/path`), or inherited from the service manager (systemd
//! socket activation, `sd_listen_fds(3)`).
//!
//! Socket activation, as systemd passes it: descriptors 3 .. 3+N-1 are
//! listening sockets when `LISTEN_PID` is this process's pid and
//! `LISTEN_FDS` is N; `LISTEN_FDNAMES` (optional, colon separated) names
//! them for the log. Each must be a listening `SOCK_STREAM` socket of family
//! AF_INET, AF_INET6 or AF_UNIX; anything else is an error, not a guess. The
//! descriptors are made non-blocking and close-on-exec, and the three
//! variables are removed from the environment so nothing started later
//! takes them for its own.
//!
//! A Unix socket wsvnc binds itself is created with the mode asked for (and
//! the owner of `--user`/`--group`), replaces a *stale* socket file (one
//! nobody accepts on) but never a live one or a file that is not a socket,
//! and is removed again when the listener is dropped if it is still the
//! same file.

use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use log::{info, warn};
use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

/// First descriptor passed by socket activation (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;
/// More inherited sockets than this is a configuration mistake.
const MAX_LISTEN_FDS: usize = 16;

/// A listening socket of the server.
pub enum Listener {
    Tcp(TcpListener),
    /// `owned`: the socket file wsvnc created (removed on drop), with its
    /// device and inode; None for an inherited socket (systemd owns it).
    Unix {
        sock: UnixListener,
        path: PathBuf,
        owned: Option<(u64, u64)>,
    },
}

/// A connection taken off a listener.
pub enum Accepted {
    Tcp(TcpStream, SocketAddr),
    Unix(UnixStream),
}

impl Listener {
    /// Bind `addr` (TCP).
    /// Bind a TCP listener with a listen backlog of `backlog`
    /// ([`super::backlog`]).
    pub fn bind_tcp(addr: SocketAddr, backlog: u32) -> io::Result<Listener> {
        let l = TcpListener::bind(addr)?;
        super::backlog::apply(&l, backlog)?;
        Ok(Listener::Tcp(l))
    }

    /// Bind a Unix stream socket at `path` with permissions `mode`, owned by
    /// `owner` (uid, gid) when given. A stale socket file is replaced.
    pub fn bind_unix(path: &Path, mode: u32, owner: Option<(u32, u32)>) -> io::Result<Listener> {
        remove_if_stale(path)?;
        let sock = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
        }
        let meta = std::fs::symlink_metadata(path)?;
        Ok(Listener::Unix { sock, path: path.to_path_buf(), owned: Some((meta.dev(), meta.ino())) })
    }

    /// Accept one connection (`WouldBlock` when none is waiting).
    pub fn accept(&self) -> io::Result<Accepted> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, a)| Accepted::Tcp(s, a)),
            Listener::Unix { sock, .. } => sock.accept().map(|(s, _)| Accepted::Unix(s)),
        }
    }

    /// The TCP address listened on (None for a Unix socket).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix { .. } => None,
        }
    }

    /// For the log: `http://ADDR` or `unix:PATH`.
    pub fn describe(&self, scheme: &str) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("{scheme}://{a}/"),
                Err(_) => format!("{scheme}://?/"),
            },
            Listener::Unix { path, .. } => format!("unix:{} ({scheme})", path.display()),
        }
    }

    /// The address the access policy judges the listener by: its TCP
    /// address, or loopback for a Unix socket (reachable only through the
    /// file system, whose permissions decide who connects).
    pub fn access_addr(&self) -> SocketAddr {
        self.tcp_addr().unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let Listener::Unix { path, owned: Some((dev, ino)), .. } = self else { return };
        // Remove the file only if it is still ours (not replaced by another
        // instance meanwhile). After dropping privileges this may fail for
        // lack of permission on the directory; the next start replaces the
        // stale file.
        if std::fs::symlink_metadata(&*path).is_ok_and(|m| m.dev() == *dev && m.ino() == *ino) {
            let _ = std::fs::remove_file(&*path);
        }
    }
}

impl Source for Listener {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.register(r, t, i),
            Listener::Unix { sock, .. } => sock.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.reregister(r, t, i),
            Listener::Unix { sock, .. } => sock.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.deregister(r),
            Listener::Unix { sock, .. } => sock.deregister(r),
        }
    }
}

/// A socket file left by a process that is gone: a socket nobody accepts on
/// (connect refused). A live socket or any other kind of file is an error.
fn remove_if_stale(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket: not replacing it", path.display()),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is in use (another wsvnc is listening on it)", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            info!("removing stale socket {}", path.display());
            std::fs::remove_file(path)
        }
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

/// Error for a bad inherited descriptor.
fn bad_fd(fd: RawFd, what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("socket activation: descriptor {fd} {what}"))
}

/// The listening sockets passed by the service manager, or None when this
/// process was not socket-activated (`LISTEN_PID` absent or another pid's).
pub fn inherited() -> io::Result<Option<Vec<Listener>>> {
    let pid = std::env::var("LISTEN_PID").ok();
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    if pid.as_deref().and_then(|p| p.trim().parse::<i32>().ok()) != Some(me) {
        return Ok(None);
    }
    let count = std::env::var("LISTEN_FDS").ok().and_then(|n| n.trim().parse::<usize>().ok());
    let names: Vec<OsString> = std::env::var_os("LISTEN_FDNAMES")
        .map(|n| n.as_bytes().split(|b| *b == b':').map(|s| std::ffi::OsStr::from_bytes(s).to_owned()).collect())
        .unwrap_or_default();
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(v);
    }
    let count = match count {
        Some(n @ 1..=MAX_LISTEN_FDS) => n,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("socket activation: LISTEN_FDS must be 1..={MAX_LISTEN_FDS}"),
            ))
        }
    };
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let fd = LISTEN_FDS_START + i as RawFd;
        let l = adopt(fd)?;
        let name = names.get(i).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        info!(
            "socket activation: descriptor {fd} {}{}",
            l.describe("http"),
            if name.is_empty() { String::new() } else { format!(" (name {name})") }
        );
        out.push(l);
    }
    Ok(Some(out))
}

/// Take ownership of one inherited descriptor after checking what it is.
fn adopt(fd: RawFd) -> io::Result<Listener> {
    let int_opt = |opt: libc::c_int| -> io::Result<libc::c_int> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `v`.
        let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&mut v as *mut libc::c_int).cast(), &mut len) };
        if rc != 0 {
            return Err(bad_fd(fd, &format!("is not a socket ({})", io::Error::last_os_error())));
        }
        Ok(v)
    };
    if int_opt(libc::SO_TYPE)? != libc::SOCK_STREAM {
        return Err(bad_fd(fd, "is not a stream socket"));
    }
    if int_opt(libc::SO_ACCEPTCONN)? == 0 {
        return Err(bad_fd(fd, "is not listening"));
    }
    let domain = int_opt(libc::SO_DOMAIN)?;
    // SAFETY: fcntl on a descriptor we just checked is an open socket.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    match domain {
        libc::AF_INET | libc::AF_INET6 => {
            // SAFETY: fd is an open listening TCP socket that nothing else
            // in this process owns (it was passed to us at exec).
            let std = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            std.set_nonblocking(true)?;
            Ok(Listener::Tcp(TcpListener::from_std(std)))
        }
        libc::AF_UNIX => {
            // SAFETY: as above, a listening Unix stream socket.
            let std = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
            std.set_nonblocking(true)?;
            let path = std
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Path::to_path_buf))
                .unwrap_or_else(|| PathBuf::from(format!("<fd {}>", std.as_raw_fd())));
            Ok(Listener::Unix { sock: UnixListener::from_std(std), path, owned: None })
        }
        other => {
            warn!("socket activation: descriptor {fd} has address family {other}");
            Err(bad_fd(fd, "is neither TCP nor a Unix socket"))
        }
    }
}
