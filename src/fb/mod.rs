//! The shadow framebuffer: one per VNC session, RGBA bytes in canvas order,
//! with damage tracked in 64×64 tiles, each with the bounding box of the
//! damage inside it (see [`TileSet`]).
//!
//! Every drawing call is bounds-checked and returns [`OutOfBounds`] instead of
//! panicking: rectangles come straight off the wire from a VNC server we do not
//! trust (rfbproto §7.6.1: a rectangle "must" lie inside the framebuffer, but a
//! broken server may say otherwise).

mod tiles;

pub use tiles::TileSet;

/// Side of a damage tile in pixels.
pub const TILE: u16 = 64;

/// A rectangle in framebuffer coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    pub x: u16,
    pub y: u16,
    pub w: u16,
    pub h: u16,
}

impl Rect {
    pub const fn new(x: u16, y: u16, w: u16, h: u16) -> Self {
        Rect { x, y, w, h }
    }
    pub fn is_empty(&self) -> bool {
        self.w == 0 || self.h == 0
    }
    pub fn right(&self) -> u32 {
        self.x as u32 + self.w as u32
    }
    pub fn bottom(&self) -> u32 {
        self.y as u32 + self.h as u32
    }
    pub fn area(&self) -> usize {
        self.w as usize * self.h as usize
    }
}

/// A drawing call named a rectangle outside the framebuffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfBounds {
    pub rect: Rect,
    pub width: u16,
    pub height: u16,
}

impl std::fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.rect;
        write!(f, "rectangle {}x{}+{}+{} outside the {}x{} framebuffer", r.w, r.h, r.x, r.y, self.width, self.height)
    }
}

impl std::error::Error for OutOfBounds {}

/// A CopyRect applied to the framebuffer (rfbproto §7.7.2), logged so the
/// gateway can forward it as a browser `Copy` instead of resending pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOp {
    pub dst: Rect,
    pub src_x: u16,
    pub src_y: u16,
}

impl CopyOp {
    pub fn src(&self) -> Rect {
        Rect::new(self.src_x, self.src_y, self.dst.w, self.dst.h)
    }
}

/// Copies logged between two [`Framebuffer::take_copies`]; more are
/// recorded as damage instead.
pub const MAX_COPY_LOG: usize = 256;

/// RGBA pixels (4 bytes each, alpha always 255), row-major, stride `width * 4`.
///
/// Change tracking: every change is either damage (tiles, [`take_dirty`])
/// or a logged copy ([`take_copies`]). A copy is logged — and its
/// destination *not* marked dirty — only when its source area is clean, i.e.
/// untouched since the last `take_dirty`; replaying the logged copies in
/// order on an image equal to the framebuffer at the last `take_dirty`, then
/// redrawing the damaged region (`TileSet::for_each_run`) from the current
/// pixels, gives the current framebuffer exactly.
///
/// [`take_dirty`]: Framebuffer::take_dirty
/// [`take_copies`]: Framebuffer::take_copies
pub struct Framebuffer {
    width: u16,
    height: u16,
    pixels: Vec<u8>,
    dirty: TileSet,
    copies: Vec<CopyOp>,
    /// Pixels written since the last [`Framebuffer::take_work`]: what a
    /// caller budgets per wakeup (see `rfb::client::WORK_PER_CALL`).
    work: u64,
}

impl Framebuffer {
    /// A black framebuffer, wholly dirty.
    pub fn new(width: u16, height: u16) -> Self {
        let mut fb = Framebuffer {
            width: 0,
            height: 0,
            pixels: Vec::new(),
            dirty: TileSet::new(0, 0),
            copies: Vec::new(),
            work: 0,
        };
        fb.resize(width, height);
        fb
    }

    pub fn width(&self) -> u16 {
        self.width
    }
    pub fn height(&self) -> u16 {
        self.height
    }
    pub fn full_rect(&self) -> Rect {
        Rect::new(0, 0, self.width, self.height)
    }

