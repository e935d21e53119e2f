//! Frame header codec (RFC 6455 §5.2).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! | Masking-key (continued)       |          Payload Data         |
//! +-------------------------------- - - - - - - - - - - - - - - - +
//! ```
//!
//! `parse_header` is structural only: it never consumes a partial header and
//! rejects only what cannot be represented (a 64-bit length with the most
//! significant bit set, §5.2). Rules that depend on connection state (mask
//! required, RSV bits, opcodes, control-frame limits) are checked by the
//! session, which knows what was negotiated.

use super::{close, WsError};

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Longest header: 2 + 8 (64-bit length) + 4 (mask key).
pub const MAX_HEADER_LEN: usize = 14;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub rsv1: bool,
    pub rsv2: bool,
    pub rsv3: bool,
    /// 4-bit opcode, unvalidated (reserved values are the session's call).
    pub opcode: u8,
    /// Masking key, present iff the MASK bit was set.
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

impl FrameHeader {
    /// Control frames have the high opcode bit set (§5.5).
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// Parse one frame header from the start of `buf`.
///
/// `Ok(None)`: not enough bytes yet (nothing consumed). `Ok(Some((h, n)))`:
/// the header occupies `buf[..n]`; the payload follows. Non-minimal length
/// encodings are accepted (the RFC's "minimal number of bytes" is a MUST for
/// the sender that a receiver gains nothing by enforcing).
pub fn parse_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, WsError> {
    let (b0, b1) = match buf {
        [b0, b1, ..] => (*b0, *b1),
        _ => return Ok(None),
    };
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7f;
    let ext = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let n = 2 + ext + if masked { 4 } else { 0 };
    if buf.len() < n {
        return Ok(None);
    }
    let payload_len = match len7 {
        126 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let v = u64::from_be_bytes(b);
            // §5.2: "the most significant bit MUST be 0".
            if v >> 63 != 0 {
                return Err(WsError { code: close::PROTOCOL_ERROR, reason: "64-bit length with MSB set" });
            }
            v
        }
        l => u64::from(l),
    };
    let mask = if masked {
        let k = 2 + ext;
        Some([buf[k], buf[k + 1], buf[k + 2], buf[k + 3]])
    } else {
        None
    };
    Ok(Some((
        FrameHeader {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            rsv2: b0 & 0x20 != 0,
            rsv3: b0 & 0x10 != 0,
            opcode: b0 & 0x0f,
            mask,
            payload_len,
        },
        n,
    )))
}

/// Length of an unmasked (server → client, §5.1) header for `payload_len`.
#[inline]
pub fn header_len(payload_len: usize) -> usize {
    if payload_len < 126 {
        2
    } else if payload_len <= 0xffff {
        4
    } else {
        10
    }
}

/// Longest server (unmasked) header: 2 + 8 (64-bit length).
pub const MAX_SERVER_HEADER_LEN: usize = 10;

/// Append an unmasked frame header with the minimal length encoding (§5.2).
#[inline]
pub fn write_header(out: &mut Vec<u8>, fin: bool, rsv1: bool, opcode: u8, len: usize) {
    let mut h = [0u8; MAX_SERVER_HEADER_LEN];
    let n = put_header(&mut h, fin, rsv1, opcode, len);
    out.extend_from_slice(&h[..n]);
}

/// Write an unmasked frame header with the minimal length encoding (§5.2)
/// at the start of `dst` (at least [`header_len`]`(len)` bytes); returns its
/// length.
#[inline]
pub fn put_header(dst: &mut [u8], fin: bool, rsv1: bool, opcode: u8, len: usize) -> usize {
    dst[0] = (if fin { 0x80 } else { 0 }) | (if rsv1 { 0x40 } else { 0 }) | (opcode & 0x0f);
    if len < 126 {
        dst[1] = len as u8;
        2
    } else if len <= 0xffff {
        dst[1] = 126;
        dst[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        dst[1] = 127;
        dst[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_examples() {
        // §5.7 single-frame unmasked text "Hello".
        let (h, n) = parse_header(&[0x81, 0x05, 0x48]).unwrap().unwrap();
        assert_eq!((h.fin, h.opcode, h.mask, h.payload_len, n), (true, OP_TEXT, None, 5, 2));
        // masked "Hello"
        let (h, n) = parse_header(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d]).unwrap().unwrap();
        assert_eq!((h.mask, h.payload_len, n), (Some([0x37, 0xfa, 0x21, 0x3d]), 5, 6));
        // fragmented: first 0x01 (no FIN), then 0x80 continuation with FIN
        let (h, _) = parse_header(&[0x01, 0x03]).unwrap().unwrap();
        assert_eq!((h.fin, h.opcode), (false, OP_TEXT));
        let (h, _) = parse_header(&[0x80, 0x02]).unwrap().unwrap();
        assert_eq!((h.fin, h.opcode), (true, OP_CONTINUATION));
        // 256 bytes binary: 0x82 0x7E 0x0100
        let (h, n) = parse_header(&[0x82, 0x7e, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.opcode, h.payload_len, n), (OP_BINARY, 256, 4));
        // 64 KiB binary: 0x82 0x7F 0x0000000000010000
        let (h, n) = parse_header(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn every_length_form_round_trips() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 1 << 20, (1 << 32) + 5] {
            let mut out = Vec::new();
            write_header(&mut out, true, false, OP_BINARY, len);
            assert_eq!(out.len(), header_len(len), "len {len}");
            let (h, n) = parse_header(&out).unwrap().unwrap();
            assert_eq!((h.payload_len, n, h.fin, h.rsv1, h.mask), (len as u64, out.len(), true, false, None));
            // Every strict prefix is "need more".
            for cut in 0..out.len() {
                assert_eq!(parse_header(&out[..cut]).unwrap(), None);
            }
        }
    }

    #[test]
    fn header_bytes_are_minimal() {
        let mut out = Vec::new();
        write_header(&mut out, true, true, OP_TEXT, 125);
        assert_eq!(out, [0xc1, 125]);
        out.clear();
        write_header(&mut out, false, false, OP_BINARY, 126);
        assert_eq!(out, [0x02, 126, 0, 126]);
        out.clear();
        write_header(&mut out, true, false, OP_BINARY, 65536);
        assert_eq!(out, [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn non_minimal_length_is_accepted() {
        let (h, n) = parse_header(&[0x82, 0x7e, 0x00, 0x05]).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (5, 4));
        let (h, _) = parse_header(&[0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 5]).unwrap().unwrap();
        assert_eq!(h.payload_len, 5);
    }

    #[test]
    fn msb_of_64_bit_length_is_protocol_error() {
        let e = parse_header(&[0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1]).unwrap_err();
        assert_eq!(e.code, close::PROTOCOL_ERROR);
    }

    #[test]
    fn rsv_bits_and_masked_prefixes() {
        let (h, _) = parse_header(&[0x70 | OP_PING, 0x80, 1, 2, 3, 4]).unwrap().unwrap();
        assert!(h.rsv1 && h.rsv2 && h.rsv3 && !h.fin && h.is_control());
        for cut in 0..6 {
            assert_eq!(parse_header(&[0x89, 0x80, 1, 2, 3, 4][..cut]).unwrap(), None);
        }
    }
}
