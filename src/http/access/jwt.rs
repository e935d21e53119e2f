//! Signed, expiring access tokens: JSON Web Tokens (RFC 7519) in JWS compact
//! serialization (RFC 7515 §7.1) with HMAC-SHA256 ("HS256", RFC 7518 §3.2).
//! Checked without any I/O: bytes, the key and the current Unix time in.
//!
//! ```text
//!  BASE64URL(header) . BASE64URL(payload) . BASE64URL(HMAC-SHA256(key, first two parts))
//! ```
//!
//! Order of checks (each failure is a [`JwtError`]):
//! 1. at most [`MAX_TOKEN_BYTES`], exactly three parts, each strict
//!    base64url without padding (RFC 7515 §2; non-canonical trailing bits
//!    refused);
//! 2. the header is a JSON object with `"alg": "HS256"` (anything else —
//!    `none`, RS256, a missing `alg` — is refused: RFC 8725 §3.1), `typ`
//!    absent or `JWT`, and no `crit` (RFC 7515 §4.1.11: we understand no
//!    extension);
//! 3. the signature, compared in constant time (before the payload is
//!    even parsed);
//! 4. the payload is a JSON object; `exp` is required (a token without an
//!    expiry is a password that never changes) and must be in the future;
//!    `nbf`, when present, must have passed (RFC 7519 §4.1.4–4.1.5; no
//!    leeway: mint tokens with a few seconds of slack instead).
//!
//! Claims understood (others are ignored):
//!
//! | claim       | type            | meaning |
//! |-------------|-----------------|---------|
//! | `exp`       | NumericDate     | expiry (required) |
//! | `nbf`       | NumericDate     | not before |
//! | `host`, `port` | string, number or digit string | the VNC server, as websockify's JWT token plugin reads them; honoured only when `--jwt-target` allows it |
//! | `token`     | string          | wsvnc: only this token-file entry may be used |
//! | `view_only` | bool            | wsvnc: the viewer gets no input |
//!
//! JSON is read by a small strict parser ([`json`]): UTF-8, no duplicate
//! keys, nesting at most [`json::MAX_DEPTH`], numbers as f64.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::json::{self, Value};

/// Longest token accepted (a request head is capped at 8 KiB anyway).
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Why a token was refused. `Display` is what the client and the log see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url parts, or too long.
    Malformed(&'static str),
    /// Header or payload is not the JSON we accept.
    BadJson(&'static str),
    /// `alg` is not HS256 (incl. "none").
    Algorithm,
    /// Signature does not match the key.
    Signature,
    /// No `exp` claim.
    NoExpiry,
    Expired,
    NotYetValid,
    /// A claim we read has the wrong type.
    ClaimType(&'static str),
}

impl std::fmt::Display for JwtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtError::Malformed(m) => write!(f, "malformed token: {m}"),
            JwtError::BadJson(m) => write!(f, "malformed token: {m}"),
            JwtError::Algorithm => f.write_str("token algorithm is not HS256"),
            JwtError::Signature => f.write_str("token signature does not match"),
            JwtError::NoExpiry => f.write_str("token has no expiry (exp)"),
            JwtError::Expired => f.write_str("token has expired"),
            JwtError::NotYetValid => f.write_str("token is not valid yet (nbf)"),
            JwtError::ClaimType(c) => write!(f, "token claim {c} has the wrong type"),
        }
    }
}

impl std::error::Error for JwtError {}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claims {
    /// Expiry, Unix seconds (rounded down).
    pub exp: u64,
    /// websockify's `host` and `port`: both or neither.
    pub target: Option<(String, u16)>,
    /// wsvnc's `token`: the one token-file entry this grants.
    pub token: Option<String>,
    pub view_only: bool,
}

