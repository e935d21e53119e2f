//! TLS for browsers (feature `tls`) with a test CA (scripts/test-ca.sh,
//! openssl) and rustls / tungstenite clients: HTTP and HTTPS on one port,
//! wss:// relaying, --ssl-only, bad TLS input, certificate reload on file
//! change and on SIGHUP while sessions are live.
#![cfg(feature = "tls")]

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use tls::*;
use tungstenite::Message;
use wsvnc::config::TlsFiles;
use wsvnc::{Target, TargetAddr};

fn tls_cfg(ca: &TestCa, name: &str, only: bool) -> wsvnc::Config {
    let mut cfg = config();
    cfg.tls = Some(TlsFiles { cert: ca.cert(name), key: ca.key(name), only });
    cfg.target = Some(Target::new(TargetAddr::Tcp(tcp_echo())));
    cfg.relay = true;
    cfg
}

fn echo_once(ws: &mut Ws, data: &[u8]) {
    ws.send(Message::Binary(data.to_vec())).unwrap();
    let mut got = Vec::new();
    while got.len() < data.len() {
        match ws.read().unwrap() {
            Message::Binary(b) => got.extend_from_slice(&b),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, data);
}

/// Read until the peer closes; returns what came (bounded by the socket's
/// read timeout).
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut all = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match common::read_some(s, &mut b) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return all,
            Err(e) => panic!("the server did not close the connection: {e} (got {all:?})"),
        }
    }
}

#[test]
fn http_and_https_share_the_port() {
    let ca = TestCa::new(&["server"]);
    let srv = start(tls_cfg(&ca, "server", false));
    let plain = http_raw(srv.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&plain), 200, "{plain}");
    let client = ca.client();
    let secure = https_get(srv.addr, &client, "/healthz");
    assert!(secure.starts_with("HTTP/1.1 200") && secure.ends_with("ok\n"), "{secure}");
    let page = https_get(srv.addr, &client, "/");
    assert!(page.starts_with("HTTP/1.1 200") && page.contains("<html"), "{}", &page[..page.len().min(200)]);
    let t = tls_connect(srv.addr, &client).unwrap();
    assert_eq!(t.conn.alpn_protocol(), Some(&b"http/1.1"[..]), "ALPN http/1.1");
    assert_eq!(presented(&t), ca.der("server"));
}

#[test]
fn wss_relay_round_trips_over_tls_1_3_and_1_2() {
    let ca = TestCa::new(&["server"]);
    let srv = start(tls_cfg(&ca, "server", false));
    for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12][..]] {
        let client = ca.client_with(versions);
        let t = tls_connect(srv.addr, &client).unwrap();
        assert_eq!(t.conn.protocol_version(), Some(versions[0].version));
        let mut ws = wss_connect(srv.addr, "/websockify", &client);
        for size in [1usize, 125, 126, 65535, 65536, 1 << 20] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
            echo_once(&mut ws, &data);
        }
        ws.close(None).unwrap();
    }
}

#[test]
fn ssl_only_refuses_plain_http() {
    let ca = TestCa::new(&["server"]);
    let srv = start(tls_cfg(&ca, "server", true));
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let got = read_until_closed(&mut s);
    assert!(!got.starts_with(b"HTTP/"), "plain HTTP answered on a TLS-only port: {:?}", String::from_utf8_lossy(&got));
    let secure = https_get(srv.addr, &ca.client(), "/healthz");
    assert!(secure.starts_with("HTTP/1.1 200"), "{secure}");
}

