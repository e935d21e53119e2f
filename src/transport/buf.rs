//! The one byte buffer of every layer: capped, allocated lazily from a pool.
//!
//! A [`Buf`] owns no memory while it is empty: storage is taken from the
//! [`Pool`] when bytes arrive and handed back when they are all consumed, so
//! an idle connection costs only its bookkeeping. `cap` bounds the pending
//! bytes: a full buffer is the signal to stop reading (backpressure), never a
//! reason to grow past it.
//!
//! ```text
//!   store: Vec<u8>   [ consumed | pending ............ | spare (initialised up to `init`) ]
//!                    0          start                  store.len()        init     capacity
//! ```
//!
//! Two ways in, both without an intermediate copy:
//! * a socket read goes into [`Buf::fill_with`]'s spare slice (initialised
//!   memory: zeroed once per allocation, never per read);
//! * an encoder appends to [`Buf::append`]'s `&mut Vec<u8>` (HTTP responses,
//!   WebSocket frames, composed viewer frames, RFB messages), and
//!   [`Buf::close_gap`] removes the unused part of a reserved frame header.

use std::io;

/// Free storage, reused across connections: blocks of one size (what most
/// buffers need), and a few larger ones (a viewer's composed frames, a
/// burst), so that a buffer that had to grow does not cost an allocation
/// and a copy every time it fills again.
pub struct Pool {
    block: usize,
    free: Vec<Vec<u8>>,
    max_free: usize,
    /// Larger storage with the length of its initialised prefix.
    large: Vec<(Vec<u8>, usize)>,
}

/// Larger storage kept at most: this many, each up to `LARGE_MAX` bytes.
const LARGE_KEPT: usize = 8;
const LARGE_MAX: usize = 1 << 20;

impl Pool {
    /// Blocks of `block` bytes; at most `max_free` are kept for reuse.
    pub fn new(block: usize, max_free: usize) -> Self {
        Pool { block, free: Vec::new(), max_free, large: Vec::new() }
    }

    pub fn block_size(&self) -> usize {
        self.block
    }

    /// An empty Vec of at least `want` capacity (a block, or larger) and how
    /// many of its bytes are initialised (a block's are all).
    fn take(&mut self, want: usize) -> (Vec<u8>, usize) {
        if want <= self.block {
            let v = self.free.pop().unwrap_or_else(|| {
                let mut v = vec![0; self.block];
                v.clear();
                v
            });
            return (v, self.block);
        }
        match self.large.iter().position(|(v, _)| v.capacity() >= want) {
            Some(i) => self.large.swap_remove(i),
            None => (Vec::with_capacity(want), 0),
        }
    }

    /// Keep `v` (emptied) for reuse: a block, or larger storage up to
    /// `LARGE_MAX` while fewer than `LARGE_KEPT` are kept (the smallest
    /// gives way to a larger one).
    fn give(&mut self, mut v: Vec<u8>, init: usize) {
        v.clear();
        let cap = v.capacity();
        if cap == self.block {
            if self.free.len() < self.max_free {
                self.free.push(v);
            }
        } else if cap > self.block && cap <= LARGE_MAX {
            if self.large.len() < LARGE_KEPT {
                self.large.push((v, init));
            } else if let Some(i) = self.large.iter().position(|(l, _)| l.capacity() < cap) {
                self.large[i] = (v, init);
            }
        }
    }
}

/// A byte queue with storage from a [`Pool`]: `store[start..]` is pending.
pub struct Buf {
    store: Vec<u8>,
    start: usize,
    /// `store`'s bytes below this index are initialised (≥ `store.len()`).
    init: usize,
    cap: usize,
}

impl Buf {
    /// An empty buffer that will hold at most `cap` pending bytes.
    pub const fn with_cap(cap: usize) -> Self {
        Buf { store: Vec::new(), start: 0, init: 0, cap }
    }

    pub fn len(&self) -> usize {
        self.store.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.store.len() == self.start
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Change the cap (pending bytes are kept even if they exceed it).
    pub fn set_cap(&mut self, cap: usize) {
        self.cap = cap;
    }

    /// Bytes that could still be appended before the cap.
    pub fn room(&self) -> usize {
        self.cap.saturating_sub(self.len())
    }

    pub fn data(&self) -> &[u8] {
        &self.store[self.start..]
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.store[self.start..]
    }

    /// Drop `n` bytes from the front.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n.min(self.len());
        if self.start == self.store.len() {
            self.start = 0;
            self.store.clear();
        }
    }

