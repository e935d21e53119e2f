//! Table-driven tests for the http module: one row per case.

use super::*;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

// ---------------------------------------------------------------- helpers

fn parse(buf: &[u8]) -> Result<Option<(Head, usize)>, u16> {
    parse_head(buf, &Limits::default())
}

/// A head built directly (bypassing the parser) so route() sees exactly these
/// bytes, including ones httparse might refuse.
fn head(method: &str, target: &str, minor: u8, headers: &[(&str, &str)]) -> Head {
    Head {
        method: method.to_string(),
        target: target.to_string(),
        version_minor: minor,
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
    }
}

fn get(target: &str) -> Head {
    head("GET", target, 1, &[("Host", "localhost:6080")])
}

#[derive(Debug)]
struct Resp {
    status: u16,
    close: bool,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn h(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Splits a response into status, fields and body, checking the status line
/// agrees with Action's status.
fn split_response(bytes: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("response head end");
    let text = std::str::from_utf8(&bytes[..end]).expect("ascii head");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status: u16 = status_line[9..12].parse().unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(": ").expect("field");
            (n.to_string(), v.to_string())
        })
        .collect();
    (status, headers, bytes[end + 4..].to_vec())
}

fn respond(a: Action) -> Resp {
    match a {
        Action::Respond { bytes, close, status } => {
            let (s, headers, body) = split_response(&bytes);
            assert_eq!(s, status, "status line vs Action status");
            Resp { status, close, headers, body }
        }
        Action::Upgrade(up) => panic!("unexpected upgrade {up:?}"),
        Action::File(f) => panic!("route() reads files itself, got {f:?}"),
    }
}

/// `super::route` from a loopback peer, with the Host check off (these
/// tests use Host names like "a"; access/tests.rs covers Host and auth).
fn route(h: &Head, site: &Site) -> Action {
    let any_host = access::AccessConfig { allowed_hosts: vec!["*".into()], ..Default::default() };
    let mut s = Site {
        web_dir: site.web_dir.clone(),
        allowed_origins: site.allowed_origins.clone(),
        ws_paths: site.ws_paths.clone(),
        protocols: site.protocols.clone(),
        access: Access::new(&any_host, "127.0.0.1:6080".parse().unwrap()).unwrap(),
        upgrade_any_path: site.upgrade_any_path,
        web_csp: site.web_csp.clone(),
    };
    super::route(h, &mut s, &Peer::local(std::time::Instant::now(), 0))
}

fn route_resp(h: &Head, site: &Site) -> Resp {
    let r = respond(route(h, site));
    // Content-Length is exact whenever a body is sent.
    if h.method != "HEAD" && r.status != 304 {
        if let Some(cl) = r.h("Content-Length") {
            assert_eq!(cl.parse::<usize>().unwrap(), r.body.len(), "{r:?}");
        }
    }
    r
}

/// A scratch directory, removed on drop:
///
/// ```text
/// tmp/outside.txt            "SECRET outside"
/// tmp/root/index.html, app.js, style.css, websockify, .hidden, big.bin
/// tmp/root/sub/index.html, sub/x.txt, empty/
/// tmp/root/link_out -> ../outside.txt      (escapes: refused)
/// tmp/root/link_dir_out -> ..              (escapes: refused)
/// tmp/root/link_in -> app.js               (inside: served)
/// ```
struct Tmp(PathBuf);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl Tmp {
    fn root(&self) -> PathBuf {
        self.0.join("root")
    }
    fn site(&self) -> Site {
        Site { web_dir: Some(self.root()), ..Site::default() }
    }
}

fn tmp_web() -> Tmp {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wsvnc-http-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    let root = dir.join("root");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::write(dir.join("outside.txt"), "SECRET outside").unwrap();
    fs::write(root.join("index.html"), "<!doctype html><title>v</title>").unwrap();
    fs::write(root.join("app.js"), "export const x = 1;\n").unwrap();
    fs::write(root.join("style.css"), "body{}").unwrap();
    fs::write(root.join("websockify"), "not a file to serve").unwrap();
    fs::write(root.join(".hidden"), "SECRET hidden").unwrap();
    fs::write(root.join("big.bin"), [7u8; 64]).unwrap();
    fs::write(root.join("sub/index.html"), "<p>sub</p>").unwrap();
    fs::write(root.join("sub/x.txt"), "x\n").unwrap();
    std::os::unix::fs::symlink("../outside.txt", root.join("link_out")).unwrap();
    std::os::unix::fs::symlink("..", root.join("link_dir_out")).unwrap();
    std::os::unix::fs::symlink("app.js", root.join("link_in")).unwrap();
    Tmp(dir)
}

// ---------------------------------------------------------------- parse_head

struct Ok_ {
    input: &'static [u8],
    method: &'static str,
    target: &'static str,
    minor: u8,
    headers: &'static [(&'static str, &'static str)],
}

const HEADS: &[Ok_] = &[
    Ok_ {
        input: b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        method: "GET",
        target: "/",
        minor: 1,
        headers: &[("Host", "a")],
    },
    Ok_ {
        input: b"HEAD /index.html?x=1&y=%20 HTTP/1.0\r\n\r\n",
        method: "HEAD",
        target: "/index.html?x=1&y=%20",
        minor: 0,
        headers: &[],
    },
    // RFC 9112 §2.2: empty lines before the request-line are ignored.
    Ok_ {
        input: b"\r\n\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n",
        method: "GET",
        target: "/a",
        minor: 1,
        headers: &[("Host", "a")],
    },
    // Bare LF line ends (RFC 9112 §2.2 MAY accept).
    Ok_ {
        input: b"GET / HTTP/1.1\nHost: a\nX-A: b\n\n",
        method: "GET",
        target: "/",
        minor: 1,
        headers: &[("Host", "a"), ("X-A", "b")],
    },
    // OWS around values is not part of the value (RFC 9110 §5.5).
    Ok_ {
        input: b"GET / HTTP/1.1\r\nhost:a\r\nX-Sp: \t v w \t\r\nEmpty:\r\n\r\n",
        method: "GET",
        target: "/",
        minor: 1,
        headers: &[("host", "a"), ("X-Sp", "v w"), ("Empty", "")],
    },
    Ok_ {
        input: b"OPTIONS /x HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
        method: "OPTIONS",
        target: "/x",
        minor: 1,
        headers: &[("Connection", "keep-alive, Upgrade"), ("Upgrade", "websocket")],
    },
];

