//! ContinuousUpdates and Fence (TigerVNC's extensions, rfbproto
//! "EnableContinuousUpdates", "EndOfContinuousUpdates", "ClientFence",
//! "ServerFence", "Fence Pseudo-encoding", "ContinuousUpdates
//! Pseudo-encoding").
//!
//! Without them the client keeps one FramebufferUpdateRequest outstanding:
//! each update costs a round trip before the next can start. With them:
//!
//! ```text
//!  SetEncodings(.., Fence, ContinuousUpdates) ─▶ server: ServerFence (Fence supported)
//!                                                        EndOfContinuousUpdates (CU supported)
//!  first update (non-incremental request) … UpdateDone
//!  request_update(incremental) ─▶ EnableContinuousUpdates(1, whole screen), once
//!  … the server sends updates as the screen changes, no requests …
//!  resize ─▶ EnableContinuousUpdates(1, new size)     pause_updates ─▶ EnableContinuousUpdates(0)
//! ```
//!
//! Incremental requests are then no-ops (the spec says the server ignores
//! them while continuous updates are on); non-incremental ones are still sent
//! ("must however be honored"). This is what TigerVNC's viewer does
//! (`CConnection::framebufferUpdateEnd`, `setExtendedDesktopSize`).
//!
//! Flow control stays with the server: TigerVNC sends continuous updates
//! only to clients that answer fences, and paces them by the fences'
//! round trip (its congestion window). We answer a fence when we parse it,
//! i.e. after every byte before it has been decoded into the framebuffer, so
//! the server sees our decoding speed as well as the link's; when the
//! gateway stops reading (its loop is busy), TCP pushes back too. Viewers are
//! paced separately downstream ("latest frame wins").
//!
//! Fence answers keep BlockBefore, BlockAfter and SyncNext: the client
//! handles every message in order, to completion, before the next, which is
//! what all three ask for. The client itself needs no sync point: it sends
//! SetPixelFormat once, before any update request, and never changes it
//! (a mid-session format change would need EnableContinuousUpdates(0),
//! SetPixelFormat, EnableContinuousUpdates(1) and the EndOfContinuousUpdates
//! marker to switch decoders, as TigerVNC does).

use crate::fb::Rect;

/// Fence flags (rfbproto "ClientFence").
pub const FENCE_BLOCK_BEFORE: u32 = 1 << 0;
pub const FENCE_BLOCK_AFTER: u32 = 1 << 1;
pub const FENCE_SYNC_NEXT: u32 = 1 << 2;
pub const FENCE_REQUEST: u32 = 1 << 31;
/// "The size of this data is limited to 64 bytes."
pub const MAX_FENCE_PAYLOAD: usize = 64;

/// What the server showed it supports, and whether continuous updates are on.
#[derive(Debug, Default, Clone, Copy)]
pub struct Flow {
    /// A ServerFence arrived: the server speaks the Fence extension.
    pub fence: bool,
    /// An EndOfContinuousUpdates arrived: EnableContinuousUpdates may be sent.
    pub supported: bool,
    /// We enabled continuous updates and have not disabled them since.
    pub active: bool,
}

impl Flow {
    /// EnableContinuousUpdates for `area` (also to move the area after a resize).
    pub fn enable(&mut self, area: Rect, out: &mut Vec<u8>) {
        enable_continuous_updates(out, true, area);
        self.active = true;
    }

    /// EnableContinuousUpdates(0): back to one update per request. The server
    /// answers with EndOfContinuousUpdates.
    pub fn disable(&mut self, out: &mut Vec<u8>) {
        if self.active {
            enable_continuous_updates(out, false, Rect::default());
            self.active = false;
        }
    }

    /// EndOfContinuousUpdates received: supported, and (after a disable, or
    /// if the server stopped on its own) no longer active.
    pub fn end_of_continuous_updates(&mut self) {
        if !self.supported {
            log::debug!("RFB: server supports continuous updates");
        }
        self.supported = true;
        self.active = false;
    }

    /// A ServerFence: answer it if it is a request.
    pub fn server_fence(&mut self, flags: u32, payload: &[u8], out: &mut Vec<u8>) {
        self.fence = true;
        if flags & FENCE_REQUEST != 0 {
            fence(out, flags & (FENCE_BLOCK_BEFORE | FENCE_BLOCK_AFTER | FENCE_SYNC_NEXT), payload);
        }
    }
}

/// EnableContinuousUpdates: U8 150, U8 enable-flag, U16 x, y, w, h.
fn enable_continuous_updates(out: &mut Vec<u8>, enable: bool, r: Rect) {
    out.extend_from_slice(&[150, enable as u8]);
    for v in [r.x, r.y, r.w, r.h] {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// ClientFence: U8 248, 3 padding, U32 flags, U8 length, payload (≤ 64).
fn fence(out: &mut Vec<u8>, flags: u32, payload: &[u8]) {
    let payload = &payload[..payload.len().min(MAX_FENCE_PAYLOAD)];
    out.extend_from_slice(&[248, 0, 0, 0]);
    out.extend_from_slice(&flags.to_be_bytes());
    out.push(payload.len() as u8);
    out.extend_from_slice(payload);
}
