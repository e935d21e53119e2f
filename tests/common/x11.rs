//! Real X displays and VNC servers for integration tests (tests/real_servers.rs).
//!
//! * [`Desktop::xvnc`]: TigerVNC `Xvnc` (X server and VNC server in one).
//! * [`Desktop::x11vnc`]: `Xvfb` plus `x11vnc` scraping it.
//! * [`Desktop::draw_scene`]: known content (root colour, an ImageMagick test
//!   image with gradients, text, noise and a few-colour area, an `xterm`).
//! * [`Desktop::screenshot`]: the X server's own pixels (`import`), the truth
//!   a VNC client's framebuffer is compared with.
//!
//! Every process is started in its own process group and killed by PID when
//! its [`Proc`] guard drops, on panic too; `PR_SET_PDEATHSIG` covers a test
//! runner that is itself killed. Displays `:70`–`:79` and ports 18000–18199
//! belong to these tests: a [`Slot`] hands out one display with its ports and
//! blocks while all ten are busy, so parallel test threads never collide.
//! `WSVNC_TEST_OFFSET=N` (default 0) moves the range to displays `:70+20N`
//! and ports `18000+1000N`, so several checkouts can run their tests at once.
//!
//! A missing program is a test FAILURE naming the Debian package to install,
//! never a skip.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// First X display of this test suite's range; [`SLOTS`] displays follow.
pub const FIRST_DISPLAY: u16 = 70;
pub const SLOTS: u16 = 10;
/// VNC server of slot i: port 18000 + i.
pub const FIRST_VNC_PORT: u16 = 18000;
/// Anything else a test listens on (e.g. wsvnc itself) in slot i: 18100 + i.
pub const FIRST_AUX_PORT: u16 = 18100;

pub const WIDTH: u16 = 640;
pub const HEIGHT: u16 = 480;

