//! Per-viewer pacing: when the next frame (or part of a picture) may go to
//! one browser and how large a part should be. A delivery-rate controller
//! after BBR (Cardwell et al., "BBR: Congestion-Based Congestion Control",
//! ACM Queue 2016; draft-cardwell-iccrg-bbr-congestion-control), working
//! on frames instead of packets. Sans-IO: every input carries `now`.
//!
//! "Sent" = WebSocket bytes handed to the viewer's socket (after
//! permessage-deflate, frame headers included): the bytes the link really
//! takes, less TCP/IP headers. Each frame or part is one *flight*; it is
//! delivered when the browser says it arrived (`Received`, sent on receipt,
//! cumulative), so the estimates describe the network, not the browser's
//! decode and paint; those are bounded apart: a frame counts as unpainted
//! until its `FrameAck` (sent after paint, cumulative; it also says the
//! frame arrived).
//!
//! * **Delivery rate** (BBR's rate sample): when a flight is acknowledged,
//!   the bytes delivered since it was sent divided by the longer of its send
//!   interval and its ack interval; or, when larger, its *dispersion*: a
//!   flight sent before the previous receipt came in queued behind that
//!   flight, so the bytes of a run of such flights over the time between
//!   their receipts is the bottleneck's rate. The span is 50 ms back when
//!   the run is that long, else the whole run (a picture's burst): a browser
//!   handles a message up to about an animation frame late, so the gap
//!   between two receipts alone can be half the link's time. Never faster
//!   than the flights were sent; receipts closer than 0.8 × their flights'
//!   send spacing or than a quarter of `min_rtt` were bunched by the
//!   browser and are not used; one sample at most doubles the estimate.
//!   Pictures are bursts shorter than a round trip, which only dispersion
//!   can measure. The bottleneck bandwidth `bw` is the
//!   largest sample of the last 10 round trips; a sample taken while the
//!   gateway had less to send than allowed (*app-limited*) only counts when
//!   it raises the estimate, so an idle viewer keeps the rate it showed.
//! * **Path delay** `min_rtt`: the smallest round trip (last byte handed
//!   over → `Received`) of the last 10 s. It includes the flight's own
//!   transmission (about one part) and the browser's handling of the
//!   message.
//! * **Pacing**: flights leave at `gain × bw` (each flight moves the next
//!   send time on by its bytes / pacing rate, with one part of burst
//!   allowed after idle), so the bottleneck queue stays near empty and a
//!   new small change waits behind about one part, not a buffer.
//! * **Pictures** (`burst`): the parts of a picture go at up to twice the
//!   estimate while no queue stands (the latest round trip within a
//!   quarter of `min_rtt`). A viewer that only ever gets pictures is
//!   app-limited between them, and pacing at the estimate would only ever
//!   measure the estimate; the picture's burst shows a faster link and
//!   arrives sooner, and a queue it starts stops it.
//! * **Window**: bytes in flight stay below `cwnd = 2 × bw × min_rtt` plus
//!   two parts (acks after paint come in bunches), at most 4 MiB; at most
//!   32 flights and 16 frames unpainted (a hidden page, which paints
//!   nothing, gets no more; at 8 a refinement's parts, each a frame of
//!   ~15 ms of the link, waited for paints on a 4 Mbit/s link).
//! * **Modes**: *Startup* (gain 2.89: doubles the rate each round trip
//!   until three rounds bring less than 25 % more, or, from the second
//!   round on, a queue shows: a round trip 50 % or 20 ms over `min_rtt`
//!   with a full pipe; it paces at least one initial window per round
//!   trip), *Drain* (gain 1/2.89
//!   until the queue Startup built is gone), *ProbeBw* (gains 1.25, 0.75,
//!   then 1 for six phases of one `min_rtt` each: a periodic probe finds
//!   bandwidth that appeared, the next phase drains what the probe
//!   queued; a cruising phase paces at 0.9 while the latest round trip
//!   exceeds `min_rtt` by a quarter, so the maximum's overestimate does not
//!   build a standing queue; a probe that raised the estimate by 20 % goes
//!   back to Startup: the link has more, maybe much more), *ProbeRtt* (when `min_rtt` was not re-measured for 10 s:
//!   one part in flight at most for 200 ms, so a sample without queue
//!   comes in).
//! * **Link got slower**: samples that were not app-limited, each with a
//!   round trip over 2 × `min_rtt` + 20 ms and a rate under 3/4 of the
//!   estimate, for at least two path delays (50 ms at least: not one bunch
//!   of receipts a busy browser let through at once), replace the estimate
//!   at once rather than waiting 10 rounds for the maximum to age out (the
//!   queue they show would otherwise persist).
//!
//! A *part* is the unit the pacer releases: about 15 ms of the link
//! (`bw × PART_TIME`, 4 KiB..256 KiB), so a part never holds a small change
//! back for long and several are in flight per round trip.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Window before the first delivery-rate sample (about TCP's initial window
/// of ten segments, twice).
pub const INITIAL_CWND: u64 = 32 << 10;
/// Largest window (memory per viewer in the browser and on the way).
pub const MAX_CWND: u64 = 4 << 20;
/// Flights (frames and parts) unacknowledged at most.
pub const MAX_FRAMES: usize = 32;
/// Frames (not parts) sent and not yet painted at most.
pub const MAX_UNPAINTED: usize = 16;
/// Estimated wire bytes of a frame [`Pacer::can_send_small`] lets through.
pub const SMALL_FRAME: u64 = 2048;
/// A part takes about this long on the link.
pub const PART_TIME: Duration = Duration::from_millis(15);
/// Bounds of a part, bytes.
pub const MIN_PART: u64 = 4 << 10;
pub const MAX_PART: u64 = 256 << 10;
/// Part size before the first sample: the smallest, so the first round
/// trips measured carry little transmission time.
pub const INITIAL_PART: u64 = MIN_PART;
/// A dispersion sample spans this long when the run of queued flights
/// allows: a browser handles a message up to about an animation frame
/// late, so the gap between two receipts alone can be half the time their
/// bytes took on the link.
const DISPERSION_WINDOW: Duration = Duration::from_millis(50);
/// Receipts of a run kept to find the window's start.
const BUSY_RUN_RECEIPTS: usize = 32;
/// Round trips the bandwidth maximum spans.
const BW_ROUNDS: u64 = 10;
/// Samples kept for the maximum (more than one per round is possible).
const BW_SAMPLES: usize = 16;
/// Window of the minimum round trip.
const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// How long ProbeRtt keeps the window small.
const PROBE_RTT_TIME: Duration = Duration::from_millis(200);
/// Round trips before Startup may end on a delay signal (the first round
/// trip of a page that just loaded is slow for other reasons; ending too
/// early costs little: a probe that succeeds comes back to Startup).
const STARTUP_ROUNDS: u64 = 2;
/// Startup's gain, 2/ln 2.
const HIGH_GAIN: f64 = 2.885;
/// ProbeBw's gain cycle, one phase per `min_rtt`.
const CYCLE: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// A probe that raised the estimate by this factor sends the pacer back to
/// Startup.
const PROBE_GROWTH: f64 = 1.2;
/// Pacing gain of a picture's parts while no queue stands.
const BURST_GAIN: f64 = 2.0;
/// Gain of a cruising phase while a queue stands.
const CRUISE_DRAIN: f64 = 0.9;
/// Shortest ProbeBw phase (a LAN's `min_rtt` is below a millisecond).
const MIN_PHASE: Duration = Duration::from_millis(10);

