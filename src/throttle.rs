//! Password-guessing throttle, sans-IO (`now` is passed in).
//!
//! The policy follows TigerVNC's blacklist (common/rfb/Blacklist.cxx: after
//! `BlacklistThreshold` = 5 failed attempts a host is blocked for
//! `BlacklistTimeout` = 10 s, doubling on each failure after that, until a
//! success clears it), with a growing delay before the lockout and a bound
//! on memory:
//!
//! ```text
//!  failure n (n = 1, 2, …):  not blocked                          n = 1 (a typo)
//!                            blocked for  delay · 2^(n-2)          while 1 < n < free
//!                                         lockout · 2^(n-free)     from n = free on (capped at max_lockout)
//!  attempt while blocked:    refused with the time left; not counted
//!  success:                  the key's record is removed
//!  no failure for `forget`   after the block ends: the record is dropped
//! ```
//!
//! With [`Policy::PER_ADDRESS`]: failure 1 is free, 2–4 block for 0.5, 1,
//! 2 s; the 5th locks the address out for 10 s, the 6th for 20 s, … up to an
//! hour.
//! At most `max_entries` keys are remembered; when full, the record whose
//! block ends first is dropped (an attacker filling the table evicts only
//! its own oldest records, each of which had to fail first).
//!
//! Keys are what the caller chooses: a client address ([`addr_key`] folds an
//! IPv6 address to its /64, since one subscriber owns a whole /64), a
//! session, a user name.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How failures turn into blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures before the lockout begins.
    pub free: u32,
    /// Block after the first failure; doubles with each further one.
    pub delay: Duration,
    /// Block at the `free`-th failure; doubles with each further one.
    pub lockout: Duration,
    pub max_lockout: Duration,
    /// A record with no failure for this long after its block ended is dropped.
    pub forget: Duration,
    pub max_entries: usize,
}

impl Policy {
    /// Per client address (joiners, browser-supplied VNC passwords, HTTP Basic).
    pub const PER_ADDRESS: Policy = Policy {
        free: 5,
        delay: Duration::from_millis(500),
        lockout: Duration::from_secs(10),
        max_lockout: Duration::from_secs(3600),
        forget: Duration::from_secs(3600),
        max_entries: 10_000,
    };
    /// Per gateway session: many addresses guessing one session's password.
    /// Looser than per address, since a locked session also refuses its
    /// rightful joiners (viewers already in are not affected).
    pub const PER_SESSION: Policy = Policy {
        free: 20,
        delay: Duration::from_millis(100),
        lockout: Duration::from_secs(10),
        max_lockout: Duration::from_secs(600),
        forget: Duration::from_secs(3600),
        max_entries: 10_000,
    };

    /// How long failure number `n` (1-based) blocks. The first is free (a
    /// typo is no attack, and a person retyping at once must not be held).
    pub fn block_for(&self, n: u32) -> Duration {
        let (base, exp) = match n {
            0 | 1 if self.free > 1 => return Duration::ZERO,
            n if n < self.free => (self.delay, n - 2),
            n => (self.lockout, n.saturating_sub(self.free)),
        };
        base.saturating_mul(1u32 << exp.min(24)).min(self.max_lockout)
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    blocked_until: Instant,
}

/// Refused: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    pub retry_in: Duration,
    /// The key is past the growing delay, in a lockout.
    pub locked_out: bool,
}

impl Blocked {
    /// Whole seconds to tell a person (at least 1).
    pub fn retry_secs(&self) -> u64 {
        (self.retry_in.as_millis() as u64).div_ceil(1000).max(1)
    }
}

/// Failure records by key.
#[derive(Debug)]
pub struct Throttle<K> {
    policy: Policy,
    records: HashMap<K, Record>,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    pub fn new(policy: Policy) -> Self {
        Throttle { policy, records: HashMap::new() }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// May `key` try now? Does not count as an attempt.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Blocked> {
        match self.records.get(key) {
            Some(r) if r.blocked_until > now => {
                Err(Blocked { retry_in: r.blocked_until - now, locked_out: r.failures >= self.policy.free })
            }
            _ => Ok(()),
        }
    }

    /// Record a failed attempt. Returns the block it starts, and whether it
    /// is a lockout (failure number ≥ `free`): log those, once each.
    pub fn failed(&mut self, key: &K, now: Instant) -> Blocked {
        let forget = self.policy.forget;
        let failures = match self.records.get(key) {
            Some(r) if now < r.blocked_until + forget => r.failures.saturating_add(1),
            _ => 1,
        };
        let block = self.policy.block_for(failures);
        if !self.records.contains_key(key) && self.records.len() >= self.policy.max_entries {
            self.evict(now);
        }
        self.records.insert(key.clone(), Record { failures, blocked_until: now + block });
        Blocked { retry_in: block, locked_out: failures >= self.policy.free }
    }

