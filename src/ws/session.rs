//! One WebSocket connection, server side (RFC 6455), sans-IO.
//!
//! ```text
//!   Receiver::read():             ┌────────────── control frame (whole, ≤125 B)
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
//! The session is two halves, so that a message borrowed from the
//! [`Receiver`] can be answered through the [`Sender`] (echo, gateway replies)
//! without copying it first. Output: frames are appended to the caller's
//! `out`; the caller owns and bounds it (backpressure lives in `transport`).
//! [`Sender::send_with`] lets the caller write a message body straight into
//! `out` behind reserved header room.
//!
//! permessage-deflate state is made when first needed: the inflater at the
//! first compressed frame, the deflater at the first message worth
//! compressing, so an idle connection that negotiated the extension holds
//! neither (a level-1 deflater with a 15-bit window is ~300 KiB).

use super::deflate::{grow_capped, Compressor, Decompressor, DeflateParams};
use super::frame::{
    self, FrameHeader, MAX_SERVER_HEADER_LEN, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
};
use super::mask::apply_mask;
use super::utf8::Utf8Validator;
use super::{close, Delivery, Event, Limits, WsError};

/// A delivered message buffer larger than this is released rather than kept
/// for reuse, so one big message does not pin memory for the connection's life.
const KEEP_BUF: usize = 256 * 1024;

/// Messages shorter than this are sent uncompressed (permitted per message,
/// RFC 7692 §6): deflate cannot win on them.
const MIN_COMPRESS: usize = 16;

/// The deflater is made for the first message at least this long; shorter
/// ones before it go uncompressed. So a connection that only ever gets
/// status lines (a viewer before its ClientHello) holds no deflate state.
const MAKE_DEFLATER_AT: usize = 1024;

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

/// Server-side WebSocket session: decodes client frames into [`Event`]s and
/// encodes server frames. `rx` and `tx` may be used apart (see module docs).
pub struct WsSession {
    pub rx: Receiver,
    pub tx: Sender,
}

/// The decoding half.
pub struct Receiver {
    limits: Limits,
    delivery: Delivery,
    /// Negotiated permessage-deflate, if any; `inflater` is made from it
    /// at the first compressed frame.
    deflate: Option<DeflateParams>,
    inflater: Option<Box<Decompressor>>,
    state: ReadState,
    msg: Option<Message>,
    /// Message assembly buffer, reused across messages.
    buf: Vec<u8>,
    /// `buf` holds a message handed out by the last `read`; clear it first.
    buf_delivered: bool,
    utf8: Utf8Validator,
    close_received: bool,
}

/// The encoding half.
pub struct Sender {
    /// Negotiated permessage-deflate, if any; `deflater` is made from it at
    /// the first message worth compressing.
    deflate: Option<DeflateParams>,
    deflater: Option<Box<Compressor>>,
    close_sent: bool,
}

/// Where [`Sender::send_with`] put a message in `out`: the frame starts
/// `gap` bytes after index `at`; `out[at..at + gap]` is unused header room
/// the caller removes (`transport::Buf::close_gap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub at: usize,
    pub gap: usize,
    /// Payload length on the wire (after compression).
    pub payload: usize,
    /// Message length before compression.
    pub body: usize,
}

impl Placed {
    /// Bytes of the frame on the wire: header and payload.
    pub fn wire(&self) -> usize {
        MAX_SERVER_HEADER_LEN - self.gap + self.payload
    }
}

/// What a [`Sender::send_with`] body wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Nothing: no message is sent.
    Empty,
    /// A message, compressed when permessage-deflate is in use.
    Deflate,
    /// A message sent uncompressed (RSV1 clear) whatever was negotiated:
    /// data that does not compress, such as JPEG. RFC 7692 §6.1 lets the
    /// sender choose per message; the deflater's history is untouched.
    Raw,
}

impl From<bool> for Body {
    fn from(sent: bool) -> Body {
        if sent {
            Body::Deflate
        } else {
            Body::Empty
        }
    }
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
            rx: Receiver {
                limits,
                delivery,
                deflate,
                inflater: None,
                state: ReadState::Header,
                msg: None,
                buf: Vec::new(),
                buf_delivered: false,
                utf8: Utf8Validator::new(),
                close_received: false,
            },
            tx: Sender { deflate, deflater: None, close_sent: false },
        }
    }

    pub fn close_sent(&self) -> bool {
        self.tx.close_sent
    }

    pub fn close_received(&self) -> bool {
        self.rx.close_received
    }

    pub fn deflate_enabled(&self) -> bool {
        self.rx.deflate.is_some()
    }

    /// Whether any deflate state has been made yet (memory accounting, tests).
    pub fn deflate_allocated(&self) -> bool {
        self.rx.inflater.is_some() || self.tx.deflater.is_some()
    }

    /// [`Receiver::read`] with this session's sender.
    pub fn read<'a>(
        &'a mut self,
        input: &'a mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<(usize, Option<Event<'a>>), WsError> {
        self.rx.read(input, &mut self.tx, out)
    }

    pub fn send_text(&mut self, text: &str, out: &mut Vec<u8>) {
        self.tx.send_text(text, out);
    }

    pub fn send_binary(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.tx.send_binary(data, out);
    }

    pub fn send_binary_uncompressed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.tx.send_binary_uncompressed(data, out);
    }

    pub fn send_ping(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.tx.send_ping(data, out);
    }

    pub fn send_close(&mut self, code: u16, reason: &str, out: &mut Vec<u8>) {
        self.tx.send_close(code, reason, out);
    }
}

impl Receiver {
    pub fn close_received(&self) -> bool {
        self.close_received
    }

