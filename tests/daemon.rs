//! The `wsvnc` binary as users run it, and loop behaviours the relay tests
//! don't cover: SIGTERM/SIGINT shutdown (close 1001, exit 0), websockify's
//! positional form, heartbeat pings, the idle timeout, half-close from the
//! target, Unix-socket targets, subprotocol echo, permessage-deflate on the
//! relay.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use tungstenite::Message;
use wsvnc::{Target, TargetAddr};

/// The daemon binary as a child process, killed on drop.
struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(args: &[&str], addr: SocketAddr) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_wsvnc"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wsvnc");
        let d = Daemon { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "wsvnc did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0);
    }

    /// Wait for exit (bounded); returns the exit status and what it logged.
    fn wait(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let mut log = String::new();
                self.child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
                return (st, log);
            }
            assert!(Instant::now() < deadline, "wsvnc did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn shutdown_on(sig: libc::c_int) {
    let target = tcp_echo();
    let addr = free_addr();
    let d = Daemon::start(&["--listen", &addr.to_string(), "--target", &target.to_string(), "--relay"], addr);
    let mut ws = connect(&format!("ws://{addr}/websockify"));
    ws.send(Message::Binary(b"ping".to_vec())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Binary(b"ping".to_vec()));
    d.signal(sig);
    let (code, _) = expect_close(&mut ws);
    assert_eq!(code, 1001, "every WebSocket gets 1001 going away");
    let (status, log) = d.wait();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    // One line when the connection opened and one when it closed, with the
    // close code and byte counts.
    assert!(log.contains("1001"), "close line with code 1001 missing from log:\n{log}");
}

#[test]
fn sigterm_closes_every_websocket_with_1001_and_exits_0() {
    shutdown_on(libc::SIGTERM);
}

#[test]
fn sigint_closes_every_websocket_with_1001_and_exits_0() {
    shutdown_on(libc::SIGINT);
}

#[test]
fn websockify_positional_form_relays() {
    let target = tcp_echo();
    let addr = free_addr();
    let _d = Daemon::start(&[&format!("127.0.0.1:{}", addr.port()), &target.to_string()], addr);
    let mut ws = connect(&format!("ws://{addr}/websockify"));
    ws.send(Message::Binary(vec![7; 1000])).unwrap();
    let mut got = Vec::new();
    while got.len() < 1000 {
        match ws.read().unwrap() {
            Message::Binary(b) => got.extend(b),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, vec![7; 1000]);
}

#[test]
fn bad_command_line_exits_2_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsvnc")).arg("--listen").arg("nonsense").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wsvnc:"));
    let help = Command::new(env!("CARGO_BIN_EXE_wsvnc")).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for opt in [
        "--listen",
        "--target",
        "--token-file",
        "--web",
        "--allow-origin",
        "--max-connections",
        "--idle-timeout",
        "--heartbeat",
        "--unix-target",
        "--demo",
        "--encodings",
        "--relay",
        "--ws-idle-timeout",
        "--token-plugin",
        "--token-source",
        "--target-config",
        "--web-csp",
    ] {
        assert!(text.contains(opt), "--help does not explain {opt}");
    }
}

fn relay_cfg(target: SocketAddr) -> wsvnc::Config {
    let mut cfg = config();
    cfg.relay = true;
    cfg.target = Some(Target::new(TargetAddr::Tcp(target)));
    cfg
}

#[test]
fn heartbeat_pings_arrive() {
    let mut cfg = relay_cfg(tcp_echo());
    cfg.heartbeat = Some(Duration::from_secs(1));
    let srv = start(cfg);
    let mut ws = connect(&srv.url("/websockify"));
    // tungstenite answers pings itself and hands them to us too.
    match ws.read().expect("a ping within the read timeout") {
        Message::Ping(_) => {}
        other => panic!("expected a ping, got {other:?}"),
    }
}

#[test]
fn idle_timeout_closes_quiet_connections_only() {
    let mut cfg = relay_cfg(tcp_echo());
    cfg.idle_timeout = Some(Duration::from_secs(2));
    let srv = start(cfg);
    let mut quiet = connect(&srv.url("/websockify"));
    let mut busy = connect(&srv.url("/websockify"));
    let t0 = Instant::now();
    // Keep `busy` talking; `quiet` says nothing.
    let mut closed_quiet = None;
    while t0.elapsed() < Duration::from_secs(15) {
        busy.send(Message::Binary(b"hi".to_vec())).unwrap();
        assert_eq!(busy.read().unwrap(), Message::Binary(b"hi".to_vec()));
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = quiet.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        }
        match quiet.read() {
            Ok(Message::Close(Some(f))) => {
                closed_quiet = Some(u16::from(f.code));
                break;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("quiet connection: {e}"),
        }
    }
    let code = closed_quiet.expect("the idle connection was closed");
    assert_eq!(code, 1001, "idle timeout closes with 1001");
    busy.send(Message::Binary(b"still".to_vec())).unwrap();
    assert_eq!(busy.read().unwrap(), Message::Binary(b"still".to_vec()), "the busy one is unaffected");
}

