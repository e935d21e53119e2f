//! The RFB client's extensions against a REAL TigerVNC `Xvnc`
//! (tests/common/x11.rs starts it; displays and ports honour
//! `WSVNC_TEST_OFFSET`):
//!
//! * keyboard layouts by scancode: `setxkbmap de` / `fr` on the X display,
//!   keys typed as QEMU extended key events (XT scancodes from
//!   `rfb::scancodes`, with the keysyms a *US* browser would send, so only
//!   the scancode can produce the right character) into an `xterm` running
//!   `cat > FILE`: umlauts, ß, AltGr, dead keys, AZERTY. Xvnc uses the
//!   scancode only when started with `-RawKeyboard` (otherwise it maps the
//!   keysym, which is checked too); Caps Lock comes back as an LED state;
//! * the Extended Clipboard with `xclip`: Greek, CJK and emoji both ways;
//! * cursors: the same ARGB cursor (Adwaita theme) through Cursor With
//!   Alpha, VMware, rich and X cursor encodings;
//! * mouse buttons through `pointer_event_ext` reach an X client (`xev`);
//!   Xvnc 1.12 predates ExtendedMouseButtons (and has 7 buttons), so the
//!   client must stay on the plain form (back/forward are covered by the
//!   scripted tests only: no server here takes buttons 8 and 9);
//! * continuous updates + fences: changes arrive with no request, also after
//!   a SetDesktopSize;
//! * Tight JPEG (`--vnc-jpeg`): a photo shown by ImageMagick arrives as JPEG
//!   rectangles and the framebuffer is within a PSNR bound of the X screen.
//!
//! A missing program FAILS the test naming its Debian package.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::x11::{require, Auth, Desktop};
use wsvnc::fb::Framebuffer;
use wsvnc::rfb::encoding::*;
use wsvnc::rfb::scancodes::rfb_keycode;
use wsvnc::rfb::{RfbClient, RfbConfig, RfbEvent};

/// Longest any wait in these tests lasts (hang guard, not a timing check).
const WAIT: Duration = Duration::from_secs(30);

// ------------------------------------------------------------ the client

/// `RfbClient` over a blocking socket; replies are flushed after each read.
struct Rfb {
    sock: TcpStream,
    client: RfbClient,
    fb: Framebuffer,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    events: Vec<RfbEvent>,
    /// Keep an incremental request outstanding in `pump_until`.
    request: bool,
}

impl Rfb {
    /// Connect advertising `encodings` and wait for ServerInit.
    fn connect(addr: SocketAddr, encodings: &[i32]) -> Rfb {
        let sock = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        sock.set_nodelay(true).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let client = RfbClient::new(RfbConfig {
            shared: true,
            encodings: encodings.to_vec(),
            password: None,
            ..Default::default()
        });
        assert_eq!(client.encodings(), encodings, "RfbClient::new dropped an encoding");
        let mut c = Rfb {
            sock,
            client,
            fb: Framebuffer::new(0, 0),
            inbuf: Vec::new(),
            out: Vec::new(),
            events: Vec::new(),
            request: true,
        };
        c.pump_until("ServerInit", |c| c.client.is_normal());
        c.send(|cl, fb, out| cl.request_update(false, fb, out));
        c.pump_until("the first update", |c| c.events.contains(&RfbEvent::UpdateDone));
        c
    }

    /// Call the client API and send what it wrote.
    fn send(&mut self, f: impl FnOnce(&mut RfbClient, &Framebuffer, &mut Vec<u8>)) {
        f(&mut self.client, &self.fb, &mut self.out);
        self.flush();
    }

    fn flush(&mut self) {
        if !self.out.is_empty() {
            self.sock.write_all(&self.out).expect("write to Xvnc");
            self.out.clear();
        }
    }

