//! Which mode a port serves, and websockify's command lines.
//!
//! Relay mode relays raw RFB, so it cannot enforce view-only: it is opt-in
//! (`--relay`, or websockify's positional form) and never offered for a
//! view-only target. In relay mode the upgrade is accepted on any path
//! (websockify does), `/ws` stays the gateway's and plain GETs get files.
//! Token sources as websockify names them (`--token-plugin TokenFile
//! --token-source`, `--target-config`, a directory, `unix_socket:` lines), and
//! websockify's `--idle-timeout` (exit without connections).

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tungstenite::Message;
use wsvnc::{Target, TargetAddr};

/// A TCP echo target that counts the connections it accepted.
fn counting_echo() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            seen.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || echo_until_eof(s));
        }
    });
    (addr, count)
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("wsvnc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One binary message there and back.
fn echoes(ws: &mut Ws, payload: &[u8]) {
    ws.send(Message::Binary(payload.to_vec())).unwrap();
    let mut got = Vec::new();
    while got.len() < payload.len() {
        match ws.read().unwrap() {
            Message::Binary(b) => got.extend(b),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected the echo, got {other:?}"),
        }
    }
    assert_eq!(got, payload);
}

/// The HTTP status and body of a refused WebSocket handshake.
fn refused(url: &str) -> (u16, String) {
    match tungstenite::connect(url) {
        Ok(_) => panic!("{url}: the WebSocket was accepted"),
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
            (resp.status().as_u16(), body)
        }
        Err(e) => panic!("{url}: expected an HTTP refusal, got {e}"),
    }
}

/// A relay connection to a view-only target: the handshake completes, then
/// Close 1008 with the reason, before any byte reaches the target.
fn view_only_refused(url: &str) {
    let mut ws = connect(url);
    // Input the relay would pass straight to the VNC server (a KeyEvent).
    let _ = ws.send(Message::Binary(vec![4, 1, 0, 0, 0, 0, 0, 0x61]));
    let (code, reason) = expect_close(&mut ws);
    assert_eq!(code, 1008, "{url}: {reason}");
    assert!(reason.contains("view-only"), "{url}: {reason}");
}

fn tokens_with_view_only(dir: &Scratch, target: SocketAddr) -> PathBuf {
    dir.write("tokens", &format!("ro: {target} view_only\nrw: {target}\n"))
}

/// Issue: `view_only` was enforced on /ws only; /websockify on the same port
/// relayed raw RFB, keys and pointer included, for any token.
#[test]
fn a_view_only_token_is_never_reachable_through_the_relay() {
    let dir = Scratch::new("ro-tokens");
    let (target, accepted) = counting_echo();
    let tokens = tokens_with_view_only(&dir, target);
    let tokens = tokens.to_str().unwrap();

    // The command line without --relay: no relay at all, on any path.
    let srv = Spawned::start(&["--token-file", tokens]);
    for path in ["/websockify?token=ro", "/websockify?token=rw", "/?token=ro"] {
        let (status, body) = refused(&srv.url(path));
        assert_eq!(status, 404, "{path}");
        assert!(body.contains("--relay"), "{path}: the refusal says how to turn relay mode on: {body}");
    }
    drop(srv);

    // --relay: offered, but never for the view-only token.
    let srv = Spawned::start(&["--relay", "--token-file", tokens]);
    view_only_refused(&srv.url("/websockify?token=ro"));
    view_only_refused(&srv.url("/some/other/path?token=ro"));
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "the VNC server was contacted for a view-only relay");
    echoes(&mut connect(&srv.url("/websockify?token=rw")), b"rw relays");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    drop(srv);

    // websockify's form turns relay mode on; view-only tokens stay refused.
    let srv = Spawned::start_with(|addr| {
        let listen = addr.to_string();
        ["--token-plugin", "TokenFile", "--token-source", tokens, &listen].map(String::from).to_vec()
    });
    view_only_refused(&srv.url("/websockify?token=ro"));
    echoes(&mut connect(&srv.url("/websockify?token=rw")), b"websockify form");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[test]
