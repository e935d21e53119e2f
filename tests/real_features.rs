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
//! * mouse buttons: back (button 8) reaches an X client (`xev`); Xvnc 1.12
//!   predates ExtendedMouseButtons, so the client must stay on the plain form;
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
        let client = RfbClient::new(RfbConfig { shared: true, encodings: encodings.to_vec(), password: None });
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
        match self.sock.read(&mut buf) {
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
