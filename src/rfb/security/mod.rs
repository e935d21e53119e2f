//! RFB security types beyond None and VNC Authentication (rfbproto
//! "Security", "Security Types"): which one to pick, and the negotiation of
//! VeNCrypt (type 19) and Apple Remote Desktop (type 30) as a sans-IO
//! sub-state machine of `RfbClient`.
//!
//! | type | name                        | wsvnc                                               |
//! |------|-----------------------------|-----------------------------------------------------|
//! | 1    | None                        | yes                                                 |
//! | 2    | VNC Authentication          | yes (client.rs, auth.rs)                            |
//! | 19   | VeNCrypt 0.2 — X509None 260 | yes, with `--vnc-ca` or a pinned fingerprint        |
//! |      | X509Vnc 261, X509Plain 262  | yes, likewise                                       |
//! |      | None 1, VncAuth 2 inside    | yes                                                 |
//! |      | TLSNone/TLSVnc/TLSPlain     | refused: anonymous Diffie-Hellman, not in rustls    |
//! |      | 257–259                     |                                                     |
//! |      | Plain 256                   | refused: the password would cross the wire in clear |
//! | 30   | Apple Remote Desktop        | yes (ard.rs)                                        |
//!
//! Preference (rfbproto lets the client choose from the server's list):
//! VeNCrypt when a CA or pin is configured (everything encrypted), then
//! None, then Apple Remote Desktop when a user name is configured, then VNC
//! Authentication, then Apple Remote Desktop (asking for credentials), then
//! VeNCrypt (for its None/VncAuth sub-types, or to name what to configure).
//! Within VeNCrypt: X509None, X509Plain when a user name is configured,
//! X509Vnc, X509Plain, None, VncAuth.
//!
//! ```text
//!  19: Version ─▶ VersionAck ─▶ SubTypeCount ─▶ SubTypes ─┬─ 1/2 ───────────────────▶ Done
//!                                                          └─ 260–262 ─▶ SubTypeAck ─▶ (StartTls) Handshake
//!      Handshake ─ TLS up ─┬─ X509None/X509Vnc ─────────────────────────────────────▶ Done
//!                          └─ X509Plain ─[no credentials: AwaitCredentials]─ sent ─▶ Done
//!  30: ArdHeader ─▶ ArdKeys ─[no credentials: AwaitCredentials]─ sent ──────────────▶ Done
//! ```
//!
//! Units are gathered progressively into one buffer of at most
//! [`MAX_UNIT`] bytes (255 sub-types, or two 4096-bit numbers), so any
//! chunking of the input works.

pub mod ard;
pub mod plain;
#[cfg(all(test, feature = "tls"))]
pub(crate) mod test_pki;
#[cfg(feature = "tls")]
pub mod tls;

use std::sync::Arc;

use ard::DhParams;

use crate::rfb::{RfbError, RfbEvent};

/// Security type numbers (rfbproto "Security", "VeNCrypt"). Open set: the
/// server may list any value; [`name`] knows these.
pub mod types {
    pub const NONE: u32 = 1;
    pub const VNC_AUTH: u32 = 2;
    pub const VENCRYPT: u32 = 19;
    pub const ARD: u32 = 30;
    pub const PLAIN: u32 = 256;
    pub const TLS_NONE: u32 = 257;
    pub const TLS_VNC: u32 = 258;
    pub const TLS_PLAIN: u32 = 259;
    pub const X509_NONE: u32 = 260;
    pub const X509_VNC: u32 = 261;
    pub const X509_PLAIN: u32 = 262;

    /// Human name of a security type or VeNCrypt sub-type.
    pub fn name(t: u32) -> String {
        let n = match t {
            0 => "Invalid",
            NONE => "None",
            VNC_AUTH => "VncAuth",
            5 | 6 | 13 | 129 | 130 | 133 => "RSA-AES",
            16 => "Tight",
            VENCRYPT => "VeNCrypt",
            20 => "SASL",
            ARD => "Apple Remote Desktop",
            113 => "MSLogonII",
            PLAIN => "Plain",
            TLS_NONE => "TLSNone",
            TLS_VNC => "TLSVnc",
            TLS_PLAIN => "TLSPlain",
            X509_NONE => "X509None",
            X509_VNC => "X509Vnc",
            X509_PLAIN => "X509Plain",
            _ => return format!("{t}"),
        };
        format!("{n} ({t})")
    }
}

use types::*;

/// Largest unit gathered: two 4096-bit numbers (ARD); 255 VeNCrypt sub-types
/// are 1020 bytes.
pub const MAX_UNIT: usize = 2 * ard::MAX_KEY_LEN;

