//! VeNCrypt Plain credentials (rfbproto "VeNCrypt", "Plain subtype"), sent
//! after the TLS handshake by X509Plain:
//!
//! ```text
//!  U32 username-length, U32 password-length, username, password
//! ```
//!
//! The server checks them (TigerVNC: through PAM, for users listed in
//! `-PlainUsers`) and answers with SecurityResult.

/// Longest user name or password sent (a server-side limit is likelier than
/// this one; TigerVNC reads up to 1 KiB each).
pub const MAX_FIELD: usize = 1024;

/// Append the Plain credentials message to `out`; each field cut to
/// [`MAX_FIELD`] bytes.
pub fn write(out: &mut Vec<u8>, username: &[u8], password: &[u8]) {
    let (u, p) = (&username[..username.len().min(MAX_FIELD)], &password[..password.len().min(MAX_FIELD)]);
    out.extend_from_slice(&(u.len() as u32).to_be_bytes());
    out.extend_from_slice(&(p.len() as u32).to_be_bytes());
    out.extend_from_slice(u);
    out.extend_from_slice(p);
}

#[cfg(test)]
mod tests {
    #[test]
    fn layout() {
        let mut v = Vec::new();
        super::write(&mut v, b"alice", b"pw");
        assert_eq!(v, b"\0\0\0\x05\0\0\0\x02alicepw");
        // Fields are cut at MAX_FIELD.
        let long = vec![b'x'; super::MAX_FIELD + 5];
        let mut v = Vec::new();
        super::write(&mut v, &long, b"");
        assert_eq!(v[..8], [0, 0, 4, 0, 0, 0, 0, 0]);
        assert_eq!(v.len(), 8 + super::MAX_FIELD);
    }
}
