//! Per-viewer pacing: how many bytes may be in flight to one browser, and
//! what JPEG quality it gets. Sans-IO: every input carries `now`.
//!
//! "In flight" = WebSocket bytes handed to the viewer's socket (after
//! permessage-deflate, frame headers included) that belong to frames not yet
//! acknowledged, plus bytes of the frame being sent. A `FrameAck` means the
//! browser has received and painted the frame, so its bytes have left every
//! buffer on the way.
//!
//! The estimator is a small delivery-rate controller in the spirit of BBR:
//!
//! * **delivery rate**: when frame *f* is acknowledged, the bytes
//!   acknowledged since *f* started, divided by the time since the
//!   acknowledgement before *f* started (or since *f* started, when nothing
//!   was in flight then). The estimate is the largest of the last 8 samples;
//!   a sample taken while the gateway had less to send than it was allowed
//!   (*app-limited*) only counts when it raises the estimate, so an idle
//!   viewer keeps the rate it last showed.
//! * **path delay**: for a frame sent into an empty pipe (nothing in
//!   flight) and small (≤ 4 KiB or 10 ms at the estimated rate), end of its
//!   bytes → its ack, less its own bytes' time at the estimated rate:
//!   propagation plus the browser's decode-and-paint time.
//!   The minimum over the last 10 s is the path's delay (`min_rtt`). Frames
//!   sent behind others would count the standing queue as delay (and the
//!   budget would grow with it), so a viewer that is never idle is made to
//!   *drain* when its last such sample is 5 s old: no new frame until
//!   everything in flight is acknowledged, then a small one into the empty
//!   pipe (BBR's PROBE_RTT, coarser).
//! * **queueing**: a sample that was not app-limited and whose round trip
//!   exceeds what a full budget should take by 2× (3 × min RTT + 2 frame
//!   intervals) says the link got slower than the estimate: the estimate
//!   drops to that sample at once instead of waiting for the maximum to age
//!   out.
//! * **budget** = rate × (min RTT + one frame interval), clamped: enough to
//!   keep the link busy over a round trip, plus one frame interval of data
//!   queued ahead of anything new. A frame may start only while the bytes
//!   in flight are below the budget, and a frame is cut into parts no larger
//!   than the room left (`room`).
//!
//! Quality ([`Quality`]): a ceiling from the rate (faster link, higher
//! quality), lowered one level each time the viewer stays backlogged (damage
//! waiting, no room) for 300 ms, raised one level per second of not being
//! backlogged, never above the ceiling.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Nominal frame interval: the data a new change may queue behind.
pub const FRAME_INTERVAL: Duration = Duration::from_millis(33);
/// Rate assumed before the first acknowledgement, bytes/s.
pub const INITIAL_RATE: f64 = 1_000_000.0;
/// Round trip assumed before the first acknowledgement.
pub const INITIAL_RTT: Duration = Duration::from_millis(20);
/// Bounds of the in-flight budget, bytes.
pub const MIN_BUDGET: u64 = 16 << 10;
pub const MAX_BUDGET: u64 = 4 << 20;
/// Frames in flight at most (tiny frames on a long path are still bounded).
pub const MAX_FRAMES: usize = 32;
/// A part takes at most a quarter of the budget (but at least this), so
/// several frames are in flight and acks keep coming while the link is busy.
pub const MIN_PART: u64 = 4 << 10;
/// Delivery-rate samples kept for the maximum.
const RATE_SAMPLES: usize = 8;
/// Window of the minimum round trip.
const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// A minimum this old is re-measured by draining the pipe.
const PROBE_AFTER: Duration = Duration::from_secs(5);

/// One frame sent and not yet acknowledged.
#[derive(Debug, Clone, Copy)]
struct Flight {
    id: u32,
    /// `Pacer::sent` once the frame's last byte was handed over.
    end: u64,
    /// When its last byte was handed over.
    at: Instant,
    /// Its own bytes.
    own: u64,
    /// It was sent into an empty pipe.
    idle: bool,
    /// `Pacer::acked` and the time of the latest ack when the frame started.
    delivered: u64,
    delivered_at: Instant,
    app_limited: bool,
}

/// The frame being sent (started, not ended).
#[derive(Debug, Clone, Copy)]
struct Open {
    delivered: u64,
    delivered_at: Instant,
    /// Nothing was in flight: the sample spans an idle gap (app-limited),
    /// and the round trip has no queue in it.
    idle: bool,
    /// Less than half the budget was in flight.
    thin: bool,
    /// `Pacer::sent` when it started.
    start: u64,
}