    /// Decode from `input` (modified in place: unmasking). Returns (bytes
    /// consumed, at most one event); `(0, None)` means more input is needed,
    /// `(n > 0, None)` means progress without an event (call again). Automatic
    /// replies (pong for ping, close echo) are appended to `out` through `tx`.
    /// On `Err` the caller sends `tx.send_close(err.code, err.reason, out)`
    /// and stops reading. After a Close was received, input is discarded and
    /// no event follows.
    pub fn read<'a>(
        &'a mut self,
        input: &'a mut [u8],
        tx: &mut Sender,
        out: &mut Vec<u8>,
    ) -> Result<(usize, Option<Event<'a>>), WsError> {
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
                    OP_CLOSE | OP_PING | OP_PONG => return self.control(h, hlen, key, input, tx, out),
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

    /// The inflater, made at the first compressed frame.
    fn inflater(&mut self) -> Result<&mut Decompressor, WsError> {
        let Some(params) = &self.deflate else {
            return Err(proto("RSV1 set without extension"));
        };
        Ok(self.inflater.get_or_insert_with(|| Box::new(Decompressor::new(params))))
    }

    /// Consume what is present of a data frame's payload from `input[pos..]`.
    fn payload<'a>(
        &'a mut self,
        mut frame: DataFrame,
        mut pos: usize,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), WsError> {
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
            let mut buf = std::mem::take(&mut self.buf);
            let inflated = self.inflater().and_then(|d| d.inflate(chunk, &mut buf, max));
            self.buf = buf;
            inflated?;
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
            let mut buf = std::mem::take(&mut self.buf);
            let finished = self.inflater().and_then(|d| d.finish_message(&mut buf, max));
            self.buf = buf;
            finished?;
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
    fn control<'a>(
        &'a mut self,
        h: FrameHeader,
        hlen: usize,
        key: [u8; 4],
        input: &'a mut [u8],
        tx: &mut Sender,
        out: &mut Vec<u8>,
    ) -> Result<(usize, Option<Event<'a>>), WsError> {
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
                if !tx.close_sent {
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
                tx.send_close(code, "", out);
                Ok((used, Some(Event::Close { code, reason })))
            }
        }
    }
}

impl Sender {
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// permessage-deflate was negotiated with a window we can compress with.
    fn compresses(&self) -> bool {
        self.deflate.is_some_and(|p| p.server_max_window_bits >= 9)
    }

    /// The deflater for a message of `len` bytes: made at the first message
    /// of [`MAKE_DEFLATER_AT`] bytes or more; None when this message goes
    /// uncompressed (too short, no extension, or window bits 8).
    fn deflater(&mut self, len: usize) -> Option<&mut Compressor> {
        if len < MIN_COMPRESS || (self.deflater.is_none() && len < MAKE_DEFLATER_AT) {
            return None;
        }
        if self.deflater.is_none() {
            self.deflater = Compressor::new(self.deflate.as_ref()?).map(Box::new);
        }
        self.deflater.as_deref_mut()
    }

    /// Send a text message (one frame; compressed when negotiated).
    pub fn send_text(&mut self, text: &str, out: &mut Vec<u8>) {
        self.send_data(OP_TEXT, text.as_bytes(), true, out);
    }

    /// Send a binary message (one frame; compressed when negotiated).
    pub fn send_binary(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.send_data(OP_BINARY, data, true, out);
    }

