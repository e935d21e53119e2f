//! The pacer against a simulated link: a bottleneck queue drained at a rate
//! the test changes, a fixed propagation delay each way, and a browser that
//! says `Received` as soon as a flight's last byte arrives and paints frames
//! a few milliseconds later. Simulated clock in 1 ms steps; no wall time.

use super::*;

/// A bottleneck link: FIFO, `rate` bytes/s, `delay` each way, and a
/// browser that paints a frame `paint` after it arrived.
struct Link {
    rate: f64,
    delay: Duration,
    paint: Duration,
    /// When the bottleneck finishes what is queued.
    busy_until: Instant,
    /// (id, kind, time its receipt reaches the gateway).
    acks: VecDeque<(u32, Kind, Instant)>,
    /// (frame id, time its FrameAck reaches the gateway).
    paints: VecDeque<(u32, Instant)>,
    /// The browser handles nothing before this (a page still loading).
    page_busy: Option<Instant>,
    /// The browser handles messages only every this often (a busy main
    /// thread: receipts come in bunches).
    batch: Option<Duration>,
    /// The browser handles each message up to this late, at random (a main
    /// thread busy with other tasks of varying length: drawing, a page's own
    /// scripts), in order; `rng` is the xorshift state.
    jitter: Option<Duration>,
    rng: u64,
    /// When the browser handled the last message.
    handled: Instant,
    t0: Instant,
}

impl Link {
    fn new(t0: Instant, rate: f64, rtt_ms: u64) -> Link {
        Link {
            rate,
            delay: Duration::from_millis(rtt_ms / 2),
            paint: Duration::from_millis(8),
            busy_until: t0,
            acks: VecDeque::new(),
            paints: VecDeque::new(),
            page_busy: None,
            batch: None,
            jitter: None,
            rng: 0x9E37_79B9_7F4A_7C15,
            handled: t0,
            t0,
        }
    }

    /// Bytes in the bottleneck queue not yet transmitted at `now`.
    fn queued(&self, now: Instant) -> f64 {
        self.busy_until.saturating_duration_since(now).as_secs_f64() * self.rate
    }

    /// A whole flight of `n` bytes enters the link at `now`.
    fn send(&mut self, id: u32, kind: Kind, n: u64, now: Instant) {
        let start = self.busy_until.max(now);
        self.busy_until = start + Duration::from_secs_f64(n as f64 / self.rate);
        let mut arrives = (self.busy_until + self.delay).max(self.page_busy.unwrap_or(now));
        if let Some(b) = self.batch {
            let k = (arrives - self.t0).as_micros().div_ceil(b.as_micros());
            arrives = self.t0 + b * k as u32;
        }
        if let Some(j) = self.jitter {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            arrives += j.mul_f64((self.rng >> 11) as f64 / (1u64 << 53) as f64);
        }
        arrives = arrives.max(self.handled);
        self.handled = arrives;
        self.acks.push_back((id, kind, arrives + self.delay));
        if kind == Kind::Frame {
            self.paints.push_back((id, arrives + self.paint + self.delay));
        }
    }
}

/// A gateway that always has more to send (a screen changing faster than
/// the link): every time the pacer lets it, one part.
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

    /// Send one flight of `n` bytes now (the caller checked `can_send`).
    fn send(&mut self, n: u64, kind: Kind) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.pacer.start(id, self.t);
        self.pacer.end(kind);
        self.pacer.on_wire(n as usize, self.t);
        self.link.send(id, kind, n, self.t);
        self.sent_bytes += n;
        id
    }

    /// Run `ms` milliseconds of a backlogged sender: parts, every fourth a
    /// frame (a picture's last part).
    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.tick();
            if self.pacer.can_send(self.t) {
                let kind = if self.next_id.is_multiple_of(4) { Kind::Frame } else { Kind::Part };
                self.send(self.pacer.part_size(), kind);
            }
        }
    }

    /// Run `ms` milliseconds of a sender with nothing to send.
    fn idle(&mut self, ms: u64) {
        for _ in 0..ms {
            self.tick();
            if self.pacer.can_send(self.t) {
                self.pacer.app_limited();
            }
        }
    }

    fn tick(&mut self) {
        self.t += Duration::from_millis(1);
        self.pacer.tick(self.t);
        while self.link.acks.front().is_some_and(|&(_, _, t)| t <= self.t) {
            let (id, _, _) = self.link.acks.pop_front().unwrap();
            self.pacer.on_received(id, self.t);
        }
        while self.link.paints.front().is_some_and(|&(_, t)| t <= self.t) {
            let (id, _) = self.link.paints.pop_front().unwrap();
            self.pacer.on_painted(id, self.t);
        }
    }

    fn bw(&self) -> f64 {
        self.pacer.bw().unwrap_or(0.0)
    }
}

