//! One WebSocket connection, server side (RFC 6455), sans-IO.
//!
//! ```text
//!   read():                       ┌────────────── control frame (whole, ≤125 B)
//!                                 │               → Ping / Pong / Close event
//!   ┌────────┐ header complete ───┤
//!   │ Header │                    └────────────── data frame ──┐
//!   └────────┘◀── payload done ── ┌─────────┐ ◀────────────────┘
//!                                 │ Payload │  bytes consumed as they arrive:
//!                                 └─────────┘  unmasked in place, then
//!        streamed (StreamBinary, uncompressed binary) → Binary(chunk of input)
//!        compressed → inflated into the message buffer (capped)
//!        otherwise  → appended to the message buffer (capped)
//!        text       → UTF-8 checked incrementally (fail fast, §8.1)
//! ```
//!
//! A data frame that is complete in `input`, unfragmented and uncompressed is
//! delivered straight from `input` (zero copy). Everything else goes through
//! one reusable message buffer. `read` consumes a frame header only once it
//! is whole, and a control frame only once it is whole; data payload is
//! consumed in pieces, which is what lets invalid UTF-8 fail before the rest
//! of the frame arrives (Autobahn 6.4.*) and lets the relay stream.
//!
//! Output: frames are appended to the caller's `out`. The caller owns and
//! bounds it (backpressure lives in `server`).

use super::deflate::{grow_capped, Compressor, DeflateParams, Decompressor};
use super::frame::{self, FrameHeader, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT};
use super::mask::apply_mask;
use super::utf8::Utf8Validator;
use super::{close, Delivery, Event, Limits, WsError};

/// A delivered message buffer larger than this is released rather than kept
/// for reuse, so one big message does not pin memory for the connection's life.
const KEEP_BUF: usize = 256 * 1024;

/// Messages shorter than this are sent uncompressed (permitted per message,
/// RFC 7692 §6): deflate cannot win on them.
const MIN_COMPRESS: usize = 16;

#[derive(Debug, Clone, Copy)]
enum ReadState {
    /// Waiting for the next frame header.
    Header,
    /// Inside the payload of a data frame.
    Payload(DataFrame),
}

#[derive(Debug, Clone, Copy)]
struct DataFrame {
    remaining: u64,
    key: [u8; 4],
    /// Payload bytes already unmasked, mod 4 (the masking phase).
    phase: usize,
    fin: bool,
}

/// The data message being received.
#[derive(Debug, Clone, Copy)]
struct Message {
    text: bool,
    /// RSV1 on its first frame (RFC 7692 §6.1).
    compressed: bool,
    /// Payload handed out as it arrives instead of buffered.
    stream: bool,
}

struct Deflate {
    /// None when we send uncompressed (server_max_window_bits=8).
    comp: Option<Compressor>,
    decomp: Decompressor,
}

/// Server-side WebSocket session: decodes client frames into [`Event`]s and
/// encodes server frames.
pub struct WsSession {
    limits: Limits,
    delivery: Delivery,
    deflate: Option<Deflate>,
    state: ReadState,
    msg: Option<Message>,
    /// Message assembly buffer, reused across messages.
    buf: Vec<u8>,
    /// `buf` holds a message handed out by the last `read`; clear it first.
    buf_delivered: bool,
    utf8: Utf8Validator,
    close_sent: bool,
    close_received: bool,
}

fn proto(reason: &'static str) -> WsError {
    WsError { code: close::PROTOCOL_ERROR, reason }
}

fn bad_utf8() -> WsError {
    WsError { code: close::INVALID_PAYLOAD, reason: "invalid UTF-8 in text" }
}

fn too_big() -> WsError {
    WsError { code: close::MESSAGE_TOO_BIG, reason: "message too big" }
}