#[test]
fn parse_complete_heads_at_every_split() {
    for row in HEADS {
        let n = row.input.len();
        for k in 0..n {
            assert_eq!(parse(&row.input[..k]), Ok(None), "prefix {k} of {:?}", row.input);
        }
        let (h, used) = parse(row.input).unwrap().expect("complete");
        assert_eq!(used, n);
        assert_eq!(h.method, row.method);
        assert_eq!(h.target, row.target);
        assert_eq!(h.version_minor, row.minor);
        let want: Vec<(String, String)> = row.headers.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(h.headers, want);
    }
}

#[test]
fn parse_leaves_pipelined_bytes() {
    let rows: &[(&[u8], &[u8])] = &[
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"GET /b HTTP/1.1\r\n\r\n"),
        (b"GET /ws HTTP/1.1\r\nHost: a\r\n\r\n", b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"),
        (b"GET / HTTP/1.1\r\n\r\n", b"\r\n"),
    ];
    for (first, rest) in rows {
        let mut buf = first.to_vec();
        buf.extend_from_slice(rest);
        let (_, n) = parse(&buf).unwrap().unwrap();
        assert_eq!(n, first.len());
        assert_eq!(&buf[n..], *rest);
    }
    // Pipelined bytes past max_head_bytes do not make a complete head too big.
    let limits = Limits { max_head_bytes: 32, max_headers: 4 };
    let mut buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    buf.extend_from_slice(&[b'x'; 100]);
    assert_eq!(parse_head(&buf, &limits).unwrap().unwrap().1, 27);
}

