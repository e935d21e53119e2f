//! The pacer against a simulated link (a bottleneck queue drained at a rate
//! that the test changes, plus a fixed propagation delay each way) and a
//! browser that acknowledges each frame as soon as its last byte arrives.
//! Simulated clock in 1 ms steps; no wall time.

use super::*;

/// A bottleneck link: FIFO, `rate` bytes/s, `delay` each way.
struct Link {
    rate: f64,
    delay: Duration,
    /// When the bottleneck finishes what is queued.
    busy_until: Instant,
    /// (frame id, time its ack reaches the gateway).
    acks: VecDeque<(u32, Instant)>,
}

impl Link {
    fn new(t0: Instant, rate: f64, rtt_ms: u64) -> Link {
        Link { rate, delay: Duration::from_millis(rtt_ms / 2), busy_until: t0, acks: VecDeque::new() }
    }

    /// Bytes in the bottleneck queue not yet transmitted at `now`.
    fn queued(&self, now: Instant) -> f64 {
        self.busy_until.saturating_duration_since(now).as_secs_f64() * self.rate
    }

    /// A whole frame of `n` bytes enters the link at `now`.
    fn send(&mut self, id: u32, n: u64, now: Instant) {
        let start = self.busy_until.max(now + self.delay);
        self.busy_until = start + Duration::from_secs_f64(n as f64 / self.rate);
        self.acks.push_back((id, self.busy_until + self.delay));
    }

    fn acks_due(&mut self, now: Instant) -> Vec<u32> {
        let mut v = Vec::new();
        while self.acks.front().is_some_and(|&(_, t)| t <= now) {
            v.push(self.acks.pop_front().unwrap().0);
        }
        v
    }
}

/// A gateway that always has more to send (a screen changing faster than
/// the link): every time the pacer has room, one frame that fills it.
struct Sim {
    t: Instant,
    pacer: Pacer,
    link: Link,
    next_id: u32,
    sent_bytes: u64,
}

impl Sim {
    fn new(rate: f64, rtt_ms: u64) -> Sim {
        let t = Instant::now();
        Sim { t, pacer: Pacer::default(), link: Link::new(t, rate, rtt_ms), next_id: 1, sent_bytes: 0 }
    }

    /// Send one frame of `n` bytes now (the caller checked the room).
    fn send(&mut self, n: u64, app_limited: bool) {
        let id = self.next_id;
        self.next_id += 1;
        self.pacer.frame_started(self.t);
        self.pacer.frame_ended(id, app_limited);
        self.pacer.on_wire(n as usize, self.t);
        self.link.send(id, n, self.t);
        self.sent_bytes += n;
    }

    /// Run `ms` milliseconds of a backlogged sender.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.tick();
            let part = self.pacer.part_limit();
            if part > 0 {
                self.send(part, false);
            }
        }
    }

    fn tick(&mut self) {
        self.t += Duration::from_millis(1);
        for id in self.link.acks_due(self.t) {
            self.pacer.on_ack(id, self.t);
        }
    }
}

fn near(est: f64, truth: f64, lo: f64, hi: f64) -> bool {
    est >= truth * lo && est <= truth * hi
}

#[test]
fn steady_link_is_measured_and_the_queue_stays_short() {
    for (rate, rtt) in [(125e3, 80), (500e3, 40), (2.5e6, 20), (50e6, 1)] {
        let mut s = Sim::new(rate, rtt);
        s.run(8000);
        let est = s.pacer.rate();
        assert!(near(est, rate, 0.7, 1.4), "{rate} B/s, {rtt} ms: estimated {est:.0}");
        let min_rtt = s.pacer.min_rtt().as_millis() as u64;
        assert!(min_rtt * 5 >= rtt * 4 && min_rtt <= rtt + 60, "{rate} B/s: min RTT {min_rtt} ms for {rtt}");
        // What waits in the bottleneck is about one frame interval of data
        // (the budget's RTT part is on the wire, not queued).
        let q = s.link.queued(s.t);
        let frame = rate * FRAME_INTERVAL.as_secs_f64();
        assert!(q <= 2.0 * frame + MIN_BUDGET as f64, "{rate} B/s: {q:.0} bytes queued, frame {frame:.0}");
        // And the link is used: at least 70 % of its capacity went through.
        let through = s.sent_bytes as f64 / 8.0;
        assert!(through >= 0.7 * rate.min(MAX_BUDGET as f64 / 0.034), "{rate} B/s: {through:.0} B/s sent");
    }
}

