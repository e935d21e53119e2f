//! Relay mode against real TCP targets with a real WebSocket client.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use tungstenite::Message;
use wsvnc::{Target, TargetAddr};

/// A server with relay mode on (`--relay`) and no target.
fn relay_config() -> wsvnc::Config {
    let mut cfg = config();
    cfg.relay = true;
    cfg
}

fn relay_to(addr: std::net::SocketAddr) -> Running {
    let mut cfg = relay_config();
    cfg.target = Some(Target::new(TargetAddr::Tcp(addr)));
    start(cfg)
}

#[test]
fn binary_round_trip_through_a_tcp_echo_target() {
    let srv = relay_to(tcp_echo());
    let mut ws = connect(&srv.url("/websockify"));
    for size in [1usize, 125, 126, 65535, 65536, 1 << 20] {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
        ws.send(Message::Binary(data.clone())).unwrap();
        let mut got = Vec::new();
        while got.len() < size {
            match ws.read().unwrap() {
                Message::Binary(b) => got.extend_from_slice(&b),
                Message::Ping(_) | Message::Pong(_) => {}
                m => panic!("unexpected {m:?}"),
            }
        }
        assert_eq!(got, data, "size {size}");
    }
    ws.close(None).unwrap();
}

#[test]
fn target_bytes_arrive_in_order_and_close_is_1000() {
    let total = 8 << 20;
    let srv = relay_to(tcp_source(total));
    let mut ws = connect(&srv.url("/websockify"));
    let mut n = 0usize;
    loop {
        match ws.read() {
            Ok(Message::Binary(b)) => {
                assert!(b.iter().all(|x| *x == 0xA5));
                n += b.len();
            }
            Ok(Message::Close(Some(f))) => {
                assert_eq!(u16::from(f.code), 1000);
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(n, total);
}

#[test]
fn unknown_token_and_missing_target_are_refused_with_a_reason() {
    let srv = start(relay_config());
    let mut ws = connect(&srv.url("/websockify"));
    let (code, reason) = expect_close(&mut ws);
    assert_eq!(code, 1008);
    assert!(reason.contains("no target"), "{reason}");

    let dir = std::env::temp_dir().join(format!("wsvnc-tok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tokens");
    std::fs::write(&file, format!("good: {}\n", tcp_echo())).unwrap();
    let mut cfg = relay_config();
    cfg.token_file = Some(file.clone());
    let srv = start(cfg);
    let mut ws = connect(&srv.url("/websockify?token=nope"));
    let (code, reason) = expect_close(&mut ws);
    assert_eq!(code, 1008);
    assert!(reason.contains("unknown token"), "{reason}");
    let mut ws = connect(&srv.url("/websockify?token=good"));
    ws.send(Message::Binary(b"hi".to_vec())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Binary(b"hi".to_vec()));
    // The URL cannot name a host: a host:port "token" is just an unknown token.
    let mut ws = connect(&srv.url("/websockify?token=127.0.0.1:22"));
    assert_eq!(expect_close(&mut ws).0, 1008);
}

#[test]
fn token_file_is_reread_when_it_changes() {
    let dir = std::env::temp_dir().join(format!("wsvnc-tok2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tokens");
    std::fs::write(&file, "a: 127.0.0.1:1\n").unwrap();
    let mut cfg = relay_config();
    cfg.token_file = Some(file.clone());
    let srv = start(cfg);
    let mut ws = connect(&srv.url("/websockify?token=b"));
    assert_eq!(expect_close(&mut ws).0, 1008);
    std::thread::sleep(Duration::from_millis(1100)); // distinct mtime
    std::fs::write(&file, format!("a: 127.0.0.1:1\nb: {}\n", tcp_echo())).unwrap();
    let mut ok = false;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let mut ws = connect(&srv.url("/websockify?token=b"));
        ws.send(Message::Binary(b"x".to_vec())).unwrap();
        if let Ok(Message::Binary(b)) = ws.read() {
            assert_eq!(b, b"x");
            ok = true;
            break;
        }
    }
    assert!(ok, "token b never became usable");
}

#[test]
fn unreachable_target_closes_1011() {
    let srv = relay_to(closed_port());
    let mut ws = connect(&srv.url("/websockify"));
    let (code, reason) = expect_close(&mut ws);
    assert_eq!(code, 1011);
    assert!(reason.contains("connect"), "{reason}");
}

#[test]
fn text_messages_are_refused_1003_and_others_are_unaffected() {
    let srv = relay_to(tcp_echo());
    let mut good = connect(&srv.url("/websockify"));
    let mut bad = connect(&srv.url("/websockify"));
    bad.send(Message::Text("hello".into())).unwrap();
    assert_eq!(expect_close(&mut bad).0, 1003);
    good.send(Message::Binary(b"still here".to_vec())).unwrap();
    assert_eq!(good.read().unwrap(), Message::Binary(b"still here".to_vec()));
}

/// Raw bytes: an upgrade, then whatever frames the test writes.
fn raw_upgrade(addr: std::net::SocketAddr) -> TcpStream {
    let (s, head) = raw_upgrade_with(addr, "/websockify", "");
    assert!(head.starts_with("http/1.1 101"), "{head}");
    s
}

fn read_close_code(s: &mut TcpStream) -> u16 {
    let mut all = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match common::read_some(s, &mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&b[..n]),
        }
    }
    // Find the close frame (opcode 8) among the server's frames.
    let mut i = 0;
    while i + 2 <= all.len() {
        let op = all[i] & 0x0f;
        let len = (all[i + 1] & 0x7f) as usize;
        let (hl, len) = match len {
            126 => (4, u16::from_be_bytes([all[i + 2], all[i + 3]]) as usize),
            _ => (2, len),
        };
        if op == 8 {
            return u16::from_be_bytes([all[i + hl], all[i + hl + 1]]);
        }
        i += hl + len;
    }
    panic!("no close frame in {all:?}");
}

#[test]
fn unmasked_client_frame_is_1002() {
    let srv = relay_to(tcp_echo());
    let mut s = raw_upgrade(srv.addr);
    s.write_all(&[0x82, 0x02, b'h', b'i']).unwrap();
    assert_eq!(read_close_code(&mut s), 1002);
}

#[test]
fn reserved_opcode_and_bits_are_1002() {
    let srv = relay_to(tcp_echo());
    for frame in [[0x83u8, 0x80, 0, 0, 0, 0], [0xC2, 0x80, 0, 0, 0, 0]] {
        let mut s = raw_upgrade(srv.addr);
        s.write_all(&frame).unwrap();
        assert_eq!(read_close_code(&mut s), 1002, "{frame:?}");
    }
}

#[test]
fn a_browser_that_stops_reading_does_not_grow_memory() {
    // The target pushes 256 MiB; the client reads nothing for a while.
    // The server runs as its own process so its RSS is its own.
    let srv = Spawned::start(&["--relay", "--target", &tcp_source(256 << 20).to_string()]);
    let before = srv.rss_kib();
    let mut ws = connect(&srv.url("/websockify"));
    std::thread::sleep(Duration::from_secs(2));
    let grown = srv.rss_kib().saturating_sub(before);
    // Kernel socket buffers don't count in RSS; our relay buffers are capped at
    // 256 KiB per direction (plus a pooled pipe). Slack for allocator noise.
    assert!(grown < 4 * 1024, "RSS grew by {grown} KiB while the browser was not reading");
    // And the stream is intact once the browser reads again.
    let mut got = 0usize;
    while got < 8 << 20 {
        match ws.read().unwrap() {
            Message::Binary(b) => {
                assert!(b.iter().all(|&x| x == 0xA5));
                got += b.len();
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn graceful_shutdown_sends_1001() {
    let srv = relay_to(tcp_echo());
    let mut ws = connect(&srv.url("/websockify"));
    ws.send(Message::Binary(b"x".to_vec())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Binary(b"x".to_vec()));
    let stop = srv.stop.clone();
    let t = std::thread::spawn(move || stop.stop());
    let (code, _) = expect_close(&mut ws);
    assert_eq!(code, 1001);
    t.join().unwrap();
    srv.shutdown().unwrap();
}

#[test]
fn max_connections_refuses_cleanly_with_503() {
    let mut cfg = relay_config();
    cfg.max_connections = 2;
    cfg.target = Some(Target::new(TargetAddr::Tcp(tcp_echo())));
    let srv = start(cfg);
    let a = connect(&srv.url("/websockify"));
    let b = connect(&srv.url("/websockify"));
    let resp = http_raw(srv.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&resp), 503, "{resp}");
    drop(a);
    drop(b);
}

/// A token-file reload ends the relays whose token was removed or now
/// leads elsewhere (1001); the others go on.
#[test]
fn token_file_reload_closes_relays_of_removed_or_repointed_tokens() {
    let dir = std::env::temp_dir().join(format!("wsvnc-tok3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tokens");
    let (a, b) = (tcp_echo(), tcp_echo());
    std::fs::write(&file, format!("keep: {a}\nmove: {a}\ngone: {a}\n")).unwrap();
    let mut cfg = config();
    cfg.token_file = Some(file.clone());
    cfg.relay = true;
    let srv = start(cfg);
    let mut ws: Vec<_> =
        ["keep", "move", "gone"].iter().map(|t| connect(&srv.url(&format!("/websockify?token={t}")))).collect();
    for w in &mut ws {
        w.send(Message::Binary(b"x".to_vec())).unwrap();
        assert_eq!(w.read().unwrap(), Message::Binary(b"x".to_vec()));
    }
    std::thread::sleep(Duration::from_millis(1100)); // distinct mtime
    std::fs::write(&file, format!("keep: {a}\nmove: {b}\n")).unwrap();
    for w in &mut ws[1..] {
        let (code, reason) = expect_close(w);
        assert_eq!(code, 1001, "{reason}");
        assert!(reason.contains("removed or re-pointed"), "{reason}");
    }
    ws[0].send(Message::Binary(b"still".to_vec())).unwrap();
    assert_eq!(ws[0].read().unwrap(), Message::Binary(b"still".to_vec()));
    let _ = std::fs::remove_dir_all(&dir);
}
