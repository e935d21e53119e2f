//! Limits on peers that hold resources without doing anything (issue 10 §5):
//! the ClientHello deadline, the pong timeout, the per-client-address cap,
//! the listen backlog, an idle timeout that the server's own pings do not
//! reset, and no VNC connection for a viewer that has not said hello; also
//! peer strings escaped in the log and SIGHUP with a live gateway session.
//! The real binary, scripted peers over real sockets.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// A masked client frame (RFC 6455 §5.2) with a short payload.
fn client_frame(op: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut f = vec![0x80 | op, 0x80 | payload.len() as u8];
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

/// The next server frame: (opcode, payload). Panics on a read timeout.
fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).expect("a frame before the read timeout");
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).unwrap();
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0; len];
    s.read_exact(&mut payload).unwrap();
    (h[0] & 0x0f, payload)
}

/// Read frames until a Close (answering nothing, or each Ping with a Pong
/// when `answer_pings`); returns its code and reason and how long it took.
fn wait_for_close(s: &mut TcpStream, answer_pings: bool) -> (u16, String, Duration, usize) {
    let t0 = Instant::now();
    let mut pings = 0;
    loop {
        assert!(t0.elapsed() < Duration::from_secs(30), "no Close within 30 s");
        let (op, payload) = read_frame(s);
        match op {
            0x8 => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                return (code, String::from_utf8_lossy(&payload[2..]).into_owned(), t0.elapsed(), pings);
            }
            0x9 => {
                pings += 1;
                if answer_pings {
                    s.write_all(&client_frame(0xA, &payload)).unwrap();
                }
            }
            _ => {}
        }
    }
}

/// Answer every Ping on `s` for `secs` seconds in a thread; the thread
/// returns how many it answered, or panics if the server closed.
fn answer_pings_for(mut s: TcpStream, secs: u64) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        s.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
        let t0 = Instant::now();
        let mut answered = 0;
        while t0.elapsed() < Duration::from_secs(secs) {
            let (op, payload) = read_frame(&mut s);
            assert_ne!(op, 0x8, "a peer answering pings was closed: {}", String::from_utf8_lossy(&payload));
            if op == 0x9 {
                s.write_all(&client_frame(0xA, &payload)).unwrap();
                answered += 1;
            }
        }
        answered
    })
}

/// A VNC server stand-in that only counts the connections it accepts (and
/// holds them open, saying nothing).
fn counting_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            c.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (addr, count)
}

/// A TCP connection from source address `src` (another loopback address)
/// to `dst`.
fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> TcpStream {
    // SAFETY: plain socket calls on a descriptor created here; it is owned
    // by the TcpStream from then on (or closed on failure).
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let s = TcpStream::from_raw_fd(fd);
        let sin = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let a = sin(src, 0);
        assert_eq!(libc::bind(fd, &a as *const _ as *const libc::sockaddr, len), 0, "bind {src}");
        let SocketAddr::V4(d) = dst else { panic!("IPv4 only") };
        let b = sin(*d.ip(), d.port());
        let rc = libc::connect(fd, &b as *const _ as *const libc::sockaddr, len);
        assert_eq!(rc, 0, "connect {src} → {dst}: {}", std::io::Error::last_os_error());
        s
    }
}

/// What the server answers on a fresh connection within 2 s: "" when it
/// says nothing (the connection was admitted and waits for a request).
fn first_words(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 64];
    match common::read_some(s, &mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => String::new(),
        Err(e) => panic!("read: {e}"),
    }
}

/// A viewer that upgrades and never says ClientHello is closed with 1008
/// at the deadline, and no VNC connection was opened for it.
#[test]
fn a_viewer_without_client_hello_is_closed_at_the_deadline() {
    let (vnc, accepts) = counting_listener();
    let srv = Spawned::start(&["--target", &vnc.to_string(), "--handshake-timeout", "2"]);
    let (mut s, head) = raw_upgrade_with(srv.addr, "/ws", "");
    assert!(head.starts_with("http/1.1 101"), "{head}");
    let (code, reason, took, _) = wait_for_close(&mut s, false);
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("ClientHello"), "{reason}");
    assert!(took >= Duration::from_millis(1500), "closed after {took:?}, before the deadline");
    assert_eq!(accepts.load(Ordering::SeqCst), 0, "a VNC connection was opened for a viewer without hello");
}

