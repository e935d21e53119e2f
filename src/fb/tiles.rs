//! A set of damaged 64×64 tiles, one bit each.

use super::{Rect, TILE};

/// Damage as a bitmap of [`TILE`]-sized tiles covering a `width × height` area.
#[derive(Clone, Debug)]
pub struct TileSet {
    width: u16,
    height: u16,
    cols: usize,
    rows: usize,
    bits: Vec<u64>,
}

impl TileSet {
    pub fn new(width: u16, height: u16) -> Self {
        let cols = (width as usize).div_ceil(TILE as usize);
        let rows = (height as usize).div_ceil(TILE as usize);
        TileSet { width, height, cols, rows, bits: vec![0; (cols * rows).div_ceil(64)] }
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

    fn set(&mut self, i: usize) {
        self.bits[i / 64] |= 1 << (i % 64);
    }

    pub fn contains_tile(&self, col: usize, row: usize) -> bool {
        let i = row * self.cols + col;
        col < self.cols && row < self.rows && self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    /// Mark every tile that `r` touches (clipped to the area).
    pub fn mark(&mut self, r: Rect) {
        if r.is_empty() {
            return;
        }
        let x1 = (r.right().min(self.width as u32)) as usize;
        let y1 = (r.bottom().min(self.height as u32)) as usize;
        if x1 <= r.x as usize || y1 <= r.y as usize {
            return;
        }
        let t = TILE as usize;
        for row in r.y as usize / t..y1.div_ceil(t) {
            for col in r.x as usize / t..x1.div_ceil(t) {
                self.set(row * self.cols + col);
            }
        }
    }

    /// Whether any tile `r` touches is marked (`r` clipped to the area).
    pub fn intersects(&self, r: Rect) -> bool {
        if r.is_empty() {
            return false;
        }
        let x1 = (r.right().min(self.width as u32)) as usize;
        let y1 = (r.bottom().min(self.height as u32)) as usize;
        let t = TILE as usize;
        (r.y as usize / t..y1.div_ceil(t))
            .any(|row| (r.x as usize / t..x1.div_ceil(t)).any(|col| self.contains_tile(col, row)))
    }

    pub fn mark_all(&mut self) {
        for i in 0..self.cols * self.rows {
            self.set(i);
        }
    }

    pub fn clear(&mut self) {
        self.bits.iter_mut().for_each(|w| *w = 0);
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    pub fn count(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Add every tile of `other` (which must have the same shape; a
    /// different shape marks everything, the safe answer).
    pub fn union_from(&mut self, other: &TileSet) {
        if other.cols != self.cols || other.rows != self.rows {
            self.reset(other.width, other.height);
            return;
        }
        for (a, b) in self.bits.iter_mut().zip(&other.bits) {
            *a |= *b;
        }
    }

    /// Damaged areas as rectangles: runs of adjacent tiles within a tile row,
    /// clipped to the area. Calls `f` for each.
    pub fn for_each_run(&self, mut f: impl FnMut(Rect)) {
        let t = TILE as u32;
        for row in 0..self.rows {
            let mut col = 0;
            while col < self.cols {
                if !self.contains_tile(col, row) {
                    col += 1;
                    continue;
                }
                let start = col;
                while col < self.cols && self.contains_tile(col, row) {
                    col += 1;
                }
                let x = start as u32 * t;
                let y = row as u32 * t;
                let w = (col as u32 * t).min(self.width as u32) - x;
                let h = (y + t).min(self.height as u32) - y;
                f(Rect::new(x as u16, y as u16, w as u16, h as u16));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_clipped_to_the_area() {
        let mut t = TileSet::new(130, 70);
        t.mark(Rect::new(0, 0, 130, 1));
        let mut runs = vec![];
        t.for_each_run(|r| runs.push(r));
        assert_eq!(runs, vec![Rect::new(0, 0, 130, 64)]);
        t.mark(Rect::new(129, 69, 1, 1));
        runs.clear();
        t.for_each_run(|r| runs.push(r));
        assert_eq!(runs[1], Rect::new(128, 64, 2, 6));
    }

    #[test]
    fn marking_outside_is_ignored() {
        let mut t = TileSet::new(64, 64);
        t.mark(Rect::new(64, 0, 10, 10));
        assert!(t.is_empty());
    }
}