/// What a flight was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A frame: drawn by the browser, which says so (`FrameAck`).
    Frame,
    /// A held part of a picture (drawn with the picture's last part).
    Part,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Startup,
    Drain,
    ProbeBw { phase: usize, since: Instant },
    ProbeRtt { until: Option<Instant> },
}

/// One frame or part sent and not yet acknowledged.
#[derive(Debug, Clone, Copy)]
struct Flight {
    id: u32,
    /// Its bytes (and those sent between it and the flight before).
    bytes: u64,
    /// When its last byte was handed over.
    sent_at: Instant,
    /// The connection's delivery state when it was sent (BBR's
    /// `C.delivered`, `C.delivered_time`, `C.first_sent_time`).
    delivered: u64,
    delivered_at: Instant,
    first_sent_at: Instant,
    app_limited: bool,
}

/// Where a run of receipts for queued flights began (see `on_received`).
#[derive(Debug, Clone, Copy)]
struct BusyRun {
    /// When the receipt came.
    at: Instant,
    /// `delivered` then.
    delivered: u64,
    /// When the newest flight it acknowledged was sent.
    sent_at: Instant,
}

/// The flight being written (started, its last byte not yet counted).
#[derive(Debug, Clone, Copy)]
struct Open {
    id: u32,
    kind: Kind,
    /// The end was composed: the next `on_wire` closes it.
    ending: bool,
}