    /// Storage for `extra` more bytes after the pending ones: from the pool
    /// when there is none, else by moving the pending bytes to the front
    /// (when that makes room or they are few), else by moving them to
    /// larger storage (only the pending bytes are copied).
    fn reserve(&mut self, extra: usize, pool: &mut Pool) {
        if self.store.capacity() == 0 {
            (self.store, self.init) = pool.take(extra);
            self.start = 0;
            return;
        }
        let fits = self.store.capacity() - self.store.len() >= extra;
        if self.start > 0 && (!fits || self.start >= self.len()) {
            self.store.copy_within(self.start.., 0);
            self.store.truncate(self.len());
            self.start = 0;
        }
        if self.store.capacity() - self.store.len() < extra {
            let want = (self.len() + extra).max(2 * self.store.capacity());
            let (mut larger, init) = pool.take(want);
            larger.extend_from_slice(&self.store[self.start..]);
            let old = std::mem::replace(&mut self.store, larger);
            pool.give(old, self.init);
            self.init = init.max(self.store.len());
            self.start = 0;
        }
    }

    /// The pending bytes as a Vec to append to. The caller appends at most
    /// [`Buf::room`] bytes (or whatever bound its contract states); `want`
    /// is reserved up front (a hint, not a limit).
    pub fn append(&mut self, want: usize, pool: &mut Pool) -> &mut Vec<u8> {
        self.reserve(want, pool);
        &mut self.store
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
        self.append(bytes.len(), pool).extend_from_slice(bytes);
        true
    }

    /// Let `read` fill spare bytes after the pending ones: what the storage
    /// has free (at least half a pool block, growing only for that), at
    /// most `max` and within the cap; it returns how many it filled. Its
    /// `io::Error` is passed on with nothing appended.
    pub fn fill_with(
        &mut self,
        max: usize,
        pool: &mut Pool,
        read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let limit = max.min(self.room());
        if limit == 0 {
            return Ok(0);
        }
        self.reserve(limit.min(pool.block_size() / 2), pool);
        // Growth may continue inside the existing allocation: its bytes past
        // `init` are not known to be initialised (`resize` below covers them).
        let len = self.store.len();
        let want = (self.store.capacity() - len).min(limit);
        if len + want > self.init {
            self.store.resize(len + want, 0);
            self.init = len + want;
        } else {
            // SAFETY: `len + want <= init <= capacity` (`want` is at most the
            // spare capacity; `init` never exceeds the capacity of the
            // storage it describes), and every byte below `init` has been
            // written before: zeroed when the storage was made (`Pool::take`)
            // or by the `resize` above, or by data later truncated away.
            // Truncation and growth of a `Vec<u8>` never un-initialise bytes.
            // Zeroing instead would cost a memset of up to 64 KiB per socket
            // read (benches/README.md, "Buffers").
            unsafe { self.store.set_len(len + want) };
        }
        let result = read(&mut self.store[len..len + want]);
        let n = *result.as_ref().unwrap_or(&0);
        self.store.truncate(len + n.min(want));
        result.map(|n| n.min(want))
    }

    /// Remove `gap` bytes at `at` (an absolute index into the pending bytes,
    /// as `data().len()` measured before a reserved header), moving whichever
    /// side is shorter: the pending bytes before the gap or those after it.
    pub fn close_gap(&mut self, at: usize, gap: usize) {
        if gap == 0 {
            return;
        }
        let at = self.start + at;
        debug_assert!(at + gap <= self.store.len());
        let before = at - self.start;
        let after = self.store.len() - at - gap;
        if before <= after {
            self.store.copy_within(self.start..at, self.start + gap);
            self.start += gap;
        } else {
            self.store.copy_within(at + gap.., at);
            self.store.truncate(self.store.len() - gap);
        }
    }

