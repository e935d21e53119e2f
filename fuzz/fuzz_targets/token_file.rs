//! The token-file parser (websockify's `token: host:port` lines plus
//! wsvnc's words). Inputs whose addresses would need a DNS lookup, or that
//! read a password file, are skipped: the parser resolves names and reads
//! files by design, and a fuzzer must do neither.
//!
//! Invariants: no panic; every entry has a non-empty token without ':'; no
//! more entries than lines.
#![no_main]

use std::net::SocketAddr;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wsvnc::config::TokenTable;

/// Whether parsing `text` stays free of name resolution and file reads.
fn offline(text: &str) -> bool {
    !text.contains("password-file")
        && text.lines().all(|l| {
            let l = l.trim();
            let Some((_, rest)) = l.split_once(':') else { return true };
            match rest.split_whitespace().next() {
                None => true,
                Some(a) => a.starts_with("unix:") || a.parse::<u16>().is_ok() || a.parse::<SocketAddr>().is_ok(),
            }
        })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if !offline(text) {
        return;
    }
    if let Ok(t) = TokenTable::parse(text, Path::new("/nonexistent")) {
        assert!(t.entries.len() <= text.lines().count());
        for token in t.entries.keys() {
            assert!(!token.is_empty() && !token.contains(':'), "token {token:?}");
        }
    }
});