    /// Resize, clearing to opaque black; the whole new area is dirty.
    ///
    /// The allocation is kept when the new size fits in it (a server that
    /// toggles between two large sizes costs one clear per resize, no
    /// reallocation) and given back only when the new size needs less than
    /// a quarter of it. The clear is one write-only pass of 32-bit stores
    /// (twice as fast as filling the alpha bytes after zeroing).
    pub fn resize(&mut self, width: u16, height: u16) {
        const BLACK: [u8; 4] = [0, 0, 0, 255];
        self.width = width;
        self.height = height;
        let len = width as usize * height as usize * 4;
        if len < self.pixels.capacity() / 4 {
            self.pixels = Vec::with_capacity(len);
        }
        self.pixels.truncate(len);
        self.pixels.resize(len, 0);
        // SAFETY: every bit pattern is a valid u32 and a valid u8, so viewing
        // the byte buffer as words (with unaligned ends as bytes) is sound.
        let (head, words, tail) = unsafe { self.pixels.align_to_mut::<u32>() };
        // Whole pixels only in `words` when the buffer starts aligned, which
        // the allocator gives a Vec<u8> of this size; the ends go bytewise.
        if head.is_empty() {
            words.fill(u32::from_ne_bytes(BLACK));
            tail.copy_from_slice(&BLACK[..tail.len()]);
        } else {
            for px in self.pixels.chunks_exact_mut(4) {
                px.copy_from_slice(&BLACK);
            }
        }
        self.work += width as u64 * height as u64;
        self.dirty.reset(width, height);
        self.dirty.mark_all();
        self.copies.clear();
    }

    /// Pixels written since the last call (fills, copies, decoded pixels,
    /// resizes); resets the count.
    pub fn take_work(&mut self) -> u64 {
        std::mem::take(&mut self.work)
    }

    /// Pixels written since the last [`Framebuffer::take_work`].
    pub fn work(&self) -> u64 {
        self.work
    }

    /// Whether `r` lies wholly inside the framebuffer (empty rects anywhere inside count).
    pub fn contains(&self, r: Rect) -> bool {
        r.right() <= self.width as u32 && r.bottom() <= self.height as u32
    }

    fn check(&self, r: Rect) -> Result<(), OutOfBounds> {
        if self.contains(r) {
            Ok(())
        } else {
            Err(OutOfBounds { rect: r, width: self.width, height: self.height })
        }
    }

    fn offset(&self, x: u16, y: u16) -> usize {
        (y as usize * self.width as usize + x as usize) * 4
    }

    /// Fill `r` with one colour.
    pub fn fill(&mut self, r: Rect, rgba: [u8; 4]) -> Result<(), OutOfBounds> {
        self.check(r)?;
        if r.is_empty() {
            return Ok(());
        }
        self.work += r.area() as u64;
        let row_bytes = r.w as usize * 4;
        for y in r.y..r.y + r.h {
            let start = self.offset(r.x, y);
            wsvnc_kernels::fill(&mut self.pixels[start..start + row_bytes], rgba);
        }
        self.dirty.mark(r);
        Ok(())
    }

    /// Copy tightly packed RGBA pixels (`r.w * r.h * 4` bytes) into `r`.
    /// Alpha is taken as given; decoders produce 255.
    pub fn put_rgba(&mut self, r: Rect, src: &[u8]) -> Result<(), OutOfBounds> {
        self.check(r)?;
        let row_bytes = r.w as usize * 4;
        if src.len() < row_bytes * r.h as usize {
            return Err(OutOfBounds { rect: r, width: self.width, height: self.height });
        }
        self.work += r.area() as u64;
        for (i, y) in (r.y..r.y + r.h).enumerate() {
            let start = self.offset(r.x, y);
            self.pixels[start..start + row_bytes].copy_from_slice(&src[i * row_bytes..(i + 1) * row_bytes]);
        }
        if !r.is_empty() {
            self.dirty.mark(r);
        }
        Ok(())
    }

    /// Mutable access to `w` pixels of row `y` starting at `x`, for decoders
    /// that write straight into the framebuffer. The caller must call
    /// [`Framebuffer::mark_dirty`] for what it changed.
    pub fn row_mut(&mut self, x: u16, y: u16, w: u16) -> Result<&mut [u8], OutOfBounds> {
        self.check(Rect::new(x, y, w, 1))?;
        self.work += w as u64;
        let start = self.offset(x, y);
        Ok(&mut self.pixels[start..start + w as usize * 4])
    }

