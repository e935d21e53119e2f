//! The `wsvnc` binary as users run it, and loop behaviours the relay tests
//! don't cover: SIGTERM/SIGINT shutdown (close 1001, exit 0), websockify's
//! positional form, heartbeat pings, the idle timeout, half-close from the
//! target, Unix-socket targets, subprotocol echo, permessage-deflate on the
//! relay.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use tungstenite::Message;
use wsvnc::{Target, TargetAddr};

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
        "--cert",
        "--key",
        "--ssl-only",
        "--trusted-proxy",
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

/// `--web DIR` files are read on the helper thread; responses keep the
/// order of pipelined requests, and the loop serves others meanwhile.
#[test]
fn web_dir_files_are_served_off_the_loop_in_request_order() {
    let dir = std::env::temp_dir().join(format!("wsvnc-webdir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><title>disk</title>").unwrap();
    std::fs::write(dir.join("a.js"), "export const a = 1;\n").unwrap();
    let mut cfg = config();
    cfg.web_dir = Some(dir.clone());
    let srv = start(cfg);
    let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /a.js HTTP/1.1\r\nHost: localhost\r\n\r\nGET /missing.js HTTP/1.1\r\nHost: localhost\r\n\r\nGET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let statuses: Vec<&str> = all.match_indices("HTTP/1.1 ").map(|(i, _)| &all[i + 9..i + 12]).collect();
    assert_eq!(statuses, ["200", "404", "200"], "{all}");
    let (a, idx) = (all.find("export const a").unwrap(), all.find("<title>disk").unwrap());
    assert!(a < idx, "responses out of order:\n{all}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A client that pipelines requests and never reads the answers holds at
/// most one response in the server (issue 10: pipelined amplification).
#[test]
fn pipelined_requests_that_are_never_read_hold_one_response() {
    let srv = Spawned::start(&[]);
    let before = srv.rss_kib();
    let mut conns = Vec::new();
    let req = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(1400);
    for _ in 0..10 {
        let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(&req); // may block once the server stops reading: fine
        conns.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let grown = srv.rss_kib().saturating_sub(before);
    assert!(grown < 4 * 1024, "RSS grew by {grown} KiB for 10 clients that never read");
    // The server still answers everyone else.
    let r = http_raw(srv.addr, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&r), 200);
}

/// A WebSocket client that floods pings and never reads stops being read
/// once its pongs fill its output (issue 10: memory before authentication):
/// on the gateway path (a viewer that never said hello) and the relay.
#[test]
fn ping_flood_from_a_client_that_never_reads_is_bounded() {
    // A masked Ping with 125 bytes of payload.
    let mut ping = vec![0x89, 0x80 | 125, 1, 2, 3, 4];
    ping.extend(std::iter::repeat_n(0u8, 125));
    let flood = ping.repeat(8192); // ~1 MiB of pings, answered by ~1 MiB of pongs
    let echo = tcp_echo().to_string();
    for (args, path) in [(&["--demo"][..], "/ws"), (&["--target", &echo, "--relay"][..], "/websockify")] {
        let srv = Spawned::start(args);
        let mut socks = Vec::new();
        // The demo session (its framebuffers) is up before the measurement.
        let (s, _) = raw_upgrade_with(srv.addr, path, "");
        socks.push(s);
        std::thread::sleep(Duration::from_millis(500));
        let before = srv.rss_kib();
        for _ in 0..4 {
            let (mut s, head) = raw_upgrade_with(srv.addr, path, "");
            assert!(head.starts_with("http/1.1 101"), "{head}");
            s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
            for _ in 0..8 {
                if s.write_all(&flood).is_err() {
                    break; // the server stopped reading: what we want
                }
            }
            socks.push(s);
        }
        std::thread::sleep(Duration::from_millis(500));
        let grown = srv.rss_kib().saturating_sub(before);
        assert!(grown < 6 * 1024, "{path}: RSS grew by {grown} KiB for 4 clients flooding 8 MiB of pings each");
    }
}

/// permessage-deflate state is made when first needed: idle viewers that
/// negotiated it and sent nothing cost little (issue 10: ~300 KiB each before).
#[test]
fn idle_deflate_websockets_hold_no_compression_state() {
    let srv = Spawned::start(&["--demo"]);
    let mut socks = Vec::new();
    let (s, _) = raw_upgrade_with(srv.addr, "/ws", "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    socks.push(s);
    std::thread::sleep(Duration::from_millis(300)); // the demo session is up
    let before = srv.rss_kib();
    for _ in 0..100 {
        let (s, head) = raw_upgrade_with(srv.addr, "/ws", "Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert!(head.contains("permessage-deflate"), "{head}");
        socks.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let per_conn = srv.rss_kib().saturating_sub(before) / 100;
    assert!(per_conn < 64, "{per_conn} KiB per idle deflate WebSocket");
}
