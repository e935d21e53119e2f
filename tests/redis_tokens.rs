//! Tokens from a real Redis (Debian package `redis-server`, started by the
//! test on 127.0.0.1, a free port, a temporary directory), in websockify's
//! `TokenRedis` format, written with the real `redis-cli`: viewers reach the
//! built-in demo VNC server (its own process) named by a token; unknown
//! tokens are refused with a reason; a re-pointed token sends the next
//! viewer to the new target and ends the old session; Redis down is an
//! error in the log, never a panic, and the table comes when Redis does.

mod common;
#[path = "common/v2.rs"]
mod v2;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::free_addr;
use v2::{End, Msg, V2};

const BIN: &str = env!("CARGO_BIN_EXE_wsvnc");
const REDIS: &str = "/usr/bin/redis-server";
const REDIS_CLI: &str = "/usr/bin/redis-cli";
const PASSWORD: &str = "fleet-secret";

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsvnc-redis-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "no {what} within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed on drop.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// redis-server on `port`, password-protected, no persistence.
struct Redis {
    _kid: Kid,
    port: u16,
}

impl Redis {
    fn start(port: u16, dir: &Path) -> Redis {
        assert!(Path::new(REDIS).exists(), "{REDIS} is missing: install the Debian package redis-server");
        let kid = Command::new(REDIS)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .args(["--requirepass", PASSWORD, "--dir", dir.to_str().unwrap(), "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let r = Redis { _kid: Kid(kid), port };
        wait_until("redis-server answering PING", || r.cli(&["PING"]).as_deref() == Some("PONG"));
        r
    }

    /// `redis-cli -n 2 ARGS` (db 2, as the wsvnc token source names it); None if it failed.
    fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new(REDIS_CLI)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-n", "2", "--no-auth-warning", "-a", PASSWORD])
            .args(args)
            .output()
            .expect("run redis-cli");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.starts_with("ERR") && !text.contains("Could not connect")).then_some(text)
    }

    fn set(&self, key: &str, value: &str) {
        assert_eq!(self.cli(&["SET", key, value]).as_deref(), Some("OK"), "SET {key}");
    }
}

