//! The WebSocket session (RFC 6455 frames from a client, and RFC 7692
//! permessage-deflate): the first byte picks deflate on/off, the delivery
//! mode and how data messages are echoed; the rest is the client's byte
//! stream, fed in chunks whose sizes come from the second byte, as a socket
//! would deliver it. The `Receiver` decodes; every data message it hands
//! out is answered through the `Sender` while still borrowed from the input
//! (`send_with`, compressed or `Body::Raw`), as the echo and gateway apps do.
//!
//! Invariants: no panic; `read` never reports more bytes than it was given;
//! whole messages never exceed the message limit; automatic replies (pongs,
//! close) stay bounded; an echo is one frame whose header says its payload
//! length, RSV1 only when compressed; the loop always terminates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsvnc::ws::frame::{self, OP_BINARY, OP_TEXT};
use wsvnc::ws::{deflate, Body, Delivery, Event, Limits, WsSession};

const MAX_MESSAGE: usize = 64 << 10;

fuzz_target!(|data: &[u8]| {
    let [mode, chunk, input @ ..] = data else { return };
    let params = (mode & 1 == 1).then(|| deflate::negotiate("permessage-deflate; client_max_window_bits").unwrap().0);
    let delivery = if mode & 2 == 2 { Delivery::StreamBinary } else { Delivery::Whole };
    let raw = mode & 4 == 4;
    let WsSession { mut rx, mut tx } = WsSession::new(Limits { max_message: MAX_MESSAGE }, delivery, params);
    let mut echo = Vec::new();
    let mut scratch = Vec::new();
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
            match rx.read(&mut buf, &mut tx, &mut out) {
                Ok((used, ev)) => {
                    assert!(used <= len, "used {used} of {len}");
                    let mut echo_back = |op: u8, data: &[u8]| {
                        echo.clear();
                        let body = if raw { Body::Raw } else { Body::Deflate };
                        let Some(p) = tx.send_with(op, &mut echo, &mut scratch, |v| {
                            v.extend_from_slice(data);
                            body
                        }) else {
                            return;
                        };
                        assert_eq!(p.body, data.len());
                        let (h, hlen) = frame::parse_header(&echo[p.at + p.gap..]).unwrap().unwrap();
                        assert_eq!((h.opcode, h.payload_len as usize), (op, p.payload));
                        assert_eq!(hlen + p.payload, p.wire());
                        assert!(!h.rsv1 || (params.is_some() && !raw), "RSV1 on an uncompressed echo");
                        if !h.rsv1 {
                            assert_eq!(&echo[p.at + p.gap + hlen..], data);
                        }
                    };
                    match ev {
                        Some(Event::Text(t)) => {
                            assert!(t.len() <= MAX_MESSAGE);
                            echo_back(OP_TEXT, t.as_bytes());
                        }
                        Some(Event::Binary(b)) => {
                            assert!(b.len() <= MAX_MESSAGE);
                            echo_back(OP_BINARY, b);
                        }
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