#[derive(Debug)]
pub struct Pacer {
    /// Bytes handed over / delivered (acknowledged), ever.
    sent: u64,
    delivered: u64,
    /// `sent` when the last flight closed.
    closed_at: u64,
    delivered_at: Option<Instant>,
    first_sent_at: Option<Instant>,
    flights: VecDeque<Flight>,
    open: Option<Open>,
    /// Ids of frames sent and not yet painted.
    unpainted: VecDeque<u32>,
    /// Since when samples say the link got slower.
    slower_since: Option<Instant>,
    /// Receipts of the current run of queued flights (each flight was sent
    /// before the receipt in front of it): the run's start, or the receipt
    /// a `DISPERSION_WINDOW` back, first.
    busy_run: VecDeque<BusyRun>,

    /// Bandwidth samples (round, bytes/s).
    samples: [(u64, f64); BW_SAMPLES],
    n_samples: usize,
    next_sample: usize,
    bw: Option<f64>,
    min_rtt: Option<(Duration, Instant)>,
    last_rtt: Option<Duration>,
    round: u64,
    next_round_delivered: u64,
    /// Startup's plateau detection.
    full_bw: f64,
    /// The round Startup began in.
    startup_round: u64,
    /// `bw` when the last ProbeBw probe began.
    probe_from: f64,
    /// Bytes of the picture being sent that may go at `BURST_GAIN`.
    burst_left: u64,
    full_bw_rounds: u8,
    full_bw_reached: bool,
    /// App-limited until `delivered` passes this (0: not app-limited).
    app_limited_until: u64,
    mode: Mode,
    /// Earliest time the next flight may start.
    next_send: Option<Instant>,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer {
            sent: 0,
            delivered: 0,
            closed_at: 0,
            delivered_at: None,
            first_sent_at: None,
            flights: VecDeque::with_capacity(MAX_FRAMES),
            open: None,
            unpainted: VecDeque::with_capacity(MAX_UNPAINTED),
            slower_since: None,
            busy_run: VecDeque::with_capacity(BUSY_RUN_RECEIPTS),
            samples: [(0, 0.0); BW_SAMPLES],
            n_samples: 0,
            next_sample: 0,
            bw: None,
            min_rtt: None,
            last_rtt: None,
            round: 0,
            next_round_delivered: 0,
            full_bw: 0.0,
            startup_round: 0,
            probe_from: f64::MAX,
            burst_left: 0,
            full_bw_rounds: 0,
            full_bw_reached: false,
            app_limited_until: 0,
            mode: Mode::Startup,
            next_send: None,
        }
    }
}

impl Pacer {
    /// Bytes handed over and not yet acknowledged.
    pub fn in_flight(&self) -> u64 {
        self.sent - self.delivered
    }

    /// Bottleneck bandwidth estimate, bytes/s (`None` before the first
    /// ack).
    pub fn bw(&self) -> Option<f64> {
        self.bw
    }

    /// Pacing rate, bytes/s: `gain × bw`; during Startup at least one
    /// initial window per round trip (the first frames, a few bytes each,
    /// say nothing about the link).
    fn pacing_rate(&self) -> Option<f64> {
        let mut rate = self.bw? * self.gain();
        if self.burst_left > 0 && !self.queue_standing() {
            // A picture on a link that has no queue: sent at up to twice
            // the estimate, so a link faster than the demand measured so
            // far shows it (and the picture arrives sooner).
            rate = rate.max(BURST_GAIN * self.bw?);
        }
        if self.mode != Mode::Startup {
            return Some(rate.max(1.0));
        }
        let rtt = self.min_rtt().unwrap_or(PART_TIME).max(Duration::from_millis(1));
        Some(rate.max(INITIAL_CWND as f64 / rtt.as_secs_f64()))
    }

