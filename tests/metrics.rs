//! `/metrics` against the real binary: a scrape of `wsvnc --demo` with a
//! v2 viewer attached, parsed strictly (every line a HELP, TYPE or sample of
//! the family announced before it, label values escaped, `# EOF` last in
//! OpenMetrics), counters that move while the viewer watches; and the
//! access rule (Host allow-list, credentials, loopback clients only without
//! credentials, the separate listener) with JWTs made by Python's hmac.

mod common;
#[path = "common/v2.rs"]
mod v2;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{http_raw, status_of, Spawned};
use v2::V2;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0";

/// GET `path` with extra header lines; (status, head, body).
fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    let resp = http_raw(addr, req.as_bytes());
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (status_of(&resp), head.to_string(), body.to_string())
}

/// A sample's name and labels, as written (labels in order).
type Series = (String, Vec<(String, String)>);

fn is_name(s: &str, colon: bool) -> bool {
    let mut b = s.bytes();
    let ok_first = |c: u8| c.is_ascii_alphabetic() || c == b'_' || (colon && c == b':');
    b.next().is_some_and(ok_first) && b.all(|c| ok_first(c) || c.is_ascii_digit())
}

/// Parse a whole exposition strictly; panics with the line on any fault.
/// Returns every sample's value by series.
fn parse(text: &str, openmetrics: bool) -> HashMap<Series, f64> {
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    let lines: Vec<&str> = text.lines().collect();
    if openmetrics {
        assert_eq!(lines.last(), Some(&"# EOF"), "OpenMetrics ends with # EOF");
        assert_eq!(lines.iter().filter(|l| **l == "# EOF").count(), 1);
    }
    let mut samples = HashMap::new();
    let mut families: Vec<String> = Vec::new();
    let mut current: Option<(String, String)> = None; // (family, type)
    let mut help_for: Option<String> = None;
    for (n, line) in lines.iter().enumerate() {
        let bad = |why: &str| -> ! { panic!("line {}: {why}: {line:?}", n + 1) };
        if *line == "# EOF" {
            assert!(openmetrics && n == lines.len() - 1, "# EOF only last, in OpenMetrics");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or_else(|| bad("HELP without text"));
            assert!(is_name(name, true) && !help.is_empty(), "line {}: {line:?}", n + 1);
            assert!(!families.contains(&name.to_string()), "family {name} announced twice");
            help_for = Some(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap_or_else(|| bad("TYPE without a type"));
            assert_eq!(help_for.take().as_deref(), Some(name), "line {}: TYPE follows its HELP", n + 1);
            assert!(matches!(ty, "counter" | "gauge" | "summary"), "line {}: type {ty}", n + 1);
            if ty == "counter" {
                assert_eq!(name.ends_with("_total"), !openmetrics, "line {}: counter family name", n + 1);
            }
            families.push(name.to_string());
            current = Some((name.to_string(), ty.to_string()));
            continue;
        }
        assert!(!line.starts_with('#'), "line {}: unknown comment {line:?}", n + 1);
        // A sample: name{labels} value
        let (fam, ty) = current.clone().unwrap_or_else(|| bad("sample before any TYPE"));
        let name_end = line.find(['{', ' ']).unwrap_or_else(|| bad("no value"));
        let name = &line[..name_end];
        let ok = match ty.as_str() {
            "counter" if openmetrics => name == format!("{fam}_total"),
            "summary" => name == format!("{fam}_sum") || name == format!("{fam}_count"),
            _ => name == fam,
        };
        assert!(ok && is_name(name, true), "line {}: sample {name} not of family {fam} ({ty})", n + 1);
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            rest = r;
            loop {
                let eq = rest.find("=\"").unwrap_or_else(|| bad("label without =\""));
                let key = &rest[..eq];
                assert!(is_name(key, false), "line {}: label name {key:?}", n + 1);
                assert!(!labels.iter().any(|(k, _)| k == key), "line {}: label {key} twice", n + 1);
                let mut value = String::new();
                let mut chars = rest[eq + 2..].char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            _ => bad("bad escape in a label value"),
                        },
                        Some((i, '"')) => break eq + 2 + i + 1,
                        Some((_, '\n')) | None => bad("unterminated label value"),
                        Some((_, c)) => value.push(c),
                    }
                };
                labels.push((key.to_string(), value));
                rest = &rest[end..];
                if let Some(r) = rest.strip_prefix(',') {
                    rest = r;
                } else if let Some(r) = rest.strip_prefix('}') {
                    rest = r;
                    break;
                } else {
                    bad("labels not closed");
                }
            }
        }
        let value = rest.strip_prefix(' ').unwrap_or_else(|| bad("one space before the value"));
        let v: f64 = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| bad("value is not a number")),
        };
        if ty == "counter" || name.ends_with("_count") {
            assert!(v >= 0.0 && v.is_finite(), "line {}: counter {v}", n + 1);
        }
        assert!(samples.insert((name.to_string(), labels), v).is_none(), "line {}: series twice", n + 1);
    }
    samples
}

