//! Request-target handling: split path and query, percent-decode once, refuse
//! anything that could name a file outside the web root.
//!
//! Only origin-form targets are accepted (RFC 9112 §3.2.1: `/path?query`).
//! Absolute-form is for proxies and asterisk-form for `OPTIONS *`; browsers
//! send neither to an origin server, so both are 400 here.

/// A request path after decoding and checking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanPath {
    /// The raw path as sent (no query), for building a redirect `Location`.
    pub raw: String,
    /// Percent-decoded once, e.g. "/app/main.js" or "/".
    pub decoded: String,
    /// Non-empty segments; none is "." or "..", none contains '/', '\\' or a
    /// control character.
    pub segments: Vec<String>,
    /// The decoded path ends in '/' (so "/" and "/dir/" name directories).
    pub trailing_slash: bool,
}

/// Splits a request-target into raw path and raw query (`None` when there is
/// no '?'). A fragment cannot appear in a request-target (RFC 9112 §3.2); if a
/// client sends one anyway it is dropped.
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    let target = target.split_once('#').map_or(target, |(t, _)| t);
    match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    }
}

/// Decodes `%XX` escapes (RFC 3986 §2.1) once; with `plus_as_space`, '+' is a
/// space as in application/x-www-form-urlencoded queries. A '%' not followed by
/// two hex digits is an error (400).
pub fn percent_decode(s: &str, plus_as_space: bool) -> Result<Vec<u8>, u16> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = b.get(i + 1).and_then(|&c| hex(c)).ok_or(400u16)?;
                let lo = b.get(i + 2).and_then(|&c| hex(c)).ok_or(400u16)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes and checks a raw path (no query). Errors are 400: not starting with
/// a single '/', a bad escape, a backslash (raw or `%5C`), NUL or any control
/// character after decoding, bytes that are not UTF-8, an empty segment
/// (`//`, `/a//b`), or a `.`/`..` segment (raw, `%2e%2e`, or formed by `%2f`).
/// Decoding happens exactly once, before splitting, so `/..%2fx` becomes the
/// segments `..`, `x` and is refused.
pub fn clean_path(raw: &str) -> Result<CleanPath, u16> {
    if !raw.starts_with('/') || raw.contains('\\') {
        return Err(400);
    }
    let bytes = percent_decode(raw, false)?;
    if bytes.iter().any(|&c| c < 0x20 || c == 0x7f || c == b'\\') {
        return Err(400);
    }
    let decoded = String::from_utf8(bytes).map_err(|_| 400u16)?;
    let Some(body) = decoded.strip_prefix('/') else {
        return Err(400);
    };
    let trailing_slash = decoded.ends_with('/');
    let body = body.strip_suffix('/').unwrap_or(body);
    let mut segments = Vec::new();
    if !body.is_empty() || trailing_slash && decoded.len() > 1 {
        // "/" has no segments; otherwise every segment must be non-empty.
        for seg in body.split('/') {
            if seg.is_empty() || seg == "." || seg == ".." {
                return Err(400);
            }
            segments.push(seg.to_string());
        }
    }
    Ok(CleanPath { raw: raw.to_string(), decoded, segments, trailing_slash })
}

/// Parses a raw query into percent-decoded (name, value) pairs, '+' as space,
/// in order; `a&b=` gives ("a", ""), ("b", ""). Empty pieces (`&&`) are
/// skipped. A bad escape or bytes that are not UTF-8 are an error (400).
pub fn parse_query(raw: &str) -> Result<Vec<(String, String)>, u16> {
    let mut out = Vec::new();
    for piece in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        let name = String::from_utf8(percent_decode(name, true)?).map_err(|_| 400u16)?;
        let value = String::from_utf8(percent_decode(value, true)?).map_err(|_| 400u16)?;
        out.push((name, value));
    }
    Ok(out)
}