/// What the security types need from the configuration, besides the password
/// (`RfbConfig::password`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityConfig {
    /// User name for the types that take one (X509Plain, Apple Remote
    /// Desktop). `None`: asked for (`RfbEvent::CredentialsNeeded`).
    pub username: Option<Vec<u8>>,
    /// How to check the server's certificate. `None`: the X509 sub-types of
    /// VeNCrypt are not used (a certificate nobody checks protects nothing).
    pub tls: Option<TlsTrust>,
}

/// How the VNC server's certificate is checked (see `tls.rs`). At least one
/// of `ca_pem` and `fingerprint` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTrust {
    /// DNS name or IP address the certificate must be for (with a CA).
    pub server_name: String,
    /// PEM CA certificates the server's chain must lead to.
    pub ca_pem: Option<Arc<[u8]>>,
    /// SHA-256 of the server's certificate.
    pub fingerprint: Option<[u8; 32]>,
}

/// Parse `sha256:HEX` (colons between bytes allowed, as `openssl x509
/// -fingerprint` prints them).
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], String> {
    let hex = s.strip_prefix("sha256:").or_else(|| s.strip_prefix("SHA256:")).ok_or_else(|| {
        format!("'{s}' is not a fingerprint: write sha256: and 64 hex digits (openssl x509 -fingerprint -sha256)")
    })?;
    let digits: Vec<u8> = hex.bytes().filter(|&c| c != b':').collect();
    let mut out = [0u8; 32];
    if digits.len() != 64 {
        return Err(format!("'{s}': a SHA-256 fingerprint has 64 hex digits, not {}", digits.len()));
    }
    for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok().and_then(|p| u8::from_str_radix(p, 16).ok());
        *o = pair.ok_or_else(|| format!("'{s}' has a character that is not a hex digit"))?;
    }
    Ok(out)
}

/// Check a CA file's contents (PEM) at configuration time; the number of
/// certificates. Without the `tls` feature only the PEM markers are checked.
pub fn check_ca_pem(pem: &[u8]) -> Result<usize, String> {
    #[cfg(feature = "tls")]
    {
        tls::parse_ca_pem(pem).map(|c| c.len())
    }
    #[cfg(not(feature = "tls"))]
    {
        let n = pem.windows(27).filter(|w| w == b"-----BEGIN CERTIFICATE-----").count();
        if n == 0 {
            return Err("no CERTIFICATE section in it".into());
        }
        Ok(n)
    }
}

/// TLS is possible: built with it and told how to check the certificate.
fn tls_usable(cfg: &SecurityConfig) -> bool {
    cfg!(feature = "tls") && cfg.tls.is_some()
}

/// rfbproto "Security" (3.7 onwards): pick one of the server's types, by
/// the preference in the module docs.
pub(crate) fn choose(offered: &[u8], cfg: &SecurityConfig) -> Result<u8, RfbError> {
    let has = |t: u32| offered.contains(&(t as u8));
    let user = cfg.username.is_some();
    let order =
        [(VENCRYPT, tls_usable(cfg)), (NONE, true), (ARD, user), (VNC_AUTH, true), (ARD, true), (VENCRYPT, true)];
    match order.iter().find(|(t, ok)| *ok && has(*t)) {
        Some((t, _)) => Ok(*t as u8),
        None => {
            let names: Vec<String> = offered.iter().map(|&t| types::name(t as u32)).collect();
            Err(RfbError::Unsupported(format!(
                "the server offers security types {}; wsvnc supports None, VncAuth, VeNCrypt and \
                 Apple Remote Desktop",
                names.join(", ")
            )))
        }
    }
}