/// Verifies `token` with `key` at Unix time `now`.
pub fn verify(token: &str, key: &[u8], now: u64) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed("longer than 4096 bytes"));
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed("not three dot-separated parts"));
    };
    let header = b64(h64)?;
    let header = json::parse(&header).map_err(JwtError::BadJson)?;
    let Value::Object(h) = &header else { return Err(JwtError::BadJson("header is not an object")) };
    if json::get(h, "alg") != Some(&Value::String("HS256".into())) {
        return Err(JwtError::Algorithm);
    }
    match json::get(h, "typ") {
        None => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("JWT") => {}
        Some(_) => return Err(JwtError::BadJson("header typ is not JWT")),
    }
    if json::get(h, "crit").is_some() {
        return Err(JwtError::BadJson("header has crit extensions"));
    }
    let sig = b64(s64)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&token.as_bytes()[..h64.len() + 1 + p64.len()]);
    mac.verify_slice(&sig).map_err(|_| JwtError::Signature)?;

    let payload = b64(p64)?;
    let payload = json::parse(&payload).map_err(JwtError::BadJson)?;
    let Value::Object(p) = &payload else { return Err(JwtError::BadJson("payload is not an object")) };
    let exp = match json::get(p, "exp") {
        None => return Err(JwtError::NoExpiry),
        Some(v) => numeric_date(v, "exp")?,
    };
    if now as f64 >= exp {
        return Err(JwtError::Expired);
    }
    if let Some(v) = json::get(p, "nbf") {
        if (now as f64) < numeric_date(v, "nbf")? {
            return Err(JwtError::NotYetValid);
        }
    }
    let target = match (json::get(p, "host"), json::get(p, "port")) {
        (None, None) => None,
        (Some(Value::String(h)), Some(port)) if !h.is_empty() => Some((h.clone(), port_claim(port)?)),
        (Some(_), Some(_)) => return Err(JwtError::ClaimType("host")),
        _ => return Err(JwtError::ClaimType("host/port (one without the other)")),
    };
    let token = match json::get(p, "token") {
        None => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(JwtError::ClaimType("token")),
    };
    let view_only = match json::get(p, "view_only") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(JwtError::ClaimType("view_only")),
    };
    Ok(Claims { exp: exp.max(0.0) as u64, target, token, view_only })
}

