//! Fine-grained timers (gateway pacing, demo animation): a min-heap of
//! (deadline, connection key, generation). Cancelled or stale timers are not
//! removed; the owner checks the generation when one fires.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize, u64)>>,
}

impl Timers {
    pub fn add(&mut self, at: Instant, key: usize, gen: u64) {
        self.heap.push(Reverse((at, key, gen)));
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Pop every timer due at `now`.
    pub fn expired(&mut self, now: Instant) -> Vec<(usize, u64)> {
        let mut out = Vec::new();
        while let Some(Reverse((t, key, gen))) = self.heap.peek().copied() {
            if t > now {
                break;
            }
            self.heap.pop();
            out.push((key, gen));
        }
        out
    }
}
