//! Relay mode (websockify-compatible): binary WebSocket messages ↔ TCP bytes.
//!
//! The socket work lives in `server`; this module holds the framing of the
//! target→browser direction, which writes frames straight into the client's
//! output buffer with no intermediate copy: the target's bytes are read into
//! the buffer just after room for a 4-byte header, and the header is filled
//! in once the length is known (RFC 6455 §5.2: minimal length encoding, so
//! payloads of ≤ 125 bytes use the 2-byte form and are moved down 2 bytes).

/// The WebSocket path noVNC uses by default. With relay mode on, every
/// other path but the gateway's upgrades to the relay too (as websockify).
pub const PATH: &str = "/websockify";

/// Close reason (1008) for a view-only target: the relay passes the
/// browser's bytes to the VNC server unfiltered, so it cannot keep a viewer
/// from sending input. Such targets are served by the gateway only.
pub const VIEW_ONLY_REFUSED: &str =
    "view-only target: relay mode is not offered (it would pass input); use the viewer at /";

/// The target if the relay may serve it: not view-only, neither by its
/// token's `view_only` word nor by `--view-only` (`all_view_only`).
pub fn relayable(target: crate::config::Target, all_view_only: bool) -> Result<crate::config::Target, String> {
    if target.view_only || all_view_only {
        return Err(VIEW_ONLY_REFUSED.to_string());
    }
    Ok(target)
}

/// Largest payload framed per read: fits the 16-bit length form.
pub const MAX_CHUNK: usize = 65535;

/// Header room reserved before each chunk.
pub const HEADER_ROOM: usize = 4;

/// `buf[..HEADER_ROOM]` is free and `buf[HEADER_ROOM..HEADER_ROOM + n]` holds
/// `n` payload bytes (1 ≤ n ≤ MAX_CHUNK). Writes an unmasked FIN binary frame
/// header and returns the frame's total length, the frame starting at `buf[0]`.
pub fn frame_in_place(buf: &mut [u8], n: usize) -> usize {
    debug_assert!((1..=MAX_CHUNK).contains(&n));
    if n <= 125 {
        buf.copy_within(HEADER_ROOM..HEADER_ROOM + n, 2);
        buf[0] = 0x82;
        buf[1] = n as u8;
        2 + n
    } else {
        buf[0] = 0x82;
        buf[1] = 126;
        buf[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        HEADER_ROOM + n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_only_targets_are_not_relayed() {
        use crate::config::{Target, TargetAddr};
        let t = |view_only| Target { view_only, ..Target::new(TargetAddr::Unix("/s".into())) };
        assert!(relayable(t(false), false).is_ok());
        assert_eq!(relayable(t(true), false).unwrap_err(), VIEW_ONLY_REFUSED);
        assert_eq!(relayable(t(false), true).unwrap_err(), VIEW_ONLY_REFUSED);
        assert!(VIEW_ONLY_REFUSED.len() <= 123, "a Close reason has 123 bytes at most (RFC 6455 §5.5)");
    }

    #[test]
    fn short_payload_uses_the_two_byte_form() {
        let mut b = [0u8; 4 + 3];
        b[4..].copy_from_slice(b"abc");
        assert_eq!(frame_in_place(&mut b, 3), 5);
        assert_eq!(&b[..5], &[0x82, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn boundary_lengths() {
        for n in [125usize, 126, 65535] {
            let mut b = vec![7u8; 4 + n];
            let total = frame_in_place(&mut b, n);
            if n <= 125 {
                assert_eq!(&b[..2], &[0x82, n as u8]);
                assert_eq!(total, 2 + n);
            } else {
                assert_eq!(&b[..4], &[0x82, 126, (n >> 8) as u8, n as u8]);
                assert_eq!(total, 4 + n);
            }
        }
    }
}