fn near(est: f64, truth: f64, lo: f64, hi: f64) -> bool {
    est >= truth * lo && est <= truth * hi
}

#[test]
fn steady_link_is_measured_used_and_its_queue_stays_short() {
    for (rate, rtt) in [(120e3, 80), (480e3, 40), (2.4e6, 20), (50e6, 1)] {
        let mut s = Sim::new(rate, rtt);
        s.run(6000);
        let sent = s.sent_bytes;
        let mut max_q: f64 = 0.0;
        for _ in 0..4000 {
            s.run(1);
            max_q = max_q.max(s.link.queued(s.t));
        }
        let est = s.bw();
        assert!(near(est, rate, 0.8, 1.3), "{rate} B/s, {rtt} ms: estimated {est:.0}");
        let min_rtt = s.pacer.min_rtt().unwrap().as_secs_f64() * 1e3;
        let part_ms = s.pacer.part_size() as f64 / rate * 1e3;
        assert!(
            min_rtt >= rtt as f64 * 0.9 && min_rtt <= rtt as f64 + part_ms + 5.0,
            "{rate} B/s: min RTT {min_rtt:.1} ms for {rtt} ms (a part is {part_ms:.1} ms)"
        );
        // Used: at least 85 % of the link over the last 4 s.
        let through = (s.sent_bytes - sent) as f64 / 4.0;
        assert!(through >= 0.85 * rate.min(MAX_CWND as f64 / 0.004), "{rate} B/s: {through:.0} B/s sent");
        // What waits in the bottleneck stays within half a BDP (the
        // probe's quarter) plus three parts (a part enters the link whole),
        // never a buffer's worth.
        let bdp = rate * rtt as f64 / 1e3;
        let parts = 3.0 * s.pacer.part_size() as f64;
        assert!(max_q <= 0.5 * bdp + parts, "{rate} B/s: up to {max_q:.0} bytes queued (BDP {bdp:.0}, {parts})");
    }
}

#[test]
fn a_slow_start_of_the_page_is_outgrown() {
    // The page handles nothing for its first 600 ms (still loading): the
    // first samples say the link is slow. The pacer must find the real
    // rate within a couple of seconds anyway.
    let mut s = Sim::new(2.4e6, 20);
    s.link.page_busy = Some(s.t + Duration::from_millis(600));
    s.run(3000);
    assert!(near(s.bw(), 2.4e6, 0.8, 1.3), "{:.0} after 3 s", s.bw());
}

#[test]
fn receipts_in_bunches_do_not_inflate_the_estimate() {
    // A page whose main thread handles messages every 30 ms: receipts come
    // in bunches, the dispersion between them is no measure.
    for (rate, rtt) in [(120e3, 80), (480e3, 40), (2.4e6, 20)] {
        let mut s = Sim::new(rate, rtt);
        s.link.batch = Some(Duration::from_millis(30));
        let mut max_bw: f64 = 0.0;
        for _ in 0..8000 {
            s.run(1);
            max_bw = max_bw.max(s.bw());
        }
        assert!(near(s.bw(), rate, 0.7, 1.5), "{rate} B/s: {:.0}", s.bw());
        assert!(max_bw <= 2.0 * rate, "{rate} B/s: up to {max_bw:.0}");
    }
}

