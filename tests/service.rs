//! The binary under a service manager, with the manager's side spoken by
//! the test (this machine has no systemd as PID 1, so `systemd-run` cannot
//! be used): the `sd_notify` datagrams (READY, RELOADING, WATCHDOG,
//! STOPPING) received on a real Unix datagram socket; socket activation
//! with real listening sockets passed as descriptors 3 and 4
//! (`LISTEN_FDS`, `LISTEN_PID` set to the child's own pid in `pre_exec`);
//! `--pid-file`; `--listen unix:` with HTTP and WebSocket clients over the
//! Unix socket; `--user`/`--group` checked in /proc/PID/status (run as
//! root); the example unit files through `systemd-analyze verify` (Debian
//! package `systemd`).

mod common;
#[path = "common/v2.rs"]
mod v2;

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_addr, tcp_echo};
use tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_wsvnc");

/// A fresh directory for one test.
fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsvnc-service-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The wsvnc binary as a child, its log in a file (readable while it runs);
/// killed on drop.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(mut cmd: Command, dir: &Path) -> Proc {
        let log = dir.join("wsvnc.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(file).spawn().expect("start wsvnc");
        Proc { child, log }
    }

    fn start(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args).env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Proc::spawn(cmd, dir)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, sig) }, 0);
    }

    /// Wait (bounded) until `ready` holds; panics with the log if it never does.
    fn wait_for(&mut self, what: &str, mut ready: impl FnMut(&Proc) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready(self) {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("wsvnc exited ({st}) before {what}; log:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "no {what} within 20 s; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait (bounded) for the exit status.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "wsvnc did not exit; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 GET over any stream, the whole response (the server closes).
fn get(mut s: impl Read + Write, path: &str) -> String {
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn get_tcp(addr: std::net::SocketAddr, path: &str) -> String {
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    get(s, path)
}

fn get_unix(path: &Path, url: &str) -> String {
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    get(s, url)
}

fn assert_viewer_page(resp: &str) {
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("<title>wsvnc</title>"), "the embedded viewer page: {resp}");
}

/// The next datagram on the notification socket (bounded wait: the socket's
/// 20 s read timeout; a receive a signal interrupts (EINTR) is retried).
fn next_notify(sock: &UnixDatagram) -> String {
    let mut b = [0u8; 4096];
    let n = loop {
        match sock.recv(&mut b) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => break r.expect("an sd_notify message within 20 s"),
        }
    };
    String::from_utf8(b[..n].to_vec()).unwrap()
}

/// Receive until a message starting with `prefix` (skipping WATCHDOG=1 pings).
fn notify_until(sock: &UnixDatagram, prefix: &str) -> String {
    loop {
        let m = next_notify(sock);
        if m.starts_with(prefix) {
            return m;
        }
        assert_eq!(m, "WATCHDOG=1\n", "unexpected message while waiting for {prefix}");
    }
}

/// A notification socket at DIR/notify.sock (reads time out after 20 s).
fn notify_socket(dir: &Path) -> (UnixDatagram, PathBuf) {
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    (sock, path)
}

fn notify_protocol(abstract_name: bool) {
    let dir = tmp(if abstract_name { "notify-abstract" } else { "notify" });
    let (sock, notify_env) = if abstract_name {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("wsvnc-test-notify-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        (UnixDatagram::bind_addr(&addr).unwrap(), format!("@{name}"))
    } else {
        let path = dir.join("notify.sock");
        (UnixDatagram::bind(&path).unwrap(), path.to_str().unwrap().to_string())
    };
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "a: 127.0.0.1:5900\n").unwrap();
    let addr = free_addr();
    let p = Proc::start(
        &["--listen", &addr.to_string(), "--token-file", tokens.to_str().unwrap()],
        // 200 ms: a ping every 100 ms.
        &[("NOTIFY_SOCKET", &notify_env), ("WATCHDOG_USEC", "200000")],
        &dir,
    );

    let ready = next_notify(&sock);
    assert!(ready.starts_with("READY=1\n"), "the first message is READY=1: {ready:?}");
    assert!(ready.contains(&format!("STATUS=listening on http://{addr}/")), "{ready:?}");
    assert!(ready.contains(&format!("MAINPID={}\n", p.pid())), "{ready:?}");
    // READY=1 comes once the socket listens.
    assert_viewer_page(&get_tcp(addr, "/"));
    assert_eq!(next_notify(&sock), "WATCHDOG=1\n");
    assert_eq!(next_notify(&sock), "WATCHDOG=1\n", "pings repeat");

    p.signal(libc::SIGHUP);
    let reloading = notify_until(&sock, "RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading:?}");
    let again = notify_until(&sock, "READY=1");
    assert!(again.contains("STATUS=reloaded"), "{again:?}");

    let mut p = p;
    p.signal(libc::SIGTERM);
    notify_until(&sock, "STOPPING=1\n");
    assert!(p.wait_exit().success(), "log:\n{}", p.log());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sd_notify_ready_watchdog_reload_stopping() {
    notify_protocol(false);
}

#[test]
fn sd_notify_to_an_abstract_socket() {
    notify_protocol(true);
}

#[test]
fn idle_exit_says_stopping_too() {
    let dir = tmp("notify-idle");
    let (sock, path) = notify_socket(&dir);
    let mut p = Proc::start(
        &["--listen", &free_addr().to_string(), "--idle-timeout", "1"],
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
        &dir,
    );
    assert!(next_notify(&sock).starts_with("READY=1\n"));
    assert!(next_notify(&sock).starts_with("STOPPING=1\n"), "websockify's --idle-timeout exit is a stop too");
    assert!(p.wait_exit().success());
}

#[test]
fn watchdog_pings_only_for_the_named_pid() {
    // WATCHDOG_PID of another process: READY, no pings, and the log says nothing
    // about a watchdog; STOPPING follows READY directly.
    let dir = tmp("notify-pid");
    let (sock, path) = notify_socket(&dir);
    let addr = free_addr();
    let mut p = Proc::start(
        &["--listen", &addr.to_string()],
        &[("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "100000"), ("WATCHDOG_PID", "1")],
        &dir,
    );
    assert!(next_notify(&sock).starts_with("READY=1\n"));
    assert_viewer_page(&get_tcp(addr, "/"));
    p.signal(libc::SIGTERM);
    let m = next_notify(&sock);
    assert!(m.starts_with("STOPPING=1\n"), "no WATCHDOG=1 for another pid's watchdog: {m:?}");
    assert!(p.wait_exit().success());
    assert!(!p.log().contains("watchdog"), "{}", p.log());
}

/// Start wsvnc with `fds` as descriptors 3, 4, … and LISTEN_PID set to its
/// own pid, as systemd does.
fn spawn_activated(fds: &[RawFd], names: &str, args: &[&str], dir: &Path) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    let fds = fds.to_vec();
    // Everything the child needs is made before fork: pre_exec only copies
    // descriptors, writes digits into a buffer and calls putenv (the child
    // execs with `environ`, since no variable is set through `Command`).
    let mut pid_var = *b"LISTEN_PID=\0\0\0\0\0\0\0\0\0\0\0\0";
    let fds_var = CString::new(format!("LISTEN_FDS={}", fds.len())).unwrap();
    let names_var = CString::new(format!("LISTEN_FDNAMES={names}")).unwrap();
    let log_var = CString::new("RUST_LOG=info").unwrap();
    // SAFETY: between fork and exec the closure calls only fcntl, dup2,
    // getpid and putenv on memory it owns.
    unsafe {
        cmd.pre_exec(move || {
            let mut high = Vec::new();
            for (i, fd) in fds.iter().enumerate() {
                let h = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 100 + i as libc::c_int);
                if h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                high.push(h);
            }
            for (i, h) in high.iter().enumerate() {
                if libc::dup2(*h, 3 + i as libc::c_int) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            let mut pid = libc::getpid() as u32;
            let mut digits = [0u8; 10];
            let mut n = 0;
            loop {
                digits[n] = b'0' + (pid % 10) as u8;
                n += 1;
                pid /= 10;
                if pid == 0 {
                    break;
                }
            }
            for i in 0..n {
                pid_var[11 + i] = digits[n - 1 - i];
            }
            for var in [
                pid_var.as_mut_ptr().cast(),
                fds_var.as_ptr() as *mut _,
                names_var.as_ptr() as *mut _,
                log_var.as_ptr() as *mut _,
            ] {
                if libc::putenv(var) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Proc::spawn(cmd, dir)
}

#[test]
fn socket_activation_serves_inherited_tcp_and_unix_sockets() {
    let dir = tmp("activation");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap();
    let path = dir.join("activated.sock");
    let unix = UnixListener::bind(&path).unwrap();
    // --listen names a port that is not used: the inherited sockets win.
    let unused = free_addr();
    let mut p =
        spawn_activated(&[tcp.as_raw_fd(), unix.as_raw_fd()], "web:local", &["--listen", &unused.to_string()], &dir);
    p.wait_for("listening", |p| p.log().contains("wsvnc listening"));
    // Our copies go: only wsvnc holds the sockets now.
    drop(tcp);
    drop(unix);
    assert_viewer_page(&get_tcp(addr, "/"));
    assert_viewer_page(&get_unix(&path, "/"));
    assert!(std::net::TcpStream::connect(unused).is_err(), "--listen was not bound");
    let log = p.log();
    assert!(log.contains(&format!("socket activation: descriptor 3 http://{addr}/ (name web)")), "{log}");
    assert!(log.contains("descriptor 4 unix:") && log.contains("(name local)"), "{log}");
    // The descriptors are close-on-exec in wsvnc (nothing it starts inherits them).
    for fd in [3, 4] {
        let fdinfo = std::fs::read_to_string(format!("/proc/{}/fdinfo/{fd}", p.pid())).unwrap();
        let flags = fdinfo.lines().find_map(|l| l.strip_prefix("flags:")).unwrap().trim();
        let flags = u32::from_str_radix(flags, 8).unwrap();
        assert_ne!(flags & libc::O_CLOEXEC as u32, 0, "fd {fd} flags {flags:o}");
        assert_ne!(flags & libc::O_NONBLOCK as u32, 0, "fd {fd} flags {flags:o}");
    }
    p.signal(libc::SIGTERM);
    assert!(p.wait_exit().success());
    assert!(path.exists(), "an inherited Unix socket belongs to the service manager: not removed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn socket_activation_rejects_what_is_not_a_listening_socket() {
    let dir = tmp("activation-bad");
    let file = std::fs::File::create(dir.join("plain-file")).unwrap();
    let mut p = spawn_activated(&[file.as_raw_fd()], "", &["--listen", &free_addr().to_string()], &dir);
    let st = p.wait_exit();
    assert!(!st.success());
    assert!(p.log().contains("socket activation: descriptor 3 is not a socket"), "{}", p.log());
}

#[test]
fn pid_file_is_written_after_binding_and_removed_on_exit() {
    let dir = tmp("pidfile");
    let pid_file = dir.join("wsvnc.pid");
    let addr = free_addr();
    let mut p = Proc::start(&["--listen", &addr.to_string(), "--pid-file", pid_file.to_str().unwrap()], &[], &dir);
    p.wait_for("the pid file", |_| pid_file.exists());
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), format!("{}\n", p.pid()));
    assert_viewer_page(&get_tcp(addr, "/"));
    p.signal(libc::SIGTERM);
    assert!(p.wait_exit().success());
    assert!(!pid_file.exists(), "removed on a clean exit");

    // An unwritable pid file is an error at start, not a silent omission.
    let mut p =
        Proc::start(&["--listen", &free_addr().to_string(), "--pid-file", "/nonexistent/dir/wsvnc.pid"], &[], &dir);
    assert!(!p.wait_exit().success());
    assert!(p.log().contains("cannot write pid file /nonexistent/dir/wsvnc.pid"), "{}", p.log());
}

#[test]
fn unix_listener_serves_http_websocket_relay_and_gateway() {
    let dir = tmp("unix");
    let path = dir.join("wsvnc.sock");
    // A stale socket file (its listener gone) is replaced.
    drop(UnixListener::bind(&path).unwrap());
    let echo = tcp_echo();
    let listen = format!("unix:{}", path.display());
    let mut p = Proc::start(
        &["--listen", &listen, "--socket-mode", "0600", "--relay", "--target", &echo.to_string()],
        &[],
        &dir,
    );
    p.wait_for("listening", |p| p.log().contains("wsvnc listening"));
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "--socket-mode");
    assert!(p.log().contains("removing stale socket"), "{}", p.log());

    assert_viewer_page(&get_unix(&path, "/"));
    assert!(get_unix(&path, "/healthz").starts_with("HTTP/1.1 200"));

    // Relay mode over the Unix socket: bytes to the echo target and back.
    let s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (mut ws, resp) = tungstenite::client::client("ws://localhost/websockify", s).expect("upgrade over unix");
    assert_eq!(resp.status(), 101);
    let payload: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::Binary(payload.clone())).unwrap();
    let mut got = Vec::new();
    while got.len() < payload.len() {
        match ws.read().unwrap() {
            Message::Binary(b) => got.extend(b),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, payload);
    ws.close(None).unwrap();
    drop(ws);
    p.wait_for("the relay's log line", |p| p.log().contains("unix: WebSocket closed"));
    p.signal(libc::SIGTERM);
    assert!(p.wait_exit().success());
    assert!(!path.exists(), "the socket file wsvnc made is removed on exit");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unix_listener_gateway_reaches_the_demo_desktop() {
    use tungstenite::client::IntoClientRequest;
    let dir = tmp("unix-gw");
    let path = dir.join("gw.sock");
    let listen = format!("unix:{}", path.display());
    // The proxy in front (this test) is trusted to name the client.
    let args = ["--listen", &listen, "--demo", "--demo-size", "320x200", "--trusted-proxy", "unix"];
    let mut p = Proc::start(&args, &[], &dir);
    p.wait_for("listening", |p| p.log().contains("wsvnc listening"));
    let s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = "ws://localhost/ws".into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", v2::SUBPROTOCOL.parse().unwrap());
    req.headers_mut().insert("X-Forwarded-For", "203.0.113.9".parse().unwrap());
    let (mut ws, resp) = tungstenite::client::client(req, s).expect("gateway upgrade over unix");
    assert_eq!(resp.headers().get("Sec-WebSocket-Protocol").unwrap(), v2::SUBPROTOCOL);
    ws.send(Message::Binary(v2::enc::hello(v2::VERSION))).unwrap();
    let mut canvas = v2::Canvas::default();
    let hello = loop {
        let Message::Binary(b) = ws.read().unwrap() else { continue };
        let msgs = canvas.apply(&b).unwrap();
        if let Some(h) = msgs.into_iter().find(|m| matches!(m, v2::Msg::ServerHello { .. })) {
            break h;
        }
    };
    assert!(matches!(hello, v2::Msg::ServerHello { width: 320, height: 200, .. }), "{hello:?}");
    ws.close(None).unwrap();
    drop(ws);
    p.wait_for("the close line", |p| p.log().contains("203.0.113.9 (via unix): WebSocket closed"));
}

#[test]
fn unix_listener_refuses_a_live_socket_or_another_file() {
    let dir = tmp("unix-busy");
    let live = dir.join("live.sock");
    let _holder = UnixListener::bind(&live).unwrap();
    let mut p = Proc::start(&["--listen", &format!("unix:{}", live.display())], &[], &dir);
    assert!(!p.wait_exit().success());
    assert!(p.log().contains("is in use"), "{}", p.log());
    assert!(live.exists(), "a live socket is left alone");

    let file = dir.join("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    let mut p = Proc::start(&["--listen", &format!("unix:{}", file.display())], &[], &dir);
    assert!(!p.wait_exit().success());
    assert!(p.log().contains("is not a socket"), "{}", p.log());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

/// `Uid:`/`Gid:`/`Groups:` of a process.
fn ids(pid: u32, field: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines().find_map(|l| l.strip_prefix(field)).unwrap().split_whitespace().collect::<Vec<_>>().join(" ")
}

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the --user/--group tests must run as root (CI does)");
}

#[test]
fn user_and_group_are_dropped_after_binding() {
    require_root();
    let dir = tmp("privdrop");
    let path = dir.join("dropped.sock");
    let pid_file = dir.join("wsvnc.pid");
    let mut p = Proc::start(
        &[
            "--listen",
            &format!("unix:{}", path.display()),
            "--user",
            "nobody",
            "--group",
            "nogroup",
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
        &[],
        &dir,
    );
    p.wait_for("running as nobody", |p| p.log().contains("running as nobody:nogroup"));
    assert_eq!(ids(p.pid(), "Uid:"), "65534 65534 65534 65534");
    assert_eq!(ids(p.pid(), "Gid:"), "65534 65534 65534 65534");
    assert_eq!(ids(p.pid(), "Groups:"), "65534", "supplementary groups dropped");
    // The socket was made as root, before the drop, and handed to the user.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap().trim(), p.pid().to_string(), "pid file written as root");
    // And it serves.
    assert_viewer_page(&get_unix(&path, "/"));
    p.signal(libc::SIGTERM);
    assert!(p.wait_exit().success());
}

#[test]
fn user_alone_takes_the_primary_group() {
    require_root();
    let dir = tmp("privdrop-user");
    let addr = free_addr();
    let mut p = Proc::start(&["--listen", &addr.to_string(), "--user", "nobody"], &[], &dir);
    p.wait_for("running as nobody", |p| p.log().contains("running as nobody"));
    assert_eq!(ids(p.pid(), "Uid:"), "65534 65534 65534 65534");
    assert_eq!(ids(p.pid(), "Gid:"), "65534 65534 65534 65534", "nobody's primary group is nogroup (65534)");
    assert_viewer_page(&get_tcp(addr, "/"));
}

/// The command, run as nobody:nogroup with no supplementary group (switched
/// by the test between fork and exec, as a service manager would).
fn as_nobody(mut cmd: Command) -> Command {
    // SAFETY: setgroups/setgid/setuid between fork and exec, on integers.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

#[test]
fn a_failed_drop_refuses_to_serve() {
    // Unknown names: an error before anything is bound.
    let out = Command::new(BIN).args(["--user", "no-such-user-wsvnc"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--user no-such-user-wsvnc: no such user"));
    let out = Command::new(BIN).args(["--group", "no-such-group-wsvnc"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    // A process that is no longer root cannot switch users: wsvnc stops
    // instead of serving as the wrong user.
    require_root();
    let dir = tmp("privdrop-fail");
    let addr = free_addr();
    let mut cmd = Command::new(BIN);
    cmd.args(["--listen", &addr.to_string(), "--user", "daemon"]);
    let mut p = Proc::spawn(as_nobody(cmd), &dir);
    let st = p.wait_exit();
    assert!(!st.success());
    assert!(p.log().contains("cannot drop privileges: setgroups"), "{}", p.log());
    assert!(std::net::TcpStream::connect(addr).is_err(), "nothing is served");
}

#[test]
fn example_units_pass_systemd_analyze_verify() {
    let tool = Path::new("/usr/bin/systemd-analyze");
    assert!(tool.exists(), "systemd-analyze is missing: install the Debian package systemd");
    let dir = tmp("units");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/systemd");
    for unit in ["wsvnc.service", "wsvnc.socket"] {
        // ExecStart must name an existing executable for `verify`: point it at this build.
        let text = std::fs::read_to_string(src.join(unit)).unwrap().replace("/usr/local/bin/wsvnc", BIN);
        std::fs::write(dir.join(unit), text).unwrap();
    }
    let out =
        Command::new(tool).arg("verify").arg(dir.join("wsvnc.socket")).arg(dir.join("wsvnc.service")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // `verify` exits 0 on unknown keys too; any line about our units is a finding.
    let findings: Vec<&str> = stderr.lines().filter(|l| l.contains("wsvnc.")).collect();
    assert!(findings.is_empty(), "systemd-analyze verify:\n{stderr}");
    // The service is Type=notify with a watchdog, sandboxed.
    let unit = std::fs::read_to_string(src.join("wsvnc.service")).unwrap();
    for line in ["Type=notify", "WatchdogSec=", "DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes"] {
        assert!(unit.lines().any(|l| l.starts_with(line)), "{line} missing");
    }
}

#[test]
fn already_the_user_asked_for_serves() {
    // A manager that switched users itself, with --user left in the command line.
    require_root();
    let dir = tmp("privdrop-already");
    let addr = free_addr();
    let mut cmd = Command::new(BIN);
    cmd.args(["--listen", &addr.to_string(), "--user", "nobody"]).env("RUST_LOG", "info");
    let mut p = Proc::spawn(as_nobody(cmd), &dir);
    p.wait_for("already running as nobody", |p| p.log().contains("already running as nobody"));
    assert_viewer_page(&get_tcp(addr, "/"));
    assert_eq!(ids(p.pid(), "Uid:"), "65534 65534 65534 65534");
}