    /// Path delay estimate (`None` before the first ack).
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt.map(|(d, _)| d)
    }

    /// The latest round-trip sample, if any.
    pub fn last_rtt(&self) -> Option<Duration> {
        self.last_rtt
    }

    /// The current mode, for logs.
    pub fn mode(&self) -> &'static str {
        match self.mode {
            Mode::Startup => "startup",
            Mode::Drain => "drain",
            Mode::ProbeBw { .. } => "probe-bw",
            Mode::ProbeRtt { .. } => "probe-rtt",
        }
    }

    fn gain(&self) -> f64 {
        match self.mode {
            Mode::Startup => HIGH_GAIN,
            Mode::Drain => 1.0 / HIGH_GAIN,
            // Cruising with a queue standing (the estimate is a maximum,
            // so it runs a little high): drain it.
            Mode::ProbeBw { phase, .. } if phase >= 2 && self.queue_standing() => CRUISE_DRAIN,
            Mode::ProbeBw { phase, .. } => CYCLE[phase],
            Mode::ProbeRtt { .. } => 1.0,
        }
    }

    /// The latest round trip says a queue is standing: over `min_rtt` by a
    /// quarter of it (5 ms at least).
    fn queue_standing(&self) -> bool {
        match (self.last_rtt, self.min_rtt()) {
            (Some(r), Some(m)) => r > m + (m / 4).max(Duration::from_millis(5)),
            _ => false,
        }
    }

    /// Bandwidth-delay product, bytes.
    fn bdp(&self) -> Option<f64> {
        Some(self.bw()? * self.min_rtt()?.as_secs_f64())
    }

    /// Bytes a part should take.
    pub fn part_size(&self) -> u64 {
        match self.bw() {
            Some(bw) => ((bw * PART_TIME.as_secs_f64()) as u64).clamp(MIN_PART, MAX_PART),
            None => INITIAL_PART,
        }
    }

    /// Bytes allowed in flight.
    pub fn cwnd(&self) -> u64 {
        let parts = 2 * self.part_size();
        if let Mode::ProbeRtt { .. } = self.mode {
            // One part at a time: the queue drains, the next sample has none.
            return self.part_size();
        }
        let Some(bdp) = self.bdp() else { return INITIAL_CWND.max(parts) };
        if self.mode == Mode::Startup {
            return ((HIGH_GAIN * bdp) as u64 + parts).clamp(INITIAL_CWND, MAX_CWND);
        }
        ((2.0 * bdp) as u64 + parts).min(MAX_CWND)
    }

    /// Whether a new frame or part may start at `now`.
    pub fn can_send(&self, now: Instant) -> bool {
        self.window_open() && self.next_send.is_none_or(|t| now >= t)
    }

    /// Whether a small urgent frame (at most [`SMALL_FRAME`] bytes: a
    /// change away from the picture being sent, a click's echo) may start
    /// at `now`: it does not wait for the pacing time, and may exceed the
    /// window by one small part. Its bytes add next to nothing to the
    /// queue; waiting for the pacer would add up to a part's transmission
    /// time (the "small change overtakes").
    pub fn can_send_small(&self) -> bool {
        self.open.is_none()
            && self.flights.len() < MAX_FRAMES
            && self.unpainted.len() < MAX_UNPAINTED
            && self.in_flight() < self.cwnd() + MIN_PART
    }

    /// Room in the window (time aside).
    fn window_open(&self) -> bool {
        self.open.is_none()
            && self.flights.len() < MAX_FRAMES
            && self.unpainted.len() < MAX_UNPAINTED
            && self.in_flight() < self.cwnd()
    }

    /// When a frame may start, if only pacing holds it back (`None`: no
    /// pacing yet, or waiting for acknowledgements; the time may be past).
    pub fn next_send_at(&self) -> Option<Instant> {
        self.next_send.filter(|_| self.window_open())
    }

    /// Frames and parts sent and not acknowledged (the one being written
    /// included).
    pub fn frames_in_flight(&self) -> usize {
        self.flights.len() + usize::from(self.open.is_some())
    }

    /// The viewer had nothing to send while it could have: unless what is
    /// in flight fills the pipe (a bandwidth-delay product: the bottleneck
    /// stays busy), samples until it is delivered are app-limited.
    pub fn app_limited(&mut self) {
        if self.bdp().is_none_or(|bdp| (self.in_flight() as f64) < bdp) {
            self.app_limited_until = (self.delivered + self.in_flight()).max(1);
        }
    }

    /// A picture of about `bytes` starts: its parts may go faster than the
    /// estimate while no queue stands (see `pacing_rate`).
    pub fn burst(&mut self, bytes: u64) {
        self.burst_left = bytes;
    }

    /// A flight `id` starts: its bytes follow with `on_wire`.
    pub fn start(&mut self, id: u32, now: Instant) {
        if self.in_flight() == 0 {
            // Sent into an empty pipe: the rate sample starts here.
            self.delivered_at = Some(now);
            self.first_sent_at = Some(now);
        }
        self.open = Some(Open { id, kind: Kind::Frame, ending: false });
    }

    /// The flight being written is a `kind` and ends with the bytes handed
    /// over next.
    pub fn end(&mut self, kind: Kind) {
        if let Some(o) = &mut self.open {
            o.kind = kind;
            o.ending = true;
        }
    }

    /// `n` bytes were handed to the socket (after compression and framing).
    pub fn on_wire(&mut self, n: usize, now: Instant) {
        self.sent += n as u64;
        if let (Some(rate), false) = (self.pacing_rate(), matches!(self.mode, Mode::ProbeRtt { .. })) {
            // Pace: the next flight waits for these bytes to drain at the
            // pacing rate. Time not used for sending is lost, except after
            // idle (nothing was in flight): one part's worth then goes at
            // once. (Time lost to a full window must not come back as a
            // burst: the queue would creep up to the window.)
            let idle = self.in_flight() == n as u64;
            let credit = Duration::from_secs_f64(self.part_size() as f64 / rate).min(PART_TIME);
            let floor = if idle { now.checked_sub(credit).unwrap_or(now) } else { now };
            let from = self.next_send.map_or(now, |t| t.max(floor));
            self.next_send = Some(from + Duration::from_secs_f64(n as f64 / rate));
            self.burst_left = self.burst_left.saturating_sub(n as u64);
        }
        let Some(o) = self.open.filter(|o| o.ending) else { return };
        self.open = None;
        let f = Flight {
            id: o.id,
            bytes: self.sent - self.closed_at,
            sent_at: now,
            delivered: self.delivered,
            delivered_at: self.delivered_at.unwrap_or(now),
            first_sent_at: self.first_sent_at.unwrap_or(now),
            app_limited: self.app_limited_until != 0,
        };
        self.closed_at = self.sent;
        if o.kind == Kind::Frame {
            if self.unpainted.len() == MAX_UNPAINTED {
                self.unpainted.pop_front(); // cannot happen while `can_send` is obeyed
            }
            self.unpainted.push_back(o.id);
        }
        if self.flights.len() == MAX_FRAMES {
            // Cannot happen while `can_send` is obeyed; forget the oldest.
            let old = self.flights.pop_front().unwrap();
            self.delivered += old.bytes;
        }
        self.flights.push_back(f);
    }

    /// `Received(id)`: flight `id` and every one before it arrived.
    /// Returns whether that was news.
    pub fn on_received(&mut self, id: u32, now: Instant) -> bool {
        // Wrapping order: f.id ≤ id.
        let mut newest: Option<Flight> = None;
        let delivered_before = self.delivered;
        while let Some(f) = self.flights.front().filter(|f| id.wrapping_sub(f.id) < 1 << 31) {
            self.delivered += f.bytes;
            newest = self.flights.pop_front();
        }
        let Some(f) = newest else { return false };
        // Dispersion: flights sent before the previous receipt came queued
        // behind it; the time between the two receipts is what their bytes
        // took at the bottleneck (or the send spacing, if that was wider).
        // Receipts closer than 0.8 × the send spacing were bunched by the
        // browser and say nothing.
        let dispersion = match (self.delivered_at, self.first_sent_at) {
            (Some(r_prev), Some(s_prev)) if f.sent_at < r_prev && f.sent_at > s_prev => {
                // The run of receipts whose flights all queued: measured over
                // `DISPERSION_WINDOW` once the run is that long (one receipt
                // the browser handled late or early then moves the sample
                // little, and a link that got slower shows within a
                // window), over the whole run before (a picture's burst).
                let least = (self.min_rtt().unwrap_or_default() / 4).max(Duration::from_millis(1));
                if self.busy_run.is_empty() {
                    self.busy_run.push_back(BusyRun { at: r_prev, delivered: delivered_before, sent_at: s_prev });
                }
                while self.busy_run.len() >= 2
                    && now.saturating_duration_since(self.busy_run[1].at) >= DISPERSION_WINDOW
                {
                    self.busy_run.pop_front();
                }
                let run = self.busy_run[0];
                if self.busy_run.len() == BUSY_RUN_RECEIPTS {
                    self.busy_run.pop_front();
                }
                self.busy_run.push_back(BusyRun { at: now, delivered: self.delivered, sent_at: f.sent_at });
                let gap = now.saturating_duration_since(run.at);
                let spacing = f.sent_at.saturating_duration_since(run.sent_at);
                (gap >= spacing.mul_f64(0.8) && gap >= least).then(|| {
                    let d = (self.delivered - run.delivered) as f64 / gap.max(spacing).as_secs_f64();
                    self.bw.map_or(d, |bw| d.min(2.0 * bw))
                })
            }
            _ => {
                self.busy_run.clear();
                None
            }
        };
        self.delivered_at = Some(now);
        self.first_sent_at = Some(f.sent_at);
        if self.app_limited_until != 0 && self.delivered > self.app_limited_until {
            self.app_limited_until = 0;
        }
        self.sample(&f, dispersion, now);
        true
    }

    /// `FrameAck(id)`: frame `id` and every one before it were painted (so
    /// they arrived too). Returns whether that was news.
    pub fn on_painted(&mut self, id: u32, now: Instant) -> bool {
        let mut news = false;
        while self.unpainted.front().is_some_and(|&u| id.wrapping_sub(u) < 1 << 31) {
            self.unpainted.pop_front();
            news = true;
        }
        self.on_received(id, now) || news
    }

    /// Frames sent and not yet painted.
    pub fn unpainted(&self) -> usize {
        self.unpainted.len()
    }

    /// BBR's rate sample and model update for the newest flight an ack
    /// delivered.
    fn sample(&mut self, f: &Flight, dispersion: Option<f64>, now: Instant) {
        let rtt = now.saturating_duration_since(f.sent_at);
        self.last_rtt = Some(rtt);
        let round_start = f.delivered >= self.next_round_delivered;
        if round_start {
            self.round += 1;
            self.next_round_delivered = self.delivered;
        }
        let send_elapsed = f.sent_at.saturating_duration_since(f.first_sent_at);
        let ack_elapsed = now.saturating_duration_since(f.delivered_at);
        let interval = send_elapsed.max(ack_elapsed).max(Duration::from_micros(100));
        let rate = (self.delivered - f.delivered) as f64 / interval.as_secs_f64();
        // A dispersion sample measured the bottleneck busy: not app-limited.
        let (rate, app_limited, dispersed) = match dispersion {
            Some(d) if d > rate => (d, false, true),
            _ => (rate, f.app_limited, false),
        };
        // An interval much shorter than the path delay may under-count time
        // (tcp_rate.c discards those under one `min_rtt`; here the send
        // interval bounds the rate by the pacing rate, and a burst shorter
        // than a round trip must still show a faster link, so half).
        let valid = dispersed || self.min_rtt.is_none_or(|(m, _)| interval >= m / 2);
        if valid {
            let queued = !app_limited
                && self.min_rtt.is_some_and(|(m, _)| rtt > 2 * m + Duration::from_millis(20))
                && self.bw.is_some_and(|bw| rate < 0.75 * bw);
            let since = if queued { *self.slower_since.get_or_insert(now) } else { now };
            if !queued {
                self.slower_since = None;
            }
            // Samples over at least two path delays (not one bunch of
            // receipts a busy browser let through at once).
            let span = (2 * self.min_rtt().unwrap_or_default()).max(Duration::from_millis(50));
            let slower = queued && now.saturating_duration_since(since) >= span;
            if slower {
                self.n_samples = 0;
                self.next_sample = 0;
                self.slower_since = None;
            }
            if !app_limited || self.bw.is_none_or(|bw| rate >= bw) || slower {
                self.samples[self.next_sample] = (self.round, rate);
                self.next_sample = (self.next_sample + 1) % BW_SAMPLES;
                self.n_samples = (self.n_samples + 1).min(BW_SAMPLES);
            }
            let oldest = self.round.saturating_sub(BW_ROUNDS);
            self.bw = self.samples[..self.n_samples]
                .iter()
                .filter(|(r, _)| *r >= oldest)
                .map(|&(_, b)| b)
                .fold(None, |m: Option<f64>, b| Some(m.map_or(b, |m| m.max(b))))
                .or(self.bw)
                .map(|b| b.max(1.0));
        }
        // Path delay: the round trip as it is. It includes the flight's own
        // transmission (a part: ~`PART_TIME` at `bw`), which the window
        // must cover anyway; subtracting it with an estimate of `bw` that is
        // young or low would leave nothing.
        let path = rtt.max(Duration::from_micros(200));
        let expired = self.min_rtt.is_some_and(|(_, at)| now.saturating_duration_since(at) > MIN_RTT_WINDOW);
        if expired || self.min_rtt.is_none_or(|(m, _)| path <= m) {
            self.min_rtt = Some((path, now));
        }
        if expired && !matches!(self.mode, Mode::ProbeRtt { .. }) {
            // Re-measure the path without queue: keep little in flight.
            self.mode = Mode::ProbeRtt { until: None };
            self.next_send = None;
        }
        // Startup also ends when a queue shows (HyStart's delay signal,
        // RFC 9406 §4.2): bursts of pictures rarely keep the link busy for
        // three rounds in a row, but they do fill its queue.
        if !self.full_bw_reached
            && self.round >= self.startup_round + STARTUP_ROUNDS
            && self.min_rtt.is_some_and(|(m, _)| rtt > m + (m / 2).max(Duration::from_millis(20)))
            && self.in_flight() as f64 >= self.bdp().unwrap_or(f64::MAX)
        {
            self.full_bw_reached = true;
        }
        if round_start && !app_limited && !self.full_bw_reached {
            let bw = self.bw.unwrap_or(0.0);
            if bw >= self.full_bw * 1.25 {
                self.full_bw = bw;
                self.full_bw_rounds = 0;
            } else {
                self.full_bw_rounds += 1;
                self.full_bw_reached = self.full_bw_rounds >= 3;
            }
        }
        self.update_mode(now);
    }

    fn update_mode(&mut self, now: Instant) {
        let bdp = self.bdp().unwrap_or(0.0) as u64;
        let phase_len = self.min_rtt().unwrap_or(MIN_PHASE).max(MIN_PHASE);
        match self.mode {
            Mode::Startup if self.full_bw_reached => self.mode = Mode::Drain,
            Mode::Drain if self.in_flight() <= bdp => self.mode = Mode::ProbeBw { phase: 2, since: now },
            Mode::ProbeBw { phase, since } => {
                let elapsed = now.saturating_duration_since(since);
                let next = match phase {
                    // Probe until the extra is in flight (or a round has passed).
                    0 => {
                        elapsed >= phase_len && self.in_flight() as f64 >= 1.25 * bdp as f64 || elapsed >= 2 * phase_len
                    }
                    // Drain until what the probe queued is gone.
                    1 => elapsed >= phase_len || self.in_flight() <= bdp,
                    _ => elapsed >= phase_len,
                };
                if next && phase == 0 {
                    self.probe_from = self.bw.unwrap_or(0.0);
                }
                if next && phase == 2 && self.bw.unwrap_or(0.0) >= PROBE_GROWTH * self.probe_from {
                    // The link took all the probe: there may be much more
                    // (a young estimate too low, or a link that got faster).
                    self.mode = Mode::Startup;
                    self.full_bw_reached = false;
                    self.full_bw = self.bw.unwrap_or(0.0);
                    self.full_bw_rounds = 0;
                    self.startup_round = self.round;
                } else if next {
                    self.mode = Mode::ProbeBw { phase: (phase + 1) % CYCLE.len(), since: now };
                }
            }
            Mode::ProbeRtt { until: None } if self.in_flight() <= self.cwnd() => {
                self.mode = Mode::ProbeRtt { until: Some(now + PROBE_RTT_TIME) };
            }
            Mode::ProbeRtt { until: Some(t) } if now >= t => {
                if let Some((m, _)) = self.min_rtt {
                    self.min_rtt = Some((m, now));
                }
                self.mode = if self.full_bw_reached { Mode::ProbeBw { phase: 2, since: now } } else { Mode::Startup };
            }
            _ => {}
        }
    }

    /// Advance time-driven state (ProbeRtt's end) without an ack.
    pub fn tick(&mut self, now: Instant) {
        if let Mode::ProbeRtt { .. } = self.mode {
            self.update_mode(now);
        }
    }
}