/// rfbproto "VeNCrypt": pick a sub-type, or say what stands in the way.
fn choose_subtype(offered: &[u32], cfg: &SecurityConfig) -> Result<u32, RfbError> {
    let has = |t: u32| offered.contains(&t);
    let (tls, user) = (tls_usable(cfg), cfg.username.is_some());
    let order = [
        (X509_NONE, tls),
        (X509_PLAIN, tls && user),
        (X509_VNC, tls),
        (X509_PLAIN, tls),
        (NONE, true),
        (VNC_AUTH, true),
    ];
    if let Some((t, _)) = order.iter().find(|(t, ok)| *ok && has(*t)) {
        return Ok(*t);
    }
    let names = |list: &[u32]| -> String {
        let v: Vec<String> = list.iter().filter(|&&t| has(t)).map(|&t| types::name(t)).collect();
        v.join(", ")
    };
    let x509 = [X509_NONE, X509_VNC, X509_PLAIN];
    let anon = [TLS_NONE, TLS_VNC, TLS_PLAIN];
    let why = if x509.iter().any(|&t| has(t)) && !cfg!(feature = "tls") {
        format!("the VNC server wants TLS ({}), and this wsvnc was built without the `tls` feature", names(&x509))
    } else if x509.iter().any(|&t| has(t)) {
        format!(
            "the VNC server wants TLS with a certificate ({}): configure the CA that signed it \
             (--vnc-ca FILE, token-file word vnc-ca=PATH) or pin it (vnc-fingerprint=sha256:HEX)",
            names(&x509)
        )
    } else if anon.iter().any(|&t| has(t)) {
        format!(
            "the VNC server offers only anonymous TLS ({}), which wsvnc cannot do (rustls has no \
             anonymous Diffie-Hellman): give the server a certificate and enable X509None, X509Vnc or \
             X509Plain (TigerVNC: -SecurityTypes X509Vnc -X509Cert FILE -X509Key FILE)",
            names(&anon)
        )
    } else if has(PLAIN) {
        "the VNC server offers VeNCrypt Plain (256) only without TLS, which would send the password \
         unencrypted: enable X509Plain on the server"
            .to_string()
    } else {
        let all: Vec<String> = offered.iter().map(|&t| types::name(t)).collect();
        format!("the VNC server offers VeNCrypt sub-types {}, none of which wsvnc supports", all.join(", "))
    };
    Err(RfbError::Unsupported(why))
}

/// What the negotiation needs from the client around it.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a SecurityConfig,
    pub password: Option<&'a [u8]>,
    /// The TLS handshake has completed.
    pub tls_up: bool,
}

impl Ctx<'_> {
    fn credentials(&self) -> Option<(&[u8], &[u8])> {
        Some((self.cfg.username.as_deref()?, self.password?))
    }

    fn ask(&self) -> Outcome {
        Outcome::Ask(RfbEvent::CredentialsNeeded { username: self.cfg.username.is_none() })
    }
}

/// What a step of the negotiation means for the client.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Keep going.
    Continue,
    /// Start TLS now: every later byte either way is a TLS record.
    StartTls,
    /// Credentials missing: emit this event and wait for them.
    Ask(RfbEvent),
    /// This security type's own part is done; continue with `Next`.
    Done(Next),
}

/// Where the client's state machine continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// VNC Authentication's challenge (VncAuth inside VeNCrypt, X509Vnc).
    VncAuth,
    /// SecurityResult; nothing was sent.
    SecurityResult,
    /// SecurityResult after a user name and password were sent.
    CredentialsSent,
}

#[derive(Debug)]
enum Phase {
    Version,
    VersionAck,
    SubTypeCount,
    SubTypes(usize),
    SubTypeAck(u32),
    /// TLS handshake running for this X509 sub-type.
    Handshake(u32),
    ArdHeader,
    ArdKeys {
        generator: u16,
        len: usize,
    },
    AwaitCredentials(Pending),
}

/// What to send once credentials arrive.
enum Pending {
    Plain,
    Ard(Box<DhParams>),
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pending::Plain => "Plain",
            Pending::Ard(_) => "Ard",
        })
    }
}

/// The negotiation of one security type (VeNCrypt or ARD).
#[derive(Debug)]
pub(crate) struct Negotiation {
    phase: Phase,
    /// The unit being gathered (≤ MAX_UNIT).
    buf: Vec<u8>,
}

impl Negotiation {
    /// For security type `t` (VeNCrypt or ARD), just chosen.
    pub fn new(t: u32) -> Negotiation {
        let phase = if t == ARD { Phase::ArdHeader } else { Phase::Version };
        Negotiation { phase, buf: Vec::new() }
    }

    /// Bytes the current unit needs.
    fn need(&self) -> usize {
        match self.phase {
            Phase::Version => 2,
            Phase::VersionAck | Phase::SubTypeCount | Phase::SubTypeAck(_) => 1,
            Phase::SubTypes(n) => 4 * n,
            Phase::ArdHeader => 4,
            Phase::ArdKeys { len, .. } => len,
            Phase::Handshake(_) | Phase::AwaitCredentials(_) => 0,
        }
    }

