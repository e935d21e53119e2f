//! wsvnc against REAL VNC servers, compared pixel for pixel with the X
//! server's own screenshot.
//!
//! Servers: TigerVNC `Xvnc`, and `x11vnc` on `Xvfb` (tests/common/x11.rs
//! starts them on displays :70–:79, ports 18000–18199, and draws the scene).
//!
//! * Encoding matrix: for each lossless encoding in turn the client
//!   advertises only that encoding (plus the Cursor pseudo-encoding, so Xvnc
//!   does not paint the pointer into the framebuffer), keeps asking for
//!   updates until its framebuffer equals the screenshot, and checks through
//!   the client's trace log that rectangles of that encoding really arrived
//!   (a server may always fall back to Raw). Every compression level too.
//! * CopyRect (window moves), SetDesktopSize/xrandr, VncAuth (right, asked
//!   for, wrong), a server killed mid-session.
//! * The whole gateway: wsvnc in-process with `--target` the real server, a
//!   browser-protocol v2 viewer (tests/common/v2.rs) rebuilding the canvas.
//! * VeNCrypt (module `vencrypt`): Xvnc with a test CA made at test time —
//!   X509Vnc, X509None pinned, X509Plain through a test-only PAM service,
//!   refused certificates, anonymous TLS refused, and the gateway in front.
//!
//! `RfbClient` runs over a blocking `TcpStream` (`Conn`). On a mismatch the
//! failure names the differing pixels and saves the server's bytes under
//! target/tmp. Missing servers or tools make these tests FAIL naming the
//! package to install. See docs/testing-real-servers.md.

mod common;
#[path = "common/v2.rs"]
mod v2;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::x11::{Auth, Desktop, HEIGHT, WIDTH};
use wsvnc::fb::Framebuffer;
use wsvnc::rfb::{encoding, RfbClient, RfbConfig, RfbError, RfbEvent};

/// Server bytes kept per connection for a failure capture.
const CAPTURE_LIMIT: usize = 64 << 20;

/// Longest a test waits for the framebuffer to match (hang guard only).
const SYNC_TIMEOUT: Duration = Duration::from_secs(40);

// ------------------------------------------------------ encoding counting

// Which rectangles the client decoded, per thread (each test drives its
// client on its own thread). Taken from the client's `set_state` trace line
// "RFB: .. -> Decoding { enc: N }" / "-> RectFixed(CopyRect)".
thread_local! {
    static RECTS: RefCell<HashMap<i32, usize>> = RefCell::new(HashMap::new());
}

struct CountingLogger;

impl log::Log for CountingLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn || m.target().starts_with("wsvnc::rfb::client")
    }
    fn log(&self, r: &log::Record) {
        if r.level() <= log::Level::Warn {
            eprintln!("[{} {}] {}", r.level(), r.target(), r.args());
            return;
        }
        if !r.target().starts_with("wsvnc::rfb::client") {
            return;
        }
        let line = r.args().to_string();
        let Some((_, to)) = line.split_once(" -> ") else { return };
        let enc = if let Some(n) = to.strip_prefix("Decoding { enc: ") {
            n.trim_end_matches(" }").parse::<i32>().ok()
        } else if to == "RectFixed(CopyRect)" {
            Some(encoding::COPY_RECT)
        } else {
            None
        };
        if let Some(e) = enc {
            RECTS.with(|m| *m.borrow_mut().entry(e).or_default() += 1);
        }
    }
    fn flush(&self) {}
}

static LOGGER: CountingLogger = CountingLogger;

/// Install the counting logger (every test calls this first, before
/// anything, e.g. `common::start`, can install another one).
fn init_logger() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
    let ours = std::ptr::addr_eq(log::logger() as *const dyn log::Log, &LOGGER as *const CountingLogger);
    assert!(ours, "another logger was installed first: call init_logger() at the start of every test");
    RECTS.with(|m| m.borrow_mut().clear());
}

fn rect_counts() -> HashMap<i32, usize> {
    RECTS.with(|m| m.borrow().clone())
}

fn encoding_name(e: i32) -> &'static str {
    match e {
        encoding::RAW => "Raw",
        encoding::COPY_RECT => "CopyRect",
        encoding::RRE => "RRE",
        encoding::HEXTILE => "Hextile",
        encoding::ZLIB => "Zlib",
        encoding::TIGHT => "Tight",
        encoding::ZRLE => "ZRLE",
        _ => "?",
    }
}

// ------------------------------------------------------------ RFB driver

/// RfbClient over a blocking TcpStream.
struct Conn {
    sock: TcpStream,
    client: RfbClient,
    fb: Framebuffer,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    events: Vec<RfbEvent>,
    /// Bytes received so far (for failure messages and captures).
    received: usize,
    /// A full update was requested already.
    synced: bool,
    /// Everything the server sent, written out on a mismatch (capped).
    capture: Vec<u8>,
}

/// How a session ended, if it did.
#[derive(Debug)]
#[allow(dead_code)] // read through Debug in failure messages
enum End {
    Rfb(RfbError),
    /// No bytes within the deadline.
    Timeout,
}

impl Conn {
    fn open(addr: SocketAddr, encodings: &[i32], password: Option<&str>) -> Conn {
        let cfg = RfbConfig {
            shared: true,
            encodings: encodings.to_vec(),
            password: password.map(|p| p.as_bytes().to_vec()),
            ..RfbConfig::default()
        };
        Conn::open_with(addr, cfg)
    }

    fn open_with(addr: SocketAddr, cfg: RfbConfig) -> Conn {
        let sock = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        sock.set_nodelay(true).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let encodings = cfg.encodings.clone();
        let client = RfbClient::new(cfg);
        for &e in &encodings {
            assert!(
                client.encodings().contains(&e),
                "RfbClient::new dropped encoding {e} ({}): advertised {:?}",
                encoding_name(e),
                client.encodings()
            );
        }
        Conn {
            sock,
            client,
            fb: Framebuffer::new(0, 0),
            inbuf: Vec::with_capacity(1 << 16),
            out: Vec::new(),
            events: Vec::new(),
            received: 0,
            synced: false,
            capture: Vec::new(),
        }
    }

    /// One read (up to 200 ms) and decode. Ok(false): nothing arrived.
    fn pump(&mut self) -> Result<bool, End> {
        let mut buf = [0u8; 65536];
        let n = match common::read_some(&mut self.sock, &mut buf) {
            Ok(0) => return Err(End::Rfb(self.client.closed_error())),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return Ok(false),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Err(End::Rfb(self.client.closed_error())),
            Err(e) => panic!("read from VNC server: {e}"),
        };
        self.received += n;
        if self.capture.len() + n <= CAPTURE_LIMIT {
            self.capture.extend_from_slice(&buf[..n]);
        }
        self.inbuf.extend_from_slice(&buf[..n]);
        let used = self.client.handle_input(&self.inbuf, &mut self.fb, &mut self.out).map_err(End::Rfb)?;
        self.inbuf.drain(..used);
        while let Some(ev) = self.client.poll_event() {
            self.events.push(ev);
        }
        self.flush();
        Ok(true)
    }

