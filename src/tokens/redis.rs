//! Tokens from Redis, in websockify's `TokenRedis` format, read by a small
//! hand-written RESP client (Redis serialization protocol, RESP2: the
//! commands `AUTH`, `SELECT`, `SCAN`, `MGET`).
//!
//! Source (`--token-plugin TokenRedis --token-source SPEC`), websockify's
//! spelling: `host[:port[:db[:password[:namespace]]]]`; an empty field takes
//! its default (6379, db 0, no password, no namespace); a field may be put in
//! double quotes to contain ':'. With a namespace NS the key of token T is
//! `NS:T`, else `T` (then every key of the database is read as a token: use a
//! namespace or a database of its own).
//!
//! Value of a key, as websockify reads it: JSON `{"host": "HOST:PORT"}`, or
//! `{"host": "HOST", "port": PORT}` (port as a number or a string), or plain
//! `HOST:PORT`. Anything else is logged and the token left out.
//!
//! Reload semantics, the same as the token file's: the whole table is read
//! at start and then again every [`POLL_EVERY`] and on SIGHUP, off the loop
//! (on a helper thread); names are resolved then, never per connection.
//! When the table changed, the loop swaps it in and ends the sessions and
//! relays whose token was removed or re-pointed, as for the file. When Redis
//! cannot be reached the previous table stays in use (at start: an empty
//! one) and the error is logged once until it changes.

use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::config::{resolve, ConfigError, Target, TargetAddr, TokenTable};

/// How often the table is read again.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// Connect, read and write timeout for one exchange with Redis.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Most tokens read (a larger table is refused with an error).
pub const MAX_TOKENS: usize = 100_000;
/// Longest reply line or bulk string accepted (keys and values are short).
const MAX_BULK: usize = 64 << 10;
/// Keys per `MGET`.
const MGET_BATCH: usize = 512;

/// Where the tokens are.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSource {
    pub host: String,
    pub port: u16,
    pub db: u32,
    pub password: Option<String>,
    /// Key prefix including its ':' (empty: none).
    pub prefix: String,
}

impl fmt::Debug for RedisSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// For logs: never the password.
impl fmt::Display for RedisSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redis at {}:{} db {}", self.host, self.port, self.db)?;
        if !self.prefix.is_empty() {
            write!(f, " keys {}*", self.prefix)?;
        }
        Ok(())
    }
}

/// Split at ':' except inside double quotes (websockify's `parse_source_args`).
fn split_fields(spec: &str) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    let mut rest = spec;
    loop {
        if let Some(q) = rest.strip_prefix('"') {
            let Some(end) = q.find('"') else { return Err(ConfigError(format!("unbalanced '\"' in '{spec}'"))) };
            out.push(q[..end].to_string());
            rest = &q[end + 1..];
            match rest.strip_prefix(':') {
                Some(r) => rest = r,
                None if rest.is_empty() => return Ok(out),
                None => return Err(ConfigError(format!("expected ':' after a quoted field in '{spec}'"))),
            }
        } else {
            match rest.split_once(':') {
                Some((f, r)) => {
                    out.push(f.to_string());
                    rest = r;
                }
                None => {
                    out.push(rest.to_string());
                    return Ok(out);
                }
            }
        }
    }
}

impl RedisSource {
    /// Parse `host[:port[:db[:password[:namespace]]]]`.
    pub fn parse(spec: &str) -> Result<RedisSource, ConfigError> {
        let bad = |why: &str| {
            ConfigError(format!(
                "--token-source '{spec}' for TokenRedis: {why} (expected host[:port[:db[:password[:namespace]]]])"
            ))
        };
        let f = split_fields(spec)?;
        if f.len() > 5 || f[0].is_empty() {
            return Err(bad(if f.len() > 5 { "too many fields" } else { "no host" }));
        }
        let field = |i: usize| f.get(i).map(String::as_str).filter(|s| !s.is_empty());
        let port = match field(1) {
            Some(p) => p.parse().map_err(|_| bad("bad port"))?,
            None => 6379,
        };
        let db = match field(2) {
            Some(d) => d.parse().map_err(|_| bad("bad db number"))?,
            None => 0,
        };
        Ok(RedisSource {
            host: f[0].clone(),
            port,
            db,
            password: field(3).map(str::to_string),
            prefix: field(4).map(|ns| format!("{ns}:")).unwrap_or_default(),
        })
    }
}