/// A bare upgrade opens no connection to the VNC server; a ClientHello
/// does; a first message that is not a ClientHello, or a ClientHello of
/// another protocol version, is a 1002 and opens none.
#[test]
fn the_vnc_server_is_connected_only_after_client_hello() {
    let (vnc, accepts) = counting_listener();
    let srv = Spawned::start(&["--target", &vnc.to_string()]);
    let mut bare = Vec::new();
    for _ in 0..5 {
        let (s, head) = raw_upgrade_with(srv.addr, "/ws", "");
        assert!(head.starts_with("http/1.1 101"), "{head}");
        bare.push(s);
    }
    let (mut wrong, _) = raw_upgrade_with(srv.addr, "/ws", "");
    wrong.write_all(&client_frame(0x2, &[0x81, 1, 0, 0, 0, 0x61])).unwrap(); // a Key message
    let (code, reason, _, _) = wait_for_close(&mut wrong, false);
    assert_eq!(code, 1002, "{reason}");
    let (mut old, _) = raw_upgrade_with(srv.addr, "/ws", "");
    old.write_all(&client_frame(0x2, &[0x80, wsvnc::gateway::proto::VERSION - 1])).unwrap(); // an older ClientHello
    let (code, reason, _, _) = wait_for_close(&mut old, false);
    assert_eq!((code, reason.as_str()), (1002, "unsupported protocol version"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(accepts.load(Ordering::SeqCst), 0, "upgrades without a usable ClientHello opened VNC connections");
    bare[0].write_all(&client_frame(0x2, &[0x80, wsvnc::gateway::proto::VERSION])).unwrap(); // ClientHello
    let deadline = Instant::now() + Duration::from_secs(10);
    while accepts.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "ClientHello did not open the VNC connection");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(accepts.load(Ordering::SeqCst), 1, "one session for one hello");
}

/// A WebSocket peer that does not answer heartbeat pings is closed (1001)
/// after --pong-timeout; one that answers stays.
#[test]
fn a_peer_that_does_not_answer_pings_is_closed() {
    let echo = tcp_echo().to_string();
    let srv = Spawned::start_with(|addr| {
        let a =
            ["--listen", &addr.to_string(), "--target", &echo, "--relay", "--heartbeat", "1", "--pong-timeout", "2"];
        a.iter().map(|s| s.to_string()).collect()
    });
    let (mut silent, _) = raw_upgrade_with(srv.addr, "/websockify", "");
    let (alive, _) = raw_upgrade_with(srv.addr, "/websockify", "");
    let alive = answer_pings_for(alive, 7);
    let (code, reason, took, pings) = wait_for_close(&mut silent, false);
    assert_eq!((code, reason.as_str()), (1001, "no pong"));
    assert!(pings >= 1 && took >= Duration::from_secs(2), "{pings} pings, {took:?}");
    // The answering peer has had the same time and more: still open.
    let answered = alive.join().expect("the answering peer stayed open");
    assert!(answered >= 4, "{answered} pings in 7 s with --heartbeat 1");
}

/// --ws-idle-timeout counts only what the peer sends: the server's own
/// pings (heartbeat shorter than the idle timeout) do not keep a silent
/// peer open, and a peer's pongs do keep it open.
#[test]
fn the_idle_timeout_is_not_reset_by_the_servers_pings() {
    let echo = tcp_echo().to_string();
    let srv = Spawned::start_with(|addr| {
        let a = [
            "--listen",
            &addr.to_string(),
            "--target",
            &echo,
            "--relay",
            "--heartbeat",
            "1",
            "--pong-timeout",
            "0",
            "--ws-idle-timeout",
            "3",
        ];
        a.iter().map(|s| s.to_string()).collect()
    });
    let (mut silent, _) = raw_upgrade_with(srv.addr, "/websockify", "");
    let (ponging, _) = raw_upgrade_with(srv.addr, "/websockify", "");
    let ponging = answer_pings_for(ponging, 7);
    let (code, reason, took, pings) = wait_for_close(&mut silent, false);
    assert_eq!((code, reason.as_str()), (1001, "idle timeout"));
    assert!(pings >= 2, "the heartbeat was shorter than the idle timeout: {pings} pings first");
    assert!(took >= Duration::from_millis(2500), "{took:?}");
    ponging.join().expect("a peer answering pings is not idle");
}

/// --max-per-client: connections beyond the cap from one address get 503;
/// another address is not disturbed; a trusted proxy is exempt; closing
/// one makes room; the refusals of a burst are logged once.
#[test]
fn connections_per_client_address_are_capped() {
    let addr = free_addr();
    let args = ["--listen", &addr.to_string(), "--demo", "--max-per-client", "3", "--trusted-proxy", "127.0.0.3"];
    let d = Daemon::start(&args, addr);
    std::thread::sleep(Duration::from_millis(100)); // Daemon::start's probe connection is gone
    let a = Ipv4Addr::new(127, 0, 0, 2);
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect_from(a, addr)).collect();
    for s in held.iter_mut() {
        assert_eq!(first_words(s), "", "admitted connections wait for a request");
    }
    for _ in 0..10 {
        let mut s = connect_from(a, addr);
        let words = first_words(&mut s);
        assert!(words.starts_with("HTTP/1.1 503"), "over the cap: {words:?}");
    }
    // Another address, and a trusted proxy beyond the cap: admitted.
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 4), addr);
    other.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    other.read_to_string(&mut resp).unwrap();
    assert_eq!(status_of(&resp), 200, "{resp}");
    let mut proxied: Vec<TcpStream> = (0..5).map(|_| connect_from(Ipv4Addr::new(127, 0, 0, 3), addr)).collect();
    for s in proxied.iter_mut() {
        assert_eq!(first_words(s), "", "a trusted proxy is not capped");
    }
    // One closes: room for one more.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = connect_from(a, addr);
        if first_words(&mut s).is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no room after a connection closed");
        std::thread::sleep(Duration::from_millis(50));
    }
    d.signal(libc::SIGTERM);
    let (_, log) = d.wait();
    let refusal_lines = log.lines().filter(|l| l.contains("--max-per-client") && l.contains("refused:")).count();
    assert_eq!(refusal_lines, 1, "the refusals of one burst are logged once:\n{log}");
    assert!(log.contains("127.0.0.2: 10 connection(s) refused"), "the burst's count is logged:\n{log}");
}