    /// One read (up to 100 ms), decode, flush replies.
    fn pump(&mut self) {
        let mut buf = [0u8; 65536];
        match common::read_some(&mut self.sock, &mut buf) {
            Ok(0) => panic!("Xvnc closed the connection: {}", self.client.closed_error()),
            Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read from Xvnc: {e}"),
        }
        let used = self.client.handle_input(&self.inbuf, &mut self.fb, &mut self.out).expect("RFB error");
        self.inbuf.drain(..used);
        self.events.extend(std::iter::from_fn(|| self.client.poll_event()));
        if self.request && !self.client.update_pending() {
            self.client.request_update(true, &self.fb, &mut self.out);
        }
        self.flush();
    }

    /// Pump until `done` (bounded by [`WAIT`]).
    fn pump_until(&mut self, what: &str, mut done: impl FnMut(&mut Rfb) -> bool) {
        let until = Instant::now() + WAIT;
        while !done(self) {
            assert!(Instant::now() < until, "no {what} within {WAIT:?}; events {:?}", self.events);
            self.pump();
        }
    }

    /// Pump for a while (lets the X side react), keeping requests going.
    fn pump_for(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.pump();
        }
    }

    fn cursors(&self) -> Vec<&RfbEvent> {
        self.events.iter().filter(|e| matches!(e, RfbEvent::Cursor { width: 1.., .. })).collect()
    }
}

/// Run `cmd` to completion (bounded) while pumping `c`; its stdout.
fn run_pumping(c: &mut Rfb, mut cmd: Command) -> String {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null()).spawn().expect("spawn");
    let until = Instant::now() + WAIT;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut s = String::new();
            child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
            let mut e = String::new();
            child.stderr.take().unwrap().read_to_string(&mut e).unwrap();
            assert!(st.success(), "{cmd:?}: {st}: {e}");
            return s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {WAIT:?}");
        }
        c.pump();
    }
}

fn xrun(desk: &Desktop, program: &str, package: &str, args: &[&str]) {
    common::x11::run(desk.x_command(program, package).args(args));
}

static FILES: AtomicUsize = AtomicUsize::new(0);

// -------------------------------------------------------------- keyboard