/// Why Redis could not be read.
#[derive(Debug)]
pub enum RedisError {
    /// Connecting, reading or writing failed.
    Io(io::Error),
    /// Redis answered with an error (`-ERR …`, `-NOAUTH …`).
    Server(String),
    /// The reply was not what the protocol allows here.
    Protocol(&'static str),
    /// More than [`MAX_TOKENS`] keys.
    TooMany,
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisError::Io(e) => write!(f, "{e}"),
            RedisError::Server(m) => write!(f, "Redis answered: {m}"),
            RedisError::Protocol(m) => write!(f, "unexpected reply from Redis: {m}"),
            RedisError::TooMany => write!(f, "more than {MAX_TOKENS} tokens"),
        }
    }
}

impl From<io::Error> for RedisError {
    fn from(e: io::Error) -> Self {
        RedisError::Io(e)
    }
}

/// One RESP2 reply.
#[derive(Debug, PartialEq)]
enum Reply {
    Simple(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

/// A blocking connection (used on a helper thread only).
struct Conn {
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(src: &RedisSource) -> Result<Conn, RedisError> {
        let addrs = (src.host.as_str(), src.port).to_socket_addrs()?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, IO_TIMEOUT) {
                Ok(s) => {
                    s.set_read_timeout(Some(IO_TIMEOUT))?;
                    s.set_write_timeout(Some(IO_TIMEOUT))?;
                    let _ = s.set_nodelay(true);
                    let mut c = Conn { r: BufReader::new(s) };
                    if let Some(pw) = &src.password {
                        c.call(&[b"AUTH", pw.as_bytes()])?;
                    }
                    if src.db != 0 {
                        c.call(&[b"SELECT", src.db.to_string().as_bytes()])?;
                    }
                    return Ok(c);
                }
                Err(e) => last = e,
            }
        }
        Err(RedisError::Io(last))
    }

    /// Send a command (an array of bulk strings) and read its reply; an
    /// error reply becomes `RedisError::Server`.
    fn call(&mut self, args: &[&[u8]]) -> Result<Reply, RedisError> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.r.get_mut().write_all(&out)?;
        read_reply(&mut self.r, 0)
    }
}

/// Read one reply (nested arrays at most 2 deep, as SCAN's).
fn read_reply(r: &mut impl BufRead, depth: usize) -> Result<Reply, RedisError> {
    let line = read_line(r)?;
    let (kind, rest) = (line.as_bytes()[0], line.get(1..).ok_or(RedisError::Protocol("unknown reply type"))?);
    let num = || rest.parse::<i64>().map_err(|_| RedisError::Protocol("bad length"));
    match kind {
        b'+' => Ok(Reply::Simple(rest.to_string())),
        b'-' => Err(RedisError::Server(rest.to_string())),
        b':' => Ok(Reply::Int(num()?)),
        b'$' => match num()? {
            -1 => Ok(Reply::Bulk(None)),
            n if n < 0 || n as usize > MAX_BULK => Err(RedisError::Protocol("bulk string too long")),
            n => {
                let mut b = vec![0u8; n as usize + 2];
                r.read_exact(&mut b)?;
                if !b.ends_with(b"\r\n") {
                    return Err(RedisError::Protocol("bulk string not followed by CRLF"));
                }
                b.truncate(n as usize);
                Ok(Reply::Bulk(Some(b)))
            }
        },
        b'*' if depth < 2 => match num()? {
            -1 => Ok(Reply::Array(Vec::new())),
            n if n < 0 || n as usize > MAX_TOKENS => Err(RedisError::Protocol("array too long")),
            n => (0..n).map(|_| read_reply(r, depth + 1)).collect::<Result<_, _>>().map(Reply::Array),
        },
        _ => Err(RedisError::Protocol("unknown reply type")),
    }
}