#[derive(Debug)]
pub struct Pacer {
    sent: u64,
    acked: u64,
    flights: VecDeque<Flight>,
    open: Option<Open>,
    /// The frame whose end was composed; its `end` is known once the bytes
    /// of that chunk were counted (`on_wire`).
    ending: Option<(u32, bool)>,
    last_ack: Option<Instant>,
    samples: [f64; RATE_SAMPLES],
    n_samples: usize,
    next_sample: usize,
    rate: f64,
    min_rtt: Option<(Duration, Instant)>,
    last_rtt: Option<Duration>,
    /// Waiting for everything in flight to be acknowledged (see module docs).
    draining: bool,
    /// The rate comes from a sample of a busy link (not only app-limited).
    trusted: bool,
    /// When the path delay was last sampled.
    probed_at: Option<Instant>,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer {
            sent: 0,
            acked: 0,
            flights: VecDeque::with_capacity(MAX_FRAMES),
            open: None,
            ending: None,
            last_ack: None,
            samples: [0.0; RATE_SAMPLES],
            n_samples: 0,
            next_sample: 0,
            rate: INITIAL_RATE,
            min_rtt: None,
            last_rtt: None,
            draining: false,
            trusted: false,
            probed_at: None,
        }
    }
}

impl Pacer {
    /// Bytes of unacknowledged frames (and of the frame being sent).
    pub fn in_flight(&self) -> u64 {
        self.sent - self.acked
    }

    /// Delivery-rate estimate, bytes/s.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn min_rtt(&self) -> Duration {
        self.min_rtt.map_or(INITIAL_RTT, |(d, _)| d)
    }

    /// The latest round-trip sample, if any.
    pub fn last_rtt(&self) -> Option<Duration> {
        self.last_rtt
    }

    /// Bytes allowed in flight.
    pub fn budget(&self) -> u64 {
        let secs = (self.min_rtt() + FRAME_INTERVAL).as_secs_f64();
        ((self.rate * secs) as u64).clamp(MIN_BUDGET, MAX_BUDGET)
    }

    /// Bytes the next frame may take (0: wait for acknowledgements).
    pub fn room(&self) -> u64 {
        if self.flights.len() >= MAX_FRAMES || (self.draining && !self.flights.is_empty()) {
            return 0;
        }
        self.budget().saturating_sub(self.in_flight())
    }

    /// Bytes the next part should take at most: the room, and no more than
    /// a quarter of the budget (a frame never has the link to itself, so
    /// the rate is measured between acks rather than over idle gaps).
    /// 0: wait for acknowledgements.
    pub fn part_limit(&self) -> u64 {
        let room = self.room();
        if room == 0 {
            return 0;
        }
        if self.draining {
            // The probe into the empty pipe: small, so its own transmission
            // time (subtracted from its round trip) hardly matters.
            return room.min(MIN_PART);
        }
        room.min((self.budget() / 4).max(MIN_PART))
    }

    /// Frames sent and not acknowledged (the one being sent included).
    pub fn frames_in_flight(&self) -> usize {
        self.flights.len() + usize::from(self.open.is_some() || self.ending.is_some())
    }

    /// A frame starts (its first bytes are about to be handed over).
    pub fn frame_started(&mut self, now: Instant) {
        // No frame in flight. (Bytes sent between frames, state messages,
        // count as in flight until a later frame's ack covers them.)
        let idle = self.flights.is_empty();
        // Less than half the budget in flight: the link was not kept busy,
        // so the rate over this frame says little about its capacity.
        let thin = self.in_flight() < self.budget() / 2;
        let delivered_at = if idle { now } else { self.last_ack.unwrap_or(now) };
        self.open = Some(Open { delivered: self.acked, delivered_at, idle, thin, start: self.sent });
        if idle {
            self.draining = false;
        }
    }

    /// The frame `id` ends with the bytes being handed over now.
    /// `app_limited`: it took less than the room it had (no damage was left
    /// waiting).
    pub fn frame_ended(&mut self, id: u32, app_limited: bool) {
        self.ending = Some((id, app_limited));
    }

    /// `n` bytes were handed to the socket (after compression and framing).
    pub fn on_wire(&mut self, n: usize, now: Instant) {
        self.sent += n as u64;
        if let Some((id, app_limited)) = self.ending.take() {
            let open = self.open.take().unwrap_or(Open {
                delivered: self.acked,
                delivered_at: now,
                idle: false,
                thin: true,
                start: self.sent - n as u64,
            });
            if self.flights.len() == MAX_FRAMES {
                self.flights.pop_front(); // cannot happen while `room` is obeyed
            }
            self.flights.push_back(Flight {
                id,
                end: self.sent,
                at: now,
                own: self.sent - open.start,
                idle: open.idle,
                delivered: open.delivered,
                delivered_at: open.delivered_at,
                app_limited: app_limited || open.thin,
            });
        }
    }

    /// `FrameAck(id)`: cumulative. Returns whether it acknowledged anything.
    pub fn on_ack(&mut self, id: u32, now: Instant) -> bool {
        let mut last = None;
        while let Some(f) = self.flights.front() {
            // Wrapping order: f.id ≤ id.
            if id.wrapping_sub(f.id) >= 1 << 31 {
                break;
            }
            last = self.flights.pop_front();
        }
        let Some(f) = last else { return false };
        self.acked = f.end;
        self.last_ack = Some(now);
        let rtt = now.saturating_duration_since(f.at);
        self.last_rtt = Some(rtt);
        let span = now.saturating_duration_since(f.delivered_at).max(Duration::from_millis(1));
        let sample = (self.acked - f.delivered) as f64 / span.as_secs_f64();
        let queueing = rtt > 3 * self.min_rtt() + 2 * FRAME_INTERVAL;
        if !f.app_limited && queueing {
            // The link is slower than we thought: believe this sample now.
            self.n_samples = 0;
            self.next_sample = 0;
        }
        self.trusted |= !f.app_limited;
        if !f.app_limited || sample > self.rate || self.n_samples == 0 {
            self.samples[self.next_sample] = sample;
            self.next_sample = (self.next_sample + 1) % RATE_SAMPLES;
            self.n_samples = (self.n_samples + 1).min(RATE_SAMPLES);
            self.rate = self.samples[..self.n_samples].iter().copied().fold(0.0, f64::max).max(1.0);
        }
        let own = Duration::from_secs_f64(f.own as f64 / self.rate);
        if f.idle && self.trusted && (f.own <= MIN_PART || own <= Duration::from_millis(10)) {
            let path = rtt.saturating_sub(own).max(Duration::from_millis(1));
            self.probed_at = Some(now);
            match self.min_rtt {
                Some((m, at)) if path > m && now.saturating_duration_since(at) < MIN_RTT_WINDOW => {}
                _ => self.min_rtt = Some((path, now)),
            }
        }
        if self.trusted && self.probed_at.is_none_or(|at| now.saturating_duration_since(at) >= PROBE_AFTER) {
            self.draining = true;
        }
        true
    }
}