    /// Write to `dst` until empty or `WouldBlock` (which clears `*writable`,
    /// the edge-triggered readiness we hold). Returns bytes written, or the
    /// error that ended the connection.
    pub fn write_to(&mut self, dst: &mut impl io::Write, writable: &mut bool) -> io::Result<usize> {
        use io::ErrorKind;
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

    /// Give the storage back to the pool if nothing is pending.
    pub fn release_if_empty(&mut self, pool: &mut Pool) {
        if self.is_empty() && self.store.capacity() > 0 {
            pool.give(std::mem::take(&mut self.store), self.init);
            self.init = 0;
            self.start = 0;
        }
    }

    /// Give the storage back, dropping anything pending.
    pub fn release(&mut self, pool: &mut Pool) {
        self.store.clear();
        self.start = 0;
        self.release_if_empty(pool);
    }

    /// Bytes of storage held (for memory accounting).
    pub fn capacity(&self) -> usize {
        self.store.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(b: &mut Buf, pool: &mut Pool, bytes: &[u8]) -> usize {
        b.fill_with(bytes.len(), pool, |spare| {
            let n = spare.len().min(bytes.len());
            spare[..n].copy_from_slice(&bytes[..n]);
            Ok(n)
        })
        .unwrap()
    }

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
    fn release_drops_partly_consumed_data() {
        let mut pool = Pool::new(16, 4);
        let mut b = Buf::with_cap(16);
        assert!(b.push(b"hello world", &mut pool));
        b.consume(3);
        b.release(&mut pool);
        assert_eq!((b.len(), b.room(), b.capacity()), (0, 16, 0));
        assert!(b.push(b"again", &mut pool));
        assert_eq!(b.data(), b"again");
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
        assert_eq!(b.capacity(), 8, "compacted, not grown");
    }

    #[test]
    fn fill_stays_within_the_cap_and_reuses_initialised_storage() {
        let mut pool = Pool::new(8, 4);
        let mut b = Buf::with_cap(8);
        assert_eq!(fill(&mut b, &mut pool, b"xyz"), 3);
        b.consume(1);
        assert_eq!(b.data(), b"yz");
        // What the storage has free now (no compaction for it)...
        assert_eq!(fill(&mut b, &mut pool, b"0123456789"), 5);
        assert_eq!(b.data(), b"yz01234");
        // ...then the rest of the room, after compacting.
        assert_eq!(fill(&mut b, &mut pool, b"5678"), 1);
        assert_eq!(b.data(), b"yz012345");
        assert_eq!(fill(&mut b, &mut pool, b"more"), 0, "full: nothing read");
        b.consume(8);
        // A failed read appends nothing.
        let e = b.fill_with(4, &mut pool, |_| Err(io::ErrorKind::WouldBlock.into()));
        assert!(e.is_err());
        assert!(b.is_empty());
    }

    #[test]
    fn grows_up_to_the_cap_only() {
        let mut pool = Pool::new(8, 4);
        let mut b = Buf::with_cap(20);
        assert!(b.push(&[1; 15], &mut pool));
        assert!(b.capacity() >= 15);
        assert!(b.push(&[2; 5], &mut pool));
        assert!(!b.push(&[3; 1], &mut pool));
        assert_eq!(b.len(), 20);
        assert_eq!(fill(&mut b, &mut pool, b"x"), 0);
        b.consume(20);
        b.release_if_empty(&mut pool);
        assert!(pool.free.is_empty(), "grown storage is not pooled");
        // After growth, reads still see their own bytes only.
        assert!(b.push(&[9; 10], &mut pool));
        let mut n = 0;
        while n < 10 {
            n += fill(&mut b, &mut pool, &[7; 10][n..]);
        }
        assert_eq!(b.data(), [[9u8; 10], [7u8; 10]].concat());
    }

    #[test]
    fn close_gap_moves_the_shorter_side() {
        let mut pool = Pool::new(64, 4);
        for (before, after) in [(2usize, 20usize), (20, 2), (0, 5), (5, 0)] {
            let mut b = Buf::with_cap(64);
            let pre: Vec<u8> = (0..before as u8).collect();
            let post: Vec<u8> = (100..100 + after as u8).collect();
            b.push(&pre, &mut pool);
            let v = b.append(0, &mut pool);
            v.extend_from_slice(&[0xee; 6]);
            v.extend_from_slice(&post);
            b.close_gap(before, 6);
            assert_eq!(b.data(), [pre, post].concat(), "{before}/{after}");
        }
    }
}