#[test]
fn receipts_handled_late_at_random_do_not_inflate_the_estimate() {
    // A page whose main thread handles each message up to 16 ms late (an
    // animation frame's worth of other work): the gap between two receipts
    // can shrink to half the time their bytes took on the link. On the
    // slow-link bench's 4 Mbit/s link the estimate reached 1.2-2.4× the
    // link's rate, and round trips during a refinement up to 343 ms (a
    // standing queue, and a small change waiting behind it).
    for (rate, rtt) in [(120e3, 80), (480e3, 40), (2.4e6, 20)] {
        let mut s = Sim::new(rate, rtt);
        s.link.jitter = Some(Duration::from_millis(16));
        let mut max_bw: f64 = 0.0;
        let mut max_q: f64 = 0.0;
        s.run(3000);
        let sent = s.sent_bytes;
        for _ in 0..5000 {
            s.run(1);
            max_bw = max_bw.max(s.bw());
            max_q = max_q.max(s.link.queued(s.t));
        }
        let through = (s.sent_bytes - sent) as f64 / 5.0;
        assert!(near(s.bw(), rate, 0.8, 1.3), "{rate} B/s: {:.0}", s.bw());
        assert!(max_bw <= 1.5 * rate, "{rate} B/s: up to {max_bw:.0}");
        assert!(through >= 0.85 * rate, "{rate} B/s: {through:.0} B/s sent");
        // A receipt handled late looks like a longer path and hides a queue
        // (the cruising phase's drain sees late receipts all the time), so
        // the bound is looser than a steady page's: a BDP, three parts and
        // the jitter's bytes (before this test, 2.4 MB/s queued 569 KB).
        let bdp = rate * rtt as f64 / 1e3;
        let parts = 3.0 * s.pacer.part_size() as f64;
        let late = rate * 0.016;
        assert!(max_q <= bdp + parts + late, "{rate} B/s: up to {max_q:.0} bytes queued (BDP {bdp:.0}, {parts})");
    }
}

#[test]
fn link_that_changes_speed_is_followed() {
    let (fast, slow) = (2.5e6, 120e3);
    let mut s = Sim::new(fast, 20);
    s.run(4000);
    assert!(near(s.bw(), fast, 0.8, 1.3), "fast: {:.0}", s.bw());
    let fast_cwnd = s.pacer.cwnd();

    s.link.rate = slow;
    s.run(4000);
    assert!(near(s.bw(), slow, 0.6, 1.6), "slow: estimated {:.0}", s.bw());
    assert!(s.pacer.cwnd() < fast_cwnd / 5, "window {} after slowing (was {fast_cwnd})", s.pacer.cwnd());
    let mut max_q: f64 = 0.0;
    for _ in 0..3000 {
        s.run(1);
        max_q = max_q.max(s.link.queued(s.t));
    }
    let bdp = slow * 0.02;
    assert!(max_q <= bdp + 3.0 * s.pacer.part_size() as f64, "slow: {max_q:.0} bytes queued");
    assert!(s.pacer.min_rtt().unwrap() < Duration::from_millis(100), "{:?}", s.pacer.min_rtt());

    // Faster again: the periodic probe finds it within seconds.
    s.link.rate = fast;
    s.run(5000);
    assert!(near(s.bw(), fast, 0.7, 1.3), "fast again: {:.0}", s.bw());
}

#[test]
fn probing_finds_bandwidth_that_appears() {
    // Steady at 500 kB/s, then the link is four times faster: ProbeBw's
    // 1.25 phases must raise the estimate (a window that only ever carried
    // the old rate would measure the old rate forever).
    let mut s = Sim::new(500e3, 40);
    s.run(5000);
    assert!(s.pacer.mode() == "probe-bw", "{}", s.pacer.mode());
    let before = s.bw();
    s.link.rate = 2e6;
    let mut reached = None;
    for ms in 0..10_000u64 {
        s.run(1);
        if reached.is_none() && s.bw() >= 1.6e6 {
            reached = Some(ms);
        }
    }
    let ms = reached.unwrap_or_else(|| panic!("stuck at {:.0} (from {before:.0})", s.bw()));
    assert!(ms <= 6000, "took {ms} ms");
}

#[test]
fn an_idle_viewer_keeps_its_estimate() {
    let mut s = Sim::new(1e6, 30);
    s.run(4000);
    let before = s.bw();
    // Tiny frames now and then, with nothing else to send.
    for _ in 0..50 {
        s.idle(100);
        if s.pacer.can_send(s.t) {
            s.send(200, Kind::Frame);
        }
    }
    // (What the last busy samples showed: they may pace a little under the
    // maximum, never the tiny frames' rate.)
    assert!(near(s.bw(), before, 0.8, 1.1), "{before:.0} became {:.0}", s.bw());
}

