//! Requests that arrive through a reverse proxy: who the client is, and
//! which host and scheme it used, read from `Forwarded` (RFC 7239) or
//! `X-Forwarded-For` / `-Host` / `-Proto` — only when the TCP peer is one
//! of the configured trusted proxies (`--trusted-proxy ADDR[/PREFIX]`).
//! From any other peer those fields are ignored: anyone can send them.
//!
//! The client is the rightmost address of the forwarding chain that is not
//! itself a trusted proxy (each proxy appends the address it received the
//! request from, so everything left of the first untrusted hop may be
//! forged). `Forwarded` wins over the `X-Forwarded-*` fields when present.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use crate::http::Head;

/// An address range, `ADDR` or `ADDR/PREFIX` (IPv4 or IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4
/// peer) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = canonical(a.parse::<IpAddr>().map_err(|_| format!("'{s}' is not ADDR[/PREFIX]"))?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("'{s}': prefix must be 0..={max}")),
            },
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// What a request says about its origin, as far as it can be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The client's address: the TCP peer, or from the forwarding chain.
    pub client: IpAddr,
    /// The Host the client used, as a trusted proxy reported it.
    pub host: Option<String>,
    /// The scheme the client used ("http" or "https"), likewise.
    pub proto: Option<String>,
    /// The TCP peer is a trusted proxy.
    pub via_proxy: bool,
}

/// Read `head` from TCP peer `peer` under the trusted-proxy list.
pub fn forwarded(head: &Head, peer: SocketAddr, trusted: &[Cidr]) -> Forwarded {
    let peer_ip = canonical(peer.ip());
    let mut out = Forwarded { client: peer_ip, host: None, proto: None, via_proxy: false };
    if !is_trusted(peer_ip, trusted) {
        return out;
    }
    out.via_proxy = true;
    let rfc7239: Vec<Element> = head.header_all("forwarded").flat_map(split_elements).map(parse_element).collect();
    let (chain, last) = if !rfc7239.is_empty() {
        let chain: Vec<Option<IpAddr>> = rfc7239.iter().map(|e| e.for_.as_deref().and_then(node_ip)).collect();
        let last = rfc7239.last().cloned().unwrap_or_default();
        (chain, (last.host, last.proto))
    } else {
        let chain: Vec<Option<IpAddr>> = head.tokens("x-forwarded-for").map(node_ip).collect();
        let last_of = |name| head.tokens(name).last().map(str::to_string);
        (chain, (last_of("x-forwarded-host"), last_of("x-forwarded-proto")))
    };
    for hop in chain.iter().rev() {
        match hop {
            Some(ip) => {
                out.client = *ip;
                if !is_trusted(*ip, trusted) {
                    break;
                }
            }
            // "unknown", an obfuscated name, garbage: nothing left of it can
            // be believed; the nearest trusted hop stands in for the client.
            None => break,
        }
    }
    out.host = last.0.filter(|h| !h.is_empty() && !h.contains(|c: char| c.is_whitespace() || c.is_control()));
    out.proto = last.1.map(|p| p.to_ascii_lowercase()).filter(|p| p == "http" || p == "https");
    out
}

fn is_trusted(ip: IpAddr, trusted: &[Cidr]) -> bool {
    trusted.iter().any(|c| c.contains(ip))
}

/// One `Forwarded` element's parameters we use (RFC 7239 §4).
#[derive(Debug, Default, Clone)]
struct Element {
    for_: Option<String>,
    host: Option<String>,
    proto: Option<String>,
}

/// Split a `Forwarded` value on the commas between elements (not inside
/// quoted strings).
fn split_elements(v: &str) -> Vec<&str> {
    split_unquoted(v, ',')
}

fn split_unquoted(v: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in v.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&v[start..]);
    parts
}

