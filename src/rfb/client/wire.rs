//! Client-to-server messages (rfbproto §7.5), appended to a caller buffer.
//! All integers big-endian.

use crate::fb::Rect;
use crate::rfb::PixelFormat;

/// SetPixelFormat (§7.5.1): U8 0, 3 padding, PIXEL_FORMAT — 20 bytes.
pub(super) fn set_pixel_format(out: &mut Vec<u8>, pf: &PixelFormat) {
    out.extend_from_slice(&[0, 0, 0, 0]);
    pf.write(out);
}

/// SetEncodings (§7.5.2): U8 2, padding, U16 count, count × S32.
/// At most 65535 encodings are sent (the count is a U16).
pub(super) fn set_encodings(out: &mut Vec<u8>, encodings: &[i32]) {
    let encodings = &encodings[..encodings.len().min(u16::MAX as usize)];
    out.extend_from_slice(&[2, 0]);
    out.extend_from_slice(&(encodings.len() as u16).to_be_bytes());
    for e in encodings {
        out.extend_from_slice(&e.to_be_bytes());
    }
}

/// FramebufferUpdateRequest (§7.5.3): U8 3, U8 incremental, U16 x, y, w, h.
pub(super) fn update_request(out: &mut Vec<u8>, incremental: bool, r: Rect) {
    out.extend_from_slice(&[3, incremental as u8]);
    for v in [r.x, r.y, r.w, r.h] {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// KeyEvent (§7.5.4): U8 4, U8 down-flag, 2 padding, U32 keysym.
pub(super) fn key_event(out: &mut Vec<u8>, down: bool, keysym: u32) {
    out.extend_from_slice(&[4, down as u8, 0, 0]);
    out.extend_from_slice(&keysym.to_be_bytes());
}

/// PointerEvent (§7.5.5): U8 5, U8 button-mask, U16 x, U16 y.
pub(super) fn pointer_event(out: &mut Vec<u8>, mask: u8, x: u16, y: u16) {
    out.extend_from_slice(&[5, mask]);
    out.extend_from_slice(&x.to_be_bytes());
    out.extend_from_slice(&y.to_be_bytes());
}

/// PointerEvent in the extended form (rfbproto "ExtendedMouseButtons
/// Pseudo-encoding"): the marker bit 7 set in the button mask (buttons 1–7
/// in bits 0–6), then U8 extended-buttons-mask (bit 0 back, bit 1 forward).
pub(super) fn pointer_event_ext(out: &mut Vec<u8>, mask: u8, ext: u8, x: u16, y: u16) {
    pointer_event(out, 0x80 | (mask & 0x7f), x, y);
    out.push(ext);
}

/// QEMU Extended Key Event (rfbproto "QEMU Extended Key Event Message"):
/// U8 255, U8 0, U16 down-flag, U32 keysym, U32 keycode.
pub(super) fn qemu_key_event(out: &mut Vec<u8>, down: bool, keysym: u32, keycode: u32) {
    out.extend_from_slice(&[255, 0, 0, down as u8]);
    out.extend_from_slice(&keysym.to_be_bytes());
    out.extend_from_slice(&keycode.to_be_bytes());
}

/// ClientCutText (§7.5.6): U8 6, 3 padding, U32 length, Latin-1 text.
/// "Ends of lines are represented by the linefeed character alone", so CR LF
/// becomes LF; characters outside Latin-1 become '?'; at most `cap` bytes.
pub(super) fn client_cut_text(out: &mut Vec<u8>, text: &str, cap: usize) {
    let start = out.len();
    out.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
    let mut n = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if n == cap {
            break;
        }
        if c == '\r' && chars.peek() == Some(&'\n') {
            continue;
        }
        out.push(if (c as u32) < 256 { c as u32 as u8 } else { b'?' });
        n += 1;
    }
    out[start + 4..start + 8].copy_from_slice(&(n as u32).to_be_bytes());
}

/// SetDesktopSize (§7.5.8): U8 251, padding, U16 w, U16 h, U8 screens,
/// padding, then one SCREEN (U32 id, U16 x, y, w, h, U32 flags) covering
/// the whole framebuffer.
pub(super) fn set_desktop_size(out: &mut Vec<u8>, w: u16, h: u16, id: u32, flags: u32) {
    out.extend_from_slice(&[251, 0]);
    out.extend_from_slice(&w.to_be_bytes());
    out.extend_from_slice(&h.to_be_bytes());
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&w.to_be_bytes());
    out.extend_from_slice(&h.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
}

/// Latin-1 bytes → String (every byte is the code point of the same value).
pub fn latin1_lossy(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}
