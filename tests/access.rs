//! Host check and access control against the real binary, with real
//! clients: curl (Debian package `curl`), tungstenite, and JWTs and bcrypt
//! hashes made by independent implementations (Python's hmac/base64/json and
//! crypt(3) through Python). Every refusal path is driven once.

mod common;
#[path = "common/v2.rs"]
mod v2;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Spawned;
use tungstenite::client::IntoClientRequest;
use v2::{Msg, V2};

const KEY: &str = "a key of more than thirty-two bytes, for tests";

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsvnc-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn require(program: &str, package: &str) {
    let ok =
        Command::new("sh").args(["-c", &format!("command -v {program}")]).output().is_ok_and(|o| o.status.success());
    assert!(ok, "`{program}` not found: install the Debian package `{package}` (scripts/deps.sh apt)");
}

/// `curl -s` with `args`; returns (status, response head, body).
fn curl(args: &[&str]) -> (u16, String, String) {
    require("curl", "curl");
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "10", "-D", "-", "-o", "-"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// A WebSocket upgrade by curl (it stops at the response head here: every
/// case expects a refusal).
fn curl_upgrade(url: &str, extra: &[&str]) -> (u16, String, String) {
    let mut args = vec![
        url,
        "-H",
        "Upgrade: websocket",
        "-H",
        "Connection: Upgrade",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "-H",
        "Sec-WebSocket-Version: 13",
    ];
    args.extend_from_slice(extra);
    curl(&args)
}

/// An HS256 JWT made by Python's standard library (not our code).
fn py_jwt(key: &str, header: &str, claims: &str) -> String {
    require("python3", "python3");
    let script = r#"
import base64, hashlib, hmac, sys
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
key, header, claims = (a.encode() for a in sys.argv[1:4])
signing = b64(header) + "." + b64(claims)
print(signing + "." + b64(hmac.new(key, signing.encode(), hashlib.sha256).digest()))
"#;
    let out = Command::new("python3").args(["-c", script, key, header, claims]).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn hs256(claims: &str) -> String {
    py_jwt(KEY, r#"{"alg":"HS256","typ":"JWT"}"#, claims)
}

fn key_file() -> PathBuf {
    let p = tmp("jwt.key");
    std::fs::write(&p, format!("{KEY}\n")).unwrap();
    p
}

/// The tungstenite handshake's HTTP status, or 101.
fn ws_status(url: &str, fields: &[(&'static str, &str)]) -> u16 {
    let mut req = url.into_client_request().unwrap();
    for (n, v) in fields {
        req.headers_mut().insert(*n, v.parse().unwrap());
    }
    match tungstenite::connect(req) {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{url}: {e}"),
    }
}

fn serves_a_frame(url: &str) {
    let mut v = V2::connect(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    v.wait(Duration::from_secs(20), |v| v.frames >= 1).unwrap_or_else(|e| panic!("{url}: no frame: {e:?}"));
    assert!(matches!(v.hello, Some(Msg::ServerHello { .. })));
}

#[test]
fn forged_host_is_refused_on_every_endpoint() {
    let srv = Spawned::start(&["--demo", "--relay"]);
    let base = format!("http://{}", srv.addr);
    for (path, upgrade) in [("/", false), ("/ws", true), ("/websockify", true)] {
        let url = format!("{base}{path}");
        let evil = ["-H", "Host: evil.example", "-H", "Origin: http://evil.example"];
        let (status, _, body) = if upgrade { curl_upgrade(&url, &evil) } else { curl(&[&url, evil[0], evil[1]]) };
        assert_eq!(status, 421, "{path} with a rebound Host: {body}");
        assert!(body.contains("--allowed-host"), "{body}");
        let good = format!("Host: {}", srv.addr);
        let (status, _, _) =
            if upgrade { curl_upgrade(&url, &["-H", &good, "--max-time", "2"]) } else { curl(&[&url]) };
        assert_eq!(status, if upgrade { 101 } else { 200 }, "{path} with the real Host");
    }
    let (status, ..) = curl(&[&format!("{base}/"), "-H", "Host: localhost"]);
    assert_eq!(status, 200);
    assert_eq!(ws_status(&srv.url("/ws"), &[("Host", "evil.example"), ("Origin", "http://evil.example")]), 421);
    serves_a_frame(&srv.url("/ws"));

    let named = Spawned::start(&["--demo", "--allowed-host", "vnc.example.com"]);
    let (status, ..) = curl(&[&format!("http://{}/", named.addr), "-H", "Host: vnc.example.com"]);
    assert_eq!(status, 200, "a configured name is served");
}

#[test]
fn jwt_from_an_independent_implementation() {
    let key = key_file();
    let srv = Spawned::start(&["--demo", "--relay", "--jwt-secret-file", key.to_str().unwrap()]);
    let base = format!("http://{}", srv.addr);
    let now = unix_now();
    let good = hs256(&format!(r#"{{"exp":{},"sub":"ann"}}"#, now + 120));
    let expired = hs256(&format!(r#"{{"exp":{}}}"#, now - 5));
    let not_yet = hs256(&format!(r#"{{"exp":{},"nbf":{}}}"#, now + 120, now + 100));
    let no_exp = hs256(r#"{"sub":"ann"}"#);
    let wrong_key =
        py_jwt("another key, also longer than 32 bytes", r#"{"alg":"HS256"}"#, &format!(r#"{{"exp":{}}}"#, now + 120));
    let alg_none = {
        let t = py_jwt(KEY, r#"{"alg":"none"}"#, &format!(r#"{{"exp":{}}}"#, now + 120));
        format!("{}.", t.rsplit_once('.').unwrap().0)
    };
    let elsewhere = hs256(&format!(r#"{{"exp":{},"host":"10.9.9.9","port":5900}}"#, now + 120));
    let view_only = hs256(&format!(r#"{{"exp":{},"view_only":true}}"#, now + 120));

    // Refusals, each with its reason, by curl on the page and both endpoints.
    let rows: &[(&str, &str, u16, &str)] = &[
        ("/", "", 401, "access token is required"),
        ("/ws", "", 401, "access token is required"),
        ("/websockify", "", 401, "access token is required"),
        ("/js/main.js", "", 401, "access token is required"),
        ("/", &format!("?jwt={expired}"), 401, "expired"),
        ("/ws", &format!("?jwt={not_yet}"), 401, "not valid yet"),
        ("/ws", &format!("?jwt={no_exp}"), 401, "no expiry"),
        ("/websockify", &format!("?token={wrong_key}"), 401, "signature"),
        ("/ws", &format!("?jwt={alg_none}"), 401, "not HS256"),
        ("/ws", &format!("?jwt={elsewhere}"), 403, "not allowed here"),
        ("/websockify", &format!("?jwt={view_only}"), 403, "cannot use the relay"),
    ];
    for (path, query, want, reason) in rows {
        let url = format!("{base}{path}{query}");
        let (status, _, body) = if path.starts_with("/w") { curl_upgrade(&url, &[]) } else { curl(&[&url]) };
        assert_eq!(status, *want, "{path}{query}: {body}");
        assert!(body.contains(reason), "{path}: {reason:?} not in {body:?}");
    }
    assert_eq!(ws_status(&srv.url("/ws"), &[]), 401, "tungstenite without a token");

    // The page with ?jwt= sets the cookie that admits its files.
    let (status, head, _) = curl(&[&format!("{base}/?jwt={good}")]);
    assert_eq!(status, 200);
    let cookie =
        head.lines().find_map(|l| l.strip_prefix("Set-Cookie: ")).unwrap_or_else(|| panic!("no cookie in {head}"));
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap();
    let (status, ..) = curl(&[&format!("{base}/js/main.js"), "-H", &format!("Cookie: {pair}")]);
    assert_eq!(status, 200, "an asset with the cookie");

    // Admitted: the gateway by ?jwt= and by cookie, the relay by websockify's ?token=.
    serves_a_frame(&srv.url(&format!("/ws?jwt={good}")));
    let mut v = V2::from_ws({
        let mut req = srv.url("/ws").into_client_request().unwrap();
        req.headers_mut().insert("Cookie", pair.parse().unwrap());
        req.headers_mut().insert("Sec-WebSocket-Protocol", v2::SUBPROTOCOL.parse().unwrap());
        tungstenite::connect(req).expect("ws with the cookie").0
    });
    v.send(&v2::enc::hello(v2::VERSION)).unwrap();
    v.wait(Duration::from_secs(20), |v| v.frames >= 1).expect("a frame by cookie");
    let (mut relay, _) = tungstenite::connect(srv.url(&format!("/websockify?token={good}"))).expect("relay");
    match relay.read().expect("RFB version from the relay") {
        tungstenite::Message::Binary(b) => assert!(b.starts_with(b"RFB 003.00"), "{b:?}"),
        m => panic!("{m:?}"),
    }
    // A view-only token on /ws: joined view-only.
    let mut ro = V2::connect(&srv.url(&format!("/ws?jwt={view_only}"))).unwrap();
    ro.wait(Duration::from_secs(20), |v| v.hello.is_some()).unwrap();
    let Some(Msg::ServerHello { flags, .. }) = ro.hello else { unreachable!() };
    assert_eq!(flags & 1, 1, "view-only flag");
}

#[test]
fn basic_auth_with_curl_and_tungstenite() {
    let ours = run_hash_password("ann", "right horse");
    assert!(ours.starts_with("ann:$2y$10$"), "{ours}");
    // A second entry made by the system's crypt(3) (libxcrypt's bcrypt).
    let theirs = {
        let out = Command::new("python3")
            .args([
                "-W",
                "ignore",
                "-c",
                "import crypt; print('bob:' + crypt.crypt('battery', crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))",
            ])
            .output()
            .expect("python3");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert!(theirs.starts_with("bob:$2b$04$"), "{theirs}");
    let file = tmp("users");
    std::fs::write(&file, format!("# wsvnc users\n{ours}\n{theirs}\n")).unwrap();
    let srv = Spawned::start(&["--demo", "--basic-auth-file", file.to_str().unwrap()]);
    let url = format!("http://{}/", srv.addr);

    let (status, head, _) = curl(&[&url]);
    assert_eq!(status, 401);
    assert!(head.contains("WWW-Authenticate: Basic realm=\"wsvnc\""), "{head}");
    assert_eq!(curl(&[&url, "-u", "ann:right horse"]).0, 200);
    assert_eq!(curl(&[&url, "-u", "bob:battery"]).0, 200, "a crypt(3) bcrypt entry");
    assert_eq!(curl_upgrade(&srv.url("/websockify").replace("ws:", "http:"), &[]).0, 401);
    // Failures hold the address off for 0, 0.5, 1, 2 s (then lock it out):
    // four of them, each after the previous delay.
    for delay_ms in [0, 600, 1100, 2100] {
        std::thread::sleep(Duration::from_millis(delay_ms));
        let (status, head, body) = curl(&[&url, "-u", "ann:wrong"]);
        assert_eq!(status, 401, "{body}");
        assert!(head.contains("WWW-Authenticate"));
    }
    // Held off now, even with the right password, and told when to come back.
    let (status, head, body) = curl(&[&url, "-u", "ann:right horse"]);
    assert_eq!(status, 429, "{body}");
    let secs: u64 = head.lines().find_map(|l| l.strip_prefix("Retry-After: ")).unwrap().trim().parse().unwrap();
    assert!((1..=4).contains(&secs) && body.contains(&format!("retry in {secs} s")), "{head}{body}");
    std::thread::sleep(Duration::from_millis(4100));
    assert_eq!(curl(&[&url, "-u", "ann:right horse"]).0, 200, "after the delay");

    let auth = format!("Basic {}", base64_std("ann:right horse"));
    assert_eq!(ws_status(&srv.url("/ws"), &[("Authorization", "Basic YW5uOndyb25n")]), 401);
    std::thread::sleep(Duration::from_millis(600)); // the first failure's delay
    let mut req = srv.url("/ws").into_client_request().unwrap();
    req.headers_mut().insert("Authorization", auth.parse().unwrap());
    req.headers_mut().insert("Sec-WebSocket-Protocol", v2::SUBPROTOCOL.parse().unwrap());
    let mut v = V2::from_ws(tungstenite::connect(req).expect("ws with Basic").0);
    v.send(&v2::enc::hello(v2::VERSION)).unwrap();
    v.wait(Duration::from_secs(20), |v| v.frames >= 1).expect("a frame with Basic");
}

#[test]
fn exposed_bind_needs_access_control() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsvnc"))
        .args(["--listen", "0.0.0.0:0", "--demo"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without access control") && err.contains("--no-auth"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_wsvnc")).args(["6080", "127.0.0.1:1"]).output().unwrap();
    assert!(!out.status.success(), "websockify's form binds 0.0.0.0: refused too");
    // With --no-auth it serves (Host check still on).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsvnc"))
        .args(["--listen", &format!("0.0.0.0:{port}"), "--no-auth", "--demo", "--heartbeat", "0"])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    let mut status = 0;
    for _ in 0..200 {
        status = curl(&[&url]).0;
        if status != 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let evil = curl(&[&url, "-H", "Host: evil.example"]).0;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!((status, evil), (200, 421));
}

fn run_hash_password(user: &str, password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsvnc"))
        .args(["hash-password", user])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn base64_std(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
