//! The RFB client with every decoder (Raw, CopyRect, RRE, Hextile, Zlib,
//! ZRLE, Tight, and the pseudo-encodings) driving a framebuffer. The
//! handshake up to ServerInit (64×48) is fixed; the input is what the
//! server sends next, fed twice: whole, and in chunks whose size comes
//! from the first byte.
//!
//! Invariants: no panic; `handle_input` never reports more bytes than it was
//! given; the framebuffer stays within the size limit and its buffer matches
//! its size; after an error every call repeats it; a call that yields at
//! its work budget made progress; and the documented buffering contract —
//! any chunking of the same stream gives the same framebuffer, events and
//! output.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsvnc::fb::Framebuffer;
use wsvnc::rfb::client::MAX_FB_PIXELS;
use wsvnc::rfb::{encoding, RfbClient, RfbConfig, RfbEvent};

/// RFB 3.8, security None, SecurityResult OK, ServerInit 64×48 32bpp "fuzz".
fn handshake() -> Vec<u8> {
    let mut v = b"RFB 003.008\n".to_vec();
    v.extend_from_slice(&[1, 1, 0, 0, 0, 0]);
    v.extend_from_slice(&[0, 64, 0, 48]);
    v.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    v.extend_from_slice(&[0, 0, 0, 4]);
    v.extend_from_slice(b"fuzz");
    v
}

struct Run {
    fb: Vec<u8>,
    size: (u16, u16),
    events: Vec<RfbEvent>,
    out: Vec<u8>,
    error: Option<String>,
}

fn run(input: &[u8], chunk: usize) -> Run {
    let mut cfg = RfbConfig::default();
    cfg.encodings.push(encoding::ZLIB);
    let mut client = RfbClient::new(cfg);
    let mut fb = Framebuffer::new(0, 0);
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut buf = Vec::new();
    let mut fed = 0;
    let mut error = None;
    while error.is_none() && (fed < input.len() || client.yielded()) {
        let n = chunk.min(input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        loop {
            match client.handle_input(&buf, &mut fb, &mut out) {
                Ok(used) => {
                    assert!(used <= buf.len(), "used {used} of {}", buf.len());
                    buf.drain(..used);
                    assert!(!client.yielded() || used > 0, "a yield without progress");
                    if !client.yielded() {
                        break;
                    }
                }
                Err(e) => {
                    let again = client.handle_input(&buf, &mut fb, &mut out).unwrap_err();
                    assert_eq!(again, e, "a failed client must repeat its error");
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        events.extend(std::iter::from_fn(|| client.poll_event()));
        let (w, h) = (fb.width() as usize, fb.height() as usize);
        assert!(w * h <= MAX_FB_PIXELS);
        assert_eq!(fb.data().len(), w * h * 4);
    }
    Run { fb: fb.data().to_vec(), size: (fb.width(), fb.height()), events, out, error }
}

fuzz_target!(|data: &[u8]| {
    let [chunk, rest @ ..] = data else { return };
    let mut input = handshake();
    input.extend_from_slice(rest);
    let whole = run(&input, input.len().max(1));
    let split = run(&input, (*chunk as usize % 61) + 1);
    // After an error, how far the input got depends on the chunking.
    if whole.error.is_none() && split.error.is_none() {
        assert_eq!(whole.size, split.size);
        assert!(whole.fb == split.fb, "framebuffer differs by chunking");
        assert_eq!(whole.events, split.events);
        assert_eq!(whole.out, split.out);
    }
    assert_eq!(whole.error.is_some(), split.error.is_some(), "{:?} vs {:?}", whole.error, split.error);
});
