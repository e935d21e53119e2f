//! HTTP Basic authentication (RFC 7617) against a file of salted password
//! hashes in Apache's htpasswd format with bcrypt entries:
//!
//! ```text
//! # comment
//! ann:$2y$10$8Wv7tQ5...      (made by `wsvnc hash-password ann`, or `htpasswd -nB ann`)
//! ```
//!
//! Only bcrypt (`$2a$`, `$2b$`, `$2x$`, `$2y$`) is accepted: the other
//! htpasswd schemes (`$apr1$` MD5, `{SHA}`, crypt) are fast, unsalted or
//! both, and a file holding one is refused at start-up with the line number.
//!
//! Why bcrypt (measured on this 2-core VM, release build; see the commit
//! message): verifying costs ~60–140 ms at cost 10 with 4 KiB of memory and
//! adds 46 KB to the binary, against Argon2id at OWASP's parameters
//! (19 MiB, t=2) ~60–90 ms with 19 MiB allocated per check and +80 KB;
//! PBKDF2-SHA256 at 600 000 rounds ~200 ms. The check runs on the single
//! event-loop thread, so a per-check memory spike matters, and htpasswd
//! files made by Apache's tools work unchanged.
//!
//! Because every check blocks the loop for tens of milliseconds, the caller
//! ([`super::Access`]) remembers credentials it has verified (keyed by a
//! keyed hash, never the password) and allows only a few hash checks per
//! second in all.

/// Users and their bcrypt hashes.
#[derive(Clone, PartialEq, Eq)]
pub struct Users {
    entries: Vec<(String, String)>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Users({} entries)", self.entries.len())
    }
}

/// Cost of new hashes from `wsvnc hash-password` (2^10 rounds).
pub const DEFAULT_COST: u32 = 10;

impl Users {
    /// Parses htpasswd text. Errors name the line.
    pub fn parse(text: &str) -> Result<Users, String> {
        let mut entries: Vec<(String, String)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {}: expected 'user:hash'", n + 1));
            };
            if user.is_empty() || user.chars().any(char::is_control) {
                return Err(format!("line {}: empty user name or control characters in it", n + 1));
            }
            if !is_bcrypt(hash) {
                return Err(format!(
                    "line {}: user '{}': not a bcrypt hash ($2y$…); make entries with `wsvnc hash-password USER` \
                     or `htpasswd -nB USER`",
                    n + 1,
                    crate::logsafe::esc(user)
                ));
            }
            if entries.iter().any(|(u, _)| u == user) {
                return Err(format!("line {}: user '{}' appears twice", n + 1, crate::logsafe::esc(user)));
            }
            entries.push((user.to_string(), hash.to_string()));
        }
        if entries.is_empty() {
            return Err("no users in the file".into());
        }
        Ok(Users { entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `user` exists and `password` matches its hash (the expensive
    /// part: one bcrypt computation). An unknown user costs the same as a
    /// known one, so timing does not tell which user names exist.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        match self.entries.iter().find(|(u, _)| u == user) {
            Some((_, hash)) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, DUMMY_HASH);
                false
            }
        }
    }
}

/// A cost-10 hash of a random string, checked for unknown users.
const DUMMY_HASH: &str = "$2y$10$/uaF/uaF/uaF/uaF/uaF/ucK7xnv.pS44x7wFGahP.odYPUQgg5Nq";

/// `$2?$NN$` followed by 53 characters of bcrypt's base64 (salt and hash).
fn is_bcrypt(h: &str) -> bool {
    let b = h.as_bytes();
    b.len() == 60
        && b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
        && b[7..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/')
}

/// One htpasswd line `user:$2y$…` for `password`, with a fresh random salt.
pub fn hash_entry(user: &str, password: &[u8], cost: u32) -> Result<String, String> {
    if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
        return Err("a user name must be non-empty, without ':' or control characters".into());
    }
    let h = bcrypt::hash_with_result(password, cost).map_err(|e| format!("bcrypt: {e}"))?;
    Ok(format!("{user}:{}", h.format_for_version(bcrypt::Version::TwoY)))
}

/// The user and password of an `Authorization: Basic …` value (RFC 7617 §2:
/// base64 of `user-id ":" password`; the scheme name is case-insensitive).
/// None for other schemes or a malformed value.
pub fn credentials(authorization: &str) -> Option<(String, Vec<u8>)> {
    use base64::Engine as _;
    let (scheme, rest) = authorization.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim_start_matches(' ')).ok()?;
    let colon = raw.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(raw[..colon].to_vec()).ok()?;
    Some((user, raw[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_rows() {
        let h = "$2y$04$abcdefghijklmnopqrstuuSGxXk3kvTLkQF2Jwz7XJ9kZg7cPq1Lm";
        assert_eq!(h.len(), 60);
        let ok = format!("# users\n\nann:{h}\r\nbob:{}\n", h.replace("$2y$", "$2b$"));
        assert_eq!(Users::parse(&ok).unwrap().len(), 2);
        let rows: Vec<(String, &str)> = vec![
            (format!("ann {h}"), "line 1: expected 'user:hash'"),
            (format!(":{h}"), "line 1: empty user name"),
            ("ann:$apr1$x$y".into(), "line 1: user 'ann': not a bcrypt hash"),
            ("ann:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=".into(), "line 1: user 'ann': not a bcrypt hash"),
            (format!("ann:{}", &h[..59]), "line 1: user 'ann': not a bcrypt hash"),
            (format!("ann:{h}\nann:{h}"), "line 2: user 'ann' appears twice"),
            ("# nothing\n".into(), "no users in the file"),
        ];
        for (text, want) in rows {
            let e = Users::parse(&text).unwrap_err();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn hash_and_verify_round_trip() {
        let line = hash_entry("ann", b"s3cret pass", 4).unwrap();
        assert!(line.starts_with("ann:$2y$04$"), "{line}");
        let users = Users::parse(&line).unwrap();
        assert!(users.verify("ann", b"s3cret pass"));
        assert!(!users.verify("ann", b"s3cret pasS"));
        assert!(!users.verify("bob", b"s3cret pass"));
        assert!(hash_entry("a:b", b"x", 4).is_err());
        assert!(bcrypt::verify(b"x", DUMMY_HASH).is_ok(), "the dummy hash parses");
    }

    #[test]
    fn authorization_rows() {
        type Row = (&'static str, Option<(&'static str, &'static [u8])>);
        let rows: Vec<Row> = vec![
            ("Basic YW5uOnMzY3JldA==", Some(("ann", b"s3cret"))),
            ("basic  YW5uOnMzY3JldA==", Some(("ann", b"s3cret"))),
            ("BASIC YW5uOg==", Some(("ann", b""))),
            ("Basic YW5uOmE6Yg==", Some(("ann", b"a:b"))),
            ("Basic YW5u", None),
            ("Basic !!!", None),
            ("Bearer YW5uOnMzY3JldA==", None),
            ("Basic", None),
        ];
        for (value, want) in rows {
            let got = credentials(value);
            assert_eq!(got.as_ref().map(|(u, p)| (u.as_str(), p.as_slice())), want, "{value}");
        }
    }
}