impl WsSession {
    pub fn new(limits: Limits, delivery: Delivery, deflate: Option<DeflateParams>) -> Self {
        WsSession {
            limits,
            delivery,
            deflate: deflate.map(|p| Deflate { comp: Compressor::new(&p), decomp: Decompressor::new(&p) }),
            state: ReadState::Header,
            msg: None,
            buf: Vec::new(),
            buf_delivered: false,
            utf8: Utf8Validator::new(),
            close_sent: false,
            close_received: false,
        }
    }

    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    pub fn close_received(&self) -> bool {
        self.close_received
    }

    pub fn deflate_enabled(&self) -> bool {
        self.deflate.is_some()
    }

    /// Decode from `input` (modified in place: unmasking). Returns (bytes
    /// consumed, at most one event); `(0, None)` means more input is needed,
    /// `(n > 0, None)` means progress without an event (call again). Automatic
    /// replies (pong for ping, close echo) are appended to `out`. On `Err` the
    /// caller calls `send_close(err.code, err.reason, out)` and stops reading.
    /// After a Close was received, input is discarded and no event follows.
    pub fn read<'a>(&'a mut self, input: &'a mut [u8], out: &mut Vec<u8>) -> Result<(usize, Option<Event<'a>>), WsError> {
        if self.close_received {
            return Ok((input.len(), None));
        }
        if self.buf_delivered {
            self.buf_delivered = false;
            self.buf.clear();
            if self.buf.capacity() > KEEP_BUF {
                self.buf = Vec::new();
            }
        }
        let (frame, pos) = match self.state {
            ReadState::Payload(f) => (f, 0),
            ReadState::Header => {
                let Some((h, hlen)) = frame::parse_header(input)? else {
                    return Ok((0, None));
                };
                // §5.1: "The server MUST close the connection upon receiving a
                // frame that is not masked" (1002).
                let key = h.mask.ok_or(proto("unmasked client frame"))?;
                // §5.2: RSV2/RSV3 must be 0 (no extension defines them here).
                if h.rsv2 || h.rsv3 {
                    return Err(proto("reserved bit set"));
                }
                match h.opcode {
                    OP_CLOSE | OP_PING | OP_PONG => return self.control(h, hlen, key, input, out),
                    OP_TEXT | OP_BINARY | OP_CONTINUATION => {}
                    _ => return Err(proto("reserved opcode")), // §5.2 %x3-7, %xB-F
                }
                self.start_frame(&h)?;
                let len = h.payload_len;
                let Some(msg) = self.msg else {
                    return Err(proto("continuation without message"));
                };
                // Zero copy: whole unfragmented uncompressed frame present.
                let rest_len = (input.len() - hlen) as u64;
                if h.fin && h.opcode != OP_CONTINUATION && !msg.compressed && len <= rest_len {
                    let n = len as usize; // ≤ input.len()
                    self.msg = None;
                    let (_, rest) = input.split_at_mut(hlen);
                    let payload = &mut rest[..n];
                    apply_mask(payload, key, 0);
                    let ev = if msg.text {
                        // §8.1: invalid UTF-8 in text → fail with 1007.
                        Event::Text(std::str::from_utf8(payload).map_err(|_| bad_utf8())?)
                    } else {
                        Event::Binary(payload)
                    };
                    return Ok((hlen + n, Some(ev)));
                }
                (DataFrame { remaining: len, key, phase: 0, fin: h.fin }, hlen)
            }
        };
        self.payload(frame, pos, input)
    }

    /// Check a data frame header against the message state and limits, and
    /// start a new message for a Text/Binary opcode.
    fn start_frame(&mut self, h: &FrameHeader) -> Result<(), WsError> {
        if h.opcode == OP_CONTINUATION {
            // §5.4: a continuation needs a message in progress.
            let Some(msg) = self.msg else {
                return Err(proto("continuation without message"));
            };
            // RFC 7692 §6.1: RSV1 only on the first frame of a message.
            if h.rsv1 {
                return Err(proto("RSV1 on continuation frame"));
            }
            if !msg.stream && !msg.compressed && (self.buf.len() as u64).saturating_add(h.payload_len) > self.max() {
                return Err(too_big());
            }
        } else {
            // §5.4: no new data message inside a fragmented one.
            if self.msg.is_some() {
                return Err(proto("new data frame inside fragmented message"));
            }
            if h.rsv1 && self.deflate.is_none() {
                return Err(proto("RSV1 set without extension"));
            }
            let text = h.opcode == OP_TEXT;
            let compressed = h.rsv1;
            let stream = self.delivery == Delivery::StreamBinary && !text && !compressed;
            if !stream && !compressed && h.payload_len > self.max() {
                return Err(too_big());
            }
            self.buf.clear();
            self.utf8.reset();
            self.msg = Some(Message { text, compressed, stream });
        }
        Ok(())
    }

    fn max(&self) -> u64 {
        self.limits.max_message as u64
    }

    /// Consume what is present of a data frame's payload from `input[pos..]`.
    fn payload<'a>(&'a mut self, mut frame: DataFrame, mut pos: usize, input: &'a mut [u8]) -> Result<(usize, Option<Event<'a>>), WsError> {
        let Some(msg) = self.msg else {
            return Err(proto("payload without message"));
        };
        let avail = frame.remaining.min((input.len() - pos) as u64) as usize;
        if avail == 0 && frame.remaining > 0 {
            self.state = ReadState::Payload(frame);
            return Ok((pos, None));
        }
        let (_, rest) = input.split_at_mut(pos);
        let chunk = &mut rest[..avail];
        apply_mask(chunk, frame.key, frame.phase);
        frame.remaining -= avail as u64;
        frame.phase = (frame.phase + avail) & 3;
        pos += avail;
        let max = self.limits.max_message;
        let mut event = None;
        if msg.stream {
            if avail > 0 {
                event = Some(Event::Binary(&*chunk));
            }
        } else if msg.compressed {
            let start = self.buf.len();
            let Some(d) = self.deflate.as_mut() else {
                return Err(proto("RSV1 set without extension"));
            };
            d.decomp.inflate(chunk, &mut self.buf, max)?;
            if msg.text {
                self.utf8.feed(&self.buf[start..]).map_err(|_| bad_utf8())?;
            }
        } else {
            // Length was checked against the cap at the frame header.
            if self.buf.capacity() - self.buf.len() < avail {
                let need = self.buf.len() + avail;
                grow_capped(&mut self.buf, max.max(need));
                if self.buf.capacity() < need {
                    self.buf.reserve_exact(need - self.buf.len());
                }
            }
            self.buf.extend_from_slice(chunk);
            if msg.text {
                self.utf8.feed(chunk).map_err(|_| bad_utf8())?;
            }
        }
        if frame.remaining > 0 {
            self.state = ReadState::Payload(frame);
            return Ok((pos, event));
        }
        self.state = ReadState::Header;
        if !frame.fin {
            return Ok((pos, event));
        }
        // End of message.
        self.msg = None;
        if msg.stream {
            return Ok((pos, event));
        }
        if msg.compressed {
            let start = self.buf.len();
            if let Some(d) = self.deflate.as_mut() {
                d.decomp.finish_message(&mut self.buf, max)?;
            }
            if msg.text {
                self.utf8.feed(&self.buf[start..]).map_err(|_| bad_utf8())?;
            }
        }
        if msg.text && !self.utf8.is_complete() {
            return Err(bad_utf8());
        }
        self.buf_delivered = true;
        let ev = if msg.text {
            Event::Text(std::str::from_utf8(&self.buf).map_err(|_| bad_utf8())?)
        } else {
            Event::Binary(&self.buf)
        };
        Ok((pos, Some(ev)))
    }

    /// A whole control frame (§5.5) is needed before anything is consumed.
    fn control<'a>(&'a mut self, h: FrameHeader, hlen: usize, key: [u8; 4], input: &'a mut [u8], out: &mut Vec<u8>) -> Result<(usize, Option<Event<'a>>), WsError> {
        // §5.5: "All control frames MUST have a payload length of 125 bytes
        // or less and MUST NOT be fragmented."
        if !h.fin {
            return Err(proto("fragmented control frame"));
        }
        if h.payload_len > 125 {
            return Err(proto("control frame too long"));
        }
        if h.rsv1 {
            return Err(proto("RSV1 on control frame"));
        }
        let n = h.payload_len as usize;
        if input.len() < hlen + n {
            return Ok((0, None));
        }
        let (_, rest) = input.split_at_mut(hlen);
        let payload = &mut rest[..n];
        apply_mask(payload, key, 0);
        let used = hlen + n;
        match h.opcode {
            OP_PING => {
                // §5.5.2: answer with a Pong carrying the same data.
                if !self.close_sent {
                    frame::write_header(out, true, false, OP_PONG, n);
                    out.extend_from_slice(payload);
                }
                Ok((used, Some(Event::Ping)))
            }
            OP_PONG => Ok((used, Some(Event::Pong(payload)))),
            _ => {
                let (code, reason) = parse_close(payload)?;
                self.close_received = true;
                // §5.5.1: reply with a Close, echoing the status code.
                self.send_close(code, "", out);
                Ok((used, Some(Event::Close { code, reason })))
            }
        }
    }

    /// Send a text message (one frame; compressed when negotiated).
    pub fn send_text(&mut self, text: &str, out: &mut Vec<u8>) {
        self.send_data(OP_TEXT, text.as_bytes(), out);
    }

    /// Send a binary message (one frame; compressed when negotiated).
    pub fn send_binary(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.send_data(OP_BINARY, data, out);
    }

    fn send_data(&mut self, opcode: u8, data: &[u8], out: &mut Vec<u8>) {
        // §5.5.1: no data frames after our Close.
        if self.close_sent {
            return;
        }
        if data.len() >= MIN_COMPRESS {
            if let Some(comp) = self.deflate.as_mut().and_then(|d| d.comp.as_mut()) {
                let z = comp.compress(data);
                out.reserve(frame::header_len(z.len()) + z.len());
                frame::write_header(out, true, true, opcode, z.len());
                out.extend_from_slice(z);
                return;
            }
        }
        out.reserve(frame::header_len(data.len()) + data.len());
        frame::write_header(out, true, false, opcode, data.len());
        out.extend_from_slice(data);
    }

    /// Send a Ping; `data` beyond 125 bytes is cut (§5.5).
    pub fn send_ping(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.close_sent {
            return;
        }
        let data = &data[..data.len().min(125)];
        frame::write_header(out, true, false, OP_PING, data.len());
        out.extend_from_slice(data);
    }

    /// Send our Close (at most once). `reason` is cut on a char boundary to
    /// fit the 125-byte control payload; codes that must not appear on the
    /// wire (1005, 1006, 1015, 1004) give an empty Close body (§7.4.1).
    pub fn send_close(&mut self, code: u16, reason: &str, out: &mut Vec<u8>) {
        if self.close_sent {
            return;
        }
        self.close_sent = true;
        if close::is_reserved_local(code) {
            frame::write_header(out, true, false, OP_CLOSE, 0);
            return;
        }
        let mut cut = reason.len().min(123);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        let reason = &reason.as_bytes()[..cut];
        frame::write_header(out, true, false, OP_CLOSE, 2 + reason.len());
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(reason);
    }
}

/// Close frame body (§5.5.1): empty, or a 2-byte code then UTF-8 reason.
fn parse_close(payload: &[u8]) -> Result<(u16, &str), WsError> {
    match payload {
        [] => Ok((close::NO_STATUS_RECEIVED, "")),
        [_] => Err(proto("close payload of 1 byte")),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            if !close::is_valid_received(code) {
                return Err(proto("invalid close code"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| WsError { code: close::INVALID_PAYLOAD, reason: "invalid UTF-8 in close reason" })?;
            Ok((code, reason))
        }
    }
}