fn parse_element(e: &str) -> Element {
    let mut el = Element::default();
    for pair in split_unquoted(e, ';') {
        let Some((k, v)) = pair.split_once('=') else { continue };
        let v = v.trim();
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v).replace("\\\"", "\"");
        match k.trim().to_ascii_lowercase().as_str() {
            "for" => el.for_ = Some(v),
            "host" => el.host = Some(v),
            "proto" => el.proto = Some(v),
            _ => {}
        }
    }
    el
}

/// A node (RFC 7239 §6: `IPv4[:port]`, `"[IPv6]:port"`, `unknown`,
/// `_obfuscated`) or an X-Forwarded-For entry, as an address.
fn node_ip(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Some(rest) = node.strip_prefix('[') {
        let (v6, _) = rest.split_once(']')?;
        return v6.parse::<Ipv6Addr>().ok().map(|a| canonical(IpAddr::V6(a)));
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    // IPv4 with a port.
    let (a, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    a.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(fields: &[(&str, &str)]) -> Head {
        Head {
            method: "GET".into(),
            target: "/".into(),
            version_minor: 1,
            headers: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn nets(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn cidr_parsing_and_matching() {
        let n: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()), "IPv4-mapped");
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()) && !one.contains("127.0.0.2".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()) && !v6.contains("fe80::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "::/129", "host.example", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn untrusted_peers_cannot_claim_anything() {
        let h = head(&[("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Host", "evil.example")]);
        let f = forwarded(&h, "198.51.100.7:5555".parse().unwrap(), &nets(&["127.0.0.1"]));
        assert_eq!(f, Forwarded { client: "198.51.100.7".parse().unwrap(), host: None, proto: None, via_proxy: false });
    }

    #[test]
    fn x_forwarded_for_takes_the_rightmost_untrusted_hop() {
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        let peer = "127.0.0.1:40000".parse().unwrap();
        // forged-by-client, real client, an inner proxy
        let h = head(&[
            ("X-Forwarded-For", "6.6.6.6, 203.0.113.5"),
            ("X-Forwarded-For", "10.0.0.2"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "vnc.example:8443"),
        ]);
        let f = forwarded(&h, peer, &trusted);
        assert_eq!(f.client, "203.0.113.5".parse::<IpAddr>().unwrap());
        assert_eq!(f.host.as_deref(), Some("vnc.example:8443"));
        assert_eq!(f.proto.as_deref(), Some("https"));
        // Only trusted hops: the leftmost stands.
        let h = head(&[("X-Forwarded-For", "10.0.0.9, 10.0.0.2")]);
        assert_eq!(forwarded(&h, peer, &trusted).client, "10.0.0.9".parse::<IpAddr>().unwrap());
        // Garbage in the chain: the nearest trusted hop stands in.
        let h = head(&[("X-Forwarded-For", "203.0.113.5, bogus")]);
        assert_eq!(forwarded(&h, peer, &trusted).client, "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn rfc7239_forwarded_wins_and_is_parsed_with_quotes_and_ports() {
        let trusted = nets(&["127.0.0.1"]);
        let peer = "127.0.0.1:40000".parse().unwrap();
        let h = head(&[
            ("X-Forwarded-For", "9.9.9.9"),
            ("Forwarded", "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\";host=\"a.example\";proto=HTTPS"),
        ]);
        let f = forwarded(&h, peer, &trusted);
        assert_eq!(f.client, "2001:db8:cafe::17".parse::<IpAddr>().unwrap());
        assert_eq!(f.host.as_deref(), Some("a.example"));
        assert_eq!(f.proto.as_deref(), Some("https"));
        let h = head(&[("Forwarded", "for=unknown")]);
        assert_eq!(forwarded(&h, peer, &trusted).client, "127.0.0.1".parse::<IpAddr>().unwrap());
        let h = head(&[("Forwarded", "for=198.51.100.17:8080;proto=ftp")]);
        let f = forwarded(&h, peer, &trusted);
        assert_eq!(f.client, "198.51.100.17".parse::<IpAddr>().unwrap());
        assert_eq!(f.proto, None, "only http and https are schemes we know");
    }
}