    /// One unit of work: `None` = need more input; `Some((n, outcome))` =
    /// `n` bytes used (0 only with a change of phase). Replies go to `out`.
    pub fn step(&mut self, input: &[u8], ctx: &Ctx, out: &mut Vec<u8>) -> Result<Option<(usize, Outcome)>, RfbError> {
        match self.phase {
            Phase::Handshake(sub) if ctx.tls_up => return Ok(Some((0, self.after_handshake(sub, ctx, out)))),
            Phase::Handshake(_) | Phase::AwaitCredentials(_) => return Ok(None),
            _ => {}
        }
        let need = self.need();
        let take = (need - self.buf.len()).min(input.len());
        self.buf.extend_from_slice(&input[..take]);
        if self.buf.len() < need {
            return Ok((take > 0).then_some((take, Outcome::Continue)));
        }
        let unit = std::mem::take(&mut self.buf);
        let r = self.unit(&unit, ctx, out);
        self.buf = unit;
        self.buf.clear();
        Ok(Some((take, r?)))
    }

    /// A whole unit of the current phase.
    fn unit(&mut self, b: &[u8], ctx: &Ctx, out: &mut Vec<u8>) -> Result<Outcome, RfbError> {
        match self.phase {
            Phase::Version => {
                // "client sends back the highest VeNCrypt version it can
                // support, up to version that it received from the server".
                let (major, minor) = (b[0], b[1]);
                if (major, minor) < (0, 2) {
                    return Err(RfbError::Unsupported(format!(
                        "the VNC server speaks VeNCrypt {major}.{minor}; wsvnc speaks 0.2"
                    )));
                }
                out.extend_from_slice(&[0, 2]);
                self.phase = Phase::VersionAck;
            }
            Phase::VersionAck => {
                if b[0] != 0 {
                    return Err(RfbError::Refused(format!("VeNCrypt version 0.2 not accepted (ack {})", b[0])));
                }
                self.phase = Phase::SubTypeCount;
            }
            Phase::SubTypeCount => {
                if b[0] == 0 {
                    return Err(RfbError::Protocol("the VeNCrypt sub-type list is empty".into()));
                }
                self.phase = Phase::SubTypes(b[0] as usize);
            }
            Phase::SubTypes(_) => {
                let offered: Vec<u32> =
                    b.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
                let sub = choose_subtype(&offered, ctx.cfg)?;
                log::debug!("RFB: VeNCrypt sub-type {} of {offered:?}", types::name(sub));
                out.extend_from_slice(&sub.to_be_bytes());
                return Ok(match sub {
                    NONE => Outcome::Done(Next::SecurityResult),
                    VNC_AUTH => Outcome::Done(Next::VncAuth),
                    _ => {
                        self.phase = Phase::SubTypeAck(sub);
                        Outcome::Continue
                    }
                });
            }
            Phase::SubTypeAck(sub) => {
                // "Non-one value means failure and connection will be closed."
                if b[0] != 1 {
                    return Err(RfbError::Refused(format!(
                        "the VNC server could not start TLS for {} (ack {})",
                        types::name(sub),
                        b[0]
                    )));
                }
                self.phase = Phase::Handshake(sub);
                return Ok(Outcome::StartTls);
            }
            Phase::ArdHeader => {
                let (generator, len) = DhParams::header(&[b[0], b[1], b[2], b[3]])?;
                self.phase = Phase::ArdKeys { generator, len };
            }
            Phase::ArdKeys { generator, .. } => {
                let params = DhParams::new(generator, b)?;
                return Ok(match ctx.credentials() {
                    Some((user, pw)) => {
                        out.extend_from_slice(&params.respond(user, pw)?);
                        Outcome::Done(Next::CredentialsSent)
                    }
                    None => {
                        self.phase = Phase::AwaitCredentials(Pending::Ard(Box::new(params)));
                        ctx.ask()
                    }
                });
            }
            Phase::Handshake(_) | Phase::AwaitCredentials(_) => unreachable!("no unit in {:?}", self.phase),
        }
        Ok(Outcome::Continue)
    }

    /// rfbproto "VeNCrypt", "Subtypes with None/Vnc/Plain suffix".
    fn after_handshake(&mut self, sub: u32, ctx: &Ctx, out: &mut Vec<u8>) -> Outcome {
        match sub {
            X509_NONE => Outcome::Done(Next::SecurityResult),
            X509_VNC => Outcome::Done(Next::VncAuth),
            _ => match ctx.credentials() {
                Some((user, pw)) => {
                    plain::write(out, user, pw);
                    Outcome::Done(Next::CredentialsSent)
                }
                None => {
                    self.phase = Phase::AwaitCredentials(Pending::Plain);
                    ctx.ask()
                }
            },
        }
    }