fn view_only_everywhere_means_no_relay() {
    let (target, accepted) = counting_echo();
    // websockify's form would turn the relay on; --view-only keeps it off.
    let srv = Spawned::start_with(|addr| vec!["--view-only".into(), addr.to_string(), target.to_string()]);
    assert_eq!(refused(&srv.url("/websockify")).0, 404);
    // The gateway is still there (and view-only).
    let (_s, head) = raw_upgrade_with(srv.addr, "/ws", "Sec-WebSocket-Protocol: wsvnc.v3\r\n");
    assert!(head.starts_with("http/1.1 101"), "{head}");
    drop(srv);
    assert!(accepted.load(Ordering::SeqCst) <= 1, "only the gateway may have connected");

    // Asking for both is a command-line error.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsvnc"))
        .args(["--relay", "--view-only", "--target", &target.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--view-only"));
}

#[test]
fn relay_upgrades_on_any_path_while_ws_and_files_keep_theirs() {
    let web = Scratch::new("relay-web");
    web.write("index.html", "<!doctype html><title>mine</title><script>inline()</script>");
    let (target, _) = counting_echo();
    let mut cfg = config();
    cfg.relay = true;
    cfg.web_dir = Some(web.path().to_path_buf());
    cfg.target = Some(Target::new(TargetAddr::Tcp(target)));
    let srv = start(cfg);
    for path in ["/", "/websockify", "/vnc/websockify?path=x", "/index.html", "/healthz"] {
        echoes(&mut connect(&srv.url(path)), path.as_bytes());
    }
    // /ws is the gateway's (its subprotocol, not the relay's).
    let (_s, head) = raw_upgrade_with(srv.addr, "/ws", "Sec-WebSocket-Protocol: wsvnc.v3\r\n");
    assert!(head.contains("sec-websocket-protocol: wsvnc.v3"), "{head}");
    // Plain GETs get the files, without a Content-Security-Policy: the page
    // has an inline script, as noVNC's vnc_lite.html has.
    let r = http_raw(srv.addr, b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&r), 200, "{r}");
    assert!(r.ends_with("<script>inline()</script>"), "{r}");
    assert!(!r.to_ascii_lowercase().contains("content-security-policy"), "{r}");
}

#[test]
fn web_csp_is_sent_with_web_pages_and_the_embedded_viewer_keeps_its_own() {
    let web = Scratch::new("csp-web");
    web.write("index.html", "<!doctype html><title>mine</title>");
    let policy = "default-src 'self' 'unsafe-inline'";
    let mut cfg = config();
    cfg.web_dir = Some(web.path().to_path_buf());
    cfg.web_csp = Some(policy.into());
    let srv = start(cfg);
    let r = http_raw(srv.addr, b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(r.contains(&format!("Content-Security-Policy: {policy}\r\n")), "{r}");
    let mut cfg = config();
    cfg.web_csp = Some(policy.into());
    let srv = start(cfg);
    let r = http_raw(srv.addr, b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(r.contains(&format!("Content-Security-Policy: {}\r\n", wsvnc::http::CSP)), "{r}");
}

#[test]
fn token_directory_with_unix_socket_lines_is_read_and_reread() {
    let sock_dir = Scratch::new("tokdir-sock");
    let sock = sock_dir.path().join("vnc.sock");
    let unix = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        for s in unix.incoming() {
            let Ok(s) = s else { continue };
            std::thread::spawn(move || echo_until_eof(s));
        }
    });
    let (target, _) = counting_echo();
    let dir = Scratch::new("tokdir");
    dir.write("10-tcp", &format!("tcp: {target}\n"));
    let unix_file = dir.write("20-unix", &format!("# websockify's spelling\nsock: unix_socket:{}\n", sock.display()));
    dir.write(".20-unix.swp", "garbage that is not a token file\n");
    let mut cfg = config();
    cfg.relay = true;
    cfg.token_file = Some(dir.path().to_path_buf());
    let srv = start(cfg);
    echoes(&mut connect(&srv.url("/websockify?token=tcp")), b"over tcp");
    echoes(&mut connect(&srv.url("/websockify?token=sock")), b"over a unix socket");
    assert_eq!(expect_close(&mut connect(&srv.url("/websockify?token=later"))).0, 1008);

    // A file edited in place is noticed (the directory's own mtime does not change).
    std::thread::sleep(Duration::from_millis(20));
    let mut f = std::fs::OpenOptions::new().append(true).open(&unix_file).unwrap();
    writeln!(f, "later: {target}").unwrap();
    drop(f);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut ws = connect(&srv.url("/websockify?token=later"));
        ws.send(Message::Binary(b"x".to_vec())).unwrap();
        match ws.read() {
            Ok(Message::Binary(b)) => {
                assert_eq!(b, b"x");
                break;
            }
            _ => assert!(Instant::now() < deadline, "the edited token file was never re-read"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// websockify's `--idle-timeout`: exit once no connection has been open for
/// that long (wsvnc's own WebSocket idle timeout is `--ws-idle-timeout`).
#[test]
fn idle_timeout_exits_only_without_connections() {
    let (target, _) = counting_echo();
    let mut srv = Spawned::start_with(|addr| {
        ["--idle-timeout", "1", &addr.to_string(), &target.to_string()].map(String::from).to_vec()
    });
    let mut ws = connect(&srv.url("/websockify"));
    // Well past the limit with a connection open: still serving.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(srv.exited(), None, "exited while a connection was open");
    echoes(&mut ws, b"still here");
    ws.close(None).unwrap();
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = srv.exited() {
            break st;
        }
        assert!(Instant::now() < deadline, "did not exit after its last connection closed");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}
