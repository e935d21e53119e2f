//! Bounded byte buffers, allocated lazily from a pool.
//!
//! A [`Buf`] owns no memory while it is empty: storage is taken from the
//! [`Pool`] when bytes arrive and handed back when they are all consumed, so
//! an idle connection costs only its bookkeeping (the 16 KiB-per-idle-
//! connection budget). The storage has a fixed size that is the buffer's cap:
//! a full buffer is the signal to stop reading (backpressure), never a reason
//! to grow. Storage is initialised once when first allocated, so reads go
//! into initialised memory without `unsafe`.

/// Free storage blocks of one size, reused across connections.
pub struct Pool {
    block: usize,
    free: Vec<Vec<u8>>,
    max_free: usize,
}

impl Pool {
    /// Blocks of `block` bytes; at most `max_free` are kept for reuse.
    pub fn new(block: usize, max_free: usize) -> Self {
        Pool { block, free: Vec::new(), max_free }
    }

    pub fn block_size(&self) -> usize {
        self.block
    }

    fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_else(|| vec![0; self.block])
    }

    fn give(&mut self, v: Vec<u8>) {
        if self.free.len() < self.max_free && v.len() == self.block {
            self.free.push(v);
        }
    }
}

/// A byte queue with storage from a [`Pool`]: `store[start..end]` is pending.
/// Storage starts at one pool block and may grow up to `cap` bytes; `cap` is
/// never exceeded.
pub struct Buf {
    store: Vec<u8>,
    start: usize,
    end: usize,
    cap: usize,
}

impl Buf {
    /// An empty buffer that will hold at most `cap` bytes.
    pub const fn with_cap(cap: usize) -> Self {
        Buf { store: Vec::new(), start: 0, end: 0, cap }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Bytes that could still be appended before the cap.
    pub fn room(&self) -> usize {
        self.cap - self.len()
    }

    pub fn data(&self) -> &[u8] {
        &self.store[self.start..self.end]
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.store[self.start..self.end]
    }

    /// Drop `n` bytes from the front.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Write to `dst` until empty or `WouldBlock` (which clears `*writable`,
    /// the edge-triggered readiness we hold). Returns bytes written, or the
    /// error that ended the connection.
    pub fn write_to(&mut self, dst: &mut impl std::io::Write, writable: &mut bool) -> std::io::Result<usize> {
        use std::io::ErrorKind;
        let mut total = 0;
        while !self.is_empty() && *writable {
            match dst.write(self.data()) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.consume(n);
                    total += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => *writable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// Make sure `extra` more bytes fit after `end` (within the cap).
    fn make_room(&mut self, extra: usize, pool: &mut Pool) {
        if self.store.is_empty() {
            self.store = pool.take();
        }
        if self.store.len() - self.end >= extra {
            return;
        }
        if self.start > 0 {
            self.store.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.store.len() - self.end < extra && self.store.len() < self.cap {
            let want = (self.end + extra).max(self.store.len() * 2).min(self.cap);
            self.store.resize(want, 0);
        }
    }

    /// Space after the pending bytes (at least half a block when the cap
    /// allows), compacting or growing as needed.
    pub fn spare(&mut self, pool: &mut Pool) -> &mut [u8] {
        let want = (pool.block_size() / 2).min(self.room());
        self.make_room(want, pool);
        let limit = (self.start + self.cap).min(self.store.len());
        &mut self.store[self.end..limit]
    }

    /// Mark `n` bytes of [`Buf::spare`] as filled.
    pub fn commit(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.store.len());
        self.end += n;
    }

    /// Append `bytes` if they fit under the cap; returns false (appending
    /// nothing) if not.
    pub fn push(&mut self, bytes: &[u8], pool: &mut Pool) -> bool {
        if bytes.is_empty() {
            return true;
        }
        if bytes.len() > self.room() {
            return false;
        }
        self.make_room(bytes.len(), pool);
        self.store[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
        true
    }

    /// Give the storage back to the pool if nothing is pending.
    pub fn release_if_empty(&mut self, pool: &mut Pool) {
        if self.is_empty() && !self.store.is_empty() {
            pool.give(std::mem::take(&mut self.store));
        }
    }

    /// Give the storage back, dropping anything pending.
    pub fn release(&mut self, pool: &mut Pool) {
        self.start = 0;
        self.end = 0;
        if !self.store.is_empty() {
            pool.give(std::mem::take(&mut self.store));
        }
    }

    /// Bytes of storage held (for memory accounting).
    pub fn capacity(&self) -> usize {
        self.store.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_buffers_hold_no_storage() {
        let mut pool = Pool::new(16, 4);
        let mut b = Buf::with_cap(16);
        assert_eq!(b.capacity(), 0);
        assert!(b.push(b"hello", &mut pool));
        assert_eq!(b.capacity(), 16);
        b.consume(5);
        b.release_if_empty(&mut pool);
        assert_eq!(b.capacity(), 0);
        assert_eq!(pool.free.len(), 1);
    }

    #[test]
    fn push_refuses_past_the_cap_and_compacts() {
        let mut pool = Pool::new(8, 4);
        let mut b = Buf::with_cap(8);
        assert!(b.push(b"abcdef", &mut pool));
        assert!(!b.push(b"ghi", &mut pool));
        b.consume(4);
        assert!(b.push(b"ghijkl", &mut pool));
        assert_eq!(b.data(), b"efghijkl");
    }

    #[test]
    fn spare_and_commit() {
        let mut pool = Pool::new(8, 4);
        let mut b = Buf::with_cap(8);
        let s = b.spare(&mut pool);
        assert_eq!(s.len(), 8);
        s[..3].copy_from_slice(b"xyz");
        b.commit(3);
        b.consume(1);
        assert_eq!(b.data(), b"yz");
        assert_eq!(b.spare(&mut pool).len(), 5);
    }

    #[test]
    fn grows_up_to_the_cap_only() {
        let mut pool = Pool::new(8, 4);
        let mut b = Buf::with_cap(20);
        assert!(b.push(&[1; 15], &mut pool));
        assert_eq!(b.capacity(), 16);
        assert!(b.push(&[2; 5], &mut pool));
        assert!(!b.push(&[3; 1], &mut pool));
        assert_eq!(b.len(), 20);
        b.consume(20);
        b.release_if_empty(&mut pool);
        assert!(pool.free.is_empty(), "grown storage is not pooled");
    }
}