/// JPEG quality levels a viewer's pictures are encoded at. None above 80:
/// 90 switches the encoder to 4:4:4 chroma, about twice the bytes and the
/// encoding time of 80 (the gateway's CPU is what a small change waits
/// for on a LAN), while every lossy area is refined to exact pixels once
/// it stops changing anyway. (TigerVNC's default for noVNC, quality level
/// 6, is comparable.)
pub const LEVELS: [u8; 8] = [15, 20, 30, 40, 50, 60, 70, 80];

/// Bytes per photo-like pixel of a JPEG at each level, for typical
/// photographic and rendered content (the 14 gnome-backgrounds wallpapers at
/// 640×480, one image each, optimised Huffman tables: examples/photo_bytes).
const DEFAULT_BPP: [f64; 8] = [0.038, 0.046, 0.060, 0.072, 0.083, 0.094, 0.112, 0.141];

/// Lowest and highest content factor the model believes.
const MIN_FACTOR: f64 = 0.1;
const MAX_FACTOR: f64 = 10.0;

/// Predicts JPEG bytes from what recent pictures cost (per session: the
/// content decides, not the viewer). One factor scales the default curve:
/// after each picture, `factor ← 0.6·factor + 0.4·actual/default`.
#[derive(Debug, Clone)]
pub struct JpegModel {
    factor: f64,
}