/// Whether `s` has the shape of a compact JWS (three base64url parts), so
/// `?token=` can carry either a token-file name or a JWT (websockify's JWT
/// plugin reads the JWT from `?token=`).
pub fn looks_like_jwt(s: &str) -> bool {
    s.len() <= MAX_TOKEN_BYTES
        && s.split('.').count() == 3
        && s.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// Signs `payload` (a JSON object text) with HS256: for tests and tools.
pub fn sign(payload: &str, key: &[u8]) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut t = format!("{}.{}", e.encode(r#"{"alg":"HS256","typ":"JWT"}"#), e.encode(payload));
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(t.as_bytes());
    t.push('.');
    t.push_str(&e.encode(mac.finalize().into_bytes()));
    t
}

fn b64(part: &str) -> Result<Vec<u8>, JwtError> {
    // The engine refuses padding, characters outside the URL-safe alphabet
    // and non-zero trailing bits (one encoding per byte string).
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtError::Malformed("bad base64url"))
}

/// RFC 7519 §2 NumericDate: seconds since the epoch, fractions allowed.
fn numeric_date(v: &Value, name: &'static str) -> Result<f64, JwtError> {
    match v {
        Value::Number(n) if n.is_finite() => Ok(*n),
        _ => Err(JwtError::ClaimType(name)),
    }
}

/// websockify mints `port` as a number or a string of digits.
fn port_claim(v: &Value) -> Result<u16, JwtError> {
    let port = match v {
        Value::Number(n) if n.fract() == 0.0 && (1.0..=65535.0).contains(n) => *n as u16,
        Value::String(s) if !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<u16>().ok().filter(|p| *p != 0).ok_or(JwtError::ClaimType("port"))?
        }
        _ => return Err(JwtError::ClaimType("port")),
    };
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    fn tok(payload: &str) -> String {
        sign(payload, KEY)
    }

    /// RFC 7515 Appendix A.1: the HS256 example verifies (its `exp` is
    /// 1300819380, so it is checked at a time before that).
    #[test]
    fn rfc7515_example_a1() {
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .unwrap();
        let t = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
                 eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
                 dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let c = verify(t, &key, 1_300_000_000).unwrap();
        assert_eq!(c.exp, 1_300_819_380);
        assert_eq!(verify(t, &key, 1_300_819_380), Err(JwtError::Expired));
        assert_eq!(verify(t, b"other key", 1_300_000_000), Err(JwtError::Signature));
    }

    #[test]
    fn claims_rows() {
        let exp = NOW + 60;
        let rows: Vec<(String, Result<Claims, JwtError>)> = vec![
            (format!(r#"{{"exp":{exp}}}"#), Ok(Claims { exp, ..Claims::default() })),
            (format!(r#"{{"exp":{exp}.75}}"#), Ok(Claims { exp, ..Claims::default() })),
            (
                format!(r#"{{"exp":{exp},"host":"10.0.0.5","port":5901}}"#),
                Ok(Claims { exp, target: Some(("10.0.0.5".into(), 5901)), ..Claims::default() }),
            ),
            (
                format!(r#"{{"exp":{exp},"host":"vnc.lan","port":"5902"}}"#),
                Ok(Claims { exp, target: Some(("vnc.lan".into(), 5902)), ..Claims::default() }),
            ),
            (
                format!(r#"{{"exp":{exp},"token":"lab1","view_only":true,"sub":"ann","aud":["a","b"]}}"#),
                Ok(Claims { exp, token: Some("lab1".into()), view_only: true, ..Claims::default() }),
            ),
            (r#"{"sub":"x"}"#.into(), Err(JwtError::NoExpiry)),
            (format!(r#"{{"exp":{NOW}}}"#), Err(JwtError::Expired)),
            (format!(r#"{{"exp":{exp},"nbf":{}}}"#, NOW + 1), Err(JwtError::NotYetValid)),
            (format!(r#"{{"exp":{exp},"nbf":{NOW}}}"#), Ok(Claims { exp, ..Claims::default() })),
            (format!(r#"{{"exp":"{exp}"}}"#), Err(JwtError::ClaimType("exp"))),
            (format!(r#"{{"exp":{exp},"host":"h"}}"#), Err(JwtError::ClaimType("host/port (one without the other)"))),
            (format!(r#"{{"exp":{exp},"host":"h","port":0}}"#), Err(JwtError::ClaimType("port"))),
            (format!(r#"{{"exp":{exp},"host":"h","port":65536}}"#), Err(JwtError::ClaimType("port"))),
            (format!(r#"{{"exp":{exp},"host":"h","port":59.5}}"#), Err(JwtError::ClaimType("port"))),
            (format!(r#"{{"exp":{exp},"host":"","port":1}}"#), Err(JwtError::ClaimType("host"))),
            (format!(r#"{{"exp":{exp},"host":7,"port":1}}"#), Err(JwtError::ClaimType("host"))),
            (format!(r#"{{"exp":{exp},"view_only":1}}"#), Err(JwtError::ClaimType("view_only"))),
            (format!(r#"{{"exp":{exp},"exp":{exp}}}"#), Err(JwtError::BadJson("duplicate key"))),
            (format!(r#"[{exp}]"#), Err(JwtError::BadJson("payload is not an object"))),
        ];
        for (payload, want) in rows {
            assert_eq!(verify(&tok(&payload), KEY, NOW), want, "payload {payload}");
        }
    }

    #[test]
    fn header_and_shape_rows() {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = e.encode(format!(r#"{{"exp":{}}}"#, NOW + 60));
        let signed = |header: &str| {
            let t = format!("{}.{body}", e.encode(header));
            let mut mac = Hmac::<Sha256>::new_from_slice(KEY).unwrap();
            mac.update(t.as_bytes());
            format!("{t}.{}", e.encode(mac.finalize().into_bytes()))
        };
        let good = tok(&format!(r#"{{"exp":{}}}"#, NOW + 60));
        let (h, rest) = good.split_once('.').unwrap();
        let rows: Vec<(String, JwtError)> = vec![
            (signed(r#"{"alg":"none"}"#), JwtError::Algorithm),
            (signed(r#"{"alg":"HS512"}"#), JwtError::Algorithm),
            (signed(r#"{"alg":"hs256"}"#), JwtError::Algorithm),
            (signed(r#"{"typ":"JWT"}"#), JwtError::Algorithm),
            (signed(r#"{"alg":"HS256","typ":"JOSE+JSON"}"#), JwtError::BadJson("header typ is not JWT")),
            (signed(r#"{"alg":"HS256","crit":["exp"]}"#), JwtError::BadJson("header has crit extensions")),
            (signed(r#"{"alg":"HS256""#), JwtError::BadJson("unexpected end")),
            // "alg":"none" with an empty signature: the classic downgrade.
            (format!("{}.{body}.", e.encode(r#"{"alg":"none"}"#)), JwtError::Algorithm),
            (format!("{h}.{rest}.x"), JwtError::Malformed("not three dot-separated parts")),
            (format!("{h}.{body}"), JwtError::Malformed("not three dot-separated parts")),
            (format!("{h}=.{rest}"), JwtError::Malformed("bad base64url")),
            (format!("{}.{rest}", h.replace('J', "+")), JwtError::Malformed("bad base64url")),
            (format!("{h}.{body}.{}", "A".repeat(43)), JwtError::Signature),
            (good.replace(&body, &e.encode(format!(r#"{{"exp":{}}}"#, NOW + 61))), JwtError::Signature),
            ("a".repeat(MAX_TOKEN_BYTES + 1), JwtError::Malformed("longer than 4096 bytes")),
        ];
        for (t, want) in rows {
            assert_eq!(verify(&t, KEY, NOW), Err(want.clone()), "token {t}");
        }
        assert!(verify(&good, KEY, NOW).is_ok());
    }

    #[test]
    fn shape_detection() {
        assert!(looks_like_jwt(&tok(r#"{"exp":1}"#)));
        for s in ["lab1", "a.b", "a..b", "a.b.c.d", "my.token.name!", ""] {
            assert!(!looks_like_jwt(s), "{s}");
        }
    }
}