    /// Pump until the session ends (20 s at most); its error.
    fn read_to_end(&mut self) -> RfbError {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            match self.pump() {
                Ok(_) => assert!(Instant::now() < until, "no EOF within 20 s ({} bytes received)", self.received),
                Err(End::Rfb(e)) => return e,
                Err(e) => panic!("{e:?}"),
            }
        }
    }

    /// Pump until `done` (20 s at most).
    fn pump_until(&mut self, what: &str, done: impl Fn(&Conn) -> bool) {
        let until = Instant::now() + Duration::from_secs(20);
        while !done(self) {
            self.pump().unwrap_or_else(|e| panic!("waiting for {what}: {e:?}"));
            assert!(Instant::now() < until, "no {what} within 20 s ({} bytes received)", self.received);
        }
    }

    /// Pump (keeping an update request outstanding: full the first time,
    /// then incremental) until `ev` was seen.
    fn wait_event(&mut self, ev: &RfbEvent) {
        let until = Instant::now() + Duration::from_secs(20);
        while !self.events.contains(ev) {
            self.pump().unwrap_or_else(|e| panic!("waiting for {ev:?}: {e:?}"));
            if self.client.is_normal() && !self.client.update_pending() {
                self.client.request_update(self.synced, &self.fb, &mut self.out);
                self.flush();
                self.synced = true;
            }
            assert!(Instant::now() < until, "no {ev:?} within 20 s; events: {:?}", self.events);
        }
    }

    /// Point into the xterm (focus follows the pointer without a window
    /// manager), type `text` (ASCII; '\n' is Return), point back to the corner.
    fn type_into_xterm(&mut self, text: &str) {
        self.client.pointer_event(0, 150, 330, &mut self.out);
        for ch in text.chars() {
            let keysym = if ch == '\n' { 0xff0d } else { ch as u32 };
            self.client.key_event(true, keysym, &mut self.out);
            self.client.key_event(false, keysym, &mut self.out);
        }
        self.flush();
        // Let the keys land before the pointer (and so the focus) leaves.
        std::thread::sleep(Duration::from_millis(500));
        self.client.pointer_event(0, WIDTH - 1, HEIGHT - 1, &mut self.out);
        self.flush();
    }

    /// Write the server's bytes to CARGO_TARGET_TMPDIR; say where.
    fn save_capture(&self, what: &str) -> String {
        let name: String = what.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.rfb"));
        match std::fs::write(&path, &self.capture) {
            Ok(()) => format!("server bytes ({} of {}) saved to {}", self.capture.len(), self.received, path.display()),
            Err(e) => format!("could not save the server bytes to {}: {e}", path.display()),
        }
    }

    fn flush(&mut self) {
        if !self.out.is_empty() {
            self.sock.write_all(&self.out).expect("write to VNC server");
            self.out.clear();
        }
    }

    /// Until ServerInit is processed (Connected).
    fn handshake(&mut self) -> Result<(), End> {
        let until = Instant::now() + Duration::from_secs(20);
        while !self.client.is_normal() {
            if !self.pump()? && Instant::now() > until {
                return Err(End::Timeout);
            }
        }
        let connected = self.events.iter().any(|e| matches!(e, RfbEvent::Connected { .. }));
        assert!(connected, "is_normal without a Connected event: {:?}", self.events);
        assert_eq!((self.fb.width(), self.fb.height()), (WIDTH, HEIGHT));
        Ok(())
    }

    /// Request updates (full the first time, incremental after that) until
    /// the framebuffer's RGB equals `want`. Panics with a diff report. Leaves
    /// an incremental request outstanding, so changes made next are reported
    /// as they happen (e.g. as CopyRect).
    fn sync_to(&mut self, want: &[u8], what: &str) {
        let until = Instant::now() + SYNC_TIMEOUT;
        loop {
            if self.synced && rgb_eq(self.fb.data(), want) {
                if !self.client.update_pending() {
                    self.client.request_update(true, &self.fb, &mut self.out);
                    self.flush();
                }
                return;
            }
            if !self.client.update_pending() {
                self.client.request_update(self.synced, &self.fb, &mut self.out);
                self.flush();
                self.synced = true;
            }
            if let Err(e) = self.pump() {
                panic!("{what}: session ended: {e:?} after {} bytes\n{}", self.received, self.save_capture(what));
            }
            if Instant::now() > until {
                panic!(
                    "{what}: framebuffer still differs from the X screenshot after {SYNC_TIMEOUT:?} \
                     ({} bytes received, rects {:?}):\n{}\n{}",
                    self.received,
                    rect_counts(),
                    diff_report(self.fb.data(), self.fb.width() as usize, want),
                    self.save_capture(what)
                );
            }
        }
    }
}

/// RGBA framebuffer vs RGB screenshot.
fn rgb_eq(rgba: &[u8], rgb: &[u8]) -> bool {
    rgba.len() / 4 == rgb.len() / 3 && rgba.chunks_exact(4).zip(rgb.chunks_exact(3)).all(|(a, b)| a[..3] == *b)
}

/// The first differing pixels and how many differ.
fn diff_report(rgba: &[u8], w: usize, rgb: &[u8]) -> String {
    if rgba.len() / 4 != rgb.len() / 3 {
        return format!("sizes differ: {} pixels here, {} on the X screen", rgba.len() / 4, rgb.len() / 3);
    }
    let mut n = 0;
    let mut lines = Vec::new();
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (i, (a, b)) in rgba.chunks_exact(4).zip(rgb.chunks_exact(3)).enumerate() {
        if a[..3] != *b {
            n += 1;
            let (x, y) = (i % w, i / w);
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            if lines.len() < 10 {
                lines.push(format!("  ({x},{y}): got {:02x?}, X server has {:02x?}", &a[..3], b));
            }
        }
    }
    format!("{n} pixels differ, within x {x0}..={x1}, y {y0}..={y1}; first:\n{}", lines.join("\n"))
}

// ------------------------------------------------------- encoding matrix

#[derive(Clone, Copy, PartialEq)]
enum Server {
    Xvnc,
    X11vnc,
}

fn start(server: Server, auth: Auth) -> Desktop {
    match server {
        Server::Xvnc => Desktop::xvnc(auth),
        Server::X11vnc => Desktop::x11vnc(auth),
    }
}

/// Advertise only `enc` (+ Cursor, so the pointer stays out of the
/// framebuffer), sync to the drawn scene, check `enc` was really used.
fn check_encoding(server: Server, enc: i32) {
    init_logger();
    let mut desk = start(server, Auth::None);
    desk.draw_scene();
    let want = desk.stable_screenshot();
    let mut c = Conn::open(desk.addr(), &[enc, encoding::CURSOR], None);
    c.handshake().unwrap_or_else(|e| panic!("handshake failed: {e:?}\n{}", desk.logs()));
    let what = format!("{} with {}", server_name(server), encoding_name(enc));
    c.sync_to(&want, &what);
    let counts = rect_counts();
    assert!(
        counts.get(&enc).copied().unwrap_or(0) > 0,
        "{what}: framebuffer matched but no {} rectangle arrived (rects by encoding: {counts:?})",
        encoding_name(enc)
    );

    // Change the screen and follow it incrementally in the same session.
    let want2 = change_root_colour(&desk);
    assert_ne!(want, want2, "xsetroot changed nothing");
    c.sync_to(&want2, &format!("{what}, after a root colour change"));

    // Small incremental updates (keys echoed by the xterm's tty), typed
    // through this RFB connection (KeyEvent, PointerEvent).
    c.type_into_xterm("Typed via RFB 42\n");
    let want3 = desk.stable_screenshot();
    assert_ne!(want2, want3, "typing changed nothing on the X screen");
    c.sync_to(&want3, &format!("{what}, after typing"));
}