/// JPEG quality levels a viewer moves between.
pub const LEVELS: [u8; 8] = [20, 30, 40, 50, 60, 70, 80, 90];
/// Backlogged this long: one level down.
const BACKLOG_STEP: Duration = Duration::from_millis(300);
/// Not backlogged this long: one level up.
const CALM_STEP: Duration = Duration::from_secs(1);

/// The highest level a link of `rate` bytes/s gets.
pub fn ceiling(rate: f64) -> usize {
    const FLOORS: [f64; 7] = [60e3, 125e3, 250e3, 500e3, 1e6, 2e6, 4e6];
    FLOORS.iter().filter(|&&f| rate >= f).count()
}

/// A viewer's JPEG quality level (see the module docs).
#[derive(Debug, Clone)]
pub struct Quality {
    level: usize,
    backlog_since: Option<Instant>,
    calm_since: Option<Instant>,
}

impl Default for Quality {
    fn default() -> Self {
        Quality { level: ceiling(INITIAL_RATE), backlog_since: None, calm_since: None }
    }
}

impl Quality {
    pub fn level(&self) -> usize {
        self.level
    }

    /// The JPEG quality in force.
    pub fn jpeg(&self) -> u8 {
        LEVELS[self.level]
    }

    /// Update from what the viewer's state is at `now`.
    pub fn update(&mut self, now: Instant, backlogged: bool, rate: f64) {
        let ceil = ceiling(rate);
        if backlogged {
            self.calm_since = None;
            let since = *self.backlog_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= BACKLOG_STEP {
                self.level = self.level.saturating_sub(1);
                self.backlog_since = Some(now);
            }
        } else {
            self.backlog_since = None;
            let since = *self.calm_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= CALM_STEP && self.level < ceil {
                self.level += 1;
                self.calm_since = Some(now);
            }
        }
        self.level = self.level.min(ceil);
    }
}

#[cfg(test)]
mod tests;
