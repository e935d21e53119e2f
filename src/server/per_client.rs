//! The per-client-address connection cap (`--max-per-client`).
//!
//! Counted by the TCP peer's address at accept: that address cannot be
//! forged, and it is known before a byte is read, so a refusal costs
//! nothing. IPv4 counts per address, IPv6 per /64 (one host usually holds a
//! whole /64). Peers listed with `--trusted-proxy` are exempt: every client
//! of a reverse proxy arrives from its address, and the client address the
//! proxy reports is known only after a request head has been read and is
//! only as good as the proxy; the proxy limits its own clients (nginx
//! `limit_conn`, HAProxy `src_conn_cur`).
//!
//! Refusals are logged once per burst: the first refusal of an address that
//! is at its cap is logged, and when one of its connections closes the
//! count of refusals meanwhile is.

use std::collections::HashMap;
use std::net::IpAddr;

use log::{info, warn};

use crate::transport::proxy::Cidr;

/// Connections of one address.
#[derive(Debug, Default)]
struct Entry {
    open: usize,
    /// Refused since the last log line about this address.
    refused: u64,
}

/// Open browser connections per client address.
#[derive(Debug, Default)]
pub struct PerClient {
    cap: usize,
    exempt: Vec<Cidr>,
    open: HashMap<IpAddr, Entry>,
}

/// The address a peer is counted under: IPv4 as it is (IPv4-mapped IPv6
/// too), IPv6 by its /64.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

impl PerClient {
    /// `cap` 0: no cap.
    pub fn new(cap: usize, exempt: Vec<Cidr>) -> PerClient {
        PerClient { cap, exempt, open: HashMap::new() }
    }

    /// Unix-socket peers (`app::UNIX_PEER`, the unspecified address) are not
    /// counted either: they share one address, and whoever may open the
    /// socket file is local (a proxy in front of it limits its clients).
    fn counted(&self, ip: IpAddr) -> bool {
        self.cap > 0 && !ip.is_unspecified() && !self.exempt.iter().any(|c| c.contains(ip))
    }

    /// A connection from `ip` was accepted: true when it may stay (it is
    /// counted then); false when the address is at its cap (the caller
    /// refuses it; logged once per burst).
    pub fn admit(&mut self, ip: IpAddr) -> bool {
        if !self.counted(ip) {
            return true;
        }
        let e = self.open.entry(bucket(ip)).or_default();
        if e.open < self.cap {
            e.open += 1;
            return true;
        }
        if e.refused == 0 {
            warn!(
                "{}: refused: {} connections open from this address (--max-per-client); \
                 further refusals are counted, not logged",
                bucket(ip),
                e.open
            );
        }
        e.refused += 1;
        false
    }

    /// A connection admitted from `ip` has closed.
    pub fn release(&mut self, ip: IpAddr) {
        if !self.counted(ip) {
            return;
        }
        let key = bucket(ip);
        let Some(e) = self.open.get_mut(&key) else { return };
        e.open = e.open.saturating_sub(1);
        if e.refused > 0 {
            info!("{key}: {} connection(s) refused at --max-per-client since the last report", e.refused);
            e.refused = 0;
        }
        if e.open == 0 {
            self.open.remove(&key);
        }
    }

    /// Addresses with open connections (bounded by the connection count).
    #[cfg(test)]
    pub fn addresses(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_each_address_and_frees_on_release() {
        let mut p = PerClient::new(2, Vec::new());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(p.admit(a) && p.admit(a));
        assert!(!p.admit(a), "third from a refused");
        assert!(p.admit(b), "another address is not disturbed");
        p.release(a);
        assert!(p.admit(a), "room again after a close");
        p.release(a);
        p.release(a);
        p.release(b);
        assert_eq!(p.addresses(), 0, "no entry left behind");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let mut p = PerClient::new(1, Vec::new());
        assert!(p.admit("2001:db8::1".parse().unwrap()));
        assert!(!p.admit("2001:db8::2:3".parse().unwrap()), "same /64");
        assert!(p.admit("2001:db8:0:1::1".parse().unwrap()), "another /64");
        assert!(p.admit("10.1.1.1".parse().unwrap()));
        assert!(!p.admit("::ffff:10.1.1.1".parse().unwrap()));
    }

    #[test]
    fn trusted_proxies_and_cap_zero_are_not_counted() {
        let mut p = PerClient::new(1, vec!["127.0.0.0/8".parse().unwrap()]);
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(p.admit(proxy) && p.admit(proxy) && p.admit(proxy));
        assert_eq!(p.addresses(), 0);
        let mut off = PerClient::new(0, Vec::new());
        assert!((0..1000).all(|_| off.admit(proxy)));
    }

    #[test]
    fn unix_socket_peers_are_not_counted() {
        let mut p = PerClient::new(1, Vec::new());
        let unix = crate::app::UNIX_PEER.ip();
        assert!(p.admit(unix) && p.admit(unix) && p.admit(unix));
        p.release(unix);
        assert_eq!(p.addresses(), 0);
    }
}
