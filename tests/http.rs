//! HTTP serving and upgrade checks over real sockets.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

#[test]
fn serves_the_embedded_viewer_and_healthz() {
    let srv = start(config());
    let r = http_raw(srv.addr, b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&r), 200, "{r}");
    assert!(r.to_ascii_lowercase().contains("content-type: text/html"), "{r}");
    let r = http_raw(srv.addr, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&r), 200);
    assert!(r.ends_with("ok\n"), "{r}");
    let r = http_raw(srv.addr, b"HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&r), 200);
    assert!(r.ends_with("\r\n\r\n"), "HEAD must have no body: {r}");
}

#[test]
fn bad_requests_get_exact_statuses() {
    let srv = start(config());
    let rows: &[(&[u8], u16)] = &[
        (b"GET /../etc/passwd HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
        (b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
        (b"GET /nonexistent.js HTTP/1.1\r\nHost: localhost\r\n\r\n", 404),
        (b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n", 405),
        (b"BLAH\r\n\r\n", 400),
    ];
    for (req, want) in rows {
        let r = http_raw(srv.addr, req);
        let got = status_of(&r);
        if *want == 400 {
            assert!(got == 400 || got == 404, "{} → {r}", String::from_utf8_lossy(req));
        } else {
            assert_eq!(got, *want, "{} → {r}", String::from_utf8_lossy(req));
        }
    }
    let mut many = b"GET / HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(status_of(&http_raw(srv.addr, &many)), 431);
    let mut big = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 20000));
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(status_of(&http_raw(srv.addr, &big)), 431);
}

#[test]
fn upgrade_rules() {
    let mut cfg = config();
    cfg.relay = true;
    let srv = start(cfg);
    let base = "GET /websockify HTTP/1.1\r\nHost: HOST\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let host = srv.addr.to_string();
    let req = |extra: &str| format!("{}{}\r\n", base.replace("HOST", &host), extra);
    let r = http_raw(srv.addr, req("Sec-WebSocket-Version: 8\r\n").as_bytes());
    assert_eq!(status_of(&r), 426, "{r}");
    let r = http_raw(srv.addr, req("Sec-WebSocket-Version: 13\r\nOrigin: http://evil.example\r\n").as_bytes());
    assert_eq!(status_of(&r), 403, "{r}");
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        req(&format!(
            "Sec-WebSocket-Version: 13\r\nOrigin: http://{host}\r\nSec-WebSocket-Protocol: binary, base64\r\n"
        ))
        .as_bytes(),
    )
    .unwrap();
    let mut b = [0u8; 1024];
    let n = common::read_some(&mut s, &mut b).unwrap();
    let head = String::from_utf8_lossy(&b[..n]);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    assert!(head.to_ascii_lowercase().contains("sec-websocket-protocol: binary"), "{head}");
}

#[test]
fn slow_request_heads_are_cut_off() {
    let mut cfg = config();
    cfg.handshake_timeout = Duration::from_secs(1);
    let srv = start(cfg);
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n").unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    // Meanwhile the server still answers others.
    let r = http_raw(srv.addr, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&r), 200);
}