#[test]
fn target_half_close_delivers_everything_then_closes_1000() {
    // The target reads one message, answers, and shuts down its write side.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        s.write_all(&[b"reply:".as_slice(), &b].concat()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        std::thread::sleep(Duration::from_secs(5));
    });
    let srv = start(relay_cfg(target));
    let mut ws = connect(&srv.url("/websockify"));
    ws.send(Message::Binary(b"hello".to_vec())).unwrap();
    let mut got = Vec::new();
    let code = loop {
        match ws.read().unwrap() {
            Message::Binary(b) => got.extend(b),
            Message::Close(f) => break f.map(|f| u16::from(f.code)).unwrap_or(1005),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(got, b"reply:hello");
    assert_eq!(code, 1000);
}

#[test]
fn unix_socket_target() {
    let dir = std::env::temp_dir().join(format!("wsvnc-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vnc.sock");
    let _ = std::fs::remove_file(&path);
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        s.write_all(&b).unwrap();
        std::thread::sleep(Duration::from_secs(2));
    });
    let mut cfg = config();
    cfg.relay = true;
    cfg.target = Some(Target::new(TargetAddr::Unix(path.clone())));
    let srv = start(cfg);
    let mut ws = connect(&srv.url("/websockify"));
    ws.send(Message::Binary(b"unix".to_vec())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Binary(b"unix".to_vec()));
    drop(ws);
    let _ = std::fs::remove_dir_all(&dir);
}

fn upgrade_head(addr: SocketAddr, path: &str, extra: &str) -> String {
    raw_upgrade_with(addr, path, extra).1
}

#[test]
fn binary_subprotocol_is_echoed_only_when_offered() {
    let srv = start(relay_cfg(tcp_echo()));
    let offered = upgrade_head(srv.addr, "/websockify", "Sec-WebSocket-Protocol: base64, binary\r\n");
    assert!(offered.starts_with("http/1.1 101"), "{offered}");
    assert!(offered.contains("sec-websocket-protocol: binary\r\n"), "{offered}");
    let not_offered = upgrade_head(srv.addr, "/websockify", "");
    assert!(not_offered.starts_with("http/1.1 101"), "{not_offered}");
    assert!(!not_offered.contains("sec-websocket-protocol"), "{not_offered}");
}

/// The relay declines permessage-deflate (RFC 7692 §5 lets a server decline):
/// RFB payloads are already compressed by their encodings, and the relay's
/// in-place framing (no copy, no per-message state) is what makes it fast.
/// The echo server (Autobahn) and gateway mode negotiate it.
#[test]
fn relay_declines_permessage_deflate_and_still_works() {
    let srv = start(relay_cfg(tcp_echo()));
    let head = upgrade_head(
        srv.addr,
        "/websockify",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    );
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(!head.contains("sec-websocket-extensions"), "{head}");
}

#[test]
fn out_of_file_descriptors_refuses_with_503_instead_of_hanging() {
    const NOFILE: u64 = 64;
    use std::os::unix::process::CommandExt;
    let target = tcp_echo();
    let addr = free_addr();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsvnc"));
    cmd.args(["--listen", &addr.to_string(), "--target", &target.to_string(), "--relay"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setrlimit is async-signal-safe; runs in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: NOFILE, rlim_max: NOFILE };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let _daemon = Daemon { child: cmd.spawn().unwrap() };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "wsvnc did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Relay connections take two descriptors each; open until refused.
    let mut open = Vec::new();
    let mut refused = None;
    for _ in 0..100 {
        match tungstenite::connect(format!("ws://{addr}/websockify")) {
            Ok((ws, _)) => open.push(ws),
            Err(tungstenite::Error::Http(resp)) => {
                refused = Some(resp.status().as_u16());
                break;
            }
            Err(e) => panic!("expected a WebSocket or a 503, got {e}"),
        }
    }
    assert_eq!(refused, Some(503), "no 503 after {} connections", open.len());
    assert!(!open.is_empty());
    // The connections already open are unaffected.
    let ws = &mut open[0];
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    ws.send(Message::Binary(b"alive".to_vec())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Binary(b"alive".to_vec()));
}