/// A second root colour; returns the new screenshot.
fn change_root_colour(desk: &Desktop) -> Vec<u8> {
    let mut cmd = desk.x_command("xsetroot", "x11-xserver-utils");
    common::x11::run(cmd.args(["-solid", "#c08020"]));
    desk.stable_screenshot()
}

fn server_name(s: Server) -> &'static str {
    match s {
        Server::Xvnc => "TigerVNC Xvnc",
        Server::X11vnc => "x11vnc on Xvfb",
    }
}

/// The X helpers find windows while others are created and destroyed around
/// them (loops of short-lived `xmessage` windows): `xdotool search` gets
/// `BadWindow` from XQueryTree when a window dies mid-walk, which once
/// failed `xvnc_rre` on a fresh machine. Each lookup must still succeed.
#[test]
fn x_helpers_survive_windows_coming_and_going() {
    init_logger();
    let mut desk = Desktop::xvnc(Auth::None);
    let mut churn = desk.x_command("sh", "dash");
    // Two windows at a time, each created, mapped and destroyed in turn.
    churn.args(["-c", "while :; do xmessage -timeout 1 a & xmessage -timeout 1 b; wait; done"]);
    desk.spawn_client("churn", churn);
    let mut c = desk.x_command("xterm", "xterm");
    c.args(["-T", "wsvnc-still", "-geometry", "20x2+10+10"]);
    desk.spawn_client("xterm", c);
    let id = desk.window("wsvnc-still");
    for i in 0..20u16 {
        assert_eq!(desk.window("wsvnc-still"), id, "lookup {i}");
        desk.move_window(&id, 11 + i, 10); // a new position each time: --sync waits for the move
    }
}

#[test]
fn xvnc_raw() {
    check_encoding(Server::Xvnc, encoding::RAW);
}

#[test]
fn xvnc_rre() {
    check_encoding(Server::Xvnc, encoding::RRE);
}

#[test]
fn xvnc_hextile() {
    check_encoding(Server::Xvnc, encoding::HEXTILE);
}

#[test]
fn xvnc_zrle() {
    check_encoding(Server::Xvnc, encoding::ZRLE);
}

#[test]
fn xvnc_tight() {
    check_encoding(Server::Xvnc, encoding::TIGHT);
}

/// Every compression level (pseudo-encodings -256..=-247, rfbproto §7.8.3):
/// a fresh connection per level on one desktop, each synced from a full
/// update. Servers pick different sub-encodings, filters and rectangle
/// sizes by level (libvncserver's Tight configuration table, TigerVNC's zlib
/// levels and "Tight: no compression" at level 0).
fn check_levels(server: Server, enc: i32, levels: std::ops::RangeInclusive<i32>) {
    init_logger();
    let mut desk = start(server, Auth::None);
    desk.draw_scene();
    let want = desk.stable_screenshot();
    let n = levels.clone().count();
    for level in levels {
        let mut c = Conn::open(desk.addr(), &[enc, -256 + level, encoding::CURSOR], None);
        c.handshake().unwrap_or_else(|e| panic!("handshake failed: {e:?}\n{}", desk.logs()));
        let what = format!("{} with {} at compression level {level}", server_name(server), encoding_name(enc));
        c.sync_to(&want, &what);
    }
    let counts = rect_counts();
    assert!(counts.get(&enc).copied().unwrap_or(0) >= n, "{} rectangles: {counts:?}", encoding_name(enc));
}

#[test]
fn xvnc_tight_levels() {
    check_levels(Server::Xvnc, encoding::TIGHT, 0..=9);
}

#[test]
fn x11vnc_tight_levels() {
    check_levels(Server::X11vnc, encoding::TIGHT, 1..=9);
}

/// At compression level 0 libvncserver (x11vnc) sends TurboVNC's
/// rfbTightNoZlib rectangles: compression-control type 0xA (0xE with an
/// explicit filter), then a compact length and that many raw bytes.
#[test]
fn x11vnc_tight_level0_nozlib() {
    check_levels(Server::X11vnc, encoding::TIGHT, 0..=0);
}

#[test]
fn xvnc_zrle_levels() {
    check_levels(Server::Xvnc, encoding::ZRLE, 0..=9);
}

#[test]
fn x11vnc_zlib_levels() {
    check_levels(Server::X11vnc, encoding::ZLIB, 0..=9);
}

// TigerVNC has no Zlib (6) encoder: Zlib is tested against x11vnc only.

#[test]
fn x11vnc_raw() {
    check_encoding(Server::X11vnc, encoding::RAW);
}

#[test]
fn x11vnc_rre() {
    check_encoding(Server::X11vnc, encoding::RRE);
}

#[test]
fn x11vnc_hextile() {
    check_encoding(Server::X11vnc, encoding::HEXTILE);
}

#[test]
fn x11vnc_zlib() {
    check_encoding(Server::X11vnc, encoding::ZLIB);
}

#[test]
fn x11vnc_zrle() {
    check_encoding(Server::X11vnc, encoding::ZRLE);
}

#[test]
fn x11vnc_tight() {
    check_encoding(Server::X11vnc, encoding::TIGHT);
}

// ------------------------------------------------------------- CopyRect

/// Moving a window on Xvnc (no window manager: XMoveWindow as given) makes
/// TigerVNC send CopyRect; the result must still equal the screenshot. The
/// xterm is moved (it does not repaint on a move; ImageMagick `display`
/// redraws itself, which turns the copy into ordinary damage).
fn check_copyrect(moves: &[(u16, u16)]) {
    init_logger();
    let mut desk = Desktop::xvnc(Auth::None);
    desk.draw_scene();
    let want = desk.stable_screenshot();
    let mut c = Conn::open(desk.addr(), &[encoding::COPY_RECT, encoding::ZRLE, encoding::CURSOR], None);
    c.handshake().unwrap_or_else(|e| panic!("handshake failed: {e:?}\n{}", desk.logs()));
    c.sync_to(&want, "Xvnc before the moves");
    let xterm = desk.window("wsvnc-xterm");
    for &(x, y) in moves {
        desk.move_window(&xterm, x, y);
        let want = desk.stable_screenshot();
        c.sync_to(&want, &format!("Xvnc after moving the xterm to ({x}, {y})"));
    }
    let copies = c.events.iter().filter(|e| matches!(e, RfbEvent::Copied { .. })).count();
    let counts = rect_counts();
    assert!(
        copies > 0 && counts.get(&encoding::COPY_RECT).copied().unwrap_or(0) == copies,
        "no CopyRect for a window move (Copied events: {copies}, rects: {counts:?})"
    );
}

/// Moves in every direction, overlapping their source; the xterm never goes
/// under the image window (see the next test).
#[test]
fn xvnc_copyrect_window_move() {
    check_copyrect(&[(10, 240), (45, 280), (40, 270), (0, 215), (20, 250), (270, 340)]);
}