    /// Copy the `dst.w × dst.h` area at (`src_x`, `src_y`) to `dst`
    /// (rfbproto §7.7.2 CopyRect; overlapping areas are handled like memmove).
    pub fn copy(&mut self, dst: Rect, src_x: u16, src_y: u16) -> Result<(), OutOfBounds> {
        self.check(dst)?;
        self.check(Rect::new(src_x, src_y, dst.w, dst.h))?;
        if dst.is_empty() {
            return Ok(());
        }
        self.work += dst.area() as u64;
        let row_bytes = dst.w as usize * 4;
        let rows: Box<dyn Iterator<Item = u16>> =
            if dst.y > src_y { Box::new((0..dst.h).rev()) } else { Box::new(0..dst.h) };
        for i in rows {
            let s = self.offset(src_x, src_y + i);
            let d = self.offset(dst.x, dst.y + i);
            self.pixels.copy_within(s..s + row_bytes, d);
        }
        let op = CopyOp { dst, src_x, src_y };
        if self.copies.len() < MAX_COPY_LOG && !self.dirty.intersects(op.src()) {
            self.copies.push(op);
        } else {
            self.dirty.mark(dst);
        }
        Ok(())
    }

    /// The RGBA value at (x, y). Panics if outside: for tests and callers that checked.
    pub fn pixel(&self, x: u16, y: u16) -> [u8; 4] {
        let o = self.offset(x, y);
        [self.pixels[o], self.pixels[o + 1], self.pixels[o + 2], self.pixels[o + 3]]
    }

    /// All pixels, row-major RGBA.
    pub fn data(&self) -> &[u8] {
        &self.pixels
    }

    /// Record that `r` changed (for callers of [`Framebuffer::row_mut`]).
    pub fn mark_dirty(&mut self, r: Rect) {
        if !r.is_empty() && self.contains(r) {
            self.dirty.mark(r);
        }
    }

    /// Tiles changed since the last call; clears the set.
    pub fn take_dirty(&mut self, into: &mut TileSet) {
        into.union_from(&self.dirty);
        self.dirty.clear();
    }

    /// Whether anything changed since the last `take_dirty`/`take_copies`
    /// (an update is being applied and not yet handed out).
    pub fn has_changes(&self) -> bool {
        !self.copies.is_empty() || !self.dirty.is_empty()
    }

    /// Copies logged since the last call (in the order applied); clears the log.
    pub fn take_copies(&mut self, into: &mut Vec<CopyOp>) {
        into.append(&mut self.copies);
    }