#[test]
fn path_delay_is_remeasured_by_draining() {
    let mut s = Sim::new(1e6, 30);
    s.run(2000);
    let mut saw_probe = false;
    for _ in 0..12_000 {
        s.run(1);
        saw_probe |= s.pacer.mode() == "probe-rtt";
    }
    assert!(saw_probe, "a viewer never idle drains once in 10 s");
    // Refreshed to the path plus one part's transmission, no queue.
    let now = s.pacer.min_rtt().unwrap().as_secs_f64() * 1e3;
    let part_ms = s.pacer.part_size() as f64 / 1e6 * 1e3;
    assert!(now <= 30.0 + part_ms + 3.0, "{now:.1} ms, a part being {part_ms:.1} ms");
}

#[test]
fn viewer_that_never_acks_gets_a_bounded_amount() {
    let mut p = Pacer::default();
    let t = Instant::now();
    let (mut sent, mut frames) = (0u64, 0usize);
    for i in 0..10_000u32 {
        if !p.can_send(t) {
            continue;
        }
        // Tiny frames: the frame count bounds them too.
        let n = if i % 2 == 0 { p.part_size() } else { 10 };
        p.start(i + 1, t);
        p.end(Kind::Frame);
        p.on_wire(n as usize, t);
        sent += n;
        frames += 1;
    }
    assert!(sent <= INITIAL_CWND + p.part_size(), "sent {sent} bytes");
    assert!(frames <= MAX_UNPAINTED, "{frames} frames");
    // Receipts without paint: parts keep going, frames stop at the bound.
    let mut s = Sim::new(1e6, 20);
    s.link.paint = Duration::from_secs(3600); // a hidden page
    let mut frames = 0;
    for _ in 0..3000 {
        s.tick();
        if s.pacer.can_send(s.t) {
            s.send(1000, Kind::Frame);
            frames += 1;
        }
    }
    assert_eq!(frames, MAX_UNPAINTED, "a page that paints nothing gets {MAX_UNPAINTED} frames");
    // An ack for a frame never sent acknowledges nothing.
    assert!(!Pacer::default().on_received(50_000, t));
}

/// A big picture goes out in paced parts; a small change made while it is
/// going out waits behind about one part in the bottleneck, not the
/// picture.
#[test]
fn small_change_overtakes_a_big_picture() {
    for (rate, rtt) in [(120e3, 80), (480e3, 40), (2.4e6, 20)] {
        let mut s = Sim::new(rate, rtt);
        s.run(5000); // warm the estimator up
                     // Drain, then the picture: two seconds' worth of link.
        while s.pacer.in_flight() > 0 {
            s.idle(1);
        }
        let mut left = (2.0 * rate) as u64;
        let mut ahead = None;
        let small_at = s.t + Duration::from_millis(700);
        while left > 0 || ahead.is_none() {
            s.tick();
            if !s.pacer.can_send(s.t) {
                continue;
            }
            if s.t >= small_at && ahead.is_none() {
                ahead = Some(s.link.queued(s.t));
                s.send(100, Kind::Frame);
            } else if left > 0 {
                let n = s.pacer.part_size().min(left);
                left -= n;
                s.send(n, if left == 0 { Kind::Frame } else { Kind::Part });
            }
        }
        let ahead = ahead.unwrap();
        let part = s.pacer.part_size() as f64;
        assert!(
            ahead <= 2.0 * part + 0.3 * rate * rtt as f64 / 1e3,
            "{rate} B/s: {ahead:.0} bytes ahead (part {part})"
        );
        assert!(ahead < 0.1 * rate * 2.0, "not behind the picture: {ahead:.0}");
    }
}

#[test]
fn pictures_sized_to_the_estimate_find_a_fast_link() {
    // The gateway's loop: every 100 ms a picture whose size follows the
    // estimate (half of it for the interval, as `choose_level` aims for),
    // and nothing in between. Such a sender is app-limited most of the
    // time; the estimate (and so the pictures) must still grow to the link.
    let mut s = Sim::new(2.4e6, 20);
    s.link.page_busy = Some(s.t + Duration::from_millis(300));
    let mut grown = None;
    for k in 0..60 {
        let mut left = (0.5 * s.pacer.bw().unwrap_or(250e3) * 0.1) as u64;
        s.pacer.burst(left);
        for _ in 0..100 {
            s.tick();
            if left > 0 && s.pacer.can_send(s.t) {
                let n = s.pacer.part_size().min(left);
                left -= n;
                s.send(n, if left == 0 { Kind::Frame } else { Kind::Part });
            } else if left == 0 && s.pacer.can_send(s.t) {
                s.pacer.app_limited();
            }
        }
        if grown.is_none() && s.bw() >= 0.7 * 2.4e6 {
            grown = Some(k);
        }
    }
    let k = grown.unwrap_or_else(|| panic!("stuck at {:.0}", s.bw()));
    assert!(k <= 25, "took {k} pictures");
}