/// The xterm is moved under the image window (partly covered), then out:
/// TigerVNC 1.12 then sends a CopyRect whose source is offset by twice the
/// move (CopyRect 230x6+20+380 from (70, 120) for a move by (-25, +130)) and
/// never repaints the strip; a fresh connection gets the right pixels. Kept
/// as a reproduction (docs/testing-real-servers.md).
#[test]
#[ignore = "TigerVNC 1.12 bug: CopyRect with a doubled offset after moving a partly covered window"]
fn xvnc_copyrect_covered_window_move() {
    check_copyrect(&[(10, 240), (45, 280), (40, 270), (45, 120), (20, 250)]);
}

// ---------------------------------------------------------------- resize

/// SetDesktopSize (rfbproto §7.5.8) to a real Xvnc: ExtendedDesktopSize
/// announces support, the server resizes (Resized event, framebuffer
/// resized and cleared) and the new screen matches pixel for pixel.
#[test]
fn xvnc_set_desktop_size() {
    init_logger();
    let mut desk = Desktop::xvnc(Auth::None);
    desk.draw_scene();
    let want = desk.stable_screenshot();
    let encs = [encoding::ZRLE, encoding::EXTENDED_DESKTOP_SIZE, encoding::DESKTOP_SIZE, encoding::CURSOR];
    let mut c = Conn::open(desk.addr(), &encs, None);
    c.handshake().unwrap_or_else(|e| panic!("handshake failed: {e:?}"));
    c.sync_to(&want, "Xvnc before resizing");
    assert!(c.events.contains(&RfbEvent::ResizeSupported), "no ExtendedDesktopSize from Xvnc: {:?}", c.events);
    for (w, h) in [(800, 600), (512, 384)] {
        assert!(c.client.set_desktop_size(w, h, &mut c.out), "set_desktop_size({w}, {h}) refused locally");
        c.flush();
        c.wait_event(&RfbEvent::Resized { width: w, height: h });
        assert_eq!((c.fb.width(), c.fb.height()), (w, h));
        let want = desk.stable_screenshot();
        assert_eq!(desk.screen_size(), (w, h), "the X screen was not resized");
        c.sync_to(&want, &format!("Xvnc resized to {w}x{h}"));
    }
    // Resized by the X side (RandR), announced by the server.
    common::x11::run(desk.x_command("xrandr", "x11-xserver-utils").args(["-s", "1024x768"]));
    c.wait_event(&RfbEvent::Resized { width: 1024, height: 768 });
    let want = desk.stable_screenshot();
    c.sync_to(&want, "Xvnc resized by xrandr");
}

// --------------------------------------------------------------- VncAuth

const PASSWORD: &str = "s3cret!x";

/// Password given up front: handshake, then the scene pixel for pixel.
fn check_right_password(server: Server) {
    init_logger();
    let mut desk = start(server, Auth::Vnc(PASSWORD));
    desk.draw_scene();
    let want = desk.stable_screenshot();
    let mut c = Conn::open(desk.addr(), &[encoding::ZRLE, encoding::CURSOR], Some(PASSWORD));
    c.handshake().unwrap_or_else(|e| panic!("handshake with the right password failed: {e:?}\n{}", desk.logs()));
    c.sync_to(&want, &format!("{} with VncAuth", server_name(server)));
}

/// No password configured: PasswordNeeded, then `set_password` (the
/// gateway's ask-the-browser path), then the handshake completes.
fn check_password_asked(server: Server) {
    init_logger();
    let desk = start(server, Auth::Vnc(PASSWORD));
    let mut c = Conn::open(desk.addr(), &[encoding::RAW], None);
    c.wait_event(&RfbEvent::PasswordNeeded);
    c.client.set_password(PASSWORD.as_bytes(), &mut c.out).unwrap();
    // Bytes already buffered (none expected) must be offered again.
    let used = c.client.handle_input(&c.inbuf, &mut c.fb, &mut c.out).unwrap();
    c.inbuf.drain(..used);
    c.flush();
    c.handshake().unwrap_or_else(|e| panic!("handshake after set_password failed: {e:?}"));
}

/// A wrong password fails with AuthFailed carrying the server's reason.
/// A fresh server each time (TigerVNC blacklists after 5 failures).
fn check_wrong_password(server: Server) -> String {
    init_logger();
    let desk = start(server, Auth::Vnc(PASSWORD));
    let mut c = Conn::open(desk.addr(), &[encoding::RAW], Some("wrong-pw"));
    match c.handshake() {
        Err(End::Rfb(RfbError::AuthFailed(reason))) => {
            assert!(!reason.is_empty(), "empty AuthFailed reason");
            eprintln!("{}: AuthFailed({reason:?})", server_name(server));
            reason
        }
        other => panic!("{}: wrong password gave {other:?}, not AuthFailed", server_name(server)),
    }
}

#[test]
fn xvnc_vncauth_right_password() {
    check_right_password(Server::Xvnc);
}

#[test]
fn xvnc_vncauth_password_asked() {
    check_password_asked(Server::Xvnc);
}

#[test]
fn xvnc_vncauth_wrong_password() {
    let reason = check_wrong_password(Server::Xvnc);
    // TigerVNC (3.8) sends "Authentication failure"; our fallback, used only
    // when a server gives no reason, would be "wrong password".
    assert!(reason.contains("Authentication fail"), "not the server's reason: {reason:?}");
}

#[test]
fn x11vnc_vncauth_right_password() {
    check_right_password(Server::X11vnc);
}

#[test]
fn x11vnc_vncauth_password_asked() {
    check_password_asked(Server::X11vnc);
}

#[test]
fn x11vnc_vncauth_wrong_password() {
    let reason = check_wrong_password(Server::X11vnc);
    // libvncserver's reason.
    assert!(reason.contains("password check failed"), "not the server's reason: {reason:?}");
}

/// Older protocol versions (rfbproto §7.1.1, §7.1.2): 3.3 (the server picks
/// the security type; no SecurityResult after None) and 3.7 (no failure
/// reason after a failed SecurityResult), with and without VncAuth.
fn check_rfb_version(version: &str, auth: Auth) {
    init_logger();
    let mut desk = Desktop::x11vnc_with(auth, &["-rfbversion", version]);
    desk.draw_scene();
    let want = desk.stable_screenshot();
    let pw = match auth {
        Auth::Vnc(p) => Some(p),
        _ => None,
    };
    let mut c = Conn::open(desk.addr(), &[encoding::ZRLE, encoding::CURSOR], pw);
    c.handshake().unwrap_or_else(|e| panic!("RFB {version} handshake failed: {e:?}\n{}", desk.logs()));
    let hello = format!("RFB 00{}.00{}\n", &version[..1], &version[2..]);
    assert!(c.capture.starts_with(hello.as_bytes()), "x11vnc did not offer {hello:?}");
    c.sync_to(&want, &format!("x11vnc speaking RFB {version}"));
    if let Auth::Vnc(_) = auth {
        // Before 3.8 a failed SecurityResult carries no reason: ours is used.
        let mut bad = Conn::open(desk.addr(), &[encoding::RAW], Some("wrong-pw"));
        match bad.handshake() {
            Err(End::Rfb(RfbError::AuthFailed(reason))) => assert_eq!(reason, "wrong password"),
            other => panic!("RFB {version}: wrong password gave {other:?}, not AuthFailed"),
        }
    }
}