/// The value of the one sample `name` whose labels include `want`.
fn value(samples: &HashMap<Series, f64>, name: &str, want: &[(&str, &str)]) -> f64 {
    let hits: Vec<f64> = samples
        .iter()
        .filter(|((n, l), _)| n == name && want.iter().all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v)))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(hits.len(), 1, "{name} {want:?}: {} samples", hits.len());
    hits[0]
}

fn scrape(addr: SocketAddr, openmetrics: bool) -> HashMap<Series, f64> {
    let accept = if openmetrics { format!("Accept: {OPENMETRICS}\r\n") } else { String::new() };
    let (status, head, body) = get(addr, "/metrics", &accept);
    assert_eq!(status, 200, "{head}\n{body}");
    let ctype = if openmetrics { OPENMETRICS } else { "text/plain; version=0.0.4" };
    assert!(head.to_ascii_lowercase().contains(&format!("content-type: {ctype}")), "{head}");
    parse(&body, openmetrics)
}

#[test]
fn scrape_of_a_demo_with_a_viewer_parses_strictly_and_counters_move() {
    let srv = Spawned::start(&["--demo", "--metrics"]);
    let mut v = V2::connect(&srv.url("/ws")).expect("viewer");
    v.wait(Duration::from_secs(20), |v| v.frames >= 3).expect("three frames");
    let first = scrape(srv.addr, true);
    let old_format = scrape(srv.addr, false);
    assert_eq!(old_format.len(), first.len(), "both formats carry the same series");

    assert_eq!(value(&first, "wsvnc_connections", &[("kind", "viewer"), ("state", "open")]), 1.0);
    assert_eq!(value(&first, "wsvnc_connections", &[("kind", "vnc"), ("state", "ready")]), 1.0);
    assert_eq!(value(&first, "wsvnc_connections", &[("kind", "demo"), ("state", "open")]), 1.0);
    assert_eq!(value(&first, "wsvnc_session_phase", &[("phase", "ready")]), 1.0);
    assert_eq!(value(&first, "wsvnc_session_viewers", &[]), 1.0);
    let target = first.keys().find(|(n, _)| n == "wsvnc_session_phase").unwrap();
    assert!(target.1.iter().any(|(k, v)| k == "target" && v.starts_with("127.0.0.1:")), "{target:?}");

    // The viewer keeps watching (and acking): the counters move.
    let frames = v.frames;
    v.wait(Duration::from_secs(20), |v| v.frames >= frames + 10).expect("ten more frames");
    let second = scrape(srv.addr, true);
    let moved = |name: &str, labels: &[(&str, &str)]| {
        let (a, b) = (value(&first, name, labels), value(&second, name, labels));
        assert!(b > a, "{name} {labels:?} did not move: {a} → {b}");
    };
    moved("wsvnc_viewer_frames_total", &[]);
    moved("wsvnc_sent_bytes_total", &[("side", "browser")]);
    moved("wsvnc_received_bytes_total", &[("side", "vnc")]);
    moved("wsvnc_sent_bytes_total", &[("side", "demo")]);
    moved("wsvnc_session_parts_encoded_total", &[]);
    moved("wsvnc_session_vnc_update_seconds_count", &[]);
    assert!(value(&second, "wsvnc_connections_accepted_total", &[]) >= 3.0, "viewer and two scrapes");
    let rects: f64 = ["fill", "palette", "pixels", "jpeg"]
        .iter()
        .map(|f| value(&second, "wsvnc_session_encoded_rects_total", &[("form", f)]))
        .sum();
    assert!(rects > 0.0, "encoder choices counted");
    assert!(value(&second, "wsvnc_viewer_bytes_per_frame", &[]) > 0.0);
    assert!(value(&second, "wsvnc_viewer_rate_bytes_per_second", &[]) > 0.0);
    assert!(value(&second, "wsvnc_viewer_min_rtt_seconds", &[]) > 0.0);
    let unacked = value(&second, "wsvnc_viewer_unacked_frames", &[]);
    assert!((0.0..=32.0).contains(&unacked), "unacked {unacked}");
    let dropped = value(&second, "wsvnc_viewer_frames_dropped_total", &[]);
    assert!(dropped >= 0.0);

    // The viewer leaves: closed and refused counters.
    v.close();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = scrape(srv.addr, true);
        let closed = |k| value(&s, "wsvnc_connections_closed_total", &[("kind", k)]);
        if closed("viewer") + closed("detached") >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the viewer's close was not counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, ..) = http_get_host(srv.addr, "evil.example");
    assert_eq!(status, 421);
    let s = scrape(srv.addr, true);
    assert_eq!(value(&s, "wsvnc_refused_total", &[("reason", "host")]), 1.0);
}