    /// A successful attempt: forget the key's failures.
    pub fn succeeded(&mut self, key: &K) {
        self.records.remove(key);
    }

    /// Records kept (for tests and the README's memory figures).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Make room for one record: drop every forgotten record, or if none,
    /// the one whose block ends first.
    fn evict(&mut self, now: Instant) {
        let forget = self.policy.forget;
        self.records.retain(|_, r| now < r.blocked_until + forget);
        if self.records.len() >= self.policy.max_entries {
            if let Some(k) = self.records.iter().min_by_key(|(_, r)| r.blocked_until).map(|(k, _)| k.clone()) {
                self.records.remove(&k);
            }
        }
    }
}

/// The throttling key of a client address: IPv4 as is, IPv6 folded to its
/// /64 (an IPv4-mapped IPv6 address counts as the IPv4 address).
pub fn addr_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn per_address_schedule() {
        let p = Policy::PER_ADDRESS;
        let got: Vec<u64> = (1..=12).map(|n| p.block_for(n).as_millis() as u64).collect();
        assert_eq!(got, [0, 500, 1000, 2000, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000, 1_280_000]);
        assert_eq!(p.block_for(13), S(2560).min(p.max_lockout));
        assert_eq!(p.block_for(40), p.max_lockout);
        assert_eq!(p.block_for(u32::MAX), p.max_lockout);
    }

    #[test]
    fn failures_block_and_success_clears() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Policy::PER_ADDRESS);
        let k = "1.2.3.4";
        assert!(t.check(&k, t0).is_ok());
        let mut now = t0;
        assert_eq!(t.failed(&k, now).retry_in, Duration::ZERO, "a first failure is free");
        assert!(t.check(&k, now).is_ok());
        for n in 2..=4 {
            let b = t.failed(&k, now);
            assert!(!b.locked_out, "failure {n}");
            assert_eq!(t.check(&k, now), Err(Blocked { retry_in: b.retry_in, locked_out: false }));
            now += b.retry_in; // the delay has passed exactly
            assert!(t.check(&k, now).is_ok());
        }
        let b = t.failed(&k, now);
        assert_eq!(b, Blocked { retry_in: S(10), locked_out: true });
        assert_eq!(t.check(&k, now + S(9)).unwrap_err().retry_secs(), 1);
        assert!(t.check(&k, now + S(9)).unwrap_err().locked_out);
        assert!(t.check(&"other", now).is_ok(), "keys are independent");
        now += S(10);
        assert_eq!(t.failed(&k, now).retry_in, S(20), "the lockout doubles");
        t.succeeded(&k);
        assert!(t.check(&k, now).is_ok());
        assert_eq!(t.failed(&k, now).retry_in, Duration::ZERO, "a success starts over");
    }

    #[test]
    fn records_are_forgotten_and_bounded() {
        let t0 = Instant::now();
        let policy = Policy { max_entries: 3, ..Policy::PER_ADDRESS };
        let mut t = Throttle::new(policy);
        t.failed(&1, t0);
        t.failed(&1, t0);
        let later = t0 + policy.forget + S(1);
        assert_eq!(t.failed(&1, later).retry_in, Duration::ZERO, "forgotten after `forget`");
        for k in 2..=3 {
            t.failed(&k, later);
        }
        assert_eq!(t.len(), 3);
        t.failed(&1, later + S(1)); // key 1's second failure: blocked longest
        t.failed(&4, later + S(1)); // full: the record whose block ends first goes
        t.failed(&4, later + S(1));
        assert_eq!(t.len(), 3);
        assert!(t.check(&4, later + S(1)).is_err());
        assert!(t.check(&1, later + S(1)).is_err(), "the oldest-ending block was evicted, not key 1");
        let mut big = Throttle::new(Policy { max_entries: 1000, ..Policy::PER_ADDRESS });
        for k in 0..5000u32 {
            big.failed(&k, t0);
        }
        assert_eq!(big.len(), 1000);
    }

    #[test]
    fn address_keys() {
        let k = |s: &str| addr_key(s.parse().unwrap()).to_string();
        assert_eq!(k("192.0.2.7"), "192.0.2.7");
        assert_eq!(k("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(k("::ffff:192.0.2.7"), "192.0.2.7");
    }
}