/// The built-in demo VNC server as its own process, `w`×`h`.
fn demo_server(w: u16, h: u16) -> (Kid, SocketAddr) {
    let addr = free_addr();
    let kid = Command::new(BIN)
        .args(["--demo-server", &addr.to_string(), "--demo-size", &format!("{w}x{h}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo VNC server");
    wait_until("the demo VNC server", || TcpStream::connect(addr).is_ok());
    (Kid(kid), addr)
}

/// wsvnc with tokens from Redis at `redis_port` (db 2, password, namespace
/// "fleet"); its log in a file.
struct Wsvnc {
    kid: Kid,
    addr: SocketAddr,
    log: PathBuf,
}

impl Wsvnc {
    fn start(redis_port: u16, dir: &Path) -> Wsvnc {
        let addr = free_addr();
        let log = dir.join("wsvnc.log");
        let source = format!("127.0.0.1:{redis_port}:2:{PASSWORD}:fleet");
        let kid = Command::new(BIN)
            .args(["--listen", &addr.to_string(), "--heartbeat", "0", "--linger", "0"])
            .args(["--token-plugin", "TokenRedis", "--token-source", &source])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start wsvnc");
        let w = Wsvnc { kid: Kid(kid), addr, log };
        wait_until("wsvnc listening", || TcpStream::connect(addr).is_ok());
        w
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Wait until the log holds `needle` at least `n` times.
    fn wait_log(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.count(needle) < n {
            assert!(Instant::now() < deadline, "log never had {n}× {needle:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn alive(&mut self) -> bool {
        self.kid.0.try_wait().unwrap().is_none()
    }

    fn viewer(&self, token: &str) -> V2 {
        V2::connect(&format!("ws://{}/ws?token={token}", self.addr)).unwrap()
    }

    /// The desktop size a viewer of `token` gets.
    fn desktop_of(&self, token: &str) -> (V2, u16, u16) {
        let mut v = self.viewer(token);
        v.wait(Duration::from_secs(20), |v| v.hello.is_some())
            .unwrap_or_else(|e| panic!("no ServerHello for token {token}: {e:?}; log:\n{}", self.log()));
        let Some(Msg::ServerHello { width, height, .. }) = v.hello.clone() else { unreachable!() };
        (v, width, height)
    }

    /// What new viewers of `token` get, asked until `want` holds: the loop
    /// swaps a table in just after the Redis thread logs it, so a viewer in
    /// between may still meet the previous one (bounded: 20 s).
    fn until(&self, token: &str, want: impl Fn(&Result<u16, String>) -> bool) -> Result<u16, String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut v = self.viewer(token);
            let got = match v.wait(Duration::from_secs(20), |v| v.hello.is_some()) {
                Ok(()) => Ok(v.width),
                Err(End::Closed(1008, reason)) => Err(reason),
                Err(other) => panic!("token {token}: {other:?}; log:\n{}", self.log()),
            };
            if want(&got) {
                return got;
            }
            assert!(Instant::now() < deadline, "token {token}: still {got:?} after 20 s; log:\n{}", self.log());
        }
    }

    fn refused(&self, token: &str) -> String {
        let mut v = self.viewer(token);
        match v.wait_end(Duration::from_secs(20)) {
            End::Closed(code, reason) => {
                assert_eq!(code, 1008, "policy violation for an unusable token: {reason}");
                reason
            }
            other => panic!("token {token}: expected a close with a reason, got {other:?}"),
        }
    }
}

#[test]
fn viewers_follow_tokens_in_redis() {
    let dir = tmp("follow");
    let redis = Redis::start(free_addr().port(), &dir);
    let (_small, small) = demo_server(320, 200);
    let (_large, large) = demo_server(640, 480);
    // The three value formats websockify reads, and a key outside the namespace.
    redis.set("fleet:desk", &format!("{{\"host\": \"{small}\"}}"));
    redis.set("fleet:plain", &large.to_string());
    redis.set("fleet:split", &format!("{{\"host\": \"127.0.0.1\", \"port\": {}}}", large.port()));
    redis.set("fleet:broken", "not an address");
    redis.set("elsewhere", &small.to_string());

    let mut w = Wsvnc::start(redis.port, &dir);
    let (viewer, width, height) = w.desktop_of("desk");
    assert_eq!((width, height), (320, 200), "JSON {{\"host\": \"HOST:PORT\"}}");
    assert_eq!(w.desktop_of("plain").1, 640, "plain HOST:PORT");
    assert_eq!(w.desktop_of("split").1, 640, "JSON host + port");
    assert!(w.refused("nope").contains("unknown token 'nope'"));
    assert!(w.refused("elsewhere").contains("unknown token"), "keys outside the namespace are not tokens");
    assert!(w.refused("broken").contains("unknown token"), "an unreadable value leaves the token out");
    assert!(w.log().contains("Redis token \"broken\""), "and says so:\n{}", w.log());
    assert!(!w.log().contains(PASSWORD), "the password never reaches the log");

    // Re-pointed in Redis: picked up by the next poll; the open session on
    // the old target ends (as for a token file), the next viewer lands on the new one.
    let loads = w.count("target(s)");
    assert_eq!(loads, 1, "read once at start:\n{}", w.log());
    redis.set("fleet:desk", &large.to_string());
    w.wait_log("target(s)", loads + 1);
    let mut viewer = viewer;
    match viewer.wait_end(Duration::from_secs(20)) {
        End::Closed(1001, reason) => assert!(reason.contains("re-pointed"), "{reason}"),
        other => panic!("the old session should end with 1001, got {other:?}"),
    }
    assert_eq!(w.desktop_of("desk").1, 640, "the next connection uses the new target");

    // Removed, then SIGHUP: read at once (not waiting for the poll).
    redis.cli(&["DEL", "fleet:desk"]).unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(w.kid.0.id() as libc::pid_t, libc::SIGHUP) };
    w.wait_log("SIGHUP: reloading", 1);
    w.wait_log("loaded: 2 target(s)", 1);
    let reason = w.until("desk", |r| r.is_err()).unwrap_err();
    assert!(reason.contains("unknown token 'desk'"), "{reason}");
    assert!(w.alive());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redis_down_is_an_error_not_a_panic() {
    let dir = tmp("down");
    let port = free_addr().port(); // nothing listens there yet
    let (_demo, demo) = demo_server(320, 200);
    let mut w = Wsvnc::start(port, &dir);
    let expected = format!("cannot read tokens from Redis at 127.0.0.1:{port} db 2 keys fleet:*: Connection refused");
    w.wait_log(&expected, 1);
    assert!(w.refused("desk").contains("unknown token 'desk'"));
    assert!(w.alive());

    // Redis comes up: the table arrives with the next poll.
    let redis = Redis::start(port, &dir);
    redis.set("fleet:desk", &demo.to_string());
    w.wait_log("loaded: 1 target(s)", 1);
    assert!(w.log().contains("reachable again"), "{}", w.log());
    assert_eq!(w.until("desk", |r| r.is_ok()), Ok(320));

    // Redis goes away again: logged once, and the last table stays in use.
    drop(redis);
    w.wait_log(&expected, 2);
    assert_eq!(w.desktop_of("desk").1, 320, "the previous table is kept while Redis is down");
    std::thread::sleep(Duration::from_millis(2500)); // two more polls fail the same way
    assert_eq!(w.count(&expected), 2, "the same error is logged once, not every poll");
    assert!(w.alive());
    assert!(!w.log().contains("panicked"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_wrong_password_is_named() {
    let dir = tmp("auth");
    let redis = Redis::start(free_addr().port(), &dir);
    let addr = free_addr();
    let log = dir.join("wsvnc.log");
    let _w = Kid(Command::new(BIN)
        .args(["--listen", &addr.to_string(), "--token-plugin", "TokenRedis"])
        .args(["--token-source", &format!("127.0.0.1:{}:2:wrong-password:fleet", redis.port)])
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap());
    wait_until("the AUTH error in the log", || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("Redis answered: WRONGPASS")
    });
    wait_until("wsvnc listening anyway", || TcpStream::connect(addr).is_ok());
}