/// The listen backlog: the system's maximum by default (mio binds with
/// 128), --backlog N as given. `ss -ltn` shows a listener's backlog in
/// its Send-Q column.
#[test]
fn the_listen_backlog_is_somaxconn_or_as_given() {
    let somaxconn: u32 =
        std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim().parse().expect("somaxconn");
    let listed = |addr: SocketAddr| -> u32 {
        let out = std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{}", addr.port())])
            .output()
            .expect("ss (Debian package iproute2) is needed");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text.lines().find(|l| l.contains(&format!("127.0.0.1:{}", addr.port()))).unwrap_or_else(|| {
            panic!("no listener on {addr} in ss output:\n{text}");
        });
        line.split_whitespace().nth(2).and_then(|q| q.parse().ok()).expect("Send-Q")
    };
    let default = Spawned::start(&[]);
    assert_eq!(listed(default.addr), somaxconn, "default backlog");
    let small = Spawned::start(&["--backlog", "77"]);
    assert_eq!(listed(small.addr), 77.min(somaxconn));
}

/// Peer-supplied strings reach the log escaped (`logsafe::esc`): a token
/// in the URL with a line break cannot forge a log line, a Close reason
/// with a bidi override cannot reorder one; a path with a line break is a 400.
#[test]
fn peer_strings_cannot_forge_log_lines() {
    let dir = std::env::temp_dir().join(format!("wsvnc-limits-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("echo: {}\n", tcp_echo())).unwrap();
    let addr = free_addr();
    let args = ["--listen", &addr.to_string(), "--relay", "--token-file", tokens.to_str().unwrap(), "--heartbeat", "0"];
    let d = Daemon::start(&args, addr);
    let (mut s, _) = raw_upgrade_with(addr, "/websockify?token=x%0AFORGED-TOKEN%E2%80%AE", "");
    let (code, _, _, _) = wait_for_close(&mut s, false);
    assert_eq!(code, 1008);
    assert_eq!(status_of(&http_raw(addr, b"GET /a%0AFORGED HTTP/1.1\r\nHost: localhost\r\n\r\n")), 400);
    let (mut s, head) = raw_upgrade_with(addr, "/websockify?token=echo", "");
    assert!(head.starts_with("http/1.1 101"), "{head}");
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice("bye \u{202e}desrever".as_bytes()); // no control character: only the bidi override
    s.write_all(&client_frame(0x8, &close)).unwrap();
    let (code, _, _, _) = wait_for_close(&mut s, false);
    assert_eq!(code, 1000);
    std::thread::sleep(Duration::from_millis(200));
    d.signal(libc::SIGTERM);
    let (_, log) = d.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(log.contains("\\nFORGED-TOKEN"), "the token not logged escaped:\n{log}");
    assert!(!log.lines().any(|l| l.starts_with("FORGED")), "a peer forged a log line:\n{log}");
    assert!(log.contains("bye \\u{202e}desrever"), "the Close reason not logged escaped:\n{log}");
    assert!(!log.contains('\u{202e}'), "a bidi override reached the log:\n{log}");
}

/// SIGHUP reloads (here: nothing to reload) and keeps every live gateway
/// session: the viewer's WebSocket still answers after it.
#[test]
fn sighup_keeps_live_gateway_sessions() {
    let addr = free_addr();
    let d = Daemon::start(&["--listen", &addr.to_string(), "--demo", "--heartbeat", "0"], addr);
    let (mut s, _) = raw_upgrade_with(addr, "/ws", "");
    s.write_all(&client_frame(0x2, &[0x80, wsvnc::gateway::proto::VERSION])).unwrap();
    let t0 = Instant::now();
    while read_frame(&mut s).0 != 0x2 {
        assert!(t0.elapsed() < Duration::from_secs(10), "no message from the session");
    }
    d.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(&client_frame(0x9, b"still there?")).unwrap();
    loop {
        let (op, payload) = read_frame(&mut s);
        assert_ne!(op, 0x8, "closed by SIGHUP: {}", String::from_utf8_lossy(&payload));
        if op == 0xA {
            assert_eq!(payload, b"still there?");
            break;
        }
    }
    d.signal(libc::SIGTERM);
    let (status, log) = d.wait();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("SIGHUP: nothing to reload"), "{log}");
}
