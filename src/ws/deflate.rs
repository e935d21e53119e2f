//! permessage-deflate (RFC 7692): offer negotiation and the per-connection
//! compressor/decompressor pair.
//!
//! Negotiation (§5, §7.1): the client's offers are tried in order and the
//! first valid one is accepted. An offer is declined (and the next one tried)
//! when it has an unknown parameter, a parameter twice, a value where none is
//! allowed, or a window-bits value outside `8..=15` (§7.1.2: `1*DIGIT`
//! with no leading zero; a quoted-string value is unquoted first, RFC 6455
//! §9.1). The response echoes `server_no_context_takeover`,
//! `client_no_context_takeover` and `server_max_window_bits` when offered;
//! `client_max_window_bits` is never put in the response (the server MAY
//! omit it, §7.1.2.2) because our inflater always runs with a 15-bit window,
//! which decodes data made with any smaller window.
//!
//! **Window bits 8.** zlib cannot *compress* with a 256-byte window (raw
//! deflate with windowBits 8 is rejected or silently raised to 9, and a 9-bit
//! window may emit distances the peer's 8-bit inflater cannot resolve).
//! Answering `server_max_window_bits=9` to an offer of 8 is not allowed (the
//! response value must not exceed the offer, §7.1.2.1). Our choice: accept
//! the offer as `server_max_window_bits=8` and simply **send every message
//! uncompressed** (RSV1 clear), which §6 permits per message; we still
//! inflate what the client sends. This is spec-correct and keeps clients
//! that ask for 8 (e.g. Autobahn 13.3/13.5) on the extension.
//!
//! Framing (§7.2.1/§7.2.2): outgoing messages are deflated with a sync
//! flush and the trailing `00 00 ff ff` is removed; incoming message payloads
//! are inflated with `00 00 ff ff` appended at the end of the message.
//! Context takeover: our compressor resets after each message under
//! `server_no_context_takeover`; our inflater always keeps its window (valid
//! whether or not the client resets, see `DeflateParams`).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::{close, WsError};

/// Parameters agreed in the handshake (server view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// We reset our compressor after every message (§7.1.1.1).
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message (§7.1.1.2).
    /// Our inflater keeps its window regardless: a fresh deflate stream never
    /// refers back, so keeping the window decodes it identically, and a
    /// client that forgets to reset still decodes correctly.
    pub client_no_context_takeover: bool,
    /// LZ77 window of our compressor, 8..=15 (8: we send uncompressed).
    pub server_max_window_bits: u8,
    /// Window of our inflater; always 15 (see module docs).
    pub client_max_window_bits: u8,
    /// zlib level for outgoing messages (0..=9). Default 1: this is a
    /// single-threaded gateway, and level 1 keeps most of the gain.
    pub level: u32,
}

impl Default for DeflateParams {
    fn default() -> Self {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            level: 1,
        }
    }
}