#[test]
fn link_that_changes_speed_is_followed() {
    let (fast, slow) = (10e6, 100e3);
    let mut s = Sim::new(fast, 20);
    s.run(3000);
    assert!(near(s.pacer.rate(), fast, 0.6, 1.5), "fast: {:.0}", s.pacer.rate());
    let fast_budget = s.pacer.budget();

    s.link.rate = slow;
    s.run(12000);
    let est = s.pacer.rate();
    assert!(near(est, slow, 0.5, 1.6), "slow: estimated {est:.0}");
    assert!(s.pacer.budget() < fast_budget / 10, "budget {} after slowing (was {fast_budget})", s.pacer.budget());
    let q = s.link.queued(s.t);
    let frame = slow * FRAME_INTERVAL.as_secs_f64();
    assert!(q <= 2.0 * frame + MIN_BUDGET as f64, "slow: {q:.0} bytes queued");

    s.link.rate = fast;
    s.run(3000);
    assert!(near(s.pacer.rate(), fast, 0.6, 1.5), "fast again: {:.0}", s.pacer.rate());
}

#[test]
fn viewer_that_never_acks_gets_a_bounded_amount() {
    let mut p = Pacer::default();
    let t = Instant::now();
    let mut sent = 0u64;
    let mut frames = 0;
    for i in 0..10_000u32 {
        let room = p.room();
        if room == 0 {
            continue;
        }
        // Tiny frames: the frame count bounds them too.
        let n = if i % 2 == 0 { room } else { 10 };
        p.frame_started(t);
        p.frame_ended(i + 1, false);
        p.on_wire(n as usize, t);
        sent += n;
        frames += 1;
    }
    assert!(sent <= p.budget() + 10 * MAX_FRAMES as u64, "sent {sent} bytes, budget {}", p.budget());
    assert!(frames <= MAX_FRAMES, "{frames} frames");
    assert_eq!(p.room(), 0);
    // An ack for a frame never sent acknowledges nothing new.
    assert!(!p.on_ack(50_000, t + Duration::from_millis(5)) || p.in_flight() < sent);
}

/// A huge frame (2 MB of photo at 1 MB/s) is sent in parts no larger than
/// the room; a small change made while it is going out is the next part,
/// so it waits behind about one frame interval of bytes, not the megabytes.
#[test]
fn small_change_overtakes_a_huge_frame() {
    let rate = 1e6;
    let mut s = Sim::new(rate, 40);
    // Warm up the estimator with ordinary traffic.
    s.run(3000);
    let mut huge_left: u64 = 2_000_000;
    let mut small_at = None;
    let mut ahead = None;
    for ms in 0..4000u64 {
        s.tick();
        if ms == 700 {
            small_at = Some(s.t);
        }
        let room = s.pacer.part_limit();
        if room == 0 {
            continue;
        }
        if small_at.is_some() && ahead.is_none() {
            // The small change goes first, in the next part.
            ahead = Some(s.link.queued(s.t));
            s.send(200, true);
        } else if huge_left > 0 {
            let part = room.min(huge_left);
            huge_left -= part;
            s.send(part, false);
        }
    }
    assert_eq!(huge_left, 0, "the huge frame went out");
    let ahead = ahead.expect("the small change was sent");
    let frame = rate * FRAME_INTERVAL.as_secs_f64();
    assert!(ahead <= 2.0 * frame + MIN_BUDGET as f64, "{ahead:.0} bytes queued ahead (frame {frame:.0})");
    assert!(ahead < 200_000.0, "not behind the huge frame");
}

/// Bytes sent outside frames (state messages) are covered by a later
/// frame's ack; they must not keep a draining pacer from probing.
#[test]
fn bytes_between_frames_do_not_block_the_probe() {
    let mut s = Sim::new(1e6, 20);
    s.run(7000); // past the 5 s probe interval: the pacer drains at some point
    s.pacer.on_wire(7, s.t); // a Status message after the last frame
    s.run(12_000);
    assert!(s.pacer.room() > 0 || s.pacer.frames_in_flight() > 0, "stuck: {:?}", s.pacer);
    let before = s.sent_bytes;
    s.run(1000);
    assert!(s.sent_bytes > before + 500_000, "frames keep going");
}

#[test]
fn quality_follows_rate_and_backlog() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut q = Quality::default();
    assert_eq!(q.jpeg(), LEVELS[ceiling(INITIAL_RATE)]);
    // A slow link caps the level at once.
    q.update(ms(0), false, 100e3);
    assert_eq!(q.jpeg(), 20 + 10 * ceiling(100e3) as u8);
    assert_eq!(ceiling(100e3), 1);
    // Calm on a fast link: one level per second up to the ceiling.
    for i in 0..20 {
        q.update(ms(i * 100), false, 10e6);
    }
    assert_eq!(q.level(), ceiling(100e3) + 1, "one step after a second");
    for i in 20..200 {
        q.update(ms(i * 100), false, 10e6);
    }
    assert_eq!(q.jpeg(), 90);
    // Backlogged: one level down per 300 ms.
    for i in 0..10 {
        q.update(ms(20_000 + i * 100), true, 10e6);
    }
    assert_eq!(q.jpeg(), 60);
    for i in 0..100 {
        q.update(ms(21_000 + i * 100), true, 10e6);
    }
    assert_eq!(q.jpeg(), LEVELS[0], "floor");
}