impl Default for JpegModel {
    fn default() -> Self {
        JpegModel { factor: 1.0 }
    }
}

impl JpegModel {
    /// Predicted bytes per photo pixel at `level`.
    pub fn bpp(&self, level: usize) -> f64 {
        DEFAULT_BPP[level.min(LEVELS.len() - 1)] * self.factor
    }

    /// A picture at `level` had `pixels` photo pixels in `bytes` of JPEG.
    pub fn observe(&mut self, level: usize, pixels: u64, bytes: u64) {
        if pixels < 4096 {
            return; // too small to say much (headers dominate)
        }
        let actual = bytes as f64 / pixels as f64 / DEFAULT_BPP[level.min(LEVELS.len() - 1)];
        self.factor = (0.6 * self.factor + 0.4 * actual).clamp(MIN_FACTOR, MAX_FACTOR);
    }

    /// The highest level whose predicted bytes for `pixels` photo pixels
    /// stay within `budget` bytes; the lowest level when none does.
    pub fn level_for(&self, pixels: u64, budget: f64) -> usize {
        (0..LEVELS.len()).rev().find(|&l| pixels as f64 * self.bpp(l) <= budget).unwrap_or(0)
    }
}

/// How long a picture should take on the link: the interval at which the
/// content changes, within these bounds (a slideshow at 10/s gets 100 ms of
/// the link per picture; a window dragged at 25 steps/s, 40 ms).
pub const MIN_PICTURE_TIME: Duration = Duration::from_millis(40);
pub const MAX_PICTURE_TIME: Duration = Duration::from_millis(100);
/// Share of the link a changing picture is given.
const PICTURE_SHARE: f64 = 0.5;