    /// Tiles changed since the last [`Framebuffer::take_dirty`].
    pub fn dirty(&self) -> &TileSet {
        &self.dirty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_read_back() {
        let mut fb = Framebuffer::new(100, 50);
        fb.fill(Rect::new(10, 10, 5, 5), [1, 2, 3, 255]).unwrap();
        assert_eq!(fb.pixel(10, 10), [1, 2, 3, 255]);
        assert_eq!(fb.pixel(14, 14), [1, 2, 3, 255]);
        assert_eq!(fb.pixel(15, 14), [0, 0, 0, 255]);
    }

    #[test]
    fn out_of_bounds_is_an_error_not_a_panic() {
        let mut fb = Framebuffer::new(100, 50);
        assert!(fb.fill(Rect::new(96, 0, 5, 1), [0; 4]).is_err());
        assert!(fb.fill(Rect::new(0, 50, 1, 1), [0; 4]).is_err());
        assert!(fb.fill(Rect::new(65535, 65535, 65535, 65535), [0; 4]).is_err());
        assert!(fb.copy(Rect::new(0, 0, 10, 10), 95, 0).is_err());
        assert!(fb.put_rgba(Rect::new(0, 0, 2, 2), &[0; 15]).is_err());
        assert!(fb.row_mut(99, 49, 2).is_err());
        assert!(fb.fill(Rect::new(100, 50, 0, 0), [0; 4]).is_ok());
    }

    #[test]
    fn copy_overlapping_down_and_right() {
        let mut fb = Framebuffer::new(8, 8);
        for y in 0..8u16 {
            for x in 0..8u16 {
                fb.fill(Rect::new(x, y, 1, 1), [x as u8, y as u8, 0, 255]).unwrap();
            }
        }
        fb.copy(Rect::new(1, 1, 6, 6), 0, 0).unwrap();
        assert_eq!(fb.pixel(1, 1), [0, 0, 0, 255]);
        assert_eq!(fb.pixel(6, 6), [5, 5, 0, 255]);
        fb.copy(Rect::new(0, 0, 6, 6), 2, 2).unwrap();
        assert_eq!(fb.pixel(0, 0), [1, 1, 0, 255]);
    }

    /// Replaying logged copies on the old image, then the damaged region
    /// from the new one, reproduces the new image (the contract above).
    #[test]
    fn copies_are_logged_only_from_clean_sources() {
        let mut fb = Framebuffer::new(256, 256);
        for y in 0..256u16 {
            fb.fill(Rect::new(0, y, 256, 1), [y as u8, 0, 0, 255]).unwrap();
        }
        let (mut seen, mut ops) = (TileSet::new(256, 256), Vec::new());
        fb.take_dirty(&mut seen);
        fb.take_copies(&mut ops);
        let old = fb.data().to_vec();
        seen.clear();
        fb.copy(Rect::new(0, 0, 256, 100), 0, 1).unwrap(); // scroll up: logged
        fb.fill(Rect::new(0, 200, 10, 10), [1, 2, 3, 255]).unwrap();
        fb.copy(Rect::new(0, 100, 20, 20), 0, 195).unwrap(); // source dirty: damage
        fb.copy(Rect::new(100, 150, 5, 5), 0, 0).unwrap(); // source = first copy's dst: logged
                                                           // Source in the filled square's tile but outside its damage box: logged.
        fb.copy(Rect::new(200, 20, 5, 5), 20, 200).unwrap();
        fb.take_dirty(&mut seen);
        fb.take_copies(&mut ops);
        assert_eq!(ops.len(), 3);
        assert_eq!(seen.tile_damage(0, 3), Some(Rect::new(0, 200, 10, 10)), "the fill");
        assert_eq!(seen.tile_damage(0, 1), Some(Rect::new(0, 100, 20, 20)), "the refused copy's destination");
        assert!(!seen.contains_tile(0, 0), "logged copy's destination is not damage");
        assert!(seen.contains_tile(0, 1) && seen.contains_tile(0, 3));
        let mut replay = Framebuffer::new(256, 256);
        replay.put_rgba(replay.full_rect(), &old).unwrap();
        for op in &ops {
            replay.copy(op.dst, op.src_x, op.src_y).unwrap();
        }
        seen.for_each_run(|r| {
            for y in r.y..r.y + r.h {
                let o = (y as usize * 256 + r.x as usize) * 4;
                let row = fb.data()[o..o + r.w as usize * 4].to_vec();
                replay.put_rgba(Rect::new(r.x, y, r.w, 1), &row).unwrap();
            }
        });
        assert!(replay.data() == fb.data());
    }

    #[test]
    fn resize_clears_reuses_and_counts_work() {
        let mut fb = Framebuffer::new(100, 50);
        fb.fill(Rect::new(0, 0, 100, 50), [9, 9, 9, 255]).unwrap();
        assert_eq!(fb.take_work(), 100 * 50 * 2, "the first clear and the fill");
        let cap = fb.data().len();
        fb.resize(99, 50);
        assert!(fb.data().chunks_exact(4).all(|p| p == [0, 0, 0, 255]), "opaque black after a resize");
        assert_eq!(fb.data().len(), 99 * 50 * 4);
        fb.resize(100, 50);
        assert_eq!(fb.data().len(), cap);
        assert!(fb.data().chunks_exact(4).all(|p| p == [0, 0, 0, 255]));
        assert_eq!(fb.work(), 99 * 50 + 100 * 50);
        fb.resize(3, 1);
        assert_eq!(fb.data(), [0, 0, 0, 255].repeat(3));
        fb.resize(0, 0);
        assert!(fb.data().is_empty());
        fb.copy(Rect::new(0, 0, 0, 0), 0, 0).unwrap();
        assert_eq!(fb.take_work(), 99 * 50 + 100 * 50 + 3, "empty resizes and copies cost nothing");
        assert_eq!(fb.work(), 0);
    }

    #[test]
    fn damage_is_tracked_in_tiles() {
        let mut fb = Framebuffer::new(200, 200);
        let mut seen = TileSet::new(200, 200);
        fb.take_dirty(&mut seen);
        assert_eq!(seen.count(), 16);
        seen.clear();
        fb.fill(Rect::new(70, 70, 1, 1), [9; 4]).unwrap();
        fb.take_dirty(&mut seen);
        assert_eq!(seen.count(), 1);
        assert!(seen.contains_tile(1, 1));
        assert_eq!(fb.dirty().count(), 0);
    }
}