    /// Credentials arrived. If they were awaited, the answer goes to `out`.
    pub fn supply(&mut self, user: &[u8], pw: &[u8], out: &mut Vec<u8>) -> Result<Option<Next>, RfbError> {
        let Phase::AwaitCredentials(pending) = &self.phase else { return Ok(None) };
        match pending {
            Pending::Plain => plain::write(out, user, pw),
            Pending::Ard(params) => out.extend_from_slice(&params.respond(user, pw)?),
        }
        Ok(Some(Next::CredentialsSent))
    }

    /// The server closed the connection now: what that means.
    pub fn closed_error(&self) -> RfbError {
        RfbError::Closed(
            match self.phase {
                Phase::Handshake(_) => " during the TLS handshake",
                Phase::AwaitCredentials(_) => " while credentials were awaited",
                Phase::ArdHeader | Phase::ArdKeys { .. } => " during Apple Remote Desktop authentication",
                _ => " during the VeNCrypt negotiation",
            }
            .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(user: bool, tls: bool) -> SecurityConfig {
        SecurityConfig {
            username: user.then(|| b"u".to_vec()),
            tls: tls.then(|| TlsTrust { server_name: "h".into(), ca_pem: None, fingerprint: Some([0; 32]) }),
        }
    }

    #[test]
    fn top_level_preference() {
        // (offered, user name configured, CA or pin configured, choice)
        type Row = (&'static [u8], bool, bool, Result<u8, ()>);
        let rows: &[Row] = &[
            (&[1, 2], false, false, Ok(1)),
            (&[2, 1], false, false, Ok(1)),
            (&[2, 19], false, false, Ok(2)),
            (&[2, 19], false, true, Ok(if cfg!(feature = "tls") { 19 } else { 2 })),
            (&[1, 19], false, true, Ok(if cfg!(feature = "tls") { 19 } else { 1 })),
            (&[19], false, false, Ok(19)),
            (&[2, 30], false, false, Ok(2)),
            (&[2, 30], true, false, Ok(30)),
            (&[30], false, false, Ok(30)),
            (&[16, 5, 113], true, true, Err(())),
        ];
        for (offered, user, tls, want) in rows {
            let got = choose(offered, &cfg(*user, *tls)).map_err(|_| ());
            assert_eq!(got, *want, "offered {offered:?}, user {user}, tls {tls}");
        }
        let e = choose(&[16, 113], &cfg(false, false)).unwrap_err().to_string();
        assert!(e.contains("Tight (16)") && e.contains("MSLogonII (113)"), "{e}");
    }

    #[test]
    fn subtype_preference_and_refusals() {
        let tls = cfg!(feature = "tls");
        let ok = |offered: &[u32], user, t| choose_subtype(offered, &cfg(user, t)).ok();
        if tls {
            assert_eq!(ok(&[261, 262, 260], false, true), Some(260));
            assert_eq!(ok(&[261, 262], false, true), Some(261));
            assert_eq!(ok(&[261, 262], true, true), Some(262));
            assert_eq!(ok(&[262], false, true), Some(262));
            assert_eq!(ok(&[2, 261], false, true), Some(261));
        }
        assert_eq!(ok(&[261, 2], false, false), Some(2));
        assert_eq!(ok(&[257, 1], false, false), Some(1));
        let why = |offered: &[u32], t| choose_subtype(offered, &cfg(false, t)).unwrap_err().to_string();
        let w = why(&[261, 262], false);
        if tls {
            assert!(w.contains("--vnc-ca") && w.contains("vnc-fingerprint"), "{w}");
        } else {
            assert!(w.contains("without the `tls` feature"), "{w}");
        }
        let w = why(&[257, 258, 259], true);
        assert!(w.contains("anonymous TLS (TLSNone (257), TLSVnc (258), TLSPlain (259))"), "{w}");
        assert!(w.contains("-X509Cert"), "{w}");
        assert!(why(&[256], true).contains("unencrypted"));
        assert!(why(&[300], true).contains("sub-types 300, none"));
    }

    #[test]
    fn fingerprints_parse() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_fingerprint(&format!("sha256:{hex}")).unwrap(), [0xab; 32]);
        let colons: Vec<String> = (0..32).map(|_| "AB".to_string()).collect();
        assert_eq!(parse_fingerprint(&format!("SHA256:{}", colons.join(":"))).unwrap(), [0xab; 32]);
        assert!(parse_fingerprint(&hex).is_err(), "no prefix");
        assert!(parse_fingerprint("sha256:abcd").is_err(), "short");
        assert!(parse_fingerprint(&format!("sha256:{}zz", "ab".repeat(31))).is_err(), "not hex");
    }
}