fn many_headers(n: usize) -> Vec<u8> {
    let mut v = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..n {
        v.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    v.extend_from_slice(b"\r\n");
    v
}

fn long_target(len: usize) -> Vec<u8> {
    let mut v = b"GET /".to_vec();
    v.extend(std::iter::repeat_n(b'a', len - 1));
    v.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    v
}

fn long_line(len: usize) -> Vec<u8> {
    let mut v = b"GET / HTTP/1.1\r\nX: ".to_vec();
    v.extend(std::iter::repeat_n(b'v', len - 3));
    v.extend_from_slice(b"\r\n\r\n");
    v
}

/// (input, limits, expected error). Every prefix must answer Ok(None) or the
/// same error, and once the error shows it must persist (the caller stops at
/// the first error, so all that matters is that it is the right one).
fn error_rows() -> Vec<(&'static str, Vec<u8>, Limits, u16)> {
    let d = Limits::default();
    let small = Limits { max_head_bytes: 40, max_headers: 32 };
    let mut oversize = b"GET / HTTP/1.1\r\nX: ".to_vec();
    oversize.extend(std::iter::repeat_n(b'v', 8200));
    vec![
        ("header without colon", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n".to_vec(), d, 400),
        ("space in name", b"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n".to_vec(), d, 400),
        ("bad method token", b"G(T / HTTP/1.1\r\n\r\n".to_vec(), d, 400),
        ("two spaces", b"GET  / HTTP/1.1\r\n\r\n".to_vec(), d, 400),
        ("NUL in value", b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n".to_vec(), d, 400),
        ("obs-fold", b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n".to_vec(), d, 400),
        ("CR without LF", b"GET / HTTP/1.1\rX: a\r\n\r\n".to_vec(), d, 400),
        ("HTTP/0.9 request line", b"GET /\r\n\r\n".to_vec(), d, 400),
        ("not HTTP", b"GET / FOO/1.1\r\n\r\n".to_vec(), d, 400),
        ("lowercase http", b"GET / http/1.1\r\n\r\n".to_vec(), d, 400),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\n\r\n".to_vec(), d, 505),
        ("HTTP/1.2", b"GET / HTTP/1.2\r\n\r\n".to_vec(), d, 505),
        ("HTTP/3", b"GET / HTTP/3\r\n\r\n".to_vec(), d, 505),
        ("target 2049", long_target(2049), d, 414),
        ("33 headers", many_headers(33), d, 431),
        ("3 headers over max 2", many_headers(3), Limits { max_head_bytes: 8192, max_headers: 2 }, 431),
        ("header line 4097", long_line(4097), d, 431),
        ("incomplete head over 8192", oversize, d, 431),
        ("complete head of 41 > 40", b"GET / HTTP/1.1\r\nHost: abcdefghijklmno\r\n\r\n".to_vec(), small, 431),
    ]
}

#[test]
fn parse_errors_at_every_split() {
    for (name, input, limits, want) in error_rows() {
        let mut seen = false;
        for k in 0..=input.len() {
            match parse_head(&input[..k], &limits) {
                Ok(None) => assert!(!seen, "{name}: error went away at {k}"),
                Err(code) => {
                    assert_eq!(code, want, "{name}: prefix {k}");
                    seen = true;
                }
                Ok(Some(_)) => panic!("{name}: parsed at {k}"),
            }
        }
        assert!(seen, "{name}: no error");
    }
}

#[test]
fn parse_limits_boundaries_accept() {
    let d = Limits::default();
    let rows: Vec<(&str, Vec<u8>, Limits)> = vec![
        ("target 2048", long_target(2048), d),
        ("32 headers", many_headers(32), d),
        ("header line 4096", long_line(4096), d),
        (
            "head of exactly 40",
            b"GET / HTTP/1.1\r\nHost: abcdefghijklmn\r\n\r\n".to_vec(),
            Limits { max_head_bytes: 40, max_headers: 32 },
        ),
        ("100 headers with a larger limit", many_headers(100), Limits { max_head_bytes: 8192, max_headers: 100 }),
    ];
    for (name, input, limits) in rows {
        let (_, n) = parse_head(&input, &limits).unwrap_or_else(|e| panic!("{name}: {e}")).expect(name);
        assert_eq!(n, input.len(), "{name}");
    }
    // An incomplete head of exactly max_head_bytes is still just incomplete.
    let limits = Limits { max_head_bytes: 40, max_headers: 32 };
    let partial = b"GET / HTTP/1.1\r\nHost: abcdefghijklmn\r\n\r";
    assert_eq!(partial.len(), 39);
    assert_eq!(parse_head(partial, &limits), Ok(None));
}

#[test]
fn header_lookup_and_tokens() {
    let h = head(
        "GET",
        "/",
        1,
        &[("Host", "a"), ("Connection", "keep-alive, Upgrade"), ("X-Multi", "one"), ("x-multi", "two ,, three")],
    );
    assert_eq!(h.header("HOST"), Some("a"));
    assert_eq!(h.header("x-MULTI"), Some("one"));
    assert_eq!(h.header("missing"), None);
    assert_eq!(h.header_all("X-Multi").collect::<Vec<_>>(), ["one", "two ,, three"]);
    assert_eq!(h.tokens("x-multi").collect::<Vec<_>>(), ["one", "two", "three"]);
    assert_eq!(h.header_count("x-multi"), 2);
    assert!(h.has_token("connection", "upgrade"));
    assert!(h.has_token("Connection", "KEEP-ALIVE"));
    assert!(!h.has_token("connection", "close"));
    assert!(!h.has_token("connection", "keep"));
}

#[test]
fn keep_alive_rows() {
    let rows: &[(u8, Option<&str>, bool)] = &[
        (1, None, true),
        (1, Some("close"), false),
        (1, Some("Keep-Alive, Close"), false),
        (1, Some("keep-alive"), true),
        (1, Some("Upgrade"), true),
        (0, None, false),
        (0, Some("keep-alive"), true),
        (0, Some("Keep-Alive"), true),
        (0, Some("close"), false),
    ];
    for &(minor, conn, want) in rows {
        let hs: Vec<(&str, &str)> = conn.map(|c| ("Connection", c)).into_iter().collect();
        assert_eq!(head("GET", "/", minor, &hs).keep_alive(), want, "{minor} {conn:?}");
    }
}

// ---------------------------------------------------------------- paths

#[test]
fn clean_path_rows() {
    let ok: &[(&str, &str, &[&str], bool)] = &[
        ("/", "/", &[], true),
        ("/index.html", "/index.html", &["index.html"], false),
        ("/a/b/", "/a/b/", &["a", "b"], true),
        ("/a%20b.js", "/a b.js", &["a b.js"], false),
        ("/%252e%252e", "/%2e%2e", &["%2e%2e"], false), // decoded once only
        ("/caf%C3%A9", "/café", &["café"], false),
        ("/a+b", "/a+b", &["a+b"], false), // '+' is not a space in paths
        ("/...", "/...", &["..."], false),
    ];
    for &(raw, decoded, segs, trailing) in ok {
        let p = path::clean_path(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!(p.decoded, decoded, "{raw}");
        assert_eq!(p.segments, segs, "{raw}");
        assert_eq!(p.trailing_slash, trailing, "{raw}");
        assert_eq!(p.raw, raw);
    }
    let bad = [
        "",
        "index.html",
        "*",
        "http://evil/x",
        "/..",
        "/../etc/passwd",
        "/.",
        "/a/./b",
        "/a/../b",
        "/%2e%2e/x",
        "/%2E%2E",
        "/a/%2E%2E/%2e%2e/x",
        "/..%2fx",
        "/%2e%2e%2fx",
        "//etc/passwd",
        "//",
        "/a//b",
        "/a%2f%2fb",
        "/a\\..\\b",
        "/a%5cb",
        "/%5C",
        "/%00",
        "/a%00.html",
        "/%0d%0a",
        "/%7f",
        "/%zz",
        "/%",
        "/%4",
        "/%%30",
        "/%C0%AE%C0%AE/x",
        "/%ff",
    ];
    for raw in bad {
        assert_eq!(path::clean_path(raw), Err(400), "{raw:?}");
    }
}

#[test]
fn query_rows() {
    let rows: &[(&str, &[(&str, &str)])] = &[
        ("", &[]),
        ("token=abc", &[("token", "abc")]),
        ("token=a%20b&x=1+2", &[("token", "a b"), ("x", "1 2")]),
        ("a&b=&&c=%3D%26", &[("a", ""), ("b", ""), ("c", "=&")]),
        ("k=v=w", &[("k", "v=w")]),
        ("t=1&t=2", &[("t", "1"), ("t", "2")]),
    ];
    for &(raw, want) in rows {
        let q = path::parse_query(raw).unwrap();
        let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(q, want, "{raw}");
    }
    for raw in ["t=%zz", "t=%", "%ff=1"] {
        assert_eq!(path::parse_query(raw), Err(400), "{raw}");
    }
    let q = path::parse_query("t=1&token=x%2Fy&t=2").unwrap();
    assert_eq!(query_param(&q, "t"), Some("1"));
    assert_eq!(query_param(&q, "token"), Some("x/y"));
    assert_eq!(query_param(&q, "nope"), None);
}

#[test]
fn split_target_rows() {
    let rows: &[(&str, &str, Option<&str>)] = &[
        ("/", "/", None),
        ("/a?b", "/a", Some("b")),
        ("/a?", "/a", Some("")),
        ("/a?b?c", "/a", Some("b?c")),
        ("/a#frag", "/a", None),
        ("/a?b#frag", "/a", Some("b")),
    ];
    for &(t, p, q) in rows {
        assert_eq!(path::split_target(t), (p, q), "{t}");
    }
}

// ---------------------------------------------------------------- static files

#[test]
fn mime_rows() {
    let rows = [
        ("/index.html", "text/html; charset=utf-8"),
        ("/a/B.HTM", "text/html; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/mod.mjs", "text/javascript; charset=utf-8"),
        ("/s.css", "text/css; charset=utf-8"),
        ("/i.svg", "image/svg+xml"),
        ("/i.png", "image/png"),
        ("/favicon.ico", "image/x-icon"),
        ("/d.json", "application/json"),
        ("/m.wasm", "application/wasm"),
        ("/f.woff2", "font/woff2"),
        ("/r.txt", "text/plain; charset=utf-8"),
        ("/x.tar.gz", "application/octet-stream"),
        ("/noext", "application/octet-stream"),
        ("/.js", "application/octet-stream"),
        ("/dir.js/file", "application/octet-stream"),
        ("/trailing.", "application/octet-stream"),
    ];
    for (p, m) in rows {
        assert_eq!(mime::mime_for(p), m, "{p}");
    }
    assert!(mime::is_html("text/html; charset=utf-8"));
    assert!(!mime::is_html("text/plain; charset=utf-8"));
}

#[test]
fn etag_vectors() {
    // FNV-1a 64 reference values.
    assert_eq!(etag::fnv1a64(b""), 0xcbf29ce484222325);
    assert_eq!(etag::fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    assert_eq!(etag::etag_for(b"a"), "\"af63dc4c8601ec8c\"");
}

#[test]
fn traversal_never_serves() {
    let t = tmp_web();
    // (target, status with --web DIR)
    let rows: &[(&str, u16)] = &[
        ("/../etc/passwd", 400),
        ("/../outside.txt", 400),
        ("/%2e%2e/x", 400),
        ("/%2e%2e/outside.txt", 400),
        ("/a/%2E%2E/%2e%2e/x", 400),
        ("/sub/%2E%2E/%2e%2e/outside.txt", 400),
        ("/..%2fx", 400),
        ("/..%2foutside.txt", 400),
        ("//etc/passwd", 400),
        ("/a\\..\\b", 400),
        ("/sub\\..\\..\\outside.txt", 400),
        ("/%5c..%5coutside.txt", 400),
        ("/%00", 400),
        ("/index.html%00.txt", 400),
        ("/%zz", 400),
        ("/%", 400),
        ("/sub/../../outside.txt", 400),
        ("/./index.html", 400),
        ("/%C0%AE%C0%AE/outside.txt", 400),
        ("outside.txt", 400),
        ("http://localhost/../outside.txt", 400),
        ("/%252e%252e/outside.txt", 404),
        ("/link_out", 404),
        ("/link_dir_out/outside.txt", 404),
        ("/.hidden", 404),
        ("/%2ehidden", 404),
        ("/sub/.hidden", 404),
        ("/empty/", 404),
        ("/empty", 404),
        ("/nope", 404),
        ("/app.js/", 404),
    ];
    let disk = t.site();
    let embedded = Site::default();
    for &(target, want) in rows {
        for method in ["GET", "HEAD"] {
            let h = head(method, target, 1, &[("Host", "localhost")]);
            let r = route_resp(&h, &disk);
            assert_eq!(r.status, want, "{method} {target} (disk)");
            assert!(!String::from_utf8_lossy(&r.body).contains("SECRET"), "{target}");
            let r = route_resp(&h, &embedded);
            assert_ne!(r.status, 200, "{method} {target} (embedded)");
        }
    }
}

#[test]
fn disk_serving() {
    let t = tmp_web();
    let site = t.site();
    // (target, status, content-type, body)
    let rows: &[(&str, u16, &str, &str)] = &[
        ("/", 200, "text/html; charset=utf-8", "<!doctype html><title>v</title>"),
        ("/index.html", 200, "text/html; charset=utf-8", "<!doctype html><title>v</title>"),
        ("/?x=1", 200, "text/html; charset=utf-8", "<!doctype html><title>v</title>"),
        ("/app.js", 200, "text/javascript; charset=utf-8", "export const x = 1;\n"),
        ("/link_in", 200, "application/octet-stream", "export const x = 1;\n"),
        ("/style.css", 200, "text/css; charset=utf-8", "body{}"),
        ("/sub/", 200, "text/html; charset=utf-8", "<p>sub</p>"),
        ("/sub/x.txt", 200, "text/plain; charset=utf-8", "x\n"),
        ("/su%62/x.txt", 200, "text/plain; charset=utf-8", "x\n"),
    ];
    for &(target, status, ctype, body) in rows {
        let r = route_resp(&get(target), &site);
        assert_eq!(
            (r.status, r.h("Content-Type"), r.body.as_slice()),
            (status, Some(ctype), body.as_bytes()),
            "{target}"
        );
        assert_eq!(r.h("X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(r.h("Cache-Control"), Some("no-cache"), "{target}: --web DIR always revalidates");
        assert_eq!(r.h("ETag").map(str::to_string), Some(etag::etag_for(body.as_bytes())));
        // --web pages are the user's (noVNC's have inline scripts): no policy unless --web-csp.
        assert_eq!(r.h("Content-Security-Policy"), None, "{target}");
        assert!(!r.close);
        assert_eq!(r.h("Connection"), None);
    }
    let with_csp = Site { web_csp: Some("default-src 'self' 'unsafe-inline'".into()), ..t.site() };
    assert_eq!(
        route_resp(&get("/"), &with_csp).h("Content-Security-Policy"),
        Some("default-src 'self' 'unsafe-inline'")
    );
    assert_eq!(route_resp(&get("/app.js"), &with_csp).h("Content-Security-Policy"), None, "HTML only");
    // The embedded viewer always has the strict policy, --web-csp or not.
    let embedded = Site { web_csp: Some("default-src *".into()), ..Site::default() };
    if assets::lookup("/index.html").is_some() {
        assert_eq!(route_resp(&get("/"), &embedded).h("Content-Security-Policy"), Some(CSP));
    }
    assert!(CSP.contains("default-src 'self'") && CSP.contains("connect-src 'self' ws: wss:"));
    assert!(CSP.contains("img-src 'self' data: blob:"));

    // A directory without its slash is redirected (query kept).
    let r = route_resp(&get("/sub?a=b"), &site);
    assert_eq!((r.status, r.h("Location")), (301, Some("/sub/?a=b")));

    // Files over the cap are refused, not truncated.
    let p = path::clean_path("/big.bin").unwrap();
    assert!(matches!(files::find_capped(Some(&t.root()), &p, 64, true), Ok(files::Found::File(_))));
    assert_eq!(files::find_capped(Some(&t.root()), &p, 63, true).unwrap_err(), 500);

    // A missing web root is 404, not a panic.
    let gone = Site { web_dir: Some(t.0.join("nope")), ..Site::default() };
    assert_eq!(route_resp(&get("/"), &gone).status, 404);
}

#[test]
fn head_has_no_body_but_same_fields() {
    let t = tmp_web();
    let site = t.site();
    for target in ["/", "/app.js", "/healthz", "/nope", "/%zz"] {
        let g = match route(&get(target), &site) {
            Action::Respond { bytes, .. } => bytes,
            a => panic!("{a:?}"),
        };
        let h = match route(&head("HEAD", target, 1, &[("Host", "localhost:6080")]), &site) {
            Action::Respond { bytes, .. } => bytes,
            a => panic!("{a:?}"),
        };
        let (gs, gh, gb) = split_response(&g);
        let (hs, hh, hb) = split_response(&h);
        assert_eq!((gs, &gh), (hs, &hh), "{target}");
        assert!(hb.is_empty(), "{target}");
        assert!(!gb.is_empty(), "{target}");
        assert_eq!(g[..g.len() - gb.len()], h[..], "{target}: GET = HEAD + body");
    }
}

#[test]
fn methods_and_healthz() {
    let t = tmp_web();
    let site = t.site();
    let rows: &[(&str, &str, u16)] = &[
        ("POST", "/app.js", 405),
        ("PUT", "/", 405),
        ("DELETE", "/nope", 405),
        ("OPTIONS", "/", 405),
        ("POST", "/healthz", 405),
        ("GET", "/healthz", 200),
        ("HEAD", "/healthz", 200),
    ];
    for &(m, target, want) in rows {
        let r = route_resp(&head(m, target, 1, &[("Host", "h")]), &site);
        assert_eq!(r.status, want, "{m} {target}");
        if want == 405 {
            assert_eq!(r.h("Allow"), Some("GET, HEAD"));
            assert!(!r.close, "405 keeps the connection");
        }
    }
    let r = route(&get("/healthz"), &Site::default());
    let Action::Respond { bytes, close: false, status: 200 } = r else { panic!("{r:?}") };
    assert_eq!(
        bytes,
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\
Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\r\nok\n"
    );
}

#[test]
fn connection_handling_rows() {
    let t = tmp_web();
    let site = t.site();
    // (version, extra fields, status, close, Connection field)
    type Row<'a> = (u8, &'a [(&'a str, &'a str)], u16, bool, Option<&'a str>);
    let rows: &[Row] = &[
        (1, &[], 200, false, None),
        (1, &[("Connection", "close")], 200, true, Some("close")),
        (0, &[], 200, true, Some("close")),
        (0, &[("Connection", "keep-alive")], 200, false, Some("keep-alive")),
        (1, &[("Content-Length", "0")], 200, false, None),
        (1, &[("Content-Length", "5")], 200, true, Some("close")),
        (1, &[("Transfer-Encoding", "chunked")], 200, true, Some("close")),
        (1, &[("Content-Length", "x")], 400, true, Some("close")),
        (1, &[("Content-Length", "1, 2")], 400, true, Some("close")),
        (1, &[("Content-Length", "3"), ("Content-Length", "3")], 200, true, Some("close")),
        (1, &[("Host", "second")], 400, true, Some("close")),
    ];
    for &(minor, extra, status, close, conn) in rows {
        let mut hs = vec![("Host", "localhost")];
        hs.extend_from_slice(extra);
        let r = route_resp(&head("GET", "/app.js", minor, &hs), &site);
        assert_eq!((r.status, r.close, r.h("Connection")), (status, close, conn), "1.{minor} {extra:?}");
    }
    // HTTP/1.1 needs a Host; HTTP/1.0 does not.
    assert_eq!(route_resp(&head("GET", "/app.js", 1, &[]), &site).status, 400);
    assert_eq!(route_resp(&head("GET", "/app.js", 0, &[]), &site).status, 200);
}

#[test]
fn conditional_get() {
    let t = tmp_web();
    let site = t.site();
    let tag = etag::etag_for(b"export const x = 1;\n");
    let weak = format!("W/{tag}");
    let list = format!("\"nope\", {tag}");
    let rows: Vec<(&str, u16)> = vec![(&tag, 304), (&weak, 304), (&list, 304), ("*", 304), ("\"nope\"", 200)];
    for (inm, want) in rows {
        let h = head("GET", "/app.js", 1, &[("Host", "h"), ("If-None-Match", inm)]);
        let r = route_resp(&h, &site);
        assert_eq!(r.status, want, "{inm}");
        if want == 304 {
            assert!(r.body.is_empty());
            assert_eq!(r.h("ETag"), Some(tag.as_str()));
            assert_eq!(r.h("Content-Length"), None);
        }
    }
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz).read_to_end(&mut out).unwrap();
    out
}

#[test]
fn accept_encoding_rows() {
    let rows: &[(&[&str], bool)] = &[
        (&[], false),
        (&["gzip"], true),
        (&["GZip"], true),
        (&["x-gzip"], true),
        (&["deflate", "br"], false),
        (&["br", "gzip;q=0.8"], true),
        (&["gzip;q=0"], false),
        (&["gzip; q=0.000"], false),
        (&["gzip;Q=0"], false),
        (&["gzip;q=0.001"], true),
        (&["*"], true),
        (&["*;q=0"], false),
        (&["*", "gzip;q=0"], false),
        (&["gzip;q=0", "*"], false),
        (&["*;q=0", "gzip"], true),
        (&["identity"], false),
        (&["gzipx"], false),
    ];
    for (elements, want) in rows {
        assert_eq!(accepts_gzip(elements.iter().copied()), *want, "{elements:?}");
    }
    // Through the request head: list elements of one or several fields.
    let h = head("GET", "/", 1, &[("Host", "h"), ("Accept-Encoding", "br"), ("Accept-Encoding", "gzip, deflate")]);
    assert!(accepts_gzip(h.tokens("accept-encoding")));
}

#[test]
fn embedded_table() {
    // Whatever web/ held at build time: sorted, unique, valid paths, tags and
    // types computed by the same functions used at run time.
    let all = assets::ASSETS;
    for w in all.windows(2) {
        assert!(w[0].path < w[1].path, "sorted and unique");
    }
    for a in all {
        let p = path::clean_path(a.path).unwrap();
        assert!(!p.trailing_slash && !p.segments.iter().any(|s| s.starts_with('.')), "{}", a.path);
        assert_eq!(a.mime, mime::mime_for(a.path));
        let body = a.body().unwrap();
        assert_eq!((a.etag, a.len), (etag::etag_for(body).as_str(), body.len()));
        let gz = a.representation(true).unwrap();
        assert_eq!(gz.gzip, a.is_gzipped());
        if gz.gzip {
            assert_eq!(gz.etag, etag::etag_for(gz.body), "{}", a.path);
            assert_ne!(gz.etag, a.etag, "{}", a.path);
            assert!(gz.body.len() < body.len(), "{}", a.path);
            assert_eq!(gunzip(gz.body), body, "{}", a.path);
        } else {
            assert_eq!(gz, a.representation(false).unwrap());
        }
        assert!(std::ptr::eq(assets::lookup(a.path).unwrap(), a));
    }
    assert!(assets::lookup("/definitely/not/here.js").is_none());
    assert!(assets::lookup("").is_none());
    assert!(assets::lookup("index.html").is_none(), "exact match only");

    // When built with WSVNC_WEB_DIR (see build.rs), the table must hold exactly
    // that directory's visible files.
    if let Some(dir) = option_env!("WSVNC_WEB_DIR") {
        fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
            for e in fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                if name.starts_with('.') {
                    continue;
                }
                let url = format!("{prefix}/{name}");
                if e.path().is_dir() {
                    walk(&e.path(), &url, out);
                } else {
                    out.push((url, fs::read(e.path()).unwrap()));
                }
            }
        }
        let mut want = Vec::new();
        walk(Path::new(dir), "", &mut want);
        assert_eq!(want.len(), all.len());
        for (url, body) in want {
            assert_eq!(assets::lookup(&url).and_then(|a| a.body()), Some(body.as_slice()), "{url}");
        }
    }
}

#[test]
fn embedded_routing() {
    let site = Site::default();
    for a in assets::ASSETS {
        let body = a.body().unwrap();
        let r = route_resp(&get(a.path), &site);
        assert_eq!((r.status, r.body.as_slice()), (200, body), "{}", a.path);
        assert_eq!(r.h("Content-Type"), Some(a.mime));
        assert_eq!((r.h("Content-Encoding"), r.h("ETag")), (None, Some(a.etag)));
        let cache = if mime::is_html(a.mime) { "no-cache" } else { "public, max-age=3600" };
        assert_eq!(r.h("Cache-Control"), Some(cache));
        let vary = a.is_gzipped().then_some("Accept-Encoding");
        assert_eq!(r.h("Vary"), vary, "{}", a.path);

        // A client that accepts gzip gets the embedded gzip member when there is one.
        let gz = head("GET", a.path, 1, &[("Host", "localhost:6080"), ("Accept-Encoding", "br, gzip;q=0.5")]);
        let g = route_resp(&gz, &site);
        assert_eq!((g.status, g.h("Content-Type"), g.h("Vary")), (200, Some(a.mime), vary), "{}", a.path);
        if a.is_gzipped() {
            assert_eq!(g.h("Content-Encoding"), Some("gzip"));
            assert_eq!(gunzip(&g.body), body, "{}", a.path);
            let g_etag = g.h("ETag").unwrap();
            assert_ne!(g_etag, a.etag);
            // Revalidation is per representation.
            let cond = |tag: &str, accept: &str| {
                let h = head(
                    "GET",
                    a.path,
                    1,
                    &[("Host", "localhost:6080"), ("Accept-Encoding", accept), ("If-None-Match", tag)],
                );
                route_resp(&h, &site).status
            };
            assert_eq!(cond(g_etag, "gzip"), 304);
            assert_eq!(cond(a.etag, "identity"), 304);
            assert_eq!(cond(a.etag, "gzip"), 200);
            assert_eq!(cond(g_etag, "gzip;q=0"), 200);
            // HEAD: the same Content-Length as the GET, no body.
            let h = head("HEAD", a.path, 1, &[("Host", "localhost:6080"), ("Accept-Encoding", "gzip")]);
            let hr = route_resp(&h, &site);
            assert_eq!(hr.h("Content-Length"), Some(g.body.len().to_string().as_str()));
            assert!(hr.body.is_empty());
        } else {
            assert_eq!((g.h("Content-Encoding"), g.body.as_slice()), (None, body), "{}", a.path);
        }
    }
    // The viewer's page, scripts and styles compress well: they are stored gzipped.
    for p in ["/index.html", "/app.css"] {
        if let Some(a) = assets::lookup(p) {
            assert!(a.is_gzipped(), "{p}");
        }
    }
    let index = assets::lookup("/index.html").is_some();
    assert_eq!(route_resp(&get("/"), &site).status, if index { 200 } else { 404 });
    assert_eq!(route_resp(&get("/definitely-missing.js"), &site).status, 404);
}

// ---------------------------------------------------------------- responses

#[test]
fn error_response_bytes() {
    assert_eq!(
        error_response(404, true),
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\
Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n404 Not Found\n"
    );
    assert_eq!(
        error_response(431, false),
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 36\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\r\n\
431 Request Header Fields Too Large\n"
    );
    let rows: &[(u16, &str, &str)] = &[
        (400, "Connection", "close"),
        (405, "Allow", "GET, HEAD"),
        (414, "Content-Length", "17"),
        (426, "Upgrade", "websocket"),
        (426, "Sec-WebSocket-Version", "13"),
        (426, "Connection", "Upgrade, close"),
        (505, "Content-Length", "31"),
    ];
    for &(status, name, value) in rows {
        let (s, hs, body) = split_response(&error_response(status, true));
        assert_eq!(s, status);
        assert_eq!(body.len(), hs.iter().find(|(n, _)| n == "Content-Length").unwrap().1.parse::<usize>().unwrap());
        assert!(hs.iter().any(|(n, v)| n == name && v == value), "{status}: {hs:?}");
    }
}

// ---------------------------------------------------------------- websocket

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

#[test]
fn accept_key_rfc6455_example() {
    // RFC 6455 §1.3.
    assert_eq!(accept_key(KEY), ACCEPT);
    assert_eq!(accept_key("x3JJHMbDL1EzLkh9GBhXDw=="), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

const BASE: &[(&str, &str)] = &[
    ("Host", "localhost:6080"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Sec-WebSocket-Version", "13"),
];

/// BASE with `set` replacing fields of the same name (an empty value removes
/// it) and other fields appended.
fn ws_head(method: &str, target: &str, minor: u8, set: &[(&str, &str)]) -> Head {
    let mut hs: Vec<(String, String)> = Vec::new();
    for (n, v) in BASE {
        if !set.iter().any(|(sn, _)| sn.eq_ignore_ascii_case(n)) {
            hs.push((n.to_string(), v.to_string()));
        }
    }
    for (n, v) in set {
        if !v.is_empty() {
            hs.push((n.to_string(), v.to_string()));
        }
    }
    Head { method: method.into(), target: target.into(), version_minor: minor, headers: hs }
}

struct WsRow {
    name: &'static str,
    method: &'static str,
    minor: u8,
    set: &'static [(&'static str, &'static str)],
    protocols: &'static [&'static str],
    allowed: &'static [&'static str],
    /// Ok(chosen protocol) or Err(status).
    want: Result<Option<&'static str>, u16>,
}

const fn row(
    name: &'static str,
    set: &'static [(&'static str, &'static str)],
    want: Result<Option<&'static str>, u16>,
) -> WsRow {
    WsRow { name, method: "GET", minor: 1, set, protocols: &["binary"], allowed: &[], want }
}

const WS_ROWS: &[WsRow] = &[
    row("base", &[], Ok(None)),
    row("connection list", &[("Connection", "keep-alive, Upgrade")], Ok(None)),
    row("connection case", &[("Connection", "UPGRADE")], Ok(None)),
    row("upgrade case", &[("Upgrade", "WebSocket")], Ok(None)),
    row("upgrade list", &[("Upgrade", "h2c, websocket")], Ok(None)),
    row("no upgrade token", &[("Upgrade", "h2c")], Err(400)),
    row("no connection token", &[("Connection", "keep-alive")], Err(400)),
    row("connection missing", &[("Connection", "")], Err(400)),
    row("upgrade as substring", &[("Connection", "upgraded")], Err(400)),
    row("plain GET", &[("Upgrade", ""), ("Connection", "")], Err(426)),
    row("version 8", &[("Sec-WebSocket-Version", "8")], Err(426)),
    row("version missing", &[("Sec-WebSocket-Version", "")], Err(426)),
    row("version list", &[("Sec-WebSocket-Version", "13, 8")], Err(426)),
    row("key missing", &[("Sec-WebSocket-Key", "")], Err(400)),
    row("key short", &[("Sec-WebSocket-Key", "abc")], Err(400)),
    row("key 15 bytes", &[("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAA")], Err(400)),
    row("key 17 bytes", &[("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAAA=")], Err(400)),
    row("key bad char", &[("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ!=")], Err(400)),
    row("key not padded", &[("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ")], Err(400)),
    row("two keys", &[("Sec-WebSocket-Key", KEY), ("sec-websocket-key", KEY)], Err(400)),
    WsRow { method: "POST", ..row("POST", &[], Err(400)) },
    WsRow { method: "HEAD", ..row("HEAD", &[], Err(400)) },
    WsRow { minor: 0, ..row("HTTP/1.0", &[], Err(400)) },
    row("missing host", &[("Host", "")], Err(400)),
    // Subprotocols: our first preference that the client offered.
    row("offered ours", &[("Sec-WebSocket-Protocol", "binary")], Ok(Some("binary"))),
    row("ours second", &[("Sec-WebSocket-Protocol", "chat, binary")], Ok(Some("binary"))),
    row("two fields", &[("Sec-WebSocket-Protocol", "chat"), ("sec-websocket-protocol", "binary")], Ok(Some("binary"))),
    row("none of ours", &[("Sec-WebSocket-Protocol", "chat, superchat")], Ok(None)),
    row("case-sensitive", &[("Sec-WebSocket-Protocol", "Binary")], Ok(None)),
    WsRow {
        protocols: &["wsvnc.v1", "binary"],
        ..row("our preference wins", &[("Sec-WebSocket-Protocol", "binary, wsvnc.v1")], Ok(Some("wsvnc.v1")))
    },
    WsRow { protocols: &[], ..row("we speak none", &[("Sec-WebSocket-Protocol", "binary")], Ok(None)) },
    // Origins.
    row("same origin", &[("Origin", "http://localhost:6080")], Ok(None)),
    row("same origin case", &[("Origin", "HTTP://LocalHost:6080")], Ok(None)),
    row("same host other port", &[("Origin", "http://localhost:6081")], Err(403)),
    row("same host no port", &[("Origin", "http://localhost")], Err(403)),
    row("other host", &[("Origin", "http://evil.example:6080")], Err(403)),
    row("null origin", &[("Origin", "null")], Err(403)),
    row("origin with path", &[("Origin", "http://localhost:6080/x")], Err(403)),
    row("origin userinfo", &[("Origin", "http://evil@localhost:6080")], Err(403)),
    row("default http port", &[("Host", "example.com"), ("Origin", "http://example.com")], Ok(None)),
    row("explicit :80", &[("Host", "example.com:80"), ("Origin", "http://example.com")], Ok(None)),
    row("https behind proxy", &[("Host", "example.com"), ("Origin", "https://example.com")], Ok(None)),
    row("https :443", &[("Host", "example.com:443"), ("Origin", "https://example.com:443")], Ok(None)),
    row("http vs :443", &[("Host", "example.com:443"), ("Origin", "http://example.com")], Err(403)),
    row("ipv6", &[("Host", "[::1]:6080"), ("Origin", "http://[::1]:6080")], Ok(None)),
    row("ipv6 other port", &[("Host", "[::1]:6080"), ("Origin", "http://[::1]:6081")], Err(403)),
    row("file scheme", &[("Origin", "file://localhost:6080")], Err(403)),
    WsRow { allowed: &["https://example.com"], ..row("allowed list", &[("Origin", "https://example.com")], Ok(None)) },
    WsRow {
        allowed: &["https://example.com"],
        ..row("allowed list other port", &[("Origin", "https://example.com:8443")], Err(403))
    },
    WsRow { allowed: &["*"], ..row("star", &[("Origin", "http://anything.example")], Ok(None)) },
    WsRow { allowed: &["*"], ..row("star null", &[("Origin", "null")], Ok(None)) },
];

#[test]
fn websocket_handshake_rows() {
    for r in WS_ROWS {
        let site = Site {
            protocols: r.protocols.to_vec(),
            allowed_origins: r.allowed.iter().map(|s| s.to_string()).collect(),
            ..Site::default()
        };
        let h = ws_head(r.method, "/websockify", r.minor, r.set);
        match (route(&h, &site), r.want) {
            (Action::Upgrade(up), Ok(proto)) => {
                assert_eq!(up.protocol.as_deref(), proto, "{}", r.name);
                assert_eq!(up.accept, ACCEPT, "{}", r.name);
                assert_eq!(up.path, "/websockify");
                assert_eq!(up.host.as_deref(), h.header("host"));
                assert_eq!(up.origin.as_deref(), h.header("origin"));
            }
            (a @ Action::Respond { .. }, Err(status)) => {
                let resp = respond(a);
                assert_eq!(resp.status, status, "{}", r.name);
                assert!(resp.close, "{}: failed handshakes close", r.name);
                if status == 426 {
                    assert_eq!(resp.h("Sec-WebSocket-Version"), Some("13"));
                    assert_eq!(resp.h("Upgrade"), Some("websocket"));
                }
            }
            (a, want) => panic!("{}: got {a:?}, want {want:?}", r.name),
        }
    }
}

#[test]
fn websocket_query_extensions_and_response() {
    let site = Site { protocols: vec!["binary"], ..Site::default() };
    let h = ws_head(
        "GET",
        "/ws?token=a%20b&x=1+2",
        1,
        &[
            ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
            ("Sec-WebSocket-Extensions", " x-foo "),
            ("Sec-WebSocket-Protocol", "binary"),
        ],
    );
    let Action::Upgrade(up) = route(&h, &site) else { panic!() };
    assert_eq!(
        up,
        Upgrade {
            target: None,
            path: "/ws".into(),
            query: vec![("token".into(), "a b".into()), ("x".into(), "1 2".into())],
            accept: ACCEPT.into(),
            protocol: Some("binary".into()),
            extensions: "permessage-deflate; client_max_window_bits, x-foo".into(),
            origin: None,
            host: Some("localhost:6080".into()),
        }
    );
    assert_eq!(query_param(&up.query, "token"), Some("a b"));
    assert_eq!(
        upgrade_response(&up, Some("permessage-deflate; server_no_context_takeover")),
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: binary\r\n\
Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n"
    );
    let bare = Upgrade { protocol: None, ..up };
    let want = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    assert_eq!(upgrade_response(&bare, None), want);
    assert_eq!(upgrade_response(&bare, Some("")), want);

    // A bad query escape on a ws path is 400.
    let h = ws_head("GET", "/ws?token=%zz", 1, &[]);
    assert_eq!(respond(route(&h, &site)).status, 400);
    // No extensions → "".
    let Action::Upgrade(up) = route(&ws_head("GET", "/ws", 1, &[]), &site) else { panic!() };
    assert_eq!(up.extensions, "");
    assert!(up.query.is_empty());
}

#[test]
fn websocket_paths_are_not_files() {
    let t = tmp_web();
    let site = t.site(); // root holds a file named "websockify"
    let r = route_resp(&get("/websockify"), &site);
    assert_eq!(r.status, 426);
    assert_eq!(r.h("Upgrade"), Some("websocket"));
    assert!(r.close);
    // Encoded spelling of a ws path is the same path (decoded once).
    assert_eq!(route_resp(&get("/websockif%79"), &site).status, 426);
    // Only the listed paths upgrade: a handshake elsewhere is 404, and the
    // file is never served in response to it.
    for target in ["/", "/websockify/", "/app.js", "/ws/x"] {
        let r = route_resp(&ws_head("GET", target, 1, &[]), &site);
        assert_eq!(r.status, 404, "{target}");
        assert!(r.body.ends_with(RELAY_OFF.as_bytes()), "{target}: the 404 says relay mode is off");
    }
}

#[test]
fn relay_mode_upgrades_on_any_path_and_plain_gets_still_get_files() {
    let t = tmp_web();
    let site = Site { upgrade_any_path: true, ws_paths: vec!["/ws".into()], ..t.site() };
    for target in ["/", "/websockify", "/websockify/", "/app.js", "/ws/x", "/a/b/c?token=x"] {
        match route(&ws_head("GET", target, 1, &[]), &site) {
            Action::Upgrade(up) => assert_eq!(up.path, target.split('?').next().unwrap(), "{target}"),
            other => panic!("{target}: {other:?}"),
        }
    }
    // The handshake checks still apply off the listed paths.
    let r = route_resp(&ws_head("GET", "/x", 1, &[("Sec-WebSocket-Version", "8")]), &site);
    assert_eq!(r.status, 426);
    // Without an Upgrade field, files are files and the ws path is 426.
    assert_eq!(route_resp(&get("/app.js"), &site).body, b"export const x = 1;\n");
    assert_eq!(route_resp(&get("/ws"), &site).status, 426);
    assert_eq!(route_resp(&get("/websockify"), &site).status, 200, "a file named websockify is served");
}

#[test]
fn full_handshake_through_the_parser() {
    // RFC 6455 §1.2 client handshake, split at every offset, then routed.
    let req = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";
    for k in 0..req.len() {
        assert_eq!(parse(&req[..k]), Ok(None), "prefix {k}");
    }
    let mut buf = req.to_vec();
    buf.extend_from_slice(b"\x81\x80abcd"); // first frame, belongs to the ws layer
    let (h, n) = parse(&buf).unwrap().unwrap();
    assert_eq!(n, req.len());
    let site = Site {
        ws_paths: vec!["/chat".into()],
        protocols: vec!["superchat", "chat"],
        allowed_origins: vec!["http://example.com".into()],
        ..Site::default()
    };
    let Action::Upgrade(up) = route(&h, &site) else { panic!() };
    assert_eq!(up.accept, ACCEPT);
    assert_eq!(up.protocol.as_deref(), Some("superchat"));
    // Without the allowance, that cross-origin page is refused.
    let strict = Site { allowed_origins: vec![], ..site };
    assert_eq!(respond(route(&h, &strict)).status, 403);
}
