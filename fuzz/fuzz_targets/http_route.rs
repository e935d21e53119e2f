//! HTTP request heads, routing, the Host check, access control (JWT) and
//! the WebSocket upgrade checks: pipelined requests parsed one after the
//! other as the server does.
//!
//! Invariants: no panic; a parsed head uses 1..=len bytes; an incomplete
//! head is within the head limit; every response starts with a status line
//! whose code is the `Action`'s and is bounded in size; an upgrade is only
//! granted on a WebSocket path to an allowed Host, with a 28-character
//! accept key.
#![no_main]

use std::cell::RefCell;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use wsvnc::http::access::{AccessConfig, TargetRule};
use wsvnc::http::{parse_head, route, Access, Action, Limits, Peer, Site};

/// The JWT key of the seed corpus (tokens signed with it pass the signature).
const KEY: &[u8] = b"wsvnc fuzz key, thirty-two bytes or more";
/// Seed tokens expire after this Unix time.
const NOW: u64 = 1_900_000_000;

thread_local! {
    static SITE: RefCell<Site> = RefCell::new(Site {
        access: Access::new(
            &AccessConfig {
                allowed_hosts: vec!["vnc.example.com".into(), "*.lab.example".into()],
                jwt_secret: Some(KEY.to_vec()),
                jwt_targets: vec![TargetRule::parse("10.0.0.0/8:5900-5999").unwrap()],
                ..AccessConfig::default()
            },
            "127.0.0.1:6080".parse().unwrap(),
        )
        .unwrap(),
        ..Site::default()
    });
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut rest = data;
    for _ in 0..32 {
        match parse_head(rest, &limits) {
            Ok(Some((head, used))) => {
                assert!(used > 0 && used <= rest.len());
                rest = &rest[used..];
                SITE.with(|s| {
                    let mut site = s.borrow_mut();
                    let peer = Peer::local(Instant::now(), NOW);
                    match route(&head, &mut site, &peer) {
                        Action::Respond { bytes, status, .. } => {
                            let line = format!("HTTP/1.1 {status} ");
                            assert!(bytes.starts_with(line.as_bytes()), "status line vs {status}");
                            assert!((200..600).contains(&status));
                            assert!(bytes.len() < 1 << 20, "response of {} bytes", bytes.len());
                        }
                        Action::Upgrade(up) => {
                            assert!(site.ws_paths.contains(&up.path), "upgrade on {}", up.path);
                            assert!(site.access.host_allowed(&head), "upgrade for a refused Host");
                            assert_eq!(up.accept.len(), 28);
                            assert!(!up.query.iter().any(|(n, _)| n == "jwt"), "the token left the query");
                        }
                        Action::File(_) => panic!("route() reads files itself"),
                    }
                });
            }
            Ok(None) => {
                assert!(rest.len() <= limits.max_head_bytes);
                return;
            }
            Err(status) => {
                assert!(matches!(status, 400 | 414 | 431 | 505), "parse error {status}");
                return;
            }
        }
    }
});