/// The JPEG level for a picture of `pixels` photo pixels to a viewer with
/// bandwidth `bw` (bytes/s; `None`: not measured yet) when the screen
/// changes every `interval`: the picture's JPEG should take at most half
/// the link for `interval`, so that the link is idle often enough for a
/// small change to find it free (and for probing).
/// Before the first measurement, the link is assumed to carry 250 kB/s: a
/// first picture goes at a low quality and is refined afterwards.
pub fn choose_level(model: &JpegModel, bw: Option<f64>, pixels: u64, interval: Duration) -> usize {
    let t = interval.clamp(MIN_PICTURE_TIME, MAX_PICTURE_TIME).as_secs_f64();
    let budget = PICTURE_SHARE * bw.unwrap_or(250e3) * t;
    model.level_for(pixels, budget)
}

/// Share of the link below which a picture's bytes do not matter: a picture
/// at the highest level with the standard Huffman tables that would still
/// take under an eighth of the link for `interval` leaves it idle most of
/// the time anyway, and the encoder's second pass would only cost CPU.
const SPARE_LINK_SHARE: f64 = 0.125;
/// JPEG bytes with the standard tables per byte with optimised ones at the
/// highest level (q80: +7.8 % on the 14 wallpapers, `encode/jpeg.rs`).
pub const STANDARD_TABLES_BYTES: f64 = 1.08;

/// Whether a picture at `level` for a viewer with bandwidth `bw` should
/// have Huffman tables optimised for it (fewer bytes, 1.29× the encode
/// time): always but at the highest level on a link with bytes to spare (a
/// LAN), where the gateway's CPU, not the link, decides how soon a change
/// shows.
pub fn optimise_tables(model: &JpegModel, bw: Option<f64>, pixels: u64, interval: Duration, level: usize) -> bool {
    let Some(bw) = bw else { return true };
    let t = interval.clamp(MIN_PICTURE_TIME, MAX_PICTURE_TIME).as_secs_f64();
    let top = LEVELS.len() - 1;
    level < top || pixels as f64 * model.bpp(top) * STANDARD_TABLES_BYTES > SPARE_LINK_SHARE * bw * t
}

#[cfg(test)]
mod tests;
