//! JWT verification and its JSON reader. The first byte picks the part:
//! 0: `jwt::verify` of the rest as a token; 1: `json::parse` of the rest,
//! which must round-trip through a writer; 2: the rest as a payload signed
//! with the key, which must then verify unless its claims are refused.
//!
//! Invariants: no panic; bounded work; parse(write(v)) == v; a token we
//! signed never fails on shape, algorithm or signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsvnc::http::access::json::{self, Value};
use wsvnc::http::access::jwt::{self, JwtError};

const KEY: &[u8] = b"wsvnc fuzz key, thirty-two bytes or more";
const NOW: u64 = 1_900_000_000;

fn write(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&format!("{n:?}")),
        Value::String(s) => write_str(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(k, out);
                out.push(':');
                write(x, out);
            }
            out.push('}');
        }
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    match mode % 3 {
        0 => {
            if let Ok(t) = std::str::from_utf8(rest) {
                if let Ok(c) = jwt::verify(t, KEY, NOW) {
                    assert!(c.exp > NOW);
                }
            }
        }
        1 => {
            if let Ok(v) = json::parse(rest) {
                let mut text = String::new();
                write(&v, &mut text);
                assert_eq!(json::parse(text.as_bytes()).as_ref(), Ok(&v), "{text}");
            }
        }
        _ => {
            if let Ok(payload) = std::str::from_utf8(rest) {
                let t = jwt::sign(payload, KEY);
                match jwt::verify(&t, KEY, NOW) {
                    Err(JwtError::Malformed(m)) => assert!(t.len() > jwt::MAX_TOKEN_BYTES, "{m}"),
                    Err(JwtError::Algorithm | JwtError::Signature) => panic!("our own token refused"),
                    _ => {}
                }
            }
        }
    }
});