/// One CRLF-terminated line, bounded, without its CRLF.
fn read_line(r: &mut impl BufRead) -> Result<String, RedisError> {
    let mut line = Vec::new();
    let n = std::io::Read::take(&mut *r, 4096).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(RedisError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    if !line.ends_with(b"\r\n") || line.len() < 3 {
        return Err(RedisError::Protocol("reply line not ended by CRLF"));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| RedisError::Protocol("reply line not UTF-8"))
}

/// `*`, `?`, `[`, `]`, `\` matched literally in a SCAN pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Every key under the source's prefix (SCAN, so Redis is never blocked).
fn scan_keys(c: &mut Conn, prefix: &str) -> Result<Vec<Vec<u8>>, RedisError> {
    let pattern = format!("{}*", glob_escape(prefix));
    let mut cursor = b"0".to_vec();
    let mut keys = Vec::new();
    loop {
        let reply = c.call(&[b"SCAN", &cursor, b"MATCH", pattern.as_bytes(), b"COUNT", b"1000"])?;
        let Reply::Array(mut parts) = reply else { return Err(RedisError::Protocol("SCAN did not answer an array")) };
        let (Some(Reply::Array(batch)), Some(Reply::Bulk(Some(next)))) = (parts.pop(), parts.pop()) else {
            return Err(RedisError::Protocol("SCAN answer is not [cursor, keys]"));
        };
        for k in batch {
            let Reply::Bulk(Some(k)) = k else { return Err(RedisError::Protocol("SCAN key is not a string")) };
            keys.push(k);
        }
        if keys.len() > MAX_TOKENS {
            return Err(RedisError::TooMany);
        }
        if next == b"0" {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup(); // SCAN may return a key twice
    Ok(keys)
}

/// Read the whole table (blocking: connect, SCAN, MGET, name resolution).
pub fn load(src: &RedisSource) -> Result<TokenTable, RedisError> {
    let mut c = Conn::open(src)?;
    let keys = scan_keys(&mut c, &src.prefix)?;
    let mut table = TokenTable::default();
    for batch in keys.chunks(MGET_BATCH) {
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(batch.iter().map(Vec::as_slice));
        let Reply::Array(values) = c.call(&args)? else {
            return Err(RedisError::Protocol("MGET did not answer an array"));
        };
        if values.len() != batch.len() {
            return Err(RedisError::Protocol("MGET answered a different number of values"));
        }
        for (key, value) in batch.iter().zip(values) {
            let token = String::from_utf8_lossy(&key[src.prefix.len()..]).into_owned();
            let Reply::Bulk(Some(value)) = value else { continue }; // deleted since SCAN, or not a string
            match parse_value(&String::from_utf8_lossy(&value)) {
                Ok(t) => {
                    table.entries.insert(token, t);
                }
                Err(e) => log::warn!("Redis token {:?}: {e}; left out", crate::logsafe::esc(&token)),
            }
        }
    }
    Ok(table)
}

/// A key's value: `HOST:PORT`, `{"host": "HOST:PORT"}` or `{"host": "HOST", "port": PORT}`.
pub fn parse_value(v: &str) -> Result<Target, String> {
    let v = v.trim();
    let spec = if v.starts_with('{') {
        let host = json_field(v, "host").ok_or("JSON without a \"host\" string")?;
        match json_field(v, "port") {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    } else {
        v.to_string()
    };
    if spec.split_whitespace().count() != 1 || !spec.contains(':') {
        return Err(format!("value {:?} is not HOST:PORT", crate::logsafe::esc(v)));
    }
    let addr = resolve(&spec, "127.0.0.1").map_err(|e| e.0)?;
    let mut t = Target::new(TargetAddr::Tcp(addr));
    t.security.host = spec.rsplit_once(':').map(|(h, _)| h.trim_matches(['[', ']']).to_string());
    Ok(t)
}

/// The value of `"name"` in a flat JSON object: a string (escapes `\"`,
/// `\\`, `\/` only) or a number, as text. Enough for websockify's values;
/// anything fancier is "not found".
fn json_field(obj: &str, name: &str) -> Option<String> {
    let quoted = format!("\"{name}\"");
    let at = obj.find(&quoted)? + quoted.len();
    let rest = obj[at..].trim_start().strip_prefix(':')?.trim_start();
    if let Some(s) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out),
                '\\' => match chars.next()? {
                    c @ ('"' | '\\' | '/') => out.push(c),
                    _ => return None,
                },
                c => out.push(c),
            }
        }
        None
    } else {
        let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
        (!n.is_empty()).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_in_websockify_spelling() {
        let s = RedisSource::parse("redis.lan").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.db, s.password.as_deref(), s.prefix.as_str()),
            ("redis.lan", 6379, 0, None, "")
        );
        let s = RedisSource::parse("h:6380:2:pw:app").unwrap();
        assert_eq!((s.port, s.db, s.password.as_deref(), s.prefix.as_str()), (6380, 2, Some("pw"), "app:"));
        let s = RedisSource::parse("h:::secret").unwrap();
        assert_eq!((s.port, s.db, s.password.as_deref()), (6379, 0, Some("secret")));
        let s = RedisSource::parse("h::::\"first-ns:second-ns\"").unwrap();
        assert_eq!(s.prefix, "first-ns:second-ns:");
        assert!(!format!("{s:?}").contains("secret"));
        for bad in ["", ":6379", "h:port", "h:1:x", "h:1:2:3:4:5", "h::::\"open"] {
            assert!(RedisSource::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_in_websockify_formats() {
        let tcp = |v: &str| match parse_value(v).unwrap().addr {
            TargetAddr::Tcp(a) => a.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(tcp("127.0.0.1:5901"), "127.0.0.1:5901");
        assert_eq!(tcp(" {\"host\": \"127.0.0.1:5902\"}\n"), "127.0.0.1:5902");
        assert_eq!(tcp("{\"host\":\"127.0.0.1\",\"port\":\"5903\"}"), "127.0.0.1:5903");
        assert_eq!(tcp("{\"port\": 5904, \"host\": \"127.0.0.1\"}"), "127.0.0.1:5904");
        assert_eq!(parse_value("localhost:5900").unwrap().security.host.as_deref(), Some("localhost"));
        for bad in ["", "nonsense", "{\"port\": 1}", "{\"host\": 5}", "1.2.3.4:1 extra", "{\"host\": \"a\\u0041:1\"}"] {
            assert!(parse_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replies_parse_and_bad_ones_are_errors() {
        let parse = |b: &[u8]| read_reply(&mut &b[..], 0);
        assert_eq!(parse(b"+OK\r\n").unwrap(), Reply::Simple("OK".into()));
        assert_eq!(parse(b":7\r\n").unwrap(), Reply::Int(7));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Reply::Bulk(None));
        assert_eq!(
            parse(b"*2\r\n$1\r\n0\r\n*1\r\n$3\r\nabc\r\n").unwrap(),
            Reply::Array(vec![
                Reply::Bulk(Some(b"0".to_vec())),
                Reply::Array(vec![Reply::Bulk(Some(b"abc".to_vec()))])
            ])
        );
        assert!(
            matches!(parse(b"-NOAUTH Authentication required.\r\n"), Err(RedisError::Server(m)) if m.starts_with("NOAUTH"))
        );
        assert!(matches!(parse(b"$99999999\r\n"), Err(RedisError::Protocol(_))));
        assert!(matches!(parse(b"*1\r\n*1\r\n*1\r\n:1\r\n"), Err(RedisError::Protocol(_))), "nesting is bounded");
        assert!(matches!(parse(b"$3\r\nabcXY"), Err(RedisError::Protocol(_))));
        assert!(parse(b"+OK").is_err());
        assert!(matches!(parse(b"?\r\n"), Err(RedisError::Protocol(_))));
        assert!(matches!(parse(b""), Err(RedisError::Io(_))));
    }

    #[test]
    fn scan_patterns_match_the_prefix_literally() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
