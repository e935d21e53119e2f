//! Damage as 64×64 tiles, one bit each, plus the bounding box of the damage
//! inside every marked tile.
//!
//! The bit says "something in this tile changed"; the box (four tile-local
//! offsets, one byte each since a tile is 64 px) says where. Together they
//! let a frame carry only the changed sub-rectangles while memory stays
//! fixed by the framebuffer's size: 4 bytes and 1 bit per tile — about
//! 2 KiB for 1920×1080 — whatever is marked, however often.
//!
//! Contract: every pixel passed to [`TileSet::mark`] (and inside the area)
//! lies in the *damaged region*: the union over marked tiles of their boxes.
//! [`TileSet::intersects`] and [`TileSet::for_each_run`] answer for that
//! region, so a caller that redraws every run's pixels redraws every marked
//! pixel. The region may be larger than what was marked (a box is a bounding
//! box), never smaller.

use super::{Rect, TILE};

const T: usize = TILE as usize;

/// A tile-local box `[x0, x1) × [y0, y1)`, 0 ≤ x0 < x1 ≤ 64 (same for y).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct TileBox {
    x0: u8,
    y0: u8,
    x1: u8,
    y1: u8,
}

impl TileBox {
    fn union(self, o: TileBox) -> TileBox {
        TileBox { x0: self.x0.min(o.x0), y0: self.y0.min(o.y0), x1: self.x1.max(o.x1), y1: self.y1.max(o.y1) }
    }
    fn overlaps(self, o: TileBox) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
}

/// Absolute box `[x0, x1) × [y0, y1)` used while merging tiles into runs.
#[derive(Clone, Copy)]
struct Span {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

impl Span {
    fn area(&self) -> u64 {
        (self.x1 - self.x0) as u64 * (self.y1 - self.y0) as u64
    }
    fn union(&self, o: &Span) -> Span {
        Span { x0: self.x0.min(o.x0), y0: self.y0.min(o.y0), x1: self.x1.max(o.x1), y1: self.y1.max(o.y1) }
    }
    fn rect(&self) -> Rect {
        Rect::new(self.x0 as u16, self.y0 as u16, (self.x1 - self.x0) as u16, (self.y1 - self.y0) as u16)
    }
}

/// Two neighbouring damaged boxes of a tile row are sent as one rectangle
/// when that costs at most this many pixels more than sending both: a
/// message header (9 bytes for `Pixels`) is worth a few pixels, and one
/// contiguous block deflates better than two.
const MERGE_SLACK_PX: u64 = 32;

/// Damage as a bitmap of [`TILE`]-sized tiles covering a `width × height`
/// area, with a bounding box of the damage inside each marked tile.
#[derive(Clone, Debug)]
pub struct TileSet {
    width: u16,
    height: u16,
    cols: usize,
    rows: usize,
    bits: Vec<u64>,
    /// Per tile (row-major), meaningful only while its bit is set: the
    /// damaged box inside it, clipped to the area.
    boxes: Vec<TileBox>,
}

impl TileSet {
    pub fn new(width: u16, height: u16) -> Self {
        let cols = (width as usize).div_ceil(T);
        let rows = (height as usize).div_ceil(T);
        TileSet {
            width,
            height,
            cols,
            rows,
            bits: vec![0; (cols * rows).div_ceil(64)],
            boxes: vec![TileBox::default(); cols * rows],
        }
    }

    /// Reshape for a new framebuffer size; everything is marked.
    pub fn reset(&mut self, width: u16, height: u16) {
        *self = TileSet::new(width, height);
        self.mark_all();
    }

    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn rows(&self) -> usize {
        self.rows
    }