#[test]
fn x11vnc_rfb33_none() {
    check_rfb_version("3.3", Auth::None);
}

#[test]
fn x11vnc_rfb33_vncauth() {
    check_rfb_version("3.3", Auth::Vnc(PASSWORD));
}

#[test]
fn x11vnc_rfb37_none() {
    check_rfb_version("3.7", Auth::None);
}

#[test]
fn x11vnc_rfb37_vncauth() {
    check_rfb_version("3.7", Auth::Vnc(PASSWORD));
}

// ------------------------------------------------------ server killed

/// SIGKILL the server mid-session: the next read sees EOF/reset and the
/// client explains it ("server closed the connection"), no hang.
fn check_killed(server: Server) {
    init_logger();
    let mut desk = start(server, Auth::None);
    desk.draw_scene();
    let want = desk.stable_screenshot();
    let mut c = Conn::open(desk.addr(), &[encoding::HEXTILE, encoding::CURSOR], None);
    c.handshake().unwrap_or_else(|e| panic!("handshake failed: {e:?}"));
    c.sync_to(&want, server_name(server));
    desk.kill_vnc_server();
    let err = c.read_to_end();
    let msg = err.to_string();
    assert!(matches!(err, RfbError::Closed(_)) && msg.contains("closed the connection"), "unclear error: {msg}");
}

/// SIGKILL while a Raw update larger than the kernel's socket buffers is on
/// its way (the desktop resized to 3000×2000: 24 MB of Raw): what had been
/// sent is decoded, then EOF in the middle of the rectangle is reported, no
/// hang, no panic.
#[test]
fn xvnc_killed_mid_update() {
    init_logger();
    let mut desk = Desktop::xvnc(Auth::None);
    desk.draw_scene();
    let encs = [encoding::RAW, encoding::EXTENDED_DESKTOP_SIZE, encoding::CURSOR];
    let mut c = Conn::open(desk.addr(), &encs, None);
    c.handshake().unwrap_or_else(|e| panic!("handshake failed: {e:?}"));
    c.wait_event(&RfbEvent::ResizeSupported);
    assert!(c.client.set_desktop_size(3000, 2000, &mut c.out));
    c.flush();
    // Xvnc follows the ExtendedDesktopSize rectangle with the whole new
    // screen, 24 MB of Raw, in the same update: kill it 100 kB into that.
    c.wait_event(&RfbEvent::Resized { width: 3000, height: 2000 });
    let start = c.received;
    c.pump_until("100 kB of the big update", |c| c.received >= start + 100_000);
    assert!(c.client.update_pending(), "the update ended after {} bytes", c.received - start);
    desk.kill_vnc_server();
    let err = c.read_to_end();
    let got = c.received - start;
    assert!(got < 3000 * 2000 * 4, "the whole update ({got} bytes) arrived before the kill took effect");
    let msg = err.to_string();
    assert!(msg.contains("closed the connection in the middle of a message"), "unclear error after {got} bytes: {msg}");
}

#[test]
fn xvnc_killed_mid_session() {
    check_killed(Server::Xvnc);
}

#[test]
fn x11vnc_killed_mid_session() {
    check_killed(Server::X11vnc);
}

// ------------------------------------------------ whole gateway (v2 viewer)

/// A browser-protocol v2 viewer (tests/common/v2.rs) that acks every
/// EndFrame and keeps the canvas (RGBA, like the browser's) for comparison
/// with X screenshots.
struct Viewer {
    v: v2::V2,
    width: usize,
    height: usize,
    password_required: bool,
}

/// Why a viewer stopped: the gateway's Error text and/or the close.
#[derive(Debug)]
#[allow(dead_code)] // read through Debug in failure messages
enum ViewerEnd {
    Error(String),
    Closed(u16, String),
}

impl Viewer {
    fn connect(url: &str) -> Viewer {
        let v = v2::V2::connect(url).unwrap_or_else(|e| panic!("WebSocket to {url}: {e}"));
        v.set_read_timeout(Duration::from_millis(200));
        Viewer { v, width: 0, height: 0, password_required: false }
    }

    fn send(&mut self, msg: Vec<u8>) {
        self.v.send(&msg).expect("send to gateway");
    }

    /// Read until the gateway asks for the password (20 s at most).
    fn wait_password_required(&mut self) {
        let until = Instant::now() + Duration::from_secs(20);
        while !self.password_required {
            self.step().unwrap_or_else(|e| panic!("before PasswordRequired: {e:?}"));
            assert!(Instant::now() < until, "no PasswordRequired from the gateway");
        }
    }

    fn send_password(&mut self, pw: &str) {
        self.v.password(pw.as_bytes()).expect("send to gateway");
    }

    /// Read until the gateway asks for a user name and a password (20 s at most).
    #[cfg(feature = "tls")]
    fn wait_credentials_required(&mut self) {
        let until = Instant::now() + Duration::from_secs(20);
        while !self.v.credentials_required {
            self.step().unwrap_or_else(|e| panic!("before CredentialsRequired: {e:?}"));
            assert!(Instant::now() < until, "no CredentialsRequired from the gateway");
        }
    }

    /// Read one WebSocket message and apply it. Ok(true): a frame ended.
    /// Ok(false) also on a read timeout.
    fn step(&mut self) -> Result<bool, ViewerEnd> {
        let msgs = match self.v.read() {
            Ok(m) => m,
            Err(v2::End::Timeout) => return Ok(false),
            Err(v2::End::Closed(code, why)) => return Err(ViewerEnd::Closed(code, why)),
            Err(v2::End::Gone(why)) => return Err(ViewerEnd::Closed(1006, why)),
        };
        (self.width, self.height) = (self.v.width as usize, self.v.height as usize);
        self.password_required |= self.v.password_required;
        if let Some(e) = msgs.iter().find_map(|m| if let v2::Msg::Error(e) = m { Some(e.clone()) } else { None }) {
            return Err(ViewerEnd::Error(e));
        }
        Ok(msgs.iter().any(|m| matches!(m, v2::Msg::EndFrame(_) | v2::Msg::EndPart(_, true))))
    }

    /// Apply frames until the canvas equals `want` (RGB) at a frame's end
    /// (JPEG areas are refined to exact pixels once they stop changing).
    fn sync_to(&mut self, want: &[u8], what: &str) {
        let until = Instant::now() + SYNC_TIMEOUT;
        loop {
            match self.step() {
                Ok(true) if rgb_eq(&self.v.fb, want) => return,
                Ok(_) => {}
                Err(e) => panic!("{what}: the gateway ended the session: {e:?}"),
            }
            assert!(
                Instant::now() < until,
                "{what}: canvas still differs from the X screenshot after {SYNC_TIMEOUT:?} \
                 ({} frames, {} copies):\n{}",
                self.v.frames,
                self.v.copies,
                if self.v.fb.is_empty() { "no ServerHello".into() } else { diff_report(&self.v.fb, self.width, want) }
            );
        }
    }

    /// Read until the gateway's Error and close (both required).
    fn expect_error(&mut self) -> (String, u16) {
        let until = Instant::now() + Duration::from_secs(20);
        let mut error = None;
        loop {
            match self.step() {
                Ok(_) => {}
                Err(ViewerEnd::Error(t)) => error = Some(t),
                Err(ViewerEnd::Closed(code, _)) => {
                    let text = error.unwrap_or_else(|| panic!("closed ({code}) without an Error message"));
                    return (text, code);
                }
            }
            assert!(Instant::now() < until, "no Error/close from the gateway within 20 s");
        }
    }
}