const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Split `s` on `sep`, ignoring separators inside double quotes.
fn split_unquoted(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    let mut parts = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if b == b'"' {
            in_quotes = true;
        } else if b == sep {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    parts.push(&s[start..]);
    parts.into_iter()
}

/// A window-bits value: `8..=15`, digits only, no leading zero (§7.1.2.1).
fn parse_bits(v: &str) -> Option<u8> {
    let b = v.as_bytes();
    let ok = match b {
        [d] => (b'8'..=b'9').contains(d),
        [b'1', d] => (b'0'..=b'5').contains(d),
        _ => false,
    };
    if ok {
        v.parse().ok()
    } else {
        None
    }
}

/// Strip one layer of double quotes (RFC 6455 §9.1 allows a quoted-string
/// whose content must then match the token grammar).
fn unquote(v: &str) -> Option<&str> {
    if let Some(inner) = v.strip_prefix('"') {
        let inner = inner.strip_suffix('"')?;
        if inner.contains('"') || inner.contains('\\') {
            return None;
        }
        Some(inner)
    } else {
        Some(v)
    }
}

/// Validate one offer (`permessage-deflate; p; p=v`); None = decline it.
fn accept_offer(offer: &str) -> Option<(DeflateParams, String)> {
    let mut parts = split_unquoted(offer, b';');
    let name = parts.next()?.trim();
    if !name.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut p = DeflateParams::default();
    let (mut snct, mut cnct, mut smwb, mut cmwb) = (false, false, None::<u8>, false);
    for param in parts {
        let (k, v) = match param.split_once('=') {
            Some((k, v)) => (k.trim(), Some(unquote(v.trim())?)),
            None => (param.trim(), None),
        };
        if k.eq_ignore_ascii_case("server_no_context_takeover") {
            if snct || v.is_some() {
                return None;
            }
            snct = true;
        } else if k.eq_ignore_ascii_case("client_no_context_takeover") {
            if cnct || v.is_some() {
                return None;
            }
            cnct = true;
        } else if k.eq_ignore_ascii_case("server_max_window_bits") {
            if smwb.is_some() {
                return None;
            }
            smwb = Some(parse_bits(v?)?);
        } else if k.eq_ignore_ascii_case("client_max_window_bits") {
            if cmwb {
                return None;
            }
            if let Some(v) = v {
                parse_bits(v)?;
            }
            cmwb = true;
        } else {
            return None; // §7.1: unknown parameter → decline this offer
        }
    }
    let mut resp = String::from("permessage-deflate");
    if snct {
        p.server_no_context_takeover = true;
        resp.push_str("; server_no_context_takeover");
    }
    if cnct {
        p.client_no_context_takeover = true;
        resp.push_str("; client_no_context_takeover");
    }
    if let Some(bits) = smwb {
        p.server_max_window_bits = bits;
        resp.push_str("; server_max_window_bits=");
        resp.push_str(&bits.to_string());
    }
    Some((p, resp))
}

/// Pick the first acceptable permessage-deflate offer.
///
/// `offer_header`: every `Sec-WebSocket-Extensions` value of the request,
/// joined by ", ". Returns the agreed parameters and the value for the
/// response's `Sec-WebSocket-Extensions` header, or None to run without it.
pub fn negotiate(offer_header: &str) -> Option<(DeflateParams, String)> {
    split_unquoted(offer_header, b',').find_map(|offer| accept_offer(offer.trim()))
}

fn inflate_error() -> WsError {
    WsError { code: close::INVALID_PAYLOAD, reason: "invalid deflate data" }
}

fn too_big() -> WsError {
    WsError { code: close::MESSAGE_TOO_BIG, reason: "message too big" }
}

/// Grow `v` (whose spare capacity is exhausted) toward at most `limit` bytes
/// of capacity, doubling, so a bomb can never make us reserve past the cap.
pub(crate) fn grow_capped(v: &mut Vec<u8>, limit: usize) {
    let target = v.capacity().saturating_mul(2).max(v.len() + 4096).min(limit);
    if target > v.len() {
        v.reserve_exact(target - v.len());
    }
}

/// Inflater for client → server messages.
pub struct Decompressor {
    d: Decompress,
}

impl Decompressor {
    pub fn new(p: &DeflateParams) -> Self {
        let _ = p; // every agreed client window (≤ 15 bits) decodes with 15
        Decompressor { d: Decompress::new_with_window_bits(false, 15) }
    }

    /// Inflate `input` (part of one message) onto `out`. Fails with 1009 as
    /// soon as `out` would exceed `max` bytes; `out` never gets capacity
    /// beyond `max + 1`.
    pub fn inflate(&mut self, mut input: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), WsError> {
        if input.is_empty() {
            return Ok(());
        }
        loop {
            if out.len() == out.capacity() {
                if out.len() > max {
                    return Err(too_big());
                }
                grow_capped(out, max.saturating_add(1));
            }
            let spare = out.capacity() - out.len();
            let (in0, out0) = (self.d.total_in(), self.d.total_out());
            let status = self.d.decompress_vec(input, out, FlushDecompress::None).map_err(|_| inflate_error())?;
            let used = (self.d.total_in() - in0) as usize;
            let produced = (self.d.total_out() - out0) as usize;
            input = input.get(used..).unwrap_or(&[]);
            if out.len() > max {
                return Err(too_big());
            }
            if status == Status::StreamEnd {
                // A block with BFINAL set ends the deflate stream (RFC 7692
                // §7.2.3.4); whatever follows starts a new one.
                self.d.reset(false);
            }
            if produced < spare && input.is_empty() {
                return Ok(());
            }
            if used == 0 && produced == 0 && status != Status::StreamEnd {
                // No progress with output room and input left: corrupt.
                return Err(inflate_error());
            }
        }
    }

    /// End of message: feed the removed `00 00 ff ff` tail (§7.2.2). The
    /// window is kept even under `client_no_context_takeover` (see
    /// [`DeflateParams::client_no_context_takeover`]).
    pub fn finish_message(&mut self, out: &mut Vec<u8>, max: usize) -> Result<(), WsError> {
        self.inflate(&TAIL, out, max)
    }
}

/// Deflater for server → client messages.
pub struct Compressor {
    c: Compress,
    no_context_takeover: bool,
    /// Output of [`Compressor::compress`] (tests and one-off callers).
    buf: Vec<u8>,
}

impl Compressor {
    /// None when the negotiated window is 8 bits: then we send uncompressed
    /// (see module docs).
    pub fn new(p: &DeflateParams) -> Option<Self> {
        if p.server_max_window_bits < 9 {
            return None;
        }
        let bits = p.server_max_window_bits.min(15);
        Some(Compressor {
            c: Compress::new_with_window_bits(Compression::new(p.level.min(9)), false, bits),
            no_context_takeover: p.server_no_context_takeover,
            buf: Vec::new(),
        })
    }

    /// Compress one whole message; returns the frame payload (tail removed,
    /// §7.2.1). The returned slice lives in a buffer reused across messages.
    pub fn compress(&mut self, data: &[u8]) -> &[u8] {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        self.compress_into(data, &mut buf);
        self.buf = buf;
        &self.buf
    }

    /// Compress one whole message and append the frame payload (tail
    /// removed, §7.2.1) to `out`. Returns the payload length.
    pub fn compress_into(&mut self, data: &[u8], out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.reserve(data.len() / 2 + 64);
        let mut input = data;
        loop {
            if out.capacity() - out.len() < 64 {
                let extra = ((out.len() - start) / 2).max(input.len() / 2 + 64);
                out.reserve(extra);
            }
            let in0 = self.c.total_in();
            if self.c.compress_vec(input, out, FlushCompress::Sync).is_err() {
                // Only possible on misuse of the zlib stream; start afresh.
                self.c.reset();
                break;
            }
            let used = (self.c.total_in() - in0) as usize;
            input = input.get(used..).unwrap_or(&[]);
            // A sync flush is complete once zlib leaves output space unused.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - 4);
        }
        if out.len() == start {
            // zlib emits nothing for an empty sync flush right after another;
            // a lone empty stored-block header is the canonical empty
            // payload (§7.2.3.6): "00" + tail = an empty stored block.
            out.push(0x00);
        }
        if self.no_context_takeover {
            self.c.reset();
        }
        out.len() - start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(d: &mut Decompressor, msg: &[u8]) -> Result<Vec<u8>, WsError> {
        let mut out = Vec::new();
        d.inflate(msg, &mut out, 1 << 20)?;
        d.finish_message(&mut out, 1 << 20)?;
        Ok(out)
    }

    #[test]
    fn negotiate_table() {
        let pmd = "permessage-deflate";
        let cases: &[(&str, Option<&str>)] = &[
            ("permessage-deflate", Some(pmd)),
            ("PerMessage-Deflate", Some(pmd)),
            ("permessage-deflate; client_max_window_bits", Some(pmd)),
            ("permessage-deflate; client_max_window_bits=10", Some(pmd)),
            ("permessage-deflate; client_max_window_bits=\"10\"", Some(pmd)),
            ("permessage-deflate; server_no_context_takeover", Some("permessage-deflate; server_no_context_takeover")),
            ("permessage-deflate;client_no_context_takeover", Some("permessage-deflate; client_no_context_takeover")),
            (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10",
                Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"),
            ),
            ("permessage-deflate; server_max_window_bits=8", Some("permessage-deflate; server_max_window_bits=8")),
            ("permessage-deflate; server_max_window_bits=15", Some("permessage-deflate; server_max_window_bits=15")),
            // invalid offers are declined
            ("permessage-deflate; server_max_window_bits", None),
            ("permessage-deflate; server_max_window_bits=7", None),
            ("permessage-deflate; server_max_window_bits=16", None),
            ("permessage-deflate; server_max_window_bits=08", None),
            ("permessage-deflate; server_max_window_bits=1a", None),
            ("permessage-deflate; client_max_window_bits=0", None),
            ("permessage-deflate; server_no_context_takeover=1", None),
            ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
            ("permessage-deflate; client_max_window_bits; client_max_window_bits=9", None),
            ("permessage-deflate; foo", None),
            ("x-webkit-deflate-frame", None),
            ("", None),
            // the next offer is tried when one is declined
            (
                "permessage-deflate; server_max_window_bits=99, permessage-deflate; client_no_context_takeover",
                Some("permessage-deflate; client_no_context_takeover"),
            ),
            ("foo, permessage-deflate; server_max_window_bits=\"12\"", Some("permessage-deflate; server_max_window_bits=12")),
            // Autobahn 13.7-style list
            (
                "permessage-deflate; client_no_context_takeover; client_max_window_bits, permessage-deflate",
                Some("permessage-deflate; client_no_context_takeover"),
            ),
        ];
        for (offer, want) in cases {
            let got = negotiate(offer).map(|(_, r)| r);
            assert_eq!(got.as_deref(), *want, "offer {offer:?}");
        }
        let (p, _) = negotiate("permessage-deflate; server_no_context_takeover; server_max_window_bits=9").unwrap();
        assert!(p.server_no_context_takeover && !p.client_no_context_takeover);
        assert_eq!((p.server_max_window_bits, p.client_max_window_bits), (9, 15));
    }

    #[test]
    fn rfc7692_hello_vectors() {
        let p = DeflateParams::default();
        // §7.2.3.1: "Hello" in one compressed frame.
        let mut d = Decompressor::new(&p);
        assert_eq!(inflate_all(&mut d, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]).unwrap(), b"Hello");
        // §7.2.3.2: the second "Hello" refers back into the shared window.
        assert_eq!(inflate_all(&mut d, &[0xf2, 0x00, 0x11, 0x00, 0x00]).unwrap(), b"Hello");
        // §7.2.3.3: a stored (uncompressed) DEFLATE block.
        let mut d = Decompressor::new(&p);
        let stored = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
        assert_eq!(inflate_all(&mut d, &stored).unwrap(), b"Hello");
        // §7.2.3.4: BFINAL set.
        let mut d = Decompressor::new(&p);
        assert_eq!(inflate_all(&mut d, &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]).unwrap(), b"Hello");
        // §7.2.3.5: two DEFLATE blocks in one message.
        let mut d = Decompressor::new(&p);
        let two = [0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate_all(&mut d, &two).unwrap(), b"Hello");
    }

    #[test]
    fn compressor_matches_rfc_hello() {
        let mut c = Compressor::new(&DeflateParams::default()).unwrap();
        assert_eq!(c.compress(b"Hello"), &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    }

    fn round_trip(p: DeflateParams) -> Vec<usize> {
        let mut c = Compressor::new(&p).unwrap();
        let mut d = Decompressor::new(&p);
        let msgs: Vec<Vec<u8>> = vec![
            b"Hello".to_vec(),
            b"Hello".to_vec(),
            Vec::new(),
            (0..100_000u32).map(|i| (i % 251) as u8).collect(),
            b"Hello, Hello, Hello".to_vec(),
        ];
        let mut sizes = Vec::new();
        for m in &msgs {
            let z = c.compress(m).to_vec();
            sizes.push(z.len());
            assert_eq!(&inflate_all(&mut d, &z).unwrap(), m);
        }
        sizes
    }

    #[test]
    fn round_trip_with_and_without_context_takeover() {
        let with = round_trip(DeflateParams::default());
        let without = round_trip(DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..DeflateParams::default()
        });
        // With takeover the repeated "Hello" is a back-reference, so smaller.
        assert!(with[1] < without[1], "{with:?} vs {without:?}");
        assert_eq!(without[0], without[1]);
        let small = round_trip(DeflateParams { server_max_window_bits: 9, level: 9, ..DeflateParams::default() });
        assert_eq!(small.len(), 5);
    }

    #[test]
    fn window_bits_8_sends_uncompressed() {
        let (p, _) = negotiate("permessage-deflate; server_max_window_bits=8").unwrap();
        assert!(Compressor::new(&p).is_none());
    }

    #[test]
    fn bomb_hits_cap_without_unbounded_allocation() {
        let zeros = vec![0u8; 10 << 20];
        let mut c = Compressor::new(&DeflateParams { level: 9, ..DeflateParams::default() }).unwrap();
        let z = c.compress(&zeros).to_vec();
        assert!(z.len() < 20_000, "{}", z.len());
        let mut d = Decompressor::new(&DeflateParams::default());
        let mut out = Vec::new();
        let max = 1 << 20;
        let e = d.inflate(&z, &mut out, max).unwrap_err();
        assert_eq!(e.code, close::MESSAGE_TOO_BIG);
        assert!(out.capacity() <= max + 1, "{}", out.capacity());
    }

    #[test]
    fn exact_cap_is_allowed() {
        let data = vec![7u8; 5000];
        let mut c = Compressor::new(&DeflateParams::default()).unwrap();
        let z = c.compress(&data).to_vec();
        let mut d = Decompressor::new(&DeflateParams::default());
        let mut out = Vec::new();
        d.inflate(&z, &mut out, 5000).unwrap();
        d.finish_message(&mut out, 5000).unwrap();
        assert_eq!(out, data);
        let mut d = Decompressor::new(&DeflateParams::default());
        let mut out = Vec::new();
        let r = d.inflate(&z, &mut out, 4999).and_then(|_| d.finish_message(&mut out, 4999));
        assert_eq!(r.unwrap_err().code, close::MESSAGE_TOO_BIG);
    }

    #[test]
    fn garbage_is_1007() {
        let mut d = Decompressor::new(&DeflateParams::default());
        let mut out = Vec::new();
        let r = d.inflate(&[0xff, 0xff, 0xff, 0xff], &mut out, 1000).and_then(|_| d.finish_message(&mut out, 1000));
        assert_eq!(r.unwrap_err().code, close::INVALID_PAYLOAD);
    }
}
