//! DNS-rebinding defence: the `Host` field must name this server.
//!
//! A page on `http://evil.example/` can point `evil.example` at 127.0.0.1
//! (or at the LAN address of a host running wsvnc) after it has loaded.
//! Its requests then reach wsvnc with `Host: evil.example` and a matching
//! `Origin`, so the Origin check alone passes them (RFC 6455 §10.2 trusts
//! the Origin to say where the page came from; rebinding makes "same
//! origin" mean the attacker's name). A request is served only when its
//! `Host` (port ignored, ASCII case-insensitive, one trailing dot dropped)
//! is:
//!
//! * an IP literal (`127.0.0.1`, `[::1]`, `192.0.2.7:6080`): a rebinding
//!   page always has a name, never our address, as its origin;
//! * `localhost`: no public DNS answers for it, so no page elsewhere can
//!   carry it (RFC 6761 §6.3);
//! * or a name given with `--allowed-host NAME` (repeatable; `*.example.com`
//!   matches its subdomains; `*` turns the check off).
//!
//! This default does not depend on the listen address: a wildcard or LAN
//! bind is reached by a rebound name just like a loopback one, so names
//! there are served only when configured. HTTP/1.0 requests without `Host`
//! (never a browser) are allowed. Refused requests get 421 Misdirected
//! Request (RFC 9110 §15.5.20).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Which `Host` values are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPolicy {
    /// `--allowed-host '*'`: no check.
    Any,
    /// IP literals, `localhost`, and these names (lowercase, no trailing
    /// dot; `*.suffix` entries match subdomains of `suffix`).
    Names(Vec<String>),
}

impl Default for HostPolicy {
    fn default() -> Self {
        HostPolicy::Names(Vec::new())
    }
}

impl HostPolicy {
    /// From the `--allowed-host` values (empty: the default above).
    pub fn from_names(names: &[String]) -> Result<HostPolicy, String> {
        if names.iter().any(|n| n == "*") {
            return Ok(HostPolicy::Any);
        }
        let mut out = Vec::new();
        for n in names {
            let norm = normalize(n);
            let bare = norm.strip_prefix("*.").unwrap_or(&norm);
            if bare.is_empty() || !bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
                return Err(format!(
                    "--allowed-host wants a host name like vnc.example.com or *.example.com, not '{}'",
                    crate::logsafe::esc(n)
                ));
            }
            out.push(norm);
        }
        Ok(HostPolicy::Names(out))
    }

    /// Whether a request with this `Host` value may be served.
    pub fn allows(&self, host_field: &str) -> bool {
        let names = match self {
            HostPolicy::Any => return true,
            HostPolicy::Names(n) => n,
        };
        let Some(host) = host_part(host_field) else { return false };
        if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return v6.parse::<Ipv6Addr>().is_ok();
        }
        if host.parse::<Ipv4Addr>().is_ok() {
            return true;
        }
        let host = normalize(host);
        host == "localhost"
            || names.iter().any(|n| match n.strip_prefix("*.") {
                Some(suffix) => {
                    host.len() > suffix.len() + 1 && host.ends_with(suffix) && {
                        host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                    }
                }
                None => *n == host,
            })
    }
}

/// `name`, lowercased, without one trailing dot.
fn normalize(name: &str) -> String {
    let n = name.strip_suffix('.').unwrap_or(name);
    n.to_ascii_lowercase()
}

/// The host of a `Host` field value (`uri-host [ ":" port ]`, RFC 9110
/// §7.2), None when malformed.
fn host_part(v: &str) -> Option<&str> {
    if v.is_empty() || v.contains(['/', '?', '#', '@', ' ', '\t', ',']) {
        return None;
    }
    let host = if v.starts_with('[') {
        let end = v.find(']')?;
        let rest = &v[end + 1..];
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))) {
            return None;
        }
        &v[..=end]
    } else {
        match v.split_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            Some(_) => return None,
            None => v,
        }
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_rows() {
        let configured = HostPolicy::from_names(&["VNC.example.com.".into(), "*.lab.example".into()]).unwrap();
        let default = HostPolicy::default();
        // (Host field, allowed by default, allowed with the names above)
        let rows: &[(&str, bool, bool)] = &[
            ("127.0.0.1", true, true),
            ("127.0.0.1:6080", true, true),
            ("192.0.2.7:6080", true, true),
            ("[::1]:6080", true, true),
            ("[2001:db8::5]", true, true),
            ("localhost:6080", true, true),
            ("LOCALHOST.:6080", true, true),
            ("evil.example", false, false),
            ("evil.example:6080", false, false),
            ("vnc.example.com", false, true),
            ("Vnc.Example.Com.:443", false, true),
            ("xvnc.example.com", false, false),
            ("a.lab.example", false, true),
            ("a.b.lab.example:1", false, true),
            ("lab.example", false, false),
            ("evillab.example", false, false),
            ("localhost.evil.example", false, false),
            ("127.0.0.1.evil.example", false, false),
            ("127.1", false, false),
            ("0x7f000001", false, false),
            ("[::1", false, false),
            ("[::1]x", false, false),
            ("[evil.example]", false, false),
            ("127.0.0.1:80x", false, false),
            ("user@127.0.0.1", false, false),
            ("", false, false),
            (":6080", false, false),
        ];
        for (host, by_default, by_names) in rows {
            assert_eq!(default.allows(host), *by_default, "default: Host {host:?}");
            assert_eq!(configured.allows(host), *by_names, "configured: Host {host:?}");
            assert!(HostPolicy::Any.allows(host));
        }
    }

    #[test]
    fn option_values() {
        assert_eq!(HostPolicy::from_names(&["a".into(), "*".into()]), Ok(HostPolicy::Any));
        for bad in ["", "a b", "a/b", "*.", "x:80", "[::1]", "é.example"] {
            assert!(HostPolicy::from_names(&[bad.into()]).is_err(), "{bad:?}");
        }
    }
}
