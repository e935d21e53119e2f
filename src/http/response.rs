//! Response heads and small bodies. Every response is `HTTP/1.1` (RFC 9110
//! §6.2: a server sends its own highest version) with an exact Content-Length.

/// Reason phrases for the statuses this module produces.
pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        421 => "Misdirected Request",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// What the `Connection` header must say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Conn {
    /// HTTP/1.1 persistent: no header needed.
    KeepAlive11,
    /// HTTP/1.0 client that asked for keep-alive: echo it (RFC 9112 §9.3).
    KeepAlive10,
    /// We will close after this response.
    Close,
}

impl Conn {
    pub(crate) fn new(close: bool, version_minor: u8) -> Conn {
        match (close, version_minor) {
            (true, _) => Conn::Close,
            (false, 0) => Conn::KeepAlive10,
            (false, _) => Conn::KeepAlive11,
        }
    }
}

/// A response head under construction.
pub(crate) struct Builder {
    out: Vec<u8>,
}

impl Builder {
    pub(crate) fn new(status: u16) -> Builder {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", status, reason(status)).as_bytes());
        Builder { out }
    }

    /// Adds one field. Values are ours or checked by the caller: no CR/LF.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Builder {
        debug_assert!(!value.bytes().any(|b| b == b'\r' || b == b'\n'), "header value with CR/LF");
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self
    }

    pub(crate) fn connection(self, conn: Conn) -> Builder {
        match conn {
            Conn::KeepAlive11 => self,
            Conn::KeepAlive10 => self.header("Connection", "keep-alive"),
            Conn::Close => self.header("Connection", "close"),
        }
    }

    /// Ends the head; appends `body` unless `head_only` (a HEAD request:
    /// same fields, including Content-Length, but no body; RFC 9110 §9.3.2).
    pub(crate) fn finish(mut self, body: &[u8], head_only: bool) -> Vec<u8> {
        self.out.extend_from_slice(b"\r\n");
        if !head_only {
            self.out.extend_from_slice(body);
        }
        self.out
    }
}

/// A small `text/plain` error response: body "404 Not Found\n". Status-specific
/// fields: 405 gets `Allow: GET, HEAD`; 426 gets `Upgrade: websocket`,
/// `Sec-WebSocket-Version: 13` and the `upgrade` connection option (RFC 9110
/// §7.8, RFC 6455 §4.2.2). With `close`, `Connection: close` is sent and the
/// caller must close after writing.
pub fn error_response(status: u16, close: bool) -> Vec<u8> {
    error_with(status, if close { Conn::Close } else { Conn::KeepAlive11 }, false)
}

pub(crate) fn error_with(status: u16, conn: Conn, head_only: bool) -> Vec<u8> {
    error_detail(status, conn, head_only, "")
}

/// As [`error_with`], with `detail` (ours, never the peer's) after the status
/// line of the body.
pub(crate) fn error_detail(status: u16, conn: Conn, head_only: bool, detail: &str) -> Vec<u8> {
    let body = format!("{} {}\n{detail}", status, reason(status));
    let mut b = Builder::new(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Content-Length", &body.len().to_string())
        .header("Cache-Control", "no-store")
        .header("X-Content-Type-Options", "nosniff");
    match status {
        405 => b = b.header("Allow", "GET, HEAD"),
        426 => {
            b = b.header("Upgrade", "websocket").header("Sec-WebSocket-Version", "13");
            b = b.header(
                "Connection",
                match conn {
                    Conn::Close => "Upgrade, close",
                    Conn::KeepAlive10 => "Upgrade, keep-alive",
                    Conn::KeepAlive11 => "Upgrade",
                },
            );
            return b.finish(body.as_bytes(), head_only);
        }
        _ => {}
    }
    b.connection(conn).finish(body.as_bytes(), head_only)
}

/// An access-control refusal: body "401 Unauthorized: REASON\n"; with
/// `basic_challenge`, `WWW-Authenticate: Basic realm="wsvnc"` (RFC 7617 §2);
/// with `retry_after`, `Retry-After` (RFC 9110 §10.2.3).
pub(crate) fn refusal_response(
    status: u16,
    why: &str,
    basic_challenge: bool,
    retry_after: Option<u64>,
    conn: Conn,
    head_only: bool,
) -> Vec<u8> {
    let clean: String = why.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let body = format!("{} {}: {clean}\n", status, reason(status));
    let mut b = Builder::new(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Content-Length", &body.len().to_string())
        .header("Cache-Control", "no-store")
        .header("X-Content-Type-Options", "nosniff");
    if basic_challenge {
        b = b.header("WWW-Authenticate", "Basic realm=\"wsvnc\", charset=\"UTF-8\"");
    }
    if let Some(s) = retry_after {
        b = b.header("Retry-After", &s.to_string());
    }
    b.connection(conn).finish(body.as_bytes(), head_only)
}