/// One key: the `KeyboardEvent.code`, and the keysym a US-layout browser
/// would report for it (which the server must NOT use).
type Key = (&'static str, u32);

/// Press `mods` (in order), tap `key`, release `mods`.
fn chord(c: &mut Rfb, mods: &[Key], key: Key) {
    let code = |k: Key| rfb_keycode(k.0).unwrap_or_else(|| panic!("no scancode for {}", k.0));
    for &m in mods {
        c.send(|cl, _, out| cl.key_event_ext(true, m.1, code(m), out));
    }
    c.send(|cl, _, out| {
        cl.key_event_ext(true, key.1, code(key), out);
        cl.key_event_ext(false, key.1, code(key), out);
    });
    for &m in mods.iter().rev() {
        c.send(|cl, _, out| cl.key_event_ext(false, m.1, code(m), out));
    }
}

const ALTGR: Key = ("AltRight", 0xffea);
const SHIFT: Key = ("ShiftLeft", 0xffe1);
const ENTER: Key = ("Enter", 0xff0d);

/// An xterm (UTF-8 locale) running `cat > FILE` under the pointer, the X
/// keyboard layout `layout`, and a client that saw the server's QEMU key
/// confirmation. Returns the file.
fn typing_session(desk: &mut Desktop, layout: &str) -> (Rfb, std::path::PathBuf) {
    xrun(desk, "setxkbmap", "x11-xkb-utils", &[layout]);
    let file = desk.dir.join(format!("typed-{}.txt", FILES.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&file, b"").unwrap();
    let mut xterm = desk.x_command("xterm", "xterm");
    xterm.env("LC_ALL", "C.UTF-8").args(["-T", "wsvnc-typing", "-geometry", "60x8+0+0", "-u8"]).args([
        "-e",
        "sh",
        "-c",
        &format!("stty -echo; exec cat > '{}'", file.display()),
    ]);
    desk.spawn_client("xterm", xterm);
    desk.window("wsvnc-typing");
    let encs = [RAW, CURSOR, QEMU_EXTENDED_KEY_EVENT, QEMU_LED_STATE];
    let mut c = Rfb::connect(desk.addr(), &encs);
    c.pump_until("the QEMU extended key event confirmation", |c| c.client.supports_scancodes());
    // No window manager: keys go to the window under the pointer.
    c.send(|cl, _, out| cl.pointer_event(0, 100, 40, out));
    c.pump_for(Duration::from_millis(300));
    (c, file)
}

/// Wait (pumping) until `file` holds `want`; report what it holds instead.
fn expect_typed(c: &mut Rfb, file: &std::path::Path, want: &str, layout: &str) {
    let until = Instant::now() + WAIT;
    loop {
        let got = std::fs::read_to_string(file).unwrap_or_default();
        if got == want {
            return;
        }
        assert!(Instant::now() < until, "{layout} layout: typed {want:?}, the xterm got {got:?}");
        c.pump();
    }
}

#[test]
fn xvnc_german_layout_by_scancode() {
    let mut desk = Desktop::xvnc_with(Auth::None, &["-RawKeyboard"]);
    let (mut c, file) = typing_session(&mut desk, "de");
    for key in [("BracketLeft", '[' as u32), ("Semicolon", ';' as u32), ("Quote", '\'' as u32), ("Minus", '-' as u32)] {
        chord(&mut c, &[], key); // ü ö ä ß
    }
    chord(&mut c, &[ALTGR], ("KeyQ", 'q' as u32)); // @
    chord(&mut c, &[], ("Equal", '=' as u32)); // dead acute ´ …
    chord(&mut c, &[], ("KeyE", 'e' as u32)); // … + e = é
    chord(&mut c, &[], ("KeyY", 'y' as u32)); // QWERTZ: z
    chord(&mut c, &[SHIFT], ("Digit7", '&' as u32)); // /
    chord(&mut c, &[ALTGR], ("KeyE", 'e' as u32)); // €
    chord(&mut c, &[], ENTER);
    expect_typed(&mut c, &file, "üöäß@éz/€\n", "de");
}

#[test]
fn xvnc_french_layout_by_scancode() {
    let mut desk = Desktop::xvnc_with(Auth::None, &["-RawKeyboard"]);
    let (mut c, file) = typing_session(&mut desk, "fr");
    // AZERTY letters, unshifted digit row, AltGr, dead circumflex.
    for key in [("KeyQ", 'q'), ("KeyW", 'w'), ("KeyA", 'a'), ("Semicolon", ';'), ("Digit2", '2'), ("Digit0", '0')] {
        chord(&mut c, &[], (key.0, key.1 as u32)); // a z q m é à
    }
    chord(&mut c, &[], ("Digit9", '9' as u32)); // ç
    chord(&mut c, &[ALTGR], ("Digit0", '0' as u32)); // @
    chord(&mut c, &[ALTGR], ("KeyE", 'e' as u32)); // €
    chord(&mut c, &[ALTGR], ("Digit3", '3' as u32)); // #
    chord(&mut c, &[], ("BracketLeft", '[' as u32)); // dead circumflex …
    chord(&mut c, &[], ("KeyE", 'e' as u32)); // … + e = ê
    chord(&mut c, &[SHIFT], ("Digit1", '!' as u32)); // 1
    chord(&mut c, &[], ENTER);
    expect_typed(&mut c, &file, "azqméàç@€#ê1\n", "fr");
}

/// Without `-RawKeyboard` Xvnc ignores the scancode and maps the keysym:
/// the same keys as in the German test give the US characters (so the
/// extended message still carries a usable keysym).
#[test]
fn xvnc_without_raw_keyboard_uses_the_keysym() {
    let mut desk = Desktop::xvnc(Auth::None);
    let (mut c, file) = typing_session(&mut desk, "de");
    for key in [("BracketLeft", '[' as u32), ("Semicolon", ';' as u32), ("KeyY", 'y' as u32)] {
        chord(&mut c, &[], key);
    }
    chord(&mut c, &[], ENTER);
    expect_typed(&mut c, &file, "[;y\n", "de, keysyms");
}

#[test]
fn xvnc_caps_lock_comes_back_as_led_state() {
    let mut desk = Desktop::xvnc_with(Auth::None, &["-RawKeyboard"]);
    let (mut c, file) = typing_session(&mut desk, "us");
    chord(&mut c, &[], ("CapsLock", 0xffe5));
    let on = RfbEvent::LedState { scroll_lock: false, num_lock: false, caps_lock: true };
    c.pump_until("LED state with Caps Lock on", |c| c.events.contains(&on));
    chord(&mut c, &[], ("KeyA", 'a' as u32));
    chord(&mut c, &[], ("CapsLock", 0xffe5));
    let off = RfbEvent::LedState { scroll_lock: false, num_lock: false, caps_lock: false };
    let last_led = |c: &Rfb| c.events.iter().rev().find(|e| matches!(e, RfbEvent::LedState { .. })).cloned();
    c.pump_until("LED state with Caps Lock off", |c| last_led(c) == Some(off.clone()));
    chord(&mut c, &[], ("KeyA", 'a' as u32));
    chord(&mut c, &[], ENTER);
    expect_typed(&mut c, &file, "Aa\n", "us");
}

// ------------------------------------------------------------- clipboard

const CLIP_TEXTS: [&str; 2] =
    ["Ελληνικά: καλημέρα κόσμε\n中文：你好，世界 日本語 한국어\n😀🎉👍 ok", "Γειά σου 世界 🚀\nline 2"];

#[test]
fn xvnc_unicode_clipboard_both_ways() {
    let mut desk = Desktop::xvnc(Auth::None);
    let mut c = Rfb::connect(desk.addr(), &[RAW, CURSOR, EXTENDED_CLIPBOARD]);
    c.pump_until("the server's extended clipboard caps", |c| c.client.unicode_clipboard());

    // X → VNC: xclip owns the CLIPBOARD selection with UTF-8 text.
    let src = desk.dir.join("clip-in.txt");
    std::fs::write(&src, CLIP_TEXTS[0]).unwrap();
    let mut xclip = desk.x_command("xclip", "xclip");
    xclip.args(["-quiet", "-selection", "clipboard", "-i"]).arg(&src);
    desk.spawn_client("xclip", xclip);
    let want = RfbEvent::ServerCutText(CLIP_TEXTS[0].into());
    c.pump_until("the X clipboard as ServerCutText", |c| c.events.contains(&want));

    // VNC → X: our text, read back by xclip (Xvnc asks us for the data while
    // xclip waits, so keep pumping).
    c.send(|cl, _, out| cl.client_cut_text(CLIP_TEXTS[1], out));
    let until = Instant::now() + WAIT;
    loop {
        let mut out = desk.x_command("xclip", "xclip");
        out.args(["-o", "-selection", "clipboard"]);
        let got = run_pumping(&mut c, out);
        if got == CLIP_TEXTS[1] {
            break;
        }
        assert!(Instant::now() < until, "xclip -o gave {got:?}, want {:?}", CLIP_TEXTS[1]);
        c.pump_for(Duration::from_millis(100));
    }
}

// --------------------------------------------------------------- cursors

/// The root window gets Adwaita's ARGB `left_ptr` (soft shadow: partial
/// alpha); each cursor encoding alone must deliver the same shape.
#[test]
fn xvnc_cursor_shapes_in_every_encoding() {
    let desk = Desktop::xvnc(Auth::None);
    assert!(std::path::Path::new("/usr/share/icons/Adwaita/cursors/left_ptr").exists(), "install adwaita-icon-theme");
    let shape = |enc: i32| -> (u16, u16, u16, u16, Vec<u8>) {
        let mut c = Rfb::connect(desk.addr(), &[RAW, enc]);
        // Xvnc draws the cursor itself (and sends an empty shape) until the
        // client has pointed at where the X pointer is; then it sends the
        // shape when it changes: set the root window's, twice so it changes.
        c.send(|cl, _, out| cl.pointer_event(0, 300, 200, out));
        c.pump_for(Duration::from_millis(300));
        for name in ["watch", "left_ptr"] {
            let mut cmd = desk.x_command("xsetroot", "x11-xserver-utils");
            cmd.env("XCURSOR_THEME", "Adwaita").env("XCURSOR_SIZE", "24").args(["-cursor_name", name]);
            common::x11::run(&mut cmd);
            c.pump_for(Duration::from_millis(300));
        }
        c.pump_until("a cursor shape", |c| !c.cursors().is_empty());
        let Some(RfbEvent::Cursor { hot_x, hot_y, width, height, rgba }) = c.cursors().last().cloned().cloned() else {
            unreachable!()
        };
        assert_eq!(rgba.len(), width as usize * height as usize * 4, "encoding {enc}");
        (hot_x, hot_y, width, height, rgba)
    };
    let alpha = shape(CURSOR_WITH_ALPHA);
    let vmware = shape(VMWARE_CURSOR);
    let rich = shape(CURSOR);
    let x = shape(X_CURSOR);
    for (name, s) in [("VMware", &vmware), ("rich", &rich), ("X", &x)] {
        assert_eq!(
            s.0..s.4.len() as u16,
            alpha.0..alpha.4.len() as u16,
            "{name}: hotspot/size differ from the alpha cursor"
        );
        assert_eq!((s.1, s.2, s.3), (alpha.1, alpha.2, alpha.3), "{name}: hotspot/size differ");
    }
    // The ARGB cursor has partly transparent pixels (its shadow).
    let partial = alpha.4.chunks_exact(4).filter(|p| p[3] != 0 && p[3] != 255).count();
    assert!(partial > 0, "no partial alpha: is the cursor ARGB? ({}x{})", alpha.2, alpha.3);
    // Cursor With Alpha (premultiplied on the wire, undone here) and VMware
    // (straight alpha) agree once premultiplied again.
    let pre = |p: &[u8], i: usize| p[i] as u32 * p[3] as u32 / 255;
    for (a, v) in alpha.4.chunks_exact(4).zip(vmware.4.chunks_exact(4)) {
        assert_eq!(a[3], v[3]);
        for i in 0..3 {
            assert!(pre(a, i).abs_diff(pre(v, i)) <= 1, "alpha {a:?} vs VMware {v:?}");
        }
    }
    // Rich and X cursors are 1-bit masks: opaque only where the ARGB
    // cursor is not transparent; rich ones keep the colours.
    for (i, ((a, r), xc)) in alpha.4.chunks_exact(4).zip(rich.4.chunks_exact(4)).zip(x.4.chunks_exact(4)).enumerate() {
        assert!(r[3] == 0 || r[3] == 255, "pixel {i}: rich alpha {}", r[3]);
        assert_eq!(r[3], xc[3], "pixel {i}: rich and X masks differ");
        if r[3] == 255 {
            assert!(a[3] > 0, "pixel {i} opaque in the mask, transparent in ARGB");
        }
    }
    assert!(rich.4.chunks_exact(4).any(|p| p[3] == 255), "empty rich cursor");
}

// --------------------------------------------------------- mouse buttons

/// Start `xev` on the root window, logging button events to a file.
fn xev_buttons(desk: &mut Desktop) -> std::path::PathBuf {
    let log = desk.dir.join("xev.log");
    let xev = require("xev", "x11-utils");
    let mut cmd = desk.x_command("sh", "dash");
    cmd.args(["-c", &format!("exec stdbuf -oL {} -root -event button > '{}'", xev.display(), log.display())]);
    desk.spawn_client("xev", cmd);
    // xev has selected its events once a button reaches it: press one.
    log
}

/// Press and release `mask` (pointer_event_ext) until xev logs `button N,`.
fn click_until_seen(c: &mut Rfb, log: &std::path::Path, mask: u16, button: u8) {
    let until = Instant::now() + WAIT;
    let seen = |b: u8| std::fs::read_to_string(log).is_ok_and(|s| s.contains(&format!("button {b},")));
    while !seen(button) {
        assert!(Instant::now() < until, "no button {button} press reached xev: {:?}", std::fs::read_to_string(log));
        c.send(|cl, _, out| {
            cl.pointer_event_ext(mask, 50, 50, out);
            cl.pointer_event_ext(0, 50, 50, out);
        });
        c.pump_for(Duration::from_millis(200));
    }
}

/// Xvnc 1.12 predates ExtendedMouseButtons (TigerVNC 1.15 confirms it and
/// has 9 buttons; 1.12 has 7): the client must stay on the plain form, and
/// buttons 1–7 still arrive through `pointer_event_ext`.
#[test]
fn xvnc_plain_buttons_without_extended_mouse_buttons() {
    let mut desk = Desktop::xvnc(Auth::None);
    let log = xev_buttons(&mut desk);
    let mut c = Rfb::connect(desk.addr(), &[RAW, CURSOR, EXTENDED_MOUSE_BUTTONS]);
    click_until_seen(&mut c, &log, 0x1, 1);
    click_until_seen(&mut c, &log, 0x40, 7); // wheel right
    assert!(!c.client.supports_extended_buttons(), "Xvnc 1.12 confirmed ExtendedMouseButtons?");
}

// --------------------------------------------- continuous updates, fences

fn rgb_eq(rgba: &[u8], rgb: &[u8]) -> bool {
    rgba.len() / 4 == rgb.len() / 3 && rgba.chunks_exact(4).zip(rgb.chunks_exact(3)).all(|(a, b)| a[..3] == *b)
}

/// Pump WITHOUT requests until the framebuffer equals the X screen.
fn follow_without_requests(c: &mut Rfb, desk: &Desktop, what: &str) {
    let want = desk.stable_screenshot();
    c.request = false;
    let until = Instant::now() + WAIT;
    while !rgb_eq(c.fb.data(), &want) {
        assert!(Instant::now() < until, "{what}: framebuffer never matched the X screen without requests");
        c.pump();
    }
}

#[test]
fn xvnc_continuous_updates_need_no_requests() {
    let mut desk = Desktop::xvnc(Auth::None);
    desk.draw_scene();
    let encs = [TIGHT, EXTENDED_DESKTOP_SIZE, DESKTOP_SIZE, CURSOR, CONTINUOUS_UPDATES, FENCE];
    let mut c = Rfb::connect(desk.addr(), &encs);
    // The request `pump` keeps outstanding turns continuous updates on once
    // the server has confirmed them (EndOfContinuousUpdates).
    c.pump_until("continuous updates", |c| c.client.continuous_updates());
    c.send(|cl, fb, out| cl.request_update(false, fb, out));
    follow_without_requests(&mut c, &desk, "initial screen");
    for colour in ["#c08020", "#208040", "#802020"] {
        xrun(&desk, "xsetroot", "x11-xserver-utils", &["-solid", colour]);
        follow_without_requests(&mut c, &desk, &format!("root {colour}"));
    }
    // Around a resize: the client moves the update area itself.
    c.pump_until("ExtendedDesktopSize", |c| c.events.contains(&RfbEvent::ResizeSupported));
    c.send(|cl, _, out| assert!(cl.set_desktop_size(800, 600, out)));
    c.pump_until("the resize", |c| c.events.contains(&RfbEvent::Resized { width: 800, height: 600 }));
    c.send(|cl, fb, out| cl.request_update(false, fb, out)); // the cleared framebuffer, once
    xrun(&desk, "xsetroot", "x11-xserver-utils", &["-solid", "#4060a0"]);
    follow_without_requests(&mut c, &desk, "after SetDesktopSize 800x600");
    assert!(c.client.continuous_updates());
}

// ------------------------------------------------------------ Tight JPEG

#[cfg(feature = "vnc-jpeg")]
/// JPEG rectangles decoded, counted from the Tight decoder's trace line.
static JPEG_RECTS: AtomicUsize = AtomicUsize::new(0);

#[cfg(feature = "vnc-jpeg")]
struct JpegCounter;
#[cfg(feature = "vnc-jpeg")]
impl log::Log for JpegCounter {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn || m.target().starts_with("wsvnc::rfb::decode::tight")
    }
    fn log(&self, r: &log::Record) {
        if r.level() <= log::Level::Warn {
            eprintln!("[{}] {}", r.level(), r.args());
        } else if r.args().to_string().starts_with("Tight: JPEG") {
            JPEG_RECTS.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn flush(&self) {}
}
#[cfg(feature = "vnc-jpeg")]
static LOGGER: JpegCounter = JpegCounter;

#[cfg(feature = "vnc-jpeg")]
/// Peak signal-to-noise ratio of the framebuffer's RGB against the screen.
fn psnr(rgba: &[u8], rgb: &[u8]) -> f64 {
    let (mut se, mut n) = (0f64, 0f64);
    for (a, b) in rgba.chunks_exact(4).zip(rgb.chunks_exact(3)) {
        for i in 0..3 {
            let d = a[i] as f64 - b[i] as f64;
            se += d * d;
            n += 1.0;
        }
    }
    if se == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0 * 255.0 / (se / n)).log10()
}

#[cfg(feature = "vnc-jpeg")]
/// The quality a test advertises, as `--vnc-jpeg 6` does.
const JPEG_QUALITY: i32 = 6;
#[cfg(feature = "vnc-jpeg")]
/// TigerVNC's level 6 is JPEG quality 79 with 4:2:0 chroma; on a photo that
/// stays well above this.
const MIN_PSNR_DB: f64 = 30.0;

#[test]
#[cfg(feature = "vnc-jpeg")]
fn xvnc_tight_jpeg_photo() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
    let mut desk = Desktop::xvnc(Auth::None);
    let photo = "/usr/share/backgrounds/gnome/wood-d.webp";
    assert!(std::path::Path::new(photo).exists(), "{photo} missing: install the Debian package gnome-backgrounds");
    xrun(&desk, "xdotool", "xdotool", &["mousemove", "--sync", "639", "479"]);
    let mut display = desk.x_command("display", "imagemagick");
    display.args(["-title", "wsvnc-photo", "-geometry", "+0+0", "-borderwidth", "0", "-resize", "600x440!", photo]);
    desk.spawn_client("display", display);
    desk.window("wsvnc-photo");
    let want = desk.stable_screenshot();
    let encs = [TIGHT, CURSOR, JPEG_QUALITY_0 + JPEG_QUALITY];
    let mut c = Rfb::connect(desk.addr(), &encs);
    let until = Instant::now() + WAIT;
    loop {
        let p = psnr(c.fb.data(), &want);
        if p >= MIN_PSNR_DB && JPEG_RECTS.load(Ordering::Relaxed) > 0 {
            eprintln!("Tight JPEG: PSNR {p:.1} dB after {} JPEG rectangles", JPEG_RECTS.load(Ordering::Relaxed));
            break;
        }
        assert!(
            Instant::now() < until,
            "PSNR {p:.1} dB (want ≥ {MIN_PSNR_DB}), {} JPEG rectangles",
            JPEG_RECTS.load(Ordering::Relaxed)
        );
        c.pump();
    }
}
