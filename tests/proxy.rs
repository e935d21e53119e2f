//! wsvnc behind a real nginx (Debian package) terminating TLS, configured
//! by the documented recipe (docs/nginx-wsvnc.conf, included as it is) and
//! by nginx's bare WebSocket example (tests/proxy/nginx-defaults.conf):
//! relaying works over wss://, the client address in wsvnc's log is the one
//! nginx saw (a forged X-Forwarded-For is not believed), and the Origin
//! check accepts the page's own origin and refuses others behind the recipe;
//! behind nginx's defaults (Host names the upstream) only an origin named
//! with --allow-origin gets in, and the log says what to add to nginx.
#![cfg(feature = "tls")]

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use tls::TestCa;

/// nginx in the foreground (tests/proxy/start-nginx.sh), stopped on drop.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    prefix: PathBuf,
}

impl Nginx {
    fn start(ca: &TestCa, addr: SocketAddr, upstream: SocketAddr, snippet: &str) -> Nginx {
        let root = env!("CARGO_MANIFEST_DIR");
        let prefix = ca.dir.join(format!("nginx-{}", addr.port()));
        let child = Command::new(format!("{root}/tests/proxy/start-nginx.sh"))
            .arg(&prefix)
            .arg(addr.port().to_string())
            .arg(upstream.to_string())
            .arg(ca.cert("server"))
            .arg(ca.key("server"))
            .arg(format!("{root}/{snippet}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx (Debian package nginx)");
        let mut n = Nginx { child, addr, prefix };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if let Some(st) = n.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(n.prefix.join("error.log")).unwrap_or_default();
                panic!("nginx exited ({st}); is the Debian package nginx installed? error.log:\n{log}");
            }
            assert!(Instant::now() < deadline, "nginx did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }

    fn origin(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP connection to `to` from the local address `from` (another loopback
/// address, so that nginx sees a client that is not itself).
fn tcp_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    // SAFETY: plain socket calls on a descriptor we create and then own.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let sin = |ip: [u8; 4], port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(ip) },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let local = sin(from, 0);
        assert_eq!(libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len), 0, "bind {from:?}");
        let SocketAddr::V4(to) = to else { panic!("IPv4 only") };
        let remote = sin(to.ip().octets(), to.port());
        let rc = libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len);
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn tls_from(from: [u8; 4], to: SocketAddr, cfg: &Arc<rustls::ClientConfig>) -> Tls {
    let sock = tcp_from(from, to);
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = ClientConnection::new(cfg.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    StreamOwned::new(conn, sock)
}

/// A WebSocket upgrade through the proxy with these extra header lines;
/// returns the stream (after the response head) and the status.
fn upgrade(proxy: &Nginx, cfg: &Arc<rustls::ClientConfig>, path: &str, extra: &[(&str, &str)]) -> (Tls, u16) {
    let mut t = tls_from([127, 0, 0, 2], proxy.addr, cfg);
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        proxy.addr.port()
    );
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    t.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        t.read_exact(&mut b).expect("a response head through nginx");
        head.push(b[0]);
    }
    let status = String::from_utf8_lossy(&head).split_whitespace().nth(1).unwrap().parse().unwrap();
    (t, status)
}

/// One masked binary frame through the relay and its echo back.
fn relay_echo(t: &mut Tls, data: &[u8]) {
    assert!(data.len() < 126);
    let key = [9u8, 8, 7, 6];
    let mut frame = vec![0x82, 0x80 | data.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(data.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    t.write_all(&frame).unwrap();
    let mut got = vec![0u8; 2 + data.len()];
    t.read_exact(&mut got).unwrap();
    assert_eq!(&got[..2], &[0x82, data.len() as u8]);
    assert_eq!(&got[2..], data);
}

#[test]
fn nginx_terminates_tls_in_front_of_wsvnc() {
    let ca = TestCa::new(&["server"]);
    let cfg = ca.client();
    let echo = tcp_echo();
    let (addr, recipe_addr, defaults_addr, allowed_addr) = (free_addr(), free_addr(), free_addr(), free_addr());
    let allowed_origin = format!("https://localhost:{}", allowed_addr.port());
    let args = [
        "--listen",
        &addr.to_string(),
        "--target",
        &echo.to_string(),
        "--relay",
        "--trusted-proxy",
        "127.0.0.1",
        "--allow-origin",
        &allowed_origin,
        // nginx's defaults send the upstream's name as Host; the
        // DNS-rebinding check (src/http/host.rs) must be told it.
        "--allowed-host",
        "wsvnc",
    ];
    let wsvnc = Daemon::start(&args, addr);
    let recipe = Nginx::start(&ca, recipe_addr, addr, "docs/nginx-wsvnc.conf");
    let defaults = Nginx::start(&ca, defaults_addr, addr, "tests/proxy/nginx-defaults.conf");
    let allowed = Nginx::start(&ca, allowed_addr, addr, "tests/proxy/nginx-defaults.conf");

    // The recipe: the relay over wss://, the page's own origin accepted, a
    // client-supplied X-Forwarded-For not believed beyond nginx's own entry.
    let (mut t, status) =
        upgrade(&recipe, &cfg, "/websockify", &[("Origin", &recipe.origin()), ("X-Forwarded-For", "203.0.113.9")]);
    assert_eq!(status, 101);
    relay_echo(&mut t, b"through nginx");
    let (_, status) = upgrade(&recipe, &cfg, "/websockify", &[("Origin", "https://evil.example")]);
    assert_eq!(status, 403, "another site's page is refused");
    let page = {
        let mut t = tls_from([127, 0, 0, 2], recipe.addr, &cfg);
        write!(t, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        let mut s = String::new();
        let _ = t.read_to_string(&mut s);
        s
    };
    assert!(page.starts_with("HTTP/1.1 200") && page.ends_with("ok\n"), "{page}");

    // nginx's bare WebSocket example: Host names the upstream ("wsvnc"), so
    // the page's Origin cannot be checked against it: refused, with a hint
    // in the log. Naming the public origin (--allow-origin) lets it in, and
    // still no one else.
    let (_, status) = upgrade(&defaults, &cfg, "/websockify", &[("Origin", &defaults.origin())]);
    assert_eq!(status, 403);
    let (mut t, status) = upgrade(&allowed, &cfg, "/websockify", &[("Origin", &allowed.origin())]);
    assert_eq!(status, 101);
    relay_echo(&mut t, b"through nginx's defaults");
    assert_eq!(upgrade(&allowed, &cfg, "/websockify", &[("Origin", "https://evil.example")]).1, 403);

    drop(t);
    std::thread::sleep(Duration::from_millis(300));
    wsvnc.signal(libc::SIGTERM);
    let (status, log) = wsvnc.wait();
    assert!(status.success(), "{log}");
    // The recipe's connections are logged with the client nginx saw.
    assert!(log.contains("127.0.0.2 (via 127.0.0.1:"), "client address behind the proxy:\n{log}");
    assert!(!log.contains("203.0.113.9 (via"), "a forged X-Forwarded-For was believed:\n{log}");
    assert!(log.contains("add `proxy_set_header Host $http_host;`"), "no hint for nginx's defaults:\n{log}");
}
