//! HTTP/1.1 request heads (RFC 9112 §2–§5) parsed under explicit limits.
//!
//! The parser never half-consumes: it answers "incomplete" (`Ok(None)`), or a
//! whole head and the number of bytes it used, or an HTTP status to answer with.
//! Syntax is checked by `httparse`; the limits are checked here first, on
//! whatever prefix has arrived, so an oversized head is refused as soon as it
//! is visible rather than after it has been buffered whole.

/// Longest request-target we accept (RFC 9112 §3: "a server that receives a
/// request-target longer than any URI it wishes to parse MUST respond with a
/// 414"). RFC 9110 §4.1 recommends supporting at least 8000 octets for general
/// servers; ours only serves a handful of short paths and a `?token=`.
pub const MAX_TARGET_BYTES: usize = 2048;

/// Longest single header line (name, colon, value), excluding the line end.
/// Longer lines are refused with 431 (RFC 6585 §5).
pub const MAX_HEADER_LINE_BYTES: usize = 4096;

/// Limits on one request head. Anything over them is answered with 431.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes from the start of the buffer through the blank line (default 8192).
    pub max_head_bytes: usize,
    /// Header fields in one head (default 32).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_head_bytes: 8192, max_headers: 32 }
    }
}

/// A parsed request head. Header names keep the client's spelling; look them up
/// with [`Head::header`] (case-insensitive, RFC 9110 §5.1). Values are trimmed of
/// optional whitespace (RFC 9110 §5.5); bytes that are not UTF-8 (obs-text) are
/// replaced with U+FFFD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The raw request-target, exactly as sent (not decoded).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1 (the only versions accepted).
    pub version_minor: u8,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every field named `name` (case-insensitive), in order.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// How many fields are named `name`.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count()
    }

    /// The elements of a comma-separated list field (RFC 9110 §5.6.1), across
    /// all fields of that name, trimmed, empty elements dropped.
    pub fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.header_all(name).flat_map(list_elements)
    }

    /// True when the list field `name` contains `token` (case-insensitive), e.g.
    /// `Connection: keep-alive, Upgrade` has the token `upgrade`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.tokens(name).any(|t| t.eq_ignore_ascii_case(token))
    }

    /// Whether the connection persists after this exchange (RFC 9112 §9.3):
    /// `Connection: close` ends it; otherwise HTTP/1.1 persists and HTTP/1.0
    /// persists only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        if self.has_token("connection", "close") {
            return false;
        }
        self.version_minor >= 1 || self.has_token("connection", "keep-alive")
    }
}

/// Splits one list-field value on commas, trimming OWS. Quoted strings are not
/// special-cased: none of the fields we read as lists carry commas in quotes.
pub fn list_elements(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(|e| e.trim_matches([' ', '\t'])).filter(|e| !e.is_empty())
}

/// Parses one request head from the start of `buf`.
///
/// * `Ok(None)`: no complete head yet and no limit exceeded; call again with more.
/// * `Ok(Some((head, n)))`: `buf[..n]` was the head (through the blank line);
///   `buf[n..]` belongs to the next layer (a pipelined request, WebSocket frames).
/// * `Err(status)`: 400 malformed; 431 head too big (`buf.len() > max_head_bytes`
///   without a complete head, a head longer than that, more than `max_headers`
///   fields, or a line over [`MAX_HEADER_LINE_BYTES`]); 414 request-target over
///   [`MAX_TARGET_BYTES`]; 505 an HTTP version other than 1.0/1.1.
///
/// Any prefix of a valid head answers `Ok(None)`; once an error is reported
/// the connection should be answered and closed (the caller stops parsing).
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<(Head, usize)>, u16> {
    check_limits(buf, limits)?;

    // Header slots live on the stack for the usual limits.
    let mut stack = [httparse::EMPTY_HEADER; 64];
    let mut heap;
    let slots: &mut [httparse::Header<'_>] = if limits.max_headers <= stack.len() {
        &mut stack[..limits.max_headers]
    } else {
        heap = vec![httparse::EMPTY_HEADER; limits.max_headers];
        &mut heap
    };
    let mut req = httparse::Request::new(slots);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Partial) => {
            return if buf.len() > limits.max_head_bytes { Err(431) } else { Ok(None) };
        }
        Ok(httparse::Status::Complete(n)) => n,
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Err(httparse::Error::Version) => return Err(classify_version(buf)),
        Err(_) => return Err(400),
    };
    if n > limits.max_head_bytes {
        return Err(431);
    }
    let (Some(method), Some(target), Some(version_minor)) = (req.method, req.path, req.version) else {
        return Err(400);
    };
    let headers = req
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value);
            (h.name.to_string(), value.trim_matches([' ', '\t']).to_string())
        })
        .collect();
    let head = Head { method: method.to_string(), target: target.to_string(), version_minor, headers };
    Ok(Some((head, n)))
}

/// Checks the limits on the visible part of the head: the target length in the
/// request line, each header line's length and the number of header lines.
/// Scanning stops at the blank line; bytes after it are not ours.
fn check_limits(buf: &[u8], limits: &Limits) -> Result<(), u16> {
    // RFC 9112 §2.2: empty lines before the request-line are ignored (httparse
    // skips them too).
    let mut start = buf.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(buf.len());
    let mut first = true;
    let mut fields = 0usize;
    loop {
        let rest = &buf[start..];
        let (mut line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(k) => (&rest[..k], Some(start + k + 1)),
            None => (rest, None),
        };
        let complete = next.is_some();
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if first {
            first = false;
            // request-line = method SP request-target SP HTTP-version
            if let Some(sp) = line.iter().position(|&b| b == b' ') {
                let after = &line[sp + 1..];
                let target_len = after.iter().position(|&b| b == b' ').unwrap_or(after.len());
                if target_len > MAX_TARGET_BYTES {
                    return Err(414);
                }
            }
        } else {
            if line.is_empty() && complete {
                return Ok(()); // end of head
            }
            if line.len() > MAX_HEADER_LINE_BYTES {
                return Err(431);
            }
            if !line.is_empty() {
                fields += 1;
                if fields > limits.max_headers {
                    return Err(431);
                }
            }
        }
        match next {
            Some(n) => start = n,
            None => return Ok(()),
        }
    }
}

/// httparse reports any version other than HTTP/1.0 and HTTP/1.1 as
/// `Error::Version`. A well-formed but unsupported `HTTP/x.y` is 505 (RFC 9110
/// §15.6.6); anything else in that position is a malformed request, 400.
fn classify_version(buf: &[u8]) -> u16 {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(buf.len());
    let line = &buf[start..];
    let line = &line[..line.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(line.len())];
    let mut parts = line.splitn(3, |&b| b == b' ');
    let version = parts.nth(2).unwrap_or(b"");
    match version.strip_prefix(b"HTTP/") {
        Some(rest) if !rest.is_empty() && rest.iter().all(|b| b.is_ascii_digit() || *b == b'.') => 505,
        _ => 400,
    }
}