/// GET /metrics with only a `Host: host` field.
fn http_get_host(addr: SocketAddr, host: &str) -> (u16, String) {
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let resp = http_raw(addr, req.as_bytes());
    (status_of(&resp), resp)
}

// ------------------------------------------------------------- access

const KEY: &str = "a key of more than thirty-two bytes, for tests";

fn key_file() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsvnc-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("jwt.key");
    std::fs::write(&p, format!("{KEY}\n")).unwrap();
    p
}

/// An HS256 JWT made by Python's standard library (not our code).
fn py_jwt(claims: &str) -> String {
    let script = r#"
import base64, hashlib, hmac, sys
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
key, claims = (a.encode() for a in sys.argv[1:3])
signing = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(claims)
print(signing + "." + b64(hmac.new(key, signing.encode(), hashlib.sha256).digest()))
"#;
    let out = Command::new("python3")
        .args(["-c", script, KEY, claims])
        .output()
        .expect("python3 (Debian package python3) for the test JWTs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn off_by_default_and_loopback_only_without_credentials() {
    let off = Spawned::start(&["--demo"]);
    assert_eq!(get(off.addr, "/metrics", "").0, 404, "no /metrics without --metrics");

    // A trusted proxy on loopback names a remote client: refused.
    let srv = Spawned::start(&["--demo", "--metrics", "--trusted-proxy", "127.0.0.1"]);
    assert_eq!(get(srv.addr, "/metrics", "").0, 200, "a loopback client");
    let (status, _, body) = get(srv.addr, "/metrics", "X-Forwarded-For: 203.0.113.7\r\n");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("loopback"), "{body}");
    assert_eq!(get(srv.addr, "/metrics", "X-Forwarded-For: 127.0.0.1\r\n").0, 200);
    assert_eq!(http_get_host(srv.addr, "rebound.example").0, 421, "the Host allow-list applies");
    let s = scrape(srv.addr, true);
    assert_eq!(value(&s, "wsvnc_refused_total", &[("reason", "forbidden")]), 1.0);
    assert_eq!(value(&s, "wsvnc_refused_total", &[("reason", "host")]), 1.0);
}