/// The first bytes of a real ClientHello (from rustls' client).
fn client_hello(ca: &TestCa) -> Vec<u8> {
    let mut conn =
        rustls::ClientConnection::new(ca.client(), rustls::pki_types::ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    assert_eq!(hello[0], 0x16);
    hello
}

#[test]
fn bad_tls_input_closes_cleanly_and_disturbs_no_one() {
    let ca = TestCa::new(&["server"]);
    let mut cfg = tls_cfg(&ca, "server", false);
    cfg.handshake_timeout = Duration::from_secs(1);
    let srv = start(cfg);
    let client = ca.client();
    let mut live = wss_connect(srv.addr, "/websockify", &client);
    echo_once(&mut live, b"before");

    // A handshake record of garbage: an alert or nothing, then the close.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x20]).unwrap();
    s.write_all(&[0xAB; 0x20]).unwrap();
    let got = read_until_closed(&mut s);
    assert!(got.is_empty() || got[0] == 0x15, "expected a TLS alert or nothing, got {got:?}");
    // A record header claiming more than TLS allows.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(&[0x16, 0x03, 0x03, 0xff, 0xff]).unwrap();
    let got = read_until_closed(&mut s);
    assert!(got.is_empty() || got[0] == 0x15, "{got:?}");
    // A truncated ClientHello, then silence: the handshake timeout ends it.
    let hello = client_hello(&ca);
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(&hello[..hello.len() / 2]).unwrap();
    let t0 = Instant::now();
    read_until_closed(&mut s);
    assert!(t0.elapsed() < Duration::from_secs(15));
    // A ClientHello followed by the peer vanishing.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(&hello).unwrap();
    drop(s);

    // The live session never noticed; new ones still work.
    echo_once(&mut live, b"after");
    let secure = https_get(srv.addr, &client, "/healthz");
    assert!(secure.starts_with("HTTP/1.1 200"), "{secure}");
}

/// Keep a wss session busy in a thread: echo round trips until stopped;
/// returns (round trips, first error).
fn busy_session(
    addr: SocketAddr,
    path: &'static str,
    client: Arc<rustls::ClientConfig>,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<Result<usize, String>> {
    std::thread::spawn(move || {
        let mut ws = wss_connect(addr, path, &client);
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            let data = format!("message {n}").into_bytes();
            ws.send(Message::Binary(data.clone())).map_err(|e| format!("send {n}: {e}"))?;
            match ws.read().map_err(|e| format!("read {n}: {e}"))? {
                Message::Binary(b) if b == data => {}
                other => return Err(format!("round trip {n}: got {other:?}")),
            }
            n += 1;
            count.store(n, Ordering::SeqCst);
        }
        let _ = ws.close(None);
        Ok(n)
    })
}

/// Replace `name`'s certificate and key files with those of `with`.
/// `keep_mtime`: put the old modification times back, so that only an
/// explicit reload (SIGHUP) can notice.
fn swap_certificate(ca: &TestCa, name: &str, with: &str, keep_mtime: bool) {
    for (dst, src) in [(ca.cert(name), ca.cert(with)), (ca.key(name), ca.key(with))] {
        let old = std::fs::metadata(&dst).unwrap().modified().unwrap();
        std::fs::copy(&src, &dst).unwrap();
        if keep_mtime {
            set_mtime(&dst, old);
        }
    }
}

fn set_mtime(p: &Path, t: SystemTime) {
    std::fs::File::options().write(true).open(p).unwrap().set_modified(t).unwrap();
}

/// Wait (bounded) until new handshakes present certificate `want`.
fn wait_for_certificate(addr: SocketAddr, ca: &TestCa, want: &str, within: Duration) {
    let want_der = ca.der(want);
    let deadline = Instant::now() + within;
    loop {
        let t = tls_connect(addr, &ca.client()).expect("handshake during reload");
        if presented(&t) == want_der {
            return;
        }
        assert!(Instant::now() < deadline, "new handshakes never presented the {want} certificate");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_count(count: &AtomicUsize, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while count.load(Ordering::SeqCst) < at_least {
        assert!(Instant::now() < deadline, "the live session stopped making progress");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn certificate_file_change_reloads_without_dropping_live_sessions() {
    let ca = TestCa::new(&["server", "renewed"]);
    let srv = start(tls_cfg(&ca, "server", false));
    let (stop, count) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let live = busy_session(srv.addr, "/websockify", ca.client(), stop.clone(), count.clone());
    wait_count(&count, 50);
    std::thread::sleep(Duration::from_millis(1100)); // a distinct mtime
    swap_certificate(&ca, "server", "renewed", false);
    wait_for_certificate(srv.addr, &ca, "renewed", Duration::from_secs(15));
    let at_reload = count.load(Ordering::SeqCst);
    wait_count(&count, at_reload + 50);
    stop.store(true, Ordering::SeqCst);
    let n = live.join().unwrap().expect("the live session kept working through the reload");
    assert!(n > at_reload);
}

#[test]
fn sighup_reloads_certificates_and_the_token_file_and_keeps_running() {
    let ca = TestCa::new(&["server", "renewed"]);
    let tokens = ca.dir.join("tokens");
    let echo = tcp_echo();
    std::fs::write(&tokens, format!("old: {echo}\n")).unwrap();
    let addr = free_addr();
    let (cert, key) = (ca.cert("server"), ca.key("server"));
    let args = [
        "--listen",
        &addr.to_string(),
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--token-file",
        tokens.to_str().unwrap(),
        "--relay",
    ];
    let d = Daemon::start(&args, addr);
    let client = ca.client();
    let (stop, count) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let mut ws = wss_connect(addr, "/websockify?token=old", &client);
    echo_once(&mut ws, b"before");
    let live = busy_session(addr, "/websockify?token=old", client.clone(), stop.clone(), count.clone());
    wait_count(&count, 50);

    // New files, old modification times: only SIGHUP can make them count.
    let original = ca.der("server");
    swap_certificate(&ca, "server", "renewed", true);
    let old_mtime = std::fs::metadata(&tokens).unwrap().modified().unwrap();
    std::fs::write(&tokens, format!("old: {echo}\nnew: {echo}\n")).unwrap();
    set_mtime(&tokens, old_mtime);
    std::thread::sleep(Duration::from_millis(1200)); // the watcher would have seen a change by now
    let t = tls_connect(addr, &client).unwrap();
    assert!(presented(&t) == original, "reloaded without SIGHUP");

    d.signal(libc::SIGHUP);
    wait_for_certificate(addr, &ca, "renewed", Duration::from_secs(10));
    let mut fresh = wss_connect(addr, "/websockify?token=new", &client);
    echo_once(&mut fresh, b"token file reloaded");
    // Live sessions and the process are unaffected.
    echo_once(&mut ws, b"after");
    let at_reload = count.load(Ordering::SeqCst);
    wait_count(&count, at_reload + 50);
    stop.store(true, Ordering::SeqCst);
    live.join().unwrap().expect("the live session kept working through SIGHUP");
    d.signal(libc::SIGTERM);
    let (status, log) = d.wait();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("SIGHUP: reloading"), "{log}");
}