/// wsvnc in-process on this slot's aux port, gateway target = the desktop.
fn gateway_for(desk: &Desktop, password: Option<&str>) -> common::Running {
    let target = wsvnc::Target {
        password: password.map(|p| p.as_bytes().to_vec()),
        ..wsvnc::Target::new(wsvnc::TargetAddr::Tcp(desk.addr()))
    };
    gateway_to(desk, target)
}

/// wsvnc in-process on this slot's aux port with `target`.
fn gateway_to(desk: &Desktop, target: wsvnc::Target) -> common::Running {
    init_logger();
    let mut cfg = common::config();
    cfg.listen = SocketAddr::from(([127, 0, 0, 1], desk.slot.aux_port()));
    cfg.target = Some(target);
    cfg.metrics = true;
    common::start(cfg)
}

/// `wsvnc_received_bytes_total{side="vnc"}` from the gateway's /metrics.
fn bytes_from_vnc(gw: &common::Running) -> u64 {
    let resp = common::http_raw(gw.addr, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert_eq!(common::status_of(&resp), 200, "{resp}");
    let line = resp.lines().find(|l| l.starts_with("wsvnc_received_bytes_total{side=\"vnc\"}"));
    line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or_else(|| panic!("no VNC byte count in {resp}"))
}

/// A viewer that waits for PasswordRequired, answers `pw` and syncs to `want`.
fn browser_password(gw: &common::Running, pw: &str, want: &[u8], what: &str) {
    let mut v = Viewer::connect(&gw.url("/ws"));
    v.wait_password_required();
    v.send_password(pw);
    v.sync_to(want, what);
}

/// The scene on `desk`, wsvnc in front of it, one viewer synced to it.
fn gateway_scene(desk: &mut Desktop, what: &str) -> (common::Running, Viewer) {
    desk.draw_scene();
    let want = desk.stable_screenshot();
    let gw = gateway_for(desk, None);
    let mut v = Viewer::connect(&gw.url("/ws"));
    v.sync_to(&want, what);
    (gw, v)
}

/// Browser → wsvnc → Xvnc with wsvnc's default encodings: the rebuilt canvas
/// equals the X screenshot, before and after windows move.
#[test]
fn gateway_xvnc_pixels() {
    let mut desk = Desktop::xvnc(Auth::None);
    let (_gw, mut v) = gateway_scene(&mut desk, "gateway to Xvnc");
    assert_eq!((v.width, v.height), (WIDTH as usize, HEIGHT as usize));
    let xterm = desk.window("wsvnc-xterm");
    for (x, y) in [(10, 240), (40, 270)] {
        desk.move_window(&xterm, x, y);
        let want = desk.stable_screenshot();
        v.sync_to(&want, &format!("gateway to Xvnc, xterm moved to ({x}, {y})"));
    }
    v.sync_to(&change_root_colour(&desk), "gateway to Xvnc, after a root colour change");
}

/// Photo content: ImageMagick `display` of a gnome-backgrounds wallpaper on
/// Xvnc. The gateway sends it as JPEG (the test viewer decodes it), then
/// refines it (WebP lossless): the canvas ends equal to the X screenshot,
/// pixel for pixel.
#[test]
fn gateway_xvnc_photo_jpeg_then_exact() {
    let wallpaper = std::path::Path::new("/usr/share/backgrounds/gnome/wood-d.webp");
    assert!(wallpaper.exists(), "{} missing: apt-get install gnome-backgrounds", wallpaper.display());
    let mut desk = Desktop::xvnc(Auth::None);
    desk.draw_scene();
    let gw = gateway_for(&desk, None);
    let mut v = Viewer::connect(&gw.url("/ws"));
    v.sync_to(&desk.stable_screenshot(), "gateway to Xvnc before the photo");
    let before = bytes_from_vnc(&gw);
    let mut c = desk.x_command("display", "imagemagick");
    c.args(["-title", "wsvnc-photo", "-geometry", "400x300+100+100", "-resize", "400x300!", "-borderwidth", "0"])
        .arg(wallpaper);
    desk.spawn_client("display-photo", c);
    desk.window("wsvnc-photo");
    let want = desk.stable_screenshot();
    v.sync_to(&want, "gateway to Xvnc, photo refined to exact pixels");
    assert!(v.v.kinds[v2::kind::JPEG].0 > 0, "the photo went as JPEG first: {:?}", v.v.kinds);
    // The test viewer accepts WebP (as a browser's viewer does): the exact
    // pixels came as WebP lossless, decoded by an independent decoder.
    assert!(v.v.kinds[v2::kind::WEBP].0 > 0, "refined with WebP lossless: {:?}", v.v.kinds);
    assert_eq!(v.v.kinds[v2::kind::PNG].0, 0, "and no PNG: {:?}", v.v.kinds);
    // A VNC server on this host is offered Raw, CopyRect and RRE only: Xvnc
    // sends the photo uncompressed (4 bytes a pixel). Were Tight or ZRLE
    // offered too, TigerVNC would use them even with Raw first (the photo
    // then took 159 KB as ZRLE).
    let raw = 400 * 300 * 4;
    let got = bytes_from_vnc(&gw) - before;
    assert!(got >= raw, "{got} bytes from Xvnc for a 400x300 photo: not Raw (>= {raw})");
}

/// Browser → wsvnc → x11vnc on Xvfb, default encodings.
#[test]
fn gateway_x11vnc_pixels() {
    let mut desk = Desktop::x11vnc(Auth::None);
    let (_gw, mut v) = gateway_scene(&mut desk, "gateway to x11vnc");
    v.sync_to(&change_root_colour(&desk), "gateway to x11vnc, after a root colour change");
}

/// Two viewers share one Xvnc session: a late joiner gets the whole
/// desktop at once, and both follow a change.
#[test]
fn gateway_xvnc_two_viewers() {
    let mut desk = Desktop::xvnc(Auth::None);
    let (gw, mut v1) = gateway_scene(&mut desk, "gateway to Xvnc, first viewer");
    let want = desk.stable_screenshot();
    let mut v2 = Viewer::connect(&gw.url("/ws"));
    v2.sync_to(&want, "gateway to Xvnc, late joiner");
    let want = change_root_colour(&desk);
    v1.sync_to(&want, "first viewer after a root colour change");
    v2.sync_to(&want, "late joiner after a root colour change");
}

/// ResizeRequest (0x85) from the viewer → SetDesktopSize to Xvnc → Resize
/// (0x02) and a canvas equal to the resized X screen.
#[test]
fn gateway_xvnc_resize_request() {
    let mut desk = Desktop::xvnc(Auth::None);
    let (_gw, mut v) = gateway_scene(&mut desk, "gateway to Xvnc");
    let (w, h) = (800u16, 600u16);
    let mut m = vec![0x85];
    m.extend_from_slice(&w.to_le_bytes());
    m.extend_from_slice(&h.to_le_bytes());
    v.send(m);
    let until = Instant::now() + Duration::from_secs(20);
    while (v.width, v.height) != (w as usize, h as usize) {
        v.step().unwrap_or_else(|e| panic!("waiting for Resize: {e:?}"));
        assert!(Instant::now() < until, "no Resize to {w}x{h} (canvas {}x{})", v.width, v.height);
    }
    let want = desk.stable_screenshot();
    assert_eq!(desk.screen_size(), (w, h), "the X screen was not resized");
    v.sync_to(&want, "gateway to Xvnc after ResizeRequest");
}

/// No password configured: the viewer is asked (PasswordRequired), answers,
/// and gets the desktop. A wrong answer ends with the server's reason and
/// close 1008 (a fresh Xvnc: TigerVNC blacklists after 5 failures).
#[test]
fn gateway_xvnc_browser_password() {
    let mut desk = Desktop::xvnc(Auth::Vnc(PASSWORD));
    desk.draw_scene();
    let want = desk.stable_screenshot();
    let gw = gateway_for(&desk, None);
    browser_password(&gw, PASSWORD, &want, "gateway to Xvnc with the browser's password");
}

#[test]
fn gateway_xvnc_wrong_password() {
    let desk = Desktop::xvnc(Auth::Vnc(PASSWORD));
    let gw = gateway_for(&desk, Some("wrong-pw"));
    let mut v = Viewer::connect(&gw.url("/ws"));
    let (text, code) = v.expect_error();
    assert_eq!(code, 1008, "close code for a failed VNC authentication (error {text:?})");
    // Ours ("VNC authentication failed: ") with TigerVNC's reason after it.
    assert!(text.contains("authentication failed") && text.contains("Authentication fail"), "error text: {text:?}");
}

/// Xvnc killed while a viewer watches: the viewer gets an Error saying the
/// VNC server closed the connection, then a close; the gateway keeps running.
#[test]
fn gateway_xvnc_killed() {
    let mut desk = Desktop::xvnc(Auth::None);
    let (gw, mut v) = gateway_scene(&mut desk, "gateway to Xvnc");
    desk.kill_vnc_server();
    let (text, _code) = v.expect_error();
    assert!(text.contains("closed the connection"), "error text: {text:?}");
    // The gateway itself is still up: a new viewer gets a clear error too.
    let mut v2 = Viewer::connect(&gw.url("/ws"));
    let (text2, _) = v2.expect_error();
    assert!(!text2.is_empty());
    gw.shutdown().expect("gateway shut down cleanly");
}

// ------------------------------------------------------------ VeNCrypt (TLS)

/// TigerVNC's VeNCrypt with a test PKI made at test time: X509Vnc, X509None
/// (pinned), X509Plain through a test-only PAM service; certificates that
/// must be refused; anonymous TLS refused; and the whole gateway in front.
#[cfg(feature = "tls")]
mod vencrypt {
    use super::*;
    use common::vnc_tls::{PamService, Pki};
    use common::x11::Tls;
    use wsvnc::rfb::security::{SecurityConfig, TlsTrust};

    const PLAIN_USER: &str = "vncuser";
    const PLAIN_PW: &str = "pl@in-Pw 9";

    fn xvnc(types: &str, pki: &Pki, password: Option<&str>, pam: Option<&PamService>) -> Desktop {
        Desktop::xvnc(Auth::Tls(Tls { types, pki, password, pam }))
    }

    fn trust(ca: Option<&std::path::Path>, pin: Option<[u8; 32]>, name: &str) -> Option<TlsTrust> {
        let ca_pem = ca.map(|p| std::fs::read(p).unwrap().into());
        Some(TlsTrust { server_name: name.into(), ca_pem, fingerprint: pin })
    }

    fn cfg(password: Option<&str>, user: Option<&str>, tls: Option<TlsTrust>) -> RfbConfig {
        RfbConfig {
            encodings: vec![encoding::ZRLE, encoding::CURSOR],
            password: password.map(|p| p.as_bytes().to_vec()),
            security: SecurityConfig { username: user.map(|u| u.as_bytes().to_vec()), tls },
            ..RfbConfig::default()
        }
    }

    /// Handshake, then the scene pixel for pixel; typing goes through TLS.
    fn check_scene(desk: &mut Desktop, cfg: RfbConfig, what: &str) {
        desk.draw_scene();
        let want = desk.stable_screenshot();
        let mut c = Conn::open_with(desk.addr(), cfg);
        c.handshake().unwrap_or_else(|e| panic!("{what}: handshake failed: {e:?}\n{}", desk.logs()));
        assert!(c.client.encrypted(), "{what}: not encrypted");
        c.sync_to(&want, what);
        c.type_into_xterm("Typed over TLS 7\n");
        let typed = desk.stable_screenshot();
        assert_ne!(want, typed, "{what}: typing changed nothing on the X screen");
        c.sync_to(&typed, &format!("{what}, after typing"));
    }

    fn handshake_error(desk: &Desktop, cfg: RfbConfig) -> RfbError {
        let mut c = Conn::open_with(desk.addr(), cfg);
        match c.handshake() {
            Err(End::Rfb(e)) => e,
            other => panic!("handshake gave {other:?}, not an error"),
        }
    }

    #[test]
    fn xvnc_x509vnc_with_the_ca() {
        init_logger();
        let pki = Pki::new();
        let mut desk = xvnc("X509Vnc", &pki, Some(PASSWORD), None);
        let c = cfg(Some(PASSWORD), None, trust(Some(&pki.ca), None, "127.0.0.1"));
        check_scene(&mut desk, c, "Xvnc X509Vnc, CA");
    }

    #[test]
    fn xvnc_x509none_pinned() {
        init_logger();
        let pki = Pki::new();
        let mut desk = xvnc("X509None", &pki, None, None);
        // A pin alone: the name is not checked.
        let c = cfg(None, None, trust(None, Some(pki.fingerprint), "any.name.invalid"));
        check_scene(&mut desk, c, "Xvnc X509None, pinned");
    }

    /// Certificates that must be refused, each on a new connection to the
    /// same server, then the right one works. TigerVNC counts each aborted TLS
    /// handshake towards its lockout (five failures): three here.
    #[test]
    fn xvnc_x509_untrusted_certificates() {
        init_logger();
        let pki = Pki::new();
        let desk = xvnc("X509Vnc", &pki, Some(PASSWORD), None);
        let cases = [
            ("another CA", trust(Some(&pki.other_ca), None, "127.0.0.1"), "UnknownIssuer"),
            ("wrong name", trust(Some(&pki.ca), None, "vnc.example.org"), "vnc.example.org"),
            ("wrong pin", trust(None, Some([7; 32]), "127.0.0.1"), "pinned with vnc-fingerprint="),
        ];
        for (what, t, words) in cases {
            match handshake_error(&desk, cfg(Some(PASSWORD), None, t)) {
                RfbError::Certificate(m) => {
                    assert!(m.contains(words), "{what}: {m}");
                    assert!(m.contains(&pki.pin()), "{what}: the certificate's fingerprint is not named: {m}");
                }
                e => panic!("{what}: {e:?}"),
            }
        }
        let mut c = Conn::open_with(desk.addr(), cfg(Some(PASSWORD), None, trust(Some(&pki.ca), None, "localhost")));
        c.handshake().unwrap_or_else(|e| panic!("after 3 refused certificates: {e:?}\n{}", desk.logs()));
    }

    /// X509Plain through PAM: configured credentials, then asked for, then
    /// a wrong password (one failure: TigerVNC locks out after five).
    #[test]
    fn xvnc_x509plain_pam() {
        init_logger();
        let pki = Pki::new();
        let pam = PamService::new(PLAIN_USER, PLAIN_PW);
        let mut desk = xvnc("X509Plain", &pki, None, Some(&pam));
        let t = trust(Some(&pki.ca), None, "127.0.0.1");
        check_scene(&mut desk, cfg(Some(PLAIN_PW), Some(PLAIN_USER), t.clone()), "Xvnc X509Plain");

        let mut c = Conn::open_with(desk.addr(), cfg(None, None, t.clone()));
        c.wait_event(&RfbEvent::CredentialsNeeded { username: true });
        c.client.set_credentials(PLAIN_USER.as_bytes(), PLAIN_PW.as_bytes(), &mut c.out).unwrap();
        c.flush();
        c.handshake().unwrap_or_else(|e| panic!("after set_credentials: {e:?}\n{}", desk.logs()));

        match handshake_error(&desk, cfg(Some("wrong"), Some(PLAIN_USER), t)) {
            RfbError::AuthFailed(reason) => assert!(!reason.is_empty()),
            e => panic!("wrong Plain password: {e:?}"),
        }
    }

    /// TigerVNC's default "TLSVnc,VncAuth": VncAuth (no TLS); with a CA
    /// configured and "X509Vnc,VncAuth": VeNCrypt. "TLSNone" alone: refused,
    /// naming what to configure on the server.
    #[test]
    fn xvnc_type_choice_and_anonymous_tls() {
        init_logger();
        let pki = Pki::new();
        let desk = xvnc("TLSVnc,VncAuth", &pki, Some(PASSWORD), None);
        let mut c = Conn::open_with(desk.addr(), cfg(Some(PASSWORD), None, trust(Some(&pki.ca), None, "127.0.0.1")));
        c.handshake().unwrap_or_else(|e| panic!("TLSVnc,VncAuth: {e:?}"));
        drop(desk);

        let desk = xvnc("X509Vnc,VncAuth", &pki, Some(PASSWORD), None);
        let mut c = Conn::open_with(desk.addr(), cfg(Some(PASSWORD), None, trust(Some(&pki.ca), None, "127.0.0.1")));
        c.handshake().unwrap_or_else(|e| panic!("X509Vnc,VncAuth with a CA: {e:?}"));
        assert!(c.client.encrypted(), "a CA is configured: VeNCrypt must be chosen");
        let mut c = Conn::open_with(desk.addr(), cfg(Some(PASSWORD), None, None));
        c.handshake().unwrap_or_else(|e| panic!("X509Vnc,VncAuth without a CA: {e:?}"));
        assert!(!c.client.encrypted(), "no CA: VncAuth");
        drop(desk);

        let desk = xvnc("TLSNone", &pki, None, None);
        match handshake_error(&desk, cfg(None, None, trust(Some(&pki.ca), None, "127.0.0.1"))) {
            RfbError::Unsupported(m) => assert!(m.contains("anonymous TLS") && m.contains("-X509Cert"), "{m}"),
            e => panic!("TLSNone: {e:?}"),
        }
    }

    fn gateway_tls(
        desk: &Desktop,
        password: Option<&str>,
        user: Option<&str>,
        ca: &std::path::Path,
    ) -> common::Running {
        let security = wsvnc::TargetSecurity {
            username: user.map(|u| u.as_bytes().to_vec()),
            ca_pem: Some(wsvnc::config::read_ca_file(ca).unwrap()),
            fingerprint: None,
            host: Some("127.0.0.1".into()),
        };
        let target = wsvnc::Target {
            password: password.map(|p| p.as_bytes().to_vec()),
            security,
            ..wsvnc::Target::new(wsvnc::TargetAddr::Tcp(desk.addr()))
        };
        gateway_to(desk, target)
    }

    /// Browser → wsvnc → Xvnc X509Vnc, with the CA configured for the target.
    #[test]
    fn gateway_xvnc_x509vnc() {
        init_logger();
        let pki = Pki::new();
        let mut desk = xvnc("X509Vnc", &pki, Some(PASSWORD), None);
        desk.draw_scene();
        let want = desk.stable_screenshot();
        let gw = gateway_tls(&desk, Some(PASSWORD), None, &pki.ca);
        let mut v = Viewer::connect(&gw.url("/ws"));
        v.sync_to(&want, "gateway to Xvnc X509Vnc");
        v.sync_to(&change_root_colour(&desk), "gateway to Xvnc X509Vnc, after a root colour change");
    }

    /// Xvnc with X509Plain through a test PAM service and the scene drawn:
    /// the PKI, the PAM service (kept alive), the desktop, its screenshot.
    fn x509plain_scene() -> (Pki, PamService, Desktop, Vec<u8>) {
        init_logger();
        let pki = Pki::new();
        let pam = PamService::new(PLAIN_USER, PLAIN_PW);
        let mut desk = xvnc("X509Plain", &pki, None, Some(&pam));
        desk.draw_scene();
        let want = desk.stable_screenshot();
        (pki, pam, desk, want)
    }

    /// X509Plain with the user name configured: the browser is asked for
    /// the password only, and gets the desktop.
    #[test]
    fn gateway_xvnc_x509plain_browser_password() {
        let (pki, _pam, desk, want) = x509plain_scene();
        let gw = gateway_tls(&desk, None, Some(PLAIN_USER), &pki.ca);
        browser_password(&gw, PLAIN_PW, &want, "gateway to Xvnc X509Plain with the browser's password");
    }

    /// X509Plain with no user name configured: the browser is asked for a
    /// user name and a password. A wrong password ends that session with
    /// the server's verdict (1008); the right credentials, on a new
    /// connection, give the desktop.
    #[test]
    fn gateway_xvnc_x509plain_browser_credentials() {
        let (pki, _pam, desk, want) = x509plain_scene();
        let gw = gateway_tls(&desk, None, None, &pki.ca);
        let mut v = Viewer::connect(&gw.url("/ws"));
        v.wait_credentials_required();
        assert!(!v.password_required, "a user name is wanted too");
        v.send(v2::enc::credentials(PLAIN_USER.as_bytes(), b"not the password"));
        let (text, code) = v.expect_error();
        assert_eq!(code, 1008, "{text}");
        assert!(text.contains("authentication failed"), "{text}");
        let mut v = Viewer::connect(&gw.url("/ws"));
        v.wait_credentials_required();
        v.send(v2::enc::credentials(PLAIN_USER.as_bytes(), PLAIN_PW.as_bytes()));
        v.sync_to(&want, "gateway to Xvnc X509Plain with the browser's user name and password");
    }

    /// The wrong CA: the viewer is told the certificate was rejected.
    #[test]
    fn gateway_xvnc_x509_wrong_ca() {
        init_logger();
        let pki = Pki::new();
        let desk = xvnc("X509Vnc", &pki, Some(PASSWORD), None);
        let gw = gateway_tls(&desk, Some(PASSWORD), None, &pki.other_ca);
        let mut v = Viewer::connect(&gw.url("/ws"));
        let (text, _code) = v.expect_error();
        assert!(text.contains("certificate was rejected") && text.contains("UnknownIssuer"), "error text: {text:?}");
    }
}