#[test]
fn credentials_are_required_when_configured() {
    let key = key_file();
    let srv = Spawned::start(&[
        "--demo",
        "--metrics",
        "--trusted-proxy",
        "127.0.0.1",
        "--jwt-secret-file",
        key.to_str().unwrap(),
    ]);
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 300;
    let admin = py_jwt(&format!(r#"{{"exp":{exp},"sub":"prometheus"}}"#));
    let scoped = py_jwt(&format!(r#"{{"exp":{exp},"token":"desk"}}"#));
    let viewer = py_jwt(&format!(r#"{{"exp":{exp},"view_only":true}}"#));
    assert_eq!(get(srv.addr, "/metrics", "").0, 401, "no token");
    let bearer = |t: &str| format!("Authorization: Bearer {t}\r\n");
    let (status, _, body) = get(srv.addr, "/metrics", &bearer(&admin));
    assert_eq!(status, 200);
    parse(&body, false);
    let remote = format!("{}X-Forwarded-For: 203.0.113.7\r\n", bearer(&admin));
    assert_eq!(get(srv.addr, "/metrics", &remote).0, 200, "credentials admit remote clients");
    for t in [&scoped, &viewer] {
        let (status, _, body) = get(srv.addr, "/metrics", &bearer(t));
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("grants no metrics"), "{body}");
    }
    assert_eq!(get(srv.addr, &format!("/metrics?jwt={admin}"), "").0, 200, "?jwt= as on the page");
}

#[test]
fn separate_listener_serves_only_metrics_with_the_same_checks() {
    let maddr = common::free_addr();
    let srv = Spawned::start(&["--demo", "--metrics-listen", &maddr.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(maddr).is_err() {
        assert!(Instant::now() < deadline, "no metrics listener on {maddr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(srv.addr, "/metrics", "").0, 404, "not on the main port without --metrics");
    let s = scrape(maddr, true);
    assert_eq!(value(&s, "wsvnc_connections", &[("kind", "http"), ("state", "waiting")]), 1.0, "the scrape itself");
    assert_eq!(get(maddr, "/", "").0, 404, "only /metrics");
    assert_eq!(http_get_host(maddr, "rebound.example").0, 421);

    // A non-loopback metrics address without credentials: refused at start.
    let out = Command::new(env!("CARGO_BIN_EXE_wsvnc"))
        .args(["--demo", "--listen", "127.0.0.1:0", "--metrics-listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--metrics-listen") && err.contains("without access control"), "{err}");
}

#[test]
fn label_values_are_escaped() {
    // A VNC server on a Unix socket whose name holds a quote, a backslash
    // and a newline: it accepts and says nothing (the session stays in its
    // handshake while we scrape).
    let dir = std::env::temp_dir().join(format!("wsvnc-metrics-esc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a\"b\\c\nd.sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let held = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let srv = Spawned::start(&["--metrics", "--unix-target", path.to_str().unwrap()]);
    let _viewer = V2::connect(&srv.url("/ws")).expect("viewer");
    let _vnc = held.join().unwrap().expect("the gateway connects to the socket");
    let deadline = Instant::now() + Duration::from_secs(10);
    let want = format!("unix:{}", path.display());
    loop {
        for openmetrics in [true, false] {
            let s = scrape(srv.addr, openmetrics);
            let target = s
                .keys()
                .filter(|(n, _)| n == "wsvnc_session_phase")
                .find_map(|(_, l)| l.iter().find(|(k, _)| k == "target").map(|(_, v)| v.clone()));
            if target.as_deref() == Some(want.as_str()) {
                if !openmetrics {
                    return;
                }
                continue;
            }
            assert!(Instant::now() < deadline, "no session with target {want:?}: {target:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_viewer_that_stops_acking_shows_in_the_pacing_metrics() {
    let srv = Spawned::start(&["--demo", "--metrics"]);
    let mut v = V2::connect(&srv.url("/ws")).expect("viewer");
    v.wait(Duration::from_secs(20), |v| v.frames >= 2).expect("two frames");
    v.auto_ack = false;
    v.set_read_timeout(Duration::from_millis(100));
    // The demo desktop keeps changing: without acks the pacer stops
    // sending, so the updates merge into the viewer's damage (skipped).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let _ = v.read();
        let s = scrape(srv.addr, true);
        let dropped = value(&s, "wsvnc_viewer_frames_dropped_total", &[]);
        let unacked = value(&s, "wsvnc_viewer_unacked_frames", &[]);
        let in_flight = value(&s, "wsvnc_viewer_in_flight_bytes", &[]);
        if dropped >= 5.0 && unacked >= 1.0 && in_flight > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "dropped {dropped}, unacked {unacked}, in flight {in_flight}");
    }
}