#[test]
fn startup_leaves_no_standing_queue() {
    // Bursts that never keep the link busy for long (pictures): Startup
    // must still end (the queue they build says the pipe is full).
    let mut s = Sim::new(120e3, 80);
    let mut max_q: f64 = 0.0;
    for k in 0..40 {
        // A 20 kB picture every 100 ms.
        let mut left = 20_000u64;
        for _ in 0..100 {
            s.tick();
            if left > 0 && s.pacer.can_send(s.t) {
                let n = s.pacer.part_size().min(left);
                left -= n;
                s.send(n, if left == 0 { Kind::Frame } else { Kind::Part });
            } else if left == 0 && s.pacer.can_send(s.t) {
                s.pacer.app_limited();
            }
            if k >= 20 {
                max_q = max_q.max(s.link.queued(s.t));
            }
        }
    }
    assert_ne!(s.pacer.mode(), "startup");
    let bdp = 120e3 * 0.08;
    assert!(max_q <= 0.5 * bdp + 3.0 * MIN_PART as f64, "{max_q:.0} bytes queued");
}

#[test]
fn quality_follows_the_link_and_the_content() {
    let m = JpegModel::default();
    let px = 640 * 480;
    let i100 = Duration::from_millis(100);
    // The faster the link, the higher the level; a slow link gets the floor.
    let levels: Vec<usize> =
        [50e3, 120e3, 480e3, 2.4e6, 50e6].iter().map(|&bw| choose_level(&m, Some(bw), px, i100)).collect();
    assert!(levels.windows(2).all(|w| w[0] <= w[1]), "{levels:?}");
    assert_eq!(levels[0], 0);
    assert_eq!(levels[4], LEVELS.len() - 1);
    // The chosen level's prediction fits half the link for the interval.
    let l = choose_level(&m, Some(480e3), px, i100);
    assert!(px as f64 * m.bpp(l) <= 0.5 * 480e3 * 0.1 && px as f64 * m.bpp(l + 1) > 0.5 * 480e3 * 0.1);
    // A faster-changing screen gets smaller pictures.
    assert!(choose_level(&m, Some(480e3), px, Duration::from_millis(40)) < l);
    // Content that costs twice the default is predicted so, and gets a
    // lower level on the same link.
    let mut dense = JpegModel::default();
    for _ in 0..10 {
        dense.observe(3, px, (2.0 * px as f64 * DEFAULT_BPP[3]) as u64);
    }
    assert!((dense.bpp(3) / DEFAULT_BPP[3] - 2.0).abs() < 0.05, "{}", dense.bpp(3));
    assert!(choose_level(&dense, Some(480e3), px, i100) < l);
    // Before any measurement: a low level, refined later.
    assert!(choose_level(&m, None, px, i100) <= 2);
}

#[test]
fn huffman_tables_are_optimised_unless_the_link_has_bytes_to_spare() {
    let m = JpegModel::default();
    let px = 640 * 480;
    let i100 = Duration::from_millis(100);
    let top = LEVELS.len() - 1;
    let at = |bw: f64| optimise_tables(&m, Some(bw), px, i100, choose_level(&m, Some(bw), px, i100));
    // Slow and middling links: every byte counts (a 20 Mbit/s link at the
    // highest level still spends over an eighth of itself on the picture).
    for bw in [120e3, 480e3, 2.4e6] {
        assert!(at(bw), "{bw} B/s");
    }
    // A LAN: the highest level with the standard tables takes under an
    // eighth of the link; the encoder's CPU is saved.
    assert!(!at(50e6));
    assert!(!at(1e9));
    // Below the highest level, or before any measurement: optimised.
    assert!(optimise_tables(&m, Some(1e9), px, i100, top - 1));
    assert!(optimise_tables(&m, None, px, i100, top));
    // The boundary: an eighth of the link for the interval.
    let need = px as f64 * m.bpp(top) * STANDARD_TABLES_BYTES / (SPARE_LINK_SHARE * 0.1);
    assert!(optimise_tables(&m, Some(0.99 * need), px, i100, top));
    assert!(!optimise_tables(&m, Some(1.01 * need), px, i100, top));
}
