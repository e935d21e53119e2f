//! The browser → gateway protocol parser (`gateway::proto::parse_all`,
//! docs/protocol.md), called by name so a new protocol version's parser
//! drops in.
//!
//! Invariants: no panic; every parsed message re-encodes (by the layouts in
//! docs/protocol.md, written out here) to bytes that parse to the same
//! messages; strings are within their limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsvnc::gateway::proto::{parse_all, Input, MAX_CLIPBOARD};

fn encode(m: &Input<'_>, out: &mut Vec<u8>) {
    let s = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    };
    match *m {
        Input::ClientHello { version } => out.extend_from_slice(&[0x80, version]),
        Input::Accept { formats } => out.extend_from_slice(&[0x8B, formats]),
        // Key has no code; KeyCode has one (1-32 ASCII letters and digits).
        Input::Key { down, keysym, code: "" } => {
            out.extend_from_slice(&[0x81, down as u8]);
            out.extend_from_slice(&keysym.to_le_bytes());
        }
        Input::Key { down, keysym, code } => {
            out.extend_from_slice(&[0x87, down as u8]);
            out.extend_from_slice(&keysym.to_le_bytes());
            s(out, code.as_bytes());
        }
        // Pointer carries bits 0-7; PointerExt (u16 mask) is needed above.
        Input::Pointer { x, y, mask } => {
            out.push(if mask > 0xff { 0x88 } else { 0x82 });
            out.extend_from_slice(&x.to_le_bytes());
            out.extend_from_slice(&y.to_le_bytes());
            if mask > 0xff {
                out.extend_from_slice(&mask.to_le_bytes());
            } else {
                out.push(mask as u8);
            }
        }
        Input::Clipboard(t) => {
            out.push(0x83);
            s(out, t.as_bytes());
        }
        Input::FrameAck(id) => {
            out.push(0x84);
            out.extend_from_slice(&id.to_le_bytes());
        }
        Input::Received(id) => {
            out.push(0x8A);
            out.extend_from_slice(&id.to_le_bytes());
        }
        Input::ResizeRequest { w, h } => {
            out.push(0x85);
            out.extend_from_slice(&w.to_le_bytes());
            out.extend_from_slice(&h.to_le_bytes());
        }
        Input::Password(p) => {
            out.push(0x86);
            s(out, p);
        }
        Input::Credentials { username, password } => {
            out.push(0x89);
            s(out, username);
            s(out, password);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut first = Vec::new();
    let r = parse_all(data, |m| {
        if let Input::Clipboard(t) = m {
            assert!(t.len() <= MAX_CLIPBOARD);
        }
        first.push(m);
        Ok(())
    });
    if let Err(bad) = r {
        assert!((1000..5000).contains(&bad.code));
    }
    if first.is_empty() {
        return;
    }
    let mut bytes = Vec::new();
    for m in &first {
        encode(m, &mut bytes);
    }
    let mut again = Vec::new();
    parse_all(&bytes, |m| {
        again.push(m);
        Ok(())
    })
    .expect("re-encoded messages parse");
    assert_eq!(first, again);
});
