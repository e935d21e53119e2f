//! The WebSocket session (RFC 6455 frames from a client, and RFC 7692
//! permessage-deflate): the first byte picks deflate on/off and the
//! delivery mode; the rest is the client's byte stream, fed in chunks whose
//! sizes come from the second byte, as a socket would deliver it.
//!
//! Invariants: no panic; `read` never reports more bytes than it was given;
//! whole messages never exceed the message limit; automatic replies (pongs,
//! close) stay bounded; the loop always terminates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsvnc::ws::{deflate, Delivery, Event, Limits, WsSession};

const MAX_MESSAGE: usize = 64 << 10;

fuzz_target!(|data: &[u8]| {
    let [mode, chunk, input @ ..] = data else { return };
    let params = (mode & 1 == 1).then(|| deflate::negotiate("permessage-deflate; client_max_window_bits").unwrap().0);
    let delivery = if mode & 2 == 2 { Delivery::StreamBinary } else { Delivery::Whole };
    let mut ws = WsSession::new(Limits { max_message: MAX_MESSAGE }, delivery, params);
    let chunk = (*chunk as usize).max(1);
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut out = Vec::new();
    let mut steps = 0usize;
    'feed: while fed < input.len() {
        let n = chunk.min(input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        loop {
            steps += 1;
            assert!(steps < 4 * data.len() + 64, "no progress");
            out.clear();
            let len = buf.len();
            match ws.read(&mut buf, &mut out) {
                Ok((used, ev)) => {
                    assert!(used <= len, "used {used} of {len}");
                    match ev {
                        Some(Event::Text(t)) => assert!(t.len() <= MAX_MESSAGE),
                        Some(Event::Binary(b)) => assert!(b.len() <= MAX_MESSAGE),
                        Some(Event::Pong(p)) => assert!(p.len() <= 125),
                        Some(Event::Close { reason, .. }) => assert!(reason.len() <= 123),
                        Some(Event::Ping) | None => {}
                    }
                    assert!(out.len() <= 256, "automatic reply of {} bytes", out.len());
                    buf.drain(..used);
                    if used == 0 {
                        break;
                    }
                }
                Err(e) => {
                    assert!((1000..5000).contains(&e.code), "close code {}", e.code);
                    break 'feed;
                }
            }
        }
    }
});