    fn is_set(&self, i: usize) -> bool {
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    /// Add `b` to tile `i`'s damage.
    fn add(&mut self, i: usize, b: TileBox) {
        if self.is_set(i) {
            self.boxes[i] = self.boxes[i].union(b);
        } else {
            self.bits[i / 64] |= 1 << (i % 64);
            self.boxes[i] = b;
        }
    }

    pub fn contains_tile(&self, col: usize, row: usize) -> bool {
        col < self.cols && row < self.rows && self.is_set(row * self.cols + col)
    }

    /// The damaged box of a marked tile in framebuffer coordinates, `None`
    /// for a clean tile or one outside the area.
    pub fn tile_damage(&self, col: usize, row: usize) -> Option<Rect> {
        if !self.contains_tile(col, row) {
            return None;
        }
        let b = self.boxes[row * self.cols + col];
        let (x, y) = ((col * T) as u16, (row * T) as u16);
        Some(Rect::new(x + b.x0 as u16, y + b.y0 as u16, (b.x1 - b.x0) as u16, (b.y1 - b.y0) as u16))
    }

    /// `r` clipped to the area as `[x0, x1) × [y0, y1)`, `None` if nothing is left.
    fn clip(&self, r: Rect) -> Option<(usize, usize, usize, usize)> {
        let x1 = r.right().min(self.width as u32) as usize;
        let y1 = r.bottom().min(self.height as u32) as usize;
        let (x0, y0) = (r.x as usize, r.y as usize);
        (x0 < x1 && y0 < y1).then_some((x0, y0, x1, y1))
    }

    /// Mark `r` (clipped to the area): every tile it touches, its box grown
    /// to cover the part of `r` inside it.
    pub fn mark(&mut self, r: Rect) {
        let Some(c) = self.clip(r) else { return };
        tile_parts(self.cols, c, |i, part| {
            self.add(i, part);
            false
        });
    }

    /// Whether `r` (clipped to the area) overlaps the damaged region.
    pub fn intersects(&self, r: Rect) -> bool {
        let Some(c) = self.clip(r) else { return false };
        tile_parts(self.cols, c, |i, part| self.is_set(i) && self.boxes[i].overlaps(part))
    }

    pub fn mark_all(&mut self) {
        self.mark(Rect::new(0, 0, self.width, self.height));
    }

    pub fn clear(&mut self) {
        self.bits.iter_mut().for_each(|w| *w = 0);
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    /// Marked tiles.
    pub fn count(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Add the damage of `other` (which must cover the same area; another
    /// size marks everything, the safe answer: boxes are clipped to their
    /// own area, so even the same tile grid would not do).
    pub fn union_from(&mut self, other: &TileSet) {
        if other.width != self.width || other.height != self.height {
            self.reset(other.width, other.height);
            return;
        }
        for (w, &ob) in other.bits.iter().enumerate() {
            let mut rest = ob & !self.bits[w];
            // Tiles new to self take other's box; tiles in both, the union.
            let mut both = ob & self.bits[w];
            while rest != 0 {
                let i = w * 64 + rest.trailing_zeros() as usize;
                self.boxes[i] = other.boxes[i];
                rest &= rest - 1;
            }
            while both != 0 {
                let i = w * 64 + both.trailing_zeros() as usize;
                self.boxes[i] = self.boxes[i].union(other.boxes[i]);
                both &= both - 1;
            }
            self.bits[w] |= ob;
        }
    }

    /// Number of tiles (marked or not); tile indices are row-major below this.
    pub fn tiles(&self) -> usize {
        self.cols * self.rows
    }

    /// The damaged box of tile `i` in framebuffer coordinates, `None` when
    /// it is clean (or out of range).
    pub fn box_of(&self, i: usize) -> Option<Rect> {
        (i < self.tiles()).then(|| self.tile_damage(i % self.cols, i / self.cols)).flatten()
    }

    /// Calls `f(index, damaged box)` for every marked tile, in index order.
    pub fn for_each_tile(&self, mut f: impl FnMut(usize, Rect)) {
        for (w, &word) in self.bits.iter().enumerate() {
            let mut rest = word;
            while rest != 0 {
                let i = w * 64 + rest.trailing_zeros() as usize;
                rest &= rest - 1;
                if let Some(r) = self.box_of(i) {
                    f(i, r);
                }
            }
        }
    }

    /// Calls `f(index, part of r inside that tile)` for every tile `r`
    /// (clipped to the area) touches, marked or not.
    pub fn for_each_tile_in(&self, r: Rect, mut f: impl FnMut(usize, Rect)) {
        let Some(c) = self.clip(r) else { return };
        let cols = self.cols;
        tile_parts(cols, c, |i, b| {
            let (tx, ty) = ((i % cols * T) as u16, (i / cols * T) as u16);
            let part = Rect::new(tx + b.x0 as u16, ty + b.y0 as u16, (b.x1 - b.x0) as u16, (b.y1 - b.y0) as u16);
            f(i, part);
            false
        });
    }

    /// Unmark tile `i`.
    pub fn clear_tile(&mut self, i: usize) {
        if i < self.tiles() {
            self.bits[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Unmark every tile `r` touches (however little of it `r` covers).
    pub fn clear_tiles_of(&mut self, r: Rect) {
        let Some((x0, y0, x1, y1)) = self.clip(r) else { return };
        for row in y0 / T..y1.div_ceil(T) {
            for col in x0 / T..x1.div_ceil(T) {
                self.clear_tile(row * self.cols + col);
            }
        }
    }

    /// Add `r` (inside tile `i`, framebuffer coordinates) to tile `i`'s damage.
    pub fn mark_in_tile(&mut self, i: usize, r: Rect) {
        if i >= self.tiles() || r.is_empty() {
            return;
        }
        let (tx, ty) = (i % self.cols * T, i / self.cols * T);
        let x0 = (r.x as usize).max(tx) - tx;
        let y0 = (r.y as usize).max(ty) - ty;
        let x1 = (r.right() as usize).min(tx + T).min(self.width as usize).saturating_sub(tx);
        let y1 = (r.bottom() as usize).min(ty + T).min(self.height as usize).saturating_sub(ty);
        if x0 < x1 && y0 < y1 {
            self.add(i, TileBox { x0: x0 as u8, y0: y0 as u8, x1: x1 as u8, y1: y1 as u8 });
        }
    }

    /// Whether `self` and `o` cover the same area and mark the same damage
    /// (the boxes of clean tiles are not compared).
    pub fn same_damage(&self, o: &TileSet) -> bool {
        if (self.width, self.height) != (o.width, o.height) || self.bits != o.bits {
            return false;
        }
        let mut same = true;
        self.for_each_tile(|i, _| same &= self.boxes[i] == o.boxes[i]);
        same
    }

    /// Become a copy of `o`, reusing this set's memory when the sizes match.
    pub fn copy_from(&mut self, o: &TileSet) {
        if (self.width, self.height) != (o.width, o.height) {
            *self = o.clone();
            return;
        }
        self.bits.copy_from_slice(&o.bits);
        self.boxes.copy_from_slice(&o.boxes);
    }

    /// Become the tiles of `damage` whose box does not overlap the box of
    /// the same tile in `area` (both of `damage`'s size; another size of
    /// `area` leaves nothing).
    pub fn copy_disjoint(&mut self, damage: &TileSet, area: &TileSet) {
        self.copy_from(damage);
        if (area.width, area.height) != (damage.width, damage.height) {
            self.clear();
            return;
        }
        for (w, &ab) in area.bits.iter().enumerate() {
            let mut both = ab & self.bits[w];
            while both != 0 {
                let i = w * 64 + both.trailing_zeros() as usize;
                both &= both - 1;
                if self.boxes[i].overlaps(area.boxes[i]) {
                    self.bits[w] &= !(1 << (i % 64));
                }
            }
        }
    }

    /// Whether the damaged regions of `self` and `other` overlap (another
    /// size, both non-empty: assumed to, the safe answer).
    pub fn overlaps(&self, other: &TileSet) -> bool {
        if self.is_empty() || other.is_empty() {
            return false;
        }
        if (other.width, other.height) != (self.width, self.height) {
            return true;
        }
        self.bits.iter().zip(&other.bits).enumerate().any(|(w, (&a, &b))| {
            let mut both = a & b;
            while both != 0 {
                let i = w * 64 + both.trailing_zeros() as usize;
                both &= both - 1;
                if self.boxes[i].overlaps(other.boxes[i]) {
                    return true;
                }
            }
            false
        })
    }

    /// Unmark every tile marked in `other` (same size; else nothing).
    pub fn clear_tiles_in(&mut self, other: &TileSet) {
        if (other.width, other.height) == (self.width, self.height) {
            self.bits.iter_mut().zip(&other.bits).for_each(|(w, o)| *w &= !o);
        }
    }

    /// The damaged region as rectangles, row of tiles by row of tiles, left
    /// to right: the boxes of adjacent marked tiles are merged into their
    /// bounding rectangle while that wastes at most [`MERGE_SLACK_PX`]
    /// pixels over sending them apart. Every rectangle lies within one tile
    /// row and within the area; together they cover the damaged region.
    pub fn for_each_run(&self, mut f: impl FnMut(Rect)) {
        for row in 0..self.rows {
            let mut cur: Option<Span> = None;
            for col in 0..self.cols {
                let i = row * self.cols + col;
                if !self.is_set(i) {
                    if let Some(c) = cur.take() {
                        f(c.rect());
                    }
                    continue;
                }
                let b = self.boxes[i];
                let (tx, ty) = ((col * T) as u32, (row * T) as u32);
                let s = Span { x0: tx + b.x0 as u32, y0: ty + b.y0 as u32, x1: tx + b.x1 as u32, y1: ty + b.y1 as u32 };
                cur = Some(match cur {
                    None => s,
                    Some(c) => {
                        let u = c.union(&s);
                        if u.area() <= c.area() + s.area() + MERGE_SLACK_PX {
                            u
                        } else {
                            f(c.rect());
                            s
                        }
                    }
                });
            }
            if let Some(c) = cur {
                f(c.rect());
            }
        }
    }
}

/// Calls `f(tile index, part of the rect inside that tile)` for every tile
/// the clipped rect `[x0, x1) × [y0, y1)` touches, in a grid `cols` tiles
/// wide, until `f` returns true; returns whether it did.
fn tile_parts(
    cols: usize,
    (x0, y0, x1, y1): (usize, usize, usize, usize),
    mut f: impl FnMut(usize, TileBox) -> bool,
) -> bool {
    for row in y0 / T..y1.div_ceil(T) {
        let (ty, by0, by1) = (row * T, y0.max(row * T), y1.min(row * T + T));
        for col in x0 / T..x1.div_ceil(T) {
            let (tx, bx0, bx1) = (col * T, x0.max(col * T), x1.min(col * T + T));
            let part =
                TileBox { x0: (bx0 - tx) as u8, y0: (by0 - ty) as u8, x1: (bx1 - tx) as u8, y1: (by1 - ty) as u8 };
            if f(row * cols + col, part) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(t: &TileSet) -> Vec<Rect> {
        let mut v = vec![];
        t.for_each_run(|r| v.push(r));
        v
    }

    #[test]
    fn disjoint_part_and_clearing() {
        let mut damage = TileSet::new(256, 128);
        damage.mark(Rect::new(0, 0, 10, 10)); // tile 0, overlaps the area's box
        damage.mark(Rect::new(70, 50, 10, 10)); // tile 1, same tile as the area, apart
        damage.mark(Rect::new(200, 100, 5, 5)); // tile 7, not in the area
        let mut area = TileSet::new(256, 128);
        area.mark(Rect::new(5, 5, 100, 20));
        let mut out = TileSet::new(0, 0);
        out.copy_disjoint(&damage, &area);
        assert_eq!(runs(&out), vec![Rect::new(70, 50, 10, 10), Rect::new(200, 100, 5, 5)]);
        assert!(damage.overlaps(&area) && !out.overlaps(&area));
        damage.clear_tiles_in(&out);
        assert_eq!(runs(&damage), vec![Rect::new(0, 0, 10, 10)]);
        out.copy_disjoint(&damage, &TileSet::new(10, 10));
        assert!(out.is_empty(), "another size: nothing is known to be apart");
    }

    #[test]
    fn runs_are_clipped_to_the_area() {
        let mut t = TileSet::new(130, 70);
        t.mark(Rect::new(0, 0, 130, 1));
        assert_eq!(runs(&t), vec![Rect::new(0, 0, 130, 1)]);
        t.mark(Rect::new(129, 69, 1, 1));
        assert_eq!(runs(&t)[1], Rect::new(129, 69, 1, 1));
        t.mark_all();
        assert_eq!(runs(&t), vec![Rect::new(0, 0, 130, 64), Rect::new(0, 64, 130, 6)]);
    }

    #[test]
    fn marking_outside_is_ignored() {
        let mut t = TileSet::new(64, 64);
        t.mark(Rect::new(64, 0, 10, 10));
        t.mark(Rect::new(0, 64, 10, 10));
        t.mark(Rect::new(65535, 65535, 65535, 65535));
        t.mark(Rect::new(10, 10, 0, 5));
        assert!(t.is_empty());
        t.mark(Rect::new(60, 60, 65535, 65535));
        assert_eq!(t.tile_damage(0, 0), Some(Rect::new(60, 60, 4, 4)));
    }

    #[test]
    fn one_pixel_is_one_pixel() {
        let mut t = TileSet::new(1920, 1080);
        t.mark(Rect::new(1000, 500, 1, 1));
        assert_eq!(t.count(), 1);
        assert_eq!(runs(&t), vec![Rect::new(1000, 500, 1, 1)]);
        assert!(t.intersects(Rect::new(1000, 500, 1, 1)));
        assert!(!t.intersects(Rect::new(1001, 500, 10, 10)), "same tile, outside the box");
        assert!(!t.intersects(Rect::new(960, 448, 40, 64)));
        assert!(t.intersects(Rect::new(0, 0, 1920, 1080)));
    }

    #[test]
    fn boxes_grow_and_stay_inside_their_tile() {
        let mut t = TileSet::new(200, 200);
        t.mark(Rect::new(70, 70, 2, 2));
        t.mark(Rect::new(100, 80, 1, 1));
        assert_eq!(t.tile_damage(1, 1), Some(Rect::new(70, 70, 31, 11)));
        // A rect across a tile corner: four tiles, each box at the shared edges.
        t.clear();
        t.mark(Rect::new(60, 62, 8, 4));
        assert_eq!(t.count(), 4);
        assert_eq!(t.tile_damage(0, 0), Some(Rect::new(60, 62, 4, 2)));
        assert_eq!(t.tile_damage(1, 0), Some(Rect::new(64, 62, 4, 2)));
        assert_eq!(t.tile_damage(0, 1), Some(Rect::new(60, 64, 4, 2)));
        assert_eq!(t.tile_damage(1, 1), Some(Rect::new(64, 64, 4, 2)));
        assert_eq!(runs(&t), vec![Rect::new(60, 62, 8, 2), Rect::new(60, 64, 8, 2)]);
        // Last pixel of a tile and first of the next.
        t.clear();
        t.mark(Rect::new(63, 0, 1, 64));
        assert_eq!(t.tile_damage(0, 0), Some(Rect::new(63, 0, 1, 64)));
        assert_eq!(t.tile_damage(1, 0), None);
    }

    #[test]
    fn partial_right_and_bottom_tiles() {
        let mut t = TileSet::new(100, 70); // tiles 64+36 wide, 64+6 high
        t.mark_all();
        assert_eq!(t.count(), 4);
        assert_eq!(t.tile_damage(1, 1), Some(Rect::new(64, 64, 36, 6)));
        t.reset(100, 70);
        assert_eq!(t.tile_damage(1, 0), Some(Rect::new(64, 0, 36, 64)));
        t.clear();
        t.mark(Rect::new(99, 69, 1, 1));
        assert_eq!(runs(&t), vec![Rect::new(99, 69, 1, 1)]);
    }

    #[test]
    fn clear_forgets_boxes() {
        let mut t = TileSet::new(128, 64);
        t.mark(Rect::new(0, 0, 64, 64));
        t.clear();
        assert!(t.is_empty() && !t.intersects(Rect::new(0, 0, 128, 64)));
        t.mark(Rect::new(5, 5, 1, 1));
        assert_eq!(t.tile_damage(0, 0), Some(Rect::new(5, 5, 1, 1)), "old box gone");
    }

    #[test]
    fn union_merges_boxes() {
        let mut a = TileSet::new(200, 100);
        let mut b = TileSet::new(200, 100);
        a.mark(Rect::new(1, 1, 1, 1));
        b.mark(Rect::new(10, 20, 1, 1));
        b.mark(Rect::new(150, 90, 2, 2));
        a.union_from(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.tile_damage(0, 0), Some(Rect::new(1, 1, 10, 20)));
        assert_eq!(a.tile_damage(2, 1), Some(Rect::new(150, 90, 2, 2)));
        assert_eq!(b.tile_damage(0, 0), Some(Rect::new(10, 20, 1, 1)), "source unchanged");
        // Different shape: everything.
        let c = TileSet::new(300, 100);
        a.union_from(&c);
        assert_eq!(a.count(), 10);
        assert_eq!(runs(&a), vec![Rect::new(0, 0, 300, 64), Rect::new(0, 64, 300, 36)]);
    }

    #[test]
    fn runs_merge_only_when_cheap() {
        let mut t = TileSet::new(256, 64);
        // Same rows in adjacent tiles: one rect.
        t.mark(Rect::new(50, 10, 30, 5));
        assert_eq!(runs(&t), vec![Rect::new(50, 10, 30, 5)]);
        // A line at the top of tile 0 and one at the bottom of tile 1:
        // merging would send 64 rows for 2; sent apart.
        t.clear();
        t.mark(Rect::new(0, 0, 64, 1));
        t.mark(Rect::new(64, 63, 64, 1));
        assert_eq!(runs(&t), vec![Rect::new(0, 0, 64, 1), Rect::new(64, 63, 64, 1)]);
        // A gap of clean tiles always splits.
        t.clear();
        t.mark(Rect::new(0, 0, 1, 1));
        t.mark(Rect::new(200, 0, 1, 1));
        assert_eq!(runs(&t), vec![Rect::new(0, 0, 1, 1), Rect::new(200, 0, 1, 1)]);
    }

    /// Every marked pixel is covered by some run, for many random marks
    /// (a fixed xorshift sequence), and runs stay inside the area.
    #[test]
    fn runs_cover_every_marked_pixel() {
        let (w, h) = (203u16, 141u16);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: u16| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % m as u64) as u16
        };
        for _ in 0..200 {
            let mut t = TileSet::new(w, h);
            let mut want = vec![false; w as usize * h as usize];
            for _ in 0..1 + next(6) {
                let r = Rect::new(next(w + 10), next(h + 10), next(80), next(80));
                t.mark(r);
                for y in r.y as u32..r.bottom().min(h as u32) {
                    for x in r.x as u32..r.right().min(w as u32) {
                        want[y as usize * w as usize + x as usize] = true;
                    }
                }
            }
            let mut got = vec![false; want.len()];
            t.for_each_run(|r| {
                assert!(r.right() <= w as u32 && r.bottom() <= h as u32 && !r.is_empty());
                assert_eq!(r.y / TILE, (r.bottom() as u16 - 1) / TILE, "one tile row");
                for y in r.y..r.y + r.h {
                    for x in r.x..r.x + r.w {
                        got[y as usize * w as usize + x as usize] = true;
                    }
                }
            });
            for (i, (&m, &c)) in want.iter().zip(&got).enumerate() {
                assert!(!m || c, "pixel {i} marked but not in a run");
                let p = Rect::new((i % w as usize) as u16, (i / w as usize) as u16, 1, 1);
                assert!(!m || t.intersects(p), "pixel {i} marked but not intersecting");
            }
        }
    }
}