    /// Send a binary message uncompressed (RSV1 clear) even when
    /// permessage-deflate is in use: for data that does not compress (JPEG).
    /// RFC 7692 §6.1 lets the sender choose per message; the compressor's
    /// history is untouched, so later compressed messages still refer to it
    /// correctly (the peer does not add uncompressed messages to its window).
    pub fn send_binary_uncompressed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.send_data(OP_BINARY, data, false, out);
    }

    fn send_data(&mut self, opcode: u8, data: &[u8], compress: bool, out: &mut Vec<u8>) {
        if let Some(p) = self.place_message(opcode, data, compress, out) {
            out.drain(p.at..p.at + p.gap);
        }
    }

    /// Append one data message with payload `data` (compressed straight from
    /// `data` when negotiated) behind [`MAX_SERVER_HEADER_LEN`] bytes of
    /// header room; see [`Placed`]. None after our Close (§5.5.1).
    pub fn send_message(&mut self, opcode: u8, data: &[u8], out: &mut Vec<u8>) -> Option<Placed> {
        self.place_message(opcode, data, true, out)
    }

    fn place_message(&mut self, opcode: u8, data: &[u8], compress: bool, out: &mut Vec<u8>) -> Option<Placed> {
        if self.close_sent {
            return None;
        }
        let at = out.len();
        out.reserve(MAX_SERVER_HEADER_LEN + data.len());
        out.resize(at + MAX_SERVER_HEADER_LEN, 0);
        let deflater = if compress { self.deflater(data.len()) } else { None };
        let compressed = match deflater {
            Some(comp) => {
                comp.compress_into(data, out);
                true
            }
            None => {
                out.extend_from_slice(data);
                false
            }
        };
        let payload = out.len() - at - MAX_SERVER_HEADER_LEN;
        let gap = place_header(out, at, compressed, opcode, payload);
        Some(Placed { at, gap, payload, body: data.len() })
    }

    /// Append one data message (`opcode` text or binary, one frame) whose
    /// body `body` appends to the Vec it is given and answers what it wrote
    /// ([`Body`]; `false` is [`Body::Empty`], `true` [`Body::Deflate`]).
    /// Without compression the body is written straight into `out` behind
    /// [`MAX_SERVER_HEADER_LEN`] bytes of header room; with compression it
    /// goes to `scratch` first and is deflated into `out`, or copied there
    /// as it is for [`Body::Raw`] (the one copy either way). The header is
    /// written just before the payload; the room it did not need is
    /// reported in [`Placed`] for the caller to remove. A text body must be
    /// UTF-8 (the caller's contract). None: nothing was sent.
    pub fn send_with<B: Into<Body>>(
        &mut self,
        opcode: u8,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        body: impl FnOnce(&mut Vec<u8>) -> B,
    ) -> Option<Placed> {
        if self.close_sent {
            return None;
        }
        let at = out.len();
        out.resize(at + MAX_SERVER_HEADER_LEN, 0);
        let (compressed, len) = if self.compresses() {
            scratch.clear();
            let deflater = match body(scratch).into() {
                Body::Empty => {
                    out.truncate(at);
                    return None;
                }
                Body::Deflate => self.deflater(scratch.len()),
                Body::Raw => None,
            };
            let compressed = match deflater {
                Some(comp) => {
                    comp.compress_into(scratch, out);
                    true
                }
                None => {
                    out.extend_from_slice(scratch);
                    false
                }
            };
            (compressed, scratch.len())
        } else {
            if body(out).into() == Body::Empty {
                out.truncate(at);
                return None;
            }
            (false, out.len() - at - MAX_SERVER_HEADER_LEN)
        };
        let payload = out.len() - at - MAX_SERVER_HEADER_LEN;
        let gap = place_header(out, at, compressed, opcode, payload);
        Some(Placed { at, gap, payload, body: len })
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

/// `out[at..at + MAX_SERVER_HEADER_LEN]` is header room and `payload` bytes
/// follow it: write the minimal header right before the payload (§5.2).
/// Returns the unused room at the front.
fn place_header(out: &mut [u8], at: usize, rsv1: bool, opcode: u8, payload: usize) -> usize {
    let hlen = frame::header_len(payload);
    let gap = MAX_SERVER_HEADER_LEN - hlen;
    frame::put_header(&mut out[at + gap..], true, rsv1, opcode, payload);
    gap
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
            let reason = std::str::from_utf8(reason)
                .map_err(|_| WsError { code: close::INVALID_PAYLOAD, reason: "invalid UTF-8 in close reason" })?;
            Ok((code, reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::deflate::negotiate;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// Owned copy of an event, for comparisons.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Ev {
        Text(String),
        Binary(Vec<u8>),
        Ping,
        Pong(Vec<u8>),
        Close(u16, String),
        Err(u16),
    }

    fn own(e: Event<'_>) -> Ev {
        match e {
            Event::Text(t) => Ev::Text(t.to_string()),
            Event::Binary(b) => Ev::Binary(b.to_vec()),
            Event::Ping => Ev::Ping,
            Event::Pong(b) => Ev::Pong(b.to_vec()),
            Event::Close { code, reason } => Ev::Close(code, reason.to_string()),
        }
    }

    /// A masked client frame with the minimal length encoding.
    fn cframe(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        frame::write_header(&mut v, false, false, 0, payload.len());
        v[0] = b0;
        v[1] |= 0x80;
        v.extend_from_slice(&KEY);
        let start = v.len();
        v.extend_from_slice(payload);
        apply_mask(&mut v[start..], KEY, 0);
        v
    }

    fn limits(max: usize) -> Limits {
        Limits { max_message: max }
    }

    fn session() -> WsSession {
        WsSession::new(limits(1 << 20), Delivery::Whole, None)
    }

    /// Feed `wire` in pieces cut at `cuts`, as a socket loop would: keep the
    /// unconsumed bytes, append new ones, call `read` until it needs more.
    fn drive(s: &mut WsSession, wire: &[u8], cuts: &[usize]) -> (Vec<Ev>, Vec<u8>) {
        let mut pending: Vec<u8> = Vec::new();
        let mut evs = Vec::new();
        let mut out = Vec::new();
        let mut last = 0;
        for &c in cuts.iter().chain(std::iter::once(&wire.len())) {
            pending.extend_from_slice(&wire[last..c]);
            last = c;
            loop {
                match s.read(&mut pending, &mut out) {
                    Err(e) => {
                        evs.push(Ev::Err(e.code));
                        return (evs, out);
                    }
                    Ok((n, ev)) => {
                        let ev = ev.map(own);
                        let none = ev.is_none();
                        if let Some(ev) = ev {
                            evs.push(ev);
                        }
                        pending.drain(..n);
                        if n == 0 && none {
                            break;
                        }
                    }
                }
            }
        }
        (evs, out)
    }

    fn run(wire: &[u8]) -> Vec<Ev> {
        drive(&mut session(), wire, &[]).0
    }

    /// Merge adjacent Binary chunks (for StreamBinary comparisons).
    fn merge(evs: Vec<Ev>) -> Vec<Ev> {
        let mut m: Vec<Ev> = Vec::new();
        for e in evs {
            if let (Some(Ev::Binary(prev)), Ev::Binary(b)) = (m.last_mut(), &e) {
                prev.extend_from_slice(b);
                continue;
            }
            m.push(e);
        }
        m
    }

    #[test]
    fn rfc6455_5_7_examples() {
        // Single-frame masked text "Hello".
        let wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        assert_eq!(run(&wire), [Ev::Text("Hello".into())]);
        assert_eq!(cframe(0x81, b"Hello"), wire);
        // Fragmented unmasked example, masked as a client must: "Hel" + "lo".
        let mut w = cframe(0x01, b"Hel");
        w.extend(cframe(0x80, b"lo"));
        assert_eq!(run(&w), [Ev::Text("Hello".into())]);
        // Unmasked ping "Hello" → its masked form gives a Ping and an
        // unmasked Pong "Hello" (0x8a 0x05 ...), as in §5.7.
        let (evs, out) = drive(&mut session(), &cframe(0x89, b"Hello"), &[]);
        assert_eq!(evs, [Ev::Ping]);
        assert_eq!(out, [0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        // 256 bytes binary in one unmasked frame: 0x82 0x7E 0x0100.
        let data: Vec<u8> = (0..256).map(|i| i as u8).collect();
        let w = cframe(0x82, &data);
        assert_eq!(&w[..4], &[0x82, 0xfe, 0x01, 0x00]);
        assert_eq!(run(&w), [Ev::Binary(data)]);
        // 64 KiB binary: 0x82 0x7F 0x0000000000010000.
        let data: Vec<u8> = (0..65536).map(|i| (i * 7) as u8).collect();
        let w = cframe(0x82, &data);
        assert_eq!(&w[..10], &[0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(run(&w), [Ev::Binary(data)]);
        // The unmasked originals are refused by a server (§5.1).
        assert_eq!(run(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]), [Ev::Err(1002)]);
    }

    #[test]
    fn every_length_form_including_non_minimal() {
        for len in [0usize, 1, 125, 126, 127, 1000, 65535, 65536, 70000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            assert_eq!(run(&cframe(0x82, &data)), [Ev::Binary(data.clone())], "len {len}");
            // Same payload with a 64-bit length field.
            let mut w = vec![0x82, 0xff];
            w.extend_from_slice(&(len as u64).to_be_bytes());
            w.extend_from_slice(&KEY);
            let s = w.len();
            w.extend_from_slice(&data);
            apply_mask(&mut w[s..], KEY, 0);
            assert_eq!(run(&w), [Ev::Binary(data.clone())], "64-bit len {len}");
            if len <= 0xffff {
                let mut w = vec![0x82, 0xfe];
                w.extend_from_slice(&(len as u16).to_be_bytes());
                w.extend_from_slice(&KEY);
                let s = w.len();
                w.extend_from_slice(&data);
                apply_mask(&mut w[s..], KEY, 0);
                assert_eq!(run(&w), [Ev::Binary(data)], "16-bit len {len}");
            }
        }
    }

    /// A stream exercising every kind of frame.
    fn mixed_stream() -> (Vec<u8>, Vec<Ev>) {
        let mut w = Vec::new();
        w.extend(cframe(0x81, "héllo".as_bytes()));
        // fragmented text with a ping inside, "κόσμε" split inside a char
        let k = "κόσμε".as_bytes();
        w.extend(cframe(0x01, &k[..3]));
        w.extend(cframe(0x89, b"p1"));
        w.extend(cframe(0x00, &k[3..7]));
        w.extend(cframe(0x00, b""));
        w.extend(cframe(0x80, &k[7..]));
        let bin: Vec<u8> = (0..300).map(|i| i as u8).collect();
        w.extend(cframe(0x82, &bin));
        w.extend(cframe(0x02, &bin[..100]));
        w.extend(cframe(0x8a, b"pong!"));
        w.extend(cframe(0x80, &bin[100..]));
        w.extend(cframe(0x81, b""));
        w.extend(cframe(0x88, &[0x03, 0xe8, b'b', b'y', b'e']));
        let evs = vec![
            Ev::Text("héllo".into()),
            Ev::Ping,
            Ev::Text("κόσμε".into()),
            Ev::Binary(bin.clone()),
            Ev::Pong(b"pong!".to_vec()),
            Ev::Binary(bin),
            Ev::Text(String::new()),
            Ev::Close(1000, "bye".into()),
        ];
        (w, evs)
    }

    #[test]
    fn every_split_gives_the_same_events() {
        let (wire, want) = mixed_stream();
        let (evs, out_whole) = drive(&mut session(), &wire, &[]);
        assert_eq!(evs, want);
        // pong "p1" then close echo 1000
        assert_eq!(out_whole, [0x8a, 2, b'p', b'1', 0x88, 2, 0x03, 0xe8]);
        for cut in 0..=wire.len() {
            let (evs, out) = drive(&mut session(), &wire, &[cut]);
            assert_eq!(evs, want, "cut {cut}");
            assert_eq!(out, out_whole, "cut {cut}");
        }
        // byte by byte
        let all: Vec<usize> = (1..wire.len()).collect();
        let (evs, out) = drive(&mut session(), &wire, &all);
        assert_eq!((evs, out), (want.clone(), out_whole.clone()));
        // StreamBinary: binary arrives as it comes, so the second message's
        // first fragment precedes the Pong; compare with chunks merged.
        let bin: Vec<u8> = (0..300).map(|i| i as u8).collect();
        let mut first = bin.clone();
        first.extend_from_slice(&bin[..100]);
        let mut want_stream = want[..3].to_vec();
        want_stream.extend([Ev::Binary(first), Ev::Pong(b"pong!".to_vec()), Ev::Binary(bin[100..].to_vec())]);
        want_stream.extend_from_slice(&want[6..]);
        for cut in 0..=wire.len() {
            let mut s = WsSession::new(limits(1 << 20), Delivery::StreamBinary, None);
            let (evs, _) = drive(&mut s, &wire, &[cut]);
            assert_eq!(merge(evs), want_stream, "stream cut {cut}");
        }
        let mut s = WsSession::new(limits(1 << 20), Delivery::StreamBinary, None);
        assert_eq!(merge(drive(&mut s, &wire, &all).0), want_stream);
    }

    #[test]
    fn stream_binary_hands_out_chunks_as_they_arrive() {
        let data: Vec<u8> = (0..1000).map(|i| (i * 3) as u8).collect();
        let wire = cframe(0x82, &data);
        let mut s = WsSession::new(limits(10), Delivery::StreamBinary, None);
        let mut out = Vec::new();
        // header (4 + 4 key) + 10 payload bytes present
        let mut part = wire[..18].to_vec();
        let (n, ev) = s.read(&mut part, &mut out).unwrap();
        assert_eq!(n, 18);
        assert_eq!(ev, Some(Event::Binary(&data[..10])));
        let mut rest = wire[18..].to_vec();
        let rest_len = rest.len();
        let (n, ev) = s.read(&mut rest, &mut out).unwrap();
        assert_eq!(n, rest_len);
        assert_eq!(ev.map(own), Some(Ev::Binary(data[10..].to_vec())));
        // the message cap does not apply to streamed binary, but does to text
        let mut s = WsSession::new(limits(10), Delivery::StreamBinary, None);
        assert_eq!(drive(&mut s, &cframe(0x81, b"0123456789a"), &[]).0, [Ev::Err(1009)]);
    }

    #[test]
    fn protocol_errors_have_exact_codes() {
        let mut cases: Vec<(&str, Vec<u8>, u16)> = vec![
            ("unmasked", vec![0x82, 0x00], 1002),
            ("rsv1 no ext", cframe(0xc1, b"x"), 1002),
            ("rsv2", cframe(0xa1, b"x"), 1002),
            ("rsv3", cframe(0x91, b"x"), 1002),
            ("ping 126", cframe(0x89, &[0u8; 126]), 1002),
            ("fragmented ping", cframe(0x09, b"x"), 1002),
            ("lone continuation", cframe(0x80, b"x"), 1002),
            ("lone continuation no fin", cframe(0x00, b"x"), 1002),
            ("bad utf8", cframe(0x81, &[0xce, 0xba, 0xed, 0xa0, 0x80]), 1007),
            ("close 1 byte", cframe(0x88, &[0x03]), 1002),
            ("close bad reason", cframe(0x88, &[0x03, 0xe8, 0xff]), 1007),
            ("too big", cframe(0x82, &[0u8; 1001]), 1009),
            ("text too big", cframe(0x81, &[b'a'; 1001]), 1009),
            ("64-bit msb", vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4], 1002),
        ];
        for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            cases.push(("reserved opcode", cframe(0x80 | op, b""), 1002));
        }
        let mut w = cframe(0x01, b"abc");
        w.extend(cframe(0x81, b"def"));
        cases.push(("text inside fragmented", w, 1002));
        let mut w = cframe(0x02, &[1; 600]);
        w.extend(cframe(0x80, &[1; 401]));
        cases.push(("fragments too big", w, 1009));
        for code in [0u16, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            let b = code.to_be_bytes();
            cases.push(("invalid close code", cframe(0x88, &b), 1002));
        }
        for (name, wire, code) in cases {
            let mut s = WsSession::new(limits(1000), Delivery::Whole, None);
            let (evs, _) = drive(&mut s, &wire, &[]);
            assert_eq!(evs, [Ev::Err(code)], "{name}");
        }
    }

    #[test]
    fn valid_close_codes_are_echoed() {
        for code in [1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999] {
            let b = code.to_be_bytes();
            let mut s = session();
            let (evs, out) = drive(&mut s, &cframe(0x88, &[b[0], b[1], b'o', b'k']), &[]);
            assert_eq!(evs, [Ev::Close(code, "ok".into())]);
            assert_eq!(out, [0x88, 2, b[0], b[1]]);
            assert!(s.close_received() && s.close_sent());
        }
        // Empty close: reported as 1005, answered with an empty close.
        let mut s = session();
        let (evs, out) = drive(&mut s, &cframe(0x88, b""), &[]);
        assert_eq!((evs, out), (vec![Ev::Close(1005, String::new())], vec![0x88, 0]));
    }

    #[test]
    fn nothing_after_close() {
        let mut w = cframe(0x88, &[0x03, 0xe8]);
        w.extend(cframe(0x81, b"late"));
        w.extend(cframe(0x89, b"late"));
        let mut s = session();
        let (evs, out) = drive(&mut s, &w, &[]);
        assert_eq!(evs, [Ev::Close(1000, String::new())]);
        assert_eq!(out, [0x88, 2, 0x03, 0xe8]);
        let mut more = cframe(0x81, b"x");
        let mut out = Vec::new();
        let more_len = more.len();
        assert_eq!(s.read(&mut more, &mut out).unwrap(), (more_len, None));
        assert!(out.is_empty());
    }

    #[test]
    fn our_close_first_then_peer_close() {
        let mut s = session();
        let mut out = Vec::new();
        s.send_close(1001, "going", &mut out);
        s.send_close(1000, "again", &mut out); // at most one Close
        assert_eq!(out, [0x88, 7, 0x03, 0xe9, b'g', b'o', b'i', b'n', b'g']);
        out.clear();
        s.send_text("dropped", &mut out);
        s.send_ping(b"dropped", &mut out);
        assert!(out.is_empty());
        // Peer's ping is reported but not answered after our Close; its
        // Close is reported and not echoed.
        let mut w = cframe(0x89, b"x");
        w.extend(cframe(0x88, &[0x03, 0xe8]));
        let (evs, out) = drive(&mut s, &w, &[]);
        assert_eq!(evs, [Ev::Ping, Ev::Close(1000, String::new())]);
        assert!(out.is_empty());
    }

    #[test]
    fn close_reason_is_cut_on_a_char_boundary() {
        // 122 ASCII bytes then "é" (2 bytes) would make 124 > 123.
        let reason = format!("{}é and more", "a".repeat(122));
        let mut out = Vec::new();
        session().send_close(1000, &reason, &mut out);
        assert_eq!(out[1] as usize, 2 + 122);
        assert_eq!(out.len(), 2 + 2 + 122);
        let mut out = Vec::new();
        session().send_close(1000, &"b".repeat(200), &mut out);
        assert_eq!(out[1], 125);
        let mut out = Vec::new();
        session().send_close(1006, "x", &mut out);
        assert_eq!(out, [0x88, 0]);
    }

    #[test]
    fn send_frames_are_unmasked_and_minimal() {
        let mut s = session();
        let mut out = Vec::new();
        s.send_text("Hello", &mut out);
        assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        out.clear();
        s.send_binary(&[7; 256], &mut out);
        assert_eq!(&out[..4], &[0x82, 0x7e, 1, 0]);
        assert_eq!(out.len(), 260);
        out.clear();
        s.send_ping(&[1; 200], &mut out);
        assert_eq!(&out[..2], &[0x89, 125]);
    }

    #[test]
    fn utf8_across_fragments() {
        // Valid: 𝄞 (f0 9d 84 9e) split 1|2|1 over three frames.
        let mut w = cframe(0x01, &[b'a', 0xf0]);
        w.extend(cframe(0x00, &[0x9d, 0x84]));
        w.extend(cframe(0x80, &[0x9e, b'z']));
        assert_eq!(run(&w), [Ev::Text("a𝄞z".into())]);
        // Truncated at the end of the message → 1007.
        let mut w = cframe(0x01, &[b'a', 0xf0]);
        w.extend(cframe(0x80, &[0x9d, 0x84]));
        assert_eq!(run(&w), [Ev::Err(1007)]);
        // Invalid across fragments (ed | a0 80 = surrogate).
        let mut w = cframe(0x01, &[0xed]);
        w.extend(cframe(0x80, &[0xa0, 0x80]));
        assert_eq!(run(&w), [Ev::Err(1007)]);
    }

    #[test]
    fn invalid_utf8_fails_fast() {
        // First fragment invalid: error before the rest arrives (Autobahn 6.4.1).
        let mut s = session();
        let (evs, _) = drive(&mut s, &cframe(0x01, &[b'k', 0xf4, 0x90, 0x80]), &[]);
        assert_eq!(evs, [Ev::Err(1007)]);
        // Inside one frame that has only partly arrived (Autobahn 6.4.3/4).
        let wire = cframe(0x81, &[0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xf4, 0x90, 0x80, 0x80, b'e', b'd']);
        let mut s = session();
        let mut part = wire[..6 + 9].to_vec(); // up to and including 0x90
        let mut out = Vec::new();
        assert_eq!(s.read(&mut part, &mut out).unwrap_err().code, 1007);
    }

    #[test]
    fn ping_interleaved_in_fragmented_binary() {
        let mut w = cframe(0x02, b"ab");
        w.extend(cframe(0x89, b"1"));
        w.extend(cframe(0x00, b"cd"));
        w.extend(cframe(0x89, b"2"));
        w.extend(cframe(0x80, b"ef"));
        let (evs, out) = drive(&mut session(), &w, &[]);
        assert_eq!(evs, [Ev::Ping, Ev::Ping, Ev::Binary(b"abcdef".to_vec())]);
        assert_eq!(out, [0x8a, 1, b'1', 0x8a, 1, b'2']);
    }

    fn deflate_session(offer: &str, max: usize, d: Delivery) -> WsSession {
        let (p, _) = negotiate(offer).unwrap();
        WsSession::new(limits(max), d, Some(p))
    }

    #[test]
    fn rfc7692_frames_through_the_session() {
        let mut s = deflate_session("permessage-deflate", 1 << 20, Delivery::Whole);
        assert!(s.deflate_enabled());
        // §7.2.3.1 single frame, then §7.2.3.2 the second "Hello" using the
        // shared window, then the fragmented form of §7.2.3.1.
        let mut w = cframe(0xc1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        w.extend(cframe(0xc1, &[0xf2, 0x00, 0x11, 0x00, 0x00]));
        let (evs, _) = drive(&mut s, &w, &[]);
        assert_eq!(evs, [Ev::Text("Hello".into()), Ev::Text("Hello".into())]);
        let mut s = deflate_session("permessage-deflate", 1 << 20, Delivery::StreamBinary);
        let mut w = cframe(0x41, &[0xf2, 0x48, 0xcd]);
        w.extend(cframe(0x80, &[0xc9, 0xc9, 0x07, 0x00]));
        for cut in 0..=w.len() {
            let mut s2 = deflate_session("permessage-deflate", 1 << 20, Delivery::Whole);
            assert_eq!(drive(&mut s2, &w, &[cut]).0, [Ev::Text("Hello".into())], "cut {cut}");
        }
        // compressed binary in StreamBinary mode is delivered whole
        let mut w = cframe(0x42, &[0xf2, 0x48, 0xcd]);
        w.extend(cframe(0x80, &[0xc9, 0xc9, 0x07, 0x00]));
        assert_eq!(drive(&mut s, &w, &[5, 9]).0, [Ev::Binary(b"Hello".to_vec())]);
        // RSV1 on a continuation or a control frame is still an error
        let mut w = cframe(0x41, &[0xf2, 0x48, 0xcd]);
        w.extend(cframe(0xc0, &[0xc9, 0xc9, 0x07, 0x00]));
        assert_eq!(run_with(&mut deflate_session("permessage-deflate", 100, Delivery::Whole), &w), [Ev::Err(1002)]);
        let w = cframe(0xc9, b"");
        assert_eq!(run_with(&mut deflate_session("permessage-deflate", 100, Delivery::Whole), &w), [Ev::Err(1002)]);
    }

    fn run_with(s: &mut WsSession, w: &[u8]) -> Vec<Ev> {
        drive(s, w, &[]).0
    }

    /// Decode our own server frames as a client would (unmasked, RFC 7692).
    fn client_decode(wire: &[u8], d: &mut Decompressor) -> Vec<(u8, Vec<u8>)> {
        let mut msgs = Vec::new();
        let mut p = 0;
        while p < wire.len() {
            let (h, n) = frame::parse_header(&wire[p..]).unwrap().unwrap();
            assert!(h.mask.is_none() && h.fin);
            let body = &wire[p + n..p + n + h.payload_len as usize];
            let data = if h.rsv1 {
                let mut o = Vec::new();
                d.inflate(body, &mut o, 1 << 24).unwrap();
                d.finish_message(&mut o, 1 << 24).unwrap();
                o
            } else {
                body.to_vec()
            };
            msgs.push((h.opcode, data));
            p += n + h.payload_len as usize;
        }
        msgs
    }

    /// RFC 7692 §6.1: a message may go uncompressed (RSV1 clear) between
    /// compressed ones; the client's inflater, fed only the compressed ones,
    /// still decodes everything after it with context takeover. The same
    /// through `send_with` (`Body::Raw` copied from the scratch as it is,
    /// `Body::Deflate` deflated from it).
    #[test]
    fn uncompressed_message_between_compressed_ones() {
        let (p, _) = negotiate("permessage-deflate").unwrap();
        let mut server = WsSession::new(limits(1 << 20), Delivery::Whole, Some(p));
        // Long enough for the deflater to be made (MAKE_DEFLATER_AT).
        let text = b"the same words ".repeat(100);
        let jpeg: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let mut out = Vec::new();
        server.send_binary(&text, &mut out);
        server.send_binary_uncompressed(&jpeg, &mut out);
        server.send_binary(&text, &mut out);
        let mut scratch = Vec::new();
        let mut with = |body: Body, data: &[u8], out: &mut Vec<u8>| {
            let p = server.tx.send_with(OP_BINARY, out, &mut scratch, |v| {
                v.extend_from_slice(data);
                body
            });
            let p = p.unwrap();
            assert_eq!(p.body, data.len());
            out.drain(p.at..p.at + p.gap);
        };
        with(Body::Raw, &jpeg, &mut out);
        with(Body::Deflate, &text, &mut out);
        let mut d = Decompressor::new(&p);
        let msgs = client_decode(&out, &mut d);
        let want = [&text, &jpeg, &text, &jpeg, &text].map(|m| (OP_BINARY, m.clone()));
        assert_eq!(msgs, want);
        // The raw ones really are raw: RSV1 clear, the payload as given.
        let mut at = 0;
        let mut rsv1 = Vec::new();
        while at < out.len() {
            let (h, n) = frame::parse_header(&out[at..]).unwrap().unwrap();
            rsv1.push(h.rsv1);
            if !h.rsv1 {
                assert_eq!(h.payload_len, 5000);
            }
            at += n + h.payload_len as usize;
        }
        assert_eq!(rsv1, [true, false, true, false, true]);
    }

    #[test]
    fn deflate_round_trip_through_sessions() {
        for offer in [
            "permessage-deflate",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=8",
        ] {
            let (p, _) = negotiate(offer).unwrap();
            let mut server = WsSession::new(limits(1 << 20), Delivery::Whole, Some(p));
            // client → server: compress as the client, mask, feed.
            // The client honours client_no_context_takeover if we agreed it.
            let cp =
                DeflateParams { server_no_context_takeover: p.client_no_context_takeover, ..DeflateParams::default() };
            let mut client_comp = Compressor::new(&cp).unwrap();
            let texts = [
                "Hello, world! Hello, world! Hello, world!",
                "Hello, world! again and again",
                "short",
                "κόσμε κόσμε κόσμε κόσμε κόσμε",
            ];
            let mut wire = Vec::new();
            for t in texts {
                wire.extend(cframe(0xc1, client_comp.compress(t.as_bytes())));
            }
            let (evs, _) = drive(&mut server, &wire, &[7, 30, 31]);
            let want: Vec<Ev> = texts.iter().map(|t| Ev::Text(t.to_string())).collect();
            assert_eq!(evs, want, "{offer}");
            // server → client
            let mut out = Vec::new();
            for t in texts {
                server.send_text(t, &mut out);
            }
            let big: Vec<u8> = (0..200_000u32).map(|i| (i / 100) as u8).collect();
            server.send_binary(&big, &mut out);
            let mut d = Decompressor::new(&p);
            let msgs = client_decode(&out, &mut d);
            assert_eq!(msgs.len(), 5);
            for (i, t) in texts.iter().enumerate() {
                assert_eq!(msgs[i], (OP_TEXT, t.as_bytes().to_vec()), "{offer}");
            }
            assert_eq!(msgs[4], (OP_BINARY, big.clone()));
            let compressed = out.len() < big.len() / 4;
            assert_eq!(compressed, p.server_max_window_bits > 8, "{offer}: {} bytes", out.len());
        }
    }

    #[test]
    fn deflate_bomb_is_1009_with_bounded_memory() {
        let zeros = vec![0u8; 10 << 20];
        let mut c = Compressor::new(&DeflateParams { level: 9, ..DeflateParams::default() }).unwrap();
        let z = c.compress(&zeros).to_vec();
        for delivery in [Delivery::Whole, Delivery::StreamBinary] {
            for op in [0xc1u8, 0xc2] {
                let mut s = deflate_session("permessage-deflate", 1 << 20, delivery);
                let wire = cframe(op, &z);
                let (evs, _) = drive(&mut s, &wire, &[100, 5000]);
                assert_eq!(evs, [Ev::Err(1009)]);
                assert!(s.rx.buf.capacity() <= (1 << 20) + 1, "{}", s.rx.buf.capacity());
            }
        }
        // The same bomb split over many fragments.
        let mut s = deflate_session("permessage-deflate", 1 << 20, Delivery::Whole);
        let mut wire = cframe(0x42, &z[..10]);
        for chunk in z[10..].chunks(1000) {
            wire.extend(cframe(0x00, chunk));
        }
        wire.extend(cframe(0x80, b""));
        assert_eq!(drive(&mut s, &wire, &[]).0, [Ev::Err(1009)]);
    }

    #[test]
    fn whole_buffer_is_reused() {
        let mut s = session();
        let mut w = Vec::new();
        for _ in 0..10 {
            w.extend(cframe(0x02, &[1; 1000]));
            w.extend(cframe(0x80, &[2; 1000]));
        }
        let (evs, _) = drive(&mut s, &w, &[]);
        assert_eq!(evs.len(), 10);
        assert!(s.rx.buf.capacity() >= 2000 && s.rx.buf.capacity() <= 8192, "{}", s.rx.buf.capacity());
    }

    #[test]
    fn huge_announced_length_reserves_nothing() {
        // 2^40-byte binary frame announced, 3 bytes sent, streaming cap off.
        let mut w = vec![0x02, 0xff, 0, 0, 1, 0, 0, 0, 0, 0];
        w.extend_from_slice(&KEY);
        w.extend_from_slice(&[1, 2, 3]);
        let mut s = WsSession::new(limits(1 << 20), Delivery::Whole, None);
        assert_eq!(drive(&mut s, &w, &[]).0, [Ev::Err(1009)]);
        assert_eq!(s.rx.buf.capacity(), 0);
    }

    /// In-memory duplex for driving tungstenite as an independent client.
    #[derive(Default)]
    struct Pipe {
        to_client: std::collections::VecDeque<u8>,
        from_client: Vec<u8>,
    }

    impl std::io::Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.to_client.is_empty() {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.to_client.len()).min(7); // small reads on purpose
            for (i, b) in self.to_client.drain(..n).enumerate() {
                buf[i] = b;
            }
            Ok(n)
        }
    }

    impl std::io::Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.from_client.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn interop_with_tungstenite_client() {
        use tungstenite::protocol::{Role, WebSocket};
        use tungstenite::Message;
        let mut client = WebSocket::from_raw_socket(Pipe::default(), Role::Client, None);
        let big: Vec<u8> = (0..100_000u32).map(|i| (i * 13) as u8).collect();
        client.send(Message::Text("hello from tungstenite ✓".into())).unwrap();
        client.send(Message::Binary(big.clone())).unwrap();
        client.send(Message::Ping(b"pp".to_vec())).unwrap();
        let wire = std::mem::take(&mut client.get_mut().from_client);
        let mut server = session();
        let (evs, mut out) = drive(&mut server, &wire, &[3, 100, 5000]);
        assert_eq!(evs, [Ev::Text("hello from tungstenite ✓".into()), Ev::Binary(big.clone()), Ev::Ping]);
        server.send_text("reply", &mut out);
        server.send_binary(&big, &mut out);
        server.send_close(1000, "done", &mut out);
        client.get_mut().to_client.extend(out);
        let mut got = Vec::new();
        while let Ok(m) = client.read() {
            got.push(m);
        }
        assert_eq!(got[0], Message::Pong(b"pp".to_vec()));
        assert_eq!(got[1], Message::Text("reply".into()));
        assert_eq!(got[2], Message::Binary(big));
        assert!(matches!(got[3], Message::Close(Some(ref f)) if u16::from(f.code) == 1000 && f.reason == "done"));
    }

    /// Remove the header room `send_with` did not use, as the caller's buffer does.
    fn close(out: &mut Vec<u8>, p: Placed) {
        out.drain(p.at..p.at + p.gap);
    }

    #[test]
    fn send_with_writes_minimal_frames_in_place() {
        for len in [0usize, 1, 125, 126, 65535, 65536, 70000] {
            let body: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
            let mut s = session();
            let mut out = b"prefix".to_vec();
            let mut scratch = Vec::new();
            let p =
                s.tx.send_with(OP_BINARY, &mut out, &mut scratch, |v| {
                    v.extend_from_slice(&body);
                    true
                })
                .unwrap();
            assert_eq!((p.at, p.payload), (6, len));
            assert!(scratch.is_empty(), "no intermediate copy without deflate");
            close(&mut out, p);
            let mut want = b"prefix".to_vec();
            s.send_binary(&body, &mut want);
            assert_eq!(out, want, "len {len}");
        }
        // "nothing to send" leaves `out` as it was.
        let mut out = b"x".to_vec();
        assert_eq!(session().tx.send_with(OP_BINARY, &mut out, &mut Vec::new(), |_| false), None);
        assert_eq!(out, b"x");
    }

    #[test]
    fn send_with_deflates_through_scratch() {
        let mut s = deflate_session("permessage-deflate", 1 << 20, Delivery::Whole);
        assert!(!s.deflate_allocated(), "deflate state is made when first needed");
        // Short messages before the first long one go uncompressed and make none.
        let mut out = Vec::new();
        s.send_text("status: connecting to the VNC server", &mut out);
        assert_eq!(out[0] & 0x40, 0, "RSV1 clear");
        assert!(!s.deflate_allocated());
        let text = "hello hello hello hello hello hello".repeat(40);
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let p =
            s.tx.send_with(OP_TEXT, &mut out, &mut scratch, |v| {
                v.extend_from_slice(text.as_bytes());
                true
            })
            .unwrap();
        assert!(s.deflate_allocated());
        close(&mut out, p);
        assert!(p.payload < text.len() / 4, "compressed");
        let mut d = Decompressor::new(&DeflateParams::default());
        assert_eq!(client_decode(&out, &mut d), [(OP_TEXT, text.into_bytes())]);
    }
}