/// Fail (not skip) when a program is missing, naming its Debian package.
pub fn require(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{program}` not found in PATH: install the Debian package `{package}` \
         (apt-get install {package}, or scripts/deps.sh apt)"
    );
}

// ------------------------------------------------------------------ slots

static BUSY: Mutex<u16> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

/// One display number and its ports, exclusive while held.
pub struct Slot {
    index: u16,
}

impl Slot {
    pub fn acquire() -> Slot {
        let mut busy = BUSY.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(i) = (0..SLOTS).find(|i| *busy & (1 << i) == 0) {
                *busy |= 1 << i;
                return Slot { index: i };
            }
            busy = FREED.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
    }
    pub fn display_number(&self) -> u16 {
        FIRST_DISPLAY + 20 * test_offset() + self.index
    }
    pub fn display(&self) -> String {
        format!(":{}", self.display_number())
    }
    pub fn vnc_port(&self) -> u16 {
        FIRST_VNC_PORT + 1000 * test_offset() + self.index
    }
    pub fn aux_port(&self) -> u16 {
        FIRST_AUX_PORT + 1000 * test_offset() + self.index
    }
}

/// `WSVNC_TEST_OFFSET` (0..=9): which range of displays and ports this
/// checkout's tests use (see the module docs).
pub fn test_offset() -> u16 {
    match std::env::var("WSVNC_TEST_OFFSET") {
        Ok(v) => v.parse().ok().filter(|n| *n <= 9).expect("WSVNC_TEST_OFFSET must be 0..=9"),
        Err(_) => 0,
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut busy = BUSY.lock().unwrap_or_else(|e| e.into_inner());
        *busy &= !(1 << self.index);
        FREED.notify_all();
    }
}

// -------------------------------------------------------------- processes

/// A child process (and its process group), killed when dropped.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Start `cmd` in a new process group with stdout+stderr to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let f = std::fs::File::create(log).expect("create log file");
        cmd.stdin(Stdio::null()).stdout(f.try_clone().expect("dup log")).stderr(f).process_group(0);
        // SAFETY: prctl is async-signal-safe; no allocation between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc { name: name.to_string(), child: Some(child), log: log.to_path_buf() }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL the process group at once (a server dying mid-session).
    pub fn kill_now(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain syscall on our own child's process group.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }

    /// SIGTERM, wait up to 3 s, then SIGKILL; reaps the child.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else { return };
        let pgid = -(c.id() as i32);
        // SAFETY: plain syscalls on our own child's process group.
        unsafe { libc::kill(pgid, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if let Ok(Some(_)) = c.try_wait() {
                // The leader is gone; take down anything left in its group.
                unsafe { libc::kill(pgid, libc::SIGKILL) };
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe { libc::kill(pgid, libc::SIGKILL) };
        let _ = c.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Run a short-lived command to completion; panics with its output on failure.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("timed out waiting for {what}");
    false
}

/// Is something listening on 127.0.0.1:`port` (from /proc/net/tcp, so no
/// connection is made: a probe connection would count as a VNC client)?
pub fn listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    let any = format!("00000000:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp").unwrap_or_default().lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && (f[1] == want || f[1] == any) && f[3] == "0A"
    })
}

/// Can an X client connect to display `n`'s Unix socket?
fn x_ready(n: u16) -> bool {
    std::os::unix::net::UnixStream::connect(format!("/tmp/.X11-unix/X{n}")).is_ok()
}

// ---------------------------------------------------------------- desktops

/// How a VNC server checks clients.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    /// VNC Authentication with this password.
    Vnc(&'a str),
    /// VeNCrypt (Xvnc only).
    #[cfg(feature = "tls")]
    Tls(Tls<'a>),
}

/// Xvnc's VeNCrypt settings: `-SecurityTypes types` (e.g. "X509Vnc,X509Plain")
/// with the PKI's certificate and key; `password` for the *Vnc types, `pam`
/// (service and permitted user) for the *Plain types.
#[cfg(feature = "tls")]
#[derive(Clone, Copy)]
pub struct Tls<'a> {
    pub types: &'a str,
    pub pki: &'a super::vnc_tls::Pki,
    pub password: Option<&'a str>,
    pub pam: Option<&'a super::vnc_tls::PamService>,
}

/// An X display served over VNC, with the X clients drawn on it.
pub struct Desktop {
    pub slot: Slot,
    pub dir: PathBuf,
    /// X clients first, servers last: dropped in this order.
    clients: Vec<Proc>,
    servers: Vec<Proc>,
    size: std::cell::Cell<(u16, u16)>,
}

impl Desktop {
    fn new(tag: &str) -> Desktop {
        let slot = Slot::acquire();
        for port in [slot.vnc_port(), slot.aux_port()] {
            assert!(!listening(port), "127.0.0.1:{port} is taken by a process these tests did not start");
        }
        let dir =
            std::env::temp_dir().join(format!("wsvnc-real-{}-{}-{tag}", std::process::id(), slot.display_number()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Desktop { slot, dir, clients: Vec::new(), servers: Vec::new(), size: (WIDTH, HEIGHT).into() }
    }

    /// TigerVNC's Xvnc, 640×480×24, on 127.0.0.1 only.
    pub fn xvnc(auth: Auth) -> Desktop {
        Desktop::xvnc_with(auth, &[])
    }

    /// Xvnc with extra options (e.g. `-RawKeyboard`).
    pub fn xvnc_with(auth: Auth, extra: &[&str]) -> Desktop {
        let xvnc = require("Xvnc", "tigervnc-standalone-server");
        let mut d = Desktop::new("xvnc");
        let mut cmd = Command::new(xvnc);
        cmd.arg(d.slot.display())
            .args(["-rfbport", &d.slot.vnc_port().to_string()])
            .args(["-geometry", &format!("{WIDTH}x{HEIGHT}"), "-depth", "24"])
            .args(["-localhost", "-interface", "127.0.0.1", "-nolisten", "tcp"])
            .arg("-AlwaysShared");
        match auth {
            Auth::None => {
                cmd.args(["-SecurityTypes", "None"]);
            }
            Auth::Vnc(pw) => {
                let file = d.password_file(pw);
                cmd.args(["-SecurityTypes", "VncAuth", "-PasswordFile"]).arg(file);
            }
            #[cfg(feature = "tls")]
            Auth::Tls(t) => {
                cmd.args(["-SecurityTypes", t.types, "-X509Cert"]).arg(&t.pki.cert).arg("-X509Key").arg(&t.pki.key);
                if let Some(pw) = t.password {
                    cmd.arg("-PasswordFile").arg(d.password_file(pw));
                }
                if let Some(pam) = t.pam {
                    cmd.args(["-PAMService", &pam.name, "-PlainUsers", &pam.user]);
                }
            }
        }
        cmd.args(extra);
        let log = d.dir.join("Xvnc.log");
        d.servers.push(Proc::spawn("Xvnc", cmd, &log));
        d.wait_servers_ready();
        d
    }

    /// Xvfb 640×480×24 scraped by x11vnc on 127.0.0.1 only.
    pub fn x11vnc(auth: Auth) -> Desktop {
        Desktop::x11vnc_with(auth, &[])
    }

    /// x11vnc with extra options (e.g. `-rfbversion 3.3`).
    pub fn x11vnc_with(auth: Auth, extra: &[&str]) -> Desktop {
        let xvfb = require("Xvfb", "xvfb");
        let x11vnc = require("x11vnc", "x11vnc");
        let mut d = Desktop::new("x11vnc");
        let mut cmd = Command::new(xvfb);
        cmd.arg(d.slot.display()).args(["-screen", "0", &format!("{WIDTH}x{HEIGHT}x24")]).args(["-nolisten", "tcp"]);
        let log = d.dir.join("Xvfb.log");
        d.servers.push(Proc::spawn("Xvfb", cmd, &log));
        let n = d.slot.display_number();
        let ok = wait_until("Xvfb", Duration::from_secs(20), || x_ready(n));
        assert!(ok, "Xvfb {} did not start: {}", d.slot.display(), d.servers[0].log_text());

        let mut cmd = Command::new(x11vnc);
        cmd.args(["-display", &d.slot.display()])
            .args(["-rfbport", &d.slot.vnc_port().to_string()])
            .args(["-localhost", "-forever", "-shared", "-noipv6", "-nossl"])
            // No cursor at all (neither drawn into the framebuffer nor sent as
            // a shape): the X screenshot has none either.
            .args(["-nocursor", "-noxrecord"]);
        match auth {
            Auth::None => {
                cmd.arg("-nopw");
            }
            Auth::Vnc(pw) => {
                cmd.args(["-passwd", pw]);
            }
            #[cfg(feature = "tls")]
            Auth::Tls(_) => panic!("these tests use VeNCrypt with Xvnc only"),
        }
        cmd.args(extra);
        let log = d.dir.join("x11vnc.log");
        // Servers are dropped last-to-first: x11vnc goes in front of Xvfb.
        d.servers.insert(0, Proc::spawn("x11vnc", cmd, &log));
        d.wait_servers_ready();
        d
    }

    fn wait_servers_ready(&mut self) {
        let (n, port) = (self.slot.display_number(), self.slot.vnc_port());
        let ok = wait_until("VNC server", Duration::from_secs(30), || {
            x_ready(n) && listening(port) || !self.servers.iter_mut().all(|p| p.alive())
        });
        let all_alive = self.servers.iter_mut().all(|p| p.alive());
        if !ok || !all_alive {
            let logs: Vec<String> =
                self.servers.iter().map(|p| format!("--- {} ---\n{}", p.name, p.log_text())).collect();
            panic!(
                "VNC server on {} port {port} did not come up (stale /tmp/.X{n}-lock?):\n{}",
                self.slot.display(),
                logs.join("\n")
            );
        }
    }

    /// `vncpasswd -f` output (the obfuscated password file Xvnc reads).
    fn password_file(&self, pw: &str) -> PathBuf {
        let vncpasswd = require("vncpasswd", "tigervnc-tools");
        let path = self.dir.join("passwd");
        let mut child = Command::new(vncpasswd)
            .arg("-f")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run vncpasswd");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(format!("{pw}\n").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success() && out.stdout.len() == 8, "vncpasswd -f failed: {out:?}");
        std::fs::write(&path, &out.stdout).unwrap();
        path
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.slot.vnc_port()))
    }

    pub fn display(&self) -> String {
        self.slot.display()
    }

    /// A command with DISPLAY set to this desktop.
    pub fn x_command(&self, program: &str, package: &str) -> Command {
        let mut c = Command::new(require(program, package));
        c.env("DISPLAY", self.display());
        c
    }

    /// Start a long-running X client, killed with the desktop.
    pub fn spawn_client(&mut self, name: &str, cmd: Command) {
        let log = self.dir.join(format!("{name}.{}.log", self.clients.len()));
        self.clients.push(Proc::spawn(name, cmd, &log));
    }

    /// The first VNC-side server process (Xvnc, or x11vnc on Xvfb).
    pub fn kill_vnc_server(&mut self) {
        self.servers[0].kill_now();
    }

    /// Window id of the (first) window whose name is `title`; waits for it
    /// (bounded: 30 s).
    ///
    /// `xdotool search` walks the window tree with XQueryTree and gives up
    /// with `BadWindow` when a window it is about to visit is destroyed
    /// meanwhile — normal while X clients start (xterm, ImageMagick's
    /// `display` create and destroy windows as they map). So the search runs
    /// once per try, without `--sync`, and is retried while it fails that way
    /// or finds nothing yet.
    pub fn window(&self, title: &str) -> String {
        let name = format!("^{title}$");
        let out = self.xdotool_retrying(&["search", "--onlyvisible", "--name", &name], |out| !out.trim().is_empty());
        out.lines().next().unwrap_or_else(|| panic!("no window named {title}")).trim().to_string()
    }

    /// Move a window (no window manager: XMoveWindow takes effect as given).
    pub fn move_window(&self, id: &str, x: u16, y: u16) {
        self.xdotool_retrying(&["windowmove", "--sync", id, &x.to_string(), &y.to_string()], |_| true);
    }

    /// Run `xdotool ARGS` until it succeeds with an output `done` accepts,
    /// retrying (every 100 ms, at most 30 s) when it fails with an X error
    /// about a window that went away (`BadWindow`, `BadDrawable`,
    /// `BadMatch`) or silently (a search that matched nothing yet), or when
    /// `done` rejects the output. Any other failure, or
    /// the time running out, is a test failure with xdotool's output.
    pub fn xdotool_retrying(&self, args: &[&str], done: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + Duration::from_secs(30);
        let mut tries = 0;
        loop {
            tries += 1;
            let mut c = self.x_command("xdotool", "xdotool");
            c.args(args);
            let (ok, out) = run_with_timeout_status(c, Duration::from_secs(10));
            // `search` exits 1 without output while nothing matches yet; a
            // run that hung (killed after 10 s) is tried again too.
            let transient = out.trim().is_empty()
                || out.contains("timed out after")
                || out.contains("BadWindow")
                || out.contains("BadDrawable")
                || out.contains("BadMatch");
            if ok && done(&out) {
                return out;
            }
            assert!(ok || transient, "xdotool {args:?} failed: {out}");
            if !out.trim().is_empty() {
                eprintln!("xdotool {args:?}: retrying after: {}", out.lines().next().unwrap_or(""));
            }
            assert!(Instant::now() < until, "xdotool {args:?}: no result after {tries} tries in 30 s: {out}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Known content: root colour, the test image at (300, 10) titled
    /// "wsvnc-image", an xterm with coloured text at (20, 250) titled
    /// "wsvnc-xterm" running `cat` (so typed keys echo) with its text cursor
    /// hidden (x11vnc misses the 4×11 cursor block drawn as typing ends), the pointer in the
    /// bottom-right corner; then waits until the screen stops changing.
    pub fn draw_scene(&mut self) {
        run(self.x_command("xsetroot", "x11-xserver-utils").args(["-solid", "#336699"]));
        // Xvnc draws the pointer as a software sprite into its framebuffer and,
        // after a window moves under it, keeps serving the pixels from before
        // the move there (the X screenshot has the right ones). Keep the pointer
        // in a corner where nothing is drawn or moved.
        self.xdotool_retrying(&["mousemove", "--sync", "639", "479"], |_| true);
        let image = test_image(&self.dir);
        let mut c = self.x_command("display", "imagemagick");
        c.args(["-title", "wsvnc-image", "-geometry", "+300+10", "-borderwidth", "0"]).arg(&image);
        self.spawn_client("display", c);
        let mut c = self.x_command("xterm", "xterm");
        c.args(["-T", "wsvnc-xterm", "-geometry", "60x10+20+250", "-bg", "white", "-fg", "black"])

            .args(["+cm", "-xrm", "XTerm*cursorBlink: false"])
            .args(["-e", "sh", "-c", "printf '\\033[?25lhello wsvnc\\n\\033[31mred\\033[0m \\033[1;34mbold blue\\033[0m 0123456789\\n'; exec cat"]);
        self.spawn_client("xterm", c);
        self.window("wsvnc-image");
        self.window("wsvnc-xterm");
        self.stable_screenshot();
    }

    /// The root window as RGB bytes (3 per pixel, row-major), at whatever
    /// size the screen has now (see [`Desktop::screen_size`]).
    pub fn screenshot(&self) -> Vec<u8> {
        let mut c = self.x_command("import", "imagemagick");
        c.args(["-silent", "-window", "root", "-depth", "8", "ppm:-"]);
        let ppm = run(&mut c);
        let (w, h, px) = parse_ppm(&ppm);
        self.size.set((w, h));
        px
    }

    /// Width and height of the last screenshot.
    pub fn screen_size(&self) -> (u16, u16) {
        self.size.get()
    }

    /// Screenshots until two in a row, 300 ms apart, are equal (windows mapped and painted).
    pub fn stable_screenshot(&self) -> Vec<u8> {
        let mut last = self.screenshot();
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = self.screenshot();
            if now == last {
                return now;
            }
            assert!(Instant::now() < until, "the X screen of {} never stopped changing", self.display());
            last = now;
        }
    }

    /// Server logs, for failure messages.
    pub fn logs(&self) -> String {
        self.servers.iter().map(|p| format!("--- {} ---\n{}", p.name, tail(&p.log_text(), 2000))).collect()
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        self.clients.clear();
        self.servers.clear();
        if std::thread::panicking() {
            eprintln!("server logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Binary PPM ("P6", maxval 255) → (width, height, RGB bytes).
fn parse_ppm(b: &[u8]) -> (u16, u16, Vec<u8>) {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        assert!(i > start, "import: truncated PPM header");
        fields.push(String::from_utf8_lossy(&b[start..i]).into_owned());
    }
    let num = |s: &str| s.parse::<usize>().unwrap_or_else(|_| panic!("import: bad PPM header {fields:?}"));
    assert!(fields[0] == "P6" && num(&fields[3]) == 255, "import: not an 8-bit PPM: {fields:?}");
    let (w, h) = (num(&fields[1]), num(&fields[2]));
    let px = &b[i + 1..];
    assert_eq!(px.len(), w * h * 3, "import: {w}x{h} PPM with {} bytes of pixels", px.len());
    (w as u16, h as u16, px.to_vec())
}

fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

/// Run a command that may block (xdotool --sync), killing it after `timeout`;
/// returns whether it succeeded and its output (stdout and stderr), or
/// (false, "… timed out after …").
fn run_with_timeout_status(cmd: Command, timeout: Duration) -> (bool, String) {
    let cmd_text = format!("{cmd:?}");
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = std::env::temp_dir().join(format!("wsvnc-real-cmd-{}-{n}", std::process::id()));
    let mut p = Proc::spawn("command", cmd, &log);
    let until = Instant::now() + timeout;
    loop {
        match p.child.as_mut().unwrap().try_wait() {
            Ok(Some(st)) => {
                p.child = None;
                let out = p.log_text();
                let _ = std::fs::remove_file(&log);
                return (st.success(), out);
            }
            _ if Instant::now() > until => {
                let out = format!("{cmd_text} timed out after {timeout:?}: {}", p.log_text());
                return (false, out); // `p` is killed on drop
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A 320×200 PNG exercising every encoder path: a vertical red→blue gradient
/// (Tight gradient filter, ZRLE raw tiles), anti-aliased text on white (ZRLE
/// palette/RLE tiles), 100×100 random noise (raw/incompressible tiles), a
/// 12-colour plasma (palettes) and flat areas (solid tiles/subrects).
pub fn test_image(dir: &Path) -> PathBuf {
    let path = dir.join("test.png");
    let mut c = Command::new(require("convert", "imagemagick"));
    c.args(["-seed", "42", "-size", "320x200", "gradient:red-blue"])
        .args(["(", "-size", "320x60", "xc:white", "-fill", "black", "-pointsize", "24"])
        .args(["-annotate", "+10+40", "wsvnc Tq 0123", ")", "-gravity", "south", "-composite"])
        .args(["(", "-size", "100x100", "xc:", "+noise", "Random", ")", "-gravity", "northeast", "-composite"])
        .args(["(", "-size", "120x80", "plasma:", "-colors", "12", "+dither", ")", "-gravity", "northwest"])
        .args(["-geometry", "+10+20", "-composite"])
        .args(["-fill", "#20c040", "-draw", "rectangle 140,20 190,120"])
        .arg(&path);
    run(&mut c);
    path
}
